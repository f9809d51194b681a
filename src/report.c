/*
 * report.c - layer 5: reports (report.h), errno texts, the panic.
 */
#include "zone.h"

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
    case EEXIST: return "the memory overlaps the caller memory of a live zone";
    case EDEADLK: return "normal context only: called where it cannot sleep (an interrupt, an atomic section)";
    default: return "unknown error";
    }
}
LB_EXPORT(labyrinth_strerror);

const char *lb_errname(int err)
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
    case EEXIST: return "EEXIST";
    case ENOMEM: return "ENOMEM";
    case EPERM: return "EPERM";
    case EIO: return "EIO";
    case ENOSPC: return "ENOSPC";
    case EAGAIN: return "EAGAIN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EDEADLK: return "EDEADLK";
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
void lb_report_no_zone(const char *what, const struct labyrinth_zone *h, const void *addr, const void *caller)
{
    char b[200];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, what);
    lb_fmt_str(&f, "(");
    lb_fmt_ptr(&f, addr);
    lb_fmt_str(&f, lb_registry_inherited(h)
                       ? ") refused: zone inherited across fork(), usable only in the process that created it;"
                         " destroy it here and create one (EBADF)"
                       : ") refused: not a live zone (EBADF)");
    struct labyrinth_report rep = lb_report_make(LABYRINTH_REPORT_BAD_ARGS, NULL, -EBADF, b);
    rep.addr = addr;
    rep.caller = caller;
    lb_report_default(&rep, NULL);
}

int lb_refuse_context(struct lb_zone *z, const char *what, const void *caller)
{
    char b[200];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, what);
    lb_fmt_str(&f, " refused: normal context only, called where it cannot sleep or wait for a lock (EDEADLK)");
    struct labyrinth_report rep = lb_report_make(LABYRINTH_REPORT_BAD_ARGS, z, -EDEADLK, b);
    rep.caller = caller;
    if (z)
        lb_zone_report(z, &rep);
    else
        lb_report_default(&rep, NULL);
    return -EDEADLK;
}

int lb_refuse_handle_at(const char *what, const struct labyrinth_zone *h, const void *caller)
{
    if (lb_registry_inherited(h))
        lb_report_no_zone(what, h, h, caller);
    return -EBADF;
}

int lb_refuse(struct lb_zone *z, enum labyrinth_report_kind kind, const char *what,
                     const void *addr, unsigned order, int err, const void *caller)
{
    char b[256];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, what);
    lb_fmt_str(&f, "(");
    lb_fmt_ptr(&f, addr);
    lb_fmt_str(&f, ", order ");
    lb_fmt_dec(&f, order);
    lb_fmt_str(&f, ") refused: ");
    if (err == -ERANGE && order > z->max_order) {
        lb_fmt_str(&f, "order above the zone's max_order ");
        lb_fmt_dec(&f, z->max_order);
    } else
        lb_fmt_str(&f, lb_misuse_reason(err));
    if (err == -ERANGE && order <= z->max_order) {
        /* The block's real order, as its descriptor reads now (a relaxed
         * load: a diagnostic, the block may be freed meanwhile). */
        struct lb_region *r;
        uint32_t idx;
        if (lb_zone_locate(z, addr, &r, &idx) == 0) {
            uint64_t w = lb_load_rlx_u64(&r->desc[idx]);
            if (lb_d_state(w) == LB_S_ALLOC) {
                lb_fmt_str(&f, ", allocated as order ");
                lb_fmt_dec(&f, lb_d_order(w));
            }
        }
    }
    lb_fmt_str(&f, " (");
    lb_fmt_str(&f, lb_errname(err));
    lb_fmt_str(&f, ")");
    struct labyrinth_report rep = lb_report_make(kind, z, err, b);
    rep.addr = addr;
    rep.order = order;
    rep.caller = caller;
    lb_zone_report(z, &rep);
    return err;
}

void lb_fmt_str(struct lb_fmt *f, const char *s)
{
    while (s && *s && f->len + 1 < f->cap)
        f->buf[f->len++] = *s++;
    f->buf[f->len] = 0;
}

static void lb_fmt_addr(struct lb_fmt *f, const void *p, bool code)
{
    size_t n = f->len < f->cap ? lb_os_fmt_addr(f->buf + f->len, f->cap - f->len, p, code) : 0;
    if (n) {
        f->len += n;
        return;
    }
    lb_fmt_hex(f, (uintptr_t)p);
}

void lb_fmt_ptr(struct lb_fmt *f, const void *p) { lb_fmt_addr(f, p, false); }
void lb_fmt_code(struct lb_fmt *f, const void *p) { lb_fmt_addr(f, p, true); }

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

#define LB_REPORT_LINES 100u /* the default handler's lines per zone and kind */

static const char *lb_kind_name(unsigned kind)
{
    switch (kind) {
    case LABYRINTH_REPORT_BAD_FREE: return "bad free";
    case LABYRINTH_REPORT_BAD_ARGS: return "bad args";
    case LABYRINTH_REPORT_CL_ALIGN: return "CL_ALIGN";
    case LABYRINTH_REPORT_USE_AFTER_FREE: return "use after free";
    case LABYRINTH_REPORT_LEAK: return "leak";
    default: return "notice";
    }
}

