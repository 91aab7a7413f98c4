//! An Ethernet port with one RX and one TX queue per worker, and the queue handles.
//!
//! Ownership carries the safety argument: [`Port::start`] consumes the port and hands
//! out each queue once; every handle keeps the device open, and the last one dropped
//! stops and closes it.
use super::mempool::Mempool;
use super::{check, DpdkError};
use crate::wire::Mac;
use dpdk_sys::rte_mbuf;
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the device says it can do (`rte_eth_dev_info_get`).
#[derive(Debug, Clone)]
pub struct PortInfo {
    pub id: u16,
    pub name: String,
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub rss_offloads: u64,
    /// Bytes of the RSS hash key the device takes (0: it does not say).
    pub hash_key_size: u8,
    pub tx_offloads: u64,
    pub min_mtu: u16,
    pub max_mtu: u16,
    pub max_rx_pktlen: u32,
    /// The NUMA node the device is attached to; `None` where it does not say (a vdev).
    pub socket: Option<u32>,
}

impl PortInfo {
    /// The MTUs `rte_eth_dev_configure` accepts: up to `max_mtu`, and a frame of it
    /// (with the overhead DPDK assumes: the difference of the two maxima, else Ethernet
    /// header and CRC) within `max_rx_pktlen`.
    pub fn mtu_range(&self) -> std::ops::RangeInclusive<u16> {
        let max = if self.max_mtu != u16::MAX && self.max_rx_pktlen > u32::from(self.max_mtu) {
            self.max_mtu
        } else {
            let by_frame = self.max_rx_pktlen.saturating_sub(18).min(u32::from(u16::MAX)) as u16;
            self.max_mtu.min(by_frame)
        };
        self.min_mtu..=max
    }
}

/// Number of ports DPDK found (PCI devices bound to a DPDK driver, and vdevs).
pub fn count() -> u16 {
    // SAFETY: valid after EAL init.
    unsafe { dpdk_sys::rte_eth_dev_count_avail() }
}

pub fn is_valid(id: u16) -> bool {
    // SAFETY: valid after EAL init for any id.
    unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id) == 1 }
}

pub fn info(id: u16) -> Result<PortInfo, DpdkError> {
    let mut di = dpdk_sys::rte_eth_dev_info::default();
    // SAFETY: di is a valid out-pointer.
    check("rte_eth_dev_info_get", unsafe { dpdk_sys::rte_eth_dev_info_get(id, &mut di) })?;
    let mut name = [0 as libc::c_char; dpdk_sys::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: name is RTE_ETH_NAME_MAX_LEN bytes as the API requires.
    check("rte_eth_dev_get_name_by_port", unsafe {
        dpdk_sys::rte_eth_dev_get_name_by_port(id, name.as_mut_ptr())
    })?;
    let driver = if di.driver_name.is_null() {
        String::new()
    } else {
        // SAFETY: the driver name is a static NUL-terminated string (checked non-NULL).
        unsafe { CStr::from_ptr(di.driver_name) }.to_string_lossy().into_owned()
    };
    Ok(PortInfo {
        id,
        // SAFETY: DPDK NUL-terminates the name.
        name: unsafe { CStr::from_ptr(name.as_ptr()) }.to_string_lossy().into_owned(),
        driver,
        max_rx_queues: di.max_rx_queues,
        max_tx_queues: di.max_tx_queues,
        rss_offloads: di.flow_type_rss_offloads,
        hash_key_size: di.hash_key_size,
        tx_offloads: di.tx_offload_capa,
        min_mtu: di.min_mtu,
        max_mtu: di.max_mtu,
        max_rx_pktlen: di.max_rx_pktlen,
        // SAFETY: a valid port id (its info was just read); -1 (SOCKET_ID_ANY) means
        // the device has no node.
        socket: u32::try_from(unsafe { dpdk_sys::rte_eth_dev_socket_id(id) }).ok(),
    })
}

/// How the port spreads received packets over its queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rss {
    /// One queue, or a device without RSS: no spreading.
    Off,
    /// RSS on these hash types, with the driver's default key (the device does not say
    /// how long a key it takes, or no random bytes could be had).
    DriverKey { hf: u64 },
    /// RSS on these hash types with a key of random bytes drawn at start: the well-known
    /// default keys let a sender choose addresses that all land on one queue (one
    /// worker), a random one does not.
    RandomKey { hf: u64, key: Vec<u8> },
}

