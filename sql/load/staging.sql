-- Load step 1: an empty staging schema. A previous load that was interrupted may have left one;
-- nothing in it is worth keeping. The served tables in public are not touched until the swap.
-- Next the loader runs sql/schema.sql with search_path = reviews_load, so the staging tables are
-- built from the very definitions that are served (its functions are qualified with public).
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS reviews_load CASCADE;
CREATE SCHEMA reviews_load;
