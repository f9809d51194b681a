/*
 * remote.c - layer 5: the ownership protocol of order-0 pages (remote.h).
 */
#include "zone.h"
#include "remote.h"

struct lb_level *lb_cache_level_by_id(const struct lb_cache *c, uint32_t id)
{
    if (id == 0 || id > c->ntcaches * LB_LEVELS)
        return NULL;
    return &c->tcaches[(id - 1) / LB_LEVELS].lvl[(id - 1) % LB_LEVELS];
}

void lb_level_flush_one(struct lb_cache *c, struct lb_level *l, unsigned k)
{
    LB_DEBUG_CHECK(lb_load_rlx_ptr(&l->out_mag[k]) != NULL);
    struct lb_mag *m = lb_load_rlx_ptr(&l->out_mag[k]);
    struct lb_level *dst = lb_cache_level_by_id(c, l->out_dest[k]);
    LB_CHECK(dst != NULL); /* out_dest holds an owner's id (remote_free) */
    uint32_t n = lb_load_rlx_u32(&m->count);
    /* These pages leave our outbox: forget them (a later free of one of
     * them, once its owner has handed it out again, is legitimate). */
    for (unsigned i = 0; i < LB_BLOOM_WORDS; i++)
        l->out_bloom[k][i] = 0;
    lb_store_rlx_ptr(&l->out_mag[k], NULL);
    lb_add_rlx_u64(&dst->inbox_pages, n); /* a statistic: before the push, so it never underflows */
    lb_tcache_push_begin(c);                 /* P0 */
    lb_magstack_push(c, &dst->inbox, m);     /* release: the entries reach the owner's acquire */
    lb_tcache_note_push(c, dst);             /* P2..P4: an orphan's bit */
}

void lb_level_flush_outboxes(struct lb_cache *c, struct lb_level *l)
{
    for (unsigned k = 0; k < LB_OUTBOX_SLOTS; k++)
        if (lb_load_rlx_ptr(&l->out_mag[k]))
            lb_level_flush_one(c, l, k);
}

void lb_level_flush_once(struct lb_cache *c, struct lb_level *l, uint32_t epoch)
{
    uint32_t *last = &lb_level_tcache(c, l)->flushed_epoch[(l->id - 1) % LB_LEVELS];
    if (*last != epoch) {
        *last = epoch;
        lb_level_flush_outboxes(c, l);
    }
}

LB_NOINLINE bool lb_level_out_holds(const struct lb_mag *m, uint32_t page_id, uint32_t gen)
{
    const void *e = (const void *)lb_entry(page_id, gen);
    /* Relaxed: m is our own outbox, we are its only writer (it is
     * published to the owner only by the release push of a flush). */
    uint32_t n = lb_load_rlx_u32(&m->count);
    for (uint32_t i = 0; i < n; i++)
        if (m->slot[i] == e)
            return true;
    return false;
}

/* An empty magazine for a batch of remote frees, or NULL.  With no empty
 * one but full ones in the depot, a full one's pages are spilled onto the
 * pending stack (lock-free; the next holder of the buddy lock takes them)
 * and the magazine serves.  NULL only when every magazine is held by a
 * level, an outbox or an inbox. */
static struct lb_mag *lb_remote_mag_get(struct lb_cache *c)
{
    struct lb_mag *m = lb_magstack_pop(c, &c->empty);
    if (!m && (m = lb_magstack_pop(c, &c->full))) {
        lb_cache_mag_to_stack(c, m, &c->pending, LB_S_PENDING);
        lb_add_rlx_u64(&c->outbox_spills, 1); /* a statistic: no order */
    }
    return m;
}

/* A batch of one: {page_id, generation of w} straight onto the owner's
 * inbox, for a freer with no outbox to use (no level of its own, or its
 * batches could not get a magazine).  The descriptor is not touched: the
 * owner validates the entry as any other.  false: no magazine at all. */
static bool lb_remote_push_one(struct lb_cache *c, uint32_t page_id, uint64_t w, uint64_t n)
{
    struct lb_level *dst = lb_cache_level_by_id(c, lb_d_owner(w));
    if (!dst)
        return false;
    struct lb_mag *m = lb_remote_mag_get(c);
    if (!m)
        return false;
    m->stamp = n; /* published by the push's release */
    m->slot[0] = (void *)lb_entry(page_id, lb_d_gen(w));
    lb_store_rlx_u32(&m->count, 1);
    lb_add_rlx_u64(&dst->inbox_pages, 1); /* a statistic: before the push (see flush_one) */
    lb_tcache_push_begin(c);              /* P0 */
    lb_magstack_push(c, &dst->inbox, m);  /* release: the entry reaches the owner's acquire */
    lb_tcache_note_push(c, dst);          /* P2..P4: an orphan's bit */
    lb_add_rlx_u64(&c->remote_singles, 1); /* a statistic: no order */
    lb_add_rlx_u64(&c->shared_frees, 1); /* a free outside any level (see lb_cache_counts) */
    return true;
}

