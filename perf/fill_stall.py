#!/usr/bin/env python3
"""The worker's longest loop while its flow table fills: drlb binaries side by side.

Each run starts a drlb binary with a 1M-flow table (16 MiB a worker) on a net_pcap port
that replays the e2e stage's 64k-flow SYN+ACK pcap once (not forever: every flow is new
exactly once, so the table fills from empty), stops it with SIGINT after --secs and reads
`counter longest_loop_ns` from its exit summary: the longest worker loop iteration that
received a burst, from one iteration's start to the next's. A worker that writes into an
untouched part of its table waits there while the kernel zeroes a page (a 2 MiB huge page
for drlb's tables); a table populated before the worker starts (drlb's since it made the
tables resident at start) has nothing left to fault. The binaries run in turn, --rounds
times; the output is the record (perf/results/fill_stall.txt).

  python3 perf/fill_stall.py OLD/drlb,NEW/drlb [--rounds 6] [--secs 5] [--capacity 1048576]
"""
import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def longest_loop_ns(binary, pcap, cfg, secs):
    """One run: (longest_loop_ns, new_flows) from the exit summary."""
    pre = f"fill{os.getpid()}"
    cmd = [binary, "-l", "0-1", "--no-pci", "--file-prefix", pre, *harness.mem_args(512),
           f"--vdev=net_pcap0,rx_pcap={pcap},tx_pcap=/dev/null", "--",
           "--config", cfg, "--stats-interval", "0", "--mbufs", "8192"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=secs)
    except subprocess.TimeoutExpired:
        p.send_signal(2)
        out, err = p.communicate(timeout=60)
    got = harness.counters_of(out)
    if p.returncode != 0 or "longest_loop_ns" not in got:
        raise SystemExit(f"{binary} exited {p.returncode} without its counters:\n{err[-2000:]}")
    return got["longest_loop_ns"], got.get("new_flows", 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bins", help="drlb binaries, comma-separated (e.g. OLD/drlb,NEW/drlb)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--capacity", type=int, default=1 << 20, help="flow_capacity (default 1048576: 16 MiB)")
    a = ap.parse_args()
    bins = a.bins.split(",")
    if not all(os.access(b, os.X_OK) for b in bins):
        ap.error(f"want executable drlb binaries, comma-separated; got {a.bins!r}")
    os.makedirs(harness.OUT, exist_ok=True)
    pcap = harness.pcap(65536, 60)
    cfg = harness.bench_config(os.path.join(harness.OUT, "fill.toml"), 65536, capacity=a.capacity)
    runs = {b: [] for b in bins}
    for r in range(a.rounds):
        for b in bins:
            ns, new = longest_loop_ns(b, pcap, cfg, a.secs)
            runs[b].append(ns)
            print(f"round {r + 1} {b}: longest loop {ns / 1000:.1f} us ({new} new flows)", flush=True)
    for b in bins:
        us = [v / 1000 for v in runs[b]]
        print(f"{b}: median {statistics.median(us):.1f} us, min {min(us):.1f}, max {max(us):.1f} "
              f"over {len(us)} runs (flow_capacity {a.capacity})")


if __name__ == "__main__":
    main()
