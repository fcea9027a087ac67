#!/usr/bin/python3
"""Golden fixtures for vit/stats: scipy's Wilcoxon signed-rank test and
sklearn's Ridge, on inputs small enough to commit.

Run by hand with Debian's interpreter (python3-scipy 1.10.1, python3-sklearn
1.2.1, python3-numpy 1.24), from the repository root:

    /usr/bin/python3 tools/reference/make_stats_golden.py

It writes testdata/stats/wilcoxon.json and testdata/stats/ridge.json.

wilcoxon.json: a list of cases {name, x, y, expect: {alternative: {statistic,
pvalue, method}}}. Every call uses scipy's defaults, as the original does:
zero_method='wilcox', correction=False, method='auto'. "method" is the mode
scipy ends up in (exact for len(x) <= 50 without zero differences, else the
normal approximation); scipy does not report it, so it is derived here from
the same rule and checked by comparing with explicit method= calls.
Inputs are rounded to a few decimals so that the JSON stays small and ties
are produced on purpose; Go recomputes d = x - y in float64 exactly as numpy.

ridge.json: X (200x20, values exactly representable in float32), a class
label per row and the +-1 one-hot targets over 5 classes (as prober.py
builds them), then coef (k x d, sklearn's layout) and intercept for
Ridge(alpha=1.0, solver='lsqr') (the original's probe), solver='cholesky'
(the exact solution of the centred normal equations) and a no-intercept
cholesky fit, plus predictions on 10 held-out rows. X is fitted as float64:
with float32 X sklearn would run lsqr in float32, and the Go port always
accumulates in float64.
"""

import json
import os
import warnings

import numpy as np
import scipy
import sklearn
from scipy import stats
from sklearn.linear_model import Ridge

OUT = "testdata/stats"
ALTS = ["greater", "less", "two-sided"]


def auto_method(x, y):
    d = np.asarray(x) - np.asarray(y)
    return "exact" if len(d) <= 50 and not np.any(d == 0) else "approx"


def wilcoxon_case(name, x, y):
    x = [float(v) for v in x]
    y = [float(v) for v in y]
    expect = {}
    for alt in ALTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.wilcoxon(x, y, alternative=alt)
            mode = auto_method(x, y)
            check = stats.wilcoxon(x, y, alternative=alt, method=mode)
        assert res.statistic == check.statistic and res.pvalue == check.pvalue, name
        expect[alt] = {
            "statistic": float(res.statistic),
            "pvalue": float(res.pvalue),
            "method": mode,
        }
    return {"name": name, "x": x, "y": y, "expect": expect}


def wilcoxon_cases():
    rng = np.random.default_rng(20231)
    cases = []

    # Exact distribution, continuous values: no ties, no zeros.
    x = np.round(rng.normal(0.3, 1, 12), 4)
    y = np.round(rng.normal(0, 1, 12), 4)
    assert len(np.unique(np.abs(x - y))) == 12
    cases.append(wilcoxon_case("exact_n12", x, y))

    # Ties but no zeros at n <= 50: scipy stays exact and truncates the
    # half-integer rank sum with int(), which the Go port must copy.
    x = np.array([1.75, 2.0, 3.0, 0.5, 4.0, 2.5, 1.0, 3.5, 2.0, 0.0, 5.0, 1.5, 2.5, 0.5, 3.0])
    y = np.array([1.0, 1.0, 3.5, 1.0, 2.0, 2.0, 0.5, 1.5, 1.5, 1.0, 3.0, 2.5, 0.5, 1.0, 2.0])
    d = x - y
    assert not np.any(d == 0) and len(np.unique(np.abs(d))) < len(d)
    assert stats.rankdata(np.abs(d))[d > 0].sum() % 1 == 0.5
    cases.append(wilcoxon_case("exact_ties_n15", x, y))

    # Ties and zeros at n <= 50: scipy switches to the normal approximation
    # and then drops the zeros.
    x = np.round(rng.normal(0.2, 1, 20), 1)
    y = np.round(rng.normal(0, 1, 20), 1)
    x[[3, 7, 11]] = y[[3, 7, 11]]
    cases.append(wilcoxon_case("ties_zeros_n20", x, y))

    # Fewer than 10 differences left under the approximation.
    x = np.array([1.0, 2.0, 2.0, 3.0, 0.5, 1.5, 2.0, 4.0])
    y = np.array([0.0, 2.0, 1.0, 1.0, 1.0, 0.5, 2.0, 1.0])
    cases.append(wilcoxon_case("approx_small_n8", x, y))

    # Every difference positive: the extreme exact tail 2^-n.
    x = np.round(rng.uniform(1, 2, 30), 4)
    y = np.round(rng.uniform(0, 0.9, 30), 4)
    cases.append(wilcoxon_case("exact_all_positive_n30", x, y))

    # Rank sum exactly at the centre of the distribution (two-sided p = 1).
    d = np.array([1, -2, -3, 4, 5, -6, -7, 8], dtype=float)
    cases.append(wilcoxon_case("exact_centre_n8", d, np.zeros(8)))

    # The 'auto' boundary: 50 pairs is exact, 51 is approximated.
    for n in (50, 51):
        x = np.round(rng.normal(0.25, 1, n), 4)
        y = np.round(rng.normal(0, 1, n), 4)
        cases.append(wilcoxon_case(f"boundary_n{n}", x, y))

    # 'auto' looks at len(d) before zeros are dropped: 55 pairs with 10
    # zeros leaves 45 differences but still uses the approximation.
    x = np.round(rng.normal(0.3, 1, 55), 3)
    y = np.round(rng.normal(0, 1, 55), 3)
    x[:10] = y[:10]
    cases.append(wilcoxon_case("zeros_n55", x, y))

    x = np.round(rng.normal(0.2, 1, 60), 4)
    y = np.round(rng.normal(0, 1, 60), 4)
    cases.append(wilcoxon_case("approx_n60", x, y))

    # Large n with many ties and zeros, as identifiability scores in steps
    # of 1/|C| produce; once with a small shift, once with a tiny p-value.
    x = rng.integers(0, 100, 5000) / 100
    y = rng.integers(0, 100, 5000) / 100
    x = np.round(np.clip(x + 0.02 * rng.integers(0, 2, 5000), 0, 1), 2)
    cases.append(wilcoxon_case("ties_n5000", x, y))
    x = rng.integers(0, 1000, 5000) / 1000
    y = np.round(np.clip(x - rng.integers(-2, 4, 5000) / 1000 * (rng.random(5000) < 0.6), 0, 1), 3)
    cases.append(wilcoxon_case("tiny_p_n5000", x, y))
    return cases