/* "labyrinth: zone 'name': n <kind> line(s) <why>" */
static void lb_report_suppressed(const char *zname, unsigned kind, uint64_t n, const char *why)
{
    char b[200];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, "labyrinth: zone '");
    lb_fmt_str(&f, zname);
    lb_fmt_str(&f, "': ");
    lb_fmt_dec(&f, n);
    lb_fmt_str(&f, " ");
    lb_fmt_str(&f, lb_kind_name(kind));
    lb_fmt_str(&f, " line(s) ");
    lb_fmt_str(&f, why);
    lb_fmt_str(&f, "\n");
    lb_os_write_err(b, f.len);
}

/* Reports of no zone (a dead or NULL handle, a refused creation): one
 * set of limits for all of them. */
static struct lb_report_limit lb_noz_limit[LB_REPORT_KINDS];

#if LB_OS_REPORT_BURST
/* Milliseconds for the windows, any context: the zone's clock (1.024 ms
 * units from the cycle counter), or the counter at its cached rate
 * (lb_os_cycles_per_ms, primed at module init in a kernel).  A zone whose
 * clock was never calibrated (caller memory without a warden: clock_mult
 * 0, its clock counts 2^20 cycles) takes the cached rate too, or its
 * window was 5000 units of 2^20 cycles, not 5 s (KB41). */
static uint64_t lb_report_ms(const struct lb_zone *z)
{
    if (z && z->clock_mult)
        return lb_clock_of(lb_os_cycles() - z->epoch_cycles, z->clock_mult) * LB_CLOCK_UNIT_US / 1000;
    uint64_t cpm = lb_os_cycles_per_ms();
    return lb_os_cycles() / (cpm ? cpm : 1);
}

/* The window's part of lb_report_admit (only where the OS has one: the
 * comparisons with a 0 burst would be constant). */
static bool lb_report_window(struct lb_zone *z, struct lb_report_limit *l, unsigned kind, const char *zname)
{
    uint64_t now = lb_report_ms(z) + 1; /* + 1: 0 is "no window yet" */
    /* Relaxed: the window is a time stamp; the counters below are
     * each exact on their own, no other data hangs on it. */
    uint64_t w = lb_load_rlx_u64(&l->window);
    if (!w || now - w >= LB_OS_REPORT_WINDOW_MS) {
        /* Relaxed CAS: one opener per window; it resets the window's
         * count and summarises what the last held back (the exchange
         * takes each count exactly once). */
        if (lb_cas_rlx_u64(&l->window, &w, now)) {
            lb_store_rlx_u32(&l->lines, 0);
            /* Acquire, the wrappers' weakest exchange: only the count
             * matters, and the exchange takes it once. */
            uint32_t s = lb_xchg_acq_u32(&l->suppressed, 0);
            if (s)
                lb_report_suppressed(zname, kind, s, "suppressed in the last window (rate limit per zone and kind)");
        }
    }
    /* Relaxed: a count, no data published through it. */
    if (lb_add_rlx_u32(&l->lines, 1) >= LB_OS_REPORT_BURST) {
        lb_add_rlx_u32(&l->suppressed, 1); /* relaxed: a count, taken by the exchange above */
        return false;
    }
    return true;
}
#endif

/* Whether the default handler prints a line of this kind now (issue
 * 17.9).  Per zone and kind: a window of LB_OS_REPORT_BURST lines per
 * LB_OS_REPORT_WINDOW_MS where the OS has one (not for leaks: they come
 * at destroy only, bounded by the cap), whose held-back lines are
 * summarised when the next window opens (or at destroy,
 * lb_report_flush); then the cap of LB_REPORT_LINES over the zone's
 * life.  Lock-free, any context: concurrent reports may let a window
 * admit a line or two more than the burst, never lose a count. */
static bool lb_report_admit(struct lb_zone *z, unsigned kind, const char *zname)
{
    struct lb_report_limit *l = z ? &z->report_limit[kind] : &lb_noz_limit[kind];
#if LB_OS_REPORT_BURST
    if (kind != LABYRINTH_REPORT_LEAK && !lb_report_window(z, l, kind, zname))
        return false;
#endif
    if (!z)
        return true; /* no zone, no life to cap: the window only */
    /* Relaxed: a count, no data published through it. */
    uint32_t n = lb_add_rlx_u32(&l->total, 1);
    if (n < LB_REPORT_LINES)
        return true;
    if (n == LB_REPORT_LINES)
        lb_report_suppressed(zname, kind, LB_REPORT_LINES,
                             kind == LABYRINTH_REPORT_LEAK || kind == LABYRINTH_REPORT_NOTICE
                                 ? "printed; further ones suppressed"
                                 : "printed; further ones suppressed (counted in misuse_reports)");
    return false;
}

