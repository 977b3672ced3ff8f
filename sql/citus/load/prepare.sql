-- Citus: load step 2 (sql/load/prepare.sql on plain PostgreSQL). The staging tables keep their
-- keys through the COPY: each shard's COPY fills its own key, the shards in parallel, and Citus
-- cannot make a separately built index the key again. So no key is saved to be built later.
CREATE TABLE reviews_load.primary_keys (tbl regclass, name name, index_def text);
