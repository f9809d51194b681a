/*
 * registry.c - layer 5: the process-wide registry of live zones and of
 * their address ranges.
 */
#include "zone.h"
#include "lb_annotate.h"

/* Live zones, for handle validation (normal context, under the mutex). */
/* The handle table (zone.h): never unmapped, so any pointer can be checked
 * against it.  Slots are taken and freed under the registry mutex; readers
 * (lb_zone_get) take no lock. */
LB_HIDDEN struct labyrinth_zone lb_handles[LB_HANDLES]; /* zone.h: the fast paths' range check */
/* lb_handle_key (zone.h): two slots' addresses differ below bit LB_KEY_SHIFT. */
_Static_assert(sizeof lb_handles <= (1u << LB_KEY_SHIFT), "the handle table outgrew lb_handle_key's shift");
static unsigned lb_handle_next; /* round robin: the slot to try first  */
static unsigned lb_live_zones;

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

/* The slot h is, or NULL: h is not one (never dereferenced). */
static struct labyrinth_zone *lb_handle_slot(const struct labyrinth_zone *h)
{
    /* The fast paths' own test (zone.h): a slot's start inside the table. */
    return lb_handle_in_table(h) ? (struct labyrinth_zone *)(uintptr_t)h : NULL;
}

struct lb_zone *lb_zone_get(const struct labyrinth_zone *h)
{
    struct labyrinth_zone *s = lb_handle_slot(h);
    if (!s)
        return NULL;
    /* Acquire: pairs with the release store in lb_registry_add, so the
     * zone's fields are visible to whoever finds it here. */
    return (struct lb_zone *)lb_load_acq_ptr(&s->zone);
}

int lb_registry_add(struct lb_zone *z)
{
    int rc = -ENOSPC;
    lb_os_mutex_lock(&lb_registry_mutex);
    for (unsigned n = 0; n < LB_HANDLES && lb_live_zones < LB_MAX_ZONES; n++) {
        unsigned i = (lb_handle_next + n) % LB_HANDLES;
        struct labyrinth_zone *h = &lb_handles[i];
        /* Relaxed: slots are taken and freed under the registry mutex,
         * which we hold; the atomics are for lb_zone_get's lock-free reads. */
        if (lb_load_rlx_ptr(&h->zone) || lb_load_rlx_u64(&h->live_serial))
            continue;
        h->serial = z->serial;
        h->key = LB_KEY_WORD(z->serial);
        z->cache.tls_key = lb_handle_key(h); /* before any claim: the zone is not yet published */
        h->r0_lo = z->r0_lo;
        h->r0_bytes = z->r0_bytes;
        h->r0_desc = z->r0_desc;
        h->r0_genhi = z->r0_genhi;
        h->fast_gfp = z->fast_gfp;
        h->mag_size = z->mag_size;
        h->page_shift = z->page_shift;
        h->free_slow = z->free_slow;
        h->site_fast = z->site_fast;
        h->r0_track = z->r0_track;
        h->r0_track_hi = z->r0_track_hi;
        h->epoch_cycles = z->epoch_cycles;
        h->clock_mult = z->clock_mult;
        lb_store_rlx_u64(&h->clock, 0); /* no warden yet (it stores the first tick) */
        h->page_mask = z->page_mask;
        h->r0_first = z->r0_first;
        h->claim_lo = z->caller_memory ? z->claim_lo : 0;
        lb_store_rlx_u32(&h->inherited, 0); /* under the mutex, as every write */
        z->handle = h;
        lb_store_rlx_u64(&h->live_serial, z->serial); /* read under the mutex only */
        /* Release: the handle's hot line and the zone are complete before
         * the handle validates (pairs with lb_zone_get's acquire). */
        lb_store_rel_ptr(&h->zone, z);
        lb_handle_next = (i + 1) % LB_HANDLES;
        lb_live_zones++;
        rc = 0;
        break;
    }
    if (!rc) {
        struct lb_region *r0 = z->map.r0;
        lb_range_add(r0->lo, r0->lo + r0->bytes, z->serial);
    }
    lb_os_mutex_unlock(&lb_registry_mutex);
    return rc;
}