impl Rss {
    /// The RSS set-up for `queues` queues on a device that hashes `info.rss_offloads`,
    /// of which we want `want` (IP, TCP, UDP). `random` fills a key of the device's
    /// length, or fails.
    pub fn plan(
        info: &PortInfo,
        queues: u16,
        want: u64,
        random: impl FnOnce(&mut [u8]) -> bool,
    ) -> Rss {
        let hf = want & info.rss_offloads;
        if queues < 2 || hf == 0 {
            return Rss::Off;
        }
        let mut key = vec![0u8; usize::from(info.hash_key_size)];
        if key.is_empty() || !random(&mut key) {
            return Rss::DriverKey { hf };
        }
        Rss::RandomKey { hf, key }
    }
}

impl std::fmt::Display for Rss {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Rss::Off => write!(f, "RSS off"),
            Rss::DriverKey { .. } => write!(f, "RSS with the driver's key"),
            Rss::RandomKey { key, .. } => write!(f, "RSS with a random {}-byte key", key.len()),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

/// A configured port: queues set up, not started yet. [`Port::start`] starts it and
/// hands out each queue exactly once.
pub struct Port {
    inner: Arc<PortInner>,
}

/// The device, closed when the last handle to it (the [`Started`] port or a queue) is
/// dropped; it keeps its mempool alive until then.
struct PortInner {
    id: u16,
    queues: u16,
    rss: Rss,
    started: AtomicBool,
    _pool: Arc<Mempool>,
}

impl Drop for PortInner {
    fn drop(&mut self) {
        if self.started.load(Ordering::Relaxed) {
            // SAFETY: the port was started; no queue handle exists any more (they hold
            // this value), so nothing polls it.
            unsafe { dpdk_sys::rte_eth_dev_stop(self.id) };
        }
        // SAFETY: the port is stopped (or never started) and nothing uses it any more.
        unsafe { dpdk_sys::rte_eth_dev_close(self.id) };
    }
}

impl Port {
    /// Configures `queues` RX and TX queues (RSS on IP/TCP/UDP, masked by what the device
    /// offers, when more than one), `rx_desc`/`tx_desc` descriptors each, and the MTU
    /// (within [`PortInfo::mtu_range`]; the pool's mbufs must hold a frame of it).
    pub fn configure(
        info: &PortInfo,
        queues: u16,
        pool: &Arc<Mempool>,
        rx_desc: u16,
        tx_desc: u16,
        mtu: u16,
    ) -> Result<Port, DpdkError> {
        let id = info.id;
        let mut conf = dpdk_sys::rte_eth_conf::default();
        conf.rxmode.mtu = u32::from(mtu);
        // SAFETY: reading extern constants defined in the shim.
        let (rss_want, fast_free, mq_rss) = unsafe {
            (
                dpdk_sys::DRLB_RSS_IP | dpdk_sys::DRLB_RSS_TCP | dpdk_sys::DRLB_RSS_UDP,
                dpdk_sys::DRLB_TX_OFFLOAD_MBUF_FAST_FREE,
                dpdk_sys::DRLB_MQ_RX_RSS,
            )
        };
        let mut rss = Rss::plan(info, queues, rss_want, |k| getrandom::getrandom(k).is_ok());
        if let Rss::DriverKey { hf } | Rss::RandomKey { hf, .. } = &rss {
            conf.rxmode.mq_mode = mq_rss;
            conf.rx_adv_conf.rss_conf.rss_hf = *hf;
        }
        if let Rss::RandomKey { key, .. } = &mut rss {
            // rte_eth_dev_configure copies the key; `rss` outlives the call.
            conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
            conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
        }
        // All our mbufs come from one pool with refcnt 1: fast free is valid if offered.
        conf.txmode.offloads = fast_free & info.tx_offloads;
        // SAFETY: conf is a valid, fully initialised rte_eth_conf.
        check("rte_eth_dev_configure", unsafe {
            dpdk_sys::rte_eth_dev_configure(id, queues, queues, &conf)
        })?;
        // From here the device is ours to close, also when a later step fails.
        let port = Port {
            inner: Arc::new(PortInner {
                id,
                queues,
                rss,
                started: AtomicBool::new(false),
                _pool: pool.clone(),
            }),
        };
        let (mut nrx, mut ntx) = (rx_desc, tx_desc);
        // SAFETY: out-pointers are valid.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nrx, &mut ntx)
        })?;
        // SAFETY: the port is configured; socket id lookup has no preconditions.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) } as u32;
        for q in 0..queues {
            // SAFETY: q < configured queues; NULL conf = driver defaults; the pool
            // outlives the port (PortInner holds it).
            check("rte_eth_rx_queue_setup", unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    nrx,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            })?;
            // SAFETY: as above.
            check("rte_eth_tx_queue_setup", unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(id, q, ntx, socket, std::ptr::null())
            })?;
        }
        Ok(port)
    }

    pub fn set_mac(&self, mac: Mac) -> Result<(), DpdkError> {
        let mut a = dpdk_sys::rte_ether_addr { addr_bytes: mac.0 };
        // SAFETY: a is a valid in-pointer.
        check("rte_eth_dev_default_mac_addr_set", unsafe {
            dpdk_sys::rte_eth_dev_default_mac_addr_set(self.inner.id, &mut a)
        })?;
        Ok(())
    }

    /// Starts the port and hands out its queue pairs, one per queue: each exists once,
    /// so each is polled by one thread only.
    pub fn start(self) -> Result<(Started, Vec<(RxQueue, TxQueue)>), DpdkError> {
        let id = self.inner.id;
        // SAFETY: the port is configured with all queues set up.
        check("rte_eth_dev_start", unsafe { dpdk_sys::rte_eth_dev_start(id) })?;
        self.inner.started.store(true, Ordering::Relaxed);
        let queues = (0..self.inner.queues)
            .map(|q| {
                (
                    RxQueue { port: id, queue: q, _dev: self.inner.clone() },
                    TxQueue { port: id, queue: q, _dev: self.inner.clone() },
                )
            })
            .collect();
        Ok((Started { inner: self.inner }, queues))
    }
}

