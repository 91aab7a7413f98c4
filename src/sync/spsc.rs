//! A bounded single-producer single-consumer queue (Lamport ring).
//!
//! Used for ARP learned by a worker (worker -> manager), control frames the manager
//! wants sent (manager -> worker 0), and frames for and from the kernel interface
//! (owned mbufs, worker <-> the kernel thread). `push` and `pop` are wait-free: one
//! acquire load and one release store each, no read-modify-write. A full queue refuses
//! the push (and gives the value back) and the caller counts it. Values still queued
//! when both ends are gone are dropped with the ring.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[repr(align(64))]
struct Pad(AtomicUsize);

struct Ring<T> {
    buf: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    /// Next index to write; written only by the producer.
    head: Pad,
    /// Next index to read; written only by the consumer.
    tail: Pad,
}

// SAFETY: a slot is written only by the producer while it is outside [tail, head) and
// read only by the consumer while inside it; the head/tail release/acquire pairs order
// those accesses. T: Send because values move between threads.
unsafe impl<T: Send> Sync for Ring<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Ring<T> {}

pub struct Producer<T> {
    ring: Arc<Ring<T>>,
}
pub struct Consumer<T> {
    ring: Arc<Ring<T>>,
}

/// A queue holding up to `capacity` (rounded up to a power of two) values.
pub fn channel<T: Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let n = capacity.max(2).next_power_of_two();
    let ring = Arc::new(Ring {
        buf: (0..n).map(|_| UnsafeCell::new(MaybeUninit::uninit())).collect(),
        mask: n - 1,
        head: Pad(AtomicUsize::new(0)),
        tail: Pad(AtomicUsize::new(0)),
    });
    (Producer { ring: ring.clone() }, Consumer { ring })
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // Both ends are gone (the ring is dropped with the last Arc): nobody else reads
        // head or tail any more.
        let (mut tail, head) = (*self.tail.0.get_mut(), *self.head.0.get_mut());
        while tail != head {
            // SAFETY: slots in [tail, head) hold values pushed and never popped.
            unsafe { (*self.buf[tail & self.mask].get()).assume_init_drop() };
            tail = tail.wrapping_add(1);
        }
    }
}

impl<T> Producer<T> {
    /// How many pushes would succeed now (at least; the consumer may free more).
    #[inline]
    pub fn room(&self) -> usize {
        let r = &*self.ring;
        // Acquire on tail as in push; head is ours.
        r.mask + 1 - r.head.0.load(Ordering::Relaxed).wrapping_sub(r.tail.0.load(Ordering::Acquire))
    }

    /// Enqueues `v`; gives it back when the queue is full.
    #[inline]
    pub fn push(&mut self, v: T) -> Result<(), T> {
        let r = &*self.ring;
        // Relaxed: only this producer writes head.
        let head = r.head.0.load(Ordering::Relaxed);
        // Acquire: the consumer's reads of slots before `tail` are done.
        let tail = r.tail.0.load(Ordering::Acquire);
        if head.wrapping_sub(tail) > r.mask {
            return Err(v);
        }
        // SAFETY: slot `head` is outside [tail, head), so the consumer does not touch it.
        unsafe { (*r.buf[head & r.mask].get()).write(v) };
        // Release: the slot write is visible before the consumer sees the new head.
        r.head.0.store(head.wrapping_add(1), Ordering::Release);
        Ok(())
    }
}

impl<T> Consumer<T> {
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        let r = &*self.ring;
        // Relaxed: only this consumer writes tail.
        let tail = r.tail.0.load(Ordering::Relaxed);
        // Acquire: pairs with the producer's release of head.
        let head = r.head.0.load(Ordering::Acquire);
        if tail == head {
            return None;
        }
        // SAFETY: slot `tail` is inside [tail, head): written by the producer, released;
        // the value is moved out and the slot counts as empty once tail moves past it.
        let v = unsafe { (*r.buf[tail & r.mask].get()).assume_init_read() };
        // Release: our read is done before the producer may reuse the slot.
        r.tail.0.store(tail.wrapping_add(1), Ordering::Release);
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_full() {
        let (mut p, mut c) = channel::<u32>(4);
        for i in 0..4 {
            p.push(i).unwrap();
        }
        assert_eq!(p.push(9), Err(9));
        assert_eq!(p.room(), 0);
        assert_eq!(c.pop(), Some(0));
        p.push(4).unwrap();
        assert_eq!((1..=4).map(|_| c.pop().unwrap()).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert!(c.pop().is_none());
    }

    #[test]
    fn values_left_in_the_queue_are_dropped_with_it() {
        let counted = std::sync::Arc::new(());
        let (mut p, mut c) = channel(4);
        for _ in 0..3 {
            p.push(counted.clone()).unwrap();
        }
        drop(c.pop());
        assert_eq!(std::sync::Arc::strong_count(&counted), 3);
        drop((p, c));
        assert_eq!(std::sync::Arc::strong_count(&counted), 1, "nothing leaked");
    }

    #[test]
    fn threads_see_every_value_in_order() {
        let (mut p, mut c) = channel::<u64>(64);
        let n = 1_000_000u64;
        let t = std::thread::spawn(move || {
            let mut i = 0;
            while i < n {
                if p.push(i).is_ok() {
                    i += 1;
                }
            }
        });
        let mut next = 0;
        while next < n {
            if let Some(v) = c.pop() {
                assert_eq!(v, next);
                next += 1;
            }
        }
        t.join().unwrap();
    }
}
