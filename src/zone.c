/*
 * zone.c - layer 5: zones, modes, watermarks, the warden, growth, stats,
 * invariant checks and reports.
 */
#include "zone.h"
#include "lb_annotate.h"

/* ---- the process-wide registry ------------------------------------------------------ */

/* Live zones, for handle validation (normal context, under the mutex). */
static struct labyrinth_zone *lb_zone_list[LB_MAX_ZONES];
static lb_os_mutex lb_registry_mutex = LB_OS_MUTEX_INITIALIZER(lb_registry_mutex);
static lb_atomic_u64 lb_next_serial;

/* Address ranges of every live region, for telling a page of another zone
 * (-EXDEV) from a foreign pointer (-EFAULT) in any context: each entry is a
 * seqlock, so a reader never blocks and never sees a torn range. */
#define LB_RANGES 1024u
struct lb_range {
    lb_atomic_u64 seq; /* odd while being written */
    lb_atomic_u64 lo, hi, serial;
};
static struct lb_range lb_ranges[LB_RANGES];
static lb_atomic_u32 lb_ranges_used;
static bool lb_ranges_touched;

static void lb_range_write(struct lb_range *e, uint64_t lo, uint64_t hi, uint64_t serial)
{
    uint64_t s = lb_load_rlx_u64(&e->seq);
    lb_store_rlx_u64(&e->seq, s + 1);
    /* Release stores (no fence: TSan does not model fences): a reader whose
     * acquire load sees a new field also sees the odd sequence above, so
     * its second read of seq differs and it retries. */
    lb_store_rel_u64(&e->lo, lo);
    lb_store_rel_u64(&e->hi, hi);
    lb_store_rel_u64(&e->serial, serial);
    /* Release: the range is visible before the even sequence (pairs with
     * the reader's first, acquire, load of seq). */
    lb_store_rel_u64(&e->seq, s + 2);
}

/* Registry mutex held. */
static void lb_range_add(uint64_t lo, uint64_t hi, uint64_t serial)
{
    if (!lb_ranges_touched) {
        /* Fault the table in now, so the error path of a free in ATOMIC
         * context never page-faults on it. */
        for (unsigned i = 0; i < LB_RANGES; i++)
            lb_store_rlx_u64(&lb_ranges[i].seq, lb_load_rlx_u64(&lb_ranges[i].seq));
        lb_ranges_touched = true;
    }
    unsigned used = lb_load_rlx_u32(&lb_ranges_used);
    for (unsigned i = 0; i < LB_RANGES; i++) {
        if (lb_load_rlx_u64(&lb_ranges[i].serial) == 0) {
            lb_range_write(&lb_ranges[i], lo, hi, serial);
            if (i >= used)
                lb_store_rel_u32(&lb_ranges_used, i + 1); /* pairs with owner_of's acquire */
            return;
        }
    }
    /* Table full: the zone still works; a page of it freed to another zone
     * is then reported as foreign (-EFAULT) instead of -EXDEV. */
}

/* Registry mutex held. */
static void lb_range_remove_addr(uint64_t lo)
{
    unsigned used = lb_load_rlx_u32(&lb_ranges_used);
    for (unsigned i = 0; i < used; i++)
        if (lb_load_rlx_u64(&lb_ranges[i].lo) == lo && lb_load_rlx_u64(&lb_ranges[i].serial))
            lb_range_write(&lb_ranges[i], 0, 0, 0);
}

static void lb_range_remove_serial(uint64_t serial)
{
    unsigned used = lb_load_rlx_u32(&lb_ranges_used);
    for (unsigned i = 0; i < used; i++)
        if (lb_load_rlx_u64(&lb_ranges[i].serial) == serial)
            lb_range_write(&lb_ranges[i], 0, 0, 0);
}

uint64_t lb_zone_owner_of(uintptr_t a)
{
    /* Acquire: pairs with the release store in lb_range_add (entries below
     * `used` have been written at least once). */
    unsigned used = lb_load_acq_u32(&lb_ranges_used);
    for (unsigned i = 0; i < used; i++) {
        struct lb_range *e = &lb_ranges[i];
        for (unsigned tries = 0; tries < 4; tries++) {
            /* Acquire: pairs with the writer's final release of seq. */
            uint64_t s1 = lb_load_acq_u64(&e->seq);
            if (s1 & 1) {
                lb_cpu_relax();
                continue;
            }
            /* Acquire loads: the second read of seq below cannot move
             * before them (pairs with the writer's release stores). */
            uint64_t lo = lb_load_acq_u64(&e->lo), hi = lb_load_acq_u64(&e->hi);
            uint64_t serial = lb_load_acq_u64(&e->serial);
            if (lb_load_rlx_u64(&e->seq) != s1)
                continue;
            if (serial && a >= lo && a < hi)
                return serial;
            break;
        }
    }
    return 0;
}

static int lb_registry_add(struct labyrinth_zone *z)
{
    int rc = -ENOSPC;
    lb_os_mutex_lock(&lb_registry_mutex);
    for (unsigned i = 0; i < LB_MAX_ZONES; i++) {
        if (!lb_zone_list[i]) {
            lb_zone_list[i] = z;
            rc = 0;
            break;
        }
    }
    if (!rc) {
        struct lb_region *r0 = z->map.r0;
        lb_range_add(r0->lo, r0->lo + r0->bytes, z->serial);
    }
    lb_os_mutex_unlock(&lb_registry_mutex);
    return rc;
}

static void lb_registry_remove(struct labyrinth_zone *z)
{
    lb_os_mutex_lock(&lb_registry_mutex);
    for (unsigned i = 0; i < LB_MAX_ZONES; i++)
        if (lb_zone_list[i] == z)
            lb_zone_list[i] = NULL;
    lb_range_remove_serial(z->serial);
    lb_os_mutex_unlock(&lb_registry_mutex);
}

/* ---- reports ----------------------------------------------------------------------- */

void lb_fmt_str(struct lb_fmt *f, const char *s)
{
    while (s && *s && f->len + 1 < f->cap)
        f->buf[f->len++] = *s++;
    f->buf[f->len] = 0;
}

void lb_fmt_hex(struct lb_fmt *f, uint64_t v)
{
    char t[19];
    int n = 0;
    do {
        t[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    lb_fmt_str(f, "0x");
    while (n && f->len + 1 < f->cap)
        f->buf[f->len++] = t[--n];
    f->buf[f->len] = 0;
}

void lb_fmt_dec(struct lb_fmt *f, uint64_t v)
{
    char t[21];
    int n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && f->len + 1 < f->cap)
        f->buf[f->len++] = t[--n];
    f->buf[f->len] = 0;
}

#define LB_REPORT_LINES 100u /* the default handler's lines per zone */

void lb_report_default(const struct labyrinth_report *rep, void *arg)
{
    struct labyrinth_zone *z = arg;
    if (z) {
        /* Misuse and leak lines have caps of their own. */
        bool leak = rep->kind == LABYRINTH_REPORT_LEAK;
        uint32_t n = lb_add_rlx_u32(leak ? &z->leaks_printed : &z->reports_printed, 1);
        if (n > LB_REPORT_LINES)
            return;
        if (n == LB_REPORT_LINES) {
            char b[160];
            struct lb_fmt f = {b, 0, sizeof b};
            lb_fmt_str(&f, "labyrinth: zone '");
            lb_fmt_str(&f, rep->zone_name);
            lb_fmt_str(&f, leak ? "': further leak lines suppressed\n"
                                : "': further reports suppressed (counted in misuse_reports)\n");
            lb_os_write_err(b, f.len);
            return;
        }
    }
    char b[512];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, "labyrinth: zone '");
    lb_fmt_str(&f, rep->zone_name ? rep->zone_name : "?");
    lb_fmt_str(&f, "': ");
    lb_fmt_str(&f, rep->message);
    if (rep->site) {
        lb_fmt_str(&f, " at ");
        lb_fmt_str(&f, rep->site->file);
        lb_fmt_str(&f, ":");
        lb_fmt_dec(&f, rep->site->line);
        lb_fmt_str(&f, " (");
        lb_fmt_str(&f, rep->site->func);
        lb_fmt_str(&f, ")");
    } else if (rep->caller) {
        lb_fmt_str(&f, rep->kind == LABYRINTH_REPORT_LEAK ? " allocated by " : " caller ");
        char sym[160];
        /* Symbolize only at destroy (normal context): dladdr takes locks. */
        if (rep->kind == LABYRINTH_REPORT_LEAK && lb_os_symbolize(rep->caller, sym, sizeof sym) == 0)
            lb_fmt_str(&f, sym);
        else
            lb_fmt_hex(&f, (uintptr_t)rep->caller);
    }
    lb_fmt_str(&f, "\n");
    lb_os_write_err(b, f.len);
}

