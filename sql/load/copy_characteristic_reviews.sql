COPY reviews_load.characteristic_reviews (id, characteristic_id, review_id, value)
FROM STDIN (FORMAT binary, FREEZE true)
