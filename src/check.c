/*
 * check.c - layer 5: every invariant sweep: the cache's magazines, stacks
 * and queued frees, the descriptors, conservation and the counters
 * (labyrinth_zone_check).
 */
#include "zone.h"

static long lb_check_page(const struct lb_cache *c, uint8_t *const *mark, uint32_t id,
                          unsigned want_state)
{
    long bad = 0;
    struct lb_region *r = lb_cache_id_region(c, id);
    uint32_t idx = lb_page_id_index(id);
    if (!r || idx >= r->span)
        return 1;
    if (lb_d_state(lb_load_rlx_u64(&r->desc[idx])) != want_state)
        bad++;
    if (mark[r->index][idx]++)
        bad++; /* the same page in two places */
    return bad;
}

static long lb_check_mag(const struct lb_cache *c, uint8_t *const *mark, const struct lb_mag *m,
                         uint64_t *cached)
{
    long bad = 0;
    uint32_t n = lb_load_rlx_u32(&m->count);
    if (n > c->mag_size)
        return 1;
    for (uint32_t i = 0; i < n; i++) {
        struct lb_region *r = lb_regmap_lookup(c->map, (uintptr_t)m->slot[i]);
        if (!r || ((uintptr_t)m->slot[i] & (((uintptr_t)1 << c->page_shift) - 1))) {
            bad++;
            continue;
        }
        bad += lb_check_page(c, mark, lb_page_id(r, lb_region_index(r, m->slot[i])),
                             LB_S_CACHED);
    }
    *cached += n;
    return bad;
}

static long lb_check_pstack(const struct lb_cache *c, uint8_t *const *mark, const struct lb_stack *s,
                            unsigned state, unsigned zeroed, uint64_t *pages, uint64_t limit)
{
    long bad = 0;
    uint64_t n = 0;
    /* Acquire: pairs with the pushes' release (a quiescent walk). */
    for (uint32_t top = (uint32_t)lb_load_acq_u64(&s->head); top; n++) {
        if (n > limit)
            return bad + 1; /* a cycle */
        struct lb_region *r = lb_cache_id_region(c, top - 1);
        if (!r || lb_page_id_index(top - 1) >= r->span)
            return bad + 1;
        uint64_t w = lb_load_rlx_u64(&r->desc[lb_page_id_index(top - 1)]);
        bad += lb_check_page(c, mark, top - 1, state);
        /* The zeroed stock's pages, and only they, carry LB_D_ZEROED. */
        bad += (lb_d_flags(w) & LB_D_ZEROED) != zeroed;
        *pages += 1u << lb_d_order(w);
        top = lb_d_link(w);
    }
    if (n != lb_load_rlx_u64(&s->count))
        bad++;
    return bad;
}

/* Outbox/inbox entries: pages freed but not yet back with their owner
 * (state still ALLOC, owner's id, the entry's generation). */
static long lb_check_entries(const struct lb_cache *c, uint8_t *const *mark, const struct lb_mag *m,
                             uint32_t owner, uint64_t *in_flight, uint64_t *invalid)
{
    long bad = 0;
    uint32_t n = lb_load_rlx_u32(&m->count);
    if (n > c->mag_size)
        return 1;
    for (uint32_t i = 0; i < n; i++) {
        uintptr_t e = (uintptr_t)m->slot[i];
        uint32_t page_id = (uint32_t)(e >> 32);
        struct lb_region *r = lb_cache_id_region(c, page_id);
        if (!r || lb_page_id_index(page_id) >= r->span) {
            bad++;
            continue;
        }
        uint64_t w = lb_load_rlx_u64(&r->desc[lb_page_id_index(page_id)]);
        /* A queued double free (same page twice, or freed by its owner
         * meanwhile) is legal until the owner drains: only count those
         * that still match. */
        if (lb_d_state(w) == LB_S_ALLOC && lb_d_owner(w) == owner &&
            lb_entry_current(m, (uint32_t)e, r, lb_page_id_index(page_id), w)) {
            if (mark[r->index][lb_page_id_index(page_id)]++) {
                (*invalid)++; /* the same free queued twice: one page in flight */
                continue;
            }
            (*in_flight)++;
        } else {
            (*invalid)++; /* counted as a free; the owner will refuse it */
        }
    }
    return bad;
}

