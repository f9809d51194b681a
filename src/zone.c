/*
 * zone.c - layer 5: the zone: its plan (configuration and defaults),
 * creation, destruction, and address lookup.
 */
#include "zone.h"
#include "remote.h"
#include "lb_annotate.h"

struct lb_plan {
    size_t pages, max_pages, reserve, low, high;
    unsigned max_order, mag_size, ntcaches, quarantine;
    uint32_t nmags;
};

/* A refused creation (issue 16.7): there is no zone yet, so no handler of
 * the caller's; one line through the default report handler names the
 * field, its value and what it may be ("rel limit why"), and err is
 * returned.  rel NULL: no limit to state. */
static int lb_create_refuse(int err, const char *field, uint64_t value, const char *rel, uint64_t limit,
                            const char *why)
{
    char b[256];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, "zone_create refused (");
    lb_fmt_str(&f, lb_errname(err));
    lb_fmt_str(&f, "): ");
    lb_fmt_str(&f, field);
    lb_fmt_str(&f, " ");
    if (!strcmp(field, "memory"))
        lb_fmt_ptr(&f, (const void *)(uintptr_t)value);
    else
        lb_fmt_dec(&f, value);
    if (rel) {
        lb_fmt_str(&f, " ");
        lb_fmt_str(&f, rel);
        lb_fmt_str(&f, " ");
        lb_fmt_dec(&f, limit);
    }
    if (why) {
        lb_fmt_str(&f, " ");
        lb_fmt_str(&f, why);
    }
    struct labyrinth_report rep = lb_report_make(LABYRINTH_REPORT_BAD_ARGS, NULL, err, b);
    lb_report_default(&rep, NULL);
    return err;
}
#define LB_REFUSE(field, value, rel, limit, why) \
    lb_create_refuse(-EINVAL, field, (uint64_t)(value), rel, (uint64_t)(limit), why)

/* A creation the OS or the registry refused: the line says which. */
static int lb_create_fail(int rc, const struct labyrinth_zone_config *cfg, size_t pages)
{
    const char *why;
    switch (-rc) {
    case ENOMEM: why = "could not be mapped, pre-faulted or (MUST_LOCK, DMA) locked: out of memory"; break;
    case EPERM: why = (cfg->flags & LABYRINTH_ZONE_DMA)
                          ? "could not be locked (RLIMIT_MEMLOCK) or their physical addresses read (root or CAP_SYS_ADMIN)"
                          : "could not be locked: RLIMIT_MEMLOCK (and MUST_LOCK asks for it)";
        break;
    case EIO: why = "have no physical addresses: /proc/self/pagemap could not be read"; break;
    case ENOSPC: why = "make one zone too many: 1024 live zones at most"; break;
    case EAGAIN: why = "are there, but the warden thread could not be started"; break;
    default: why = "could not be made"; break;
    }
    return lb_create_refuse(rc, "pages", pages, NULL, 0, why);
}

/* The largest quarantine a zone of these pages and reserve accepts: a
 * quarter of what is not the reserve (issue 18.3: a quarantine as large as
 * the zone held every freed page back, and ATOMIC failed with the zone
 * all free). */
static size_t lb_quarantine_max(size_t pages, size_t reserve)
{
    size_t q = (pages - reserve) / 4;
    return LB_MIN(q, (size_t)4096);
}

