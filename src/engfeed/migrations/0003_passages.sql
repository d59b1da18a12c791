-- Sentence-sized passages of longer articles with their vectors (same model tag as
-- embeddings): search shows the passage nearest to the query as the hit's context
-- without running the model at query time. Replaced whenever the article is embedded.
CREATE TABLE passages (
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    model      TEXT NOT NULL,
    text       TEXT NOT NULL,
    vec        BLOB NOT NULL,
    PRIMARY KEY (article_id, seq)
) WITHOUT ROWID;
