//! The immutable forwarding state every worker reads.
//!
//! The control plane builds a new `Snapshot` for every change (config reload, drlbadm
//! command, a backend MAC learned by ARP) and publishes it with an epoch swap. Workers
//! never write to it.
//!
//! Backends are addressed by a *slot* that the control plane keeps stable across
//! snapshots for as long as the backend exists, plus an *incarnation* that changes when
//! a slot is reused. A flow entry stores both, so after any number of swaps a flow
//! finds its backend again in O(1), and a flow whose backend was removed (slot empty, or
//! reused by another backend) is recognised as such.
use super::maglev::{MhHash, MhKeys, MhTable};
use super::sched;
use super::tcp_state::TimeoutTicks;
use super::{MidFlow, OnGone, Proto, SchedFlags, SchedKind, Timeouts};
use crate::wire::Mac;
use std::sync::Arc;

/// Marks an empty slot in the service hash.
const NO_SERVICE: u16 = u16::MAX;
/// Backend slots (all services together); per-worker per-backend counters are sized by it.
pub const MAX_SLOTS: usize = 4096;
/// Services are u16 indices; the last value marks "none".
pub const MAX_SERVICES: usize = 4096;

/// Whether `services` services with `backends` backends in all fit a snapshot: service
/// indexes are u16 with one value reserved, and per-worker counters are sized by
/// [`MAX_SLOTS`]. The message says which limit.
pub fn check_limits(services: usize, backends: usize) -> Result<(), String> {
    if services >= MAX_SERVICES {
        return Err(format!("{services} services; at most {}", MAX_SERVICES - 1));
    }
    if backends >= MAX_SLOTS {
        return Err(format!("{backends} backends in all; at most {}", MAX_SLOTS - 1));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Backend {
    pub ip: u32,
    pub port: u16,
    pub weight: u32,
    pub mac: Option<Mac>,
    /// Destination MAC (the backend) then source MAC (the port): the whole DR rewrite.
    pub l2: [u8; 12],
    pub incarnation: u16,
    /// In its service (not removed).
    pub present: bool,
    /// Failed its health check.
    pub down: bool,
}

impl Backend {
    fn absent() -> Self {
        Backend {
            ip: 0,
            port: 0,
            weight: 0,
            mac: None,
            l2: [0; 12],
            incarnation: 0,
            present: false,
            down: false,
        }
    }

    /// Can take packets: its MAC is known and it is not down. (A draining backend,
    /// weight 0, still serves its flows.)
    #[inline(always)]
    pub fn serving(&self) -> bool {
        self.mac.is_some() && !self.down
    }
}

/// How a service chooses backends and what its flows do when theirs goes away: the
/// service's settings besides its address and backends, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub sched: SchedKind,
    pub on_removed: OnGone,
    pub on_down: OnGone,
    pub mh_hash: MhHash,
    pub mid_flow: MidFlow,
    /// ipvsadm `-b`: `sh-fallback`, `sh-port`.
    pub sched_flags: SchedFlags,
    /// ipvsadm `-p`: seconds a client keeps its server after its last connection
    /// (0: not persistent). See [`super::persist`].
    pub persistence: u32,
    /// ipvsadm `-M`: the client address is masked by it (host order).
    pub persistence_mask: u32,
}

impl Policy {
    /// `sched` with the defaults for everything else (IPVS's: flows of a gone backend
    /// are dropped; mid-flow segments scheduled only for `mh`).
    pub fn new(sched: SchedKind) -> Policy {
        Policy {
            sched,
            on_removed: OnGone::default(),
            on_down: OnGone::default(),
            mh_hash: MhHash::default(),
            mid_flow: MidFlow::default_for(sched),
            sched_flags: SchedFlags::default(),
            persistence: 0,
            persistence_mask: u32::MAX,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::new(SchedKind::default())
    }
}

#[derive(Debug, Clone)]
pub struct Service {
    pub vip: u32,
    pub port: u16,
    pub proto: Proto,
    pub policy: Policy,
    /// Slots of this service's backends, in configuration order.
    pub backends: Vec<u16>,
    /// The pick sequence (slots); empty when no backend is eligible. While the service
    /// is below its quorum and has a serving sorry server, only the sorry server.
    pub schedule: Box<[u16]>,
    /// Backends up (serving, weight > 0) at least the quorum.
    pub available: bool,
    /// `mh`: the Maglev table new flows are chosen by; `None` for the other schedulers
    /// and while the sorry server takes the new flows.
    pub mh: Option<Arc<MhTable>>,
    /// `sh`: the 256 buckets over every backend of the service ([`sched::sh_table`]);
    /// empty for the other schedulers.
    pub sh: Box<[u16]>,
    /// The service is below its quorum and its sorry server takes the new flows (the
    /// schedule is that server alone, whatever the scheduler).
    pub sorry_takes: bool,
    /// wrr whose cycle is too long to precompute: picks step through the weights as IPVS
    /// does ([`sched::step_pick`]) over `schedule` (the eligible servers).
    pub stepping: Option<sched::Stepping>,
    /// A flow routed without an entry (a SYN under a flood) goes by its hash over
    /// `schedule` alone: no persistence template and no `mh` or `sh` table to consult,
    /// or the sorry server takes the new flows.
    pub by_hash: bool,
}

impl Service {
    /// A backend new flows may go to: serving, with weight > 0 (the `mh` table keeps
    /// drained and down backends; they are skipped at lookup).
    #[inline]
    pub fn eligible(b: &Backend) -> bool {
        b.serving() && b.weight > 0
    }
}

/// Input to [`Snapshot::build`]: one backend as the control plane knows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackendSpec {
    pub slot: u16,
    pub incarnation: u16,
    pub ip: u32,
    pub port: u16,
    pub weight: u32,
    pub mac: Option<Mac>,
    /// Its health check says down.
    pub down: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub vip: u32,
    pub port: u16,
    pub proto: Proto,
    pub policy: Policy,
    pub backends: Vec<BackendSpec>,
    /// Takes new flows only while fewer than `quorum` backends are up (keepalived's
    /// `sorry_server`).
    pub sorry: Option<BackendSpec>,
    /// Backends that must be up for the service to be available (at least 1).
    pub quorum: u32,
    /// `mh`: the table, built by the control plane (it keeps tables that did not
    /// change); `None` for the other schedulers.
    pub mh: Option<Arc<MhTable>>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        ServiceSpec {
            vip: 0,
            port: 0,
            proto: Proto::Tcp,
            policy: Policy::default(),
            backends: Vec::new(),
            sorry: None,
            quorum: 1,
            mh: None,
        }
    }
}

