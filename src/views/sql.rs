//! The SQL of the built-in views, written for one session's [`CrmOptions`]
//! and the current model fits.
//!
//! Conventions shared by every view:
//! - "As of D" means as of the end of day D (UTC): orders, exposures and
//!   interactions before `D + 1 day 00:00 UTC` count, and elapsed times
//!   (recency, lifecycle, churn) are measured to that instant.
//! - Only `completed` orders are purchases. `returned` orders are netted out
//!   (neither counted nor summed, but counted in `returned_orders`);
//!   `cancelled` orders are ignored.
//! - Money stays `numeric(18,2)`; rates and scores are `double precision`.

use chrono::{Days, NaiveDate};

use super::CrmOptions;

/// The longest history the monthly views span (100 years).
const MAX_MONTHS: u32 = 1200;

/// Days per model time unit of the BTYD fits behind `customer_metrics`.
pub const UNIT_DAYS: u32 = 7;

/// Fitted BG/NBD parameters (in weeks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    /// Shape of the purchase-rate gamma.
    pub r: f64,
    /// Scale of the purchase-rate gamma (weeks).
    pub alpha: f64,
    /// Beta shape a of the dropout probability.
    pub a: f64,
    /// Beta shape b of the dropout probability.
    pub b: f64,
}

/// Fitted Gamma-Gamma parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    /// Shape p.
    pub p: f64,
    /// Shape q (> 1).
    pub q: f64,
    /// Scale v.
    pub v: f64,
}

/// The model fits a `customer_metrics` query uses; `None` where the data
/// cannot support a fit (the model columns are then NULL).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Fits {
    /// BG/NBD on every customer's summary.
    pub bgnbd: Option<BgNbd>,
    /// Gamma-Gamma on the repeat buyers.
    pub gamma_gamma: Option<GammaGamma>,
}

/// A timestamp literal of midnight UTC starting `day`, typed like the
/// tables' timestamps (microseconds, UTC).
pub fn midnight(day: NaiveDate) -> String {
    format!(
        "arrow_cast('{}T00:00:00Z', 'Timestamp(µs, \"UTC\")')",
        day.format("%Y-%m-%d")
    )
}

/// The exclusive end instant of an analysis as of `as_of`.
pub fn end_of(as_of: NaiveDate) -> String {
    midnight(as_of.checked_add_days(Days::new(1)).unwrap_or(as_of))
}

/// The last microsecond of `as_of` (UTC): the observation end of the BTYD
/// summaries, so that purchases on the as-of day itself count.
pub fn last_instant(as_of: NaiveDate) -> String {
    format!(
        "arrow_cast('{}T23:59:59.999999Z', 'Timestamp(µs, \"UTC\")')",
        as_of.format("%Y-%m-%d")
    )
}

/// A float literal DataFusion reads back exactly.
fn float(x: f64) -> String {
    format!("CAST({x:?} AS DOUBLE)")
}

/// The per-customer BTYD summary (weeks) of the completed orders up to as_of.
pub fn btyd_summaries(o: &CrmOptions) -> String {
    format!(
        "SELECT customer_id, btyd_summary(order_ts, amount, {last}, {UNIT_DAYS}) AS s \
         FROM orders WHERE status = 'completed' AND order_ts < {end} GROUP BY customer_id",
        last = last_instant(o.as_of),
        end = end_of(o.as_of),
    )
}

