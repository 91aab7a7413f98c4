//! RCU-style publication of the forwarding snapshot, modelled on DPDK `rte_rcu_qsbr`.
//!
//! Readers (workers) `load` the current pointer once per burst and call `quiescent` once
//! per loop iteration, when they hold no reference. The writer (the manager) `publish`es
//! a new value and retires the old one, which is freed only after every online reader
//! has passed a quiescent point since the swap: `publish` does not wait; a later
//! [`Writer::try_reclaim`] (polls) or [`Writer::wait`] (spins up to a timeout) frees it.
//! Readers never lock, allocate or do an atomic read-modify-write: a load and a plain
//! store per iteration. A reader that stops goes `offline` and is not waited for.
//!
//! Protocol (one writer, N readers):
//! 1. writer: `ptr.swap(new)`; `t = epoch.fetch_add(1) + 1`; full fence;
//! 2. reader at a quiescent point: `slot.store(epoch.load())`;
//! 3. writer: wait until every online slot >= t; then drop the old value.
//!
//! Why that is enough: if a reader stored `e >= t` in step 2, its `epoch.load()` saw the
//! writer's increment, which is sequenced after the swap; acquire/release makes the swap
//! visible to that reader, so every later `load()` returns the new pointer, and every
//! access it made through the old pointer happened before its release store of `e`,
//! which the writer's acquire load of the slot observes before it frees.
//!
//! Coming online is the one step acquire/release cannot order, as in
//! `rte_rcu_qsbr_thread_online`: the reader stores its slot and then loads the pointer,
//! the writer swaps the pointer and then loads the slots (the store-buffering shape).
//! Without a full fence on both sides, the reader's store can still be in flight when
//! the writer reads the slot as offline and frees the value the reader just loaded. A
//! `SeqCst` fence after the reader's store and one after the writer's swap make at least
//! one side see the other (the `loom_model` tests show the failure without them).
#![allow(unsafe_code)]

// Under `--cfg drlb_loom` (our own name: `--cfg loom` would also put tokio in its loom
// mode) the same code runs on loom's model-checked atomics (see the
// `loom_model` test below).
#[cfg(drlb_loom)]
use loom::sync::atomic::{fence, AtomicPtr, AtomicU64, Ordering};
#[cfg(drlb_loom)]
use loom::sync::Arc;
#[cfg(not(drlb_loom))]
use std::sync::atomic::{fence, AtomicPtr, AtomicU64, Ordering};
#[cfg(not(drlb_loom))]
use std::sync::Arc;

/// Slot value of a reader that is offline (not holding references, not reporting).
const OFFLINE: u64 = u64::MAX;

// The loom negative control (`without_the_fences_a_reader_coming_online_can_use_a_freed
// _snapshot`) turns the two fences off to show they are needed; loom runs a model's
// threads on one OS thread, so a thread-local reaches all of them.
#[cfg(drlb_loom)]
std::thread_local!(static OMIT_FENCES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });

/// The full fence of the online step (see the module docs).
#[inline(always)]
fn full_fence() {
    #[cfg(drlb_loom)]
    if OMIT_FENCES.with(|f| f.get()) {
        return;
    }
    fence(Ordering::SeqCst);
}

#[repr(align(64))]
struct ReaderSlot(AtomicU64);

struct Shared<T> {
    ptr: AtomicPtr<T>,
    epoch: AtomicU64,
    slots: Box<[ReaderSlot]>,
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // We are the last owner: no other thread can touch ptr any more.
        let p = self.ptr.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: `p` came from `Box::into_raw` in `publish`/`new` and was never freed:
            // the last `Shared` owner is being dropped, so no reader can hold it.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

// SAFETY: readers only get `&T` (needs T: Sync), the writer moves values of T between
// threads (needs T: Send); all shared fields are atomics.
unsafe impl<T: Send + Sync> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Shared<T> {}

/// The publishing side. One per domain.
pub struct Writer<T> {
    shared: Arc<Shared<T>>,
    /// Old values waiting for readers, with the epoch they need to reach.
    retired: Vec<(u64, Box<T>)>,
}

/// One reader. Not `Clone`: each worker gets its own slot.
pub struct Reader<T> {
    shared: Arc<Shared<T>>,
    idx: usize,
}

/// Creates a domain with `readers` reader slots, all offline until `Reader::online`.
pub fn domain<T: Send + Sync>(initial: T, readers: usize) -> (Writer<T>, Vec<Reader<T>>) {
    let shared = Arc::new(Shared {
        ptr: AtomicPtr::new(Box::into_raw(Box::new(initial))),
        epoch: AtomicU64::new(0),
        slots: (0..readers).map(|_| ReaderSlot(AtomicU64::new(OFFLINE))).collect(),
    });
    let rs = (0..readers).map(|idx| Reader { shared: shared.clone(), idx }).collect();
    (Writer { shared, retired: Vec::new() }, rs)
}

impl<T> Reader<T> {
    /// The current value. Valid until this reader's next `quiescent` or `offline`.
    #[inline(always)]
    pub fn load(&self) -> &T {
        // Acquire pairs with the writer's AcqRel swap: the pointee's contents are visible.
        let p = self.shared.ptr.load(Ordering::Acquire);
        // SAFETY: the pointer is never null after `domain`, and the writer frees a value
        // only after this reader reported a quiescent state past its retirement; the
        // borrow of `self` keeps callers from holding it across `quiescent(&mut self)`.
        unsafe { &*p }
    }

