//! Argument coercion and small helpers shared by the CRM functions.
//!
//! Every function declares a user-defined signature and coerces its arguments
//! here, so that errors name the function and the argument, and so that
//! timestamps of any unit or zone and dates are all accepted.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::ColumnarValue;

/// Microseconds in one day (86,400 s).
pub const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// The timestamp type every time argument is coerced to.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

/// `List(Float64)`, the type array arguments (edges, weights, thresholds) are coerced to.
pub fn f64_list_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

/// The kind of value an argument must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A timestamp of any unit/zone, or a date → `Timestamp(µs, UTC)`.
    Time,
    /// Any integer, decimal or float → `Float64`.
    Number,
    /// Any integer → `Int64`.
    Integer,
    /// Any string → `Utf8`.
    Text,
    /// An array of numbers → `List(Float64)`.
    NumberList,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Time => "a timestamp or date",
            Kind::Number => "a number",
            Kind::Integer => "an integer",
            Kind::Text => "a string",
            Kind::NumberList => "an array of numbers",
        }
    }
}

/// Coerce one argument type to the type of `kind`, or fail naming the function
/// and the argument.
pub fn coerce(func: &str, arg: &str, kind: Kind, t: &DataType) -> Result<DataType> {
    use DataType::*;
    let ok = match (kind, t) {
        (_, Null) => true,
        (Kind::Time, Timestamp(_, _) | Date32 | Date64) => true,
        (Kind::Number, t) => t.is_numeric(),
        (Kind::Integer, t) => t.is_integer(),
        (Kind::Text, Utf8 | LargeUtf8 | Utf8View) => true,
        (Kind::Text, Dictionary(_, v)) => matches!(v.as_ref(), Utf8 | LargeUtf8 | Utf8View),
        (Kind::NumberList, List(f) | LargeList(f) | FixedSizeList(f, _)) => {
            f.data_type().is_numeric() || f.data_type() == &Null
        }
        _ => false,
    };
    if !ok {
        return plan_err!(
            "{func}: argument {arg} must be {}, got {t}",
            kind.describe()
        );
    }
    Ok(match kind {
        Kind::Time => ts_type(),
        Kind::Number => Float64,
        Kind::Integer => Int64,
        Kind::Text => Utf8,
        Kind::NumberList => f64_list_type(),
    })
}

/// Coerce a whole argument list: `kinds[i]` is (name, kind) of argument `i`;
/// `required` arguments must be present, the rest are optional.
pub fn coerce_all(
    func: &str,
    kinds: &[(&str, Kind)],
    required: usize,
    types: &[DataType],
) -> Result<Vec<DataType>> {
    if types.len() < required || types.len() > kinds.len() {
        let names: Vec<&str> = kinds.iter().map(|(n, _)| *n).collect();
        let expect = if required == kinds.len() {
            format!("{required}")
        } else {
            format!("{required} to {}", kinds.len())
        };
        return plan_err!(
            "{func}: expected {expect} arguments ({}), got {}",
            names.join(", "),
            types.len()
        );
    }
    types
        .iter()
        .zip(kinds)
        .map(|(t, (name, kind))| coerce(func, name, *kind, t))
        .collect()
}

/// The arguments as arrays of `n` rows (scalars are broadcast).
pub fn arrays(args: &[ColumnarValue], n: usize) -> Result<Vec<ArrayRef>> {
    args.iter().map(|a| a.to_array(n)).collect()
}

