#!/usr/bin/env python3
"""JAX peer for itlin's networks of layers (convolutions, pooling, dense), on the CPU.

How to run (the OpenBLAS variables must be unset so that scipy/XLA pick their AVX-512 kernels):

    python3 -m venv .venv-peer && .venv-peer/bin/pip install "jax==0.10.2" numpy scipy
    # optional, for the neural-tangents NTK rows (pulls in TensorFlow; see "neural-tangents" below)
    .venv-peer/bin/pip install neural-tangents
    E="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv-peer/bin/python"

    # 1. timing mode (the default): one JSON line per measurement on stdout
    $E scripts/peers/jax_cnn.py --sizes 128,512 > jax_cnn.jsonl            # float32
    $E scripts/peers/jax_cnn.py --dtype f64 --sizes 128                     # float64
    $E scripts/peers/jax_cnn.py --spec 'conv(8,5,stride=2),tanh,dense(10)' --shape 3,32,32

    # 2. reference dumps (always float64) for checking the Rust `Network` against JAX
    $E scripts/peers/jax_cnn.py --dump DIR --spec 'conv(4,3,pad=1),relu,maxpool(2),dense(3)' \
        --shape 2,7,7 --n 5 --seed 0

    # 3. self-test of the spec parser, the layout and every op (float64, a few seconds)
    $E scripts/peers/jax_cnn.py --selftest

The network is the spec string of itlin's `Network::from_spec` on an input of shape C×H×W:
`dense(OUT)`, `conv(OUT,K[,stride=S][,pad=P])`, `avgpool(K)`, `maxpool(K)`, `flatten`, `relu`,
`tanh`, `gelu` (exact, erf), `softplus`, `identity`. A sample is a row of X (N × C·H·W) in
(c, h, w) order. θ is the concatenation, in layer order, of each conv's W (row-major
OUT × C_in × K × K) then b (OUT), and each dense layer's W (row-major OUT × IN, IN in (c, h, w)
order) then b. conv is cross-correlation with zero padding P on every side and stride S,
H' = ⌊(H + 2P − K)/S⌋ + 1; pooling uses K×K windows with stride K, a remainder dropped; maxpool's
derivative goes to the first maximal element (row-major in the window); relu'(0) = 0. The
last layer's output, flattened, is f(x; θ) ∈ R^C; rows of J and Θ are sample-major, n·C + c.

Dump files (`--dump DIR`, float64 .npy, drawn with numpy's default_rng(seed) in this order:
x ~ U[0,1) (N × D); then θ layer by layer, W then b, each ~ N(0,1)/√fan_in with fan_in =
C_in·K·K (conv) or IN (dense); v ~ N(0,1) (P); u ~ N(0,1) (N × C)):
x.npy, theta.npy, v.npy, u.npy, f.npy (N × C), jv.npy (N × C, J v), vjp.npy (P, Jᵀ vec(u)),
jac.npy ((N·C) × P, row n·C + c), ntk.npy (J Jᵀ), meta.json (spec, shape, n, P, C, seed, layers).

Timing (as the project's MLP peer does): each op is jax.jit(...).lower(...).compile()'d ahead of
time (compile_s reported), executed once untimed (warm-up), then timed over --reps executions
(perf_counter around the call + block_until_ready); median_s is the median. Ops whose first run
would exceed --budget-s get fewer reps and the first run counts as a sample. Ops whose XLA
memory analysis (outputs + temporaries) exceeds --mem-frac of MemAvailable are skipped with a
reason. A contention guard (a thread sampling /proc every second: other processes' CPU time,
and the machine's busy time including steal less this process's) waits until others have used
< 10 % of one core for 5 s before each op (at most --quiet-max-s), records the most CPU others
used while it was measured (foreign_cpu_max, % of one core) and re-measures up to 3 times when
that reached 20 %; lines with a high foreign_cpu_max were measured under load. An op whose
time, extrapolated from a smaller N of the same run by its cost order (N for jacfwd_chunked,
N² for jacrev_batch, ntk_* and nt impl 2), would exceed --max-op-s is skipped with that figure.

Ops (op names; N = batch; flops field = the model below, gflops = flops / median_s):
  forward                        F(N)   = Σ_conv 2·C_in·K²·OUT·H'W'·N + Σ_dense 2·IN·OUT·N
  jvp (jax.jvp), vjp (jax.vjp)   2·F(N) + F_θ(N), F_θ = F less the first parametrised layer
  jac_jacrev_batch               jax.jacrev over the whole batch output (N·C cotangents, each
                                 through the whole batch: O(N²) work; small N only)
  jac_vmap_jacrev                jax.vmap over samples of jax.jacrev (C cotangents per sample)
  jac_jacfwd                     jax.jacfwd (P tangents at once: usually skipped for memory)
  jac_jacfwd_chunked             forward mode over P basis tangents in chunks (lax.map)
  jac_manual_layerwise           hand-written: one-hot backprop signals G (vmap of a VJP with
                                 respect to additive pre-activation perturbations), then per
                                 layer J_W = Σ_pos G ⊗ patch (conv; patches by
                                 conv_general_dilated_patches), G ⊗ a (dense), J_b = Σ_pos G
    all jac_*: flops = N·C·P (entries written), gbps = bytes of J / t; then a jac_fastest line.
  ntk_from_J                     J Jᵀ (J from the fastest Jacobian given): 2·(N·C)²·P
  ntk_layerwise_hand             Σ_l Θ_l without the whole J: dense layers structured,
                                 (G Gᵀ) ⊙ (A Aᵀ + 1); conv layers J_l J_lᵀ per layer (for
                                 conv the structured form, a Gram of patches over all pairs
                                 of output positions, costs more than J_l J_lᵀ by the flop
                                 model printed in the line, so it is not used here)
  ntk_nt_impl{1,2,3}             neural-tangents' empirical_ntk_fn(implementation=1/2/3),
                                 trace_axes=(), vmap_axes=0, when importable; the flops
                                 field is the J Jᵀ-equivalent 2·(N·C)²·P
    then ntk_fastest and check_ntk (max |Θ_variant − Θ_ref| / max |Θ_ref|) lines.
  cholesky_factor                of Θ + NλI, n = N·C: n³/3
  gn_dual_step_vjp               MSE dual damped Gauss-Newton step with Θ given:
                                 r = vec(f(X;θ) − Y), (Θ + NλI) α = r by Cholesky,
                                 δ = −Jᵀα by one VJP: n³/3 + 2n² + vjp
  gn_dual_step_total             the same step from θ alone (Θ by ntk_layerwise_hand inside)
  inner_step                     one inner step of iterative linearisation, batch --batch:
                                 f_lin = f(θ̃) + J(θ̃)(θ − θ̃) by one jax.jvp at θ̃, mean
                                 softmax cross-entropy, gradient by reverse mode through that
                                 jvp (a VJP of the tangent map), L2 weight decay --wd (coupled),
                                 SGD momentum 0.9 (v ← μv + g; θ ← θ − lr·v)
                                 flops = jvp + vjp − F (the primal is shared)
Nλ = --lam · mean(diag Θ) (relative damping).

neural-tangents: 0.6.5 (the latest on PyPI) imports `jax.core.Jaxpr`, `jax.util` and
`jax.interpreters.ad.zeros_like_p`, which jax 0.10 no longer exports. When the plain import
fails, this script (unless --no-nt-shim) aliases those names to their new homes in jax's
internals before importing it, and says so in the meta line ("nt_import"). Implementations 1
and 2 then run; implementation 3 (structured derivatives) fails inside jax's changed
ad.linearize and is reported as skipped with the error.
"""
import argparse
import json
import math
import os
import statistics
import sys
import threading
import time