/// The bytes of a frame's first 16 that [`Snapshot::l2_want`] holds: the destination
/// MAC, the EtherType and the IPv4 version and header length.
pub const L2_MASK: crate::mem::Bytes16 = crate::mem::Bytes16([
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0,
]);

/// What the fast path needs of a slot: the MAC rewrite, and the [`route_key`] of the
/// slot and the incarnation it serves as ([`Route::NONE`] when the slot is absent or not
/// serving), so one compare with a flow's route key tells a present, serving,
/// same-incarnation backend.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
pub struct Route {
    l2: [u8; 12],
    key: u32,
    /// The slot's service's VIP as the frame has it (a little-endian load of bytes
    /// 30..34, `WireKey::daddr_wire`): a flow entry keeps no destination address, its
    /// slot stands for it.
    vip: u32,
}

impl Route {
    /// No flow's route key: its slot half (0xffff) is above every slot.
    const NONE: u32 = u32::MAX;
}

impl Default for Route {
    fn default() -> Route {
        Route { l2: [0; 12], key: Route::NONE, vip: 0 }
    }
}

/// A backend slot and its incarnation as one word, as a flow entry holds them (slot in
/// the low half): what [`Snapshot::serving_l2_to`] compares.
#[inline(always)]
pub fn route_key(slot: u16, incarnation: u16) -> u32 {
    u32::from(slot) | u32::from(incarnation) << 16
}

