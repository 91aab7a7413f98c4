#!/usr/bin/env python3
"""Instructions per forwarded packet of drlb's worker and of testpmd macswap, counted the
same way (perf/README.md §3): each under `valgrind --tool=callgrind` on one net_pcap
replay, then `callgrind_annotate`, each function's instructions over the packets sent,
split into the forwarder's own loop and the PMD's code that both run (net_pcap, libpcap,
the mempool, `__tls_get_addr`).

    python3 perf/harness.py --only e2e --e2e-flows 1024 --e2e-sizes 60   # writes the pcap and config
    python3 perf/callgrind_worker.py perf/out/flows-1024-60-ack-ppf1.pcap perf/out/e2e.toml [--secs 100]

drlb is stopped by SIGINT after --secs; testpmd runs interactively (`start`, --secs,
`stop`). valgrind runs with `--fair-sched=yes`: without it a polling worker keeps
valgrind's lock, and the main thread, back from a system call, waits minutes for it (drlb
then reacts to SIGINT minutes late). Start-up code is left out by
counting only the worker's functions and the PMD's; the latency histogram's merge,
which runs once a tick and looks ~40 times bigger under valgrind, is counted apart.
"""
import argparse, os, re, shutil, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
PMD = re.compile(r"librte_net_pcap|libpcap|librte_mempool|tls_get_addr")
LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)\s*$")


def split(out, own):
    """(own, pmd, per-tick) instructions from a callgrind file's per-function totals."""
    ann = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", out], capture_output=True,
                         text=True, check=True).stdout
    o = p = t = 0
    for line in ann.splitlines():
        m = LINE.match(line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        n, what = int(m.group(1).replace(",", "")), m.group(2)
        if PMD.search(what):
            p += n
        elif re.search(r"Worker::(tick|publish)|publish_latency|hdrhistogram", what):
            t += n
        elif own(what):
            o += n
    return o, p, t


def drlb(a, out):
    sock = f"/tmp/cgw{os.getpid()}.sock"
    eal = ["-l", "0-1", "--no-pci", "--no-huge", "-m", "512", "--file-prefix", f"cgw{os.getpid()}",
           f"--vdev=net_pcap0,rx_pcap={a.pcap},infinite_rx=1"]
    cmd = ["valgrind", "--tool=callgrind", "--fair-sched=yes", f"--callgrind-out-file={out}", a.drlb, *eal, "--",
           "--config", a.config, "--mbufs", "8000", "--stats-interval", "0",
           "--control", sock]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(60 + a.secs)  # valgrind's start-up, then the forwarding
    proc.send_signal(2)
    stdout, _ = proc.communicate(timeout=1800)
    if os.path.exists(sock):
        os.unlink(sock)
    m = re.search(r"counter port_opackets (\d+)", stdout)
    if not m:
        sys.exit("drlb under valgrind printed no port_opackets counter")
    if int(m.group(1)) < 100_000:
        # e.g. the ACK-only pcap with a config that has no `mid_flow = "schedule"` (the
        # harness's --ab with syn+ack traffic, or another e2e case, rewrites e2e.toml).
        sys.exit(f"drlb forwarded only {m.group(1)} packets under valgrind: not a count of the "
                 f"forwarding loop; is {a.config} the config of {a.pcap}'s case? (rerun "
                 "`perf/harness.py --only e2e --e2e-flows 1024 --e2e-sizes 60`, which writes it last)")
    return int(m.group(1))


def testpmd(a, out):
    cmd = ["valgrind", "--tool=callgrind", "--fair-sched=yes", f"--callgrind-out-file={out}", "dpdk-testpmd", "-l", "0-1",
           "--no-pci", "--no-huge", "-m", "512", "--file-prefix", f"cgt{os.getpid()}",
           f"--vdev=net_pcap0,rx_pcap={a.pcap},infinite_rx=1", "--", "-i", "--forward-mode=macswap",
           "--port-topology=loop", "--total-num-mbufs=8000"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    time.sleep(60)  # valgrind's start-up
    for word, wait in (("start", a.secs), ("stop", 5), ("quit", 0)):
        proc.stdin.write(word + "\n")
        proc.stdin.flush()
        time.sleep(wait)
    stdout, _ = proc.communicate(timeout=1800)
    # testpmd leaves its EAL runtime directory behind (drlb removes its own).
    shutil.rmtree(f"/var/run/dpdk/cgt{os.getpid()}", ignore_errors=True)
    sent = re.findall(r"TX-packets:\s+(\d+)", stdout)
    if not sent:
        sys.exit("testpmd under valgrind printed no TX-packets")
    return int(sent[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pcap")
    ap.add_argument("config", help="drlb's config (the e2e stage's perf/out/e2e.toml)")
    ap.add_argument("--secs", type=int, default=100, help="seconds of forwarding under valgrind (default 100)")
    ap.add_argument("--drlb", default=os.path.join(HERE, "..", "target", "release", "drlb"))
    a = ap.parse_args()
    for f in (a.pcap, a.config, a.drlb):
        if not os.path.exists(f):
            sys.exit(f"{f}: not found (run the e2e stage first, and `cargo build --release`)")
    rows = []
    for name, run, own in (("drlb", drlb, lambda w: "drlb::dataplane::worker::" in w),
                           ("testpmd", testpmd, lambda w: "dpdk-testpmd" in w)):
        out = f"/tmp/callgrind.{name}.{os.getpid()}"
        pkts = run(a, out)
        o, p, t = split(out, own)
        os.unlink(out)
        rows.append((name, pkts, o / pkts, p / pkts, t / pkts))
        print(f"{name}: {pkts} packets sent; per packet: own loop {o / pkts:.1f}, PMD {p / pkts:.1f}, "
              f"per-tick work {t / pkts:.1f} (inflated by valgrind's slowness; left out)", flush=True)
    (_, _, do, dp, _), (_, _, to, tp, _) = rows
    print(f"testpmd / drlb in instructions: {(to + tp) / (do + dp):.3f}")


if __name__ == "__main__":
    main()
