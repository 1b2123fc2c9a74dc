//! crmdb's CRM functions as PostgreSQL sees functions: rows of `pg_proc`
//! (added by [`super::catalog`]) and `pg_get_function_result` /
//! `pg_get_function_arguments`, so psql `\df rfm*` and the function lists of
//! BI tools show `rfm_score`, `clv` and the rest. datafusion-pg-catalog's
//! `pg_proc` holds PostgreSQL's built-in functions only.
//!
//! Each function gets OID `3_000_000 + i` in name order, stable across runs.
//! Its argument list is the one its documentation shows (`rfm_score(
//! recency_days, frequency, monetary[, bins])`); its result type is the
//! PostgreSQL name of the type it returns for its first documented
//! signature (`record` for a struct).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Int32Type};
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

/// OID of the first CRM function.
pub const PROC_OID_BASE: i32 = 3_000_000;

/// One CRM function as a `pg_proc` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    /// `pg_proc.oid`.
    pub oid: i32,
    /// Function name.
    pub name: String,
    /// `f` scalar, `a` aggregate, `w` window.
    pub kind: &'static str,
    /// What `pg_get_function_result` says.
    pub result: String,
    /// What `pg_get_function_arguments` says.
    pub arguments: String,
    /// The documentation's description.
    pub description: String,
}

/// Every CRM function of `crmdb-udfs`, by name.
pub static PROCS: LazyLock<Vec<Proc>> = LazyLock::new(build);

fn build() -> Vec<Proc> {
    let all = crmdb_udfs::functions();
    let mut rows: Vec<(String, &'static str, String, String, String)> = Vec::new();
    for f in &all.scalar {
        let (args, description) = documented(f.documentation());
        let types = example_types(&f.signature().type_signature, &args);
        #[allow(deprecated)]
        let result = f
            .return_type(&types)
            .map(|t| pg_type_name(&t))
            .unwrap_or_else(|_| "unknown".into());
        rows.push((f.name().to_string(), "f", result, args, description));
    }
    for f in &all.aggregate {
        let (args, description) = documented(f.documentation());
        let types = example_types(&f.signature().type_signature, &args);
        let result = f
            .return_type(&types)
            .map(|t| pg_type_name(&t))
            .unwrap_or_else(|_| "unknown".into());
        rows.push((f.name().to_string(), "a", result, args, description));
    }
    for f in &all.window {
        let (args, description) = documented(f.documentation());
        // a window function's type depends on its input; rfm_score and
        // value_score return a record and a number
        let result = if f.name() == "rfm_score" {
            "record".to_string()
        } else {
            "double precision".to_string()
        };
        rows.push((f.name().to_string(), "w", result, args, description));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.into_iter()
        .enumerate()
        .map(|(i, (name, kind, result, arguments, description))| Proc {
            oid: PROC_OID_BASE + i32::try_from(i).unwrap_or(i32::MAX - PROC_OID_BASE),
            name,
            kind,
            result,
            arguments,
            description,
        })
        .collect()
}

/// Argument types to ask a function its result type with: its signature's
/// first example, or (for user-defined signatures, which the CRM functions
/// mostly have and whose result type does not depend on the input) one
/// double per documented required argument.
fn example_types(
    signature: &datafusion::logical_expr::TypeSignature,
    arguments: &str,
) -> Vec<DataType> {
    if let Some(first) = signature.get_example_types().into_iter().next() {
        return first;
    }
    let required = arguments.split('[').next().unwrap_or_default();
    let n = required.split(',').filter(|a| !a.trim().is_empty()).count();
    vec![DataType::Float64; n]
}

/// The argument list and description from a function's documentation.
fn documented(doc: Option<&datafusion::logical_expr::Documentation>) -> (String, String) {
    match doc {
        Some(d) => (arguments_of(&d.syntax_example), d.description.clone()),
        None => (String::new(), String::new()),
    }
}

/// `rfm_score(recency_days, frequency, monetary[, bins]) OVER (…)` →
/// `recency_days, frequency, monetary[, bins]`.
fn arguments_of(syntax: &str) -> String {
    let Some(open) = syntax.find('(') else {
        return String::new();
    };
    let mut depth = 0usize;
    for (i, c) in syntax[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return syntax[open + 1..open + i].trim().to_string();
                }
            }
            _ => {}
        }
    }
    String::new()
}

/// PostgreSQL's name for an Arrow type, as `format_type` prints it: the
/// information_schema name, with a numeric's precision and scale and an
/// array's element type.
fn pg_type_name(t: &DataType) -> String {
    match t {
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("numeric({p},{s})"),
        DataType::List(f) | DataType::LargeList(f) => format!("{}[]", pg_type_name(f.data_type())),
        other => super::functions::information_schema_type(other),
    }
}

fn by_oid(oid: i32) -> Option<&'static Proc> {
    let i = usize::try_from(oid.checked_sub(PROC_OID_BASE)?).ok()?;
    PROCS.get(i)
}

fn text_of_oid(name: &str, pick: fn(&Proc) -> &str) -> ScalarUDF {
    let udf = move |args: &[ColumnarValue]| -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let oids = datafusion::arrow::compute::cast(&arrays[0], &DataType::Int32)?;
        let oids = oids.as_primitive::<Int32Type>();
        let mut out = StringBuilder::new();
        for i in 0..oids.len() {
            if oids.is_null(i) {
                out.append_null();
            } else {
                out.append_option(by_oid(oids.value(i)).map(pick));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    };
    create_udf(
        name,
        vec![DataType::Int32],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(udf),
    )
}

/// `pg_get_function_result(oid)` and `pg_get_function_arguments(oid)`:
/// the answer for crmdb's functions, NULL for others (PostgreSQL's
/// built-ins have no entry here).
pub fn udfs() -> Vec<ScalarUDF> {
    vec![
        text_of_oid("pg_get_function_result", |p| p.result.as_str()),
        text_of_oid("pg_get_function_arguments", |p| p.arguments.as_str()),
        text_of_oid("pg_get_function_identity_arguments", |p| {
            p.arguments.as_str()
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crm_functions_have_stable_oids_arguments_and_result_types() {
        let rfm = PROCS.iter().find(|p| p.name == "rfm_segment");
        let Some(rfm) = rfm else {
            panic!(
                "rfm_segment missing from {:?}",
                PROCS.iter().map(|p| &p.name).collect::<Vec<_>>()
            );
        };
        assert_eq!(rfm.kind, "f");
        assert_eq!(rfm.result, "text");
        assert_eq!(rfm.arguments, "r, f, m");
        assert_eq!(by_oid(rfm.oid), Some(rfm));
        let nps = PROCS
            .iter()
            .find(|p| p.name == "nps")
            .map(|p| (p.kind, p.result.as_str()));
        assert_eq!(nps, Some(("a", "double precision")));
        let score = PROCS
            .iter()
            .find(|p| p.name == "rfm_score")
            .map(|p| (p.kind, p.result.as_str()));
        assert_eq!(score, Some(("w", "record")));
        // sorted by name, OIDs consecutive
        assert!(
            PROCS
                .windows(2)
                .all(|w| w[0].name < w[1].name && w[1].oid == w[0].oid + 1)
        );
        assert_eq!(arguments_of("clv(a, b(c), d) OVER ()"), "a, b(c), d");
    }
}
