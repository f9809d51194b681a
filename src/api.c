/*
 * api.c - the public entry points (include/labyrinth.h), on top of every
 * layer: argument checks, the inlined order-0 fast paths, quality and
 * tracking around the zone layer, and misuse reports.
 */
#include "lb_annotate.h"
#include "quality.h"

_Static_assert(LB_ORDER_LIMIT == LABYRINTH_MAX_ORDER_LIMIT, "order limits differ");
_Static_assert((LABYRINTH_GFP_ATOMIC & (LB_MODE_SLOTS - 1)) != (LABYRINTH_GFP_NOWAIT & (LB_MODE_SLOTS - 1)) &&
                   (LABYRINTH_GFP_ATOMIC & (LB_MODE_SLOTS - 1)) != (LABYRINTH_GFP_KERNEL & (LB_MODE_SLOTS - 1)) &&
                   (LABYRINTH_GFP_NOWAIT & (LB_MODE_SLOTS - 1)) != (LABYRINTH_GFP_KERNEL & (LB_MODE_SLOTS - 1)),
               "the named modes need distinct counter slots");

void lb_panic(const char *file, int line, const char *what)
{
    char b[256];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, "labyrinth: internal invariant violated at ");
    lb_fmt_str(&f, file);
    lb_fmt_str(&f, ":");
    lb_fmt_dec(&f, (uint64_t)line);
    lb_fmt_str(&f, ": ");
    lb_fmt_str(&f, what);
    lb_fmt_str(&f, "\n");
    lb_os_write_err(b, f.len);
    lb_os_abort();
}

static bool lb_zone_ok(const struct labyrinth_zone *z)
{
    return z && z->magic == LB_ZONE_MAGIC;
}

const char *labyrinth_strerror(int err)
{
    switch (err < 0 ? -err : err) {
    case 0: return "success";
    case EFAULT: return "the address belongs to no zone (foreign pointer)";
    case EXDEV: return "the address belongs to another zone";
    case EINVAL: return "invalid argument: a misaligned address, or bad flags, order or config";
    case ENXIO: return "the address is inside a block, not at its start (interior pointer)";
    case EALREADY: return "the block is not allocated (double free)";
    case ERANGE: return "the order differs from the block's (wrong order)";
    case EBADF: return "not a live zone";
    case ENOENT: return "the block is not allocated";
    case EOPNOTSUPP: return "not supported by this zone";
    case ENOMEM: return "out of memory";
    case ETIMEDOUT: return "timed out waiting for pages";
    case EPERM: return "permission denied (physical addresses or memory locking)";
    case EAGAIN: return "could not start the warden thread";
    case ENOSPC: return "too many live zones";
    case EBUSY: return "the block's descriptor kept changing (concurrent register)";
    case EIO: return "could not read physical addresses (/proc/self/pagemap)";
    default: return "unknown error";
    }
}
LB_EXPORT(labyrinth_strerror);

static const char *lb_errname(int err)
{
    switch (err < 0 ? -err : err) {
    case EFAULT: return "EFAULT";
    case EXDEV: return "EXDEV";
    case EINVAL: return "EINVAL";
    case ENXIO: return "ENXIO";
    case EALREADY: return "EALREADY";
    case ERANGE: return "ERANGE";
    case EBADF: return "EBADF";
    case ENOENT: return "ENOENT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EBUSY: return "EBUSY";
    default: return "E?";
    }
}

/* Why a free or register was refused, for the report line. */
static const char *lb_misuse_reason(int err)
{
    switch (err < 0 ? -err : err) {
    case EFAULT: return "foreign pointer, not a page of any zone";
    case EXDEV: return "wrong zone, the page belongs to another zone";
    case EINVAL: return "misaligned, not on a page boundary";
    case ENXIO: return "interior pointer, inside a block but not its start";
    case EALREADY: return "double free, the block is not allocated";
    case ERANGE: return "wrong order, not the order the block was allocated with";
    case ENOENT: return "the block is not allocated";
    case EBUSY: return "the block's descriptor kept changing under a concurrent register";
    default: return labyrinth_strerror(err);
    }
}