static void lb_handle_kill(struct labyrinth_zone *h)
{
    /* Every fast path misses from now on (a serial no thread's current
     * zone has, no region 0, no fast mode), and the slow paths' lb_zone_get
     * says NULL.  Plain stores: a call racing the destruction of its zone
     * breaks the contract (include/labyrinth.h); this only makes later
     * calls safe. */
    h->key = 0;
    h->serial = LB_SERIAL_DEAD;
    h->r0_bytes = 0;
    h->fast_gfp = 0;
    h->site_fast = false;
    /* Release: a reader that sees NULL (lb_zone_get's acquire) refuses the
     * handle; one that still sees the zone raced its destruction, which
     * the contract leaves to the caller.  Nothing is published here. */
    lb_store_rel_ptr(&h->zone, NULL);
}

void lb_registry_kill_handle(struct lb_zone *z)
{
    if (z->handle)
        lb_handle_kill(z->handle);
}

void lb_registry_remove(struct lb_zone *z)
{
    lb_os_mutex_lock(&lb_registry_mutex);
    struct labyrinth_zone *h = z->handle;
    /* Relaxed: under the registry mutex, as every write of live_serial. */
    if (h && lb_load_rlx_u64(&h->live_serial) == z->serial) {
        lb_registry_kill_handle(z);
        lb_store_rlx_u64(&h->live_serial, 0); /* the slot is free again */
        lb_live_zones--;
    }
    lb_range_remove_serial(z->serial);
    lb_os_mutex_unlock(&lb_registry_mutex);
}

uint64_t lb_registry_next_serial(void)
{
    /* Relaxed: serials only need to be unique. */
    return lb_add_rlx_u64(&lb_next_serial, 1) + 1;
}

void lb_registry_range_add(uintptr_t lo, uintptr_t hi, uint64_t serial)
{
    lb_os_mutex_lock(&lb_registry_mutex);
    lb_range_add(lo, hi, serial);
    lb_os_mutex_unlock(&lb_registry_mutex);
}

void lb_registry_range_remove(uintptr_t lo)
{
    lb_os_mutex_lock(&lb_registry_mutex);
    lb_range_remove_addr(lo);
    lb_os_mutex_unlock(&lb_registry_mutex);
}

/* Caller memory of live zones (issue 18.4), under the registry mutex:
 * one entry per caller-memory zone, so LB_MAX_ZONES are enough. */
static struct {
    uintptr_t lo, hi; /* hi 0: a free entry */
} lb_claims[LB_MAX_ZONES];

/* The live zone with this serial, or whose caller memory starts at
 * claim_lo (serial 0), or NULL (registry mutex held: it cannot go away). */
static struct lb_zone *lb_registry_find(uint64_t serial, uintptr_t claim_lo)
{
    for (unsigned i = 0; i < LB_HANDLES; i++) {
        /* Relaxed: slots change under the registry mutex, which we hold. */
        struct lb_zone *z = lb_load_rlx_ptr(&lb_handles[i].zone);
        if (z && (serial ? lb_load_rlx_u64(&lb_handles[i].live_serial) == serial
                         : z->caller_memory && z->claim_lo == claim_lo))
            return z;
    }
    return NULL;
}

/* [lo, hi) lies inside one block allocated from z: memory its caller
 * owns, which may carry a zone of its own (a zone nested in a block). */
static bool lb_zone_block_holds(struct lb_zone *z, uintptr_t lo, uintptr_t hi)
{
    struct lb_region *r = lb_regmap_lookup(&z->map, lo);
    if (!r)
        return false;
    uint32_t head = lb_region_block_head(r, lb_region_index(r, (const void *)lo), z->max_order);
    if (head == LB_NIL)
        return false;
    /* Relaxed: a block the caller holds does not change under it (one
     * being freed meanwhile is the caller's race, as any use of it). */
    uint64_t w = lb_load_rlx_u64(&r->desc[head]);
    uintptr_t b = lb_region_addr(r, head);
    return lb_d_state(w) == LB_S_ALLOC && hi <= b + (z->page_size << lb_d_order(w));
}

