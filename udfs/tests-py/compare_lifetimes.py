#!/usr/bin/env python3
"""Fit BG/NBD and Gamma-Gamma with the Python `lifetimes` library on the CDNOW
sample that ships with it, and write the inputs and results as a JSON fixture
(udfs/tests-py/lifetimes_cdnow.json) that the Rust test
`btyd_agrees_with_lifetimes_on_cdnow` checks to 1e-3 relative.

CI: pip install -r udfs/tests-py/requirements.txt
    python udfs/tests-py/compare_lifetimes.py --check   # regenerate and diff
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

OUT = Path(__file__).with_name("lifetimes_cdnow.json")
HORIZON = 10.0  # weeks, for expected purchases
MONTHS = 12
RATE = 0.01


def main() -> int:
    d = load_cdnow_summary_data_with_monetary_value()
    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bgf.fit(d["frequency"], d["recency"], d["T"])
    rep = d[d["frequency"] > 0]
    ggf = GammaGammaFitter(penalizer_coef=0.0)
    ggf.fit(rep["frequency"], rep["monetary_value"])

    # Total log-likelihood in weeks, recomputed from the fitted parameters
    # (lifetimes stores the mean on its internally rescaled data).
    r, alpha, a, b = (bgf.params_[k] for k in ("r", "alpha", "a", "b"))
    ll = -BetaGeoFitter._negative_log_likelihood(
        np.log([r, alpha, a, b]), d["frequency"].values, d["recency"].values, d["T"].values,
        np.ones(len(d)), 0.0) * len(d)

    p_alive = bgf.conditional_probability_alive(d["frequency"], d["recency"], d["T"])
    expected = bgf.conditional_expected_number_of_purchases_up_to_time(
        HORIZON, d["frequency"], d["recency"], d["T"])
    clv = ggf.customer_lifetime_value(
        bgf, d["frequency"], d["recency"], d["T"], d["monetary_value"],
        time=MONTHS, discount_rate=RATE, freq="W")
    ev = ggf.conditional_expected_average_profit(d["frequency"], d["monetary_value"])

    rnd = lambda v: float(f"{float(v):.10g}")
    fixture = {
        "source": "lifetimes.datasets.load_cdnow_summary_data_with_monetary_value, weeks",
        "horizon_weeks": HORIZON,
        "clv": {"months": MONTHS, "monthly_discount_rate": RATE, "unit_days": 7,
                "days_per_month": 4.345 * 7},
        "bgnbd": {"r": rnd(r), "alpha": rnd(alpha), "a": rnd(a), "b": rnd(b), "ll": rnd(ll)},
        "gamma_gamma": {k: rnd(ggf.params_[k]) for k in ("p", "q", "v")},
        "customers": [
            [int(f), rnd(rc), rnd(t), rnd(m), rnd(pa), rnd(e), rnd(c), rnd(g)]
            for f, rc, t, m, pa, e, c, g in zip(
                d["frequency"], d["recency"], d["T"], d["monetary_value"],
                p_alive, expected, clv, ev)
        ],
        "columns": ["frequency", "recency", "t", "monetary_value",
                    "p_alive", "expected_purchases", "clv", "expected_value"],
    }
    text = json.dumps(fixture, separators=(",", ":")) + "\n"
    if "--check" in sys.argv:
        old = json.loads(OUT.read_text())
        worst = 0.0
        for key in ("bgnbd", "gamma_gamma"):
            for k, v in fixture[key].items():
                worst = max(worst, abs(v - old[key][k]) / abs(v))
        for new_row, old_row in zip(fixture["customers"], old["customers"]):
            for v, w in zip(new_row[4:], old_row[4:]):
                worst = max(worst, abs(v - w) / max(abs(v), 1e-12))
        print(f"max relative difference to the committed fixture: {worst:.2e}")
        return 0 if worst < 1e-4 and len(old["customers"]) == len(fixture["customers"]) else 1
    OUT.write_text(text)
    print(f"wrote {OUT}: BG/NBD {fixture['bgnbd']}, Gamma-Gamma {fixture['gamma_gamma']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