int lb_level_remote_free(struct lb_cache *c, struct lb_level *l, void *p, uint32_t page_id, uint64_t w,
                         uint64_t n)
{
    (void)p;
    uint32_t dest = lb_d_owner(w);
    unsigned k, empty, fullest;
    uint32_t most;
again:
    empty = LB_OUTBOX_SLOTS;
    fullest = 0;
    most = 0;
    for (k = 0; k < LB_OUTBOX_SLOTS; k++) {
        struct lb_mag *m = lb_load_rlx_ptr(&l->out_mag[k]);
        if (!m) {
            empty = k;
            continue;
        }
        if (l->out_dest[k] == dest)
            break;
        if (lb_load_rlx_u32(&m->count) >= most) {
            most = lb_load_rlx_u32(&m->count);
            fullest = k;
        }
    }
    if (k == LB_OUTBOX_SLOTS) {
        /* A new destination: a free slot, or make one. */
        if (empty == LB_OUTBOX_SLOTS) {
            lb_level_flush_one(c, l, fullest);
            empty = fullest;
        }
        struct lb_mag *m = lb_remote_mag_get(c);
        if (!m)
            return -ENOSPC;
        k = empty;
        l->out_dest[k] = (uint16_t)dest;
        lb_store_rlx_ptr(&l->out_mag[k], m);
    }
    l->out_last = k;
    /* Still in our outbox for this owner, this generation: freed twice. */
    switch (lb_level_out_append(c, l, k, lb_load_rlx_ptr(&l->out_mag[k]), page_id, n)) {
    case LB_APPENDED:
        return 0;
    case LB_ALREADY:
        return -EALREADY;
    case LB_OUT_OF_WINDOW:
        break;
    }
    /* The page's generation is too far from the batch's: the batch goes
     * on, and the next try appends to a new, empty one (which takes any
     * generation), or gets no magazine. */
    lb_level_flush_one(c, l, k);
    goto again;
}

bool lb_out_begin_slow(struct lb_tcache *tc, uint32_t d, uint32_t s)
{
    /* B4, acquire-release: a success takes the outboxes back before the
     * warden's S5 (which then fails).  A failure reads 2 (the warden is
     * at S5 or later) or 0: the warden backed off (S4) or finished a whole
     * steal (S6) since our B3, and asks nothing more until its next S2
     * (found by the model, model/outbox_steal.pml -DCHECK_FAIL_SEES_2:
     * this said "a failure reads 2" before). */
    if (s == 1 && lb_cas_acqrel_u32(&tc->out_steal[d], &s, 0))
        return true;
    if (s == 0)
        return true;
    LB_DEBUG_CHECK(s == 2);
    lb_out_end(tc, d); /* B5 */
    return false;
}

void lb_out_begin_wait(struct lb_tcache *tc, uint32_t d)
{
    for (;;) {
        /* B1..B3 with the store and the load sequentially consistent (a
         * locked exchange on x86-64: a full fence): the caller may be
         * outside lb_enter (a kernel releasing an offline CPU's cache from
         * another CPU), where the warden's grace period (lb_os_fence_all)
         * does not order it; so the pair is an ordinary Dekker against the
         * warden's S1, S2 (which fences the warden too), S3.  Normal
         * context, rare: the cost does not matter. */
        lb_store_sc_u32(&tc->out_busy[d], 1);
        uint32_t s = lb_load_sc_u32(&tc->out_steal[d]);
        if (s == 0 || lb_out_begin_slow(tc, d, s))
            return;
        lb_os_yield(); /* the warden is pushing our batches: a few pushes */
    }
}