int lb_registry_claim(uintptr_t lo, uintptr_t hi)
{
    int rc = 0, free_at = -1;
    lb_os_mutex_lock(&lb_registry_mutex);
    for (unsigned i = 0; i < LB_MAX_ZONES && !rc; i++) {
        if (!lb_claims[i].hi) {
            if (free_at < 0)
                free_at = (int)i;
        } else if (lo < lb_claims[i].hi && lb_claims[i].lo < hi) { /* half-open: adjacent is fine */
            struct lb_zone *z = lb_registry_find(0, lb_claims[i].lo);
            if (!z || !lb_zone_block_holds(z, lo, hi))
                rc = -EEXIST;
        }
    }
    /* The pages of every live zone, caller memory or mapped (a buffer over
     * a mapped zone's free pages would be handed out by both).  Relaxed
     * loads: the ranges are written under the registry mutex, which we
     * hold (the atomics are for lb_zone_owner_of's lock-free reads). */
    unsigned used = lb_load_rlx_u32(&lb_ranges_used);
    for (unsigned i = 0; i < used && !rc; i++) {
        uint64_t serial = lb_load_rlx_u64(&lb_ranges[i].serial);
        if (serial && lo < lb_load_rlx_u64(&lb_ranges[i].hi) && lb_load_rlx_u64(&lb_ranges[i].lo) < hi) {
            struct lb_zone *z = lb_registry_find(serial, 0);
            if (!z || !lb_zone_block_holds(z, lo, hi))
                rc = -EEXIST;
        }
    }
    if (!rc && free_at < 0)
        rc = -ENOSPC;
    if (!rc) {
        lb_claims[free_at].lo = lo;
        lb_claims[free_at].hi = hi;
    }
    lb_os_mutex_unlock(&lb_registry_mutex);
    return rc;
}

void lb_registry_unclaim(uintptr_t lo)
{
    lb_os_mutex_lock(&lb_registry_mutex);
    for (unsigned i = 0; i < LB_MAX_ZONES; i++)
        if (lb_claims[i].hi && lb_claims[i].lo == lo) {
            lb_claims[i].hi = 0;
            break;
        }
    lb_os_mutex_unlock(&lb_registry_mutex);
}

/* ---- fork() (docs/design.md, "fork") ------------------------------------
 *
 * The child of a fork() has one thread and copies of the parent's
 * bookkeeping, but not the zones: every mapping labyrinth makes is
 * MADV_DONTFORK (os.h), the warden and the other threads (whose caches
 * may be half-way through a plain-store pop) do not exist there, mlock is
 * not inherited.  So every zone the parent had is refused in the child
 * (EBADF, with a report saying it was inherited) until the child destroys
 * it, which frees its slot and, for caller memory, its claim; zones the
 * child creates work normally.  The registry and TLS mutexes are held
 * across the fork, so the child's copies are consistent and its first
 * zone creation cannot find them locked for ever.  The hot paths pay
 * nothing: the child's hook makes them miss as a destroyed handle does. */
static void lb_fork_prepare(void)
{
    /* The order the hooks take them in; no path holds one while taking
     * the other. */
    lb_os_mutex_lock(&lb_registry_mutex);
    lb_cache_tls_fork_prepare();
}

static void lb_fork_parent(void)
{
    lb_cache_tls_fork_parent();
    lb_os_mutex_unlock(&lb_registry_mutex);
}

