//! `clv(bgnbd_params, gg_params, frequency, recency, t, monetary_value,
//! horizon_months, monthly_discount_rate, unit_days [, days_per_month])`.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::common::{
    Arg, BGNBD_FIELDS, GG_FIELDS, bgnbd_params, coerce_args, gg_params, non_negative, positive,
    rfm, run_rows,
};
use std::cell::RefCell;
use std::collections::HashMap;

use crate::rules::btyd::clv::{DAYS_PER_MONTH, Horizon, clv_with};

const SPEC: &[(&str, Arg)] = &[
    ("bgnbd_params", Arg::Params(BGNBD_FIELDS)),
    ("gg_params", Arg::Params(GG_FIELDS)),
    ("frequency", Arg::Number),
    ("recency", Arg::Number),
    ("t", Arg::Number),
    ("monetary_value", Arg::Number),
    ("horizon_months", Arg::Number),
    ("monthly_discount_rate", Arg::Number),
    ("unit_days", Arg::Number),
    ("days_per_month", Arg::Number),
];

/// `clv(bgnbd_params, gg_params, frequency, recency, t, monetary_value, horizon_months, monthly_discount_rate, unit_days [, days_per_month]) -> Float64`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Customer lifetime value over the next `horizon_months` months: Σ over months k of E[purchases in month k] (BG/NBD) × E[value of a purchase] (Gamma-Gamma) / (1 + monthly_discount_rate)^k, in the currency of monetary_value. `unit_days` is the time unit the summary and the BG/NBD fit used (1 = days, 7 = weeks); a month is `days_per_month` days (default 365.25/12 = 30.4375), so daily and weekly summaries of the same orders give the same CLV. To reproduce Python lifetimes, pass days_per_month = 30 for daily data and 30.415 (4.345 weeks) for weekly data.",
    syntax_example = "clv(bgnbd_params, gg_params, frequency, recency, t, monetary_value, horizon_months, monthly_discount_rate, unit_days [, days_per_month])",
    sql_example = r#"```sql
> SELECT clv(bg.p, gg.p, s['frequency'], s['recency'], s['t'], s['monetary_value'], 12, 0.01, 7) FROM summaries CROSS JOIN bg CROSS JOIN gg;
```"#,
    argument(
        name = "bgnbd_params",
        description = "The struct returned by `bgnbd_fit`."
    ),
    argument(
        name = "gg_params",
        description = "The struct returned by `gamma_gamma_fit`."
    ),
    argument(name = "frequency", description = "Repeat purchase days."),
    argument(
        name = "recency",
        description = "First → last purchase, in units of unit_days."
    ),
    argument(
        name = "t",
        description = "First purchase → end of observation, in units of unit_days."
    ),
    argument(
        name = "monetary_value",
        description = "Mean value of the repeat purchases."
    ),
    argument(
        name = "horizon_months",
        description = "Whole number of months (0 to 1200)."
    ),
    argument(
        name = "monthly_discount_rate",
        description = "Discount rate per month, e.g. 0.01 (≥ 0)."
    ),
    argument(
        name = "unit_days",
        description = "Days per model time unit: 1 for days, 7 for weeks."
    ),
    argument(
        name = "days_per_month",
        description = "Optional: days in a month, default 30.4375."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ClvFunc {
    signature: Signature,
}

impl Default for ClvFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ClvFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ClvFunc {
    fn name(&self) -> &str {
        "clv"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let n = if arg_types.len() == SPEC.len() - 1 {
            SPEC.len() - 1
        } else {
            SPEC.len()
        };
        coerce_args(self.name(), &SPEC[..n], arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let spec = &SPEC[..args.args.len().min(SPEC.len())];
        // The discounted sum of the months' expected purchases depends on
        // the customer through (frequency, t) only; customers of one batch
        // sharing them share it (the same parameters and horizon assumed,
        // which the key checks).
        type Key = [u64; 8];
        type Shared = HashMap<(u64, u64), f64>;
        let cache: RefCell<(Key, Shared)> = RefCell::new(([0; 8], HashMap::new()));
        run_rows(name, spec, &args, |v| {
            let bg = bgnbd_params(name, "bgnbd_params", &v[..4])?;
            let gg = gg_params(name, "gg_params", &v[4..7])?;
            let c = rfm(name, v[7], v[8], v[9])?;
            let m = if c.x > 0.0 {
                positive(name, "monetary_value", v[10])?
            } else {
                0.0
            };
            let months = non_negative(name, "horizon_months", v[11])?;
            if months.fract() != 0.0 || months > 1200.0 {
                return exec_err!(
                    "{name}: argument horizon_months must be a whole number from 0 to 1200, got {months}"
                );
            }
            let rate = non_negative(name, "monthly_discount_rate", v[12])?;
            let unit = positive(name, "unit_days", v[13])?;
            let dpm = match v.get(14) {
                Some(&d) => positive(name, "days_per_month", d)?,
                None => DAYS_PER_MONTH,
            };
            let horizon = Horizon {
                months: months as u32,
                monthly_discount_rate: rate,
                unit_days: unit,
                days_per_month: dpm,
            };
            let key: Key = [bg.r, bg.alpha, bg.a, bg.b, months, rate, unit, dpm].map(f64::to_bits);
            let mut guard = cache.borrow_mut();
            let (cached_for, shared) = &mut *guard;
            if *cached_for != key {
                *cached_for = key;
                shared.clear();
            }
            let numerator = *shared
                .entry((c.x.to_bits(), c.t.to_bits()))
                .or_insert_with(|| horizon.discounted_numerator(&bg, c.x, c.t));
            Ok(clv_with(&bg, &gg, &c, m, numerator))
        })
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