static int lb_plan_make(const struct labyrinth_zone_config *cfg, size_t pages, struct lb_plan *p)
{
    p->pages = pages;
    if (pages < 1 || pages > (size_t)LB_REGION_MAX_PAGES)
        return LB_REFUSE("pages", pages, "must be 1 to", LB_REGION_MAX_PAGES, "(pages of one region)");
    p->max_order = cfg->max_order ? cfg->max_order : 10;
    if (p->max_order > LB_ORDER_LIMIT)
        return LB_REFUSE("max_order", p->max_order, "must be at most", LB_ORDER_LIMIT,
                         "(LABYRINTH_MAX_ORDER_LIMIT)");
    /* A block never spans regions: the OS must give a region that holds
     * one (a kernel: 2^(MAX_ORDER-1) pages; user space: no limit). */
    if (!cfg->memory && ((size_t)1 << p->max_order) > lb_os_region_max_pages())
        return LB_REFUSE("max_order", p->max_order, "makes a block larger than the OS maps in one region, pages:",
                         lb_os_region_max_pages(), NULL);
    p->max_pages = cfg->max_pages ? cfg->max_pages : pages;
    if (p->max_pages < pages)
        return LB_REFUSE("max_pages", p->max_pages, "must be at least pages,", pages, "(or 0)");
    if (p->max_pages > (size_t)LB_REGION_MAX_PAGES * LB_MAX_REGIONS)
        return LB_REFUSE("max_pages", p->max_pages, "must be at most", (size_t)LB_REGION_MAX_PAGES * LB_MAX_REGIONS,
                         "(64 regions)");
    /* Watermarks, as the kernel's min <= low <= high: a default adapts to
     * the fields the caller set; fields set out of order are refused. */
    p->reserve = cfg->reserve_pages ? cfg->reserve_pages : pages / 16;
    if (cfg->low_pages && !cfg->reserve_pages && p->reserve > cfg->low_pages)
        p->reserve = cfg->low_pages;
    p->low = cfg->low_pages ? cfg->low_pages : LB_MAX(pages / 8, p->reserve);
    if (cfg->high_pages && !cfg->low_pages && p->low > cfg->high_pages)
        p->low = LB_MAX(p->reserve, cfg->high_pages);
    p->high = cfg->high_pages ? cfg->high_pages : LB_MIN(pages, LB_MAX(pages / 4, p->low));
    if (p->high > pages)
        return LB_REFUSE("high_pages", p->high, "must be at most pages,", pages, "(reserve <= low <= high <= pages)");
    if (p->low > p->high)
        return LB_REFUSE("low_pages", p->low, "must be at most high_pages,", p->high, "(reserve <= low <= high <= pages)");
    if (p->reserve > p->low)
        return LB_REFUSE("reserve_pages", p->reserve, "must be at most low_pages,", p->low,
                         "(reserve <= low <= high <= pages)");
    if (cfg->magazine_pages) {
        if (cfg->magazine_pages > LB_MAG_MAX)
            return LB_REFUSE("magazine_pages", cfg->magazine_pages, "must be at most", LB_MAG_MAX, NULL);
        p->mag_size = cfg->magazine_pages;
    } else {
        p->mag_size = (unsigned)LB_MIN((size_t)64, LB_MAX((size_t)2, pages / 64));
    }
    p->ntcaches = cfg->max_threads ? cfg->max_threads : (cfg->memory ? 8u : 64u);
    if (p->ntcaches > 4096)
        return LB_REFUSE("max_threads", p->ntcaches, "must be at most", 4096, NULL);
    p->quarantine = cfg->quarantine_pages;
    if (p->quarantine > lb_quarantine_max(pages, p->reserve))
        return LB_REFUSE("quarantine_pages", p->quarantine, "must be at most", lb_quarantine_max(pages, p->reserve),
                         "(a quarter of pages - reserve_pages, and 4096)");
    /* The depot holds up to high - reserve pages (more while the warden
     * has not trimmed it), in full magazines. */
    p->nmags = p->ntcaches * 2 * LB_LEVELS + (uint32_t)((2 * p->high + p->mag_size - 1) / p->mag_size) + 4;
    return 0;
}

static size_t lb_zone_fixed_meta(const struct lb_plan *p)
{
    return lb_align_up(sizeof(struct lb_zone), LB_CACHELINE) +
           lb_cache_meta_bytes(p->mag_size, p->nmags, p->ntcaches, p->quarantine);
}