/// `customer_metrics`: one row per customer.
pub fn customer_metrics(o: &CrmOptions, fits: &Fits) -> String {
    let end = end_of(o.as_of);
    let last = last_instant(o.as_of);
    let year_ago = midnight(
        o.as_of
            .checked_add_days(Days::new(1))
            .and_then(|d| d.checked_sub_days(Days::new(365)))
            .unwrap_or(o.as_of),
    );
    let tiers = match &o.tier_thresholds {
        Some(t) => format!(
            ", [{}]",
            t.iter().map(|x| float(*x)).collect::<Vec<_>>().join(", ")
        ),
        None => String::new(),
    };
    let horizon_90d = float(90.0 / f64::from(UNIT_DAYS));
    let (p_alive, expected_90d) = match &fits.bgnbd {
        Some(bg) => {
            let p = format!(
                "named_struct('r', {}, 'alpha', {}, 'a', {}, 'b', {})",
                float(bg.r),
                float(bg.alpha),
                float(bg.a),
                float(bg.b)
            );
            (
                format!("bgnbd_p_alive({p}, s['frequency'], s['recency'], s['t'])"),
                format!(
                    "bgnbd_expected_purchases({p}, {horizon_90d}, s['frequency'], s['recency'], s['t'])"
                ),
            )
        }
        None => ("CAST(NULL AS DOUBLE)".into(), "CAST(NULL AS DOUBLE)".into()),
    };
    let clv = match (&fits.bgnbd, &fits.gamma_gamma) {
        (Some(bg), Some(gg)) => format!(
            "clv(named_struct('r', {}, 'alpha', {}, 'a', {}, 'b', {}), \
             named_struct('p', {}, 'q', {}, 'v', {}), \
             s['frequency'], s['recency'], s['t'], s['monetary_value'], 12, {}, {UNIT_DAYS})",
            float(bg.r),
            float(bg.alpha),
            float(bg.a),
            float(bg.b),
            float(gg.p),
            float(gg.q),
            float(gg.v),
            float(o.clv_monthly_discount),
        ),
        _ => "CAST(NULL AS DOUBLE)".into(),
    };
    format!(
        "WITH ord AS (
  SELECT customer_id, order_ts, amount, status FROM orders
  WHERE order_ts < {end} AND status IN ('completed', 'returned')
), agg AS (
  SELECT customer_id,
    min(order_ts) FILTER (WHERE status = 'completed') AS first_order_ts,
    max(order_ts) FILTER (WHERE status = 'completed') AS last_order_ts,
    count(*) FILTER (WHERE status = 'completed') AS orders,
    count(*) FILTER (WHERE status = 'returned') AS returned_orders,
    sum(amount) FILTER (WHERE status = 'completed') AS revenue,
    sum(amount) FILTER (WHERE status = 'completed' AND order_ts >= {year_ago}) AS spend_12m,
    count(*) FILTER (WHERE status = 'completed' AND order_ts >= {year_ago}) AS orders_12m,
    purchase_interval(order_ts) FILTER (WHERE status = 'completed') AS purchase_interval_days,
    btyd_summary(order_ts, amount, {last}, {UNIT_DAYS}) FILTER (WHERE status = 'completed') AS s,
    orders_before_last(order_ts, 90) FILTER (WHERE status = 'completed') AS orders_90d_before_last
  FROM ord GROUP BY customer_id
), act AS (
  SELECT customer_id,
    count(*) FILTER (WHERE kind IN ('view', 'click', 'add_to_cart', 'email_open', 'app_open', 'visit', 'consult', 'review', 'survey')) AS engagement_12m,
    count(*) FILTER (WHERE kind = 'share') AS shares_12m,
    count(*) FILTER (WHERE kind = 'referral') AS referrals_12m
  FROM interactions WHERE ts < {end} AND ts >= {year_ago}
  GROUP BY customer_id
), base AS (
  SELECT c.customer_id, c.signup_channel, c.marketing_consent,
    a.first_order_ts, a.last_order_ts,
    COALESCE(a.orders, 0) AS orders,
    COALESCE(a.returned_orders, 0) AS returned_orders,
    CAST(COALESCE(a.revenue, 0) AS DECIMAL(18,2)) AS revenue,
    CAST(COALESCE(a.spend_12m, 0) AS DECIMAL(18,2)) AS spend_12m,
    COALESCE(a.orders_12m, 0) AS orders_12m,
    CAST(floor((date_part('epoch', {end}) - date_part('epoch', a.last_order_ts)) / 86400) AS BIGINT) AS recency_days,
    a.purchase_interval_days,
    COALESCE(a.orders_90d_before_last, 0) AS orders_90d_before_last,
    COALESCE(i.engagement_12m, 0) AS engagement_12m,
    COALESCE(i.shares_12m, 0) AS shares_12m,
    COALESCE(i.referrals_12m, 0) AS referrals_12m,
    a.s
  FROM customers c
  LEFT JOIN agg a ON a.customer_id = c.customer_id
  LEFT JOIN act i ON i.customer_id = c.customer_id
  WHERE c.signup_at < {end}
), scored AS (
  -- Customers without purchases get NULL inputs: left out of the score
  -- thresholds, NULL scores.
  SELECT *,
    rfm_score(CAST(recency_days AS DOUBLE), CASE WHEN orders > 0 THEN CAST(orders AS DOUBLE) END,
              CASE WHEN orders > 0 THEN CAST(revenue AS DOUBLE) END) OVER () AS rfm,
    value_score(CAST(recency_days AS DOUBLE), CASE WHEN orders > 0 THEN CAST(orders AS DOUBLE) END,
                CASE WHEN orders > 0 THEN CAST(revenue AS DOUBLE) END,
                CAST(engagement_12m AS DOUBLE), CAST(shares_12m + 3 * referrals_12m AS DOUBLE)) OVER () AS value_score
  FROM base
)
SELECT customer_id, signup_channel,
  first_order_ts, last_order_ts, orders, returned_orders, revenue,
  CAST(CASE WHEN orders > 0 THEN revenue / orders END AS DECIMAL(18,2)) AS aov,
  recency_days,
  rfm['r'] AS r_score, rfm['f'] AS f_score, rfm['m'] AS m_score, rfm['code'] AS rfm_code,
  rfm_segment(rfm['r'], rfm['f'], rfm['m']) AS rfm_segment,
  value_class(rfm['r'], rfm['f'], rfm['m'], first_order_ts, {end}) AS value_class,
  lifecycle_stage(first_order_ts, last_order_ts, orders, {end}, {new_days}, {active_days}, {churn_days}) AS lifecycle_stage,
  COALESCE(churn_warning(last_order_ts, orders_90d_before_last, {end}, {quiet_days}, {min_orders}), false) AS churn_warning,
  purchase_interval_days,
  next_purchase_date(last_order_ts, purchase_interval_days) AS next_purchase_date,
  spend_12m, orders_12m,
  member_tier(spend_12m, orders_12m, engagement_12m{tiers}) AS member_tier,
  engagement_12m, shares_12m, referrals_12m,
  value_score,
  {p_alive} AS p_alive,
  {expected_90d} AS expected_purchases_90d,
  CAST({clv} AS DECIMAL(18,2)) AS clv_12m,
  marketing_consent
FROM scored",
        new_days = o.new_days,
        active_days = o.active_days,
        churn_days = o.churn_days,
        quiet_days = o.quiet_days,
        min_orders = o.churn_min_orders,
    )
}

