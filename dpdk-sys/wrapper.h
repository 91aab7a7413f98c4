/* Headers bindgen reads. Everything is allowlisted in build.rs. */
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_errno.h>
#include <rte_version.h>
#include <rte_telemetry.h>
#include <rte_pdump.h>
#include <rte_hash.h>
#include "shim.h"
