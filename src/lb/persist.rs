//! Persistence templates (ipvsadm `-p [timeout] [-M netmask]`): every connection from
//! one client address (masked by the netmask) to a persistent service goes to the same
//! real server while any of its connections lives and for `timeout` seconds after.
//!
//! IPVS keeps a *template* connection per (client & mask, VIP, port, protocol) that
//! points at the server; new connections from the client find it and go there
//! (`ip_vs_sched_persist`); it cannot expire while connections it controls live. drlb
//! keeps the same templates in one table shared by the workers (RSS spreads one client's
//! connections over several), with these rules:
//!
//! - **Written only at connection time, never per packet.** A template is written when
//!   a client without one connects (created with the scheduler's choice), and when a
//!   new connection of the client, or the flow-table sweep passing one of its live
//!   flows, finds it would expire more than a tenth of the timeout before `now +
//!   timeout` (then it is pushed there). So a client keeps its server while any of its
//!   connections lives and for `timeout` (−10 %) after the sweep last saw one: the sweep
//!   passes every flow once per cycle, a few groups per loop, which at 1 M flows per
//!   worker is about a second under full load and less when idle; a timeout shorter
//!   than the cycle may let a template lapse between two passes.
//! - **Validity** (`ip_vs_check_template`): a template whose server was removed (its
//!   slot empty or given to another server) is replaced by a new choice; a drained
//!   (weight 0) or down server keeps its persistent clients until the template
//!   expires, as IPVS with `expire_quiescent_template = 0`. A server whose MAC is not
//!   known cannot take a frame, so its templates are not used.
//! - **Bounded**: a fixed number of entries (`dataplane.persistence_capacity`), four
//!   per bucket; a new template takes a free or expired entry of its bucket, else the
//!   one expiring first (an eviction, counted).
//! - **Concurrency**: each entry is a seqlock (an even sequence number while stable,
//!   odd while written). A writer takes the entry with one compare-and-swap — at
//!   connection time only — and gives up if another worker holds it; a reader that sees
//!   a write in progress treats the entry as absent. Two workers that schedule the
//!   first two connections of one client in the same instant may each create a template
//!   (the first in the bucket wins for every later connection).
use super::Tick;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::Arc;

/// Entries per bucket.
const WAYS: usize = 4;

/// What a template is keyed by: the masked client address and the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateKey {
    pub client: u32,
    pub vip: u32,
    pub vport: u16,
    pub proto: u8,
}

impl TemplateKey {
    fn word(&self) -> u32 {
        (u32::from(self.vport) << 16) | (u32::from(self.proto) << 8) | 1
    }
}

/// A live template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    pub key: TemplateKey,
    pub slot: u16,
    pub incarnation: u16,
    pub expires: Tick,
    /// Its entry, for [`Templates::extend`].
    idx: usize,
}

#[derive(Default)]
#[repr(C, align(32))]
struct Entry {
    seq: AtomicU32,
    expires: AtomicU32,
    client: AtomicU32,
    vip: AtomicU32,
    /// vport << 16 | proto << 8 | 1 (0: empty).
    svc: AtomicU32,
    /// slot << 16 | incarnation.
    target: AtomicU32,
}

/// What [`Templates::create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Into a free or expired entry (or over this key's own).
    Stored,
    /// Over a live template of another client (the bucket was full).
    Evicted,
    /// Another worker was writing the entry: nothing stored (the next connection of the
    /// client stores it).
    Busy,
}

/// The shared template table.
pub struct Templates {
    entries: Box<[Entry]>,
    bucket_mask: usize,
    seed: u64,
}

impl Templates {
    /// A table of at least `capacity` templates (rounded up to a power of two, at least
    /// one bucket), with a random hash seed.
    pub fn new(capacity: usize) -> Arc<Templates> {
        let buckets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        let mut seed = [0u8; 8];
        let _ = getrandom::getrandom(&mut seed);
        Arc::new(Templates {
            entries: (0..buckets * WAYS).map(|_| Entry::default()).collect(),
            bucket_mask: buckets - 1,
            seed: u64::from_le_bytes(seed) | 1,
        })
    }

    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    fn bucket(&self, k: &TemplateKey) -> usize {
        let a = (u64::from(k.client) << 32 | u64::from(k.vip)) ^ self.seed;
        let b = u64::from(k.word()).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let h = (u128::from(a ^ b) * u128::from(self.seed.rotate_left(29) | 1)) as u64;
        ((h >> 32) as usize) & self.bucket_mask
    }

