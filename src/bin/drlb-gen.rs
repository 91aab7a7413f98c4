//! drlb-gen: writes test traffic as a pcap (for net_pcap rx_pcap=, tests and benchmarks).
//!
//!   drlb-gen --flows 1024 --out flows.pcap --dst-mac 02:70:63:61:70:00
#![deny(unsafe_code)]
use clap::Parser;
use drlb::testing::pcap::{self, FlowsSpec};
use drlb::wire::Mac;
use std::net::Ipv4Addr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "drlb-gen",
    version,
    about = "Write TCP flows to a VIP (and optional junk) as a pcap file"
)]
struct Args {
    /// Output pcap file.
    #[arg(long)]
    out: PathBuf,
    /// Number of distinct flows (client IP x port).
    #[arg(long, default_value_t = 1024)]
    flows: u32,
    /// Packets per flow: a SYN, then ACK data segments.
    #[arg(long, default_value_t = 1)]
    packets_per_flow: u32,
    /// Destination MAC: the director port's MAC (net_pcap0's default is 02:70:63:61:70:00).
    #[arg(long, default_value = "02:70:63:61:70:00")]
    dst_mac: Mac,
    #[arg(long, default_value = "02:c1:00:00:00:01")]
    src_mac: Mac,
    #[arg(long, default_value = "192.168.1.200")]
    vip: Ipv4Addr,
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// Frame length in bytes without FCS (60 = 64 on the wire).
    #[arg(long, default_value_t = 60)]
    size: usize,
    /// Every packet an ACK data segment, no SYN: established flows (for a service with
    /// mid_flow = "schedule", which takes a flow up from its first segment, as IPVS's
    /// sloppy_tcp)
    #[arg(long)]
    ack_only: bool,
    /// Send every flow's first packet before any second packet.
    #[arg(long)]
    interleave: bool,
    /// Append one frame of every malformed shape.
    #[arg(long)]
    junk: bool,
    /// Index of the first flow (client address/port), so two files can hold disjoint
    /// flows (e.g. established clients and a flood of spoofed SYNs).
    #[arg(long, default_value_t = 0)]
    first_flow: u32,
}

fn main() {
    let a = Args::parse();
    if !(60..=1514).contains(&a.size) {
        eprintln!("drlb-gen: --size must be 60..=1514 (frame without FCS)");
        std::process::exit(2);
    }
    let spec = FlowsSpec {
        flows: a.flows,
        packets_per_flow: a.packets_per_flow.max(1),
        dst_mac: a.dst_mac,
        src_mac: a.src_mac,
        vip: u32::from(a.vip),
        port: a.port,
        frame_len: a.size,
        interleave: a.interleave,
        ack_only: a.ack_only,
    };
    let mut frames = pcap::flows_from(&spec, a.first_flow);
    if a.junk {
        frames.extend(pcap::junk(a.dst_mac, a.src_mac, u32::from(a.vip)));
    }
    if let Err(e) = pcap::write(&a.out, &frames) {
        eprintln!("drlb-gen: {}: {e}", a.out.display());
        std::process::exit(1);
    }
    println!("drlb-gen: wrote {} frames ({} flows) to {}", frames.len(), a.flows, a.out.display());
}
