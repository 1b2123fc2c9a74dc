//! The BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the
//! easy way"): while alive, a customer buys at Poisson rate λ ~ Gamma(r, α);
//! after each purchase they drop out with probability p ~ Beta(a, b).
//!
//! Formulas and conventions as in the Python `lifetimes` library
//! (`BetaGeoFitter`): time is in the caller's unit; fitting minimises the mean
//! negative log-likelihood over log-parameters with the data rescaled so that
//! max T = 1 (only α depends on the unit), plus `penalizer · Σ params²`.

use super::optim::{BfgsOptions, Options, Start, minimize, warm_start};
use super::special::{digamma, ln_add_exp, ln_gamma, ln_hyp2f1};
use super::{
    FitError, Grouped, Prepared, Rfm, check_penalizer, fit_scale, group_rfm, par_sum, par_sums,
};

/// Fitted BG/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Shape of the Gamma prior of the purchase rate.
    pub r: f64,
    /// Rate (scale, in time units) of the Gamma prior of the purchase rate.
    pub alpha: f64,
    /// Beta prior of the drop-out probability.
    pub a: f64,
    /// Beta prior of the drop-out probability.
    pub b: f64,
}

/// The result of [`fit`].
pub type Fit = super::ModelFit<Params>;

/// Scratch space of [`total_ll`], reused across evaluations.
#[derive(Default)]
struct Buffers {
    head: Vec<f64>,
    odds: Vec<f64>,
    ln_time: Vec<f64>,
    inv_time: Vec<f64>,
    inv_bx1: Vec<f64>,
}

/// Σ w_i ln L_i and its gradient with respect to (r, α, a, b), over
/// prepared rows; `w_of_x` holds the total weight of each distinct
/// frequency. Each row costs one exponential and one logarithm: ln(α + t)
/// and 1/(α + t) are computed once per distinct time, the Γ and ψ terms
/// once per distinct frequency.
fn total_ll_grad(
    prep: &Prepared,
    w_of_x: &[f64],
    p: &Params,
    buf: &mut Buffers,
    grad: &mut [f64; 4],
) -> f64 {
    let Params { r, alpha, a, b } = *p;
    let lg_ab = ln_gamma(a + b);
    let lg_r = ln_gamma(r);
    let lg_b = ln_gamma(b);
    let ln_alpha = alpha.ln();
    let ln_a = a.ln();
    buf.head.clear();
    buf.head.extend(prep.xs.iter().map(|&x| {
        ln_gamma(r + x) - lg_r + r * ln_alpha + lg_ab + ln_gamma(b + x) - lg_b - ln_gamma(a + b + x)
    }));
    buf.odds.clear();
    buf.odds
        .extend(prep.xs.iter().map(|&x| ln_a - (b + x - 1.0).ln()));
    buf.inv_bx1.clear();
    buf.inv_bx1
        .extend(prep.xs.iter().map(|&x| 1.0 / (b + x - 1.0)));
    prep.ln_times(alpha, &mut buf.ln_time);
    buf.inv_time.clear();
    buf.inv_time
        .extend(prep.times.iter().map(|&t| 1.0 / (alpha + t)));
    let Buffers {
        head,
        odds,
        ln_time,
        inv_time,
        inv_bx1,
    } = &*buf;
    // [Σ w ln L, Σ w ∂(−tail)/∂r, Σ w ∂(−tail)/∂α, Σ w s₄, Σ w s₄/(b+x−1)],
    // s₄ being the share of the second term of the bracket.
    let [ll, d_r, d_alpha, s4_sum, s4_b] = par_sums(prep.rows.len(), |i, acc: &mut [f64; 5]| {
        let row = &prep.rows[i];
        let w = prep.w[i];
        let k = prep.x_of[i];
        let rx = r + row.x;
        let (lt, it) = (ln_time[prep.t_of[i]], inv_time[prep.t_of[i]]);
        let a3 = -rx * lt;
        if row.x > 0.0 {
            let (ltx, itx) = (ln_time[prep.tx_of[i]], inv_time[prep.tx_of[i]]);
            let a4 = odds[k] - rx * ltx;
            let e = (-(a3 - a4).abs()).exp();
            let hi = 1.0 / (1.0 + e);
            let (s3, s4) = if a3 >= a4 { (hi, e * hi) } else { (e * hi, hi) };
            // ln(1 + e) rather than ln_1p: e ≤ 1 is added to a term of order
            // one, so the rounding of 1 + e costs nothing the sum can see,
            // and ln is several times cheaper than glibc's log1p (which was
            // a fifth of the whole fit's time).
            acc[0] += w * (head[k] + a3.max(a4) + (1.0 + e).ln());
            acc[1] += w * (s3 * lt + s4 * ltx);
            acc[2] += w * rx * (s3 * it + s4 * itx);
            acc[3] += w * s4;
            acc[4] += w * s4 * inv_bx1[k];
        } else {
            acc[0] += w * (head[k] + a3);
            acc[1] += w * lt;
            acc[2] += w * rx * it;
        }
    });
    let (psi_r, psi_ab, psi_b) = (digamma(r), digamma(a + b), digamma(b));
    let mut g = [0.0; 4];
    for (&x, &wx) in prep.xs.iter().zip(w_of_x) {
        let psi_abx = digamma(a + b + x);
        g[0] += wx * (digamma(r + x) - psi_r + ln_alpha);
        g[1] += wx * r / alpha;
        g[2] += wx * (psi_ab - psi_abx);
        g[3] += wx * (psi_ab + digamma(b + x) - psi_b - psi_abx);
    }
    *grad = [g[0] - d_r, g[1] - d_alpha, g[2] + s4_sum / a, g[3] - s4_b];
    ll
}