# ----------------------------------------------------------------------------- spec parser
ACTS = ("relu", "tanh", "gelu", "softplus", "identity")
DEFAULT_SPEC = "conv(16,3,pad=1),relu,avgpool(2),conv(32,3,pad=1),relu,avgpool(2),dense(10)"


class SpecError(ValueError):
    pass


def _split_top(spec):
    items, depth, cur = [], 0, ""
    for ch in spec:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SpecError(f"unbalanced ')' in spec `{spec}`")
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if depth != 0:
        raise SpecError(f"unbalanced '(' in spec `{spec}`")
    items.append(cur.strip())
    return items


def _int(s, what, item):
    try:
        v = int(s)
    except ValueError:
        raise SpecError(f"layer `{item}`: {what} `{s}` is not an integer") from None
    return v


def parse_spec(spec, shape):
    """Parse a spec string for an input of shape (C, H, W).

    Returns (layers, out_dim, P). Each layer is a dict with kind, in_shape, out_shape and for
    parametrised layers off (offset in θ), n_w, n_b, fan_in (and out, k, stride, pad)."""
    c, h, w = shape
    if min(shape) < 1:
        raise SpecError(f"input shape {c}x{h}x{w} has an empty dimension")
    if not spec.strip():
        raise SpecError("empty network spec")
    layers, off = [], 0
    for idx, item in enumerate(_split_top(spec)):
        name = f"layer {idx} `{item}`"
        if not item:
            raise SpecError(f"layer {idx}: empty item in spec `{spec}`")
        if "(" in item:
            if not item.endswith(")"):
                raise SpecError(f"{name}: text after ')'")
            kind, argstr = item[:item.index("(")].strip(), item[item.index("(") + 1:-1]
            args_ = [a.strip() for a in argstr.split(",")] if argstr.strip() else []
        else:
            kind, args_ = item, None
        L = {"kind": kind, "in_shape": (c, h, w), "item": item}
        if kind in ACTS or kind == "flatten":
            if args_ is not None:
                raise SpecError(f"{name}: `{kind}` takes no arguments")
            if kind == "flatten":
                c, h, w = c * h * w, 1, 1
        elif kind == "dense":
            if args_ is None or len(args_) != 1:
                raise SpecError(f"{name}: expected dense(OUT)")
            out = _int(args_[0], "OUT", item)
            if out < 1:
                raise SpecError(f"{name}: OUT must be >= 1")
            fan = c * h * w
            L.update(out=out, fan_in=fan, off=off, n_w=out * fan, n_b=out)
            off += out * fan + out
            c, h, w = out, 1, 1
        elif kind == "conv":
            if args_ is None or len(args_) < 2:
                raise SpecError(f"{name}: expected conv(OUT,K[,stride=S][,pad=P])")
            out = _int(args_[0], "OUT", item)
            k = _int(args_[1], "K", item)
            kw = {"stride": 1, "pad": 0}
            seen = set()
            for a in args_[2:]:
                if "=" not in a:
                    raise SpecError(f"{name}: argument `{a}` must be stride=S or pad=P")
                key, val = (t.strip() for t in a.split("=", 1))
                if key not in kw:
                    raise SpecError(f"{name}: unknown argument `{key}` (stride, pad)")
                if key in seen:
                    raise SpecError(f"{name}: `{key}` given twice")
                seen.add(key)
                kw[key] = _int(val, key, item)
            s, p = kw["stride"], kw["pad"]
            if out < 1 or k < 1 or s < 1 or p < 0:
                raise SpecError(f"{name}: need OUT >= 1, K >= 1, stride >= 1, pad >= 0")
            if k > h + 2 * p or k > w + 2 * p:
                raise SpecError(f"{name}: kernel {k} larger than the padded input "
                                f"{h + 2 * p}x{w + 2 * p}")
            ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            fan = c * k * k
            L.update(out=out, k=k, stride=s, pad=p, fan_in=fan, off=off, n_w=out * fan, n_b=out)
            off += out * fan + out
            c, h, w = out, ho, wo
        elif kind in ("avgpool", "maxpool"):
            if args_ is None or len(args_) != 1:
                raise SpecError(f"{name}: expected {kind}(K)")
            k = _int(args_[0], "K", item)
            if k < 1:
                raise SpecError(f"{name}: K must be >= 1")
            if k > h or k > w:
                raise SpecError(f"{name}: window {k} larger than the input {h}x{w}")
            L.update(k=k)
            c, h, w = c, h // k, w // k
        else:
            raise SpecError(f"{name}: unknown layer `{kind}` (dense, conv, avgpool, maxpool, "
                            "flatten, relu, tanh, gelu, softplus, identity)")
        L["out_shape"] = (c, h, w)
        layers.append(L)
    return layers, c * h * w, off


def param_layers(layers):
    return [L for L in layers if "off" in L]


def describe(layers):
    return [{k: v for k, v in L.items() if k != "item"} for L in layers]


# ----------------------------------------------------------------------------- FLOP model
def layer_fwd_flops(L):
    if L["kind"] == "conv":
        _, ho, wo = L["out_shape"]
        return 2 * L["fan_in"] * L["out"] * ho * wo
    if L["kind"] == "dense":
        return 2 * L["fan_in"] * L["out"]
    return 0


def fwd_flops(layers, N):
    return N * sum(layer_fwd_flops(L) for L in layers)


def jvp_flops(layers, N):
    pl = param_layers(layers)
    later = sum(layer_fwd_flops(L) for L in pl[1:])
    return 2 * fwd_flops(layers, N) + N * later


# ----------------------------------------------------------------------------- contention guard
HZ = os.sysconf("SC_CLK_TCK")


def _procs():
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            s = open(f"/proc/{d}/stat").read()
            r = s.rfind(")")
            f = s[r + 2:].split()
            out[int(d)] = (int(f[1]), int(f[11]) + int(f[12]))
        except (OSError, ValueError, IndexError):
            pass
    return out


def _busy():
    """Busy jiffies of the whole machine (user+nice+system+irq+softirq+steal), /proc/stat."""
    try:
        f = open("/proc/stat").readline().split()
        return sum(int(f[i]) for i in (1, 2, 3, 6, 7, 8))
    except (OSError, ValueError, IndexError):
        return None


