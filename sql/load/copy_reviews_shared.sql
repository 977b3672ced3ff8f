-- The rest of the reviews, once the other connection is free to compute documents too: both
-- connections run this side by side (see src/etl/load.rs). Without FREEZE, which needs the
-- table emptied in the same transaction; VACUUM sets these pages all-visible before the swap.
COPY reviews_load.reviews (id, product_id, rating, date_ms, summary, body, recommend, reported,
                           reviewer_name, reviewer_email, response, helpfulness, photos)
FROM STDIN (FORMAT binary)
