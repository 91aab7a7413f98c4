#!/usr/bin/env bash
# Fuzzing (fuzz/, libFuzzer through libfuzzer-sys).
#
#   scripts/fuzz.sh smoke [SECS]    each target SECS seconds (default 20), no sanitizer:
#                                   built with plain cargo and libFuzzer's coverage flags;
#                                   what .ci/run does (no cargo-fuzz, no nightly needed)
#   scripts/fuzz.sh run [SECS] [TARGET...]
#                                   cargo fuzz with AddressSanitizer (RUSTC_BOOTSTRAP=1 on
#                                   the stable toolchain), default 600 s per target;
#                                   installs cargo-fuzz if missing
#
# Targets: wire (every packet view), pipeline (process + the DR invariants), config
# (parse/validate/round-trip), request (control-socket parser + admin::apply). Seed
# corpora come from fuzz/seed.py (the golden and generator frames, configs/, one line
# per command). A crash leaves its input in fuzz/artifacts/TARGET/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-smoke}
secs=${2:-}
shift $(( $# > 2 ? 2 : $# ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(wire pipeline config request fragments)
cargo build --release --quiet --bin drlb-gen
python3 fuzz/seed.py >/dev/null
export RUSTC_BOOTSTRAP=1
case "$mode" in
  smoke)
    secs=${secs:-20}
    export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
    # An explicit --target keeps RUSTFLAGS off build scripts and proc macros (as
    # cargo-fuzz does).
    host=$(rustc -vV | sed -n 's/^host: //p')
    (cd fuzz && cargo build --release --quiet --target "$host" --target-dir target/smoke --bins)
    for t in "${targets[@]}"; do
      mkdir -p "fuzz/artifacts/$t" "fuzz/corpus/$t"
      echo "== fuzz smoke: $t (${secs}s)"
      fuzz/target/smoke/"$host"/release/"$t" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" "fuzz/corpus/$t" 2>&1 \
        | grep -E "stat::number_of_executed_units|stat::peak_rss|ERROR|panicked|Done" || true
      if ls "fuzz/artifacts/$t"/crash-* >/dev/null 2>&1; then
        echo "fuzz: $t found a crash: $(ls fuzz/artifacts/$t/crash-*)"; exit 1
      fi
    done ;;
  run)
    secs=${secs:-600}
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    for t in "${targets[@]}"; do
      echo "== cargo fuzz run $t (${secs}s, AddressSanitizer)"
      (cd fuzz && cargo fuzz run -O "$t" -- -max_total_time="$secs" -print_final_stats=1) 2>&1 \
        | grep -E "stat::number_of_executed_units|stat::peak_rss|ERROR|panicked|Done|SUMMARY"
    done ;;
  *) echo "usage: scripts/fuzz.sh smoke|run [SECS] [TARGET...]"; exit 2 ;;
esac
