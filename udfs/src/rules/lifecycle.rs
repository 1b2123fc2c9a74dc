//! Lifecycle stage rule (crm-formulas.md §4.8).

/// Lifecycle stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No order yet.
    Prospect,
    /// First order at most `new_days` ago.
    New,
    /// Last order at most `active_days` ago.
    Active,
    /// Last order more than `active_days` and at most `churn_days` ago.
    Sleeping,
    /// Last order more than `churn_days` ago.
    Churned,
}

impl Stage {
    /// The SQL label.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Prospect => "prospect",
            Stage::New => "new",
            Stage::Active => "active",
            Stage::Sleeping => "sleeping",
            Stage::Churned => "churned",
        }
    }
}

/// Stage thresholds in days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// A customer whose first order is at most this many days old is new (default 30).
    pub new_days: f64,
    /// Active while the last order is at most this many days old (default 90).
    pub active_days: f64,
    /// Sleeping up to this many days since the last order, churned beyond (default 180).
    pub churn_days: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            new_days: 30.0,
            active_days: 90.0,
            churn_days: 180.0,
        }
    }
}

impl Thresholds {
    /// Check that every threshold is finite, non-negative and `active_days ≤ churn_days`;
    /// the error names the argument.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("new_days", self.new_days),
            ("active_days", self.active_days),
            ("churn_days", self.churn_days),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "argument {name} must be a non-negative number of days, got {v}"
                ));
            }
        }
        if self.active_days > self.churn_days {
            return Err(format!(
                "argument active_days ({}) must not exceed churn_days ({})",
                self.active_days, self.churn_days
            ));
        }
        Ok(())
    }
}

/// The stage given the order count and the days since the first and last order.
/// Rules, in order: 0 orders → prospect; first order ≤ new_days ago → new;
/// last order ≤ active_days ago → active; ≤ churn_days → sleeping; else churned.
pub fn stage(orders: i64, days_since_first: f64, days_since_last: f64, t: &Thresholds) -> Stage {
    if orders <= 0 {
        Stage::Prospect
    } else if days_since_first <= t.new_days {
        Stage::New
    } else if days_since_last <= t.active_days {
        Stage::Active
    } else if days_since_last <= t.churn_days {
        Stage::Sleeping
    } else {
        Stage::Churned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_of_every_default_boundary() {
        let t = Thresholds::default();
        assert_eq!(stage(0, 1.0, 1.0, &t), Stage::Prospect);
        assert_eq!(stage(1, 30.0, 30.0, &t), Stage::New);
        assert_eq!(stage(1, 30.001, 30.001, &t), Stage::Active);
        assert_eq!(stage(3, 200.0, 90.0, &t), Stage::Active);
        assert_eq!(stage(3, 200.0, 90.001, &t), Stage::Sleeping);
        assert_eq!(stage(3, 200.0, 180.0, &t), Stage::Sleeping);
        assert_eq!(stage(3, 200.0, 180.001, &t), Stage::Churned);
    }

    #[test]
    fn validation_names_the_argument() {
        let t = Thresholds {
            new_days: -1.0,
            ..Thresholds::default()
        };
        assert!(t.validate().unwrap_err().contains("new_days"));
        let t = Thresholds {
            active_days: 200.0,
            ..Thresholds::default()
        };
        assert!(t.validate().unwrap_err().contains("active_days"));
        let t = Thresholds {
            churn_days: f64::NAN,
            ..Thresholds::default()
        };
        assert!(t.validate().unwrap_err().contains("churn_days"));
        assert_eq!(Thresholds::default().validate(), Ok(()));
    }
}
