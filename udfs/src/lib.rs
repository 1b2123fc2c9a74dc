//! Retail CRM SQL functions for Apache DataFusion.
//!
//! This crate depends on DataFusion only (no store, no server), so any DataFusion
//! application — a Ballista executor included — can load it with [`register_all`].
//! Every function documents its units, takes its reference date explicitly where
//! time matters, returns NULL for NULL input and names the argument it rejects.
//!
//! Layout: `rules/` holds the business rules and models as plain Rust (no Arrow);
//! each family folder holds one SQL function per file.

pub mod rules;

pub mod btyd;
pub mod churn;
pub mod cycle;
pub mod lifecycle;
pub mod nps;
pub mod privacy;
pub mod rfm;
pub mod tier;
pub mod value;

pub mod reference;

mod groups;
mod util;

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::prelude::SessionContext;

/// Every CRM function of this crate, by kind.
#[derive(Debug, Default)]
pub struct Functions {
    /// Scalar functions.
    pub scalar: Vec<Arc<ScalarUDF>>,
    /// Aggregate functions.
    pub aggregate: Vec<Arc<AggregateUDF>>,
    /// Window functions.
    pub window: Vec<Arc<WindowUDF>>,
}

impl Functions {
    fn extend(&mut self, other: Functions) {
        self.scalar.extend(other.scalar);
        self.aggregate.extend(other.aggregate);
        self.window.extend(other.window);
    }
}

/// All functions of every family.
pub fn functions() -> Functions {
    let mut all = Functions::default();
    for family in [
        privacy::functions(),
        rfm::functions(),
        lifecycle::functions(),
        churn::functions(),
        cycle::functions(),
        tier::functions(),
        value::functions(),
        nps::functions(),
        btyd::functions(),
    ] {
        all.extend(family);
    }
    all
}

/// Register every CRM function with `ctx`.
pub fn register_all(ctx: &SessionContext) {
    let Functions {
        scalar,
        aggregate,
        window,
    } = functions();
    for f in scalar {
        ctx.register_udf(f.as_ref().clone());
    }
    for f in aggregate {
        ctx.register_udaf(f.as_ref().clone());
    }
    for f in window {
        ctx.register_udwf(f.as_ref().clone());
    }
}