/// `segment_summary`: customers with at least one purchase, per segment and class.
pub fn segment_summary() -> String {
    "SELECT rfm_segment, value_class,
  count(*) AS customers,
  CAST(count(*) AS DOUBLE) / CAST(sum(count(*)) OVER () AS DOUBLE) AS share,
  CAST(sum(revenue) AS DECIMAL(18,2)) AS revenue,
  CAST(sum(revenue) / sum(orders) AS DECIMAL(18,2)) AS aov,
  CAST(avg(clv_12m) AS DECIMAL(18,2)) AS avg_clv_12m,
  count(*) FILTER (WHERE churn_warning) AS churn_warnings
FROM customer_metrics WHERE orders > 0
GROUP BY rfm_segment, value_class"
        .into()
}

/// `cohort_retention`: cohort month of first purchase × months since.
pub fn cohort_retention(o: &CrmOptions) -> String {
    let end = end_of(o.as_of);
    let as_of_month = format!("DATE '{}'", o.as_of.format("%Y-%m-01"));
    format!(
        "WITH ord AS (
  SELECT customer_id, month_start(order_ts) AS month, amount FROM orders
  WHERE status = 'completed' AND order_ts < {end}
), firsts AS (
  SELECT customer_id, min(month) AS cohort_month FROM ord GROUP BY customer_id
), monthly AS (
  SELECT f.cohort_month, o.customer_id,
    CAST((date_part('year', o.month) - date_part('year', f.cohort_month)) * 12
       + date_part('month', o.month) - date_part('month', f.cohort_month) AS BIGINT) AS months_since,
    o.amount
  FROM ord o JOIN firsts f ON f.customer_id = o.customer_id
), act AS (
  SELECT cohort_month, months_since, count(DISTINCT customer_id) AS active_customers, sum(amount) AS revenue
  FROM monthly GROUP BY cohort_month, months_since
), sizes AS (
  SELECT cohort_month, count(*) AS cohort_size,
    CAST((date_part('year', {as_of_month}) - date_part('year', cohort_month)) * 12
       + date_part('month', {as_of_month}) - date_part('month', cohort_month) AS BIGINT) AS last_month
  FROM firsts GROUP BY cohort_month
), spine AS (
  SELECT z.cohort_month, z.cohort_size, k.value AS months_since
  FROM sizes z JOIN range(0, {MAX_MONTHS}) AS k ON k.value <= z.last_month
)
SELECT s.cohort_month, CAST(s.months_since AS BIGINT) AS months_since, s.cohort_size,
  COALESCE(max(a.active_customers) FILTER (WHERE a.months_since = s.months_since), 0) AS active_customers,
  CAST(COALESCE(max(a.active_customers) FILTER (WHERE a.months_since = s.months_since), 0) AS DOUBLE)
    / CAST(s.cohort_size AS DOUBLE) AS retention_rate,
  CAST(COALESCE(sum(a.revenue), 0) / s.cohort_size AS DECIMAL(18,2)) AS cumulative_revenue_per_customer
FROM spine s LEFT JOIN act a ON a.cohort_month = s.cohort_month AND a.months_since <= s.months_since
GROUP BY s.cohort_month, s.months_since, s.cohort_size"
    )
}

