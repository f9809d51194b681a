/*
 * peer_labyrinth.c - labyrinth itself, two rows:
 *
 *   labyrinth       labyrinth_alloc_pages(zone, LABYRINTH_GFP_ATOMIC, 0, 0)
 *                   and labyrinth_free_pages(zone, p, 0): the public
 *                   out-of-line functions, free validation on (it always is)
 *   labyrinth-seed  labyrinth_void_allocpage_gfpatomic_extra_quality(zone, 0),
 *                   the seed's macro (registers the page: call site, time,
 *                   thread), freed with labyrinth_free_pages
 *
 * Each row has its own zone of LBB_POOL_PAGES pages, every other field of
 * the config at its default (reserve pages/16, low pages/8, high pages/4,
 * magazines auto, a warden thread).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "labyrinth.h"

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
