#!/usr/bin/env bash
# More than one director, end to end, on a machine with no NIC (run as root): three drlb
# directors (scheduler mh, same config) behind a router (BIRD 2) that spreads the VIP
# over them by ECMP, each announcing the VIP by BGP with ExaBGP and drlbadm --bgp-feed
# (configs/exabgp.conf), three real servers, 60 long-lived TCP connections from a client
# behind the router. It kills one director's drlb, restarts it, kills a whole director,
# drains and removes a real server, and counts the connections that break (none), then
# shows that wrr breaks them. Topology: scripts/ecmp-topology.sh; the narration is
# tests/netns_ecmp.rs's, which checks every step.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo-ecmp.sh: run as root (namespaces, DPDK, BGP)"; exit 2; }
bash scripts/setup.sh | sed 's/^/  /'
echo "== building drlb"
cargo build --release --quiet
echo "== three directors behind ECMP (about 30 s)"
cargo test --release --quiet --test netns_ecmp -- --nocapture