/* A call refused before any zone could hear of it (NULL or dead zone). */
static void lb_report_no_zone(const char *what, const void *addr, const void *caller)
{
    char b[200];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, what);
    lb_fmt_str(&f, "(");
    lb_fmt_hex(&f, (uintptr_t)addr);
    lb_fmt_str(&f, ") refused: not a live zone (EBADF)");
    struct labyrinth_report rep = {0};
    rep.kind = LABYRINTH_REPORT_BAD_ARGS;
    rep.err = -EBADF;
    rep.zone_name = "(none)";
    rep.addr = addr;
    rep.caller = caller;
    rep.message = b;
    lb_report_default(&rep, NULL);
}

static int lb_refuse(struct labyrinth_zone *z, enum labyrinth_report_kind kind, const char *what,
                     const void *addr, unsigned order, int err, const void *caller)
{
    char b[256];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, what);
    lb_fmt_str(&f, "(");
    lb_fmt_hex(&f, (uintptr_t)addr);
    lb_fmt_str(&f, ", order ");
    lb_fmt_dec(&f, order);
    lb_fmt_str(&f, ") refused: ");
    lb_fmt_str(&f, lb_misuse_reason(err));
    lb_fmt_str(&f, " (");
    lb_fmt_str(&f, lb_errname(err));
    lb_fmt_str(&f, ")");
    struct labyrinth_report rep = {0};
    rep.kind = kind;
    rep.err = err;
    rep.zone_name = z->name;
    rep.addr = addr;
    rep.order = order;
    rep.caller = caller;
    rep.message = b;
    lb_zone_report(z, &rep);
    return err;
}

/* Why freeing (or registering) page idx of r at the given order is
 * refused, or 0.  A page inside a block is an interior pointer only if
 * that block is allocated; inside a free block it was freed already (it
 * merged into its buddy's block since). */
static int lb_refusal(struct labyrinth_zone *z, struct lb_region *r, uint32_t idx, uint64_t w, unsigned order)
{
    int rc = lb_d_refuse(w, order);
    if (rc == -ENXIO) {
        uint32_t head = lb_region_block_head(r, idx, z->max_order);
        if (head != LB_NIL && lb_d_state(lb_load_rlx_u64(&r->desc[head])) != LB_S_ALLOC)
            rc = -EALREADY;
    }
    return rc;
}

/* ---- allocation ------------------------------------------------------------------------------ */

