/*
 * quality.c - layer 6: zero, poison, CL_ALIGN, VERIFY, tracking records.
 */
#include "quality.h"

/* Tracking record layout (16 bytes, struct lb_track_rec):
 *   who:  bits 0..47  code address of the caller, or a struct labyrinth_site *
 *         bits 48..63 thread id (low 16 bits)
 *   when: bits 0..38  (cycles since the zone's creation) >> 10
 *         bit  39     who holds a site pointer
 *         bits 40..63 tag (24 bits)
 * Written by the block's owner with relaxed stores; readers (page_info, the
 * leak report) may see a record being rewritten by its owner: they get one
 * field old and one new, never a wild pointer (both fields always hold
 * values some writer stored). */
#define LB_TRACK_ADDR_MASK ((1ull << 48) - 1)
#define LB_TRACK_TIME_MASK ((1ull << 39) - 1)
#define LB_TRACK_SITE_BIT  (1ull << 39)
#define LB_TRACK_UNIT_SHIFT 10u

/* The 48-bit address in a record, as a pointer: sign-extended from bit 47,
 * so a kernel's upper-half addresses come back whole (user addresses have
 * bit 47 clear: unchanged). */
static inline uintptr_t lb_track_addr(uint64_t who)
{
    return (uintptr_t)((int64_t)(who << 16) >> 16);
}

void lb_track_write(struct labyrinth_zone *z, struct lb_region *r, uint32_t idx, const void *caller,
                    const struct labyrinth_site *site, uint32_t tag)
{
    struct lb_track_rec *t = &r->track[idx];
    uint64_t who = ((uintptr_t)(site ? (const void *)site : caller) & LB_TRACK_ADDR_MASK) |
                   (uint64_t)(lb_cache_thread_id() & 0xffffu) << 48;
    uint64_t units = (lb_os_cycles() - z->epoch_cycles) >> LB_TRACK_UNIT_SHIFT;
    uint64_t when = (units & LB_TRACK_TIME_MASK) | (site ? LB_TRACK_SITE_BIT : 0) |
                    (uint64_t)(tag & 0xffffffu) << 40;
    lb_store_rlx_u64(&t->who, who);
    lb_store_rlx_u64(&t->when, when);
}

bool lb_quality_assert_cl_align(struct labyrinth_zone *z, const void *p, unsigned order,
                                const void *caller)
{
    if (LB_LIKELY(((uintptr_t)p & (LB_CACHELINE - 1)) == 0))
        return true;
    char b[128];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, "CL_ALIGN assertion failed: block ");
    lb_fmt_hex(&f, (uintptr_t)p);
    lb_fmt_str(&f, " is not aligned to a 64-byte cache line");
    struct labyrinth_report rep = {0};
    rep.kind = LABYRINTH_REPORT_CL_ALIGN;
    rep.zone_name = z->name;
    rep.addr = p;
    rep.order = order;
    rep.caller = caller;
    rep.message = b;
    lb_zone_report(z, &rep);
    return false;
}

void lb_quality_apply(struct labyrinth_zone *z, void *p, unsigned order, unsigned q,
                      const void *caller, const struct labyrinth_site *site, uint32_t tag)
{
    size_t bytes = z->page_size << order;
    /* The seed poisons, then clears: the result is zeros, so ZERO alone. */
    if (q & LABYRINTH_QUALITY_ZERO)
        memset(p, 0, bytes);
    else if (q & LABYRINTH_QUALITY_POISON)
        memset(p, z->poison, bytes);
    if (q & LABYRINTH_QUALITY_CL_ALIGN)
        lb_quality_assert_cl_align(z, p, order, caller);
    if ((q & LABYRINTH_QUALITY_TRACK) && !(z->flags & LABYRINTH_ZONE_NO_TRACKING)) {
        struct lb_region *r = lb_regmap_lookup(&z->map, (uintptr_t)p);
        lb_track_write(z, r, (uint32_t)(((uintptr_t)p - r->base) >> z->page_shift), caller, site, tag);
    }
}

