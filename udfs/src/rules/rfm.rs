//! RFM rules: value-based quantile scores, fixed-edge scores, the combined FM
//! score and the 11-segment R×FM map (crm-formulas.md §4.1, §4.2 B).

/// The 11 RFM segments (R×FM grid, crm-formulas.md §4.2 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// R5 FM5, R5 FM4, R4 FM5.
    Champions,
    /// R5 FM3, R4 FM4, R3 FM5, R3 FM4.
    Loyal,
    /// R5 FM2, R4 FM2, R3 FM3, R4 FM3.
    PotentialLoyalist,
    /// R5 FM1.
    NewCustomers,
    /// R4 FM1, R3 FM1.
    Promising,
    /// R3 FM2, R2 FM3, R2 FM2.
    NeedAttention,
    /// R2 FM1.
    AboutToSleep,
    /// R2 FM5, R2 FM4, R1 FM3.
    AtRisk,
    /// R1 FM5, R1 FM4.
    CantLoseThem,
    /// R1 FM2.
    Hibernating,
    /// R1 FM1.
    Lost,
}

impl Segment {
    /// Every segment, in the order of the documentation.
    pub const ALL: [Segment; 11] = [
        Segment::Champions,
        Segment::Loyal,
        Segment::PotentialLoyalist,
        Segment::NewCustomers,
        Segment::Promising,
        Segment::NeedAttention,
        Segment::AboutToSleep,
        Segment::AtRisk,
        Segment::CantLoseThem,
        Segment::Hibernating,
        Segment::Lost,
    ];

    /// The SQL label.
    pub fn as_str(self) -> &'static str {
        match self {
            Segment::Champions => "Champions",
            Segment::Loyal => "Loyal",
            Segment::PotentialLoyalist => "Potential Loyalist",
            Segment::NewCustomers => "New Customers",
            Segment::Promising => "Promising",
            Segment::NeedAttention => "Need Attention",
            Segment::AboutToSleep => "About To Sleep",
            Segment::AtRisk => "At Risk",
            Segment::CantLoseThem => "Can't Lose Them",
            Segment::Hibernating => "Hibernating",
            Segment::Lost => "Lost",
        }
    }
}

/// The combined FM score: (F + M) / 2 rounded half up, so 1+2 → 2 and 4+5 → 5.
/// `None` unless both scores are in 1..=5.
pub fn fm_score(f: i64, m: i64) -> Option<i64> {
    if (1..=5).contains(&f) && (1..=5).contains(&m) {
        Some((f + m + 1) / 2)
    } else {
        None
    }
}

/// The segment of an (R, FM) cell; `None` unless both are in 1..=5.
pub fn segment_rfm(r: i64, fm: i64) -> Option<Segment> {
    use Segment::*;
    Some(match (r, fm) {
        (5, 5) | (5, 4) | (4, 5) => Champions,
        (5, 3) | (4, 4) | (3, 5) | (3, 4) => Loyal,
        (5, 2) | (4, 2) | (3, 3) | (4, 3) => PotentialLoyalist,
        (5, 1) => NewCustomers,
        (4, 1) | (3, 1) => Promising,
        (3, 2) | (2, 3) | (2, 2) => NeedAttention,
        (2, 1) => AboutToSleep,
        (2, 5) | (2, 4) | (1, 3) => AtRisk,
        (1, 5) | (1, 4) => CantLoseThem,
        (1, 2) => Hibernating,
        (1, 1) => Lost,
        _ => return None,
    })
}

/// The segment of R, F, M scores (each 1..=5): R against the combined FM score.
pub fn segment(r: i64, f: i64, m: i64) -> Option<Segment> {
    segment_rfm(r, fm_score(f, m)?)
}

