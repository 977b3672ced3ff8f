-- One row per product that has characteristics or reviews, counted by the loader while it checked
-- the files: ratings and recommended of the visible (not reported) reviews, the product's
-- characteristics by id with the sum and count of the visible reviews' values (0 and 0 when
-- none). `doc` is generated. sql/verify.sql recomputes the same counters from the tables.
COPY reviews_load.product_meta (product_id, ratings, recommended, char_ids, char_names, char_sums,
                                char_counts)
FROM STDIN (FORMAT binary, FREEZE true)