static LB_NOINLINE void *lb_alloc_general(struct labyrinth_zone *z, unsigned gfp, unsigned order,
                                          unsigned quality, const void *caller,
                                          const struct labyrinth_site *site, uint32_t tag)
{
    /* errno is set when the caller said it may sleep (the SLEEP bit), even
     * in a combination refused as invalid: that caller is not in a context
     * whose errno must be preserved. */
    bool sleeps = gfp & LABYRINTH_GFP_BIT_SLEEP;
    if (!lb_zone_ok(z)) {
        lb_report_no_zone("alloc_pages", NULL, caller);
        if (sleeps)
            lb_set_errno(EBADF);
        return NULL;
    }
    int bad = 0;
    if (!lb_gfp_valid(gfp) || (quality & ~LABYRINTH_QUALITY_ALL) || order > z->max_order)
        bad = -EINVAL;
    unsigned q = quality | z->quality;
    if (!bad && (q & LABYRINTH_QUALITY_TRACK) && (z->flags & LABYRINTH_ZONE_NO_TRACKING))
        bad = -EOPNOTSUPP;
    /* A kernel: a mode that may sleep, from a context that must not
     * (interrupt, softirq, preemption or interrupts off).  User space:
     * never (lb_os_can_sleep() is true). */
    bool atomic_ctx = !bad && sleeps && !lb_os_can_sleep();
    if (atomic_ctx)
        bad = -EINVAL;
    if (bad) {
        char b[160];
        struct lb_fmt f = {b, 0, sizeof b};
        lb_fmt_str(&f, "alloc_pages(gfp ");
        lb_fmt_hex(&f, gfp);
        lb_fmt_str(&f, ", order ");
        lb_fmt_dec(&f, order);
        lb_fmt_str(&f, ", quality ");
        lb_fmt_hex(&f, quality);
        lb_fmt_str(&f, atomic_ctx ? ") refused: a mode that may sleep, from a context that cannot (EINVAL)"
                       : bad == -EINVAL ? ") refused: unknown or contradictory flags, or order above max_order (EINVAL)"
                                        : ") refused: TRACK in a zone without tracking (EOPNOTSUPP)");
        struct labyrinth_report rep = {0};
        rep.kind = LABYRINTH_REPORT_BAD_ARGS;
        rep.err = bad;
        rep.zone_name = z->name;
        rep.order = order;
        rep.caller = caller;
        rep.message = b;
        lb_zone_report(z, &rep);
        if (sleeps)
            lb_set_errno(-bad);
        return NULL;
    }
    unsigned dflags = (q & LABYRINTH_QUALITY_TRACK) ? LB_D_TRACKED : 0;
    int err = 0;
    uint32_t d = lb_enter();
    void *p = lb_zone_alloc_err(z, gfp, order, dflags, d, &err);
    if (p) {
        LB_TOOL_ALLOC(p, z->page_size << order,
                      (z->flags & LABYRINTH_ZONE_VERIFY) || (q & (LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_POISON)));
        if (z->flags & LABYRINTH_ZONE_VERIFY)
            lb_verify_check(z, p, order, caller);
        if (q)
            lb_quality_apply(z, p, order, q, caller, site, tag);
    }
    lb_leave(d);
    if (!p && lb_gfp_may_sleep(gfp))
        lb_set_errno(-err);
    return p;
}

/* Everything the inlined fast path of labyrinth_alloc_pages does not do. */
static LB_NOINLINE void *lb_alloc_miss(struct labyrinth_zone *z, unsigned gfp, unsigned order,
                                       unsigned quality, const void *caller)
{
    if (z != NULL && (order | quality | (gfp & ~15u)) == 0 && ((z->fast_gfp >> gfp) & 1) &&
        (!lb_gfp_may_sleep(gfp) || lb_os_can_sleep())) {
        /* Order 0, a named mode, no quality: the magazines missed. */
        int err = 0;
        uint32_t d = lb_enter();
        void *p = lb_zone_alloc_err(z, gfp, 0, 0, d, &err);
        lb_leave(d);
        if (p)
            LB_TOOL_ALLOC(p, z->page_size, 0);
        else if (lb_gfp_may_sleep(gfp))
            lb_set_errno(-err);
        return p;
    }
    return lb_alloc_general(z, gfp, order, quality, caller, NULL, 0);
}

/* The fast path popped p from level l (depth d) but p is not in region 0. */
static LB_NOINLINE void *lb_alloc_finish(struct labyrinth_zone *z, void *p, struct lb_level *l,
                                         uint32_t d, unsigned gfp)
{
    uint32_t gen = lb_level_count_alloc(l, lb_gfp_slot(gfp));
    lb_store_rlx_u64(lb_zone_desc_slow(z, p), lb_d_owned(l->pattern, 0, gen));
    lb_leave(d);
    LB_TOOL_ALLOC(p, z->page_size, 0);
    return p;
}

