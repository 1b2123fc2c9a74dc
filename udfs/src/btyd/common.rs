//! Shared plumbing of the BTYD SQL functions: the parameter struct types,
//! argument coercion, reading parameter structs and the row loop of the
//! scalar functions.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Float64Builder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err, internal_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs};

use crate::rules::btyd::{Rfm, bgnbd, gamma_gamma, mbgnbd, paretonbd};
use crate::util::{Kind, all_scalar, arrays, as_f64, coerce, finish};

/// The kinds of argument of a BTYD scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arg {
    /// A parameter struct with these Float64 fields.
    Params(&'static [&'static str]),
    /// A number (coerced to Float64).
    Number,
}

/// Field names of the BG/NBD parameter struct read by the scalar functions.
pub const BGNBD_FIELDS: &[&str] = &["r", "alpha", "a", "b"];
/// Field names of the Pareto/NBD parameter struct read by the scalar functions.
pub const PARETONBD_FIELDS: &[&str] = &["r", "alpha", "s", "beta"];
/// Field names of the MBG/NBD parameter struct read by the scalar functions.
pub const MBGNBD_FIELDS: &[&str] = &["r", "alpha", "a", "b"];
/// Field names of the Gamma-Gamma parameter struct read by the scalar functions.
pub const GG_FIELDS: &[&str] = &["p", "q", "v"];

/// Coerce the arguments of a scalar function: structs must carry the named
/// fields (numeric), numbers become Float64.
pub fn coerce_args(func: &str, spec: &[(&str, Arg)], types: &[DataType]) -> Result<Vec<DataType>> {
    if types.len() != spec.len() {
        let names: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
        return plan_err!(
            "{func}: expected {} arguments ({}), got {}",
            spec.len(),
            names.join(", "),
            types.len()
        );
    }
    spec.iter()
        .zip(types)
        .map(|((name, arg), t)| match arg {
            Arg::Number => coerce(func, name, Kind::Number, t),
            Arg::Params(fields) => match t {
                DataType::Struct(fs) => {
                    for want in *fields {
                        match fs.iter().find(|f| f.name() == want) {
                            Some(f) if f.data_type().is_numeric() => {}
                            _ => {
                                return plan_err!(
                                    "{func}: argument {name} must be a struct with a numeric field '{want}' (the result of the matching *_fit), got {t}"
                                );
                            }
                        }
                    }
                    Ok(t.clone())
                }
                _ => plan_err!(
                    "{func}: argument {name} must be a parameter struct (the result of the matching *_fit), got {t}"
                ),
            },
        })
        .collect()
}

/// Run a scalar function row by row. The closure receives the flattened
/// values (struct fields in the order of `spec`, then the numbers) and
/// returns the result; a NULL anywhere (struct or field) gives NULL.
pub fn run_rows(
    func: &str,
    spec: &[(&str, Arg)],
    args: &ScalarFunctionArgs,
    f: impl Fn(&[f64]) -> Result<f64>,
) -> Result<ColumnarValue> {
    let n = args.number_rows;
    let scalar = all_scalar(&args.args);
    let arrs = arrays(&args.args, if scalar { 1 } else { n })?;
    let mut cols: Vec<Float64Array> = Vec::new();
    let mut struct_nulls: Vec<ArrayRef> = Vec::new();
    for ((name, arg), a) in spec.iter().zip(&arrs) {
        match arg {
            Arg::Number => cols.push(as_f64(a)?),
            Arg::Params(fields) => {
                let Some(s) = a.as_struct_opt() else {
                    return exec_err!("{func}: argument {name} must be a parameter struct");
                };
                for want in *fields {
                    let Some(col) = s.column_by_name(want) else {
                        return exec_err!("{func}: argument {name} has no field '{want}'");
                    };
                    cols.push(as_f64(col)?);
                }
                struct_nulls.push(a.clone());
            }
        }
    }
    let rows = arrs.first().map_or(0, |a| a.len());
    let mut out = Float64Builder::with_capacity(rows);
    let mut vals = vec![0.0; cols.len()];
    for i in 0..rows {
        if struct_nulls.iter().any(|a| a.is_null(i)) || cols.iter().any(|c| c.is_null(i)) {
            out.append_null();
            continue;
        }
        for (v, c) in vals.iter_mut().zip(&cols) {
            *v = c.value(i);
        }
        out.append_value(f(&vals)?);
    }
    finish(Arc::new(out.finish()), scalar)
}

