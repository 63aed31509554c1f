#!/usr/bin/env python3
"""Markdown table of `itlin bench --json` lines side by side with the JAX peer's.

    itlin bench --json > itlin.jsonl
    python3 ../shared/peers/jax_peer.py ... > jax.jsonl && python3 ../shared/peers/canonical.py jax.jsonl > jax-canon.jsonl
    python3 scripts/bench-report.py itlin.jsonl jax-canon.jsonl

Columns: op, N, dtype, itlin median, rate, ceiling, ratio to ceiling, JAX median, JAX/itlin
(> 1 means itlin is faster). Lines without "median_s" (meta, skipped) are listed as skipped.
"""
import json
import sys


def load(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


def fmt_time(s):
    if s is None or s != s:
        return "–"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def main():
    ours = [r for r in load(sys.argv[1]) if "op" in r]
    peer = {}
    if len(sys.argv) > 2:
        for r in load(sys.argv[2]):
            peer[(r["op"], r.get("N"), r.get("dtype"))] = r
    print("| op | N | dtype | itlin | rate | ceiling | ratio | JAX | JAX / itlin |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in ours:
        key = (r["op"], r.get("N"), r.get("dtype"))
        p = peer.get(key)
        if r.get("skipped"):
            print(f"| {r['op']} | {r['N']} | {r['dtype']} | skipped: {r['skipped']} | | | | | |")
            continue
        jax_t = p["median_s"] if p else None
        speed = f"{jax_t / r['median_s']:.2f}×" if jax_t else "–"
        print(
            f"| {r['op']} | {r['N']} | {r['dtype']} | {fmt_time(r['median_s'])} | "
            f"{r['rate']:.1f} {r['unit']} | {r['ceiling']:.1f} ({r['ceiling_name']}) | "
            f"{100 * r['ratio']:.0f} % | {fmt_time(jax_t)} | {speed} |"
        )


if __name__ == "__main__":
    main()
