/*
 * cache.c - layer 4: magazines, depot, reserve, pending stack, thread caches.
 */
#include "cache.h"

LB_OS_CTX_DEFINE(struct lb_tls, lb_tls);

/* ---- TLS slots and thread exit ------------------------------------------------ */

/* Which cache owns each TLS slot; guarded by lb_tls_mutex (normal context:
 * zone creation and destruction, thread exit). */
static struct {
    uint64_t         serial;
    struct lb_cache *cache;
} lb_tls_owner[LB_TLS_ZONES];
static lb_os_mutex lb_tls_mutex;
static lb_atomic_u32 lb_tls_mutex_ready;
static lb_atomic_u32 lb_next_thread_id;

static void lb_tls_exit(void *arg);

static void lb_tls_mutex_once(void)
{
    /* Zone creation is normal context; the first creations may race. */
    static lb_atomic_u32 init_lock;
    if (lb_load_acq_u32(&lb_tls_mutex_ready))
        return;
    uint32_t z = 0;
    while (!lb_cas_acq_u32(&init_lock, &z, 1)) {
        z = 0;
        lb_os_yield();
    }
    if (!lb_load_rlx_u32(&lb_tls_mutex_ready)) {
        lb_os_mutex_init(&lb_tls_mutex);
        lb_os_thread_exit_hook_init(lb_tls_exit);
        /* Release: the mutex is initialised before anyone sees ready. */
        lb_store_rel_u32(&lb_tls_mutex_ready, 1);
    }
    lb_store_rel_u32(&init_lock, 0);
}

bool lb_cache_tls_register(struct lb_cache *c)
{
    lb_tls_mutex_once();
    lb_os_mutex_lock(&lb_tls_mutex);
    c->tls_slot = LB_TLS_ZONES;
    for (unsigned i = 0; i < LB_TLS_ZONES; i++) {
        if (!lb_tls_owner[i].cache) {
            lb_tls_owner[i].cache = c;
            lb_tls_owner[i].serial = c->serial;
            c->tls_slot = i;
            break;
        }
    }
    lb_os_mutex_unlock(&lb_tls_mutex);
    return c->tls_slot < LB_TLS_ZONES;
}

void lb_cache_tls_unregister(struct lb_cache *c)
{
    if (c->tls_slot >= LB_TLS_ZONES)
        return;
    lb_os_mutex_lock(&lb_tls_mutex);
    lb_tls_owner[c->tls_slot].cache = NULL;
    lb_tls_owner[c->tls_slot].serial = 0;
    lb_os_mutex_unlock(&lb_tls_mutex);
}

/* Runs in an exiting thread that used a zone: give its caches back. */
static void lb_tls_exit(void *arg)
{
    (void)arg;
    lb_os_mutex_lock(&lb_tls_mutex);
    for (unsigned i = 0; i < LB_TLS_ZONES; i++) {
        struct lb_tls_zone *e = &lb_ctx()->z[i];
        if (e->serial && lb_tls_owner[i].serial == e->serial && lb_tls_owner[i].cache)
            lb_cache_release(lb_tls_owner[i].cache, e->tc);
        e->serial = 0;
        e->tc = NULL;
    }
    lb_ctx()->cur_serial = 0;
    lb_os_mutex_unlock(&lb_tls_mutex);
}

struct lb_level *lb_tls_level_slow(const struct lb_cache *c, uint32_t d)
{
    if (d >= LB_LEVELS || c->tls_slot >= LB_TLS_ZONES)
        return NULL;
    const struct lb_tls_zone *e = &lb_ctx()->z[c->tls_slot];
    if (e->serial != c->serial)
        return NULL;
    if (d == 0) {
        /* Entered at depth 0: no labyrinth call of this thread is under
         * way, so the current-zone entry can change. */
        lb_ctx()->cur_serial = 0;
        lb_signal_fence();
        lb_ctx()->cur_lvl = e->tc->lvl;
        lb_signal_fence();
        lb_ctx()->cur_serial = c->serial;
    }
    return &e->tc->lvl[d];
}

uint32_t lb_cache_thread_id(void)
{
    /* A kernel names contexts by CPU (any context, no state). */
    uint32_t id = lb_os_ctx_id();
    if (id)
        return id;
    id = lb_ctx()->thread_id;
    if (LB_UNLIKELY(!id)) {
        /* Relaxed: ids only need to be unique.  A handler interrupting this
         * takes its own id and the thread keeps whichever is stored last;
         * both are unique, which is all a tracking record needs. */
        id = lb_add_rlx_u32(&lb_next_thread_id, 1) + 1;
        lb_ctx()->thread_id = id;
    }
    return id;
}

