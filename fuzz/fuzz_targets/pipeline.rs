//! `pipeline::process` (and the worker's hinted path) on arbitrary frames against a fixed
//! snapshot (one per `syn_flood` mode) and a small flow table, with the DR invariants checked on every verdict:
//! - forwarded: only bytes 0..12 change; destination = that backend's MAC, source = ours;
//! - ARP/ICMP reply: same length, sent back to the frame's source;
//! - dropped or consumed: the frame is untouched.
//!
//! Input: frames as [len_lo, len_hi, tick_step, bytes...] records.
#![no_main]
use drlb::control::{config::Config, state::ControlState};
use drlb::lb::{hint, prefetch_burst, process, process_hinted, LocalState, Snapshot, Verdict};
use drlb::wire::Mac;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const PORT: Mac = Mac([0x02, 0x70, 0x63, 0x61, 0x70, 0x00]);
const CFG: &str = r#"
[dataplane]
ip = "192.168.1.121"
flow_capacity = 64
[timeouts]
tcp = 3
tcp_fin = 2
udp = 2
[[service]]
vip = "192.168.1.200"
port = 80
scheduler = "wlc"
persistence = 3
persistence_netmask = "255.255.255.0"
  [[service.backend]]
  ip = "192.168.1.118"
  weight = 3
  mac = "00:0c:29:00:00:0a"
  [[service.backend]]
  ip = "192.168.1.119"
  mac = "00:0c:29:00:00:0b"
  [[service.backend]]
  ip = "192.168.1.120"
  weight = 0
  mac = "00:0c:29:00:00:0c"
  [[service.backend]]
  ip = "192.168.1.122"
[[service]]
vip = "192.168.1.200"
port = 53
protocol = "udp"
scheduler = "sh"
sched_flags = ["sh-fallback", "sh-port"]
on_backend_removed = "drop"
  [[service.backend]]
  ip = "192.168.1.118"
  mac = "00:0c:29:00:00:0a"
[[service]]
vip = "192.168.1.200"
port = 443
scheduler = "mh"
mh_table_size = 251
  [[service.backend]]
  ip = "192.168.1.118"
  mac = "00:0c:29:00:00:0a"
  [[service.backend]]
  ip = "192.168.1.119"
  weight = 0
  mac = "00:0c:29:00:00:0b"
  [[service.backend]]
  ip = "192.168.1.122"
"#;

/// The snapshot once per `syn_flood` mode (the input's length picks one); the `drop`
/// one also has a kernel interface.
fn snaps() -> &'static [Snapshot] {
    static S: OnceLock<Vec<Snapshot>> = OnceLock::new();
    S.get_or_init(|| {
        ["stateless", "evict", "drop"]
            .iter()
            .map(|m| {
                let text = CFG.replace(
                    "flow_capacity = 64",
                    &format!("flow_capacity = 64\nsyn_flood = \"{m}\""),
                );
                let cfg = Config::parse(&text, "fuzz").expect("fuzz config is valid");
                let mut s = ControlState::new(cfg).snapshot(PORT).expect("snapshot");
                // One of the three with a kernel interface (the exception path).
                s.kernel = *m == "drop";
                s
            })
            .collect()
    })
}

fn check(before: &[u8], after: &[u8], v: Verdict, s: &Snapshot) {
    assert_eq!(before.len(), after.len(), "{v:?} changed the length");
    match v {
        Verdict::Forward { slot, .. } => {
            let b = &s.backends[usize::from(slot)];
            assert!(b.present, "forwarded to a removed backend");
            assert!(!b.down, "forwarded to a backend that is down");
            let mac = b.mac.expect("forwarded to a backend without a MAC");
            assert_eq!(&after[..6], &mac.0, "destination is the backend's MAC");
            assert_eq!(&after[6..12], &PORT.0, "source is the port's MAC");
            assert_eq!(&after[12..], &before[12..], "DR rewrites only the MACs");
        }
        Verdict::ArpReply { .. } | Verdict::IcmpReply => {
            assert_eq!(&after[..6], &before[6..12], "a reply goes back to the sender");
            assert_eq!(&after[6..12], &PORT.0);
        }
        Verdict::Drop(_)
        | Verdict::ArpLearned(_)
        | Verdict::Kernel { .. }
        | Verdict::FragmentHeld
        | Verdict::IcmpRedirect => {
            assert_eq!(after, before, "{v:?} modified the frame");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let s = &snaps()[data.len() / 2 % 3];
    let mut local = LocalState::new(64, 0);
    let mut now = 0u32;
    let mut frames: Vec<(Vec<u8>, u32)> = Vec::new();
    let mut rest = data;
    while rest.len() >= 3 && frames.len() < 256 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]) % 1600);
        now = now.saturating_add(u32::from(rest[2] & 0x3f));
        rest = &rest[3..];
        let n = len.min(rest.len());
        frames.push((rest[..n].to_vec(), now));
        rest = &rest[n..];
    }
    // Even-length inputs take the worker's path (stage 1's hashes, then each frame's
    // hint), odd ones the plain one.
    let hinted = data.len() % 2 == 0;
    for burst in frames.chunks_mut(32) {
        let mut hashes = [0u64; 32];
        if hinted {
            prefetch_burst(burst.iter().map(|(f, _)| f.as_slice()), &local, &mut hashes);
        }
        for ((f, t), &h) in burst.iter_mut().zip(hashes.iter()) {
            let before = f.clone();
            let v = if hinted {
                let p = hint(f, h, s, &local);
                process_hinted(f, s, &mut local, *t, &p)
            } else {
                process(f, s, &mut local, *t)
            };
            check(&before, f, v, s);
        }
    }
});
