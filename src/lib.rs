//! reviews-api: the Ratings & Reviews API served from PostgreSQL, one prepared statement per
//! endpoint. `main.rs` only calls [`cli::main`]; everything lives here so that tests start the
//! real application on port 0.

pub mod cache;
pub mod cli;
pub mod coherence;
pub mod config;
pub mod db;
pub mod demo;
pub mod devdb;
pub mod error;
pub mod etl;
pub mod http;
pub mod metrics;
pub mod startup;
pub mod verify;
