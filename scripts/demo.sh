#!/usr/bin/env bash
# The seed LVS-DR setup, end to end, on a machine with no NIC (run as root):
# builds namespaces (client, director, real servers A and B on a bridge), starts drlb on
# the director's veth with configs/seed-dr.toml (real servers found by ARP), curls the
# VIP six times (answers alternate A/B), drains B with drlbadm, and tears it all down.
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
  [ -n "$DRLB_PID" ] && kill -TERM "$DRLB_PID" 2>/dev/null && wait "$DRLB_PID" 2>/dev/null
  topology_down "$WORK"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== topology: client 192.168.1.100, director 192.168.1.121 (drlb), real servers .118 (A) and .119 (B)"
topology_up "$WORK"
cp configs/seed-dr.toml "$WORK/drlb.toml"
MEM="--in-memory -m 256"
grep -q hugetlbfs /proc/mounts && [ "$(awk '/HugePages_Free/{print $2}' /proc/meminfo)" -ge 128 ] || MEM="--no-huge -m 256"
echo "== starting drlb in the director namespace"
echo "   drlb -l 0-1 --no-pci $MEM --vdev=net_af_packet0,iface=$DIR_IF -- --config drlb.toml"
ip netns exec "$NS_DIR" target/release/drlb -l 0-1 --no-pci $MEM --file-prefix drlbdemo$SFX \
  --vdev=net_af_packet0,iface="$DIR_IF" -- --config "$WORK/drlb.toml" --stats-interval 0 --control "$WORK/drlb.sock" \
  >"$WORK/drlb.out" 2>"$WORK/drlb.log" &
DRLB_PID=$!
# Wait until drlb has resolved both real servers by ARP.
for _ in $(seq 100); do
  grep -q '192.168.1.118 is-at' "$WORK/drlb.log" && grep -q '192.168.1.119 is-at' "$WORK/drlb.log" && break
  kill -0 "$DRLB_PID" 2>/dev/null || { cat "$WORK/drlb.log"; exit 1; }
  sleep 0.1
done
grep -E '^drlb: (port|generation)' "$WORK/drlb.log" | sed 's/^/   /'

curls() { # n
  for i in $(seq "$1"); do
    printf "   curl http://192.168.1.200/ -> %s\n" "$(ip netns exec "$NS_CLI" curl -s --max-time 3 http://192.168.1.200/ || echo '(no answer)')"
  done
}
ADM="target/release/drlbadm --socket $WORK/drlb.sock"
echo "== drlbadm -ln   (the seed's ipvsadm -ln, same layout)"
$ADM -ln | sed 's/^/   /'
echo "== from the client: ping and six curls to the VIP (rr over A and B)"
ip netns exec "$NS_CLI" ping -c 1 -W 2 192.168.1.200 | grep -E 'bytes from' | sed 's/^/   /'
curls 6
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
grep -E '^counter (rx|forwarded|arp_replies|icmp_replies|arp_learned|dropped|tx) ' "$WORK/drlb.out" | sed 's/^counter /   /'
echo "== tearing down namespaces"
