//! Builds well-formed frames: for tests, the pcap generator (`drlb-gen`) and benchmarks.
//! Not used on the forwarding path (it allocates). Headers the wire views can emit are
//! emitted by them.
use crate::wire::{arp, checksum, ethernet, ethernet::EtherType, ipv4::protocol, tcp::flags, Mac};

/// Minimum Ethernet frame without FCS; shorter frames are zero-padded.
pub const MIN_FRAME: usize = 60;

fn eth(dst: Mac, src: Mac, et: EtherType) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN];
    ethernet::emit(&mut f, dst.0, src.0, et);
    f
}

fn pad(mut f: Vec<u8>, len: usize) -> Vec<u8> {
    if f.len() < len {
        f.resize(len, 0);
    }
    f
}

fn ipv4_header(src: u32, dst: u32, proto: u8, l4_len: usize) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    h[6] = 0x40; // DF
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.to_be_bytes());
    h[16..20].copy_from_slice(&dst.to_be_bytes());
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

fn l4_checksum(src: u32, dst: u32, proto: u8, seg: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(12 + seg.len());
    pseudo.extend_from_slice(&src.to_be_bytes());
    pseudo.extend_from_slice(&dst.to_be_bytes());
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(seg);
    checksum::checksum(&pseudo)
}

/// Description of an IPv4 TCP/UDP frame.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    pub dst_mac: Mac,
    pub src_mac: Mac,
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
}