uint64_t lb_cache_steal_idle(struct lb_cache *c, uint64_t now, bool urgent)
{
    if (lb_load_rlx_u32(&c->steal_off))
        return 0;
    uint64_t pages = 0;
    uint32_t asked = 0;
    /* S1 for each owned level with batches waiting and no remote free
     * since the last look.  Relaxed loads: hints (a level that frees
     * meanwhile either sees our request or is seen busy). */
    for (uint32_t t = 0; t < c->ntcaches; t++) {
        struct lb_tcache *tc = &c->tcaches[t];
        uint32_t owner = lb_load_rlx_u32(&tc->owner);
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            struct lb_level *l = &tc->lvl[d];
            uint64_t rf = lb_load_rlx_u64(&l->remote_frees);
            if (rf != tc->steal_seen[d]) {
                tc->steal_seen[d] = rf;
                tc->steal_since[d] = now;
                continue;
            }
            /* Idle since the last look; long enough, unless pages are
             * short (a freer between bursts is not fenced every run:
             * membarrier interrupts every CPU running our threads). */
            if (!urgent && now - tc->steal_since[d] < LB_STEAL_IDLE_UNITS)
                continue;
            if (owner == 0 || owner == LB_OWNER_WARDEN)
                continue;
            bool waiting = false;
            for (unsigned k = 0; k < LB_OUTBOX_SLOTS; k++)
                waiting |= lb_load_rlx_ptr(&l->out_mag[k]) != NULL;
            if (!waiting)
                continue;
            /* S1.  Release: a level whose B4 CAS reads this 1 and then
             * uses its outboxes sees our last S6 and the changes before
             * it without relying on C17's release sequences through a
             * relaxed store (the model's review; free on x86-64, stlr on
             * aarch64). */
            lb_store_rel_u32(&tc->out_steal[d], 1);
            asked++;
        }
    }
    if (!asked)
        return 0;
    int frc = lb_os_fence_all(); /* S2 */
    bool fenced = frc == 0;
    if (frc == -ENOSYS)
        lb_store_rlx_u32(&c->steal_off, 1); /* no asymmetric fence in this process: never again */
    for (uint32_t t = 0; t < c->ntcaches; t++) {
        struct lb_tcache *tc = &c->tcaches[t];
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            /* Relaxed: only we write 1, and nobody else 2. */
            if (lb_load_rlx_u32(&tc->out_steal[d]) != 1)
                continue;
            uint32_t one = 1;
            /* S3, acquire: pairs with the level's release of busy (B6),
             * so its outbox writes are seen.  Busy, or no fence: back off
             * (S4; relaxed, a failure means the level took them back). */
            if (!fenced || lb_load_acq_u32(&tc->out_busy[d])) {
                lb_cas_rlx_u32(&tc->out_steal[d], &one, 0);
                continue;
            }
            /* S5, acquire-release: pairs with the level's B4 CAS (one of
             * the two wins). */
            if (!lb_cas_acqrel_u32(&tc->out_steal[d], &one, 2))
                continue;
            struct lb_level *l = &tc->lvl[d];
            for (unsigned k = 0; k < LB_OUTBOX_SLOTS; k++) {
                struct lb_mag *m = lb_load_rlx_ptr(&l->out_mag[k]);
                if (m) {
                    pages += lb_load_rlx_u32(&m->count);
                    lb_level_flush_one(c, l, k);
                }
            }
            /* S6, release: pairs with the level's acquire of steal (B3). */
            lb_store_rel_u32(&tc->out_steal[d], 0);
        }
    }
    lb_add_rlx_u64(&c->outbox_steals, pages); /* a statistic */
    return pages;
}

/* Validate the entries of inbox magazine m of level l in place. */
static uint64_t lb_level_validate(struct lb_cache *c, struct lb_level *l, struct lb_mag *m)
{
    uint32_t n = lb_load_rlx_u32(&m->count), kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        uintptr_t e = (uintptr_t)m->slot[i];
        uint32_t page_id = (uint32_t)(e >> 32), gen = (uint32_t)e;
        struct lb_region *r = lb_cache_id_region(c, page_id);
        uint32_t idx = lb_page_id_index(page_id);
        void *page = (void *)lb_region_addr(r, idx);
        uint64_t w = lb_load_rlx_u64(&r->desc[idx]);
        /* We are the only writer of our pages' descriptors (and their
         * high words): a plain check and store suffice.  All 64 bits of
         * the generation must match (cache.h, "Generations"). */
        if ((w & LB_D_OWNED_MASK) == l->pattern && lb_entry_current(m, gen, r, idx, w)) {
            lb_store_rlx_u64(&r->desc[idx], lb_d_make(LB_S_CACHED, 0, 0));
            m->slot[kept++] = page;
        } else {
            lb_add_rlx_u64(&c->late_refused, 1);
            if (c->bad_entry)
                c->bad_entry(c->bad_ctx, page, w);
        }
    }
    lb_store_rlx_u32(&m->count, kept);
    lb_sub_rlx_u64(&l->inbox_pages, n);
    return kept;
}

