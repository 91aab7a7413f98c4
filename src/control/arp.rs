//! Resolving real servers that have no static MAC: an ARP request from the director IP
//! every [`RETRY`] until one answers, then a refresh every [`REFRESH`] (the answers
//! arrive through the workers, which learn them from ARP frames). The requests go out
//! through worker 0's control queue, so no TX queue is ever used by two threads.
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

pub const RETRY: Duration = Duration::from_secs(1);
pub const REFRESH: Duration = Duration::from_secs(30);
/// Unanswered requests after which the manager warns (once).
pub const UNANSWERED_WARNING: u32 = 3;

/// Per backend IP: when we last asked, whether it ever answered, and how many requests
/// went unanswered in a row.
#[derive(Default)]
pub struct Resolver {
    asked: HashMap<Ipv4Addr, (Option<Instant>, bool, u32)>,
}

impl Resolver {
    /// Records that `ip` answered (a learned MAC).
    pub fn answered(&mut self, ip: Ipv4Addr) {
        if let Some(e) = self.asked.get_mut(&ip) {
            e.1 = true;
            e.2 = 0;
        }
    }

    /// Is a request for `ip` due at `now`? `Some(refresh)` if so.
    pub fn due(&mut self, ip: Ipv4Addr, now: Instant) -> Option<bool> {
        let (sent, answered, _) = *self.asked.entry(ip).or_insert((None, false, 0));
        let due = match sent {
            None => true,
            Some(t) => now.duration_since(t) >= if answered { REFRESH } else { RETRY },
        };
        due.then_some(answered)
    }

    /// Records a request sent for `ip` at `now`; returns how many went unanswered in a
    /// row, this one included.
    pub fn sent(&mut self, ip: Ipv4Addr, now: Instant) -> u32 {
        let e = self.asked.entry(ip).or_insert((None, false, 0));
        e.0 = Some(now);
        e.2 += 1;
        e.2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_until_answered_then_refreshes() {
        let mut r = Resolver::default();
        let ip: Ipv4Addr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(r.due(ip, t0), Some(false));
        r.sent(ip, t0);
        assert_eq!(r.due(ip, t0 + RETRY / 2), None);
        assert_eq!(r.due(ip, t0 + RETRY), Some(false));
        r.answered(ip);
        assert_eq!(r.due(ip, t0 + RETRY), None, "answered: refresh period now");
        assert_eq!(r.due(ip, t0 + REFRESH), Some(true));
    }
}
