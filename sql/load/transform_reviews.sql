-- Load step 4a: the served reviews, each with its photos as the JSON array its document embeds:
-- [{"id":1,"url":"..."},{"id":2,"url":"..."}] ordered by photo id, no spaces (json_build_object
-- would add some), '[]' when the review has none. `relevance` and `doc` are generated columns and
-- compute themselves on insert. Every row here passed the loader's checks: photos only reference
-- loaded reviews.
INSERT INTO reviews_load.reviews
       (id, product_id, rating, date_ms, summary, body, recommend, reported, reviewer_name,
        reviewer_email, response, helpfulness, photos)
SELECT r.id, r.product_id, r.rating, r.date_ms, r.summary, r.body, r.recommend, r.reported,
       r.reviewer_name, r.reviewer_email, r.response, r.helpfulness, coalesce(p.photos, '[]')
  FROM reviews_load.reviews_csv r
  LEFT JOIN (SELECT review_id,
                    '[' || string_agg('{"id":' || id || ',"url":' || to_json(url)::text || '}', ','
                                      ORDER BY id) || ']' AS photos
               FROM reviews_load.reviews_photos
              GROUP BY review_id) p ON p.review_id = r.id