bool lb_cache_for_each_queued(const struct lb_cache *c, lb_queued_fn *fn, void *ctx)
{
    bool whole = true;
    for (uint32_t t = 0; t < c->ntcaches; t++)
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            const struct lb_level *l = &c->tcaches[t].lvl[d];
            for (unsigned k = 0; k < LB_OUTBOX_SLOTS; k++) {
                const struct lb_mag *m = lb_load_rlx_ptr(&l->out_mag[k]);
                if (m)
                    fn(ctx, m, l->out_dest[k], false);
            }
            /* Acquire: pairs with the remote pushes' release. */
            uint32_t top = (uint32_t)lb_load_acq_u64(&l->inbox.head);
            for (uint64_t guard = 0; top; guard++) {
                if (guard > c->nmags) {
                    whole = false; /* a chain longer than the pool: a cycle */
                    break;
                }
                const struct lb_mag *m = lb_mag_at(c, top - 1);
                fn(ctx, m, l->id, true);
                top = lb_load_rlx_u32(&m->next);
            }
        }
    return whole;
}

struct lb_mark_ctx {
    const struct lb_cache *c;
    uint8_t *const *mark;
    uint64_t n, invalid;
};

static void lb_mark_one(void *ctx, const struct lb_mag *m, uint32_t owner, bool inbox)
{
    struct lb_mark_ctx *x = ctx;
    (void)inbox;
    lb_check_entries(x->c, x->mark, m, owner, &x->n, &x->invalid);
}

void lb_cache_mark_in_flight(const struct lb_cache *c, uint8_t *const *mark)
{
    struct lb_mark_ctx x = {c, mark, 0, 0};
    lb_cache_for_each_queued(c, lb_mark_one, &x);
}

/* Level l's queue (remote.c): every entry names a usable page; a page
 * still QUEUED is in flight (marked: on one queue only); the others are
 * stale entries its owner will drop.  No longer than the zone's pages
 * (else a cycle). */
static long lb_check_queue(const struct lb_cache *c, uint8_t *const *mark, const struct lb_level *l,
                           uint64_t *in_flight)
{
    uint64_t limit = 0, n = 0;
    for (unsigned i = 0; i < lb_regmap_count(c->map); i++)
        limit += lb_regmap_get(c->map, i)->span;
    /* Acquire: pairs with the pushes' release CAS (a quiescent walk). */
    for (uint32_t top = lb_load_acq_u32(&l->queue); top; n++) {
        struct lb_region *r = lb_cache_id_region(c, top - 1);
        uint32_t idx = lb_page_id_index(top - 1);
        if (n > limit || !r || idx < r->first || idx >= r->end)
            return 1;
        uint32_t next = lb_load_rlx_u32(&r->qlink[idx]);
        if (next == 0 || next == LB_QLINK_CLAIMED)
            return 1; /* on a queue, so its link must say so */
        if (lb_d_state(lb_load_rlx_u64(&r->desc[idx])) == LB_S_QUEUED) {
            if (mark[r->index][idx]++)
                return 1; /* on two queues, or twice on one */
            (*in_flight)++;
        }
        top = next == LB_QLINK_LAST ? 0 : next;
    }
    return n != lb_load_rlx_u64(&l->queue_pages);
}

