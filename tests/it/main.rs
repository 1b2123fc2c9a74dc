//! The one integration-test binary: ingest and CLI behaviour, SQL files run
//! through the real engine, and the PostgreSQL server with real clients.

mod clients;
mod cli;
mod ingest;
mod server;
mod slt;
