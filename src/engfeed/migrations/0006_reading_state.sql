-- The reading workflow: what a reader saved, read and noted, per user. One implicit local
-- user today (id 1); accounts can be added later without moving any data.
CREATE TABLE users (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL
);
INSERT INTO users(id, name, created) VALUES (1, 'local', CAST(strftime('%s', 'now') AS INTEGER));
CREATE TABLE reading_state (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    saved      INTEGER NOT NULL DEFAULT 0,
    saved_at   INTEGER,
    read       INTEGER NOT NULL DEFAULT 0,
    read_at    INTEGER,
    note       TEXT,
    noted_at   INTEGER,
    PRIMARY KEY (user_id, article_id)
);
CREATE INDEX reading_state_saved ON reading_state(user_id, saved, saved_at);