long lb_cache_check(const struct lb_cache *c, uint8_t *const *mark, uint64_t *cached,
                    uint64_t *reserved, uint64_t *pending, uint64_t *in_flight,
                    uint64_t *queued_invalid)
{
    long bad = 0;
    uint64_t depot = 0, n = 0, queued_mags = 0;
    for (uint32_t t = 0; t < c->ntcaches; t++)
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            const struct lb_level *l = &c->tcaches[t].lvl[d];
            for (unsigned k = 0; k < LB_OUTBOX_SLOTS; k++) {
                const struct lb_mag *m = lb_load_rlx_ptr(&l->out_mag[k]);
                if (m) {
                    queued_mags++;
                    bad += lb_check_entries(c, mark, m, l->out_dest[k], in_flight, queued_invalid);
                }
            }
            for (uint32_t q = 0; q < lb_load_rlx_u32(&l->q_count); q++) {
                void *p = l->quarantine[(l->q_head + q) % c->quarantine];
                struct lb_region *r = lb_regmap_lookup(c->map, (uintptr_t)p);
                if (!r) {
                    bad++;
                    continue;
                }
                bad += lb_check_page(c, mark, lb_page_id(r, lb_region_index(r, p)),
                                     LB_S_CACHED);
                (*cached)++;
            }
            for (unsigned k = 1; k <= LB_OC_ORDERS; k++) {
                void *b = lb_load_rlx_ptr(&l->oc[k - 1]);
                if (!b)
                    continue;
                struct lb_region *r = lb_regmap_lookup(c->map, (uintptr_t)b);
                if (!r) {
                    bad++;
                    continue;
                }
                uint32_t idx = lb_region_index(r, b);
                uint64_t w = lb_load_rlx_u64(&r->desc[idx]);
                bad += lb_d_state(w) != LB_S_CACHED || lb_d_order(w) != k;
                bad += mark[r->index][idx]++ != 0;
                *cached += (uint64_t)1 << k;
            }
            uint32_t top = (uint32_t)lb_load_acq_u64(&l->inbox.head);
            for (uint64_t guard = 0; top; guard++) {
                if (guard > c->nmags)
                    return bad + 1;
                const struct lb_mag *m = lb_mag_at(c, top - 1);
                queued_mags++;
                bad += lb_check_entries(c, mark, m, l->id, in_flight, queued_invalid);
                top = lb_load_rlx_u32(&m->next);
            }
            bad += lb_check_queue(c, mark, l, in_flight);
        }
    for (uint32_t t = 0; t < c->ntcaches; t++)
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            bad += lb_check_mag(c, mark, lb_level_loaded(&c->tcaches[t].lvl[d]), cached);
            bad += lb_check_mag(c, mark, lb_level_spare(&c->tcaches[t].lvl[d]), cached);
        }
    /* Acquire: pairs with the depot pushes' release (a quiescent walk). */
    for (uint32_t top = (uint32_t)lb_load_acq_u64(&c->full.head); top; n++) {
        if (n > c->nmags)
            return bad + 1;
        const struct lb_mag *m = lb_mag_at(c, top - 1);
        if (lb_load_rlx_u32(&m->count) != c->mag_size)
            bad++;
        bad += lb_check_mag(c, mark, m, &depot);
        top = lb_load_rlx_u32(&m->next);
    }
    if (n != lb_load_rlx_u64(&c->full.count))
        bad++;
    *cached += depot;
    n = 0;
    for (uint32_t top = (uint32_t)lb_load_acq_u64(&c->empty.head); top; n++) {
        if (n > c->nmags)
            return bad + 1;
        const struct lb_mag *m = lb_mag_at(c, top - 1);
        if (lb_load_rlx_u32(&m->count) != 0)
            bad++;
        top = lb_load_rlx_u32(&m->next);
    }
    if (n != lb_load_rlx_u64(&c->empty.count))
        bad++;
    /* Every magazine is in exactly one place. */
    if (lb_load_rlx_u64(&c->full.count) + lb_load_rlx_u64(&c->empty.count) + queued_mags +
            (uint64_t)c->ntcaches * 2 * LB_LEVELS != c->nmags)
        bad++;
    bad += lb_check_pstack(c, mark, &c->reserve, LB_S_RESERVED, 0, reserved, UINT32_MAX);
    bad += lb_check_pstack(c, mark, &c->pending, LB_S_PENDING, 0, pending, UINT32_MAX);
    /* The zeroed stock: free pages, counted as cached (as in the stats). */
    uint64_t zstock = 0;
    bad += lb_check_pstack(c, mark, &c->zstock, LB_S_RESERVED, LB_D_ZEROED, &zstock, UINT32_MAX);
    *cached += zstock;
    if (*pending != lb_load_rlx_u64(&c->pending_pages))
        bad++;
    return bad;
}

