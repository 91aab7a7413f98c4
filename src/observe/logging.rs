//! drlb's log lines, through the `log` facade: `drlb: MESSAGE` on stderr (warnings and
//! errors marked), filtered by `--log-level`. Nothing is logged per packet: the workers
//! never log; the manager logs one line per control change and one stats line per
//! interval.
use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        match r.level() {
            Level::Error => eprintln!("drlb: error: {}", r.args()),
            Level::Warn => eprintln!("drlb: warning: {}", r.args()),
            Level::Info => eprintln!("drlb: {}", r.args()),
            Level::Debug | Level::Trace => eprintln!("drlb: debug: {}", r.args()),
        }
    }

    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

/// Installs the logger (once; later calls only change the level).
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
