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
        -- A replaced document vector (re-embedded text, another model) empties its copy,
        -- which the store fills again before the next search.
        CREATE FUNCTION embeddings_vector_stale() RETURNS trigger LANGUAGE plpgsql AS $f$
        BEGIN
            IF NEW.vec IS DISTINCT FROM OLD.vec THEN
                NEW.embedding := NULL;
            END IF;
            RETURN NEW;
        END $f$;
        CREATE TRIGGER embeddings_vector_stale BEFORE UPDATE OF vec ON embeddings
        FOR EACH ROW EXECUTE FUNCTION embeddings_vector_stale();
    END IF;
END $$;
