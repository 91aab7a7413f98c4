#!/usr/bin/env python3
"""An anchor for the e2e ratios: DPDK's own exact-match forwarder, `l3fwd --lookup=em`
(one `rte_hash` lookup of the 5-tuple a packet, bulk lookups of 8 with prefetches, the
MACs rewritten), and drlb (this tree's release build, the e2e stage's config), each
against `dpdk-testpmd --forward-mode=macswap` right after it, on the same net_pcap vdev
and the same pcap as the e2e stage's established case, its flows all in l3fwd's table.
What one stateful lookup a packet costs on this vdev when DPDK's own code does it, at 1k
and 64k flows, beside drlb's (perf/README.md, "An anchor: DPDK's l3fwd in exact-match
mode").

    python3 perf/l3fwd_em.py [--flows 1024,65536] [--rounds 3] [--secs 5]

Runs on the e2e stage's cases (`harness.e2e_case`: its pcaps, written to perf/out if
missing, its drlb config and mbufs, its EAL arguments) and needs l3fwd's source, which
Debian ships in `dpdk-doc`
(/usr/share/dpdk/examples/l3fwd): this installs that package if it is missing, builds
l3fwd with its Makefile (pkg-config libdpdk) under /tmp, and writes the rule file of
each pcap's flows. Rates are the ports' TX packets over `--secs` seconds, read from each
process's telemetry socket after a 4-second warm-up; each round runs drlb, l3fwd and
testpmd, and a round's ratios are its rates over its testpmd's.
"""
import argparse
import os
import shutil
import statistics
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402  (the e2e stage's config, so drlb runs as it does there)

OUT = harness.OUT
SRC = "/usr/share/dpdk/examples/l3fwd"
BUILD = "/tmp/drlb-l3fwd"


def l3fwd():
    """The l3fwd binary, built from Debian's example source (installed if missing)."""
    if not os.path.isdir(SRC):
        subprocess.run(["apt-get", "install", "-y", "-q", "dpdk-doc"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    binary = os.path.join(BUILD, "l3fwd", "build", "l3fwd")
    if not os.path.exists(binary):
        # The example and the examples' common headers, which its Makefile finds at ../common.
        shutil.rmtree(BUILD, ignore_errors=True)
        for d in ("l3fwd", "common"):
            shutil.copytree(os.path.join(os.path.dirname(SRC), d), os.path.join(BUILD, d))
        # One change: l3fwd asks for RX checksum offloads, which net_pcap has not (it
        # refuses to start); without them it checks nothing more or less on this path.
        main_c = os.path.join(BUILD, "l3fwd", "main.c")
        src = open(main_c).read()
        want = ".offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,"
        if want not in src:
            sys.exit(f"{main_c}: no '{want}' to take out (another DPDK release?)")
        open(main_c, "w").write(src.replace(want, ".offloads = 0,"))
        subprocess.run(["make", "-C", os.path.join(BUILD, "l3fwd"), "-j2"], check=True, capture_output=True)
    return binary


def flows_of(pcap):
    """The distinct (src, dst, sport, dport, proto) of an Ethernet/IPv4 pcap's frames."""
    data = open(pcap, "rb").read()
    off, seen = 24, {}
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        f = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(f) >= 38 and f[12:14] == b"\x08\x00":
            ihl = (f[14] & 0xf) * 4
            src, dst = f[26:30], f[30:34]
            sport, dport = struct.unpack_from("!HH", f, 14 + ihl)
            seen[(src, dst, sport, dport, f[23])] = None
    return list(seen)


def rules(pcap, flows):
    """An l3fwd EM rule file with each of the pcap's flows, out on port 0."""
    path = os.path.join(OUT, f"l3fwd-em-{flows}.rules")
    ip = lambda b: ".".join(str(x) for x in b)
    with open(path, "w") as f:
        for src, dst, sport, dport, proto in flows_of(pcap):
            f.write(f"R{ip(dst)} {ip(src)} {dport} {sport} {proto:#x} 0\n")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flows", default="1024,65536")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=int, default=5)
    a = ap.parse_args()
    binary = l3fwd()
    for flows in (int(x) for x in a.flows.split(",")):
        # The e2e stage's established case (its EAL arguments on the harness's memory
        # policy: hugepages, or a clear stop).
        _, cfg, eal, mbufs = harness.e2e_case(flows, 60, "established", 1)
        r4 = rules(harness.established_pcap(flows, 60), flows)
        got = []
        for _ in range(a.rounds):
            dr = harness.drlb_tx_rate(os.path.join(harness.B, "drlb"), eal, cfg, mbufs, a.secs)
            # One lcore, the one forwarding: l3fwd opens a TX queue on each of its lcores,
            # and the vdev has one (drlb's and testpmd's other lcore does not forward). Its
            # mbuf pool follows the RX ring's size, and net_pcap holds the whole pcap in
            # mbufs: the ring as big as the pcap (at most 65535, so up to ~64k flows).
            pre = f"l3em{os.getpid()}"
            em = harness.telemetry_tx_rate([binary, *eal("1", pre), "--", "-p", "0x1", "--lookup=em", "--config", "(0,0,1)",
                       "--rx-queue-size", str(min(flows + 8192, 65535)), "--parse-ptype",
                       f"--rule_ipv4={r4}", f"--rule_ipv6={SRC}/em_default_v6.cfg"], pre, a.secs)
            tp = harness.testpmd_tx_rate(eal, mbufs, a.secs)
            got.append((dr, em, tp))
            print(f"  {flows} flows: drlb {dr / 1e6:.2f} Mpps, l3fwd-em {em / 1e6:.2f} Mpps, testpmd macswap "
                  f"{tp / 1e6:.2f} Mpps: ratios {dr / tp:.3f}, {em / tp:.3f}", flush=True)
        for name, i in (("drlb", 0), ("l3fwd-em", 1)):
            med = statistics.median(r[i] / r[2] for r in got)
            print(f"{flows} flows: {name} / testpmd macswap, median of {a.rounds} rounds: {med:.3f}", flush=True)


if __name__ == "__main__":
    main()
