//! `drlbadm --bgp-feed`: the program ExaBGP runs as an API `process` to announce this
//! director's VIPs (configs/exabgp.conf).
//!
//! It subscribes to drlb's control socket (`Watch`) and writes ExaBGP's text API on
//! stdout: `announce route VIP/32 next-hop DIP` for each VIP whose services all meet
//! their quorum, `withdraw route ...` when that stops. It withdraws everything:
//!
//! - when drlb exits or crashes: the kernel closes the socket, the feed reads EOF;
//! - when drlb says nothing for [`LOST_AFTER`] (drlb sends its state every second):
//!   a hung control plane should not keep attracting traffic;
//! - while the maintenance file exists (`--maintenance FILE`; checked every
//!   [`TICK`]): `touch` it to drain the director, remove it to bring it back;
//! - on SIGTERM or SIGINT, before it exits.
//!
//! It reconnects every second while drlb is away and announces again once drlb is back
//! and available. When ExaBGP goes away (stdin closes) it exits. The first state it
//! gets after starting also withdraws the VIPs that are not available, so a feed that
//! ExaBGP restarted clears what an earlier one announced.
//! Diagnostics go to stderr (ExaBGP logs them).
use super::protocol::{Announcement, Request, Response};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Silence from drlb after which the feed withdraws (five heartbeats).
pub const LOST_AFTER: Duration = Duration::from_secs(5);
/// How often the maintenance file and signals are looked at.
pub const TICK: Duration = Duration::from_millis(100);
/// Between two connection attempts while drlb is away.
pub const RETRY: Duration = Duration::from_secs(1);

/// The feed's options (drlbadm's flags).
#[derive(Debug, Clone)]
pub struct Options {
    pub socket: PathBuf,
    pub maintenance: Option<PathBuf>,
    /// The next hop to announce (default: drlb's director IP).
    pub next_hop: Option<Ipv4Addr>,
}

/// The routes announced so far, and the decision for a new situation.
#[derive(Debug, Default)]
pub struct Feed {
    /// VIP -> next hop, as announced.
    announced: BTreeMap<Ipv4Addr, Ipv4Addr>,
    /// A state from drlb has been acted on since the feed started.
    started: bool,
}

impl Feed {
    /// The API lines that take ExaBGP from what was announced to what `state` (None:
    /// drlb is not there) and `maintenance` call for.
    pub fn update(
        &mut self,
        state: Option<&Announcement>,
        maintenance: bool,
        next_hop: Option<Ipv4Addr>,
    ) -> Vec<String> {
        let mut want = BTreeMap::new();
        if let (Some(a), false) = (state, maintenance) {
            for v in a.vips.iter().filter(|v| v.available) {
                want.insert(v.vip, next_hop.unwrap_or(a.director));
            }
        }
        let mut lines = Vec::new();
        if let (Some(a), false) = (state, self.started) {
            self.started = true;
            for v in &a.vips {
                if !want.contains_key(&v.vip) && !self.announced.contains_key(&v.vip) {
                    let nh = next_hop.unwrap_or(a.director);
                    lines.push(format!("withdraw route {}/32 next-hop {nh}", v.vip));
                }
            }
        }
        for (vip, nh) in &self.announced {
            if want.get(vip) != Some(nh) {
                lines.push(format!("withdraw route {vip}/32 next-hop {nh}"));
            }
        }
        for (vip, nh) in &want {
            if self.announced.get(vip) != Some(nh) {
                lines.push(format!("announce route {vip}/32 next-hop {nh}"));
            }
        }
        self.announced = want;
        lines
    }

    pub fn announced(&self) -> usize {
        self.announced.len()
    }
}

enum Event {
    State(Announcement),
    /// drlb is not (or no longer) reachable; why.
    Lost(String),
    /// ExaBGP closed our stdin.
    ExaBgpGone,
}

/// Subscribes to drlb and forwards what it says; reconnects every [`RETRY`].
fn watch(socket: PathBuf, tx: mpsc::Sender<Event>) {
    loop {
        let why = match subscribe(&socket, &tx) {
            Ok(()) => return, // the feed is gone
            Err(why) => why,
        };
        if tx.send(Event::Lost(why)).is_err() {
            return;
        }
        std::thread::sleep(RETRY);
    }
}

/// One subscription: returns why it ended (Ok when the receiver is gone).
fn subscribe(socket: &PathBuf, tx: &mpsc::Sender<Event>) -> Result<(), String> {
    let mut s = UnixStream::connect(socket)
        .map_err(|e| format!("cannot connect to drlb at {}: {e}", socket.display()))?;
    let mut req = serde_json::to_vec(&Request::Watch {}).expect("serialises");
    req.push(b'\n');
    s.write_all(&req).map_err(|e| format!("{}: {e}", socket.display()))?;
    s.set_read_timeout(Some(LOST_AFTER)).map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return Err("drlb closed its control socket (stopped or crashed)".into()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("no word from drlb for {} s", LOST_AFTER.as_secs()))
            }
            Err(e) => return Err(format!("reading from drlb: {e}")),
        }
        let resp: Response =
            serde_json::from_str(&line).map_err(|e| format!("bad line from drlb: {e}"))?;
        if !resp.ok {
            return Err(format!("drlb refused: {}", resp.error.unwrap_or_default()));
        }
        let Some(data) = resp.data else { continue };
        let a: Announcement =
            serde_json::from_value(data).map_err(|e| format!("bad state from drlb: {e}"))?;
        if tx.send(Event::State(a)).is_err() {
            return Ok(());
        }
    }
}