/// Σ w_i ln L_i over prepared rows (the same sum as [`log_likelihood`] row
/// by row, with the terms shared by rows computed once).
fn total_ll(prep: &Prepared, p: &Params, buf: &mut Buffers) -> f64 {
    let Params { r, alpha, a, b } = *p;
    let lg_ab = ln_gamma(a + b);
    let lg_r = ln_gamma(r);
    let lg_b = ln_gamma(b);
    let ln_alpha = alpha.ln();
    let ln_a = a.ln();
    buf.head.clear();
    buf.head.extend(prep.xs.iter().map(|&x| {
        ln_gamma(r + x) - lg_r + r * ln_alpha + lg_ab + ln_gamma(b + x) - lg_b - ln_gamma(a + b + x)
    }));
    buf.odds.clear();
    buf.odds
        .extend(prep.xs.iter().map(|&x| ln_a - (b + x - 1.0).ln()));
    prep.ln_times(alpha, &mut buf.ln_time);
    let Buffers {
        head,
        odds,
        ln_time,
        ..
    } = &*buf;
    par_sum(prep.rows.len(), |i| {
        let row = &prep.rows[i];
        let k = prep.x_of[i];
        let a3 = -(r + row.x) * ln_time[prep.t_of[i]];
        let tail = if row.x > 0.0 {
            let a4 = odds[k] - (r + row.x) * ln_time[prep.tx_of[i]];
            ln_add_exp(a3, a4)
        } else {
            a3
        };
        prep.w[i] * (head[k] + tail)
    })
}

/// ln of the bracket of the likelihood: (α+T)^-(r+x) + [x>0] a/(b+x−1) (α+t_x)^-(r+x).
#[inline]
fn tail(row: &Rfm, r: f64, alpha: f64, ln_a: f64, b: f64) -> f64 {
    let a3 = -(r + row.x) * (alpha + row.t).ln();
    if row.x > 0.0 {
        let a4 = ln_a - (b + row.x - 1.0).ln() - (r + row.x) * (alpha + row.t_x).ln();
        ln_add_exp(a3, a4)
    } else {
        a3
    }
}

/// ln L of one customer.
pub fn log_likelihood(p: &Params, c: &Rfm) -> f64 {
    let Params { r, alpha, a, b } = *p;
    let x = c.x;
    ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() + ln_gamma(a + b) + ln_gamma(b + x)
        - ln_gamma(b)
        - ln_gamma(a + b + x)
        + tail(c, r, alpha, a.ln(), b)
}

/// Fit by maximum likelihood. `penalizer` ≥ 0 adds `penalizer · Σ params²`
/// (on the rescaled parameters, as `lifetimes` does) to the mean negative
/// log-likelihood.
pub fn fit(rows: &[Rfm], penalizer: f64) -> Result<Fit, FitError> {
    check_penalizer(penalizer)?;
    let g = group_rfm(rows)?;
    Ok(fit_grouped(&g, penalizer))
}

