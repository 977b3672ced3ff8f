-- Citus: sql/load/copy_characteristic_reviews.sql with each value's product id (its review's),
-- the distribution column the loader adds last.
COPY reviews_load.characteristic_reviews (id, characteristic_id, review_id, value, product_id)
FROM STDIN (FORMAT binary, FREEZE true)
