#!/usr/bin/env python3
"""Percentiles of Pktgen latency-sampler files (one latency in ns per line).

    python3 perf/pktgen/percentiles.py drlb-lat-1k-10.txt drlb-lat-1k-50.txt ...
"""
import sys


def pct(xs, q):
    return xs[min(len(xs) - 1, int(q * len(xs)))]


print("file,samples,p50_us,p90_us,p99_us,p99.9_us,max_us")
for path in sys.argv[1:]:
    xs = sorted(float(l.split()[-1]) for l in open(path) if l.strip() and l.split()[-1].replace(".", "", 1).isdigit())
    if not xs:
        print(f"{path},0,,,,,")
        continue
    us = [pct(xs, q) / 1000 for q in (0.5, 0.9, 0.99, 0.999)] + [xs[-1] / 1000]
    print(path + "," + str(len(xs)) + "," + ",".join(f"{v:.2f}" for v in us))
