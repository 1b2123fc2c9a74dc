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

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(got: f64, want: f64) -> f64 {
        (got - want).abs() / want.abs().max(1e-12)
    }

    /// Fixture written by `udfs/tests-py/compare_lifetimes.py` (lifetimes
    /// 0.11.3 on its CDNOW sample, weeks, penalizer 0).
    #[test]
    fn btyd_agrees_with_lifetimes_on_cdnow() {
        let fx: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests-py/lifetimes_cdnow.json")).unwrap();
        let num = |v: &serde_json::Value| v.as_f64().unwrap();
        let rows: Vec<Vec<f64>> = fx["customers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().iter().map(num).collect())
            .collect();
        assert_eq!(rows.len(), 2357);
        let rfm: Vec<Rfm> = rows
            .iter()
            .map(|r| Rfm {
                x: r[0],
                t_x: r[1],
                t: r[2],
            })
            .collect();
        let bg = bgnbd::fit(&rfm, 0.0).unwrap();
        assert!(bg.converged);
        let want = &fx["bgnbd"];
        for (name, got) in [
            ("r", bg.params.r),
            ("alpha", bg.params.alpha),
            ("a", bg.params.a),
            ("b", bg.params.b),
            ("ll", bg.ll),
        ] {
            let w = num(&want[name]);
            assert!(rel(got, w) < 1e-3, "BG/NBD {name}: {got} vs lifetimes {w}");
        }
        // The published values (Fader, Hardie & Lee 2005): r=0.243, α=4.414,
        // a=0.793, b=2.426, LL=−9582.4.
        assert!((bg.params.r - 0.243).abs() < 5e-4 && (bg.params.alpha - 4.414).abs() < 5e-4);
        assert!((bg.params.a - 0.793).abs() < 5e-4 && (bg.params.b - 2.426).abs() < 5e-4);
        assert!((bg.ll + 9582.4).abs() < 0.05, "{}", bg.ll);

        let pairs: Vec<(f64, f64)> = rows.iter().map(|r| (r[0], r[3])).collect();
        let gg = gamma_gamma::fit(&pairs, 0.0).unwrap();
        assert!(gg.converged);
        let want = &fx["gamma_gamma"];
        for (name, got) in [("p", gg.params.p), ("q", gg.params.q), ("v", gg.params.v)] {
            let w = num(&want[name]);
            assert!(
                rel(got, w) < 1e-3,
                "Gamma-Gamma {name}: {got} vs lifetimes {w}"
            );
        }

        let horizon = num(&fx["horizon_weeks"]);
        let c = &fx["clv"];
        let mut worst = [0.0f64; 4];
        for (r, c_rfm) in rows.iter().zip(&rfm) {
            let got = [
                bgnbd::p_alive(&bg.params, c_rfm),
                bgnbd::expected_purchases(&bg.params, horizon, c_rfm),
                clv::clv(
                    &bg.params,
                    &gg.params,
                    c_rfm,
                    r[3],
                    num(&c["months"]) as u32,
                    num(&c["monthly_discount_rate"]),
                    num(&c["unit_days"]),
                    num(&c["days_per_month"]),
                ),
                gamma_gamma::expected_value(&gg.params, r[0], r[3]),
            ];
            for k in 0..4 {
                worst[k] = worst[k].max(rel(got[k], r[4 + k]));
            }
        }
        for (k, name) in ["p_alive", "expected_purchases", "clv", "expected_value"]
            .iter()
            .enumerate()
        {
            assert!(
                worst[k] < 1e-3,
                "{name}: worst relative difference {}",
                worst[k]
            );
        }
    }
}
