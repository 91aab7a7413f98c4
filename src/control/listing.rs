//! What the manager shows of the running state: the ipvsadm-style listing (services,
//! real servers with their counters and health) and the per-service totals behind it.
//!
//! Counters live per worker and per backend slot. A slot's counts since its holder got
//! it are its sum minus a baseline taken then (so a reused slot starts from zero), and a
//! service's totals are accumulated from the slots' growth at every refresh, so they
//! never go backwards when a backend leaves.
use super::config::CheckType;
use super::health::Health;
use super::state::{BackendKey, ControlState};
use crate::admin::protocol::{BackendRow, HealthRow, MhRow, ServiceRow, ServiceTotals};
use crate::dataplane::counters::{SlotCounters, WorkerCounters};
use crate::lb::conns::ConnCounts;
use crate::lb::Snapshot;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// A service's identity.
pub type SvcKey = (std::net::Ipv4Addr, u16, crate::lb::Proto);

/// Per-slot and per-service counters as the listing shows them.
#[derive(Default)]
pub struct Accounting {
    /// Each slot's (conns, packets, bytes) at the last refresh.
    last: HashMap<u16, [u64; 3]>,
    totals: HashMap<SvcKey, ServiceTotals>,
}

/// A slot's counter summed over workers.
fn sum(ws: &[Arc<WorkerCounters>], slot: u16, f: fn(&SlotCounters) -> &AtomicU64) -> u64 {
    ws.iter().map(|w| f(&w.slots[usize::from(slot)]).load(Relaxed)).sum()
}

fn raw(ws: &[Arc<WorkerCounters>], slot: u16) -> [u64; 3] {
    [sum(ws, slot, |c| &c.conns), sum(ws, slot, |c| &c.pkts), sum(ws, slot, |c| &c.bytes)]
}

impl Accounting {
    /// Adds every slot's growth since the last refresh to its holder's service, then
    /// gives the slots reassigned since a baseline at their current counts.
    pub fn refresh(&mut self, state: &mut ControlState, ws: &[Arc<WorkerCounters>]) {
        for (slot, info) in state.held_slots() {
            let now = raw(ws, slot);
            let before = self.last.insert(slot, now).unwrap_or(info.baseline);
            let t = self.totals.entry((info.key.vip, info.key.port, info.key.proto)).or_default();
            t.conns += now[0].saturating_sub(before[0]);
            t.in_pkts += now[1].saturating_sub(before[1]);
            t.in_bytes += now[2].saturating_sub(before[2]);
        }
        for slot in state.take_reassigned() {
            let now = raw(ws, slot);
            self.last.insert(slot, now);
            state.set_baseline(slot, now);
        }
    }

    /// `-Z`: the counters of `only` (or of every service) start again from zero. Growth
    /// up to now is taken in first, so nothing counted later is lost.
    pub fn zero(
        &mut self,
        state: &mut ControlState,
        ws: &[Arc<WorkerCounters>],
        only: Option<SvcKey>,
    ) {
        self.refresh(state, ws);
        let picked = |k: SvcKey| only.is_none_or(|o| o == k);
        let slots: Vec<u16> = state
            .held_slots()
            .filter(|(_, i)| picked((i.key.vip, i.key.port, i.key.proto)))
            .map(|(slot, _)| slot)
            .collect();
        for slot in slots {
            let now = raw(ws, slot);
            self.last.insert(slot, now);
            state.set_baseline(slot, now);
        }
        self.totals.retain(|k, _| !picked(*k));
    }