struct lb_mag *lb_level_take_inbox(struct lb_cache *c, struct lb_level *l, uint64_t *pages)
{
    *pages = 0;
    if (!(uint32_t)lb_load_rlx_u64(&l->inbox.head))
        return NULL;
    struct lb_mag *first = lb_magstack_take_all(c, &l->inbox);
    for (struct lb_mag *m = first; m; m = lb_cache_mag_next(c, m))
        *pages += lb_level_validate(c, l, m);
    return first;
}

struct lb_mag *lb_level_take_inbox_bounded(struct lb_cache *c, struct lb_level *l, unsigned max,
                                           uint64_t *pages)
{
    /* Only the level's owner (its thread, or whoever holds its tcache)
     * validates: it is the only writer of its pages' descriptors.  (The
     * unbounded take also serves lb_zone_settle on a quiescent zone.) */
    LB_DEBUG_CHECK(lb_load_rlx_u32(&lb_level_tcache(c, l)->owner) != 0);
    struct lb_mag *first = NULL, *last = NULL;
    *pages = 0;
    for (unsigned i = 0; i < max; i++) {
        if (!(uint32_t)lb_load_rlx_u64(&l->inbox.head))
            break;
        /* Pop, not take-all: a bounded amount of validation per call.  The
         * tagged head keeps the pop ABA-safe against concurrent pushes. */
        struct lb_mag *m = lb_magstack_pop(c, &l->inbox);
        if (!m)
            break;
        *pages += lb_level_validate(c, l, m);
        lb_store_rlx_u32(&m->next, 0);
        if (last)
            lb_store_rlx_u32(&last->next, lb_mag_index(c, m) + 1);
        else
            first = m;
        last = m;
    }
    return first;
}

/* Whether any level of tc has queued frees (relaxed: a hint; the take
 * itself is the acquire). */
static bool lb_tcache_has_queued(const struct lb_tcache *tc)
{
    bool any = false;
    for (unsigned d = 0; d < LB_LEVELS; d++)
        any |= (uint32_t)lb_load_rlx_u64(&tc->lvl[d].inbox.head) != 0 || lb_load_rlx_u32(&tc->lvl[d].queue) != 0;
    return any;
}

/* ---- orphans: unowned tcaches with queued frees ---------------------------------
 *
 * c->orphans has a bit per tcache that may be unowned with pages on a
 * level's inbox or queue; c->pushes counts the operations under way that
 * can make a tcache so (a push onto another tcache's level, a holder
 * letting go).  A reader that reads pushes == 0 finds every such tcache's
 * bit set; one that reads more looks at every tcache:
 *
 *   pusher (a batch or a queued page      unowner (release, adopt, reap)
 *   onto a level of tc)
 *   P0 pushes += 1                        U0 pushes += 1
 *   P1 push (release CAS)                 U1 owner = 0 (release store)
 *   P2 pushes += 0 (acq_rel RMW)          U2 pushes += 0 (acq_rel RMW)
 *   P3 load owner: 0 -> set the bit       U3 load the levels' inbox and
 *                                            queue heads: any -> set the bit
 *   P4 pushes -= 1 (release)              U4 pushes -= 1 (release)
 *
 * P2 and U2 are read-modify-writes of one word, so one comes first in its
 * modification order and the later one acquires from the earlier: if P2
 * is first, U3 sees P1's push; if U2 is first, P3 sees U1's 0 (or a later
 * owner, who then holds the pages as its own).  Either way the bit is set
 * before P4/U4.  (A store then a load of another word: acquire and release
 * alone cannot order that; a seq_cst fence could, but TSan does not model
 * fences, and these RMWs are on a line that is written only on these
 * paths.)  The reader loads pushes with acquire: every decrement is a
 * release RMW and every access to pushes an RMW, so reading 0 synchronizes
 * with every P4/U4 before it, and the bits they set are seen.  Until P4 or
 * U4 — a pusher preempted between its push and its bit, say — pushes is
 * not 0 and readers look everywhere (the review of the first version of
 * this found exactly that window: 32 instructions of a single-stepped free
 * where ATOMIC said NULL with a batch on an unowned inbox).  The bit is set
 * with a release or and cleared with an acquire and (lb_cache_adopt),
 * which so sees the pushes made before a set it clears; a push after the
 * clear sets it again.  A stale bit (the tcache claimed since) costs one
 * look.  The warden's reap looks at every tcache. */
