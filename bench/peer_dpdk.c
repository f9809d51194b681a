/*
 * peer_dpdk.c - DPDK's rte_mempool with a per-lcore cache.
 *
 * EAL without hugepages or devices:
 *   -l 0 --no-huge --no-pci --no-shconf --no-telemetry --iova-mode=va
 *   --log-level=4 --file-prefix=labyrinth-bench
 * (--in-memory is refused together with --no-huge by this EAL.)  EAL pins
 * the calling thread to lcore 0's CPU; the affinity is put back afterwards
 * so that the threads created later (labyrinth's warden, say) are not tied
 * to CPU 0.  The bench's worker threads are non-EAL threads: each calls
 * rte_thread_register() and so gets its own lcore id and its own cache of
 * the pool; rte_mempool_get / rte_mempool_put are then DPDK's usual
 * inlined fast path (ring "ring_mp_mc" behind the caches).
 *
 * Objects must be 4 KiB blocks on 4 KiB boundaries, but every mempool
 * object is preceded by its 64-byte header.  So the pool is created empty
 * with elt_size 8128 (+ 64 header = an 8 KiB stride) and populated over
 * memory of our own, offset so that each object starts on a page: object
 * k is the page at base + 8 KiB * k, its header the last 64 bytes of the
 * page before it.  Init checks that every object is page aligned.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mempool.h>
#include <rte_version.h>

#include "bench.h"

#define LBB_DPDK_STRIDE 8192u
#define LBB_DPDK_CACHE  256u

static struct rte_mempool *lbb_mp;
static unsigned lbb_misaligned;

static void lbb_dpdk_check_obj(struct rte_mempool *mp, void *arg, void *obj, unsigned idx)
{
    (void)mp;
    (void)arg;
    (void)idx;
    if ((uintptr_t)obj & (LBB_BLOCK - 1))
        lbb_misaligned++;
}

static int lbb_dpdk_init(struct lbb_peer *p)
{
    char *argv[] = {"labyrinth-bench", "-l", "0", "--no-huge", "--no-pci", "--no-shconf",
                    "--no-telemetry", "--iova-mode=va", "--log-level=4",
                    "--file-prefix=labyrinth-bench", NULL};
    int argc = (int)(sizeof argv / sizeof argv[0]) - 1;
    cpu_set_t saved;
    int have_saved = sched_getaffinity(0, sizeof saved, &saved) == 0;
    rte_openlog_stream(stderr);
    int rc = rte_eal_init(argc, argv);
    if (have_saved)
        sched_setaffinity(0, sizeof saved, &saved);
    if (rc < 0)
        return lbb_peer_fail(p, "rte_eal_init failed: %s", rte_strerror(rte_errno));
    snprintf(p->version, sizeof p->version, "%s", rte_version());

    lbb_mp = rte_mempool_create_empty("labyrinth-bench", LBB_POOL_PAGES, LBB_DPDK_STRIDE - 64,
                                      LBB_DPDK_CACHE, 0, SOCKET_ID_ANY, RTE_MEMPOOL_F_NO_SPREAD);
    if (!lbb_mp)
        return lbb_peer_fail(p, "rte_mempool_create_empty failed: %s", rte_strerror(rte_errno));
    if (lbb_mp->header_size + lbb_mp->elt_size + lbb_mp->trailer_size != LBB_DPDK_STRIDE)
        return lbb_peer_fail(p, "unexpected object layout: header %u + elt %u + trailer %u",
                             lbb_mp->header_size, lbb_mp->elt_size, lbb_mp->trailer_size);
    rc = rte_mempool_set_ops_byname(lbb_mp, "ring_mp_mc", NULL);
    if (rc)
        return lbb_peer_fail(p, "rte_mempool_set_ops_byname(ring_mp_mc): %s", rte_strerror(-rc));
    size_t len = (size_t)LBB_POOL_PAGES * LBB_DPDK_STRIDE + LBB_BLOCK;
    char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return lbb_peer_fail(p, "mmap of %zu bytes failed", len);
    /* The first header sits in the 64 bytes before the first page. */
    char *start = mem + LBB_BLOCK - lbb_mp->header_size;
    rc = rte_mempool_populate_iova(lbb_mp, start, RTE_BAD_IOVA, (size_t)LBB_POOL_PAGES * LBB_DPDK_STRIDE,
                                   NULL, NULL);
    if (rc != (int)LBB_POOL_PAGES)
        return lbb_peer_fail(p, "rte_mempool_populate_iova gave %d objects (%s)", rc,
                             rc < 0 ? rte_strerror(-rc) : "want all");
    rte_mempool_obj_iter(lbb_mp, lbb_dpdk_check_obj, NULL);
    if (lbb_misaligned)
        return lbb_peer_fail(p, "%u objects not page aligned", lbb_misaligned);
    lbb_peer_note(p, "rte_mempool of %u objects (8 KiB stride, page-aligned 4 KiB objects), "
                     "cache %u per lcore, ops ring_mp_mc; EAL --no-huge, workers rte_thread_register()",
                  LBB_POOL_PAGES, LBB_DPDK_CACHE);
    return 0;
}

static void *lbb_dpdk_thread_init(struct lbb_peer *p)
{
    if (rte_lcore_id() == LCORE_ID_ANY && rte_thread_register() != 0) {
        lbb_peer_fail(p, "rte_thread_register failed: %s", rte_strerror(rte_errno));
        return NULL;
    }
    if (!rte_mempool_default_cache(lbb_mp, rte_lcore_id())) {
        lbb_peer_fail(p, "lcore %u has no mempool cache", rte_lcore_id());
        return NULL;
    }
    return lbb_mp;
}

static void lbb_dpdk_thread_fini(struct lbb_peer *p, void *tctx)
{
    (void)p;
    /* Give the cached objects back before the lcore id is released. */
    struct rte_mempool_cache *c = rte_mempool_default_cache(tctx, rte_lcore_id());
    if (c)
        rte_mempool_cache_flush(c, tctx);
    rte_thread_unregister();
}

static void *lbb_dpdk_alloc(void *tctx)
{
    void *obj;
    if (rte_mempool_get(tctx, &obj) < 0)
        return NULL;
    return obj;
}

static void lbb_dpdk_free(void *tctx, void *p)
{
    rte_mempool_put(tctx, p);
}

static void lbb_dpdk_describe(struct lbb_peer *p, char *buf, size_t len)
{
    (void)p;
    snprintf(buf, len, "objects available %u of %u, in use %u", rte_mempool_avail_count(lbb_mp),
             LBB_POOL_PAGES, rte_mempool_in_use_count(lbb_mp));
}

struct lbb_peer lbb_peer_dpdk = {
    .name = "dpdk",
    .api = "rte_mempool_get(mp, &obj) / rte_mempool_put(mp, obj), per-lcore cache",
    .init = lbb_dpdk_init,
    .thread_init = lbb_dpdk_thread_init,
    .thread_fini = lbb_dpdk_thread_fini,
    .alloc = lbb_dpdk_alloc,
    .free = lbb_dpdk_free,
    .describe = lbb_dpdk_describe,
    .orders_na = "fixed-size objects (rte_mempool): no blocks of 2^k pages",
};
