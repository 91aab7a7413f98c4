#!/usr/bin/env python3
"""Where each forwarder's time a packet goes, drlb beside testpmd macswap on the same
net_pcap vdev: each process's TX rate (its telemetry socket) while `perf record -F 4999`
samples the forwarding CPU (cpu-clock: this VM has no hardware counters), the samples
split by shared object and turned into ns a packet (the share times 1e9 / rate):

  pmd    the vdev's receive and transmit: librte_net_pcap (the infinite_rx replay copies
         each frame from its stored mbuf), libpcap, librte_mempool and ld.so's
         __tls_get_addr (the PMD's lcore id): the code both forwarders run
  own    the forwarder's own binary (drlb, or testpmd's macswap loop)
  other  the rest (the kernel's timer ticks, libc)

What it answers (perf/README.md, "Where the time goes"): whether drlb makes the PMD's
code slower (its flow table's lines displacing the replay's stored frames in the
caches) or whether the gap is drlb's own code; and, from testpmd's ns a packet in the
same round, how many ns of its own work drlb may spend to reach a ratio: for 0.7,
testpmd's ns x (1 / 0.7 - 1). Runs the e2e stage's established case (`harness.e2e_case`:
pcap, config, mbufs, EAL arguments) with this tree's release build; the sampling slows
both processes a little, so its rates are not the harness's. Nothing is written to
results.json; the output is the record (perf/results/pmd_share.txt).

    python3 perf/pmd_share.py [--flows 65536,1024] [--rounds 3] [--secs 8] [--capacity N]

--capacity sets drlb's flow_capacity (the e2e stage's is twice the flows): the same pcap
and the same replay beside a table whose flows are spread over more lines, to see
whether the PMD's slowdown inside drlb follows the lines drlb's table touches.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PMD = re.compile(r"librte_net_pcap|libpcap|librte_mempool|ld-linux")
OWN = {"drlb": "drlb", "testpmd": "dpdk-testpmd"}
TARGET = 0.7


def shares(data):
    """Each shared object's fraction of a perf.data file's samples."""
    rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso", "--stdio"],
                         capture_output=True, text=True, check=True).stdout
    out = {}
    for line in rep.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)", line)
        if m:
            out[m.group(2)] = out.get(m.group(2), 0.0) + float(m.group(1)) / 100
    return out


def split(kind, rate, sh):
    """(ns a packet, pmd, own, other) from a rate and the samples' shares."""
    ns = 1e9 / rate
    pmd = sum(v for k, v in sh.items() if PMD.search(k)) * ns
    own = sh.get(OWN[kind], 0.0) * ns
    return ns, pmd, own, ns - pmd - own


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", default="65536,1024")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=int, default=8)
    ap.add_argument("--capacity", type=int, help="drlb's flow_capacity (default: the e2e stage's, 2 x flows)")
    a = ap.parse_args()
    os.makedirs(harness.OUT, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=harness.ROOT, check=True)
    data = f"/tmp/pmd-share-{os.getpid()}.data"

    def profile(secs):
        subprocess.run(["perf", "record", "-F", "4999", "-C", "1", "-o", data, "--", "sleep", str(secs)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

    try:
        for flows in [int(x) for x in a.flows.split(",")]:
            _, cfg, eal, mbufs = harness.e2e_case(flows, 60, "established", 1)
            if a.capacity:
                cfg = harness.bench_config(os.path.join(harness.OUT, "pmd_share.toml"), flows,
                                           capacity=a.capacity, service_extra='mid_flow = "schedule"')
            rows = {"drlb": [], "testpmd": []}
            for r in range(a.rounds):
                for kind in ("drlb", "testpmd"):
                    if kind == "drlb":
                        rate = harness.drlb_tx_rate(os.path.join(harness.B, "drlb"), eal, cfg, mbufs, a.secs,
                                                    during=profile)
                    else:
                        rate = harness.testpmd_tx_rate(eal, mbufs, a.secs, during=profile)
                    ns, pmd, own, other = split(kind, rate, shares(data))
                    rows[kind].append((ns, pmd, own, other))
                    print(f"  {flows} flows, round {r + 1}: {kind:8s} {rate / 1e6:6.2f} Mpps, {ns:5.1f} ns a packet: "
                          f"pmd {pmd:5.1f}, own {own:5.1f}, other {other:4.1f}", flush=True)
                d, t = rows["drlb"][-1], rows["testpmd"][-1]
                print(f"  {flows} flows, round {r + 1}: ratio {t[0] / d[0]:.3f}; drlb's pmd - testpmd's "
                      f"{d[1] - t[1]:+.1f} ns; drlb's own {d[2]:.1f} ns against a budget of "
                      f"{t[0] / TARGET - t[1] - t[3]:.1f} for {TARGET} at testpmd's pmd time", flush=True)
            med = {k: [statistics.median(x[i] for x in v) for i in range(4)] for k, v in rows.items()}
            d, t = med["drlb"], med["testpmd"]
            print(f"{flows} flows{f', flow_capacity {a.capacity}' if a.capacity else ''}, medians of {a.rounds} rounds: drlb {d[0]:.1f} ns a packet (pmd {d[1]:.1f}, "
                  f"own {d[2]:.1f}, other {d[3]:.1f}); testpmd {t[0]:.1f} (pmd {t[1]:.1f}, own {t[2]:.1f}, "
                  f"other {t[3]:.1f})")
            print(f"{flows} flows: for {TARGET} of testpmd drlb may spend {t[0] / TARGET:.1f} ns a packet, "
                  f"{t[0] / TARGET - t[0]:.1f} more than testpmd; it spends {d[0] - t[0]:.1f} more "
                  f"(pmd {d[1] - t[1]:+.1f}, own {d[2] - t[2]:+.1f}, other {d[3] - t[3]:+.1f})")
        print(f"memory: {', '.join(sorted(harness.MEM_MODES))}")
    finally:
        if os.path.exists(data):
            os.remove(data)


if __name__ == "__main__":
    main()
