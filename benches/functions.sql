-- CRM functions against the same answer in plain SQL, on 10 M rows (issue 4).
--
--   target/release/crmdb --data "$(mktemp -d)/s" init
--   target/release/crmdb --data … sql --timing -f benches/functions.sql
--
-- `--timing` prints each statement's planning + execution time on stderr.
-- The input is synthetic and deterministic (multiplicative hashes of the row
-- number), held in memory so that only the functions are measured. Each
-- query groups its result so the whole column is computed and the outputs
-- can be compared by eye: the function and its plain-SQL twin print the same
-- rows (except NTILE, which splits ties arbitrarily — the reason rfm_score
-- exists — so its counts differ).

CREATE TABLE rfm_input AS
SELECT value AS id,
  CAST((value * 7919) % 730 AS DOUBLE) AS recency_days,
  CAST(1 + (value * 31) % 20 AS DOUBLE) AS frequency,
  CAST((value * 104729) % 500000 AS DOUBLE) / 100.0 AS monetary,
  CAST(1 + (value * 13) % 5 AS INT) AS r,
  CAST(1 + (value * 17) % 5 AS INT) AS f,
  CAST(1 + (value * 19) % 5 AS INT) AS m,
  arrow_cast((1704067200 + ((value * 7) % 700) * 86400) * 1000000, 'Timestamp(µs, "UTC")') AS first_order_ts,
  arrow_cast((1704067200 + ((value * 7) % 700 + (value * 3) % 200) * 86400) * 1000000, 'Timestamp(µs, "UTC")') AS last_order_ts,
  CAST((value * 11) % 6 AS BIGINT) AS orders
FROM range(10000000);

-- 1a. rfm_score: value-based quintiles, ties share a score
SELECT s['r'] AS r, count(*) AS n, sum(s['f']) AS f, sum(s['m']) AS m
FROM (SELECT rfm_score(recency_days, frequency, monetary) OVER () AS s FROM rfm_input)
GROUP BY 1 ORDER BY 1;

-- 1b. the same scores in plain SQL: thresholds from type-7 quantiles, then
--     a count of thresholds passed (what rfm_score computes)
WITH q AS (
  SELECT percentile_cont(recency_days, 0.2) AS r1, percentile_cont(recency_days, 0.4) AS r2,
         percentile_cont(recency_days, 0.6) AS r3, percentile_cont(recency_days, 0.8) AS r4,
         percentile_cont(frequency, 0.2) AS f1, percentile_cont(frequency, 0.4) AS f2,
         percentile_cont(frequency, 0.6) AS f3, percentile_cont(frequency, 0.8) AS f4,
         percentile_cont(monetary, 0.2) AS m1, percentile_cont(monetary, 0.4) AS m2,
         percentile_cont(monetary, 0.6) AS m3, percentile_cont(monetary, 0.8) AS m4
  FROM rfm_input
), s AS (
  SELECT 5 - (CAST(recency_days > r1 AS INT) + CAST(recency_days > r2 AS INT)
            + CAST(recency_days > r3 AS INT) + CAST(recency_days > r4 AS INT)) AS r,
         1 + CAST(frequency > f1 AS INT) + CAST(frequency > f2 AS INT)
           + CAST(frequency > f3 AS INT) + CAST(frequency > f4 AS INT) AS f,
         1 + CAST(monetary > m1 AS INT) + CAST(monetary > m2 AS INT)
           + CAST(monetary > m3 AS INT) + CAST(monetary > m4 AS INT) AS m
  FROM rfm_input CROSS JOIN q
)
SELECT r, count(*) AS n, sum(f) AS f, sum(m) AS m FROM s GROUP BY 1 ORDER BY 1;

-- 1c. NTILE, the usual hand-written RFM (ties split arbitrarily)
SELECT r, count(*) AS n, sum(f) AS f, sum(m) AS m
FROM (SELECT 6 - ntile(5) OVER (ORDER BY recency_days) AS r,
             ntile(5) OVER (ORDER BY frequency) AS f,
             ntile(5) OVER (ORDER BY monetary) AS m
      FROM rfm_input)
GROUP BY 1 ORDER BY 1;

-- 2a. rfm_segment
SELECT rfm_segment(r, f, m) AS segment, count(*) AS n FROM rfm_input GROUP BY 1 ORDER BY 1;

-- 2b. the same grid as CASE (FM = (F + M) / 2 rounded half up)
SELECT CASE
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
  END AS segment, count(*) AS n
FROM (SELECT r, (f + m + 1) / 2 AS fm FROM rfm_input)
GROUP BY 1 ORDER BY 1;

-- 3a. lifecycle_stage (defaults 30 / 90 / 180 days), as of 2026-07-01
SELECT lifecycle_stage(first_order_ts, last_order_ts, orders,
                       arrow_cast('2026-07-01T00:00:00Z', 'Timestamp(µs, "UTC")')) AS stage,
       count(*) AS n
FROM rfm_input GROUP BY 1 ORDER BY 1;

-- 3b. the same rule as CASE (elapsed days of 86,400 s)
SELECT CASE
    WHEN orders = 0 OR first_order_ts IS NULL THEN 'prospect'
    WHEN date_part('epoch', TIMESTAMPTZ '2026-07-01T00:00:00Z') - date_part('epoch', first_order_ts) <= 30 * 86400 THEN 'new'
    WHEN date_part('epoch', TIMESTAMPTZ '2026-07-01T00:00:00Z') - date_part('epoch', last_order_ts) <= 90 * 86400 THEN 'active'
    WHEN date_part('epoch', TIMESTAMPTZ '2026-07-01T00:00:00Z') - date_part('epoch', last_order_ts) <= 180 * 86400 THEN 'sleeping'
    ELSE 'churned'
  END AS stage, count(*) AS n
FROM rfm_input GROUP BY 1 ORDER BY 1;
