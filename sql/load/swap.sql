-- Load step 5: the swap, run by the loader inside ONE transaction with a short lock_timeout (it
-- retries when readers hold the tables): either all of this happens or none of it. Dropping the
-- served tables drops their identity sequences (and the triggers on reviews); the staging tables
-- take their indexes, constraints, triggers (sql/indexes.sql's, on reviews, created after the
-- COPY) and own identity sequences with them into public.
DROP TABLE IF EXISTS public.reviews, public.reviews_photos, public.characteristics,
                     public.characteristic_reviews, public.product_meta, public.first_pages,
                     public.review_products;

ALTER TABLE reviews_load.reviews SET SCHEMA public;
ALTER TABLE reviews_load.reviews_photos SET SCHEMA public;
ALTER TABLE reviews_load.characteristics SET SCHEMA public;
ALTER TABLE reviews_load.characteristic_reviews SET SCHEMA public;
ALTER TABLE reviews_load.product_meta SET SCHEMA public;
ALTER TABLE reviews_load.first_pages SET SCHEMA public;
-- Citus only (sql/citus/distribute.sql): a review's product by review id.
ALTER TABLE IF EXISTS reviews_load.review_products SET SCHEMA public;

-- New rows written through the API get ids above the loaded ones (1 when a table is empty).
SELECT setval(pg_get_serial_sequence('public.reviews', 'id'), coalesce(max(id), 0) + 1, false)
  FROM public.reviews;
SELECT setval(pg_get_serial_sequence('public.reviews_photos', 'id'), coalesce(max(id), 0) + 1, false)
  FROM public.reviews_photos;
SELECT setval(pg_get_serial_sequence('public.characteristics', 'id'), coalesce(max(id), 0) + 1, false)
  FROM public.characteristics;
SELECT setval(pg_get_serial_sequence('public.characteristic_reviews', 'id'), coalesce(max(id), 0) + 1, false)
  FROM public.characteristic_reviews;

DROP SCHEMA reviews_load CASCADE;

-- Every running instance retires all its cached bodies when this commits (a payload that is not
-- a product id means "everything"; see src/cache/listen.rs).
NOTIFY reviews_changed, 'load';
