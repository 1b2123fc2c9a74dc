#!/usr/bin/env python3
"""Time the Python `lifetimes` fits on a BTYD summary, for comparison with
crmdb's `bgnbd_fit`, `gamma_gamma_fit` and `paretonbd_fit` on the same
summary.

The summary is a Parquet or CSV file with the columns frequency, recency, t
(or T) and monetary_value, one row per customer, in one time unit (as written
from crmdb, e.g.
    COPY (SELECT s['frequency'] AS frequency, s['recency'] AS recency,
                 s['t'] AS t, s['monetary_value'] AS monetary_value
          FROM (SELECT btyd_summary(order_ts, amount, TIMESTAMP '...', 7) AS s
                FROM orders GROUP BY customer_id)) TO 'summary.parquet').
Other columns are ignored.

Usage:
    pip install -r udfs/tests-py/requirements.txt   (plus pyarrow for Parquet)
    python udfs/tests-py/bench_lifetimes.py SUMMARY [--models bgnbd,gg,pareto,mbg]
                                            [--penalizer P] [--grouped]

Prints one line per fit: the wall-clock seconds of `fit` alone (reading the
file and the summary checks are not timed), the rows fitted and the
parameters. --grouped also times each fit on the identical (frequency,
recency, T) rows collapsed into weights, which lifetimes supports and crmdb
does internally. Gamma-Gamma is fitted on repeat buyers only
(frequency > 0), as crmdb's gamma_gamma_fit does. ParetoNBDFitter starts
from random parameters; the NumPy seed is fixed to 0.
"""
import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from lifetimes import (BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter,
                       ParetoNBDFitter)

MODELS = ("bgnbd", "gg", "pareto", "mbg")


def read_summary(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in (".parquet", ".pq"):
        d = pd.read_parquet(path)
    elif path.suffix.lower() == ".csv":
        d = pd.read_csv(path)
    else:
        sys.exit(f"{path}: expected a .parquet or .csv file")
    d = d.rename(columns={"t": "T"})
    missing = [c for c in ("frequency", "recency", "T", "monetary_value") if c not in d.columns]
    if missing:
        sys.exit(f"{path}: missing column(s) {', '.join(missing)} (have {', '.join(d.columns)})")
    d = d[["frequency", "recency", "T", "monetary_value"]].dropna()
    d["frequency"] = d["frequency"].astype(np.int64)
    return d


def grouped(d: pd.DataFrame, cols) -> pd.DataFrame:
    return d.groupby(list(cols), as_index=False).size().rename(columns={"size": "weights"})


def timed(label, fit, n, params):
    t0 = time.perf_counter()
    fitter = fit()
    secs = time.perf_counter() - t0
    values = ", ".join(f"{k}={fitter.params_[k]:.6g}" for k in params)
    print(f"{label:<42} {secs:10.3f} s  n={n:<9} {values}", flush=True)
    return secs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("summary", type=Path)
    ap.add_argument("--models", default="bgnbd,gg,pareto",
                    help=f"comma-separated subset of {','.join(MODELS)} (default bgnbd,gg,pareto)")
    ap.add_argument("--penalizer", type=float, default=0.0, help="penalizer_coef (default 0)")
    ap.add_argument("--grouped", action="store_true",
                    help="also fit with identical rows collapsed into weights")
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        sys.exit(f"unknown model(s) {unknown}; choose from {MODELS}")
    warnings.filterwarnings("ignore")

    t0 = time.perf_counter()
    d = read_summary(args.summary)
    print(f"read {len(d)} customers from {args.summary} in {time.perf_counter() - t0:.2f} s")
    rep = d[d["frequency"] > 0]
    pen = args.penalizer
    f, r, T = d["frequency"], d["recency"], d["T"]
    total = 0.0
    for m in models:
        if m == "bgnbd":
            total += timed("BetaGeoFitter", lambda: BetaGeoFitter(pen).fit(f, r, T),
                           len(d), ("r", "alpha", "a", "b"))
        elif m == "mbg":
            total += timed("ModifiedBetaGeoFitter",
                           lambda: ModifiedBetaGeoFitter(pen).fit(f, r, T),
                           len(d), ("r", "alpha", "a", "b"))
        elif m == "pareto":
            np.random.seed(0)
            total += timed("ParetoNBDFitter", lambda: ParetoNBDFitter(pen).fit(f, r, T),
                           len(d), ("r", "alpha", "s", "beta"))
        elif m == "gg":
            total += timed("GammaGammaFitter (repeat buyers)",
                           lambda: GammaGammaFitter(pen).fit(rep["frequency"], rep["monetary_value"]),
                           len(rep), ("p", "q", "v"))
        if args.grouped:
            if m in ("bgnbd", "mbg", "pareto"):
                g = grouped(d, ("frequency", "recency", "T"))
                cls = {"bgnbd": BetaGeoFitter, "mbg": ModifiedBetaGeoFitter,
                       "pareto": ParetoNBDFitter}[m]
                names = ("r", "alpha", "s", "beta") if m == "pareto" else ("r", "alpha", "a", "b")
                np.random.seed(0)
                timed(f"{cls.__name__} grouped ({len(g)} rows)",
                      lambda: cls(pen).fit(g["frequency"], g["recency"], g["T"],
                                           weights=g["weights"]),
                      len(d), names)
            else:
                g = grouped(rep, ("frequency", "monetary_value"))
                timed(f"GammaGammaFitter grouped ({len(g)} rows)",
                      lambda: GammaGammaFitter(pen).fit(g["frequency"], g["monetary_value"],
                                                        weights=g["weights"]),
                      len(rep), ("p", "q", "v"))
    print(f"total of the ungrouped fits: {total:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
