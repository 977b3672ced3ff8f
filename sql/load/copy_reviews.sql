COPY reviews_load.reviews_csv (id, product_id, rating, date_ms, summary, body, recommend, reported,
                               reviewer_name, reviewer_email, response, helpfulness)
FROM STDIN (FORMAT binary, FREEZE true)
