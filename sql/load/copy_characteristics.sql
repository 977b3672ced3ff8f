-- FREEZE: the loader truncates the table in the same transaction, so the rows can be written
-- already frozen and their pages all-visible: no later pass rewrites them to set hint bits.
COPY reviews_load.characteristics (id, product_id, name) FROM STDIN (FORMAT binary, FREEZE true)
