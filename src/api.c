/*
 * api.c - the cold public entry points (include/labyrinth.h): zones,
 * statistics, checks, physical addresses, report handlers, thread
 * release.  The hot ones live with their mechanism: alloc.c, free.c,
 * track.c.
 */
#include "quality.h"
#include "remote.h"

static struct labyrinth_zone *lb_zone_create_owned(const struct labyrinth_zone_config *cfg, void *owner)
{
    struct lb_zone *z;
    int rc = LB_NORMAL_CONTEXT(NULL, "zone_create");
    if (!rc)
        rc = lb_zone_create(cfg, &z);
    if (rc) {
        lb_set_errno(-rc);
        return NULL;
    }
    /* The creator's sites are not pinned (os.h, lb_os_sites_init). */
    lb_os_sites_init(&z->handle->sites, owner);
    return z->handle;
}

/* The name in parentheses: a kernel build's header makes it a macro. */
struct labyrinth_zone *(labyrinth_zone_create)(const struct labyrinth_zone_config *cfg)
{
    return lb_zone_create_owned(cfg, NULL);
}
LB_EXPORT(labyrinth_zone_create);

#ifdef __KERNEL__
struct labyrinth_zone *labyrinth_zone_create_owned(const struct labyrinth_zone_config *cfg, struct module *owner)
{
    return lb_zone_create_owned(cfg, owner);
}
LB_EXPORT(labyrinth_zone_create_owned);
#endif

struct lb_leaks {
    struct lb_zone *z;
    size_t blocks, pages;
};

static int lb_leak_one(const struct labyrinth_page_info *info, void *arg)
{
    struct lb_leaks *lk = arg;
    lk->blocks++;
    lk->pages += (size_t)1 << info->order;
    char b[160];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, "leak: block ");
    lb_fmt_ptr(&f, info->block);
    lb_fmt_str(&f, " (order ");
    lb_fmt_dec(&f, info->order);
    lb_fmt_str(&f, info->tracked ? ") still in use at destroy, thread " : ") still in use at destroy (untracked)");
    if (info->tracked)
        lb_fmt_dec(&f, info->thread);
    struct labyrinth_report rep = lb_report_make(LABYRINTH_REPORT_LEAK, lk->z, 0, b);
    rep.addr = info->block;
    rep.order = info->order;
    rep.caller = info->caller;
    rep.site = info->site;
    rep.thread = info->thread;
    lb_zone_report(lk->z, &rep);
    return 0;
}

void labyrinth_zone_destroy(struct labyrinth_zone *h)
{
    if (!h)
        return;
    struct lb_zone *z = lb_zone_get(h);
    /* The context first, for a dead handle too: the fork-inherited path
     * below takes the registry mutex, which a hard IRQ must not (issue
     * 17.7, KB39).  A refusal reports to the zone's handler, or with no
     * zone to the default one. */
    if (LB_NORMAL_CONTEXT(z, "zone_destroy"))
        return; /* the zone, if any, lives on */
    if (!z) {
        /* In the child of a fork(), a zone of the parent: its slot and
         * claim are freed; nothing else of it is here (no warden to stop,
         * its memory never came over: docs/design.md, "fork"). */
        if (lb_registry_release_inherited(h))
            return;
        lb_report_no_zone("zone_destroy", h, h, __builtin_return_address(0));
        return;
    }
    struct lb_leaks lk = {z, 0, 0};
    /* First the TLS slot: an exit hook under way on another thread (it
     * holds lb_tls_mutex while it releases its caches) is waited out, and
     * later ones leave this zone alone, so none flushes the outboxes that
     * settle walks (a magazine pushed twice onto one inbox, found by the
     * review of this change). */
    lb_cache_tls_unregister(&z->cache);
    lb_zone_settle(z); /* frees still queued for their owners are not leaks */
    lb_zone_for_each_in_use(z, lb_leak_one, &lk);
    if (lk.blocks) {
        char b[160];
        struct lb_fmt f = {b, 0, sizeof b};
        lb_fmt_dec(&f, lk.blocks);
        lb_fmt_str(&f, " block(s), ");
        lb_fmt_dec(&f, lk.pages);
        lb_fmt_str(&f, " page(s), still in use at destroy");
        struct labyrinth_report rep = lb_report_make(LABYRINTH_REPORT_NOTICE, z, 0, b);
        lb_zone_report(z, &rep);
    }
    lb_report_flush(z);
    lb_zone_destroy(z);
}
LB_EXPORT(labyrinth_zone_destroy);

