/*
 * peer_dpdk_missing.c - stands in for peer_dpdk.c when libdpdk was not
 * found at configure time, so the row still says why it is empty.
 */
#include "bench.h"

static int lbb_dpdk_missing_init(struct lbb_peer *p)
{
    return lbb_peer_fail(p, "built without DPDK: pkg-config found no libdpdk when configuring "
                            "(apt-get install libdpdk-dev, then reconfigure)");
}

struct lbb_peer lbb_peer_dpdk = {
    .name = "dpdk",
    .api = "rte_mempool_get / rte_mempool_put, per-lcore cache",
    .init = lbb_dpdk_missing_init,
    .orders_na = "fixed-size objects (rte_mempool): no blocks of 2^k pages",
};
