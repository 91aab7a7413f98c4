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
use crate::admin::protocol::{BackendRow, HealthRow, ServiceRow, ServiceTotals};
use crate::dataplane::counters::{SlotCounters, WorkerCounters};
use crate::lb::Snapshot;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// A service's identity.
type SvcKey = (std::net::Ipv4Addr, u16, crate::lb::Proto);

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

    /// The services of `state` with their real servers, counters and health.
    pub fn services(
        &self,
        state: &ControlState,
        snap: &Snapshot,
        ws: &[Arc<WorkerCounters>],
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
                        let row = self.backend(state, ws, BackendKey::of(s, b.ip), b.weight, b.mac);
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
                        let row = self.backend(state, ws, key, 1, None);
                        backends.push(BackendRow { sorry: true, ..row });
                    }
                }
                let up = backends.iter().filter(|b| !b.sorry && b.weight > 0).count();
                ServiceRow {
                    proto: s.protocol,
                    vip: s.vip,
                    port: s.port,
                    sched: s.scheduler,
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
                    backends,
                }
            })
            .collect()
    }

    fn backend(
        &self,
        state: &ControlState,
        ws: &[Arc<WorkerCounters>],
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
        let gauge = |f: fn(&SlotCounters) -> &AtomicU64| slot.map_or(0, |slot| sum(ws, slot, f));
        BackendRow {
            ip: key.rip,
            port: key.port,
            weight: if serving { config_weight } else { 0 },
            config_weight,
            mac: mac.map(|m| m.to_string()),
            active_conns: gauge(|c| &c.active),
            inactive_conns: gauge(|c| &c.inactive),
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
