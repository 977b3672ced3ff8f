-- Citus: the three writes as functions the coordinator runs, one call (one statement, one
-- transaction) per request: sql/citus/post_review.sql, helpful.sql and report.sql call them.
-- Applied by migrate after sql/citus/distribute.sql, on the coordinator only.
--
-- Why functions, where plain PostgreSQL runs sql/post_review.sql and friends as they are: a
-- statement that Citus routes to one shard runs whole on the product's node, so its nextval and
-- its pg_notify would run there too, where the instances do not LISTEN and where an integer
-- sequence cannot hand out ids. Here the coordinator draws the ids and NOTIFYs (delivered at
-- commit, as on plain PostgreSQL), and every statement inside names the product: each is a
-- single-shard statement on the product's node, so the transaction writes to that node only.
-- Meta stays exact as on plain PostgreSQL: each write changes the product's product_meta row with
-- one single-row statement, whose row lock serialises concurrent writers of the product; the
-- first_pages trigger (sql/indexes.sql) runs on the product's node.

-- A product's characteristic sums (or counts: p_values NULL counts one per given id) with the
-- given values added (p_sign 1) or taken away (-1), by characteristic id, in the order of p_ids.
-- IMMUTABLE: Citus evaluates it on the node, on the row it updates.
CREATE OR REPLACE FUNCTION public.meta_values(
    p_ids integer[], p_current bigint[], p_given_ids integer[], p_given integer[], p_sign integer)
RETURNS bigint[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(u.s + p_sign * coalesce(g.v, 0) ORDER BY u.ord), '{}')
      FROM unnest(p_ids, p_current) WITH ORDINALITY AS u(id, s, ord)
      LEFT JOIN unnest(p_given_ids, p_given) AS g(id, v) USING (id)
$$;

CREATE OR REPLACE FUNCTION public.meta_counts(
    p_ids integer[], p_current integer[], p_given_ids integer[], p_sign integer)
RETURNS integer[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(u.n + p_sign * (g.id IS NOT NULL)::integer ORDER BY u.ord), '{}')
      FROM unnest(p_ids, p_current) WITH ORDINALITY AS u(id, n, ord)
      LEFT JOIN unnest(p_given_ids) AS g(id) USING (id)
$$;

-- POST /reviews, as sql/post_review.sql: the new review id, or NULL when the characteristics do
-- not rate exactly the product's (then nothing changes, not even a sequence).
CREATE OR REPLACE FUNCTION public.post_review_routed(
    p_product_id integer, p_rating integer, p_summary text, p_body text, p_recommend boolean,
    p_name text, p_email text, p_photos text[], p_char_ids integer[], p_char_values integer[])
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    chars integer[];
    names text[];
    shard bigint;
    new_id integer;
    photo_ids integer[];
    photos text;
    ratings integer[];
    sums bigint[];
