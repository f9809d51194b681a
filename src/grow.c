/*
 * grow.c - layer 5: regions from the OS, growth, shrinking, region info.
 */
#include "zone.h"
#include "lb_annotate.h"

int lb_zone_region_os(struct lb_zone *z, unsigned index, size_t npages, struct lb_region *r)
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

void lb_zone_region_unmap(struct lb_region *r)
{
    if (!r->released) {
        LB_TOOL_FORGET((void *)r->lo, r->bytes);
        lb_os_unmap(&r->pages_map);
    }
    lb_os_unmap(&r->meta_map);
}


/* Add a region of up to want pages (normal context; capped by max_pages
 * and by the OS's largest region).  Returns pages added (0: at max_pages
 * or out of region slots), or a negative errno from the OS.  A growth
 * event unless this is the creation of a zone larger than one region. */
long lb_zone_grow_by(struct lb_zone *z, size_t want, bool event)
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
            lb_registry_range_add(r->lo, r->lo + r->bytes, z->serial);
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
long lb_zone_grow(struct lb_zone *z)
{
    return lb_zone_grow_by(z, LB_MAX(z->pages, (size_t)1 << z->max_order), true);
}


int lb_zone_region_info(struct lb_zone *z, unsigned index, struct labyrinth_region_info *o)
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

long lb_zone_shrink(struct lb_zone *z)
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
        lb_registry_range_remove(r->lo);
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
