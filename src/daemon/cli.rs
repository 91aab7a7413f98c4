//! drlb's command line, DPDK style: `drlb [EAL options] -- [drlb options]`.
use clap::Parser;
use std::path::PathBuf;

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("DRLB_GIT_HASH"),
    ", built against DPDK ",
    env!("DRLB_DPDK_VERSION"),
    ")"
);

/// LVS-DR load balancer on DPDK.
///
/// Usage: drlb [EAL options] -- --config FILE [options]
///
/// EAL options come first, as for any DPDK application: e.g. `-l 0-2 -a 0000:01:00.0`,
/// or `--no-pci --vdev=net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap` without a NIC.
/// Every lcore but the main one runs a forwarding worker with its own RX/TX queue pair.
#[derive(Parser, Debug)]
#[command(name = "drlb", version = LONG_VERSION, about, long_about = None,
          override_usage = "drlb [EAL options] -- --config FILE [--control SOCKET] [--stats-interval SECS]")]
pub struct Args {
    /// Config file (TOML; see configs/example.toml).
    #[arg(long, short = 'c', value_name = "FILE", required_unless_present = "check")]
    pub config: Option<PathBuf>,
    /// Validate FILE and exit (0 valid, 1 invalid); starts nothing, needs no `--` or EAL.
    #[arg(long, value_name = "FILE", exclusive = true)]
    pub check: Option<PathBuf>,
    /// Admin socket for drlbadm (directory made 0700, socket 0600; root or drlb's uid).
    #[arg(long, value_name = "SOCKET", default_value = "/run/drlb/drlb.sock")]
    pub control: PathBuf,
    /// Also let this group (name or gid) use the control socket (made 0660).
    #[arg(long, value_name = "GROUP")]
    pub control_group: Option<String>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (a bare PORT means
    /// 127.0.0.1:PORT). Off by default.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<String>,
    /// Log level: error, warn, info (a line per control change and the stats line) or
    /// debug. (EAL's own --log-level goes before `--`.)
    #[arg(long, value_name = "LEVEL", default_value = "info", value_parser = parse_level)]
    pub log_level: log::LevelFilter,
    /// Print a stats line every SECS seconds (0: off).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub stats_interval: u64,
    /// RX and TX descriptors per queue.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub descriptors: u16,
    /// Mbufs in the packet pool (default: enough for every queue; net_pcap with
    /// infinite_rx=1 needs at least as many as its pcap has packets).
    #[arg(long, value_name = "N")]
    pub mbufs: Option<u32>,
}

fn parse_level(s: &str) -> Result<log::LevelFilter, String> {
    match s.to_ascii_lowercase().as_str() {
        "error" => Ok(log::LevelFilter::Error),
        "warn" | "warning" => Ok(log::LevelFilter::Warn),
        "info" => Ok(log::LevelFilter::Info),
        "debug" => Ok(log::LevelFilter::Debug),
        _ => Err("want one of error, warn, info, debug".into()),
    }
}

/// What the command line asks for.
pub enum Command {
    /// `--check FILE`: validate and exit.
    Check(PathBuf),
    /// Start: the EAL arguments (program name first) and drlb's own.
    Run { eal: Vec<String>, args: Args },
}

/// The command line could not be used: `message` is printed to stderr (empty when clap
/// already printed help, a version or its own error) and drlb exits with `code`.
pub struct Exit {
    pub code: u8,
    pub message: String,
}

const SEPARATOR_HINT: &str = "drlb: EAL options and drlb options are separated by `--`, e.g.\n  drlb -l 0-1 --no-pci --vdev=net_pcap0,rx_pcap=in.pcap -- --config configs/seed-dr.toml";

/// Splits `argv` at `--` (DPDK's convention) and parses drlb's part. Without `--`, only
/// `--help`, `--version` and `--check` make sense; anything else is a usage error.
pub fn parse(argv: Vec<String>) -> Result<Command, Exit> {
    let prog = argv.first().cloned().unwrap_or_else(|| "drlb".into());
    let (eal, app): (Vec<String>, Vec<String>) = match argv.iter().position(|a| a == "--") {
        Some(i) => (
            argv[..i].to_vec(),
            std::iter::once(prog).chain(argv[i + 1..].iter().cloned()).collect(),
        ),
        None => {
            let wants_info = argv
                .iter()
                .skip(1)
                .any(|a| matches!(a.as_str(), "-h" | "--help" | "-V" | "--version" | "--check"));
            if !wants_info {
                if let Err(e) = Args::try_parse_from(&argv) {
                    eprintln!("{e}");
                    return Err(Exit { code: 2, message: SEPARATOR_HINT.into() });
                }
                return Err(Exit {
                    code: 2,
                    message: "drlb: error: missing `--` between the EAL options and drlb's, e.g. drlb -l 0-1 -- --config FILE".into(),
                });
            }
            (vec![prog], argv)
        }
    };
    let args = Args::try_parse_from(&app).map_err(|e| {
        let _ = e.print();
        Exit { code: if e.use_stderr() { 2 } else { 0 }, message: String::new() }
    })?;
    match (&args.check, &args.config) {
        (Some(f), _) => Ok(Command::Check(f.clone())),
        _ => Ok(Command::Run { eal, args }),
    }
}
