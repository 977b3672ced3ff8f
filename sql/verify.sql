-- reviews-api verify: recompute every product's meta from the raw tables and compare it with the
-- precomputed product_meta. Returns the products that differ (the first $1 of them, by id) with
-- the document each side would serve, and how many differ in all.
--   $1 how many differences to return
-- A product without a product_meta row is the same as one whose row is all zeros and lists no
-- characteristics: both serve empty objects.
WITH visible AS (
    SELECT id, product_id, rating, recommend FROM reviews WHERE NOT reported
), counts AS (
    SELECT product_id,
           ARRAY[count(*) FILTER (WHERE rating = 1), count(*) FILTER (WHERE rating = 2),
                 count(*) FILTER (WHERE rating = 3), count(*) FILTER (WHERE rating = 4),
                 count(*) FILTER (WHERE rating = 5)]::integer[] AS ratings,
           ARRAY[count(*) FILTER (WHERE NOT recommend),
                 count(*) FILTER (WHERE recommend)]::integer[] AS recommended
      FROM visible
     GROUP BY product_id
), char_values AS (
    SELECT cr.characteristic_id, sum(cr.value)::bigint AS s, count(*)::integer AS n
      FROM characteristic_reviews cr JOIN visible v ON v.id = cr.review_id
     GROUP BY cr.characteristic_id
), chars AS (
    SELECT c.product_id,
           array_agg(c.id ORDER BY c.id) AS ids,
           array_agg(c.name ORDER BY c.id) AS names,
           array_agg(coalesce(cv.s, 0) ORDER BY c.id) AS sums,
           array_agg(coalesce(cv.n, 0) ORDER BY c.id) AS counts
      FROM characteristics c LEFT JOIN char_values cv ON cv.characteristic_id = c.id
     GROUP BY c.product_id
), expected AS (
    SELECT product_id,
           coalesce(k.ratings, '{0,0,0,0,0}') AS ratings,
           coalesce(k.recommended, '{0,0}') AS recommended,
           coalesce(ch.ids, '{}') AS char_ids,
           coalesce(ch.names, '{}') AS char_names,
           coalesce(ch.sums, '{}') AS char_sums,
           coalesce(ch.counts, '{}') AS char_counts
      FROM counts k FULL JOIN chars ch USING (product_id)
), actual AS (
    SELECT product_id, ratings, recommended, char_ids, char_names, char_sums, char_counts
      FROM product_meta
), differences AS (
    SELECT product_id,
           public.meta_doc(product_id,
                           coalesce(e.ratings, '{0,0,0,0,0}'), coalesce(e.recommended, '{0,0}'),
                           coalesce(e.char_ids, '{}'), coalesce(e.char_names, '{}'),
                           coalesce(e.char_sums, '{}'), coalesce(e.char_counts, '{}')) AS expected,
           public.meta_doc(product_id,
                           coalesce(a.ratings, '{0,0,0,0,0}'), coalesce(a.recommended, '{0,0}'),
                           coalesce(a.char_ids, '{}'), coalesce(a.char_names, '{}'),
                           coalesce(a.char_sums, '{}'), coalesce(a.char_counts, '{}')) AS actual
      FROM expected e FULL JOIN actual a USING (product_id)
     WHERE (coalesce(e.ratings, '{0,0,0,0,0}'), coalesce(e.recommended, '{0,0}'),
            coalesce(e.char_ids, '{}'), coalesce(e.char_names, '{}'),
            coalesce(e.char_sums, '{}'), coalesce(e.char_counts, '{}'))
           IS DISTINCT FROM
           (coalesce(a.ratings, '{0,0,0,0,0}'), coalesce(a.recommended, '{0,0}'),
            coalesce(a.char_ids, '{}'), coalesce(a.char_names, '{}'),
            coalesce(a.char_sums, '{}'), coalesce(a.char_counts, '{}'))
)
SELECT product_id, expected, actual, count(*) OVER () AS total
  FROM differences
 ORDER BY product_id
 LIMIT $1
