//! "Buy 'til you die" (BTYD) customer-base models as plain Rust, free of Arrow.
//!
//! - [`summary`]: orders → (frequency, recency, T, monetary value) per customer.
//! - [`bgnbd`]: the BG/NBD model (Fader, Hardie & Lee 2005): likelihood, fit,
//!   expected purchases, P(alive), P(N = n).
//! - [`gamma_gamma`]: the Gamma-Gamma spend model (Fader, Hardie & Lee 2005b).
//! - [`clv`]: discounted customer lifetime value, month by month.
//! - [`optim`]: Nelder-Mead minimiser used for maximum likelihood.
//! - [`special`]: ln Γ, the Gaussian hypergeometric function ₂F₁ in log space.
//!
//! Conventions follow the Python `lifetimes` library, so that both give the same
//! numbers on the same input: frequency `x` = number of repeat purchase days,
//! recency `t_x` = time from the first to the last purchase, `T` = time from the
//! first purchase to the end of observation, all in one time unit chosen by the
//! caller. Fitting minimises the mean negative log-likelihood over log-parameters
//! (plus an optional L2 penalizer on the parameters, as in `lifetimes`), with
//! identical (x, t_x, T) rows grouped and weighted, so the cost of each
//! evaluation depends on the number of distinct rows, not on the customers.

pub mod bgnbd;
pub mod clv;
pub mod gamma_gamma;
pub mod optim;
pub mod special;
pub mod summary;

use std::collections::HashMap;

/// Why a fit could not be attempted (the SQL layer adds the function name).
#[derive(Debug, Clone, PartialEq)]
pub enum FitError {
    /// A value that no customer can have (argument name, row index, value).
    BadValue {
        /// Which argument.
        arg: &'static str,
        /// 0-based position among the non-NULL rows.
        row: usize,
        /// The offending value.
        value: f64,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Too few customers (or too few usable ones) to identify the model.
    TooFew {
        /// What was counted.
        what: &'static str,
        /// How many there were.
        got: usize,
        /// How many are needed.
        need: usize,
    },
    /// Every customer has frequency 0: the purchase rate cannot be identified.
    NoRepeat,
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FitError::BadValue {
                arg,
                row,
                value,
                why,
            } => write!(f, "argument {arg} {why}, got {value} (input row {row})"),
            FitError::TooFew { what, got, need } => {
                write!(f, "needs at least {need} {what}, got {got}")
            }
            FitError::NoRepeat => write!(
                f,
                "every customer has frequency 0 (no repeat purchases): the model cannot be fitted"
            ),
        }
    }
}

/// One customer's BTYD summary in the caller's time unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rfm {
    /// Number of repeat purchase days.
    pub x: f64,
    /// First → last purchase.
    pub t_x: f64,
    /// First purchase → end of observation.
    pub t: f64,
}

/// Distinct (x, t_x, T) rows with their counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grouped {
    /// Distinct rows.
    pub rows: Vec<Rfm>,
    /// How many customers share each row.
    pub weights: Vec<f64>,
    /// Total customers.
    pub n: usize,
}

/// Check rows and group identical ones. `row` numbers in errors are 0-based
/// positions in `rows`.
pub fn group_rfm(rows: &[Rfm]) -> Result<Grouped, FitError> {
    let mut index: HashMap<(u64, u64, u64), usize> = HashMap::new();
    let mut g = Grouped::default();
    for (i, r) in rows.iter().enumerate() {
        check_rfm(r, i)?;
        let key = (r.x.to_bits(), r.t_x.to_bits(), r.t.to_bits());
        match index.get(&key) {
            Some(&k) => g.weights[k] += 1.0,
            None => {
                index.insert(key, g.rows.len());
                g.rows.push(*r);
                g.weights.push(1.0);
            }
        }
    }
    g.n = rows.len();
    if g.n < 3 {
        return Err(FitError::TooFew {
            what: "customers",
            got: g.n,
            need: 3,
        });
    }
    if rows.iter().all(|r| r.x == 0.0) {
        return Err(FitError::NoRepeat);
    }
    Ok(g)
}

/// Validate one customer's summary.
pub fn check_rfm(r: &Rfm, row: usize) -> Result<(), FitError> {
    let bad = |arg, value, why| {
        Err(FitError::BadValue {
            arg,
            row,
            value,
            why,
        })
    };
    if !r.x.is_finite() || r.x < 0.0 || r.x.fract() != 0.0 {
        return bad("frequency", r.x, "must be a non-negative whole number");
    }
    if !r.t_x.is_finite() || r.t_x < 0.0 {
        return bad("recency", r.t_x, "must be non-negative");
    }
    if !r.t.is_finite() || r.t <= 0.0 && r.x > 0.0 || r.t < 0.0 {
        return bad(
            "t",
            r.t,
            "must be non-negative (positive for repeat buyers)",
        );
    }
    if r.t_x > r.t {
        return bad("recency", r.t_x, "must not exceed t");
    }
    if r.x == 0.0 && r.t_x != 0.0 {
        return bad("recency", r.t_x, "must be 0 when frequency is 0");
    }
    Ok(())
}
