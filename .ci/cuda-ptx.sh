#!/usr/bin/env bash
# CUDA kernels without a GPU: installs NVRTC and ptxas (CUDA 13.0.x wheels from PyPI) into
# .ci-cuda/, then
#   1. compiles every kernel family to PTX for compute_90 with NVRTC and assembles it with
#      `ptxas -arch=sm_90 -v` (tests/cuda_ptx.rs; prints registers and spills, fails on any
#      error or spill),
#   2. runs the grid-stride kernels under a sequential host emulation (.ci/cuda-emulate.cpp)
#      when a C++ compiler is present, and the GPU tests, which must skip cleanly here,
#   3. lints everything with the `cuda` feature on.
# Called from .ci/run; runs on its own too:  bash .ci/cuda-ptx.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DIR=.ci-cuda
SPEC=("nvidia-cuda-nvrtc==13.0.*" "nvidia-cuda-nvcc==13.0.*")

find_one() { find "$DIR" -name "$1" \( -type f -o -type l \) 2>/dev/null | head -n 1; }

if [ -z "$(find_one 'libnvrtc.so*')" ] || [ -z "$(find_one ptxas)" ]; then
    echo "installing ${SPEC[*]} into $DIR"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$DIR" "${SPEC[@]}"
fi

NVRTC=$(find_one 'libnvrtc.so.*')
PTXAS=$(find_one ptxas)
if [ -z "$NVRTC" ] || [ -z "$PTXAS" ]; then
    echo "error: the wheels did not provide libnvrtc and ptxas under $DIR" >&2
    exit 1
fi
LIBDIR=$(cd "$(dirname "$NVRTC")" && pwd)
# cudarc (cuda-13000, dynamic loading) tries libnvrtc.so, libnvrtc.so.13, ...; the wheel
# ships libnvrtc.so.13. Add the unversioned name too, in case a later wheel renames it.
[ -e "$LIBDIR/libnvrtc.so" ] || ln -s "$(basename "$NVRTC")" "$LIBDIR/libnvrtc.so"
chmod +x "$PTXAS"

export LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export ITLIN_PTXAS
ITLIN_PTXAS="$(cd "$(dirname "$PTXAS")" && pwd)/ptxas"
export ITLIN_REQUIRE_NVRTC=1
echo "NVRTC: $NVRTC"
echo "ptxas: $("$ITLIN_PTXAS" --version | tail -n 1)"

echo "== NVRTC -> PTX (compute_90) -> ptxas -arch=sm_90"
cargo test --release --features cuda --test cuda_ptx -- --nocapture

CXX_BIN=$(command -v c++ || command -v g++ || command -v clang++ || true)
if [ -n "$CXX_BIN" ]; then
    echo "== host emulation of the grid-stride kernels ($CXX_BIN)"
    EMU=$(mktemp -d)
    "$CXX_BIN" -std=c++17 -O1 -w -I kernels .ci/cuda-emulate.cpp -o "$EMU/emu"
    "$EMU/emu"
    rm -rf "$EMU"
else
    echo "== no C++ compiler: skipping the host emulation of the kernels"
fi

echo "== GPU tests (skip without a GPU)"
cargo test --release --features cuda --test cuda_ops --test cuda_dist

echo "== cargo clippy --features cuda"
cargo clippy --features cuda --all-targets -- -D warnings
echo "== cargo clippy --features nccl (NCCL sums of device buffers; libnccl is loaded at run time)"
cargo clippy --features nccl --all-targets -- -D warnings