void lb_report_flush(struct lb_zone *z)
{
    for (unsigned k = 0; k < LB_REPORT_KINDS; k++) {
        /* Acquire, as in lb_report_admit: the count is taken once (the
         * zone is dying; its handle is still live, so a late report may
         * still add to a count: it is then lost with the zone). */
        uint32_t s = z ? lb_xchg_acq_u32(&z->report_limit[k].suppressed, 0) : 0;
        if (s)
            lb_report_suppressed(z->name, k, s, "suppressed (rate limit per zone and kind)");
        /* The zone-less lines held back: no destroy of theirs would ever
         * say so, only a later zone-less line opening a window (KB41).
         * Every destroy (and a kernel's module exit, z NULL) does.
         * Acquire, as above: the exchange takes the count once, against
         * a window opener or another destroy. */
        s = lb_xchg_acq_u32(&lb_noz_limit[k].suppressed, 0);
        if (s)
            lb_report_suppressed("(none)", k, s, "suppressed (rate limit of reports with no zone)");
    }
}

void lb_report_default(const struct labyrinth_report *rep, void *arg)
{
    lb_report_print(rep, arg, false);
}

void lb_report_print(const struct labyrinth_report *rep, struct lb_zone *z, bool force)
{
    unsigned kind = (unsigned)rep->kind < LB_REPORT_KINDS ? (unsigned)rep->kind : LABYRINTH_REPORT_NOTICE;
    if (!force && !lb_report_admit(z, kind, rep->zone_name ? rep->zone_name : "?"))
        return;
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
        /* A function's name only at destroy (normal context: dladdr takes
         * locks); elsewhere the object and offset, which any context can
         * give (lb_os_symbolize_any) and addr2line turns into a line. */
        if (rep->kind == LABYRINTH_REPORT_LEAK && lb_os_symbolize(rep->caller, sym, sizeof sym) == 0)
            lb_fmt_str(&f, sym);
        else {
            /* A kernel: %pS already (lb_os_fmt_addr); user space: the
             * address, then its object and offset. */
            lb_fmt_code(&f, rep->caller);
            if (lb_os_symbolize_any(rep->caller, sym, sizeof sym) == 0) {
                lb_fmt_str(&f, " (");
                lb_fmt_str(&f, sym);
                lb_fmt_str(&f, ")");
            }
        }
    }
    lb_fmt_str(&f, "\n");
    lb_os_write_err(b, f.len);
}

void lb_zone_report(struct lb_zone *z, const struct labyrinth_report *rep)
{
    bool misuse = rep->kind != LABYRINTH_REPORT_NOTICE && rep->kind != LABYRINTH_REPORT_LEAK;
    if (misuse)
        lb_add_rlx_u64(&z->misuse, 1);
    /* Acquire: pairs with the release in labyrinth_zone_set_report_handler
     * so the handler's argument is seen with the handler. */
    labyrinth_report_fn *fn = NULL;
    void *arg = NULL;
    /* Lock-free: retried only while handler changes overtake the read
     * (LB_REPORT_RING of them); bounded, then the default handler. */
    for (unsigned tries = 0; tries < 1024; tries++) {
        /* Acquire: pairs with the publishing release CAS, so the slot's
         * pair is complete (its sequence 2c) when c is seen. */
        uint64_t pub = lb_load_acq_u64(&z->report_cur);
        uint64_t c = pub >> LB_REPORT_SLOT_BITS;
        __typeof__(&z->report_ring[0]) slot = &z->report_ring[pub & (LB_REPORT_RING - 1)];
        if (lb_load_acq_u64(&slot->seq) != 2 * c)
            continue; /* reused by a later change: read report_cur again */
        /* Acquire loads: the second read of the sequence cannot move
         * before them (pairs with the writer's release stores). */
        labyrinth_report_fn *f = lb_load_acq_ptr(&slot->fn);
        void *a = lb_load_acq_ptr(&slot->arg);
        if (lb_load_rlx_u64(&slot->seq) == 2 * c) {
            fn = f;
            arg = a;
            break;
        }
    }
    bool strict = misuse && (z->flags & LABYRINTH_ZONE_STRICT);
    if (fn)
        fn(rep, arg);
    else
        lb_report_print(rep, z, strict); /* the line before an abort is never held back */
    if (strict)
        lb_os_abort();
}

void lb_zone_notice(struct lb_zone *z, const char *msg)
{
    struct labyrinth_report rep = lb_report_make(LABYRINTH_REPORT_NOTICE, z, 0, msg);
    lb_zone_report(z, &rep);
}


/* A queued free found invalid by the page's owner: the page was freed
 * twice (the other free got there first), or not by this generation. */
void lb_zone_bad_entry(void *ctx, void *page, uint64_t w)
{
    struct lb_zone *z = ctx;
    char b[200];
    struct lb_fmt f = {b, 0, sizeof b};
    lb_fmt_str(&f, "free_pages(");
    lb_fmt_ptr(&f, page);
    lb_fmt_str(&f, ", order 0) refused when its owner took the batch: double free, the block is ");
    lb_fmt_str(&f, lb_d_state(w) == LB_S_ALLOC ? "allocated again (EALREADY)" : "not allocated (EALREADY)");
    struct labyrinth_report rep = lb_report_make(LABYRINTH_REPORT_BAD_FREE, z, -EALREADY, b);
    rep.addr = page;
    lb_zone_report(z, &rep);
}
