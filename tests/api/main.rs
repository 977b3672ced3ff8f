//! Integration tests: one binary (one compile). Each test creates its own database on the real
//! PostgreSQL (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres), starts the
//! real application on port 0 and talks HTTP to it.

mod cache;
mod citus;
mod dataset;
mod demo;
mod docs;
mod drain;
mod faults;
mod first_pages;
mod helpers;
mod load;
mod metrics;
mod reads;
mod scale;
mod shared_reads;
mod writes;
