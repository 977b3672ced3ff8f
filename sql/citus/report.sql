-- Citus: PUT report as one call of sql/citus/writes.sql's report_routed (why there): the
-- review's product by one single-shard lookup, then the report on the product's shard.
--   $1 review_id
-- Returns the review's product id; NULL: unknown review.
SELECT public.report_routed($1::integer)