struct lb_tcache *lb_cache_claim(struct lb_cache *c)
{
    if (c->tls_slot >= LB_TLS_ZONES)
        return NULL;
    uint32_t me = lb_cache_thread_id();
    for (uint32_t i = 0; i < c->ntcaches; i++) {
        struct lb_tcache *tc = &c->tcaches[i];
        uint32_t zero = 0;
        if (lb_load_rlx_u32(&tc->owner))
            continue;
        /* Acquire: pairs with the release in lb_cache_release, so the
         * magazines the last owner left are seen as it left them. */
        if (!lb_cas_acq_u32(&tc->owner, &zero, me))
            continue;
        lb_add_rlx_u32(&c->threads, 1);
        struct lb_tls_zone *e = &lb_ctx()->z[c->tls_slot];
        e->tc = tc;
        lb_signal_fence(); /* tc is in place before the serial says so */
        e->serial = c->serial;
        lb_ctx()->cur_lvl = tc->lvl; /* claims run at depth 0: see lb_tls_level_cur */
        lb_signal_fence();
        lb_ctx()->cur_serial = c->serial;
        if (!lb_ctx()->armed) {
            lb_ctx()->armed = 1;
            lb_os_thread_exit_arm(lb_ctx());
        }
        return tc;
    }
    return NULL;
}

/* Fold a level's counters into the retired totals (its owner is gone). */
uint64_t lb_level_frees(const struct lb_level *l)
{
    uint64_t allocs = lb_load_rlx_u64(&l->allocs) - lb_load_rlx_u64(&l->allocs_base);
    const struct lb_mag *a = lb_level_loaded(l), *b = lb_level_spare(l);
    return allocs + lb_load_rlx_u64(&l->moved_out) - lb_load_rlx_u64(&l->moved_in) +
           lb_load_rlx_u32(&a->count) + lb_load_rlx_u32(&b->count) + lb_load_rlx_u64(&l->remote_frees) +
           lb_load_rlx_u64(&l->hi_frees) + lb_load_rlx_u32(&l->q_count);
}

/* Fold a level's counters into the retired totals (its owner is gone; its
 * magazines are empty, their pages counted in moved_out). */
static void lb_level_retire(struct lb_cache *c, struct lb_level *l)
{
    lb_add_rlx_u64(&c->retired_frees, lb_level_frees(l));
    uint64_t others = 0;
    for (unsigned i = 0; i < LB_MODE_SLOTS; i++) {
        uint64_t n = lb_load_rlx_u64(&l->mode_allocs[i]);
        lb_add_rlx_u64(&c->retired_allocs[i], n);
        lb_store_rlx_u64(&l->mode_allocs[i], 0);
        others += n;
    }
    uint64_t allocs = lb_load_rlx_u64(&l->allocs);
    lb_add_rlx_u64(&c->retired_allocs[LB_MODE_SLOTS - 1],
                   allocs - lb_load_rlx_u64(&l->allocs_base) + lb_load_rlx_u64(&l->hi_allocs) - others);
    lb_store_rlx_u64(&l->hi_allocs, 0);
    lb_store_rlx_u64(&l->hi_frees, 0);
    /* allocs itself runs on: it is the generation of this level's pages,
     * and a queued free from before the release must never match a page
     * the next owner hands out. */
    lb_store_rlx_u64(&l->allocs_base, allocs);
    lb_store_rlx_u64(&l->moved_in, 0);
    lb_store_rlx_u64(&l->moved_out, 0);
    lb_store_rlx_u64(&l->remote_frees, 0);
}

/* Give every page of a chain of magazines to the buddy (lock held) and
 * put the magazines back on the depot's empty stack. */
static uint64_t lb_chain_to_buddy(struct lb_cache *c, struct lb_mag *m)
{
    uint64_t n = 0;
    while (m) {
        struct lb_mag *next = lb_cache_mag_next(c, m);
        n += lb_load_rlx_u32(&m->count);
        lb_cache_mag_to_buddy(c, m);
        lb_depot_push(c, &c->empty, m);
        m = next;
    }
    return n;
}

void lb_cache_release(struct lb_cache *c, struct lb_tcache *tc)
{
    for (unsigned d = 0; d < LB_LEVELS; d++)
        lb_level_flush_outboxes(c, &tc->lvl[d]);
    /* Some of those batches may have gone to caches no thread holds: give
     * their pages back now rather than at the warden's next tick. */
    lb_cache_reap(c);
    struct lb_mag *chains[LB_LEVELS];
    uint64_t dummy;
    for (unsigned d = 0; d < LB_LEVELS; d++)
        chains[d] = lb_level_take_inbox(c, &tc->lvl[d], &dummy);
    lb_spin_lock(&c->buddy->lock);
    for (unsigned d = 0; d < LB_LEVELS; d++) {
        lb_chain_to_buddy(c, chains[d]);
        struct lb_level *l = &tc->lvl[d];
        for (uint32_t q = lb_load_rlx_u32(&l->q_count); q; q--) {
            void *p = l->quarantine[l->q_head];
            l->q_head = (l->q_head + 1) % c->quarantine;
            struct lb_region *r = lb_regmap_lookup(c->map, (uintptr_t)p);
            lb_buddy_give(c->buddy, r, (uint32_t)(((uintptr_t)p - r->base) >> c->page_shift), 0);
            lb_bump_1w_u64(&l->moved_out, 1);
        }
        lb_store_rlx_u32(&l->q_count, 0);
        for (unsigned k = 1; k <= LB_OC_ORDERS; k++) {
            void *b = lb_load_rlx_ptr(&l->oc[k - 1]);
            if (!b)
                continue;
            lb_store_rlx_ptr(&l->oc[k - 1], NULL);
            struct lb_region *r = lb_regmap_lookup(c->map, (uintptr_t)b);
            lb_buddy_give(c->buddy, r, (uint32_t)(((uintptr_t)b - r->base) >> c->page_shift), k);
        }
        uint64_t n = lb_load_rlx_u32(&lb_level_loaded(l)->count) + lb_load_rlx_u32(&lb_level_spare(l)->count);
        lb_cache_mag_to_buddy(c, lb_level_loaded(l));
        lb_cache_mag_to_buddy(c, lb_level_spare(l));
        lb_bump_1w_u64(&l->moved_out, n);
        lb_level_retire(c, l);
    }
    lb_spin_unlock(&c->buddy->lock);
    lb_add_rlx_u32(&c->threads, (uint32_t)-1);
    /* Release: the emptied magazines and zeroed counters are visible to
     * the next owner (pairs with the acquire CAS in lb_cache_claim). */
    lb_store_rel_u32(&tc->owner, 0);
}

