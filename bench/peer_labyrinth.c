/*
 * peer_labyrinth.c - labyrinth itself, two rows:
 *
 *   labyrinth       labyrinth_alloc_pages(zone, LABYRINTH_GFP_ATOMIC, 0, 0)
 *                   and labyrinth_free_pages(zone, p, 0): the public
 *                   out-of-line functions, free validation on (it always is)
 *   labyrinth-seed  labyrinth_void_allocpage_gfpatomic_extra_quality(zone, 0),
 *                   the seed's macro (registers the page: call site, time,
 *                   thread), freed with labyrinth_free_pages
 *   labyrinth-zero  labyrinth_alloc_pages(zone, ATOMIC, 0, LABYRINTH_QUALITY_ZERO):
 *                   a zeroed page, from the warden's zeroed stock when it
 *                   has one (issue 12, target 6), else cleared in the call;
 *                   its account gives the stock's hit rate
 *
 * Each row has its own zone of LBB_POOL_PAGES pages, every other field of
 * the config at its default (reserve pages/16, low pages/8, high pages/4,
 * magazines auto, a warden thread).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "labyrinth.h"

static const struct lbb_order_ops lbb_lab_orders;
/* The orders and frag zones are checked before they go (the count shows
 * in the labyrinth row's account after the run). */
static unsigned long lbb_labo_checked, lbb_labo_violations, lbb_labo_misuse, lbb_labo_in_use;

static int lbb_lab_init(struct lbb_peer *p)
{
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = p->name;
    cfg.pages = LBB_POOL_PAGES;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    if (!z)
        return lbb_peer_fail(p, "labyrinth_zone_create(pages %u) failed: %s", LBB_POOL_PAGES,
                             labyrinth_strerror(errno));
    p->state = z;
    snprintf(p->version, sizeof p->version, "%d.%d.%d", LABYRINTH_VERSION_MAJOR, LABYRINTH_VERSION_MINOR,
             LABYRINTH_VERSION_PATCH);
    lbb_peer_note(p, "zone of %u pages, config defaults otherwise", LBB_POOL_PAGES);
    return 0;
}

static void *lbb_lab_thread_init(struct lbb_peer *p) { return p->state; }

static void lbb_lab_thread_fini(struct lbb_peer *p, void *tctx)
{
    (void)p;
    labyrinth_thread_release(tctx);
}

static void *lbb_lab_alloc(void *tctx)
{
    return labyrinth_alloc_pages(tctx, LABYRINTH_GFP_ATOMIC, 0, 0);
}

static void *lbb_lab_seed_alloc(void *tctx)
{
    return labyrinth_void_allocpage_gfpatomic_extra_quality((struct labyrinth_zone *)tctx, 0);
}

static void *lbb_lab_zero_alloc(void *tctx)
{
    return labyrinth_alloc_pages(tctx, LABYRINTH_GFP_ATOMIC, 0, LABYRINTH_QUALITY_ZERO);
}

static void lbb_lab_free(void *tctx, void *p)
{
    labyrinth_free_pages(tctx, p, 0);
}

static void lbb_lab_describe(struct lbb_peer *p, char *buf, size_t len)
{
    struct labyrinth_zone_stats s;
    if (labyrinth_zone_stats(p->state, &s)) {
        snprintf(buf, len, "zone stats unavailable");
        return;
    }
    long bad = labyrinth_zone_check(p->state);
    snprintf(buf, len,
             "atomic_allocs %llu, atomic_failures %llu, served from the reserve %llu, frees %llu, "
             "misuse_reports %llu, retry_cap_hits %llu, warden_runs %llu, in_use %zu, "
             "zone_check %ld violation(s)",
             s.atomic_allocs, s.atomic_failures, s.atomic_reserve_allocs, s.frees, s.misuse_reports,
             s.retry_cap_hits, s.warden_runs, s.in_use_pages, bad);
    struct labyrinth_zero_stock_stats zs;
    if (p == &lbb_peer_labyrinth_zero && labyrinth_zone_zero_stock(p->state, &zs) == 0) {
        size_t n = strlen(buf);
        unsigned long long all = zs.hits + zs.misses;
        snprintf(buf + n, len - n, "; zeroed stock: %llu hits, %llu misses (hit rate %.1f%%), %llu pages cleared "
                 "by the warden", zs.hits, zs.misses, all ? 100.0 * (double)zs.hits / (double)all : 0.0,
                 zs.cleared_pages);
    }
    if (p == &lbb_peer_labyrinth && lbb_labo_checked) {
        size_t n = strlen(buf);
        snprintf(buf + n, len - n, "; orders/frag zones: %lu checked at their end, %lu violation(s), "
                 "misuse_reports %lu, pages left in use %lu", lbb_labo_checked, lbb_labo_violations,
                 lbb_labo_misuse, lbb_labo_in_use);
    }
}