static void lb_zone_fill_common(struct lb_zone *z, const struct labyrinth_zone_config *cfg,
                                const struct lb_plan *p)
{
    z->serial = lb_registry_next_serial();
    const char *name = cfg->name ? cfg->name : "zone";
    size_t n = strnlen(name, sizeof z->name);
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

/* The clock's conversion (lb_clock_of), once the counter is calibrated
 * (cycles_per_ms, 0 when it was not), into the zone and its handle: both
 * are still the creator's (the handle's users get it when create returns,
 * the warden when it is started after this).  2^42 / (1024 cycles per us)
 * = 2^32 * 1000 / cycles per ms; rounded down, like cycles_per_ms's upper
 * bound, so the clock is never ahead. */
static void lb_zone_set_clock(struct lb_zone *z)
{
    z->clock_mult = z->cycles_per_ms ? ((uint64_t)1000 << 32) / z->cycles_per_ms : 0;
    if (z->handle)
        z->handle->clock_mult = z->clock_mult;
}

/* Caller memory [start, end): how many pages fit after the metadata of
 * a zone of n pages (*fit), or a negative errno from the plan. */
static int lb_caller_fit(const struct labyrinth_zone_config *cfg, size_t n, uintptr_t start, uintptr_t end,
                         size_t pg, size_t *fit)
{
    struct labyrinth_zone_config c2 = *cfg;
    struct lb_plan trial = {0}; /* set by lb_plan_make; zeroed for -O2's maybe-uninitialized */
    c2.max_pages = 0;
    int rc = lb_plan_make(&c2, n, &trial);
    if (rc)
        return rc;
    size_t span = n + ((size_t)1 << trial.max_order);
    size_t region_meta = lb_region_meta_bytes(span, !(cfg->flags & LABYRINTH_ZONE_NO_TRACKING),
                                              cfg->flags & LABYRINTH_ZONE_DMA);
    uintptr_t pages_at = lb_align_up_ptr(start + lb_zone_fixed_meta(&trial) + region_meta, pg);
    *fit = pages_at < end ? (end - pages_at) / pg : 0;
    return 0;
}

int lb_zone_create(const struct labyrinth_zone_config *cfg_in, struct lb_zone **out)
{
    static const struct labyrinth_zone_config zero_cfg;
    const struct labyrinth_zone_config *cfg = cfg_in ? cfg_in : &zero_cfg;
    struct lb_plan plan;
    int rc;
    *out = NULL;
    /* The name is one line of report text and (a kernel) a debugfs
     * directory: a newline forged a second "labyrinth:" log line, and a
     * '/' left the zone without its directory, silently (issue 17
     * review, KB44).  Only the bytes kept are looked at
     * (lb_zone_fill_common); checked first, as the flags are, before any
     * memory is looked at. */
    if (cfg->name)
        for (size_t i = 0; cfg->name[i] && i < LB_NAME_MAX - 1; i++) {
            unsigned char ch = (unsigned char)cfg->name[i];
            if (ch < 0x20 || ch == 0x7f || ch == '/')
                return LB_REFUSE("name byte", i, NULL, 0,
                                 "is a control character or '/': a zone name is printable text of one line");
        }
    if (cfg->flags & ~LABYRINTH_ZONE_FLAGS_ALL)
        return LB_REFUSE("flags", cfg->flags, "may only have the bits of", LABYRINTH_ZONE_FLAGS_ALL,
                         "(LABYRINTH_ZONE_FLAGS_ALL)");
    if (cfg->quality & ~LABYRINTH_QUALITY_ALL)
        return LB_REFUSE("quality", cfg->quality, "may only have the bits of", LABYRINTH_QUALITY_ALL,
                         "(LABYRINTH_QUALITY_ALL)");
    if ((cfg->flags & LABYRINTH_ZONE_NO_TRACKING) && (cfg->quality & LABYRINTH_QUALITY_TRACK))
        return LB_REFUSE("quality", cfg->quality, NULL, 0, "has TRACK, which ZONE_NO_TRACKING excludes");
    /* memory_bytes without memory used to make a default mmap zone
     * quietly (issue 18.5). */
    if (!cfg->memory && cfg->memory_bytes)
        return LB_REFUSE("memory_bytes", cfg->memory_bytes, NULL, 0, "given with memory NULL");
    size_t pg = lb_os_page_size();
    struct lb_zone *z;
    void *meta;
    bool claimed = false;

    if (cfg->memory) {
        if (!cfg->memory_bytes)
            return LB_REFUSE("memory_bytes", 0, NULL, 0, "must be given with memory");
        if (cfg->flags & LABYRINTH_ZONE_MUST_LOCK)
            return LB_REFUSE("flags", cfg->flags, NULL, 0, "has ZONE_MUST_LOCK, which caller memory excludes");
        if (cfg->max_pages && cfg->max_pages != cfg->pages)
            return LB_REFUSE("max_pages", cfg->max_pages, "must be 0 or pages,", cfg->pages,
                             "(zones over caller memory do not grow)");
        uintptr_t start = lb_align_up_ptr((uintptr_t)cfg->memory, LB_CACHELINE);
        uintptr_t end = (uintptr_t)cfg->memory + cfg->memory_bytes;
        if (end < (uintptr_t)cfg->memory)
            return LB_REFUSE("memory_bytes", cfg->memory_bytes, NULL, 0, "wraps around the address space");
        if (end <= start)
            return lb_create_refuse(-ENOMEM, "memory_bytes", cfg->memory_bytes, NULL, 0,
                                    "holds no metadata and no page");
        /* Pages and metadata share the buffer: the metadata first. Find the
         * largest page count whose metadata still fits (a few rounds). */
        size_t n = (end - start) / pg, fit = 0;
        /* More memory than one region holds (its pages plus the alignment
         * hole before them): the rest stays unused. */
        unsigned mo = cfg->max_order ? cfg->max_order : 10;
        bool region_capped = false;
        if (mo <= LB_ORDER_LIMIT && n > LB_REGION_MAX_PAGES - ((size_t)1 << mo)) {
            n = LB_REGION_MAX_PAGES - ((size_t)1 << mo);
            region_capped = true;
        }
        /* pages given: the metadata is sized for them, not for all the
         * buffer could hold (a 64 GiB buffer for 1024 pages wrote 400 MB
         * of metadata). */
        if (cfg->pages && cfg->pages < n) {
            n = cfg->pages;
            region_capped = false;
        }
        size_t cap = n;
        for (int round = 0; round < 8 && n; round++) {
            if ((rc = lb_caller_fit(cfg, n, start, end, pg, &fit)))
                return rc;
            if (fit >= n)
                break;
            n = fit;
        }
        /* Coming down from above, the rounds can stop a page or two short
         * of the most that fits (n's metadata is smaller than the count
         * it was computed from needed): step up while the next count's
         * metadata still leaves room for it, so that a zone of pages = 0
         * gets every page a given pages could. */
        for (int up = 0; up < 64 && fit >= n && n && n < cap; up++) {
            size_t fit2;
            if ((rc = lb_caller_fit(cfg, n + 1, start, end, pg, &fit2)))
                return rc;
            if (fit2 < n + 1)
                break;
            n++;
            fit = fit2;
        }
        if (!fit || !n)
            return lb_create_refuse(-ENOMEM, "memory_bytes", cfg->memory_bytes, NULL, 0,
                                    "holds the metadata but not one page more");
        if (cfg->pages) {
            if (cfg->pages > n)
                return LB_REFUSE("pages", cfg->pages, "must be at most what memory holds,", n,
                                 region_capped ? "(one region: 2^24 - 1 pages with the alignment hole)" : NULL);
            n = cfg->pages;
        }
        struct labyrinth_zone_config c2 = *cfg;
        c2.max_pages = 0;
        if ((rc = lb_plan_make(&c2, n, &plan)))
            return rc;
        /* No other live zone's caller memory or pages may overlap this
         * one (issue 18.4): its metadata would be written over the other's
         * pages, and the same buffer twice re-initialised a live zone; a
         * block allocated from a zone is its caller's, and may carry a
         * zone.  Claimed before anything of the buffer is written. */
        if ((rc = lb_registry_claim((uintptr_t)cfg->memory, end)))
            return lb_create_refuse(rc, "memory", (uintptr_t)cfg->memory, NULL, 0,
                                    rc == -EEXIST ? "overlaps the caller memory or the pages of a live zone"
                                                  : "needs a claim, and every one is taken (live zones)");
        claimed = true;
        z = (struct lb_zone *)start;
        memset(z, 0, lb_zone_fixed_meta(&plan));
        lb_zone_fill_common(z, cfg, &plan);
        z->caller_memory = true;
        z->claim_lo = (uintptr_t)cfg->memory;
        meta = (char *)z + lb_align_up(sizeof *z, LB_CACHELINE);
        char *rmeta = (char *)meta + lb_cache_meta_bytes(plan.mag_size, plan.nmags, plan.ntcaches, plan.quarantine);
        /* As lb_caller_fit sized it for these n pages. */
        size_t region_meta = lb_region_meta_bytes(n + ((size_t)1 << plan.max_order),
                                                  !(cfg->flags & LABYRINTH_ZONE_NO_TRACKING),
                                                  cfg->flags & LABYRINTH_ZONE_DMA);
        memset(rmeta, 0, region_meta);
        uintptr_t pages_at = lb_align_up_ptr((uintptr_t)rmeta + region_meta, pg);
        uintptr_t base = pages_at & ~(uintptr_t)((pg << plan.max_order) - 1);
        uint32_t first = (uint32_t)((pages_at - base) / pg);
        lb_region_init(&z->regions[0], 0, z->page_shift, base, first + (uint32_t)n, first,
                       first + (uint32_t)n, rmeta, !(cfg->flags & LABYRINTH_ZONE_NO_TRACKING),
                       cfg->flags & LABYRINTH_ZONE_DMA);
        lb_store_rlx_u64(&z->metadata_bytes, pages_at - (uintptr_t)cfg->memory);
        if (cfg->flags & LABYRINTH_ZONE_VERIFY)
            memset((void *)pages_at, z->poison, n * pg);
        else /* fault every page in now, by touching it: no OS call */
            for (size_t i = 0; i < n; i++)
                ((volatile char *)pages_at)[i * pg] = 0;
        if (cfg->flags & LABYRINTH_ZONE_DMA) {
            /* DMA over caller memory (issue 18.2): the pages are pinned
             * and their physical addresses read, as for a mapped zone, so
             * such a zone makes these OS calls.  Faulted in first (above),
             * then locked (a page not present has no physical address;
             * a DMA page must not move): a lock refused is EPERM (the
             * memlock limit) or ENOMEM, as ZONE_MUST_LOCK.  The lock stays
             * after destroy: mlock does not nest, and the memory may have
             * been locked by its owner before. */
            rc = lb_os_lock((void *)pages_at, n * pg);
            if (rc) {
                rc = rc == -EPERM ? -EPERM : -ENOMEM;
                lb_create_refuse(rc, "flags", cfg->flags, NULL, 0,
                                 rc == -EPERM ? "has ZONE_DMA: the caller memory could not be locked (memlock limit)"
                                              : "has ZONE_DMA: the caller memory could not be locked");
                goto fail_claimed;
            }
            z->regions[0].locked = true;
            rc = lb_os_phys_table((void *)pages_at, n, z->regions[0].phys + first);
            if (rc) {
                lb_create_refuse(rc, "flags", cfg->flags, NULL, 0,
                                 rc == -EPERM ? "has ZONE_DMA: physical addresses need root or CAP_SYS_ADMIN"
                                              : "has ZONE_DMA: /proc/self/pagemap could not be read");
                goto fail_claimed;
            }
            lb_region_phys_index(&z->regions[0]);
        }
    } else {
        size_t pages = cfg->pages ? cfg->pages : 4096;
        if ((rc = lb_plan_make(cfg, pages, &plan)))
            return rc;
        struct lb_os_mapping mm;
        size_t fixed = lb_align_up(lb_zone_fixed_meta(&plan), pg);
        if ((rc = lb_os_map(fixed, pg, LB_OS_MAP_GUARD | LB_OS_MAP_PREFAULT, &mm)))
            return lb_create_fail(rc, cfg, pages);
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
            return lb_create_fail(rc, cfg, pages);
        }
        lb_store_rlx_u64(&z->metadata_bytes, fixed + z->regions[0].meta_map.bytes);
    }

    lb_regmap_add(&z->map, &z->regions[0]); /* region 0 needs no table: cannot fail */
    z->r0_lo = z->regions[0].lo;
    z->r0_bytes = z->regions[0].bytes;
    z->r0_desc = &z->regions[0].desc[z->regions[0].first];
    z->r0_genhi = &z->regions[0].gen_hi[z->regions[0].first];
    z->r0_first = z->regions[0].first;
    z->r0_track = z->regions[0].track ? &z->regions[0].track[z->regions[0].first] : NULL;
    z->r0_track_hi = z->regions[0].track ? &z->regions[0].track_hi[z->regions[0].first] : NULL;
    z->site_fast = z->r0_track && !z->free_slow && !(z->quality & ~LABYRINTH_QUALITY_TRACK);
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
    lb_os_mutex_init(&z->grow_mutex, LB_MUTEX_GROW);
    lb_os_mutex_init(&z->rebalance_mutex, LB_MUTEX_REBALANCE);
    lb_registry_fork_init(); /* once per process, before the first zone is registered */
    lb_cache_tls_register(&z->cache);
    rc = lb_registry_add(z);
    if (rc)
        goto fail_registered; /* the TLS slot is given back too (issue 11.7) */
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
        /* The zeroed stock is the warden's: bounded by the reserve's size
         * (set before the warden starts; read only by it and by stats). */
        z->zero_max = z->reserve_target;
        z->cycles_per_ms = lb_os_cycles_per_ms();
        lb_zone_set_clock(z);
        rc = lb_os_thread_create(&z->warden, lb_warden_main, z, "lb-warden");
        if (rc) {
            rc = -EAGAIN;
            goto fail_registered;
        }
        z->warden_running = true;
    } else {
        z->cycles_per_ms = z->caller_memory ? 0 : lb_os_cycles_per_ms();
        lb_zone_set_clock(z);
    }
    lb_os_zone_event(z, z->name, true);
    /* The objects loaded now, for the callers that reports name from any
     * context (lb_os_symbolize_any; no system call). */
    lb_os_objects_note();
    /* A kernel's contexts are CPUs: more possible CPUs (online now or
     * later, by hotplug) than thread caches means some CPUs may take the
     * shared path; say so once (issue 17.10, KB41). */
    if (LB_OS_CTX_PER_CPU && lb_os_ncpus() > z->cache.ntcaches) {
        char b[200];
        struct lb_fmt f = {b, 0, sizeof b};
        lb_fmt_str(&f, "max_threads ");
        lb_fmt_dec(&f, z->cache.ntcaches);
        lb_fmt_str(&f, " is below the ");
        lb_fmt_dec(&f, lb_os_ncpus());
        lb_fmt_str(&f, " possible CPUs: the CPUs past the first to claim a cache take the shared path (no magazines)");
        lb_zone_notice(z, b);
    }
    *out = z;
    return 0;