void lb_cache_release_self(struct lb_cache *c)
{
    if (c->tls_slot >= LB_TLS_ZONES)
        return;
    struct lb_tls_zone *e = &lb_ctx()->z[c->tls_slot];
    if (e->serial != c->serial)
        return;
    struct lb_tcache *tc = e->tc;
    e->serial = 0;
    if (lb_ctx()->cur_serial == c->serial)
        lb_ctx()->cur_serial = 0;
    lb_signal_fence();
    e->tc = NULL;
    lb_cache_release(c, tc);
}

/* ---- set-up ---------------------------------------------------------------------- */

static inline struct lb_mag *lb_mag_at(const struct lb_cache *c, uint32_t i)
{
    /* Magazines are cache-line aligned (lb_mag_stride); through void *. */
    return (struct lb_mag *)(void *)(c->mags + (size_t)i * c->mag_stride);
}
static inline uint32_t lb_mag_index(const struct lb_cache *c, const struct lb_mag *m)
{
    return (uint32_t)(((const char *)m - c->mags) / c->mag_stride);
}

static size_t lb_mag_stride(unsigned mag_size)
{
    return lb_align_up(sizeof(struct lb_mag) + mag_size * sizeof(void *), LB_CACHELINE);
}

size_t lb_cache_meta_bytes(unsigned mag_size, uint32_t nmags, uint32_t ntcaches, uint32_t quarantine)
{
    /* Slack to align the thread caches (levels are 512-byte aligned). */
    return _Alignof(struct lb_tcache) + lb_align_up(sizeof(struct lb_tcache) * ntcaches, LB_CACHELINE) +
           lb_mag_stride(mag_size) * nmags + (size_t)ntcaches * LB_LEVELS * quarantine * sizeof(void *);
}

void *lb_level_quarantine(struct lb_level *l, uint32_t cap, void *p)
{
    uint32_t n = lb_load_rlx_u32(&l->q_count);
    if (n < cap) {
        l->quarantine[(l->q_head + n) % cap] = p;
        lb_store_rlx_u32(&l->q_count, n + 1);
        return NULL;
    }
    void *out = l->quarantine[l->q_head];
    l->quarantine[l->q_head] = p;
    l->q_head = (l->q_head + 1) % cap;
    return out;
}

void lb_cache_init(struct lb_cache *c, void *meta, unsigned mag_size, uint32_t nmags,
                   uint32_t ntcaches, uint32_t quarantine, unsigned page_shift, struct lb_regmap *map,
                   struct lb_buddy *buddy, uint64_t serial)
{
    LB_CHECK(mag_size >= 1 && mag_size <= LB_MAG_MAX && nmags >= ntcaches * 2 * LB_LEVELS);
    c->mag_size = mag_size;
    c->mag_stride = lb_mag_stride(mag_size);
    meta = (void *)lb_align_up_ptr((uintptr_t)meta, _Alignof(struct lb_tcache));
    c->tcaches = meta;
    c->ntcaches = ntcaches;
    c->mags = (char *)meta + lb_align_up(sizeof(struct lb_tcache) * ntcaches, LB_CACHELINE);
    c->nmags = nmags;
    c->quarantine = quarantine;
    void **qbase = (void **)(void *)(c->mags + lb_mag_stride(mag_size) * nmags);
    c->page_shift = page_shift;
    c->map = map;
    c->buddy = buddy;
    c->serial = serial;
    c->tls_slot = LB_TLS_ZONES;
    uint32_t next = 0;
    for (uint32_t t = 0; t < ntcaches; t++) {
        c->tcaches[t].index = t;
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            struct lb_level *l = &c->tcaches[t].lvl[d];
            l->id = t * LB_LEVELS + d + 1;
            l->quarantine = quarantine ? qbase + ((size_t)t * LB_LEVELS + d) * quarantine : NULL;
            l->pattern = lb_d_make(LB_S_ALLOC, 0, 0) | (uint64_t)l->id << 16;
            lb_store_rlx_ptr(&c->tcaches[t].lvl[d].loaded, lb_mag_at(c, next++));
            lb_store_rlx_ptr(&c->tcaches[t].lvl[d].spare, lb_mag_at(c, next++));
        }
    }
    /* Not yet shared: the zone's publication orders these stores. */
    for (uint32_t i = next; i < nmags; i++)
        lb_depot_push(c, &c->empty, lb_mag_at(c, i));
    lb_store_rlx_u64(&c->reserve_low_water, UINT64_MAX);
}

