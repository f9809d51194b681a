/*
 * free.c - layer 5: frees.  labyrinth_free_pages with its inlined fast path
 * (a page this very level allocated), the general path that validates
 * every free (a CAS decides, or the ownership protocol of remote.h), and
 * the home of a freed block of order > 0.
 */
#include "zone.h"
#include "remote.h"
#include "quality.h"
#include "lb_annotate.h"

/* Why freeing (or registering) page idx of r at the given order is
 * refused, or 0.  A page inside a block is an interior pointer only if
 * that block is allocated; inside a free block it was freed already (it
 * merged into its buddy's block since). */
int lb_refusal(struct lb_zone *z, struct lb_region *r, uint32_t idx, uint64_t w, unsigned order)
{
    int rc = lb_d_refuse(w, order);
    if (rc == -ENXIO) {
        uint32_t head = lb_region_block_head(r, idx, z->max_order);
        if (head != LB_NIL && lb_d_state(lb_load_rlx_u64(&r->desc[head])) != LB_S_ALLOC)
            rc = -EALREADY;
    }
    return rc;
}

/* Free order-0 page idx of r (addr), which some level owns: descriptor
 * w, full generation n, read by the caller's decisive read (lb_desc_gen),
 * entered at depth d + 1.  Its owner takes it back, with a plain store if
 * that is us, else through our outbox.  Leaves the depth; reports a
 * refusal. */
static LB_NOINLINE int lb_free_named(struct lb_zone *z, void *addr, struct lb_region *r, uint32_t idx, uint64_t w,
                                     uint64_t n, uint32_t d, const void *caller)
{
    int rc;
    struct lb_level *l = lb_tls_level(&z->cache, d);
    if (!l && d == 0 && lb_cache_claim(&z->cache))
        l = lb_tls_level(&z->cache, 0);
    if (l && (w & LB_D_OWNED_MASK) == l->pattern) {
        lb_store_rlx_u64(&r->desc[idx], lb_d_make(LB_S_CACHED, 0, 0));
        LB_TOOL_FREE(addr, z->page_size);
        lb_zone_free0_slow(z, addr, r, idx, d);
        rc = 0;
    } else {
        /* Poisoned before it is queued: once queued, its owner may hand it
         * out again (and unpoison it) at any moment.  A refused free that
         * is not a double free undoes it. */
        LB_TOOL_FREE(addr, z->page_size);
        rc = lb_zone_free_remote(z, addr, r, idx, w, n, d);
        if (rc && rc != -EALREADY)
            LB_TOOL_ALLOC(addr, z->page_size, 1);
    }
    lb_leave(d);
    return rc ? lb_refuse(z, LABYRINTH_REPORT_BAD_FREE, "free_pages", addr, 0, rc, caller) : 0;
}