    /// Reads entry `idx` consistently, or `None` while it is being written or empty.
    fn read(&self, idx: usize) -> Option<Template> {
        let e = &self.entries[idx];
        let s1 = e.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            return None;
        }
        let svc = e.svc.load(Ordering::Relaxed);
        let (client, vip) = (e.client.load(Ordering::Relaxed), e.vip.load(Ordering::Relaxed));
        let (target, expires) =
            (e.target.load(Ordering::Relaxed), e.expires.load(Ordering::Relaxed));
        fence(Ordering::Acquire);
        if e.seq.load(Ordering::Relaxed) != s1 || svc == 0 {
            return None;
        }
        Some(Template {
            key: TemplateKey { client, vip, vport: (svc >> 16) as u16, proto: (svc >> 8) as u8 },
            slot: (target >> 16) as u16,
            incarnation: target as u16,
            expires,
            idx,
        })
    }

    /// Writes entry `idx` under its seqlock; false if another writer holds it.
    fn write(&self, idx: usize, f: impl FnOnce(&Entry)) -> bool {
        let e = &self.entries[idx];
        let s = e.seq.load(Ordering::Relaxed);
        if s & 1 == 1
            || e.seq.compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed).is_err()
        {
            return false;
        }
        f(e);
        e.seq.store(s + 2, Ordering::Release);
        true
    }

    /// The client's live template, if any.
    pub fn get(&self, k: &TemplateKey, now: Tick) -> Option<Template> {
        let b = self.bucket(k) * WAYS;
        (b..b + WAYS).filter_map(|i| self.read(i)).find(|t| t.key == *k && t.expires > now)
    }

    /// Stores a template for `k` (replacing its own, else a free or expired entry, else
    /// the one expiring first).
    pub fn create(
        &self,
        k: &TemplateKey,
        slot: u16,
        incarnation: u16,
        expires: Tick,
        now: Tick,
    ) -> Created {
        let b = self.bucket(k) * WAYS;
        let mut victim = (b, Tick::MAX, true);
        for i in b..b + WAYS {
            match self.read(i) {
                Some(t) if t.key == *k => {
                    victim = (i, 0, false);
                    break;
                }
                Some(t) if t.expires > now => {
                    if victim.1 != 0 && t.expires < victim.1 {
                        victim = (i, t.expires, true);
                    }
                }
                _ => {
                    // Empty, expired, or being written (skipped if so at write time).
                    if victim.1 != 0 {
                        victim = (i, 0, false);
                    }
                }
            }
        }
        let (idx, _, evicts) = victim;
        let target = (u32::from(slot) << 16) | u32::from(incarnation);
        let stored = self.write(idx, |e| {
            e.client.store(k.client, Ordering::Relaxed);
            e.vip.store(k.vip, Ordering::Relaxed);
            e.svc.store(k.word(), Ordering::Relaxed);
            e.target.store(target, Ordering::Relaxed);
            e.expires.store(expires, Ordering::Relaxed);
        });
        match (stored, evicts) {
            (false, _) => Created::Busy,
            (true, true) => Created::Evicted,
            (true, false) => Created::Stored,
        }
    }

    /// Makes `t` live until at least `until` when it would expire more than `slack`
    /// ticks before that (so a template is not rewritten at every connection): the
    /// write happens only if the entry still holds the same template.
    pub fn extend(&self, t: &Template, until: Tick, slack: Tick) -> bool {
        if t.expires.saturating_add(slack) >= until {
            return false;
        }
        self.write(t.idx, |e| {
            let target = (u32::from(t.slot) << 16) | u32::from(t.incarnation);
            let same = e.client.load(Ordering::Relaxed) == t.key.client
                && e.vip.load(Ordering::Relaxed) == t.key.vip
                && e.svc.load(Ordering::Relaxed) == t.key.word()
                && e.target.load(Ordering::Relaxed) == target;
            if same {
                e.expires.store(until.max(e.expires.load(Ordering::Relaxed)), Ordering::Relaxed);
            }
        })
    }

    /// Live templates (a full scan: `drlbadm -lnc`, tests).
    pub fn iter_live(&self, now: Tick) -> impl Iterator<Item = Template> + '_ {
        (0..self.entries.len()).filter_map(move |i| self.read(i)).filter(move |t| t.expires > now)
    }
}

/// One worker's counts of its template writes (published with its counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersistStats {
    pub created: u64,
    pub evicted: u64,
    pub busy: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: u32) -> TemplateKey {
        TemplateKey { client: c, vip: 0xc0a8_01c8, vport: 443, proto: 6 }
    }

    #[test]
    fn create_get_extend_expire() {
        let t = Templates::new(64);
        assert_eq!(t.get(&key(1), 0), None);
        assert_eq!(t.create(&key(1), 3, 1, 100, 0), Created::Stored);
        let got = t.get(&key(1), 50).unwrap();
        assert_eq!((got.slot, got.incarnation, got.expires), (3, 1, 100));
        assert!(!t.extend(&got, 105, 10), "within the slack: no write");
        assert!(t.extend(&got, 200, 10));
        assert_eq!(t.get(&key(1), 150).unwrap().expires, 200);
        assert_eq!(t.get(&key(1), 200), None, "expired");
        // Another service of the same client is another template.
        let other = TemplateKey { vport: 80, ..key(1) };
        assert_eq!(t.get(&other, 0), None);
    }

    #[test]
    fn a_full_bucket_evicts_the_one_expiring_first() {
        let t = Templates::new(4); // one bucket
        for c in 0..4 {
            assert_eq!(t.create(&key(c), c as u16, 1, 100 + c, 0), Created::Stored);
        }
        assert_eq!(t.create(&key(9), 9, 1, 500, 0), Created::Evicted);
        assert_eq!(t.get(&key(0), 1), None, "the soonest to expire went");
        assert!(t.get(&key(9), 1).is_some() && t.get(&key(3), 1).is_some());
        assert_eq!(t.create(&key(10), 9, 1, 500, 200), Created::Stored, "expired ones are free");
        assert_eq!(t.iter_live(200).count(), 2);
    }

    #[test]
    fn readers_never_see_a_torn_template() {
        let t = Templates::new(4);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let w = {
            let (t, stop) = (t.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    // Client c always maps to slot c: a torn read would break that.
                    let c = i % 8;
                    t.create(&key(c), c as u16, c as u16, 1000, 0);
                    i += 1;
                }
            })
        };
        let mut seen = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while seen < 200_000 && std::time::Instant::now() < deadline {
            for tp in t.iter_live(0) {
                assert_eq!(u32::from(tp.slot), tp.key.client);
                assert_eq!(tp.slot, tp.incarnation);
                seen += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        w.join().unwrap();
        assert!(seen > 0);
    }
}
