-- The plain path that bench/load-compare measures the loader against: psql \copy of the four
-- CSV files into bare tables of the same column types, then the same primary keys and indexes
-- the loader builds. Run from the dataset's directory (the \copy paths are relative).
SET maintenance_work_mem = '1GB';
SET client_min_messages = warning;
DROP TABLE IF EXISTS reviews, reviews_photos, characteristics, characteristic_reviews;
CREATE TABLE reviews (id integer NOT NULL, product_id integer NOT NULL, rating smallint NOT NULL, date_ms bigint NOT NULL,
  summary text NOT NULL, body text NOT NULL, recommend boolean NOT NULL, reported boolean NOT NULL,
  reviewer_name text NOT NULL, reviewer_email text NOT NULL, response text, helpfulness integer NOT NULL);
CREATE TABLE reviews_photos (id integer NOT NULL, review_id integer NOT NULL, url text NOT NULL);
CREATE TABLE characteristics (id integer NOT NULL, product_id integer NOT NULL, name text NOT NULL);
CREATE TABLE characteristic_reviews (id integer NOT NULL, characteristic_id integer NOT NULL, review_id integer NOT NULL, value smallint NOT NULL);
\copy characteristics FROM 'characteristics.csv' WITH (FORMAT csv, HEADER true)
\copy reviews FROM 'reviews.csv' WITH (FORMAT csv, HEADER true, NULL 'null')
\copy reviews_photos FROM 'reviews_photos.csv' WITH (FORMAT csv, HEADER true)
\copy characteristic_reviews FROM 'characteristic_reviews.csv' WITH (FORMAT csv, HEADER true)
ALTER TABLE reviews ADD PRIMARY KEY (id);
ALTER TABLE reviews_photos ADD PRIMARY KEY (id);
ALTER TABLE characteristics ADD PRIMARY KEY (id);
ALTER TABLE characteristic_reviews ADD PRIMARY KEY (id);
CREATE INDEX reviews_relevant ON reviews (product_id, (date_ms + helpfulness::bigint * 2592000000) DESC, id DESC) WHERE NOT reported;
CREATE INDEX reviews_newest ON reviews (product_id, date_ms DESC, id DESC) WHERE NOT reported;
CREATE INDEX reviews_helpful ON reviews (product_id, helpfulness DESC, date_ms DESC, id DESC) WHERE NOT reported;
CREATE INDEX reviews_photos_review_id ON reviews_photos (review_id);
CREATE INDEX characteristics_product_id ON characteristics (product_id);
CREATE INDEX characteristic_reviews_review_id ON characteristic_reviews (review_id);
