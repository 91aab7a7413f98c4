#!/usr/bin/env bash
# The seed LVS-DR setup, end to end, on a machine with no NIC (run as root):
# builds namespaces (client, director, real servers A and B on a bridge), starts drlb on
# the director's veth with configs/seed-health.toml (the seed, plus the director IP on a
# kernel interface and an HTTP check of each real server), pings the director, curls the
# VIP (answers alternate A/B), stops B's web server (every new curl goes to A within
# fall x interval) and starts it again, drains B with drlbadm, and tears it all down.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (namespaces, DPDK)"; exit 2; }
bash scripts/setup.sh | sed 's/^/  /'
echo "== building drlb"
cargo build --release --quiet
SFX=$(( $$ % 100000 ))
. scripts/seed-topology.sh
WORK=$(mktemp -d /tmp/drlb-demo.XXXXXX)
DRLB_PID=
cleanup() {
  set +e # tear everything down even if a step fails (drlb may have been waited for already)
  [ -n "$DRLB_PID" ] && kill -TERM "$DRLB_PID" 2>/dev/null && wait "$DRLB_PID" 2>/dev/null
  topology_down "$WORK"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== topology: client 192.168.1.100, director 192.168.1.121 (drlb), real servers .118 (A) and .119 (B)"
topology_up "$WORK"
cp configs/seed-health.toml "$WORK/drlb.toml"
MEM="--in-memory -m 256"
grep -q hugetlbfs /proc/mounts && [ "$(awk '/HugePages_Free/{print $2}' /proc/meminfo)" -ge 128 ] || MEM="--no-huge -m 256"
echo "== starting drlb in the director namespace (configs/seed-health.toml)"
echo "   drlb -l 0-1 --no-pci $MEM --vdev=net_af_packet0,iface=$DIR_IF -- --config drlb.toml"
ip netns exec "$NS_DIR" target/release/drlb -l 0-1 --no-pci $MEM --file-prefix drlbdemo$SFX \
  --vdev=net_af_packet0,iface="$DIR_IF" -- --config "$WORK/drlb.toml" --stats-interval 0 --control "$WORK/drlb.sock" \
  >"$WORK/drlb.out" 2>"$WORK/drlb.log" &
DRLB_PID=$!
ADM="target/release/drlbadm --socket $WORK/drlb.sock"
weight() { # ip -> its weight as new flows see it (0: down or unresolved), from -ln
  { $ADM -ln 2>/dev/null || true; } | awk -v rs="$1:80" '$1 == "->" && $2 == rs { w = $4 } END { print (w == "" ? -1 : w) }'
}
wait_weight() { # ip up|down -> seconds it took
  local t0 w; t0=$(date +%s.%N)
  for _ in $(seq 600); do
    w=$(weight "$1")
    if { [ "$2" = up ] && [ "${w:--1}" -gt 0 ]; } || { [ "$2" = down ] && [ "${w:--1}" = 0 ]; }; then
      awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }'; return 0
    fi
    kill -0 "$DRLB_PID" 2>/dev/null || { echo "demo.sh: drlb exited; its log:" >&2; cat "$WORK/drlb.log" >&2; exit 1; }
    sleep 0.05
  done
  echo "demo.sh: $1 not $2 within 30 s; drlb's log:" >&2; sed 's/^/   /' "$WORK/drlb.log" >&2
  exit 1
}
# Wait until both real servers are resolved by ARP and have passed their first check.
wait_weight 192.168.1.118 up >/dev/null
wait_weight 192.168.1.119 up >/dev/null
grep -E '^drlb: (port|generation|real server)' "$WORK/drlb.log" | sed 's/^/   /'

curls() { # n
  for i in $(seq "$1"); do
    printf "   curl http://192.168.1.200/ -> %s\n" "$(ip netns exec "$NS_CLI" curl -s --max-time 3 http://192.168.1.200/ || echo '(no answer)')"
  done
}
echo "== drlbadm -ln   (the seed's ipvsadm -ln, same layout)"
$ADM -ln | sed 's/^/   /'
echo "== the director is a host again: ping 192.168.1.121 (its kernel answers, through drlb0)"
ip netns exec "$NS_CLI" ping -c 1 -W 2 192.168.1.121 | grep -E 'bytes from' | sed 's/^/   /'
echo "== from the client: ping and six curls to the VIP (rr over A and B)"
ip netns exec "$NS_CLI" ping -c 1 -W 2 192.168.1.200 | grep -E 'bytes from' | sed 's/^/   /'
curls 6

echo "== B's web server stops (HTTP check every 0.5 s, fall 2: down within ~1.4 s)"
T0=$(date +%s.%N)
since() { awk -v a="$1" -v b="$T0" 'BEGIN { printf "%.2f s", a - b }'; }
http_stop "$WORK/www-b"
# New connections (and a look at B's weight) until B is down and ten in a row reached A:
# the last one refused was the last new connection sent to B.
LAST_B=0; OK=0; DOWN_AT=0
while [ "$OK" -lt 10 ] || [ "$DOWN_AT" = 0 ]; do
  NOW=$(date +%s.%N)
  [ "$DOWN_AT" = 0 ] && [ "$(weight 192.168.1.119)" = 0 ] && DOWN_AT=$NOW
  if ip netns exec "$NS_CLI" curl -s --max-time 2 -o /dev/null http://192.168.1.200/; then OK=$((OK + 1)); else OK=0; LAST_B=$NOW; fi
done
if [ "$LAST_B" = 0 ]; then LAST="none"; else LAST="$(since "$LAST_B") after the stop"; fi
echo "   B down $(since "$DOWN_AT") after its web server stopped; the last new connection sent to B: $LAST"
grep -E 'up -> down|health:' "$WORK/drlb.log" | sed 's/^/   /'
curls 4
echo "== B's web server starts again (rise 2: back after two good checks)"
http_start "$NS_B" "$WORK/www-b"
UP=$(wait_weight 192.168.1.119 up)
echo "   B up after ${UP} s"
curls 4
echo "== drlbadm -ln --health"
$ADM -ln --health | sed 's/^/   /'

echo "== hot change: drlbadm -e -t 192.168.1.200:80 -r 192.168.1.119:80 -w 0   (drain B)"
$ADM -e -t 192.168.1.200:80 -r 192.168.1.119:80 -w 0
curls 4
echo "== drlbadm -e ... -w 1   (B back)"
$ADM -e -t 192.168.1.200:80 -r 192.168.1.119:80 -w 1
curls 4
$ADM -ln --stats | sed 's/^/   /'
echo "== stopping drlb (SIGTERM)"
kill -TERM "$DRLB_PID"; wait "$DRLB_PID" && echo "   drlb exited 0" || echo "   drlb exited $?"
DRLB_PID=
grep -E '^counter (rx|forwarded|arp_replies|to_kernel|from_kernel|dropped|tx) ' "$WORK/drlb.out" | sed 's/^counter /   /'
echo "== tearing down namespaces"
