//! What an operator sees of a running drlb besides drlbadm: Prometheus metrics, DPDK
//! telemetry commands and the log. All of it reads the workers' counters (see
//! [`crate::dataplane::counters`], one table for every counter) and the manager's
//! listing; none of it runs on a worker.
pub mod logging;
pub mod metrics;
pub mod telemetry;
