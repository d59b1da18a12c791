-- Sources, articles and the full-text index kept in step with articles by triggers.
CREATE TABLE sources (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
    url           TEXT NOT NULL UNIQUE,
    site_url      TEXT NOT NULL DEFAULT '',
    etag          TEXT,
    last_modified TEXT,
    last_attempt  INTEGER,
    last_success  INTEGER,
    http_status   INTEGER,
    error         TEXT,
    failures      INTEGER NOT NULL DEFAULT 0,
    next_due      INTEGER,
    added         INTEGER NOT NULL
);

CREATE TABLE articles (
    id             INTEGER PRIMARY KEY,
    uid            TEXT NOT NULL UNIQUE,
    source_id      INTEGER REFERENCES sources(id) ON DELETE SET NULL,
    source_name    TEXT NOT NULL,
    url            TEXT NOT NULL,
    guid           TEXT NOT NULL DEFAULT '',
    title          TEXT NOT NULL,
    author         TEXT NOT NULL DEFAULT '',
    tags           TEXT NOT NULL DEFAULT '[]',
    published      INTEGER NOT NULL,
    updated        INTEGER,
    date_estimated INTEGER NOT NULL DEFAULT 0,
    first_seen     INTEGER NOT NULL,
    summary_html   TEXT NOT NULL DEFAULT '',
    content_html   TEXT NOT NULL DEFAULT '',
    excerpt        TEXT NOT NULL DEFAULT '',
    body           TEXT NOT NULL DEFAULT '',
    content_hash   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX articles_published ON articles(published DESC, id DESC);
CREATE INDEX articles_source ON articles(source_name COLLATE NOCASE, published DESC, id DESC);

CREATE VIRTUAL TABLE articles_fts USING fts5(
    title, excerpt, body,
    content='articles', content_rowid='id',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER articles_ai AFTER INSERT ON articles BEGIN
    INSERT INTO articles_fts(rowid, title, excerpt, body) VALUES (new.id, new.title, new.excerpt, new.body);
END;
CREATE TRIGGER articles_ad AFTER DELETE ON articles BEGIN
    INSERT INTO articles_fts(articles_fts, rowid, title, excerpt, body)
    VALUES ('delete', old.id, old.title, old.excerpt, old.body);
END;
CREATE TRIGGER articles_au AFTER UPDATE OF title, excerpt, body ON articles BEGIN
    INSERT INTO articles_fts(articles_fts, rowid, title, excerpt, body)
    VALUES ('delete', old.id, old.title, old.excerpt, old.body);
    INSERT INTO articles_fts(rowid, title, excerpt, body) VALUES (new.id, new.title, new.excerpt, new.body);
END;
