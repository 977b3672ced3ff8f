-- GET /reviews/meta: the product's finished meta document, kept exact by every write
-- (product_meta.doc is generated from the counters). A product with no row has no data at all,
-- which docs/api.md answers with empty objects rather than an error.
--   $1 product_id
SELECT coalesce(
    (SELECT doc FROM product_meta WHERE product_id = $1::integer),
    '{"product_id":"' || $1::integer || '","ratings":{},"recommended":{},"characteristics":{}}')