#[derive(Debug)]
pub struct Snapshot {
    pub generation: u64,
    pub port_mac: Mac,
    /// The first 16 bytes of an untagged IPv4 frame with a 20-byte header to the port,
    /// under [`L2_MASK`]: the destination MAC, EtherType 0x0800, version 4 and IHL 5
    /// (the fast path's first check, one compare).
    pub l2_want: crate::mem::Bytes16,
    /// Director IP (host order).
    pub dip: u32,
    pub services: Vec<Service>,
    svc_table: Box<[u16]>,
    svc_mask: usize,
    pub backends: Vec<Backend>,
    /// Per slot (all [`MAX_SLOTS`], so a slot indexes it without a bounds check): the
    /// serving backends' rewrites, for [`Snapshot::serving_l2_to`].
    routes: Box<[Route; MAX_SLOTS]>,
    /// Sorted, unique backend IPs: ARP from these is learned.
    neighbors: Vec<u32>,
    /// Sorted, unique VIPs: ARP and ICMP echo for these are answered.
    vips: Vec<u32>,
    pub timeouts: TimeoutTicks,
    /// `dataplane.syn_flood`: what a new TCP flow does when its table groups are full.
    pub syn_flood: super::SynFlood,
    /// `dataplane.kernel_interface` is set: traffic to the director IP goes to the
    /// kernel (the exception path) instead of being answered or dropped here.
    pub kernel: bool,
    /// `dataplane.hash_seed`'s keys: flows are hashed by them for `mh` tables.
    pub mh_keys: MhKeys,
    /// Some service is persistent (the sweep keeps templates alive only then).
    pub persistent: bool,
    /// `dataplane.mtu`: a frame whose IP packet is longer is dropped (`oversize`).
    pub mtu: u16,
}

#[inline(always)]
fn svc_hash(vip: u32, port: u16, proto: u8) -> usize {
    let x = (u64::from(vip) << 24) ^ (u64::from(port) << 8) ^ u64::from(proto);
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize
}

