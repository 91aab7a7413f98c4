//! Build script for dpdk-sys.
//!
//! The system DPDK is found with `pkg-config libdpdk`. Its *raw* `--cflags` are given to
//! both bindgen and the C shim: they carry `-include rte_config.h` and `-march=...`, which
//! some inline functions need (the pkg-config crate would drop them). We link DPDK's
//! shared libraries; EAL then loads the PMD plugins (net_pcap, net_af_packet, ...) itself.
use std::env;
use std::path::PathBuf;
use std::process::Command;

fn pkg_config(args: &[&str]) -> String {
    let out = Command::new("pkg-config").args(args).arg("libdpdk").output().unwrap_or_else(|e| {
        panic!("cannot run pkg-config ({e}); install it: apt-get install pkg-config")
    });
    if !out.status.success() {
        panic!(
            "pkg-config cannot find libdpdk: {}\nInstall DPDK: apt-get install dpdk dpdk-dev libdpdk-dev \
             (or run scripts/setup.sh)",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).expect("pkg-config output is UTF-8")
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let version = pkg_config(&["--modversion"]).trim().to_string();
    let cflags: Vec<String> =
        pkg_config(&["--cflags"]).split_whitespace().map(String::from).collect();
    let libs = pkg_config(&["--libs"]);

    // `-include rte_config.h` is two tokens; keep them together for cc.
    let mut build = cc::Build::new();
    build.file(manifest.join("shim.c")).opt_level(3).warnings(false);
    let mut it = cflags.iter();
    while let Some(f) = it.next() {
        if f == "-include" {
            let h = it.next().expect("-include takes a file");
            build.flag("-include").flag(h);
        } else {
            build.flag(f);
        }
    }
    build.compile("drlb_dpdk_shim");

    // Link the shared libraries pkg-config names (rustc links with --as-needed, so only
    // the ones really used end up NEEDED).
    for tok in libs.split_whitespace() {
        if let Some(path) = tok.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={path}");
        } else if let Some(lib) = tok.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
    }
    println!("cargo:version={version}");
    println!("cargo:rustc-env=DPDK_VERSION={version}");

    let header = manifest.join("wrapper.h");
    let bindings = bindgen::Builder::default()
        .header(header.to_str().unwrap())
        .clang_args(cflags.iter().map(String::as_str))
        .clang_arg(format!("-I{}", manifest.display()))
        .allowlist_function(
            "rte_eal_init|rte_eal_cleanup|rte_eal_remote_launch|rte_eal_wait_lcore|rte_eal_process_type\
             |rte_get_next_lcore|rte_get_main_lcore|rte_lcore_count|rte_socket_id|rte_lcore_to_socket_id\
             |rte_lcore_to_cpu_id|rte_get_tsc_hz|rte_strerror|rte_version|rte_eal_get_runtime_dir\
             |rte_pktmbuf_pool_create|rte_pktmbuf_free_bulk|rte_mempool_free|rte_mempool_avail_count\
             |rte_mempool_in_use_count\
             |rte_eth_dev_count_avail|rte_eth_dev_is_valid_port|rte_eth_dev_info_get|rte_eth_dev_configure\
             |rte_eth_rx_queue_setup|rte_eth_tx_queue_setup|rte_eth_dev_start|rte_eth_dev_stop\
             |rte_eth_dev_close|rte_eth_dev_socket_id|rte_eth_macaddr_get|rte_eth_dev_default_mac_addr_set\
             |rte_eth_promiscuous_enable|rte_eth_promiscuous_disable|rte_eth_stats_get|rte_eth_stats_reset\
             |rte_eth_dev_get_name_by_port|rte_eth_dev_adjust_nb_rx_tx_desc|rte_eth_link_get_nowait\
             |rte_telemetry_register_cmd|rte_tel_data_.*|rte_pdump_init|rte_pdump_uninit\
             |rte_eal_hotplug_add|rte_eal_hotplug_remove|rte_eth_dev_get_port_by_name|rte_eth_dev_set_mtu\
             |rte_hash_create|rte_hash_free|rte_hash_add_key_data|rte_hash_lookup_bulk_data\
             |drlb_.*",
        )
        .allowlist_type("rte_hash_parameters|rte_mbuf|rte_eth_conf|rte_eth_dev_info|rte_eth_stats|rte_ether_addr|rte_eth_link|rte_tel_data")
        .allowlist_var("DRLB_.*|RTE_MAX_ETHPORTS|RTE_MAX_LCORE|RTE_PKTMBUF_HEADROOM|RTE_MBUF_DEFAULT_BUF_SIZE|RTE_ETHER_ADDR_LEN|RTE_ETH_NAME_MAX_LEN|RTE_TEL_MAX_SINGLE_STRING_LEN")
        // Packed-with-aligned types bindgen cannot lay out (rte_arp_hdr and friends).
        .opaque_type("rte_arp_ipv4|rte_arp_hdr|rte_l2tpv2_combined_msg_hdr|rte_flow_item_gtp_psc")
        .derive_default(true)
        .generate_comments(false)
        .layout_tests(true)
        .generate()
        .expect("bindgen failed on the DPDK headers");
    bindings.write_to_file(out.join("bindings.rs")).expect("write bindings.rs");

    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-changed=build.rs");
}
