//! The per-session `crm.*` settings the built-in views read.
//!
//! Registered as a DataFusion config extension with the prefix `crm`, so
//! `SET crm.as_of = '2026-06-30'`, `SHOW crm.as_of` and
//! `information_schema.df_settings` work in every front end, and each session
//! has its own copy (one connection's `SET` never changes another's). The
//! defaults come from the `[crm]` section of `crmdb.toml`.

use std::any::Any;

use chrono::NaiveDate;
use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::error::{DataFusionError, Result as DFResult};

use crate::config::CrmConfig;

/// The `crm.*` settings of one session.
#[derive(Debug, Clone, PartialEq)]
pub struct CrmOptions {
    /// Analyses are made as of the end of this day (UTC).
    pub as_of: NaiveDate,
    /// Days a first purchase counts as new.
    pub new_days: u32,
    /// Days since the last purchase a customer stays active.
    pub active_days: u32,
    /// Days since the last purchase after which a customer is churned.
    pub churn_days: u32,
    /// Days without a purchase that raise a churn warning.
    pub quiet_days: u32,
    /// Purchases in the 90 days before the last one that make a frequent buyer.
    pub churn_min_orders: u32,
    /// Days after an exposure in which an order counts as a response.
    pub response_window_days: u32,
    /// Monthly discount rate of `clv_12m`.
    pub clv_monthly_discount: f64,
    /// Member tier thresholds (9 numbers), or the function's defaults.
    pub tier_thresholds: Option<[f64; 9]>,
}

/// (key, description) of every setting, in display order.
const KEYS: [(&str, &str); 9] = [
    (
        "as_of",
        "Date (YYYY-MM-DD) the built-in views analyse as of: orders up to the end of that day (UTC) count",
    ),
    (
        "new_days",
        "Days a first purchase counts as new (lifecycle_stage)",
    ),
    (
        "active_days",
        "Days since the last purchase a customer stays active (lifecycle_stage)",
    ),
    (
        "churn_days",
        "Days since the last purchase after which a customer is churned (lifecycle_stage)",
    ),
    (
        "quiet_days",
        "Days without a purchase that raise a churn warning",
    ),
    (
        "churn_min_orders",
        "Purchases in the 90 days before the last one that make a frequent buyer (churn_warning)",
    ),
    (
        "response_window_days",
        "Days after a promotion exposure in which an order counts as a response",
    ),
    (
        "clv_monthly_discount",
        "Monthly discount rate of customer_metrics.clv_12m",
    ),
    (
        "tier_thresholds",
        "member_tier thresholds: 9 comma-separated numbers, or 'default'",
    ),
];

impl CrmOptions {
    /// The session defaults from `[crm]`, checked; `as_of` is the configured
    /// date or today. The error names the offending key.
    pub fn from_config(config: &CrmConfig, as_of: NaiveDate) -> Result<CrmOptions, String> {
        let options = CrmOptions {
            as_of,
            new_days: config.new_days,
            active_days: config.active_days,
            churn_days: config.churn_days,
            quiet_days: config.quiet_days,
            churn_min_orders: config.churn_min_orders,
            response_window_days: config.response_window_days,
            clv_monthly_discount: config.clv_monthly_discount,
            tier_thresholds: config.tier_thresholds,
        };
        options.check().map_err(|e| format!("crm.{e}"))?;
        Ok(options)
    }

    /// Relations between settings; the error starts with the key at fault.
    fn check(&self) -> Result<(), String> {
        if self.active_days > self.churn_days {
            return Err(format!(
                "active_days = {} must not exceed churn_days = {}",
                self.active_days, self.churn_days
            ));
        }
        if self.response_window_days == 0 {
            return Err("response_window_days must be at least 1".into());
        }
        if !(self.clv_monthly_discount.is_finite() && self.clv_monthly_discount >= 0.0) {
            return Err(format!(
                "clv_monthly_discount = {} must be a number ≥ 0",
                self.clv_monthly_discount
            ));
        }
        if let Some(t) = &self.tier_thresholds
            && let Some(bad) = t.iter().find(|x| !(x.is_finite() && **x >= 0.0))
        {
            return Err(format!("tier_thresholds: {bad} is not a number ≥ 0"));
        }
        Ok(())
    }

    fn value(&self, key: &str) -> String {
        match key {
            "as_of" => self.as_of.to_string(),
            "new_days" => self.new_days.to_string(),
            "active_days" => self.active_days.to_string(),
            "churn_days" => self.churn_days.to_string(),
            "quiet_days" => self.quiet_days.to_string(),
            "churn_min_orders" => self.churn_min_orders.to_string(),
            "response_window_days" => self.response_window_days.to_string(),
            "clv_monthly_discount" => self.clv_monthly_discount.to_string(),
            "tier_thresholds" => match &self.tier_thresholds {
                Some(t) => t.iter().map(f64::to_string).collect::<Vec<_>>().join(","),
                None => "default".into(),
            },
            _ => String::new(),
        }
    }
}

