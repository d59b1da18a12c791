-- Full text for teaser feeds and cached summaries.
-- articles.body stays the text that search, passages, angles and summaries read: the feed's
-- own text, or the text extracted from the article page when that is better
-- (text_source = 'page'). The feed's own HTML stays in summary_html/content_html.
ALTER TABLE articles ADD COLUMN text_source TEXT NOT NULL DEFAULT 'feed';

-- One row per article whose page was fetched: what the page gave, and when to try again.
-- status: 'ok' (html/text hold the article), 'not_article' (a 404, a login or paywall, a
-- video, a page too large), 'failed' (network, 5xx: retried with backoff), 'blocked'
-- (robots.txt disallows it).
CREATE TABLE article_pages (
    article_id    INTEGER PRIMARY KEY REFERENCES articles(id) ON DELETE CASCADE,
    status        TEXT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    url           TEXT NOT NULL DEFAULT '',
    html          TEXT NOT NULL DEFAULT '',
    words         INTEGER NOT NULL DEFAULT 0,
    http_status   INTEGER,
    etag          TEXT,
    last_modified TEXT,
    fetched       INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 1,
    next_try      INTEGER
);
CREATE INDEX article_pages_next_try ON article_pages(next_try);

-- robots.txt per origin (scheme://host[:port]); see engfeed.robots.
CREATE TABLE robots (
    origin    TEXT PRIMARY KEY,
    fetched   INTEGER NOT NULL,
    body      TEXT NOT NULL DEFAULT '',
    allow_all INTEGER NOT NULL DEFAULT 0,
    deny_all  INTEGER NOT NULL DEFAULT 0
);

-- Deep summaries, computed once per text: text_hash says which text (and method) made it.
CREATE TABLE summaries (
    article_id INTEGER PRIMARY KEY REFERENCES articles(id) ON DELETE CASCADE,
    text_hash  TEXT NOT NULL,
    method     TEXT NOT NULL,
    data       TEXT NOT NULL,
    created    INTEGER NOT NULL
);
