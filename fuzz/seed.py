#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, from the same frames the golden and vdev tests use.

    python3 fuzz/seed.py            # writes fuzz/corpus/{wire,pipeline,config,request}/

wire:     one file per frame: TCP flows (SYN, data), UDP, every malformed shape from
          `drlb-gen --junk`, an ARP request for the VIP, an ICMP echo to the VIP, VLAN.
pipeline: the same frames as [len_lo, len_hi, tick_step, bytes] records, in a few mixes.
config:   configs/*.toml.
request:  one JSON line per control-socket command.
"""
import os, struct, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")
GEN = os.path.join(ROOT, "target", "release", "drlb-gen")
PORT = bytes.fromhex("027063617000")
CLIENT = bytes.fromhex("02c100000001")


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip4(a):
    return bytes(int(x) for x in a.split("."))


def arp_request(target):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + CLIENT + ip4("10.0.0.1") + b"\0" * 6 + ip4(target)
    return (b"\xff" * 6 + CLIENT + b"\x08\x06" + body).ljust(60, b"\0")


def icmp_echo(dst):
    icmp = struct.pack("!BBHHH", 8, 0, 0, 7, 1) + b"drlb-fuzz"
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0, ip4("10.0.0.1"), ip4(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return (PORT + CLIENT + b"\x08\x00" + hdr + icmp).ljust(60, b"\0")


def icmp_error(frame, msg_type=3, code=4):
    """An ICMP error to the VIP quoting the reply to `frame`'s flow (VIP:port -> client)."""
    ip = frame[14:34]
    l4 = frame[34:42]
    quoted = ip[:12] + ip[16:20] + ip[12:16] + l4[2:4] + l4[0:2] + l4[4:8]
    icmp = struct.pack("!BBHI", msg_type, code, 0, 1280) + quoted
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0, ip4("10.0.0.1"), ip[16:20])
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return (PORT + CLIENT + b"\x08\x00" + hdr + icmp).ljust(60, b"\0")


def read_pcap(path):
    data = open(path, "rb").read()
    off, frames = 24, []
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack("<IIII", data[off:off + 16])
        frames.append(data[off + 16:off + 16 + incl])
        off += 16 + incl
    return frames


def gen(args):
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "x.pcap")
        subprocess.run([GEN, "--out", p] + args, check=True, stdout=subprocess.DEVNULL)
        return read_pcap(p)


def write(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def main():
    if not os.path.exists(GEN):
        sys.exit("build drlb-gen first: cargo build --release")
    tcp = gen(["--flows", "4", "--packets-per-flow", "3"])
    junk = gen(["--flows", "1", "--junk"])
    udp = gen(["--flows", "2", "--port", "53"])
    big = gen(["--flows", "1", "--size", "1514"])
    extra = [arp_request("192.168.1.200"), arp_request("192.168.1.121"), icmp_echo("192.168.1.200"),
             icmp_error(tcp[0]), icmp_error(tcp[1], 11, 0), icmp_error(udp[0], 3, 3)]
    vlan = [f[:12] + b"\x81\x00\x00\x05" + f[12:] for f in tcp[:2]]
    frames = tcp + junk + udp + big + extra + vlan
    for i, f in enumerate(frames):
        write("wire", "frame%03d" % i, f)
    # an echo request whose other words are zero (its reply's checksum is 0xffff, not 0)
    write("wire", "echo_all_zero", bytes([8, 0, 0xF7, 0xFF, 0, 0, 0, 0]))

    def records(fs, step=0):
        return b"".join(struct.pack("<HB", len(f), step) + f for f in fs)

    write("pipeline", "flows", records(tcp))
    write("pipeline", "flows_expiring", records(tcp, 40))
    write("pipeline", "junk", records(junk))
    write("pipeline", "mixed", records(tcp + extra + vlan + udp + junk))
    write("pipeline", "mixed_hinted", records(tcp + extra + vlan + udp + junk) + b"\0")

    for name in sorted(os.listdir(os.path.join(ROOT, "configs"))):
        if name.endswith(".toml"):
            write("config", name, open(os.path.join(ROOT, "configs", name), "rb").read())

    svc = '"svc":{"vip":"192.168.1.200","port":80,"proto":"tcp"}'
    reqs = [
        '{"cmd":"list"}', '{"cmd":"conns"}', '{"cmd":"save"}', '{"cmd":"clear"}', '{"cmd":"reload"}',
        '{"cmd":"save_config"}', '{"cmd":"watch"}', '{"cmd":"zero","svc":null}',
        '{"cmd":"set_timeouts","tcp":600,"tcp_fin":0,"udp":60}',
        '{"cmd":"batch","changes":[{"cmd":"clear"},{"cmd":"add_service","svc":{"vip":"10.0.0.9","port":53,"proto":"udp"},"settings":{"sched":"rr"}}]}',
        '{"cmd":"add_service",%s,"settings":{"sched":"wlc","persistent":300,"netmask":"255.255.255.0"}}' % svc,
        '{"cmd":"add_service","svc":{"vip":"10.0.0.9","port":53,"proto":"udp"},"settings":{"sched":"sh","flags":"sh-port"}}',
        '{"cmd":"edit_service",%s,"settings":{"sched":"wrr"}}' % svc,
        '{"cmd":"del_service",%s}' % svc,
        '{"cmd":"add_backend",%s,"rip":"192.168.1.120","port":80,"weight":2,"mac":"00:0c:29:00:00:0c"}' % svc,
        '{"cmd":"edit_backend",%s,"rip":"192.168.1.118","weight":0}' % svc,
        '{"cmd":"del_backend",%s,"rip":"192.168.1.119"}' % svc,
    ]
    for i, r in enumerate(reqs):
        write("request", "req%02d" % i, (r + "\n").encode())
    print("seeded", OUT)


main()
