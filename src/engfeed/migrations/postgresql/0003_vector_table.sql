-- Concept search in the database, measured faster: the searchable copy of each document
-- vector moves out of the wide `embeddings` row into a narrow table of half-precision
-- vectors (`halfvec`, 2 bytes a dimension, stored inline). A 384-dimension float32 copy
-- beside the float16 blob made each `embeddings` row ~2.3 KB, past PostgreSQL's TOAST
-- threshold, so an exact scan de-toasted every row: 29 ms at 17k vectors here, against
-- 4.1 ms for this table (bench/pgvector.py, "layout"). Without pgvector nothing changes.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
        BEGIN  -- halfvec needs pgvector 0.7: update an older install if we may
            ALTER EXTENSION vector UPDATE;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'pgvector could not be updated: %', SQLERRM;
        END;
    END IF;
    IF to_regtype('halfvec') IS NULL THEN
        RAISE NOTICE 'pgvector 0.7 or later is not available: concept search uses the in-process index';
    ELSE
        DROP TRIGGER IF EXISTS embeddings_vector_stale ON embeddings;
        DROP FUNCTION IF EXISTS embeddings_vector_stale();
        DROP INDEX IF EXISTS embeddings_hnsw;
        DROP INDEX IF EXISTS embeddings_unsynced;
        ALTER TABLE embeddings DROP COLUMN IF EXISTS embedding;

        -- One row per document vector; `embedding` is NULL until the store fills it from
        -- `embeddings.vec` (a new, re-embedded or copied vector): see PostgresStore.sync_vectors.
        CREATE TABLE article_vectors (
            article_id BIGINT PRIMARY KEY REFERENCES embeddings(article_id) ON DELETE CASCADE,
            model      TEXT NOT NULL,
            embedding  halfvec
        );
        ALTER TABLE article_vectors ALTER COLUMN embedding SET STORAGE PLAIN;
        CREATE INDEX article_vectors_unsynced ON article_vectors(article_id) WHERE embedding IS NULL;
        INSERT INTO article_vectors (article_id, model) SELECT article_id, model FROM embeddings;

        CREATE FUNCTION article_vectors_stale() RETURNS trigger LANGUAGE plpgsql AS $f$
        BEGIN
            INSERT INTO article_vectors (article_id, model) VALUES (NEW.article_id, NEW.model)
            ON CONFLICT (article_id) DO UPDATE SET model = EXCLUDED.model, embedding = NULL;
            RETURN NULL;
        END $f$;
        CREATE TRIGGER article_vectors_new AFTER INSERT ON embeddings
        FOR EACH ROW EXECUTE FUNCTION article_vectors_stale();
        CREATE TRIGGER article_vectors_replaced AFTER UPDATE OF vec, model ON embeddings
        FOR EACH ROW WHEN (OLD.vec IS DISTINCT FROM NEW.vec OR OLD.model IS DISTINCT FROM NEW.model)
        EXECUTE FUNCTION article_vectors_stale();
    END IF;
END $$;
