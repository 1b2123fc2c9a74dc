//! The Gamma-Gamma spend model (Fader, Hardie & Lee 2005b; Colombo & Jiang
//! 1999): a customer's transaction values are Gamma(p, ν) with
//! ν ~ Gamma(q, v). Fitted on repeat buyers only (frequency > 0), as in
//! `lifetimes.GammaGammaFitter`; q > 1 is enforced by fitting ln(q − 1), which
//! leaves the estimate unchanged whenever the unconstrained optimum has q > 1
//! and keeps the expected value finite otherwise.

use super::optim::{BfgsOptions, Options, Start, minimize, warm_start};
use super::special::{digamma, ln_gamma};
use super::{FitError, check_penalizer, par_sum, par_sums, warm_sample};

/// Fitted Gamma-Gamma parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Shape of the per-transaction spend.
    pub p: f64,
    /// Shape of the prior of the spend rate (> 1).
    pub q: f64,
    /// Scale of the prior of the spend rate.
    pub v: f64,
}

/// The result of [`fit`].
pub type Fit = super::ModelFit<Params>;

/// ln L of one repeat buyer with `x` repeat purchases of mean value `m`.
pub fn log_likelihood(par: &Params, x: f64, m: f64) -> f64 {
    let Params { p, q, v } = *par;
    ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma(q)
        + q * v.ln()
        + (p * x - 1.0) * m.ln()
        + (p * x) * x.ln()
        - (p * x + q) * (x * m + v).ln()
}

/// Fit on (frequency, monetary_value) pairs; customers with frequency 0 are
/// skipped. Errors on negative or non-finite values, a positive frequency with
/// a non-positive monetary value, or fewer than 3 repeat buyers.
pub fn fit(rows: &[(f64, f64)], penalizer: f64) -> Result<Fit, FitError> {
    fit_with(rows, penalizer, true)
}

/// [`fit`]; `warm` allows the warm start from a thinned sample.
fn fit_with(rows: &[(f64, f64)], penalizer: f64, warm: bool) -> Result<Fit, FitError> {
    check_penalizer(penalizer)?;
    let mut data: Vec<(f64, f64)> = Vec::with_capacity(rows.len());
    for (i, &(x, m)) in rows.iter().enumerate() {
        if !x.is_finite() || x < 0.0 || x.fract() != 0.0 {
            return Err(FitError::BadValue {
                arg: "frequency",
                row: i,
                value: x,
                why: "must be a non-negative whole number",
            });
        }
        if x == 0.0 {
            continue;
        }
        if !m.is_finite() || m <= 0.0 {
            return Err(FitError::BadValue {
                arg: "monetary_value",
                row: i,
                value: m,
                why: "must be positive for a repeat buyer",
            });
        }
        data.push((x, m));
    }
    if data.len() < 3 {
        return Err(FitError::TooFew {
            what: "repeat buyers (frequency > 0)",
            got: data.len(),
            need: 3,
        });
    }
    // Canonical order: the fit must not depend on the row order (partitioning).
    data.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let prep = Prepared::new(&data);
    let to_params = |th: &[f64]| Params {
        p: th[0].exp(),
        q: 1.0 + th[1].exp(),
        v: th[2].exp(),
    };
    let penalty = |par: &Params| penalizer * (par.p * par.p + par.q * par.q + par.v * par.v);
    let objective = |th: &[f64]| {
        let par = to_params(th);
        -prep.total_ll(&par) / prep.n() + penalty(&par)
    };
    // The same over θ = (ln p, ln(q − 1), ln v), with its gradient.
    let with_grad = |prep: &Prepared, th: &[f64], out: &mut [f64]| {
        let par = to_params(th);
        let mut d = [0.0; 3];
        let ll = prep.total_ll_grad(&par, &mut d);
        let dpar = [par.p, par.q - 1.0, par.v];
        for (j, v) in [par.p, par.q, par.v].into_iter().enumerate() {
            out[j] = dpar[j] * (-d[j] / prep.n() + 2.0 * penalizer * v);
        }
        -ll / prep.n() + penalty(&par)
    };
    // The rearranged likelihood is a difference of large sums: its rounding
    // noise (~1e-14 of the mean) is above the default simplex tolerances,
    // which would then never be met. These are still far tighter than the
    // statistical precision of the estimates.
    let options = Options {
        f_tol: 1e-11,
        x_tol: 1e-7,
        ..Options::default()
    };
    let x0 = [0.1; 3];
    // Many buyers: start from the fit of a sample of them in the sorted
    // order (spread over every frequency and spend).
    let start = match warm.then(|| warm_sample(&data)).flatten() {
        Some(sub) => {
            let sub = Prepared::new(&sub);
            warm_start(|th, out| with_grad(&sub, th, out), &x0)
        }
        None => Start::at(&x0),
    };
    let m = minimize(
        |th, out| with_grad(&prep, th, out),
        objective,
        &start,
        BfgsOptions::default(),
        options,
    );
    let params = to_params(&m.x);
    let ll = prep.total_ll(&params);
    Ok(Fit {
        params,
        ll,
        n: data.len(),
        converged: m.converged && ll.is_finite(),
    })
}

