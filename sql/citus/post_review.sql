-- Citus: POST /reviews as one call of sql/citus/writes.sql's post_review_routed (why there).
--   $1 product_id  $2 rating  $3 summary  $4 body  $5 recommend  $6 reviewer_name  $7 email
--   $8 photo urls (text[])  $9 characteristic ids (integer[], distinct)  $10 their values
-- Returns the new review id, or NULL when the characteristics are not exactly the product's.
SELECT public.post_review_routed($1::integer, $2::integer, $3::text, $4::text, $5::boolean, $6::text,
                                 $7::text, $8::text[], $9::integer[], $10::integer[])