static void lb_orphan_set(struct lb_cache *c, uint32_t t)
{
    lb_or_rel_u64(&c->orphans[t / 64], 1ull << (t % 64));
}

void lb_tcache_push_begin(struct lb_cache *c)
{
    /* P0.  Acquire-release as every access to pushes (see above). */
    lb_add_acqrel_u64(&c->pushes, 1);
}

void lb_tcache_note_push(struct lb_cache *c, const struct lb_level *dst)
{
    lb_add_acqrel_u64(&c->pushes, 0); /* P2 */
    const struct lb_tcache *tc = lb_level_tcache(c, dst);
    if (!lb_load_rlx_u32(&tc->owner)) /* P3 */
        lb_orphan_set(c, tc->index);
    lb_sub_rel_u64(&c->pushes, 1); /* P4 */
}

void lb_tcache_unown(struct lb_cache *c, struct lb_tcache *tc)
{
    lb_add_acqrel_u64(&c->pushes, 1); /* U0 */
    /* U1.  Release: what the holder did to the tcache is visible to the
     * next claimant (pairs with the acquire CAS of lb_cache_claim,
     * lb_cache_adopt and lb_cache_reap). */
    lb_store_rel_u32(&tc->owner, 0);
    lb_add_acqrel_u64(&c->pushes, 0); /* U2 */
    if (lb_tcache_has_queued(tc)) /* U3 */
        lb_orphan_set(c, tc->index);
    lb_sub_rel_u64(&c->pushes, 1); /* U4 */
}

bool lb_cache_orphans_sure(const struct lb_cache *c)
{
    /* Acquire: pairs with the release decrements P4/U4 (above). */
    return lb_load_acq_u64(&c->pushes) == 0;
}

/* Take the queued frees of tcache tc if no thread holds it (a claim by
 * CAS); NULL and *took false if it was held or had none. */
static struct lb_mag *lb_cache_adopt_one(struct lb_cache *c, struct lb_tcache *tc, struct lb_level *into,
                                         uint64_t *pages, bool *took)
{
    uint32_t zero = 0;
    *took = false;
    /* Acquire/release as a claim: while we hold the cache, we are its
     * levels' owner and may validate their queued frees.  An owned
     * tcache: its owner has the pages, or sets the bit again when it lets
     * go (lb_tcache_unown). */
    if (!lb_tcache_has_queued(tc) || lb_load_rlx_u32(&tc->owner) ||
        !lb_cas_acq_u32(&tc->owner, &zero, LB_OWNER_WARDEN))
        return NULL;
    struct lb_mag *chain = NULL;
    uint64_t queued = 0;
    for (unsigned d = 0; d < LB_LEVELS; d++)
        queued += lb_level_take_queue(c, &tc->lvl[d], into);
    for (unsigned d = 0; d < LB_LEVELS && !chain; d++)
        chain = lb_level_take_inbox_bounded(c, &tc->lvl[d], 2, pages);
    lb_tcache_unown(c, tc); /* the bit again if pages are left */
    *took = chain || queued;
    return chain;
}

struct lb_mag *lb_cache_adopt(struct lb_cache *c, struct lb_level *into, uint64_t *pages)
{
    *pages = 0;
    bool took;
    /* Only the tcaches whose orphan bit is set, when no push or unown is
     * under way (see above): a failing allocation in a drained zone looked
     * at every tcache (about 2,900 of the 3,790 instructions of a failed
     * ATOMIC allocation with 64).  Otherwise every tcache, as before. */
    if (!lb_cache_orphans_sure(c)) {
        for (uint32_t t = 0; t < c->ntcaches; t++) {
            struct lb_mag *chain = lb_cache_adopt_one(c, &c->tcaches[t], into, pages, &took);
            if (took)
                return chain;
        }
        return NULL;
    }
    for (uint32_t w = 0; w < (c->ntcaches + 63) / 64; w++) {
        /* Relaxed: a hint; the clear below is the acquire. */
        uint64_t bits = lb_load_rlx_u64(&c->orphans[w]);
        while (bits) {
            unsigned b = (unsigned)__builtin_ctzll(bits);
            bits &= bits - 1;
            /* Counted as under way from before the clear to after our
             * claim and unown: between the clear and the claim the tcache
             * is unowned with pages and no bit, and a reader must then look
             * everywhere (the review of the fixed version: for 65
             * instructions of an adopt, every other caller was refused). */
            lb_tcache_push_begin(c);
            /* Acquire: pairs with the release or of every set it clears,
             * so the pushes before them are seen below. */
            lb_and_acq_u64(&c->orphans[w], ~(1ull << b));
            struct lb_mag *chain = lb_cache_adopt_one(c, &c->tcaches[w * 64 + b], into, pages, &took);
            lb_sub_rel_u64(&c->pushes, 1); /* release: as P4 */
            if (took)
                return chain;
        }
    }
    return NULL;
}

