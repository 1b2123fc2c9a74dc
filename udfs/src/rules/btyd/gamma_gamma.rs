//! The Gamma-Gamma spend model (Fader, Hardie & Lee 2005b; Colombo & Jiang
//! 1999): a customer's transaction values are Gamma(p, ν) with
//! ν ~ Gamma(q, v). Fitted on repeat buyers only (frequency > 0), as in
//! `lifetimes.GammaGammaFitter`; q > 1 is enforced by fitting ln(q − 1), which
//! leaves the estimate unchanged whenever the unconstrained optimum has q > 1
//! and keeps the expected value finite otherwise.

use super::FitError;
use super::optim::{Options, nelder_mead};
use super::special::ln_gamma;

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
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// The maximum-likelihood parameters.
    pub params: Params,
    /// Total log-likelihood over the repeat buyers used.
    pub ll: f64,
    /// Repeat buyers used.
    pub n: usize,
    /// Whether the optimiser met its tolerances.
    pub converged: bool,
}

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
    if !(penalizer.is_finite() && penalizer >= 0.0) {
        return Err(FitError::BadValue {
            arg: "penalizer",
            row: 0,
            value: penalizer,
            why: "must be a non-negative number",
        });
    }
    let mut data: Vec<(f64, f64)> = Vec::new();
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
    let n = data.len() as f64;
    let ll_of = |par: &Params| {
        data.iter()
            .map(|&(x, m)| log_likelihood(par, x, m))
            .sum::<f64>()
    };
    let to_params = |th: &[f64]| Params {
        p: th[0].exp(),
        q: 1.0 + th[1].exp(),
        v: th[2].exp(),
    };
    let objective = |th: &[f64]| {
        let par = to_params(th);
        -ll_of(&par) / n + penalizer * (par.p * par.p + par.q * par.q + par.v * par.v)
    };
    let m = nelder_mead(objective, &[0.1; 3], Options::default());
    let params = to_params(&m.x);
    let ll = ll_of(&params);
    Ok(Fit {
        params,
        ll,
        n: data.len(),
        converged: m.converged && ll.is_finite(),
    })
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
