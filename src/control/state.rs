//! The desired state (the config, as changed by reloads and drlbadm) plus what the
//! director learned (backend MACs by ARP, health by checks), and the stable backend
//! slots that let flows survive snapshot swaps.
//!
//! Slot rules (IPVS keeps removed destinations in a trash list for the same reason):
//! - a backend keeps its (slot, incarnation) for as long as it stays in its service;
//! - a removed backend's slot is kept for it (trashed, absent from the snapshot): its
//!   flows see "removed" and follow `on_backend_removed`; re-added, the same address
//!   gets the same slot and incarnation back, so those flows resume;
//! - a new backend takes a never-used slot, else the slot trashed longest ago, with the
//!   next incarnation: old flows never mistake it for theirs, and its counters start
//!   from zero (the listing subtracts the slot's counts at reuse, [`SlotInfo::baseline`]).
use super::config::{Config, ServiceConf};
use super::health::{CheckResult, Health, HealthState};
use crate::lb::maglev::{MhBackend, MhKeys, MhTable};
use crate::lb::snapshot::{BackendSpec, Policy, ServiceSpec, MAX_SLOTS};
use crate::lb::{Proto, SchedKind, Snapshot};
use crate::wire::Mac;
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

/// Identity of a backend (or a sorry server): its service and its IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendKey {
    pub vip: Ipv4Addr,
    pub port: u16,
    pub proto: Proto,
    pub rip: Ipv4Addr,
}

impl BackendKey {
    pub fn of(s: &ServiceConf, rip: Ipv4Addr) -> Self {
        BackendKey { vip: s.vip, port: s.port, proto: s.protocol, rip }
    }
}

impl std::fmt::Display for BackendKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (proto, vip, port, rip) = (self.proto.ipvsadm_name(), self.vip, self.port, self.rip);
        write!(f, "real server {rip}:{port} of {proto} {vip}:{port}")
    }
}

/// Who holds a backend slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
    pub key: BackendKey,
    pub incarnation: u16,
    /// In the config now (false: trashed, kept for the key in case it comes back).
    pub present: bool,
    /// The slot's counters (conns, packets, bytes) summed over workers when this key
    /// got it: the listing shows the counts since.
    pub baseline: [u64; 3],
}

pub struct ControlState {
    pub cfg: Config,
    /// By slot.
    slots: Vec<Option<SlotInfo>>,
    by_key: HashMap<BackendKey, u16>,
    /// Trashed slots, longest ago first.
    trash: VecDeque<u16>,
    /// Slots whose key changed since the caller last asked ([`Self::take_reassigned`]).
    reassigned: Vec<u16>,
    /// MACs learned by ARP, by IP.
    pub learned: HashMap<Ipv4Addr, Mac>,
    /// Health of every checked backend (absent: no check).
    pub health: HashMap<BackendKey, HealthState>,
    pub generation: u64,
    /// Each backend's last non-zero weight (IPVS `last_weight`): the `mh` tables are
    /// built from it, so draining to 0 does not rebuild them. Kept while the backend
    /// is in the config.
    last_weight: HashMap<BackendKey, u32>,
    /// The `mh` table last built for each service, with what it was built from: reused
    /// while that does not change (a MAC learned or a health change does not touch it).
    mh_tables: HashMap<(Ipv4Addr, u16, Proto), (MhInputs, Arc<MhTable>)>,
}

/// What an `mh` table is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MhInputs {
    size: u32,
    seed: String,
    backends: Vec<MhBackend>,
}

impl ControlState {
    pub fn new(cfg: Config) -> Self {
        let mut s = ControlState {
            cfg,
            slots: Vec::new(),
            by_key: HashMap::new(),
            trash: VecDeque::new(),
            reassigned: Vec::new(),
            learned: HashMap::new(),
            health: HashMap::new(),
            generation: 0,
            last_weight: HashMap::new(),
            mh_tables: HashMap::new(),
        };
        s.assign_slots();
        // The first holders own their slots' counts from zero: the counters start with
        // the process, and traffic may be counted before the manager's first refresh.
        s.reassigned.clear();
        s
    }

