-- Citus: PUT helpful as one call of sql/citus/writes.sql's helpful_routed (why there): the
-- review's product by one single-shard lookup, then the vote on the product's shard.
--   $1 review_id
-- Returns the review's product id; NULL: unknown review.
SELECT public.helpful_routed($1::integer)