/// An argument as `Float64` (after coercion), cast defensively if needed.
pub fn as_f64(a: &ArrayRef) -> Result<Float64Array> {
    Ok(cast(a, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

/// An argument as `Int64`, cast defensively if needed.
pub fn as_i64(a: &ArrayRef) -> Result<Int64Array> {
    Ok(cast(a, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

/// A time argument as microseconds since the epoch (UTC).
pub fn as_micros(a: &ArrayRef) -> Result<Int64Array> {
    let ts = cast(a, &ts_type())?;
    Ok(cast(&ts, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

/// Days elapsed from `from` to `to` (both µs), as a fractional number of days.
pub fn days_between(from: i64, to: i64) -> f64 {
    (to as f64 - from as f64) / MICROS_PER_DAY
}

/// A constant numeric-list argument (e.g. `[30, 60, 90]`), or `None` for NULL.
/// Fails when the argument varies per row or holds NULL/non-finite elements.
pub fn const_f64_list(func: &str, arg: &str, v: &ColumnarValue) -> Result<Option<Vec<f64>>> {
    let scalar = match v {
        ColumnarValue::Scalar(s) => s.clone(),
        ColumnarValue::Array(a) => {
            if a.is_empty() {
                return Ok(None);
            }
            let first = ScalarValue::try_from_array(a, 0)?;
            for i in 1..a.len() {
                if ScalarValue::try_from_array(a, i)? != first {
                    return exec_err!("{func}: argument {arg} must be the same for every row");
                }
            }
            first
        }
    };
    if scalar.is_null() {
        return Ok(None);
    }
    let list = scalar.to_array_of_size(1)?;
    let list = cast(&list, &f64_list_type())?;
    let list = list.as_list::<i32>();
    let values = list.value(0);
    let values = values.as_primitive::<Float64Type>();
    let mut out = Vec::with_capacity(values.len());
    for i in 0..values.len() {
        if values.is_null(i) || !values.value(i).is_finite() {
            return exec_err!(
                "{func}: argument {arg} must hold finite numbers, element {} is {}",
                i + 1,
                if values.is_null(i) {
                    "NULL".to_string()
                } else {
                    values.value(i).to_string()
                }
            );
        }
        out.push(values.value(i));
    }
    Ok(Some(out))
}

/// A constant number argument, or `None` when absent/NULL.
pub fn const_f64(func: &str, arg: &str, v: Option<&ColumnarValue>) -> Result<Option<f64>> {
    let Some(v) = v else { return Ok(None) };
    let arr = v.to_array(1)?;
    if arr.is_empty() {
        return Ok(None);
    }
    let arr = as_f64(&arr)?;
    let first = arr.is_valid(0).then(|| arr.value(0));
    if let ColumnarValue::Array(_) = v {
        for i in 1..arr.len() {
            if arr.is_valid(i).then(|| arr.value(i)).map(f64::to_bits) != first.map(f64::to_bits) {
                return exec_err!("{func}: argument {arg} must be the same for every row");
            }
        }
    }
    Ok(first)
}

/// Whether every argument is a scalar (then the result is a scalar too).
pub fn all_scalar(args: &[ColumnarValue]) -> bool {
    args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)))
}

/// Turn a result array back into a scalar when every input was scalar.
pub fn finish(array: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    if scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

/// A seeded xorshift generator for the fuzz tests (no extra dependency).
#[cfg(test)]
#[allow(clippy::items_after_test_module)]
pub mod fuzz {
    use super::*;
    use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray};

    /// Tiny deterministic PRNG.
    pub struct Rng(pub u64);
    impl Rng {
        /// Next raw value.
        pub fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        /// A value in `0..n`.
        pub fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    /// Random floats with NULL, NaN, ±inf, zeros and negatives.
    pub fn f64s(rng: &mut Rng, n: usize) -> ArrayRef {
        let v: Vec<Option<f64>> = (0..n)
            .map(|_| match rng.below(10) {
                0 => None,
                1 => Some(f64::NAN),
                2 => Some(f64::INFINITY),
                3 => Some(f64::NEG_INFINITY),
                4 => Some(0.0),
                5 => Some(-(rng.below(1000) as f64)),
                _ => Some(rng.below(100_000) as f64 / 7.0),
            })
            .collect();
        Arc::new(Float64Array::from(v))
    }

    /// Random integers with NULLs, negatives and extremes.
    pub fn i64s(rng: &mut Rng, n: usize) -> ArrayRef {
        let v: Vec<Option<i64>> = (0..n)
            .map(|_| match rng.below(8) {
                0 => None,
                1 => Some(i64::MAX),
                2 => Some(i64::MIN),
                3 => Some(-(rng.below(10) as i64)),
                _ => Some(rng.below(20) as i64),
            })
            .collect();
        Arc::new(Int64Array::from(v))
    }

    /// A UTC timestamp (µs) array of these values.
    pub fn utc_micros(v: &[Option<i64>]) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v.to_vec()).with_timezone("UTC"))
    }

    /// Random UTC timestamps (µs) with NULLs and extremes.
    pub fn times(rng: &mut Rng, n: usize) -> ArrayRef {
        let v: Vec<Option<i64>> = (0..n)
            .map(|_| match rng.below(8) {
                0 => None,
                1 => Some(i64::MAX),
                2 => Some(i64::MIN),
                _ => Some(1_700_000_000_000_000 + rng.below(400) as i64 * 86_400_000_000),
            })
            .collect();
        utc_micros(&v)
    }

    /// Random strings with NULLs, empty strings and non-ASCII text.
    #[allow(dead_code)]
    pub fn strings(rng: &mut Rng, n: usize) -> ArrayRef {
        const POOL: [&str; 8] = [
            "",
            "a",
            "13812341234",
            "alice@example.com",
            "@x",
            "王小明",
            "12",
            "x@",
        ];
        let v: Vec<Option<&str>> = (0..n)
            .map(|_| {
                let k = rng.below(9) as usize;
                POOL.get(k).copied()
            })
            .collect();
        Arc::new(StringArray::from(v))
    }
}

/// Invoke a scalar UDF in tests.
#[cfg(test)]
pub fn call_scalar(
    f: &dyn datafusion::logical_expr::ScalarUDFImpl,
    args: Vec<ColumnarValue>,
    n: usize,
) -> Result<ArrayRef> {
    use datafusion::common::config::ConfigOptions;
    use datafusion::logical_expr::ScalarFunctionArgs;
    let arg_fields = args
        .iter()
        .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
        .collect();
    let rt = f.return_type(&args.iter().map(|a| a.data_type()).collect::<Vec<_>>())?;
    f.invoke_with_args(ScalarFunctionArgs {
        args,
        arg_fields,
        number_rows: n,
        return_field: Arc::new(Field::new("r", rt, true)),
        config_options: Arc::new(ConfigOptions::default()),
    })?
    .to_array(n)
}