/// The data of a fit arranged so that one likelihood evaluation costs one
/// logarithm per buyer: Σ ln L_i splits into terms of the distinct
/// frequencies, two sums fixed by the data, and Σ (p·x_i + q)·ln(x_i·m_i + v).
struct Prepared {
    /// Distinct frequencies and how many buyers have each.
    xs: Vec<(f64, f64)>,
    /// x_i and x_i·m_i of every buyer.
    rows: Vec<(f64, f64)>,
    /// Σ x_i ln m_i.
    sum_x_ln_m: f64,
    /// Σ ln m_i.
    sum_ln_m: f64,
}

impl Prepared {
    /// From (x, m) pairs sorted by x.
    fn new(data: &[(f64, f64)]) -> Prepared {
        let mut xs: Vec<(f64, f64)> = Vec::new();
        for &(x, _) in data {
            match xs.last_mut() {
                Some((last, count)) if *last == x => *count += 1.0,
                _ => xs.push((x, 1.0)),
            }
        }
        Prepared {
            xs,
            rows: data.iter().map(|&(x, m)| (x, x * m)).collect(),
            sum_x_ln_m: data.iter().map(|&(x, m)| x * m.ln()).sum(),
            sum_ln_m: data.iter().map(|&(_, m)| m.ln()).sum(),
        }
    }

    /// The number of buyers.
    fn n(&self) -> f64 {
        self.rows.len() as f64
    }

    /// Σ ln L_i (the same sum as [`log_likelihood`] row by row).
    fn total_ll(&self, par: &Params) -> f64 {
        let Params { p, q, v } = *par;
        let n = self.rows.len() as f64;
        let per_x: f64 = self
            .xs
            .iter()
            .map(|&(x, c)| c * (ln_gamma(p * x + q) - ln_gamma(p * x) + p * x * x.ln()))
            .sum();
        let ln_v = v.ln();
        let spend = par_sum(self.rows.len(), |i| {
            let (x, xm) = self.rows[i];
            (p * x + q) * (xm + v).ln()
        });
        per_x + n * (q * ln_v - ln_gamma(q)) + p * self.sum_x_ln_m - self.sum_ln_m - spend
    }

    /// Σ ln L_i and its gradient with respect to (p, q, v): one logarithm
    /// and one division per buyer.
    fn total_ll_grad(&self, par: &Params, grad: &mut [f64; 3]) -> f64 {
        let Params { p, q, v } = *par;
        let n = self.rows.len() as f64;
        let (mut per_x, mut dp_x, mut dq_x) = (0.0, 0.0, 0.0);
        for &(x, c) in &self.xs {
            let (px, ln_x) = (p * x, x.ln());
            per_x += c * (ln_gamma(px + q) - ln_gamma(px) + px * ln_x);
            let psi = digamma(px + q);
            dp_x += c * x * (psi - digamma(px) + ln_x);
            dq_x += c * psi;
        }
        // [Σ ln(xm + v), Σ x ln(xm + v), Σ x/(xm + v), Σ 1/(xm + v)]
        let [s1, s2, s3, s4] = par_sums(self.rows.len(), |i, acc: &mut [f64; 4]| {
            let (x, xm) = self.rows[i];
            let l = (xm + v).ln();
            let inv = 1.0 / (xm + v);
            acc[0] += l;
            acc[1] += x * l;
            acc[2] += x * inv;
            acc[3] += inv;
        });
        let ln_v = v.ln();
        *grad = [
            dp_x + self.sum_x_ln_m - s2,
            dq_x - n * digamma(q) + n * ln_v - s1,
            n * q / v - (p * s3 + q * s4),
        ];
        per_x + n * (q * ln_v - ln_gamma(q)) + p * self.sum_x_ln_m
            - self.sum_ln_m
            - (p * s2 + q * s1)
    }
}

