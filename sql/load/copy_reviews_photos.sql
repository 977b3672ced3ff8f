COPY reviews_load.reviews_photos (id, review_id, url) FROM STDIN (FORMAT binary, FREEZE true)
