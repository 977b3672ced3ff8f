//! Integration tests: one binary (one compile). Each test creates its own database on a real
//! server, applies the schema, starts the real application on port 0 and talks HTTP to it. The
//! server is plain PostgreSQL, or with TEST_TOPOLOGY=citus a Citus coordinator and two workers:
//! the same tests on both (helpers/topology.rs says where each comes from). The scale-out tests
//! run whole deployments of deploy/local (NGINX, replicas or Citus workers).

mod cache;
mod citus;
mod dataset;
mod demo;
mod docs;
mod drain;
mod edge;
mod faults;
mod first_pages;
mod helpers;
mod http_caching;
mod load;
mod metrics;
mod reads;
mod scale;
mod shared_reads;
mod writes;