/// Fit already grouped and checked data (see [`group_rfm`]).
pub fn fit_grouped(g: &Grouped, penalizer: f64) -> Fit {
    fit_grouped_with(g, penalizer, true)
}

/// [`fit_grouped`]; `warm` allows the warm start from a thinned sample.
fn fit_grouped_with(g: &Grouped, penalizer: f64, warm: bool) -> Fit {
    let scale = fit_scale(g);
    let prep = Prepared::new(g, scale);
    let w_of_x = weight_per_x(&prep);
    let buf = std::cell::RefCell::new(Buffers::default());
    let x0 = [0.1; 4];
    // Many distinct rows: start from the fit of a thinned sample (same
    // scale, so the same θ), which costs a fraction of one evaluation per step.
    let start = match warm.then(|| g.thinned_for_warm_start()).flatten() {
        Some(sub) => {
            let sub = Prepared::new(&sub, scale);
            let sub_w = weight_per_x(&sub);
            warm_start(
                |th, out| mean_nll_grad(&sub, &sub_w, penalizer, &mut buf.borrow_mut(), th, out),
                &x0,
            )
        }
        None => Start::at(&x0),
    };
    let m = minimize(
        |th, out| mean_nll_grad(&prep, &w_of_x, penalizer, &mut buf.borrow_mut(), th, out),
        |th| {
            let p = to_params(th);
            -total_ll(&prep, &p, &mut buf.borrow_mut()) / prep.w_sum + penalty(penalizer, &p)
        },
        &start,
        BfgsOptions::default(),
        Options::default(),
    );
    let scaled = to_params(&m.x);
    let params = Params {
        alpha: scaled.alpha / scale,
        ..scaled
    };
    // ln L on the caller's time unit: rescaling times and α by s changes
    // each customer's ln L by −x·ln s (the powers of α and of α + time).
    let sum_wx: f64 = prep.xs.iter().zip(&w_of_x).map(|(x, w)| x * w).sum();
    let ll = total_ll(&prep, &scaled, &mut buf.borrow_mut()) + scale.ln() * sum_wx;
    let converged = m.converged && ll.is_finite();
    Fit {
        params,
        ll,
        n: g.n,
        converged,
    }
}

/// Parameters from θ = ln(params).
fn to_params(th: &[f64]) -> Params {
    Params {
        r: th[0].exp(),
        alpha: th[1].exp(),
        a: th[2].exp(),
        b: th[3].exp(),
    }
}

/// The L2 penalty `lifetimes` adds to the mean negative log-likelihood.
fn penalty(penalizer: f64, p: &Params) -> f64 {
    penalizer * (p.r * p.r + p.alpha * p.alpha + p.a * p.a + p.b * p.b)
}

/// The total weight of each distinct frequency of `prep`.
fn weight_per_x(prep: &Prepared) -> Vec<f64> {
    let mut w_of_x = vec![0.0; prep.xs.len()];
    for (&k, &w) in prep.x_of.iter().zip(&prep.w) {
        w_of_x[k] += w;
    }
    w_of_x
}

/// The objective of the fit: mean negative log-likelihood (plus penalty)
/// over θ = ln(params), with its gradient (∂/∂θ = param · ∂/∂param) in `out`.
fn mean_nll_grad(
    prep: &Prepared,
    w_of_x: &[f64],
    penalizer: f64,
    buf: &mut Buffers,
    th: &[f64],
    out: &mut [f64],
) -> f64 {
    let p = to_params(th);
    let mut d = [0.0; 4];
    let ll = total_ll_grad(prep, w_of_x, &p, buf, &mut d);
    for (j, v) in [p.r, p.alpha, p.a, p.b].into_iter().enumerate() {
        out[j] = v * (-d[j] / prep.w_sum + 2.0 * penalizer * v);
    }
    -ll / prep.w_sum + penalty(penalizer, &p)
}

/// P(alive | x, t_x, T): the probability the customer has not dropped out.
pub fn p_alive(p: &Params, c: &Rfm) -> f64 {
    if c.x == 0.0 {
        return 1.0;
    }
    let log_div =
        (p.r + c.x) * ((p.alpha + c.t) / (p.alpha + c.t_x)).ln() + (p.a / (p.b + c.x - 1.0)).ln();
    1.0 / (1.0 + log_div.exp())
}

