-- GET /reviews: one page of a product's visible reviews, as the finished JSON document.
--   $1 product_id  $2 sort ('relevant' | 'newest' | 'helpful')  $3 count
--   $4 page, zero-based (echoed)  $5 offset = page * count (computed by the caller, saturating)
--
-- Two ways to the same bytes, the first that answers wins (coalesce evaluates lazily):
--
-- 1. The stored first pages (first_pages, schema.sql): when the page lies within the first
--    K = first_page_size() reviews ($5 + $3 <= K, written so that no addition can overflow), or
--    the row holds the product's whole list, the page is a slice of the stored array joined with
--    ',': one primary-key lookup, like meta. A slice past the end is empty, and array_to_string of
--    it is '' (not NULL), so "no reviews there" is an answer too. No row, or a page beyond the
--    stored ones: NULL, and on to 2. least($5, K) keeps the subscripts within integer: when it
--    differs from $5, the row is whole (at most K reviews) and the slice is empty anyway.
--
-- 2. Through the sort indexes (schema.sql's page_from_indexes, called only when 1 is NULL): it
--    reads offset + count entries of the requested sort's partial index in order (no sort) and
--    joins their stored documents; NULL when there are none.
--
-- Both join the same stored strings (reviews.doc) with ',' in the same order: same bytes.
SELECT '{"product":"' || $1::integer || '","page":' || $4::bigint || ',"count":' || $3::integer
    || ',"results":[' || coalesce(
        (SELECT array_to_string(
                    f.docs[least($5::bigint, public.first_page_size())::integer + 1
                           : least($5::bigint, public.first_page_size())::integer + $3::integer],
                    ',')
           FROM first_pages f
          WHERE f.product_id = $1::integer
            AND f.sort = substr($2::text, 1, 1)::"char"  -- the sort's initial, as stored
            AND (f.whole OR $5::bigint <= public.first_page_size() - $3::integer)),
        public.page_from_indexes($1::integer, $2::text, $3::integer, $5::bigint),
        '') || ']}'