    /// The services of `state` with their real servers, counters and health.
    pub fn services(
        &self,
        state: &ControlState,
        snap: &Snapshot,
        ws: &[Arc<WorkerCounters>],
        conns: &ConnCounts,
    ) -> Vec<ServiceRow> {
        let now = Instant::now();
        state
            .cfg
            .services
            .iter()
            .zip(&snap.services)
            .map(|(s, live)| {
                let checked = s.check.is_some();
                let mut backends: Vec<BackendRow> = s
                    .backends
                    .iter()
                    .map(|b| {
                        let row = self.backend(
                            state,
                            (ws, conns),
                            BackendKey::of(s, b.ip),
                            b.weight,
                            b.mac,
                        );
                        BackendRow {
                            health: health_row(state, &BackendKey::of(s, b.ip), checked, now),
                            ..row
                        }
                    })
                    .collect();
                // The sorry server is listed while it takes the new flows, as ipvsadm
                // shows the one keepalived adds.
                if let Some(ip) = s.sorry_server {
                    let key = BackendKey::of(s, ip);
                    let slot = state.slot_of(&key).map(|x| x.0);
                    if slot.is_some_and(|slot| live.schedule.first() == Some(&slot))
                        && !live.available
                    {
                        let row = self.backend(state, (ws, conns), key, 1, None);
                        backends.push(BackendRow { sorry: true, ..row });
                    }
                }
                let up = backends.iter().filter(|b| !b.sorry && b.weight > 0).count();
                ServiceRow {
                    proto: s.protocol,
                    vip: s.vip,
                    port: s.port,
                    sched: s.scheduler,
                    sched_flags: s.flags().names(),
                    persistence: s.persistence,
                    persistence_netmask: s.persistence_netmask,
                    totals: self
                        .totals
                        .get(&(s.vip, s.port, s.protocol))
                        .copied()
                        .unwrap_or_default(),
                    check: s.check.as_ref().map(|c| match c.kind {
                        CheckType::Tcp => "tcp".to_string(),
                        CheckType::Http => format!("http {}", c.path.as_deref().unwrap_or("/")),
                        CheckType::Exec => "exec".to_string(),
                    }),
                    quorum: s.quorum,
                    up,
                    available: live.available,
                    sorry_server: s.sorry_server,
                    mid_flow: s.mid_flow(),
                    mh: state.mh_table_of(s.vip, s.port, s.protocol).map(|t| MhRow {
                        table_size: s.mh_table_size(),
                        hash: s.mh_hash.unwrap_or_default(),
                        fingerprint: format!("{:016x}", t.fingerprint()),
                    }),
                    backends,
                }
            })
            .collect()
    }

    fn backend(
        &self,
        state: &ControlState,
        (ws, conns): (&[Arc<WorkerCounters>], &ConnCounts),
        key: BackendKey,
        config_weight: u32,
        static_mac: Option<crate::wire::Mac>,
    ) -> BackendRow {
        let slot = state.slot_of(&key).map(|x| x.0);
        let counts = slot.map_or([0; 3], |slot| {
            let base = state.slot_info(slot).map_or([0; 3], |i| i.baseline);
            let r = raw(ws, slot);
            [
                r[0].saturating_sub(base[0]),
                r[1].saturating_sub(base[1]),
                r[2].saturating_sub(base[2]),
            ]
        });
        let mac = state.mac_of(key.rip, static_mac);
        let serving = mac.is_some() && state.serving(&key);
        // ActiveConn/InActConn: the counts the schedulers read (lb::conns).
        let (active, inactive) = state.slot_of(&key).map_or((0, 0), |(s, inc)| conns.get(s, inc));
        BackendRow {
            ip: key.rip,
            port: key.port,
            weight: if serving { config_weight } else { 0 },
            config_weight,
            mac: mac.map(|m| m.to_string()),
            active_conns: active,
            inactive_conns: inactive,
            conns: counts[0],
            in_pkts: counts[1],
            in_bytes: counts[2],
            health: HealthRow { state: "unchecked".into(), ..Default::default() },
            sorry: false,
        }
    }
}

