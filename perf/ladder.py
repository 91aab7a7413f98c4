#!/usr/bin/env python3
"""The cost ladder: drlb's established hit taken apart, one rung at a time, beside
testpmd macswap on the same vdev in the same rounds.

Each rung is drlb at one revision (--rev, default HEAD) with one patch of perf/tried/
applied, built in a git worktree under /tmp/drlb-ladder (one target directory for all,
so each build recompiles only drlb), and run on the e2e stage's established case
(`harness.e2e_case`: its pcap, config, mbufs and EAL arguments). From the whole hit down
to testpmd's own work:

  drlb         the release build as it is
  first-group  the hit reads only its key's first group (a key that lives in its
               second takes lane 0 of the first: wrong for ~3.5 % of 64k flows, which
               is what this rung prices, the second group's unprefetched line)
  line         no lookup: the hit reads one word of its first group's line (prefetched
               as drlb does) and renews one expiry there, the backend from that word
               (no key, expiry, route or VIP compare)
  none         no table: no prefetch, no line; the backend from the frame's port bits
               (stage 1 still hashes, `fast_key` still checks every frame)
  no-hash      none, and stage 1 does not hash (it stores the frame's length): what is
               left is `fast_key`'s checks and the hit loop
  swap         no drlb: the worker's loop (RX, TX buffer, counters) with the burst's
               MACs swapped as testpmd's macswap does; no hash, no checks
  bare         swap without the loop's bookkeeping a burst (the busy and RX counters,
               the latency sample, the sweep and the queued frames every eighth burst,
               the stats tick, the RCU quiescent state): RX, swap, TX

Each round runs every rung and then testpmd (each rate the port's TX packets over --secs
seconds from the process's telemetry socket, after a 4-second warm-up:
`harness.drlb_tx_rate`, `harness.testpmd_tx_rate`); the report gives each rung's median ns a packet, its median ratio to
the same round's testpmd, and the median of the same-round differences between
neighbouring rungs: what each layer costs. Nothing is written to results.json; the
output is the record (perf/results/ladder.txt).

  python3 perf/ladder.py [--rev REV] [--flows 65536,1024] [--rounds 5] [--secs 5]
"""
import argparse
import os
import shutil
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ROOT = harness.ROOT
WORK = "/tmp/drlb-ladder"
TARGET = "/tmp/drlb-ladder-target"
RUNGS = [
    ("drlb", None),
    ("first-group", "ladder-first-group.diff"),
    ("line", "ladder-line.diff"),
    ("none", "ladder-none.diff"),
    ("no-hash", "ladder-no-hash.diff"),
    ("swap", "ladder-swap.diff"),
    ("bare", "ladder-bare.diff"),
]


def run(cmd, **kw):
    """`harness.sh`, stopping the script when the command fails."""
    r = harness.sh(cmd, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def build(rev):
    """Each rung's binary, built from `rev` with its patch; their paths by rung."""
    shutil.rmtree(WORK, ignore_errors=True)
    run(["git", "-C", ROOT, "worktree", "prune"])
    run(["git", "-C", ROOT, "worktree", "add", "--force", "--detach", WORK, rev])
    bins = {}
    try:
        for name, patch in RUNGS:
            run(["git", "-C", WORK, "checkout", "--", "."])
            if patch:
                run(["git", "-C", WORK, "apply", os.path.join(ROOT, "perf", "tried", patch)])
            print(f"building {name} ({rev}{' + ' + patch if patch else ''})", flush=True)
            run(["cargo", "build", "--release", "--quiet", "--bin", "drlb"], cwd=WORK,
                env={**os.environ, "CARGO_TARGET_DIR": TARGET})
            out = os.path.join(TARGET, f"drlb-{name}")
            shutil.copy(os.path.join(TARGET, "release", "drlb"), out)
            bins[name] = out
    finally:
        run(["git", "-C", ROOT, "worktree", "remove", "--force", WORK])
    return bins


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--flows", default="65536,1024")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=int, default=5)
    a = ap.parse_args()
    rev = run(["git", "-C", ROOT, "rev-parse", "--short", a.rev]).strip()
    bins = build(rev)
    print(f"ladder at {rev}, {a.rounds} rounds, {a.secs} s a run", flush=True)
    names = [n for n, _ in RUNGS] + ["testpmd"]
    for flows in (int(x) for x in a.flows.split(",")):
        _, cfg, eal, mbufs = harness.e2e_case(flows, 60, "established", 1)
        got = []
        for r in range(a.rounds):
            row = {}
            for name, _ in RUNGS:
                row[name] = harness.drlb_tx_rate(bins[name], eal, cfg, mbufs, a.secs)
            row["testpmd"] = harness.testpmd_tx_rate(eal, mbufs, a.secs)
            got.append(row)
            print(f"  {flows} flows, round {r + 1}: " + ", ".join(f"{n} {row[n] / 1e6:.2f}" for n in names)
                  + " Mpps", flush=True)
        for n in names:
            ns = statistics.median(1e9 / row[n] for row in got)
            ratio = statistics.median(row[n] / row["testpmd"] for row in got)
            print(f"{flows} flows: {n:<11} {ns:5.1f} ns a packet (median), {ratio:.3f} of testpmd "
                  f"(median of the rounds' ratios)", flush=True)
        for hi, lo in zip(names, names[1:]):
            d = statistics.median(1e9 / row[hi] - 1e9 / row[lo] for row in got)
            print(f"{flows} flows: {hi} - {lo}: {d:+.1f} ns a packet (median of the rounds' differences)",
                  flush=True)
    print(f"memory: {', '.join(sorted(harness.MEM_MODES))}", flush=True)


if __name__ == "__main__":
    main()