/* ---- stacks ------------------------------------------------------------------------ */

void lb_cache_note_retries(struct lb_cache *c, unsigned retries)
{
    if (retries > lb_load_rlx_u64(&c->max_retries))
        lb_store_rlx_u64(&c->max_retries, retries); /* a statistic: racy max is fine */
}

static inline uint64_t lb_head_next(uint64_t old, uint32_t index_plus_1)
{
    return ((old >> 32) + 1) << 32 | index_plus_1;
}

struct lb_mag *lb_depot_pop(struct lb_cache *c, struct lb_stack *s)
{
    /* Acquire: pairs with the release CAS in lb_depot_push, making the
     * magazine's slots, count and next link visible. */
    uint64_t old = lb_load_acq_u64(&s->head);
    for (unsigned tries = 0; tries < LB_RETRY_CAP; tries++) {
        uint32_t top = (uint32_t)old;
        if (!top) {
            lb_cache_note_retries(c, tries);
            return NULL;
        }
        struct lb_mag *m = lb_mag_at(c, top - 1);
        /* May be stale if m was popped and pushed again meanwhile: then the
         * tag has moved and the CAS below fails. */
        uint32_t next = lb_load_rlx_u32(&m->next);
        /* Acquire on success and failure: see above. */
        if (lb_cas_acq_u64(&s->head, &old, lb_head_next(old, next))) {
            lb_sub_rlx_u64(&s->count, 1);
            lb_cache_note_retries(c, tries);
            return m;
        }
    }
    lb_add_rlx_u64(&c->retry_cap_hits, 1);
    return NULL;
}

void lb_depot_push(struct lb_cache *c, struct lb_stack *s, struct lb_mag *m)
{
    uint32_t me = lb_mag_index(c, m) + 1;
    uint64_t old = lb_load_rlx_u64(&s->head);
    unsigned tries = 0;
    /* Lock-free, not capped: a push must not lose its magazine, and each
     * failed CAS means another operation on this stack succeeded. */
    for (;; tries++) {
        lb_store_rlx_u32(&m->next, (uint32_t)old);
        /* Release: publishes the magazine (slots, count, next) to the
         * popper's acquire. */
        if (lb_cas_rel_u64(&s->head, &old, lb_head_next(old, me)))
            break;
    }
    lb_add_rlx_u64(&s->count, 1);
    lb_cache_note_retries(c, tries);
}

struct lb_region *lb_cache_id_region(const struct lb_cache *c, uint32_t id)
{
    return lb_regmap_get(c->map, id >> 24);
}

static inline lb_atomic_u64 *lb_id_desc(const struct lb_cache *c, uint32_t id)
{
    return &lb_cache_id_region(c, id)->desc[id & 0xffffffu];
}

void lb_pstack_push_chain(struct lb_cache *c, struct lb_stack *s, uint32_t first_id,
                          uint32_t last_id, unsigned last_state, unsigned last_order,
                          uint64_t n)
{
    lb_atomic_u64 *last = lb_id_desc(c, last_id);
    uint64_t old = lb_load_rlx_u64(&s->head);
    unsigned tries = 0;
    for (;; tries++) {
        /* Only the chain's owner writes these descriptors until the CAS. */
        lb_store_rlx_u64(last, lb_d_make_linked(last_state, last_order, 0, (uint32_t)old));
        /* Release: the chain's descriptors (states and links) are visible
         * to whoever pops them (pairs with lb_pstack_pop's acquire). */
        if (lb_cas_rel_u64(&s->head, &old, lb_head_next(old, first_id + 1)))
            break;
    }
    lb_add_rlx_u64(&s->count, n);
    lb_cache_note_retries(c, tries);
}

uint32_t lb_pstack_pop(struct lb_cache *c, struct lb_stack *s)
{
    /* Acquire: pairs with the release CAS of lb_pstack_push_chain. */
    uint64_t old = lb_load_acq_u64(&s->head);
    for (unsigned tries = 0; tries < LB_RETRY_CAP; tries++) {
        uint32_t top = (uint32_t)old;
        if (!top) {
            lb_cache_note_retries(c, tries);
            return 0;
        }
        /* The link may be stale (the block popped and reused meanwhile):
         * the tag then fails the CAS. */
        uint32_t next = lb_d_link(lb_load_rlx_u64(lb_id_desc(c, top - 1)));
        if (lb_cas_acq_u64(&s->head, &old, lb_head_next(old, next))) {
            lb_sub_rlx_u64(&s->count, 1);
            lb_cache_note_retries(c, tries);
            return top;
        }
    }
    lb_add_rlx_u64(&c->retry_cap_hits, 1);
    return 0;
}

uint32_t lb_pstack_take_all(struct lb_cache *c, struct lb_stack *s)
{
    (void)c;
    /* Acquire: the chain's links are visible (pairs with the pushes'
     * release); the CAS below re-reads with acquire too. */
    uint64_t old = lb_load_acq_u64(&s->head);
    while ((uint32_t)old) {
        /* Acquire: the whole chain's links are visible (pairs with the
         * pushes' release). */
        if (lb_cas_acq_u64(&s->head, &old, lb_head_next(old, 0))) {
            lb_store_rlx_u64(&s->count, 0);
            return (uint32_t)old;
        }
    }
    return 0;
}

