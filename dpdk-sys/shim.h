/* C shim: DPDK's static-inline fast-path functions and macros, made linkable.
 * Compiled with the exact `pkg-config --cflags libdpdk` flags (which carry
 * `-include rte_config.h` and `-march`), so the inlined bodies match the libraries. */
#ifndef DRLB_SHIM_H
#define DRLB_SHIM_H
#include <stdint.h>
struct rte_mbuf;
struct rte_mempool;

uint16_t drlb_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t drlb_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *drlb_pktmbuf_alloc(struct rte_mempool *mp);
void drlb_pktmbuf_free(struct rte_mbuf *m);
int drlb_errno(void);
unsigned drlb_lcore_id(void);
uint64_t drlb_rdtsc(void);

/* RTE_BIT64-based macros bindgen cannot evaluate. */
extern const uint64_t DRLB_RSS_IP;
extern const uint64_t DRLB_RSS_TCP;
extern const uint64_t DRLB_RSS_UDP;
extern const uint64_t DRLB_TX_OFFLOAD_MBUF_FAST_FREE;
extern const uint32_t DRLB_MQ_RX_RSS;
extern const uint32_t DRLB_MQ_RX_NONE;
#endif
