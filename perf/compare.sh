#!/usr/bin/env bash
# drlb vs dpdk-testpmd --forward-mode=macswap on the same vdev, 1 forwarding lcore,
# measured in one run. Prints Mpps for each and the ratio.
#
#   perf/compare.sh [FLOWS...]        default: 1024 65536
#   env: SECS (measure window, default 10), WARM (default 3), SIZE (frame, default 60),
#        RUNS (repetitions, median reported, default 3)
#
# Source: net_pcap rx_pcap=FLOWS.pcap,infinite_rx=1 (the pcap replayed forever); with no
# tx_pcap the port's TX drops frames after counting them, so one port is source and sink.
# Both programs get `-l 0-1` (main lcore 0, forwarding lcore 1) and the same memory args.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
SECS=${SECS:-10}; WARM=${WARM:-3}; SIZE=${SIZE:-60}; RUNS=${RUNS:-3}
FLOWS=("${@:-1024 65536}"); read -r -a FLOWS <<< "${FLOWS[*]}"
out=${OUT:-$here/perf/out}; mkdir -p "$out"
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
B=$here/target/release
MEM=(--in-memory -m 1536)
if ! grep -q hugetlbfs /proc/mounts || [ "$(awk '/HugePages_Free/{print $2}' /proc/meminfo)" -lt 600 ]; then MEM=(--no-huge -m 1536); fi

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run_drlb() { # pcap flows -> Mpps
  local pcap=$1 flows=$2 cfg=$out/bench.toml
  cat > "$cfg" <<EOT
[dataplane]
ip = "192.168.1.121"
flow_capacity = $(( flows * 2 > 1024 ? flows * 2 : 1024 ))
[[service]]
vip = "192.168.1.200"
port = 80
scheduler = "wrr"
  [[service.backend]]
  ip = "192.168.1.118"
  mac = "00:0c:29:56:5c:c5"
  weight = 3
  [[service.backend]]
  ip = "192.168.1.119"
  mac = "00:0c:29:56:5c:c6"
  weight = 1
EOT
  local log=$out/drlb.log
  # net_pcap infinite_rx keeps the whole pcap in mbufs: give both programs the same pool.
  timeout -s INT $((WARM + SECS + 5)) "$B/drlb" -l 0-1 --no-pci "${MEM[@]}" --file-prefix drlbperf$$ \
    --vdev=net_pcap0,rx_pcap="$pcap",infinite_rx=1 -- --config "$cfg" --stats-interval 1 --mbufs "$MBUFS" --control "$out/drlb.sock" >/dev/null 2>"$log" || true
  # rx_pps of the stats lines after warm-up, averaged.
  grep -o 'rx_pps=[0-9]*' "$log" | cut -d= -f2 | tail -n +$((WARM + 1)) | head -n "$SECS" \
    | awk '{s+=$1; n++} END {if (n) printf "%.2f\n", s/n/1e6; else print "nan"}'
}

run_testpmd() {
  local pcap=$1 log=$out/testpmd.log
  timeout -s INT $((WARM + SECS + 5)) dpdk-testpmd -l 0-1 --no-pci "${MEM[@]}" --file-prefix tpperf$$ \
    --vdev=net_pcap0,rx_pcap="$pcap",infinite_rx=1 -- --forward-mode=macswap --port-topology=loop \
    --total-num-mbufs="$MBUFS" --stats-period 1 </dev/null >"$log" 2>&1 || true
  # testpmd prints Rx-pps per stats period (~2 s in 22.11); drop the first (warm-up).
  grep -o 'Rx-pps: *[0-9]*' "$log" | awk '{print $2}' | tail -n +3 \
    | awk '{s+=$1; n++} END {if (n) printf "%.2f\n", s/n/1e6; else print "nan"}'
}

printf "%-8s %-6s %10s %10s %7s\n" flows size drlb_Mpps testpmd_Mpps ratio
echo "flows,size,drlb_mpps,testpmd_mpps,ratio" > "$out/compare.csv"
for f in "${FLOWS[@]}"; do
  pcap=$out/flows-$f-$SIZE.pcap
  [ -f "$pcap" ] || "$B/drlb-gen" --flows "$f" --packets-per-flow 2 --interleave --size "$SIZE" --out "$pcap" >/dev/null
  MBUFS=$(( f * 2 + 16384 ))
  d=(); t=()
  for _ in $(seq "$RUNS"); do d+=("$(run_drlb "$pcap" "$f")"); t+=("$(run_testpmd "$pcap")"); done
  dm=$(printf "%s\n" "${d[@]}" | median); tm=$(printf "%s\n" "${t[@]}" | median)
  r=$(awk -v a="$dm" -v b="$tm" 'BEGIN {printf "%.2f", a/b}')
  printf "%-8s %-6s %10s %10s %7s   (drlb runs: %s; testpmd runs: %s)\n" "$f" "$SIZE" "$dm" "$tm" "$r" "${d[*]}" "${t[*]}"
  echo "$f,$SIZE,$dm,$tm,$r" >> "$out/compare.csv"
done
