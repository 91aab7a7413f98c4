//! Connection counts per backend, per worker: what `-ln` shows as ActiveConn/InActConn
//! and what the connection-count schedulers (wlc, lc, sed, nq) weigh.
//!
//! IPVS keeps one `activeconns`/`inactconns` pair per real server, changed with atomic
//! read-modify-writes from every CPU. drlb's workers share nothing they write: each
//! worker has its own row of counts (one writer: a relaxed load and a relaxed store, no
//! lock, no read-modify-write), kept by its flow table as entries are created, change
//! state, are rebound and are cleared; a scheduler sums the rows of all workers for the
//! backends of one service, on a miss only.
//!
//! The counts follow IPVS: a new connection is inactive (IPVS's `IP_VS_CONN_F_INACTIVE`
//! in the destination's `conn_flags`), becomes active when its TCP state becomes
//! ESTABLISHED and inactive again when it leaves it; UDP flows are always inactive.
//!
//! **How stale.** Creation and state changes are published at once (what another worker
//! reads is at most the few nanoseconds of a store's way between cores old). Expiry is
//! lazy in the flow table: an entry whose time is up is counted until the table clears
//! it, by the sweep (which passes every group once per cycle: the worker sweeps a few
//! groups each loop, one per burst under full load) or by reusing its place. IPVS counts
//! a connection until its timer fires; drlb until the sweep finds it, at most one sweep
//! cycle later.
//!
//! **Reused slots.** A backend slot that is given to another backend gets a new
//! incarnation. Each count carries the incarnation it counts (16 bits over a 48-bit
//! count): the first flow of the new incarnation restarts the count at 1, later changes
//! to flows of the old one are ignored, and a reader asking for an incarnation gets 0
//! from a row that still counts another.
use super::snapshot::MAX_SLOTS;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

const COUNT_BITS: u32 = 48;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

#[derive(Default)]
#[repr(C)]
struct Cell {
    /// incarnation << 48 | count, for ESTABLISHED flows and for the others.
    active: AtomicU64,
    inactive: AtomicU64,
}

/// Every worker's row of counts.
pub struct ConnCounts {
    rows: Box<[Cell]>,
    workers: usize,
}

impl ConnCounts {
    /// Rows for `workers` workers (at least 1), every count 0.
    pub fn new(workers: usize) -> Arc<ConnCounts> {
        let workers = workers.max(1);
        let rows = (0..workers * MAX_SLOTS).map(|_| Cell::default()).collect();
        Arc::new(ConnCounts { rows, workers })
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// (active, inactive) connections of the backend in `slot` with `incarnation`,
    /// summed over the workers.
    #[inline]
    pub fn get(&self, slot: u16, incarnation: u16) -> (u64, u64) {
        let tag = u64::from(incarnation) << COUNT_BITS;
        let count = |w: u64| if w & !COUNT_MASK == tag { w & COUNT_MASK } else { 0 };
        let (mut a, mut i) = (0, 0);
        for wk in 0..self.workers {
            let c = &self.rows[wk * MAX_SLOTS + usize::from(slot)];
            a += count(c.active.load(Relaxed));
            i += count(c.inactive.load(Relaxed));
        }
        (a, i)
    }
}

/// One worker's row: written only by that worker (its flow table).
#[derive(Clone)]
pub struct ConnRow {
    all: Arc<ConnCounts>,
    base: usize,
}

impl ConnRow {
    /// Worker `worker`'s row of `all`. Panics if there is no such row (a start-up bug).
    pub fn new(all: &Arc<ConnCounts>, worker: usize) -> ConnRow {
        assert!(worker < all.workers, "worker {worker} has no row of connection counts");
        ConnRow { all: all.clone(), base: worker * MAX_SLOTS }
    }

    /// A row of its own (one worker, nobody else reads it): tests and benches.
    pub fn private() -> ConnRow {
        ConnRow::new(&ConnCounts::new(1), 0)
    }

    /// All workers' counts, for a scheduler.
    #[inline(always)]
    pub fn all(&self) -> &ConnCounts {
        &self.all
    }

    #[inline(always)]
    fn word(&self, slot: u16, active: bool) -> Option<&AtomicU64> {
        let c = self.all.rows.get(self.base + usize::from(slot))?;
        Some(if active { &c.active } else { &c.inactive })
    }

    /// A flow of (`slot`, `incarnation`) is now counted as `active` or not.
    #[inline]
    pub fn add(&self, slot: u16, incarnation: u16, active: bool) {
        let Some(w) = self.word(slot, active) else { return };
        let tag = u64::from(incarnation) << COUNT_BITS;
        let v = w.load(Relaxed);
        // One writer: load and store, not a read-modify-write. A new incarnation
        // restarts the count.
        let next = if v & !COUNT_MASK == tag { v + 1 } else { tag | 1 };
        if next & COUNT_MASK != 0 {
            w.store(next, Relaxed);
        }
    }

    /// A flow of (`slot`, `incarnation`) counted as `active` or not is no longer.
    #[inline]
    pub fn sub(&self, slot: u16, incarnation: u16, active: bool) {
        let Some(w) = self.word(slot, active) else { return };
        let tag = u64::from(incarnation) << COUNT_BITS;
        let v = w.load(Relaxed);
        if v & !COUNT_MASK == tag && v & COUNT_MASK > 0 {
            w.store(v - 1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_and_incarnations_restart() {
        let all = ConnCounts::new(2);
        let (w0, w1) = (ConnRow::new(&all, 0), ConnRow::new(&all, 1));
        w0.add(3, 1, false);
        w0.add(3, 1, true);
        w1.add(3, 1, true);
        assert_eq!(all.get(3, 1), (2, 1));
        assert_eq!(all.get(3, 2), (0, 0), "another incarnation has none");
        w0.add(3, 2, true); // the slot went to another backend
        assert_eq!(all.get(3, 2), (1, 0));
        w0.sub(3, 1, true); // an old flow's change: ignored
        assert_eq!(all.get(3, 2), (1, 0));
        assert_eq!(all.get(3, 1), (1, 1), "worker 1 still counts the old one");
        w1.sub(3, 1, true);
        w1.sub(3, 1, true); // never below 0
        assert_eq!(all.get(3, 1), (0, 1));
    }
}