    /// Reports that this reader holds no reference obtained before now.
    #[inline(always)]
    pub fn quiescent(&mut self) {
        // Acquire: we must see the epoch the writer bumped after its swap (see module doc).
        let e = self.shared.epoch.load(Ordering::Acquire);
        // Release: every read through an earlier `load` happens-before the writer's
        // acquire load of this slot. A plain store, not a read-modify-write.
        self.shared.slots[self.idx].0.store(e, Ordering::Release);
    }

    /// Starts reporting (call before the first `load`).
    pub fn online(&mut self) {
        self.quiescent();
        // Store-load barrier: the first `load` below must not be satisfied before the
        // writer can see this reader online (`rte_rcu_qsbr_thread_online`).
        full_fence();
    }

    /// Stops reporting; the writer no longer waits for this reader.
    pub fn offline(&mut self) {
        self.shared.slots[self.idx].0.store(OFFLINE, Ordering::Release);
    }
}

impl<T> Writer<T> {
    /// The current value, as the writer sees it.
    pub fn current(&self) -> &T {
        // SAFETY: only the writer retires values, and it is `&self` here, so the current
        // value cannot be freed while borrowed.
        unsafe { &*self.shared.ptr.load(Ordering::Acquire) }
    }

    /// Publishes `new`; the old value is retired and freed once every online reader has
    /// passed a quiescent point (by this or a later `try_reclaim`). Returns the epoch.
    pub fn publish(&mut self, new: T) -> u64 {
        let newp = Box::into_raw(Box::new(new));
        // AcqRel: release the new contents to readers; acquire the old pointer's contents
        // so we may drop them.
        let old = self.shared.ptr.swap(newp, Ordering::AcqRel);
        // The epoch increment is sequenced after the swap; Release so a reader that sees
        // the new epoch also sees the swap. (Writer side: a read-modify-write is fine.)
        let t = self.shared.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        // Store-load barrier, the writer's half of the online step: every slot read
        // from here on sees a reader that came online before this swap took effect.
        full_fence();
        // SAFETY: `old` came from Box::into_raw and was the published value; it is now
        // unreachable for new loads and is owned by the retire list.
        self.retired.push((t, unsafe { Box::from_raw(old) }));
        self.try_reclaim();
        t
    }

    /// True when every online reader has reported epoch >= `t`.
    pub fn passed(&self, t: u64) -> bool {
        // Acquire pairs with the readers' release stores (see module doc).
        self.shared.slots.iter().all(|s| {
            let v = s.0.load(Ordering::Acquire);
            v == OFFLINE || v >= t
        })
    }

    /// Frees retired values every reader has moved past. Returns how many remain.
    pub fn try_reclaim(&mut self) -> usize {
        let min = self
            .shared
            .slots
            .iter()
            .map(|s| s.0.load(Ordering::Acquire))
            .filter(|&v| v != OFFLINE)
            .min()
            .unwrap_or(u64::MAX);
        self.retired.retain(|(t, _)| *t > min);
        self.retired.len()
    }

    /// Waits (spinning politely) until every online reader has passed epoch `t`, or the
    /// timeout; returns whether they did.
    pub fn wait(&mut self, t: u64, timeout: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        while !self.passed(t) {
            if start.elapsed() > timeout {
                return false;
            }
            std::hint::spin_loop();
            #[cfg(drlb_loom)]
            loom::thread::yield_now();
            #[cfg(not(drlb_loom))]
            std::thread::yield_now();
        }
        self.try_reclaim();
        true
    }

    pub fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::Acquire)
    }
}

/// Model check (run with `RUSTFLAGS="--cfg drlb_loom" cargo test --release --lib loom_model`,
/// as scripts/test.sh does): every interleaving of a reader taking two snapshots with
/// quiescent points between them, against a writer publishing twice and reclaiming. A
/// value's drop sets its flag; a reader that ever sees the flag of the value it holds
/// set has read a freed snapshot.
#[cfg(all(test, drlb_loom))]
mod loom_model {
    use super::*;
    use loom::sync::atomic::AtomicBool;

    struct V {
        id: usize,
        freed: Arc<[AtomicBool; 3]>,
    }
    impl Drop for V {
        fn drop(&mut self) {
            self.freed[self.id].store(true, Ordering::SeqCst);
        }
    }

    /// Three drop flags and a one-reader domain holding value 0.
    fn setup() -> (Arc<[AtomicBool; 3]>, Writer<V>, Reader<V>) {
        let freed =
            Arc::new([AtomicBool::new(false), AtomicBool::new(false), AtomicBool::new(false)]);
        let (w, mut rs) = domain(V { id: 0, freed: freed.clone() }, 1);
        (freed, w, rs.pop().unwrap())
    }

