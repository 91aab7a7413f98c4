//! Traffic for tests, benchmarks, the fuzz seeds, `drlb-gen` and `drlb-pktgen`:
//! well-formed frames ([`frames`]) and pcap files of flows ([`pcap`]), as Katran keeps
//! its packet generators in `lib/testing/`. Allocates freely; never on the forwarding
//! path.
pub mod frames;
pub mod pcap;
