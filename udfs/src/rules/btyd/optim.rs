//! Minimisers for the likelihood fits: [`bfgs`] (quasi-Newton with analytic
//! gradients, used where a model provides them) and [`nelder_mead`] (the
//! derivative-free simplex of Nelder & Mead 1965 with the standard
//! coefficients and restarts from the best point), which also polishes a
//! BFGS run that stopped short of its tolerance ([`minimize`]).
//!
//! Written here rather than pulled from `argmin` to keep the build small: the
//! likelihoods have 3–4 parameters, and both routines together are some 200
//! lines with tests. Non-finite objective values count as +∞, so both retreat
//! from regions where the model cannot be evaluated.

/// Result of a minimisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    /// The best point found.
    pub x: Vec<f64>,
    /// The objective there.
    pub f: f64,
    /// Objective evaluations used.
    pub evals: usize,
    /// Whether the tolerances were met within the evaluation budget.
    pub converged: bool,
}

/// Options of [`nelder_mead`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Stop when max |f_i − f_best| over the simplex is below this.
    pub f_tol: f64,
    /// … and max |x_i − x_best| (∞-norm) is below this.
    pub x_tol: f64,
    /// Evaluation budget (over all restarts).
    pub max_evals: usize,
    /// Initial step along each axis.
    pub step: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            f_tol: 1e-13,
            x_tol: 1e-9,
            max_evals: 20_000,
            step: 0.5,
        }
    }
}

/// Options of [`bfgs`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BfgsOptions {
    /// Converged when the largest gradient component is below this.
    pub g_tol: f64,
    /// The noise floor: when the next step promises (½|gᵀd|), or three
    /// steps in a row achieve, a decrease of f below `f_rel_tol`·|f|,
    /// f is as low as its rounding lets it be shown, and the run stops …
    pub f_rel_tol: f64,
    /// … converged if the largest gradient component is below this, else
    /// not ([`minimize`] then polishes with Nelder-Mead).
    pub floor_g_tol: f64,
    /// Iteration budget.
    pub max_iter: usize,
    /// Largest change of any coordinate in one step (the parameters are
    /// logarithms: 5 is a factor of e⁵ ≈ 150).
    pub max_step: f64,
}

impl Default for BfgsOptions {
    fn default() -> Self {
        BfgsOptions {
            g_tol: 1e-9,
            f_rel_tol: 1e-13,
            floor_g_tol: 1e-6,
            max_iter: 500,
            max_step: 5.0,
        }
    }
}

/// Minimise `f` from `x0` by BFGS with a backtracking (Armijo) line search.
/// `f(x, grad)` returns the objective and writes its gradient into `grad`.
///
/// Converged when the largest gradient component is below `g_tol`. A
/// likelihood summed over a million customers carries rounding noise of
/// about 1e-15 of its value, which an Armijo search can mistake for
/// progress: steps shrink towards nothing while the gradient stays just
/// above `g_tol`. So the run also stops at the noise floor (see
/// [`BfgsOptions::f_rel_tol`]), and when the line search cannot decrease f
/// at all; unconverged, [`minimize`] then finishes with Nelder-Mead.
pub fn bfgs(f: impl FnMut(&[f64], &mut [f64]) -> f64, x0: &[f64], opt: BfgsOptions) -> Minimum {
    bfgs_from(f, &Start::at(x0), opt).0
}

/// Where a minimisation starts: a point and, optionally, an estimate of the
/// inverse Hessian there (row-major), as [`warm_start`] gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    /// The starting point.
    pub x: Vec<f64>,
    /// Inverse Hessian estimate; `None` starts from a scaled identity.
    pub inv_hessian: Option<Vec<f64>>,
    /// Objective evaluations already spent finding this start.
    pub evals: usize,
}

impl Start {
    /// Start at `x0` knowing nothing of the curvature.
    pub fn at(x0: &[f64]) -> Start {
        Start {
            x: x0.to_vec(),
            inv_hessian: None,
            evals: 0,
        }
    }
}