/* ---- buddy hand-offs ----------------------------------------------------------------- */

uint32_t lb_cache_fill_from_buddy(struct lb_cache *c, struct lb_mag *m, uint32_t want)
{
    uint32_t n = lb_load_rlx_u32(&m->count);
    while (n < want) {
        struct lb_region *r;
        uint32_t idx = lb_buddy_take(c->buddy, 0, LB_S_CACHED, 0, &r);
        if (idx == LB_NIL)
            break;
        m->slot[n++] = (void *)lb_region_addr(r, idx);
    }
    lb_store_rlx_u32(&m->count, n);
    return n;
}

void lb_cache_mag_to_buddy(struct lb_cache *c, struct lb_mag *m)
{
    uint32_t n = lb_load_rlx_u32(&m->count);
    for (uint32_t i = 0; i < n; i++) {
        struct lb_region *r = lb_regmap_lookup(c->map, (uintptr_t)m->slot[i]);
        lb_buddy_give(c->buddy, r, (uint32_t)(((uintptr_t)m->slot[i] - r->base) >> c->page_shift), 0);
    }
    lb_store_rlx_u32(&m->count, 0);
}

uint64_t lb_cache_drain_pending(struct lb_cache *c, uint64_t max)
{
    uint64_t pages = 0;
    for (uint64_t i = 0; i < max; i++) {
        uint32_t top = lb_pstack_pop(c, &c->pending);
        if (!top)
            break;
        struct lb_region *r = lb_cache_id_region(c, top - 1);
        uint32_t idx = (top - 1) & 0xffffffu;
        unsigned order = lb_d_order(lb_load_rlx_u64(&r->desc[idx]));
        lb_sub_rlx_u64(&c->pending_pages, 1u << order);
        lb_buddy_give(c->buddy, r, idx, order);
        pages += 1u << order;
    }
    return pages;
}

void lb_cache_pend(struct lb_cache *c, struct lb_region *r, uint32_t idx, unsigned order)
{
    uint32_t id = lb_page_id(r, idx);
    lb_add_rlx_u64(&c->pending_pages, 1u << order);
    lb_pstack_push_chain(c, &c->pending, id, id, LB_S_PENDING, order, 1);
}

static void lb_reserve_note_level(struct lb_cache *c)
{
    uint64_t lvl = lb_load_rlx_u64(&c->reserve.count);
    if (lvl < lb_load_rlx_u64(&c->reserve_low_water))
        lb_store_rlx_u64(&c->reserve_low_water, lvl); /* statistic: racy min is fine */
}

void lb_cache_reserve_put(struct lb_cache *c, struct lb_region *r, uint32_t idx)
{
    uint32_t id = lb_page_id(r, idx);
    lb_pstack_push_chain(c, &c->reserve, id, id, LB_S_RESERVED, 0, 1);
}

void *lb_cache_reserve_get(struct lb_cache *c, unsigned flags)
{
    uint32_t top = lb_pstack_pop(c, &c->reserve);
    if (!top)
        return NULL;
    lb_reserve_note_level(c);
    struct lb_region *r = lb_cache_id_region(c, top - 1);
    uint32_t idx = (top - 1) & 0xffffffu;
    /* We own the page now: nobody else writes its descriptor. */
    lb_store_rlx_u64(&r->desc[idx], lb_d_make(LB_S_ALLOC, 0, flags));
    return (void *)lb_region_addr(r, idx);
}

void lb_cache_mag_to_stack(struct lb_cache *c, struct lb_mag *m, struct lb_stack *s, unsigned state)
{
    uint32_t n = lb_load_rlx_u32(&m->count);
    if (!n)
        return;
    uint32_t first = 0, prev = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct lb_region *r = lb_regmap_lookup(c->map, (uintptr_t)m->slot[i]);
        uint32_t id = lb_page_id(r, (uint32_t)(((uintptr_t)m->slot[i] - r->base) >> c->page_shift));
        /* The holder of m owns these pages: no one else writes them. */
        if (i == 0)
            first = id;
        else
            lb_store_rlx_u64(lb_id_desc(c, prev), lb_d_make_linked(state, 0, 0, id + 1));
        prev = id;
    }
    if (state == LB_S_PENDING)
        lb_add_rlx_u64(&c->pending_pages, n);
    lb_pstack_push_chain(c, s, first, prev, state, 0, n);
    lb_store_rlx_u32(&m->count, 0);
}

uint64_t lb_cache_reserve_fill(struct lb_cache *c, uint64_t n)
{
    uint64_t moved = 0;
    /* Build a chain under the buddy lock, publish it with one CAS. */
    uint32_t first = 0, prev = 0;
    while (moved < n) {
        struct lb_region *r;
        uint32_t idx = lb_buddy_take(c->buddy, 0, LB_S_RESERVED, 0, &r);
        if (idx == LB_NIL)
            break;
        uint32_t id = lb_page_id(r, idx);
        if (moved == 0)
            first = id;
        else
            lb_store_rlx_u64(lb_id_desc(c, prev), lb_d_make_linked(LB_S_RESERVED, 0, 0, id + 1));
        prev = id;
        moved++;
    }
    if (moved)
        lb_pstack_push_chain(c, &c->reserve, first, prev, LB_S_RESERVED, 0, moved);
    return moved;
}

