-- Per-source article counts (sources page, `sources list`) without a full scan per source.
CREATE INDEX articles_source_id ON articles(source_id);
