-- Citus: sql/load/copy_reviews_photos.sql with each photo's product id (its review's), the
-- distribution column the loader adds last.
COPY reviews_load.reviews_photos (id, review_id, url, product_id) FROM STDIN (FORMAT binary, FREEZE true)
