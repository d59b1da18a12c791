-- Mute rules and the weekly digest, per user (one implicit local user today).
-- A rule hides the articles it matches from the feed and search; saved articles are never
-- hidden. kind: 'source' and 'angle' rules are matched in SQL when a listing is read (an
-- article's source never changes; its angles change with the labeller). 'term' and
-- 'regex' rules are matched in Python on title and excerpt, once when the rule is added
-- and once per article when it is stored or changed; their matches live in mute_matches.
CREATE TABLE mute_rules (
    id      INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind    TEXT NOT NULL CHECK (kind IN ('source', 'term', 'regex', 'angle')),
    value   TEXT NOT NULL,
    created INTEGER NOT NULL,
    UNIQUE (user_id, kind, value)
);
CREATE TABLE mute_matches (
    rule_id    INTEGER NOT NULL REFERENCES mute_rules(id) ON DELETE CASCADE,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    PRIMARY KEY (article_id, rule_id)
);
CREATE INDEX mute_matches_rule ON mute_matches(rule_id);

-- One row per digest sent: at most one per (user, ISO week), even across restarts.
CREATE TABLE digest_sends (
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    week      TEXT NOT NULL,  -- ISO week of the send, e.g. '2026-W49'
    sent_at   INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    articles  INTEGER NOT NULL,
    PRIMARY KEY (user_id, week)
);
-- Addresses that used the digest's unsubscribe link: the weekly send skips them.
CREATE TABLE digest_unsubscribes (
    address TEXT PRIMARY KEY COLLATE NOCASE,
    at      INTEGER NOT NULL
);

-- Which articles still need their title and excerpt matched against the term and regex
-- rules: 0 when stored, or when the title or excerpt changes; 1 once matched. Existing
-- articles are done (there were no rules before this migration).
ALTER TABLE articles ADD COLUMN mutes_checked INTEGER NOT NULL DEFAULT 0;
UPDATE articles SET mutes_checked = 1;
CREATE INDEX articles_mutes_due ON articles(id) WHERE mutes_checked = 0;
CREATE TRIGGER articles_mutes_au AFTER UPDATE OF title, excerpt ON articles
WHEN old.title IS NOT new.title OR old.excerpt IS NOT new.excerpt BEGIN
    UPDATE articles SET mutes_checked = 0 WHERE id = new.id;
END;