BEGIN
    SELECT coalesce(array_agg(c.id ORDER BY c.id), '{}'), coalesce(array_agg(c.name ORDER BY c.id), '{}')
      INTO chars, names
      FROM public.characteristics c WHERE c.product_id = p_product_id;
    IF chars <> ARRAY(SELECT i FROM unnest(p_char_ids) AS i ORDER BY i) THEN
        RETURN NULL;
    END IF;
    -- An id from the one sequence whose review_products row lands on the product's shard (the
    -- ids skipped are never used): review ids stay unique, and this write touches one shard.
    shard := get_shard_id_for_distribution_column('public.reviews', p_product_id);
    LOOP
        new_id := nextval(pg_get_serial_sequence('public.reviews', 'id'));
        EXIT WHEN get_shard_id_for_distribution_column('public.reviews', new_id) = shard;
    END LOOP;
    -- Photo ids in the order the client listed the photos, so "ordered by id" keeps it.
    -- (Values are computed into variables first: Citus takes no subquery inside INSERT ... VALUES.)
    photo_ids := ARRAY(SELECT nextval(pg_get_serial_sequence('public.reviews_photos', 'id'))::integer
                         FROM generate_series(1, coalesce(cardinality(p_photos), 0)));
    photos := coalesce((SELECT '[' || string_agg('{"id":' || p.id || ',"url":' || to_json(p.url)::text || '}',
                                                 ',' ORDER BY p.id) || ']'
                          FROM unnest(photo_ids, p_photos) AS p(id, url)), '[]');
    INSERT INTO public.reviews (id, product_id, rating, date_ms, summary, body, recommend,
                                reviewer_name, reviewer_email, photos)
    VALUES (new_id, p_product_id, p_rating, (extract(epoch FROM now()) * 1000)::bigint, p_summary,
            p_body, p_recommend, p_name, p_email, photos);
    IF cardinality(photo_ids) > 0 THEN
        INSERT INTO public.reviews_photos (id, product_id, review_id, url)
        SELECT p.id, p_product_id, new_id, p.url FROM unnest(photo_ids, p_photos) AS p(id, url);
    END IF;
    IF cardinality(chars) > 0 THEN
        INSERT INTO public.characteristic_reviews (id, product_id, characteristic_id, review_id, value)
        SELECT nextval(pg_get_serial_sequence('public.characteristic_reviews', 'id')),
               p_product_id, c.id, new_id, c.v::smallint
          FROM unnest(p_char_ids, p_char_values) AS c(id, v);
    END IF;
    INSERT INTO public.review_products (review_id, product_id) VALUES (new_id, p_product_id);
    -- The INSERT arm runs only for a product without a row yet (as in sql/post_review.sql).
    ratings := array_fill(0, ARRAY[5]);
    ratings[p_rating] := 1;
    sums := ARRAY(SELECT c.v::bigint FROM unnest(p_char_ids, p_char_values) AS c(id, v) ORDER BY c.id);
    INSERT INTO public.product_meta AS m (product_id, ratings, recommended, char_ids, char_names,
                                          char_sums, char_counts)
    VALUES (p_product_id, ratings, ARRAY[(NOT p_recommend)::integer, p_recommend::integer],
            chars, names, sums,
            array_fill(1, ARRAY[cardinality(chars)]))
    ON CONFLICT (product_id) DO UPDATE SET
        ratings[p_rating] = m.ratings[p_rating] + 1,
        recommended[1 + p_recommend::integer] = m.recommended[1 + p_recommend::integer] + 1,
        char_sums = public.meta_values(m.char_ids, m.char_sums, p_char_ids, p_char_values, 1),
        char_counts = public.meta_counts(m.char_ids, m.char_counts, p_char_ids, 1);
    PERFORM pg_notify('reviews_changed', p_product_id::text);
    RETURN new_id;
END
$$;

-- The product of a review: one single-shard lookup by review id.
CREATE OR REPLACE FUNCTION public.review_product(p_review_id integer)
RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT product_id FROM public.review_products WHERE review_id = p_review_id
$$;

-- PUT helpful, as sql/helpful.sql: the review's product id, or NULL for an unknown review.
CREATE OR REPLACE FUNCTION public.helpful_routed(p_review_id integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    p integer := public.review_product(p_review_id);
BEGIN
    UPDATE public.reviews SET helpfulness = helpfulness + 1
     WHERE product_id = p AND id = p_review_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('reviews_changed', p::text);
    RETURN p;
END
$$;

-- PUT report, as sql/report.sql: hidden and out of meta once (a second report changes nothing);
-- the review's product id, or NULL for an unknown review.
CREATE OR REPLACE FUNCTION public.report_routed(p_review_id integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    p integer := public.review_product(p_review_id);
    hidden record;
    value_ids integer[];
    value_values integer[];
BEGIN
    IF p IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE public.reviews SET reported = true
     WHERE product_id = p AND id = p_review_id AND NOT reported
    RETURNING rating, recommend INTO hidden;
    IF FOUND THEN
        SELECT coalesce(array_agg(cr.characteristic_id), '{}'), coalesce(array_agg(cr.value::integer), '{}')
          INTO value_ids, value_values
          FROM public.characteristic_reviews cr
         WHERE cr.product_id = p AND cr.review_id = p_review_id;
        UPDATE public.product_meta m SET
            ratings[hidden.rating] = m.ratings[hidden.rating] - 1,
            recommended[1 + hidden.recommend::integer] = m.recommended[1 + hidden.recommend::integer] - 1,
            char_sums = public.meta_values(m.char_ids, m.char_sums, value_ids, value_values, -1),
            char_counts = public.meta_counts(m.char_ids, m.char_counts, value_ids, -1)
         WHERE m.product_id = p;
    END IF;
    PERFORM pg_notify('reviews_changed', p::text);
    RETURN p;
END
$$;
