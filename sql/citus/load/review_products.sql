-- Citus: every loaded review's product, by review id (sql/citus/distribute.sql says why), once
-- the staging reviews are in. Citus moves each row to the shard of its review id.
INSERT INTO reviews_load.review_products (review_id, product_id)
SELECT id, product_id FROM reviews_load.reviews
