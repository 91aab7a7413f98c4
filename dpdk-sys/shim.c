#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include "shim.h"

uint16_t drlb_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_rx_burst(port, queue, pkts, n); }
uint16_t drlb_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_tx_burst(port, queue, pkts, n); }
struct rte_mbuf *drlb_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }
void drlb_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
int drlb_errno(void) { return rte_errno; }
unsigned drlb_lcore_id(void) { return rte_lcore_id(); }
uint64_t drlb_rdtsc(void) { return rte_rdtsc(); }

const uint64_t DRLB_RSS_IP = RTE_ETH_RSS_IP;
const uint64_t DRLB_RSS_TCP = RTE_ETH_RSS_TCP;
const uint64_t DRLB_RSS_UDP = RTE_ETH_RSS_UDP;
const uint64_t DRLB_TX_OFFLOAD_MBUF_FAST_FREE = RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
const uint32_t DRLB_MQ_RX_RSS = RTE_ETH_MQ_RX_RSS;
const uint32_t DRLB_MQ_RX_NONE = RTE_ETH_MQ_RX_NONE;
