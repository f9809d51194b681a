/*
 * buddy.c - layer 3: the buddy allocator of a zone's regions.
 */
#include "buddy.h"

void lb_spin_lock(struct lb_spinlock *l)
{
    for (unsigned spins = 0;; spins++) {
        if (lb_spin_trylock(l))
            return;
        if (spins < 64)
            lb_cpu_relax();
        else
            lb_os_yield(); /* the holder may be preempted: let it run */
    }
}

void lb_buddy_init(struct lb_buddy *b, unsigned max_order)
{
    LB_CHECK(max_order <= LB_ORDER_LIMIT);
    b->max_order = max_order;
    b->nregions = 0;
    for (unsigned r = 0; r < LB_MAX_REGIONS; r++)
        for (unsigned o = 0; o <= LB_ORDER_LIMIT; o++)
            b->area[r][o] = (struct lb_free_area){LB_NIL, 0};
}

/* Descriptor stores below are relaxed: the lock orders them among lock
 * holders, and lock-free readers (a free's validation, page_info) only
 * need a word that was current at some point: they act on a word only
 * through a CAS that fails if the word changed. */

static void lb_set_next(struct lb_region *r, uint32_t idx, uint32_t next)
{
    uint64_t w = lb_load_rlx_u64(&r->desc[idx]);
    w = (w & ~((uint64_t)LB_NIL << 16)) | (uint64_t)next << 16;
    lb_store_rlx_u64(&r->desc[idx], w);
}

static void lb_set_prev(struct lb_region *r, uint32_t idx, uint32_t prev)
{
    uint64_t w = lb_load_rlx_u64(&r->desc[idx]);
    w = (w & ~((uint64_t)LB_NIL << 40)) | (uint64_t)prev << 40;
    lb_store_rlx_u64(&r->desc[idx], w);
}

static void lb_list_push(struct lb_buddy *b, struct lb_region *r, uint32_t idx, unsigned order)
{
    struct lb_free_area *a = &b->area[r->index][order];
    lb_store_rlx_u64(&r->desc[idx], lb_d_make_free(order, a->head, LB_NIL));
    if (a->head != LB_NIL)
        lb_set_prev(r, a->head, idx);
    a->head = idx;
    if (a->count++ == 0)
        b->order_mask[order] |= 1ull << r->index;
    lb_store_rlx_u64(&b->free_blocks[order], lb_load_rlx_u64(&b->free_blocks[order]) + 1);
}

static void lb_list_remove(struct lb_buddy *b, struct lb_region *r, uint32_t idx, unsigned order)
{
    struct lb_free_area *a = &b->area[r->index][order];
    uint64_t w = lb_load_rlx_u64(&r->desc[idx]);
    uint32_t next = lb_d_next(w), prev = lb_d_prev(w);
    if (prev != LB_NIL)
        lb_set_next(r, prev, next);
    else
        a->head = next;
    if (next != LB_NIL)
        lb_set_prev(r, next, prev);
    if (--a->count == 0)
        b->order_mask[order] &= ~(1ull << r->index);
    lb_store_rlx_u64(&b->free_blocks[order], lb_load_rlx_u64(&b->free_blocks[order]) - 1);
}

void lb_buddy_add_region(struct lb_buddy *b, struct lb_region *r)
{
    LB_CHECK(r->index < LB_MAX_REGIONS);
    b->regions[r->index] = r;
    if (r->index >= b->nregions)
        b->nregions = r->index + 1;
    uint32_t idx = r->first;
    size_t added = 0;
    while (idx < r->end) {
        unsigned k = b->max_order;
        while (k > 0 && ((idx & ((1u << k) - 1)) || idx + (1u << k) > r->end))
            k--;
        lb_list_push(b, r, idx, k);
        added += 1u << k;
        idx += 1u << k;
    }
    lb_store_rlx_u64(&b->free_pages, lb_load_rlx_u64(&b->free_pages) + added);
}

uint32_t lb_buddy_take(struct lb_buddy *b, unsigned order, unsigned state, unsigned flags,
                       struct lb_region **rp)
{
    LB_DEBUG_CHECK(lb_spin_is_locked(&b->lock));
    for (unsigned j = order; j <= b->max_order; j++) {
        uint64_t mask = b->order_mask[j];
        if (!mask)
            continue;
        struct lb_region *r = b->regions[__builtin_ctzll(mask)];
        uint32_t idx = b->area[r->index][j].head;
        lb_list_remove(b, r, idx, j);
        while (j > order) {
            j--;
            /* The upper half becomes a free block of order j: its head
             * was a TAIL page of the bigger block. */
            lb_list_push(b, r, idx + (1u << j), j);
        }
        lb_store_rlx_u64(&r->desc[idx], lb_d_make(state, order, flags));
        lb_store_rlx_u64(&b->free_pages, lb_load_rlx_u64(&b->free_pages) - (1u << order));
        *rp = r;
        return idx;
    }
    return LB_NIL;
}