class Guard:
    """Samples /proc every `period` s: CPU (% of one core) used by processes other than this
    one and its descendants."""

    def __init__(self, period=1.0):
        self.period, self.samples, self.me = period, [], os.getpid()
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def _mine(self, ps):
        kids = {}
        for pid, (pp, _) in ps.items():
            kids.setdefault(pp, []).append(pid)
        seen, st = set(), [self.me]
        while st:
            p = st.pop()
            if p not in seen:
                seen.add(p)
                st.extend(kids.get(p, []))
        return seen

    def _run(self):
        a, ta, sa = _procs(), time.time(), _busy()
        while True:
            time.sleep(self.period)
            b, tb, sb = _procs(), time.time(), _busy()
            mine = self._mine(b)
            d = sum(j - a[p][1] for p, (_, j) in b.items()
                    if p not in mine and p in a and j > a[p][1])
            # processes that started and ended between two samples are missing above; the
            # machine's busy time (incl. steal) less this process tree's catches them
            dm = sum(j - a[p][1] for p, (_, j) in b.items() if p in mine and p in a)
            d2 = (sb - sa) - dm if sa is not None and sb is not None else 0
            with self.lock:
                self.samples.append((tb, 100.0 * max(d, d2) / HZ / (tb - ta)))
                if len(self.samples) > 100000:
                    del self.samples[:50000]
            a, ta, sa = b, tb, sb

    def max_between(self, t0, t1):
        """Most foreign CPU in the sample intervals overlapping [t0, t1] (waits for the
        interval that contains t1 to be sampled)."""
        for _ in range(int(5 * self.period / 0.05) + 1):
            with self.lock:
                done = bool(self.samples) and self.samples[-1][0] >= t1
            if done:
                break
            time.sleep(0.05)
        with self.lock:
            v, after = [], False
            for t, f in self.samples:
                if t >= t0 and not after:
                    v.append(f)
                    after = t >= t1
        return max(v) if v else float("nan")

    def wait_quiet(self, quiet_s=5.0, thresh=10.0, max_s=600.0):
        t0 = time.time()
        while time.time() - t0 < max_s:
            now = time.time()
            with self.lock:
                recent = [f for t, f in self.samples if t >= now - quiet_s]
                covered = bool(self.samples) and self.samples[0][0] <= now - quiet_s
            if covered and recent and max(recent) < thresh:
                return time.time() - t0
            time.sleep(self.period)
        return time.time() - t0


# ----------------------------------------------------------------------------- the network in JAX
def build(layers, in_shape, jnp, lax, jax):
    """Returns (f_tree, split, f_flat): f_tree(params, X, eps=None, taps=False) with params the
    list of (W, b) per parametrised layer; split(θ) -> params; f_flat(θ, X) = f_tree(split(θ), X).
    eps: additive perturbations of each parametrised layer's pre-activation (for signals);
    taps=True also returns each parametrised layer's input."""
    pl = param_layers(layers)

    def split(theta):
        ps = []
        for L in pl:
            o, nw = L["off"], L["n_w"]
            shp = (L["out"], L["in_shape"][0], L["k"], L["k"]) if L["kind"] == "conv" \
                else (L["out"], L["fan_in"])
            ps.append((theta[o:o + nw].reshape(shp), theta[o + nw:o + nw + L["n_b"]]))
        return ps

    def f_tree(params, X, eps=None, taps=False):
        N = X.shape[0]
        a = X.reshape((N,) + tuple(in_shape))
        ins, li = [], 0
        for L in layers:
            k = L["kind"]
            if k in ("conv", "dense"):
                W, b = params[li]
                ins.append(a)
                if k == "conv":
                    p = L["pad"]
                    z = lax.conv_general_dilated(
                        a, W, (L["stride"], L["stride"]), [(p, p), (p, p)],
                        dimension_numbers=("NCHW", "OIHW", "NCHW")) + b[None, :, None, None]
                else:
                    z = (a.reshape(N, -1) @ W.T + b).reshape(N, L["out"], 1, 1)
                if eps is not None:
                    z = z + eps[li]
                a = z
                li += 1
            elif k == "avgpool":
                kk = L["k"]
                a = lax.reduce_window(a, 0.0, lax.add, (1, 1, kk, kk),   # scalar init: sum monoid
                                      (1, 1, kk, kk), "VALID") / (kk * kk)
            elif k == "maxpool":
                kk = L["k"]
                a = lax.reduce_window(a, -math.inf, lax.max,
                                      (1, 1, kk, kk), (1, 1, kk, kk), "VALID")
            elif k == "flatten":
                a = a.reshape(N, -1, 1, 1)
            elif k == "relu":
                a = jax.nn.relu(a)          # custom JVP: relu'(0) = 0
            elif k == "tanh":
                a = jnp.tanh(a)
            elif k == "gelu":
                a = jax.nn.gelu(a, approximate=False)
            elif k == "softplus":
                a = jax.nn.softplus(a)
            elif k == "identity":
                pass
        out = a.reshape(N, -1)
        return (out, ins) if taps else out

    def f_flat(theta, X):
        return f_tree(split(theta), X)

    return f_tree, split, f_flat


def init_theta(layers, P, rng, np):
    th = np.empty(P)
    for L in param_layers(layers):
        s = 1.0 / math.sqrt(L["fan_in"])
        o, nw, nb = L["off"], L["n_w"], L["n_b"]
        th[o:o + nw] = rng.standard_normal(nw) * s
        th[o + nw:o + nw + nb] = rng.standard_normal(nb) * s
    return th


class Ops:
    """The hand-written derivative paths: signals, manual Jacobian, layer-wise NTK."""

    def __init__(self, layers, in_shape, C, P, jax, jnp, lax):
        self.layers, self.pl, self.C, self.P = layers, param_layers(layers), C, P
        self.jax, self.jnp, self.lax = jax, jnp, lax
        self.f_tree, self.split, self.f_flat = build(layers, in_shape, jnp, lax, jax)

    def signals(self, theta, X):
        """G[l]: (C, N, OUT, H', W') = ∂f_c(x_n)/∂z_l; ins[l]: the layer's input."""
        jax, jnp = self.jax, self.jnp
        N, C = X.shape[0], self.C
        ps = self.split(theta)
        eps0 = [jnp.zeros((N,) + tuple(L["out_shape"]), X.dtype) for L in self.pl]
        _, pull, ins = jax.vjp(lambda e: self.f_tree(ps, X, e, taps=True), eps0, has_aux=True)
        cts = jnp.broadcast_to(jnp.eye(C, dtype=X.dtype)[:, None, :], (C, N, C))
        G = jax.vmap(lambda ct: pull(ct)[0])(cts)
        return G, ins

    def layer_blocks(self, L, G, a):
        """Jacobian blocks of one layer, (N, C, n_w) and (N, C, n_b)."""
        jnp, lax = self.jnp, self.lax
        N, C = a.shape[0], self.C
        if L["kind"] == "dense":
            g = G.reshape(C, N, L["out"])
            JW = jnp.einsum("cno,ni->ncoi", g, a.reshape(N, -1))
            Jb = g.transpose(1, 0, 2)
        else:
            p = L["pad"]
            pt = lax.conv_general_dilated_patches(
                a, (L["k"], L["k"]), (L["stride"], L["stride"]), [(p, p), (p, p)],
                dimension_numbers=("NCHW", "OIHW", "NCHW"))         # (N, C_in·K·K, H', W')
            g = G.reshape(C, N, L["out"], -1)
            JW = jnp.einsum("cnop,nqp->ncoq", g, pt.reshape(N, pt.shape[1], -1))
            Jb = g.sum(-1).transpose(1, 0, 2)
        return JW.reshape(N, C, -1), Jb

    def jac_manual(self, theta, X):
        N = X.shape[0]
        G, ins = self.signals(theta, X)
        blocks = []
        for L, g, a in zip(self.pl, G, ins):
            JW, Jb = self.layer_blocks(L, g, a)
            blocks += [JW, Jb]
        return self.jnp.concatenate(blocks, axis=2).reshape(N * self.C, self.P)

    def ntk_layerwise(self, theta, X):
        jnp = self.jnp
        N, C = X.shape[0], self.C
        G, ins = self.signals(theta, X)
        K = jnp.zeros((N * C, N * C), X.dtype)
        for L, g, a in zip(self.pl, G, ins):
            if L["kind"] == "dense":
                gg = g.reshape(C, N, L["out"]).transpose(1, 0, 2).reshape(N * C, -1)
                af = a.reshape(N, -1)
                Ka = af @ af.T + 1.0
                K = K + (gg @ gg.T) * jnp.repeat(jnp.repeat(Ka, C, 0), C, 1)
            else:
                JW, Jb = self.layer_blocks(L, g, a)
                Jl = jnp.concatenate([JW, Jb], axis=2).reshape(N * C, -1)
                K = K + Jl @ Jl.T
        return K

    def ntk_layerwise_flops(self, N):
        """Flops of ntk_layerwise, and of the structured conv form it does not use."""
        C, tot, conv_struct = self.C, 0, 0
        for L in self.pl:
            n = N * C
            if L["kind"] == "dense":
                tot += 2 * N * N * L["fan_in"] + 2 * n * n * L["out"] + 2 * n * n
            else:
                _, ho, wo = L["out_shape"]
                S = ho * wo
                pl_ = L["n_w"] + L["n_b"]
                tot += 2 * n * S * pl_ + 2 * n * n * pl_
                conv_struct += 2 * (N * S) ** 2 * L["fan_in"] + 2 * (n * S) ** 2 * L["out"]
        return tot, conv_struct