uint64_t lb_cache_reap(struct lb_cache *c)
{
    uint64_t pages = 0;
    for (uint32_t t = 0; t < c->ntcaches; t++) {
        struct lb_tcache *tc = &c->tcaches[t];
        uint32_t zero = 0;
        /* Acquire/release as a claim (lb_cache_claim, lb_cache_release):
         * while we hold the cache, we are its levels' owner. */
        if (!lb_tcache_has_queued(tc) || lb_load_rlx_u32(&tc->owner) ||
            !lb_cas_acq_u32(&tc->owner, &zero, LB_OWNER_WARDEN))
            continue;
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            uint64_t n;
            pages += lb_level_take_queue(c, &tc->lvl[d], NULL); /* to the pending stack */
            struct lb_mag *chain = lb_level_take_inbox(c, &tc->lvl[d], &n);
            if (!chain)
                continue;
            lb_spin_lock(&c->buddy->lock);
            lb_chain_to_buddy(c, chain);
            lb_spin_unlock(&c->buddy->lock);
            pages += n;
        }
        /* Release: the reaped inboxes are visible to the next claimant
         * (pairs with the acquire CAS of lb_cache_claim / lb_cache_adopt);
         * the orphan bit for pages pushed meanwhile. */
        lb_tcache_unown(c, tc);
    }
    return pages;
}

/* ---- the queue: remote frees that need no magazine ------------------------------
 *
 * A context with no magazine for a batch frees an owned page (descriptor
 * ALLOC, owner o, generation g) through the page itself:
 *
 *   freer                                  owner o, taking its queue
 *   F1 CAS desc ALLOC(o,g) -> QUEUED(o,g)  O1 take the whole queue (xchg)
 *   F2 CAS qlink 0 -> CLAIMED              O2 next = qlink; qlink = 0
 *   F3 if F2 won: push the page on o's     O3 load desc: QUEUED for o: ours;
 *      queue (qlink = next, CAS head)         QUEUED for another: forward
 *                                             (claim as F2, push there);
 *                                             else a stale entry
 *
 * F1 decides which free of the allocation counts: it is exact against
 * every other CAS (two racing freers: one wins, the other sees QUEUED and
 * is refused with EALREADY), and it keeps the owner and generation, so the
 * owner's batches still validate against it (a queued entry {P, g} no
 * longer matches: QUEUED is not ALLOC).  The one write it cannot see is
 * the owner's own plain free of the same page at the same instant (a
 * double free racing with itself): the owner's CACHED overwrites QUEUED.
 * Then the page is in the owner's magazine *and* on its queue; O3 finds it
 * not QUEUED and drops the entry (a late double free, reported).  Nothing
 * corrupts: the links are not in the descriptor, so the owner's store
 * cannot cut the queue, and a page is on at most one queue at a time (F2
 * and O3's forward claim qlink before pushing).
 *
 * F2 fails while the page is still on a queue (such a stale entry not yet
 * taken, or a push under way): then a push is already owed, and its O3
 * will see the descriptor F1 wrote.  That takes sequential consistency:
 * F1 (store desc) then F2 (load qlink) against O2 (store qlink) then O3
 * (load desc), a store-load pattern on two words that acquire/release
 * cannot order; with SC either F2 sees O2's 0 (and the freer pushes the
 * page again) or O3 sees F1's QUEUED.  The spin model checks the protocol
 * (model/labyrinth.pml, -DFALLBACK).
 *
 * A stale entry whose page has been handed out and freed by F1 again
 * before O3 takes it is not told apart from a good one: O3 sees the new
 * QUEUED and takes the page once.  The double free in that history goes
 * unreported, but no page is handed out twice or lost. */