int labyrinth_zone_stats(struct labyrinth_zone *h, struct labyrinth_zone_stats *out)
{
    struct lb_zone *z = lb_zone_get(h);
    if (!z)
        return lb_refuse_handle("zone_stats", h);
    if (!out)
        return -EINVAL;
    int rc = LB_NORMAL_CONTEXT(z, "zone_stats");
    if (rc)
        return rc;
    lb_zone_stats(z, out);
    return 0;
}
LB_EXPORT(labyrinth_zone_stats);

long labyrinth_zone_check(struct labyrinth_zone *h)
{
    struct lb_zone *z = lb_zone_get(h);
    if (!z)
        return lb_refuse_handle("zone_check", h);
    int rc = LB_NORMAL_CONTEXT(z, "zone_check");
    if (rc)
        return rc;
    return lb_zone_check(z);
}
LB_EXPORT(labyrinth_zone_check);

int labyrinth_zone_zero_stock(struct labyrinth_zone *h, struct labyrinth_zero_stock_stats *out)
{
    struct lb_zone *z = lb_zone_get(h);
    if (!z)
        return lb_refuse_handle("zone_zero_stock", h);
    if (!out)
        return -EINVAL;
    lb_zone_zero_stats(z, out);
    return 0;
}
LB_EXPORT(labyrinth_zone_zero_stock);

int labyrinth_virt_to_phys(struct labyrinth_zone *h, const void *addr, uint64_t *phys)
{
    struct lb_zone *z = lb_zone_get(h);
    if (!z)
        return lb_refuse_handle("virt_to_phys", h);
    if (!phys)
        return -EINVAL;
    uintptr_t a = (uintptr_t)addr;
    struct lb_region *r;
    int rc = lb_zone_region_of(z, a, &r);
    if (rc)
        return rc;
    if (!r->phys)
        return lb_os_virt_to_phys(addr, phys); /* a kernel: its own mapping; user space: EOPNOTSUPP */
    uintptr_t off = a - r->base;
    *phys = r->phys[off >> z->page_shift] + (off & (z->page_size - 1));
    return 0;
}
LB_EXPORT(labyrinth_virt_to_phys);

int labyrinth_zone_region_info(struct labyrinth_zone *h, unsigned index, struct labyrinth_region_info *out)
{
    struct lb_zone *z = lb_zone_get(h);
    if (!z)
        return lb_refuse_handle("zone_region_info", h);
    if (!out)
        return -EINVAL;
    int rc = LB_NORMAL_CONTEXT(z, "zone_region_info");
    if (rc)
        return rc;
    return lb_zone_region_info(z, index, out);
}
LB_EXPORT(labyrinth_zone_region_info);

long labyrinth_zone_shrink(struct labyrinth_zone *h)
{
    struct lb_zone *z = lb_zone_get(h);
    if (!z)
        return lb_refuse_handle("zone_shrink", h);
    int rc = LB_NORMAL_CONTEXT(z, "zone_shrink");
    if (rc)
        return rc;
    return lb_zone_shrink(z);
}
LB_EXPORT(labyrinth_zone_shrink);

int labyrinth_phys_to_virt(struct labyrinth_zone *h, uint64_t phys, void **addr)
{
    struct lb_zone *z = lb_zone_get(h);
    if (!z)
        return lb_refuse_handle("phys_to_virt", h);
    if (!addr)
        return -EINVAL;
    if (!(z->flags & LABYRINTH_ZONE_DMA))
        return -EOPNOTSUPP;
    unsigned n = lb_regmap_count(&z->map);
    for (unsigned i = 0; i < n; i++) {
        struct lb_region *r = lb_regmap_get(&z->map, i);
        if (r->released)
            continue;
        uint32_t idx = lb_region_phys_find(r, phys & ~(uint64_t)z->page_mask);
        if (idx != LB_NIL) {
            *addr = (void *)(lb_region_addr(r, idx) + (phys & z->page_mask));
            return 0;
        }
    }
    return -ENOENT;
}
LB_EXPORT(labyrinth_phys_to_virt);