/// A start for a costly objective found on a cheap stand-in for it: BFGS on
/// `approx` (the same likelihood over a subsample) from `x0`, to a loose
/// tolerance. Its minimum is within sampling error of the real one and its
/// curvature estimate is that of the real objective (both are means per
/// customer), so BFGS on the real objective from there needs a few steps
/// instead of a whole descent. Falls back to a cold start at `x0` when the
/// stand-in cannot be minimised.
pub fn warm_start(approx: impl FnMut(&[f64], &mut [f64]) -> f64, x0: &[f64]) -> Start {
    let opt = BfgsOptions {
        g_tol: 1e-6,
        ..BfgsOptions::default()
    };
    let (m, h) = bfgs_from(approx, &Start::at(x0), opt);
    if m.f.is_finite() && m.x.iter().all(|v| v.is_finite()) && h.iter().all(|v| v.is_finite()) {
        Start {
            x: m.x,
            inv_hessian: Some(h),
            evals: m.evals,
        }
    } else {
        Start {
            evals: m.evals,
            ..Start::at(x0)
        }
    }
}

/// [`bfgs`] from a [`Start`]; also returns the final inverse Hessian
/// estimate. `evals` counts the start's evaluations too.
pub fn bfgs_from(
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    start: &Start,
    opt: BfgsOptions,
) -> (Minimum, Vec<f64>) {
    let x0 = &start.x;
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    let mut evals = start.evals + 1;
    let finite = |v: f64, g: &[f64]| v.is_finite() && g.iter().all(|c| c.is_finite());
    if !finite(fx, &g) {
        let m = Minimum {
            x,
            f: f64::INFINITY,
            evals,
            converged: false,
        };
        return (m, Vec::new());
    }
    // Inverse Hessian approximation, row-major; identity until the first
    // step gives a curvature estimate.
    let identity = |h: &mut Vec<f64>, scale: f64| {
        h.clear();
        h.extend((0..n * n).map(|k| if k % (n + 1) == 0 { scale } else { 0.0 }));
    };
    let mut h = Vec::with_capacity(n * n);
    let mut fresh = match &start.inv_hessian {
        Some(h0) if h0.len() == n * n => {
            h.extend_from_slice(h0);
            false
        }
        _ => {
            identity(&mut h, 1.0);
            true
        }
    };
    let (mut d, mut xn, mut gn, mut s, mut y, mut hy) = (
        vec![0.0; n],
        vec![0.0; n],
        vec![0.0; n],
        vec![0.0; n],
        vec![0.0; n],
        vec![0.0; n],
    );
    let inf_norm = |v: &[f64]| v.iter().fold(0.0f64, |m, c| m.max(c.abs()));
    let mut stalled = 0;
    for _ in 0..opt.max_iter {
        if inf_norm(&g) <= opt.g_tol {
            return (
                Minimum {
                    x,
                    f: fx,
                    evals,
                    converged: true,
                },
                h,
            );
        }
        for i in 0..n {
            d[i] = -(0..n).map(|j| h[i * n + j] * g[j]).sum::<f64>();
        }
        let mut slope: f64 = d.iter().zip(&g).map(|(a, b)| a * b).sum();
        if slope >= 0.0 || !slope.is_finite() {
            // not a descent direction: forget the curvature, go downhill
            identity(&mut h, 1.0);
            fresh = true;
            for i in 0..n {
                d[i] = -g[i];
            }
            slope = -g.iter().map(|c| c * c).sum::<f64>();
        }
        // The decrease a full quasi-Newton step promises, ½|gᵀd|, is below
        // what f's rounding can show: this is the minimum as far as f can tell.
        if -slope <= opt.f_rel_tol * fx.abs() {
            return (
                Minimum {
                    converged: inf_norm(&g) <= opt.floor_g_tol,
                    x,
                    f: fx,
                    evals,
                },
                h,
            );
        }
        let mut t = 1.0f64.min(opt.max_step / inf_norm(&d));
        if fresh {
            t = t.min(1.0 / inf_norm(&g).max(1e-300));
        }
        let mut accepted = false;
        for _ in 0..60 {
            for i in 0..n {
                xn[i] = x[i] + t * d[i];
            }
            let fnew = f(&xn, &mut gn);
            evals += 1;
            if finite(fnew, &gn) && fnew <= fx + 1e-4 * t * slope {
                if fx - fnew <= opt.f_rel_tol * fx.abs() {
                    stalled += 1;
                } else {
                    stalled = 0;
                }
                for i in 0..n {
                    s[i] = xn[i] - x[i];
                    y[i] = gn[i] - g[i];
                }
                x.clone_from(&xn);
                g.clone_from(&gn);
                fx = fnew;
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        if !accepted {
            break;
        }
        if stalled >= 3 {
            return (
                Minimum {
                    converged: inf_norm(&g) <= opt.floor_g_tol,
                    x,
                    f: fx,
                    evals,
                },
                h,
            );
        }
        let sy: f64 = s.iter().zip(&y).map(|(a, b)| a * b).sum();
        if sy > 1e-300 {
            if fresh {
                let yy: f64 = y.iter().map(|c| c * c).sum();
                identity(&mut h, sy / yy);
                fresh = false;
            }
            // H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ
            let rho = 1.0 / sy;
            for i in 0..n {
                hy[i] = (0..n).map(|j| h[i * n + j] * y[j]).sum();
            }
            let yhy: f64 = y.iter().zip(&hy).map(|(a, b)| a * b).sum();
            for i in 0..n {
                for j in 0..n {
                    h[i * n + j] += -rho * (hy[i] * s[j] + s[i] * hy[j])
                        + (rho * rho * yhy + rho) * s[i] * s[j];
                }
            }
        }
    }
    let m = Minimum {
        converged: inf_norm(&g) <= opt.g_tol,
        x,
        f: fx,
        evals,
    };
    (m, h)
}

/// Minimise a smooth objective with gradients: [`bfgs`] from `start`, then,
/// if it stopped short of its gradient tolerance, [`nelder_mead`] from
/// where it stopped (`f_only` evaluates the objective alone). Converged when
/// either met its tolerances. `evals` counts the start's evaluations too.
pub fn minimize(
    mut f_grad: impl FnMut(&[f64], &mut [f64]) -> f64,
    f_only: impl FnMut(&[f64]) -> f64,
    start: &Start,
    bfgs_opt: BfgsOptions,
    nm_opt: Options,
) -> Minimum {
    let (b, _) = bfgs_from(&mut f_grad, start, bfgs_opt);
    if b.converged {
        return b;
    }
    let from = if b.f.is_finite() { &b.x } else { &start.x };
    let mut m = nelder_mead(f_only, from, nm_opt);
    m.evals += b.evals;
    m
}

fn eval(f: &mut impl FnMut(&[f64]) -> f64, x: &[f64]) -> f64 {
    let v = f(x);
    if v.is_finite() { v } else { f64::INFINITY }
}

/// Minimise `f` from `x0`. The search restarts from the best point until a
/// restart no longer improves it (guarding against a collapsed simplex).
pub fn nelder_mead(mut f: impl FnMut(&[f64]) -> f64, x0: &[f64], opt: Options) -> Minimum {
    let mut best = Minimum {
        x: x0.to_vec(),
        f: eval(&mut f, x0),
        evals: 1,
        converged: false,
    };
    for _restart in 0..10 {
        let before = best.f;
        let (x, fx, used, ok) = one_run(
            &mut f,
            &best.x,
            opt,
            opt.max_evals - best.evals.min(opt.max_evals),
        );
        best.evals += used;
        if fx <= best.f {
            best.x = x;
            best.f = fx;
        }
        best.converged = ok;
        if !ok || (before - best.f).abs() <= opt.f_tol {
            break;
        }
    }
    best
}

fn one_run(
    f: &mut impl FnMut(&[f64]) -> f64,
    x0: &[f64],
    opt: Options,
    budget: usize,
) -> (Vec<f64>, f64, usize, bool) {
    let n = x0.len();
    let mut pts: Vec<Vec<f64>> = Vec::with_capacity(n + 1);
    let mut vals: Vec<f64> = Vec::with_capacity(n + 1);
    pts.push(x0.to_vec());
    vals.push(eval(f, x0));
    for i in 0..n {
        let mut p = x0.to_vec();
        p[i] += opt.step;
        vals.push(eval(f, &p));
        pts.push(p);
    }
    let mut evals = n + 1;
    let mut centroid = vec![0.0; n];
    let mut trial = vec![0.0; n];
    let mut trial2 = vec![0.0; n];
    loop {
        // order: best first
        let mut idx: Vec<usize> = (0..=n).collect();
        idx.sort_by(|&i, &j| vals[i].total_cmp(&vals[j]));
        pts = idx.iter().map(|&i| pts[i].clone()).collect();
        vals = idx.iter().map(|&i| vals[i]).collect();
        let f_spread = vals.iter().map(|v| (v - vals[0]).abs()).fold(0.0, f64::max);
        let x_spread = pts[1..]
            .iter()
            .flat_map(|p| p.iter().zip(&pts[0]).map(|(a, b)| (a - b).abs()))
            .fold(0.0, f64::max);
        if f_spread <= opt.f_tol && x_spread <= opt.x_tol {
            return (pts[0].clone(), vals[0], evals, true);
        }
        if evals >= budget {
            return (pts[0].clone(), vals[0], evals, false);
        }
        for (j, c) in centroid.iter_mut().enumerate() {
            *c = pts[..n].iter().map(|p| p[j]).sum::<f64>() / n as f64;
        }
        let worst = pts[n].clone();
        let along = |t: f64, out: &mut Vec<f64>| {
            for j in 0..n {
                out[j] = centroid[j] + t * (worst[j] - centroid[j]);
            }
        };
        along(-1.0, &mut trial); // reflection
        let fr = eval(f, &trial);
        evals += 1;
        if fr < vals[0] {
            along(-2.0, &mut trial2); // expansion
            let fe = eval(f, &trial2);
            evals += 1;
            if fe < fr {
                pts[n].clone_from(&trial2);
                vals[n] = fe;
            } else {
                pts[n].clone_from(&trial);
                vals[n] = fr;
            }
            continue;
        }
        if fr < vals[n - 1] {
            pts[n].clone_from(&trial);
            vals[n] = fr;
            continue;
        }
        // contraction: outside if the reflection beat the worst, else inside
        let (t, f_ref) = if fr < vals[n] {
            (-0.5, fr)
        } else {
            (0.5, vals[n])
        };
        along(t, &mut trial2);
        let fc = eval(f, &trial2);
        evals += 1;
        if fc <= f_ref {
            pts[n].clone_from(&trial2);
            vals[n] = fc;
            continue;
        }
        // shrink towards the best
        let best = pts[0].clone();
        for i in 1..=n {
            for (x, b) in pts[i].iter_mut().zip(&best) {
                *x = b + 0.5 * (*x - b);
            }
            vals[i] = eval(f, &pts[i]);
            evals += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rosen_grad(x: &[f64], g: &mut [f64]) -> f64 {
        g[0] = -2.0 * (1.0 - x[0]) - 400.0 * x[0] * (x[1] - x[0] * x[0]);
        g[1] = 200.0 * (x[1] - x[0] * x[0]);
        (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2)
    }

    #[test]
    fn btyd_bfgs_rosenbrock() {
        let m = bfgs(rosen_grad, &[-1.2, 1.0], BfgsOptions::default());
        assert!(m.converged, "{m:?}");
        assert!(
            (m.x[0] - 1.0).abs() < 1e-8 && (m.x[1] - 1.0).abs() < 1e-8,
            "{:?}",
            m.x
        );
        // far fewer evaluations than the simplex needs
        let nm = nelder_mead(
            |x: &[f64]| rosen_grad(x, &mut [0.0; 2]),
            &[-1.2, 1.0],
            Options::default(),
        );
        assert!(m.evals * 3 < nm.evals, "bfgs {} nm {}", m.evals, nm.evals);
    }

    #[test]
    fn btyd_bfgs_budget_and_nan_region() {
        let m = bfgs(
            rosen_grad,
            &[-1.2, 1.0],
            BfgsOptions {
                max_iter: 3,
                ..BfgsOptions::default()
            },
        );
        assert!(!m.converged);
        // (ln x)² + y², NaN for x < 0: the line search backs off from it.
        let g = |x: &[f64], g: &mut [f64]| {
            g[0] = 2.0 * x[0].ln() / x[0];
            g[1] = 2.0 * x[1];
            x[0].ln().powi(2) + x[1] * x[1]
        };
        let m = bfgs(g, &[0.2, 0.3], BfgsOptions::default());
        assert!(m.converged, "{m:?}");
        assert!(
            (m.x[0] - 1.0).abs() < 1e-9 && m.x[1].abs() < 1e-9,
            "{:?}",
            m.x
        );
        // A start where f cannot be evaluated: not converged, f = ∞.
        let m = bfgs(g, &[-1.0, 0.0], BfgsOptions::default());
        assert!(!m.converged && m.f == f64::INFINITY);
    }

    #[test]
    fn btyd_bfgs_stops_at_the_noise_floor() {
        // x² plus rounding-size noise that makes the gradient tolerance
        // unreachable: the run stops after a few stalled steps instead of
        // spending its whole budget, converged by the looser floor test.
        let mut k = 0u64;
        let mut noisy = |x: &[f64], g: &mut [f64]| {
            k = k
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = (k >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            g[0] = 2.0 * x[0] + 1e-8 * noise;
            x[0] * x[0] + 1.0 + 1e-15 * noise
        };
        let m = bfgs(&mut noisy, &[3.0], BfgsOptions::default());
        assert!(m.converged, "{m:?}");
        assert!(m.x[0].abs() < 1e-6, "{:?}", m.x);
        assert!(m.evals < 200, "{m:?}");
        // With a floor gradient tolerance it cannot meet, the run stops
        // unconverged just the same.
        let m = bfgs(
            &mut noisy,
            &[3.0],
            BfgsOptions {
                floor_g_tol: 1e-12,
                ..BfgsOptions::default()
            },
        );
        assert!(!m.converged && m.evals < 200, "{m:?}");
    }

    #[test]
    fn btyd_minimize_falls_back_to_nelder_mead() {
        // A gradient of the wrong sign makes every line search fail; the
        // simplex then finds the minimum from where BFGS stopped.
        let wrong = |x: &[f64], g: &mut [f64]| {
            g[0] = -2.0 * (x[0] - 3.0);
            (x[0] - 3.0).powi(2)
        };
        let m = minimize(
            wrong,
            |x: &[f64]| (x[0] - 3.0).powi(2),
            &Start::at(&[0.0]),
            BfgsOptions::default(),
            Options::default(),
        );
        assert!(m.converged);
        assert!((m.x[0] - 3.0).abs() < 1e-6, "{:?}", m.x);
    }

    #[test]
    fn btyd_nelder_mead_rosenbrock() {
        let rosen = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let m = nelder_mead(rosen, &[-1.2, 1.0], Options::default());
        assert!(m.converged);
        assert!(
            (m.x[0] - 1.0).abs() < 1e-6 && (m.x[1] - 1.0).abs() < 1e-6,
            "{:?}",
            m.x
        );
    }

    #[test]
    fn btyd_nelder_mead_reports_budget_exhaustion() {
        let rosen = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let m = nelder_mead(
            rosen,
            &[-1.2, 1.0],
            Options {
                max_evals: 20,
                ..Options::default()
            },
        );
        assert!(!m.converged);
    }

    #[test]
    fn btyd_nelder_mead_avoids_nan_region() {
        // ln is NaN for x < 0: the minimum of (ln x)^2 + y^2 at (1, 0).
        let g = |x: &[f64]| x[0].ln().powi(2) + x[1] * x[1];
        let m = nelder_mead(g, &[0.2, 0.3], Options::default());
        assert!(m.converged);
        assert!(
            (m.x[0] - 1.0).abs() < 1e-5 && m.x[1].abs() < 1e-5,
            "{:?}",
            m.x
        );
    }
}