/// `promotion_effectiveness`: one row per promotion.
pub fn promotion_effectiveness(o: &CrmOptions) -> String {
    let end = end_of(o.as_of);
    let w = o.response_window_days;
    format!(
        "WITH ex AS (
  SELECT promotion_id, customer_id, exposed_at, is_control FROM promotion_exposures
  WHERE exposed_at < {end}
), done AS (
  SELECT order_id, customer_id, order_ts, amount FROM orders
  WHERE status = 'completed' AND order_ts < {end}
), hits AS (
  SELECT ex.promotion_id, ex.customer_id, d.order_id, d.amount
  FROM ex JOIN done d ON d.customer_id = ex.customer_id
   AND d.order_ts > ex.exposed_at AND d.order_ts <= ex.exposed_at + INTERVAL '{w} days'
), per_exposure AS (
  SELECT ex.promotion_id, ex.customer_id, ex.is_control, ex.exposed_at,
    count(h.order_id) AS window_orders, COALESCE(sum(h.amount), 0) AS window_revenue
  FROM ex LEFT JOIN hits h ON h.promotion_id = ex.promotion_id AND h.customer_id = ex.customer_id
  GROUP BY ex.promotion_id, ex.customer_id, ex.is_control, ex.exposed_at
), cats AS (
  SELECT h.promotion_id, h.customer_id, count(DISTINCT i.category) AS categories
  FROM hits h JOIN order_items i ON i.order_id = h.order_id
  GROUP BY h.promotion_id, h.customer_id
), firsts AS (
  SELECT customer_id, min(order_ts) AS first_ts FROM done GROUP BY customer_id
), repeat90 AS (
  SELECT f.customer_id FROM firsts f JOIN done d ON d.customer_id = f.customer_id
   AND d.order_ts > f.first_ts AND d.order_ts <= f.first_ts + INTERVAL '90 days'
  GROUP BY f.customer_id
), acquired AS (
  SELECT e.promotion_id, e.customer_id, r.customer_id IS NOT NULL AS repeated
  FROM per_exposure e JOIN firsts f ON f.customer_id = e.customer_id
  LEFT JOIN repeat90 r ON r.customer_id = e.customer_id
  WHERE NOT e.is_control AND f.first_ts > e.exposed_at AND f.first_ts <= e.exposed_at + INTERVAL '{w} days'
), g AS (
  SELECT e.promotion_id,
    count(*) FILTER (WHERE NOT e.is_control) AS nt,
    count(*) FILTER (WHERE e.is_control) AS nc,
    count(*) FILTER (WHERE NOT e.is_control AND e.window_orders > 0) AS rt,
    count(*) FILTER (WHERE e.is_control AND e.window_orders > 0) AS rc,
    COALESCE(sum(e.window_revenue) FILTER (WHERE NOT e.is_control), 0) AS revt,
    COALESCE(sum(e.window_revenue) FILTER (WHERE e.is_control), 0) AS revc,
    count(*) FILTER (WHERE NOT e.is_control AND c.categories >= 2) AS cross_sellers
  FROM per_exposure e LEFT JOIN cats c ON c.promotion_id = e.promotion_id AND c.customer_id = e.customer_id
  GROUP BY e.promotion_id
), acq AS (
  SELECT promotion_id, count(*) AS new_customers, count(*) FILTER (WHERE repeated) AS repeaters
  FROM acquired GROUP BY promotion_id
), rates AS (
  SELECT p.promotion_id, p.name, p.kind, p.channel, p.start_ts, p.end_ts, p.cost,
    COALESCE(g.nt, 0) AS nt, COALESCE(g.nc, 0) AS nc, COALESCE(g.rt, 0) AS rt, COALESCE(g.rc, 0) AS rc,
    COALESCE(g.revt, 0) AS revt, COALESCE(g.revc, 0) AS revc, COALESCE(g.cross_sellers, 0) AS cross_sellers,
    CASE WHEN g.nt > 0 THEN CAST(g.rt AS DOUBLE) / g.nt END AS pt,
    CASE WHEN g.nc > 0 THEN CAST(g.rc AS DOUBLE) / g.nc END AS pc,
    COALESCE(a.new_customers, 0) AS new_customers, a.repeaters
  FROM promotions p
  LEFT JOIN g ON g.promotion_id = p.promotion_id
  LEFT JOIN acq a ON a.promotion_id = p.promotion_id
), lift AS (
  SELECT *, pt - pc AS uplift,
    1.96 * sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc) AS margin,
    CASE WHEN nt > 0 AND nc > 0
      THEN (CAST(revt AS DOUBLE) / nt - CAST(revc AS DOUBLE) / nc) * nt END AS incremental
  FROM rates
)
SELECT promotion_id, name, kind, channel, start_ts, end_ts,
  nt AS treated_customers, nc AS control_customers,
  rt AS treated_responders, rc AS control_responders,
  pt AS treated_response_rate, pc AS control_response_rate,
  uplift, uplift - margin AS uplift_ci_low, uplift + margin AS uplift_ci_high,
  uplift * nt AS incremental_responders,
  CAST(revt AS DECIMAL(18,2)) AS treated_revenue,
  CAST(revc AS DECIMAL(18,2)) AS control_revenue,
  CAST(incremental AS DECIMAL(18,2)) AS incremental_revenue,
  cost,
  CASE WHEN cost > 0 THEN (incremental - CAST(cost AS DOUBLE)) / CAST(cost AS DOUBLE) END AS roi,
  CASE WHEN rt > 0 THEN CAST(cross_sellers AS DOUBLE) / rt END AS cross_sell_rate,
  new_customers,
  CASE WHEN new_customers > 0 THEN CAST(repeaters AS DOUBLE) / new_customers END AS new_customer_repeat_rate_90d
