#!/usr/bin/env python3
"""drlb's in-machine performance harness: one command, every figure of perf/README.md.

    python3 perf/harness.py                 # full run (~25 min on 2 vCPUs)
    python3 perf/harness.py --quick         # seconds per stage: checks the harness itself
    python3 perf/harness.py --only e2e,latency
    python3 perf/harness.py --ab OLD/drlb,NEW/drlb --e2e-flows 1024   # paired A/B
    python3 perf/harness.py --report perf/results/results.json        # the figures the targets read

Stages (each writes perf/out/<stage>.csv; all go into perf/out/results.json with the
machine facts, DPDK version, git revision and parameters; perf/out/*.svg are the plots):

  e2e        drlb vs dpdk-testpmd --forward-mode=macswap on the same net_pcap vdev
             (rx_pcap=FLOWS.pcap,infinite_rx=1; TX counts and drops), 1 forwarding lcore,
             1 / 1k / 64k flows x 60 / 512 / 1514-byte frames; median of RUNS runs, and
             the ratio both as the ratio of the medians and as the median of the runs'
             own drlb/testpmd ratios (each drlb run is paired with the testpmd run after it).
  scaling    drlb with 2 workers vs 1 (an --lcores map that puts the main lcore on worker
             1's core; net_pcap with two RX queues), 64k flows; testpmd macswap with 2
             forwarding lcores vs 1 on the same vdevs and lcores beside it (the ceiling).
  micro      cargo bench --bench pipeline: ns/packet hit (1k/64k/1M flows), miss, the
             table fill curve and resident memory, the host's memory under the 1M case's
             table (dram_*: a dependent load, a line in bursts of 32); callgrind
             instructions/packet.
  latency    drlb-pktgen (paced UDP over net_memif) at its max rate, then 10/50/90 % of
             it: drlb's sampled RX-to-TX time (p50/p90/p99/p99.9/max) and the loss.
  reload     100 backend changes a second for SECS while forwarding at full rate: Mpps
             before and during, packets lost, swap latency p50/p99.
  soak       (not in the default set) --soak-secs (default 600) at --soak-rate (default
             2 Mpps, ~60 % of the memif maximum here) over memif from drlb-pktgen, half the packets from never-seen flows with a 1 s UDP
             timeout (expiry-heavy), a backend change every 100 ms (weights, and a real
             server removed and re-added every second): resident memory over time, and at
             the end mbufs back at baseline, rx = forwarded + replied + drops exactly,
             exit 0 (no panic), every stats second forwarding (no stuck worker).
  flood      (not in the default set) a SYN flood against established flows, per syn_flood mode.
  kernel     (not in the default set) forwarding with and without a flood at the director IP.
  idle       (not in the default set) dataplane.idle = poll vs adaptive over memif: full rate,
             and at 10 % / 1 % / 0.01 % of it the generator's round trip and drlb's CPU use.

No stage asserts a time; --quick checks that every stage ran and parsed its numbers.
"""
import argparse, json, os, platform, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B = os.path.join(ROOT, "target", "release")
OUT = os.environ.get("OUT", os.path.join(ROOT, "perf", "out"))
VIP = "192.168.1.200"
ALL = "e2e,scaling,micro,latency,reload"


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, **kw)


def hugepages_free():
    return next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("HugePages_Free:")), 0)


# Set by main(): whether a run without hugepages is acceptable (--quick only).
ALLOW_NO_HUGE = False
# Every memory mode a stage used, for its results ("hugepages" or "no-huge").
MEM_MODES = set()


def mem_args(mb):
    """Hugepages (--in-memory) when there are enough. Without them the ratios mean
    something else (testpmd loses half its rate, drlb less): a measuring run stops
    with a message; --quick (which checks the harness, not speed) falls back to
    --no-huge and says so."""
    free = hugepages_free()
    if "hugetlbfs" in open("/proc/mounts").read() and free * 2 >= mb + 64:
        MEM_MODES.add("hugepages")
        return ["--in-memory", "-m", str(mb)]
    msg = (f"only {free} free 2 MiB hugepages for a {mb} MiB DPDK process (another DPDK process, "
           f"or files left in /dev/hugepages?)")
    if not ALLOW_NO_HUGE:
        raise SystemExit(f"harness: {msg}; free them or reserve more (scripts/setup.sh) and rerun")
    print(f"  note: {msg}: running with --no-huge (quick mode only)", flush=True)
    MEM_MODES.add("no-huge")
    return ["--no-huge", "-m", str(mb)]


def wait_until(what, timeout, cond, proc=None, log=None):
    """Polls cond() every 50 ms; fails naming `what` (and the process's log) when the
    process exits first or `timeout` seconds pass. Events, not fixed sleeps: a busy
    machine only makes this slower."""
    t0 = time.time()
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited ({proc.returncode}) first\n{log() if log else ''}")
        if time.time() - t0 > timeout:
            raise RuntimeError(f"{what}: not within {timeout} s\n{log()[-3000:] if log else ''}")
        time.sleep(0.05)
    return time.time() - t0


def facts():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    stat = open("/proc/stat").readline().split()
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git": sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).stdout.strip(),
        "git_dirty": bool(sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"]).stdout.strip()),
        "dpdk": sh(["pkg-config", "--modversion", "libdpdk"]).stdout.strip(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "loadavg": open("/proc/loadavg").read().split()[:3],
        "steal_jiffies": int(stat[8]) if len(stat) > 8 else None,
        "hugepages_free": next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("HugePages_Free")), 0),
        "rustc": sh(["rustc", "--version"]).stdout.strip(),
    }


def bench_config(path, flows, proto="tcp", capacity=None, extra="", service_extra=""):
    """A config for the bench traffic: VIP:80 over two real servers (wrr 3:1); `extra`
    is TOML placed after [dataplane] (a [timeouts] table, say), `service_extra` in the
    service."""
    cap = capacity or max(flows * 2, 1024)
    with open(path, "w") as f:
        f.write(f"""[dataplane]
ip = "192.168.1.121"
flow_capacity = {cap}
{extra}
[[service]]
vip = "{VIP}"
port = 80
protocol = "{proto}"
scheduler = "wrr"
{service_extra}
  [[service.backend]]
  ip = "192.168.1.118"
  mac = "00:0c:29:56:5c:c5"
  weight = 3
  [[service.backend]]
  ip = "192.168.1.119"
  mac = "00:0c:29:56:5c:c6"
  weight = 1
""")
    return path


def pcap(flows, size, tag="", ppf=2, ack_only=False, interleave=True):
    """A SYN and then ppf - 1 ACKs per flow, interleaved (replayed forever: the SYN hits
    the flow's entry again, so 2 means every packet changes the flow's TCP state and
    takes the full path; with more, the ACKs of an established flow take the fast path).
    With ack_only, ppf ACKs per flow and no SYN; without interleave, each flow's packets
    one after another."""
    p = os.path.join(OUT, f"flows-{flows}-{size}{tag}" + (f"-ppf{ppf}" if ppf != 2 else "") + ".pcap")
    if not os.path.exists(p):
        subprocess.run([f"{B}/drlb-gen", "--flows", str(flows), "--packets-per-flow", str(ppf),
                        *(["--interleave"] if interleave else []),
                        "--size", str(size), "--out", p] + (["--ack-only"] if ack_only else []),
                       check=True, capture_output=True)
    return p


def counters_of(out):
    """The `counter NAME VALUE` lines drlb prints at exit, as a dict."""
    return {m[0]: int(m[1]) for m in re.findall(r"^counter (\S+) (\d+)$", out, re.M)}