    #[test]
    fn reader_never_holds_a_freed_snapshot() {
        loom::model(|| {
            let (freed, mut w, mut r) = setup();
            r.online();
            let f = freed.clone();
            let reader = loom::thread::spawn(move || {
                let mut last = 0;
                for _ in 0..2 {
                    let v = r.load();
                    let id = v.id;
                    assert!(!f[id].load(Ordering::SeqCst), "reader holds freed snapshot {id}");
                    assert!(id >= last, "went back in time");
                    last = id;
                    r.quiescent();
                }
                r.offline();
            });
            w.publish(V { id: 1, freed: freed.clone() });
            w.try_reclaim();
            w.publish(V { id: 2, freed: freed.clone() });
            reader.join().unwrap();
            assert_eq!(w.try_reclaim(), 0, "an offline reader holds nothing back");
            assert!(freed[0].load(Ordering::SeqCst) && freed[1].load(Ordering::SeqCst));
            assert!(!freed[2].load(Ordering::SeqCst), "the current value is never freed");
        });
    }

    /// A reader coming online while the writer swaps: whatever it loads stays alive
    /// until it reports again.
    fn coming_online(omit_fences: bool) {
        loom::model(move || {
            OMIT_FENCES.with(|f| f.set(omit_fences));
            let (freed, mut w, mut r) = setup();
            let f = freed.clone();
            let reader = loom::thread::spawn(move || {
                r.online();
                let id = r.load().id;
                assert!(!f[id].load(Ordering::SeqCst), "reader holds freed snapshot {id}");
                r.offline();
            });
            w.publish(V { id: 1, freed: freed.clone() });
            w.try_reclaim();
            reader.join().unwrap();
        });
    }

    #[test]
    fn a_reader_coming_online_never_uses_a_freed_snapshot() {
        coming_online(false);
    }

    #[test]
    #[should_panic(expected = "reader holds freed snapshot")]
    fn without_the_fences_a_reader_coming_online_can_use_a_freed_snapshot() {
        coming_online(true);
    }
}

#[cfg(all(test, not(drlb_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::time::Duration;

    /// A value that checks it is alive when read, and counts drops.
    struct Canary {
        magic: u64,
        value: u64,
        drops: Arc<AtomicUsize>,
    }
    impl Drop for Canary {
        fn drop(&mut self) {
            self.magic = 0xdead;
            self.drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn old_value_lives_until_readers_pass() {
        let drops = Arc::new(AtomicUsize::new(0));
        let (mut w, mut rs) = domain(Canary { magic: 7, value: 0, drops: drops.clone() }, 2);
        rs[0].online();
        rs[1].online();
        let t = w.publish(Canary { magic: 7, value: 1, drops: drops.clone() });
        assert_eq!(drops.load(Ordering::Relaxed), 0, "readers have not passed yet");
        rs[0].quiescent();
        assert_eq!(w.try_reclaim(), 1);
        assert!(!w.passed(t));
        rs[1].offline();
        assert!(w.passed(t));
        assert_eq!(w.try_reclaim(), 0);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        assert_eq!(rs[0].load().value, 1);
    }

    /// Readers at full speed, 100k swaps: no reader ever sees a freed value, and every
    /// retired value is freed exactly once.
    #[test]
    fn stress_100k_swaps() {
        let drops = Arc::new(AtomicUsize::new(0));
        let readers = 2;
        let (mut w, rs) = domain(Canary { magic: 7, value: 0, drops: drops.clone() }, readers);
        let stop = Arc::new(AtomicBool::new(false));
        // Readers are online before the first swap, so the writer must wait for them.
        let ready = Arc::new(std::sync::Barrier::new(readers + 1));
        let handles: Vec<_> = rs
            .into_iter()
            .map(|mut r| {
                let stop = stop.clone();
                let ready = ready.clone();
                std::thread::spawn(move || {
                    r.online();
                    ready.wait();
                    let mut last = 0;
                    let mut loads = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..4 {
                            let v = r.load();
                            assert_eq!(v.magic, 7, "read a freed snapshot");
                            assert!(v.value >= last, "went back in time");
                            last = v.value;
                            loads += 1;
                        }
                        r.quiescent();
                    }
                    r.offline();
                    loads
                })
            })
            .collect();
        const SWAPS: u64 = 100_000;
        ready.wait();
        for i in 1..=SWAPS {
            w.publish(Canary { magic: 7, value: i, drops: drops.clone() });
            if i % 64 == 0 {
                assert!(w.wait(w.epoch(), Duration::from_secs(10)), "a reader got stuck");
            }
        }
        stop.store(true, Ordering::Relaxed);
        let loads: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        w.try_reclaim();
        assert_eq!(drops.load(Ordering::Relaxed) as u64, SWAPS, "each old value freed once");
        assert!(loads > 0);
        drop(w);
        assert_eq!(drops.load(Ordering::Relaxed) as u64, SWAPS + 1);
    }
}
