//! Customer lifetime value: the discounted sum, month by month, of the
//! expected number of purchases in that month (BG/NBD) times the expected
//! value of a purchase (Gamma-Gamma), as `lifetimes.utils._customer_lifetime_value`
//! computes it, with the time unit explicit.
//!
//! `lifetimes` turns months into model time units with a fixed factor per unit
//! (30 for days, 4.345 for weeks), so the same customers give different CLVs
//! when summarised by day or by week. Here a month is `days_per_month` days
//! (default 365.25 / 12) and the model unit is `unit_days` days, so a month is
//! `days_per_month / unit_days` model units whatever the unit: daily and
//! weekly summaries of the same orders give the same CLV. Pass
//! `days_per_month = 4.345 · 7` (or 30 with daily data) to reproduce `lifetimes`.

use super::Rfm;
use super::bgnbd;
use super::gamma_gamma;

/// Average Gregorian month in days.
pub const DAYS_PER_MONTH: f64 = 365.25 / 12.0;

/// CLV over `months` months, discounting month k by (1 + rate)^k.
#[allow(clippy::too_many_arguments)]
pub fn clv(
    bg: &bgnbd::Params,
    gg: &gamma_gamma::Params,
    c: &Rfm,
    monetary_value: f64,
    months: u32,
    monthly_discount_rate: f64,
    unit_days: f64,
    days_per_month: f64,
) -> f64 {
    let horizon = Horizon {
        months,
        monthly_discount_rate,
        unit_days,
        days_per_month,
    };
    clv_with(
        bg,
        gg,
        c,
        monetary_value,
        horizon.discounted_numerator(bg, c.x, c.t),
    )
}

/// The months of a CLV and how they are discounted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Horizon {
    /// Number of months.
    pub months: u32,
    /// Discount rate per month.
    pub monthly_discount_rate: f64,
    /// Days per model time unit.
    pub unit_days: f64,
    /// Days per month.
    pub days_per_month: f64,
}

impl Horizon {
    /// Σₖ (N(k) − N(k−1)) / (1 + rate)^k, N(k) being the numerator of the
    /// expected purchases by the end of month k
    /// ([`bgnbd::expected_purchases_numerator`]). It depends on the
    /// customer through (x, T) only: customers sharing them can share it.
    pub fn discounted_numerator(&self, bg: &bgnbd::Params, x: f64, t: f64) -> f64 {
        let step = self.days_per_month / self.unit_days;
        let mut total = 0.0;
        let mut prev = 0.0;
        for k in 1..=self.months {
            let cum = bgnbd::expected_purchases_numerator(bg, step * f64::from(k), x, t);
            total += (cum - prev) / (1.0 + self.monthly_discount_rate).powi(k as i32);
            prev = cum;
        }
        total
    }
}

/// CLV from a customer's [`Horizon::discounted_numerator`].
pub fn clv_with(
    bg: &bgnbd::Params,
    gg: &gamma_gamma::Params,
    c: &Rfm,
    monetary_value: f64,
    discounted_numerator: f64,
) -> f64 {
    if discounted_numerator == 0.0 {
        return 0.0;
    }
    gamma_gamma::expected_value(gg, c.x, monetary_value) * discounted_numerator
        / bgnbd::expected_purchases_denominator(bg, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btyd_clv_is_unit_free_and_discounts() {
        let bg = bgnbd::Params {
            r: 0.243,
            alpha: 4.414,
            a: 0.793,
            b: 2.426,
        };
        let bg_days = bgnbd::Params {
            alpha: 4.414 * 7.0,
            ..bg
        };
        let gg = gamma_gamma::Params {
            p: 6.25,
            q: 3.74,
            v: 15.44,
        };
        let w = Rfm {
            x: 2.0,
            t_x: 30.43,
            t: 38.86,
        };
        let d = Rfm {
            x: 2.0,
            t_x: 30.43 * 7.0,
            t: 38.86 * 7.0,
        };
        let cw = clv(&bg, &gg, &w, 22.35, 12, 0.01, 7.0, DAYS_PER_MONTH);
        let cd = clv(&bg_days, &gg, &d, 22.35, 12, 0.01, 1.0, DAYS_PER_MONTH);
        assert!((cw - cd).abs() < 1e-9 * cw, "{cw} vs {cd}");
        // Undiscounted CLV = E[Y(12 months)] × E[M].
        let flat = clv(&bg, &gg, &w, 22.35, 12, 0.0, 7.0, DAYS_PER_MONTH);
        let want = bgnbd::expected_purchases(&bg, 12.0 * DAYS_PER_MONTH / 7.0, &w)
            * gamma_gamma::expected_value(&gg, 2.0, 22.35);
        assert!((flat - want).abs() < 1e-9 * want);
        assert!(cw < flat && cw > 0.0);
        assert_eq!(clv(&bg, &gg, &w, 22.35, 0, 0.01, 7.0, DAYS_PER_MONTH), 0.0);
    }
}