/* Push page_id (whose qlink the caller claimed) onto level dst's queue. */
static void lb_queue_push(struct lb_cache *c, struct lb_level *dst, uint32_t page_id, lb_atomic_u32 *link)
{
    lb_add_rlx_u64(&dst->queue_pages, 1); /* a statistic: before the push, so it never underflows */
    lb_tcache_push_begin(c); /* P0 */
    uint32_t h = lb_load_rlx_u32(&dst->queue);
    do {
        /* Relaxed: the link is published by the release CAS below. */
        lb_store_rlx_u32(link, h ? h : LB_QLINK_LAST);
        /* Release: pairs with the owner's acquire exchange (O1), which
         * then reads this page's link.  A push-only stack taken whole has
         * no ABA: a head equal to h again is still the right next. */
    } while (!lb_cas_rel_u32(&dst->queue, &h, page_id + 1));
    lb_tcache_note_push(c, dst); /* P2..P4: an orphan's bit */
}

/* F2 + F3: queue page idx of r (now QUEUED for owner o) unless it is
 * still on a queue. */
static void lb_queue_claim_push(struct lb_cache *c, struct lb_region *r, uint32_t idx, uint32_t owner)
{
    struct lb_level *dst = lb_cache_level_by_id(c, owner);
    LB_CHECK(dst != NULL);
    uint32_t zero = 0;
    /* Seq_cst: after F1 / O3, before the push (see above). */
    if (lb_cas_sc_u32(&r->qlink[idx], &zero, LB_QLINK_CLAIMED))
        lb_queue_push(c, dst, lb_page_id(r, idx), &r->qlink[idx]);
}

uint64_t lb_level_take_queue(struct lb_cache *c, struct lb_level *l, struct lb_level *into)
{
    if (!lb_load_rlx_u32(&l->queue))
        return 0;
    /* Acquire: pairs with the pushes' release CAS: their links are seen. */
    uint32_t top = lb_xchg_acq_u32(&l->queue, 0);
    const uint64_t mine = (l->pattern & ~(uint64_t)7) | LB_S_QUEUED;
    uint64_t kept = 0, n = 0;
    while (top) {
        uint32_t page_id = top - 1;
        struct lb_region *r = lb_cache_id_region(c, page_id);
        uint32_t idx = lb_page_id_index(page_id);
        lb_atomic_u32 *link = &r->qlink[idx];
        uint32_t next = lb_load_rlx_u32(link); /* written by its pusher before our acquire */
        LB_CHECK(next != 0 && next != LB_QLINK_CLAIMED);
        top = next == LB_QLINK_LAST ? 0 : next;
        n++;
        /* O2, O3: seq_cst (see above): off the queue, then look. */
        lb_store_sc_u32(link, 0);
        uint64_t w = lb_load_sc_u64(&r->desc[idx]);
        void *page = (void *)lb_region_addr(r, idx);
        if ((w & LB_D_OWNED_MASK) == mine) {
            /* Freed to us.  We are the only writer of a QUEUED page of
             * ours (a free CASes only ALLOC): plain stores. */
            kept++;
            if (into && lb_load_rlx_u32(&lb_level_loaded(into)->count) < c->mag_size) {
                lb_store_rlx_u64(&r->desc[idx], lb_d_make(LB_S_CACHED, 0, 0));
                bool ok = lb_level_push(into, page, c->mag_size);
                LB_CHECK(ok);
                lb_bump_1w_u64(&into->moved_in, 1);
            } else {
                lb_cache_pend(c, r, idx, 0);
            }
        } else if (lb_d_state(w) == LB_S_QUEUED) {
            /* A page that left us and was freed by its new owner's
             * freer while its stale entry was still here: it is owed a
             * push to its owner's queue. */
            lb_queue_claim_push(c, r, idx, lb_d_owner(w));
        } else {
            /* A stale entry: the free that queued it lost to its owner's
             * own free of the page (a double free). */
            lb_add_rlx_u64(&c->late_refused, 1);
            lb_add_rlx_u64(&c->shared_frees, 1); /* late_refused is subtracted from the frees */
            if (c->bad_entry)
                c->bad_entry(c->bad_ctx, page, w);
        }
    }
    lb_sub_rlx_u64(&l->queue_pages, n);
    /* The frees are counted here, when they take effect: a freer's F1 can
     * be overwritten by the owner's own free (then only that one counts). */
    lb_add_rlx_u64(&c->shared_frees, kept);
    return kept;
}

