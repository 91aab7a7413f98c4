//! `[dataplane] idle`: what a worker does when its RX queue is empty.
//!
//! - `poll` (default): it polls again at once, as every DPDK forwarder: the lowest
//!   latency, and a core at 100 % whatever the load.
//! - `adaptive`: after [`EMPTY_POLLS`] empty polls in a row it sleeps, first
//!   [`FIRST_SLEEP`], doubling on each further empty stretch up to [`LONGEST_SLEEP`]; the
//!   first packet puts it back to polling (DPDK's l3fwd-power does the same with
//!   `rte_delay_us` and `rte_power` hints). A busy worker never sleeps; an idle one costs
//!   a few percent of a core, so several drlb processes and their daemons (ExaBGP, a
//!   health checker) fit on a small machine. The price is latency for the first packet
//!   after a quiet spell: up to the current sleep. perf/ has the numbers.
//!
//! While it sleeps the worker is offline for the epoch swap (the manager does not wait
//! for it) and it has flushed its TX buffer first.
use std::time::Duration;

/// Consecutive empty polls before the first sleep (a few tens of µs of idling).
pub const EMPTY_POLLS: u32 = 256;
pub const FIRST_SLEEP: Duration = Duration::from_micros(10);
pub const LONGEST_SLEEP: Duration = Duration::from_micros(500);
/// Timer slack of a worker thread that sleeps: the kernel's default (50 µs) would make
/// every sleep at least that long.
pub const TIMER_SLACK_NS: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Idle {
    #[default]
    Poll,
    Adaptive,
}

/// The back-off state of one worker.
#[derive(Debug, Clone)]
pub struct Backoff {
    mode: Idle,
    empty: u32,
    next: Duration,
}

impl Backoff {
    pub fn new(mode: Idle) -> Self {
        if mode == Idle::Adaptive {
            // Best effort: without it the sleeps are merely longer.
            let _ = nix::sys::prctl::set_timerslack(TIMER_SLACK_NS);
        }
        Backoff { mode, empty: 0, next: FIRST_SLEEP }
    }

    /// A poll that received packets.
    #[inline(always)]
    pub fn busy(&mut self) {
        self.empty = 0;
        self.next = FIRST_SLEEP;
    }

    /// A poll that received nothing: how long to sleep now, if at all.
    #[inline]
    pub fn empty(&mut self) -> Option<Duration> {
        if self.mode == Idle::Poll {
            return None;
        }
        self.empty += 1;
        if self.empty < EMPTY_POLLS {
            return None;
        }
        self.empty = 0;
        let d = self.next;
        self.next = (self.next * 2).min(LONGEST_SLEEP);
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_never_sleeps_and_adaptive_backs_off_then_resets() {
        let mut p = Backoff::new(Idle::Poll);
        assert!((0..10_000).all(|_| p.empty().is_none()));
        let mut a = Backoff::new(Idle::Adaptive);
        let mut sleeps = Vec::new();
        for _ in 0..EMPTY_POLLS * 8 {
            if let Some(d) = a.empty() {
                sleeps.push(d.as_micros());
            }
        }
        assert_eq!(sleeps, [10, 20, 40, 80, 160, 320, 500, 500]);
        a.busy();
        assert!((1..EMPTY_POLLS).all(|_| a.empty().is_none()));
        assert_eq!(a.empty(), Some(FIRST_SLEEP));
    }
}
