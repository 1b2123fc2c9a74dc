//! A Nelder-Mead simplex minimiser (Nelder & Mead 1965, with the standard
//! coefficients and the restart-from-best rule of Gao & Han 2012's advice).
//!
//! Written here rather than pulled from `argmin` to keep the build small: the
//! likelihoods have 3–4 parameters, need no gradients, and the whole routine is
//! some 80 lines with tests. Non-finite objective values count as +∞, so the
//! simplex retreats from regions where the model cannot be evaluated.

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