def run_drlb(eal, cfg, secs, warm, extra=(), during=None, netns=None, metric="rx_pps", drlb=None):
    """Runs drlb (this tree's build, or the binary `drlb`) until it has printed warm + secs
    stats lines (one a second) after its control socket came up; returns (per-second
    `metric` of those lines after warm-up, rx_pps unless told otherwise, final counters,
    its stderr). With `during`, calls during(socket) once drlb is up and has printed
    `warm` stats lines, and stops it when that returns (all values then)."""
    sock = os.path.join(OUT, f"drlb-{os.getpid()}.sock")
    cmd = [drlb or f"{B}/drlb"] + eal + ["--", "--config", cfg, "--stats-interval", "1", "--control", sock] + list(extra)
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    # stderr to a file, not a pipe: a pipe nobody drains fills after ~64 KB of log
    # lines and then blocks drlb's manager (the workers never log, so forwarding would
    # go on, but control requests would stall).
    errpath = os.path.join(OUT, "drlb.stderr")
    errf = open(errpath, "w+")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, text=True)
    log = lambda: open(errpath).read()
    stats = lambda: len(re.findall(r"rx_pps=(\d+)", log()))
    try:
        wait_until("drlb's control socket", 60, lambda: os.path.exists(sock), p, log)
        want = warm if during else warm + secs
        wait_until(f"{want} stats lines from drlb (one a second)", 60 + 3 * want, lambda: stats() >= want, p, log)
        if during:
            during(sock)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    errf.close()
    err = log()
    pps = [int(m) for m in re.findall(metric + r"=(\d+)", err)]
    counters = counters_of(out)
    if p.returncode != 0 or not counters:
        raise RuntimeError(f"drlb failed ({p.returncode}): {err[-2000:]}")
    return pps[warm:warm + secs] if not during else pps, counters, err


def run_testpmd(eal, secs, warm, mbufs, metric="Rx-pps", app=()):
    """testpmd macswap until it has printed `secs` rate periods after its warm-up ones
    (its first two periods, and anything before its first rate line: with --in-memory
    -m 1536 it takes seconds to start); `app`: more testpmd arguments."""
    cmd = ["dpdk-testpmd"] + eal + ["--", "--forward-mode=macswap", "--port-topology=loop",
                                    f"--total-num-mbufs={mbufs}", "--stats-period", "1", *app]
    outpath = os.path.join(OUT, "testpmd.out")
    outf = open(outpath, "w+")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=outf, stderr=subprocess.STDOUT, text=True)
    log = lambda: open(outpath).read()
    periods = lambda: len(re.findall(r"Rx-pps:\s*(\d+)", log()))
    skip = 2  # testpmd's first periods are warm-up
    try:
        wait_until(f"{skip + secs} rate lines from testpmd", 90 + 3 * (skip + secs),
                   lambda: periods() >= skip + secs, p, log)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    p.wait(timeout=60)
    outf.close()
    # testpmd leaves its EAL runtime directory behind; drlb removes its own.
    prefix = eal[eal.index("--file-prefix") + 1] if "--file-prefix" in eal else None
    if prefix:
        shutil.rmtree(os.path.join("/var/run/dpdk", prefix), ignore_errors=True)
    pps = [int(m) for m in re.findall(metric + r":\s*(\d+)", log())]
    return pps[skip:skip + secs]


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def run_ratios(d, t):
    """Each drlb run's rate over the testpmd run's right after it (a zero testpmd run left out)."""
    return [x / y for x, y in zip(d, t) if y]


def same_run_ratio(d, t):
    """The median of the runs' own ratios (each drlb run to the testpmd run right after
    it, on the same vdev): a drift of the host between runs moves both halves of a pair,
    so this reads the code more steadily than the ratio of the two medians, which pairs
    a fast hour's testpmd with a slow hour's drlb when the hour changes mid-stage. The
    targets are read by it; both are recorded."""
    rs = run_ratios(d, t)
    return round(statistics.median(rs), 3) if rs else None


# The e2e plot's short names for the kinds of traffic.
E2E_LABEL = {"syn+ack": "syn", "established": "est", "mixed": "mix"}

# Packets per flow of the `mixed` e2e traffic, and the most flows it runs with (its
# pcap is held in mbufs: 64k flows of 16 would not fit the harness's hugepages).
MIXED_PPF = 16
MIXED_MAX_FLOWS = 4096


def established_pcap(flows, size):
    """The e2e stage's `established` traffic: one ACK per flow, no SYN."""
    return pcap(flows, size, tag="-ack", ppf=1, ack_only=True)


def e2e_case(flows, size, traffic, ppf):
    """One e2e case: (packets per flow, drlb config, EAL args (a function: the memory
    mode is chosen at each start), mbufs). `syn+ack` replays a SYN and
    ppf - 1 ACKs per flow, the flows interleaved (each burst all SYNs or all ACKs);
    `mixed` a SYN and 15 ACKs per flow, one flow after another (each 64-frame burst
    holds four flows' SYN and handshake ACK among their data, as a director's traffic
    mixes them); `established` ACKs only, for a mid_flow = "schedule" service."""
    if traffic in ("syn+ack", "mixed"):
        if traffic == "mixed":
            ppf = MIXED_PPF
            p = pcap(flows, size, tag="-mixed", ppf=ppf, interleave=False)
        else:
            p = pcap(flows, size, ppf=ppf)
        cfg = bench_config(os.path.join(OUT, "e2e.toml"), flows)
    else:
        ppf = 1
        p = established_pcap(flows, size)
        cfg = bench_config(os.path.join(OUT, "e2e.toml"), flows, service_extra='mid_flow = "schedule"')
    vdev = f"--vdev=net_pcap0,rx_pcap={p},infinite_rx=1"
    eal = lambda lcores="0-1", prefix=f"hx{os.getpid()}": [
        "-l", lcores, "--no-pci", *mem_args(1536), "--file-prefix", prefix, vdev]
    return ppf, cfg, eal, flows * ppf + 16384


# Rates from a DPDK process's telemetry socket: the same reading for any DPDK application
# (drlb, testpmd, l3fwd), for the scripts beside this one (perf/l3fwd_em.py, perf/ladder.py).

def tx_packets(prefix):
    """Port 0's TX packets from a DPDK process's telemetry socket (None if not up)."""
    path = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(path)
        json.loads(s.recv(1 << 16))
        s.send(b"/ethdev/stats,0")
        r = json.loads(s.recv(1 << 16))
        s.close()
        return r["/ethdev/stats"]["opackets"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def telemetry_tx_rate(cmd, prefix, secs, stdin=None, during=None):
    """TX packets a second of the DPDK process `cmd` over `secs` after a warm-up;
    `during(secs)`, when given, runs in the window in place of the sleep (a profiler)."""
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while tx_packets(prefix) is None:
            if p.poll() is not None or time.time() > deadline:
                raise SystemExit(f"{cmd[0]} did not come up ({p.poll()}): {' '.join(cmd)}")
            time.sleep(0.5)
        time.sleep(4)
        a, t0 = tx_packets(prefix), time.time()
        (during or time.sleep)(secs)
        b, t1 = tx_packets(prefix), time.time()
        return (b - a) / (t1 - t0)
    finally:
        p.terminate()
        p.wait(timeout=60)
        shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)


def drlb_tx_rate(binary, eal, cfg, mbufs, secs, during=None):
    """The TX rate of drlb `binary` on an e2e case (`harness.e2e_case`'s EAL arguments,
    config and mbufs)."""
    pre = f"txdr{os.getpid()}"
    return telemetry_tx_rate([binary, *eal("0-1", pre), "--", "--config", cfg, "--mbufs", str(mbufs)], pre, secs,
                             during=during)