fail_registered:
    lb_create_fail(rc, cfg, plan.pages);
    lb_registry_remove(z);
    lb_cache_tls_unregister(&z->cache);
    if (claimed) {
fail_claimed:
        lb_registry_unclaim((uintptr_t)cfg->memory);
    } else {
        struct lb_os_mapping mm = z->meta_map;
        unsigned n = lb_regmap_count(&z->map);
        lb_regmap_destroy(&z->map);
        for (unsigned i = 0; i < n; i++)
            lb_zone_region_unmap(&z->regions[i]);
        lb_os_unmap(&mm);
    }
    return rc;
}

void lb_zone_destroy(struct lb_zone *z)
{
    /* First the handle: from here every call on it is refused (EBADF). */
    lb_registry_kill_handle(z);
    lb_os_zone_event(z, z->name, false);
    /* After debugfs (just withdrawn) and the leak report (before this):
     * no reader of the records' sites is left. */
    lb_os_sites_release(&z->handle->sites);
    if (z->warden_running) {
        lb_store_rlx_u32(&z->warden_stop, 1);
        lb_add_rlx_u32(&z->warden_word, 1);
        lb_os_futex_wake(&z->warden_word, 1);
        lb_os_thread_join(z->warden);
        z->warden_running = false;
    }
    lb_registry_remove(z);
    lb_cache_tls_unregister(&z->cache);
    /* Nothing reads the zone after this: every call goes through its
     * handle, dead since lb_registry_kill_handle. */
    lb_os_mutex_destroy(&z->grow_mutex);
    lb_os_mutex_destroy(&z->rebalance_mutex);
    if (z->caller_memory) {
        uintptr_t claim = z->claim_lo;
        LB_TOOL_FORGET((void *)z->regions[0].lo, z->regions[0].bytes); /* the caller's again */
        /* Last: from here another zone may be made over this memory. */
        lb_registry_unclaim(claim);
        return;
    }
    unsigned n = lb_regmap_count(&z->map);
    lb_regmap_destroy(&z->map);
    for (unsigned i = 0; i < n; i++)
        lb_zone_region_unmap(&z->regions[i]);
    struct lb_os_mapping mm = z->meta_map;
    lb_os_unmap(&mm);
}

