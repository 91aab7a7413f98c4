//! The config parser and validator on arbitrary text: an error or a config that
//! serialises (`drlbadm -S`) and parses back to itself, and builds a snapshot.
#![no_main]
use drlb::control::{config::Config, state::ControlState};
use drlb::wire::Mac;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = Config::parse(text, "fuzz") {
        let again = cfg.to_toml();
        let back = Config::parse(&again, "round-trip")
            .unwrap_or_else(|e| panic!("-S output does not parse: {e}\n{again}"));
        assert_eq!(back, cfg, "round trip changed the config");
        ControlState::new(cfg)
            .snapshot(Mac([2, 0, 0, 0, 0, 1]))
            .expect("a valid config builds a snapshot");
    }
});