/// The first `N` values as parameters named `fields`, each checked to be a
/// positive finite number.
pub fn positive_params<const N: usize>(
    func: &str,
    arg: &str,
    fields: &[&str],
    v: &[f64],
) -> Result<[f64; N]> {
    if v.len() < N || fields.len() < N {
        return internal_err!("{func}: {N} parameter values expected, got {}", v.len());
    }
    let mut out = [0.0; N];
    for ((o, name), &x) in out.iter_mut().zip(fields).zip(v) {
        if !(x.is_finite() && x > 0.0) {
            return exec_err!("{func}: argument {arg} field '{name}' must be positive, got {x}");
        }
        *o = x;
    }
    Ok(out)
}

/// BG/NBD parameters from the first four values, checked.
pub fn bgnbd_params(func: &str, arg: &str, v: &[f64]) -> Result<bgnbd::Params> {
    let [r, alpha, a, b] = positive_params(func, arg, BGNBD_FIELDS, v)?;
    Ok(bgnbd::Params { r, alpha, a, b })
}

/// Pareto/NBD parameters from the first four values, checked.
pub fn paretonbd_params(func: &str, arg: &str, v: &[f64]) -> Result<paretonbd::Params> {
    let [r, alpha, s, beta] = positive_params(func, arg, PARETONBD_FIELDS, v)?;
    Ok(paretonbd::Params { r, alpha, s, beta })
}

/// MBG/NBD parameters from the first four values, checked.
pub fn mbgnbd_params(func: &str, arg: &str, v: &[f64]) -> Result<mbgnbd::Params> {
    let [r, alpha, a, b] = positive_params(func, arg, MBGNBD_FIELDS, v)?;
    Ok(mbgnbd::Params { r, alpha, a, b })
}

/// Gamma-Gamma parameters from the first three values, checked (q > 1).
pub fn gg_params(func: &str, arg: &str, v: &[f64]) -> Result<gamma_gamma::Params> {
    let [p, q, v] = positive_params(func, arg, GG_FIELDS, v)?;
    if q <= 1.0 {
        return exec_err!("{func}: argument {arg} field 'q' must exceed 1, got {q}");
    }
    Ok(gamma_gamma::Params { p, q, v })
}

/// A Pareto/NBD result, or an error naming the inputs when the model returns
/// NaN: neither the ₂F₁ series nor the quadrature can sum A₀ there (a rate
/// of nearly 0 or ∞, e.g. r = 1e9).
pub fn pareto_result(func: &str, v: f64, p: &paretonbd::Params, c: &Rfm) -> Result<f64> {
    if v.is_nan() {
        return exec_err!(
            "{func}: cannot be evaluated for r={}, alpha={}, s={}, beta={}, frequency={}, recency={}, t={}: the A0 integral of the likelihood cannot be summed for parameters this extreme",
            p.r,
            p.alpha,
            p.s,
            p.beta,
            c.x,
            c.t_x,
            c.t
        );
    }
    Ok(v)
}

/// One customer's (frequency, recency, t), checked.
pub fn rfm(func: &str, x: f64, t_x: f64, t: f64) -> Result<Rfm> {
    let c = Rfm { x, t_x, t };
    if let Err(e) = crate::rules::btyd::check_rfm(&c, 0) {
        let msg = e.to_string();
        let msg = msg.trim_end_matches(" (input row 0)");
        return exec_err!("{func}: {msg}");
    }
    Ok(c)
}

/// A positive finite number argument.
pub fn positive(func: &str, arg: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        exec_err!("{func}: argument {arg} must be positive, got {v}")
    }
}

/// A non-negative finite number argument.
pub fn non_negative(func: &str, arg: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        exec_err!("{func}: argument {arg} must be non-negative, got {v}")
    }
}