static LB_NOINLINE int lb_free_general(struct labyrinth_zone *h, void *addr, unsigned order,
                                       const void *caller)
{
    if (!addr)
        return 0;
    struct lb_zone *z = lb_zone_get(h);
    if (!z) {
        lb_report_no_zone("free_pages", h, addr, caller);
        return -EBADF;
    }
    struct lb_region *r;
    uint32_t idx;
    int rc = lb_zone_locate(z, addr, &r, &idx);
    if (rc)
        return lb_refuse(z, LABYRINTH_REPORT_BAD_FREE, "free_pages", addr, order, rc, caller);
    if (order > z->max_order)
        return lb_refuse(z, LABYRINTH_REPORT_BAD_FREE, "free_pages", addr, order, -ERANGE, caller);
    lb_atomic_u64 *dp = &r->desc[idx];
    uint64_t w;
    unsigned reroutes = 0;
    bool owned_path = order == 0 && !(z->flags & LABYRINTH_ZONE_VERIFY);
again:
    if (owned_path) {
        /* Entered before the descriptor is read: a handler (an interrupt,
         * or in a kernel another task after preemption) that frees the
         * page between the read and the decision would otherwise leave us
         * acting on a stale word, and a second free could push the page
         * twice (KB7).  From here no other context writes the descriptor
         * of a page this level owns. */
        uint32_t d = lb_enter();
        w = lb_load_rlx_u64(dp);
        if (lb_d_state(w) == LB_S_ALLOC && lb_d_order(w) == 0 && lb_d_owner(w)) {
            /* The decisive read, first (cache.h, lb_desc_gen): this free is
             * of the allocation the descriptor names now, with its full
             * generation; whatever the call does later is about that
             * allocation, however long it is stopped (the review of KB51:
             * with the generation read later, a call stopped after its
             * first read attached a newer allocation's high word to the
             * old word and took the page from its next holder). */
            uint64_t n;
            if (!lb_desc_gen(dp, &r->gen_hi[idx], w, &n)) {
                lb_leave(d);
                if (++reroutes < LB_DESC_CAS_TRIES)
                    goto again; /* nothing decided yet: read anew */
                return lb_refuse(z, LABYRINTH_REPORT_BAD_FREE, "free_pages", addr, order, -EBUSY, caller);
            }
            return lb_free_named(z, addr, r, idx, w, n, d, caller);
        }
        lb_leave(d);
    } else {
        w = lb_load_rlx_u64(dp);
    }
    /* Anything else: a CAS decides (exact against any other CAS; owned
     * pages in VERIFY zones are freed only this way, by every context). */
    uint64_t nw = order == 0 ? lb_d_make(LB_S_CACHED, 0, 0) : lb_d_make(LB_S_PENDING, order, 0);
    for (unsigned tries = 0;; tries++) {
        rc = lb_refusal(z, r, idx, w, order);
        if (rc)
            return lb_refuse(z, LABYRINTH_REPORT_BAD_FREE, "free_pages", addr, order, rc, caller);
        if (tries == LB_DESC_CAS_TRIES)
            return lb_refuse(z, LABYRINTH_REPORT_BAD_FREE, "free_pages", addr, order, -EBUSY, caller);
        /* A page a level owns is written by that level with plain stores:
         * a CAS would race with them (the page freed, cached and handed
         * out by its owner since we read it).  Only the ownership protocol
         * may free it.  (VERIFY zones free every page by CAS, owners too.) */
        if (owned_path && lb_d_owner(w)) {
            if (++reroutes == LB_DESC_CAS_TRIES)
                return lb_refuse(z, LABYRINTH_REPORT_BAD_FREE, "free_pages", addr, order, -EBUSY, caller);
            goto again;
        }
        /* Relaxed CAS: it decides which of two racing frees wins (the other
         * sees a free state and is refused); the page's contents travel to
         * the next owner through the magazine/depot/stack hand-offs, which
         * are release/acquire. */
        if (lb_cas_rlx_u64(dp, &w, nw))
            break;
    }
    /* The block is ours. */
    if (z->flags & LABYRINTH_ZONE_VERIFY)
        lb_verify_poison(z, addr, order);
    LB_TOOL_FREE(addr, z->page_size << order);
    if (order == 0) {
        uint32_t d = lb_enter();
        lb_zone_free0_slow(z, addr, r, idx, d);
        lb_leave(d);
    } else {
        lb_zone_free_block(z, r, idx, order);
    }
    return 0;
}

static LB_NOINLINE int lb_free_general(struct labyrinth_zone *h, void *addr, unsigned order,
                                       const void *caller);

/* The fast path of labyrinth_free_pages turned addr's descriptor CACHED
 * but could not push it onto its loaded magazine. */
static LB_NOINLINE int lb_free_won(struct labyrinth_zone *h, void *addr)
{
    struct lb_zone *z = lb_zone_of_live(h);
    struct lb_region *r = lb_regmap_lookup(&z->map, (uintptr_t)addr);
    uint32_t d = lb_enter();
    lb_zone_free0_slow(z, addr, r, lb_region_index(r, addr), d);
    lb_leave(d);
    return 0;
}

/* The fast path of labyrinth_free_pages found a page of region 0 owned by
 * another level (descriptor w, read just before): the decisive read first
 * (cache.h, lb_desc_gen: the free is of the allocation named now, with
 * its full generation, whatever happens later), from the handle's own
 * line; if the page moved, the general path reads anew (nothing decided
 * yet).  Then, if our last outbox batch goes to that level, queue it there
 * (no descriptor write); else the general path's decision on the named
 * allocation.  Entered at depth d + 1 with level l; leaves the depth.
 * (The decisive read in the caller, beside its first read, would narrow
 * the window lb_desc_gen describes from about 27 instructions to 12, but
 * costs labyrinth_free_pages a frame: 6 instructions per LIFO free and 31
 * per remote free, measured; not taken.) */