/// A checked server's health row; "unchecked" for a service without a check.
fn health_row(state: &ControlState, key: &BackendKey, checked: bool, now: Instant) -> HealthRow {
    if !checked {
        return HealthRow { state: "unchecked".into(), ..Default::default() };
    }
    match state.health.get(key) {
        None => HealthRow { state: Health::Unknown.name().into(), ..Default::default() },
        Some(h) => HealthRow {
            state: h.state.name().into(),
            last_result: h.last.as_ref().map(|r| r.detail.clone()),
            since_secs: Some(now.duration_since(h.since).as_secs_f64()),
            latency_ms: h.last.as_ref().map(|r| r.latency.as_secs_f64() * 1e3),
            transitions: h.transitions,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::config::Config;
    use crate::wire::Mac;
    use std::sync::atomic::Ordering::Relaxed;

    fn cfg(backends: &[&str]) -> Config {
        let mut t = String::from("[dataplane]\nip = \"192.168.1.121\"\n[[service]]\nvip = \"192.168.1.200\"\nport = 80\n");
        for ip in backends {
            t += &format!("[[service.backend]]\nip = \"{ip}\"\nmac = \"02:00:00:00:00:09\"\n");
        }
        Config::parse(&t, "t").unwrap()
    }

    /// Adds `n` packets (and a connection) to `slot` on worker 0.
    fn traffic(ws: &[Arc<WorkerCounters>], slot: u16, n: u64) {
        let s = &ws[0].slots[usize::from(slot)];
        s.pkts.store(s.pkts.load(Relaxed) + n, Relaxed);
        s.conns.store(s.conns.load(Relaxed) + 1, Relaxed);
    }

    #[test]
    fn traffic_before_the_first_refresh_counts_for_the_first_holders() {
        let ws = vec![Arc::new(WorkerCounters::new())];
        let mut state = ControlState::new(cfg(&["10.0.0.1"]));
        traffic(&ws, 0, 7); // workers forward before the manager's first listing
        let mut acc = Accounting::default();
        acc.refresh(&mut state, &ws);
        let snap = state.snapshot(Mac([2, 0, 0, 0, 0, 1])).unwrap();
        let s = acc.services(&state, &snap, &ws, &crate::lb::conns::ConnCounts::new(1)).remove(0);
        assert_eq!((s.backends[0].in_pkts, s.backends[0].conns), (7, 1));
        assert_eq!(s.totals.in_pkts, 7);
    }

    #[test]
    fn a_reused_slot_starts_from_zero_and_service_totals_never_go_backwards() {
        let ws = vec![Arc::new(WorkerCounters::new())];
        let many: Vec<String> = (0..crate::lb::snapshot::MAX_SLOTS - 1)
            .map(|i| format!("10.{}.{}.1", i / 250, i % 250))
            .collect();
        let mut set: Vec<&str> = many.iter().map(String::as_str).collect();
        let mut state = ControlState::new(cfg(&set));
        let mut acc = Accounting::default();
        acc.refresh(&mut state, &ws);
        let first = state
            .slot_of(&BackendKey::of(&state.cfg.services[0], set[0].parse().unwrap()))
            .unwrap()
            .0;
        traffic(&ws, first, 10);
        let listed = |state: &mut ControlState, acc: &mut Accounting| {
            acc.refresh(state, &ws);
            let snap = state.snapshot(Mac([2, 0, 0, 0, 0, 1])).unwrap();
            acc.services(state, &snap, &ws, &crate::lb::conns::ConnCounts::new(1)).remove(0)
        };
        let s = listed(&mut state, &mut acc);
        assert_eq!((s.backends[0].in_pkts, s.totals.in_pkts), (10, 10));
        // Removed: its packets stay in the service's totals.
        set[0] = "10.99.99.1";
        state.replace_config(cfg(&set));
        let s = listed(&mut state, &mut acc);
        assert_eq!(s.totals.in_pkts, 10, "totals keep a removed server's counts");
        // Every slot held: the next new server reuses the first one's slot, from zero.
        set[1] = "10.99.99.2";
        state.replace_config(cfg(&set));
        let key = BackendKey::of(&state.cfg.services[0], "10.99.99.2".parse().unwrap());
        assert_eq!(state.slot_of(&key).unwrap().0, first, "the slot is reused");
        let s = listed(&mut state, &mut acc);
        let row = s.backends.iter().find(|b| b.ip.to_string() == "10.99.99.2").unwrap();
        assert_eq!((row.in_pkts, row.conns), (0, 0), "a reused slot starts from zero");
        assert_eq!(s.totals.in_pkts, 10, "and the service's totals did not move");
        traffic(&ws, first, 5);
        let s = listed(&mut state, &mut acc);
        let row = s.backends.iter().find(|b| b.ip.to_string() == "10.99.99.2").unwrap();
        assert_eq!((row.in_pkts, s.totals.in_pkts), (5, 15));
    }
}