void lb_buddy_give(struct lb_buddy *b, struct lb_region *r, uint32_t idx, unsigned order)
{
    LB_DEBUG_CHECK(lb_spin_is_locked(&b->lock));
    unsigned k = order;
    lb_store_rlx_u64(&b->free_pages, lb_load_rlx_u64(&b->free_pages) + (1u << order));
    while (k < b->max_order) {
        uint32_t bud = idx ^ (1u << k);
        if (bud < r->first || bud + (1u << k) > r->end)
            break;
        uint64_t w = lb_load_rlx_u64(&r->desc[bud]);
        if (lb_d_state(w) != LB_S_FREE || lb_d_order(w) != k)
            break;
        lb_list_remove(b, r, bud, k);
        uint32_t hi = bud > idx ? bud : idx;
        lb_store_rlx_u64(&r->desc[hi], lb_d_make(LB_S_TAIL, 0, 0));
        idx = bud < idx ? bud : idx;
        k++;
    }
    lb_list_push(b, r, idx, k);
}

size_t lb_buddy_region_free(const struct lb_buddy *b, const struct lb_region *r, int *largest)
{
    size_t pages = 0;
    *largest = -1;
    LB_CHECK(r->index < LB_MAX_REGIONS);
    const struct lb_free_area *area = b->area[r->index % LB_MAX_REGIONS];
    for (unsigned o = 0; o <= b->max_order && o <= LB_ORDER_LIMIT; o++) {
        pages += (size_t)area[o].count << o;
        if (area[o].count)
            *largest = (int)o;
    }
    return pages;
}

size_t lb_buddy_remove_region(struct lb_buddy *b, struct lb_region *r)
{
    LB_DEBUG_CHECK(lb_spin_is_locked(&b->lock));
    int largest;
    LB_CHECK(r->index < LB_MAX_REGIONS);
    size_t pages = lb_buddy_region_free(b, r, &largest);
    if (pages != lb_region_pages(r))
        return 0;
    const struct lb_free_area *area = b->area[r->index % LB_MAX_REGIONS];
    for (unsigned o = 0; o <= b->max_order && o <= LB_ORDER_LIMIT; o++)
        while (area[o].head != LB_NIL) {
            uint32_t idx = area[o].head;
            lb_list_remove(b, r, idx, o);
            /* Relaxed: a late reader of this region sees a page that is
             * not usable and refuses it as foreign. */
            lb_store_rlx_u64(&r->desc[idx], lb_d_make(LB_S_HOLE, 0, 0));
        }
    for (uint32_t i = r->first; i < r->end; i++)
        lb_store_rlx_u64(&r->desc[i], lb_d_make(LB_S_HOLE, 0, 0));
    lb_store_rlx_u64(&b->free_pages, lb_load_rlx_u64(&b->free_pages) - pages);
    return pages;
}

int lb_buddy_largest_order(const struct lb_buddy *b)
{
    for (int j = (int)b->max_order; j >= 0; j--)
        if (lb_load_rlx_u64(&b->free_blocks[j]))
            return j;
    return -1;
}

long lb_buddy_check(const struct lb_buddy *b, size_t *free_pages_out)
{
    long bad = 0;
    size_t pages = 0;
    for (unsigned ri = 0; ri < b->nregions; ri++) {
        const struct lb_region *r = b->regions[ri];
        if (!r)
            continue;
        for (unsigned o = 0; o <= b->max_order; o++) {
            const struct lb_free_area *a = &b->area[ri][o];
            uint32_t n = 0, prev = LB_NIL;
            for (uint32_t idx = a->head; idx != LB_NIL; n++) {
                if (n > r->span || idx >= r->span) { /* a cycle or a wild link */
                    bad++;
                    break;
                }
                uint64_t w = lb_load_rlx_u64(&r->desc[idx]);
                if (lb_d_state(w) != LB_S_FREE || lb_d_order(w) != o)
                    bad++;
                if (lb_d_prev(w) != prev)
                    bad++;
                if ((idx & ((1u << o) - 1)) || idx < r->first || idx + (1u << o) > r->end)
                    bad++;
                uint32_t bud = idx ^ (1u << o);
                if (o < b->max_order && bud >= r->first && bud + (1u << o) <= r->end) {
                    uint64_t bw = lb_load_rlx_u64(&r->desc[bud]);
                    if (lb_d_state(bw) == LB_S_FREE && lb_d_order(bw) == o)
                        bad++; /* should have coalesced */
                }
                for (uint32_t t = idx + 1; t < idx + (1u << o) && t < r->span; t++)
                    if (lb_d_state(lb_load_rlx_u64(&r->desc[t])) != LB_S_TAIL)
                        bad++;
                pages += 1u << o;
                prev = idx;
                idx = lb_d_next(w);
            }
            if (n != a->count)
                bad++;
            if (((b->order_mask[o] >> ri) & 1) != (a->count != 0))
                bad++;
        }
    }
    if (pages != lb_load_rlx_u64(&b->free_pages))
        bad++;
    if (free_pages_out)
        *free_pages_out = pages;
    return bad;
}
