-- PUT /reviews/:review_id/helpful: one more helpful vote. An atomic increment, so concurrent
-- votes all count; `relevance`, `doc` and the sort indexes follow by themselves.
--   $1 review_id
-- Returns the review's product id (whose cached pages are now stale); no row: unknown review.
WITH voted AS (
    UPDATE reviews SET helpfulness = helpfulness + 1 WHERE id = $1::integer RETURNING product_id
)
SELECT v.product_id FROM voted v CROSS JOIN LATERAL pg_notify('reviews_changed', v.product_id::text)
