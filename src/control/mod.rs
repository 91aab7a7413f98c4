pub mod admin;
pub mod config;
pub mod ipvsadm;
pub mod manager;
pub mod metrics;
pub mod server;
pub mod state;
pub mod telemetry;
