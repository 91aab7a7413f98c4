#!/usr/bin/env bash
# N directors behind a router that spreads the VIP over them by ECMP, in network
# namespaces. Sourced by tests/netns_ecmp.rs (and scripts/demo-ecmp.sh through it);
# every name carries $SFX. Uses seed-topology.sh's links and real servers.
#
#   client  10.0.0.2           ns drlb-ec-$SFX     default via the router
#   router  10.0.0.1           ns drlb-rt-$SFX     BIRD 2: BGP with every director,
#           192.168.1.1                            ECMP route to the VIP (merge paths)
#   director i 192.168.1.12i   ns drlb-d$i-$SFX    drlb on net_af_packet over d${i}v$SFX,
#                                                  the DIP on its kernel interface drlb0,
#                                                  ExaBGP (AS 65001) over it
#   real A/B/C 192.168.1.118-120 (seed-topology.sh) VIP on lo, default via the router,
#           a line server on :7000 (scripts/lines.py) beside the web server on :80
#   all on one Linux bridge in ns drlb-br-$SFX
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/seed-topology.sh"
NS_RT=drlb-rt-$SFX; NS_EC=drlb-ec-$SFX
HOLD=3 # BGP hold time, s (the minimum BGP allows)

ecmp_ns() { echo "drlb-d$1-$SFX"; }   # director i's namespace
ecmp_dip() { echo "192.168.1.12$1"; } # director i's IP
ecmp_if() { echo "d$1v$SFX"; }        # director i's port (drlb's af_packet vdev)

# ecmp_up DIR N: the namespaces, links, real servers and BIRD.
ecmp_up() {
  local d=$1 n=$2 i
  for ns in "$NS_BR" "$NS_RT" "$NS_EC" "$NS_A" "$NS_B" "$NS_C"; do ip netns add "$ns"; done
  ip -n "$NS_BR" link add br0 type bridge
  ip -n "$NS_BR" link set br0 up
  # The router: one leg on the segment, one to the client.
  _link "$NS_RT" "rv$SFX" "brv$SFX"
  ip -n "$NS_RT" addr add 192.168.1.1/24 dev "rv$SFX"
  ip link add "ec$SFX" netns "$NS_EC" type veth peer name "rc$SFX" netns "$NS_RT"
  ip -n "$NS_EC" addr add 10.0.0.2/24 dev "ec$SFX"
  ip -n "$NS_RT" addr add 10.0.0.1/24 dev "rc$SFX"
  for x in "$NS_EC:ec$SFX" "$NS_RT:rc$SFX"; do ip -n "${x%%:*}" link set "${x#*:}" up; ip -n "${x%%:*}" link set lo up; done
  ip -n "$NS_EC" route add default via 10.0.0.1
  # Hash flows on their 5-tuple, as ECMP routers in front of directors do (a Linux
  # router: fib_multipath_hash_policy = 1). Inside one machine, policy 1 would reuse the
  # hash the client's own TCP socket put on its packets, which TCP changes at every
  # retransmission timeout (flows would wander between directors, unlike behind a real
  # router); policy 3 with the 5-tuple fields (0x37) computes it from the headers.
  ip netns exec "$NS_RT" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_fields=0x0037 \
    net.ipv4.fib_multipath_hash_policy=3 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    "net.ipv4.conf.rv$SFX.rp_filter=0" "net.ipv4.conf.rc$SFX.rp_filter=0"
  # Software checksums on what the client and the router send (veth offload leaves them
  # partial; a forwarder passes frames on as they are): see seed-topology.sh.
  for x in "$NS_EC:ec$SFX" "$NS_RT:rc$SFX" "$NS_RT:rv$SFX"; do ip netns exec "${x%%:*}" ethtool -K "${x#*:}" tx off >/dev/null; done
  for s in "A:$NS_A:av$SFX:192.168.1.118:$d/www-a" "B:$NS_B:bv$SFX:192.168.1.119:$d/www-b" "C:$NS_C:xv$SFX:192.168.1.120:$d/www-c"; do
    IFS=: read -r name ns ifn ip root <<<"$s"
    _real_server "$ns" "$ifn" "$ip" "$name" "$root"
    ip -n "$ns" route add default via 192.168.1.1
    ip netns exec "$ns" python3 "$HERE/lines.py" server "$name" 7000 >/dev/null 2>&1 &
    echo $! > "$root/lines.pid"
  done
  for i in $(seq "$n"); do
    ip netns add "$(ecmp_ns "$i")"
    _link "$(ecmp_ns "$i")" "$(ecmp_if "$i")" "b$(ecmp_if "$i")"
    ip netns exec "$(ecmp_ns "$i")" ethtool -K "$(ecmp_if "$i")" tx off tso off gso off >/dev/null 2>&1 || true
    ip -n "$(ecmp_ns "$i")" link set lo up
    # The kernel stays off the port (drlb owns it; the DIP lives on drlb's kernel
    # interface): see seed-topology.sh.
    ip netns exec "$(ecmp_ns "$i")" sysctl -qw "net.ipv4.conf.$(ecmp_if "$i").rp_filter=1" "net.ipv4.conf.$(ecmp_if "$i").arp_ignore=1"
  done
  _bird_conf "$n" > "$d/bird.conf"
  ip netns exec "$NS_RT" bird -f -c "$d/bird.conf" -s "$d/bird.ctl" -P "$d/bird.pid" >"$d/bird.log" 2>&1 &
  for _ in $(seq 100); do [ -S "$d/bird.ctl" ] && return 0; sleep 0.05; done
  echo "bird did not start: $(cat "$d/bird.log")" >&2
  return 1
}