static LB_NOINLINE int lb_free_remote_fast(struct labyrinth_zone *h, void *addr, struct lb_level *l,
                                           uint32_t d, uint64_t w)
{
    uintptr_t i = ((uintptr_t)addr - h->r0_lo) >> h->page_shift;
    uint64_t n;
    if (LB_UNLIKELY(!lb_desc_gen(&h->r0_desc[i], &h->r0_genhi[i], w, &n))) {
        lb_leave(d);
        return lb_free_general(h, addr, 0, __builtin_return_address(0));
    }
    struct lb_zone *z = lb_zone_of_live(h);
    struct lb_tcache *tc = lb_level_tcache_at(l, d);
    /* The outbox guard (remote.h): false, the warden is taking our
     * outboxes, and the general path frees without them. */
    if (LB_LIKELY(lb_out_begin(tc, d))) {
        unsigned k = l->out_last;
        struct lb_mag *m = lb_load_rlx_ptr(&l->out_mag[k]);
        if (LB_LIKELY((w & 0xffu) == lb_d_make(LB_S_ALLOC, 0, 0)) && m != NULL &&
            LB_LIKELY(lb_d_owner(w) == l->out_dest[k]) && LB_LIKELY(lb_d_owner(w) != 0) &&
            LB_LIKELY(lb_remote_fast_ok(z))) {
            uint32_t page_id = z->r0_first + (uint32_t)i;
            /* Poisoned before it is queued (see lb_free_general). */
            LB_TOOL_FREE(addr, z->page_size);
            if (LB_LIKELY(lb_level_out_append(&z->cache, l, k, m, page_id, n) == LB_APPENDED)) {
                lb_out_end(tc, d);
                lb_leave(d);
                return 0;
            }
            /* Already queued (lb_free_named reports it), or a batch
             * to start anew (lb_free_named does). */
            LB_TOOL_ALLOC(addr, z->page_size, 1);
        }
        lb_out_end(tc, d);
    }
    /* Not through the fast batch.  A page some level owns: the general
     * path's decision, on the allocation already named (reading anew could
     * name a newer one).  Anything else (a free state, a shared page, a
     * higher order): the general path, whose CAS decides. */
    if (lb_d_state(w) == LB_S_ALLOC && lb_d_order(w) == 0 && lb_d_owner(w)) {
        struct lb_region *r = lb_regmap_lookup(&z->map, (uintptr_t)addr);
        return lb_free_named(z, addr, r, lb_region_index(r, addr), w, n, d, __builtin_return_address(0));
    }
    lb_leave(d);
    return lb_free_general(h, addr, 0, __builtin_return_address(0));
}

int labyrinth_free_pages(struct labyrinth_zone *z, void *addr, unsigned order)
{
    /* The fast path: an order-0 page of region 0 that this very level
     * allocated, and room in its loaded magazine.  Anything else (NULL,
     * another thread's page, bad frees) is a tail call. */
    if (LB_LIKELY(lb_handle_in_table(z)) && LB_LIKELY(order == 0) && LB_LIKELY(!z->free_slow)) {
        uintptr_t off = (uintptr_t)addr - z->r0_lo;
        if (LB_LIKELY(off < z->r0_bytes) && LB_LIKELY((off & z->page_mask) == 0)) {
            lb_atomic_u64 *dp = &z->r0_desc[off >> z->page_shift];
            uint32_t d = lb_enter();
            struct lb_level *l = lb_tls_level_cur(lb_handle_key(z), d);
            if (LB_LIKELY(l != NULL)) {
                uint64_t w = lb_load_rlx_u64(dp);
                /* Allocated (order 0) by this level: we are the only
                 * writer of its descriptor (a handler interrupting us runs
                 * at another level and queues its frees instead), so a
                 * plain store takes it back; a second free sees CACHED. */
                if (LB_LIKELY((w & LB_D_OWNED_MASK) == l->pattern)) {
                    lb_store_rlx_u64(dp, lb_d_make(LB_S_CACHED, 0, 0));
                    LB_TOOL_FREE(addr, z->page_mask + 1);
                    struct lb_mag *m = lb_level_loaded(l);
                    uint32_t n = lb_load_rlx_u32(&m->count);
                    if (LB_LIKELY(n < z->mag_size)) {
                        m->slot[n] = addr;
                        lb_store_rlx_u32(&m->count, n + 1);
                        lb_leave(d);
                        return 0;
                    }
                    lb_leave(d);
                    return lb_free_won(z, addr);
                }
                /* Another level's page: a tail call keeps this path a
                 * leaf (the callee's first act is the decisive read). */
                return lb_free_remote_fast(z, addr, l, d, w);
            }
            lb_leave(d);
        }
    }
    return lb_free_general(z, addr, order, __builtin_return_address(0));
}
LB_EXPORT(labyrinth_free_pages);

void lb_zone_free_block(struct lb_zone *z, struct lb_region *r, uint32_t idx, unsigned order)
{
    if (order > 0 && order <= z->cache.oc_max_order) {
        uint32_t d = lb_enter();
        struct lb_level *l = lb_tls_level(&z->cache, d);
        if (!l && d == 0 && lb_cache_claim(&z->cache))
            l = lb_tls_level(&z->cache, 0);
        bool kept = false;
        if (l && !lb_load_rlx_ptr(&l->oc[order - 1])) {
            /* We own the block (our CAS made it PENDING): keep it. */
            lb_store_rlx_u64(&r->desc[idx], lb_d_make(LB_S_CACHED, order, 0));
            lb_store_rlx_ptr(&l->oc[order - 1], (void *)lb_region_addr(r, idx));
            lb_bump_1w_u64(&l->hi_frees, 1);
            kept = true;
        }
        lb_leave(d);
        if (kept)
            return;
    }
    if (lb_spin_trylock_bounded(&z->buddy.lock, LB_TRYLOCK_TRIES)) {
        lb_buddy_give(&z->buddy, r, idx, order);
        lb_zone_buddy_unlock(z);
    } else {
        lb_cache_pend(&z->cache, r, idx, order);
        lb_zone_kick(z);
    }
    lb_add_rlx_u64(&z->cache.shared_frees, 1);
}