uint64_t lb_cache_reserve_trim(struct lb_cache *c, uint64_t n)
{
    uint64_t moved = 0;
    while (moved < n) {
        uint32_t top = lb_pstack_pop(c, &c->reserve);
        if (!top)
            break;
        struct lb_region *r = lb_cache_id_region(c, top - 1);
        lb_buddy_give(c->buddy, r, (top - 1) & 0xffffffu, 0);
        moved++;
    }
    return moved;
}

/* ---- ownership: remote frees and inboxes ---------------------------------------- */

struct lb_level *lb_cache_level_by_id(const struct lb_cache *c, uint32_t id)
{
    if (id == 0 || id > c->ntcaches * LB_LEVELS)
        return NULL;
    return &c->tcaches[(id - 1) / LB_LEVELS].lvl[(id - 1) % LB_LEVELS];
}

struct lb_mag *lb_cache_mag_next(const struct lb_cache *c, const struct lb_mag *m)
{
    uint32_t next = lb_load_rlx_u32(&m->next);
    return next ? lb_mag_at(c, next - 1) : NULL;
}

void lb_level_flush_one(struct lb_cache *c, struct lb_level *l, unsigned k)
{
    struct lb_mag *m = lb_load_rlx_ptr(&l->out_mag[k]);
    struct lb_level *dst = lb_cache_level_by_id(c, l->out_dest[k]);
    uint32_t n = lb_load_rlx_u32(&m->count);
    /* These pages leave our outbox: forget them (a later free of one of
     * them, once its owner has handed it out again, is legitimate). */
    for (uint32_t i = 0; i < n; i++) {
        uint32_t pid = (uint32_t)((uintptr_t)m->slot[i] >> 32);
        lb_atomic_u32 *r = &l->recent[lb_recent_slot(pid)];
        if (lb_load_rlx_u32(r) == pid + 1)
            lb_store_rlx_u32(r, 0);
    }
    lb_store_rlx_ptr(&l->out_mag[k], NULL);
    lb_add_rlx_u64(&dst->inbox_pages, n); /* a statistic: before the push, so it never underflows */
    lb_depot_push(c, &dst->inbox, m);     /* release: the entries reach the owner's acquire */
}

void lb_level_flush_outboxes(struct lb_cache *c, struct lb_level *l)
{
    for (unsigned k = 0; k < LB_OUTBOX_SLOTS; k++)
        if (lb_load_rlx_ptr(&l->out_mag[k]))
            lb_level_flush_one(c, l, k);
}

void lb_level_flush_once(struct lb_cache *c, struct lb_level *l, uint32_t epoch)
{
    uint32_t *last = &c->tcaches[(l->id - 1) / LB_LEVELS].flushed_epoch[(l->id - 1) % LB_LEVELS];
    if (*last != epoch) {
        *last = epoch;
        lb_level_flush_outboxes(c, l);
    }
}

LB_NOINLINE bool lb_level_out_holds(const struct lb_mag *m, uint32_t pid, uint32_t gen)
{
    const void *e = (const void *)lb_entry(pid, gen);
    /* Relaxed: m is our own outbox, we are its only writer (it is
     * published to the owner only by the release push of a flush). */
    uint32_t n = lb_load_rlx_u32(&m->count);
    for (uint32_t i = 0; i < n; i++)
        if (m->slot[i] == e)
            return true;
    return false;
}

int lb_level_remote_free(struct lb_cache *c, struct lb_level *l, void *p, uint32_t pid, uint64_t w)
{
    (void)p;
    uint32_t dest = lb_d_owner(w);
    unsigned k, empty = LB_OUTBOX_SLOTS, fullest = 0;
    uint32_t most = 0;
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
        struct lb_mag *m = lb_depot_pop(c, &c->empty);
        if (!m)
            return -ENOSPC;
        k = empty;
        l->out_dest[k] = (uint16_t)dest;
        lb_store_rlx_ptr(&l->out_mag[k], m);
    }
    l->out_last = k;
    /* Still in our outbox for this owner, this generation: freed twice. */
    return lb_level_out_append(c, l, k, lb_load_rlx_ptr(&l->out_mag[k]), pid, lb_d_gen(w)) ? 0 : -EALREADY;
}

/* Take a whole magazine stack at once (the consumer's side of an inbox). */
static struct lb_mag *lb_depot_take_all(struct lb_cache *c, struct lb_stack *s)
{
    uint64_t old = lb_load_rlx_u64(&s->head);
    while ((uint32_t)old) {
        /* Acquire: the pushers' entries are visible (pairs with the
         * release CAS in lb_depot_push). */
        if (lb_cas_acq_u64(&s->head, &old, lb_head_next(old, 0))) {
            lb_store_rlx_u64(&s->count, 0);
            return lb_mag_at(c, (uint32_t)old - 1);
        }
    }
    return NULL;
}