/// A started port. The device is stopped and closed (a net_pcap TX file flushed and
/// complete) when this and every queue handle are dropped.
pub struct Started {
    inner: Arc<PortInner>,
}

/// Reads a started port's counters and link state from another thread (the manager):
/// `rte_eth_stats_get` and `rte_eth_link_get_nowait` only read.
#[derive(Debug, Clone, Copy)]
pub struct PortMonitor {
    id: u16,
}

/// The port's link: up, and its speed in Mb/s (0 when the driver does not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    pub speed_mbps: u32,
}

impl PortMonitor {
    pub fn id(&self) -> u16 {
        self.id
    }

    pub fn stats(&self) -> PortStats {
        stats(self.id)
    }

    pub fn link(&self) -> Link {
        let mut l = dpdk_sys::rte_eth_link::default();
        // SAFETY: l is a valid out-pointer; the call does not wait.
        let rc = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.id, &mut l) };
        let speed = if l.link_speed == u32::MAX { 0 } else { l.link_speed }; // UNKNOWN
        Link { up: rc == 0 && l.link_status() != 0, speed_mbps: speed }
    }
}

fn stats(id: u16) -> PortStats {
    let mut s = dpdk_sys::rte_eth_stats::default();
    // SAFETY: s is a valid out-pointer.
    unsafe { dpdk_sys::rte_eth_stats_get(id, &mut s) };
    PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    }
}

impl Started {
    pub fn id(&self) -> u16 {
        self.inner.id
    }

    /// How received packets are spread over the queues.
    pub fn rss(&self) -> &Rss {
        &self.inner.rss
    }

    /// A handle the manager reads the port's counters and link with.
    pub fn monitor(&self) -> PortMonitor {
        PortMonitor { id: self.inner.id }
    }