def testpmd_tx_rate(eal, mbufs, secs, during=None):
    """The TX rate of testpmd macswap on an e2e case, as `drlb_tx_rate`."""
    pre = f"txtp{os.getpid()}"
    return telemetry_tx_rate(["dpdk-testpmd", *eal("0-1", pre), "--", "--forward-mode=macswap", "--port-topology=loop",
                 f"--total-num-mbufs={mbufs}", "--auto-start"], pre, secs, stdin=True, during=during)


def paired_ab(a):
    """--ab OLD,NEW: two drlb binaries (say two revisions' builds) on one e2e case
    (--e2e-flows' first count, 60-byte frames, --ab-traffic), alternating, --runs rounds:
    each run's median forwarded (TX) rate over the e2e window (after --warm seconds,
    --secs of them). Alternating cancels a shared VM's slow drifts; read the rounds'
    medians, not one pair. Nothing is written to results.json."""
    bins = a.ab.split(",")
    if a.ab_traffic == "scaling":
        return paired_scaling(a, bins)
    flows = int(a.e2e_flows.split(",")[0])
    if a.ab_traffic == "mixed" and flows > MIXED_MAX_FLOWS:
        sys.exit(f"--ab-traffic mixed runs with at most {MIXED_MAX_FLOWS} flows (its pcap is held in "
                 f"mbufs); got --e2e-flows {flows}")
    _, cfg, eal, mbufs = e2e_case(flows, 60, a.ab_traffic, a.e2e_ppf)
    runs = {b: [] for b in bins}
    for r in range(a.runs):
        for b in bins:
            pps, _, _ = run_drlb(eal(), cfg, a.secs, a.warm, ["--mbufs", str(mbufs)], metric="tx_pps", drlb=b)
            runs[b].append(statistics.median(pps) / 1e6)
            print(f"  round {r + 1}: {b} {runs[b][-1]:.2f} Mpps", flush=True)
    for b in bins:
        print(f"ab {flows} flows {a.ab_traffic}: {b}: " + " / ".join(f"{x:.2f}" for x in runs[b])
              + f" Mpps, median {statistics.median(runs[b]):.2f}")


def stage_e2e(a, res):
    """drlb vs testpmd macswap on the same net_pcap port, same run, counting frames sent
    (TX), for three kinds of traffic: `syn+ack` (a SYN and then packets_per_flow - 1 ACKs
    per flow, replayed forever: the SYN resets the flow's TCP state each pass),
    `established` (ACK segments only, for a service with mid_flow = "schedule": the first
    pass takes the flows up, every later one is established traffic) and, up to
    MIXED_MAX_FLOWS flows, `mixed` (each flow's SYN and 15 ACKs in a row, so every burst
    mixes frames that change a flow's state with its data)."""
    rows = []
    flows_list = [1024] if a.quick else [int(x) for x in a.e2e_flows.split(",")]
    sizes = [60] if a.quick else [int(x) for x in a.e2e_sizes.split(",")]
    for flows in flows_list:
        for size in sizes:
            for traffic in ["syn+ack", "established"] + (["mixed"] if flows <= MIXED_MAX_FLOWS else []):
                ppf, cfg, eal, mbufs = e2e_case(flows, size, traffic, a.e2e_ppf)
                d, t = [], []
                for r in range(a.runs):
                    e = eal()
                    pps, c, _ = run_drlb(e, cfg, a.secs, a.warm, ["--mbufs", str(mbufs)], metric="tx_pps")
                    d.append(mean(pps) / 1e6)
                    t.append(mean(run_testpmd(e, a.secs, a.warm, mbufs, metric="Tx-pps")) / 1e6)
                dm, tm = statistics.median(d), statistics.median(t)
                row = {"flows": flows, "size": size, "traffic": traffic, "packets_per_flow": ppf,
                       "drlb_mpps": round(dm, 3), "testpmd_mpps": round(tm, 3),
                       "ratio": round(dm / tm, 3) if tm else None, "same_run_ratio": same_run_ratio(d, t),
                       "drlb_runs": [round(x, 3) for x in d], "testpmd_runs": [round(x, 3) for x in t]}
                print(f"  e2e flows={flows} size={size} {traffic} packets/flow={ppf}: drlb {dm:.2f} Mpps, "
                      f"testpmd {tm:.2f} Mpps (TX), ratio {row['ratio']}, same-run {row['same_run_ratio']}")
                rows.append(row)
    res["e2e"] = rows
    write_csv("e2e", rows, ["flows", "size", "traffic", "drlb_mpps", "testpmd_mpps", "ratio", "same_run_ratio"])


def scaling_cases():
    """The scaling stage's config, its (workers, EAL arguments) cases and the mbufs."""
    flows = 65536
    p0, p1 = pcap(flows, 60, "-q0"), pcap(flows, 60, "-q1")
    cfg = bench_config(os.path.join(OUT, "scaling.toml"), flows)
    cases = [
        (1, ["-l", "0-1"], f"--vdev=net_pcap0,rx_pcap={p0},infinite_rx=1"),
        # Two workers on the two CPUs; the (mostly sleeping) main lcore shares CPU 0.
        (2, ["--lcores", "0@0,1@0,2@1"],
         f"--vdev=net_pcap0,rx_pcap={p0},rx_pcap={p1},infinite_rx=1"),
    ]
    eal = lambda lcores, vdev: lcores + ["--no-pci", *mem_args(1536), "--file-prefix", f"hs{os.getpid()}", vdev]
    return cfg, [(w, eal(l, v)) for w, l, v in cases], 4 * flows + 32768


def testpmd_cores(workers):
    """testpmd's arguments for `workers` forwarding lcores, one RX/TX queue pair each
    (the scaling stage's ceiling: the same vdevs and lcores, macswap)."""
    return [f"--nb-cores={workers}", f"--rxq={workers}", f"--txq={workers}"]


def paired_scaling(a, bins):
    """--ab OLD,NEW --ab-traffic scaling: the scaling stage's one- and two-worker cases for
    each binary in turn, --runs rounds; each binary's two-worker / one-worker medians."""
    cfg, cases, mbufs = scaling_cases()
    runs = {(b, w): [] for b in bins for w, _ in cases}
    for r in range(a.runs):
        for b in bins:
            for w, eal in cases:
                pps, _, _ = run_drlb(eal, cfg, a.secs, a.warm, ["--mbufs", str(mbufs)], drlb=b)
                runs[(b, w)].append(mean(pps) / 1e6)
                print(f"  round {r + 1}: {b} workers={w} {runs[(b, w)][-1]:.2f} Mpps", flush=True)
    for b in bins:
        m = [statistics.median(runs[(b, w)]) for w, _ in cases]
        print(f"ab scaling: {b}: " + "; ".join(
            f"{w} worker(s) " + " / ".join(f"{x:.2f}" for x in runs[(b, w)]) for w, _ in cases)
              + f" Mpps; 2 vs 1 {m[1] / m[0]:.3f}")


