/*
 * quality.c - layer 6: zero, poison, the CL_ALIGN assertion, VERIFY.
 */
#include "quality.h"
#include "lb_annotate.h"

bool lb_quality_assert_cl_align(struct lb_zone *z, const void *p, unsigned order,
                                const void *caller)
{
    if (LB_LIKELY(((uintptr_t)p & (LB_CACHELINE - 1)) == 0))
        return true;
    char b[128];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, "CL_ALIGN assertion failed: block ");
    lb_fmt_ptr(&f, p);
    lb_fmt_str(&f, " is not aligned to a 64-byte cache line");
    struct labyrinth_report rep = lb_report_make(LABYRINTH_REPORT_CL_ALIGN, z, 0, b);
    rep.addr = p;
    rep.order = order;
    rep.caller = caller;
    lb_zone_report(z, &rep);
    return false;
}

void lb_quality_apply(struct lb_zone *z, void *p, unsigned order, unsigned q,
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
        lb_track_write(z, r, lb_region_index(r, p), caller, site, tag);
    }
}

void lb_verify_poison(struct lb_zone *z, void *p, unsigned order)
{
    memset(p, z->poison, z->page_size << order);
}

bool lb_verify_check(struct lb_zone *z, void *p, unsigned order, const void *caller)
{
    return lb_verify_check_byte(z, p, order, caller, z->poison);
}

void lb_zero_clear(struct lb_zone *z, void *p)
{
    /* A free page: poisoned for ASan, free-like for memcheck.  Handed to
     * the warden for the clearing, and free again after it. */
    LB_TOOL_ALLOC(p, z->page_size, 1);
    if (z->flags & LABYRINTH_ZONE_VERIFY)
        lb_verify_check(z, p, 0, NULL);
    memset(p, 0, z->page_size);
    LB_TOOL_FREE(p, z->page_size);
}

void lb_zero_unstock(struct lb_zone *z, void *p)
{
    LB_TOOL_ALLOC(p, z->page_size, 1);
    lb_verify_check_byte(z, p, 0, NULL, 0);
    lb_verify_poison(z, p, 0);
    LB_TOOL_FREE(p, z->page_size);
}

bool lb_verify_check_byte(struct lb_zone *z, void *p, unsigned order, const void *caller, unsigned char want)
{
    size_t bytes = z->page_size << order;
    const uint64_t pat = 0x0101010101010101ull * want;
    const uint64_t *w = p;
    size_t i = 0, n = bytes / 8;
    for (; i < n; i++)
        if (w[i] != pat)
            break;
    if (i == n)
        return true;
    size_t off = i * 8;
    const unsigned char *c = p;
    while (c[off] == want)
        off++;
    /* The page holding the bad byte, and who owned it last. */
    struct lb_region *r = lb_regmap_lookup(&z->map, (uintptr_t)p + off);
    uint32_t idx = lb_region_index(r, (char *)p + off);
    struct labyrinth_page_info last;
    memset(&last, 0, sizeof last);
    lb_track_read(z, r, idx, &last);
    char b[200];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, "use after free: freed block ");
    lb_fmt_ptr(&f, p);
    lb_fmt_str(&f, " was written at offset ");
    lb_fmt_dec(&f, off);
    lb_fmt_str(&f, " (byte ");
    lb_fmt_hex(&f, c[off]);
    lb_fmt_str(&f, want == z->poison ? ", poison " : ", zeroed stock ");
    lb_fmt_hex(&f, want);
    lb_fmt_str(&f, ")");
    if (last.site || last.caller) {
        lb_fmt_str(&f, "; last owner thread ");
        lb_fmt_dec(&f, last.thread);
    }
    struct labyrinth_report rep = lb_report_make(LABYRINTH_REPORT_USE_AFTER_FREE, z, 0, b);
    rep.addr = p;
    rep.order = order;
    rep.offset = off;
    rep.caller = last.caller ? last.caller : caller;
    rep.site = last.site;
    rep.thread = last.thread;
    lb_zone_report(z, &rep);
    return false;
}