    /// Every backend and sorry server of the config, in config order.
    fn keys(cfg: &Config) -> Vec<BackendKey> {
        cfg.services
            .iter()
            .flat_map(|s| {
                let ips = s.backends.iter().map(|b| b.ip).chain(s.sorry_server);
                ips.map(move |ip| BackendKey::of(s, ip))
            })
            .collect()
    }

    /// Gives every backend of the config a slot (see the module docs).
    fn assign_slots(&mut self) {
        let want = Self::keys(&self.cfg);
        for (k, &slot) in &self.by_key {
            let info =
                self.slots[usize::from(slot)].as_mut().expect("by_key points at a held slot");
            if info.present && !want.contains(k) {
                info.present = false;
                self.trash.push_back(slot);
            }
        }
        for k in want {
            if let Some(&slot) = self.by_key.get(&k) {
                let info = self.slots[usize::from(slot)].as_mut().expect("held");
                if !info.present {
                    info.present = true; // back from the trash: its flows resume
                    self.trash.retain(|&s| s != slot);
                }
                continue;
            }
            let (slot, incarnation) = match self.slots.iter().position(Option::is_none) {
                Some(s) => (s, 1),
                None if self.slots.len() < MAX_SLOTS => {
                    self.slots.push(None);
                    (self.slots.len() - 1, 1)
                }
                None => {
                    let s = self
                        .trash
                        .pop_front()
                        .expect("validation bounds the backends below MAX_SLOTS");
                    let old = self.slots[usize::from(s)].take().expect("trashed slots are held");
                    self.by_key.remove(&old.key);
                    (usize::from(s), old.incarnation.wrapping_add(1).max(1))
                }
            };
            self.slots[slot] =
                Some(SlotInfo { key: k, incarnation, present: true, baseline: [0; 3] });
            self.by_key.insert(k, slot as u16);
            self.reassigned.push(slot as u16);
        }
        // Health is kept for the servers that stay; a removed one starts afresh.
        let checked: std::collections::HashSet<BackendKey> = self.checked_keys().collect();
        self.health.retain(|k, _| checked.contains(k));
        // A weight of 0 keeps the last one; a removed server forgets it.
        let mut last = HashMap::new();
        for s in &self.cfg.services {
            for b in &s.backends {
                let k = BackendKey::of(s, b.ip);
                let w = if b.weight > 0 { b.weight } else { self.last_weight(&k) };
                last.insert(k, w);
            }
        }
        self.last_weight = last;
        let services: std::collections::HashSet<_> =
            self.cfg.services.iter().map(|s| (s.vip, s.port, s.protocol)).collect();
        self.mh_tables.retain(|k, _| services.contains(k));
    }

    /// A backend's last non-zero weight (0: it never had one).
    pub fn last_weight(&self, k: &BackendKey) -> u32 {
        self.last_weight.get(k).copied().unwrap_or(0)
    }

    /// The `mh` table of a service, built from its backends' addresses, slots and last
    /// weights, reused when none of that (nor the size or seed) changed.
    fn mh_table(&mut self, si: usize) -> Arc<MhTable> {
        let s = &self.cfg.services[si];
        let inputs = MhInputs {
            size: s.mh_table_size(),
            seed: self.cfg.dataplane.hash_seed().to_string(),
            backends: s
                .backends
                .iter()
                .map(|b| {
                    let k = BackendKey::of(s, b.ip);
                    MhBackend {
                        ip: u32::from(b.ip),
                        port: s.port,
                        last_weight: self.last_weight(&k),
                        slot: self.by_key[&k],
                    }
                })
                .collect(),
        };
        let id = (s.vip, s.port, s.protocol);
        if let Some((built, table)) = self.mh_tables.get(&id) {
            if *built == inputs {
                return table.clone();
            }
        }
        let table = Arc::new(MhTable::build(
            inputs.size,
            &MhKeys::from_seed(&inputs.seed),
            &inputs.backends,
        ));
        self.mh_tables.insert(id, (inputs, table.clone()));
        table
    }