int labyrinth_phys_contiguous(struct labyrinth_zone *h, const void *block, unsigned order)
{
    struct lb_zone *z = lb_zone_get(h);
    if (!z)
        return lb_refuse_handle("phys_contiguous", h);
    if (!(z->flags & LABYRINTH_ZONE_DMA))
        return -EOPNOTSUPP;
    struct lb_region *r;
    uint32_t idx;
    int rc = lb_zone_locate(z, block, &r, &idx);
    if (rc)
        return rc;
    if (order > z->max_order || idx + ((uint32_t)1 << order) > r->end)
        return -EINVAL;
    for (uint32_t i = idx + 1; i < idx + ((uint32_t)1 << order); i++)
        if (r->phys[i] != r->phys[i - 1] + z->page_size)
            return 0;
    return 1;
}
LB_EXPORT(labyrinth_phys_contiguous);

/* A refused change says why, and the handler stays as it was: misuse
 * (BAD_ARGS) for a module that cannot be pinned, a NOTICE for changes
 * crowding the ring (contention, not misuse). */
static int lb_handler_refused(struct lb_zone *z, int err, const char *why, const void *caller)
{
    char b[240];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, "zone_set_report_handler refused: ");
    lb_fmt_str(&f, why);
    lb_fmt_str(&f, "; the handler is unchanged (");
    lb_fmt_str(&f, lb_errname(err));
    lb_fmt_str(&f, ")");
    struct labyrinth_report rep =
        lb_report_make(err == -EBUSY ? LABYRINTH_REPORT_NOTICE : LABYRINTH_REPORT_BAD_ARGS, z, err, b);
    rep.caller = caller;
    lb_zone_report(z, &rep);
    return err;
}

/* Rounds over the ring before a change gives up (-EBUSY): a slot is
 * only unusable while a change is being written into it (odd sequence),
 * or while it holds the published pair or a newer one about to be
 * published, so giving up takes LB_REPORT_RING - 1 changes under way at
 * once for all these rounds. */
#define LB_REPORT_CLAIM_ROUNDS 64u
_Static_assert(LB_REPORT_RING == 1u << LB_REPORT_SLOT_BITS, "report_cur's slot bits name every slot");