def ridge_fixture():
    rng = np.random.default_rng(7)
    n, d, k, n_test = 200, 20, 5, 10
    x = (rng.normal(0, 1, (n + n_test, d)) + rng.uniform(-2, 3, d)).astype(np.float32)
    w = rng.normal(0, 1, (d, k))
    # Standardised scores keep the classes roughly balanced, so that every
    # target column varies and lsqr has work to do on each.
    s = x.astype(np.float64) @ w
    s = (s - s.mean(0)) / s.std(0)
    labels = np.argmax(s + rng.normal(0, 0.5, (n + n_test, k)), axis=1)
    assert np.bincount(labels[:n], minlength=k).min() >= 20
    xtr, xte = x[:n].astype(np.float64), x[n:].astype(np.float64)
    ytr = -np.ones((n, k))
    ytr[np.arange(n), labels[:n]] = 1
    print("ridge: cond(X_centred) =", np.linalg.cond(xtr - xtr.mean(0)))

    fits = {}
    for key, solver, intercept in [
        ("lsqr", "lsqr", True),
        ("cholesky", "cholesky", True),
        ("cholesky_no_intercept", "cholesky", False),
    ]:
        m = Ridge(alpha=1.0, solver=solver, fit_intercept=intercept).fit(xtr, ytr)
        fits[key] = {
            "coef": m.coef_.tolist(),
            "intercept": np.broadcast_to(m.intercept_, (k,)).astype(float).tolist(),
            "predict": m.predict(xte).tolist(),
        }
        if solver == "lsqr":
            print("ridge: lsqr iterations per output", m.n_iter_)
    gap = np.abs(np.array(fits["lsqr"]["coef"]) - np.array(fits["cholesky"]["coef"])).max()
    print("ridge: max |coef_lsqr - coef_cholesky| =", gap)
    return {
        "alpha": 1.0,
        "rows": n,
        "d": d,
        "k": k,
        "x": xtr.ravel().tolist(),
        "labels": labels[:n].tolist(),
        "y": ytr.ravel().tolist(),
        "x_test": xte.ravel().tolist(),
        "fits": fits,
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    meta = {"scipy": scipy.__version__, "sklearn": sklearn.__version__, "numpy": np.__version__}
    with open(os.path.join(OUT, "wilcoxon.json"), "w") as f:
        json.dump({"versions": meta, "cases": wilcoxon_cases()}, f, separators=(",", ":"))
    with open(os.path.join(OUT, "ridge.json"), "w") as f:
        json.dump({"versions": meta, **ridge_fixture()}, f, separators=(",", ":"))
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(os.path.join(OUT, name)), "bytes")


if __name__ == "__main__":
    main()