void *labyrinth_alloc_pages(struct labyrinth_zone *z, unsigned gfp, unsigned order, unsigned quality)
{
    /* The fast path: order 0, a named mode, no quality, a page in this
     * thread's loaded magazine.  Anything else is a tail call. */
    if (LB_LIKELY(z != NULL) && LB_LIKELY((order | quality | (gfp & ~15u)) == 0) &&
        LB_LIKELY((z->fast_gfp >> gfp) & 1) &&
        (!LB_OS_CTX_PER_CPU || !lb_gfp_may_sleep(gfp) || lb_os_can_sleep())) {
        uint32_t d = lb_enter();
        struct lb_level *l = lb_tls_level_cur(z->serial, d);
        if (LB_LIKELY(l != NULL)) {
            struct lb_mag *m = lb_level_loaded(l);
            uint32_t n = lb_load_rlx_u32(&m->count);
            if (LB_LIKELY(n != 0)) {
                void *p = m->slot[--n];
                lb_store_rlx_u32(&m->count, n);
                uintptr_t off = (uintptr_t)p - z->r0_lo;
                if (LB_UNLIKELY(off >= z->r0_bytes))
                    return lb_alloc_finish(z, p, l, d, gfp);
                /* The page was CACHED in our own magazine: no one else
                 * writes its descriptor (a racing bad free's CAS expects
                 * ALLOC and fails). */
                uint32_t gen = lb_level_count_alloc(l, lb_gfp_slot(gfp));
                lb_store_rlx_u64(&z->r0_desc[off >> z->page_shift], lb_d_owned(l->pattern, 0, gen));
                lb_leave(d);
                LB_TOOL_ALLOC(p, z->page_size, 0);
                return p;
            }
        }
        lb_leave(d);
    }
    return lb_alloc_miss(z, gfp, order, quality, __builtin_return_address(0));
}
LB_EXPORT(labyrinth_alloc_pages);

void *labyrinth_alloc_page_atomic_site(struct labyrinth_zone *z, unsigned quality,
                                       const struct labyrinth_site *site)
{
    /* The macro registers the page; a zone without a tracking table still
     * gets its page, unregistered (the header's promise). */
    if (lb_zone_ok(z))
        quality = (z->flags & LABYRINTH_ZONE_NO_TRACKING) ? quality & ~LABYRINTH_QUALITY_TRACK
                                                          : quality | LABYRINTH_QUALITY_TRACK;
    return lb_alloc_general(z, LABYRINTH_GFP_ATOMIC, 0, quality, __builtin_return_address(0), site, 0);
}
LB_EXPORT(labyrinth_alloc_page_atomic_site);

/* ---- free ----------------------------------------------------------------------------------------- */

#define LB_DESC_CAS_TRIES 64u