    pub fn mac(&self) -> Result<Mac, DpdkError> {
        mac(self.inner.id)
    }

    pub fn stats(&self) -> PortStats {
        stats(self.inner.id)
    }
}

fn mac(id: u16) -> Result<Mac, DpdkError> {
    let mut a = dpdk_sys::rte_ether_addr::default();
    // SAFETY: a is a valid out-pointer.
    check("rte_eth_macaddr_get", unsafe { dpdk_sys::rte_eth_macaddr_get(id, &mut a) })?;
    Ok(Mac(a.addr_bytes))
}

/// RX queue `queue` of a started port: handed out once by [`Port::start`], polled by
/// the one thread that holds it (Send, not Sync, not Clone).
pub struct RxQueue {
    port: u16,
    queue: u16,
    _dev: Arc<PortInner>,
}
/// TX queue `queue` of a started port, as [`RxQueue`].
pub struct TxQueue {
    port: u16,
    queue: u16,
    _dev: Arc<PortInner>,
}

impl RxQueue {
    /// Receives up to `pkts.len()` frames; returns how many slots were filled.
    #[inline(always)]
    pub(super) fn rx_burst(&mut self, pkts: &mut [*mut rte_mbuf]) -> usize {
        // SAFETY: this handle is the queue's only user (made once, not Clone, polled
        // through `&mut`); the port is started and open while the handle lives; pkts
        // has room for len pointers.
        usize::from(unsafe {
            dpdk_sys::drlb_rx_burst(self.port, self.queue, pkts.as_mut_ptr(), pkts.len() as u16)
        })
    }
}

impl TxQueue {
    /// Hands `pkts` to the device; returns how many it took (those now belong to it).
    #[inline(always)]
    pub(super) fn tx_burst(&mut self, pkts: &mut [*mut rte_mbuf]) -> usize {
        // SAFETY: as for RxQueue; the mbufs are valid and ours.
        usize::from(unsafe {
            dpdk_sys::drlb_tx_burst(self.port, self.queue, pkts.as_mut_ptr(), pkts.len() as u16)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(rss_offloads: u64, hash_key_size: u8) -> PortInfo {
        PortInfo {
            id: 0,
            name: "p".into(),
            driver: "d".into(),
            max_rx_queues: 4,
            max_tx_queues: 4,
            rss_offloads,
            hash_key_size,
            tx_offloads: 0,
            min_mtu: 68,
            max_mtu: 1500,
            max_rx_pktlen: 1518,
            socket: None,
        }
    }

    #[test]
    fn rss_is_keyed_at_random_when_it_spreads() {
        let fill = |k: &mut [u8]| {
            k.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8 + 1);
            true
        };
        assert_eq!(Rss::plan(&info(0b111, 40), 1, 0b110, fill), Rss::Off, "one queue");
        assert_eq!(Rss::plan(&info(0b001, 40), 2, 0b110, fill), Rss::Off, "no wanted type");
        let want: Vec<u8> = (1..=40).collect();
        assert_eq!(
            Rss::plan(&info(0b111, 40), 2, 0b110, fill),
            Rss::RandomKey { hf: 0b110, key: want },
            "the types both want, a key of the device's length"
        );
        assert_eq!(
            Rss::plan(&info(0b111, 0), 2, 0b110, fill),
            Rss::DriverKey { hf: 0b110 },
            "a device that does not say its key length keeps its own"
        );
        assert_eq!(
            Rss::plan(&info(0b111, 52), 2, 0b110, |_| false),
            Rss::DriverKey { hf: 0b110 },
            "no random bytes: the driver's key"
        );
        assert_eq!(
            Rss::plan(&info(0b111, 52), 4, 0b110, fill).to_string(),
            "RSS with a random 52-byte key"
        );
        // The real source: two draws differ.
        let draw = || match Rss::plan(&info(1, 40), 2, 1, |k| getrandom::getrandom(k).is_ok()) {
            Rss::RandomKey { key, .. } => key,
            other => panic!("{other:?}"),
        };
        assert_ne!(draw(), draw());
    }
}