void lb_zone_report(struct labyrinth_zone *z, const struct labyrinth_report *rep)
{
    bool misuse = rep->kind != LABYRINTH_REPORT_NOTICE && rep->kind != LABYRINTH_REPORT_LEAK;
    if (misuse)
        lb_add_rlx_u64(&z->misuse, 1);
    /* Acquire: pairs with the release in labyrinth_zone_set_report_handler
     * so the handler's argument is seen with the handler. */
    labyrinth_report_fn *fn = lb_load_acq_ptr(&z->report_fn);
    if (fn)
        fn(rep, lb_load_rlx_ptr(&z->report_arg));
    else
        lb_report_default(rep, z);
    if (misuse && (z->flags & LABYRINTH_ZONE_STRICT))
        lb_os_abort();
}

static void lb_zone_notice(struct labyrinth_zone *z, const char *msg)
{
    struct labyrinth_report rep = {0};
    rep.kind = LABYRINTH_REPORT_NOTICE;
    rep.zone_name = z->name;
    rep.message = msg;
    lb_zone_report(z, &rep);
}

/* ---- regions from the OS ---------------------------------------------------------------- */

static int lb_zone_region_os(struct labyrinth_zone *z, unsigned index, size_t npages, struct lb_region *r)
{
    size_t pg = z->page_size;
    /* Every region starts on a 2 MiB boundary (the address map's granule),
     * so no two regions of the zone share a chunk; a PROT_NONE guard page
     * sits just before and just after it. */
    size_t align = LB_MAX((size_t)1 << LB_CHUNK_SHIFT, pg << z->max_order);
    size_t bytes = npages * pg;
    unsigned mflags = LB_OS_MAP_PAGES | LB_OS_MAP_GUARD | ((z->flags & LABYRINTH_ZONE_HUGE) ? LB_OS_MAP_HUGE : 0);
    memset(r, 0, sizeof *r);
    int rc = lb_os_map(bytes, align, mflags, &r->pages_map);
    if (rc)
        return rc;
    uintptr_t base = (uintptr_t)r->pages_map.addr;
    rc = lb_os_populate((void *)base, bytes);
    if (rc)
        goto fail_pages;
    if (z->flags & LABYRINTH_ZONE_VERIFY)
        memset((void *)base, z->poison, bytes); /* every free page holds the poison */
    int lrc = lb_os_lock((void *)base, bytes);
    r->locked = lrc == 0;
    if (lrc && (z->flags & (LABYRINTH_ZONE_MUST_LOCK | LABYRINTH_ZONE_DMA))) {
        rc = lrc == -ENOMEM || lrc == -EAGAIN ? -ENOMEM : -EPERM;
        goto fail_pages;
    }
    bool track = !(z->flags & LABYRINTH_ZONE_NO_TRACKING), dma = z->flags & LABYRINTH_ZONE_DMA;
    rc = lb_os_map(lb_align_up(lb_region_meta_bytes(npages, track, dma), pg), pg,
                   LB_OS_MAP_GUARD | LB_OS_MAP_PREFAULT, &r->meta_map);
    if (rc)
        goto fail_pages;
    lb_region_init(r, index, z->page_shift, base, (uint32_t)npages, 0, (uint32_t)npages,
                   r->meta_map.addr, track, dma);
    r->got = r->pages_map.got;
    r->huge_bytes = r->pages_map.huge_bytes;
    if (dma) {
        rc = lb_os_phys_table((void *)base, npages, r->phys);
        if (rc)
            goto fail_meta;
        lb_region_phys_index(r);
    }
    if (lrc) {
        char b[200];
        struct lb_fmt f = {b, 0, sizeof b};
        lb_fmt_str(&f, "could not lock ");
        lb_fmt_dec(&f, bytes >> 10);
        lb_fmt_str(&f, " KiB in memory (RLIMIT_MEMLOCK is ");
        size_t lim = lb_os_memlock_limit();
        if (lim == SIZE_MAX)
            lb_fmt_str(&f, "unlimited");
        else {
            lb_fmt_dec(&f, lim >> 10);
            lb_fmt_str(&f, " KiB");
        }
        lb_fmt_str(&f, "): pages are pre-faulted but may be swapped out");
        lb_zone_notice(z, b);
    }
    if ((z->flags & LABYRINTH_ZONE_HUGE) && !(r->got & LB_OS_GOT_HUGETLB)) {
        lb_zone_notice(z, r->got & LB_OS_GOT_THP
                              ? "no reserved huge pages fit: using transparent huge pages"
                              : "no huge pages available: using base pages");
    }
    return 0;
fail_meta:
    lb_os_unmap(&r->meta_map);
fail_pages:
    lb_os_unmap(&r->pages_map);
    memset(r, 0, sizeof *r);
    return rc;
}

static void lb_zone_region_unmap(struct lb_region *r)
{
    if (!r->released) {
        LB_TOOL_FORGET((void *)r->lo, r->bytes);
        lb_os_unmap(&r->pages_map);
    }
    lb_os_unmap(&r->meta_map);
}

/* ---- configuration ------------------------------------------------------------------------ */

struct lb_plan {
    size_t pages, max_pages, reserve, low, high;
    unsigned max_order, mag_size, ntcaches, quarantine;
    uint32_t nmags;
};

static int lb_plan_make(const struct labyrinth_zone_config *cfg, size_t pages, struct lb_plan *p)
{
    p->pages = pages;
    if (pages < 1 || pages > (size_t)LB_REGION_MAX_PAGES)
        return -EINVAL;
    p->max_order = cfg->max_order ? cfg->max_order : 10;
    if (p->max_order > LB_ORDER_LIMIT || ((size_t)1 << p->max_order) > (size_t)LB_REGION_MAX_PAGES / 2)
        return -EINVAL;
    /* A block never spans regions: the OS must give a region that holds
     * one (a kernel: 2^(MAX_ORDER-1) pages; user space: no limit). */
    if (!cfg->memory && ((size_t)1 << p->max_order) > lb_os_region_max_pages())
        return -EINVAL;
    p->max_pages = cfg->max_pages ? cfg->max_pages : pages;
    if (p->max_pages < pages || p->max_pages > (size_t)LB_REGION_MAX_PAGES * LB_MAX_REGIONS)
        return -EINVAL;
    /* Watermarks, as the kernel's min <= low <= high: a default adapts to
     * the fields the caller set; fields set out of order are refused. */
    p->reserve = cfg->reserve_pages ? cfg->reserve_pages : pages / 16;
    if (cfg->low_pages && !cfg->reserve_pages && p->reserve > cfg->low_pages)
        p->reserve = cfg->low_pages;
    p->low = cfg->low_pages ? cfg->low_pages : LB_MAX(pages / 8, p->reserve);
    if (cfg->high_pages && !cfg->low_pages && p->low > cfg->high_pages)
        p->low = LB_MAX(p->reserve, cfg->high_pages);
    p->high = cfg->high_pages ? cfg->high_pages : LB_MIN(pages, LB_MAX(pages / 4, p->low));
    if (p->reserve > p->low || p->low > p->high || p->high > pages)
        return -EINVAL;
    if (cfg->magazine_pages) {
        if (cfg->magazine_pages > LB_MAG_MAX)
            return -EINVAL;
        p->mag_size = cfg->magazine_pages;
    } else {
        p->mag_size = (unsigned)LB_MIN((size_t)64, LB_MAX((size_t)2, pages / 64));
    }
    p->ntcaches = cfg->max_threads ? cfg->max_threads : (cfg->memory ? 8u : 64u);
    if (p->ntcaches > 4096)
        return -EINVAL;
    p->quarantine = cfg->quarantine_pages;
    if (p->quarantine > 4096)
        return -EINVAL;
    /* The depot holds up to high - reserve pages (more while the warden
     * has not trimmed it), in full magazines. */
    p->nmags = p->ntcaches * 2 * LB_LEVELS + (uint32_t)((2 * p->high + p->mag_size - 1) / p->mag_size) + 4;
    return 0;
}

static size_t lb_zone_fixed_meta(const struct lb_plan *p)
{
    return lb_align_up(sizeof(struct labyrinth_zone), LB_CACHELINE) +
           lb_cache_meta_bytes(p->mag_size, p->nmags, p->ntcaches, p->quarantine);
}

