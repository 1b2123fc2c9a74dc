//! The one integration-test binary: ingest and CLI behaviour, SQL files run
//! through the real engine, and the PostgreSQL server with real clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod clients;
mod export;
mod faults;
mod ingest;
mod protocol_fuzz;
mod retention;
mod security;
mod server;
mod server_copy;
mod slt;
mod soak;
mod views;