/* Validate the entries of inbox magazine m of level l in place. */
static uint64_t lb_level_validate(struct lb_cache *c, struct lb_level *l, struct lb_mag *m)
{
    uint32_t n = lb_load_rlx_u32(&m->count), kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        uintptr_t e = (uintptr_t)m->slot[i];
        uint32_t pid = (uint32_t)(e >> 32), gen = (uint32_t)e;
        struct lb_region *r = lb_cache_id_region(c, pid);
        uint32_t idx = pid & 0xffffffu;
        void *page = (void *)lb_region_addr(r, idx);
        uint64_t w = lb_load_rlx_u64(&r->desc[idx]);
        /* We are the only writer of our pages' descriptors: a plain
         * check and store suffice. */
        if ((w & LB_D_OWNED_MASK) == l->pattern && lb_d_gen(w) == gen) {
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
    struct lb_mag *first = lb_depot_take_all(c, &l->inbox);
    for (struct lb_mag *m = first; m; m = lb_cache_mag_next(c, m))
        *pages += lb_level_validate(c, l, m);
    return first;
}

struct lb_mag *lb_level_take_inbox_bounded(struct lb_cache *c, struct lb_level *l, unsigned max,
                                           uint64_t *pages)
{
    struct lb_mag *first = NULL, *last = NULL;
    *pages = 0;
    for (unsigned i = 0; i < max; i++) {
        if (!(uint32_t)lb_load_rlx_u64(&l->inbox.head))
            break;
        /* Pop, not take-all: a bounded amount of validation per call.  The
         * tagged head keeps the pop ABA-safe against concurrent pushes. */
        struct lb_mag *m = lb_depot_pop(c, &l->inbox);
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

struct lb_mag *lb_cache_adopt(struct lb_cache *c, uint64_t *pages)
{
    *pages = 0;
    for (uint32_t t = 0; t < c->ntcaches; t++) {
        struct lb_tcache *tc = &c->tcaches[t];
        uint32_t zero = 0;
        bool any = false;
        for (unsigned d = 0; d < LB_LEVELS; d++)
            any |= (uint32_t)lb_load_rlx_u64(&tc->lvl[d].inbox.head) != 0;
        /* Acquire/release as a claim: while we hold the cache, we are its
         * levels' owner and may validate their queued frees. */
        if (!any || lb_load_rlx_u32(&tc->owner) || !lb_cas_acq_u32(&tc->owner, &zero, LB_OWNER_WARDEN))
            continue;
        struct lb_mag *chain = NULL;
        for (unsigned d = 0; d < LB_LEVELS && !chain; d++)
            chain = lb_level_take_inbox_bounded(c, &tc->lvl[d], 2, pages);
        lb_store_rel_u32(&tc->owner, 0);
        if (chain)
            return chain;
    }
    return NULL;
}

uint64_t lb_cache_reap(struct lb_cache *c)
{
    uint64_t pages = 0;
    for (uint32_t t = 0; t < c->ntcaches; t++) {
        struct lb_tcache *tc = &c->tcaches[t];
        bool any = false;
        for (unsigned d = 0; d < LB_LEVELS; d++)
            any |= (uint32_t)lb_load_rlx_u64(&tc->lvl[d].inbox.head) != 0;
        uint32_t zero = 0;
        /* Acquire/release as a claim (lb_cache_claim, lb_cache_release):
         * while we hold the cache, we are its levels' owner. */
        if (!any || lb_load_rlx_u32(&tc->owner) || !lb_cas_acq_u32(&tc->owner, &zero, LB_OWNER_WARDEN))
            continue;
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            uint64_t n;
            struct lb_mag *chain = lb_level_take_inbox(c, &tc->lvl[d], &n);
            if (!chain)
                continue;
            lb_spin_lock(&c->buddy->lock);
            lb_chain_to_buddy(c, chain);
            lb_spin_unlock(&c->buddy->lock);
            pages += n;
        }
        /* Release: the reaped inboxes are visible to the next claimant
         * (pairs with the acquire CAS of lb_cache_claim / lb_cache_adopt). */
        lb_store_rel_u32(&tc->owner, 0);
    }
    return pages;
}

/* ---- counters and checks ----------------------------------------------------------------- */

void lb_cache_counts(const struct lb_cache *c, struct lb_cache_counts *out)
{
    for (unsigned i = 0; i < LB_MODE_SLOTS; i++)
        out->allocs[i] = lb_load_rlx_u64(&c->shared_allocs[i]) + lb_load_rlx_u64(&c->retired_allocs[i]);
    out->frees = lb_load_rlx_u64(&c->shared_frees) + lb_load_rlx_u64(&c->retired_frees) -
                 lb_load_rlx_u64(&c->late_refused);
    out->in_flight_pages = 0;
    out->quarantined_pages = 0;
    out->cached_pages = 0;
    for (uint32_t t = 0; t < c->ntcaches; t++) {
        const struct lb_tcache *tc = &c->tcaches[t];
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            const struct lb_level *l = &tc->lvl[d];
            uint64_t others = 0;
            for (unsigned i = 0; i < LB_MODE_SLOTS; i++) {
                uint64_t n = lb_load_rlx_u64(&l->mode_allocs[i]);
                out->allocs[i] += n;
                others += n;
            }
            out->allocs[LB_MODE_SLOTS - 1] += lb_load_rlx_u64(&l->allocs) - lb_load_rlx_u64(&l->allocs_base) +
                                              lb_load_rlx_u64(&l->hi_allocs) - others;
            out->frees += lb_level_frees(l);
            /* The owner may swap loaded and spare meanwhile: a snapshot. */
            struct lb_mag *a = lb_level_loaded(l);
            struct lb_mag *b = lb_level_spare(l);
            out->cached_pages += lb_load_rlx_u32(&a->count) + lb_load_rlx_u32(&b->count);
            for (unsigned k = 1; k <= LB_OC_ORDERS; k++)
                out->cached_pages += lb_load_rlx_ptr(&l->oc[k - 1]) ? (uint64_t)1 << k : 0;
            out->quarantined_pages += lb_load_rlx_u32(&l->q_count);
            out->cached_pages += lb_load_rlx_u32(&l->q_count);
            out->in_flight_pages += lb_load_rlx_u64(&l->inbox_pages);
            for (unsigned k = 0; k < LB_OUTBOX_SLOTS; k++) {
                struct lb_mag *m = lb_load_rlx_ptr(&l->out_mag[k]);
                if (m)
                    out->in_flight_pages += lb_load_rlx_u32(&m->count);
            }
        }
    }
    out->depot_pages = lb_load_rlx_u64(&c->full.count) * c->mag_size;
    out->cached_pages += out->depot_pages;
    out->threads = lb_load_rlx_u32(&c->threads);
}

static long lb_check_page(const struct lb_cache *c, uint8_t *const *mark, uint32_t id,
                          unsigned want_state)
{
    long bad = 0;
    struct lb_region *r = lb_cache_id_region(c, id);
    uint32_t idx = id & 0xffffffu;
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
        bad += lb_check_page(c, mark, lb_page_id(r, (uint32_t)(((uintptr_t)m->slot[i] - r->base) >> c->page_shift)),
                             LB_S_CACHED);
    }
    *cached += n;
    return bad;
}