static int lb_set_report_handler(struct labyrinth_zone *h, labyrinth_report_fn *fn, void *arg, void *module,
                                 const void *caller)
{
    struct lb_zone *z = lb_zone_get(h);
    if (!z)
        return lb_refuse_handle_at("zone_set_report_handler", h, caller);
    /* The handler's code must outlive the zone's reports (os.h,
     * lb_os_handler_keep): pinned before the handler is published, so no
     * report can run it unpinned.  NULL (the default handler) needs
     * nothing. */
    int keep = fn ? lb_os_handler_keep(&h->sites, module) : 0;
    if (keep)
        return lb_handler_refused(z, keep,
                                  keep == -EAGAIN   ? "the handler's module is still in its __init, which may fail and "
                                                      "free it; set the handler once the module is live"
                                  : keep == -ENOENT ? "the handler's module is unloading"
                                                    : "the zone already pins as many modules as it can (sites and "
                                                      "handlers)",
                                  caller);
    /* A ticket: unique and increasing, the changes' order (relaxed: only
     * uniqueness matters). */
    uint64_t n = lb_add_rlx_u64(&z->report_next, 1) + 1;
    for (unsigned round = 0; round < LB_REPORT_CLAIM_ROUNDS; round++) {
        /* Relaxed: only compared; a stale value is older, so it claims
         * less (the rule below), never a slot it must not. */
        uint64_t pub = lb_load_rlx_u64(&z->report_cur);
        uint64_t pt = pub >> LB_REPORT_SLOT_BITS;
        if (pt > n)
            return 0; /* a later change is published: ours came before it */
        for (unsigned k = 0; k < LB_REPORT_RING; k++) {
            __typeof__(&z->report_ring[0]) slot = &z->report_ring[k];
            /* Relaxed: only a guess at the slot's state; the CAS below
             * decides (it fails if another change claimed it meanwhile). */
            uint64_t v = lb_load_rlx_u64(&slot->seq);
            /* Never a slot being written (odd), nor the published one,
             * nor one completed after it (its writer may publish it yet):
             * only a pair older than the one published, which no reader
             * will be sent to again (helper-28's break: a change resumed
             * after LB_REPORT_RING others wrapped the ring overwrote the
             * published slot, and every report went to the default
             * handler until the next change). */
            if ((v & 1) || v / 2 > pt || k == (pub & (LB_REPORT_RING - 1)))
                continue; /* (a ticket equal to pt elsewhere: the zeroed ring's 0s) */
            /* Acquire CAS: the stores below stay after the claim. */
            if (!lb_cas_acq_u64(&slot->seq, &v, 2 * n - 1))
                continue;
            /* Release stores: a reader whose acquire load sees a new word
             * also sees the odd sequence stored before it, so its second
             * read of the sequence differs and it retries
             * (lb_zone_report). */
            lb_store_rel_ptr(&slot->fn, (void *)fn);
            lb_store_rel_ptr(&slot->arg, arg);
            /* Release: the pair is complete before the slot says so ... */
            lb_store_rel_u64(&slot->seq, 2 * n);
            /* ... and before it is published, unless a later ticket already
             * was (release CAS: pairs with the reader's acquire load of
             * report_cur). */
            uint64_t want = n << LB_REPORT_SLOT_BITS | k;
            while ((pub >> LB_REPORT_SLOT_BITS) < n && !lb_cas_rel_u64(&z->report_cur, &pub, want))
                ;
            return 0;
        }
    }
    return lb_handler_refused(z, -EBUSY, "every slot of the zone's handler ring is taken by changes under way", caller);
}

/* The name in parentheses: a kernel build's header makes it a macro. */
int(labyrinth_zone_set_report_handler)(struct labyrinth_zone *h, labyrinth_report_fn *fn, void *arg)
{
    return lb_set_report_handler(h, fn, arg, NULL, __builtin_return_address(0));
}
LB_EXPORT(labyrinth_zone_set_report_handler);

#ifdef __KERNEL__
int labyrinth_zone_set_report_handler_owned(struct labyrinth_zone *h, labyrinth_report_fn *fn, void *arg,
                                            struct module *owner)
{
    return lb_set_report_handler(h, fn, arg, owner, __builtin_return_address(0));
}
LB_EXPORT(labyrinth_zone_set_report_handler_owned);
#endif

int labyrinth_thread_release(struct labyrinth_zone *h)
{
    struct lb_zone *z = lb_zone_get(h);
    if (!z)
        return lb_refuse_handle("thread_release", h);
    /* It spins for the buddy lock, which the code this call interrupted
     * may hold on this CPU (issue 17.7: for ever, from a hard IRQ). */
    int rc = LB_NORMAL_CONTEXT(z, "thread_release");
    if (rc)
        return rc;
    /* Entered, so that a kernel stays on the CPU whose cache it releases;
     * a call nested in another labyrinth call (a handler) must not take
     * the cache from under it: it does nothing. */
    uint32_t d = lb_enter();
    if (d == 0)
        lb_cache_release_self(&z->cache);
    lb_leave(d);
    return 0;
}
LB_EXPORT(labyrinth_thread_release);

const char *labyrinth_zone_name(const struct labyrinth_zone *h)
{
    struct lb_zone *z = lb_zone_get(h);
    if (!z)
        lb_refuse_handle("zone_name", h);
    return z ? z->name : NULL;
}
LB_EXPORT(labyrinth_zone_name);

size_t labyrinth_page_size(void) { return lb_os_page_size(); }
LB_EXPORT(labyrinth_page_size);

uint32_t labyrinth_thread_id(void) { return lb_cache_thread_id(); }
LB_EXPORT(labyrinth_thread_id);
