/*
 * track.c - layer 6: the tracking records (who allocated a page, where,
 * when, with which tag), labyrinth_register_page, labyrinth_page_info and
 * the walk of blocks in use.  It stands apart from allocation as Linux's
 * mm/page_owner.c stands apart from page_alloc.c.
 */
#include "quality.h"

static int lb_register(const struct labyrinth_zone *h, struct lb_zone *z, void *page, uint32_t tag,
                       const void *caller)
{
    if (!z) {
        lb_report_no_zone("register_page", h, page, caller);
        return -EBADF;
    }
    if (z->flags & LABYRINTH_ZONE_NO_TRACKING)
        return -EOPNOTSUPP;
    struct lb_region *r;
    uint32_t idx;
    int rc = lb_zone_locate(z, page, &r, &idx);
    if (rc)
        return lb_refuse(z, LABYRINTH_REPORT_BAD_ARGS, "register_page", page, 0, rc, caller);
    lb_atomic_u64 *dp = &r->desc[idx];
    uint64_t w = lb_load_rlx_u64(dp);
    for (unsigned tries = 0;; tries++) {
        unsigned s = lb_d_state(w);
        if (s != LB_S_ALLOC) {
            rc = s == LB_S_HOLE ? -EFAULT : lb_refusal(z, r, idx, w, lb_d_order(w)) == -ENXIO ? -ENXIO : -ENOENT;
            return lb_refuse(z, LABYRINTH_REPORT_BAD_ARGS, "register_page", page, 0, rc, caller);
        }
        if (tries == 0)
            lb_track_write(z, r, idx, caller, NULL, tag);
        if (lb_d_flags(w) & LB_D_TRACKED)
            return 0;
        if (tries == LB_DESC_CAS_TRIES)
            return lb_refuse(z, LABYRINTH_REPORT_BAD_ARGS, "register_page", page, 0, -EBUSY, caller);
        /* Relaxed CAS: sets the flag only while the block stays allocated
         * (a racing free wins or loses as a whole). */
        if (lb_cas_rlx_u64(dp, &w, w | (uint64_t)LB_D_TRACKED << 8))
            return 0;
    }
}

int labyrinth_register_page(struct labyrinth_zone *h, void *page)
{
    struct lb_zone *z = lb_zone_get(h);
    return lb_register(h, z, page, 0, __builtin_return_address(0));
}
LB_EXPORT(labyrinth_register_page);

int labyrinth_register_page_tag(struct labyrinth_zone *h, void *page, uint32_t tag)
{
    struct lb_zone *z = lb_zone_get(h);
    return lb_register(h, z, page, tag, __builtin_return_address(0));
}
LB_EXPORT(labyrinth_register_page_tag);

int labyrinth_page_info(struct labyrinth_zone *h, const void *addr, struct labyrinth_page_info *out)
{
    struct lb_zone *z = lb_zone_get(h);
    if (!z)
        return lb_refuse_handle("page_info", h);
    if (!out)
        return -EINVAL;
    uintptr_t a = (uintptr_t)addr;
    struct lb_region *r;
    int rc = lb_zone_region_of(z, a, &r);
    if (rc)
        return rc;
    lb_page_info_fill(z, r, lb_region_index(r, (const void *)a), out);
    return 0;
}
LB_EXPORT(labyrinth_page_info);

long lb_zone_for_each_in_use(struct lb_zone *z, int (*fn)(const struct labyrinth_page_info *info, void *arg), void *arg)
{
    unsigned n = lb_regmap_count(&z->map);
    /* Pages freed by one thread and still queued back to the thread that
     * allocated them are not in use: mark them first. */
    uint8_t *mark[LB_MAX_REGIONS] = {0};
    long visited = 0;
    if (lb_zone_marks_map(z, n, mark))
        return -ENOMEM;
    lb_cache_mark_in_flight(&z->cache, mark);
    for (unsigned i = 0; i < n; i++) {
        struct lb_region *r = lb_regmap_get(&z->map, i);
        if (r->released)
            continue;
        for (uint32_t idx = r->first; idx < r->end;) {
            uint64_t w = lb_load_rlx_u64(&r->desc[idx]);
            unsigned s = lb_d_state(w);
            if (s == LB_S_ALLOC && !mark[i][idx]) {
                struct labyrinth_page_info info;
                lb_page_info_fill(z, r, idx, &info);
                visited++;
                if (fn && fn(&info, arg))
                    goto out;
            }
            idx += (s == LB_S_TAIL || s == LB_S_HOLE) ? 1u : 1u << lb_d_order(w);
        }
    }
out:
    lb_zone_marks_unmap(n, mark);
    return visited;
}

