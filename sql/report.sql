-- PUT /reviews/:review_id/report: hide the review and take it out of its product's meta, in one
-- statement. `AND NOT reported` makes a second report (even a concurrent one, which waits for the
-- first and then re-checks the row) change nothing, so meta is changed exactly once.
--   $1 review_id
-- Returns the review's product id; no row: unknown review.
WITH hidden AS (
    UPDATE reviews SET reported = true
     WHERE id = $1::integer AND NOT reported
    RETURNING id, product_id, rating, recommend
), hidden_values AS (
    SELECT cr.characteristic_id AS id, cr.value
      FROM hidden h JOIN characteristic_reviews cr ON cr.review_id = h.id
), update_meta AS (
    UPDATE product_meta m SET
        ratings[h.rating] = m.ratings[h.rating] - 1,
        recommended[1 + h.recommend::integer] = m.recommended[1 + h.recommend::integer] - 1,
        char_sums = ARRAY(SELECT u.s - coalesce(v.value, 0)
                            FROM unnest(m.char_ids, m.char_sums) WITH ORDINALITY AS u(id, s, ord)
                            LEFT JOIN hidden_values v USING (id) ORDER BY u.ord),
        char_counts = ARRAY(SELECT u.n - (v.value IS NOT NULL)::integer
                              FROM unnest(m.char_ids, m.char_counts) WITH ORDINALITY AS u(id, n, ord)
                              LEFT JOIN hidden_values v USING (id) ORDER BY u.ord)
      FROM hidden h
     WHERE m.product_id = h.product_id
)
SELECT r.product_id
  FROM reviews r CROSS JOIN LATERAL pg_notify('reviews_changed', r.product_id::text)
 WHERE r.id = $1::integer