# ----------------------------------------------------------------------------- neural-tangents
def import_nt(shim=True):
    """Import neural_tangents; returns (module or None, how)."""
    import types
    sys.modules.setdefault("neural_tangents.experimental",      # pulls TensorFlow via jax2tf
                           types.ModuleType("neural_tangents.experimental"))
    try:
        import neural_tangents as nt
        return nt, "plain"
    except Exception as e:  # noqa: BLE001
        err = f"{type(e).__name__}: {e}"
        for m in [m for m in sys.modules if m.startswith("neural_tangents")]:
            if m != "neural_tangents.experimental":
                del sys.modules[m]
    if not shim:
        return None, "failed: " + err[:200]
    try:
        import warnings
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import jax
        import jax.core
        from jax._src import core as _c
        import jax._src.util as _u
        from jax.interpreters import ad as _ad
        from jax._src.interpreters import ad as _ad2
        if "jax.util" not in sys.modules:
            ju = types.ModuleType("jax.util")
            for n in dir(_u):
                setattr(ju, n, getattr(_u, n))
            sys.modules["jax.util"] = ju
            jax.util = ju
        for n in ("Jaxpr", "JaxprEqn", "Literal", "ShapedArray", "Value", "Var",
                  "AbstractValue", "Primitive", "ClosedJaxpr"):
            if not hasattr(jax.core, n) and hasattr(_c, n):
                setattr(jax.core, n, getattr(_c, n))
        for n in ("UndefinedPrimal", "Zero"):
            if not hasattr(_ad, n) and hasattr(_ad2, n):
                setattr(_ad, n, getattr(_ad2, n))
        if not hasattr(_ad, "zeros_like_p"):    # only a dictionary key in nt's rules
            _ad.zeros_like_p = _c.Primitive("zeros_like_removed_from_jax")
        import neural_tangents as nt
        return nt, "shim (aliases for names jax 0.10 moved); plain import failed: " + err[:160]
    except Exception as e:  # noqa: BLE001
        return None, f"failed even with shim: {type(e).__name__}: {str(e)[:200]}; plain: {err[:160]}"


# ----------------------------------------------------------------------------- dumps
def setup_jax(f64):
    import jax
    jax.config.update("jax_enable_x64", f64)
    import jax.numpy as jnp
    from jax import lax
    return jax, jnp, lax


def reference_arrays(spec, shape, N, seed):
    """All dump arrays (float64 numpy) for spec/shape/N/seed."""
    import numpy as np
    jax, jnp, lax = setup_jax(True)
    layers, C, P = parse_spec(spec, shape)
    D = shape[0] * shape[1] * shape[2]
    rng = np.random.default_rng(seed)
    x = rng.random((N, D))
    theta = init_theta(layers, P, rng, np)
    v = rng.standard_normal(P)
    u = rng.standard_normal((N, C))
    _, _, f_flat = build(layers, shape, jnp, lax, jax)
    X, th = jnp.asarray(x), jnp.asarray(theta)
    fx, jv = jax.jvp(lambda t: f_flat(t, X), (th,), (jnp.asarray(v),))
    vjp = jax.vjp(lambda t: f_flat(t, X), th)[1](jnp.asarray(u))[0]
    J = jax.jacrev(lambda t: f_flat(t, X).reshape(-1))(th)
    arrs = {"x": x, "theta": theta, "v": v, "u": u, "f": fx, "jv": jv, "vjp": vjp,
            "jac": J, "ntk": J @ J.T}
    arrs = {k: np.asarray(a, dtype=np.float64) for k, a in arrs.items()}
    meta = {"spec": spec, "shape": list(shape), "n": N, "P": P, "C": C, "D": D, "seed": seed,
            "dtype": "f64", "jax": jax.__version__, "layers": describe(layers),
            "draw_order": "x~U[0,1) (n,D); theta per layer W then b ~N(0,1)/sqrt(fan_in); "
                          "v~N(0,1) (P); u~N(0,1) (n,C); numpy default_rng(seed)",
            "rows": "sample-major n*C+c"}
    return arrs, meta, layers


