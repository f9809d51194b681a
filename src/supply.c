/*
 * supply.c - layer 4: set-up of the cache structures, and the hand-offs
 * between magazines, the buddy (lock held), the reserve and the pending
 * stack.
 */
#include "cache.h"

uint64_t lb_chain_to_buddy(struct lb_cache *c, struct lb_mag *m)
{
    LB_DEBUG_CHECK(lb_spin_is_locked(&c->buddy->lock));
    uint64_t n = 0;
    while (m) {
        struct lb_mag *next = lb_cache_mag_next(c, m);
        n += lb_load_rlx_u32(&m->count);
        lb_cache_mag_to_buddy(c, m);
        lb_magstack_push(c, &c->empty, m);
        m = next;
    }
    return n;
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
            /* 0 except in the wrap flavour (cache.h).  Relaxed: not yet
             * shared; the zone's publication orders them (below). */
            lb_store_rlx_u64(&l->allocs, LB_WRAP_GEN_START(l->id));
            lb_store_rlx_u64(&l->allocs_base, LB_WRAP_GEN_START(l->id));
            lb_store_rlx_u64(&l->inbox.head, (uint64_t)LB_WRAP_TAG_START(l->id + 5) << 32);
            lb_store_rlx_ptr(&c->tcaches[t].lvl[d].loaded, lb_mag_at(c, next++));
            lb_store_rlx_ptr(&c->tcaches[t].lvl[d].spare, lb_mag_at(c, next++));
        }
    }
    /* Not yet shared: the zone's publication orders these stores. */
    struct lb_stack *stacks[] = { &c->full, &c->empty, &c->reserve, &c->pending, &c->zstock };
    for (unsigned i = 0; i < sizeof stacks / sizeof stacks[0]; i++)
        lb_store_rlx_u64(&stacks[i]->head, (uint64_t)LB_WRAP_TAG_START(i) << 32);
    for (uint32_t i = next; i < nmags; i++)
        lb_magstack_push(c, &c->empty, lb_mag_at(c, i));
    lb_store_rlx_u64(&c->reserve_low_water, UINT64_MAX);
}

uint32_t lb_cache_fill_from_buddy(struct lb_cache *c, struct lb_mag *m, uint32_t want)
{
    LB_DEBUG_CHECK(lb_spin_is_locked(&c->buddy->lock));
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
    LB_DEBUG_CHECK(lb_spin_is_locked(&c->buddy->lock));
    uint32_t n = lb_load_rlx_u32(&m->count);
    for (uint32_t i = 0; i < n; i++) {
        struct lb_region *r = lb_regmap_lookup(c->map, (uintptr_t)m->slot[i]);
        lb_buddy_give(c->buddy, r, lb_region_index(r, m->slot[i]), 0);
    }
    lb_store_rlx_u32(&m->count, 0);
}

uint64_t lb_cache_drain_pending(struct lb_cache *c, uint64_t max)
{
    LB_DEBUG_CHECK(lb_spin_is_locked(&c->buddy->lock));
    uint64_t pages = 0;
    for (uint64_t i = 0; i < max; i++) {
        uint32_t top = lb_pstack_pop(c, &c->pending);
        if (!top)
            break;
        struct lb_region *r = lb_cache_id_region(c, top - 1);
        uint32_t idx = lb_page_id_index(top - 1);
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
    lb_pstack_push_chain(c, &c->pending, id, id, LB_S_PENDING, order, 0, 1);
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
    lb_pstack_push_chain(c, &c->reserve, id, id, LB_S_RESERVED, 0, 0, 1);
}

void *lb_cache_reserve_get(struct lb_cache *c, unsigned flags)
{
    uint32_t top = lb_pstack_pop(c, &c->reserve);
    if (!top)
        return NULL;
    lb_reserve_note_level(c);
    struct lb_region *r = lb_cache_id_region(c, top - 1);
    uint32_t idx = lb_page_id_index(top - 1);
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
        uint32_t id = lb_page_id(r, lb_region_index(r, m->slot[i]));
        /* The holder of m owns these pages: no one else writes them. */
        if (i == 0)
            first = id;
        else
            lb_store_rlx_u64(lb_id_desc(c, prev), lb_d_make_linked(state, 0, 0, id + 1));
        prev = id;
    }
    if (state == LB_S_PENDING)
        lb_add_rlx_u64(&c->pending_pages, n);
    lb_pstack_push_chain(c, s, first, prev, state, 0, 0, n);
    lb_store_rlx_u32(&m->count, 0);
}

uint64_t lb_cache_reserve_fill(struct lb_cache *c, uint64_t n)
{
    LB_DEBUG_CHECK(lb_spin_is_locked(&c->buddy->lock));
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
        lb_pstack_push_chain(c, &c->reserve, first, prev, LB_S_RESERVED, 0, 0, moved);
    return moved;
}

uint64_t lb_cache_reserve_trim(struct lb_cache *c, uint64_t n)
{
    LB_DEBUG_CHECK(lb_spin_is_locked(&c->buddy->lock));
    uint64_t moved = 0;
    while (moved < n) {
        uint32_t top = lb_pstack_pop(c, &c->reserve);
        if (!top)
            break;
        struct lb_region *r = lb_cache_id_region(c, top - 1);
        lb_buddy_give(c->buddy, r, lb_page_id_index(top - 1), 0);
        moved++;
    }
    return moved;
}

uint32_t lb_cache_zstock_take(struct lb_cache *c, uint32_t *ids, uint32_t n)
{
    LB_DEBUG_CHECK(lb_spin_is_locked(&c->buddy->lock));
    uint32_t got = 0;
    while (got < n) {
        struct lb_region *r;
        uint32_t idx = lb_buddy_take(c->buddy, 0, LB_S_RESERVED, LB_D_ZEROED, &r);
        if (idx == LB_NIL)
            break;
        ids[got++] = lb_page_id(r, idx);
    }
    return got;
}

void lb_cache_zstock_push(struct lb_cache *c, const uint32_t *ids, uint32_t n)
{
    if (!n)
        return;
    /* The caller holds these pages: no one else writes their descriptors
     * until the push's release CAS publishes the chain. */
    for (uint32_t i = 0; i + 1 < n; i++)
        lb_store_rlx_u64(lb_id_desc(c, ids[i]), lb_d_make_linked(LB_S_RESERVED, 0, LB_D_ZEROED, ids[i + 1] + 1));
    lb_pstack_push_chain(c, &c->zstock, ids[0], ids[n - 1], LB_S_RESERVED, 0, LB_D_ZEROED, n);
}

void *lb_cache_zstock_pop(struct lb_cache *c)
{
    uint32_t top = lb_pstack_pop(c, &c->zstock);
    if (!top)
        return NULL;
    return (void *)lb_region_addr(lb_cache_id_region(c, top - 1), lb_page_id_index(top - 1));
}
