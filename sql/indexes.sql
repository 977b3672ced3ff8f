-- Secondary indexes (the primary keys are in schema.sql). Idempotent. Run by migrate after
-- schema.sql, and by load on the staging tables once they are filled (a bulk build is far faster
-- than maintaining an index row by row during COPY).

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