/// E[Y(horizon) | x, t_x, T]: expected number of purchases in the next
/// `horizon` time units (Fader, Hardie & Lee 2005, eq. 10).
pub fn expected_purchases(p: &Params, horizon: f64, c: &Rfm) -> f64 {
    if horizon == 0.0 {
        return 0.0;
    }
    expected_purchases_numerator(p, horizon, c.x, c.t) / expected_purchases_denominator(p, c)
}

/// The numerator of [`expected_purchases`]: it depends on the customer
/// through x and T only (not t_x), so callers that evaluate many horizons for
/// many customers ([`super::clv`]) can share it between customers.
pub fn expected_purchases_numerator(p: &Params, horizon: f64, x: f64, t: f64) -> f64 {
    let Params { r, alpha, a, b } = *p;
    let (ha, hb, hc) = (r + x, b + x, a + b + x - 1.0);
    let z = horizon / (alpha + t + horizon);
    let ln_hyp = ln_hyp2f1(ha, hb, hc, z);
    let first = (a + b + x - 1.0) / (a - 1.0);
    let second = 1.0 - (ln_hyp + (r + x) * ((alpha + t) / (alpha + horizon + t)).ln()).exp();
    first * second
}

/// The denominator of [`expected_purchases`]: 1 + [x>0] a/(b+x−1) ((α+T)/(α+t_x))^(r+x).
pub fn expected_purchases_denominator(p: &Params, c: &Rfm) -> f64 {
    let Params { r, alpha, a, b } = *p;
    let x = c.x;
    if x > 0.0 {
        1.0 + a / (b + x - 1.0) * ((alpha + c.t) / (alpha + c.t_x)).powf(r + x)
    } else {
        1.0
    }
}