/* ---- create / destroy ----------------------------------------------------------------------- */

static void *lb_warden_main(void *arg);
static void lb_zone_bad_entry(void *ctx, void *page, uint64_t w);
static long lb_zone_grow_by(struct labyrinth_zone *z, size_t want, bool event);

static void lb_zone_fill_common(struct labyrinth_zone *z, const struct labyrinth_zone_config *cfg,
                                const struct lb_plan *p)
{
    z->magic = LB_ZONE_MAGIC;
    z->serial = lb_add_rlx_u64(&lb_next_serial, 1) + 1;
    const char *name = cfg->name ? cfg->name : "zone";
    size_t n = strlen(name);
    if (n >= sizeof z->name)
        n = sizeof z->name - 1;
    memcpy(z->name, name, n);
    z->name[n] = 0;
    z->flags = cfg->flags;
    z->quality = cfg->quality;
    z->max_order = p->max_order;
    z->page_size = lb_os_page_size();
    z->page_shift = (unsigned)__builtin_ctzl(z->page_size);
    z->page_mask = z->page_size - 1;
    z->poison = cfg->poison_pattern ? cfg->poison_pattern : 0x6b;
    z->free_slow = (cfg->flags & LABYRINTH_ZONE_VERIFY) || cfg->quarantine_pages;
    z->fast_gfp = (cfg->quality || z->free_slow) ? 0 : LB_GFP_FAST_SET;
    z->pages = p->pages;
    z->max_pages = p->max_pages;
    z->reserve_target = p->reserve;
    z->low = p->low;
    z->high = p->high;
    z->wait_timeout_ms = cfg->wait_timeout_ms ? cfg->wait_timeout_ms : LABYRINTH_DEFAULT_WAIT_MS;
    z->warden_interval_us = cfg->warden_interval_us ? cfg->warden_interval_us : 10000;
    z->epoch_cycles = lb_os_cycles();
    lb_buddy_init(&z->buddy, p->max_order);
}

int lb_zone_create(const struct labyrinth_zone_config *cfg_in, struct labyrinth_zone **out)
{
    static const struct labyrinth_zone_config zero_cfg;
    const struct labyrinth_zone_config *cfg = cfg_in ? cfg_in : &zero_cfg;
    struct lb_plan plan;
    int rc;
    *out = NULL;
    if ((cfg->flags & ~LABYRINTH_ZONE_FLAGS_ALL) || (cfg->quality & ~LABYRINTH_QUALITY_ALL))
        return -EINVAL;
    if ((cfg->flags & LABYRINTH_ZONE_NO_TRACKING) && (cfg->quality & LABYRINTH_QUALITY_TRACK))
        return -EINVAL;
    size_t pg = lb_os_page_size();
    struct labyrinth_zone *z;
    void *meta;

    if (cfg->memory) {
        if (!cfg->memory_bytes || (cfg->flags & LABYRINTH_ZONE_MUST_LOCK))
            return -EINVAL;
        if (cfg->max_pages && cfg->max_pages != cfg->pages)
            return -EINVAL; /* zones over caller memory do not grow */
        uintptr_t start = lb_align_up_ptr((uintptr_t)cfg->memory, LB_CACHELINE);
        uintptr_t end = (uintptr_t)cfg->memory + cfg->memory_bytes;
        if (end <= start)
            return -ENOMEM;
        /* Pages and metadata share the buffer: the metadata first. Find the
         * largest page count whose metadata still fits (a few rounds). */
        size_t n = (end - start) / pg, fit = 0;
        struct lb_plan trial;
        size_t region_meta = 0;
        for (int round = 0; round < 8 && n; round++) {
            struct labyrinth_zone_config c2 = *cfg;
            c2.max_pages = 0;
            if (lb_plan_make(&c2, n, &trial))
                return -EINVAL;
            size_t span = n + ((size_t)1 << trial.max_order);
            region_meta = lb_region_meta_bytes(span, !(cfg->flags & LABYRINTH_ZONE_NO_TRACKING),
                                               cfg->flags & LABYRINTH_ZONE_DMA);
            uintptr_t pages_at = lb_align_up_ptr(start + lb_zone_fixed_meta(&trial) + region_meta, pg);
            fit = pages_at < end ? (end - pages_at) / pg : 0;
            if (fit >= n)
                break;
            n = fit;
        }
        if (!fit || !n)
            return -ENOMEM;
        if (cfg->pages) {
            if (cfg->pages > n)
                return -EINVAL;
            n = cfg->pages;
        }
        struct labyrinth_zone_config c2 = *cfg;
        c2.max_pages = 0;
        if ((rc = lb_plan_make(&c2, n, &plan)))
            return rc;
        z = (struct labyrinth_zone *)start;
        memset(z, 0, lb_zone_fixed_meta(&plan));
        lb_zone_fill_common(z, cfg, &plan);
        z->caller_memory = true;
        meta = (char *)z + lb_align_up(sizeof *z, LB_CACHELINE);
        char *rmeta = (char *)meta + lb_cache_meta_bytes(plan.mag_size, plan.nmags, plan.ntcaches, plan.quarantine);
        memset(rmeta, 0, region_meta);
        uintptr_t pages_at = lb_align_up_ptr((uintptr_t)rmeta + region_meta, pg);
        uintptr_t base = pages_at & ~(uintptr_t)((pg << plan.max_order) - 1);
        uint32_t first = (uint32_t)((pages_at - base) / pg);
        lb_region_init(&z->regions[0], 0, z->page_shift, base, first + (uint32_t)n, first,
                       first + (uint32_t)n, rmeta, !(cfg->flags & LABYRINTH_ZONE_NO_TRACKING),
                       cfg->flags & LABYRINTH_ZONE_DMA);
        if (cfg->flags & LABYRINTH_ZONE_DMA) {
            rc = lb_os_phys_table((void *)pages_at, n, z->regions[0].phys + first);
            if (rc)
                return rc;
            lb_region_phys_index(&z->regions[0]);
        }
        lb_store_rlx_u64(&z->metadata_bytes, pages_at - (uintptr_t)cfg->memory);
        if (cfg->flags & LABYRINTH_ZONE_VERIFY)
            memset((void *)pages_at, z->poison, n * pg);
        else /* fault every page in now, by touching it: no OS call */
            for (size_t i = 0; i < n; i++)
                ((volatile char *)pages_at)[i * pg] = 0;
    } else {
        size_t pages = cfg->pages ? cfg->pages : 4096;
        if ((rc = lb_plan_make(cfg, pages, &plan)))
            return rc;
        struct lb_os_mapping mm;
        size_t fixed = lb_align_up(lb_zone_fixed_meta(&plan), pg);
        if ((rc = lb_os_map(fixed, pg, LB_OS_MAP_GUARD | LB_OS_MAP_PREFAULT, &mm)))
            return rc;
        z = mm.addr;
        z->meta_map = mm;
        lb_zone_fill_common(z, cfg, &plan);
        meta = (char *)z + lb_align_up(sizeof *z, LB_CACHELINE);
        /* A zone larger than the OS's largest region (a kernel's largest
         * physically contiguous allocation) gets the rest as further
         * regions below, once it is registered. */
        rc = lb_zone_region_os(z, 0, LB_MIN(pages, lb_os_region_max_pages()), &z->regions[0]);
        if (rc) {
            lb_os_unmap(&mm);
            return rc;
        }
        lb_store_rlx_u64(&z->metadata_bytes, fixed + z->regions[0].meta_map.bytes);
    }

    lb_regmap_add(&z->map, &z->regions[0]); /* region 0 needs no table: cannot fail */
    z->r0_lo = z->regions[0].lo;
    z->r0_bytes = z->regions[0].bytes;
    z->r0_desc = &z->regions[0].desc[z->regions[0].first];
    z->r0_first = z->regions[0].first;
    lb_buddy_add_region(&z->buddy, &z->regions[0]);
    lb_store_rlx_u64(&z->total_pages, lb_region_pages(&z->regions[0]));
    lb_cache_init(&z->cache, meta, plan.mag_size, plan.nmags, plan.ntcaches, plan.quarantine, z->page_shift, &z->map,
                  &z->buddy, z->serial);
    z->mag_size = plan.mag_size;
    for (unsigned k = 1; k <= LB_OC_ORDERS && k <= plan.max_order && ((size_t)64 << k) <= plan.pages; k++)
        z->cache.oc_max_order = k;
    z->cache.bad_entry = lb_zone_bad_entry;
    z->cache.bad_ctx = z;
    /* Mutexes, TLS slots and the registry are process-local bookkeeping,
     * not system calls: zones over caller memory have them too. */
    lb_os_mutex_init(&z->grow_mutex);
    lb_os_mutex_init(&z->rebalance_mutex);
    lb_cache_tls_register(&z->cache);
    rc = lb_registry_add(z);
    if (rc)
        goto fail;
    while (lb_load_rlx_u64(&z->total_pages) < plan.pages) {
        long g = lb_zone_grow_by(z, plan.pages - lb_load_rlx_u64(&z->total_pages), false);
        if (g <= 0) {
            rc = g < 0 ? (int)g : -ENOMEM;
            goto fail_registered;
        }
    }
    lb_zone_rebalance(z);
    bool want_warden = z->caller_memory ? (z->flags & LABYRINTH_ZONE_WARDEN)
                                        : !(z->flags & LABYRINTH_ZONE_NO_WARDEN);
    if (want_warden) {
        z->cycles_per_us = lb_os_cycles_per_us();
        rc = lb_os_thread_create(&z->warden, lb_warden_main, z, "lb-warden");
        if (rc) {
            rc = -EAGAIN;
            goto fail_registered;
        }
        z->warden_running = true;
    } else {
        z->cycles_per_us = z->caller_memory ? 0 : lb_os_cycles_per_us();
    }
    lb_os_zone_event(z, z->name, true);
    *out = z;
    return 0;
fail_registered:
    lb_registry_remove(z);
    lb_cache_tls_unregister(&z->cache);
fail:
    if (!z->caller_memory) {
        struct lb_os_mapping mm = z->meta_map;
        unsigned n = lb_regmap_count(&z->map);
        lb_regmap_destroy(&z->map);
        for (unsigned i = 0; i < n; i++)
            lb_zone_region_unmap(&z->regions[i]);
        lb_os_unmap(&mm);
    }
    return rc;
}

