//! The control-socket request parser and `admin::apply` on arbitrary bytes: an error
//! reply, or a change whose result is a valid running config that builds a snapshot.
#![no_main]
use drlb::admin;
use drlb::control::{config::Config, state::ControlState};
use drlb::wire::Mac;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn base() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| {
        Config::parse(
            "[dataplane]\nip = \"192.168.1.121\"\n[[service]]\nvip = \"192.168.1.200\"\nport = 80\n\
             [[service.backend]]\nip = \"192.168.1.118\"\n[[service.backend]]\nip = \"192.168.1.119\"\n",
            "fuzz",
        )
        .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(req) = admin::protocol::parse_request(data) else {
        return;
    };
    let _ = serde_json::to_string(&req).expect("a parsed request serialises");
    if let Ok((cfg, what)) = admin::apply(base(), &req) {
        assert!(!what.is_empty());
        cfg.validate_running().unwrap_or_else(|e| panic!("{req:?} gave an invalid config: {e}"));
        ControlState::new(cfg)
            .snapshot(Mac([2, 0, 0, 0, 0, 1]))
            .expect("an accepted change builds a snapshot");
    }
});
