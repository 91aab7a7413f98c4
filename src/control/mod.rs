pub mod admin;
pub mod config;
pub mod ipvsadm;
pub mod manager;
pub mod server;
pub mod state;
