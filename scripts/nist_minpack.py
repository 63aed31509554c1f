#!/usr/bin/env python3
"""MINPACK lmder on the NIST StRD nonlinear regression problems, with exact Jacobians.

Runs scipy.optimize.least_squares(method="lm") -- MINPACK's lmder -- with the hand-coded
analytic Jacobian of every model (the same formulas as tests/nist/mod.rs), tolerances
ftol = xtol = gtol = 1e-15 and a budget of 1000 (n + 1) evaluations, from both of NIST's
starting points. Prints one JSON line per run (--json) or a markdown table (default).
A run succeeds when every parameter is within 1e-6 relative of its certified value;
LRE = -log10(max relative parameter error).

    python3 scripts/nist_minpack.py [FILE.json] [--json]

FILE defaults to tests/data/nist-strd/nist_strd_lower_average.json. Installs numpy and
scipy with pip if they are missing.
"""
import json
import math
import os
import subprocess
import sys

try:
    import numpy as np
    import scipy
    from scipy.optimize import least_squares
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "numpy", "scipy"])
    import numpy as np
    import scipy
    from scipy.optimize import least_squares


def exp_rise(b, x):
    e = np.exp(-b[1] * x)
    return b[0] * (1 - e), [1 - e, b[0] * x * e]


def chwirut(b, x):
    d = b[1] + b[2] * x
    f = np.exp(-b[0] * x) / d
    return f, [-x * f, -f / d, -x * f / d]


def lanczos(b, x):
    f, g = 0.0, []
    for k in range(3):
        e = np.exp(-b[2 * k + 1] * x)
        f = f + b[2 * k] * e
        g += [e, -x * b[2 * k] * e]
    return f, g


def gauss(b, x):
    e = np.exp(-b[1] * x)
    f, g = b[0] * e, [e, -x * b[0] * e]
    for k in (2, 5):
        a, c, w = b[k], b[k + 1], b[k + 2]
        u = x - c
        gk = np.exp(-u * u / (w * w))
        f = f + a * gk
        g += [gk, a * gk * 2 * u / w**2, a * gk * 2 * u * u / w**3]
    return f, g


def power(b, x):
    p = x ** b[1]
    return b[0] * p, [p, b[0] * p * np.log(x)]


def misra1b(b, x):
    u = 1 + b[1] * x / 2
    return b[0] * (1 - u**-2), [1 - u**-2, b[0] * x * u**-3]


def rational(d):
    def f(b, x):
        num = sum(b[k] * x**k for k in range(d + 1))
        den = 1 + sum(b[d + k] * x**k for k in range(1, d + 1))
        v = num / den
        g = [x**k / den for k in range(d + 1)] + [-v * x**k / den for k in range(1, d + 1)]
        return v, g
    return f


def nelson(b, x):
    x1, x2 = x[:, 0], x[:, 1]
    e = np.exp(-b[2] * x2)
    return b[0] - b[1] * x1 * e, [np.ones_like(x1), -x1 * e, b[1] * x1 * x2 * e]


def osborne1(b, x):
    e4, e5 = np.exp(-x * b[3]), np.exp(-x * b[4])
    return b[0] + b[1] * e4 + b[2] * e5, [np.ones_like(x), e4, e5, -x * b[1] * e4, -x * b[2] * e5]


def misra1c(b, x):
    u = 1 + 2 * b[1] * x
    return b[0] * (1 - u**-0.5), [1 - u**-0.5, b[0] * x * u**-1.5]


def misra1d(b, x):
    u = 1 + b[1] * x
    return b[0] * b[1] * x / u, [b[1] * x / u, b[0] * x / u**2]


def roszman(b, x):
    s = x - b[3]
    q = b[2] / s
    c = 1 / (math.pi * (1 + q * q))
    return b[0] - b[1] * x - np.arctan(q) / math.pi, [np.ones_like(x), -x, -c / s, -c * b[2] / s**2]


def enso(b, x):
    w = 2 * math.pi * x / 12
    f = b[0] + b[1] * np.cos(w) + b[2] * np.sin(w)
    g = [np.ones_like(x), np.cos(w), np.sin(w)] + [None] * 6
    for k in (3, 6):
        phi = 2 * math.pi * x / b[k]
        s, c = np.sin(phi), np.cos(phi)
        f = f + b[k + 1] * c + b[k + 2] * s
        g[k] = (-b[k + 1] * s + b[k + 2] * c) * (-phi / b[k])
        g[k + 1], g[k + 2] = c, s
    return f, g


