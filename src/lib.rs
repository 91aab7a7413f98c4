//! drlb: an LVS-DR load balancer as a DPDK poll-mode forwarder.
//!
//! The crate is cut along the architecture; each folder is one concern:
//! - [`wire`]: safe, allocation-free packet views with emit;
//! - [`lb`]: pure balancing logic, no DPDK, no threads: the pipeline, the flow table,
//!   the schedulers, the snapshot;
//! - [`dataplane`]: the worker loop around the pipeline, and the counter table;
//! - [`control`]: the manager: config, desired state, snapshots, ARP resolution;
//! - [`admin`]: the control-socket protocol, its server and client, the ipvsadm formats;
//! - [`health`]: real-server health checks (tcp, http, exec) on a thread of their own;
//! - [`kernel`]: the kernel interface: the director's own traffic to and from the kernel;
//! - [`observe`]: Prometheus metrics, DPDK telemetry, logging;
//! - [`daemon`]: the drlb process's start-up phases and shutdown;
//! - [`dpdk`]: the safe wrappers over DPDK (EAL, ports, queues, bursts, telemetry);
//! - [`sync`]: the epoch swap and the SPSC queues that cross the worker boundary;
//! - [`mem`]: big tables, prefetch and SIMD compare for the hot path;
//! - [`testing`]: frames and pcaps for tests, benchmarks and the generators.
//!
//! `unsafe` is denied everywhere but in [`dpdk`], [`mem`] and [`sync`], where every
//! `unsafe` block carries a `// SAFETY:` comment (clippy's
//! `undocumented_unsafe_blocks` is denied crate-wide).
#![deny(unsafe_code)]

pub mod admin;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod dpdk;
pub mod health;
pub mod kernel;
pub mod lb;
pub mod mem;
pub mod observe;
pub mod sync;
pub mod testing;
pub mod wire;