# BIRD 2 on the router: a BGP session with each director (AS 65001), routes into the
# kernel with equal-cost paths merged; short timers so a dead director goes quickly.
_bird_conf() {
  cat <<EOF
router id 192.168.1.1;
protocol device { scan time 1; }
protocol kernel {
  ipv4 { export all; import none; };
  merge paths on;
}
template bgp directors {
  local 192.168.1.1 as 65000;
  hold time $HOLD;
  keepalive time 1;
  connect retry time 1;
  error wait time 1, 2;
  ipv4 { import all; export none; };
}
EOF
  for i in $(seq "$1"); do echo "protocol bgp d$i from directors { neighbor $(ecmp_dip "$i") as 65001; }"; done
}

# exabgp_start DIR I ADM: ExaBGP in director I's namespace, its feed drlbadm --bgp-feed
# (ADM: the drlbadm binary) on DIR/d$I.sock with the maintenance file DIR/d$I.maintenance.
exabgp_start() {
  local d=$1 i=$2 adm=$3
  # configs/exabgp.conf, the one shipped, with this director's addresses and paths.
  sed -e "s#/usr/local/bin/drlbadm#$adm#" -e "s#/run/drlb/drlb.sock#$d/d$i.sock#" \
    -e "s#/etc/drlb/maintenance#$d/d$i.maintenance#" -e "s#192\.168\.1\.121#$(ecmp_dip "$i")#g" \
    -e "s#hold-time 3;#hold-time $HOLD;#" "$HERE/../configs/exabgp.conf" > "$d/exabgp-$i.conf"
  # Passive (as shipped), listening on the director: the router reconnects within a
  # second once the director is back.
  env exabgp.daemon.user=root exabgp.daemon.daemonize=false exabgp.api.cli=false \
    exabgp.log.destination=stderr exabgp.tcp.bind=0.0.0.0 exabgp.tcp.port=179 \
    ip netns exec "$(ecmp_ns "$i")" exabgp "$d/exabgp-$i.conf" >"$d/exabgp-$i.log" 2>&1 &
  echo $! > "$d/exabgp-$i.pid"
}

# exabgp_stop DIR I [SIGNAL]
exabgp_stop() {
  local f="$1/exabgp-$2.pid"
  [ -f "$f" ] && kill "-${3:-TERM}" "$(cat "$f")" 2>/dev/null
  rm -f "$f"
  return 0
}

# The router's next hops for the VIP, one per line (none: no route).
ecmp_next_hops() {
  ip -n "$NS_RT" route show "$VIP" | grep -oE 'via [0-9.]+' | awk '{ print $2 }' | sort
}

ecmp_down() { # DIR N
  local d=$1 n=$2 i
  for i in $(seq "$n"); do exabgp_stop "$d" "$i" KILL; done
  [ -f "$d/bird.pid" ] && kill "$(cat "$d/bird.pid")" 2>/dev/null
  for w in "$d"/www-*; do
    [ -f "$w/lines.pid" ] && kill "$(cat "$w/lines.pid")" 2>/dev/null
    http_stop "$w"
  done
  for ns in "$NS_EC" "$NS_RT" "$NS_A" "$NS_B" "$NS_C" "$NS_BR"; do ip netns del "$ns" 2>/dev/null; done
  for i in $(seq "$n"); do ip netns del "$(ecmp_ns "$i")" 2>/dev/null; done
  return 0
}