static LB_NOINLINE int lb_free_general(struct labyrinth_zone *z, void *addr, unsigned order,
                                       const void *caller)
{
    if (!addr)
        return 0;
    if (!lb_zone_ok(z)) {
        lb_report_no_zone("free_pages", addr, caller);
        return -EBADF;
    }
    struct lb_region *r;
    uint32_t idx;
    int rc = lb_zone_locate(z, addr, &r, &idx);
    if (rc)
        return lb_refuse(z, LABYRINTH_REPORT_BAD_FREE, "free_pages", addr, order, rc, caller);
    if (order > z->max_order)
        return lb_refuse(z, LABYRINTH_REPORT_BAD_FREE, "free_pages", addr, order, -ERANGE, caller);
    lb_atomic_u64 *dp = &r->desc[idx];
    uint64_t w = lb_load_rlx_u64(dp);
    if (order == 0 && lb_d_state(w) == LB_S_ALLOC && lb_d_order(w) == 0 && lb_d_owner(w) &&
        !(z->flags & LABYRINTH_ZONE_VERIFY)) {
        /* A page some level owns: its owner takes it back, with a plain
         * store if that is us, else through our outbox. */
        uint32_t d = lb_enter();
        struct lb_level *l = lb_tls_level(&z->cache, d);
        if (!l && d == 0 && lb_cache_claim(&z->cache))
            l = lb_tls_level(&z->cache, 0);
        if (l && (w & LB_D_OWNED_MASK) == l->pattern) {
            lb_store_rlx_u64(dp, lb_d_make(LB_S_CACHED, 0, 0));
            LB_TOOL_FREE(addr, z->page_size);
            lb_zone_free0_slow(z, addr, r, idx, d);
            rc = 0;
        } else {
            /* Poisoned before it is queued: once queued, its owner may
             * hand it out again (and unpoison it) at any moment.  A
             * refused free that is not a double free undoes it. */
            LB_TOOL_FREE(addr, z->page_size);
            lb_zone_free_remote(z, addr, r, idx, w, d, &rc);
            if (rc && rc != -EALREADY)
                LB_TOOL_ALLOC(addr, z->page_size, 1);
        }
        lb_leave(d);
        return rc ? lb_refuse(z, LABYRINTH_REPORT_BAD_FREE, "free_pages", addr, order, rc, caller) : 0;
    }
    /* Anything else: a CAS decides (exact against any other CAS; owned
     * pages in VERIFY zones are freed only this way, by every context). */
    uint64_t nw = order == 0 ? lb_d_make(LB_S_CACHED, 0, 0) : lb_d_make(LB_S_PENDING, order, 0);
    for (unsigned tries = 0;; tries++) {
        rc = lb_refusal(z, r, idx, w, order);
        if (rc)
            return lb_refuse(z, LABYRINTH_REPORT_BAD_FREE, "free_pages", addr, order, rc, caller);
        if (tries == LB_DESC_CAS_TRIES)
            return lb_refuse(z, LABYRINTH_REPORT_BAD_FREE, "free_pages", addr, order, -EBUSY, caller);
        /* Relaxed CAS: it decides which of two racing frees wins (the other
         * sees a free state and is refused); the page's contents travel to
         * the next owner through the magazine/depot/stack hand-offs, which
         * are release/acquire. */
        if (lb_cas_rlx_u64(dp, &w, nw))
            break;
    }
    /* The block is ours. */
    if (z->flags & LABYRINTH_ZONE_VERIFY)
        lb_verify_poison(z, addr, order);
    LB_TOOL_FREE(addr, z->page_size << order);
    if (order == 0) {
        uint32_t d = lb_enter();
        lb_zone_free0_slow(z, addr, r, idx, d);
        lb_leave(d);
    } else {
        lb_zone_free_block(z, r, idx, order);
    }
    return 0;
}

static LB_NOINLINE int lb_free_general(struct labyrinth_zone *z, void *addr, unsigned order,
                                       const void *caller);

/* The fast path of labyrinth_free_pages turned addr's descriptor CACHED
 * but could not push it onto its loaded magazine. */
static LB_NOINLINE int lb_free_won(struct labyrinth_zone *z, void *addr)
{
    struct lb_region *r = lb_regmap_lookup(&z->map, (uintptr_t)addr);
    uint32_t d = lb_enter();
    lb_zone_free0_slow(z, addr, r, (uint32_t)(((uintptr_t)addr - r->base) >> z->page_shift), d);
    lb_leave(d);
    return 0;
}

/* The fast path of labyrinth_free_pages found a page of region 0 owned by
 * another level (descriptor w): if our last outbox batch goes to that
 * level, queue it there (no descriptor write); else the general path.
 * Entered at depth d + 1 with level l; leaves the depth itself. */
static LB_NOINLINE int lb_free_remote_fast(struct labyrinth_zone *z, void *addr, struct lb_level *l,
                                           uint32_t d, uint64_t w, uintptr_t off)
{
    unsigned k = l->out_last;
    struct lb_mag *m = lb_load_rlx_ptr(&l->out_mag[k]);
    if (LB_LIKELY((w & 0xffu) == lb_d_make(LB_S_ALLOC, 0, 0)) && m != NULL &&
        LB_LIKELY(lb_d_owner(w) == l->out_dest[k]) && LB_LIKELY(lb_d_owner(w) != 0) &&
        LB_LIKELY(!lb_load_rlx_u32(&z->kick))) {
        uint32_t pid = z->r0_first + (uint32_t)(off >> z->page_shift);
        /* Poisoned before it is queued (see lb_free_general). */
        LB_TOOL_FREE(addr, z->page_size);
        if (LB_LIKELY(lb_level_out_append(&z->cache, l, k, m, pid, lb_d_gen(w)))) {
            lb_leave(d);
            return 0;
        }
        LB_TOOL_ALLOC(addr, z->page_size, 1);
    }
    lb_leave(d);
    return lb_free_general(z, addr, 0, __builtin_return_address(0));
}