int lb_zone_free_remote(struct lb_zone *z, void *p, struct lb_region *r, uint32_t idx,
                        uint64_t w, uint64_t n, uint32_t d)
{
    struct lb_cache *c = &z->cache;
    struct lb_level *l = lb_tls_level(c, d);
    if (!l && d == 0 && lb_cache_claim(c))
        l = lb_tls_level(c, 0);
    int rc = -ENOSPC;
    struct lb_tcache *tc = l ? lb_level_tcache_at(l, d) : NULL;
    if (l && !lb_out_begin(tc, d)) {
        l = NULL; /* the warden is taking our outboxes: a batch of one */
        lb_add_rlx_u64(&c->steal_dodges, 1); /* a statistic */
    }
    if (l) {
        rc = lb_level_remote_free(c, l, p, lb_page_id(r, idx), w, n);
        if (rc == 0 && lb_load_rlx_u32(&z->kick)) {
            /* Pages are short: hand our batches on now.  With a warden,
             * once per warden run (docs/reliability.md: a flush per free
             * parks the shared magazine pool in the owner's inbox).
             * Relaxed load of warden_runs: a run count (the warden's
             * relaxed increment), no data hangs on it; a stale value costs
             * one flush more or less.  Without a warden nothing clears the
             * kick or counts runs: the batch just used goes on only while
             * its owner's inbox is empty, so an idle owner holds at most
             * one partial batch of ours besides the full ones (issue 11.6:
             * a flush per free emptied the pool into an idle inbox). */
            if (z->warden_running) {
                lb_level_flush_once(c, l, (uint32_t)lb_load_rlx_u64(&z->warden_runs));
            } else {
                unsigned k = l->out_last;
                struct lb_level *dst = lb_cache_level_by_id(c, l->out_dest[k]);
                /* Relaxed: a hint; the push itself is the release. */
                if (lb_load_rlx_ptr(&l->out_mag[k]) && dst && !(uint32_t)lb_load_rlx_u64(&dst->inbox.head))
                    lb_level_flush_one(c, l, k);
            }
        }
        lb_out_end(tc, d);
    }
    if (rc != -ENOSPC)
        return rc;
    /* No level or no outbox magazine: a batch of one to the owner. */
    if (lb_remote_push_one(c, lb_page_id(r, idx), w, n))
        return 0;
    /* No magazine at all: the page's own queue link (F1..F3 above). */
    lb_add_rlx_u64(&c->remote_fallbacks, 1); /* a statistic: no order */
    /* The allocation must still be generation n: its high word first
     * (acquire, as lb_desc_gen's: a newer allocation's high word means the
     * descriptor below is not n's even when it reads w again).  What stays
     * is a stop of 2^LB_GEN_BITS owner allocations between this load and
     * the CAS (docs/reliability.md, KB51). */
    if (lb_load_acq_u32(&r->gen_hi[idx]) != (uint32_t)(n >> LB_GEN_BITS))
        return -EALREADY;
    /* Seq_cst: F1 (see above).  A failure means the descriptor left w after
     * the caller's decisive read: the allocation this free is of was freed
     * by another context (a racing double free, and we are the second). */
    if (!lb_cas_sc_u64(&r->desc[idx], &w, (w & ~(uint64_t)7) | LB_S_QUEUED))
        return -EALREADY;
    lb_queue_claim_push(c, r, idx, lb_d_owner(w));
    return 0;
}

void lb_zone_settle(struct lb_zone *z)
{
    struct lb_cache *c = &z->cache;
    /* The warden may still run (destroy stops it later) and steal an
     * outbox while we flush it: both would push one magazine (found by the
     * model's review, -DSETTLE).  Under its mutex, with steals off. */
    lb_os_mutex_lock(&z->rebalance_mutex);
    lb_store_rlx_u32(&c->steal_off, 1);
    lb_os_mutex_unlock(&z->rebalance_mutex);
    for (uint32_t t = 0; t < c->ntcaches; t++)
        for (unsigned d = 0; d < LB_LEVELS; d++)
            lb_level_flush_outboxes(c, &c->tcaches[t].lvl[d]);
    /* Queued pages go to the pending stack, which lb_zone_destroy's
     * callers find free (they are not leaks). */
    for (uint32_t t = 0; t < c->ntcaches; t++)
        for (unsigned d = 0; d < LB_LEVELS; d++)
            lb_level_take_queue(c, &c->tcaches[t].lvl[d], NULL);
    for (uint32_t t = 0; t < c->ntcaches; t++)
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            uint64_t n;
            struct lb_mag *m = lb_level_take_inbox(c, &c->tcaches[t].lvl[d], &n);
            if (!m)
                continue;
            lb_spin_lock(&z->buddy.lock);
            while (m) {
                struct lb_mag *next = lb_cache_mag_next(c, m);
                lb_cache_mag_to_buddy(c, m);
                lb_magstack_push(c, &c->empty, m);
                m = next;
            }
            lb_spin_unlock(&z->buddy.lock);
        }
}