    /// The `mh` table the last snapshot carries for a service, if it has one.
    pub fn mh_table_of(&self, vip: Ipv4Addr, port: u16, proto: Proto) -> Option<&Arc<MhTable>> {
        self.mh_tables.get(&(vip, port, proto)).map(|(_, t)| t)
    }

    /// Slots given to a new key since the last call: the caller records their baseline.
    pub fn take_reassigned(&mut self) -> Vec<u16> {
        std::mem::take(&mut self.reassigned)
    }

    /// Sets a slot's counter baseline (see [`SlotInfo::baseline`]).
    pub fn set_baseline(&mut self, slot: u16, counts: [u64; 3]) {
        if let Some(info) = self.slots.get_mut(usize::from(slot)).and_then(Option::as_mut) {
            info.baseline = counts;
        }
    }

    /// The holder of `slot`, present or trashed.
    pub fn slot_info(&self, slot: u16) -> Option<&SlotInfo> {
        self.slots.get(usize::from(slot)).and_then(Option::as_ref)
    }

    /// Every held slot.
    pub fn held_slots(&self) -> impl Iterator<Item = (u16, &SlotInfo)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i as u16, s)))
    }

    /// Replaces the desired config (already validated); unchanged backends keep their
    /// slots, so their flows stay where they are.
    pub fn replace_config(&mut self, cfg: Config) {
        self.cfg = cfg;
        self.assign_slots();
    }

    /// The MAC to use for a backend: the static one, else the learned one.
    pub fn mac_of(&self, rip: Ipv4Addr, static_mac: Option<Mac>) -> Option<Mac> {
        static_mac.or_else(|| self.learned.get(&rip).copied())
    }

    /// Records an ARP-learned MAC. Returns true if it changes a backend's MAC.
    pub fn learn(&mut self, rip: Ipv4Addr, mac: Mac) -> bool {
        if !self.arp_targets().contains(&rip) {
            return false;
        }
        self.learned.insert(rip, mac) != Some(mac)
    }

    /// Backend and sorry-server IPs that need ARP (no static MAC), each once.
    pub fn arp_targets(&self) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = self
            .cfg
            .services
            .iter()
            .flat_map(|s| {
                let dynamic = s.backends.iter().filter(|b| b.mac.is_none()).map(|b| b.ip);
                dynamic.chain(s.sorry_server)
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The (slot, incarnation) of a backend that is in the config now.
    pub fn slot_of(&self, k: &BackendKey) -> Option<(u16, u16)> {
        let slot = *self.by_key.get(k)?;
        let info = self.slot_info(slot)?;
        info.present.then_some((slot, info.incarnation))
    }

    /// The backends that have a health check.
    pub fn checked_keys(&self) -> impl Iterator<Item = BackendKey> + '_ {
        self.cfg
            .services
            .iter()
            .filter(|s| s.check.is_some())
            .flat_map(|s| s.backends.iter().map(move |b| BackendKey::of(s, b.ip)))
    }

    /// Records a check's result; returns the transition when the server's state changes.
    pub fn record_check(
        &mut self,
        key: BackendKey,
        r: CheckResult,
        now: Instant,
    ) -> Option<(Health, Health)> {
        let svc = self.cfg.services.iter().find(|s| BackendKey::of(s, key.rip) == key)?;
        let c = svc.check.as_ref()?;
        let (rise, fall) = (c.rise, c.fall);
        if !svc.backends.iter().any(|b| b.ip == key.rip) {
            return None; // a result for a server removed meanwhile
        }
        let h = self.health.entry(key).or_insert_with(|| HealthState::new(now));
        h.record(r, rise, fall, now)
    }

    /// The server takes new flows as far as its health is concerned.
    pub fn serving(&self, key: &BackendKey) -> bool {
        self.health.get(key).is_none_or(HealthState::serving)
    }

    fn spec(&self, key: BackendKey, weight: u32, static_mac: Option<Mac>) -> BackendSpec {
        let slot = *self.by_key.get(&key).expect("every key of the config holds a slot");
        let incarnation = self.slot_info(slot).expect("held").incarnation;
        BackendSpec {
            slot,
            incarnation,
            ip: u32::from(key.rip),
            port: key.port,
            weight,
            mac: self.mac_of(key.rip, static_mac),
            down: !self.serving(&key),
        }
    }

    /// Builds the next snapshot (generation + 1).
    pub fn snapshot(&mut self, port_mac: Mac) -> Result<Snapshot, String> {
        self.generation += 1;
        let tables: Vec<Option<Arc<MhTable>>> = (0..self.cfg.services.len())
            .map(|i| (self.cfg.services[i].scheduler == SchedKind::Mh).then(|| self.mh_table(i)))
            .collect();
        let specs: Vec<ServiceSpec> = self
            .cfg
            .services
            .iter()
            .zip(tables)
            .map(|(s, mh)| ServiceSpec {
                vip: u32::from(s.vip),
                port: s.port,
                proto: s.protocol,
                policy: Policy {
                    sched: s.scheduler,
                    on_removed: s.on_backend_removed,
                    on_down: s.on_backend_down,
                    mh_hash: s.mh_hash.unwrap_or_default(),
                    mid_flow: s.mid_flow(),
                    sched_flags: s.flags(),
                    persistence: s.persistence.unwrap_or(0),
                    persistence_mask: s.persistence_mask(),
                },
                backends: s
                    .backends
                    .iter()
                    .map(|b| self.spec(BackendKey::of(s, b.ip), b.weight, b.mac))
                    .collect(),
                sorry: s.sorry_server.map(|ip| self.spec(BackendKey::of(s, ip), 1, None)),
                quorum: s.quorum,
                mh,
            })
            .collect();
        let d = &self.cfg.dataplane;
        Snapshot::build(self.generation, port_mac, u32::from(d.ip), self.cfg.timeouts(), &specs)
            .map(|mut s| {
                s.syn_flood = d.syn_flood;
                s.kernel = d.kernel_interface.is_some();
                s.mh_keys = MhKeys::from_seed(d.hash_seed());
                s.mtu = d.mtu;
                s
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(backends: &[(&str, u32)]) -> Config {
        let mut t = String::from("[dataplane]\nip = \"192.168.1.121\"\nkernel_interface = \"drlb0\"\n[[service]]\nvip = \"192.168.1.200\"\nport = 80\n[service.check]\ntype = \"tcp\"\nfall = 1\n");
        for (ip, w) in backends {
            t += &format!("[[service.backend]]\nip = \"{ip}\"\nweight = {w}\n");
        }
        Config::parse(&t, "t").unwrap()
    }

    fn key(ip: &str) -> BackendKey {
        BackendKey {
            vip: "192.168.1.200".parse().unwrap(),
            port: 80,
            proto: Proto::Tcp,
            rip: ip.parse().unwrap(),
        }
    }

    #[test]
    fn slots_survive_changes_and_a_removed_backend_gets_its_slot_back() {
        let mut s = ControlState::new(cfg(&[("10.0.0.1", 1), ("10.0.0.2", 1)]));
        let a = s.slot_of(&key("10.0.0.1")).unwrap();
        let b = s.slot_of(&key("10.0.0.2")).unwrap();
        s.replace_config(cfg(&[("10.0.0.1", 5), ("10.0.0.3", 1)]));
        assert_eq!(s.slot_of(&key("10.0.0.1")), Some(a), "unchanged backend keeps its slot");
        assert_eq!(s.slot_of(&key("10.0.0.2")), None, "removed: trashed, not in the config");
        let c = s.slot_of(&key("10.0.0.3")).unwrap();
        assert_ne!(c.0, b.0, "a new backend does not take a trashed slot while free ones exist");
        s.replace_config(cfg(&[("10.0.0.1", 5), ("10.0.0.2", 1), ("10.0.0.3", 1)]));
        assert_eq!(s.slot_of(&key("10.0.0.2")), Some(b), "re-added: same slot and incarnation");
    }

    #[test]
    fn a_trashed_slot_is_reused_last_with_a_new_incarnation() {
        let many: Vec<String> =
            (0..MAX_SLOTS - 1).map(|i| format!("10.{}.{}.1", i / 250, i % 250)).collect();
        let mut set: Vec<(&str, u32)> = many.iter().map(|ip| (ip.as_str(), 1)).collect();
        let mut s = ControlState::new(cfg(&set));
        let first = s.slot_of(&key(&many[0])).unwrap();
        // Remove the first and add a new one: it takes the last never-used slot.
        set[0] = ("10.99.99.1", 1);
        s.replace_config(cfg(&set));
        assert_ne!(s.slot_of(&key("10.99.99.1")).unwrap().0, first.0);
        s.take_reassigned();
        // Every slot is held now; the next new backend gets the one trashed longest ago.
        set[1] = ("10.99.99.2", 1);
        s.replace_config(cfg(&set));
        let newest = s.slot_of(&key("10.99.99.2")).unwrap();
        assert_eq!(newest.0, first.0, "the slot trashed longest ago");
        assert_ne!(newest.1, first.1, "with a new incarnation");
        assert_eq!(s.take_reassigned(), vec![first.0], "its counters restart");
        assert_eq!(s.slot_of(&key(&many[0])), None, "the old holder is gone for good");
    }

    #[test]
    fn health_decides_down_and_survives_a_change_for_servers_that_stay() {
        let mut s = ControlState::new(cfg(&[("10.0.0.1", 1), ("10.0.0.2", 1)]));
        let t = Instant::now();
        let fail =
            CheckResult { ok: false, detail: "connect refused".into(), latency: Duration::ZERO };
        assert_eq!(s.record_check(key("10.0.0.1"), fail, t), Some((Health::Unknown, Health::Down)));
        let snap = s.snapshot(Mac([2, 0, 0, 0, 0, 1])).unwrap();
        let a = s.slot_of(&key("10.0.0.1")).unwrap().0;
        assert!(snap.backends[usize::from(a)].down);
        s.replace_config(cfg(&[("10.0.0.1", 3), ("10.0.0.2", 1)]));
        assert!(!s.serving(&key("10.0.0.1")), "a change does not bring a down server up");
        s.replace_config(cfg(&[("10.0.0.2", 1)]));
        s.replace_config(cfg(&[("10.0.0.1", 1), ("10.0.0.2", 1)]));
        assert!(s.serving(&key("10.0.0.1")), "removed and re-added: checked afresh");
    }

    #[test]
    fn learned_macs_enter_the_snapshot() {
        let mut s = ControlState::new(cfg(&[("10.0.0.1", 1)]));
        let snap = s.snapshot(Mac([2, 0, 0, 0, 0, 1])).unwrap();
        assert!(snap.services[0].schedule.is_empty(), "no MAC yet: not schedulable");
        assert!(s.learn("10.0.0.1".parse().unwrap(), Mac([0, 1, 2, 3, 4, 5])));
        assert!(
            !s.learn("10.0.0.1".parse().unwrap(), Mac([0, 1, 2, 3, 4, 5])),
            "same MAC: no change"
        );
        assert!(!s.learn("10.9.9.9".parse().unwrap(), Mac([0, 1, 2, 3, 4, 5])), "not a backend");
        let snap = s.snapshot(Mac([2, 0, 0, 0, 0, 1])).unwrap();
        assert_eq!(snap.services[0].schedule.len(), 1);
        assert_eq!(snap.generation, 2);
        assert_eq!(&snap.backends[0].l2[..6], &[0, 1, 2, 3, 4, 5]);
    }
}
