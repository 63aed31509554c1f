#!/usr/bin/env bash
# Builds the CUDA test and benchmark executables here (the GPU machine has no Rust toolchain)
# and copies them, stripped of debug info, into .gpu-bundle/ (git-ignored) with
# scripts/gpu-check.sh, ready to be carried to the GPU machine:
#   bash scripts/build-gpu-bundle.sh
#   (on the GPU machine)  bash .gpu-bundle/gpu-check.sh .gpu-bundle
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUNDLE=.gpu-bundle
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE"

# The executables cargo built, from its JSON messages.
executables() {
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    exe = msg.get("executable")
    if msg.get("reason") == "compiler-artifact" and exe and sys.argv[1] in msg["target"]["kind"]:
        print(msg["target"]["name"] + " " + exe)
' "$1"
}

echo "== building the CUDA tests (release)"
cargo test --release --features cuda --no-run --message-format=json \
    --test cuda_ops --test cuda_ptx --test cuda_train | executables test > "$BUNDLE/.tests"
echo "== building the itlin binary with CUDA (for tests/cuda_train.rs, via ITLIN_BIN)"
cargo build --release --features cuda --bin itlin --message-format=json \
    | executables bin > "$BUNDLE/.bins"
echo "== building the CUDA benchmark"
cargo bench --features cuda --no-run --message-format=json --bench cuda \
    | executables bench > "$BUNDLE/.benches"

while read -r name exe; do
    cp "$exe" "$BUNDLE/$name"
done < "$BUNDLE/.tests"
while read -r name exe; do
    cp "$exe" "$BUNDLE/bench_$name"
done < "$BUNDLE/.benches"
while read -r name exe; do
    cp "$exe" "$BUNDLE/$name"
done < "$BUNDLE/.bins"
rm -f "$BUNDLE/.tests" "$BUNDLE/.benches" "$BUNDLE/.bins"

for f in "$BUNDLE"/*; do
    strip --strip-debug "$f"
done
cp scripts/gpu-check.sh "$BUNDLE/"
ls -l "$BUNDLE"
du -sh "$BUNDLE"
