//! Special functions: ln Γ (from `libm`), the Gaussian hypergeometric
//! function ₂F₁(a, b; c; z) for 0 ≤ z < 1, returned as a logarithm, and
//! sums and differences of numbers held as logarithms.

/// ln Γ(x) for x > 0.
pub fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// ψ(x) = d/dx ln Γ(x), the digamma function, for x > 0: the recurrence
/// ψ(x) = ψ(x + 1) − 1/x up to x ≥ 10, then the asymptotic series to the
/// x⁻¹² term (truncation error below 1e-15 there).
pub fn digamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 || x.is_infinite() {
        return f64::NAN;
    }
    let mut x = x;
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let inv2 = 1.0 / (x * x);
    let series = 1.0 / 12.0
        - inv2
            * (1.0 / 120.0
                - inv2
                    * (1.0 / 252.0
                        - inv2 * (1.0 / 240.0 - inv2 * (1.0 / 132.0 - inv2 * 691.0 / 32760.0))));
    acc + x.ln() - 0.5 / x - inv2 * series
}

/// ln B(a, b), the log of the Beta function.
pub fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// ln(eᵃ + eᵇ) without overflow.
pub fn ln_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + (-(a - b).abs()).exp().ln_1p()
}

/// ln(eᵃ − eᵇ) for a ≥ b; −∞ when b ≥ a (the difference is 0 or would be
/// negative only through rounding).
pub fn ln_sub_exp(a: f64, b: f64) -> f64 {
    if b >= a {
        return f64::NEG_INFINITY;
    }
    a + (-(b - a).exp_m1()).ln()
}

/// Sum of the power series of ₂F₁(a, b; c; z) as (ln |sum|, sign), or `None`
/// when it has not converged after `MAX_TERMS` terms.
fn series(a: f64, b: f64, c: f64, z: f64) -> Option<(f64, f64)> {
    const MAX_TERMS: usize = 100_000;
    // Terms are scaled by 2^-k whenever they grow large, so that
    // nothing overflows; `ln_scale` keeps track of the factor.
    let mut term = 1.0_f64;
    let mut sum = 1.0_f64;
    let mut ln_scale = 0.0_f64;
    for n in 0..MAX_TERMS {
        let nf = n as f64;
        term *= (a + nf) * (b + nf) / ((c + nf) * (nf + 1.0)) * z;
        sum += term;
        if term == 0.0 || term.abs() <= 1e-17 * sum.abs() {
            return if sum == 0.0 {
                None
            } else {
                Some((sum.abs().ln() + ln_scale, sum.signum()))
            };
        }
        if sum.abs() > 1e250 {
            sum *= 1e-250;
            term *= 1e-250;
            ln_scale += 250.0 * std::f64::consts::LN_10;
        }
        if !sum.is_finite() {
            return None;
        }
    }
    None
}

/// ln ₂F₁(a, b; c; z) for 0 ≤ z < 1 and c > 0, or NaN when it cannot be
/// evaluated (or is not positive).
///
/// The power series is summed directly when it converges quickly (z ≤ ½);
/// otherwise the Euler transform
/// ₂F₁(a, b; c; z) = (1 − z)^(c − a − b) ₂F₁(c − a, c − b; c; z) is tried
/// first when it shortens the series (its terms shrink faster when c − a and
/// c − b are small), falling back to the direct series.
pub fn ln_hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    if !(0.0..1.0).contains(&z) || c <= 0.0 {
        return f64::NAN;
    }
    if z == 0.0 {
        return 0.0;
    }
    let euler = || series(c - a, c - b, c, z).map(|(l, s)| (l + (c - a - b) * (1.0 - z).ln(), s));
    let direct = || series(a, b, c, z);
    let prefer_euler = z > 0.5 && (c - a).abs() * (c - b).abs() < a.abs() * b.abs();
    let r = if prefer_euler {
        euler().or_else(direct)
    } else {
        direct().or_else(euler)
    };
    match r {
        Some((l, s)) if s > 0.0 => l,
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btyd_ln_gamma_values() {
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-13);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-13);
        assert!((ln_beta(2.0, 3.0) - (1.0f64 / 12.0).ln()).abs() < 1e-13);
    }

    #[test]
    fn btyd_hyp2f1_closed_forms() {
        // 2F1(1,1;2;z) = -ln(1-z)/z
        for z in [0.1, 0.5, 0.9, 0.99] {
            let want = (-(1.0f64 - z).ln() / z).ln();
            assert!((ln_hyp2f1(1.0, 1.0, 2.0, z) - want).abs() < 1e-12, "z={z}");
        }
        // 2F1(a,b;b;z) = (1-z)^-a
        for z in [0.3, 0.95, 0.999] {
            let want = -2.5 * (1.0f64 - z).ln();
            assert!((ln_hyp2f1(2.5, 3.0, 3.0, z) - want).abs() < 1e-10, "z={z}");
        }
        // Large parameters, as in BG/NBD with a big frequency: the Euler
        // transform keeps it finite. 2F1(a,b;b;z) with a, b ~ 300.
        let v = ln_hyp2f1(300.0, 301.0, 301.0, 0.9);
        assert!((v - (-300.0 * 0.1f64.ln())).abs() < 1e-8, "{v}");
        assert!(ln_hyp2f1(1.0, 1.0, 2.0, 1.0).is_nan());
    }

    #[test]
    fn btyd_log_sums() {
        assert!((ln_add_exp(2f64.ln(), 3f64.ln()) - 5f64.ln()).abs() < 1e-15);
        assert_eq!(ln_add_exp(1000.0, 1000.0), 1000.0 + 2f64.ln());
        assert_eq!(ln_add_exp(f64::NEG_INFINITY, 0.5), 0.5);
        assert_eq!(
            ln_add_exp(f64::NEG_INFINITY, f64::NEG_INFINITY),
            f64::NEG_INFINITY
        );
        assert!((ln_sub_exp(5f64.ln(), 3f64.ln()) - 2f64.ln()).abs() < 1e-15);
        // e^-800 − e^-801 underflows as a difference of doubles, not in logs.
        let want = -800.0 + (1.0 - (-1f64).exp()).ln();
        assert!((ln_sub_exp(-800.0, -801.0) - want).abs() < 1e-12);
        assert_eq!(ln_sub_exp(1.0, 1.0), f64::NEG_INFINITY);
        assert_eq!(ln_sub_exp(1.0, 2.0), f64::NEG_INFINITY);
    }

    #[test]
    fn btyd_digamma_known_values_and_derivative_of_ln_gamma() {
        let euler_gamma = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler_gamma).abs() < 1e-14);
        assert!((digamma(0.5) + euler_gamma + 2.0 * 2f64.ln()).abs() < 1e-14);
        // ψ(n) = H(n−1) − γ
        let h9: f64 = (1..10).map(|k| 1.0 / f64::from(k)).sum();
        assert!((digamma(10.0) - (h9 - euler_gamma)).abs() < 1e-14);
        // against a central difference of ln Γ over a wide range
        for x in [1e-3, 0.07, 0.9, 3.3, 17.0, 250.0, 1e5] {
            let h = 1e-5 * x;
            let numeric = (ln_gamma(x + h) - ln_gamma(x - h)) / (2.0 * h);
            assert!(
                (digamma(x) - numeric).abs() < 1e-6 * digamma(x).abs().max(1.0),
                "x={x}: {} vs {numeric}",
                digamma(x)
            );
        }
        assert!(digamma(0.0).is_nan() && digamma(-1.0).is_nan());
    }
}