int labyrinth_free_pages(struct labyrinth_zone *z, void *addr, unsigned order)
{
    /* The fast path: an order-0 page of region 0 that this very level
     * allocated, and room in its loaded magazine.  Anything else (NULL,
     * another thread's page, bad frees) is a tail call. */
    if (LB_LIKELY(z != NULL) && LB_LIKELY(order == 0) && LB_LIKELY(!z->free_slow)) {
        uintptr_t off = (uintptr_t)addr - z->r0_lo;
        if (LB_LIKELY(off < z->r0_bytes) && LB_LIKELY((off & z->page_mask) == 0)) {
            lb_atomic_u64 *dp = &z->r0_desc[off >> z->page_shift];
            uint32_t d = lb_enter();
            struct lb_level *l = lb_tls_level_cur(z->serial, d);
            if (LB_LIKELY(l != NULL)) {
                uint64_t w = lb_load_rlx_u64(dp);
                /* Allocated (order 0) by this level: we are the only
                 * writer of its descriptor (a handler interrupting us runs
                 * at another level and queues its frees instead), so a
                 * plain store takes it back; a second free sees CACHED. */
                if (LB_LIKELY((w & LB_D_OWNED_MASK) == l->pattern)) {
                    lb_store_rlx_u64(dp, lb_d_make(LB_S_CACHED, 0, 0));
                    LB_TOOL_FREE(addr, z->page_size);
                    struct lb_mag *m = lb_level_loaded(l);
                    uint32_t n = lb_load_rlx_u32(&m->count);
                    if (LB_LIKELY(n < z->mag_size)) {
                        m->slot[n] = addr;
                        lb_store_rlx_u32(&m->count, n + 1);
                        lb_leave(d);
                        return 0;
                    }
                    lb_leave(d);
                    return lb_free_won(z, addr);
                }
                /* Another level's page: a tail call keeps this path a leaf. */
                return lb_free_remote_fast(z, addr, l, d, w, off);
            }
            lb_leave(d);
        }
    }
    return lb_free_general(z, addr, order, __builtin_return_address(0));
}
LB_EXPORT(labyrinth_free_pages);

/* ---- register and page info ------------------------------------------------------------------ */

