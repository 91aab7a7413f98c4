//! Traffic for tests, benchmarks, the fuzz seeds, `drlb-gen` and `drlb-pktgen`:
//! well-formed frames ([`frames`]) and pcap files of flows ([`pcap`]), as Katran keeps
//! its packet generators in `lib/testing/`. Allocates freely; never on the forwarding
//! path.
pub mod frames;
pub mod pcap;

/// xorshift64*: reproducible pseudo-random test data without a dependency, the same
/// sequence from the same seed on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}
