-- Articles are embedded in two passes: their document vector first (concept search covers
-- them from then on), their passages after every pending article has a document vector.
-- 1 = this article's passages are still to be embedded (its old ones were removed).
ALTER TABLE embeddings ADD COLUMN passages_pending INTEGER NOT NULL DEFAULT 0;
CREATE INDEX embeddings_passages_pending ON embeddings(model) WHERE passages_pending = 1;
