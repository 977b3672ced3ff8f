-- Load step 4b: one product_meta row per product that has characteristics or reviews.
-- Reported reviews count nowhere: not in ratings, not in recommended, not in the characteristic
-- sums and counts. Arrays are aligned by position and ordered by characteristic id; a
-- characteristic no visible review rated has sum 0 and count 0.
-- Reads reviews_csv (narrower than reviews, which carries the documents).
INSERT INTO reviews_load.product_meta
       (product_id, ratings, recommended, char_ids, char_names, char_sums, char_counts)
WITH visible AS (
    SELECT product_id,
           ARRAY[count(*) FILTER (WHERE rating = 1), count(*) FILTER (WHERE rating = 2),
                 count(*) FILTER (WHERE rating = 3), count(*) FILTER (WHERE rating = 4),
                 count(*) FILTER (WHERE rating = 5)]::integer[] AS ratings,
           ARRAY[count(*) FILTER (WHERE NOT recommend),
                 count(*) FILTER (WHERE recommend)]::integer[] AS recommended
      FROM reviews_load.reviews_csv
     WHERE NOT reported
     GROUP BY product_id
),
reported AS (
    SELECT id FROM reviews_load.reviews_csv WHERE reported
),
rated AS (
    SELECT v.characteristic_id, sum(v.value)::bigint AS s, count(*)::integer AS n
      FROM reviews_load.characteristic_reviews v
     WHERE NOT EXISTS (SELECT 1 FROM reported x WHERE x.id = v.review_id)
     GROUP BY v.characteristic_id
),
chars AS (
    SELECT c.product_id,
           array_agg(c.id ORDER BY c.id) AS ids,
           array_agg(c.name ORDER BY c.id) AS names,
           array_agg(coalesce(r.s, 0) ORDER BY c.id) AS sums,
           array_agg(coalesce(r.n, 0) ORDER BY c.id) AS counts
      FROM reviews_load.characteristics c
      LEFT JOIN rated r ON r.characteristic_id = c.id
     GROUP BY c.product_id
)
SELECT coalesce(v.product_id, c.product_id),
       coalesce(v.ratings, '{0,0,0,0,0}'), coalesce(v.recommended, '{0,0}'),
       coalesce(c.ids, '{}'), coalesce(c.names, '{}'), coalesce(c.sums, '{}'), coalesce(c.counts, '{}')
  FROM visible v
  FULL JOIN chars c ON c.product_id = v.product_id
