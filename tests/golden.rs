//! Golden packets through `pipeline::process` (Katran style): a table of
//! (description, input bytes, expected verdict, expected output bytes).
//! At least one case per forwarding step (README "Forwarding semantics") and per drop reason.
use drlb::lb::snapshot::{BackendSpec, Policy, ServiceSpec};
use drlb::lb::verdict::Neighbor;
use drlb::lb::{
    process, DropReason as D, LocalState, OnGone, Proto, SchedKind, Snapshot, Timeouts, Verdict,
};
use drlb::testing::frames::{self, ip, Flow};
use drlb::wire::arp::{OP_REPLY, OP_REQUEST};
use drlb::wire::tcp::flags::*;
use drlb::wire::Mac;

const PORT: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);
const CLIENT: Mac = Mac([0x02, 0xc1, 0, 0, 0, 0x10]);
const MAC_A: Mac = Mac([0x00, 0x0c, 0x29, 0x56, 0x5c, 0xc5]);
const MAC_B: Mac = Mac([0x00, 0x0c, 0x29, 0x56, 0x5c, 0xc6]);
const OTHER: Mac = Mac([0x02, 0x99, 0, 0, 0, 0x99]);

fn be(ip_: u32, slot: u16, weight: u32, mac: Option<Mac>) -> BackendSpec {
    BackendSpec { slot, incarnation: 1, ip: ip_, port: 80, weight, mac, down: false }
}

/// The seed: VIP 192.168.1.200:80/tcp rr over .118 (A) and .119 (B); a UDP service
/// .200:53 wrr on A; and .201:80 whose only backend has no MAC yet.
fn snapshot() -> Snapshot {
    Snapshot::build(1, PORT, ip("192.168.1.121"), Timeouts::default(), &specs()).unwrap()
}

fn specs() -> Vec<ServiceSpec> {
    let dns = |b: BackendSpec| BackendSpec { port: 53, ..b };
    vec![
        service(
            "192.168.1.200",
            80,
            Proto::Tcp,
            SchedKind::Rr,
            vec![
                be(ip("192.168.1.118"), 0, 1, Some(MAC_A)),
                be(ip("192.168.1.119"), 1, 1, Some(MAC_B)),
            ],
        ),
        service(
            "192.168.1.200",
            53,
            Proto::Udp,
            SchedKind::Wrr,
            vec![dns(be(ip("192.168.1.118"), 2, 1, Some(MAC_A)))],
        ),
        // DNS over TCP beside it: a TCP and a UDP flow on the same addresses and ports
        // share their groups and tag in the flow table (the protocol is not hashed).
        service(
            "192.168.1.200",
            53,
            Proto::Tcp,
            SchedKind::Rr,
            vec![dns(be(ip("192.168.1.119"), 4, 1, Some(MAC_B)))],
        ),
        service(
            "192.168.1.201",
            80,
            Proto::Tcp,
            SchedKind::Wrr,
            vec![be(ip("192.168.1.120"), 3, 1, None)],
        ),
    ]
}

/// A service of the golden snapshot: a removed or down backend's flows rescheduled.
fn service(
    vip: &str,
    port: u16,
    proto: Proto,
    sched: SchedKind,
    backends: Vec<BackendSpec>,
) -> ServiceSpec {
    ServiceSpec {
        vip: ip(vip),
        port,
        proto,
        policy: Policy {
            on_removed: OnGone::Reschedule,
            on_down: OnGone::Reschedule,
            ..Policy::new(sched)
        },
        backends,
        ..ServiceSpec::default()
    }
}

fn flow(sport: u16, dport: u16) -> Flow {
    Flow {
        dst_mac: PORT,
        src_mac: CLIENT,
        saddr: ip("10.0.0.7"),
        daddr: ip("192.168.1.200"),
        sport,
        dport,
    }
}

/// `input` with the 12 MAC bytes replaced: what a DR forward must emit.
fn rewritten(input: &[u8], backend: Mac) -> Vec<u8> {
    let mut o = backend.0.to_vec();
    o.extend_from_slice(&PORT.0);
    o.extend_from_slice(&input[12..]);
    o
}

struct Case {
    what: &'static str,
    input: Vec<u8>,
    verdict: Verdict,
    /// None: the frame must come out unchanged (drops and consumed frames).
    output: Option<Vec<u8>>,
}

fn fwd(slot: u16, new_flow: bool) -> Verdict {
    Verdict::Forward { slot, new_flow }
}

fn set(mut f: Vec<u8>, at: usize, bytes: &[u8]) -> Vec<u8> {
    f[at..at + bytes.len()].copy_from_slice(bytes);
    f
}

