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
//! Large fits (BG/NBD, Gamma-Gamma) first fit a thinned sample taken from the
//! canonical order and start the full fit from its optimum and curvature
//! ([`optim::warm_start`]), so the full data are evaluated a few times only.
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

/// Fits over at least this many distinct rows (Gamma-Gamma: repeat buyers)
/// start from the fit of a thinned sample ([`warm_sample`]); below it a
/// whole descent costs little.
pub(crate) const WARM_START_MIN_ROWS: usize = 50_000;
/// The sample keeps one row in this many.
const WARM_START_THINNING: usize = 16;

/// Every [`WARM_START_THINNING`]-th item when there are at least
/// [`WARM_START_MIN_ROWS`] of them: the sample a fit's warm start is fitted
/// on ([`optim::warm_start`]). Taken from the fit's canonical order, it (and
/// with it the fit) does not depend on the order the rows arrived in, and it
/// is spread over every frequency and time.
pub(crate) fn warm_sample<T: Copy>(items: &[T]) -> Option<Vec<T>> {
    (items.len() >= WARM_START_MIN_ROWS)
        .then(|| items.iter().copied().step_by(WARM_START_THINNING).collect())
}

impl Grouped {
    /// The distinct rows of [`warm_sample`], with their weights.
    pub(crate) fn thinned_for_warm_start(&self) -> Option<Grouped> {
        let rows = warm_sample(&self.rows)?;
        let weights = warm_sample(&self.weights)?;
        let n = weights.iter().sum::<f64>() as usize;
        Some(Grouped { rows, weights, n })
    }
}

/// Check rows and group identical ones. `row` numbers in errors are 0-based
/// positions in `rows`.
pub fn group_rfm(rows: &[Rfm]) -> Result<Grouped, FitError> {
    group_rfm_with(rows, true)
}

/// [`group_rfm`]; `pack` allows sorting packed ranks (else the rows are
/// sorted themselves, as when there are too many distinct values to pack).
fn group_rfm_with(rows: &[Rfm], pack: bool) -> Result<Grouped, FitError> {
    for (i, r) in rows.iter().enumerate() {
        check_rfm(r, i)?;
    }
    if rows.len() < 3 {
        return Err(FitError::TooFew {
            what: "customers",
            got: rows.len(),
            need: 3,
        });
    }
    if rows.iter().all(|r| r.x == 0.0) {
        return Err(FitError::NoRepeat);
    }
    // Sorted into a canonical order (ascending x, then t_x, then T), so that
    // the likelihood sums (and so the fit, to the last bit) do not depend on
    // the order the rows arrived in, i.e. on how the query engine
    // partitioned them; identical rows are then adjacent. There are few
    // distinct frequencies and times, so each row is sorted as one integer:
    // the ranks of its x, t_x and T among the distinct values, packed.
    let (xs, x_rank) = index_values(rows.iter().map(|r| r.x));
    let (times, t_rank) = index_values(rows.iter().map(|r| r.t_x).chain(rows.iter().map(|r| r.t)));
    let (x_bits, t_bits) = (bits_for(xs.len()), bits_for(times.len()));
    let mut g = Grouped {
        n: rows.len(),
        ..Grouped::default()
    };
    let mut push = |r: Rfm| match (g.rows.last(), g.weights.last_mut()) {
        (Some(last), Some(w)) if *last == r => *w += 1.0,
        _ => {
            g.rows.push(r);
            g.weights.push(1.0);
        }
    };
    if pack && x_bits + 2 * t_bits < 64 {
        let (tx_rank, t_rank) = t_rank.split_at(rows.len());
        let mut keys: Vec<u64> = (0..rows.len())
            .map(|i| {
                (x_rank[i] as u64) << (2 * t_bits)
                    | (tx_rank[i] as u64) << t_bits
                    | t_rank[i] as u64
            })
            .collect();
        keys.sort_unstable();
        let mask = (1u64 << t_bits) - 1;
        for k in keys {
            push(Rfm {
                x: xs[(k >> (2 * t_bits)) as usize],
                t_x: times[((k >> t_bits) & mask) as usize],
                t: times[(k & mask) as usize],
            });
        }
    } else {
        // Too many distinct values to pack: sort the rows themselves (by
        // their bits, which for the checked, non-negative values is
        // numeric order; equal keys are the same bits, so an unstable sort
        // gives the same result for every input order).
        let mut sorted: Vec<Rfm> = rows
            .iter()
            .map(|r| Rfm {
                x: r.x + 0.0,
                t_x: r.t_x + 0.0,
                t: r.t + 0.0,
            })
            .collect();
        sorted.sort_unstable_by_key(|r| (r.x.to_bits(), r.t_x.to_bits(), r.t.to_bits()));
        for r in sorted {
            push(r);
        }
    }
    Ok(g)
}

