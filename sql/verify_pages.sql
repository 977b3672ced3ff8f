-- reviews-api verify, the stored first pages: every first_pages row recomputed from the raw
-- tables (the visible reviews ranked in each sort's order by window functions, not read through
-- the sort indexes as the trigger and the loader do) and compared. Returns the rows that differ
-- (the first $1 of them, by product and sort), each side described as the text of its stored
-- page, and how many differ in all.
--   $1 how many differences to return
-- A product without a row is not a difference: sql/list.sql then answers through the sort
-- indexes (a database migrated from before first_pages has none until `reviews-api load`). A row
-- of a product with no visible review must be whole and empty.
WITH ranked AS (
    SELECT product_id, sort, id, n
      FROM (SELECT product_id, 'r'::"char" AS sort, id,
                   row_number() OVER (PARTITION BY product_id ORDER BY relevance DESC, id DESC) AS n
              FROM reviews WHERE NOT reported
            UNION ALL
            SELECT product_id, 'n'::"char", id,
                   row_number() OVER (PARTITION BY product_id ORDER BY date_ms DESC, id DESC)
              FROM reviews WHERE NOT reported
            UNION ALL
            SELECT product_id, 'h'::"char", id,
                   row_number() OVER (PARTITION BY product_id
                                      ORDER BY helpfulness DESC, date_ms DESC, id DESC)
              FROM reviews WHERE NOT reported) AS all_ranked
     WHERE n <= public.first_page_size() + 1
), expected AS (
    SELECT k.product_id, k.sort,
           max(k.n) <= public.first_page_size() AS whole,
           coalesce(array_agg(r.doc ORDER BY k.n) FILTER (WHERE k.n <= public.first_page_size()),
                    '{}') AS docs
      FROM ranked k JOIN reviews r ON r.id = k.id
     GROUP BY k.product_id, k.sort
), differences AS (
    SELECT a.product_id, a.sort,
           coalesce(e.whole, true) AS expected_whole, coalesce(e.docs, '{}') AS expected_docs,
           a.whole AS actual_whole, a.docs AS actual_docs
      FROM first_pages a LEFT JOIN expected e USING (product_id, sort)
     WHERE (coalesce(e.whole, true), coalesce(e.docs, '{}')) IS DISTINCT FROM (a.whole, a.docs)
)
SELECT product_id,
       format('first page (%s, %s): [%s]',
              CASE sort WHEN 'r' THEN 'relevant' WHEN 'n' THEN 'newest' ELSE 'helpful' END,
              CASE WHEN expected_whole THEN 'whole list' ELSE 'first ' || public.first_page_size() END,
              array_to_string(expected_docs, ',')) AS expected,
       format('first page (%s, %s): [%s]',
              CASE sort WHEN 'r' THEN 'relevant' WHEN 'n' THEN 'newest' ELSE 'helpful' END,
              CASE WHEN actual_whole THEN 'whole list' ELSE 'first ' || public.first_page_size() END,
              array_to_string(actual_docs, ',')) AS actual,
       count(*) OVER () AS total
  FROM differences
 ORDER BY product_id, sort
 LIMIT $1
