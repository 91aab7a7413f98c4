//! An Ethernet port with one RX and one TX queue per worker, and the queue handles.
use super::mempool::Mempool;
use super::{check, DpdkError};
use crate::wire::Mac;
use dpdk_sys::rte_mbuf;
use std::ffi::CStr;
use std::marker::PhantomData;

/// What the device says it can do (`rte_eth_dev_info_get`).
#[derive(Debug, Clone)]
pub struct PortInfo {
    pub id: u16,
    pub name: String,
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub rss_offloads: u64,
    pub tx_offloads: u64,
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
    check("rte_eth_dev_info_get", unsafe {
        dpdk_sys::rte_eth_dev_info_get(id, &mut di)
    })?;
    let mut name = [0 as libc::c_char; dpdk_sys::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: name is RTE_ETH_NAME_MAX_LEN bytes as the API requires.
    check("rte_eth_dev_get_name_by_port", unsafe {
        dpdk_sys::rte_eth_dev_get_name_by_port(id, name.as_mut_ptr())
    })?;
    let driver = if di.driver_name.is_null() {
        String::new()
    } else {
        // SAFETY: the driver name is a static NUL-terminated string (checked non-NULL).
        unsafe { CStr::from_ptr(di.driver_name) }
            .to_string_lossy()
            .into_owned()
    };
    Ok(PortInfo {
        id,
        // SAFETY: DPDK NUL-terminates the name.
        name: unsafe { CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
        driver,
        max_rx_queues: di.max_rx_queues,
        max_tx_queues: di.max_tx_queues,
        rss_offloads: di.flow_type_rss_offloads,
        tx_offloads: di.tx_offload_capa,
    })
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

/// A configured port. Stop and close it before dropping its mempool.
pub struct Port {
    pub id: u16,
    pub queues: u16,
    pub info: PortInfo,
    started: bool,
    closed: bool,
}

impl Port {
    /// Configures `queues` RX and TX queues (RSS on IP/TCP/UDP, masked by what the device
    /// offers, when more than one), `rx_desc`/`tx_desc` descriptors each.
    pub fn configure(
        info: PortInfo,
        queues: u16,
        pool: &Mempool,
        rx_desc: u16,
        tx_desc: u16,
    ) -> Result<Port, DpdkError> {
        let id = info.id;
        let mut conf = dpdk_sys::rte_eth_conf::default();
        // SAFETY: reading extern constants defined in the shim.
        let (rss_want, fast_free, mq_rss) = unsafe {
            (
                dpdk_sys::DRLB_RSS_IP | dpdk_sys::DRLB_RSS_TCP | dpdk_sys::DRLB_RSS_UDP,
                dpdk_sys::DRLB_TX_OFFLOAD_MBUF_FAST_FREE,
                dpdk_sys::DRLB_MQ_RX_RSS,
            )
        };
        let rss_hf = rss_want & info.rss_offloads;
        if queues > 1 && rss_hf != 0 {
            conf.rxmode.mq_mode = mq_rss;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // All our mbufs come from one pool with refcnt 1: fast free is valid if offered.
        conf.txmode.offloads = fast_free & info.tx_offloads;
        // SAFETY: conf is a valid, fully initialised rte_eth_conf.
        check("rte_eth_dev_configure", unsafe {
            dpdk_sys::rte_eth_dev_configure(id, queues, queues, &conf)
        })?;
        let (mut nrx, mut ntx) = (rx_desc, tx_desc);
        // SAFETY: out-pointers are valid.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nrx, &mut ntx)
        })?;
        // SAFETY: the port is configured; socket id lookup has no preconditions.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) } as u32;
        for q in 0..queues {
            // SAFETY: q < configured queues; NULL conf = driver defaults; pool outlives the port.
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
        Ok(Port {
            id,
            queues,
            info,
            started: false,
            closed: false,
        })
    }

    pub fn mac(&self) -> Result<Mac, DpdkError> {
        let mut a = dpdk_sys::rte_ether_addr::default();
        // SAFETY: a is a valid out-pointer.
        check("rte_eth_macaddr_get", unsafe {
            dpdk_sys::rte_eth_macaddr_get(self.id, &mut a)
        })?;
        Ok(Mac(a.addr_bytes))
    }

    pub fn set_mac(&self, mac: Mac) -> Result<(), DpdkError> {
        let mut a = dpdk_sys::rte_ether_addr { addr_bytes: mac.0 };
        // SAFETY: a is a valid in-pointer.
        check("rte_eth_dev_default_mac_addr_set", unsafe {
            dpdk_sys::rte_eth_dev_default_mac_addr_set(self.id, &mut a)
        })?;
        Ok(())
    }

    pub fn start(&mut self) -> Result<(), DpdkError> {
        // SAFETY: the port is configured with all queues set up.
        check("rte_eth_dev_start", unsafe {
            dpdk_sys::rte_eth_dev_start(self.id)
        })?;
        self.started = true;
        Ok(())
    }

    /// The queue handles, one pair per worker; each must move into exactly one thread.
    pub fn queues(&self) -> Vec<(RxQueue, TxQueue)> {
        (0..self.queues)
            .map(|q| {
                (
                    RxQueue {
                        port: self.id,
                        queue: q,
                        _not_sync: PhantomData,
                    },
                    TxQueue {
                        port: self.id,
                        queue: q,
                        _not_sync: PhantomData,
                    },
                )
            })
            .collect()
    }

    pub fn stats(&self) -> PortStats {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: s is a valid out-pointer.
        unsafe { dpdk_sys::rte_eth_stats_get(self.id, &mut s) };
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

    /// Stops and closes the port (a net_pcap TX file is flushed and closed here).
    pub fn close(&mut self) {
        if self.started {
            // SAFETY: the port was started; workers have stopped using its queues.
            unsafe { dpdk_sys::rte_eth_dev_stop(self.id) };
            self.started = false;
        }
        if !self.closed {
            // SAFETY: the port is stopped.
            unsafe { dpdk_sys::rte_eth_dev_close(self.id) };
            self.closed = true;
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.close();
    }
}

/// RX queue `queue` of `port`: owned by one worker (Send, not Sync, not Clone).
pub struct RxQueue {
    pub port: u16,
    pub queue: u16,
    _not_sync: PhantomData<*const ()>,
}
/// TX queue `queue` of `port`: owned by one worker.
pub struct TxQueue {
    pub port: u16,
    pub queue: u16,
    _not_sync: PhantomData<*const ()>,
}
// SAFETY: a queue may be polled from any one thread at a time; the handle is not Clone
// or Sync, so moving it is the only way to share it.
unsafe impl Send for RxQueue {}
// SAFETY: as above.
unsafe impl Send for TxQueue {}

impl RxQueue {
    /// Receives up to `pkts.len()` frames; returns how many slots were filled.
    #[inline(always)]
    pub fn rx_burst(&mut self, pkts: &mut [*mut rte_mbuf]) -> usize {
        // SAFETY: this handle is the queue's only user; pkts has room for len pointers.
        usize::from(unsafe {
            dpdk_sys::drlb_rx_burst(self.port, self.queue, pkts.as_mut_ptr(), pkts.len() as u16)
        })
    }
}

impl TxQueue {
    /// Hands `pkts` to the device; returns how many it took (those now belong to it).
    #[inline(always)]
    pub fn tx_burst(&mut self, pkts: &mut [*mut rte_mbuf]) -> usize {
        // SAFETY: this handle is the queue's only user; the mbufs are valid and ours.
        usize::from(unsafe {
            dpdk_sys::drlb_tx_burst(self.port, self.queue, pkts.as_mut_ptr(), pkts.len() as u16)
        })
    }
}