/// Bits needed to hold the numbers 0..n.
fn bits_for(n: usize) -> u32 {
    usize::BITS - n.saturating_sub(1).leading_zeros()
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
/// The values are first gathered in a hash table (the distinct ones are few:
/// whole frequencies, times in days), so only the distinct ones are sorted.
/// −0 counts as 0; the values must not be NaN (the rows were checked).
fn index_values(values: impl Iterator<Item = f64>) -> (Vec<f64>, Vec<usize>) {
    let mut table = DistinctValues::default();
    let first_seen: Vec<usize> = values.map(|v| table.insert(v + 0.0)).collect();
    let mut order: Vec<usize> = (0..table.values.len()).collect();
    order.sort_unstable_by(|&i, &j| table.values[i].total_cmp(&table.values[j]));
    let mut rank = vec![0; order.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    let distinct = order.iter().map(|&i| table.values[i]).collect();
    (distinct, first_seen.into_iter().map(|i| rank[i]).collect())
}

/// The distinct values of a stream of f64 in order of first appearance, in
/// an open-addressing hash table on their bits (std's hasher costs more
/// than the whole likelihood evaluation this indexing serves).
#[derive(Default)]
struct DistinctValues {
    /// Distinct values, in order of first appearance.
    values: Vec<f64>,
    /// Slots: index into `values` + 1, 0 when empty; a power of two long.
    slots: Vec<usize>,
}

impl DistinctValues {
    /// The index of `v` in `values`, adding it if new.
    fn insert(&mut self, v: f64) -> usize {
        if 2 * (self.values.len() + 1) > self.slots.len() {
            self.grow();
        }
        let bits = v.to_bits();
        let mask = self.slots.len() - 1;
        let mut at = Self::hash(bits) & mask;
        loop {
            match self.slots[at] {
                0 => {
                    self.values.push(v);
                    self.slots[at] = self.values.len();
                    return self.values.len() - 1;
                }
                k if self.values[k - 1].to_bits() == bits => return k - 1,
                _ => at = (at + 1) & mask,
            }
        }
    }

    fn hash(bits: u64) -> usize {
        // Fibonacci hashing; the high bits are the well-mixed ones.
        ((bits ^ (bits >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize
    }

    fn grow(&mut self) {
        let len = (self.slots.len() * 2).max(64);
        self.slots = vec![0; len];
        let mask = len - 1;
        for (i, v) in self.values.iter().enumerate() {
            let mut at = Self::hash(v.to_bits()) & mask;
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = i + 1;
        }
    }
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
mod grouping_tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn btyd_index_values_matches_sort_and_dedup() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // Few distinct values (days in weeks), then many (grows the table).
        for distinct in [5u32, 300, 40_000] {
            let values: Vec<f64> = (0..100_000)
                .map(|_| f64::from(rng.random_range(0..distinct)) / 7.0)
                .chain([0.0, -0.0])
                .collect();
            let (got, of) = index_values(values.iter().copied());
            let mut want = values.clone();
            want.sort_unstable_by(f64::total_cmp);
            want.dedup();
            assert_eq!(got, want, "{distinct} distinct");
            for (v, &k) in values.iter().zip(&of) {
                assert_eq!(got[k], *v);
            }
        }
        assert_eq!(index_values(std::iter::empty()), (vec![], vec![]));
        assert_eq!(bits_for(0), 0);
        assert_eq!(bits_for(1), 0);
        assert_eq!(bits_for(2), 1);
        assert_eq!(bits_for(1025), 11);
    }

    /// Packed-rank sorting and sorting the rows themselves give the same
    /// groups, in the same order, whatever the input order.
    #[test]
    fn btyd_group_rfm_packed_equals_row_sort() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut rows: Vec<Rfm> = (0..50_000)
            .map(|_| {
                let t = f64::from(rng.random_range(1..400u32)) / 7.0;
                let x = f64::from(rng.random_range(0..12u32));
                let t_x = if x > 0.0 {
                    t * f64::from(rng.random_range(0..=4u32)) / 4.0
                } else {
                    0.0
                };
                Rfm { x, t_x, t }
            })
            .collect();
        let packed = group_rfm_with(&rows, true).unwrap();
        let sorted = group_rfm_with(&rows, false).unwrap();
        assert_eq!(packed, sorted);
        assert!(packed.rows.len() < rows.len() && packed.n == rows.len());
        assert_eq!(packed.weights.iter().sum::<f64>(), rows.len() as f64);
        assert!(
            packed
                .rows
                .windows(2)
                .all(|w| { (w[0].x, w[0].t_x, w[0].t) < (w[1].x, w[1].t_x, w[1].t) })
        );
        rows.reverse();
        assert_eq!(group_rfm_with(&rows, true).unwrap(), packed);
    }
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