void lb_zone_destroy(struct labyrinth_zone *z)
{
    lb_os_zone_event(z, z->name, false);
    if (z->warden_running) {
        lb_store_rlx_u32(&z->warden_stop, 1);
        lb_add_rlx_u32(&z->warden_word, 1);
        lb_os_futex_wake(&z->warden_word, 1);
        lb_os_thread_join(z->warden);
        z->warden_running = false;
    }
    lb_registry_remove(z);
    lb_cache_tls_unregister(&z->cache);
    /* A zone over caller memory stays readable: make every fast path miss
     * (threads may still name it as their current zone) so that calls on
     * the dead handle reach the checks that refuse them with EBADF. */
    z->magic = 0;
    z->fast_gfp = 0;
    z->r0_bytes = 0;
    z->serial = UINT64_MAX;
    lb_os_mutex_destroy(&z->grow_mutex);
    lb_os_mutex_destroy(&z->rebalance_mutex);
    if (z->caller_memory) {
        LB_TOOL_FORGET((void *)z->regions[0].lo, z->regions[0].bytes); /* the caller's again */
        return;
    }
    unsigned n = lb_regmap_count(&z->map);
    lb_regmap_destroy(&z->map);
    for (unsigned i = 0; i < n; i++)
        lb_zone_region_unmap(&z->regions[i]);
    struct lb_os_mapping mm = z->meta_map;
    lb_os_unmap(&mm);
}

int lb_zone_locate(struct labyrinth_zone *z, const void *addr, struct lb_region **rp, uint32_t *idxp)
{
    uintptr_t a = (uintptr_t)addr;
    struct lb_region *r = lb_regmap_lookup(&z->map, a);
    if (!r) {
        uint64_t owner = lb_zone_owner_of(a);
        return owner && owner != z->serial ? -EXDEV : -EFAULT;
    }
    if (a & (z->page_size - 1))
        return -EINVAL;
    *rp = r;
    *idxp = (uint32_t)((a - r->base) >> z->page_shift);
    return 0;
}

/* ---- growth and waiting ---------------------------------------------------------------------- */

/* Add a region of up to want pages (normal context; capped by max_pages
 * and by the OS's largest region).  Returns pages added (0: at max_pages
 * or out of region slots), or a negative errno from the OS.  A growth
 * event unless this is the creation of a zone larger than one region. */
static long lb_zone_grow_by(struct labyrinth_zone *z, size_t want, bool event)
{
    if (z->caller_memory)
        return 0;
    long added = 0;
    lb_os_mutex_lock(&z->grow_mutex);
    size_t total = lb_load_rlx_u64(&z->total_pages);
    unsigned index = lb_regmap_count(&z->map);
    if (total < z->max_pages && index < LB_MAX_REGIONS) {
        size_t n = LB_MIN(z->max_pages - total, want);
        n = LB_MIN(n, LB_MIN((size_t)LB_REGION_MAX_PAGES, lb_os_region_max_pages()));
        struct lb_region *r = &z->regions[index];
        long rc = lb_zone_region_os(z, index, n, r);
        if (!rc) {
            rc = lb_regmap_add(&z->map, r);
            if (rc)
                lb_zone_region_unmap(r);
        }
        if (rc) {
            added = rc;
        } else {
            lb_os_mutex_lock(&lb_registry_mutex);
            lb_range_add(r->lo, r->lo + r->bytes, z->serial);
            lb_os_mutex_unlock(&lb_registry_mutex);
            lb_spin_lock(&z->buddy.lock);
            lb_buddy_add_region(&z->buddy, r);
            lb_spin_unlock(&z->buddy.lock);
            lb_store_rlx_u64(&z->total_pages, total + n);
            lb_add_rlx_u64(&z->metadata_bytes, r->meta_map.bytes);
            if (event)
                lb_add_rlx_u64(&z->grow_events, 1);
            added = (long)n;
        }
    }
    lb_os_mutex_unlock(&z->grow_mutex);
    return added;
}

/* Grow by one region (KERNEL context, the warden): as large as the zone
 * was created, or one block of max_order. */
static long lb_zone_grow(struct labyrinth_zone *z)
{
    return lb_zone_grow_by(z, LB_MAX(z->pages, (size_t)1 << z->max_order), true);
}

static void lb_zone_kick(struct labyrinth_zone *z)
{
    /* Relaxed: a hint the warden reads at its next tick; no system call. */
    if (!lb_load_rlx_u32(&z->kick))
        lb_store_rlx_u32(&z->kick, 1);
}

static void lb_zone_wake_warden(struct labyrinth_zone *z)
{
    if (!z->warden_running)
        return;
    lb_add_rlx_u32(&z->warden_word, 1);
    lb_os_futex_wake(&z->warden_word, 1);
}

/* KERNEL: wait for pages until deadline; false when it has passed. */
static bool lb_zone_wait(struct labyrinth_zone *z, uint64_t deadline)
{
    uint64_t now = lb_os_clock_ns();
    if (deadline && now >= deadline)
        return false;
    /* Acquire: pairs with the warden's release increment after it has made
     * pages available. */
    uint32_t seq = lb_load_acq_u32(&z->free_seq);
    lb_add_rlx_u32(&z->waiters, 1);
    lb_add_rlx_u64(&z->kernel_waits, 1);
    lb_zone_wake_warden(z);
    uint64_t slice = 1000000; /* frees make no system call: poll each ms */
    if (deadline && deadline - now < slice)
        slice = deadline - now;
    lb_os_futex_wait(&z->free_seq, seq, slice);
    lb_add_rlx_u32(&z->waiters, (uint32_t)-1);
    return true;
}

/* ---- buddy access by mode ----------------------------------------------------------------------- */

#define LB_TRYLOCK_TRIES 16u /* bounded: ATOMIC and NOWAIT never wait longer */

static bool lb_zone_buddy_lock(struct labyrinth_zone *z, unsigned gfp)
{
    if (lb_gfp_may_sleep(gfp)) {
        lb_spin_lock(&z->buddy.lock);
        return true;
    }
    return lb_spin_trylock_bounded(&z->buddy.lock, LB_TRYLOCK_TRIES);
}

static void lb_zone_buddy_unlock(struct labyrinth_zone *z)
{
    /* Blocks freed while the lock was busy: a bounded batch per holder. */
    if (lb_load_rlx_u64(&z->cache.pending.count))
        lb_cache_drain_pending(&z->cache, 64);
    lb_spin_unlock(&z->buddy.lock);
}

/* Give every full magazine of the depot back to the buddy (normal
 * context).  Returns pages given. */
