-- Citus: the tables of sql/schema.sql distributed by product_id (docs/scaling.md), run by migrate
-- and load after schema.sql and before sql/indexes.sql, only where the citus extension is
-- installed. Idempotent: a table already distributed is left as it is. The names are unqualified,
-- like schema.sql's, so `reviews-api load` runs this same file with search_path = reviews_load.
--
-- Citus puts every row of one distribution value on one shard, and every table created with the
-- default colocation (same shard count, same column type) on the same nodes shard by shard: all
-- of a product's rows, in every table, live on one node, and each sql/ statement about one
-- product is a single-shard (router) statement there. Its unique keys must include the
-- distribution column: (product_id, id) instead of id, and the two child tables carry the
-- product_id they lacked (copied from the review when written).
--
-- One table is not by product: review_products, a review's product by review id, for the two
-- routes that name a review and not its product (helpful, report). It is distributed by
-- review_id in the same colocation group; a new review's id is drawn so that its row lands on the
-- shard of its product (sql/citus/writes.sql), so a POST touches that one shard only.
-- migrate runs schema.sql, this file and the rest in one transaction: in one transaction Citus
-- must run everything over one connection per node to change functions after tables.
SET citus.multi_shard_modify_mode TO 'sequential';

CREATE TABLE IF NOT EXISTS review_products (
    review_id  integer PRIMARY KEY,
    product_id integer NOT NULL
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'reviews'::regclass) THEN
        RETURN;
    END IF;
    ALTER TABLE reviews DROP CONSTRAINT reviews_pkey, ADD PRIMARY KEY (product_id, id);
    ALTER TABLE characteristics DROP CONSTRAINT characteristics_pkey, ADD PRIMARY KEY (product_id, id);
    ALTER TABLE reviews_photos ADD COLUMN product_id integer NOT NULL,
        DROP CONSTRAINT reviews_photos_pkey, ADD PRIMARY KEY (product_id, id);
    ALTER TABLE characteristic_reviews ADD COLUMN product_id integer NOT NULL,
        DROP CONSTRAINT characteristic_reviews_pkey, ADD PRIMARY KEY (product_id, id);
    PERFORM create_distributed_table('product_meta', 'product_id');
    PERFORM create_distributed_table('reviews', 'product_id', colocate_with => 'product_meta');
    PERFORM create_distributed_table('characteristics', 'product_id', colocate_with => 'product_meta');
    PERFORM create_distributed_table('reviews_photos', 'product_id', colocate_with => 'product_meta');
    PERFORM create_distributed_table('characteristic_reviews', 'product_id', colocate_with => 'product_meta');
    PERFORM create_distributed_table('first_pages', 'product_id', colocate_with => 'product_meta');
    PERFORM create_distributed_table('review_products', 'review_id', colocate_with => 'product_meta');
END $$;

-- page_from_indexes (schema.sql) reads public.reviews from inside sql/list.sql, which Citus runs
-- on the product's node as a query on a shard: there its read is a distributed query of its own,
-- which Citus refuses by default (it could reach other nodes). This one reads only the product
-- whose shard the list statement runs on, so it stays on that node (local execution). Applied at
-- every migrate: schema.sql's CREATE OR REPLACE resets a function's settings.
ALTER FUNCTION public.page_from_indexes(integer, text, integer, bigint)
    SET citus.allow_nested_distributed_execution = on;