static int lb_register(struct labyrinth_zone *z, void *page, uint32_t tag, const void *caller)
{
    if (!lb_zone_ok(z)) {
        lb_report_no_zone("register_page", page, caller);
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

int labyrinth_register_page(struct labyrinth_zone *z, void *page)
{
    return lb_register(z, page, 0, __builtin_return_address(0));
}
LB_EXPORT(labyrinth_register_page);

int labyrinth_register_page_tag(struct labyrinth_zone *z, void *page, uint32_t tag)
{
    return lb_register(z, page, tag, __builtin_return_address(0));
}
LB_EXPORT(labyrinth_register_page_tag);

int labyrinth_page_info(struct labyrinth_zone *z, const void *addr, struct labyrinth_page_info *out)
{
    if (!lb_zone_ok(z))
        return -EBADF;
    if (!out)
        return -EINVAL;
    uintptr_t a = (uintptr_t)addr;
    struct lb_region *r = lb_regmap_lookup(&z->map, a);
    if (!r) {
        uint64_t owner = lb_zone_owner_of(a);
        return owner && owner != z->serial ? -EXDEV : -EFAULT;
    }
    lb_page_info_fill(z, r, (uint32_t)((a - r->base) >> z->page_shift), out);
    return 0;
}
LB_EXPORT(labyrinth_page_info);

long labyrinth_zone_for_each_in_use(struct labyrinth_zone *z,
                                    int (*fn)(const struct labyrinth_page_info *info, void *arg), void *arg)
{
    if (!lb_zone_ok(z))
        return -EBADF;
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
LB_EXPORT(labyrinth_zone_for_each_in_use);

/* ---- zones -------------------------------------------------------------------------------------- */

struct labyrinth_zone *labyrinth_zone_create(const struct labyrinth_zone_config *cfg)
{
    struct labyrinth_zone *z;
    int rc = lb_zone_create(cfg, &z);
    if (rc) {
        lb_set_errno(-rc);
        return NULL;
    }
    return z;
}
LB_EXPORT(labyrinth_zone_create);

struct lb_leaks {
    struct labyrinth_zone *z;
    size_t blocks, pages;
};

static int lb_leak_one(const struct labyrinth_page_info *info, void *arg)
{
    struct lb_leaks *lk = arg;
    lk->blocks++;
    lk->pages += (size_t)1 << info->order;
    char b[160];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, "leak: block ");
    lb_fmt_hex(&f, (uintptr_t)info->block);
    lb_fmt_str(&f, " (order ");
    lb_fmt_dec(&f, info->order);
    lb_fmt_str(&f, info->tracked ? ") still in use at destroy, thread " : ") still in use at destroy (untracked)");
    if (info->tracked)
        lb_fmt_dec(&f, info->thread);
    struct labyrinth_report rep = {0};
    rep.kind = LABYRINTH_REPORT_LEAK;
    rep.zone_name = lk->z->name;
    rep.addr = info->block;
    rep.order = info->order;
    rep.caller = info->caller;
    rep.site = info->site;
    rep.thread = info->thread;
    rep.message = b;
    lb_zone_report(lk->z, &rep);
    return 0;
}

void labyrinth_zone_destroy(struct labyrinth_zone *z)
{
    if (!z)
        return;
    if (!lb_zone_ok(z)) {
        lb_report_no_zone("zone_destroy", z, __builtin_return_address(0));
        return;
    }
    struct lb_leaks lk = {z, 0, 0};
    lb_zone_settle(z); /* frees still queued for their owners are not leaks */
    labyrinth_zone_for_each_in_use(z, lb_leak_one, &lk);
    if (lk.blocks) {
        char b[160];
        struct lb_fmt f = {b, 0, sizeof b};
        lb_fmt_dec(&f, lk.blocks);
        lb_fmt_str(&f, " block(s), ");
        lb_fmt_dec(&f, lk.pages);
        lb_fmt_str(&f, " page(s), still in use at destroy");
        struct labyrinth_report rep = {0};
        rep.kind = LABYRINTH_REPORT_NOTICE;
        rep.zone_name = z->name;
        rep.message = b;
        lb_zone_report(z, &rep);
    }
    lb_zone_destroy(z);
}
LB_EXPORT(labyrinth_zone_destroy);

int labyrinth_zone_stats(struct labyrinth_zone *z, struct labyrinth_zone_stats *out)
{
    if (!lb_zone_ok(z))
        return -EBADF;
    if (!out)
        return -EINVAL;
    lb_zone_stats(z, out);
    return 0;
}
LB_EXPORT(labyrinth_zone_stats);

long labyrinth_zone_check(struct labyrinth_zone *z)
{
    if (!lb_zone_ok(z))
        return -EBADF;
    return lb_zone_check(z);
}
LB_EXPORT(labyrinth_zone_check);

int labyrinth_virt_to_phys(struct labyrinth_zone *z, const void *addr, uint64_t *phys)
{
    if (!lb_zone_ok(z))
        return -EBADF;
    if (!phys)
        return -EINVAL;
    uintptr_t a = (uintptr_t)addr;
    struct lb_region *r = lb_regmap_lookup(&z->map, a);
    if (!r) {
        uint64_t owner = lb_zone_owner_of(a);
        return owner && owner != z->serial ? -EXDEV : -EFAULT;
    }
    if (!r->phys)
        return lb_os_virt_to_phys(addr, phys); /* a kernel: its own mapping; user space: EOPNOTSUPP */
    uintptr_t off = a - r->base;
    *phys = r->phys[off >> z->page_shift] + (off & (z->page_size - 1));
    return 0;
}
LB_EXPORT(labyrinth_virt_to_phys);

int labyrinth_zone_region_info(struct labyrinth_zone *z, unsigned index, struct labyrinth_region_info *out)
{
    if (!lb_zone_ok(z))
        return -EBADF;
    if (!out)
        return -EINVAL;
    return lb_zone_region_info(z, index, out);
}
LB_EXPORT(labyrinth_zone_region_info);

long labyrinth_zone_shrink(struct labyrinth_zone *z)
{
    if (!lb_zone_ok(z))
        return -EBADF;
    return lb_zone_shrink(z);
}
LB_EXPORT(labyrinth_zone_shrink);

int labyrinth_phys_to_virt(struct labyrinth_zone *z, uint64_t phys, void **addr)
{
    if (!lb_zone_ok(z))
        return -EBADF;
    if (!addr)
        return -EINVAL;
    if (!(z->flags & LABYRINTH_ZONE_DMA))
        return -EOPNOTSUPP;
    unsigned n = lb_regmap_count(&z->map);
    for (unsigned i = 0; i < n; i++) {
        struct lb_region *r = lb_regmap_get(&z->map, i);
        if (r->released)
            continue;
        uint32_t idx = lb_region_phys_find(r, phys & ~(uint64_t)z->page_mask);
        if (idx != LB_NIL) {
            *addr = (void *)(lb_region_addr(r, idx) + (phys & z->page_mask));
            return 0;
        }
    }
    return -ENOENT;
}
LB_EXPORT(labyrinth_phys_to_virt);

int labyrinth_phys_contiguous(struct labyrinth_zone *z, const void *block, unsigned order)
{
    if (!lb_zone_ok(z))
        return -EBADF;
    if (!(z->flags & LABYRINTH_ZONE_DMA))
        return -EOPNOTSUPP;
    struct lb_region *r;
    uint32_t idx;
    int rc = lb_zone_locate(z, block, &r, &idx);
    if (rc)
        return rc;
    if (order > z->max_order || idx + ((uint32_t)1 << order) > r->end)
        return -EINVAL;
    for (uint32_t i = idx + 1; i < idx + ((uint32_t)1 << order); i++)
        if (r->phys[i] != r->phys[i - 1] + z->page_size)
            return 0;
    return 1;
}
LB_EXPORT(labyrinth_phys_contiguous);

int labyrinth_zone_set_report_handler(struct labyrinth_zone *z, labyrinth_report_fn *fn, void *arg)
{
    if (!lb_zone_ok(z))
        return -EBADF;
    lb_store_rlx_ptr(&z->report_arg, arg);
    /* Release: the argument is visible with the handler (pairs with the
     * acquire in lb_zone_report). */
    lb_store_rel_ptr(&z->report_fn, (void *)fn);
    return 0;
}
LB_EXPORT(labyrinth_zone_set_report_handler);

int labyrinth_thread_release(struct labyrinth_zone *z)
{
    if (!lb_zone_ok(z))
        return -EBADF;
    /* Entered, so that a kernel stays on the CPU whose cache it releases;
     * a call nested in another labyrinth call (a handler) must not take
     * the cache from under it: it does nothing. */
    uint32_t d = lb_enter();
    if (d == 0)
        lb_cache_release_self(&z->cache);
    lb_leave(d);
    return 0;
}
LB_EXPORT(labyrinth_thread_release);

const char *labyrinth_zone_name(const struct labyrinth_zone *z)
{
    return lb_zone_ok(z) ? z->name : NULL;
}
LB_EXPORT(labyrinth_zone_name);

size_t labyrinth_page_size(void) { return lb_os_page_size(); }
LB_EXPORT(labyrinth_page_size);

uint32_t labyrinth_thread_id(void) { return lb_cache_thread_id(); }
LB_EXPORT(labyrinth_thread_id);
