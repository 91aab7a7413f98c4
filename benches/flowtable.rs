//! drlb's flow table against DPDK's `rte_hash` (cuckoo hash, CRC32 by default), the
//! comparison the DR-forwarder issue asks for. Both do lookups in bursts of 32 in a
//! pseudo-random order over N resident keys: `rte_hash_lookup_bulk_data` against our
//! prefetch-the-burst-then-find. Needs EAL (rte_hash allocates with rte_malloc): run as
//! root; uses --no-huge so it needs no hugepages.
//!
//!   cargo bench --bench flowtable
#![allow(unsafe_code)]
use drlb::lb::flow::{FlowKey, FlowTable, Lookup};
use drlb::lb::tcp_state::TcpState;
use std::ffi::{c_void, CString};
use std::time::Instant;

const BURST: usize = 32;

fn key(i: u32) -> FlowKey {
    FlowKey {
        saddr: 0x0a00_0000 | i,
        daddr: 0xc0a8_01c8,
        sport: 1024 + (i % 60000) as u16,
        dport: 80,
        proto: 6,
    }
}

/// The 5-tuple as rte_hash's 16-byte key (13 bytes used, zero padded).
fn raw(k: &FlowKey) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..4].copy_from_slice(&k.saddr.to_be_bytes());
    b[4..8].copy_from_slice(&k.daddr.to_be_bytes());
    b[8..10].copy_from_slice(&k.sport.to_be_bytes());
    b[10..12].copy_from_slice(&k.dport.to_be_bytes());
    b[12] = k.proto;
    b
}

/// Lookup order: a full-period permutation (multiplier coprime with n).
fn order(n: u32, total: usize) -> Vec<u32> {
    (0..total as u64).map(|i| ((i * 2_654_435_761) % u64::from(n)) as u32).collect()
}

fn ours(n: u32, lookups: &[u32]) -> f64 {
    let mut t = FlowTable::new(n as usize * 2);
    for i in 0..n {
        let k = key(i);
        if let Lookup::Vacant(idx) = t.find(&k, 0) {
            t.insert_at(idx, &k, (i % 4) as u16, 1, TcpState::Established, 1_000_000, 0);
        }
    }
    let keys: Vec<FlowKey> = lookups.iter().map(|&i| key(i)).collect();
    let mut hits = 0u64;
    let start = Instant::now();
    let mut hs = [drlb::lb::flow::Hashed::default(); BURST];
    for chunk in keys.chunks(BURST) {
        for (k, h) in chunk.iter().zip(hs.iter_mut()) {
            *h = t.prefetch(&drlb::lb::flow::WireKey::from(k), false);
        }
        for (k, h) in chunk.iter().zip(hs.iter()) {
            if let Lookup::Hit(idx) = t.find_hashed(std::hint::black_box(k), h, 1) {
                hits += u64::from(t.get(idx).slot);
            }
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / keys.len() as f64;
    std::hint::black_box(hits);
    ns
}

fn rte(n: u32, lookups: &[u32]) -> f64 {
    let name = CString::new(format!("bench{n}")).unwrap();
    let params = dpdk_sys::rte_hash_parameters {
        name: name.as_ptr(),
        entries: n * 2,
        key_len: 16,
        socket_id: 0,
        ..Default::default()
    };
    // SAFETY: params is valid; EAL is initialised.
    let h = unsafe { dpdk_sys::rte_hash_create(&params) };
    assert!(!h.is_null(), "rte_hash_create failed");
    for i in 0..n {
        let k = raw(&key(i));
        // SAFETY: h is valid; the key is 16 bytes as declared; data is an opaque value.
        let rc = unsafe {
            dpdk_sys::rte_hash_add_key_data(
                h,
                k.as_ptr() as *const c_void,
                (i % 4) as usize as *mut c_void,
            )
        };
        assert!(rc == 0, "rte_hash_add_key_data: {rc}");
    }
    let keys: Vec<[u8; 16]> = lookups.iter().map(|&i| raw(&key(i))).collect();
    let mut hits = 0u64;
    let start = Instant::now();
    for chunk in keys.chunks(BURST) {
        let ptrs: [*const c_void; BURST] = std::array::from_fn(|j| {
            chunk.get(j).map_or(std::ptr::null(), |k| k.as_ptr() as *const c_void)
        });
        let mut data: [*mut c_void; BURST] = [std::ptr::null_mut(); BURST];
        let mut mask = 0u64;
        // SAFETY: h valid; ptrs holds chunk.len() valid 16-byte keys; data has room.
        unsafe {
            dpdk_sys::rte_hash_lookup_bulk_data(
                h,
                ptrs.as_ptr() as *mut *const c_void,
                chunk.len() as u32,
                &mut mask,
                data.as_mut_ptr(),
            )
        };
        hits += u64::from(mask.count_ones()) + data[0] as u64;
    }
    let ns = start.elapsed().as_nanos() as f64 / keys.len() as f64;
    std::hint::black_box(hits);
    // SAFETY: h came from rte_hash_create.
    unsafe { dpdk_sys::rte_hash_free(h) };
    ns
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let args: Vec<String> = [
        "flowtable",
        "--no-huge",
        "-m",
        "2048",
        "--no-pci",
        "--file-prefix",
        "drlbhashbench",
        "-l",
        "0",
        "--log-level",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let eal = drlb::dpdk::eal::init(&args).expect("EAL init (run as root)");
    println!("table,flows,ns_per_lookup");
    let sizes: &[u32] = if quick { &[1024] } else { &[1024, 65_536, 1_048_576] };
    for &n in sizes {
        let lookups = order(n, if quick { 1 << 18 } else { 1 << 23 });
        println!("drlb,{n},{:.1}", ours(n, &lookups));
        println!("rte_hash,{n},{:.1}", rte(n, &lookups));
    }
    drop(eal);
}
