//! PostgreSQL functions that drivers call in their catalog queries and that
//! neither DataFusion nor datafusion-pg-catalog provide:
//! - `like_escape(pattern, escape)`: a LIKE pattern written with another
//!   escape character, re-escaped with the backslash DataFusion supports
//!   (PostgreSQL implements `LIKE p ESCAPE e` the same way; SQLAlchemy sends
//!   `ESCAPE '/'`);
//! - `generate_subscripts(array, dim)` and `information_schema._pg_expandarray(array)`
//!   (SQLAlchemy's and pgjdbc's key lookups). Both are set-returning in
//!   PostgreSQL; here they return an array, and [`super::rewrite`] wraps the
//!   call in `unnest(…)`, which DataFusion expands in a select list the way
//!   PostgreSQL expands a set-returning function.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, GenericListArray, Int32Array, Int32Builder, ListArray,
    StringBuilder, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

/// Register the functions of this module into `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(LikeEscapeFunc::new()));
    ctx.register_udf(ScalarUDF::from(GenerateSubscriptsFunc::new()));
    ctx.register_udf(ScalarUDF::from(ExpandArrayFunc::new()));
}

/// Names of the set-returning functions served as arrays (the rewrite wraps
/// their calls in `unnest`).
pub const ARRAY_VALUED_SRFS: &[&str] = &["generate_subscripts", "_pg_expandarray"];

/// One result per row, scalar when every argument was scalar.
fn finish(array: ArrayRef, args: &[ColumnarValue]) -> Result<ColumnarValue> {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?));
    }
    Ok(ColumnarValue::Array(array))
}

/// `like_escape(pattern, escape)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LikeEscapeFunc {
    signature: Signature,
}

impl LikeEscapeFunc {
    fn new() -> Self {
        LikeEscapeFunc {
            signature: Signature::string(2, Volatility::Immutable),
        }
    }
}

/// Rewrite `pattern`, whose escape character is `escape` (empty: none), to
/// the backslash-escaped form.
pub fn like_escape(pattern: &str, escape: &str) -> std::result::Result<String, String> {
    let mut esc = escape.chars();
    let escape = match (esc.next(), esc.next()) {
        (None, _) => None,
        (Some(c), None) => Some(c),
        _ => {
            return Err(format!(
                "invalid escape string \"{escape}\": it must be empty or one character"
            ));
        }
    };
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => {
                    return Err(format!(
                        "LIKE pattern \"{pattern}\" must not end with the escape character"
                    ));
                }
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

impl ScalarUDFImpl for LikeEscapeFunc {
    fn name(&self) -> &str {
        "like_escape"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let patterns =
            datafusion::arrow::compute::cast(&args.args[0].to_array(n)?, &DataType::Utf8)?;
        let escapes =
            datafusion::arrow::compute::cast(&args.args[1].to_array(n)?, &DataType::Utf8)?;
        let (patterns, escapes) = (patterns.as_string::<i32>(), escapes.as_string::<i32>());
        let mut out = StringBuilder::new();
        for i in 0..n {
            if patterns.is_null(i) || escapes.is_null(i) {
                out.append_null();
                continue;
            }
            match like_escape(patterns.value(i), escapes.value(i)) {
                Ok(p) => out.append_value(p),
                Err(e) => return exec_err!("like_escape: {e}"),
            }
        }
        finish(Arc::new(out.finish()), &args.args)
    }
}

/// The list arrays these functions take, as (offsets, lengths) per row.
fn list_lengths(array: &ArrayRef, function: &str) -> Result<Vec<Option<(usize, usize)>>> {
    fn of<O: datafusion::arrow::array::OffsetSizeTrait>(
        list: &GenericListArray<O>,
    ) -> Vec<Option<(usize, usize)>> {
        (0..list.len())
            .map(|i| {
                (!list.is_null(i)).then(|| {
                    let offsets = list.value_offsets();
                    (
                        offsets[i].as_usize(),
                        (offsets[i + 1] - offsets[i]).as_usize(),
                    )
                })
            })
            .collect()
    }
    match array.data_type() {
        DataType::List(_) => Ok(of(array.as_list::<i32>())),
        DataType::LargeList(_) => Ok(of(array.as_list::<i64>())),
        DataType::Null => Ok(vec![None; array.len()]),
        other => exec_err!("{function}: argument 1 must be an array, got {other}"),
    }
}

fn list_arg(data_type: &DataType, function: &str) -> Result<()> {
    match data_type {
        DataType::List(_) | DataType::LargeList(_) | DataType::Null => Ok(()),
        other => plan_err!("{function}(array, …): argument 1 must be an array, got {other}"),
    }
}

/// `generate_subscripts(array, dim)`: the subscripts 1..n of dimension 1 (crmdb's
/// arrays are one-dimensional and 1-based; another dimension gives no rows).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GenerateSubscriptsFunc {
    signature: Signature,
}