static uint64_t lb_zone_drain_depot(struct labyrinth_zone *z)
{
    struct lb_cache *c = &z->cache;
    uint64_t pages = 0;
    struct lb_mag *m;
    while ((m = lb_depot_pop(c, &c->full))) {
        pages += lb_load_rlx_u32(&m->count);
        lb_spin_lock(&z->buddy.lock);
        lb_cache_mag_to_buddy(c, m);
        lb_spin_unlock(&z->buddy.lock);
        lb_depot_push(c, &c->empty, m);
    }
    return pages;
}

/* Give level l's cached higher-order blocks back to the buddy (l's own
 * context), so that they can be split or coalesced for a request that
 * would otherwise fail.  Returns pages given, 0 if none or the lock was
 * busy (try-lock for TRYLOCK modes). */
static uint64_t lb_level_oc_flush(struct labyrinth_zone *z, struct lb_level *l, unsigned gfp)
{
    uint64_t pages = 0;
    bool any = false;
    for (unsigned k = 1; k <= LB_OC_ORDERS; k++)
        any |= lb_load_rlx_ptr(&l->oc[k - 1]) != NULL;
    if (!any || !lb_zone_buddy_lock(z, gfp))
        return 0;
    for (unsigned k = 1; k <= LB_OC_ORDERS; k++) {
        void *b = lb_load_rlx_ptr(&l->oc[k - 1]);
        if (!b)
            continue;
        lb_store_rlx_ptr(&l->oc[k - 1], NULL);
        struct lb_region *r = lb_regmap_lookup(&z->map, (uintptr_t)b);
        lb_buddy_give(&z->buddy, r, (uint32_t)(((uintptr_t)b - r->base) >> z->page_shift), k);
        pages += (uint64_t)1 << k;
    }
    lb_zone_buddy_unlock(z);
    return pages;
}

/* One attempt at the buddy and (order 0, RESERVE) the reserve. */
static void *lb_zone_try_block(struct labyrinth_zone *z, unsigned gfp, unsigned order, unsigned dflags,
                               bool reserve)
{
    if (reserve) {
        void *p = lb_cache_reserve_get(&z->cache, dflags);
        lb_zone_kick(z);
        if (p)
            lb_add_rlx_u64(&z->reserve_allocs, 1);
        return p;
    }
    if (lb_zone_buddy_lock(z, gfp)) {
        struct lb_region *r;
        if (lb_load_rlx_u64(&z->cache.pending.count))
            lb_cache_drain_pending(&z->cache, 64);
        uint32_t idx = lb_buddy_take(&z->buddy, order, LB_S_ALLOC, dflags, &r);
        bool low = lb_load_rlx_u64(&z->buddy.free_pages) < z->low;
        lb_zone_buddy_unlock(z);
        if (low)
            lb_zone_kick(z);
        if (idx != LB_NIL)
            return (void *)lb_region_addr(r, idx);
    }
    if (order == 0) {
        /* No magazines of our own (a thread past max_threads, deep
         * nesting): a full magazine from the depot, one page from it, the
         * rest onto the pending stack for the next buddy lock holder. */
        struct lb_cache *c = &z->cache;
        struct lb_mag *m = lb_depot_pop(c, &c->full);
        if (m) {
            uint32_t n = lb_load_rlx_u32(&m->count);
            void *p = m->slot[n - 1];
            lb_store_rlx_u32(&m->count, n - 1);
            lb_cache_mag_to_stack(c, m, &c->pending, LB_S_PENDING);
            lb_depot_push(c, &c->empty, m);
            lb_store_rlx_u64(lb_zone_desc(z, p), lb_d_make(LB_S_ALLOC, 0, dflags));
            lb_zone_kick(z);
            return p;
        }
    }
    return NULL;
}

/* Refill level l's loaded magazine (owner context) and pop a page. */
/* Take the batches other contexts freed to level l (l's own context):
 * their pages become l's loaded and spare magazines, the rest goes to the
 * depot or, for partial batches that do not fit, to the buddy.  Returns
 * pages absorbed. */
static void lb_level_absorb(struct labyrinth_zone *z, struct lb_level *l, struct lb_mag *m)
{
    struct lb_cache *c = &z->cache;
    while (m) {
        struct lb_mag *next = lb_cache_mag_next(c, m);
        uint32_t n = lb_load_rlx_u32(&m->count);
        struct lb_mag *ld = lb_level_loaded(l), *sp = lb_level_spare(l);
        if (n == 0) {
            lb_depot_push(c, &c->empty, m);
        } else if (lb_load_rlx_u32(&ld->count) == 0) {
            lb_depot_push(c, &c->empty, ld);
            lb_store_rlx_ptr(&l->loaded, m);
            lb_bump_1w_u64(&l->moved_in, n);
        } else if (lb_load_rlx_u32(&sp->count) == 0) {
            lb_depot_push(c, &c->empty, sp);
            lb_store_rlx_ptr(&l->spare, m);
            lb_bump_1w_u64(&l->moved_in, n);
        } else if (n == c->mag_size) {
            lb_depot_push(c, &c->full, m);
        } else {
            /* A partial batch with nowhere to go whole: its pages to the
             * buddy if the lock is free, else to the pending stack. */
            if (lb_spin_trylock_bounded(&z->buddy.lock, LB_TRYLOCK_TRIES)) {
                lb_cache_mag_to_buddy(c, m);
                lb_zone_buddy_unlock(z);
            } else {
                lb_cache_mag_to_stack(c, m, &c->pending, LB_S_PENDING);
            }
            lb_depot_push(c, &c->empty, m);
        }
        m = next;
    }
}

/* Take the batches other contexts freed to level l (l's own context):
 * their pages become l's loaded and spare magazines, the rest goes to the
 * depot or, for partial batches that do not fit, to the buddy.  Returns
 * pages absorbed. */
static uint64_t lb_level_absorb_inbox(struct labyrinth_zone *z, struct lb_level *l)
{
    uint64_t pages;
    struct lb_mag *m = lb_level_take_inbox_bounded(&z->cache, l, 2, &pages);
    lb_level_absorb(z, l, m);
    return pages;
}

static void *lb_level_refill_pop(struct labyrinth_zone *z, struct lb_level *l, unsigned gfp)
{
    struct lb_cache *c = &z->cache;
    void *p = lb_level_pop(l);
    if (p)
        return p;
    if (lb_load_rlx_u32(&lb_level_spare(l)->count)) {
        lb_level_swap(l);
        return lb_level_pop(l);
    }
    /* Our own pages first: what other contexts freed back to us. */
    if (lb_level_absorb_inbox(z, l) && (p = lb_level_pop(l)))
        return p;
    struct lb_mag *m = lb_depot_pop(c, &c->full);
    if (m) {
        lb_depot_push(c, &c->empty, lb_level_loaded(l));
        lb_store_rlx_ptr(&l->loaded, m);
        lb_bump_1w_u64(&l->moved_in, lb_load_rlx_u32(&m->count));
        if (lb_load_rlx_u64(&c->full.count) * c->mag_size + lb_load_rlx_u64(&c->reserve.count) < z->low)
            lb_zone_kick(z);
        return lb_level_pop(l);
    }
    lb_zone_kick(z);
    if (lb_zone_buddy_lock(z, gfp)) {
        uint32_t n = lb_cache_fill_from_buddy(c, lb_level_loaded(l), c->mag_size);
        lb_zone_buddy_unlock(z);
        lb_bump_1w_u64(&l->moved_in, n);
        if ((p = lb_level_pop(l)))
            return p;
    }
    /* Last, pages freed back to threads that have exited (the warden
     * would reap them at its next tick): adopt them now. */
    uint64_t pages;
    struct lb_mag *chain = lb_cache_adopt(c, &pages);
    if (chain) {
        lb_level_absorb(z, l, chain);
        return lb_level_pop(l);
    }
    return NULL;
}

/* The common slow loop: level refill (if l), buddy, reserve, growth, wait. */
/* The levels an allocation at depth d may use: *own, the caller's level
 * (order 0, or an order with level caches), and *l, the level whose
 * magazines serve it (order 0 only). */
static void lb_zone_levels(struct labyrinth_zone *z, unsigned order, uint32_t d, struct lb_level **l,
                           struct lb_level **own)
{
    *l = NULL;
    if (order == 0 || order <= z->cache.oc_max_order) {
        *l = lb_tls_level(&z->cache, d);
        if (!*l && d == 0 && lb_cache_claim(&z->cache))
            *l = lb_tls_level(&z->cache, 0);
    }
    *own = *l;
    if (order > 0)
        *l = NULL;
}