static void lbb_lab_fini(struct lbb_peer *p)
{
    labyrinth_zone_destroy(p->state);
    p->state = NULL;
}

struct lbb_peer lbb_peer_labyrinth = {
    .name = "labyrinth",
    .api = "labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0) / labyrinth_free_pages(z, p, 0)",
    .init = lbb_lab_init,
    .thread_init = lbb_lab_thread_init,
    .thread_fini = lbb_lab_thread_fini,
    .alloc = lbb_lab_alloc,
    .free = lbb_lab_free,
    .fini = lbb_lab_fini,
    .describe = lbb_lab_describe,
    .orders = &lbb_lab_orders,
};

struct lbb_peer lbb_peer_labyrinth_seed = {
    .name = "labyrinth-seed",
    .api = "labyrinth_void_allocpage_gfpatomic_extra_quality(z, 0) / labyrinth_free_pages(z, p, 0)",
    .init = lbb_lab_init,
    .thread_init = lbb_lab_thread_init,
    .thread_fini = lbb_lab_thread_fini,
    .alloc = lbb_lab_seed_alloc,
    .free = lbb_lab_free,
    .fini = lbb_lab_fini,
    .describe = lbb_lab_describe,
    .orders_na = "the seed's macro allocates order 0 only (the labyrinth row is the public API at every order)",
};

struct lbb_peer lbb_peer_labyrinth_zero = {
    .name = "labyrinth-zero",
    .api = "labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, LABYRINTH_QUALITY_ZERO) / labyrinth_free_pages(z, p, 0)",
    .init = lbb_lab_init,
    .thread_init = lbb_lab_thread_init,
    .thread_fini = lbb_lab_thread_fini,
    .alloc = lbb_lab_zero_alloc,
    .free = lbb_lab_free,
    .fini = lbb_lab_fini,
    .describe = lbb_lab_describe,
    .orders_na = "the zeroed stock is order 0 only (the labyrinth row is the public API at every order)",
};

static int lbb_meta_of(unsigned flags, double *out)
{
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "bench-metadata";
    cfg.pages = LBB_POOL_PAGES;
    cfg.flags = flags;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    if (!z)
        return -1;
    struct labyrinth_zone_stats s;
    int rc = labyrinth_zone_stats(z, &s);
    if (rc == 0)
        *out = (double)s.metadata_bytes / (double)(s.total_pages ? s.total_pages : 1);
    labyrinth_zone_destroy(z);
    return rc;
}

int lbb_labyrinth_metadata(double *def, double *notrack)
{
    if (lbb_meta_of(0, def))
        return -1;
    return lbb_meta_of(LABYRINTH_ZONE_NO_TRACKING, notrack);
}

/* ---- orders and frag ------------------------------------------------------------------ */

/* A zone of its own per instance (not the rows' zones), and the mode its
 * allocations use. */
struct lbb_lab_inst {
    struct labyrinth_zone *z;
    unsigned gfp;
};

static void *lbb_labo_open(struct lbb_peer *p, size_t pages, enum lbb_omode mode, char *why, size_t len)
{
    (void)p;
    struct lbb_lab_inst *i = calloc(1, sizeof *i);
    if (!i) {
        snprintf(why, len, "out of memory");
        return NULL;
    }
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.pages = pages;
    i->gfp = LABYRINTH_GFP_ATOMIC;
    switch (mode) {
    case LBB_OM_ORDERS:
        cfg.name = "bench-orders";
        break;
    case LBB_OM_FRAG:
        /* KERNEL: a higher order that finds no block first gives the
         * depot's pages back to the buddy and retries; then it waits, at
         * most this long, before its NULL. */
        cfg.name = "bench-frag";
        cfg.wait_timeout_ms = 1;
        i->gfp = LABYRINTH_GFP_KERNEL;
        break;
    case LBB_OM_FRAG_ATOMIC:
        cfg.name = "bench-frag-atomic";
        break;
    case LBB_OM_GROW:
        /* One region of 2^max_order pages to start with; KERNEL requests
         * add regions of that size up to `pages`. */
        cfg.name = "bench-grow";
        cfg.pages = (size_t)1 << LBB_OMAX;
        cfg.max_pages = pages;
        cfg.wait_timeout_ms = 1;
        i->gfp = LABYRINTH_GFP_KERNEL;
        break;
    }
    i->z = labyrinth_zone_create(&cfg);
    if (!i->z) {
        snprintf(why, len, "labyrinth_zone_create(pages %zu) failed: %s", cfg.pages, labyrinth_strerror(errno));
        free(i);
        return NULL;
    }
    return i;
}