impl GenerateSubscriptsFunc {
    fn new() -> Self {
        GenerateSubscriptsFunc {
            signature: Signature::new(TypeSignature::Any(2), Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for GenerateSubscriptsFunc {
    fn name(&self) -> &str {
        "generate_subscripts"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        list_arg(&args[0], self.name())?;
        if !args[1].is_integer() && args[1] != DataType::Null {
            return plan_err!(
                "generate_subscripts(array, dim): argument 2 must be an integer, got {}",
                args[1]
            );
        }
        Ok(DataType::new_list(DataType::Int32, true))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = args.args[0].to_array(n)?;
        let dims = datafusion::arrow::compute::cast(&args.args[1].to_array(n)?, &DataType::Int32)?;
        let dims = dims.as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        let lengths = list_lengths(&arrays, self.name())?;
        let mut values = Int32Builder::new();
        let mut offsets = vec![0i32];
        let mut nulls = Vec::with_capacity(n);
        for (i, len) in lengths.into_iter().enumerate() {
            match (len, dims.is_null(i)) {
                (Some((_, len)), false) => {
                    if dims.value(i) == 1 {
                        for s in 1..=len {
                            values.append_value(i32::try_from(s).unwrap_or(i32::MAX));
                        }
                    }
                    nulls.push(true);
                }
                _ => nulls.push(false),
            }
            offsets.push(i32::try_from(values.len()).unwrap_or(i32::MAX));
        }
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Int32, true)),
            OffsetBuffer::new(offsets.into()),
            Arc::new(values.finish()),
            Some(nulls.into()),
        )?;
        finish(Arc::new(list), &args.args)
    }
}

/// `information_schema._pg_expandarray(array)`: `{x: element, n: subscript}`
/// per element.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ExpandArrayFunc {
    signature: Signature,
}

impl ExpandArrayFunc {
    fn new() -> Self {
        ExpandArrayFunc {
            signature: Signature::new(TypeSignature::Any(1), Volatility::Immutable),
        }
    }

    fn fields(element: &DataType) -> Fields {
        Fields::from(vec![
            Field::new("x", element.clone(), true),
            Field::new("n", DataType::Int32, false),
        ])
    }
}

impl ScalarUDFImpl for ExpandArrayFunc {
    fn name(&self) -> &str {
        "_pg_expandarray"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        list_arg(&args[0], self.name())?;
        let element = match &args[0] {
            DataType::List(f) | DataType::LargeList(f) => f.data_type().clone(),
            _ => DataType::Null,
        };
        Ok(DataType::new_list(
            DataType::Struct(Self::fields(&element)),
            true,
        ))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = args.args[0].to_array(n)?;
        let (element, values) = match arrays.data_type() {
            DataType::List(f) => (
                f.data_type().clone(),
                arrays.as_list::<i32>().values().clone(),
            ),
            DataType::LargeList(f) => (
                f.data_type().clone(),
                arrays.as_list::<i64>().values().clone(),
            ),
            _ => (
                DataType::Null,
                datafusion::arrow::array::new_null_array(&DataType::Null, 0),
            ),
        };
        let lengths = list_lengths(&arrays, self.name())?;
        let mut take = Vec::new();
        let mut subscripts = Vec::new();
        let mut offsets = vec![0i32];
        let mut nulls = Vec::with_capacity(n);
        for len in lengths {
            if let Some((start, len)) = len {
                for k in 0..len {
                    take.push(u32::try_from(start + k).unwrap_or(u32::MAX));
                    subscripts.push(i32::try_from(k + 1).unwrap_or(i32::MAX));
                }
            }
            nulls.push(len.is_some());
            offsets.push(i32::try_from(take.len()).unwrap_or(i32::MAX));
        }
        let x = datafusion::arrow::compute::take(
            values.as_ref(),
            &datafusion::arrow::array::UInt32Array::from(take),
            None,
        )?;
        let structs = StructArray::try_new(
            Self::fields(&element),
            vec![x, Arc::new(Int32Array::from(subscripts))],
            None,
        )?;
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(structs.data_type().clone(), true)),
            OffsetBuffer::new(offsets.into()),
            Arc::new(structs),
            Some(nulls.into()),
        )?;
        finish(Arc::new(list), &args.args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_rebased_on_the_backslash() {
        assert_eq!(like_escape("pg/_%", "/").unwrap(), "pg\\_%");
        assert_eq!(like_escape("a//b", "/").unwrap(), "a\\/b");
        assert_eq!(like_escape("c:\\dir_%", "/").unwrap(), "c:\\\\dir_%");
        assert_eq!(like_escape("50\\%", "").unwrap(), "50\\\\%");
        assert!(
            like_escape("ends/", "/")
                .unwrap_err()
                .contains("must not end")
        );
        assert!(
            like_escape("x", "ab")
                .unwrap_err()
                .contains("one character")
        );
    }

    #[tokio::test]
    async fn set_returning_functions_give_arrays_to_unnest() {
        let ctx = SessionContext::new();
        register(&ctx);
        let batches = ctx
            .sql(
                "SELECT unnest(generate_subscripts(make_array(7, 8, 9), 1)) AS s, \
                 get_field(unnest(_pg_expandarray(make_array(7, 8, 9))), 'x') AS x, \
                 get_field(unnest(_pg_expandarray(make_array(7, 8, 9))), 'n') AS n, \
                 'pg_x' LIKE like_escape('pg/_%', '/') AS l1, \
                 'pgax' LIKE like_escape('pg/_%', '/') AS l2",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert_eq!(
            text,
            "+---+---+---+------+-------+\n\
             | s | x | n | l1   | l2    |\n\
             +---+---+---+------+-------+\n\
             | 1 | 7 | 1 | true | false |\n\
             | 2 | 8 | 2 | true | false |\n\
             | 3 | 9 | 3 | true | false |\n\
             +---+---+---+------+-------+"
        );
    }
}
