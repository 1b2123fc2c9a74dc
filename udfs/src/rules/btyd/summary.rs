//! Orders → one customer's BTYD summary.
//!
//! Purchases are bucketed by calendar day (UTC): orders on the same day are
//! one purchase whose value is their sum. frequency = purchase days − 1;
//! recency = first → last purchase day; T = first purchase day → the day of
//! the end of observation; both divided by `unit_days` (7 = weeks).
//! monetary_value = mean value of the repeat purchase days (0 when frequency
//! is 0). Orders after the end of observation are ignored by the caller.

/// One customer's summary in units of `unit_days`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Repeat purchase days.
    pub frequency: f64,
    /// First → last purchase day.
    pub recency: f64,
    /// First purchase day → observation end day.
    pub t: f64,
    /// Mean value of the repeat purchase days.
    pub monetary_value: f64,
}

/// Summarise `(day, amount)` orders (days since the epoch; `orders` is sorted
/// in place). `None` when there are no orders on or before `end_day`.
pub fn summarise(orders: &mut [(i64, f64)], end_day: i64, unit_days: f64) -> Option<Summary> {
    orders.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut it = orders.iter().filter(|o| o.0 <= end_day);
    let &(first, _) = it.next()?;
    let (mut days, mut last, mut repeat_sum) = (0u64, first, 0.0);
    for &(d, v) in orders.iter().filter(|o| o.0 <= end_day) {
        if d == first {
            continue;
        }
        if d != last {
            days += 1;
            last = d;
        }
        repeat_sum += v;
    }
    let frequency = days as f64;
    Some(Summary {
        frequency,
        recency: (last - first) as f64 / unit_days,
        t: (end_day - first) as f64 / unit_days,
        monetary_value: if days == 0 {
            0.0
        } else {
            repeat_sum / frequency
        },
    })
}

/// Hold-out summary: purchase days strictly after `calibration_end_day` and
/// on or before `end_day`, and the hold-out duration in units.
pub fn holdout(
    orders: &mut [(i64, f64)],
    calibration_end_day: i64,
    end_day: i64,
    unit_days: f64,
) -> (f64, f64) {
    orders.sort_unstable_by_key(|o| o.0);
    let mut days = 0u64;
    let mut last = None;
    for &(d, _) in orders.iter() {
        if d > calibration_end_day && d <= end_day && last != Some(d) {
            days += 1;
            last = Some(d);
        }
    }
    (
        days as f64,
        (end_day - calibration_end_day) as f64 / unit_days,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btyd_summary_buckets_days_and_excludes_first() {
        // day 0: 10 + 5 (one purchase), day 3: 7, day 3: 1, day 10: 20, day 40: after end
        let mut o = vec![
            (10, 20.0),
            (0, 10.0),
            (3, 7.0),
            (0, 5.0),
            (3, 1.0),
            (40, 99.0),
        ];
        let s = summarise(&mut o, 14, 7.0).unwrap();
        assert_eq!(
            s,
            Summary {
                frequency: 2.0,
                recency: 10.0 / 7.0,
                t: 2.0,
                monetary_value: 14.0
            }
        );
        let mut one = vec![(5, 3.0), (5, 4.0)];
        assert_eq!(
            summarise(&mut one, 5, 1.0).unwrap(),
            Summary {
                frequency: 0.0,
                recency: 0.0,
                t: 0.0,
                monetary_value: 0.0
            }
        );
        let mut late = vec![(20, 1.0)];
        assert_eq!(summarise(&mut late, 10, 1.0), None);
        let mut h = vec![(1, 1.0), (12, 1.0), (12, 2.0), (15, 1.0), (30, 1.0)];
        assert_eq!(holdout(&mut h, 10, 24, 7.0), (2.0, 2.0));
    }
}