static void lb_fork_child(void)
{
    /* The child's only thread; the registry mutex, taken in prepare by
     * this thread, is made anew at the end.  Relaxed loads and stores
     * below: nothing else runs, but a signal handler of this thread may
     * read the handles (lb_zone_get), so each handle dies as
     * lb_handle_kill does it, hot line first, with a release store of
     * NULL last. */
    for (unsigned i = 0; i < LB_HANDLES; i++) {
        struct labyrinth_zone *h = &lb_handles[i];
        if (lb_load_rlx_ptr(&h->zone)) {
            lb_store_rlx_u32(&h->inherited, 1); /* before the zone goes: a report says why */
            lb_handle_kill(h);
        } else if (lb_load_rlx_u32(&h->inherited)) {
            /* Inherited already (we are a child's child): it stays so,
             * counted once, until destroyed here (the review of this
             * change: counting it off here too made the count wrap, and
             * every later creation fail with ENOSPC). */
        } else if (lb_load_rlx_u64(&h->live_serial)) {
            /* Being destroyed by a thread the child does not have: no one
             * here holds this handle any more. */
            lb_store_rlx_u64(&h->live_serial, 0);
            lb_live_zones--;
        }
    }
    /* No zone's address range is the child's: a mapped zone's pages are
     * not in it (and the addresses may be mapped anew), and a caller-memory
     * zone's copy is the caller's again.  A free of such an address to a
     * zone of the child is foreign (-EFAULT). */
    unsigned used = lb_load_rlx_u32(&lb_ranges_used);
    for (unsigned i = 0; i < used; i++)
        if (lb_load_rlx_u64(&lb_ranges[i].serial)) {
            /* A memory tool's marks of those pages (ASan's shadow is
             * inherited; the pages are not) go too: else a new mapping
             * of the child at those addresses, or the caller's own use of
             * its buffer, reads as a use of a freed page (helper-31: 5 of
             * 184 children under ASan aborted creating a zone).  Only the
             * shadow is written; the pages are not touched. */
            uint64_t lo = lb_load_rlx_u64(&lb_ranges[i].lo), hi = lb_load_rlx_u64(&lb_ranges[i].hi);
            LB_TOOL_FORGET((void *)(uintptr_t)lo, (size_t)(hi - lo));
            lb_range_write(&lb_ranges[i], 0, 0, 0);
        }
    /* Claims of caller memory stay for inherited zones (the buffer is
     * taken until the child destroys the zone); a claim of a zone half
     * made or half destroyed by another thread goes. */
    for (unsigned i = 0; i < LB_MAX_ZONES; i++) {
        if (!lb_claims[i].hi)
            continue;
        bool held = false;
        for (unsigned j = 0; j < LB_HANDLES && !held; j++)
            held = lb_load_rlx_u32(&lb_handles[j].inherited) && lb_handles[j].claim_lo == lb_claims[i].lo;
        if (!held)
            lb_claims[i].hi = 0;
    }
    lb_cache_tls_fork_child();
    lb_os_mutex_init(&lb_registry_mutex, LB_MUTEX_REGISTRY);
}

void lb_registry_fork_init(void)
{
    /* 0: not yet, 1: being registered, 2: registered.  Every creation
     * returns from here only once the hooks are in place, before its zone
     * is in the registry (not under the registry mutex: a fork under way
     * holds glibc's atfork lock and then waits for that mutex in
     * prepare, while pthread_atfork waits for the atfork lock). */
    static lb_atomic_u32 state;
    uint32_t zero = 0;
    /* Acquire CAS: the winner registers; the others wait below. */
    if (lb_cas_acq_u32(&state, &zero, 1)) {
        (void)lb_os_fork_hooks(lb_fork_prepare, lb_fork_parent, lb_fork_child);
        lb_store_rel_u32(&state, 2); /* pairs with the acquire load below */
        return;
    }
    /* Acquire: pairs with the release store above. */
    while (lb_load_acq_u32(&state) != 2)
        lb_os_yield();
}

bool lb_registry_inherited(const struct labyrinth_zone *h)
{
    struct labyrinth_zone *s = lb_handle_slot(h);
    /* Relaxed: set by the child's hook before any call of the child, and
     * cleared under the mutex by the destroy that ends the handle. */
    return s && lb_load_rlx_u32(&s->inherited);
}

bool lb_registry_release_inherited(const struct labyrinth_zone *h)
{
    struct labyrinth_zone *s = lb_handle_slot(h);
    if (!s)
        return false;
    bool was = false;
    lb_os_mutex_lock(&lb_registry_mutex);
    /* Relaxed: under the registry mutex, as every write of these. */
    if (lb_load_rlx_u32(&s->inherited)) {
        was = true;
        lb_store_rlx_u32(&s->inherited, 0);
        lb_store_rlx_u64(&s->live_serial, 0); /* the slot is free again */
        lb_live_zones--;
        if (s->claim_lo)
            for (unsigned i = 0; i < LB_MAX_ZONES; i++)
                if (lb_claims[i].hi && lb_claims[i].lo == s->claim_lo) {
                    lb_claims[i].hi = 0;
                    break;
                }
        s->claim_lo = 0;
    }
    lb_os_mutex_unlock(&lb_registry_mutex);
    return was;
}
