//! Test scaffolding, one module for each thing it helps with:
//! - `app`: throwaway databases and folders, and the real application on a random port;
//! - `reply`: HTTP requests and their answers as plain values, metrics, polling;
//! - `contract`: every answer checked against openapi.yaml;
//! - `seed`: products seeded as the loader leaves them, reviews posted, and the documents
//!   docs/api.md prescribes for them, rebuilt independently;
//! - `proxy`: a TCP proxy that can cut or black-hole the database;
//! - `deploy`: the scaled-out topology of deploy/local, and a closed-loop load through it;
//! - `csv`: dataset rows written as the real export writes them, and the rejects file read.

pub mod app;
pub mod contract;
pub mod csv;
pub mod deploy;
pub mod proxy;
pub mod reply;
pub mod seed;
pub mod topology;