/// Reads ExaBGP's acknowledgements (discarded) until it closes our stdin.
fn stdin(tx: mpsc::Sender<Event>) {
    let mut line = String::new();
    let mut input = std::io::stdin().lock();
    while matches!(input.read_line(&mut line), Ok(n) if n > 0) {
        line.clear();
    }
    let _ = tx.send(Event::ExaBgpGone);
}

fn note(msg: impl std::fmt::Display) {
    eprintln!("drlbadm --bgp-feed: {msg}");
}

/// Writes lines to ExaBGP; false when it is gone.
fn emit(lines: &[String]) -> bool {
    let mut out = std::io::stdout().lock();
    for l in lines {
        note(l);
        if writeln!(out, "{l}").is_err() {
            return false;
        }
    }
    out.flush().is_ok()
}

/// Runs the feed until SIGTERM/SIGINT or ExaBGP goes away; the exit code.
pub fn run(o: Options) -> i32 {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            note(format_args!("cannot handle signal {sig}: {e}"));
            return 1;
        }
    }
    let (tx, rx) = mpsc::channel();
    let t = tx.clone();
    let socket = o.socket.clone();
    std::thread::spawn(move || watch(socket, t));
    std::thread::spawn(move || stdin(tx));
    let mut feed = Feed::default();
    let mut state: Option<Announcement> = None;
    let mut lost: Option<String> = None;
    let mut maintenance = false;
    note(format_args!("watching drlb at {}", o.socket.display()));
    loop {
        let event = rx.recv_timeout(TICK);
        if stop.load(Ordering::Relaxed) {
            let lines = feed.update(None, true, o.next_hop);
            note(format_args!("stopping; {} route(s) withdrawn", lines.len()));
            emit(&lines);
            return 0;
        }
        match event {
            Ok(Event::State(a)) => {
                if lost.take().is_some() || state.is_none() {
                    note(format_args!("drlb is there (director {})", a.director));
                }
                state = Some(a);
            }
            Ok(Event::Lost(why)) => {
                if lost.as_ref() != Some(&why) {
                    note(format_args!("{why}; no route announced until it is back"));
                }
                lost = Some(why);
                state = None;
            }
            Ok(Event::ExaBgpGone) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                note("ExaBGP closed our input; exiting");
                return 0;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let m = o.maintenance.as_ref().is_some_and(|p| p.exists());
        if m != maintenance {
            let p = o.maintenance.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            note(if m {
                format!("maintenance file {p} exists: withdrawing every route")
            } else {
                format!("maintenance file {p} is gone: announcing what is available")
            });
            maintenance = m;
        }
        if !emit(&feed.update(state.as_ref(), maintenance, o.next_hop)) {
            return 0; // ExaBGP is gone
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::protocol::VipState;

    fn state(vips: &[(&str, bool)]) -> Announcement {
        Announcement {
            director: "192.168.1.121".parse().unwrap(),
            vips: vips
                .iter()
                .map(|(v, a)| VipState { vip: v.parse().unwrap(), available: *a })
                .collect(),
        }
    }

    #[test]
    fn announces_available_vips_and_withdraws_on_every_reason() {
        let mut f = Feed::default();
        // Before drlb is there: nothing.
        assert!(f.update(None, false, None).is_empty());
        // First state: the unavailable VIP is withdrawn too (a restarted feed's leftover).
        let s = state(&[("192.168.1.200", true), ("192.168.1.201", false)]);
        assert_eq!(
            f.update(Some(&s), false, None),
            [
                "withdraw route 192.168.1.201/32 next-hop 192.168.1.121",
                "announce route 192.168.1.200/32 next-hop 192.168.1.121"
            ]
        );
        // Nothing changed: nothing said.
        assert!(f.update(Some(&s), false, None).is_empty());
        // Quorum lost on .200, regained on .201.
        let t = state(&[("192.168.1.200", false), ("192.168.1.201", true)]);
        assert_eq!(
            f.update(Some(&t), false, None),
            [
                "withdraw route 192.168.1.200/32 next-hop 192.168.1.121",
                "announce route 192.168.1.201/32 next-hop 192.168.1.121"
            ]
        );
        // Maintenance, then back.
        assert_eq!(
            f.update(Some(&t), true, None),
            ["withdraw route 192.168.1.201/32 next-hop 192.168.1.121"]
        );
        assert_eq!(f.announced(), 0);
        assert_eq!(f.update(Some(&t), false, None).len(), 1);
        // drlb gone.
        assert_eq!(
            f.update(None, false, None),
            ["withdraw route 192.168.1.201/32 next-hop 192.168.1.121"]
        );
        // Back, with another next hop asked for: announced with it.
        let nh = Some("10.0.0.1".parse().unwrap());
        assert_eq!(
            f.update(Some(&t), false, nh),
            ["announce route 192.168.1.201/32 next-hop 10.0.0.1"]
        );
    }
}
