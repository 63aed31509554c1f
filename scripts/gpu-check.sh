#!/usr/bin/env bash
# GPU check, run ON the GPU machine (CUDA 13.0 driver, no Rust, no network) with the
# executables built by scripts/build-gpu-bundle.sh:
#   bash scripts/gpu-check.sh [BUNDLE_DIR]      (default: .gpu-bundle)
# Finds libcuda / libnvrtc / libcublas(Lt) / libcusolver (+ its cusparse, nvJitLink), runs
# nvidia-smi, every CUDA test executable (which must not skip: ITLIN_REQUIRE_GPU=1), then the
# default training job on the CPU and on the GPU (resident and per call), then the CUDA
# benchmark in its quick mode. Logs go to $OUT (or ./gpu-check-out).
# Whole run: about 2-4 minutes on an H100.
set -uo pipefail
BUNDLE=${1:-.gpu-bundle}
OUTDIR=${OUT:-./gpu-check-out}
mkdir -p "$OUTDIR"
exec > >(tee "$OUTDIR/gpu-check.log") 2>&1
[ -d "$BUNDLE" ] || { echo "no bundle folder $BUNDLE (run scripts/build-gpu-bundle.sh first)"; exit 2; }

# ---- shared libraries -------------------------------------------------------------
dirs=()
add() { [ -d "$1" ] && case ":$(IFS=:; echo "${dirs[*]:-}"):" in *":$1:"*) ;; *) dirs+=("$1") ;; esac; }
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu \
         /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64; do
    add "$d"
done
for py in /opt/torch/.venv/bin/python3 python3; do
    command -v "$py" >/dev/null 2>&1 || continue
    for sp in $("$py" -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
        for d in "$sp"/nvidia/cu13/lib "$sp"/nvidia/*/lib; do add "$d"; done
    done
done
export LD_LIBRARY_PATH="$(IFS=:; echo "${dirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== libraries (first match on LD_LIBRARY_PATH)"
missing=0
for lib in libcuda.so.1 'libnvrtc.so.13*' 'libcublas.so.13*' 'libcublasLt.so.13*' \
           'libcusolver.so.12*' 'libcusparse.so.12*' 'libnvJitLink.so.13*'; do
    found=""
    for d in "${dirs[@]}"; do
        f=$(ls -1 "$d"/$lib 2>/dev/null | head -n 1)
        if [ -n "$f" ]; then found=$f; break; fi
    done
    if [ -n "$found" ]; then echo "  $lib -> $found"; else echo "  $lib -> NOT FOUND"; missing=1; fi
done
[ "$missing" = 0 ] || echo "warning: some libraries were not found; the tests will say which"
PTXAS=$(command -v ptxas || ls -1 /usr/local/cuda*/bin/ptxas 2>/dev/null | head -n 1 || true)
[ -n "$PTXAS" ] && export ITLIN_PTXAS="$PTXAS"
echo "ptxas: ${PTXAS:-none}"

echo "== nvidia-smi"
nvidia-smi || echo "nvidia-smi failed"

# ---- tests ---------------------------------------------------------------------------
status=0
export ITLIN_REQUIRE_GPU=1
# tests/cuda_train.rs runs `itlin train --device cuda` with the binary the bundle carries.
[ -x "$BUNDLE/itlin" ] && export ITLIN_BIN="$(cd "$BUNDLE" && pwd)/itlin"
# NVRTC must load here; ptxas too, if the machine has one (else that half of cuda_ptx skips).
[ -n "$PTXAS" ] && export ITLIN_REQUIRE_NVRTC=1
for t in "$BUNDLE"/cuda_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    echo "== test $name"
    if timeout 300 "$t" --nocapture --test-threads=1 >"$OUTDIR/$name.log" 2>&1; then
        echo "   PASS"
    else
        echo "   FAIL (exit $?)"; status=1
    fi
    grep -E "^test |test result|CUDA device|skipping|panicked|relative error|not written|REQUIRE|error" "$OUTDIR/$name.log" | head -n 40
done

# ---- the default training job: CPU, GPU-resident, GPU per call ------------------------
# `itlin train` as in README (784-256-10 ReLU, cross-entropy, K = 20, SGD with momentum, 40
# epochs of the embedded MNIST): wall time and test accuracy of each. ITLIN_SKIP_TRAIN=1 skips
# this part, ITLIN_SKIP_BENCH=1 the benchmark.
if [ -x "$BUNDLE/itlin" ] && [ "${ITLIN_SKIP_TRAIN:-0}" != 1 ]; then
    for mode in "cpu" "cuda" "cuda --per-call"; do
        tag=$(echo "$mode" | tr -d '-' | tr ' ' '_')
        echo "== itlin train --device $mode"
        timeout 300 "$BUNDLE/itlin" train --device $mode --out "$OUTDIR/train-$tag" --force \
            --quiet >"$OUTDIR/train-$tag.log" 2>&1 || { echo "   exit $?"; status=1; }
        grep -E "termination|test accuracy|wall time|time jvp" "$OUTDIR/train-$tag.log"
    done
fi

# ---- benchmark -----------------------------------------------------------------------
for b in "$BUNDLE"/bench_*; do
    [ -x "$b" ] && [ "${ITLIN_SKIP_BENCH:-0}" != 1 ] || continue
    name=$(basename "$b")
    echo "== $name (quick)"
    ITLIN_BENCH_JSON="$OUTDIR/$name.jsonl" timeout 240 "$b" --quick >"$OUTDIR/$name.log" 2>&1
    rc=$?
    [ "$rc" = 0 ] || { echo "   benchmark exit $rc"; status=1; }
    # The summary table is printed last.
    sed -n '/^op  /,$p' "$OUTDIR/$name.log"
    # Kernel variants and checks: failures, and each variant's difference from the default.
    grep -E "skipping|stopped|FAILED|MISMATCH|max relative difference" "$OUTDIR/$name.log" || true
done

echo "== gpu-check: $([ "$status" = 0 ] && echo OK || echo FAILED); logs in $OUTDIR"
exit "$status"
