-- Load step 5a: the primary keys dropped by prepare.sql, built again in bulk, same names and
-- definitions. Then the loader runs sql/indexes.sql with search_path = reviews_load.
DO $$
DECLARE k record;
BEGIN
    FOR k IN SELECT tbl, name, def FROM reviews_load.primary_keys LOOP
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', k.tbl, k.name, k.def);
    END LOOP;
END $$;
