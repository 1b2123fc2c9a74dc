//! "Buy 'til you die" (BTYD) customer-base models as plain Rust, free of Arrow.
//!
//! - [`summary`]: orders → (frequency, recency, T, monetary value) per customer.
//! - [`bgnbd`]: the BG/NBD model (Fader, Hardie & Lee 2005): likelihood, fit,
//!   expected purchases, P(alive), P(N = n).
//! - [`paretonbd`]: the Pareto/NBD model (Schmittlein, Morrison & Colombo
//!   1987): likelihood, fit, expected purchases, P(alive).
//! - [`mbgnbd`]: the MBG/NBD model (Batislam, Denizel & Filiztekin 2007):
//!   likelihood, fit, expected purchases, P(alive), P(N = n).
//! - [`gamma_gamma`]: the Gamma-Gamma spend model (Fader, Hardie & Lee 2005b).
//! - [`clv`]: discounted customer lifetime value, month by month.
//! - [`optim`]: BFGS (with analytic gradients: BG/NBD, Gamma-Gamma) and
//!   Nelder-Mead minimisers used for maximum likelihood.
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
//! As in `lifetimes`, the data are rescaled for fitting so that max T = 1
//! (the penalizer applies to the rescaled parameters).

pub mod bgnbd;
pub mod clv;
pub mod gamma_gamma;
pub mod mbgnbd;
pub mod optim;
pub mod paretonbd;
pub mod special;
pub mod summary;

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
/// The result of a model's `fit`: its maximum-likelihood parameters `P`
/// and how the fit went. Each model names it `Fit` (`bgnbd::Fit`, …).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelFit<P> {
    /// The maximum-likelihood parameters.
    pub params: P,
    /// Total log-likelihood Σ ln L_i on the caller's data and unit, over
    /// the customers used.
    pub ll: f64,
    /// Customers used (Gamma-Gamma: the repeat buyers).
    pub n: usize,
    /// Whether the optimiser met its tolerances.
    pub converged: bool,
}

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
    for (i, r) in rows.iter().enumerate() {
        check_rfm(r, i)?;
    }
    // Sorted into a canonical order, so that the likelihood sums (and so the
    // fit, to the last bit) do not depend on the order the rows arrived in,
    // i.e. on how the query engine partitioned them; identical rows are then
    // adjacent. (Sorted by their bits: equal keys are the same bits, so an
    // unstable sort gives the same result for every input order; the rows
    // were checked non-negative, where bit order is numeric order.)
    let mut sorted = rows.to_vec();
    sorted.sort_unstable_by_key(|r| (r.x.to_bits(), r.t_x.to_bits(), r.t.to_bits()));
    let mut g = Grouped::default();
    for r in sorted {
        match (g.rows.last(), g.weights.last_mut()) {
            (Some(last), Some(w)) if *last == r => *w += 1.0,
            _ => {
                g.rows.push(r);
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

/// Check the penalizer argument of a fit (finite, ≥ 0).
pub fn check_penalizer(penalizer: f64) -> Result<(), FitError> {
    if penalizer.is_finite() && penalizer >= 0.0 {
        Ok(())
    } else {
        Err(FitError::BadValue {
            arg: "penalizer",
            row: 0,
            value: penalizer,
            why: "must be a non-negative number",
        })
    }
}

/// The factor applied to times while fitting: 1 / max T, as `lifetimes`
/// (`utils._scale_time`) does. Only the rate parameters depend on it.
pub fn fit_scale(g: &Grouped) -> f64 {
    let max_t = g.rows.iter().map(|r| r.t).fold(0.0, f64::max);
    if max_t > 0.0 { 1.0 / max_t } else { 1.0 }
}

/// Grouped data prepared for repeated likelihood evaluation: times rescaled,
/// the distinct frequencies indexed so that terms depending on x only (the
/// Γ functions) are computed once per distinct frequency, and the distinct
/// times (recencies and T together) indexed so that ln(α + time) is computed
/// once per distinct time — with times in days there are a few thousand of
/// them for any number of customers.
pub(crate) struct Prepared {
    /// Distinct frequencies, ascending.
    pub xs: Vec<f64>,
    /// For each row, the index of its frequency in `xs`.
    pub x_of: Vec<usize>,
    /// Distinct recencies and T, ascending.
    pub times: Vec<f64>,
    /// For each row, the index of its recency in `times`.
    pub tx_of: Vec<usize>,
    /// For each row, the index of its T in `times`.
    pub t_of: Vec<usize>,
    /// The distinct rows, times multiplied by the scale.
    pub rows: Vec<Rfm>,
    /// Customers per row.
    pub w: Vec<f64>,
    /// Total customers.
    pub w_sum: f64,
}

/// Sorted distinct values and, for each input value, its index among them.
fn index_values(values: impl Iterator<Item = f64> + Clone) -> (Vec<f64>, Vec<usize>) {
    let mut distinct: Vec<f64> = values.clone().collect();
    distinct.sort_unstable_by(f64::total_cmp);
    distinct.dedup();
    let of = values
        .map(|v| distinct.partition_point(|&d| d < v))
        .collect();
    (distinct, of)
}

impl Prepared {
    /// Prepare `g` with times multiplied by `scale`.
    pub fn new(g: &Grouped, scale: f64) -> Self {
        let rows: Vec<Rfm> = g
            .rows
            .iter()
            .map(|r| Rfm {
                x: r.x,
                t_x: r.t_x * scale,
                t: r.t * scale,
            })
            .collect();
        let (xs, x_of) = index_values(rows.iter().map(|r| r.x));
        let (times, both) =
            index_values(rows.iter().map(|r| r.t_x).chain(rows.iter().map(|r| r.t)));
        let (tx_of, t_of) = (both[..rows.len()].to_vec(), both[rows.len()..].to_vec());
        Prepared {
            xs,
            x_of,
            times,
            tx_of,
            t_of,
            rows,
            w: g.weights.clone(),
            w_sum: g.weights.iter().sum(),
        }
    }

    /// ln(c + time) for every distinct time, into `out`.
    pub fn ln_times(&self, c: f64, out: &mut Vec<f64>) {
        out.clear();
        out.extend(self.times.iter().map(|&t| (c + t).ln()));
    }
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

    /// Pareto/NBD and MBG/NBD on the same fixture; penalized fits of every
    /// model with a penalizer (lifetimes rescales time so that max T = 1).
    #[test]
    fn btyd_pareto_mbg_agree_with_lifetimes_on_cdnow() {
        let fx: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests-py/lifetimes_cdnow.json")).unwrap();
        let num = |v: &serde_json::Value| v.as_f64().unwrap();
        let rows: Vec<Vec<f64>> = fx["customers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().iter().map(num).collect())
            .collect();
        let rfm: Vec<Rfm> = rows
            .iter()
            .map(|r| Rfm {
                x: r[0],
                t_x: r[1],
                t: r[2],
            })
            .collect();
        let check = |model: &str, got: &[(&str, f64)], want: &serde_json::Value| {
            for (name, g) in got {
                let w = num(&want[*name]);
                assert!(rel(*g, w) < 1e-3, "{model} {name}: {g} vs lifetimes {w}");
            }
        };

        let pn = paretonbd::fit(&rfm, 0.0).unwrap();
        assert!(pn.converged);
        let pp = pn.params;
        check(
            "Pareto/NBD",
            &[
                ("r", pp.r),
                ("alpha", pp.alpha),
                ("s", pp.s),
                ("beta", pp.beta),
                ("ll", pn.ll),
            ],
            &fx["paretonbd"],
        );
        // The published values (Fader & Hardie's note on the Pareto/NBD,
        // CDNOW): r=0.553, α=10.578, s=0.606, β=11.669, LL=−9595.0.
        assert!((pp.r - 0.553).abs() < 5e-4 && (pp.s - 0.606).abs() < 5e-4);
        assert!((pp.alpha - 10.578).abs() < 5e-3 && (pp.beta - 11.669).abs() < 5e-3);
        assert!((pn.ll + 9595.0).abs() < 0.05, "{}", pn.ll);

        let mb = mbgnbd::fit(&rfm, 0.0).unwrap();
        assert!(mb.converged);
        let mp = mb.params;
        check(
            "MBG/NBD",
            &[
                ("r", mp.r),
                ("alpha", mp.alpha),
                ("a", mp.a),
                ("b", mp.b),
                ("ll", mb.ll),
            ],
            &fx["mbgnbd"],
        );
        let horizon = num(&fx["horizon_weeks"]);
        for (n, want) in fx["mbgnbd"]["probability_of_n"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let got = mbgnbd::probability_of_n(&mp, horizon, n as u64);
            assert!(
                rel(got, num(want)) < 1e-3,
                "MBG/NBD P(N={n}): {got} vs {want}"
            );
        }

        let mut worst = [0.0f64; 4];
        for (r, c) in rows.iter().zip(&rfm) {
            let got = [
                paretonbd::p_alive(&pp, c),
                paretonbd::expected_purchases(&pp, horizon, c),
                mbgnbd::p_alive(&mp, c),
                mbgnbd::expected_purchases(&mp, horizon, c),
            ];
            for k in 0..4 {
                worst[k] = worst[k].max(rel(got[k], r[8 + k]));
            }
        }
        for (k, name) in [
            "paretonbd_p_alive",
            "paretonbd_expected_purchases",
            "mbgnbd_p_alive",
            "mbgnbd_expected_purchases",
        ]
        .iter()
        .enumerate()
        {
            assert!(
                worst[k] < 1e-3,
                "{name}: worst relative difference {}",
                worst[k]
            );
        }

        let pen = &fx["penalized"];
        let bg = bgnbd::fit(&rfm, num(&pen["bgnbd"]["penalizer"])).unwrap();
        let p = bg.params;
        check(
            "penalized BG/NBD",
            &[("r", p.r), ("alpha", p.alpha), ("a", p.a), ("b", p.b)],
            &pen["bgnbd"],
        );
        let mb = mbgnbd::fit(&rfm, num(&pen["mbgnbd"]["penalizer"])).unwrap();
        let p = mb.params;
        check(
            "penalized MBG/NBD",
            &[("r", p.r), ("alpha", p.alpha), ("a", p.a), ("b", p.b)],
            &pen["mbgnbd"],
        );
        let pn = paretonbd::fit(&rfm, num(&pen["paretonbd"]["penalizer"])).unwrap();
        let p = pn.params;
        check(
            "penalized Pareto/NBD",
            &[("r", p.r), ("alpha", p.alpha), ("s", p.s), ("beta", p.beta)],
            &pen["paretonbd"],
        );
    }
}

/// Pieces a likelihood sum is cut into (see [`par_sum`]).
const SUM_CHUNKS: usize = 16;
/// Below this many terms a sum runs on the calling thread.
const PAR_MIN_TERMS: usize = 32_768;

/// Σ f(i) over 0..n, as the sum of [`SUM_CHUNKS`] fixed pieces added in
/// order. The pieces run on up to `available_parallelism` threads, but the
/// cut and the order of the additions depend only on n, so a fit gives the
/// same bits on every machine.
pub(crate) fn par_sum(n: usize, f: impl Fn(usize) -> f64 + Sync) -> f64 {
    par_sums(n, |i, acc: &mut [f64; 1]| acc[0] += f(i))[0]
}

/// K sums at once: `f(i, acc)` adds term i of each sum into `acc`. Cut into
/// pieces and added in an order that depends only on n, as [`par_sum`].
pub(crate) fn par_sums<const K: usize>(
    n: usize,
    f: impl Fn(usize, &mut [f64; K]) + Sync,
) -> [f64; K] {
    let piece = n.div_ceil(SUM_CHUNKS).max(1);
    let piece_sum = |c: usize| -> [f64; K] {
        let (lo, hi) = ((c * piece).min(n), ((c + 1) * piece).min(n));
        let mut acc = [0.0; K];
        for i in lo..hi {
            f(i, &mut acc);
        }
        acc
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(SUM_CHUNKS);
    let mut sums = [[0.0f64; K]; SUM_CHUNKS];
    if threads <= 1 || n < PAR_MIN_TERMS {
        for (c, s) in sums.iter_mut().enumerate() {
            *s = piece_sum(c);
        }
    } else {
        let per = SUM_CHUNKS.div_ceil(threads);
        std::thread::scope(|scope| {
            for (t, slots) in sums.chunks_mut(per).enumerate() {
                let piece_sum = &piece_sum;
                scope.spawn(move || {
                    for (j, s) in slots.iter_mut().enumerate() {
                        *s = piece_sum(t * per + j);
                    }
                });
            }
        });
    }
    let mut total = [0.0; K];
    for piece in &sums {
        for (t, v) in total.iter_mut().zip(piece) {
            *t += v;
        }
    }
    total
}

#[cfg(test)]
mod par_sum_tests {
    use super::par_sum;

    #[test]
    fn par_sum_is_exact_on_integers_and_handles_small_n() {
        for n in [0usize, 1, 15, 16, 17, 1000, 100_003] {
            let want = (n * n.saturating_sub(1) / 2) as f64;
            assert_eq!(par_sum(n, |i| i as f64), want, "n = {n}");
        }
    }
}
