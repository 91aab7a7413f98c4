#!/usr/bin/env bash
# Builds and removes the seed LVS-DR topology in network namespaces. Sourced by
# scripts/demo.sh and tests/netns_seed.rs's helper; every name carries a suffix ($SFX)
# so a leftover from a crashed run cannot collide.
#
#   client   192.168.1.100         ns drlb-cli-$SFX
#   director 192.168.1.121 (drlb)  ns drlb-dir-$SFX   drlb on net_af_packet over dv$SFX
#   real A   192.168.1.118         ns drlb-rsa-$SFX   VIP 192.168.1.200/32 on lo (lo:0)
#   real B   192.168.1.119         ns drlb-rsb-$SFX   VIP 192.168.1.200/32 on lo (lo:0)
#   real C   192.168.1.120         ns drlb-rsc-$SFX   VIP on lo too: a spare (sorry server)
#   all on one Linux bridge in ns drlb-br-$SFX
VIP=192.168.1.200
NS_BR=drlb-br-$SFX; NS_CLI=drlb-cli-$SFX; NS_DIR=drlb-dir-$SFX; NS_A=drlb-rsa-$SFX; NS_B=drlb-rsb-$SFX
NS_C=drlb-rsc-$SFX
DIR_IF=dv$SFX

# veth pair: $1 ns, $2 inside name, $3 bridge-side name
_link() {
  ip link add "$2" netns "$1" type veth peer name "$3" netns "$NS_BR"
  ip -n "$NS_BR" link set "$3" master br0 up
  ip -n "$1" link set "$2" up
  ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1"
}

_real_server() { # ns ifname ip name webroot
  local ns=$1 ifn=$2 ip=$3 name=$4 root=$5
  _link "$ns" "$ifn" "b$ifn"
  # Real checksums on what the server sends: its replies to the director IP (health
  # checks) reach the director's kernel through drlb's af_packet socket and the tap,
  # which carry no "checksum offloaded" mark (a real NIC computes them).
  ip netns exec "$ns" ethtool -K "$ifn" tx off >/dev/null
  ip -n "$ns" addr add "$ip/24" dev "$ifn"
  ip -n "$ns" link set lo up
  # The classic real-server recipe: VIP on a non-ARPing loopback alias.
  ip -n "$ns" addr add "$VIP/32" dev lo label lo:0
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
    "net.ipv4.conf.$ifn.arp_ignore=1" "net.ipv4.conf.$ifn.arp_announce=2"
  mkdir -p "$root"
  echo "This is test page,this is $name." > "$root/index.html"
  # A large file of the server's letter, for long-lived (rate-limited) downloads.
  head -c 400000 /dev/zero | tr '\0' "$name" > "$root/big.bin"
  http_start "$ns" "$root"
}

# The real server's web server (python's http.server on :80), started and stopped by
# the health-check tests and the demo: http_start NS WEBROOT, http_stop WEBROOT.
http_start() {
  ip netns exec "$1" /usr/bin/python3 -m http.server 80 --bind 0.0.0.0 --directory "$2" >/dev/null 2>&1 &
  echo $! > "$2/http.pid"
}

http_stop() {
  [ -f "$1/http.pid" ] && kill "$(cat "$1/http.pid")" 2>/dev/null
  rm -f "$1/http.pid"
  return 0
}

topology_up() { # $1: scratch dir
  local d=$1
  for ns in "$NS_BR" "$NS_CLI" "$NS_DIR" "$NS_A" "$NS_B" "$NS_C"; do ip netns add "$ns"; done
  ip -n "$NS_BR" link add br0 type bridge
  ip -n "$NS_BR" link set br0 up
  _link "$NS_CLI" "cv$SFX" "bcv$SFX"
  ip -n "$NS_CLI" addr add 192.168.1.100/24 dev "cv$SFX"
  ip -n "$NS_CLI" link set lo up
  # veth TX checksum offload leaves partial checksums that a forwarder passes on
  # unchanged (DR never touches L4): compute them in software on the client.
  ip netns exec "$NS_CLI" ethtool -K "cv$SFX" tx off tso off gso off >/dev/null
  # The client's link is 2 Mbit/s (shaped where the bridge sends to it), so a 400 KB
  # download takes ~1.6 s: long enough to change the director under it (curl's own
  # --limit-rate reads a burst from its socket buffer and can finish in milliseconds).
  ip netns exec "$NS_BR" tc qdisc add dev "bcv$SFX" root tbf rate 2mbit burst 32kb latency 2s
  _link "$NS_DIR" "$DIR_IF" "b$DIR_IF"
  ip netns exec "$NS_DIR" ethtool -K "$DIR_IF" tx off tso off gso off >/dev/null 2>&1 || true
  ip -n "$NS_DIR" link set lo up # the director's own local services (drlb's --metrics)
  # drlb owns the port; with a NIC bound to DPDK the kernel never sees its frames, but
  # this veth is a kernel interface too. Once drlb's kernel interface holds the director
  # IP, the kernel would answer on the veth as well (weak host model: duplicate replies).
  # Keep its IP stack off the veth: no ARP answers, and strict reverse-path filtering
  # (the route back to the segment is via the kernel interface). drlb's af_packet
  # socket sees every frame before that.
  ip netns exec "$NS_DIR" sysctl -qw "net.ipv4.conf.$DIR_IF.rp_filter=1" "net.ipv4.conf.$DIR_IF.arp_ignore=1"
  _real_server "$NS_A" "av$SFX" 192.168.1.118 A "$d/www-a"
  _real_server "$NS_B" "bv$SFX" 192.168.1.119 B "$d/www-b"
  _real_server "$NS_C" "xv$SFX" 192.168.1.120 C "$d/www-c"
}

topology_down() { # $1: scratch dir
  local d=$1
  for w in "$d"/www-*; do http_stop "$w"; done
  # Other servers a test started in the namespaces, by their pid files in the scratch dir.
  for p in "$d"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; rm -f "$p"; done
  for ns in "$NS_CLI" "$NS_DIR" "$NS_A" "$NS_B" "$NS_C" "$NS_BR"; do ip netns del "$ns" 2>/dev/null; done
  return 0
}
