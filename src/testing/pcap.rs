//! Traffic for tests, benchmarks and the demo, written as pcap files: TCP flows to a VIP
//! (SYN then ACK data segments), optional UDP, and junk of every malformed shape.
use super::frames::{self, Flow};
use crate::wire::tcp::flags::{ACK, PSH, SYN};
use crate::wire::Mac;
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use std::time::Duration;

/// Client addresses for flow `i`: 10.{i>>16}.{i>>8}.{i} style spread plus a port, so
/// every flow is a distinct 5-tuple and RSS spreads them.
pub fn client(i: u32) -> (u32, u16) {
    (0x0a00_0000 | (i & 0x00ff_ffff), 1024 + (i % 60000) as u16)
}

#[derive(Debug, Clone)]
pub struct FlowsSpec {
    pub flows: u32,
    /// Packets per flow: the first is a SYN, the rest ACK|PSH data.
    pub packets_per_flow: u32,
    pub dst_mac: Mac,
    pub src_mac: Mac,
    pub vip: u32,
    pub port: u16,
    /// Frame length (>= 60; padded or filled with payload).
    pub frame_len: usize,
    /// Round-robin over flows (every flow's SYN first) instead of flow by flow.
    pub interleave: bool,
    /// Every packet ACK|PSH data, no SYN: established traffic (for a service with
    /// `mid_flow = "schedule"`, which takes up a flow from its first segment).
    pub ack_only: bool,
}

/// One TCP frame of flow `i`, packet `k`.
pub fn flow_frame(s: &FlowsSpec, i: u32, k: u32) -> Vec<u8> {
    let (saddr, sport) = client(i);
    let f =
        Flow { dst_mac: s.dst_mac, src_mac: s.src_mac, saddr, daddr: s.vip, sport, dport: s.port };
    let (fl, payload) =
        if k == 0 && !s.ack_only { (SYN, 0) } else { (ACK | PSH, s.frame_len.saturating_sub(54)) };
    frames::tcp(&f, fl, payload, s.frame_len.max(frames::MIN_FRAME))
}

pub fn flows(s: &FlowsSpec) -> Vec<Vec<u8>> {
    flows_from(s, 0)
}

/// [`flows`] for flow indexes `first..first + s.flows` (client address and port follow
/// the index), so two files can hold disjoint flows: established clients in one, a
/// flood of spoofed SYNs in another.
pub fn flows_from(s: &FlowsSpec, first: u32) -> Vec<Vec<u8>> {
    let ids = first..first.saturating_add(s.flows);
    let mut v = Vec::with_capacity((s.flows * s.packets_per_flow) as usize);
    if s.interleave {
        for k in 0..s.packets_per_flow {
            for i in ids.clone() {
                v.push(flow_frame(s, i, k));
            }
        }
    } else {
        for i in ids {
            for k in 0..s.packets_per_flow {
                v.push(flow_frame(s, i, k));
            }
        }
    }
    v
}

/// Frames that must all be dropped (one per malformed shape), addressed to `dst_mac`.
pub fn junk(dst_mac: Mac, src_mac: Mac, vip: u32) -> Vec<Vec<u8>> {
    let f = Flow { dst_mac, src_mac, saddr: 0x0a63_0001, daddr: vip, sport: 999, dport: 80 };
    let base = frames::tcp(&f, SYN, 0, 60);
    let set = |at: usize, b: &[u8]| {
        let mut x = base.clone();
        x[at..at + b.len()].copy_from_slice(b);
        x
    };
    vec![
        vec![0xffu8; 10],                                                            // runt
        set(12, &[0x86, 0xdd]),                                                      // IPv6
        set(14, &[0x55]),       // IPv4 version 5
        set(14, &[0x44]),       // IHL 4
        set(16, &[0x05, 0xdc]), // total length past the frame
        set(24, &[0xbe, 0xef]), // bad header checksum
        frames::tcp(&Flow { dst_mac: Mac([2, 0x99, 0, 0, 0, 9]), ..f }, SYN, 0, 60), // not for us
        frames::tcp(&Flow { dport: 443, ..f }, SYN, 0, 60), // no service
        frames::tcp(&Flow { sport: 998, ..f }, ACK, 0, 60), // ACK without a flow
        base[..24].to_vec(),    // short IPv4
    ]
}

pub fn write(path: &std::path::Path, frames: &[Vec<u8>]) -> std::io::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = PcapWriter::new(file).map_err(std::io::Error::other)?;
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_micros(i as u64);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f)).map_err(std::io::Error::other)?;
    }
    Ok(())
}

pub fn read(path: &std::path::Path) -> std::io::Result<Vec<Vec<u8>>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut r = PcapReader::new(file).map_err(std::io::Error::other)?;
    let mut v = Vec::new();
    while let Some(p) = r.next_packet() {
        v.push(p.map_err(std::io::Error::other)?.data.into_owned());
    }
    Ok(v)
}
