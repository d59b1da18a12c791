-- Concept search in the database when the server has pgvector: a vector copy of each
-- document vector (the store fills it from embeddings.vec), searched by cosine distance:
-- exactly on a small store, through an HNSW index (made by the store) on a big one.
-- Without the extension nothing changes: the in-process index serves concept search.
DO $$
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS vector;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pgvector is not available: concept search uses the in-process index';
    END;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
        ALTER TABLE embeddings ADD COLUMN embedding vector;
        CREATE INDEX embeddings_unsynced ON embeddings(article_id) WHERE embedding IS NULL;
    END IF;
END $$;
