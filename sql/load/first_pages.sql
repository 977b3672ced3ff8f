-- Load step 4b, once the staging reviews have their sort indexes and statistics: the stored
-- first pages of one sort ($1: 'r' relevant, 'n' newest, 'h' helpful) of every product. The
-- loader runs it once per sort, the three spread over its two connections.
-- Every product with reviews has a product_meta row (the loader makes one for every product with
-- characteristics or reviews), so this reads, per product, the first K + 1 entries of the sort's
-- index: K to store and one more to know whether they are the whole list, exactly as schema.sql's
-- trigger function first_pages_refresh does after a write. The CASE runs only the requested
-- sort's subquery. Most of the time goes into compressing the rows (sql/README.md). The
-- subqueries sit in the select list, not in a LATERAL (SELECT CASE ...): Citus pushes this form
-- down to every shard as it is, and refuses a correlated subquery beside a FROM-less one.
INSERT INTO reviews_load.first_pages (product_id, sort, whole, docs)
SELECT p.product_id, $1::text::"char",
       cardinality(p.docs) <= public.first_page_size(), p.docs[1:public.first_page_size()]
  FROM (SELECT m.product_id,
               CASE $1::text
                   WHEN 'r' THEN ARRAY(SELECT r.doc FROM reviews_load.reviews r
                                        WHERE r.product_id = m.product_id AND NOT r.reported
                                        ORDER BY r.relevance DESC, r.id DESC
                                        LIMIT public.first_page_size() + 1)
                   WHEN 'n' THEN ARRAY(SELECT r.doc FROM reviews_load.reviews r
                                        WHERE r.product_id = m.product_id AND NOT r.reported
                                        ORDER BY r.date_ms DESC, r.id DESC
                                        LIMIT public.first_page_size() + 1)
                   WHEN 'h' THEN ARRAY(SELECT r.doc FROM reviews_load.reviews r
                                        WHERE r.product_id = m.product_id AND NOT r.reported
                                        ORDER BY r.helpfulness DESC, r.date_ms DESC, r.id DESC
                                        LIMIT public.first_page_size() + 1)
               END AS docs
          FROM reviews_load.product_meta m) AS p
