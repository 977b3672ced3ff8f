-- Load step 2, after schema.sql has created the staging tables.

-- reviews.csv goes here first, not into reviews: a review's `photos` column (and so its generated
-- `doc`) needs reviews_photos.csv, which is read after it. UNLOGGED because it is thrown away:
-- writing it to the WAL would cost as much as the rows themselves.
CREATE UNLOGGED TABLE reviews_load.reviews_csv (
    id             integer  NOT NULL,
    product_id     integer  NOT NULL,
    rating         smallint NOT NULL,
    date_ms        bigint   NOT NULL,
    summary        text     NOT NULL,
    body           text     NOT NULL,
    recommend      boolean  NOT NULL,
    reported       boolean  NOT NULL,
    reviewer_name  text     NOT NULL,
    reviewer_email text     NOT NULL,
    response       text,
    helpfulness    integer  NOT NULL
);

-- The primary keys are dropped now and built again after the data is in (indexes.sql step):
-- one sorted bulk build is several times faster than inserting 31 million keys one by one during
-- COPY. Their definitions are kept here, read from the catalog, so they come back exactly as
-- schema.sql declares them, under the same names.
CREATE TABLE reviews_load.primary_keys AS
SELECT c.conrelid::regclass AS tbl, c.conname AS name, pg_get_constraintdef(c.oid) AS def
  FROM pg_constraint c
 WHERE c.connamespace = 'reviews_load'::regnamespace AND c.contype = 'p';

DO $$
DECLARE k record;
BEGIN
    FOR k IN SELECT tbl, name FROM reviews_load.primary_keys LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', k.tbl, k.name);
    END LOOP;
END $$;
