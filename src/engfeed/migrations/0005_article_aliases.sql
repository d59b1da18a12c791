-- Ids of mirrors (the same post under another URL, see Store.upsert_articles): stored once,
-- but a mirror's id still finds the article that was kept.
CREATE TABLE article_aliases (
    uid        TEXT PRIMARY KEY,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE
);