impl Snapshot {
    /// Builds a snapshot. Errors name the service whose schedule is too long or a slot
    /// out of range; the control plane validates configs so these do not happen there.
    pub fn build(
        generation: u64,
        port_mac: Mac,
        dip: u32,
        timeouts: Timeouts,
        specs: &[ServiceSpec],
    ) -> Result<Snapshot, String> {
        check_limits(
            specs.len(),
            specs.iter().map(|s| s.backends.len() + s.sorry.iter().count()).sum(),
        )?;
        let all = || specs.iter().flat_map(|s| s.backends.iter().chain(&s.sorry));
        let max_slot = all().map(|b| usize::from(b.slot)).max();
        let mut backends = vec![Backend::absent(); max_slot.map_or(0, |m| m + 1)];
        let mut slot_vip = vec![0u32; backends.len()];
        let mut services = Vec::with_capacity(specs.len());
        let mut neighbors = Vec::new();
        let mut vips = Vec::new();
        for s in specs {
            let mut eligible = Vec::new();
            for b in s.backends.iter().chain(&s.sorry) {
                if usize::from(b.slot) >= MAX_SLOTS {
                    return Err(format!("backend slot {} out of range", b.slot));
                }
                let mut l2 = [0u8; 12];
                if let Some(m) = b.mac {
                    l2[..6].copy_from_slice(&m.0);
                }
                l2[6..].copy_from_slice(&port_mac.0);
                let be = Backend {
                    ip: b.ip,
                    port: b.port,
                    weight: b.weight,
                    mac: b.mac,
                    l2,
                    incarnation: b.incarnation,
                    present: true,
                    down: b.down,
                };
                if be.serving() && s.sorry.as_ref() != Some(b) {
                    eligible.push((b.slot, b.weight));
                }
                backends[usize::from(b.slot)] = be;
                slot_vip[usize::from(b.slot)] = s.vip;
                neighbors.push(b.ip);
            }
            let up = eligible.iter().filter(|e| e.1 > 0).count();
            let available = up >= s.quorum.max(1) as usize;
            let sorry = s.sorry.as_ref().filter(|b| !b.down && b.mac.is_some());
            let sorry_takes = sorry.is_some() && !available;
            let mut stepping = None;
            let schedule = match sorry {
                Some(b) if !available => vec![b.slot],
                _ => sched::build(s.policy.sched, &eligible).unwrap_or_else(|| {
                    // wrr weights whose cycle is too long to build: IPVS's gcd stepping
                    // over the eligible servers in IPVS's order (newest first).
                    stepping = Some(sched::Stepping::of(&eligible));
                    eligible.iter().rev().filter(|e| e.1 > 0).map(|e| e.0).collect()
                }),
            };
            vips.push(s.vip);
            services.push(Service {
                vip: s.vip,
                port: s.port,
                proto: s.proto,
                policy: s.policy,
                backends: s.backends.iter().map(|b| b.slot).collect(),
                schedule: schedule.into_boxed_slice(),
                available,
                mh: if sorry_takes { None } else { s.mh.clone() },
                sh: if s.policy.sched == SchedKind::Sh {
                    // IPVS's order: newest first (see sched's module docs).
                    let all: Vec<(u16, u32)> =
                        s.backends.iter().rev().map(|b| (b.slot, b.weight)).collect();
                    sched::sh_table(&all)
                } else {
                    Box::new([])
                },
                sorry_takes,
                stepping,
                by_hash: sorry_takes
                    || (s.policy.persistence == 0
                        && s.mh.is_none()
                        && s.policy.sched != SchedKind::Sh),
            });
        }
        neighbors.sort_unstable();
        neighbors.dedup();
        vips.sort_unstable();
        vips.dedup();
        let size = (services.len() * 2).max(8).next_power_of_two();
        let mut svc_table = vec![NO_SERVICE; size].into_boxed_slice();
        let mask = size - 1;
        for (i, s) in services.iter().enumerate() {
            let mut h = svc_hash(s.vip, s.port, s.proto.number()) & mask;
            while svc_table[h] != NO_SERVICE {
                let o = &services[usize::from(svc_table[h])];
                if (o.vip, o.port, o.proto) == (s.vip, s.port, s.proto) {
                    return Err(format!(
                        "duplicate service {}:{}",
                        std::net::Ipv4Addr::from(s.vip),
                        s.port
                    ));
                }
                h = (h + 1) & mask;
            }
            svc_table[h] = i as u16;
        }
        let mut routes: Box<[Route; MAX_SLOTS]> =
            vec![Route::default(); MAX_SLOTS].into_boxed_slice().try_into().expect("MAX_SLOTS");
        for (slot, (r, b)) in routes.iter_mut().zip(&backends).enumerate() {
            if b.present && b.serving() {
                let (key, vip) = (route_key(slot as u16, b.incarnation), slot_vip[slot]);
                *r = Route { l2: b.l2, key, vip: u32::from_le_bytes(vip.to_be_bytes()) };
            }
        }
        let mut l2_want = crate::mem::Bytes16::default();
        l2_want.0[..6].copy_from_slice(&port_mac.0);
        l2_want.0[12..15].copy_from_slice(&[0x08, 0x00, 0x45]);
        Ok(Snapshot {
            generation,
            port_mac,
            l2_want,
            dip,
            services,
            svc_table,
            svc_mask: mask,
            backends,
            routes,
            neighbors,
            vips,
            timeouts: TimeoutTicks::new(&timeouts),
            syn_flood: super::SynFlood::default(),
            kernel: false,
            mh_keys: MhKeys::default(),
            persistent: specs.iter().any(|s| s.policy.persistence > 0),
            mtu: crate::control::config::DEFAULT_MTU,
        })
    }

    /// The service for (VIP, port, IP protocol number), if any.
    #[inline]
    pub fn service(&self, vip: u32, port: u16, proto: u8) -> Option<(u16, &Service)> {
        let mut h = svc_hash(vip, port, proto) & self.svc_mask;
        loop {
            let i = self.svc_table[h];
            if i == NO_SERVICE {
                return None;
            }
            let s = &self.services[usize::from(i)];
            if s.vip == vip && s.port == port && s.proto.number() == proto {
                return Some((i, s));
            }
            h = (h + 1) & self.svc_mask;
        }
    }