/// Type-7 (linear interpolation, R's default) quantile of sorted finite-or-infinite
/// values at probability `p` in [0, 1]. `None` for an empty slice.
pub fn quantile_type7(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * p.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    let (a, b) = (*sorted.get(lo)?, *sorted.get(hi)?);
    let w = h - lo as f64;
    if w == 0.0 || a == b {
        Some(a)
    } else {
        Some((1.0 - w) * a + w * b)
    }
}

/// The `bins − 1` inner thresholds q_k = quantile(k / bins), k = 1..bins−1.
pub fn thresholds(sorted: &[f64], bins: usize) -> Vec<f64> {
    (1..bins)
        .filter_map(|k| quantile_type7(sorted, k as f64 / bins as f64))
        .collect()
}

/// Score where higher values are better: 1 + #{k : v > q_k} (1..=bins).
/// Equal values always share a score.
pub fn score_higher_better(v: f64, thresholds: &[f64]) -> i32 {
    1 + thresholds.iter().filter(|q| v > **q).count() as i32
}

/// Score where lower values are better (recency): bins − #{k : v > q_k}.
pub fn score_lower_better(v: f64, thresholds: &[f64]) -> i32 {
    (thresholds.len() + 1) as i32 - thresholds.iter().filter(|q| v > **q).count() as i32
}

/// Fixed-edge score where higher is better: 1 + #{k : v ≥ e_k}
/// (edges are "at least" thresholds: edges `[2, 3, 5, 10]` give 1 order → 1, 2 → 2, 10 → 5).
pub fn fixed_higher_better(v: f64, edges: &[f64]) -> i32 {
    1 + edges.iter().filter(|e| v >= **e).count() as i32
}