/// A TCP or UDP segment of `header` bytes of header then `payload` bytes (0, 1, 2, ...)
/// for flow `f`, its ports set; `fill` writes the rest of the header; the checksum is
/// computed at `csum_at`; the frame is padded to `min_len`.
fn l4_frame(
    f: &Flow,
    proto: u8,
    (header, payload): (usize, usize),
    csum_at: usize,
    min_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let mut seg = vec![0u8; header + payload];
    seg[0..2].copy_from_slice(&f.sport.to_be_bytes());
    seg[2..4].copy_from_slice(&f.dport.to_be_bytes());
    fill(&mut seg);
    for (i, b) in seg[header..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let c = l4_checksum(f.saddr, f.daddr, proto, &seg);
    seg[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    let mut fr = eth(f.dst_mac, f.src_mac, EtherType::IPV4);
    fr.extend_from_slice(&ipv4_header(f.saddr, f.daddr, proto, seg.len()));
    fr.extend_from_slice(&seg);
    pad(fr, min_len)
}

/// A TCP segment with `tcp_flags` and `payload` bytes of payload, padded to `min_len`.
pub fn tcp(f: &Flow, tcp_flags: u8, payload: usize, min_len: usize) -> Vec<u8> {
    l4_frame(f, protocol::TCP, (20, payload), 16, min_len, |seg| {
        seg[4..8].copy_from_slice(&1000u32.to_be_bytes());
        if tcp_flags & flags::ACK != 0 {
            seg[8..12].copy_from_slice(&1u32.to_be_bytes());
        }
        seg[12] = 0x50;
        seg[13] = tcp_flags;
        seg[14..16].copy_from_slice(&65535u16.to_be_bytes());
    })
}

/// A UDP datagram with `payload` bytes, padded to `min_len`.
pub fn udp(f: &Flow, payload: usize, min_len: usize) -> Vec<u8> {
    l4_frame(f, protocol::UDP, (8, payload), 6, min_len, |seg| {
        seg[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    })
}

/// An ICMP echo request (id 0x1234, seq `seq`, 8 bytes of data).
pub fn icmp_echo(dst_mac: Mac, src_mac: Mac, saddr: u32, daddr: u32, seq: u16) -> Vec<u8> {
    icmp_echo_msg(8, dst_mac, src_mac, saddr, daddr, seq)
}

/// An ICMP echo message of `msg_type` (8 request, 0 reply), otherwise as [`icmp_echo`].
pub fn icmp_echo_msg(
    msg_type: u8,
    dst_mac: Mac,
    src_mac: Mac,
    saddr: u32,
    daddr: u32,
    seq: u16,
) -> Vec<u8> {
    let mut m = vec![msg_type, 0, 0, 0, 0x12, 0x34];
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(b"drlbping");
    icmp_frame((dst_mac, src_mac), (saddr, daddr), m)
}

/// An ICMP echo request whose IP packet is `ip_len` bytes long (at least 28).
pub fn icmp_echo_len(
    dst_mac: Mac,
    src_mac: Mac,
    (saddr, daddr): (u32, u32),
    seq: u16,
    ip_len: usize,
) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0, 0x12, 0x34];
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend((0..ip_len.saturating_sub(28)).map(|i| i as u8));
    icmp_frame((dst_mac, src_mac), (saddr, daddr), m)
}

/// An ICMP message `m` (its checksum field zero) with its checksum, in an IPv4 frame.
fn icmp_frame(
    (dst_mac, src_mac): (Mac, Mac),
    (saddr, daddr): (u32, u32),
    mut m: Vec<u8>,
) -> Vec<u8> {
    let c = checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    let mut fr = eth(dst_mac, src_mac, EtherType::IPV4);
    fr.extend_from_slice(&ipv4_header(saddr, daddr, protocol::ICMP, m.len()));
    fr.extend_from_slice(&m);
    pad(fr, MIN_FRAME)
}

/// An ICMP error (`msg_type`/`code`: 3 destination unreachable, 11 time exceeded, 12
/// parameter problem) from `saddr` to `daddr` quoting `quoted` (an IP datagram, or as
/// much of one as the sender quotes), with the second word `rest` (the next-hop MTU for
/// "fragmentation needed").
pub fn icmp_error(
    (dst_mac, src_mac): (Mac, Mac),
    (saddr, daddr): (u32, u32),
    (msg_type, code, rest): (u8, u8, u32),
    quoted: &[u8],
) -> Vec<u8> {
    let mut m = vec![msg_type, code, 0, 0];
    m.extend_from_slice(&rest.to_be_bytes());
    m.extend_from_slice(quoted);
    icmp_frame((dst_mac, src_mac), (saddr, daddr), m)
}

/// An ARP request or reply frame. `dst` is the Ethernet destination.
pub fn arp_frame(dst: Mac, oper: u16, sha: Mac, spa: u32, tha: Mac, tpa: u32) -> Vec<u8> {
    let mut fr = eth(dst, sha, EtherType::ARP);
    let mut a = [0u8; arp::PACKET_LEN];
    arp::ArpRepr { oper, sha: sha.0, spa, tha: tha.0, tpa }.emit(&mut a);
    fr.extend_from_slice(&a);
    pad(fr, MIN_FRAME)
}

/// An IPv4 datagram (a whole frame from [`tcp`] or [`udp`], unpadded) split into
/// fragments of at most `chunk` bytes of IP payload each (rounded down to a multiple of
/// 8), all with IP id `id`, as a router would (RFC 791): each a frame with its own
/// header (MF set but on the last, offsets in 8-byte units, checksum recomputed).
pub fn fragments(frame: &[u8], id: u16, chunk: usize) -> Vec<Vec<u8>> {
    let ip = &frame[ethernet::HEADER_LEN..];
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let payload = &ip[20..total];
    let chunk = (chunk / 8).max(1) * 8;
    let mut out = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        let part = &payload[at..(at + chunk).min(payload.len())];
        let mut h = [0u8; 20];
        h.copy_from_slice(&ip[..20]);
        h[2..4].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        let more = at + part.len() < payload.len();
        let fo = (u16::from(more) << 13) | (at / 8) as u16;
        h[6..8].copy_from_slice(&fo.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        let mut fr = frame[..ethernet::HEADER_LEN].to_vec();
        fr.extend_from_slice(&h);
        fr.extend_from_slice(part);
        out.push(pad(fr, MIN_FRAME));
        at += part.len();
    }
    out
}

/// Inserts an 802.1Q tag with `tci` after the MAC addresses.
pub fn with_vlan(frame: &[u8], tci: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&EtherType::VLAN.0.to_be_bytes());
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// Parses "a.b.c.d" to a host-order u32 (panics on bad input: test/tool helper).
pub fn ip(s: &str) -> u32 {
    u32::from(s.parse::<std::net::Ipv4Addr>().expect("IPv4 address"))
}