    /// The MAC rewrite of the backend whose [`route_key`] is `key`, if it is present,
    /// still the same incarnation and serving (`backend(slot, incarnation)` and
    /// `serving()`, in one compare), for a frame whose destination address (as the frame
    /// has it, a little-endian load) is `daddr_wire`: `None` also when that is not the
    /// slot's service's VIP. The fast path's check of a flow entry, which keeps the slot
    /// for its destination.
    #[inline(always)]
    pub fn serving_l2_to(&self, key: u32, daddr_wire: u32) -> Option<&[u8; 12]> {
        // The slot half indexes (slots < MAX_SLOTS; a key of another slot never equals
        // the route's).
        let r = &self.routes[key as usize & (MAX_SLOTS - 1)];
        (r.key == key && r.vip == daddr_wire).then_some(&r.l2)
    }

    /// The backend in `slot` if it is present and still the same incarnation.
    #[inline]
    pub fn backend(&self, slot: u16, incarnation: u16) -> Option<&Backend> {
        match self.backends.get(usize::from(slot)) {
            Some(b) if b.present && b.incarnation == incarnation => Some(b),
            _ => None,
        }
    }

    /// An IPv4 packet to `daddr` is the director's own traffic for the kernel
    /// interface (fragments included: the kernel reassembles them).
    #[inline(always)]
    pub fn for_kernel(&self, daddr: u32) -> bool {
        self.kernel && daddr == self.dip
    }

    pub fn is_vip(&self, ip: u32) -> bool {
        self.vips.binary_search(&ip).is_ok()
    }

    pub fn is_backend_ip(&self, ip: u32) -> bool {
        self.neighbors.binary_search(&ip).is_ok()
    }

    pub fn vips(&self) -> &[u32] {
        &self.vips
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(slot: u16, incarnation: u16, mac: Option<Mac>, down: bool) -> BackendSpec {
        BackendSpec {
            slot,
            incarnation,
            ip: 0x0a00_0001 + u32::from(slot),
            port: 80,
            weight: 1,
            mac,
            down,
        }
    }

    #[test]
    fn serving_l2_is_backend_and_serving_in_one_compare() {
        let mac = Mac([0, 0xc, 0x29, 0, 0, 1]);
        let m = Some(mac);
        let spec = ServiceSpec {
            vip: 0xc0a8_01c8,
            port: 80,
            backends: vec![
                backend(0, 3, m, false),
                backend(1, 1, m, true),     // down
                backend(2, 1, None, false), // MAC unknown
                backend(7, 2, m, false),
            ],
            ..ServiceSpec::default()
        };
        let port = Mac([2, 0, 0, 0, 0, 1]);
        let s = Snapshot::build(1, port, 0, Timeouts::default(), &[spec]).unwrap();
        // The VIP as a frame's bytes 30..34 load it (little-endian).
        let vip = u32::from_le_bytes(0xc0a8_01c8u32.to_be_bytes());
        let serving_l2 = |slot, inc| s.serving_l2_to(route_key(slot, inc), vip);
        for slot in 0..MAX_SLOTS as u16 {
            for inc in 0..4 {
                let want = s.backend(slot, inc).filter(|b| b.serving()).map(|b| &b.l2);
                assert_eq!(serving_l2(slot, inc), want, "slot {slot} incarnation {inc}");
                // To another destination: never (the slot stands for its VIP).
                assert_eq!(s.serving_l2_to(route_key(slot, inc), vip ^ 1), None);
            }
        }
        let l2 = serving_l2(0, 3).expect("serving");
        assert_eq!((&l2[..6], &l2[6..]), (&mac.0[..], &port.0[..]));
        assert!(serving_l2(7, 2).is_some() && serving_l2(7, 1).is_none());
    }
}