fn config_error(key: &str, value: &str, expected: &str) -> DataFusionError {
    DataFusionError::Configuration(format!(
        "invalid value for crm.{key}: '{value}' (expected {expected})"
    ))
}

fn parse_days(key: &str, value: &str) -> DFResult<u32> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| config_error(key, value, "a whole number of days ≥ 0"))
}

impl ExtensionOptions for CrmOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> DFResult<()> {
        let mut next = self.clone();
        let v = value.trim();
        match key {
            "as_of" => {
                next.as_of = NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .map_err(|_| config_error(key, value, "a date YYYY-MM-DD"))?;
            }
            "new_days" => next.new_days = parse_days(key, v)?,
            "active_days" => next.active_days = parse_days(key, v)?,
            "churn_days" => next.churn_days = parse_days(key, v)?,
            "quiet_days" => next.quiet_days = parse_days(key, v)?,
            "churn_min_orders" => {
                next.churn_min_orders = v
                    .parse()
                    .map_err(|_| config_error(key, value, "a whole number ≥ 0"))?
            }
            "response_window_days" => next.response_window_days = parse_days(key, v)?,
            "clv_monthly_discount" => {
                next.clv_monthly_discount = v
                    .parse()
                    .map_err(|_| config_error(key, value, "a number ≥ 0, e.g. 0.01"))?
            }
            "tier_thresholds" => {
                next.tier_thresholds = if v.eq_ignore_ascii_case("default") {
                    None
                } else {
                    let parts = v
                        .trim_matches(|c| c == '[' || c == ']')
                        .split(',')
                        .map(|p| p.trim().parse::<f64>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| config_error(key, value, "9 comma-separated numbers"))?;
                    let nine: [f64; 9] = parts.try_into().map_err(|_| {
                        config_error(key, value, "exactly 9 comma-separated numbers")
                    })?;
                    Some(nine)
                };
            }
            other => {
                let known = KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
                return Err(DataFusionError::Configuration(format!(
                    "unrecognized configuration parameter \"crm.{other}\" (crm settings: {known})"
                )));
            }
        }
        next.check()
            .map_err(|e| DataFusionError::Configuration(format!("crm.{e}")))?;
        *self = next;
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        KEYS.iter()
            .map(|(key, description)| ConfigEntry {
                key: format!("{}.{key}", Self::PREFIX),
                value: Some(self.value(key)),
                description,
            })
            .collect()
    }
}

impl ConfigExtension for CrmOptions {
    const PREFIX: &'static str = "crm";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> CrmOptions {
        let day = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
        CrmOptions::from_config(&CrmConfig::default(), day).unwrap()
    }

    #[test]
    fn set_parses_and_validates_each_key() {
        let mut o = options();
        o.set("as_of", "2025-01-31").unwrap();
        assert_eq!(o.as_of, NaiveDate::from_ymd_opt(2025, 1, 31).unwrap());
        o.set("tier_thresholds", "[1, 2, 3, 4, 5, 6, 7, 8, 9]")
            .unwrap();
        assert_eq!(
            o.tier_thresholds,
            Some([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
        );
        o.set("tier_thresholds", "default").unwrap();
        assert_eq!(o.tier_thresholds, None);

        let before = o.clone();
        let e = o.set("as_of", "31/01/2025").unwrap_err().to_string();
        assert!(
            e.contains("crm.as_of: '31/01/2025' (expected a date YYYY-MM-DD)"),
            "{e}"
        );
        let e = o.set("active_days", "200").unwrap_err().to_string();
        assert!(
            e.contains("crm.active_days = 200 must not exceed churn_days = 180"),
            "{e}"
        );
        let e = o.set("new_days", "-1").unwrap_err().to_string();
        assert!(e.contains("crm.new_days: '-1'"), "{e}");
        let e = o.set("tier_thresholds", "1,2").unwrap_err().to_string();
        assert!(e.contains("exactly 9"), "{e}");
        let e = o.set("asof", "2025-01-01").unwrap_err().to_string();
        assert!(
            e.contains("unrecognized configuration parameter \"crm.asof\""),
            "{e}"
        );
        assert_eq!(o, before, "a rejected SET changes nothing");
    }

    #[test]
    fn entries_carry_the_prefix() {
        let keys: Vec<String> = options().entries().into_iter().map(|e| e.key).collect();
        assert_eq!(keys[0], "crm.as_of");
        assert_eq!(keys.len(), 9);
        assert_eq!(options().value("as_of"), "2026-06-30");
        assert_eq!(options().value("tier_thresholds"), "default");
    }

    #[test]
    fn config_relations_are_checked() {
        let config = CrmConfig {
            active_days: 200,
            ..CrmConfig::default()
        };
        let day = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
        let e = CrmOptions::from_config(&config, day).unwrap_err();
        assert_eq!(e, "crm.active_days = 200 must not exceed churn_days = 180");
    }
}
