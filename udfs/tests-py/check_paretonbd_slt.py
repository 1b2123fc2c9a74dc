#!/usr/bin/env python3
"""Check the expected values of tests/sql/paretonbd.slt against Python
`lifetimes` 0.11.3: read the purchase days from the .slt file, build the same
weekly BTYD summary as `btyd_summary(order_ts, amount, TIMESTAMP '2025-12-31
23:59:59', 7)` (days bucketed, frequency = purchase days - 1, recency and t in
weeks, observation ending on day 364 of 2025), fit ParetoNBDFitter and
ModifiedBetaGeoFitter, and compare the parameters, log-likelihood, P(alive),
expected purchases in 26 weeks and MBG/NBD P(N = n) with the values the .slt
file expects (rounded there to 4 decimals, 3 for the log-likelihood).

Usage: pip install -r udfs/tests-py/requirements.txt
       python udfs/tests-py/check_paretonbd_slt.py [path/to/paretonbd.slt]
Exit status 0 when every value agrees to 1e-3 relative (or within the
rounding of the .slt output, for values near 0).
"""
import ast
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from lifetimes import ModifiedBetaGeoFitter, ParetoNBDFitter

SLT = Path(__file__).resolve().parents[2] / "tests" / "sql" / "paretonbd.slt"
END_DAY = 364
HORIZON = 26.0


def read_slt(path):
    text = path.read_text()
    days = {}
    block = text.split("CREATE TABLE pn_days", 1)[1].split("\n\n", 1)[0]
    for m in re.finditer(r"\((\d+), (\[[\d, ]*\])\)", block):
        days[int(m.group(1))] = ast.literal_eval(m.group(2))
    # expected rows of each query, keyed by the first line of its SQL
    results = {}
    for q in text.split("\nquery ")[1:]:
        if "----" not in q:
            continue
        sql, rows = q.split("----", 1)
        key = sql.split("\n", 1)[1].strip()
        results[key] = [line.split() for line in rows.strip().split("\n\n", 1)[0].splitlines()]
    return days, results


def summary(days):
    rows = []
    for cid, ds in sorted(days.items()):
        ds = sorted(set(ds))
        first, last = ds[0], ds[-1]
        rows.append((cid, len(ds) - 1, (last - first) / 7.0, (END_DAY - first) / 7.0))
    return pd.DataFrame(rows, columns=["customer_id", "frequency", "recency", "T"])


def find(results, prefix):
    for key, rows in results.items():
        if key.startswith(prefix):
            return rows
    raise KeyError(prefix)


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else SLT
    days, results = read_slt(path)
    d = summary(days)
    f, rec, T = d["frequency"], d["recency"], d["T"]

    np.random.seed(0)
    pn = ParetoNBDFitter().fit(f, rec, T)
    pp = [pn.params_[k] for k in ("r", "alpha", "s", "beta")]
    pn_ll = ParetoNBDFitter._conditional_log_likelihood(pp, f.values, rec.values, T.values).sum()
    mb = ModifiedBetaGeoFitter().fit(f, rec, T)
    mp = [mb.params_[k] for k in ("r", "alpha", "a", "b")]
    mb_ll = -ModifiedBetaGeoFitter._negative_log_likelihood(
        np.log(mp), f.values, rec.values, T.values, np.ones(len(d)), 0.0) * len(d)

    worst = 0.0
    failures = []

    def check(what, want, got, decimals):
        nonlocal worst
        want, got = float(want), float(got)
        err = abs(got - want)
        rel = err / max(abs(want), 1e-12)
        ok = rel < 1e-3 or err <= 0.5 * 10 ** -decimals + 1e-12
        if abs(want) >= 10 ** -(decimals - 1):
            worst = max(worst, rel)
        if not ok:
            failures.append(f"{what}: lifetimes {want}, .slt {got}")

    fit_rows = find(results, "SELECT round(p['r'], 4), round(p['alpha'], 4), round(p['s']")
    for name, want, got, dec in zip(["r", "alpha", "s", "beta", "ll"], pp + [pn_ll], fit_rows[0], [4, 4, 4, 4, 3]):
        check(f"Pareto/NBD {name}", want, got, dec)
    alive = pn.conditional_probability_alive(f, rec, T)
    expected = pn.conditional_expected_number_of_purchases_up_to_time(HORIZON, f, rec, T)
    rows = find(results, "WITH fit AS (SELECT paretonbd_fit")
    assert len(rows) == len(d), (len(rows), len(d))
    for (cid, _, pa, ep), a, e in zip(rows, alive, expected):
        check(f"Pareto/NBD p_alive customer {cid}", a, pa, 4)
        check(f"Pareto/NBD expected purchases customer {cid}", e, ep, 4)

    fit_rows = find(results, "SELECT round(p['r'], 4), round(p['alpha'], 4), round(p['a']")
    for name, want, got, dec in zip(["r", "alpha", "a", "b", "ll"], mp + [mb_ll], fit_rows[0], [4, 4, 4, 4, 3]):
        check(f"MBG/NBD {name}", want, got, dec)
    alive = mb.conditional_probability_alive(f, rec, T)
    expected = mb.conditional_expected_number_of_purchases_up_to_time(HORIZON, f, rec, T)
    rows = find(results, "WITH fit AS (SELECT mbgnbd_fit(frequency, recency, t) AS p FROM pn_summary)\nSELECT customer_id")
    for (cid, _, pa, ep), a, e in zip(rows, alive, expected):
        check(f"MBG/NBD p_alive customer {cid}", a, pa, 4)
        check(f"MBG/NBD expected purchases customer {cid}", e, ep, 4)
    rows = find(results, "WITH fit AS (SELECT mbgnbd_fit(frequency, recency, t) AS p FROM pn_summary)\nSELECT n,")
    for n, p in rows:
        check(f"MBG/NBD P(N={n})", mb.probability_of_n_purchases_up_to_time(HORIZON, int(n)), p, 4)

    print(f"Pareto/NBD lifetimes: r={pp[0]:.6g} alpha={pp[1]:.6g} s={pp[2]:.6g} beta={pp[3]:.6g} ll={pn_ll:.6f}")
    print(f"MBG/NBD lifetimes:    r={mp[0]:.6g} alpha={mp[1]:.6g} a={mp[2]:.6g} b={mp[3]:.6g} ll={mb_ll:.6f}")
    print(f"worst relative difference (values printed with >= 2 significant digits): {worst:.2e}")
    for line in failures:
        print("MISMATCH", line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
