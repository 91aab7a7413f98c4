#!/bin/bash
# Paired A/B of two drlb binaries on one pcap: the "paired, N rounds" figures in
# perf/README.md. Each round runs A then B for SECS seconds on net_pcap (infinite_rx)
# and prints the median of the stats lines 4..11's tx_pps (forwarded frames/s), so
# start-up and the last partial second are left out. Alternating cancels slow drifts of
# a shared VM; read the medians of the rounds, not one pair.
#
#   P=pcap C=config.toml [M=mbufs] [SECS=13] perf/ab.sh BIN_A BIN_B [ROUNDS]
#
# Two binaries of two revisions: `git worktree add /tmp/wt REV` and
# `CARGO_TARGET_DIR=/tmp/wt-target cargo build --release` there. The pcaps and configs
# are the harness's (perf/out/flows-*.pcap, perf/out/e2e.toml after a run); M must
# hold the pcap (net_pcap says how many it needs). Needs hugepages, as the harness.
set -euo pipefail
[ $# -ge 2 ] && [ -n "${P:-}" ] && [ -n "${C:-}" ] || {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
err=$(mktemp)
trap 'rm -f "$err"' EXIT
for _ in $(seq "${3:-3}"); do
    for bin in "$1" "$2"; do
        timeout -s INT "${SECS:-13}" "$bin" -l 0-1 --no-pci --in-memory -m 1536 \
            --file-prefix "ab$$" --vdev="net_pcap0,rx_pcap=$P,infinite_rx=1" \
            -- --config "$C" --stats-interval 1 --mbufs "${M:-213000}" 2>"$err" >/dev/null || true
        pps=$({ grep -o "tx_pps=[0-9]*" "$err" || true; } | cut -d= -f2 | sed -n 4,11p | sort -n |
            awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "no rate (see below)"}')
        echo "$bin $pps"
        case $pps in no*) grep -v "^EAL\|^TELEMETRY" "$err" | tail -3 >&2 ;; esac
    done
done