/* A KERNEL allocation is about to sleep (grow, wait).  In user space the
 * thread keeps its levels across the sleep: nothing to do.  In a kernel
 * the levels are the CPU's, which another task may use while this one
 * sleeps: leave the call (the depth restored, preemption back on) and
 * enter again afterwards, perhaps on another CPU, whose levels the caller
 * then fetches again.  Only a context that may sleep gets here (api.c
 * refuses the others), and such a context on a CPU is never nested in a
 * labyrinth call there: it enters again at the same depth, 0. */
static void lb_zone_sleep_begin(uint32_t d)
{
    if (LB_OS_CTX_PER_CPU)
        lb_leave(d);
}
static void lb_zone_sleep_end(uint32_t d)
{
    if (LB_OS_CTX_PER_CPU) {
        uint32_t again = lb_enter();
        LB_CHECK(again == d);
    }
}

static void *lb_zone_alloc_loop(struct labyrinth_zone *z, unsigned gfp, unsigned order, unsigned dflags,
                                uint32_t d, struct lb_level *l, struct lb_level *own, int *err)
{
    uint64_t deadline = 0;
    long grow_rc = 0;
    for (;;) {
        void *p = NULL;
        if (l) {
            p = lb_level_refill_pop(z, l, gfp);
            if (p) {
                uint32_t gen = lb_level_count_alloc(l, lb_gfp_slot(gfp));
                lb_store_rlx_u64(lb_zone_desc(z, p), lb_d_owned(l->pattern, dflags, gen));
                return p;
            }
        }
        p = lb_zone_try_block(z, gfp, order, dflags, false);
        if (p) {
            /* Not from the level's magazines: counted apart (see struct lb_level). */
            lb_add_rlx_u64(&z->cache.shared_allocs[lb_gfp_slot(gfp)], 1);
            return p;
        }
        /* Our own cached higher-order blocks, before the reserve or a NULL. */
        if (own && lb_level_oc_flush(z, own, gfp))
            continue;
        if (order == 0 && (gfp & LABYRINTH_GFP_BIT_RESERVE) &&
            (p = lb_zone_try_block(z, gfp, order, dflags, true))) {
            lb_add_rlx_u64(&z->cache.shared_allocs[lb_gfp_slot(gfp)], 1);
            return p;
        }
        if (!lb_gfp_may_sleep(gfp))
            break;
        /* A higher order: free pages may sit in the depot's magazines,
         * split; give them back to the buddy to coalesce (as Linux drains
         * its per-CPU lists), then try again. */
        if (order > 0 && lb_zone_drain_depot(z))
            continue;
        lb_zone_sleep_begin(d);
        long g = 0;
        if (gfp & LABYRINTH_GFP_BIT_GROW) {
            g = lb_zone_grow(z);
            if (g < 0)
                grow_rc = g;
        }
        bool waited = true; /* a growth: try again at once */
        if (g <= 0) {
            if (!deadline && z->wait_timeout_ms != LABYRINTH_WAIT_FOREVER)
                deadline = lb_os_clock_ns() + (uint64_t)z->wait_timeout_ms * 1000000u;
            waited = lb_zone_wait(z, deadline);
        }
        lb_zone_sleep_end(d);
        if (!waited) {
            /* A growth the OS refused, whatever its errno: ENOMEM. */
            *err = grow_rc ? -ENOMEM : -ETIMEDOUT;
            break;
        }
        if (LB_OS_CTX_PER_CPU)
            lb_zone_levels(z, order, d, &l, &own);
    }
    lb_add_rlx_u64(&z->fails[lb_gfp_slot(gfp)], 1);
    if (!*err)
        *err = -ENOMEM;
    return NULL;
}

void *lb_zone_alloc_err(struct labyrinth_zone *z, unsigned gfp, unsigned order, unsigned dflags,
                        uint32_t d, int *err)
{
    struct lb_level *l, *own;
    lb_zone_levels(z, order, d, &l, &own);
    if (order > 0 && own) {
        /* A block of this order this level freed: ours alone, no lock. */
        void *b = lb_load_rlx_ptr(&own->oc[order - 1]);
        if (b) {
            lb_store_rlx_ptr(&own->oc[order - 1], NULL);
            lb_store_rlx_u64(lb_zone_desc(z, b), lb_d_make(LB_S_ALLOC, order, dflags));
            /* Counted in the level: no shared counter line per block. */
            lb_bump_1w_u64(&own->hi_allocs, 1);
            if (lb_gfp_slot(gfp) != LB_MODE_SLOTS - 1)
                lb_bump_1w_u64(&own->mode_allocs[lb_gfp_slot(gfp)], 1);
            return b;
        }
    }
    return lb_zone_alloc_loop(z, gfp, order, dflags, d, l, own, err);
}

/* ---- frees --------------------------------------------------------------------------------------- */

void lb_zone_free_block(struct labyrinth_zone *z, struct lb_region *r, uint32_t idx, unsigned order)
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

void lb_zone_free0_slow(struct labyrinth_zone *z, void *p, struct lb_region *r, uint32_t idx, uint32_t d)
{
    struct lb_cache *c = &z->cache;
    struct lb_level *l = lb_tls_level(c, d);
    if (!l && d == 0 && lb_cache_claim(c))
        l = lb_tls_level(c, 0);
    if (l && c->quarantine) {
        /* Held back: the page that has waited longest comes out instead. */
        void *out = lb_level_quarantine(l, c->quarantine, p);
        if (!out)
            return;
        p = out;
        r = lb_regmap_lookup(&z->map, (uintptr_t)p);
        idx = (uint32_t)(((uintptr_t)p - r->base) >> z->page_shift);
    }
    if (!l) {
        if (lb_spin_trylock_bounded(&z->buddy.lock, LB_TRYLOCK_TRIES)) {
            lb_buddy_give(&z->buddy, r, idx, 0);
            lb_zone_buddy_unlock(z);
        } else if (lb_load_rlx_u64(&c->reserve.count) < z->reserve_target) {
            lb_cache_reserve_put(c, r, idx);
        } else {
            lb_cache_pend(c, r, idx, 0);
            lb_zone_kick(z);
        }
        lb_add_rlx_u64(&c->shared_frees, 1);
        return;
    }
    if (!lb_level_push(l, p, c->mag_size)) {
        if (lb_load_rlx_u32(&lb_level_spare(l)->count) < c->mag_size) {
            lb_level_swap(l);
        } else {
            /* Both magazines full: hand the loaded one on. */
            struct lb_mag *m = lb_level_loaded(l), *e;
            lb_bump_1w_u64(&l->moved_out, lb_load_rlx_u32(&m->count));
            if (lb_load_rlx_u64(&c->reserve.count) < z->reserve_target) {
                lb_cache_mag_to_stack(c, m, &c->reserve, LB_S_RESERVED);
            } else if ((e = lb_depot_pop(c, &c->empty))) {
                lb_depot_push(c, &c->full, m);
                lb_store_rlx_ptr(&l->loaded, e);
                if (lb_load_rlx_u64(&c->full.count) * c->mag_size > 2 * (z->high - z->reserve_target) + c->mag_size)
                    lb_zone_kick(z);
            } else if (lb_spin_trylock_bounded(&z->buddy.lock, LB_TRYLOCK_TRIES)) {
                lb_cache_mag_to_buddy(c, m);
                lb_zone_buddy_unlock(z);
            } else {
                lb_cache_mag_to_stack(c, m, &c->pending, LB_S_PENDING);
                lb_zone_kick(z);
            }
        }
        bool ok = lb_level_push(l, p, c->mag_size);
        LB_CHECK(ok);
    }
}