long labyrinth_zone_for_each_in_use(struct labyrinth_zone *h,
                                    int (*fn)(const struct labyrinth_page_info *info, void *arg), void *arg)
{
    struct lb_zone *z = lb_zone_get(h);
    if (!z)
        return lb_refuse_handle("zone_for_each_in_use", h);
    int rc = LB_NORMAL_CONTEXT(z, "zone_for_each_in_use");
    if (rc)
        return rc;
    return lb_zone_for_each_in_use(z, fn, arg);
}
LB_EXPORT(labyrinth_zone_for_each_in_use);

/* The 48-bit address in a record, as a pointer.  A kernel's addresses
 * (code, module data) are in the upper half: sign-extended from bit 47.
 * User-space addresses fit 48 bits (x86-64, and aarch64's 48-bit VA, whose
 * libraries may sit above 2^47): zero-extended. */
static inline uintptr_t lb_track_addr(uint64_t who)
{
#ifdef __KERNEL__
    return (uintptr_t)((int64_t)(who << 16) >> 16);
#else
    return (uintptr_t)(who & LB_TRACK_ADDR_MASK);
#endif
}

void lb_track_write(struct lb_zone *z, struct lb_region *r, uint32_t idx, const void *caller,
                    const struct labyrinth_site *site, uint32_t tag)
{
    lb_track_write_rec(z, &r->track[idx], &r->track_hi[idx], caller, site, tag);
}


void lb_track_read(struct lb_zone *z, const struct lb_region *r, uint32_t idx,
                   struct labyrinth_page_info *out)
{
    if (!r->track)
        return;
    uint64_t who = lb_load_rlx_u64(&r->track[idx].who), when = lb_load_rlx_u64(&r->track[idx].when);
    if (!(who & LB_TRACK_ADDR_MASK))
        return; /* never written */
    if (who & LB_TRACK_SITE_BIT)
        out->site = (const struct labyrinth_site *)lb_track_addr(who);
    else
        out->caller = (const void *)lb_track_addr(who);
    /* Relaxed, as who and when: the owner's relaxed stores; a torn read
     * mixes two writes (quality.h, the record's layout). */
    out->thread = (uint32_t)((who >> LB_TRACK_THREAD_LO_SHIFT) & LB_TRACK_THREAD_LO_MASK) |
                  lb_load_rlx_u32(&r->track_hi[idx]) << LB_TRACK_THREAD_HI_SHIFT;
    out->tag = (uint32_t)(when >> 40);
    if (z->clock_mult)
        out->alloc_ns = (when & LB_TRACK_TIME_MASK) * (LB_CLOCK_UNIT_US * 1000ull);
}

void lb_page_info_fill(struct lb_zone *z, struct lb_region *r, uint32_t idx,
                       struct labyrinth_page_info *out)
{
    memset(out, 0, sizeof *out);
    out->region = r->index;
    uint32_t head = lb_region_block_head(r, idx, z->max_order);
    if (head == LB_NIL) {
        out->state = LABYRINTH_PAGE_NOT_A_BLOCK;
        out->block = (void *)lb_region_addr(r, idx);
        return;
    }
    uint64_t w = lb_load_rlx_u64(&r->desc[head]);
    out->block = (void *)lb_region_addr(r, head);
    out->order = lb_d_order(w);
    switch (lb_d_state(w)) {
    case LB_S_FREE: out->state = LABYRINTH_PAGE_FREE; break;
    case LB_S_PENDING: out->state = LABYRINTH_PAGE_FREE; break;
    case LB_S_QUEUED: out->state = LABYRINTH_PAGE_FREE; break; /* freed, on its way to its owner */
    case LB_S_ALLOC: out->state = LABYRINTH_PAGE_IN_USE; break;
    case LB_S_CACHED: out->state = LABYRINTH_PAGE_CACHED; break;
    case LB_S_RESERVED: /* the zeroed stock's pages count as cached */
        out->state = (lb_d_flags(w) & LB_D_ZEROED) ? LABYRINTH_PAGE_CACHED : LABYRINTH_PAGE_RESERVED;
        break;
    default: out->state = LABYRINTH_PAGE_NOT_A_BLOCK; break;
    }
    if (lb_d_state(w) == LB_S_ALLOC && (lb_d_flags(w) & LB_D_TRACKED) && r->track) {
        out->tracked = 1;
        lb_track_read(z, r, head, out);
    }
}
