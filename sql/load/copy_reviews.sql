-- The loader has checked every row and built each review's `photos` JSON (its photos by id,
-- from reviews_photos.csv); `relevance` and `doc` are generated columns and compute themselves.
COPY reviews_load.reviews (id, product_id, rating, date_ms, summary, body, recommend, reported,
                           reviewer_name, reviewer_email, response, helpfulness, photos)
FROM STDIN (FORMAT binary, FREEZE true)
