//! What crosses the boundary between the manager and the workers, lock-free:
//! - the snapshot pointer: an epoch swap modelled on DPDK's `rte_rcu_qsbr` ([`epoch`]);
//! - bounded single-producer single-consumer queues ([`spsc`]): ARP learned by a worker,
//!   control frames to send, flow entries for a connection dump.
//!
//! Besides these, the workers' counters cross it (single-writer atomics, see
//! `dataplane::counters`) and each worker's latency histogram, which the worker merges
//! into a `Mutex` with `try_lock` about once a tick (never per packet; it skips a
//! merge rather than wait).
pub mod epoch;
pub mod spsc;
