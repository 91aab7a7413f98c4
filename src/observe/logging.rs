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
        let text = r.args().to_string();
        let msg = one_line(&text);
        match r.level() {
            Level::Error => eprintln!("drlb: error: {msg}"),
            Level::Warn => eprintln!("drlb: warning: {msg}"),
            Level::Info => eprintln!("drlb: {msg}"),
            Level::Debug | Level::Trace => eprintln!("drlb: debug: {msg}"),
        }
    }

    fn flush(&self) {}
}

/// A message as one log line: control characters (a newline in a value a client sent,
/// say) are escaped, so nothing logged can forge or split a line.
pub fn one_line(msg: &str) -> std::borrow::Cow<'_, str> {
    if !msg.chars().any(char::is_control) {
        return msg.into();
    }
    msg.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect::<String>()
        .into()
}

static LOGGER: Stderr = Stderr;

/// Installs the logger (once; later calls only change the level).
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_logged_value_cannot_start_a_line() {
        assert_eq!(super::one_line("plain"), "plain");
        assert_eq!(
            super::one_line("mac 02:00\ndrlb: forged\r\u{1b}[31m"),
            "mac 02:00\\ndrlb: forged\\r\\u{1b}[31m"
        );
    }
}