def stage_scaling(a, res):
    """drlb with 2 workers vs 1, and testpmd macswap with 2 forwarding lcores vs 1 on the
    same vdevs and CPUs, each run in turn: testpmd's ratio is what the machine gives two
    cores (the two vCPUs also carry the main lcore, the manager and the harness)."""
    cfg, cases, mbufs = scaling_cases()
    rows = []
    for workers, eal in cases:
        vals, tvals = [], []
        for _ in range(a.runs):
            pps, c, _ = run_drlb(eal, cfg, a.secs, a.warm, ["--mbufs", str(mbufs)])
            vals.append(mean(pps) / 1e6)
            tvals.append(mean(run_testpmd(eal, a.secs, a.warm, mbufs, app=testpmd_cores(workers))) / 1e6)
        m, tm = statistics.median(vals), statistics.median(tvals)
        rows.append({"workers": workers, "mpps": round(m, 3), "runs": [round(x, 3) for x in vals],
                     "testpmd_mpps": round(tm, 3), "testpmd_runs": [round(x, 3) for x in tvals]})
        print(f"  scaling workers={workers}: {m:.2f} Mpps (testpmd {tm:.2f})")
    ratio = lambda k: round(rows[1][k] / rows[0][k], 3) if rows[0][k] else None
    rows[1]["ratio_vs_1"], rows[1]["testpmd_ratio_vs_1"] = ratio("mpps"), ratio("testpmd_mpps")
    res["scaling"] = rows
    write_csv("scaling", rows, ["workers", "mpps", "ratio_vs_1", "testpmd_mpps", "testpmd_ratio_vs_1"])


def stage_micro(a, res):
    args = ["cargo", "bench", "--quiet", "--bench", "pipeline", "--"] + (["--quick"] if a.quick else [])
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True)
    rows, extra = [], {}
    for l in r.stdout.splitlines():
        if l.startswith("# "):
            k, v = l[2:].split()
            extra[k] = float(v)
        elif "," in l and not l.startswith("case"):
            case, flows, cap, ns, mpps = l.split(",")
            rows.append({"case": case, "flows": int(flows), "capacity": int(cap), "ns_per_packet": float(ns)})
    assert any(r["case"] == "hit" for r in rows) and any(r["case"].startswith("fill_") for r in rows), r.stdout
    # Instructions per packet, hit path at 1k flows (callgrind: stable on a noisy VM).
    exe = sorted((os.path.join(ROOT, "target/release/deps", f) for f in os.listdir(os.path.join(ROOT, "target/release/deps"))
                  if f.startswith("pipeline-") and os.access(os.path.join(ROOT, "target/release/deps", f), os.X_OK)
                  and "." not in f), key=os.path.getmtime)[-1]
    instr = {}
    if shutil.which("valgrind"):
        for flows in ([1024] if a.quick else [1024, 65536]):
            with tempfile.TemporaryDirectory() as d:
                out = os.path.join(d, "cg")
                counts = []
                for n in (1, 2):  # two lengths: the difference is per-packet cost only
                    env = dict(os.environ, DRLB_BENCH_PACKETS=str(n * 1_000_000))
                    v = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                        exe, "--flows", str(flows), "--quick"], env=env, capture_output=True, text=True)
                    m = re.search(r"Collected : (\d+)", v.stderr)
                    counts.append(int(m.group(1)) if m else None)
                if all(counts):
                    instr[str(flows)] = round((counts[1] - counts[0]) / 1_000_000, 1)
    res["micro"] = {"rows": rows, "instructions_per_packet_hit": instr, **extra}
    for r_ in rows:
        print(f"  micro {r_['case']} flows={r_['flows']}: {r_['ns_per_packet']} ns/packet")
    print(f"  micro instructions/packet (hit): {instr}; {extra}")
    write_csv("micro", rows, ["case", "flows", "capacity", "ns_per_packet"])


def cpu_secs(pid):
    """User + system CPU seconds of a process so far (all its threads)."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def gen_report(g, timeout):
    """The JSON report of a drlb-pktgen started with --hold (None if it exited without
    one). --hold keeps it connected, not polling, until gen_stop: drlb stops first, since
    a memif peer disconnecting under a polling lcore can crash DPDK 22.11's memif PMD."""
    killer = threading.Timer(timeout, g.kill)
    killer.start()
    try:
        return next((l for l in g.stdout if l.startswith("{")), None)
    finally:
        killer.cancel()


def gen_stop(g):
    """Stops a drlb-pktgen held by --hold; returns its stderr."""
    g.send_signal(signal.SIGTERM)
    _, gerr = g.communicate(timeout=30)
    return gerr


