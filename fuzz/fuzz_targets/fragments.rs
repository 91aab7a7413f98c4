//! Fragments in any order, any mix and any number, through `pipeline::process` and the
//! worker's hold area, with the invariants checked on every step:
//! - every fragment forwarded (on arrival or released later) is byte-for-byte the frame
//!   that came in but for its MACs, which are its datagram's server's;
//! - all fragments of one datagram that are forwarded go to one server;
//! - the hold area never holds more than its slots; nothing is released twice.
//!
//! Input: 2-byte records [op, arg]: op picks one of 6 datagrams (3 per source, two
//! sources), which of its fragments to send (or a tick step, or a flush of the
//! released frames); arg varies the IP id among 4 values.
#![no_main]
use drlb::lb::frag::HOLD_SLOTS;
use drlb::lb::snapshot::{BackendSpec, Policy, ServiceSpec};
use drlb::lb::{process, LocalState, Proto, SchedKind, Snapshot, Timeouts, Verdict};
use drlb::testing::frames::{self, Flow};
use drlb::wire::Mac;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::OnceLock;

const PORT: Mac = Mac([0x02, 0x70, 0x63, 0x61, 0x70, 0x00]);
const VIP: u32 = 0xc0a8_01c8;

fn snap() -> &'static Snapshot {
    static S: OnceLock<Snapshot> = OnceLock::new();
    S.get_or_init(|| {
        let specs = [ServiceSpec {
            vip: VIP,
            port: 53,
            proto: Proto::Udp,
            policy: Policy::new(SchedKind::Rr),
            backends: (0..3u16)
                .map(|i| BackendSpec {
                    slot: i,
                    incarnation: 1,
                    ip: 0xc0a8_0176 + u32::from(i),
                    port: 53,
                    weight: 1,
                    mac: Some(Mac([0, 0x0c, 0x29, 0, 0, i as u8])),
                    down: false,
                })
                .collect(),
            ..ServiceSpec::default()
        }];
        Snapshot::build(1, PORT, 0xc0a8_0179, Timeouts::default(), &specs).unwrap()
    })
}

/// Datagram `d`'s fragments with IP id variant `v` (4 fragments of 2 KB of UDP).
fn fragments(d: u8, v: u8) -> Vec<Vec<u8>> {
    let f = Flow {
        dst_mac: PORT,
        src_mac: Mac([2, 0xc1, 0, 0, 0, 1]),
        saddr: 0x0a00_0001 + u32::from(d % 2),
        daddr: VIP,
        sport: 1000 + u16::from(d),
        dport: 53,
    };
    let whole = frames::udp(&f, 1700, 0);
    frames::fragments(&whole, u16::from(d / 2) << 8 | u16::from(v % 4), 512)
}

fuzz_target!(|data: &[u8]| {
    let s = snap();
    let mut local = LocalState::new(64, 0);
    let mut now = 0u32;
    // (source, IP id) -> the server its fragments went to.
    let mut server: HashMap<(u8, u16), Mac> = HashMap::new();
    // A first fragment sets its datagram's server (an id used again after the entry
    // expired is a new datagram); every later one forwarded must go there.
    let check =
        |frame: &[u8], original: &[u8], server: &mut HashMap<(u8, u16), Mac>, first: bool| {
            assert_eq!(&frame[12..], &original[12..], "only the MACs change");
            assert_eq!(&frame[6..12], &PORT.0);
            let mac = Mac(frame[..6].try_into().unwrap());
            let key = (frame[29], u16::from_be_bytes([frame[18], frame[19]]));
            if first {
                server.insert(key, mac);
            } else {
                assert_eq!(server.get(&key), Some(&mac), "one server per datagram");
            }
        };
    let mut sent: HashMap<Vec<u8>, usize> = HashMap::new();
    for rec in data.chunks_exact(2) {
        let (op, arg) = (rec[0], rec[1]);
        match op % 8 {
            6 => now = now.saturating_add(u32::from(arg % 4)),
            7 => {
                now = now.saturating_add(u32::from(arg % 2));
                local.frags.expire(now);
            }
            _ => {
                let d = op % 6;
                let frags = fragments(d, arg);
                let i = usize::from(arg >> 2) % frags.len();
                let original = frags[i].clone();
                let mut f = original.clone();
                match process(&mut f, s, &mut local, now) {
                    Verdict::Forward { .. } => check(&f, &original, &mut server, i == 0),
                    Verdict::FragmentHeld => {
                        assert_eq!(f, original);
                        *sent.entry(original[12..].to_vec()).or_default() += 1;
                    }
                    Verdict::Drop(_) => assert_eq!(f, original),
                    v => panic!("unexpected {v:?}"),
                }
            }
        }
        assert!(local.frags.held() <= HOLD_SLOTS);
        let mut out = Vec::new();
        local.frags.take_ready(|f| {
            out.push(f.to_vec());
            true
        });
        for f in out {
            let n = sent.get_mut(&f[12..]).expect("released a frame never held");
            assert!(*n > 0, "released twice");
            *n -= 1;
            let original = [&[0u8; 12][..], &f[12..]].concat();
            check(&f, &original, &mut server, false);
        }
    }
});
