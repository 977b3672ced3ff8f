-- Load step 4: how to build again the primary key of one staging table ($1, for example
-- 'reviews_load.reviews'), as prepare.sql saved it: first its unique index (a plain CREATE
-- INDEX, which can run beside the table's other index builds), then, once the table's indexes
-- are built, the statement that makes that index the primary key again (no second build).
SELECT index_def,
       format('ALTER TABLE %s ADD CONSTRAINT %I PRIMARY KEY USING INDEX %I', tbl, name, name)
  FROM reviews_load.primary_keys
 WHERE tbl = $1::text::regclass
