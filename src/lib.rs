//! crmdb: an embedded analytical datastore for retail customer relationship
//! data — Delta Lake tables, SQL on Apache DataFusion with CRM functions, and
//! the PostgreSQL wire protocol for BI tools.
//!
//! The pieces, in the order data flows: [`ingest`] validates and loads input
//! into the [`store`] (Delta tables); the [`engine`] is the shared DataFusion
//! setup that every front end — [`shell`] (`crmdb sql`), [`server`] (pgwire) —
//! queries through.

pub mod cli;
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod export;
pub mod generate;
pub mod ingest;
pub mod output;
pub mod plans;
pub mod server;
pub mod shell;
pub mod store;
pub mod views;

pub use engine::Engine;
pub use error::{Error, Result};
pub use store::Store;
