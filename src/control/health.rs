//! Real servers' health as the manager tracks it: results from the checkers (`health/`)
//! go through a small state machine per server (keepalived's `rise`/`fall`, called
//! `retry` there), and a server that is down takes no new flows.
//!
//! ```text
//!   unknown --success--> up        unknown/up --fall failures in a row--> down
//!   down --rise successes in a row--> up
//! ```
//! A server starts *unknown*, which counts as up: keepalived starts real servers alive
//! (unless `alpha`), so a restart of the director does not take every server out of
//! service for `rise × interval`; a dead one is taken out after `fall` failures, as it
//! would be had it died later.
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn name(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub ok: bool,
    /// What happened, for people: "HTTP 200", "connect refused", "timeout", "exit 1".
    pub detail: String,
    /// How long the check took.
    pub latency: Duration,
}

/// A server's health and how it got there.
#[derive(Debug, Clone)]
pub struct HealthState {
    pub state: Health,
    /// Consecutive results against the current state (failures while up, successes
    /// while down).
    streak: u32,
    pub last: Option<CheckResult>,
    /// When the state last changed (or tracking began).
    pub since: Instant,
    pub transitions: u64,
}

impl HealthState {
    pub fn new(now: Instant) -> Self {
        HealthState { state: Health::Unknown, streak: 0, last: None, since: now, transitions: 0 }
    }

    /// Whether the server takes new flows: up, or unknown (see the module docs).
    pub fn serving(&self) -> bool {
        self.state != Health::Down
    }

    /// Records a result; returns the transition (old, new) when the state changes.
    pub fn record(
        &mut self,
        r: CheckResult,
        rise: u32,
        fall: u32,
        now: Instant,
    ) -> Option<(Health, Health)> {
        let old = self.state;
        let next = match (old, r.ok) {
            (Health::Unknown, true) => Some(Health::Up),
            (Health::Up, true) | (Health::Down, false) => {
                self.streak = 0;
                None
            }
            (Health::Unknown | Health::Up, false) => {
                self.streak += 1;
                (self.streak >= fall).then_some(Health::Down)
            }
            (Health::Down, true) => {
                self.streak += 1;
                (self.streak >= rise).then_some(Health::Up)
            }
        };
        self.last = Some(r);
        let new = next?;
        self.state = new;
        self.streak = 0;
        self.since = now;
        self.transitions += 1;
        Some((old, new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(ok: bool) -> CheckResult {
        CheckResult { ok, detail: String::new(), latency: Duration::ZERO }
    }

    #[test]
    fn rise_and_fall_count_consecutive_results() {
        let t = Instant::now();
        let mut h = HealthState::new(t);
        assert!(h.serving(), "unknown counts as up");
        assert_eq!(h.record(r(true), 2, 3, t), Some((Health::Unknown, Health::Up)));
        // Two failures, a success, three failures: down only after three in a row.
        let seq = [false, false, true, false, false];
        assert!(seq.iter().all(|&ok| h.record(r(ok), 2, 3, t).is_none()));
        assert_eq!(h.record(r(false), 2, 3, t), Some((Health::Up, Health::Down)));
        assert!(!h.serving());
        assert_eq!(h.record(r(true), 2, 3, t), None);
        assert_eq!(h.record(r(false), 2, 3, t), None, "a failure resets the rise count");
        assert_eq!(h.record(r(true), 2, 3, t), None);
        assert_eq!(h.record(r(true), 2, 3, t), Some((Health::Down, Health::Up)));
        assert_eq!(h.transitions, 3);
    }

    #[test]
    fn unknown_falls_like_up() {
        let t = Instant::now();
        let mut h = HealthState::new(t);
        assert_eq!(h.record(r(false), 2, 1, t), Some((Health::Unknown, Health::Down)));
    }
}
