-- Secondary indexes and the triggers on reviews (the primary keys are in schema.sql). Idempotent.
-- Run by migrate after schema.sql, and by load on the staging tables once they are filled (a bulk
-- build is far faster than maintaining an index row by row during COPY, and the COPY of millions
-- of reviews must not fire the triggers). The loader splits this file at each `;` and runs each
-- statement on the table named after its first ` ON `: keep statements free of `;` inside.

-- One partial index per sort of docs/api.md, each ending in id DESC (the final tie-breaker), so a page
-- reads exactly offset + count entries of the product's visible reviews in order and never sorts.
CREATE INDEX IF NOT EXISTS reviews_relevant ON reviews (product_id, relevance DESC, id DESC) WHERE NOT reported;
CREATE INDEX IF NOT EXISTS reviews_newest ON reviews (product_id, date_ms DESC, id DESC) WHERE NOT reported;
CREATE INDEX IF NOT EXISTS reviews_helpful ON reviews (product_id, helpfulness DESC, date_ms DESC, id DESC) WHERE NOT reported;

-- Lookups by parent: a review's photos and characteristic values (report subtracts them from
-- meta), a product's characteristics (POST checks them).
CREATE INDEX IF NOT EXISTS reviews_photos_review_id ON reviews_photos (review_id);
CREATE INDEX IF NOT EXISTS characteristics_product_id ON characteristics (product_id);
CREATE INDEX IF NOT EXISTS characteristic_reviews_review_id ON characteristic_reviews (review_id);

-- first_pages follows every change of reviews, in the writing transaction: schema.sql's
-- first_pages_refresh recomputes once per statement each product the statement touched (why it is
-- exact under concurrent writes is told there). One trigger per event, because a trigger with
-- transition tables fires on one event only.
CREATE OR REPLACE TRIGGER first_pages_insert AFTER INSERT ON reviews
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.first_pages_refresh();
CREATE OR REPLACE TRIGGER first_pages_update AFTER UPDATE ON reviews
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.first_pages_refresh();
CREATE OR REPLACE TRIGGER first_pages_delete AFTER DELETE ON reviews
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.first_pages_refresh();
