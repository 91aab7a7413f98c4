//! `drlb [EAL options] -- --config FILE [options]`: the phases are in [`drlb::daemon`];
//! this maps their outcome to an exit code (0 stopped cleanly, 1 a worker failed,
//! 2 could not start or bad usage; `--check`: 0 valid, 1 invalid).
#![deny(unsafe_code)]
use drlb::control::config::Config;
use drlb::daemon::{self, cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    let (eal, args) = match cli::parse(std::env::args().collect()) {
        Ok(cli::Command::Run { eal, args }) => (eal, args),
        Ok(cli::Command::Check(file)) => {
            return match Config::check_file(&file) {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("drlb: {e}");
                    ExitCode::from(1)
                }
            };
        }
        Err(exit) => {
            if !exit.message.is_empty() {
                eprintln!("{}", exit.message);
            }
            return ExitCode::from(exit.code);
        }
    };
    match daemon::run(eal, args) {
        Ok(summary) => {
            summary.print();
            ExitCode::from(u8::from(summary.worker_failed))
        }
        Err(e) => {
            eprintln!("drlb: error: {e}");
            ExitCode::from(2)
        }
    }
}