/// E[M | x, m̄]: the expected mean transaction value of a customer with `x`
/// repeat purchases of mean value `m` (the population mean p·v/(q−1) when x = 0).
pub fn expected_value(par: &Params, x: f64, m: f64) -> f64 {
    let Params { p, q, v } = *par;
    let w = p * x / (p * x + q - 1.0);
    (1.0 - w) * (v * p / (q - 1.0)) + w * m
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Gamma};

    #[test]
    fn btyd_gamma_gamma_parameter_recovery_n20000() {
        let truth = Params {
            p: 6.0,
            q: 4.0,
            v: 15.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let nu_d = Gamma::new(truth.q, 1.0 / truth.v).unwrap();
        let rows: Vec<(f64, f64)> = (0..20_000)
            .map(|_| {
                let nu: f64 = nu_d.sample(&mut rng);
                let x = rng.random_range(1..=8) as f64;
                let z = Gamma::new(truth.p, 1.0 / nu).unwrap();
                let total: f64 = (0..x as usize).map(|_| z.sample(&mut rng)).sum();
                (x, total / x)
            })
            .collect();
        let f = fit(&rows, 0.0).unwrap();
        assert!(f.converged);
        // Stated tolerance: 10 % relative at n = 20,000.
        for (name, got, want) in [
            ("p", f.params.p, truth.p),
            ("q", f.params.q, truth.q),
            ("v", f.params.v, truth.v),
        ] {
            assert!((got - want).abs() / want < 0.10, "{name}: {got} vs {want}");
        }
    }

    /// From 50,000 repeat buyers the fit starts from the fit of every 16th;
    /// it must land where a cold start does.
    #[test]
    fn btyd_gamma_gamma_warm_start_reaches_the_cold_fit() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let nu_d = Gamma::new(4.0, 1.0 / 15.0).unwrap();
        let rows: Vec<(f64, f64)> = (0..60_000)
            .map(|_| {
                let nu: f64 = nu_d.sample(&mut rng);
                let x = rng.random_range(0..=6) as f64;
                let z = Gamma::new(6.0, 1.0 / nu).unwrap();
                let total: f64 = (0..x as usize).map(|_| z.sample(&mut rng)).sum();
                (x, if x > 0.0 { total / x } else { 0.0 })
            })
            .collect();
        let buyers = rows.iter().filter(|r| r.0 > 0.0).count();
        assert!(
            buyers >= super::super::WARM_START_MIN_ROWS,
            "{buyers} buyers"
        );
        let warm = fit_with(&rows, 0.0, true).unwrap();
        let cold = fit_with(&rows, 0.0, false).unwrap();
        assert!(warm.converged && cold.converged);
        assert_eq!(warm.n, buyers);
        let (w, c) = (warm.params, cold.params);
        for (name, a, b) in [("p", w.p, c.p), ("q", w.q, c.q), ("v", w.v, c.v)] {
            assert!((a - b).abs() / b < 1e-6, "{name}: warm {a} vs cold {b}");
        }
        assert!((warm.ll - cold.ll).abs() / cold.ll.abs() < 1e-12);
        let mut reversed = rows.clone();
        reversed.reverse();
        assert_eq!(fit(&reversed, 0.0).unwrap(), warm);
    }

    #[test]
    fn btyd_gamma_gamma_prepared_sum_equals_the_row_likelihoods() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut data: Vec<(f64, f64)> = (0..50_000)
            .map(|_| {
                (
                    f64::from(rng.random_range(1..30u32)),
                    rng.random_range(1.0..500.0),
                )
            })
            .collect();
        data.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let par = Params {
            p: 5.5,
            q: 3.5,
            v: 28.0,
        };
        let direct: f64 = data.iter().map(|&(x, m)| log_likelihood(&par, x, m)).sum();
        let fast = Prepared::new(&data).total_ll(&par);
        assert!(
            (fast - direct).abs() < 1e-9 * direct.abs(),
            "{fast} vs {direct}"
        );
    }

    #[test]
    fn btyd_gamma_gamma_gradient_matches_finite_differences() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut data: Vec<(f64, f64)> = (0..20_000)
            .map(|_| {
                (
                    f64::from(rng.random_range(1..30u32)),
                    rng.random_range(1.0..500.0),
                )
            })
            .collect();
        data.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let prep = Prepared::new(&data);
        let at = [2.5, 3.5, 28.0];
        let mut grad = [0.0; 3];
        let ll = prep.total_ll_grad(
            &Params {
                p: at[0],
                q: at[1],
                v: at[2],
            },
            &mut grad,
        );
        let ll_at = |w: [f64; 3]| {
            prep.total_ll(&Params {
                p: w[0],
                q: w[1],
                v: w[2],
            })
        };
        assert!((ll - ll_at(at)).abs() < 1e-9 * ll.abs());
        for j in 0..3 {
            let h = 1e-6 * at[j];
            let (mut up, mut down) = (at, at);
            up[j] += h;
            down[j] -= h;
            let numeric = (ll_at(up) - ll_at(down)) / (2.0 * h);
            assert!(
                (grad[j] - numeric).abs() < 1e-5 * numeric.abs().max(1.0),
                "parameter {j}: {} vs {numeric}",
                grad[j]
            );
        }
    }

    #[test]
    fn btyd_gamma_gamma_expected_value_and_errors() {
        let par = Params {
            p: 6.25,
            q: 3.74,
            v: 15.44,
        };
        // x = 0 → population mean p v / (q − 1)
        assert!((expected_value(&par, 0.0, 0.0) - 6.25 * 15.44 / 2.74).abs() < 1e-12);
        let w = 6.25 * 2.0 / (12.5 + 2.74);
        let want = (1.0 - w) * 6.25 * 15.44 / 2.74 + w * 20.0;
        assert!((expected_value(&par, 2.0, 20.0) - want).abs() < 1e-12);
        assert!(matches!(
            fit(&[(1.0, 10.0), (2.0, 0.0), (1.0, 3.0)], 0.0),
            Err(FitError::BadValue {
                arg: "monetary_value",
                row: 1,
                ..
            })
        ));
        assert!(matches!(
            fit(&[(1.0, 10.0), (0.0, 0.0), (1.0, 3.0)], 0.0),
            Err(FitError::TooFew { got: 2, .. })
        ));
    }
}