void lb_verify_poison(struct labyrinth_zone *z, void *p, unsigned order)
{
    memset(p, z->poison, z->page_size << order);
}

bool lb_verify_check(struct labyrinth_zone *z, void *p, unsigned order, const void *caller)
{
    size_t bytes = z->page_size << order;
    const uint64_t pat = 0x0101010101010101ull * z->poison;
    const uint64_t *w = p;
    size_t i = 0, n = bytes / 8;
    for (; i < n; i++)
        if (w[i] != pat)
            break;
    if (i == n)
        return true;
    size_t off = i * 8;
    const unsigned char *c = p;
    while (c[off] == z->poison)
        off++;
    /* The page holding the bad byte, and who owned it last. */
    struct lb_region *r = lb_regmap_lookup(&z->map, (uintptr_t)p + off);
    uint32_t idx = (uint32_t)(((uintptr_t)p + off - r->base) >> z->page_shift);
    struct labyrinth_page_info last;
    memset(&last, 0, sizeof last);
    if (r->track) {
        uint64_t who = lb_load_rlx_u64(&r->track[idx].who), when = lb_load_rlx_u64(&r->track[idx].when);
        if (who & LB_TRACK_ADDR_MASK) {
            if (when & LB_TRACK_SITE_BIT)
                last.site = (const struct labyrinth_site *)lb_track_addr(who);
            else
                last.caller = (const void *)lb_track_addr(who);
            last.thread = (uint32_t)(who >> 48);
        }
    }
    char b[200];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, "use after free: freed block ");
    lb_fmt_hex(&f, (uintptr_t)p);
    lb_fmt_str(&f, " was written at offset ");
    lb_fmt_dec(&f, off);
    lb_fmt_str(&f, " (byte ");
    lb_fmt_hex(&f, c[off]);
    lb_fmt_str(&f, ", poison ");
    lb_fmt_hex(&f, z->poison);
    lb_fmt_str(&f, ")");
    if (last.site || last.caller) {
        lb_fmt_str(&f, "; last owner thread ");
        lb_fmt_dec(&f, last.thread);
    }
    struct labyrinth_report rep = {0};
    rep.kind = LABYRINTH_REPORT_USE_AFTER_FREE;
    rep.zone_name = z->name;
    rep.addr = p;
    rep.order = order;
    rep.offset = off;
    rep.caller = last.caller ? last.caller : caller;
    rep.site = last.site;
    rep.thread = last.thread;
    rep.message = b;
    lb_zone_report(z, &rep);
    return false;
}

void lb_page_info_fill(struct labyrinth_zone *z, struct lb_region *r, uint32_t idx,
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
    case LB_S_ALLOC: out->state = LABYRINTH_PAGE_IN_USE; break;
    case LB_S_CACHED: out->state = LABYRINTH_PAGE_CACHED; break;
    case LB_S_RESERVED: out->state = LABYRINTH_PAGE_RESERVED; break;
    default: out->state = LABYRINTH_PAGE_NOT_A_BLOCK; break;
    }
    if (lb_d_state(w) == LB_S_ALLOC && (lb_d_flags(w) & LB_D_TRACKED) && r->track) {
        uint64_t who = lb_load_rlx_u64(&r->track[head].who), when = lb_load_rlx_u64(&r->track[head].when);
        out->tracked = 1;
        if (when & LB_TRACK_SITE_BIT)
            out->site = (const struct labyrinth_site *)lb_track_addr(who);
        else
            out->caller = (const void *)lb_track_addr(who);
        out->thread = (uint32_t)(who >> 48);
        out->tag = (uint32_t)(when >> 40);
        if (z->cycles_per_us)
            out->alloc_ns = ((when & LB_TRACK_TIME_MASK) << LB_TRACK_UNIT_SHIFT) * 1000u / z->cycles_per_us;
    }
}
