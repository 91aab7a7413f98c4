//! The desired state (the config, as changed by reloads) plus what the director learned
//! (backend MACs), and the stable backend slots that let flows survive snapshot swaps.
//!
//! Slot rule: a backend keeps its (slot, incarnation) for as long as it stays in its
//! service across changes. A removed backend frees its slot; a later backend that
//! reuses the slot gets the next incarnation, so old flows never mistake it for theirs.
use super::config::Config;
use crate::lb::snapshot::{BackendSpec, ServiceSpec, MAX_SLOTS};
use crate::lb::{Proto, Snapshot};
use crate::wire::Mac;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Identity of a backend: its service and its IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendKey {
    pub vip: Ipv4Addr,
    pub port: u16,
    pub proto: Proto,
    pub rip: Ipv4Addr,
}

pub struct ControlState {
    pub cfg: Config,
    slots: HashMap<BackendKey, (u16, u16)>,
    free: Vec<u16>,
    incarnation: Vec<u16>,
    /// MACs learned by ARP, by backend IP.
    pub learned: HashMap<Ipv4Addr, Mac>,
    pub generation: u64,
}

impl ControlState {
    pub fn new(cfg: Config) -> Self {
        let mut s = ControlState {
            cfg,
            slots: HashMap::new(),
            free: Vec::new(),
            incarnation: Vec::new(),
            learned: HashMap::new(),
            generation: 0,
        };
        s.assign_slots();
        s
    }

    fn keys(cfg: &Config) -> Vec<BackendKey> {
        cfg.services
            .iter()
            .flat_map(|s| {
                s.backends.iter().map(move |b| BackendKey {
                    vip: s.vip,
                    port: s.port,
                    proto: s.protocol,
                    rip: b.ip,
                })
            })
            .collect()
    }

    /// Gives every backend of the config a slot, keeping existing ones and freeing the
    /// slots of backends that are gone.
    fn assign_slots(&mut self) {
        let want: std::collections::HashSet<BackendKey> =
            Self::keys(&self.cfg).into_iter().collect();
        let gone: Vec<BackendKey> =
            self.slots.keys().filter(|k| !want.contains(k)).copied().collect();
        for k in gone {
            let (slot, _) = self.slots.remove(&k).expect("present");
            self.free.push(slot);
        }
        for k in Self::keys(&self.cfg) {
            if self.slots.contains_key(&k) {
                continue;
            }
            let slot = match self.free.pop() {
                Some(s) => s,
                None => {
                    let s = self.incarnation.len();
                    assert!(s < MAX_SLOTS, "config validation bounds the backend count");
                    self.incarnation.push(0);
                    s as u16
                }
            };
            let inc = &mut self.incarnation[usize::from(slot)];
            *inc = inc.wrapping_add(1);
            self.slots.insert(k, (slot, *inc));
        }
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
        let dynamic = self
            .cfg
            .services
            .iter()
            .flat_map(|s| s.backends.iter())
            .any(|b| b.ip == rip && b.mac.is_none());
        if !dynamic {
            return false;
        }
        self.learned.insert(rip, mac) != Some(mac)
    }

    /// Backend IPs that need ARP (no static MAC), each once.
    pub fn arp_targets(&self) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = self
            .cfg
            .services
            .iter()
            .flat_map(|s| s.backends.iter())
            .filter(|b| b.mac.is_none())
            .map(|b| b.ip)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn slot_of(&self, k: &BackendKey) -> Option<(u16, u16)> {
        self.slots.get(k).copied()
    }

    /// Builds the next snapshot (generation + 1).
    pub fn snapshot(&mut self, port_mac: Mac) -> Result<Snapshot, String> {
        self.generation += 1;
        let specs: Vec<ServiceSpec> = self
            .cfg
            .services
            .iter()
            .map(|s| ServiceSpec {
                vip: u32::from(s.vip),
                port: s.port,
                proto: s.protocol,
                sched: s.scheduler,
                on_removed: s.on_backend_removed,
                backends: s
                    .backends
                    .iter()
                    .map(|b| {
                        let (slot, incarnation) = self.slots[&BackendKey {
                            vip: s.vip,
                            port: s.port,
                            proto: s.protocol,
                            rip: b.ip,
                        }];
                        BackendSpec {
                            slot,
                            incarnation,
                            ip: u32::from(b.ip),
                            port: s.port,
                            weight: b.weight,
                            mac: self.mac_of(b.ip, b.mac),
                        }
                    })
                    .collect(),
            })
            .collect();
        Snapshot::build(
            self.generation,
            port_mac,
            u32::from(self.cfg.dataplane.ip),
            self.cfg.timeouts(),
            &specs,
        )
        .map(|mut s| {
            s.syn_flood = self.cfg.dataplane.syn_flood;
            s
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(backends: &[(&str, u32)]) -> Config {
        let mut t = String::from("[dataplane]\nip = \"192.168.1.121\"\n[[service]]\nvip = \"192.168.1.200\"\nport = 80\n");
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
    fn slots_survive_changes_and_reuse_bumps_incarnation() {
        let mut s = ControlState::new(cfg(&[("10.0.0.1", 1), ("10.0.0.2", 1)]));
        let a = s.slot_of(&key("10.0.0.1")).unwrap();
        let b = s.slot_of(&key("10.0.0.2")).unwrap();
        s.replace_config(cfg(&[("10.0.0.1", 5), ("10.0.0.3", 1)]));
        assert_eq!(s.slot_of(&key("10.0.0.1")), Some(a), "unchanged backend keeps its slot");
        assert_eq!(s.slot_of(&key("10.0.0.2")), None);
        let c = s.slot_of(&key("10.0.0.3")).unwrap();
        assert_eq!(c.0, b.0, "freed slot reused");
        assert_ne!(c.1, b.1, "with a new incarnation");
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
