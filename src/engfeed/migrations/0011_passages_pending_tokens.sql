-- embeddings.passages_pending holds a token (unique in the store) instead of 1, so that a
-- second pass that read an article's older text never clears the mark of a newer one
-- (Store.save_passages). The partial index follows the new meaning: pending = non-zero.
UPDATE embeddings SET passages_pending = rowid WHERE passages_pending != 0;
INSERT OR REPLACE INTO meta(key, value)
    VALUES ('passages.token', (SELECT coalesce(max(rowid), 0) FROM embeddings));
DROP INDEX embeddings_passages_pending;
CREATE INDEX embeddings_passages_pending ON embeddings(model) WHERE passages_pending != 0;