/* One mapping per region (the first n), each holding its own description
 * in its first cache line and then one mark byte per page: the callers
 * keep only mark[] on the stack (a kernel's stack is small). */
int lb_zone_marks_map(struct lb_zone *z, unsigned n, uint8_t **mark)
{
    _Static_assert(sizeof(struct lb_os_mapping) <= LB_CACHELINE, "a mapping fits its header");
    for (unsigned i = 0; i < n; i++) {
        struct lb_region *r = lb_regmap_get(&z->map, i);
        struct lb_os_mapping mm;
        if (lb_os_map(lb_align_up(LB_CACHELINE + r->span, z->page_size), z->page_size, 0, &mm)) {
            lb_zone_marks_unmap(i, mark);
            return -ENOMEM;
        }
        memcpy(mm.addr, &mm, sizeof mm);
        mark[i] = (uint8_t *)mm.addr + LB_CACHELINE;
    }
    return 0;
}

void lb_zone_marks_unmap(unsigned n, uint8_t **mark)
{
    for (unsigned i = 0; i < n; i++) {
        if (!mark[i])
            continue;
        struct lb_os_mapping mm;
        memcpy(&mm, mark[i] - LB_CACHELINE, sizeof mm);
        mark[i] = NULL;
        lb_os_unmap(&mm);
    }
}

/* LABYRINTH_CHECK_VERBOSE set in the environment: name every violation
 * on stderr (normal context: the check is). */
static void lb_check_say(struct lb_zone *z, long n, const char *what)
{
    if (!n || !lb_os_getenv("LABYRINTH_CHECK_VERBOSE"))
        return;
    char b[200];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, "labyrinth: zone '");
    lb_fmt_str(&f, z->name);
    lb_fmt_str(&f, "': check: ");
    lb_fmt_dec(&f, (uint64_t)n);
    lb_fmt_str(&f, " x ");
    lb_fmt_str(&f, what);
    lb_fmt_str(&f, "\n");
    lb_os_write_err(b, f.len);
}

#define LB_VIOLATION(n, what)                                                                \
    do {                                                                                      \
        long lb_n_ = (long)(n);                                                               \
        bad += lb_n_;                                                                         \
        lb_check_say(z, lb_n_, what);                                                         \
    } while (0)