/// Fixed-edge score where lower is better (recency in days): edges are "at most"
/// thresholds, `len + 1 − #{k : v > e_k}` (edges `[30, 60, 90, 180]` give 30 days → 5,
/// 31 → 4, 181 → 1).
pub fn fixed_lower_better(v: f64, edges: &[f64]) -> i32 {
    (edges.len() + 1) as i32 - edges.iter().filter(|e| v > **e).count() as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn all_125_inputs_map_to_exactly_the_documented_segment() {
        // The grid of crm-formulas.md §4.2 B as digit pairs (R then FM).
        let grid: [(Segment, &[&str]); 11] = [
            (Segment::Champions, &["55", "54", "45"]),
            (Segment::Loyal, &["53", "44", "35", "34"]),
            (Segment::PotentialLoyalist, &["52", "42", "33", "43"]),
            (Segment::NewCustomers, &["51"]),
            (Segment::Promising, &["41", "31"]),
            (Segment::NeedAttention, &["32", "23", "22"]),
            (Segment::AboutToSleep, &["21"]),
            (Segment::AtRisk, &["25", "24", "13"]),
            (Segment::CantLoseThem, &["15", "14"]),
            (Segment::Hibernating, &["12"]),
            (Segment::Lost, &["11"]),
        ];
        let mut cell: BTreeMap<(i64, i64), Segment> = BTreeMap::new();
        for (seg, cells) in grid {
            for c in cells {
                let b = c.as_bytes();
                let key = (i64::from(b[0] - b'0'), i64::from(b[1] - b'0'));
                assert!(cell.insert(key, seg).is_none(), "cell {c} listed twice");
            }
        }
        assert_eq!(cell.len(), 25, "the grid covers all 25 (R, FM) cells");
        let mut counts: BTreeMap<Segment, usize> = BTreeMap::new();
        for r in 1..=5 {
            for f in 1..=5 {
                for m in 1..=5 {
                    let fm = (f + m + 1) / 2;
                    let got = segment(r, f, m).unwrap();
                    assert_eq!(got, cell[&(r, fm)], "r={r} f={f} m={m}");
                    *counts.entry(got).or_default() += 1;
                }
            }
        }
        assert_eq!(counts.values().sum::<usize>(), 125);
        assert_eq!(counts.len(), 11, "every segment is reachable");
        // Exact counts per segment: FM=1 ← 1 (f,m) pair, 2 ← 5, 3 ← 9, 4 ← 7, 5 ← 3.
        assert_eq!(counts[&Segment::Champions], 3 + 7 + 3);
        assert_eq!(counts[&Segment::Lost], 1);
        assert_eq!(counts[&Segment::Hibernating], 5);
        assert_eq!(counts[&Segment::NeedAttention], 5 + 9 + 5);
    }

    #[test]
    fn fm_rounds_half_up_and_rejects_out_of_range() {
        assert_eq!(fm_score(1, 1), Some(1));
        assert_eq!(fm_score(1, 2), Some(2));
        assert_eq!(fm_score(2, 3), Some(3));
        assert_eq!(fm_score(4, 5), Some(5));
        assert_eq!(fm_score(0, 5), None);
        assert_eq!(fm_score(6, 5), None);
        assert_eq!(segment(0, 3, 3), None);
        assert_eq!(segment(6, 3, 3), None);
    }

    #[test]
    fn type7_quantiles_match_r() {
        // R: quantile(c(1,2,3,4,10), c(.2,.4,.6,.8)) = 1.8 2.6 3.4 5.2
        let q = thresholds(&[1.0, 2.0, 3.0, 4.0, 10.0], 5);
        let want = [1.8, 2.6, 3.4, 5.2];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{q:?}");
        }
        assert_eq!(quantile_type7(&[], 0.5), None);
        assert_eq!(quantile_type7(&[7.0], 0.3), Some(7.0));
    }

    #[test]
    fn scores_are_value_based_and_ties_share() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 10.0];
        let q = thresholds(&sorted, 5);
        let f: Vec<i32> = sorted.iter().map(|v| score_higher_better(*v, &q)).collect();
        assert_eq!(f, [1, 2, 3, 4, 5]);
        let r: Vec<i32> = sorted.iter().map(|v| score_lower_better(*v, &q)).collect();
        assert_eq!(r, [5, 4, 3, 2, 1]);
        // All equal: everyone shares the lowest F score and the best R score.
        let q = thresholds(&[3.0; 6], 5);
        assert_eq!(score_higher_better(3.0, &q), 1);
        assert_eq!(score_lower_better(3.0, &q), 5);
    }

    #[test]
    fn scores_stay_in_range_property() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..500 {
            let n = (round % 40) + 1;
            let mut v: Vec<f64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 20) as f64
                })
                .collect();
            v.sort_by(f64::total_cmp);
            let bins = 3 + round % 8;
            let q = thresholds(&v, bins);
            for w in v.windows(2) {
                let (a, b) = (score_higher_better(w[0], &q), score_higher_better(w[1], &q));
                assert!(a <= b, "monotone");
                assert!((1..=bins as i32).contains(&a) && (1..=bins as i32).contains(&b));
                if w[0] == w[1] {
                    assert_eq!(a, b);
                }
                let (a, b) = (score_lower_better(w[0], &q), score_lower_better(w[1], &q));
                assert!(a >= b && (1..=bins as i32).contains(&b));
            }
        }
    }

    #[test]
    fn fixed_edges_both_sides() {
        let e = [30.0, 60.0, 90.0, 180.0];
        assert_eq!(fixed_lower_better(0.0, &e), 5);
        assert_eq!(fixed_lower_better(30.0, &e), 5);
        assert_eq!(fixed_lower_better(30.5, &e), 4);
        assert_eq!(fixed_lower_better(180.0, &e), 2);
        assert_eq!(fixed_lower_better(181.0, &e), 1);
        let e = [2.0, 3.0, 5.0, 10.0];
        assert_eq!(fixed_higher_better(1.0, &e), 1);
        assert_eq!(fixed_higher_better(2.0, &e), 2);
        assert_eq!(fixed_higher_better(9.0, &e), 4);
        assert_eq!(fixed_higher_better(10.0, &e), 5);
    }
}