static long lb_check_pstack(const struct lb_cache *c, uint8_t *const *mark, const struct lb_stack *s,
                            unsigned state, uint64_t *pages, uint64_t limit)
{
    long bad = 0;
    uint64_t n = 0;
    /* Acquire: pairs with the pushes' release (a quiescent walk). */
    for (uint32_t top = (uint32_t)lb_load_acq_u64(&s->head); top; n++) {
        if (n > limit)
            return bad + 1; /* a cycle */
        struct lb_region *r = lb_cache_id_region(c, top - 1);
        if (!r || ((top - 1) & 0xffffffu) >= r->span)
            return bad + 1;
        uint64_t w = lb_load_rlx_u64(&r->desc[(top - 1) & 0xffffffu]);
        bad += lb_check_page(c, mark, top - 1, state);
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
        uint32_t pid = (uint32_t)(e >> 32);
        struct lb_region *r = lb_cache_id_region(c, pid);
        if (!r || (pid & 0xffffffu) >= r->span) {
            bad++;
            continue;
        }
        uint64_t w = lb_load_rlx_u64(&r->desc[pid & 0xffffffu]);
        /* A queued double free (same page twice, or freed by its owner
         * meanwhile) is legal until the owner drains: only count those
         * that still match. */
        if (lb_d_state(w) == LB_S_ALLOC && lb_d_owner(w) == owner && lb_d_gen(w) == (uint32_t)e) {
            if (mark[r->index][pid & 0xffffffu]++) {
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

void lb_cache_mark_in_flight(const struct lb_cache *c, uint8_t *const *mark)
{
    uint64_t n = 0, invalid = 0;
    for (uint32_t t = 0; t < c->ntcaches; t++)
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            const struct lb_level *l = &c->tcaches[t].lvl[d];
            for (unsigned k = 0; k < LB_OUTBOX_SLOTS; k++) {
                const struct lb_mag *m = lb_load_rlx_ptr(&l->out_mag[k]);
                if (m)
                    lb_check_entries(c, mark, m, l->out_dest[k], &n, &invalid);
            }
            /* Acquire: pairs with the remote pushes' release. */
            uint32_t top = (uint32_t)lb_load_acq_u64(&l->inbox.head);
            for (uint64_t guard = 0; top && guard <= c->nmags; guard++) {
                const struct lb_mag *m = lb_mag_at(c, top - 1);
                lb_check_entries(c, mark, m, l->id, &n, &invalid);
                top = lb_load_rlx_u32(&m->next);
            }
        }
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
                bad += lb_check_page(c, mark, lb_page_id(r, (uint32_t)(((uintptr_t)p - r->base) >> c->page_shift)),
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
                uint32_t idx = (uint32_t)(((uintptr_t)b - r->base) >> c->page_shift);
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
    bad += lb_check_pstack(c, mark, &c->reserve, LB_S_RESERVED, reserved, UINT32_MAX);
    bad += lb_check_pstack(c, mark, &c->pending, LB_S_PENDING, pending, UINT32_MAX);
    if (*pending != lb_load_rlx_u64(&c->pending_pages))
        bad++;
    return bad;
}
