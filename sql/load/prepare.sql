-- Load step 2, after schema.sql has created the staging tables.
--
-- The primary keys are dropped now and built again after the data is in (primary_key.sql):
-- one sorted bulk build is several times faster than inserting 31 million keys one by one during
-- COPY. Their index definitions are kept here, read from the catalog, so they come back exactly
-- as schema.sql declares them, under the same names.
CREATE TABLE reviews_load.primary_keys AS
SELECT c.conrelid::regclass AS tbl, c.conname AS name, pg_get_indexdef(c.conindid) AS index_def
  FROM pg_constraint c
 WHERE c.connamespace = 'reviews_load'::regnamespace AND c.contype = 'p';

DO $$
DECLARE k record;
BEGIN
    FOR k IN SELECT tbl, name FROM reviews_load.primary_keys LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', k.tbl, k.name);
    END LOOP;
END $$;
