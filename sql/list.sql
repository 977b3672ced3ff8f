-- GET /reviews: one page of a product's visible reviews, as the finished JSON document.
--   $1 product_id  $2 sort ('relevant' | 'newest' | 'helpful')  $3 count
--   $4 page, zero-based (echoed)  $5 offset = page * count (computed by the caller, saturating)
--
-- One branch per sort; the `$2 = '...'` conditions are one-time filters, so only the requested
-- branch runs, and it reads offset + count entries of its partial index in order (no sort).
-- Each review's JSON is stored (reviews.doc), so the page is a concatenation of stored strings.
-- string_agg keeps the order of its input: the branches are not interleaved by Append.
SELECT '{"product":"' || $1::integer || '","page":' || $4::bigint || ',"count":' || $3::integer
    || ',"results":[' || coalesce(string_agg(page.doc, ','), '') || ']}'
FROM (
    (SELECT doc FROM reviews
      WHERE $2::text = 'relevant' AND product_id = $1 AND NOT reported
      ORDER BY relevance DESC, id DESC
      LIMIT $3 OFFSET $5::bigint)
    UNION ALL
    (SELECT doc FROM reviews
      WHERE $2::text = 'newest' AND product_id = $1 AND NOT reported
      ORDER BY date_ms DESC, id DESC
      LIMIT $3 OFFSET $5::bigint)
    UNION ALL
    (SELECT doc FROM reviews
      WHERE $2::text = 'helpful' AND product_id = $1 AND NOT reported
      ORDER BY helpfulness DESC, date_ms DESC, id DESC
      LIMIT $3 OFFSET $5::bigint)
) AS page