/// Recomputes the IPv4 header checksum at offset 14 (after a deliberate edit).
fn fix_ip_csum(mut f: Vec<u8>) -> Vec<u8> {
    let hl = usize::from(f[14] & 0xf) * 4;
    f[24] = 0;
    f[25] = 0;
    let c = drlb::wire::checksum::checksum(&f[14..14 + hl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

fn cases() -> Vec<Case> {
    let syn1 = frames::tcp(&flow(40000, 80), SYN, 0, 60);
    let ack1 = frames::tcp(&flow(40000, 80), ACK, 10, 60);
    let syn2 = frames::tcp(&flow(40001, 80), SYN, 0, 60);
    let syn_vlan = frames::with_vlan(&frames::tcp(&flow(40002, 80), SYN, 0, 60), 0x0064);
    let udp = frames::udp(&flow(5353, 53), 20, 60);
    let vip = ip("192.168.1.200");
    let dip = ip("192.168.1.121");
    let cip = ip("10.0.0.7");
    let arp_req_vip = frames::arp_frame(Mac::BROADCAST, OP_REQUEST, CLIENT, cip, Mac::ZERO, vip);
    let arp_rep_vip = frames::arp_frame(CLIENT, OP_REPLY, PORT, vip, CLIENT, cip);
    let arp_req_dip = frames::arp_frame(Mac::BROADCAST, OP_REQUEST, CLIENT, cip, Mac::ZERO, dip);
    let arp_rep_dip = frames::arp_frame(CLIENT, OP_REPLY, PORT, dip, CLIENT, cip);
    let new_a = Mac([0x02, 0xaa, 0, 0, 0, 0x18]);
    let a_ip = ip("192.168.1.118");
    let ping = frames::icmp_echo(PORT, CLIENT, cip, vip, 7);
    let pong = frames::icmp_echo_msg(0, CLIENT, PORT, vip, cip, 7);
    let mut first_frag = frames::tcp(&flow(40003, 80), SYN, 0, 60);
    first_frag[20] = 0x20; // MF, offset 0
    let first_frag = fix_ip_csum(first_frag);
    // The same datagram's next fragment: offset 8 bytes, no ports in it.
    let mut later_frag = first_frag.clone();
    later_frag[20..22].copy_from_slice(&[0x00, 0x01]);
    let later_frag = fix_ip_csum(later_frag);
    vec![
        Case {
            what: "TCP SYN to the VIP: new flow, rr picks A, only MACs change",
            output: Some(rewritten(&syn1, MAC_A)),
            input: syn1,
            verdict: fwd(0, true),
        },
        Case {
            what: "same flow's ACK: same backend, not new",
            output: Some(rewritten(&ack1, MAC_A)),
            input: ack1,
            verdict: fwd(0, false),
        },
        Case {
            what: "second flow's SYN: rr moves on to B",
            output: Some(rewritten(&syn2, MAC_B)),
            input: syn2,
            verdict: fwd(1, true),
        },
        Case {
            what: "802.1Q-tagged SYN: forwarded, tag kept",
            output: Some(rewritten(&syn_vlan, MAC_A)),
            input: syn_vlan,
            verdict: fwd(0, true),
        },
        Case {
            what: "UDP to VIP:53: forwarded to its only backend",
            output: Some(rewritten(&udp, MAC_A)),
            input: udp,
            verdict: fwd(2, true),
        },
        Case {
            what: "first fragment carries ports: forwarded",
            output: Some(rewritten(&first_frag, MAC_B)),
            input: first_frag,
            verdict: fwd(1, true),
        },
        Case {
            what: "a later fragment of that datagram (same source, IP id): to its first's server",
            output: Some(rewritten(&later_frag, MAC_B)),
            input: later_frag,
            verdict: fwd(1, false),
        },
        Case {
            what: "ARP request for the VIP: answered from the port MAC",
            input: arp_req_vip,
            verdict: Verdict::ArpReply { learned: None },
            output: Some(arp_rep_vip),
        },
        Case {
            what: "ARP request for the director IP: answered",
            input: arp_req_dip,
            verdict: Verdict::ArpReply { learned: None },
            output: Some(arp_rep_dip),
        },
        Case {
            what: "ARP request from backend A for the DIP: answered and A's MAC learned",
            input: frames::arp_frame(Mac::BROADCAST, OP_REQUEST, new_a, a_ip, Mac::ZERO, dip),
            verdict: Verdict::ArpReply { learned: Some(Neighbor { ip: a_ip, mac: new_a }) },
            output: Some(frames::arp_frame(new_a, OP_REPLY, PORT, dip, new_a, a_ip)),
        },
        Case {
            what: "ARP reply from backend A: learned, consumed",
            input: frames::arp_frame(PORT, OP_REPLY, new_a, a_ip, PORT, dip),
            verdict: Verdict::ArpLearned(Neighbor { ip: a_ip, mac: new_a }),
            output: None,
        },
        Case {
            what: "ARP request for an unrelated IP: ignored",
            input: frames::arp_frame(
                Mac::BROADCAST,
                OP_REQUEST,
                CLIENT,
                cip,
                Mac::ZERO,
                ip("192.168.1.5"),
            ),
            verdict: Verdict::Drop(D::ArpIgnored),
            output: None,
        },
        Case {
            what: "gratuitous ARP for the VIP from someone else: not answered",
            input: frames::arp_frame(Mac::BROADCAST, OP_REQUEST, CLIENT, vip, Mac::ZERO, vip),
            verdict: Verdict::Drop(D::ArpIgnored),
            output: None,
        },
        Case {
            what: "ARP truncated",
            input: frames::arp_frame(Mac::BROADCAST, OP_REQUEST, CLIENT, cip, Mac::ZERO, vip)[..40]
                .to_vec(),
            verdict: Verdict::Drop(D::ArpMalformed),
            output: None,
        },
        Case {
            what: "ARP with htype 6",
            input: set(
                frames::arp_frame(Mac::BROADCAST, OP_REQUEST, CLIENT, cip, Mac::ZERO, vip),
                15,
                &[6],
            ),
            verdict: Verdict::Drop(D::ArpMalformed),
            output: None,
        },
        Case {
            what: "ICMP echo request to the VIP: answered",
            input: ping,
            verdict: Verdict::IcmpReply,
            output: Some(pong),
        },
        Case {
            what: "ICMP echo to a non-VIP",
            input: frames::icmp_echo(PORT, CLIENT, cip, ip("192.168.1.9"), 1),
            verdict: Verdict::Drop(D::NoService),
            output: None,
        },
        Case {
            what: "ICMP echo with a bad ICMP checksum",
            input: set(frames::icmp_echo(PORT, CLIENT, cip, vip, 1), 36, &[0xde, 0xad]),
            verdict: Verdict::Drop(D::IcmpUnhandled),
            output: None,
        },
        Case {
            what: "ICMP timestamp request to the VIP",
            input: set(frames::icmp_echo(PORT, CLIENT, cip, vip, 1), 34, &[13]),
            verdict: Verdict::Drop(D::IcmpUnhandled),
            output: None,
        },
        Case {
            what: "destination MAC of another host",
            input: frames::tcp(&Flow { dst_mac: OTHER, ..flow(1, 80) }, SYN, 0, 60),
            verdict: Verdict::Drop(D::NotForUs),
            output: None,
        },
        Case {
            what: "multicast destination MAC",
            input: frames::tcp(
                &Flow { dst_mac: Mac([1, 0, 0x5e, 0, 0, 1]), ..flow(1, 80) },
                SYN,
                0,
                60,
            ),
            verdict: Verdict::Drop(D::NotForUs),
            output: None,
        },
        Case {
            what: "a 1501-byte IP packet over the 1500-byte MTU (tagged)",
            input: frames::with_vlan(&frames::udp(&flow(5354, 53), 1501 - 28, 60), 7),
            verdict: Verdict::Drop(D::Oversize),
            output: None,
        },
        Case {
            what: "runt: 10 bytes",
            input: vec![0xff; 10],
            verdict: Verdict::Drop(D::Runt),
            output: None,
        },
        Case {
            what: "runt: VLAN tag cut short",
            input: set(vec![0xff; 16], 12, &[0x81, 0x00]),
            verdict: Verdict::Drop(D::Runt),
            output: None,
        },
        Case {
            what: "IPv6",
            input: set(frames::tcp(&flow(1, 80), SYN, 0, 60), 12, &[0x86, 0xdd]),
            verdict: Verdict::Drop(D::UnsupportedEthertype),
            output: None,
        },
        Case {
            what: "QinQ outer tag",
            input: set(
                frames::with_vlan(&frames::tcp(&flow(1, 80), SYN, 0, 60), 5),
                12,
                &[0x88, 0xa8],
            ),
            verdict: Verdict::Drop(D::UnsupportedEthertype),
            output: None,
        },
        Case {
            what: "two 802.1Q tags",
            input: frames::with_vlan(
                &frames::with_vlan(&frames::tcp(&flow(1, 80), SYN, 0, 60), 5),
                6,
            ),
            verdict: Verdict::Drop(D::UnsupportedEthertype),
            output: None,
        },
        Case {
            what: "IPv4 version 5",
            input: fix_ip_csum(set(frames::tcp(&flow(1, 80), SYN, 0, 60), 14, &[0x55])),
            verdict: Verdict::Drop(D::Ipv4Malformed),
            output: None,
        },
        Case {
            what: "IPv4 IHL 4",
            input: fix_ip_csum(set(frames::tcp(&flow(1, 80), SYN, 0, 60), 14, &[0x44])),
            verdict: Verdict::Drop(D::Ipv4Malformed),
            output: None,
        },
        Case {
            what: "IPv4 total length < header",
            input: fix_ip_csum(set(frames::tcp(&flow(1, 80), SYN, 0, 60), 16, &[0, 19])),
            verdict: Verdict::Drop(D::Ipv4Malformed),
            output: None,
        },
        Case {
            what: "IPv4 total length past the frame",
            input: fix_ip_csum(set(frames::tcp(&flow(1, 80), SYN, 0, 60), 16, &[0x05, 0xdc])),
            verdict: Verdict::Drop(D::Ipv4Truncated),
            output: None,
        },
        Case {
            what: "short IPv4: 10 bytes after Ethernet",
            input: frames::tcp(&flow(1, 80), SYN, 0, 60)[..24].to_vec(),
            verdict: Verdict::Drop(D::Ipv4Truncated),
            output: None,
        },
        Case {
            what: "IPv4 header checksum wrong",
            input: set(frames::tcp(&flow(1, 80), SYN, 0, 60), 24, &[0xbe, 0xef]),
            verdict: Verdict::Drop(D::Ipv4BadChecksum),
            output: None,
        },
        Case {
            what: "non-first fragment before its first: held (copied), the frame untouched",
            input: fix_ip_csum(set(
                frames::tcp(&flow(1, 80), SYN, 0, 60),
                18,
                &[0x43, 0x21, 0x00, 0x10],
            )),
            verdict: Verdict::FragmentHeld,
            output: None,
        },
        Case {
            what: "TCP header short: IP says 10 bytes of TCP",
            input: fix_ip_csum(set(frames::tcp(&flow(1, 80), SYN, 0, 60), 16, &[0, 30])),
            verdict: Verdict::Drop(D::L4Malformed),
            output: None,
        },
        Case {
            what: "TCP data offset 4",
            input: set(frames::tcp(&flow(1, 80), SYN, 0, 60), 46, &[0x40]),
            verdict: Verdict::Drop(D::L4Malformed),
            output: None,
        },
        Case {
            what: "UDP header short: IP says 6 bytes of UDP",
            input: fix_ip_csum(set(frames::udp(&flow(1, 53), 0, 60), 16, &[0, 26])),
            verdict: Verdict::Drop(D::L4Malformed),
            output: None,
        },
        Case {
            what: "TCP to a VIP port with no service",
            input: frames::tcp(&flow(1, 443), SYN, 0, 60),
            verdict: Verdict::Drop(D::NoService),
            output: None,
        },
        Case {
            what: "UDP to a TCP-only service port",
            input: frames::udp(&flow(1, 80), 4, 60),
            verdict: Verdict::Drop(D::NoService),
            output: None,
        },
        Case {
            what: "GRE to the VIP",
            input: fix_ip_csum(set(frames::tcp(&flow(1, 80), SYN, 0, 60), 23, &[47])),
            verdict: Verdict::Drop(D::NoService),
            output: None,
        },
        Case {
            what: "TCP ACK without a flow (IPVS sloppy_tcp=0)",
            input: frames::tcp(&flow(2, 80), ACK, 0, 60),
            verdict: Verdict::Drop(D::TcpNoFlow),
            output: None,
        },
        Case {
            what: "service whose only backend has no MAC yet",
            input: frames::tcp(&Flow { daddr: ip("192.168.1.201"), ..flow(3, 80) }, SYN, 0, 60),
            verdict: Verdict::Drop(D::NoBackend),
            output: None,
        },
    ]
}

#[test]
fn golden_packets() {
    let snap = snapshot();
    let mut local = LocalState::new(1024, 0);
    let mut seen = std::collections::HashSet::new();
    for c in cases() {
        let mut frame = c.input.clone();
        let v = process(&mut frame, &snap, &mut local, 10);
        assert_eq!(v, c.verdict, "{}", c.what);
        let want = c.output.unwrap_or_else(|| c.input.clone());
        assert_eq!(frame, want, "output bytes: {}", c.what);
        if let Verdict::Drop(r) = v {
            seen.insert(r);
        }
    }
    // Every drop reason is covered here but BackendRemoved and BackendDown (need a
    // swap; see tests/semantics.rs), FlowTableFull (needs a table full of established
    // flows; see tests/flood.rs), the kernel queue's (the worker's, not the
    // pipeline's: see tests/kernel.rs) and the fragment hold area's (tests/fragments.rs).
    let elsewhere = [
        D::IcmpErrorMalformed, // golden_icmp_errors
        D::IcmpErrorNoFlow,
        D::BackendRemoved,
        D::BackendDown,
        D::FlowTableFull,
        D::KernelRateLimited,
        D::KernelQueueFull,
        D::FragmentTimeout, // tests/fragments.rs (held frames, time)
        D::FragmentHoldFull,
        D::FragmentTooBig,
    ];
    for r in D::ALL {
        if !elsewhere.contains(r) {
            assert!(seen.contains(r), "no golden case for drop reason {}", r.name());
        }
    }
}

/// With a kernel interface: what is the director's goes to the kernel unchanged (its
/// IP, ARP for it and replies to it, learning backends on the way); what is a VIP's is
/// handled as before.
#[test]
fn golden_exception_frames() {
    let mut snap = snapshot();
    snap.kernel = true;
    let mut local = LocalState::new(1024, 0);
    let (vip, dip, cip, a_ip) =
        (ip("192.168.1.200"), ip("192.168.1.121"), ip("10.0.0.7"), ip("192.168.1.118"));
    let to_dip = Flow { daddr: dip, ..flow(40100, 22) };
    let new_a = Mac([0x02, 0xaa, 0, 0, 0, 0x18]);
    let a_learned = Some(Neighbor { ip: a_ip, mac: new_a });
    let kernel = |learned| Verdict::Kernel { learned };
    let vip_syn = frames::tcp(&flow(40101, 80), SYN, 0, 60);
    let arp_req_vip = frames::arp_frame(Mac::BROADCAST, OP_REQUEST, CLIENT, cip, Mac::ZERO, vip);
    let mut frag_to_dip = frames::udp(&Flow { daddr: dip, ..flow(5000, 53) }, 20, 60);
    frag_to_dip[20] = 0x00;
    frag_to_dip[21] = 0x10; // a later fragment: offset 16 * 8
    let cases = vec![
        Case {
            what: "TCP to the director IP (ssh)",
            input: frames::tcp(&to_dip, SYN, 0, 60),
            verdict: kernel(None),
            output: None,
        },
        Case {
            what: "UDP to the director IP",
            input: frames::udp(&Flow { daddr: dip, ..flow(5000, 53) }, 20, 60),
            verdict: kernel(None),
            output: None,
        },
        Case {
            what: "a later fragment to the director IP (the kernel reassembles)",
            input: fix_ip_csum(frag_to_dip),
            verdict: kernel(None),
            output: None,
        },
        Case {
            what: "ping to the director IP: the kernel answers",
            input: frames::icmp_echo(PORT, CLIENT, cip, dip, 1),
            verdict: kernel(None),
            output: None,
        },
        Case {
            what: "ARP request for the director IP: the kernel answers",
            input: frames::arp_frame(Mac::BROADCAST, OP_REQUEST, CLIENT, cip, Mac::ZERO, dip),
            verdict: kernel(None),
            output: None,
        },
        Case {
            what: "ARP request for the director IP from a backend: learned, and to the kernel",
            input: frames::arp_frame(Mac::BROADCAST, OP_REQUEST, new_a, a_ip, Mac::ZERO, dip),
            verdict: kernel(a_learned),
            output: None,
        },
        Case {
            what: "ARP reply to the director IP from a backend: learned, and to the kernel",
            input: frames::arp_frame(PORT, OP_REPLY, new_a, a_ip, PORT, dip),
            verdict: kernel(a_learned),
            output: None,
        },
        Case {
            what: "TCP to the director IP for another MAC",
            input: frames::tcp(&Flow { dst_mac: OTHER, ..to_dip }, SYN, 0, 60),
            verdict: Verdict::Drop(D::NotForUs),
            output: None,
        },
        Case {
            what: "ARP for a VIP: still answered here",
            output: Some(frames::arp_frame(CLIENT, OP_REPLY, PORT, vip, CLIENT, cip)),
            input: arp_req_vip,
            verdict: Verdict::ArpReply { learned: None },
        },
        Case {
            what: "ping to a VIP: still answered here",
            output: Some(frames::icmp_echo_msg(0, CLIENT, PORT, vip, cip, 2)),
            input: frames::icmp_echo(PORT, CLIENT, cip, vip, 2),
            verdict: Verdict::IcmpReply,
        },
        Case {
            what: "TCP to a VIP: forwarded as before",
            output: Some(rewritten(&vip_syn, MAC_A)),
            input: vip_syn,
            verdict: fwd(0, true),
        },
    ];
    for c in cases {
        let mut frame = c.input.clone();
        let v = process(&mut frame, &snap, &mut local, 10);
        assert_eq!(v, c.verdict, "{}", c.what);
        assert_eq!(frame, c.output.unwrap_or_else(|| c.input.clone()), "output bytes: {}", c.what);
    }
}

#[test]
fn forwarded_ip_bytes_never_change() {
    // IPVS DR: no TTL decrement, no checksum change; everything from byte 12 is as received.
    let snap = snapshot();
    let mut local = LocalState::new(1024, 0);
    for sport in 1000..1100u16 {
        let input = frames::tcp(&flow(sport, 80), SYN, 100, 60);
        let mut f = input.clone();
        assert!(matches!(process(&mut f, &snap, &mut local, 0), Verdict::Forward { .. }));
        assert_eq!(&f[12..], &input[12..]);
        assert_eq!(&f[6..12], &PORT.0);
    }
}

/// ICMP errors to a VIP (IPVS `ip_vs_in_icmp`): forwarded unchanged to the backend of
/// the flow whose reply they quote (the VIP:port -> client datagram a real server sent),
/// whatever the type and code and however short the quote; dropped and counted when
/// the quote is malformed or names no flow here.
#[test]
fn golden_icmp_errors() {
    let snap = snapshot();
    let mut local = LocalState::new(1024, 0);
    let (vip, cip, router) = (ip("192.168.1.200"), ip("10.0.0.7"), ip("10.0.0.1"));
    let macs = [MAC_A, MAC_B];
    // Two flows: TCP 10.0.0.7:40000 -> VIP:80 and UDP 10.0.0.7:5353 -> VIP:53.
    let mut syn = frames::tcp(&flow(40000, 80), SYN, 0, 60);
    let Verdict::Forward { slot: tcp_slot, .. } = process(&mut syn, &snap, &mut local, 10) else {
        panic!("the SYN is forwarded")
    };
    let mut dns = frames::udp(&flow(5353, 53), 20, 60);
    assert_eq!(
        process(&mut dns, &snap, &mut local, 10),
        Verdict::Forward { slot: 2, new_flow: true }
    );
    // What the real servers sent back, as a router quotes it.
    let reply = |sport: u16, dport: u16, from: u32| {
        let f = Flow { dst_mac: CLIENT, src_mac: MAC_A, saddr: from, daddr: cip, sport, dport };
        frames::tcp(&f, ACK, 1400, 60)[14..].to_vec()
    };
    let udp_reply = {
        let f = Flow {
            dst_mac: CLIENT,
            src_mac: MAC_A,
            saddr: vip,
            daddr: cip,
            sport: 53,
            dport: 5353,
        };
        frames::udp(&f, 600, 60)[14..].to_vec()
    };
    let err = |kind: (u8, u8, u32), to: u32, quoted: &[u8]| {
        frames::icmp_error((PORT, CLIENT), (router, to), kind, quoted)
    };
    let frag_needed = (3, 4, 1280);
    let tcp_q = reply(80, 40000, vip);
    let fwd_to = |slot: u16| Verdict::Forward { slot, new_flow: false };
    let cases: Vec<(&str, Vec<u8>, Verdict)> = vec![
        (
            "fragmentation needed, 8 bytes of TCP quoted",
            err(frag_needed, vip, &tcp_q[..28]),
            fwd_to(tcp_slot),
        ),
        (
            "fragmentation needed, 576 bytes quoted (RFC 1812)",
            err(frag_needed, vip, &tcp_q[..548]),
            fwd_to(tcp_slot),
        ),
        ("port unreachable", err((3, 3, 0), vip, &tcp_q[..28]), fwd_to(tcp_slot)),
        ("host unreachable", err((3, 1, 0), vip, &tcp_q[..28]), fwd_to(tcp_slot)),
        ("time exceeded", err((11, 0, 0), vip, &tcp_q[..28]), fwd_to(tcp_slot)),
        ("parameter problem", err((12, 0, 0x1400_0000), vip, &tcp_q[..28]), fwd_to(tcp_slot)),
        (
            "fragmentation needed for the UDP flow",
            err(frag_needed, vip, &udp_reply[..28]),
            fwd_to(2),
        ),
        (
            "a flow with no entry",
            err(frag_needed, vip, &reply(80, 40099, vip)[..28]),
            Verdict::Drop(D::IcmpErrorNoFlow),
        ),
        (
            "quoting another VIP's datagram",
            err(frag_needed, vip, &reply(80, 40000, ip("192.168.1.201"))[..28]),
            Verdict::Drop(D::IcmpErrorNoFlow),
        ),
        (
            "quoting a port with no service",
            err(frag_needed, vip, &reply(81, 40000, vip)[..28]),
            Verdict::Drop(D::IcmpErrorNoFlow),
        ),
        (
            "to another VIP, about no flow of it",
            err(frag_needed, ip("192.168.1.201"), &reply(80, 40000, ip("192.168.1.201"))[..28]),
            Verdict::Drop(D::IcmpErrorNoFlow),
        ),
        (
            "quote one byte short of 8 bytes of TCP",
            err(frag_needed, vip, &tcp_q[..27]),
            Verdict::Drop(D::IcmpErrorMalformed),
        ),
        (
            "quote that is not IPv4",
            err(frag_needed, vip, &set(tcp_q[..28].to_vec(), 0, &[0x65])),
            Verdict::Drop(D::IcmpErrorMalformed),
        ),
        (
            "bad ICMP checksum",
            set(err(frag_needed, vip, &tcp_q[..28]), 36, &[0xde, 0xad]),
            Verdict::Drop(D::IcmpErrorMalformed),
        ),
        (
            "to a non-VIP",
            err(frag_needed, ip("192.168.1.9"), &tcp_q[..28]),
            Verdict::Drop(D::NoService),
        ),
        (
            "to the director IP (no kernel interface)",
            err(frag_needed, ip("192.168.1.121"), &tcp_q[..28]),
            Verdict::Drop(D::IcmpUnhandled),
        ),
        (
            "redirect (type 5): not an error drlb relays",
            err((5, 1, 0), vip, &tcp_q[..28]),
            Verdict::Drop(D::IcmpUnhandled),
        ),
    ];
    for (what, input, want) in cases {
        let mut frame = input.clone();
        let v = process(&mut frame, &snap, &mut local, 20);
        assert_eq!(v, want, "{what}");
        match v {
            Verdict::Forward { slot, .. } => {
                let mac = if slot == 2 { MAC_A } else { macs[usize::from(slot)] };
                assert_eq!(frame, rewritten(&input, mac), "{what}: only the MACs change");
            }
            _ => assert_eq!(frame, input, "{what}: a drop leaves the frame as it was"),
        }
    }
    // The flow itself is untouched: its next segment is a hit on the same backend.
    let mut ack = frames::tcp(&flow(40000, 80), ACK, 10, 60);
    assert_eq!(process(&mut ack, &snap, &mut local, 30), fwd_to(tcp_slot));

    // Two workers: RSS gave the error to one that has no entry for the flow. It hands
    // the frame, unchanged, to the others; the owner forwards it; a handed-over frame
    // is not handed on again.
    let mut other = LocalState::new(1024, 1);
    other.peers = true;
    let input = err(frag_needed, vip, &tcp_q[..28]);
    let mut frame = input.clone();
    assert_eq!(process(&mut frame, &snap, &mut other, 31), Verdict::IcmpRedirect);
    assert_eq!(frame, input, "handed over as it came");
    local.redirected = true;
    assert_eq!(process(&mut frame, &snap, &mut local, 31), fwd_to(tcp_slot));
    assert_eq!(frame, rewritten(&input, macs[usize::from(tcp_slot)]));
    local.redirected = false;
    other.redirected = true;
    let mut frame = input.clone();
    assert_eq!(process(&mut frame, &snap, &mut other, 31), Verdict::Drop(D::IcmpErrorNoFlow));
    // What is malformed or not a service's is dropped where it arrives, not handed over.
    other.redirected = false;
    let mut bad = err(frag_needed, vip, &tcp_q[..27]);
    assert_eq!(process(&mut bad, &snap, &mut other, 31), Verdict::Drop(D::IcmpErrorMalformed));
    let mut no_svc = err(frag_needed, vip, &reply(81, 40000, vip)[..28]);
    assert_eq!(process(&mut no_svc, &snap, &mut other, 31), Verdict::Drop(D::IcmpErrorNoFlow));
}

/// A random frame for the fast/full comparison, from one of `sports` client ports:
/// flows of the services (port 53 over TCP and UDP, the same addresses and ports) and
/// of no service, every TCP flag mix, and each way a frame leaves the fast path (a tag,
/// IP options, a fragment, ICMP, a short or inconsistent header, another MAC,
/// broadcast, over the MTU). A bad IPv4 checksum only on a segment that changes its
/// flow's state (SYN, FIN, RST): on one that does not, it is the one documented
/// difference, tested on its own below.
fn random_frame(rng: &mut drlb::testing::Rng, sports: u64) -> Vec<u8> {
    let dport = [80, 80, 80, 53, 443][rng.below(5) as usize];
    let f = Flow {
        // Mostly the VIP; sometimes an address of no service, or the director's own.
        daddr: match rng.below(16) {
            0 | 1 => ip("192.168.1.201"),
            2 => ip("192.168.1.121"),
            _ => ip("192.168.1.200"),
        },
        ..flow(1000 + rng.below(sports) as u16, dport)
    };
    let tcp_flags =
        [SYN, ACK, ACK | PSH, FIN | ACK, RST, RST | ACK, SYN | ACK, 0][rng.below(8) as usize];
    let payload = rng.below(40) as usize;
    // Port 53 is served over UDP and TCP: the same addresses and ports in both.
    let mut fr = if dport == 53 && rng.below(2) == 0 {
        frames::udp(&f, payload, 60)
    } else {
        frames::tcp(&f, tcp_flags, payload, 60)
    };
    match rng.below(24) {
        0 => fr = frames::with_vlan(&fr, 5),
        1 => {
            // IHL 6 (an options word): lengths and checksum fixed, so only the IHL differs.
            let mut o = fr[..34].to_vec();
            o.extend_from_slice(&[1, 1, 1, 1]);
            o.extend_from_slice(&fr[34..]);
            o[14] = 0x46;
            let total = u16::from_be_bytes([o[16], o[17]]) + 4;
            o[16..18].copy_from_slice(&total.to_be_bytes());
            fr = fix_ip_csum(o);
        }
        2 => fr = fix_ip_csum(set(fr, 20, &[0x20, 0x00])), // a first fragment (MF)
        3 => fr = fix_ip_csum(set(fr, 20, &[0x00, 0x10])), // a later fragment
        4 => fr = fix_ip_csum(set(fr, 20, &[0x40, 0x00])), // DF: still fast
        5 => fr.truncate(14 + 20 + rng.below(20) as usize),
        6 => fr[46] = (rng.below(16) as u8) << 4, // any TCP data offset (below 5: malformed)
        7 => fr[46] = 0xf0,                       // beyond the segment
        8 => fr[38..40].copy_from_slice(&[0, 7]), // UDP length 7
        9 => fr[..6].copy_from_slice(&OTHER.0),
        10 => fr[..6].copy_from_slice(&Mac::BROADCAST.0),
        11 => fr = frames::icmp_echo(PORT, CLIENT, ip("10.0.0.7"), ip("192.168.1.200"), 1),
        12 => fr = frames::tcp(&f, tcp_flags, 1000 - 40 + rng.below(3) as usize, 60), // at the MTU
        13 => fr.extend_from_slice(&[0; 9]), // padding after the packet
        14 if dport != 53 && tcp_flags & (SYN | FIN | RST) != 0 => fr[24] ^= 0x5a,
        // The total length at the frame's end (the padding counted in), or one past it.
        15 => {
            let total = (fr.len() - 14 + rng.below(2) as usize) as u16;
            fr = fix_ip_csum(set(fr, 16, &total.to_be_bytes()));
        }
        _ => {}
    }
    fr
}

/// What one comparison of the worker's path with `process` saw.
#[derive(Default)]
struct Agreed {
    frames: usize,
    /// Forwards on an existing flow.
    forwarded: usize,
    /// Frames the fast path's runs forwarded, and of those the SYNs routed by hash.
    fast: usize,
    fast_new: usize,
    /// Frames forwarded by a run that started after a frame the full path took.
    resumed: usize,
    stateless: usize,
    bad_checksum: usize,
    to_kernel: usize,
}

/// The worker's path (prefetch hints, runs of fast hits and flood SYNs in one loop, each
/// frame a run stops at by the full path with its hint, then the next run) and
/// `process` alone, on two equal states, make the same decision and the same bytes for
/// every frame: random bursts from `burst` over time, with a server going down, removed
/// and back, a drain, the director's own traffic for the kernel, and a persistent
/// service (whose SYNs are not routed by hash alone). Both tables hold `capacity`
/// entries.
fn fast_and_full_agree(
    capacity: usize,
    seed: u64,
    mut burst: impl FnMut(&mut drlb::testing::Rng) -> Vec<Vec<u8>>,
) -> Agreed {
    use drlb::lb::flow::FlowTable;
    use drlb::lb::{forward_hits, hint, prefetch_burst, process_hinted, Cursor, AHEAD};
    let base = specs();
    let variant = |k: u64| {
        let mut sp = base.clone();
        match k {
            1 => sp[0].backends[1].down = true,
            2 => {
                sp[0].backends.remove(1);
            }
            3 => sp[0].backends[0].weight = 0,
            5 => sp[0].policy.persistence = 300,
            _ => {}
        }
        let mut snap =
            Snapshot::build(1 + k, PORT, ip("192.168.1.121"), Timeouts::default(), &sp).unwrap();
        snap.mtu = 1000;
        // With a kernel interface, the director's own traffic goes to the kernel.
        snap.kernel = k == 4;
        snap
    };
    let mut snap = variant(0);
    let mut plain = LocalState::with_table(FlowTable::with_seed(capacity, [7, 11]), 0);
    let mut hinted = LocalState::with_table(FlowTable::with_seed(capacity, [7, 11]), 0);
    let mut rng = drlb::testing::Rng(seed);
    let mut now = 10;
    let mut seen = Agreed::default();
    for round in 0..4800u64 {
        if round % 400 == 0 {
            // Each variant twice, in turn (a random pick may leave one out).
            snap = variant(round / 400 % 6);
        }
        let burst = burst(&mut rng);
        let mut hashes = [0u64; 32 + AHEAD];
        prefetch_burst(burst.iter().map(|f| f.as_slice()), &hinted, &mut hashes);
        let mut b = burst.clone();
        let n = burst.len();
        // Each frame's verdict by the worker's path, in the burst's order.
        let mut vbs = Vec::with_capacity(n);
        let mut cur = Cursor::default();
        loop {
            let from = cur.at;
            let mut slots = Vec::new();
            let hits = forward_hits(
                b.iter_mut().map(|f| f.as_mut_slice()),
                &hashes[..n + AHEAD],
                &mut cur,
                &snap,
                &mut hinted,
                now,
                |slot, len, new_flow| slots.push((slot, len, new_flow)),
            );
            assert_eq!(slots.len(), hits, "one on_hit call per forwarded frame");
            assert_eq!(cur.at, from + hits, "the cursor moves past the hits");
            seen.fast += hits;
            seen.fast_new += slots.iter().filter(|s| s.2).count();
            if from > 0 {
                seen.resumed += hits;
            }
            for (k, &(slot, len, new_flow)) in slots.iter().enumerate() {
                assert_eq!(len, burst[from + k].len(), "the hit's length");
                vbs.push(Verdict::Forward { slot, new_flow });
            }
            let i = cur.at;
            if i == n {
                break;
            }
            cur.skip();
            let h = hint(&b[i], hashes[i], &snap, &hinted);
            vbs.push(process_hinted(&mut b[i], &snap, &mut hinted, now, &h));
        }
        for (i, f) in burst.iter().enumerate() {
            let mut a = f.clone();
            let va = process(&mut a, &snap, &mut plain, now);
            assert_eq!(va, vbs[i], "round {round}: {f:02x?}");
            assert_eq!(a, b[i], "round {round}: the bytes");
            seen.frames += 1;
            seen.forwarded += usize::from(matches!(va, Verdict::Forward { new_flow: false, .. }));
            seen.bad_checksum += usize::from(va == Verdict::Drop(D::Ipv4BadChecksum));
            seen.to_kernel += usize::from(matches!(va, Verdict::Kernel { .. }));
        }
        // Both ways of forwarding count the same flood state.
        assert_eq!(plain.flood.stateless_syns, hinted.flood.stateless_syns, "round {round}");
        assert_eq!(plain.flood.until, hinted.flood.until, "round {round}");
        // Time passes: mostly a little, sometimes past the SYN and FIN timeouts.
        now += match rng.below(50) {
            0 => 700,
            1..=5 => 20,
            _ => 0,
        };
    }
    // The same entries, field by field: key, state, backend and the expiry each path
    // renewed (so a fast hit that renewed with another state's timeout shows here).
    let entries = |l: &LocalState| {
        let mut v: Vec<_> = l.flows.iter_live(now).collect();
        v.sort_by_key(|e| (e.key.saddr, e.key.daddr, e.key.sport, e.key.dport, e.key.proto));
        v
    };
    assert_eq!(entries(&plain), entries(&hinted));
    seen.stateless = plain.flood.stateless_syns as usize;
    seen
}

/// A random burst of 1 to 32 frames of [`random_frame`] over `sports` client ports.
fn random_burst(rng: &mut drlb::testing::Rng, sports: u64) -> Vec<Vec<u8>> {
    (0..1 + rng.below(32)).map(|_| random_frame(rng, sports)).collect()
}

#[test]
fn the_fast_path_decides_as_the_full_path() {
    let seen = fast_and_full_agree(4096, 0x5eed, |rng| random_burst(rng, 12));
    assert!(
        seen.forwarded > seen.frames / 10,
        "enough hits to mean something: {} of {}",
        seen.forwarded,
        seen.frames
    );
    // The mix is mostly frames that take the full path: the fast path's runs forward
    // the hits between them, most of them in a run that resumed after such a frame.
    eprintln!(
        "XX1 fast {} resumed {} frames {} fwd {}",
        seen.fast, seen.resumed, seen.frames, seen.forwarded
    );
    assert!(seen.fast >= 100, "the fast path's runs: {} of {}", seen.fast, seen.frames);
    assert!(
        seen.bad_checksum >= 100 && seen.to_kernel >= 100,
        "{} bad checksums, {} to the kernel",
        seen.bad_checksum,
        seen.to_kernel
    );
}

/// The same with keys in their second group: on a 64-entry table, 40 flows of mostly
/// ACKs (a SYN now and then) fill its sixteen groups to 60 %, so some keys live in their
/// second group, and the random mix now and then.
#[test]
fn the_fast_path_decides_as_the_full_path_with_keys_in_their_second_group() {
    let seen = fast_and_full_agree(64, 0xdee9, |rng| {
        (0..1 + rng.below(32))
            .map(|_| match rng.below(16) {
                0 => random_frame(rng, 12),
                1 => frames::tcp(&flow(1000 + rng.below(40) as u16, 80), SYN, 0, 60),
                _ => frames::tcp(&flow(1000 + rng.below(40) as u16, 80), ACK, 10, 60),
            })
            .collect()
    });
    eprintln!(
        "XX2 fast {} resumed {} frames {} fwd {}",
        seen.fast, seen.resumed, seen.frames, seen.forwarded
    );
    assert!(seen.fast >= seen.frames / 8, "the fast path's runs: {} of {}", seen.fast, seen.frames);
}

/// Under a SYN flood (`syn_flood = "stateless"`, the default): a 16-entry table, 600
/// client ports, and bursts that are half new SYNs (a run of them, as a flood sends)
/// and half the random mix. The SYNs that find their groups full are routed by hash,
/// most of them inside the fast path's runs ([`drlb::lb::forward_hits`]), and every
/// decision, byte and entry is the full path's.
#[test]
fn under_a_syn_flood_the_fast_path_decides_as_the_full_path() {
    let seen = fast_and_full_agree(16, 0xf100d, |rng| {
        let n = 1 + rng.below(32) as usize;
        let syns = rng.below(n as u64 + 1) as usize;
        let mut b: Vec<Vec<u8>> = (0..syns)
            .map(|_| {
                let f = flow(2000 + rng.below(600) as u16, 80);
                let mut fr = frames::tcp(&f, SYN, 0, 60);
                if rng.below(40) == 0 {
                    fr[24] ^= 0x5a; // a bad IPv4 checksum: dropped, not routed
                }
                fr
            })
            .collect();
        b.extend((syns..n).map(|_| random_frame(rng, 600)));
        b
    });
    assert!(seen.stateless >= 5_000, "SYNs routed by hash: {}", seen.stateless);
    eprintln!(
        "XX3 fast {} new {} resumed {} frames {} stateless {}",
        seen.fast, seen.fast_new, seen.resumed, seen.frames, seen.stateless
    );
    assert!(
        seen.fast_new >= seen.stateless / 4,
        "in the fast path's runs: {} of {}",
        seen.fast_new,
        seen.stateless
    );
    assert!(seen.resumed >= 1_000, "resumed runs forwarded {}", seen.resumed);
    assert!(seen.bad_checksum >= 100, "{} bad checksums", seen.bad_checksum);
}

/// A frame alone through the worker's path at time 10: stage 1's hash, its hint (the
/// fast path when the hint allows it), `process_hinted`.
fn alone_through_the_hint(snap: &Snapshot, local: &mut LocalState, f: &[u8]) -> Verdict {
    use drlb::lb::{hint, prefetch_burst, process_hinted};
    let mut hashes = [0u64; 1];
    prefetch_burst(std::iter::once(f), local, &mut hashes);
    let mut b = f.to_vec();
    let h = hint(&b, hashes[0], snap, local);
    process_hinted(&mut b, snap, local, 10, &h)
}

/// The one difference, by design: a packet of an established flow is forwarded without
/// its IPv4 header checksum being summed (DR does not change the header; the real
/// server's kernel checks it). A corrupt header cannot create a flow: a miss takes the
/// full path, which verifies it.
#[test]
fn the_fast_path_leaves_the_ip_checksum_to_the_server_and_a_miss_checks_it() {
    let snap = snapshot();
    let mut local = LocalState::new(1024, 0);
    let mut run = |f: &[u8]| alone_through_the_hint(&snap, &mut local, f);
    let bad = |f: Vec<u8>| set(f, 24, &[0xbe, 0xef]);
    // A miss with a bad checksum: dropped, no flow.
    assert_eq!(
        run(&bad(frames::tcp(&flow(3000, 80), SYN, 0, 60))),
        Verdict::Drop(D::Ipv4BadChecksum)
    );
    assert_eq!(run(&frames::tcp(&flow(3000, 80), ACK, 0, 60)), Verdict::Drop(D::TcpNoFlow));
    // Established, then a segment with a bad checksum: forwarded as the flow's.
    assert!(matches!(
        run(&frames::tcp(&flow(3001, 80), SYN, 0, 60)),
        Verdict::Forward { new_flow: true, .. }
    ));
    assert!(matches!(
        run(&frames::tcp(&flow(3001, 80), ACK, 0, 60)),
        Verdict::Forward { new_flow: false, .. }
    ));
    assert!(matches!(
        run(&bad(frames::tcp(&flow(3001, 80), ACK, 5, 60))),
        Verdict::Forward { new_flow: false, .. }
    ));
    // A FIN with a bad checksum changes the state: the full path, which drops it.
    assert_eq!(
        run(&bad(frames::tcp(&flow(3001, 80), FIN | ACK, 0, 60))),
        Verdict::Drop(D::Ipv4BadChecksum)
    );
}

/// At the largest MTU a snapshot can hold, a segment of the largest total length with a
/// data offset below 5 words is dropped on an established flow as `process` drops it:
/// the fast path's data-offset table says "never" with 2^16 - 1, which no total it lets
/// through reaches. The same segment with a good offset is forwarded.
#[test]
fn the_largest_segment_with_a_short_data_offset_is_dropped_on_a_live_flow() {
    let mut snap = snapshot();
    snap.mtu = u16::MAX;
    let mut local = LocalState::new(1024, 0);
    let mut run = |f: &[u8]| alone_through_the_hint(&snap, &mut local, f);
    let f = flow(3002, 80);
    assert!(matches!(run(&frames::tcp(&f, SYN, 0, 60)), Verdict::Forward { new_flow: true, .. }));
    let largest = frames::tcp(&f, ACK, usize::from(u16::MAX) - 40, 60);
    assert_eq!(u16::from_be_bytes([largest[16], largest[17]]), u16::MAX);
    assert_eq!(run(&set(largest.clone(), 46, &[0x40])), Verdict::Drop(D::L4Malformed));
    assert!(matches!(run(&largest), Verdict::Forward { new_flow: false, .. }));
}
