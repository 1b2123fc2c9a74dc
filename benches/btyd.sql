-- The CLV path in SQL, step by step, on a loaded store (issue 5):
-- orders → btyd_summary per customer → bgnbd_fit, gamma_gamma_fit → clv.
--
--   target/release/crmdb --data DATA sql --timing -f benches/btyd.sql
--
-- `--timing` prints each statement's planning + execution time on stderr.
-- Observation end: the last day of the generated history (2026-06-30);
-- time unit: weeks. The summary is kept in memory (CREATE TABLE … AS) so each
-- later step is timed on its own, and written to Parquet for the same fits
-- in Python lifetimes (udfs/tests-py/bench_lifetimes.py /tmp/crmdb-btyd-summary.parquet).

-- 1. btyd_summary over all completed orders, one row per customer
CREATE TABLE summary AS
SELECT customer_id, s['frequency'] AS frequency, s['recency'] AS recency, s['t'] AS t,
       s['monetary_value'] AS monetary_value
FROM (SELECT customer_id,
             btyd_summary(order_ts, amount, TIMESTAMP '2026-06-30T23:59:59.999999Z', 7) AS s
      FROM orders WHERE status = 'completed' GROUP BY customer_id);

-- 2. BG/NBD fit
CREATE TABLE bg AS SELECT bgnbd_fit(frequency, recency, t) AS p FROM summary;

-- 3. Gamma-Gamma fit (repeat buyers only, inside the function)
CREATE TABLE gg AS SELECT gamma_gamma_fit(frequency, monetary_value) AS p FROM summary;

-- 4. 12-month CLV of every customer (1 % monthly discount)
SELECT count(*) AS customers, sum(v) AS total_clv, max(v) AS max_clv
FROM (SELECT clv(bg.p, gg.p, frequency, recency, t, monetary_value, 12, 0.01, 7) AS v
      FROM summary CROSS JOIN bg CROSS JOIN gg);

-- the fitted parameters and the summary for lifetimes
SELECT bg.p['r'] AS r, bg.p['alpha'] AS alpha, bg.p['a'] AS a, bg.p['b'] AS b, bg.p['ll'] AS ll,
       bg.p['converged'] AS converged, gg.p['p'] AS p, gg.p['q'] AS q, gg.p['v'] AS v
FROM bg CROSS JOIN gg;
COPY (SELECT frequency, recency, t, monetary_value FROM summary)
  TO '/tmp/crmdb-btyd-summary.parquet' STORED AS PARQUET;