int lb_zone_region_of(struct lb_zone *z, uintptr_t a, struct lb_region **rp)
{
    *rp = lb_regmap_lookup(&z->map, a);
    if (*rp)
        return 0;
    uint64_t owner = lb_zone_owner_of(a);
    return owner && owner != z->serial ? -EXDEV : -EFAULT;
}

int lb_zone_locate(struct lb_zone *z, const void *addr, struct lb_region **rp, uint32_t *idxp)
{
    uintptr_t a = (uintptr_t)addr;
    struct lb_region *r;
    int rc = lb_zone_region_of(z, a, &r);
    if (rc)
        return rc;
    if (a & (z->page_size - 1))
        return -EINVAL;
    *rp = r;
    *idxp = lb_region_index(r, (const void *)a);
    return 0;
}

lb_atomic_u64 *lb_zone_desc_slow(struct lb_zone *z, const void *p)
{
    struct lb_region *r = lb_regmap_lookup(&z->map, (uintptr_t)p);
    LB_CHECK(r != NULL); /* a page from a magazine is always in a region */
    return &r->desc[lb_region_index(r, p)];
}

void lb_zone_own_slow(struct lb_zone *z, const struct lb_level *l, const void *p, uint64_t n, unsigned flags)
{
    struct lb_region *r = lb_regmap_lookup(&z->map, (uintptr_t)p);
    LB_CHECK(r != NULL); /* a page from a magazine is always in a region */
    uint32_t idx = lb_region_index(r, p);
    lb_level_own(l, &r->desc[idx], &r->gen_hi[idx], n, flags);
}
