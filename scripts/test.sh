#!/usr/bin/env bash
# The test command (README, .ci/run): installs what it needs on a fresh Debian 12
# machine (idempotent), then runs every test level:
#   1. unit tests and golden packets through the pure pipeline (no DPDK);
#   2. the real binary on DPDK vdevs (net_pcap): start-up errors, forwarding;
#   3. (when present) namespaces with real servers and curl.
# Also: rustfmt and clippy with warnings as errors, and every config in configs/ checked.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (DPDK vdevs, hugepages, namespaces)"; exit 2; }
bash scripts/setup.sh
export CARGO_TERM_COLOR=never
echo "== fmt, clippy"
cargo fmt --all -- --check
cargo clippy --release --all-targets --quiet -- -D warnings
echo "== build"
cargo build --release --quiet --all-targets
echo "== configs"
for f in configs/*.toml; do
  target/release/drlb --check "$f"
done
echo "== tests"
cargo test --release --workspace -- --test-threads=2
echo "== loom model check of the epoch swap (every interleaving, bounded preemptions)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=3 \
  cargo test --release --quiet --lib loom_model
echo "== pipeline microbenchmark (quick: checks it runs; no timing is asserted)"
cargo bench --bench pipeline --quiet -- --quick
