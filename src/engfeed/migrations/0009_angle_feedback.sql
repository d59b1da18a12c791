-- The reader's verdicts on useful angles: "not this angle" (-1) on a label, "add angle" (+1)
-- on an article without it. Each is final for its article and a labelled example for the
-- others (engfeed.angles_feedback); kept per user, and kept when the article is re-fetched.
CREATE TABLE angle_feedback (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    angle      TEXT NOT NULL COLLATE NOCASE,
    verdict    INTEGER NOT NULL CHECK (verdict IN (-1, 1)),
    created    INTEGER NOT NULL,
    PRIMARY KEY (user_id, article_id, angle)
);
