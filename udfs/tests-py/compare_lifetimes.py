#!/usr/bin/env python3
"""Fit BG/NBD, Pareto/NBD, MBG/NBD and Gamma-Gamma with the Python `lifetimes`
library on the CDNOW sample that ships with it, and write the inputs and
results as a JSON fixture (udfs/tests-py/lifetimes_cdnow.json) that the Rust
tests `btyd_agrees_with_lifetimes_on_cdnow` and
`btyd_pareto_mbg_agree_with_lifetimes_on_cdnow` check to 1e-3 relative.

ParetoNBDFitter starts Nelder-Mead from random parameters (tol 1e-4), so the
global NumPy seed is fixed before each fit; the script also prints how far its
default fit is from a tightly converged one (tol 1e-12).

CI: pip install -r udfs/tests-py/requirements.txt
    python udfs/tests-py/compare_lifetimes.py --check   # regenerate and diff
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
from lifetimes import (BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter,
                       ParetoNBDFitter)
from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

OUT = Path(__file__).with_name("lifetimes_cdnow.json")
HORIZON = 10.0  # weeks, for expected purchases
MONTHS = 12
RATE = 0.01
# Penalized fits (the penalty is on the parameters with time rescaled so that
# max T = 1; lifetimes adds it to the mean negative log-likelihood for BG/NBD
# and MBG/NBD, to the total for Pareto/NBD, hence the larger coefficient).
PENALIZERS = {"bgnbd": 0.05, "mbgnbd": 0.05, "paretonbd": 50.0}


def fit_paretonbd(d, penalizer, **kw):
    np.random.seed(0)
    return ParetoNBDFitter(penalizer_coef=penalizer).fit(d["frequency"], d["recency"], d["T"], **kw)


def pareto_ll(params, d):
    return float(ParetoNBDFitter._conditional_log_likelihood(
        params, d["frequency"].values, d["recency"].values, d["T"].values).sum())


def mbg_ll(params, d):
    return float(-ModifiedBetaGeoFitter._negative_log_likelihood(
        np.log(params), d["frequency"].values, d["recency"].values, d["T"].values,
        np.ones(len(d)), 0.0) * len(d))


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

    pnf = fit_paretonbd(d, 0.0)
    pn = [pnf.params_[k] for k in ("r", "alpha", "s", "beta")]
    tight = fit_paretonbd(d, 0.0, tol=1e-12, maxiter=100000)
    gap = max(abs(pnf.params_[k] / tight.params_[k] - 1) for k in ("r", "alpha", "s", "beta"))
    print(f"Pareto/NBD: default fit vs tol=1e-12, max relative difference {gap:.2e}")
    pn_alive = pnf.conditional_probability_alive(d["frequency"], d["recency"], d["T"])
    pn_expected = pnf.conditional_expected_number_of_purchases_up_to_time(
        HORIZON, d["frequency"], d["recency"], d["T"])

    mbf = ModifiedBetaGeoFitter(penalizer_coef=0.0)
    mbf.fit(d["frequency"], d["recency"], d["T"])
    mb = [mbf.params_[k] for k in ("r", "alpha", "a", "b")]
    mb_alive = mbf.conditional_probability_alive(d["frequency"], d["recency"], d["T"])
    mb_expected = mbf.conditional_expected_number_of_purchases_up_to_time(
        HORIZON, d["frequency"], d["recency"], d["T"])
    mb_prob_n = [float(mbf.probability_of_n_purchases_up_to_time(HORIZON, n)) for n in range(6)]

    penalized = {}
    bgp = BetaGeoFitter(penalizer_coef=PENALIZERS["bgnbd"]).fit(d["frequency"], d["recency"], d["T"])
    penalized["bgnbd"] = {k: bgp.params_[k] for k in ("r", "alpha", "a", "b")}
    mbp = ModifiedBetaGeoFitter(penalizer_coef=PENALIZERS["mbgnbd"]).fit(
        d["frequency"], d["recency"], d["T"])
    penalized["mbgnbd"] = {k: mbp.params_[k] for k in ("r", "alpha", "a", "b")}
    pnp = fit_paretonbd(d, PENALIZERS["paretonbd"])
    penalized["paretonbd"] = {k: pnp.params_[k] for k in ("r", "alpha", "s", "beta")}

    rnd = lambda v: float(f"{float(v):.10g}")
    fixture = {
        "source": "lifetimes.datasets.load_cdnow_summary_data_with_monetary_value, weeks",
        "horizon_weeks": HORIZON,
        "clv": {"months": MONTHS, "monthly_discount_rate": RATE, "unit_days": 7,
                "days_per_month": 4.345 * 7},
        "bgnbd": {"r": rnd(r), "alpha": rnd(alpha), "a": rnd(a), "b": rnd(b), "ll": rnd(ll)},
        "gamma_gamma": {k: rnd(ggf.params_[k]) for k in ("p", "q", "v")},
        "paretonbd": {**{k: rnd(v) for k, v in zip(("r", "alpha", "s", "beta"), pn)},
                      "ll": rnd(pareto_ll(pn, d))},
        "mbgnbd": {**{k: rnd(v) for k, v in zip(("r", "alpha", "a", "b"), mb)},
                   "ll": rnd(mbg_ll(mb, d)),
                   "probability_of_n": [rnd(v) for v in mb_prob_n]},
        "penalized": {model: {"penalizer": PENALIZERS[model],
                              **{k: rnd(v) for k, v in ps.items()}}
                      for model, ps in penalized.items()},
        "customers": [
            [int(f), rnd(rc), rnd(t), rnd(m), rnd(pa), rnd(e), rnd(c), rnd(g),
             rnd(pna), rnd(pne), rnd(mba), rnd(mbe)]
            for f, rc, t, m, pa, e, c, g, pna, pne, mba, mbe in zip(
                d["frequency"], d["recency"], d["T"], d["monetary_value"],
                p_alive, expected, clv, ev, pn_alive, pn_expected, mb_alive, mb_expected)
        ],
        "columns": ["frequency", "recency", "t", "monetary_value",
                    "p_alive", "expected_purchases", "clv", "expected_value",
                    "paretonbd_p_alive", "paretonbd_expected_purchases",
                    "mbgnbd_p_alive", "mbgnbd_expected_purchases"],
    }
    text = json.dumps(fixture, separators=(",", ":")) + "\n"
    if "--check" in sys.argv:
        old = json.loads(OUT.read_text())
        worst = 0.0
        for key in ("bgnbd", "gamma_gamma", "paretonbd", "mbgnbd"):
            for k, v in fixture[key].items():
                if k != "probability_of_n":
                    worst = max(worst, abs(v - old[key][k]) / abs(v))
        for model, ps in fixture["penalized"].items():
            for k, v in ps.items():
                worst = max(worst, abs(v - old["penalized"][model][k]) / abs(v))
        for new_row, old_row in zip(fixture["customers"], old["customers"]):
            for v, w in zip(new_row[4:], old_row[4:]):
                worst = max(worst, abs(v - w) / max(abs(v), 1e-12))
        print(f"max relative difference to the committed fixture: {worst:.2e}")
        return 0 if worst < 1e-4 and len(old["customers"]) == len(fixture["customers"]) else 1
    OUT.write_text(text)
    print(f"wrote {OUT}: BG/NBD {fixture['bgnbd']}, Gamma-Gamma {fixture['gamma_gamma']}, "
          f"Pareto/NBD {fixture['paretonbd']}, MBG/NBD {fixture['mbgnbd']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