FROM lift"
    )
}

/// `kpi_monthly`: per calendar month (UTC) and channel.
pub fn kpi_monthly(o: &CrmOptions) -> String {
    let end = end_of(o.as_of);
    let as_of_month = format!("DATE '{}'", o.as_of.format("%Y-%m-01"));
    format!(
        "WITH ord AS (
  SELECT customer_id, order_id, order_ts, channel, amount,
    month_start(order_ts) AS month
  FROM orders WHERE status = 'completed' AND order_ts < {end}
), surveys AS (
  SELECT month_start(ts) AS month, channel, value FROM interactions
  WHERE kind = 'survey' AND value IS NOT NULL AND ts < {end}
), buyers AS (
  SELECT month, channel, customer_id, count(*) AS n, sum(amount) AS revenue
  FROM ord GROUP BY month, channel, customer_id
), sales AS (
  SELECT month, channel, count(*) AS active_customers,
    count(*) FILTER (WHERE n >= 2) AS repeat_customers,
    sum(n) AS orders, sum(revenue) AS revenue
  FROM buyers GROUP BY month, channel
), bounds AS (
  SELECT min(month) AS first_month FROM (SELECT month FROM sales UNION ALL SELECT month FROM surveys)
), months AS (
  SELECT make_date(
      CAST(date_part('year', b.first_month) AS BIGINT) + (CAST(date_part('month', b.first_month) AS BIGINT) - 1 + k.value) / 12,
      (CAST(date_part('month', b.first_month) AS BIGINT) - 1 + k.value) % 12 + 1,
      1) AS month
  FROM bounds b JOIN range(0, {MAX_MONTHS}) AS k
    ON k.value <= (date_part('year', {as_of_month}) - date_part('year', b.first_month)) * 12
                + date_part('month', {as_of_month}) - date_part('month', b.first_month)
), channels AS (
  SELECT DISTINCT channel FROM (SELECT channel FROM sales UNION ALL SELECT channel FROM surveys)
), firsts AS (
  SELECT customer_id, first_value(channel ORDER BY order_ts, order_id) AS channel,
    min(month) AS month
  FROM ord GROUP BY customer_id
), acquired AS (
  SELECT month, channel, count(*) AS new_customers FROM firsts GROUP BY month, channel
), any_month AS (
  SELECT DISTINCT month, customer_id FROM buyers
), kept AS (
  SELECT CAST(b.month + INTERVAL '1 month' AS DATE) AS month, b.channel,
    count(*) AS previous_customers, count(a.customer_id) AS retained
  FROM buyers b LEFT JOIN any_month a
    ON a.customer_id = b.customer_id AND a.month = CAST(b.month + INTERVAL '1 month' AS DATE)
  GROUP BY b.month, b.channel
), scores AS (
  SELECT month, channel, nps(value) AS nps, count(*) AS survey_responses FROM surveys GROUP BY month, channel
)
SELECT m.month, c.channel,
  COALESCE(s.active_customers, 0) AS active_customers,
  COALESCE(n.new_customers, 0) AS new_customers,
  COALESCE(s.orders, 0) AS orders,
  CASE WHEN s.active_customers > 0 THEN CAST(s.repeat_customers AS DOUBLE) / s.active_customers END AS repurchase_rate,
  CASE WHEN k.previous_customers > 0 THEN 1.0 - CAST(k.retained AS DOUBLE) / k.previous_customers END AS churn_rate,
  CAST(COALESCE(s.revenue, 0) AS DECIMAL(18,2)) AS revenue,
  CAST(CASE WHEN s.orders > 0 THEN s.revenue / s.orders END AS DECIMAL(18,2)) AS aov,
  q.nps, COALESCE(q.survey_responses, 0) AS survey_responses
FROM months m CROSS JOIN channels c
LEFT JOIN sales s ON s.month = m.month AND s.channel = c.channel
LEFT JOIN acquired n ON n.month = m.month AND n.channel = c.channel
LEFT JOIN kept k ON k.month = m.month AND k.channel = c.channel
LEFT JOIN scores q ON q.month = m.month AND q.channel = c.channel"
    )
}

/// `segment_transitions`: moves between consecutive snapshots.
pub fn segment_transitions() -> String {
    "WITH dates AS (
  SELECT DISTINCT snapshot_date FROM customer_snapshots
), pairs AS (
  SELECT snapshot_date AS from_date, lead(snapshot_date) OVER (ORDER BY snapshot_date) AS to_date FROM dates
), a AS (
  SELECT p.from_date, p.to_date, s.customer_id, s.rfm_segment
  FROM pairs p JOIN customer_snapshots s ON s.snapshot_date = p.from_date
  WHERE p.to_date IS NOT NULL
), b AS (
  SELECT p.from_date, p.to_date, s.customer_id, s.rfm_segment
  FROM pairs p JOIN customer_snapshots s ON s.snapshot_date = p.to_date
  WHERE p.to_date IS NOT NULL
)
SELECT COALESCE(a.from_date, b.from_date) AS from_date, COALESCE(a.to_date, b.to_date) AS to_date,
  a.rfm_segment AS from_segment, b.rfm_segment AS to_segment, count(*) AS customers
FROM a FULL JOIN b ON a.from_date = b.from_date AND a.customer_id = b.customer_id
GROUP BY 1, 2, 3, 4"
        .into()
}
