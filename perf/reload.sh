#!/usr/bin/env bash
# Reload under load: drlb forwards a pcap replayed at full rate (net_pcap infinite_rx,
# 1 worker) while drlbadm makes N backend changes (weights toggled 1 <-> 2 on one real
# server: every change is a new snapshot, no flow should move or drop). Reports the swap
# latency (publish -> every worker on the new generation; p50/p99/max from drlb's own
# histogram) and packets lost (every drop reason + TX refusals; the traffic is all valid).
#
#   perf/reload.sh [CHANGES]      default 1000
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-1000}
out=${OUT:-$here/perf/out}; mkdir -p "$out"
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
B=$here/target/release
MEM=(--in-memory -m 1024)
grep -q hugetlbfs /proc/mounts && [ "$(awk '/HugePages_Free/{print $2}' /proc/meminfo)" -ge 600 ] || MEM=(--no-huge -m 1024)
pcap=$out/reload-flows.pcap
[ -f "$pcap" ] || "$B/drlb-gen" --flows 4096 --packets-per-flow 2 --interleave --out "$pcap" >/dev/null
cfg=$out/reload.toml
cat > "$cfg" <<EOT
[dataplane]
ip = "192.168.1.121"
flow_capacity = 16384
[[service]]
vip = "192.168.1.200"
port = 80
scheduler = "wrr"
  [[service.backend]]
  ip = "192.168.1.118"
  mac = "00:0c:29:56:5c:c5"
  [[service.backend]]
  ip = "192.168.1.119"
  mac = "00:0c:29:56:5c:c6"
EOT
sock=$out/reload.sock
"$B/drlb" -l 0-1 --no-pci "${MEM[@]}" --file-prefix drlbreload$$ --vdev=net_pcap0,rx_pcap="$pcap",infinite_rx=1 \
  -- --config "$cfg" --control "$sock" --stats-interval 1 --mbufs 32767 >"$out/reload.out" 2>"$out/reload.log" &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
sleep 3
t0=$(date +%s.%N)
for i in $(seq "$N"); do
  "$B/drlbadm" --socket "$sock" -e -t 192.168.1.200:80 -r 192.168.1.119 -w $(( i % 2 + 1 ))
done
t1=$(date +%s.%N)
"$B/drlbadm" --socket "$sock" -ln --json > "$out/reload.json"
sleep 1
kill -INT $pid; wait $pid || true
trap - EXIT
python3 - "$out" "$N" "$t0" "$t1" <<'PY'
import json, sys, re
out, n, t0, t1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
sw = json.load(open(f"{out}/reload.json"))["swaps"]
c = dict(l.split()[1:3] for l in open(f"{out}/reload.out") if l.startswith("counter "))
c = {k: int(v) for k, v in c.items()}
lost = c["dropped"] + c["tx_dropped"]
rates = [int(x) for x in re.findall(r"rx_pps=(\d+)", open(f"{out}/reload.log").read())]
print(f"changes={n} in {t1-t0:.1f}s ({n/(t1-t0):.0f}/s)  swaps={sw['count']}  "
      f"swap latency p50={sw['p50_us']:.1f}us p99={sw['p99_us']:.1f}us max={sw['max_us']:.1f}us")
print(f"rx={c['rx']} forwarded={c['forwarded']} lost={lost} (drops {c['dropped']}, tx refused {c['tx_dropped']})  "
      f"rx Mpps per second: {' '.join(f'{r/1e6:.1f}' for r in rates)}")
json.dump({"changes": n, "seconds": t1 - t0, **sw, "rx": c["rx"], "forwarded": c["forwarded"], "lost": lost},
          open(f"{out}/reload-result.json", "w"))
PY
