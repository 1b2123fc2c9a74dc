//! Member tier rule (crm-formulas.md §4.8): the highest tier whose every
//! threshold is met.

/// Member tiers, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// Below every silver threshold.
    Regular,
    /// Silver.
    Silver,
    /// Gold.
    Gold,
    /// Platinum.
    Platinum,
}

impl Tier {
    /// The SQL label.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Regular => "regular",
            Tier::Silver => "silver",
            Tier::Gold => "gold",
            Tier::Platinum => "platinum",
        }
    }
}

/// Minimum (spend, orders, engagement) over 12 months for silver, gold, platinum.
pub type Thresholds = [[f64; 3]; 3];

/// Default thresholds: silver 1,000 spend · 3 orders · 0 engagement; gold 5,000 · 8 · 10;
/// platinum 20,000 · 20 · 30.
pub const DEFAULT: Thresholds = [
    [1_000.0, 3.0, 0.0],
    [5_000.0, 8.0, 10.0],
    [20_000.0, 20.0, 30.0],
];

/// Build thresholds from the 9 numbers of the SQL argument
/// (silver spend, orders, engagement, gold …, platinum …).
pub fn from_slice(v: &[f64]) -> Result<Thresholds, String> {
    if v.len() != 9 {
        return Err(format!(
            "argument thresholds must hold 9 numbers (spend, orders, engagement for silver, gold, platinum), got {}",
            v.len()
        ));
    }
    let mut t = [[0.0; 3]; 3];
    for (i, x) in v.iter().enumerate() {
        if !x.is_finite() || *x < 0.0 {
            return Err(format!(
                "argument thresholds: element {} must be a non-negative number, got {x}",
                i + 1
            ));
        }
        t[i / 3][i % 3] = *x;
    }
    Ok(t)
}

/// The highest tier whose spend, orders and engagement thresholds are all met.
pub fn tier(spend: f64, orders: f64, engagement: f64, t: &Thresholds) -> Tier {
    let levels = [Tier::Silver, Tier::Gold, Tier::Platinum];
    let mut best = Tier::Regular;
    for (level, [s, o, e]) in levels.iter().zip(t) {
        if spend >= *s && orders >= *o && engagement >= *e {
            best = *level;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_tier_with_every_threshold_met() {
        assert_eq!(tier(999.99, 3.0, 0.0, &DEFAULT), Tier::Regular);
        assert_eq!(tier(1_000.0, 3.0, 0.0, &DEFAULT), Tier::Silver);
        assert_eq!(tier(1_000.0, 2.0, 0.0, &DEFAULT), Tier::Regular);
        assert_eq!(tier(5_000.0, 8.0, 10.0, &DEFAULT), Tier::Gold);
        assert_eq!(tier(5_000.0, 8.0, 9.0, &DEFAULT), Tier::Silver);
        assert_eq!(tier(50_000.0, 100.0, 29.0, &DEFAULT), Tier::Gold);
        assert_eq!(tier(20_000.0, 20.0, 30.0, &DEFAULT), Tier::Platinum);
        assert_eq!(tier(f64::NAN, 20.0, 30.0, &DEFAULT), Tier::Regular);
    }

    #[test]
    fn thresholds_from_sql() {
        assert_eq!(
            from_slice(&[1e3, 3.0, 0.0, 5e3, 8.0, 10.0, 2e4, 20.0, 30.0]),
            Ok(DEFAULT)
        );
        assert!(from_slice(&[1.0; 8]).unwrap_err().contains("9 numbers"));
        assert!(
            from_slice(&[1.0, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
                .unwrap_err()
                .contains("element 3")
        );
    }
}