/// P(N(horizon) = n) for a customer drawn at random from the population,
/// observed for `horizon` time units from their first purchase
/// (Fader, Hardie & Lee 2005, eq. 8).
pub fn probability_of_n(p: &Params, horizon: f64, n: u64) -> f64 {
    use super::special::ln_beta;
    let Params { r, alpha, a, b } = *p;
    let nf = n as f64;
    let q = alpha / (alpha + horizon);
    let s = horizon / (alpha + horizon);
    let first =
        (ln_beta(a, b + nf) - ln_beta(a, b) + ln_gamma(r + nf) - ln_gamma(r) - ln_gamma(nf + 1.0)
            + r * q.ln()
            + if n > 0 { nf * s.ln() } else { 0.0 })
        .exp();
    if n == 0 {
        return first;
    }
    let mut finite_sum = 0.0;
    for j in 0..n {
        let jf = j as f64;
        let ln_t = ln_gamma(r + jf) - ln_gamma(r) - ln_gamma(jf + 1.0)
            + if j > 0 { jf * s.ln() } else { 0.0 };
        finite_sum += ln_t.exp();
    }
    let second =
        (ln_beta(a + 1.0, b + nf - 1.0) - ln_beta(a, b)).exp() * (1.0 - q.powf(r) * finite_sum);
    first + second
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Beta, Distribution, Exp, Gamma};

    /// Simulate `n` BG/NBD customers with T uniform in [t_min, t_max].
    pub(crate) fn simulate(p: &Params, n: usize, t_min: f64, t_max: f64, seed: u64) -> Vec<Rfm> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let lam_d = Gamma::new(p.r, 1.0 / p.alpha).unwrap();
        let p_d = Beta::new(p.a, p.b).unwrap();
        (0..n)
            .map(|_| {
                let lam: f64 = lam_d.sample(&mut rng);
                let drop: f64 = p_d.sample(&mut rng);
                let t = rng.random_range(t_min..t_max);
                let exp = Exp::new(lam).unwrap();
                let (mut now, mut x, mut last) = (0.0, 0.0, 0.0);
                loop {
                    now += exp.sample(&mut rng);
                    if now > t {
                        break;
                    }
                    x += 1.0;
                    last = now;
                    // drop out right after each repeat purchase with prob p
                    if rng.random::<f64>() < drop {
                        break;
                    }
                }
                Rfm { x, t_x: last, t }
            })
            .collect()
    }

    const TRUE: Params = Params {
        r: 0.25,
        alpha: 4.0,
        a: 0.8,
        b: 2.5,
    };

    #[test]
    fn btyd_bgnbd_parameter_recovery_n20000() {
        let rows = simulate(&TRUE, 20_000, 30.0, 80.0, 7);
        let f = fit(&rows, 0.0).unwrap();
        assert!(f.converged);
        assert_eq!(f.n, 20_000);
        let rel = |got: f64, want: f64| (got - want).abs() / want;
        // Stated tolerance: 15 % relative for every parameter at n = 20,000.
        for (name, got, want) in [
            ("r", f.params.r, TRUE.r),
            ("alpha", f.params.alpha, TRUE.alpha),
            ("a", f.params.a, TRUE.a),
            ("b", f.params.b, TRUE.b),
        ] {
            assert!(rel(got, want) < 0.15, "{name}: got {got}, true {want}");
        }
    }

    /// Over 50,000 distinct rows the fit starts from the fit of a thinned
    /// sample; it must land where a cold start does, and its ln L must be
    /// the row-by-row sum on the caller's unit.
    #[test]
    fn btyd_bgnbd_warm_start_reaches_the_cold_fit() {
        let rows = simulate(&TRUE, 60_000, 30.0, 80.0, 11);
        let g = group_rfm(&rows).unwrap();
        assert!(g.rows.len() >= 50_000, "{} distinct rows", g.rows.len());
        assert!(g.thinned_for_warm_start().is_some());
        let warm = fit_grouped_with(&g, 0.0, true);
        let cold = fit_grouped_with(&g, 0.0, false);
        assert!(warm.converged && cold.converged);
        let (w, c) = (warm.params, cold.params);
        for (name, a, b) in [
            ("r", w.r, c.r),
            ("alpha", w.alpha, c.alpha),
            ("a", w.a, c.a),
            ("b", w.b, c.b),
        ] {
            assert!((a - b).abs() / b < 1e-6, "{name}: warm {a} vs cold {b}");
        }
        let direct: f64 = rows.iter().map(|r| log_likelihood(&w, r)).sum();
        assert!(
            (warm.ll - direct).abs() / direct.abs() < 1e-12,
            "{} vs {direct}",
            warm.ll
        );
        assert!((warm.ll - cold.ll).abs() / cold.ll.abs() < 1e-12);
        // The public fit takes the warm path, and the row order does not matter.
        let mut reversed = rows.clone();
        reversed.reverse();
        assert_eq!(fit(&reversed, 0.0).unwrap(), warm);
    }

    #[test]
    fn btyd_bgnbd_gradient_matches_finite_differences() {
        let rows = simulate(&TRUE, 5_000, 30.0, 80.0, 3);
        let g = group_rfm(&rows).unwrap();
        let prep = Prepared::new(&g, fit_scale(&g));
        let mut w_of_x = vec![0.0; prep.xs.len()];
        for (&k, &w) in prep.x_of.iter().zip(&prep.w) {
            w_of_x[k] += w;
        }
        let mut buf = Buffers::default();
        let at = Params {
            r: 0.4,
            alpha: 0.07,
            a: 0.6,
            b: 3.1,
        };
        let mut grad = [0.0; 4];
        let ll = total_ll_grad(&prep, &w_of_x, &at, &mut buf, &mut grad);
        assert!((ll - total_ll(&prep, &at, &mut buf)).abs() < 1e-9 * ll.abs());
        let v = [at.r, at.alpha, at.a, at.b];
        for j in 0..4 {
            let h = 1e-6 * v[j];
            let shifted = |d: f64| {
                let mut w = v;
                w[j] += d;
                let p = Params {
                    r: w[0],
                    alpha: w[1],
                    a: w[2],
                    b: w[3],
                };
                total_ll(&prep, &p, &mut Buffers::default())
            };
            let numeric = (shifted(h) - shifted(-h)) / (2.0 * h);
            assert!(
                (grad[j] - numeric).abs() < 1e-5 * numeric.abs().max(1.0),
                "parameter {j}: {} vs {numeric}",
                grad[j]
            );
        }
    }

    #[test]
    fn btyd_bgnbd_units_are_a_pure_rescaling() {
        let rows = simulate(&TRUE, 3_000, 30.0, 80.0, 11);
        let days: Vec<Rfm> = rows
            .iter()
            .map(|r| Rfm {
                x: r.x,
                t_x: r.t_x * 7.0,
                t: r.t * 7.0,
            })
            .collect();
        let w = fit(&rows, 0.0).unwrap();
        let d = fit(&days, 0.0).unwrap();
        assert!((d.params.alpha / w.params.alpha - 7.0).abs() < 7e-5);
        assert!((d.params.r / w.params.r - 1.0).abs() < 1e-5);
        assert!((d.params.b / w.params.b - 1.0).abs() < 1e-5);
        let c = rows[0];
        let cd = days[0];
        let ew = expected_purchases(&w.params, 10.0, &c);
        let ed = expected_purchases(&d.params, 70.0, &cd);
        assert!((ew - ed).abs() < 1e-5 * ew.max(1e-3), "{ew} vs {ed}");
    }

    #[test]
    fn btyd_bgnbd_p_alive_and_expected_values() {
        // Hand-computed from the closed forms with r=0.243, α=4.414, a=0.793, b=2.426.
        let p = Params {
            r: 0.243,
            alpha: 4.414,
            a: 0.793,
            b: 2.426,
        };
        let c = Rfm {
            x: 2.0,
            t_x: 30.43,
            t: 38.86,
        };
        let want_alive =
            1.0 / (1.0 + (2.243f64 * (43.274f64 / 34.844).ln() + (0.793f64 / 3.426).ln()).exp());
        assert!((p_alive(&p, &c) - want_alive).abs() < 1e-15);
        assert_eq!(
            p_alive(
                &p,
                &Rfm {
                    x: 0.0,
                    t_x: 0.0,
                    t: 5.0
                }
            ),
            1.0
        );
        assert_eq!(expected_purchases(&p, 0.0, &c), 0.0);
        // P(N=n) sums to 1 over n.
        let total: f64 = (0..2000).map(|n| probability_of_n(&p, 39.0, n)).sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        // E[Y] grows with the horizon.
        let e1 = expected_purchases(&p, 10.0, &c);
        let e2 = expected_purchases(&p, 20.0, &c);
        assert!(e1 > 0.0 && e2 > e1, "{e1} {e2}");
    }

    #[test]
    fn btyd_bgnbd_degenerate_input() {
        let z = Rfm {
            x: 0.0,
            t_x: 0.0,
            t: 5.0,
        };
        assert_eq!(fit(&[z, z, z], 0.0), Err(FitError::NoRepeat));
        let one = Rfm {
            x: 1.0,
            t_x: 1.0,
            t: 5.0,
        };
        assert_eq!(
            fit(&[one, z], 0.0),
            Err(FitError::TooFew {
                what: "customers",
                got: 2,
                need: 3
            })
        );
        let bad = Rfm {
            x: 1.0,
            t_x: 6.0,
            t: 5.0,
        };
        assert!(matches!(
            fit(&[one, z, bad], 0.0),
            Err(FitError::BadValue {
                arg: "recency",
                row: 2,
                ..
            })
        ));
        let neg = Rfm {
            x: -1.0,
            t_x: 0.0,
            t: 5.0,
        };
        assert!(matches!(
            fit(&[neg, z, one], 0.0),
            Err(FitError::BadValue {
                arg: "frequency",
                row: 0,
                ..
            })
        ));
    }

    #[test]
    fn btyd_bgnbd_grouping_matches_ungrouped_likelihood() {
        // Times floored to tenths, so that rows repeat.
        let rows: Vec<Rfm> = simulate(&TRUE, 500, 30.0, 31.0, 3)
            .iter()
            .map(|c| Rfm {
                x: c.x,
                t_x: (c.t_x * 10.0).floor() / 10.0,
                t: (c.t * 10.0).floor() / 10.0,
            })
            .collect();
        let g = group_rfm(&rows).unwrap();
        assert!(g.rows.len() < rows.len());
        let grouped = total_ll(&Prepared::new(&g, 1.0), &TRUE, &mut Buffers::default());
        let direct: f64 = rows.iter().map(|c| log_likelihood(&TRUE, c)).sum();
        assert!((grouped - direct).abs() < 1e-9 * direct.abs());
    }
}
