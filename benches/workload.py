"""The fixed benchmark workload of issue 8, as SQL for each engine.

crmdb answers the CRM questions with its built-in views (`customer_metrics`,
`cohort_retention`, `promotion_effectiveness`, `kpi_monthly`) and functions;
DuckDB and PostgreSQL get the same questions in plain SQL that computes the
same answers (value-based RFM quintiles are type-7 quantiles, which both have
as percentile_cont / quantile_cont). Where plain SQL cannot compute a column
(the BG/NBD and Gamma-Gamma fits behind expected_purchases_90d and clv_12m),
the plain query leaves it out and the check compares the rest; p_alive is
computed in closed form from crmdb's own fitted parameters.

All analyses are as of the end of AS_OF (UTC), the last day of the generated
history, so every engine sees the same window.
"""

import datetime as dt

AS_OF = dt.date(2026, 6, 30)
END = dt.datetime.combine(AS_OF + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
YEAR_AGO = END - dt.timedelta(days=365)
END_EPOCH = int(END.timestamp())
AS_OF_DAY = (AS_OF - dt.date(1970, 1, 1)).days
EXPORT_SEGMENT = "At Risk"

SEGMENTS = """CASE
    WHEN r = 5 AND fm >= 4 OR r = 4 AND fm = 5 THEN 'Champions'
    WHEN r = 5 AND fm = 3 OR r = 4 AND fm = 4 OR r = 3 AND fm >= 4 THEN 'Loyal'
    WHEN r = 5 AND fm = 2 OR r = 4 AND fm IN (2, 3) OR r = 3 AND fm = 3 THEN 'Potential Loyalist'
    WHEN r = 5 AND fm = 1 THEN 'New Customers'
    WHEN r IN (3, 4) AND fm = 1 THEN 'Promising'
    WHEN r = 3 AND fm = 2 OR r = 2 AND fm IN (2, 3) THEN 'Need Attention'
    WHEN r = 2 AND fm = 1 THEN 'About To Sleep'
    WHEN r = 2 AND fm >= 4 OR r = 1 AND fm = 3 THEN 'At Risk'
    WHEN r = 1 AND fm >= 4 THEN 'Can''t Lose Them'
    WHEN r = 1 AND fm = 2 THEN 'Hibernating'
    WHEN r = 1 AND fm = 1 THEN 'Lost'
  END"""


class Dialect:
    """The few spellings that differ between PostgreSQL and DuckDB."""

    def __init__(self, name):
        self.name = name

    def ts(self, t):
        return f"TIMESTAMPTZ '{t.strftime('%Y-%m-%d %H:%M:%S')}+00'"

    def idiv(self, a, b):
        # DuckDB's `/` on integers is float division
        return f"(({a}) // ({b}))" if self.name == "duckdb" else f"(({a}) / ({b}))"

    def quintiles(self, expr):
        """The 4 inner type-7 quintile thresholds of expr as a 1-based array."""
        if self.name == "duckdb":
            return f"quantile_cont({expr}, [0.2, 0.4, 0.6, 0.8])"
        return f"percentile_cont(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY {expr})"

    def money_div(self, num, den):
        """num (money) / den (count) as decimal(18,2), rounded half away from
        zero as crmdb and PostgreSQL do (DuckDB divides decimals in floating
        point, so it works in whole cents there)."""
        if self.name == "duckdb":
            cents = f"CAST(({num}) * 100 AS BIGINT)"
            n = f"CAST(({den}) AS BIGINT)"
            q = f"((2 * abs({cents}) + {n}) // (2 * {n}))"
            return f"CAST(sign({cents}) * {q} AS decimal(18, 0)) * 0.01"
        return f"CAST(({num}) / ({den}) AS decimal(18, 2))"

    def plus_days(self, ts, days):
        """ts + days (float) days, rounded to the microsecond."""
        if self.name == "duckdb":
            return f"({ts} + to_microseconds(CAST(round(({days}) * 86400000000) AS BIGINT)))"
        return f"({ts} + make_interval(secs => round(({days}) * 86400000000) / 1000000.0))"


PG = Dialect("postgres")
DUCK = Dialect("duckdb")


# --------------------------------------------------------------------------
# crmdb: the questions asked of the built-in views


def crmdb_queries():
    return {
        "q1_rfm_segments": (
            "SELECT rfm_segment, count(*) AS customers FROM customer_metrics "
            "WHERE orders > 0 GROUP BY rfm_segment ORDER BY rfm_segment"
        ),
        "q2_cohort_retention": (
            "SELECT cohort_month, months_since, cohort_size, active_customers, retention_rate, "
            "cumulative_revenue_per_customer FROM cohort_retention WHERE months_since <= 12 "
            "ORDER BY cohort_month, months_since"
        ),
        "q3_promotion_effectiveness": (
            "SELECT promotion_id, treated_customers, control_customers, treated_responders, "
            "control_responders, treated_response_rate, control_response_rate, uplift, "
            "uplift_ci_low, uplift_ci_high, incremental_responders, treated_revenue, "
            "control_revenue, incremental_revenue, cost, roi, cross_sell_rate, new_customers, "
            "new_customer_repeat_rate_90d FROM promotion_effectiveness ORDER BY promotion_id"
        ),
        "q5_lifecycle_by_channel": (
            "SELECT signup_channel, lifecycle_stage, count(*) AS customers FROM customer_metrics "
            "GROUP BY signup_channel, lifecycle_stage ORDER BY signup_channel, lifecycle_stage"
        ),
        "q6_repurchase_aov_monthly": (
            "SELECT month, channel, active_customers, orders, repurchase_rate, revenue, aov "
            "FROM kpi_monthly WHERE orders > 0 ORDER BY month, channel"
        ),
        "q7_customer_metrics": "SELECT * FROM customer_metrics",
        "q8_export_segment": None,  # needs the output path: export_sql()
    }


EXPORT_COLUMNS = (
    "m.customer_id, c.name, c.email, c.phone, c.city, m.rfm_segment, m.recency_days, "
    "m.orders, m.revenue"
)


def crmdb_export(path):
    return (
        f"COPY (SELECT {EXPORT_COLUMNS} FROM customer_metrics m "
        f"JOIN customers c ON c.customer_id = m.customer_id "
        f"WHERE m.rfm_segment = '{EXPORT_SEGMENT}') TO '{path}' STORED AS PARQUET"
    )


CRMDB_Q7_CHECK = """SELECT rfm_segment, value_class, lifecycle_stage, member_tier, churn_warning,
  count(*) AS n, sum(orders) AS orders, sum(returned_orders) AS returned_orders,
  sum(revenue) AS revenue, sum(aov) AS aov, sum(recency_days) AS recency_days,
  sum(r_score) AS r, sum(f_score) AS f, sum(m_score) AS m,
  sum(customer_id * (r_score * 100 + f_score * 10 + m_score)) AS rfm_by_id,
  count(DISTINCT rfm_code) AS codes,
  sum(purchase_interval_days) AS purchase_interval_days,
  count(next_purchase_date) AS npd_n,
  sum(date_part('epoch', next_purchase_date)) AS npd_epoch,
  sum(spend_12m) AS spend_12m, sum(orders_12m) AS orders_12m,
  sum(engagement_12m) AS engagement_12m, sum(shares_12m) AS shares_12m,
  sum(referrals_12m) AS referrals_12m, sum(value_score) AS value_score,
  sum(p_alive) AS p_alive, count(*) FILTER (WHERE marketing_consent) AS consented,
  min(first_order_ts) AS first_order_ts, max(last_order_ts) AS last_order_ts
FROM customer_metrics
GROUP BY rfm_segment, value_class, lifecycle_stage, member_tier, churn_warning
ORDER BY rfm_segment, value_class, lifecycle_stage, member_tier, churn_warning"""


def crmdb_fit_query():
    """crmdb's BG/NBD fit as of AS_OF, the same one customer_metrics uses."""
    end = f"arrow_cast('{END:%Y-%m-%dT%H:%M:%SZ}', 'Timestamp(µs, \"UTC\")')"
    last = f"arrow_cast('{AS_OF:%Y-%m-%d}T23:59:59.999999Z', 'Timestamp(µs, \"UTC\")')"
    return (
        f"WITH s AS (SELECT customer_id, btyd_summary(order_ts, amount, {last}, 7) AS s "
        f"FROM orders WHERE status = 'completed' AND order_ts < {end} GROUP BY customer_id), "
        f"f AS (SELECT bgnbd_fit(s['frequency'], s['recency'], s['t']) AS p FROM s) "
        f"SELECT p['r'] AS r, p['alpha'] AS alpha, p['a'] AS a, p['b'] AS b FROM f"
    )


# --------------------------------------------------------------------------
# customer 360 point lookup and streaming (the same SQL on every engine)


def lookup(customer_id):
    i = int(customer_id)
    return f"""SELECT c.customer_id, c.name, c.email, c.phone, c.city, c.signup_channel,
  c.member_tier, c.marketing_consent, o.orders, o.revenue, o.first_order_ts, o.last_order_ts,
  o.returned_orders, x.interactions, x.last_interaction_ts
FROM customers c
LEFT JOIN (SELECT customer_id,
    count(*) FILTER (WHERE status = 'completed') AS orders,
    sum(amount) FILTER (WHERE status = 'completed') AS revenue,
    min(order_ts) FILTER (WHERE status = 'completed') AS first_order_ts,
    max(order_ts) FILTER (WHERE status = 'completed') AS last_order_ts,
    count(*) FILTER (WHERE status = 'returned') AS returned_orders
  FROM orders WHERE customer_id = {i} GROUP BY customer_id) o ON o.customer_id = c.customer_id
LEFT JOIN (SELECT customer_id, count(*) AS interactions, max(ts) AS last_interaction_ts
  FROM interactions WHERE customer_id = {i} GROUP BY customer_id) x ON x.customer_id = c.customer_id
WHERE c.customer_id = {i}"""


def stream(rows):
    return (
        "SELECT order_id, customer_id, order_ts, channel, amount, status FROM orders "
        f"LIMIT {int(rows)}"
    )


# --------------------------------------------------------------------------
# plain SQL for DuckDB and PostgreSQL


def plain_queries(d, fit):
    """The workload in plain SQL for dialect d; fit = crmdb's BG/NBD
    parameters {r, alpha, a, b} for the closed-form p_alive of q7."""
    end = d.ts(END)
    metrics = customer_metrics(d, fit)
    return {
        "q1_rfm_segments": f"""WITH agg AS (
  SELECT customer_id, max(order_ts) AS last_ts, count(*) AS f, sum(amount) AS m
  FROM orders WHERE status = 'completed' AND order_ts < {end} GROUP BY customer_id
), base AS (
  SELECT a.customer_id,
    CAST(floor(({END_EPOCH} - extract(epoch FROM a.last_ts)) / 86400) AS float8) AS rec,
    CAST(a.f AS float8) AS f, CAST(a.m AS float8) AS m
  FROM agg a JOIN customers c ON c.customer_id = a.customer_id WHERE c.signup_at < {end}
), q AS (
  SELECT {d.quintiles('rec')} AS qr, {d.quintiles('f')} AS qf, {d.quintiles('m')} AS qm FROM base
), s AS (
  SELECT 5 - (CAST(rec > qr[1] AS int) + CAST(rec > qr[2] AS int) + CAST(rec > qr[3] AS int) + CAST(rec > qr[4] AS int)) AS r,
    1 + CAST(f > qf[1] AS int) + CAST(f > qf[2] AS int) + CAST(f > qf[3] AS int) + CAST(f > qf[4] AS int) AS fs,
    1 + CAST(m > qm[1] AS int) + CAST(m > qm[2] AS int) + CAST(m > qm[3] AS int) + CAST(m > qm[4] AS int) AS ms
  FROM base CROSS JOIN q
), g AS (
  SELECT r, {d.idiv('fs + ms + 1', 2)} AS fm FROM s
)
SELECT {SEGMENTS} AS rfm_segment, count(*) AS customers FROM g GROUP BY 1 ORDER BY 1""",
        "q2_cohort_retention": f"""WITH ord AS (
  SELECT customer_id, order_ts, amount FROM orders WHERE status = 'completed' AND order_ts < {end}
), firsts AS (
  SELECT customer_id, CAST(date_trunc('month', min(order_ts)) AS date) AS cohort_month
  FROM ord GROUP BY customer_id
), monthly AS (
  SELECT f.cohort_month, o.customer_id, o.amount,
    CAST((extract(year FROM o.order_ts) - extract(year FROM f.cohort_month)) * 12
       + extract(month FROM o.order_ts) - extract(month FROM f.cohort_month) AS bigint) AS k
  FROM ord o JOIN firsts f ON f.customer_id = o.customer_id
), act AS (
  SELECT cohort_month, k, count(DISTINCT customer_id) AS active, sum(amount) AS revenue
  FROM monthly WHERE k <= 12 GROUP BY cohort_month, k
), sizes AS (
  SELECT cohort_month, count(*) AS n,
    CAST((extract(year FROM DATE '{AS_OF:%Y-%m-01}') - extract(year FROM cohort_month)) * 12
       + extract(month FROM DATE '{AS_OF:%Y-%m-01}') - extract(month FROM cohort_month) AS bigint) AS last_month
  FROM firsts GROUP BY cohort_month
), spine AS (
  SELECT z.cohort_month, z.n, g.k FROM sizes z JOIN generate_series(0, 12) AS g(k) ON g.k <= z.last_month
)
SELECT s.cohort_month, CAST(s.k AS bigint) AS months_since, s.n AS cohort_size,
  COALESCE(a.active, 0) AS active_customers,
  CAST(COALESCE(a.active, 0) AS float8) / s.n AS retention_rate,
  {d.money_div('sum(COALESCE(a.revenue, 0)) OVER (PARTITION BY s.cohort_month ORDER BY s.k)', 's.n')}
    AS cumulative_revenue_per_customer
FROM spine s LEFT JOIN act a ON a.cohort_month = s.cohort_month AND a.k = s.k
ORDER BY 1, 2""",
        "q3_promotion_effectiveness": promotion_effectiveness(d),
        "q5_lifecycle_by_channel": f"""WITH agg AS (
  SELECT customer_id, min(order_ts) AS first_ts, max(order_ts) AS last_ts, count(*) AS n
  FROM orders WHERE status = 'completed' AND order_ts < {end} GROUP BY customer_id
)
SELECT c.signup_channel,
  CASE WHEN COALESCE(a.n, 0) = 0 THEN 'prospect'
    WHEN ({END_EPOCH} - extract(epoch FROM a.first_ts)) / 86400.0 <= 30 THEN 'new'
    WHEN ({END_EPOCH} - extract(epoch FROM a.last_ts)) / 86400.0 <= 90 THEN 'active'
    WHEN ({END_EPOCH} - extract(epoch FROM a.last_ts)) / 86400.0 <= 180 THEN 'sleeping'
    ELSE 'churned' END AS lifecycle_stage,
  count(*) AS customers
FROM customers c LEFT JOIN agg a ON a.customer_id = c.customer_id
WHERE c.signup_at < {end}
GROUP BY 1, 2 ORDER BY 1, 2""",
        "q6_repurchase_aov_monthly": f"""WITH ord AS (
  SELECT customer_id, channel, amount, CAST(date_trunc('month', order_ts) AS date) AS month
  FROM orders WHERE status = 'completed' AND order_ts < {end}
), buyers AS (
  SELECT month, channel, customer_id, count(*) AS n FROM ord GROUP BY month, channel, customer_id
), sales AS (
  SELECT month, channel, count(*) AS active, count(*) FILTER (WHERE n >= 2) AS repeaters
  FROM buyers GROUP BY month, channel
), money AS (
  SELECT month, channel, count(*) AS orders, sum(amount) AS revenue FROM ord GROUP BY month, channel
)
SELECT m.month, m.channel, s.active AS active_customers, m.orders,
  CAST(s.repeaters AS float8) / s.active AS repurchase_rate,
  CAST(m.revenue AS decimal(18, 2)) AS revenue,
  {d.money_div('m.revenue', 'm.orders')} AS aov
FROM money m JOIN sales s ON s.month = m.month AND s.channel IS NOT DISTINCT FROM m.channel
ORDER BY 1, 2""",
        "q7_customer_metrics": metrics,
        "q8_export_segment": None,
    }


def plain_export_select(d, fit):
    return (
        f"WITH m AS ({customer_metrics(d, fit)}) SELECT {EXPORT_COLUMNS} FROM m "
        f"JOIN customers c ON c.customer_id = m.customer_id "
        f"WHERE m.rfm_segment = '{EXPORT_SEGMENT}'"
    )


def plain_q7_check(d, fit):
    return f"""WITH cm AS ({customer_metrics(d, fit)})
SELECT rfm_segment, value_class, lifecycle_stage, member_tier, churn_warning,
  count(*) AS n, sum(orders) AS orders, sum(returned_orders) AS returned_orders,
  sum(revenue) AS revenue, sum(aov) AS aov, sum(recency_days) AS recency_days,
  sum(r_score) AS r, sum(f_score) AS f, sum(m_score) AS m,
  sum(customer_id * (r_score * 100 + f_score * 10 + m_score)) AS rfm_by_id,
  count(DISTINCT rfm_code) AS codes,
  sum(purchase_interval_days) AS purchase_interval_days,
  count(next_purchase_date) AS npd_n,
  sum(extract(epoch FROM next_purchase_date)) AS npd_epoch,
  sum(spend_12m) AS spend_12m, sum(orders_12m) AS orders_12m,
  sum(engagement_12m) AS engagement_12m, sum(shares_12m) AS shares_12m,
  sum(referrals_12m) AS referrals_12m, sum(value_score) AS value_score,
  sum(p_alive) AS p_alive, count(*) FILTER (WHERE marketing_consent) AS consented,
  min(first_order_ts) AS first_order_ts, max(last_order_ts) AS last_order_ts
FROM cm
GROUP BY rfm_segment, value_class, lifecycle_stage, member_tier, churn_warning
ORDER BY 1, 2, 3, 4, 5"""


def customer_metrics(d, fit):
    """Every column of crmdb's customer_metrics that plain SQL can compute
    (all but expected_purchases_90d and clv_12m), same definitions."""
    end = d.ts(END)
    year_ago = d.ts(YEAR_AGO)
    r, alpha, a, b = (f"CAST({float(fit[k])!r} AS float8)" for k in ("r", "alpha", "a", "b"))
    return f"""WITH ord AS (
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
    count(*) FILTER (WHERE status = 'completed' AND order_ts >= {year_ago}) AS orders_12m
  FROM ord GROUP BY customer_id
), days AS (
  SELECT DISTINCT customer_id, CAST(floor(extract(epoch FROM order_ts) / 86400) AS bigint) AS day
  FROM ord WHERE status = 'completed'
), gaps AS (
  SELECT customer_id, day - lag(day) OVER (PARTITION BY customer_id ORDER BY day) AS gap FROM days
), cyc AS (
  SELECT customer_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY CAST(gap AS float8)) AS purchase_interval_days
  FROM gaps WHERE gap IS NOT NULL GROUP BY customer_id
), btyd AS (
  SELECT customer_id, CAST(count(*) - 1 AS float8) AS x,
    (max(day) - min(day)) / 7.0 AS t_x, ({AS_OF_DAY} - min(day)) / 7.0 AS t_cal
  FROM days GROUP BY customer_id
), before_last AS (
  SELECT o.customer_id, count(*) AS n
  FROM ord o JOIN agg a ON o.customer_id = a.customer_id
  WHERE o.status = 'completed' AND o.order_ts < a.last_order_ts
    AND o.order_ts >= a.last_order_ts - INTERVAL '90 days'
  GROUP BY o.customer_id
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
    CAST(COALESCE(a.revenue, 0) AS decimal(18, 2)) AS revenue,
    CAST(COALESCE(a.spend_12m, 0) AS decimal(18, 2)) AS spend_12m,
    COALESCE(a.orders_12m, 0) AS orders_12m,
    CAST(floor(({END_EPOCH} - extract(epoch FROM a.last_order_ts)) / 86400) AS bigint) AS recency_days,
    y.purchase_interval_days,
    COALESCE(bl.n, 0) AS orders_90d_before_last,
    COALESCE(i.engagement_12m, 0) AS engagement_12m,
    COALESCE(i.shares_12m, 0) AS shares_12m,
    COALESCE(i.referrals_12m, 0) AS referrals_12m,
    t.x, t.t_x, t.t_cal
  FROM customers c
  LEFT JOIN agg a ON a.customer_id = c.customer_id
  LEFT JOIN before_last bl ON bl.customer_id = c.customer_id
  LEFT JOIN act i ON i.customer_id = c.customer_id
  LEFT JOIN cyc y ON y.customer_id = c.customer_id
  LEFT JOIN btyd t ON t.customer_id = c.customer_id
  WHERE c.signup_at < {end}
), inputs AS (
  SELECT *, CAST(recency_days AS float8) AS rec,
    CASE WHEN orders > 0 THEN CAST(orders AS float8) END AS fq,
    CASE WHEN orders > 0 THEN CAST(revenue AS float8) END AS mon,
    CAST(shares_12m + 3 * referrals_12m AS float8) AS social
  FROM base
), q AS (
  SELECT {d.quintiles('rec')} AS qr, {d.quintiles('fq')} AS qf, {d.quintiles('mon')} AS qm FROM inputs
), scored AS (
  SELECT i.*,
    5 - (CAST(rec > qr[1] AS int) + CAST(rec > qr[2] AS int) + CAST(rec > qr[3] AS int) + CAST(rec > qr[4] AS int)) AS r,
    1 + CAST(fq > qf[1] AS int) + CAST(fq > qf[2] AS int) + CAST(fq > qf[3] AS int) + CAST(fq > qf[4] AS int) AS fs,
    1 + CAST(mon > qm[1] AS int) + CAST(mon > qm[2] AS int) + CAST(mon > qm[3] AS int) + CAST(mon > qm[4] AS int) AS ms,
    percent_rank() OVER (PARTITION BY rec IS NULL ORDER BY rec DESC) AS pr_r,
    percent_rank() OVER (PARTITION BY fq IS NULL ORDER BY fq) AS pr_f,
    percent_rank() OVER (PARTITION BY mon IS NULL ORDER BY mon) AS pr_m,
    percent_rank() OVER (ORDER BY CAST(engagement_12m AS float8)) AS pr_e,
    percent_rank() OVER (ORDER BY social) AS pr_s
  FROM inputs i CROSS JOIN q
), seg AS (
  SELECT *, {d.idiv('fs + ms + 1', 2)} AS fm FROM scored
), named AS (
  SELECT *, {SEGMENTS} AS segment FROM seg
)
SELECT customer_id, signup_channel, first_order_ts, last_order_ts, orders, returned_orders, revenue,
  CASE WHEN orders > 0 THEN {d.money_div('revenue', 'orders')} END AS aov,
  recency_days,
  r AS r_score, fs AS f_score, ms AS m_score,
  CAST(r AS text) || CAST(fs AS text) || CAST(ms AS text) AS rfm_code,
  segment AS rfm_segment,
  CASE WHEN r IS NULL THEN NULL
    WHEN ({END_EPOCH} - extract(epoch FROM first_order_ts)) / 86400.0 <= 30 THEN 'new'
    WHEN segment IN ('Champions', 'Loyal') THEN 'high_value'
    WHEN segment IN ('Potential Loyalist', 'New Customers', 'Promising', 'Need Attention') THEN 'potential'
    ELSE 'sleeping' END AS value_class,
  CASE WHEN orders = 0 THEN 'prospect'
    WHEN ({END_EPOCH} - extract(epoch FROM first_order_ts)) / 86400.0 <= 30 THEN 'new'
    WHEN ({END_EPOCH} - extract(epoch FROM last_order_ts)) / 86400.0 <= 90 THEN 'active'
    WHEN ({END_EPOCH} - extract(epoch FROM last_order_ts)) / 86400.0 <= 180 THEN 'sleeping'
    ELSE 'churned' END AS lifecycle_stage,
  COALESCE(({END_EPOCH} - extract(epoch FROM last_order_ts)) / 86400.0 >= 30
    AND orders_90d_before_last >= 3, false) AS churn_warning,
  purchase_interval_days,
  {d.plus_days('last_order_ts', 'purchase_interval_days')} AS next_purchase_date,
  spend_12m, orders_12m,
  CASE WHEN spend_12m >= 20000 AND orders_12m >= 20 AND engagement_12m >= 30 THEN 'platinum'
    WHEN spend_12m >= 5000 AND orders_12m >= 8 AND engagement_12m >= 10 THEN 'gold'
    WHEN spend_12m >= 1000 AND orders_12m >= 3 THEN 'silver'
    ELSE 'regular' END AS member_tier,
  engagement_12m, shares_12m, referrals_12m,
  CASE WHEN orders > 0 THEN 100 * (0.2 * pr_r + 0.25 * pr_f + 0.3 * pr_m + 0.15 * pr_e + 0.1 * pr_s) END AS value_score,
  CASE WHEN x IS NULL THEN NULL WHEN x = 0 THEN 1.0
    ELSE 1.0 / (1.0 + exp(({r} + x) * ln(({alpha} + t_cal) / ({alpha} + t_x)) + ln({a} / ({b} + x - 1.0))))
  END AS p_alive,
  marketing_consent
FROM named"""


def promotion_effectiveness(d):
    end = d.ts(END)
    w = 14
    return f"""WITH ex AS (
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
  SELECT p.promotion_id, p.cost,
    COALESCE(g.nt, 0) AS nt, COALESCE(g.nc, 0) AS nc, COALESCE(g.rt, 0) AS rt, COALESCE(g.rc, 0) AS rc,
    COALESCE(g.revt, 0) AS revt, COALESCE(g.revc, 0) AS revc, COALESCE(g.cross_sellers, 0) AS cross_sellers,
    CASE WHEN g.nt > 0 THEN CAST(g.rt AS float8) / g.nt END AS pt,
    CASE WHEN g.nc > 0 THEN CAST(g.rc AS float8) / g.nc END AS pc,
    COALESCE(a.new_customers, 0) AS new_customers, a.repeaters
  FROM promotions p
  LEFT JOIN g ON g.promotion_id = p.promotion_id
  LEFT JOIN acq a ON a.promotion_id = p.promotion_id
), lift AS (
  SELECT *, pt - pc AS uplift,
    1.96 * sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc) AS margin,
    CASE WHEN nt > 0 AND nc > 0
      THEN (CAST(revt AS float8) / nt - CAST(revc AS float8) / nc) * nt END AS incremental
  FROM rates
)
SELECT promotion_id,
  nt AS treated_customers, nc AS control_customers,
  rt AS treated_responders, rc AS control_responders,
  pt AS treated_response_rate, pc AS control_response_rate,
  uplift, uplift - margin AS uplift_ci_low, uplift + margin AS uplift_ci_high,
  uplift * nt AS incremental_responders,
  CAST(revt AS decimal(18, 2)) AS treated_revenue,
  CAST(revc AS decimal(18, 2)) AS control_revenue,
  CAST(incremental AS decimal(18, 2)) AS incremental_revenue,
  cost,
  CASE WHEN cost > 0 THEN (incremental - CAST(cost AS float8)) / CAST(cost AS float8) END AS roi,
  CASE WHEN rt > 0 THEN CAST(cross_sellers AS float8) / rt END AS cross_sell_rate,
  new_customers,
  CASE WHEN new_customers > 0 THEN CAST(repeaters AS float8) / new_customers END AS new_customer_repeat_rate_90d
FROM lift ORDER BY promotion_id"""