def memif_pair(gen_args, drlb_cfg, secs, warm=1.0):
    """drlb (memif server) + drlb-pktgen (client); returns (generator JSON, drlb counters).
    The counters include `cpu_cores`: the CPU drlb used while the generator ran (1.0 =
    one core busy all the time)."""
    d = tempfile.mkdtemp(prefix="drlb-memif-")
    msock = os.path.join(d, "m.sock")
    dcmd = [f"{B}/drlb", "-l", "0-1", "--no-pci", *mem_args(512), "--file-prefix", f"hld{os.getpid()}",
            f"--vdev=net_memif0,role=server,socket={msock},socket-abstract=no,mac=02:00:00:00:00:01",
            "--", "--config", drlb_cfg, "--control", os.path.join(d, "c.sock"), "--stats-interval", "0"]
    errf = open(os.path.join(d, "drlb.stderr"), "w+")  # a file: see run_drlb
    dp = subprocess.Popen(dcmd, stdout=subprocess.PIPE, stderr=errf, text=True)
    wait_until("drlb's memif socket", 60, lambda: os.path.exists(msock), dp,
               lambda: open(os.path.join(d, "drlb.stderr")).read())
    # The generator shares CPU 0 with drlb's (sleeping) main lcore; the worker has CPU 1.
    gcmd = [f"{B}/drlb-pktgen", "-l", "0", "--no-pci", *mem_args(256), "--file-prefix", f"hlg{os.getpid()}",
            f"--vdev=net_memif0,role=client,socket={msock},socket-abstract=no", "--",
            "--secs", str(secs), "--warmup", str(warm), "--dst-mac", "02:00:00:00:00:01"] + gen_args
    t0, c0 = time.time(), cpu_secs(dp.pid)
    g = subprocess.Popen(gcmd + ["--hold"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = gen_report(g, secs + warm + 60)
    cores = (cpu_secs(dp.pid) - c0) / (time.time() - t0)
    dp.send_signal(signal.SIGINT)
    out, _ = dp.communicate(timeout=30)
    gerr = gen_stop(g)
    errf.seek(0)
    err = errf.read()
    errf.close()
    shutil.rmtree(d, ignore_errors=True)
    if not line:
        raise RuntimeError(f"drlb-pktgen: {gerr[-1500:]}\ndrlb: {err[-1500:]}")
    counters = counters_of(out)
    counters["cpu_cores"] = round(cores, 2)
    return json.loads(line), counters


def stage_latency(a, res):
    cfg = bench_config(os.path.join(OUT, "latency.toml"), 1024, proto="udp")
    secs = 2 if a.quick else a.secs
    gen, c = memif_pair(["--rate", "0", "--flows", "1024"], cfg, secs)
    peak = gen["rx_pps"]
    print(f"  latency: max rate over memif {peak / 1e6:.2f} Mpps (tx {gen['tx_pps'] / 1e6:.2f})")
    rows = [{"load_pct": 100, "offered_pps": gen["tx_pps"], "rx_pps": gen["rx_pps"],
             "loss": loss(gen), **lat(c)}]
    for pct in (10, 50, 90):
        gen, c = memif_pair(["--rate", str(int(peak * pct / 100)), "--flows", "1024"], cfg, secs)
        row = {"load_pct": pct, "offered_pps": gen["tx_pps"], "rx_pps": gen["rx_pps"], "loss": loss(gen), **lat(c)}
        rows.append(row)
        print(f"  latency at {pct} %: p50 {row['p50_us']} us, p99 {row['p99_us']} us, p99.9 {row['p999_us']} us, "
              f"max {row['max_us']} us, loss {row['loss']:.5f}")
    res["latency"] = {"peak_pps": peak, "rows": rows}
    write_csv("latency", rows, ["load_pct", "offered_pps", "rx_pps", "loss", "samples", "p50_us", "p90_us",
                                "p99_us", "p999_us", "max_us"])


def stage_idle(a, res):
    """dataplane.idle = poll vs adaptive over memif: the full rate, then at 10 %, 1 % and
    0.01 % of poll's rate (a quiet director: a packet every few hundred microseconds) the
    round trip seen by the generator (which includes the time a packet waits for a
    sleeping worker) and the CPU drlb uses."""
    secs = 2 if a.quick else a.secs
    cfgs = {m: bench_config(os.path.join(OUT, f"idle-{m}.toml"), 1024, proto="udp", extra=f'idle = "{m}"')
            for m in ("poll", "adaptive")}
    rows, peak, full = [], None, {"poll": [], "adaptive": []}

    def one(mode, pct, rate):
        gen, c = memif_pair(["--rate", str(rate), "--flows", "1024"], cfgs[mode], secs)
        row = {"idle": mode, "load_pct": pct, "offered_pps": gen["tx_pps"], "rx_pps": gen["rx_pps"],
               "loss": max(loss(gen), 0.0), "cpu_cores": c["cpu_cores"], "idle_sleeps": c.get("idle_sleeps", 0),
               **{k: gen.get(k, 0) for k in ("rtt_p50_us", "rtt_p99_us", "rtt_p999_us", "rtt_max_us")}}
        print(f"  idle={mode} at {pct} %: {row['rx_pps'] / 1e6:.3f} Mpps, loss {row['loss']:.5f}, "
              f"rtt p50 {row['rtt_p50_us']} us p99 {row['rtt_p99_us']} us max {row['rtt_max_us']} us, "
              f"drlb CPU {row['cpu_cores']} cores, {row['idle_sleeps']} sleeps", flush=True)
        return row

    # Full rate: RUNS alternating pairs (the shared vCPUs drift), medians.
    for _ in range(a.runs):
        for mode in ("poll", "adaptive"):
            full[mode].append(one(mode, 100, 0))
    for mode in ("poll", "adaptive"):
        med = sorted(full[mode], key=lambda r: r["rx_pps"])[len(full[mode]) // 2]
        rows.append(dict(med, rx_pps_runs=[r["rx_pps"] for r in full[mode]]))
    peak = rows[0]["rx_pps"]
    for pct in (10, 1, 0.01):
        for mode in ("poll", "adaptive"):
            rows.append(one(mode, pct, max(int(peak * pct / 100), 100)))
    ratios = sorted(x["rx_pps"] / y["rx_pps"] for x, y in zip(full["adaptive"], full["poll"]))
    res["idle"] = {"rows": rows, "adaptive_vs_poll_at_full_rate": round(ratios[len(ratios) // 2], 3)}
    print(f"  adaptive vs poll at full rate (median of paired runs): {res['idle']['adaptive_vs_poll_at_full_rate']}x")
    write_csv("idle", rows, ["idle", "load_pct", "offered_pps", "rx_pps", "loss", "cpu_cores", "idle_sleeps",
                             "rtt_p50_us", "rtt_p99_us", "rtt_p999_us", "rtt_max_us"])


def loss(gen):
    sent = gen["tx"] + gen["tx_refused"]
    return (sent - gen["rx"]) / sent if sent else 1.0


def lat(c):
    us = lambda k: round(c.get(f"latency_{k}_ns", 0) / 1000, 2)
    return {"samples": c.get("latency_samples", 0), "p50_us": us("p50"), "p90_us": us("p90"),
            "p99_us": us("p99"), "p999_us": us("p999"), "max_us": us("max")}


def stage_reload(a, res):
    flows = 4096
    p = pcap(flows, 60)
    cfg = bench_config(os.path.join(OUT, "reload.toml"), flows)
    secs = 2 if a.quick else a.secs
    changes = []

    def churn(sock):
        # `secs` seconds quiet, then `secs` seconds of 100 weight changes a second.
        time.sleep(secs)
        end, w, n = time.time() + secs, 1, 0
        while time.time() < end:
            t0 = time.time()
            w = 3 - w
            sh([f"{B}/drlbadm", "--socket", sock, "-e", "-t", f"{VIP}:80", "-r", "192.168.1.119:80", "-w", str(w)])
            n += 1
            time.sleep(max(0, 0.01 - (time.time() - t0)))
        changes.append(n)
        time.sleep(1)

    eal = ["-l", "0-1", "--no-pci", *mem_args(1024), "--file-prefix", f"hr{os.getpid()}",
           f"--vdev=net_pcap0,rx_pcap={p},infinite_rx=1"]
    pps, c, err = run_drlb(eal, cfg, secs, a.warm, ["--mbufs", "32767"], during=churn)
    quiet = pps[a.warm:a.warm + secs]
    busy = pps[a.warm + secs + 1:a.warm + 2 * secs]
    lost = sum(v for k, v in c.items() if k.startswith("drop_")) + c.get("tx_dropped", 0)
    swaps = [float(x) for x in re.findall(r"workers on it after ([\d.]+) µs", err)]
    swaps.sort()
    row = {"changes": changes[0] if changes else 0, "secs": secs,
           "changes_per_sec": round((changes[0] if changes else 0) / secs, 1),
           "mpps_quiet": round(mean(quiet) / 1e6, 3), "mpps_during": round(mean(busy) / 1e6, 3),
           "dip_pct": round(100 * (1 - mean(busy) / mean(quiet)), 2) if quiet and busy else None,
           "lost": lost, "rx": c["rx"],
           "swap_p50_us": swaps[len(swaps) // 2] if swaps else None,
           "swap_p99_us": swaps[min(len(swaps) - 1, int(len(swaps) * 0.99))] if swaps else None}
    print(f"  reload: {row}")
    res["reload"] = row
    write_csv("reload", [row], list(row))


def rss_kib(pid):
    try:
        for l in open(f"/proc/{pid}/status"):
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    except OSError:
        pass
    return 0


def stage_soak(a, res):
    secs = 20 if a.quick else a.soak_secs
    cfg = bench_config(os.path.join(OUT, "soak.toml"), 65536, proto="udp", capacity=1 << 20,
                       extra="[timeouts]\nudp = 1")
    d = tempfile.mkdtemp(prefix="drlb-soak-")
    msock, csock = os.path.join(d, "m.sock"), os.path.join(d, "c.sock")
    errf = open(os.path.join(OUT, "soak.stderr"), "w+")  # a file: see run_drlb
    dp = subprocess.Popen([f"{B}/drlb", "-l", "0-1", "--no-pci", *mem_args(512), "--file-prefix", f"hk{os.getpid()}",
                           f"--vdev=net_memif0,role=server,socket={msock},socket-abstract=no,mac=02:00:00:00:00:01",
                           "--", "--config", cfg, "--control", csock, "--stats-interval", "1"],
                          stdout=subprocess.PIPE, stderr=errf, text=True)
    wait_until("drlb's memif and control sockets", 60, lambda: os.path.exists(msock) and os.path.exists(csock),
               dp, lambda: open(os.path.join(OUT, "soak.stderr")).read())
    g = subprocess.Popen([f"{B}/drlb-pktgen", "-l", "0", "--no-pci", *mem_args(256), "--file-prefix", f"hkg{os.getpid()}",
                          f"--vdev=net_memif0,role=client,socket={msock},socket-abstract=no", "--",
                          "--secs", str(secs), "--warmup", "1", "--dst-mac", "02:00:00:00:00:01",
                          "--rate", str(a.soak_rate), "--yield-cpu", "--flows", "65536", "--new-share", "0.5",
                          "--hold"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    adm = lambda *args: sh([f"{B}/drlbadm", "--socket", csock, *args])
    rss, changes, failed, w = [], 0, 0, 1
    t_end = time.time() + secs + 1
    next_rss = time.time()
    while time.time() < t_end and g.poll() is None:
        t0 = time.time()
        if changes % 10 == 9:  # every second: remove a real server, re-add it next time
            if changes % 20 == 9:
                r = adm("-d", "-u", f"{VIP}:80", "-r", "192.168.1.118:80")
            else:
                r = adm("-a", "-u", f"{VIP}:80", "-r", "192.168.1.118:80", "-w", "3", "--mac", "00:0c:29:56:5c:c5")
        else:
            w = 3 - w
            r = adm("-e", "-u", f"{VIP}:80", "-r", "192.168.1.119:80", "-w", str(w))
        changes += 1
        failed += r.returncode != 0
        if t0 >= next_rss:
            rss.append((round(t0 - (t_end - secs - 1)), rss_kib(dp.pid)))
            next_rss += 10
        time.sleep(max(0, 0.1 - (time.time() - t0)))
    gline = gen_report(g, 60)
    dp.send_signal(signal.SIGINT)
    out, _ = dp.communicate(timeout=60)
    gerr = gen_stop(g)
    errf.seek(0)
    err = errf.read()
    errf.close()
    shutil.rmtree(d, ignore_errors=True)
    c = counters_of(out)
    if not gline:
        raise RuntimeError(f"drlb-pktgen: {gerr[-1500:]}\ndrlb: {err[-1500:]}")
    gen = json.loads(gline)
    accounted = c["forwarded"] + c["arp_replies"] + c["icmp_replies"] + c["arp_learned"] + c["to_kernel"] + c["dropped"]
    pps = [int(m) for m in re.findall(r"rx_pps=(\d+)", err)]
    stalled = sum(1 for v in pps[2:-2] if v == 0)
    steady = [k for t, k in rss if t >= 60] or [k for _, k in rss]
    row = {"secs": secs, "exit_code": dp.returncode, "changes": changes, "failed_changes": failed,
           "rx": c["rx"], "accounted": accounted, "balanced": c["rx"] == accounted,
           "mbufs_in_use_at_exit": c["mbufs_in_use"], "generator_tx": gen["tx"], "generator_rx": gen["rx"],
           "mean_mpps": round(mean(pps[2:-2]) / 1e6, 3) if len(pps) > 4 else None,
           "seconds_without_rx": stalled, "flow_expired": c.get("flow_expired"),
           "flow_evictions": c.get("flow_evictions"), "new_flows": c.get("new_flows"),
           "drops": {k: v for k, v in c.items() if k.startswith("drop_") and v},
           "rss_kib": rss, "rss_steady_min_kib": min(steady) if steady else None,
           "rss_steady_max_kib": max(steady) if steady else None,
           "panicked": "panicked" in err}
    print(f"  soak: {json.dumps({k: v for k, v in row.items() if k != 'rss_kib'})}")
    print(f"  soak rss (s, KiB): {rss}")
    res["soak"] = row
    write_csv("soak", [row], [k for k in row if k not in ("rss_kib", "drops")])
    ok = row["balanced"] and row["mbufs_in_use_at_exit"] == 0 and row["exit_code"] == 0 and not row["panicked"] \
        and stalled == 0 and failed == 0
    if not ok:
        raise SystemExit(f"soak FAILED: {row}")


def read_pcap(path):
    data = open(path, "rb").read()
    off, frames = 24, []
    while off + 16 <= len(data):
        incl = int.from_bytes(data[off + 8:off + 12], "little")
        frames.append(data[off:off + 16 + incl])
        off += 16 + incl
    return data[:24], frames


def udp_frame(dst_mac, src_ip, dst_ip, sport, dport):
    """A 60-byte UDP frame (pcap record: header + bytes), IPv4 checksum filled."""
    ip = bytearray(20)
    ip[0], ip[2:4], ip[8], ip[9] = 0x45, (28 + 18).to_bytes(2, "big"), 64, 17
    ip[12:16], ip[16:20] = bytes(src_ip), bytes(dst_ip)
    c = sum(int.from_bytes(ip[i:i + 2], "big") for i in range(0, 20, 2))
    while c > 0xffff:
        c = (c & 0xffff) + (c >> 16)
    ip[10:12] = (~c & 0xffff).to_bytes(2, "big")
    udp = sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + (26).to_bytes(2, "big") + b"\0\0" + b"x" * 18
    frame = bytes(dst_mac) + bytes([2, 0xc1, 0, 0, 0, 1]) + b"\x08\x00" + bytes(ip) + udp
    return (0).to_bytes(8, "little") + len(frame).to_bytes(4, "little") * 2 + frame


def stage_kernel(a, res):
    """Forwarding with and without a flood at the director IP (the kernel interface's
    rate limit at work): equal-sized pcaps, the flood one with half its frames UDP to the
    director IP; drlb with kernel_interface in a namespace of the harness's own."""
    ns = f"drlb-hk-{os.getpid()}"
    sh(["ip", "netns", "add", ns])
    try:
        flows, n = 1024, 8192
        base = pcap(flows, 60, "")
        hdr, fr = read_pcap(base)
        half = os.path.join(OUT, f"kernel-half-{flows}.pcap")
        subprocess.run([f"{B}/drlb-gen", "--flows", str(flows), "--packets-per-flow", str(n // flows // 2),
                        "--interleave", "--out", half], check=True, capture_output=True)
        _, lb = read_pcap(half)
        mix = os.path.join(OUT, f"kernel-flood-{flows}.pcap")
        port_mac = [2, 0x70, 0x63, 0x61, 0x70, 0]
        with open(mix, "wb") as w:
            w.write(hdr)
            for i, f in enumerate(lb):
                w.write(f)
                w.write(udp_frame(port_mac, [10, 9, i >> 8 & 255, i & 255], [192, 168, 1, 121], 1024 + i, 53))
        base8 = os.path.join(OUT, f"kernel-base-{flows}.pcap")
        subprocess.run([f"{B}/drlb-gen", "--flows", str(flows), "--packets-per-flow", str(len(lb) * 2 // flows),
                        "--interleave", "--out", base8], check=True, capture_output=True)
        cfg = bench_config(os.path.join(OUT, "kernel.toml"), flows, extra='kernel_interface = "drlbh0"')
        vals, last = {"no flood": [], "flood at the director IP": []}, {}
        for _ in range(a.runs):
            for name, p in (("no flood", base8), ("flood at the director IP", mix)):
                eal = ["-l", "0-1", "--no-pci", *mem_args(1536), "--file-prefix", f"hk{os.getpid()}",
                       f"--vdev=net_pcap0,rx_pcap={p},infinite_rx=1"]
                pps, c, _ = run_drlb(eal, cfg, a.secs, a.warm, ["--mbufs", str(4 * len(lb) + 16384)], netns=ns)
                vals[name].append(mean(pps) / 1e6)
                last[name] = c
        b0 = vals["no flood"]
        rows = []
        for name, v in vals.items():
            c = last[name]
            ratios = [x / b for x, b in zip(v, b0) if b]
            rows.append({"traffic": name, "mpps": round(statistics.median(v), 3), "mpps_runs": [round(x, 3) for x in v],
                         "rate_vs_no_flood": round(statistics.median(ratios), 3) if ratios else None,
                         "to_kernel": c.get("to_kernel"), "rate_limited": c.get("drop_kernel_rate_limited"),
                         "queue_full": c.get("drop_kernel_queue_full"), "kernel_tx": c.get("kernel_tx"),
                         "forwarded": c.get("forwarded"), "rx": c.get("rx")})
            print(f"  kernel: {rows[-1]}")
        res["kernel"] = rows
        write_csv("kernel", rows, ["traffic", "mpps", "rate_vs_no_flood", "to_kernel", "rate_limited", "queue_full",
                                   "kernel_tx", "forwarded", "rx"])
    finally:
        sh(["ip", "netns", "del", ns])


def stage_flood(a, res):
    """Established flows alone, then the same flows among 10 x capacity spoofed SYNs."""
    cap = 4096 if a.quick else 16384
    est = cap // 2
    e = os.path.join(OUT, f"flood-est-{est}.pcap")
    f = os.path.join(OUT, f"flood-syn-{cap}.pcap")
    mix = os.path.join(OUT, f"flood-mix-{cap}.pcap")
    gen = lambda out, *args: subprocess.run([f"{B}/drlb-gen", "--out", out, *args], check=True, capture_output=True)
    gen(e, "--flows", str(est), "--packets-per-flow", "4", "--interleave")
    gen(f, "--flows", str(10 * cap), "--packets-per-flow", "1", "--first-flow", str(est + 1))
    hdr, ef = read_pcap(e)
    _, ff = read_pcap(f)
    # SYN and first ACK of every established flow first, then its data packets spread
    # evenly through the flood.
    head, tail = ef[:2 * est], ef[2 * est:]
    out, step = list(head), max(1, len(ff) // max(1, len(tail)))
    for i, syn in enumerate(ff):
        out.append(syn)
        if i % step == 0 and tail:
            out.append(tail.pop())
    out.extend(tail)
    with open(mix, "wb") as w:
        w.write(hdr + b"".join(out))
    # The no-flood baseline has as many packets as the mix (the established flows only,
    # more packets each): net_pcap's replay slows with the file's size (testpmd too), so
    # equal sizes leave drlb's own work as the only difference.
    base = os.path.join(OUT, f"flood-base-{cap}.pcap")
    gen(base, "--flows", str(est), "--packets-per-flow", str(len(out) // est), "--interleave")
    # Three cases, each run in turn within one round (so slow drift on a shared VM hits
    # all of them alike): no flood, the flood with the default syn_flood = "stateless",
    # and the flood with "evict". testpmd replays both pcaps in the same round.
    cases = [("established only", base, "stateless"), ("flood (syn_flood=stateless)", mix, "stateless"),
             ("flood (syn_flood=evict)", mix, "evict")]
    vals = {c[0]: [] for c in cases}
    tvals = {base: [], mix: []}
    last = {}
    mbufs = len(out) + 16384
    for _ in range(a.runs):
        for name, p, mode in cases:
            cfg = bench_config(os.path.join(OUT, "flood.toml"), est, capacity=cap, extra=f'syn_flood = "{mode}"')
            eal = ["-l", "0-1", "--no-pci", *mem_args(1536), "--file-prefix", f"hf{os.getpid()}",
                   f"--vdev=net_pcap0,rx_pcap={p},infinite_rx=1"]
            pps, c, err = run_drlb(eal, cfg, a.secs, a.warm, ["--mbufs", str(mbufs)])
            vals[name].append(mean(pps) / 1e6)
            last[name] = c
        for p in (base, mix):
            eal = ["-l", "0-1", "--no-pci", *mem_args(1536), "--file-prefix", f"hf{os.getpid()}",
                   f"--vdev=net_pcap0,rx_pcap={p},infinite_rx=1"]
            tvals[p].append(mean(run_testpmd(eal, a.secs, a.warm, mbufs)) / 1e6)
    rows = []
    b0 = vals[cases[0][0]]
    for name, p, mode in cases:
        c = last[name]
        ratios = [v / b for v, b in zip(vals[name], b0) if b]
        rows.append({"traffic": name, "syn_flood": mode, "capacity": cap, "established": est,
                     "spoofed_syns": 0 if p == base else 10 * cap, "packets_in_pcap": len(out),
                     "mpps": round(statistics.median(vals[name]), 3),
                     "mpps_runs": [round(v, 3) for v in vals[name]],
                     "testpmd_mpps": round(statistics.median(tvals[p]), 3),
                     "rate_vs_no_flood": round(statistics.median(ratios), 3) if ratios else None,
                     "evictions": c.get("flow_evictions"), "syn_stateless": c.get("syn_stateless"),
                     "hashed_segments": c.get("hashed_segments"),
                     "dropped": c.get("dropped"), "tcp_no_flow": c.get("drop_tcp_no_flow")})
        print(f"  flood: {rows[-1]}")
    t0, t1 = rows[0]["testpmd_mpps"], rows[1]["testpmd_mpps"]
    for r in rows[1:]:
        # testpmd replays both pcaps: its own ratio shows how much of a change is the
        # PMD rather than drlb (equal-sized pcaps: it should be ~1).
        r["testpmd_ratio"] = round(t1 / t0, 3) if t0 else None
    res["flood"] = rows
    write_csv("flood", rows, ["traffic", "syn_flood", "capacity", "established", "spoofed_syns", "packets_in_pcap",
                              "mpps", "testpmd_mpps", "rate_vs_no_flood", "testpmd_ratio", "evictions",
                              "syn_stateless", "hashed_segments", "dropped", "tcp_no_flow"])


def write_csv(name, rows, cols):
    with open(os.path.join(OUT, f"{name}.csv"), "w") as f:
        f.write(",".join(cols) + "\n")
        for r in rows:
            f.write(",".join(str(r.get(c, "")) for c in cols) + "\n")


def svg_bars(path, title, groups, series, unit):
    """Grouped bar chart: groups = [(label, [value per series])], series = names."""
    w, h, left, bottom = 720, 360, 60, 60
    vmax = max((v for _, vs in groups for v in vs if v == v), default=1) or 1
    bw = (w - left - 20) / max(1, len(groups)) / (len(series) + 1)
    colors = ["#3b6fb6", "#e0883a", "#5aa05a", "#b04a4a"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
           f'<text x="{w / 2}" y="18" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - 10}" y2="{h - bottom}" stroke="black"/>']
    for i in range(5):
        y = h - bottom - (h - bottom - 40) * i / 4
        out.append(f'<text x="{left - 5}" y="{y + 4}" text-anchor="end">{vmax * i / 4:.3g}</text>'
                   f'<line x1="{left}" y1="{y}" x2="{w - 10}" y2="{y}" stroke="#ddd"/>')
    out.append(f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">{unit}</text>')
    for gi, (label, vals) in enumerate(groups):
        x0 = left + 10 + gi * bw * (len(series) + 1)
        for si, v in enumerate(vals):
            if v != v:
                continue
            bh = (h - bottom - 40) * v / vmax
            out.append(f'<rect x="{x0 + si * bw:.1f}" y="{h - bottom - bh:.1f}" width="{bw * 0.9:.1f}" height="{bh:.1f}" '
                       f'fill="{colors[si % 4]}"><title>{series[si]}: {v:.3g}</title></rect>')
        out.append(f'<text x="{x0 + bw * len(series) / 2:.1f}" y="{h - bottom + 15}" text-anchor="middle">{label}</text>')
    for si, s in enumerate(series):
        out.append(f'<rect x="{left + 10 + si * 150}" y="{h - 25}" width="10" height="10" fill="{colors[si % 4]}"/>'
                   f'<text x="{left + 25 + si * 150}" y="{h - 16}">{s}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


def plots(res):
    if "e2e" in res:
        svg_bars(os.path.join(OUT, "e2e.svg"), "drlb vs testpmd macswap, 1 lcore (net_pcap)",
                 [(f"{r['flows']}f/{r['size'] + 4}B {E2E_LABEL.get(r.get('traffic'), '')}".rstrip(),
                   [r["drlb_mpps"], r["testpmd_mpps"]]) for r in res["e2e"]],
                 ["drlb", "testpmd macswap"], "Mpps")
    if "latency" in res:
        svg_bars(os.path.join(OUT, "latency.svg"), "time inside drlb (RX to TX), by load",
                 [(f"{r['load_pct']} %", [r["p50_us"], r["p99_us"], r["p999_us"]]) for r in res["latency"]["rows"]],
                 ["p50", "p99", "p99.9"], "µs")
    if "micro" in res:
        fill = [r for r in res["micro"]["rows"] if r["case"].startswith("fill_")]
        svg_bars(os.path.join(OUT, "fill.svg"), "new flows into a 1M table: ns/packet as it fills (then evicts)",
                 [(r["case"].split("_")[1], [r["ns_per_packet"]]) for r in fill], ["ns/packet"], "ns")
    if "scaling" in res:
        svg_bars(os.path.join(OUT, "scaling.svg"), "workers: 1 vs 2 (64k flows)",
                 [(f"{r['workers']} worker(s)", [r["mpps"], r["testpmd_mpps"]]) for r in res["scaling"]],
                 ["drlb", "testpmd"], "Mpps")


def report(path):
    """--report PATH: a results.json's throughput figures as the targets read them, from
    its per-run values (so a publication made before `same_run_ratio` was recorded
    reads the same way): each e2e case's ratio of medians, the median of its same-run
    ratios and every run's ratio; the scaling stage's two-worker / one-worker medians,
    drlb's and testpmd's."""
    try:
        res = json.load(open(path))
    except (OSError, ValueError) as e:
        sys.exit(f"harness: cannot read {path}: {e}")
    for name, run in sorted(res.get("runs", {}).items()):
        f = run.get("facts", {})
        print(f"{name}: git {f.get('git')}{' (dirty)' if f.get('git_dirty') else ''}, {f.get('date')}, "
              f"runs {run.get('params', {}).get('runs')}, memory {','.join(run.get('memory', []))}")
    for r in res.get("e2e", []):
        d, t = r["drlb_runs"], r["testpmd_runs"]
        runs = " / ".join(f"{x:.3f}" for x in run_ratios(d, t))
        print(f"e2e flows={r['flows']} size={r['size']} {r['traffic']}: drlb {r['drlb_mpps']:.2f} Mpps, "
              f"testpmd {r['testpmd_mpps']:.2f}: ratio of medians {r['ratio']}, "
              f"median of same-run ratios {same_run_ratio(d, t)} (runs {runs})")
    sc = res.get("scaling", [])
    if len(sc) == 2:
        print(f"scaling 2 workers vs 1: drlb {sc[1]['mpps']:.2f} / {sc[0]['mpps']:.2f} = {sc[1]['ratio_vs_1']}; "
              f"testpmd {sc[1]['testpmd_mpps']:.2f} / {sc[0]['testpmd_mpps']:.2f} = {sc[1]['testpmd_ratio_vs_1']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="seconds per stage; checks the harness, not speed")
    ap.add_argument("--only", default=ALL, help=f"comma-separated stages (default {ALL}; also: soak, flood, kernel, idle)")
    ap.add_argument("--publish", action="store_true", help="copy results.json, *.csv, *.svg to perf/results/")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--secs", type=int, default=8)
    ap.add_argument("--warm", type=int, default=3)
    ap.add_argument("--e2e-flows", default="1,1024,65536", help="e2e: flow counts (comma-separated)")
    ap.add_argument("--e2e-sizes", default="60,512,1514", help="e2e: frame sizes (comma-separated)")
    ap.add_argument("--e2e-ppf", type=int, default=2,
                    help="e2e: packets per flow, a SYN then ACKs (2: every packet changes TCP state; "
                         "16: 14 of 16 are established ACKs, the fast path)")
    ap.add_argument("--soak-secs", type=int, default=600)
    ap.add_argument("--soak-rate", type=int, default=2_000_000,
                    help="soak packets/s; the generator sleeps between bursts so drlb's manager and "
                         "drlbadm get CPU time on a 2-CPU host (a spinning generator starves them)")
    ap.add_argument("--ab", metavar="OLD,NEW",
                    help="paired A/B of two drlb binaries on one e2e case, or on the scaling stage (see --ab-traffic); no stages run")
    ap.add_argument("--ab-traffic", choices=["established", "syn+ack", "mixed", "scaling"], default="established",
                    help="the e2e case's traffic, or `scaling`: the scaling stage's two cases")
    ap.add_argument("--report", metavar="RESULTS_JSON",
                    help="print a results.json's throughput figures as the targets read them; no stages run")
    a = ap.parse_args()
    if a.report:
        return report(a.report)
    if a.ab and (len(a.ab.split(",")) != 2 or not all(os.access(b, os.X_OK) for b in a.ab.split(","))):
        ap.error(f"--ab wants two executable drlb binaries, OLD,NEW; got {a.ab!r}")
    global ALLOW_NO_HUGE
    ALLOW_NO_HUGE = a.quick
    if a.quick:
        a.runs, a.secs, a.warm = 1, 2, 1
    print(f"memory: {hugepages_free()} free 2 MiB hugepages; DPDK processes run on hugepages"
          + (" (or --no-huge, said per stage, in quick mode)" if a.quick else ""), flush=True)
    os.makedirs(OUT, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    if a.ab:
        return paired_ab(a)
    # Stages run separately (--only) update the results of earlier runs; each stage
    # records the facts and parameters of the run that produced it.
    path = os.path.join(OUT, "results.json")
    res = json.load(open(path)) if a.only != ALL and os.path.exists(path) else {}
    run = {"facts": facts(), "params": {"quick": a.quick, "runs": a.runs, "secs": a.secs, "warm": a.warm}}
    res.setdefault("runs", {})
    stages = {"e2e": stage_e2e, "scaling": stage_scaling, "micro": stage_micro, "latency": stage_latency,
              "reload": stage_reload, "soak": stage_soak, "flood": stage_flood, "kernel": stage_kernel,
              "idle": stage_idle}
    for name in a.only.split(","):
        print(f"== {name}", flush=True)
        MEM_MODES.clear()
        stages[name](a, res)
        res["runs"][name] = dict(run, loadavg_end=open("/proc/loadavg").read().split()[:3],
                                 memory=sorted(MEM_MODES))
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    plots(res)
    print(f"results: {OUT}/results.json, *.csv, *.svg")
    if a.publish:
        dest = os.path.join(ROOT, "perf", "results")
        os.makedirs(dest, exist_ok=True)
        for f in os.listdir(OUT):
            if f == "results.json" or f.endswith((".csv", ".svg")):
                shutil.copy(os.path.join(OUT, f), dest)
        print(f"published to {dest}")


if __name__ == "__main__":
    main()