void lb_zone_free_remote(struct labyrinth_zone *z, void *p, struct lb_region *r, uint32_t idx,
                         uint64_t w, uint32_t d, int *rc)
{
    struct lb_cache *c = &z->cache;
    struct lb_level *l = lb_tls_level(c, d);
    if (!l && d == 0 && lb_cache_claim(c))
        l = lb_tls_level(c, 0);
    *rc = -ENOSPC;
    if (l) {
        *rc = lb_level_remote_free(c, l, p, lb_page_id(r, idx), w);
        if (*rc == 0 && lb_load_rlx_u32(&z->kick)) {
            /* Pages are short: hand our batches on now.  With a warden,
             * once per warden run (a flush per free parked the shared
             * magazine pool in the owner's inbox, a page or two per
             * magazine, and sent later frees to the CAS fallback).  Without
             * one nothing clears the kick or counts runs: every free while
             * short is handed on at once.  Relaxed load of warden_runs: a
             * run count (the warden's relaxed increment), no data hangs
             * on it; a stale value costs one flush more or less. */
            if (z->warden_running)
                lb_level_flush_once(c, l, (uint32_t)lb_load_rlx_u64(&z->warden_runs));
            else
                lb_level_flush_outboxes(c, l);
        }
    }
    if (*rc != -ENOSPC)
        return;
    /* No level or no magazine to queue in: take the page back with a CAS
     * (exact against any other CAS; see docs/design.md on the one race it
     * cannot see: the owner's own plain free of the same page). */
    lb_add_rlx_u64(&c->remote_fallbacks, 1);
    if (!lb_cas_rlx_u64(&r->desc[idx], &w, lb_d_make(LB_S_CACHED, 0, 0))) {
        *rc = lb_d_refuse(w, 0) == -ENXIO ? -EALREADY : lb_d_refuse(w, 0) ? lb_d_refuse(w, 0) : -EBUSY;
        return;
    }
    *rc = 0;
    lb_zone_free0_slow(z, p, r, idx, d);
}

/* A queued free found invalid by the page's owner: the page was freed
 * twice (the other free got there first), or not by this generation. */
static void lb_zone_bad_entry(void *ctx, void *page, uint64_t w)
{
    struct labyrinth_zone *z = ctx;
    char b[200];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, "free_pages(");
    lb_fmt_hex(&f, (uintptr_t)page);
    lb_fmt_str(&f, ", order 0) refused when its owner took the batch: double free, the block is ");
    lb_fmt_str(&f, lb_d_state(w) == LB_S_ALLOC ? "allocated again (EALREADY)" : "not allocated (EALREADY)");
    struct labyrinth_report rep = {0};
    rep.kind = LABYRINTH_REPORT_BAD_FREE;
    rep.err = -EALREADY;
    rep.zone_name = z->name;
    rep.addr = page;
    rep.message = b;
    lb_zone_report(z, &rep);
}

void lb_zone_settle(struct labyrinth_zone *z)
{
    struct lb_cache *c = &z->cache;
    for (uint32_t t = 0; t < c->ntcaches; t++)
        for (unsigned d = 0; d < LB_LEVELS; d++)
            lb_level_flush_outboxes(c, &c->tcaches[t].lvl[d]);
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
                lb_depot_push(c, &c->empty, m);
                m = next;
            }
            lb_spin_unlock(&z->buddy.lock);
        }
}

lb_atomic_u64 *lb_zone_desc_slow(struct labyrinth_zone *z, const void *p)
{
    struct lb_region *r = lb_regmap_lookup(&z->map, (uintptr_t)p);
    LB_CHECK(r != NULL); /* a page from a magazine is always in a region */
    return &r->desc[((uintptr_t)p - r->base) >> z->page_shift];
}

/* ---- the warden ------------------------------------------------------------------------------------ */

static uint64_t lb_zone_rebalance_locked(struct labyrinth_zone *z);

uint64_t lb_zone_rebalance(struct labyrinth_zone *z)
{
    lb_os_mutex_lock(&z->rebalance_mutex);
    uint64_t moved = lb_cache_reap(&z->cache) + lb_zone_rebalance_locked(z);
    lb_os_mutex_unlock(&z->rebalance_mutex);
    return moved;
}

static long lb_zone_grow(struct labyrinth_zone *z);

static uint64_t lb_zone_rebalance_locked(struct labyrinth_zone *z)
{
    struct lb_cache *c = &z->cache;
    uint64_t moved = 0;
    /* Grow ahead of need: when what is free (buddy, depot, reserve) has
     * fallen below low and the zone may grow, add a region now rather than
     * make a KERNEL caller wait for it. */
    if (!z->caller_memory && lb_load_rlx_u64(&z->total_pages) < z->max_pages &&
        lb_load_rlx_u64(&z->buddy.free_pages) + lb_load_rlx_u64(&c->full.count) * c->mag_size +
                lb_load_rlx_u64(&c->reserve.count) < z->low) {
        long g = lb_zone_grow(z);
        if (g > 0)
            moved += (uint64_t)g;
    }
    lb_spin_lock(&z->buddy.lock);
    moved += lb_cache_drain_pending(c, UINT64_MAX);
    uint64_t rl = lb_load_rlx_u64(&c->reserve.count);
    if (rl < z->reserve_target)
        moved += lb_cache_reserve_fill(c, z->reserve_target - rl);
    else if (rl > z->reserve_target + c->mag_size)
        moved += lb_cache_reserve_trim(c, rl - z->reserve_target);
    lb_spin_unlock(&z->buddy.lock);

    /* The lock-free supply is the reserve plus the depot's full magazines:
     * below low, fill the depot until the supply reaches high. */
    uint64_t dp = lb_load_rlx_u64(&c->full.count) * c->mag_size;
    uint64_t depot_high = z->high - z->reserve_target;
    /* While KERNEL callers wait, leave the buddy's blocks to them. */
    if (dp + lb_load_rlx_u64(&c->reserve.count) < z->low && !lb_load_rlx_u32(&z->waiters)) {
        while (dp + c->mag_size <= LB_MAX(depot_high, (size_t)c->mag_size)) {
            struct lb_mag *e = lb_depot_pop(c, &c->empty);
            if (!e)
                break;
            /* One magazine per lock hold: ATOMIC try-lockers wait little. */
            lb_spin_lock(&z->buddy.lock);
            uint32_t n = lb_cache_fill_from_buddy(c, e, c->mag_size);
            if (n < c->mag_size)
                lb_cache_mag_to_buddy(c, e);
            lb_spin_unlock(&z->buddy.lock);
            if (n < c->mag_size) {
                lb_depot_push(c, &c->empty, e);
                break;
            }
            lb_depot_push(c, &c->full, e);
            dp += c->mag_size;
            moved += c->mag_size;
        }
    } else if (dp > 2 * depot_high + c->mag_size) {
        while (dp > depot_high) {
            struct lb_mag *m = lb_depot_pop(c, &c->full);
            if (!m)
                break;
            lb_spin_lock(&z->buddy.lock);
            lb_cache_mag_to_buddy(c, m);
            lb_spin_unlock(&z->buddy.lock);
            lb_depot_push(c, &c->empty, m);
            dp -= c->mag_size;
            moved += c->mag_size;
        }
    }
    if (moved)
        lb_add_rlx_u64(&z->warden_moved, moved);
    return moved;
}

static void *lb_warden_main(void *arg)
{
    struct labyrinth_zone *z = arg;
    const uint64_t min_ns = 100000, max_ns = (uint64_t)z->warden_interval_us * 1000u;
    uint64_t interval = min_ns;
    for (;;) {
        uint32_t w = lb_load_rlx_u32(&z->warden_word);
        if (lb_load_rlx_u32(&z->warden_stop))
            break;
        /* A kick or a waiter shortens the sleep but never skips it: with
         * the zone exhausted, ATOMIC callers kick at every failure, and a
         * warden that does not sleep would take a CPU for nothing.  KERNEL
         * waiters and the stop request wake the futex at once. */
        if (lb_load_rlx_u32(&z->kick) || lb_load_rlx_u32(&z->waiters))
            interval = min_ns;
        lb_os_futex_wait(&z->warden_word, w, interval);
        if (lb_load_rlx_u32(&z->warden_stop))
            break;
        bool kicked = lb_load_rlx_u32(&z->kick) != 0;
        if (kicked)
            lb_store_rlx_u32(&z->kick, 0);
        uint64_t moved = lb_zone_rebalance(z);
        lb_add_rlx_u64(&z->warden_runs, 1);
        if (moved || kicked)
            interval = min_ns;
        else if (interval < max_ns)
            interval = LB_MIN(interval * 2, max_ns);
        if (lb_load_rlx_u32(&z->waiters)) {
            /* Release: pairs with lb_zone_wait's acquire of free_seq. */
            lb_add_acqrel_u32(&z->free_seq, 1);
            lb_os_futex_wake(&z->free_seq, 1 << 30);
            if (!moved)
                lb_os_sleep_ns(min_ns); /* nothing to give: do not spin */
        }
    }
    return NULL;
}

/* ---- regions: info and shrinking --------------------------------------------------------- */