long lb_zone_check(struct lb_zone *z)
{
    long bad = 0;
    struct lb_cache *c = &z->cache;
    /* The warden moves magazines outside the buddy lock, and a growth adds
     * a region in steps: keep both out (lock order: rebalance, grow), and
     * count the regions only then. */
    lb_os_mutex_lock(&z->rebalance_mutex);
    lb_os_mutex_lock(&z->grow_mutex);
    unsigned nreg = lb_regmap_count(&z->map);
    uint8_t *mark[LB_MAX_REGIONS] = {0};
    if (lb_zone_marks_map(z, nreg, mark)) {
        lb_os_mutex_unlock(&z->grow_mutex);
        lb_os_mutex_unlock(&z->rebalance_mutex);
        return -ENOMEM;
    }
    lb_spin_lock(&z->buddy.lock);
    size_t buddy_pages = 0;
    uint64_t cached = 0, reserved = 0, pending = 0, in_use = 0, blocks_in_use = 0, usable = 0;
    uint64_t in_flight = 0, queued_invalid = 0, queued = 0;
    LB_VIOLATION(lb_buddy_check(&z->buddy, &buddy_pages), "buddy free lists");
    LB_VIOLATION(lb_cache_check(c, mark, &cached, &reserved, &pending, &in_flight, &queued_invalid),
                 "magazines, depot, reserve, pending, in-flight batches");
    for (unsigned i = 0; i < nreg; i++) {
        struct lb_region *r = lb_regmap_get(&z->map, i);
        uint32_t covered = r->first;
        if (r->released)
            continue;
        usable += lb_region_pages(r);
        for (uint32_t idx = 0; idx < r->span; idx++) {
            uint64_t w = lb_load_rlx_u64(&r->desc[idx]);
            unsigned s = lb_d_state(w), o = lb_d_order(w);
            bool inside = idx >= r->first && idx < r->end;
            if (!inside) {
                LB_VIOLATION(s != LB_S_HOLE, "a page outside the usable span is not a hole");
                continue;
            }
            if (s == LB_S_HOLE) {
                LB_VIOLATION(1, "a usable page reads as a hole");
                continue;
            }
            if (s == LB_S_TAIL) {
                LB_VIOLATION(idx >= covered, "a tail page outside any block");
                continue;
            }
            /* A block head. */
            if (idx < covered || o > z->max_order || (idx & ((1u << o) - 1)) || idx + (1u << o) > r->end) {
                LB_VIOLATION(1, "a block overlaps another, is misaligned or leaves its region");
                continue;
            }
            covered = idx + (1u << o);
            switch (s) {
            case LB_S_ALLOC:
                /* Freed and queued for its owner: in flight, not in use
                 * (lb_cache_check marked it). */
                if (mark[i][idx])
                    break;
                in_use += 1u << o;
                blocks_in_use++;
                break;
            case LB_S_CACHED:
            case LB_S_RESERVED:
            case LB_S_PENDING:
                /* Must sit in exactly one magazine or stack: marked once. */
                LB_VIOLATION(mark[i][idx] != 1, "a cached/reserved/pending page is in no magazine or stack, or in two");
                LB_VIOLATION(s == LB_S_RESERVED && o != 0, "a reserved (or zeroed stock) page of order > 0");
                LB_VIOLATION(s != LB_S_RESERVED && (lb_d_flags(w) & LB_D_ZEROED),
                             "a page outside the reserve's state marked as of the zeroed stock");
                break;
            case LB_S_QUEUED:
                /* Freed through its queue link: on exactly one queue
                 * (lb_cache_check counted it in flight), order 0. */
                LB_VIOLATION(mark[i][idx] != 1 || o != 0, "a queued page is on no queue, or of order > 0");
                queued++;
                break;
            case LB_S_FREE:
                break; /* lb_buddy_check walked the lists */
            default:
                LB_VIOLATION(1, "a descriptor in an unknown state");
            }
        }
    }
    /* Conservation: free + cached + reserved + in use == total. */
    uint64_t total = lb_load_rlx_u64(&z->total_pages);
    LB_VIOLATION(usable != total, "the regions' pages do not add up to total_pages");
    LB_VIOLATION(buddy_pages + cached + reserved + pending + in_flight + in_use != total,
                 "conservation: free + cached + reserved + pending + in flight + in use != total");
    LB_VIOLATION(lb_load_rlx_u64(&c->reserve.count) != reserved, "the reserve's count differs from its pages");
    LB_VIOLATION(lb_load_rlx_u64(&z->zero_target) > z->zero_max, "the zeroed stock's target exceeds its bound");
    lb_spin_unlock(&z->buddy.lock);
    lb_os_mutex_unlock(&z->grow_mutex);
    lb_os_mutex_unlock(&z->rebalance_mutex);
    /* The counters agree with the descriptors: blocks handed out minus
     * blocks taken back is what is in use.  Queued frees the owner will
     * refuse (double frees not yet detected) are counted as frees until
     * then. */
    struct lb_cache_counts cc;
    lb_cache_counts(c, &cc);
    uint64_t allocs = 0;
    for (unsigned i = 0; i < LB_MODE_SLOTS; i++)
        allocs += cc.allocs[i];
    /* A queued page's free is counted when its owner takes it back. */
    LB_VIOLATION(allocs - (cc.frees - queued_invalid) != blocks_in_use + queued,
                 "counters: allocations minus frees differ from the blocks in use");
    lb_zone_marks_unmap(nreg, mark);
    return bad;
}
