//! TCP connection states as IPVS tracks them for DR, where the director sees only the
//! client->server half: the "INPUT-ONLY" table of `net/netfilter/ipvs/ip_vs_proto_tcp.c`,
//! restricted to the states reachable from NONE in that table (sNO sES sSR sFW sTW sCL).
//!
//! The flag that drives a transition is chosen in IPVS's order: RST, then SYN, then FIN,
//! then ACK (`tcp_state_idx`). A segment with none of them leaves the state unchanged.
//!
//! ```text
//!            sNO  sES  sSR  sFW  sTW  sCL      (current state)
//!   syn      sSR  sES  sSR  sSR  sSR  sSR
//!   fin      sCL  sFW  sTW  sFW  sTW  sCL
//!   ack      sES  sES  sES  sFW  sTW  sCL
//!   rst      sCL  sCL  sSR  sCL  sCL  sCL
//! ```
//! Timeouts (IPVS defaults, configurable): ESTABLISHED `tcp` 900 s, SYN_RECV 60 s,
//! FIN_WAIT and TIME_WAIT `tcp_fin` 120 s, CLOSE 10 s. UDP flows use `udp` 300 s.
use super::{Tick, Timeouts, TICKS_PER_SEC};
use crate::wire::tcp::flags;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum TcpState {
    #[default]
    None = 0,
    Established = 1,
    SynRecv = 2,
    FinWait = 3,
    TimeWait = 4,
    Close = 5,
    /// Not TCP: a UDP flow.
    Udp = 6,
}

impl TcpState {
    #[inline(always)]
    pub fn from_u8(v: u8) -> TcpState {
        match v {
            1 => TcpState::Established,
            2 => TcpState::SynRecv,
            3 => TcpState::FinWait,
            4 => TcpState::TimeWait,
            5 => TcpState::Close,
            6 => TcpState::Udp,
            _ => TcpState::None,
        }
    }
    /// ipvsadm -lnc spelling.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::Udp => "UDP",
        }
    }
    /// IPVS counts ESTABLISHED as an active connection and every other state as inactive.
    pub fn is_active(self) -> bool {
        self == TcpState::Established
    }
    /// States in which a new SYN starts a new connection (IPVS `conn_reuse_mode`, with the
    /// FIN_WAIT bit set, since that is the last state a DR director sees).
    pub fn is_closing(self) -> bool {
        matches!(self, TcpState::FinWait | TcpState::TimeWait | TcpState::Close)
    }
}

const ES: TcpState = TcpState::Established;
const SR: TcpState = TcpState::SynRecv;
const FW: TcpState = TcpState::FinWait;
const TW: TcpState = TcpState::TimeWait;
const CL: TcpState = TcpState::Close;

/// Rows: syn, fin, ack, rst. Columns: current state None..Close.
const TABLE: [[TcpState; 6]; 4] = [
    /* syn */ [SR, ES, SR, SR, SR, SR],
    /* fin */ [CL, FW, TW, FW, TW, CL],
    /* ack */ [ES, ES, ES, FW, TW, CL],
    /* rst */ [CL, CL, SR, CL, CL, CL],
];

/// The state after a client->server segment with `tcp_flags`.
#[inline(always)]
pub fn next(cur: TcpState, tcp_flags: u8) -> TcpState {
    let row = if tcp_flags & flags::RST != 0 {
        3
    } else if tcp_flags & flags::SYN != 0 {
        0
    } else if tcp_flags & flags::FIN != 0 {
        1
    } else if tcp_flags & flags::ACK != 0 {
        2
    } else {
        return cur;
    };
    let col = cur as usize;
    if col >= 6 {
        return cur;
    }
    TABLE[row][col]
}

/// Timeouts converted to ticks once, indexed by state.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutTicks([Tick; 7]);

impl TimeoutTicks {
    pub fn new(t: &Timeouts) -> Self {
        let s = |v: u32| v.saturating_mul(TICKS_PER_SEC);
        // None is never stored; give it the SYN timeout for safety.
        TimeoutTicks([
            s(t.syn),
            s(t.tcp),
            s(t.syn),
            s(t.tcp_fin),
            s(t.tcp_fin),
            s(t.close),
            s(t.udp),
        ])
    }
    #[inline]
    pub fn of(&self, st: TcpState) -> Tick {
        self.0[st as usize]
    }
    /// When a flow in `st`, renewed at `now`, expires: `now` plus the state's timeout.
    #[inline(always)]
    pub fn expires(&self, st: TcpState, now: Tick) -> Tick {
        now.saturating_add(self.of(st))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::flags::*;

    #[test]
    fn handshake_and_close() {
        let s = next(TcpState::None, SYN);
        assert_eq!(s, TcpState::SynRecv);
        let s = next(s, ACK);
        assert_eq!(s, TcpState::Established);
        let s = next(s, ACK | PSH);
        assert_eq!(s, TcpState::Established);
        let s = next(s, FIN | ACK);
        assert_eq!(s, TcpState::FinWait);
        let s = next(s, ACK);
        assert_eq!(s, TcpState::FinWait);
        assert_eq!(next(TcpState::Established, RST | ACK), TcpState::Close);
        assert_eq!(next(TcpState::SynRecv, FIN), TcpState::TimeWait);
        assert_eq!(next(TcpState::Established, 0), TcpState::Established);
        assert_eq!(next(TcpState::Close, SYN), TcpState::SynRecv);
    }

    #[test]
    fn timeouts_by_state() {
        let t = TimeoutTicks::new(&Timeouts::default());
        assert_eq!(t.of(TcpState::Established), 9000);
        assert_eq!(t.of(TcpState::SynRecv), 600);
        assert_eq!(t.of(TcpState::FinWait), 1200);
        assert_eq!(t.of(TcpState::Close), 100);
        assert_eq!(t.of(TcpState::Udp), 3000);
    }
}
