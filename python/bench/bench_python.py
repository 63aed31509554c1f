#!/usr/bin/env python3
"""itlin from Python against the same calls from Rust (the binding's overhead) and, where
JAX is importable, against JAX, on an MLP 784-128-128-10 tanh in float32 at N = 256.

Ops (the binding's convenience calls and their Rust twins in rust/src/main.rs):
forward, jvp, vjp, jacobian (fresh (N·C)×P array each call), ntk (structured, full
symmetric), gn_step (gauss_newton_step, form "auto": the dual form here, P > N·C).

The overhead is measured in one process: each Python call alternates with the same crate
call on the same arrays timed from Rust (`itlin._itlin._time_rust`), and the two medians are
compared (`overhead_pct`); the separate Rust binary (`rust_process_s`) and the Python calls
timed on their own (`python_separate_s`) are reported beside it.

Timing: warm-up (at least 2 calls and 0.2 s), then the median of --reps calls (perf_counter around the call;
JAX: around call + block_until_ready, jit-compiled, in a process of its own). The Rust
binary, the Python calls (and JAX) run alternately for --rounds rounds; each side reports its fastest round's median, so
that load from other processes in one round does not decide the ratio.

    python bench_python.py [--n 256] [--reps 7] [--rounds 3] [--rust-bin PATH] [--jax]

The Rust binary is built with `cargo build --release --manifest-path rust/Cargo.toml`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import itlin

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=256)
ap.add_argument("--reps", type=int, default=7)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--rust-bin", default=None, help="the built rust/ binary (default: build it)")
ap.add_argument("--jax", action="store_true", help="also time JAX (jax must be importable), in its own process")
ap.add_argument("--jax-only", action="store_true", help=argparse.SUPPRESS)
ap.add_argument(
    "--jax-ops",
    default="forward,jvp,vjp,jacobian",
    help="the ops timed in JAX (its ntk and gn_step here go through jacrev and J Jᵀ, not a structured kernel)",
)
args = ap.parse_args()
HERE = os.path.dirname(os.path.abspath(__file__))
N = args.n
OPS = ["forward", "jvp", "vjp", "jacobian", "ntk", "gn_step"]
HEAVY = {"jacobian", "ntk", "gn_step"}

net = itlin.Mlp([784, 128, 128, 10], activation="tanh")
theta = net.init(seed=0, dtype="float32")
i = np.arange(N)[:, None]
j = np.arange(784)[None, :]
x = (((i * 784 + j) % 97) / 97.0).astype(np.float32)  # as rust/src/main.rs
y = np.eye(10, dtype=np.float32)[np.arange(N) % 10]
u = np.ones((N, 10), np.float32)
v = np.ones(net.n_params, np.float32)

CALLS = {
    "forward": lambda: net.forward(theta, x),
    "jvp": lambda: net.jvp(theta, x, v),
    "vjp": lambda: net.vjp(theta, x, u),
    "jacobian": lambda: net.jacobian(theta, x),
    "ntk": lambda: itlin.ntk(net, theta, x, method="structured"),
    "gn_step": lambda: itlin.gauss_newton_step(net, theta, x, y, loss="mse", damping=1e-3, form="auto"),
}


def median_time(f, reps, sync=lambda o: o):
    # warm-up: at least 2 calls and 0.2 s, as in rust/src/main.rs
    t0, k = time.perf_counter(), 0
    while k < 2 or time.perf_counter() - t0 < 0.2:
        sync(f())
        k += 1
    s = []
    for _ in range(reps):
        t = time.perf_counter()
        sync(f())
        s.append(time.perf_counter() - t)
    return statistics.median(s)


def rust_bin():
    if args.rust_bin:
        return args.rust_bin
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "rust", "target"))
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path", os.path.join(HERE, "rust", "Cargo.toml")], check=True)
    return os.path.join(target, "release", "itlin-python-bench")


def jax_calls():
    import jax
    import jax.numpy as jnp
    import jax.scipy.linalg as jsl

    widths = [784, 128, 128, 10]

    def f(t, xx):
        a, off = xx, 0
        for l, (fi, fo) in enumerate(zip(widths[:-1], widths[1:])):
            w = t[off : off + fi * fo].reshape(fo, fi)
            off += fi * fo
            b = t[off : off + fo]
            off += fo
            a = a @ w.T + b
            if l < 2:
                a = jnp.tanh(a)
        return a

    tj, xj, yj, uj, vj = map(jnp.asarray, (theta, x, y, u, v))
    fwd = jax.jit(f)
    jvp = jax.jit(lambda t, xx, vv: jax.jvp(lambda s: f(s, xx), (t,), (vv,)))
    vjp = jax.jit(lambda t, xx, uu: jax.vjp(lambda s: f(s, xx), t)[1](uu)[0])
    # per-sample reverse mode, vmapped: J as (N, C, P) -> (N·C, P)
    jac = jax.jit(lambda t, xx: jax.vmap(jax.jacrev(f), in_axes=(None, 0))(t, xx).reshape(-1, t.shape[0]))
    ntk = jax.jit(lambda t, xx: (lambda J: J @ J.T)(jax.jacrev(lambda s: f(s, xx).reshape(-1))(t)))

    def gn(t, xx, yy):
        J = jax.jacrev(lambda s: f(s, xx).reshape(-1))(t)
        r = (f(t, xx) - yy).reshape(-1)
        c = jsl.cho_factor(J @ J.T + N * 1e-3 * jnp.eye(J.shape[0]))
        return -J.T @ jsl.cho_solve(c, r)

    gnj = jax.jit(gn)
    return {
        "forward": lambda: fwd(tj, xj),
        "jvp": lambda: jvp(tj, xj, vj),
        "vjp": lambda: vjp(tj, xj, uj),
        "jacobian": lambda: jac(tj, xj),
        "ntk": lambda: ntk(tj, xj),
        "gn_step": lambda: gnj(tj, xj, yj),
    }, jax.block_until_ready


def jax_only():
    """One round of JAX timings (a separate process, so that XLA's threads never share the
    process with itlin's)."""
    calls, sync = jax_calls()
    for op in args.jax_ops.split(","):
        reps = min(args.reps, 5) if op in HEAVY else args.reps
        print(json.dumps({"op": op, "median_s": median_time(calls[op], reps, sync)}), flush=True)


def interleaved(op, reps):
    """Medians of the Python call and of the same crate call timed from Rust in this process
    (`_itlin._time_rust`, same arrays), alternating call by call so that both see the same
    load."""
    rust_y = u if op == "vjp" else y
    f = CALLS[op]
    median_time(f, 1)
    itlin._itlin._time_rust(net, op, theta, x, rust_y, v, 2)
    py, rs = [], []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        py.append(time.perf_counter() - t)
        rs.append(itlin._itlin._time_rust(net, op, theta, x, rust_y, v, 1)[0])
    return statistics.median(py), statistics.median(rs)


def main():
    if args.jax_only:
        return jax_only()
    binary = rust_bin()
    best = {"rust": {}, "python": {}, "jax": {}, "inproc_py": {}, "inproc_rs": {}}
    for _ in range(args.rounds):
        for op in OPS:
            p, r = interleaved(op, min(args.reps, 5) if op in HEAVY else 3 * args.reps)
            best["inproc_py"][op] = min(best["inproc_py"].get(op, float("inf")), p)
            best["inproc_rs"][op] = min(best["inproc_rs"].get(op, float("inf")), r)
        out = subprocess.run([binary, str(N), str(args.reps)], check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            r = json.loads(line)
            best["rust"][r["op"]] = min(best["rust"].get(r["op"], float("inf")), r["median_s"])
        for op in OPS:
            reps = min(args.reps, 5) if op in HEAVY else args.reps
            t = median_time(CALLS[op], reps)
            best["python"][op] = min(best["python"].get(op, float("inf")), t)
        if args.jax:
            cmd = [sys.executable, os.path.abspath(__file__), "--jax-only", "--n", str(N), "--reps", str(args.reps), "--jax-ops", args.jax_ops]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            for line in out.splitlines():
                r = json.loads(line)
                best["jax"][r["op"]] = min(best["jax"].get(r["op"], float("inf")), r["median_s"])
    print(json.dumps({"loadavg_1min": os.getloadavg()[0], "rounds": args.rounds, "reps": args.reps}))
    for op in OPS:
        rec = {
            "op": op,
            "N": N,
            "dtype": "f32",
            "python_s": best["inproc_py"][op],
            "rust_inprocess_s": best["inproc_rs"][op],
            "python_separate_s": best["python"][op],
            "rust_process_s": best["rust"][op],
        }
        rec["overhead_pct"] = 100 * (rec["python_s"] / rec["rust_inprocess_s"] - 1)
        if op in best["jax"]:
            rec["jax_s"] = best["jax"][op]
            rec["jax_over_python"] = rec["jax_s"] / rec["python_s"]
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
