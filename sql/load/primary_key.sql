-- Load step 4: the statement that builds again the primary key of one staging table ($1, for
-- example 'reviews_load.reviews'), as prepare.sql saved it. The loader runs the statement this
-- returns once the table is filled, then that table's indexes from sql/indexes.sql.
SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', tbl, name, def)
  FROM reviews_load.primary_keys
 WHERE tbl = $1::text::regclass
