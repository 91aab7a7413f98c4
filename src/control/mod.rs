//! The control plane of the daemon: the config file, the desired state built from it
//! (and changed by drlbadm and reloads), the snapshots it publishes to the workers, ARP
//! resolution of real servers, and the manager loop that runs it all on the main lcore.
pub mod arp;
pub mod config;
pub mod health;
pub mod listing;
pub mod manager;
pub mod state;
