-- Dense vectors (float16, tagged with the model that made them) and angle labels.
CREATE TABLE embeddings (
    article_id INTEGER PRIMARY KEY REFERENCES articles(id) ON DELETE CASCADE,
    model      TEXT NOT NULL,
    vec        BLOB NOT NULL
);
CREATE INDEX embeddings_model ON embeddings(model);

CREATE TABLE article_angles (
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    angle      TEXT NOT NULL,
    terms      TEXT NOT NULL DEFAULT '[]',
    score      REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (article_id, angle)
);
CREATE INDEX article_angles_angle ON article_angles(angle);

-- Key/value facts about the store itself (e.g. which angle set labelled the articles).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Which angle set last labelled each article (NULL: not yet labelled).
ALTER TABLE articles ADD COLUMN angles_sig TEXT;