int lb_zone_region_info(struct labyrinth_zone *z, unsigned index, struct labyrinth_region_info *o)
{
    if (index >= lb_regmap_count(&z->map))
        return -ENOENT;
    struct lb_region *r = lb_regmap_get(&z->map, index);
    memset(o, 0, sizeof *o);
    o->start = (void *)r->lo;
    o->pages = lb_region_pages(r);
    o->huge_page_bytes = r->huge_bytes;
    o->transparent_huge = (r->got & LB_OS_GOT_THP) != 0;
    o->locked = r->locked;
    o->caller_memory = z->caller_memory && index == 0;
    o->released = r->released;
    int largest = -1;
    lb_spin_lock(&z->buddy.lock);
    o->free_pages = r->released ? 0 : lb_buddy_region_free(&z->buddy, r, &largest);
    lb_spin_unlock(&z->buddy.lock);
    o->largest_free_order = largest < 0 ? (size_t)-1 : (size_t)largest;
    if (r->phys && !r->released) {
        o->first_phys = r->phys[r->first];
        o->phys_runs = 1;
        for (uint32_t i = r->first + 1; i < r->end; i++)
            o->phys_runs += r->phys[i] != r->phys[i - 1] + z->page_size;
    }
    return 0;
}

long lb_zone_shrink(struct labyrinth_zone *z)
{
    long released = 0;
    bool gone[LB_MAX_REGIONS] = {0};
    /* Lock order: rebalance, then grow (as the warden). */
    lb_os_mutex_lock(&z->rebalance_mutex);
    lb_os_mutex_lock(&z->grow_mutex);
    lb_zone_drain_depot(z);
    unsigned n = lb_regmap_count(&z->map);
    lb_spin_lock(&z->buddy.lock);
    lb_cache_drain_pending(&z->cache, UINT64_MAX);
    for (unsigned i = 1; i < n; i++) {
        struct lb_region *r = lb_regmap_get(&z->map, i);
        if (r->released)
            continue;
        size_t pages = lb_buddy_remove_region(&z->buddy, r);
        if (!pages)
            continue;
        r->released = true;
        gone[i] = true;
        released += (long)pages;
    }
    lb_spin_unlock(&z->buddy.lock);
    for (unsigned i = 1; i < n; i++) {
        if (!gone[i])
            continue;
        struct lb_region *r = lb_regmap_get(&z->map, i);
        lb_regmap_remove(&z->map, r);
        lb_os_mutex_lock(&lb_registry_mutex);
        lb_range_remove_addr(r->lo);
        lb_os_mutex_unlock(&lb_registry_mutex);
        /* The pages go; the descriptors stay mapped until the zone is
         * destroyed, for readers that found the region just before. */
        LB_TOOL_FORGET((void *)r->lo, r->bytes);
        lb_os_unmap(&r->pages_map);
        lb_store_rlx_u64(&z->total_pages, lb_load_rlx_u64(&z->total_pages) - lb_region_pages(r));
        lb_add_rlx_u64(&z->shrink_events, 1);
    }
    lb_os_mutex_unlock(&z->grow_mutex);
    lb_os_mutex_unlock(&z->rebalance_mutex);
    return released;
}

/* ---- stats and check --------------------------------------------------------------------------------- */

void lb_zone_stats(struct labyrinth_zone *z, struct labyrinth_zone_stats *o)
{
    struct lb_cache *c = &z->cache;
    struct lb_cache_counts cc;
    memset(o, 0, sizeof *o);
    /* The warden moves pages between places in steps: keep it out of the
     * snapshot, so a zone no application thread touches reads exactly. */
    lb_os_mutex_lock(&z->rebalance_mutex);
    lb_cache_counts(c, &cc);
    o->page_size = z->page_size;
    o->total_pages = lb_load_rlx_u64(&z->total_pages);
    o->max_pages = z->max_pages;
    o->regions = lb_regmap_count(&z->map);
    o->buddy_free_pages = lb_load_rlx_u64(&z->buddy.free_pages);
    o->cached_pages = cc.cached_pages;
    o->depot_pages = cc.depot_pages;
    o->reserve_free_pages = lb_load_rlx_u64(&c->reserve.count);
    size_t pending = lb_load_rlx_u64(&c->pending_pages);
    size_t free_pages = o->buddy_free_pages + o->cached_pages + o->reserve_free_pages + pending +
                        cc.in_flight_pages;
    o->free_pages = LB_MIN(free_pages, o->total_pages);
    o->in_use_pages = o->total_pages - o->free_pages;
    o->reserve_target_pages = z->reserve_target;
    o->low_pages = z->low;
    o->high_pages = z->high;
    uint64_t lw = lb_load_rlx_u64(&c->reserve_low_water);
    o->reserve_low_water = lw == UINT64_MAX ? o->reserve_free_pages : lw;
    o->threads = cc.threads;
    int lo = lb_buddy_largest_order(&z->buddy);
    o->largest_free_order = lo < 0 ? (size_t)-1 : (size_t)lo;
    uint64_t blocks_total = 0;
    for (unsigned i = 0; i <= z->max_order; i++) {
        o->free_blocks[i] = lb_load_rlx_u64(&z->buddy.free_blocks[i]);
        blocks_total += o->free_blocks[i];
    }
    /* The extfrag index of Linux's mm/vmstat.c, computed over the buddy. */
    for (unsigned j = 0; j <= z->max_order; j++) {
        bool suitable = false;
        for (unsigned i = j; i <= z->max_order; i++)
            suitable |= o->free_blocks[i] != 0;
        if (!blocks_total)
            o->frag_index[j] = 0;
        else if (suitable)
            o->frag_index[j] = -1000;
        else
            o->frag_index[j] = (int)(1000 - (1000 + o->buddy_free_pages * 1000 / ((uint64_t)1 << j)) / blocks_total);
    }
    o->shrink_events = lb_load_rlx_u64(&z->shrink_events);
    o->atomic_allocs = cc.allocs[LABYRINTH_GFP_ATOMIC & 3] + cc.allocs[LABYRINTH_GFP_BIT_RESERVE];
    o->nowait_allocs = cc.allocs[LABYRINTH_GFP_NOWAIT & 3];
    o->kernel_allocs = cc.allocs[LABYRINTH_GFP_KERNEL & 3];
    o->atomic_failures = lb_load_rlx_u64(&z->fails[3]) + lb_load_rlx_u64(&z->fails[1]);
    o->nowait_failures = lb_load_rlx_u64(&z->fails[2]);
    o->kernel_failures = lb_load_rlx_u64(&z->fails[0]);
    o->misuse_reports = lb_load_rlx_u64(&z->misuse);
    o->atomic_reserve_allocs = lb_load_rlx_u64(&z->reserve_allocs);
    o->kernel_waits = lb_load_rlx_u64(&z->kernel_waits);
    o->frees = cc.frees;
    o->warden_runs = lb_load_rlx_u64(&z->warden_runs);
    o->warden_pages_moved = lb_load_rlx_u64(&z->warden_moved);
    o->grow_events = lb_load_rlx_u64(&z->grow_events);
    o->retry_cap_hits = lb_load_rlx_u64(&c->retry_cap_hits);
    o->in_flight_pages = cc.in_flight_pages;
    o->quarantined_pages = cc.quarantined_pages;
    o->remote_cas_fallbacks = lb_load_rlx_u64(&c->remote_fallbacks);
    o->max_retries = lb_load_rlx_u64(&c->max_retries);
    lb_os_mutex_unlock(&z->rebalance_mutex);
    o->metadata_bytes = lb_load_rlx_u64(&z->metadata_bytes);
    o->locked_pages = 0;
    unsigned n = (unsigned)o->regions;
    for (unsigned i = 0; i < n; i++) {
        struct lb_region *r = lb_regmap_get(&z->map, i);
        if (r && r->locked)
            o->locked_pages += lb_region_pages(r);
    }
}

/* One mapping per region (the first n), each holding its own description
 * in its first cache line and then one mark byte per page: the callers
 * keep only mark[] on the stack (a kernel's stack is small). */
int lb_zone_marks_map(struct labyrinth_zone *z, unsigned n, uint8_t **mark)
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
static void lb_check_say(struct labyrinth_zone *z, long n, const char *what)
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

long lb_zone_check(struct labyrinth_zone *z)
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
    uint64_t in_flight = 0, queued_invalid = 0;
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
                LB_VIOLATION(s == LB_S_RESERVED && o != 0, "a reserved page of order > 0");
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
    LB_VIOLATION(allocs - (cc.frees - queued_invalid) != blocks_in_use,
                 "counters: allocations minus frees differ from the blocks in use");
    lb_zone_marks_unmap(nreg, mark);
    return bad;
}
