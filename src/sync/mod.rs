//! The only things that cross the worker boundary: the snapshot pointer (an epoch swap
//! modelled on DPDK's `rte_rcu_qsbr`) and bounded single-producer queues.
pub mod epoch;
pub mod spsc;