static void *lbb_labo_alloc(void *inst, unsigned order)
{
    const struct lbb_lab_inst *i = inst;
    return labyrinth_alloc_pages(i->z, i->gfp, order, 0);
}

static void lbb_labo_free(void *inst, void *p, unsigned order)
{
    const struct lbb_lab_inst *i = inst;
    labyrinth_free_pages(i->z, p, order);
}

static void lbb_labo_thread_done(void *inst)
{
    const struct lbb_lab_inst *i = inst;
    labyrinth_thread_release(i->z);
}


static void lbb_labo_close(struct lbb_peer *p, void *inst)
{
    (void)p;
    struct lbb_lab_inst *i = inst;
    struct labyrinth_zone_stats s;
    long bad = labyrinth_zone_check(i->z);
    lbb_labo_checked++;
    lbb_labo_violations += bad > 0 ? (unsigned long)bad : 0;
    if (bad)
        fprintf(stderr, "labyrinth-bench: zone_check of %s: %ld\n", labyrinth_zone_name(i->z), bad);
    if (labyrinth_zone_stats(i->z, &s) == 0) {
        lbb_labo_misuse += s.misuse_reports;
        lbb_labo_in_use += s.in_use_pages;
    }
    labyrinth_zone_destroy(i->z);
    free(i);
}

static size_t lbb_labo_metadata(void *inst, char *desc, size_t len)
{
    const struct lbb_lab_inst *i = inst;
    struct labyrinth_zone_stats s;
    if (labyrinth_zone_stats(i->z, &s))
        return 0;
    snprintf(desc, len, "labyrinth_zone_stats().metadata_bytes: descriptors, tracking records, thread caches "
                        "and magazines, the zone");
    return s.metadata_bytes;
}

/* Pages of the zone's live regions resident now (mincore), plus its
 * metadata, which is pre-faulted and locked at creation. */
static size_t lbb_labo_resident(void *inst, size_t *span)
{
    const struct lbb_lab_inst *i = inst;
    struct labyrinth_zone_stats s;
    *span = 0;
    if (labyrinth_zone_stats(i->z, &s))
        return 0;
    size_t res = (s.metadata_bytes + s.page_size - 1) / s.page_size;
    *span = res;
    for (unsigned k = 0; k < s.regions; k++) {
        struct labyrinth_region_info ri;
        if (labyrinth_zone_region_info(i->z, k, &ri) || ri.released)
            continue;
        *span += ri.pages;
        res += lbb_resident_pages(ri.start, ri.pages * s.page_size, s.page_size);
    }
    return res;
}

static int lbb_labo_frag(void *inst, struct lbb_ofrag *o)
{
    const struct lbb_lab_inst *i = inst;
    struct labyrinth_zone_stats s;
    memset(o, 0, sizeof *o);
    if (labyrinth_zone_stats(i->z, &s))
        return -1;
    o->total_pages = s.total_pages;
    o->in_use_pages = s.in_use_pages;
    o->buddy_free_pages = s.buddy_free_pages;
    o->cached_pages = s.free_pages - s.buddy_free_pages;
    o->largest_free_order = s.largest_free_order == (size_t)-1 ? -1 : (long)s.largest_free_order;
    o->waits = s.kernel_waits;
    for (unsigned k = 0; k <= LBB_OMAX; k++) {
        o->free_blocks[k] = s.free_blocks[k];
        o->frag_index[k] = s.frag_index[k];
    }
    return 0;
}

static long lbb_labo_trim(void *inst)
{
    const struct lbb_lab_inst *i = inst;
    return labyrinth_zone_shrink(i->z);
}

static const struct lbb_order_ops lbb_lab_orders = {
    .api = "labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, k, 0) / labyrinth_free_pages(z, p, k)",
    .open = lbb_labo_open,
    .alloc = lbb_labo_alloc,
    .free = lbb_labo_free,
    .thread_done = lbb_labo_thread_done,
    .close = lbb_labo_close,
    .metadata = lbb_labo_metadata,
    .resident = lbb_labo_resident,
    .frag = lbb_labo_frag,
    .trim = lbb_labo_trim,
};

int lbb_labyrinth_meta_one_thread(double *bytes_per_page)
{
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "bench-metadata";
    cfg.pages = LBB_POOL_PAGES;
    cfg.flags = LABYRINTH_ZONE_NO_TRACKING;
    cfg.max_threads = 1;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    if (!z)
        return -1;
    struct labyrinth_zone_stats s;
    int rc = labyrinth_zone_stats(z, &s);
    if (rc == 0)
        *bytes_per_page = (double)s.metadata_bytes / (double)(s.total_pages ? s.total_pages : 1);
    labyrinth_zone_destroy(z);
    return rc;
}
