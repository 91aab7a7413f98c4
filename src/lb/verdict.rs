//! What the pipeline decided for one frame. Every outcome has a counter.
use crate::wire::Mac;

/// A backend's address learned from ARP, handed to the manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    pub ip: u32,
    pub mac: Mac,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// L2 header rewritten to the backend in `slot`; transmit.
    Forward { slot: u16, new_flow: bool },
    /// Frame turned into an ARP reply in place; transmit. `learned` when the asker is a backend.
    ArpReply { learned: Option<Neighbor> },
    /// Frame turned into an ICMP echo reply in place; transmit.
    IcmpReply,
    /// An ARP frame from a backend: its MAC is learned, the frame is consumed.
    ArpLearned(Neighbor),
    /// For the director itself (its IP, ARP for or to it): handed unchanged to the
    /// kernel interface. `learned` when it is an ARP frame from a backend.
    Kernel { learned: Option<Neighbor> },
    /// An ICMP error about a service's flow that has no entry on this worker: the worker
    /// hands a copy to each other worker (the flow's owner forwards it) and frees it.
    IcmpRedirect,
    /// A fragment that came before its datagram's first fragment: copied into the
    /// worker's hold area (the frame itself is freed), sent when the first one comes.
    FragmentHeld,
    /// Not transmitted; counted under the reason.
    Drop(DropReason),
}

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Why a frame was dropped. The names are the counter and metric label values.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason { $(#[doc = $doc] $variant,)* }
        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();
            pub fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }
            pub fn describe(self) -> &'static str {
                match self { $(DropReason::$variant => $doc,)* }
            }
        }
    };
}

drop_reasons! {
    NotForUs => "not_for_us", "destination MAC is neither the port's nor broadcast";
    Runt => "runt", "shorter than an Ethernet (+802.1Q) header";
    Oversize => "oversize", "longer than dataplane.mtu: the IP packet (the frame after its Ethernet header and tag) is over the MTU";
    UnsupportedEthertype => "unsupported_ethertype", "not IPv4 or ARP (IPv6, QinQ, a second VLAN tag, ...)";
    ArpMalformed => "arp_malformed", "ARP too short or not Ethernet/IPv4";
    ArpIgnored => "arp_ignored", "ARP neither for a VIP or the director IP nor from a backend";
    Ipv4Malformed => "ipv4_malformed", "IPv4 version != 4, IHL < 5 or total length < header";
    Ipv4Truncated => "ipv4_truncated", "IPv4 total length beyond the frame, or under 20 bytes";
    Ipv4BadChecksum => "ipv4_bad_checksum", "IPv4 header checksum wrong";
    FragmentTimeout => "fragment_timeout", "a fragment held for its datagram's first fragment, which did not come within 100-200 ms";
    FragmentHoldFull => "fragment_hold_full", "a fragment that came before its first fragment while the worker's hold area (32 frames) was full";
    FragmentTooBig => "fragment_too_big", "a fragment that came before its first fragment and is too big to hold (the hold area's slots take a frame of dataplane.mtu)";
    NoService => "no_service", "destination IP, port and protocol match no service";
    L4Malformed => "l4_malformed", "TCP or UDP header short or inconsistent";
    IcmpUnhandled => "icmp_unhandled", "ICMP to a VIP that is neither a valid echo request nor an error message (types 3, 11, 12)";
    IcmpErrorMalformed => "icmp_error_malformed", "ICMP error to a VIP with a bad checksum, or quoting less than an IPv4 header and 8 bytes";
    IcmpErrorNoFlow => "icmp_error_no_flow", "ICMP error to a VIP about no flow (not from a service's VIP:port; or no entry on this worker, which is the only one, or the one it was handed to by another)";
    TcpNoFlow => "tcp_no_flow", "TCP segment without SYN and without a flow entry (IPVS sloppy_tcp=0)";
    NoBackend => "no_backend", "no backend with weight > 0 and a known MAC";
    BackendRemoved => "backend_removed", "flow's backend was removed and on_backend_removed = drop or expire";
    BackendDown => "backend_down", "flow's backend is down (health check, or MAC unknown) and on_backend_down = drop or expire";
    KernelRateLimited => "kernel_rate_limited", "for the kernel interface, over dataplane.kernel_rate";
    KernelQueueFull => "kernel_queue_full", "for the kernel interface, whose queue was full";
    FlowTableFull => "flow_table_full", "new flow refused: its flow-table groups hold only ESTABLISHED flows and syn_flood is drop";
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names_unique() {
        let mut n: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        n.sort();
        n.dedup();
        assert_eq!(n.len(), DropReason::COUNT);
        assert_eq!(DropReason::ALL[DropReason::NoBackend as usize], DropReason::NoBackend);
    }
}
