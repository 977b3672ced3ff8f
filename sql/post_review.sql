-- POST /reviews: the review, its photos, its characteristic values and the product's meta, in
-- one statement (one transaction): all or nothing.
--   $1 product_id  $2 rating  $3 summary  $4 body  $5 recommend  $6 reviewer_name  $7 email
--   $8 photo urls (text[])  $9 characteristic ids (integer[], distinct)  $10 their values
-- Returns the new review id, or NULL when the characteristics do not rate exactly the product's
-- characteristics. That check reads the database inside this statement, and every change below
-- depends on it, so a rejected review changes nothing (not even a sequence).
--
-- Meta stays exact under concurrency: the product's product_meta row is changed by one
-- INSERT ... ON CONFLICT DO UPDATE, which locks the row and adds to its latest committed counters.
WITH input_chars AS (
    SELECT id, value FROM unnest($9::integer[], $10::integer[]) AS c(id, value)
), product_chars AS (
    SELECT id, name FROM characteristics WHERE product_id = $1::integer
), new_review AS (
    SELECT nextval(pg_get_serial_sequence('reviews', 'id'))::integer AS id
     WHERE (SELECT count(*) FROM input_chars) = (SELECT count(*) FROM product_chars)
       AND NOT EXISTS (SELECT 1 FROM input_chars i
                        WHERE i.id NOT IN (SELECT p.id FROM product_chars p))
), new_photos AS (
    -- Ids are drawn in the order the client listed the photos, so "ordered by id" keeps it.
    SELECT nextval(pg_get_serial_sequence('reviews_photos', 'id'))::integer AS id, p.url
      FROM new_review, unnest($8::text[]) WITH ORDINALITY AS p(url, ord)
     ORDER BY p.ord
), insert_review AS (
    INSERT INTO reviews (id, product_id, rating, date_ms, summary, body, recommend,
                         reviewer_name, reviewer_email, photos)
    SELECT r.id, $1::integer, $2::smallint, (extract(epoch FROM now()) * 1000)::bigint,
           $3::text, $4::text, $5::boolean, $6::text, $7::text,
           coalesce((SELECT '[' || string_agg('{"id":' || p.id || ',"url":' || to_json(p.url)::text || '}',
                                              ',' ORDER BY p.id) || ']'
                       FROM new_photos p), '[]')
      FROM new_review r
), insert_photos AS (
    INSERT INTO reviews_photos (id, review_id, url)
    SELECT p.id, r.id, p.url FROM new_review r, new_photos p
), insert_values AS (
    INSERT INTO characteristic_reviews (characteristic_id, review_id, value)
    SELECT i.id, r.id, i.value::smallint FROM new_review r, input_chars i
), update_meta AS (
    -- The INSERT arm runs only for a product without a row yet (one with no characteristics and
    -- no loaded reviews); the loader makes a row for every product with characteristics.
    INSERT INTO product_meta AS m (product_id, ratings, recommended, char_ids, char_names,
                                   char_sums, char_counts)
    SELECT $1::integer,
           ARRAY(SELECT (g = $2::integer)::integer FROM generate_series(1, 5) AS g),
           ARRAY[(NOT $5::boolean)::integer, $5::boolean::integer],
           coalesce(array_agg(p.id ORDER BY p.id) FILTER (WHERE p.id IS NOT NULL), '{}'),
           coalesce(array_agg(p.name ORDER BY p.id) FILTER (WHERE p.id IS NOT NULL), '{}'),
           coalesce(array_agg(i.value::bigint ORDER BY p.id) FILTER (WHERE p.id IS NOT NULL), '{}'),
           coalesce(array_agg(1 ORDER BY p.id) FILTER (WHERE p.id IS NOT NULL), '{}')
      FROM new_review r
      LEFT JOIN (product_chars p JOIN input_chars i USING (id)) ON true
     GROUP BY r.id
    ON CONFLICT (product_id) DO UPDATE SET
        ratings[$2::integer] = m.ratings[$2::integer] + 1,
        recommended[1 + $5::boolean::integer] = m.recommended[1 + $5::boolean::integer] + 1,
        char_sums = ARRAY(SELECT u.s + coalesce(i.value, 0)
                            FROM unnest(m.char_ids, m.char_sums) WITH ORDINALITY AS u(id, s, ord)
                            LEFT JOIN input_chars i USING (id) ORDER BY u.ord),
        char_counts = ARRAY(SELECT u.n + (i.value IS NOT NULL)::integer
                              FROM unnest(m.char_ids, m.char_counts) WITH ORDINALITY AS u(id, n, ord)
                              LEFT JOIN input_chars i USING (id) ORDER BY u.ord)
)
-- NOTIFY is delivered at commit, so other instances drop their cached copy of this product only
-- once the new review is visible to them.
SELECT r.id FROM new_review r CROSS JOIN LATERAL pg_notify('reviews_changed', $1::integer::text)