def dump(dirname, spec, shape, N, seed):
    import numpy as np
    arrs, meta, _ = reference_arrays(spec, shape, N, seed)
    os.makedirs(dirname, exist_ok=True)
    for k, a in arrs.items():
        np.save(os.path.join(dirname, k + ".npy"), a)
    with open(os.path.join(dirname, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    print(json.dumps({"dumped": dirname, "spec": spec, "shape": list(shape), "n": N,
                      "P": meta["P"], "C": meta["C"]}))


# ----------------------------------------------------------------------------- timing mode
def mem_available():
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


class Bench:
    def __init__(self, args, meta):
        import jax
        self.jax, self.args, self.meta, self.guard = jax, args, meta, Guard()
        self.seen = {}                      # op -> (N, median_s) of the last measurement

    def too_slow(self, op, N, power):
        """Skip line and True when op's time extrapolated from a smaller N exceeds max-op-s."""
        if op not in self.seen or power is None:
            return False
        n0, t0 = self.seen[op]
        est = t0 * (N / n0) ** power
        if N > n0 and est > self.args.max_op_s:
            self.emit({"op": op, "N": N, "skipped": f"extrapolated {est:.0f} s from "
                       f"{t0:.2f} s at N={n0} (cost ~ N^{power}) > --max-op-s "
                       f"{self.args.max_op_s:g}"})
            return True
        return False

    def emit(self, rec):
        r = dict(rec)
        r.update(self.meta)
        r["ts"] = round(time.time(), 1)
        print(json.dumps(r), flush=True)

    def run(self, op, N, fn, fargs, flops, flop_model, keep=False, extra=None, power=None):
        jax, args = self.jax, self.args
        if self.too_slow(op, N, power):
            return None
        print(f"# {op} N={N}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            compiled = jax.jit(fn).lower(*fargs).compile()
        except Exception as e:  # noqa: BLE001
            self.emit({"op": op, "N": N, "skipped": f"compile failed: {type(e).__name__}: "
                       f"{str(e)[:300]}"})
            return None
        compile_s = time.perf_counter() - t0
        need = None
        try:
            ma = compiled.memory_analysis()
            need = ma.argument_size_in_bytes + ma.output_size_in_bytes + ma.temp_size_in_bytes
            new = ma.output_size_in_bytes + ma.temp_size_in_bytes
            if new > args.mem_frac * mem_available():
                self.emit({"op": op, "N": N, "flops": flops, "skipped":
                           f"needs {new / 1e9:.1f} GB new memory (> {args.mem_frac} x "
                           f"MemAvailable {mem_available() / 1e9:.1f} GB)"})
                return None
        except Exception:  # noqa: BLE001
            pass
        out, samples, foreign, waited = None, [], 0.0, 0.0
        for attempt in range(1, 4):
            out = None
            waited = self.guard.wait_quiet(max_s=args.quiet_max_s)
            tm = time.time()
            try:
                samples, out = self._measure(compiled, fargs)
            except Exception as e:  # noqa: BLE001
                self.emit({"op": op, "N": N, "skipped": f"run failed: {type(e).__name__}: "
                           f"{str(e)[:300]}"})
                return None
            foreign = self.guard.max_between(tm, time.time())
            if foreign < 20 or statistics.median(samples) > 20:
                break
        med = statistics.median(samples)
        self.seen[op] = (N, med)
        rec = {"op": op, "N": N, "median_s": med, "median_ms": med * 1e3,
               "gflops": flops / med / 1e9 if flops else None, "flops": flops,
               "flop_model": flop_model, "reps": len(samples), "min_s": min(samples),
               "compile_s": round(compile_s, 3),
               "mem_GB": round(need / 1e9, 3) if need else None,
               "foreign_cpu_max": round(foreign), "attempts": attempt, "waited_s": round(waited)}
        if extra:
            rec.update(extra(med) if callable(extra) else extra)
        self.emit(rec)
        return (out, med) if keep else (None, med)

    def _measure(self, compiled, fargs):
        jax, samples = self.jax, []
        t0 = time.perf_counter()
        out = compiled(*fargs)
        jax.block_until_ready(out)
        t_first = time.perf_counter() - t0
        reps = self.args.reps
        if t_first * (reps + 1) > self.args.budget_s:
            samples.append(t_first)
            reps = max(0, min(reps - 1, int(self.args.budget_s / t_first) - 1))
        for _ in range(reps):
            del out
            t0 = time.perf_counter()
            out = compiled(*fargs)
            jax.block_until_ready(out)
            samples.append(time.perf_counter() - t0)
        return samples, out


def timing(args):
    import numpy as np
    jax, jnp, lax = setup_jax(args.dtype == "f64")
    import jax.scipy.linalg as jsl
    DT = jnp.float32 if args.dtype == "f32" else jnp.float64
    item = 4 if args.dtype == "f32" else 8
    layers, C, P = parse_spec(args.spec, args.shape)
    ops = Ops(layers, args.shape, C, P, jax, jnp, lax)
    f_tree, split, f_flat = ops.f_tree, ops.split, ops.f_flat
    D = args.shape[0] * args.shape[1] * args.shape[2]
    want = set(args.ops.split(",")) if args.ops != "all" else {
        "fwd", "jvp", "vjp", "jac", "ntk", "nt", "gn", "inner"}
    nt, nt_how = (None, "not requested")
    if "nt" in want:
        nt, nt_how = import_nt(shim=not args.no_nt_shim)
    meta = {"dtype": args.dtype, "spec": args.spec, "shape": list(args.shape), "jax": jax.__version__}
    B = Bench(args, meta)
    B.emit({"meta": True, "P": P, "C": C, "D": D, "layers": describe(layers),
            "devices": str(jax.devices()), "cpus": os.cpu_count(), "nt_import": nt_how,
            "nt_version": getattr(nt, "__version__", None) if nt else None,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "XLA_FLAGS": os.environ.get("XLA_FLAGS"), "guard": "contention guard on"})
    rng = np.random.default_rng(args.seed)
    theta = jnp.asarray(init_theta(layers, P, rng, np), DT)
    params = split(theta)

    def jvp_fn(th, X, v):
        return jax.jvp(lambda t: f_flat(t, X), (th,), (v,))[1]

    def vjp_fn(th, X, u):
        return jax.vjp(lambda t: f_flat(t, X), th)[1](u)[0]

    def jac_batch(th, X):
        return jax.jacrev(lambda t: f_flat(t, X).reshape(-1))(th)

    def jac_vmap(th, X):
        J = jax.vmap(jax.jacrev(lambda t, x: f_flat(t, x[None])[0]), in_axes=(None, 0))(th, X)
        return J.reshape(-1, P)

    def jac_fwd(th, X):
        return jax.jacfwd(lambda t: f_flat(t, X).reshape(-1))(th)

    def jac_fwd_chunked(th, X):
        eye = jnp.eye(P, dtype=th.dtype)
        cols = lax.map(lambda e: jax.jvp(lambda t: f_flat(t, X), (th,), (e,))[1].reshape(-1),
                       eye, batch_size=args.fwd_chunk)                # (P, N·C)
        return cols.T

    jac_fns = {"jacrev_batch": jac_batch, "vmap_jacrev": jac_vmap, "jacfwd": jac_fwd,
               "jacfwd_chunked": jac_fwd_chunked, "manual_layerwise": ops.jac_manual}

    for N in [int(s) for s in args.sizes.split(",") if s]:
        n = N * C
        rng = np.random.default_rng(args.seed + N)
        X = jnp.asarray(rng.random((N, D)), DT)
        v = jnp.asarray(rng.standard_normal(P), DT)
        u = jnp.asarray(rng.standard_normal((N, C)), DT)
        Y = jnp.asarray(np.eye(C)[rng.integers(0, C, N)], DT)
        F, Fj = fwd_flops(layers, N), jvp_flops(layers, N)
        if "fwd" in want:
            B.run("forward", N, f_flat, (theta, X), F, "sum_layers 2*fan_in*OUT*H'W'*N")
        if "jvp" in want:
            B.run("jvp", N, jvp_fn, (theta, X, v), Fj, "2F + F_theta")
        if "vjp" in want:
            B.run("vjp", N, vjp_fn, (theta, X, u), Fj, "2F + F_theta")
        J, best = None, None
        if want & {"jac", "ntk", "gn"}:
            names = args.jac_variants.split(",") if "jac" in want else ["manual_layerwise"]
            for name in names:
                if name == "jacrev_batch" and N > args.jacrev_batch_max_n:
                    B.emit({"op": "jac_jacrev_batch", "N": N, "skipped":
                            f"O(N^2 C P) work and N*C cotangents through the whole batch; "
                            f"run only for N <= {args.jacrev_batch_max_n}"})
                    continue
                if name == "jacfwd_chunked" and N > args.jacfwd_max_n:
                    B.emit({"op": "jac_jacfwd_chunked", "N": N, "skipped":
                            f"P = {P} forward tangents (about P/C = {P // C}x the work of "
                            f"reverse mode); run only for N <= {args.jacfwd_max_n} (--jacfwd-max-n)"})
                    continue
                r = B.run("jac_" + name, N, jac_fns[name], (theta, X), n * P,
                          "N*C*P entries written", keep=True,
                          power={"jacrev_batch": 2, "jacfwd_chunked": 1}.get(name),
                          extra=lambda t: {"gbps": n * P * item / t / 1e9,
                                           "J_GB": n * P * item / 1e9})
                if r is not None and (best is None or r[1] < best[1]):
                    J, best = r[0], (name, r[1])
                elif r is not None:
                    del r
            if best:
                B.emit({"op": "jac_fastest", "N": N, "variant": "jac_" + best[0],
                        "median_s": best[1], "median_ms": best[1] * 1e3})
        K, kbest, Kref = None, None, None
        if want & {"ntk", "gn", "nt"}:
            cands = []
            if J is not None:
                r = B.run("ntk_from_J", N, lambda J: J @ J.T, (J,), 2 * n * n * P,
                          "2*(N*C)^2*P", keep=True, extra={"J_from": "jac_" + best[0]}, power=2)
                if r:
                    cands.append(("ntk_from_J", r[0], r[1]))
            fl, fl_conv_struct = ops.ntk_layerwise_flops(N)
            r = B.run("ntk_layerwise_hand", N, ops.ntk_layerwise, (theta, X), fl,
                      "dense: G Gt (.) (A At + 1); conv: J_l J_l^T", keep=True, power=2,
                      extra=lambda t: {"JJt_equiv_gflops": 2 * n * n * P / t / 1e9,
                                       "conv_structured_flops_not_used": fl_conv_struct})
            if r:
                cands.append(("ntk_layerwise_hand", r[0], r[1]))
            if "nt" in want:
                if nt is None:
                    B.emit({"op": "ntk_nt", "N": N, "skipped": "neural_tangents: " + nt_how})
                else:
                    for impl in [int(i) for i in args.nt_impls.split(",") if i]:
                        try:
                            kfn = nt.empirical_ntk_fn(lambda p, x: f_tree(p, x), trace_axes=(),
                                                      vmap_axes=0, implementation=impl)
                            fn = (lambda kfn: lambda X, ps: kfn(X, None, ps).transpose(
                                0, 2, 1, 3).reshape(n, n))(kfn)
                        except Exception as e:  # noqa: BLE001
                            B.emit({"op": f"ntk_nt_impl{impl}", "N": N,
                                    "skipped": f"{type(e).__name__}: {str(e)[:200]}"})
                            continue
                        r = B.run(f"ntk_nt_impl{impl}", N, fn, (X, params), 2 * n * n * P,
                                  "JJt-equivalent 2*(N*C)^2*P", keep=True, power=2)
                        if r:
                            cands.append((f"ntk_nt_impl{impl}", r[0], r[1]))
            if cands:
                kbest = min(cands, key=lambda c: c[2])
                B.emit({"op": "ntk_fastest", "N": N, "variant": kbest[0], "median_s": kbest[2],
                        "median_ms": kbest[2] * 1e3})
                Kref = cands[0][1]
                errs = {c[0]: float(jnp.abs(c[1] - Kref).max() / jnp.abs(Kref).max())
                        for c in cands[1:]}
                B.emit({"op": "check_ntk", "N": N, "reference": cands[0][0], "rel_err": errs})
                K = kbest[1]
            del cands
        if "gn" in want and K is not None:
            lam_n = float(args.lam * jnp.mean(jnp.diag(K)))         # = N·λ
            chol_fl = n ** 3 / 3

            def solve(K, r):
                cf = jsl.cho_factor(K + lam_n * jnp.eye(n, dtype=K.dtype), lower=True)
                return jsl.cho_solve(cf, r)

            def gn_step(K, th, X, Y):
                r = (f_flat(th, X) - Y).reshape(-1)
                return -vjp_fn(th, X, solve(K, r).reshape(N, C))

            def gn_total(th, X, Y):
                return gn_step(ops.ntk_layerwise(th, X), th, X, Y)

            B.run("cholesky_factor", N, lambda K: jsl.cho_factor(K, lower=True)[0],
                  (K + lam_n * jnp.eye(n, dtype=DT),), chol_fl, "n^3/3, n=N*C")
            r = B.run("gn_dual_step_vjp", N, gn_step, (K, theta, X, Y),
                      chol_fl + 2 * n * n + Fj, "n^3/3+2n^2+vjp", keep=True,
                      extra={"N_lambda": lam_n, "ntk_from": kbest[0]})
            if r:
                B.emit({"op": "check_gn_step", "N": N, "delta_finite":
                        bool(jnp.all(jnp.isfinite(r[0]))), "delta_norm": float(jnp.linalg.norm(r[0]))})
            B.run("gn_dual_step_total", N, gn_total, (theta, X, Y),
                  ops.ntk_layerwise_flops(N)[0] + chol_fl + 2 * n * n + Fj,
                  "ntk_layerwise_hand + n^3/3+2n^2 + vjp", extra={"N_lambda": lam_n})
        del J, K, Kref, kbest

    if "inner" in want:
        Bn = args.batch
        rng = np.random.default_rng(args.seed + 1)
        X = jnp.asarray(rng.random((Bn, D)), DT)
        y = jnp.asarray(rng.integers(0, C, Bn), jnp.int32)
        tt = theta
        th = theta + jnp.asarray(rng.standard_normal(P) * 1e-2, DT)
        vel = jnp.asarray(rng.standard_normal(P) * 1e-3, DT)
        mu, wd = args.momentum, args.wd

        def inner_step(th, tt, vel, X, y, lr):
            def loss(t):
                y0, dy = jax.jvp(lambda q: f_flat(q, X), (tt,), (t - tt,))
                lg = jax.nn.log_softmax(y0 + dy)
                return -jnp.mean(jnp.take_along_axis(lg, y[:, None], axis=1))
            g = jax.grad(loss)(th) + wd * th
            vel = mu * vel + g
            return th - lr * vel, vel

        B.run("inner_step", Bn, inner_step, (th, tt, vel, X, y, jnp.asarray(0.05, DT)),
              jvp_flops(layers, Bn) * 2 - fwd_flops(layers, Bn), "jvp + vjp - F",
              extra={"loss": "softmax CE mean", "momentum": mu, "wd": wd})


# ----------------------------------------------------------------------------- self-test
def naive_forward(layers, shape, theta, x, np, sperf=None):
    """Loop reference of the spec semantics (numpy, float64). Returns (N, C)."""
    from math import erf
    out = []
    for xs in x:
        a = xs.reshape(shape)
        for L in layers:
            k = L["kind"]
            if k == "conv":
                O, K, S, Pd = L["out"], L["k"], L["stride"], L["pad"]
                Ci, H, W = a.shape
                Wt = theta[L["off"]:L["off"] + L["n_w"]]
                b = theta[L["off"] + L["n_w"]:L["off"] + L["n_w"] + O]
                _, Ho, Wo = L["out_shape"]
                z = np.zeros((O, Ho, Wo))
                for o in range(O):
                    for yy in range(Ho):
                        for xx in range(Wo):
                            s = b[o]
                            for i in range(Ci):
                                for uu in range(K):
                                    for vv in range(K):
                                        r, c = yy * S + uu - Pd, xx * S + vv - Pd
                                        if 0 <= r < H and 0 <= c < W:
                                            s += Wt[((o * Ci + i) * K + uu) * K + vv] * a[i, r, c]
                            z[o, yy, xx] = s
                a = z
            elif k == "dense":
                O, I = L["out"], L["fan_in"]
                Wt = theta[L["off"]:L["off"] + L["n_w"]]
                b = theta[L["off"] + L["n_w"]:L["off"] + L["n_w"] + O]
                af = a.reshape(-1)
                a = np.array([b[o] + sum(Wt[o * I + i] * af[i] for i in range(I))
                              for o in range(O)]).reshape(O, 1, 1)
            elif k in ("avgpool", "maxpool"):
                K = L["k"]
                c_, Ho, Wo = L["out_shape"]
                z = np.zeros((c_, Ho, Wo))
                for ch in range(c_):
                    for yy in range(Ho):
                        for xx in range(Wo):
                            win = a[ch, yy * K:yy * K + K, xx * K:xx * K + K]
                            z[ch, yy, xx] = win.mean() if k == "avgpool" else win.max()
                a = z
            elif k == "flatten":
                a = a.reshape(-1, 1, 1)
            elif k == "relu":
                a = np.maximum(a, 0.0)
            elif k == "tanh":
                a = np.tanh(a)
            elif k == "gelu":
                a = np.vectorize(lambda t: 0.5 * t * (1 + erf(t / math.sqrt(2))))(a)
            elif k == "softplus":
                a = np.logaddexp(0.0, a)
        out.append(a.reshape(-1))
    return np.array(out)


SELFTEST_SPECS = [
    ("conv(3,3,pad=1),relu,avgpool(2),conv(4,3),tanh,maxpool(2),dense(5)", (2, 8, 8), 3),
    ("conv(4,3,stride=2,pad=1),gelu,maxpool(2),flatten,dense(3)", (3, 9, 9), 3),
    ("conv(2,2,stride=3),softplus,conv(3,1),identity,dense(2)", (1, 7, 7), 2),
    ("conv(3,5,pad=2,stride=2),relu,maxpool(3),dense(4),tanh,dense(2)", (2, 11, 10), 3),
    ("conv(2,7),tanh,dense(3)", (1, 7, 7), 2),                # kernel as large as its input
    ("maxpool(2),conv(2,3,pad=2),avgpool(3),flatten,gelu,dense(3)", (2, 9, 7), 2),
    ("dense(6),relu,dense(4),tanh,dense(3)", (10, 1, 1), 4),  # an MLP
]


def selftest():
    import numpy as np
    jax, jnp, lax = setup_jax(True)
    fails = []

    def check(name, err, tol):
        ok = bool(err <= tol)
        print(f"  {'ok ' if ok else 'FAIL'} {name}: {err:.3g} (tol {tol:g})")
        if not ok:
            fails.append(name)

    # parser: shapes, P, errors
    layers, C, P = parse_spec(DEFAULT_SPEC, (1, 28, 28))
    check("default CNN P = 20490, C = 10", abs(P - 20490) + abs(C - 10), 0)
    check("default CNN shapes", 0 if [L["out_shape"] for L in layers][-2] == (32, 7, 7) else 1, 0)
    bad = {"conv(4,3),foo": "unknown layer", "conv(4,9)": "larger than the padded",
           "conv(4,3,stride=0)": "stride >= 1", "conv(4,3,pad=1,pad=2)": "given twice",
           "maxpool(9)": "larger than the input", "dense(0)": "OUT must be",
           "conv(4)": "expected conv", "relu(2)": "no arguments", "dense(3),,relu": "empty item",
           "conv(4,3": "unbalanced", "conv(4,3,dilation=2)": "unknown argument",
           "dense(x)": "not an integer", "": "empty network spec"}
    for spec, msg in bad.items():
        try:
            parse_spec(spec, (1, 8, 8))
            check(f"bad spec `{spec}` rejected", 1, 0)
        except SpecError as e:
            check(f"bad spec `{spec}` -> {e}", 0 if msg in str(e) and "\n" not in str(e) else 1, 0)

    for spec, shape, N in SELFTEST_SPECS:
        print(f"spec {spec} on {shape}, N={N}")
        arrs, meta, layers = reference_arrays(spec, shape, N, seed=7)
        P, C = meta["P"], meta["C"]
        th, x = arrs["theta"], arrs["x"]
        ref = naive_forward(layers, shape, th, x, np)
        check("forward vs naive loop", np.abs(arrs["f"] - ref).max(), 1e-12)
        # central differences of the naive forward for a few directions: J v
        rng = np.random.default_rng(1)
        h = 1e-5
        for _ in range(2):
            d = rng.standard_normal(P)
            fd = (naive_forward(layers, shape, th + h * d, x, np)
                  - naive_forward(layers, shape, th - h * d, x, np)) / (2 * h)
            check("J d vs central FD of naive", np.abs(arrs["jac"] @ d - fd.reshape(-1)).max()
                  / max(1.0, np.abs(fd).max()), 1e-6)
        J = arrs["jac"]
        check("jv = J v", np.abs(J @ arrs["v"] - arrs["jv"].reshape(-1)).max(), 1e-11)
        check("vjp = J^T u", np.abs(J.T @ arrs["u"].reshape(-1) - arrs["vjp"]).max(), 1e-11)
        check("adjoint <u,Jv> = <J^T u,v>", abs(arrs["u"].reshape(-1) @ arrs["jv"].reshape(-1)
                                                - arrs["vjp"] @ arrs["v"]), 1e-10)
        ops = Ops(layers, shape, C, P, jax, jnp, lax)
        Jm = np.asarray(ops.jac_manual(jnp.asarray(th), jnp.asarray(x)))
        check("manual layerwise J = jacrev J", np.abs(Jm - J).max(), 1e-12)
        Kh = np.asarray(ops.ntk_layerwise(jnp.asarray(th), jnp.asarray(x)))
        check("layerwise NTK = J J^T", np.abs(Kh - arrs["ntk"]).max()
              / np.abs(arrs["ntk"]).max(), 1e-12)
        f_tree = ops.f_tree
        Jv = jax.vmap(jax.jacrev(lambda t, xx: ops.f_flat(t, xx[None])[0]), in_axes=(None, 0))(
            jnp.asarray(th), jnp.asarray(x)).reshape(-1, P)
        check("vmap(jacrev) J = jacrev J", np.abs(np.asarray(Jv) - J).max(), 1e-12)
        del f_tree
        if spec == SELFTEST_SPECS[0][0]:
            # the same ops under jax.jit (XLA can take other paths than eager execution)
            T, Xj = jnp.asarray(th), jnp.asarray(x)
            ff = ops.f_flat
            jit_arrs = {
                "f": jax.jit(ff)(T, Xj),
                "jv": jax.jit(lambda t, X, v: jax.jvp(lambda q: ff(q, X), (t,), (v,))[1])(
                    T, Xj, jnp.asarray(arrs["v"])),
                "vjp": jax.jit(lambda t, X, u: jax.vjp(lambda q: ff(q, X), t)[1](u)[0])(
                    T, Xj, jnp.asarray(arrs["u"])),
                "jac": jax.jit(lambda t, X: jax.jacfwd(lambda q: ff(q, X).reshape(-1))(t))(T, Xj),
                "ntk": jax.jit(ops.ntk_layerwise)(T, Xj)}
            for k_, a_ in jit_arrs.items():
                check(f"jitted {k_} = eager", np.abs(np.asarray(a_) - arrs[k_]).max()
                      / max(1.0, np.abs(arrs[k_]).max()), 1e-12)
            check("jitted manual J = eager", np.abs(np.asarray(jax.jit(ops.jac_manual)(T, Xj))
                                                    - J).max(), 1e-12)

    # maxpool ties: the derivative goes to the first maximal element (row-major in the window)
    spec, shape = "conv(1,1),maxpool(2),flatten,dense(1)", (1, 4, 4)
    layers, C, P = parse_spec(spec, shape)
    _, _, f_flat = build(layers, shape, jnp, lax, jax)
    th = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0])      # conv w=1,b=0; dense w=1, b=0
    x = np.array([[1, 3, 0, 0, 3, 2, 5, 5, 7, 7, 1, 1, 7, 7, 1, 1]], float)
    g = np.asarray(jax.grad(lambda xx: f_flat(jnp.asarray(th), xx).sum())(jnp.asarray(x)))
    want = np.zeros(16)
    want[[1, 6, 8, 10]] = 1.0
    check("maxpool tie -> first maximal (input grad)", np.abs(g.reshape(-1) - want).max(), 0)

    # a dense-only net is the MLP of the MLP layout (W fan_out x fan_in row-major, then b)
    spec, shape, N = "dense(6),relu,dense(4),tanh,dense(3)", (10, 1, 1), 4
    arrs, meta, layers = reference_arrays(spec, shape, N, seed=3)
    th, x, o = arrs["theta"], arrs["x"], 0
    a = x
    for l, (fi, fo) in enumerate([(10, 6), (6, 4), (4, 3)]):
        W = th[o:o + fi * fo].reshape(fo, fi)
        b = th[o + fi * fo:o + fi * fo + fo]
        o += fi * fo + fo
        a = a @ W.T + b
        a = np.maximum(a, 0) if l == 0 else (np.tanh(a) if l == 1 else a)
    check("dense-only spec = MLP 10,6,4,3", np.abs(a - arrs["f"]).max(), 1e-13)
    check("MLP P", abs(meta["P"] - (10 * 6 + 6 + 6 * 4 + 4 + 4 * 3 + 3)), 0)

    # neural-tangents (if importable) against J J^T
    nt, how = import_nt()
    print(f"neural_tangents: {how}")
    if nt is not None:
        spec, shape, N = SELFTEST_SPECS[0]
        arrs, meta, layers = reference_arrays(spec, shape, N, seed=7)
        ops = Ops(layers, shape, meta["C"], meta["P"], jax, jnp, lax)
        ps = ops.split(jnp.asarray(arrs["theta"]))
        n = N * meta["C"]
        for impl in (1, 2, 3):
            try:
                k = nt.empirical_ntk_fn(lambda p, xx: ops.f_tree(p, xx), trace_axes=(),
                                        vmap_axes=0, implementation=impl)
                Kn = np.asarray(k(jnp.asarray(arrs["x"]), None, ps)).transpose(0, 2, 1, 3)
                check(f"nt impl {impl} = J J^T", np.abs(Kn.reshape(n, n) - arrs["ntk"]).max()
                      / np.abs(arrs["ntk"]).max(), 1e-12)
            except Exception as e:  # noqa: BLE001
                print(f"  n/a  nt impl {impl}: {type(e).__name__}: {str(e)[:120]}")
    print(f"selftest: {len(fails)} failed" + (f": {fails}" if fails else ""))
    return 1 if fails else 0


# ----------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description="JAX peer for itlin networks (see the docstring)")
    ap.add_argument("--spec", default=DEFAULT_SPEC)
    ap.add_argument("--shape", default=None, help="C,H,W (default 1,28,28)")
    ap.add_argument("--dump", metavar="DIR", help="write float64 reference arrays to DIR")
    ap.add_argument("--n", type=int, default=4, help="samples in a dump")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--dtype", choices=["f32", "f64"], default="f32")
    ap.add_argument("--sizes", default="128,512")
    ap.add_argument("--ops", default="all", help="comma list of fwd,jvp,vjp,jac,ntk,nt,gn,inner")
    ap.add_argument("--jac-variants",
                    default="manual_layerwise,vmap_jacrev,jacrev_batch,jacfwd,jacfwd_chunked")
    ap.add_argument("--jacrev-batch-max-n", type=int, default=128)
    ap.add_argument("--jacfwd-max-n", type=int, default=8,
                    help="jacfwd_chunked ran > 6 min at N=16 on a loaded 2-core machine")
    ap.add_argument("--max-op-s", type=float, default=120.0,
                    help="skip an op whose time extrapolated from a smaller N exceeds this")
    ap.add_argument("--fwd-chunk", type=int, default=64, help="tangents per chunk (jacfwd_chunked)")
    ap.add_argument("--nt-impls", default="1,2,3")
    ap.add_argument("--no-nt-shim", action="store_true")
    ap.add_argument("--lam", type=float, default=1e-3, help="N*lambda = lam * mean(diag Theta)")
    ap.add_argument("--batch", type=int, default=128, help="inner-step batch")
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--budget-s", type=float, default=60.0)
    ap.add_argument("--quiet-max-s", type=float, default=300.0,
                    help="longest wait for a quiet machine before an op (then measured anyway)")
    ap.add_argument("--mem-frac", type=float, default=0.5,
                    help="skip an op whose new memory exceeds this fraction of MemAvailable")
    args = ap.parse_args(argv)
    try:
        shp = args.shape or "1,28,28"
        parts = shp.split(",")
        if len(parts) != 3:
            raise SpecError(f"--shape `{shp}` must be C,H,W")
        args.shape = tuple(_int(s, "dimension", "--shape") for s in parts)
        if args.selftest:
            return selftest()
        parse_spec(args.spec, args.shape)
        if args.dump:
            if args.n < 1:
                raise SpecError("--n must be >= 1")
            dump(args.dump, args.spec, args.shape, args.n, args.seed)
            return 0
        timing(args)
        return 0
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