def kowalik(b, x):
    num, den = x * x + x * b[1], x * x + x * b[2] + b[3]
    return b[0] * num / den, [num / den, b[0] * x / den, -b[0] * num * x / den**2, -b[0] * num / den**2]


def rat42(b, x):
    e = np.exp(b[1] - b[2] * x)
    u = 1 + e
    return b[0] / u, [1 / u, -b[0] * e / u**2, b[0] * x * e / u**2]


def meyer(b, x):
    s = x + b[2]
    e = np.exp(b[1] / s)
    return b[0] * e, [e, b[0] * e / s, -b[0] * e * b[1] / s**2]


def eckerle(b, x):
    z = (x - b[2]) / b[1]
    e = np.exp(-0.5 * z * z)
    return b[0] / b[1] * e, [e / b[1], b[0] * e / b[1] ** 2 * (z * z - 1), b[0] * e * z / b[1] ** 2]


def rat43(b, x):
    e = np.exp(b[1] - b[2] * x)
    u = 1 + e
    p = u ** (-1 / b[3])
    dp = -p / (b[3] * u)
    return b[0] * p, [p, b[0] * dp * e, -b[0] * dp * e * x, b[0] * p * np.log(u) / b[3] ** 2]


def bennett(b, x):
    u = b[1] + x
    p = u ** (-1 / b[2])
    return b[0] * p, [p, -b[0] * p / (b[2] * u), b[0] * p * np.log(u) / b[2] ** 2]


MODELS = {
    "Misra1a": exp_rise, "BoxBOD": exp_rise, "Chwirut1": chwirut, "Chwirut2": chwirut,
    "Lanczos1": lanczos, "Lanczos2": lanczos, "Lanczos3": lanczos,
    "Gauss1": gauss, "Gauss2": gauss, "Gauss3": gauss, "DanWood": power, "Misra1b": misra1b,
    "Kirby2": rational(2), "Hahn1": rational(3), "Thurber": rational(3), "Nelson": nelson,
    "MGH17": osborne1, "Misra1c": misra1c, "Misra1d": misra1d, "Roszman1": roszman,
    "ENSO": enso, "MGH09": kowalik, "Rat42": rat42, "MGH10": meyer, "Eckerle4": eckerle,
    "Rat43": rat43, "Bennett5": bennett,
}


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    as_json = "--json" in sys.argv
    here = os.path.dirname(os.path.abspath(__file__))
    path = args[0] if args else os.path.join(here, "..", "tests", "data", "nist-strd",
                                             "nist_strd_lower_average.json")
    with open(path) as fh:
        problems = json.load(fh)
    if not as_json:
        print(f"scipy {scipy.__version__}, least_squares(method='lm'), ftol = xtol = gtol = 1e-15, "
              "max_nfev = 1000 (n + 1), exact Jacobians\n")
        print("| problem | start | nfev | njev | LRE | status |")
        print("|---|---|---|---|---|---|")
    ok = total = 0
    for p in problems:
        model = MODELS[p["name"]]
        x = np.array(p["x"], dtype=float)
        y = np.array(p["y"], dtype=float)
        if p.get("response", "y") == "log(y)":
            y = np.log(y)
        cert = np.array(p["certified_params"], dtype=float)
        n = len(cert)

        def fun(b):
            return model(b, x)[0] - y

        def jac(b):
            return np.column_stack([np.broadcast_to(g, y.shape) for g in model(b, x)[1]])

        for s in (1, 2):
            b0 = np.array(p[f"start{s}"], dtype=float)
            with np.errstate(all="ignore"):
                res = least_squares(fun, b0, jac=jac, method="lm", ftol=1e-15, xtol=1e-15,
                                    gtol=1e-15, max_nfev=1000 * (n + 1))
            err = float(np.max(np.abs((res.x - cert) / cert)))
            if not math.isfinite(err):
                err = math.inf
            lre = 16.0 if err == 0 else min(16.0, max(0.0, -math.log10(err)))
            total += 1
            ok += err <= 1e-6
            row = {"problem": p["name"], "start": s, "nfev": int(res.nfev),
                   "njev": int(res.njev) if res.njev is not None else None,
                   "lre": round(lre, 2), "max_rel_err": err, "status": int(res.status),
                   "success": err <= 1e-6}
            if as_json:
                print(json.dumps(row))
            else:
                print(f"| {p['name']} | {s} | {row['nfev']} | {row['njev']} | {lre:.1f} | {res.status} |")
    if not as_json:
        print(f"\n{ok}/{total} certified")


if __name__ == "__main__":
    main()
