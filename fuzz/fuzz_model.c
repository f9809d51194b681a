/*
 * fuzz_model.c - model-based fuzzing of labyrinth (issue 6, part 1).
 *
 * The input is a program: a few bytes choose the configurations of two
 * zones, every following group of bytes is one operation.  Operations run
 * in one of NW workers, at a simulated nesting depth 0..3 (a signal handler
 * that interrupted a labyrinth call runs one level deeper; depth 3 is past
 * LB_LEVELS, the shared path), one at a time, so the run is deterministic
 * and the zones are quiescent between operations.  A worker is a labyrinth
 * context (struct lb_tls) swapped into the driver thread, or with
 * LB_FUZZ_THREADS=real a thread the driver hands the operation to (see
 * "workers" below).  Cross-worker frees therefore take the real
 * outbox/inbox paths of the ownership protocol.  A worker may also call
 * labyrinth_thread_release, or exit: its thread ends (the library's exit
 * hook gives its caches back) and a new one with a fresh context replaces
 * it.
 *
 * A reference model (which blocks are held, at which order, in which zone,
 * with which contents tag) is compared with labyrinth at every step:
 *   - a block handed out is aligned, inside its zone, overlaps no held block,
 *     carries its quality (ZERO, POISON, TRACK), and keeps its contents tag
 *     until it is freed;
 *   - a NULL is legitimate (docs/design.md, "Modes"): the context's own
 *     magazines, the depot, the buddy (no block of that order), the reserve
 *     (RESERVE bit) and the pending stack are empty, its inbox and ownerless
 *     inboxes hold no valid free the call could have taken, and a GROW
 *     request found the zone at max_pages;
 *   - errno is untouched by calls without the SLEEP bit, ETIMEDOUT for a
 *     SLEEP call that found nothing, the argument errno otherwise;
 *   - every free, register and page_info gets exactly its documented result
 *     (include/labyrinth.h, ERRORS): one report per refusal with that err;
 *     a second free of a page still on its way back to its owner may return
 *     0, and then exactly one late BAD_FREE/-EALREADY report for that page
 *     must follow (when the owner takes the batch, at release or destroy);
 *   - after every step, white-box and cheap: every held block's descriptors
 *     say allocated, of its order; no queued free its owner would accept
 *     names a held block; and, for each zone the step called, the stats:
 *     misuse_reports counts every misuse report, in_use_pages equals the
 *     model (less the late double frees still queued, which in_flight
 *     counts as free), total = free + in use, no retry-cap hit;
 *   - the full check, labyrinth_zone_check() == 0 and for_each_in_use()
 *     visiting exactly the held blocks, of a zone every 128 steps
 *     (LB_FUZZ_CHECK_EVERY=N; fuzz/replay.c also runs every input with 1),
 *     at the end (after the last step, or after the teardown's frees),
 *     before a destroy unless checked in the last 16 steps, and after a
 *     step that owed or received a late double-free report or grew the
 *     zone; a "misc" step walks the zone if its last walk is 32 steps old;
 *   - a worker's exit gives back the caches it held (contexts mode);
 *   - at destroy, one LEAK report per block still held, naming it.
 *
 * Any disagreement prints what was expected and aborts (libFuzzer keeps the
 * input).  fuzz/replay.c runs this file without libFuzzer.  LB_FUZZ_TRACE=1
 * prints one line per operation; LB_FUZZ_STATS=1 one line per input with
 * where its CPU time went.
 */
#define _GNU_SOURCE
#include "zone.h"

#include <labyrinth.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NZ      2    /* zones per run                                  */
#define NW      3    /* worker threads (max_threads <= 2: one may have no cache) */
#define NDEPTH  4    /* simulated nesting depths 0..3                  */
#define MAXB    512  /* held blocks                                    */
#define MAXREG  8    /* regions tracked per zone                       */
#define MAXPG   512  /* pages per region in the page map               */
#define MAXREP  8192 /* reports per run                                */
#define MAXOWED 512  /* late double-free reports owed                  */
#define MAXSTEPS 1500
#define MAX_KERNEL_NULLS 6 /* each costs wait_timeout_ms */
#define FZ_CHECK_EVERY 128 /* full check cadence (LB_FUZZ_CHECK_EVERY=N) */

static size_t PG;

/* ---- failures ------------------------------------------------------------------------------- */

static unsigned fz_step;
static unsigned fz_every = FZ_CHECK_EVERY;
static unsigned fz_event; /* bit zi: zone zi wants the full check after this step, whatever the cadence */
static unsigned unchecked[NZ]; /* steps since zone zi's last full check */
static unsigned fz_touched;    /* bit zi: this step called zone zi (live) */
#define TOUCH(zi)                                                                                \
    do {                                                                                         \
        if ((zi) >= 0 && Z[zi].live)                                                             \
            fz_touched |= 1u << (zi);                                                            \
    } while (0)
static const char *fz_opname = "setup";

static void fz_fail(const char *file, int line, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));
static void fz_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fuzz_model: MODEL VIOLATION at %s:%d, step %u (%s): ", file, line, fz_step, fz_opname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}
#define FAIL(...) fz_fail(__FILE__, __LINE__, __VA_ARGS__)
/* LB_FUZZ_TRACE=1: one line per operation on stderr (to read a crash input). */
static int fz_trace = -1;
#define TRACE(...)                                                                               \
    do {                                                                                         \
        if (fz_trace > 0)                                                                        \
            fprintf(stderr, __VA_ARGS__);                                                        \
    } while (0)
#define EXPECT(cond, ...)                                                                        \
    do {                                                                                         \
        if (!(cond))                                                                             \
            FAIL(__VA_ARGS__);                                                                   \
    } while (0)

/* ---- LB_FUZZ_STATS=1: where an input's CPU time goes, one line on stderr --------------------- */

enum { T_CREATE, T_CREATE_CALLER = T_CREATE + 1, T_CREATE_PLAIN, T_DESTROY, T_FULL, T_CHEAP, T_OPS, T_ALL, T_N };
static const char *const t_name[T_N] = {"create mapped", "create caller", "create plain", "destroy", "full checks",
                                        "step checks", "operations", "all"};
static int fz_stats = -1;
static uint64_t t_ns[T_N];
static unsigned long t_count[T_N];
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#define T_BEGIN(k) uint64_t t0_##k = fz_stats > 0 ? cpu_ns() : 0
#define T_END(k)                                                                                 \
    do {                                                                                         \
        if (fz_stats > 0) {                                                                      \
            t_ns[k] += cpu_ns() - t0_##k;                                                        \
            t_count[k]++;                                                                        \
        }                                                                                        \
    } while (0)

/* ---- the input ------------------------------------------------------------------------------ */

struct input {
    const uint8_t *p;
    size_t n, i;
};
static unsigned in8(struct input *in) { return in->i < in->n ? in->p[in->i++] : 0; }
static unsigned in16(struct input *in) { return in8(in) | in8(in) << 8; }

/* ---- the model ------------------------------------------------------------------------------ */

struct fzone {
    struct labyrinth_zone *z; /* NULL: none */
    bool live;                /* false: destroyed (caller memory: the handle stays readable) */
    bool caller_mem;
    bool plain;               /* fixed size, in plain_mem (behaves as mapped) */
    unsigned max_order, flags, quality;
    unsigned char poison;
    size_t max_pages;
    unsigned nreg;
    uintptr_t rlo[MAXREG];
    size_t rpages[MAXREG];
    uint16_t pm[MAXREG][MAXPG]; /* held block index + 1 covering the page, 0 = not held */
    size_t held_pages;
    unsigned long long misuse; /* misuse reports expected so far */
    unsigned kernel_nulls;
};

struct blk {
    unsigned zi;
    char *p;
    unsigned order;
    uint64_t tag;
    bool tracked; /* page_info must say tracked */
    bool leaked;  /* a LEAK report named it (zone destroy) */
    lb_atomic_u64 *desc; /* its head page's descriptor */
};

struct rep {
    unsigned zi;
    enum labyrinth_report_kind kind;
    int err;
    const void *addr;
    unsigned order;
};

struct owed {
    unsigned zi;
    const void *addr;
};

static struct fzone Z[NZ];
static struct blk B[MAXB];
static unsigned nb;
static struct rep R[MAXREP];
static unsigned nrep;
static struct owed O[MAXOWED];
static unsigned nowed;
static uint64_t tag_seq;

/* Caller memory for zone 1, and memory that belongs to no zone.  2 MiB
 * aligned: where the pages start within a block of the zone's max_order
 * (and so how the buddy splits the region) must not depend on where the
 * loader put this array. */
#define CALLER_BYTES ((size_t)2 << 20)
static char caller_mem[CALLER_BYTES] __attribute__((aligned(2 << 20)));
static char foreign[4 * 4096] __attribute__((aligned(4096)));

/* A zone of fixed size that is not the caller-memory one would cost some
 * 30 system calls to map, populate, lock and unmap (about 0.35 ms): it
 * lives in this array instead, laid out as a mapped zone's first region
 * is (its pages start on a 2 MiB boundary, so first == 0 and the buddy
 * splits it the same way), the metadata just before them.  Only zones that
 * may grow are mapped.  Under ASan the page before the metadata and the page
 * after the last page are poisoned, where a mapped zone has guard pages. */
#define PLAIN_BYTES ((size_t)4 << 20)
#define PLAIN_GIVEN ((size_t)1 << 20) /* memory_bytes: fixed, so the metadata's size is */
static char plain_mem[NZ][PLAIN_BYTES] __attribute__((aligned(2 << 20)));
static uint32_t plain_meta[256][256]; /* metadata bytes by configuration bytes, 0 = not known yet */
static char *guard_at[NZ][2];         /* the pages poisoned for zone slot zi, or NULL */

#if defined(__has_include)
#if __has_include(<sanitizer/asan_interface.h>)
#include <sanitizer/asan_interface.h>
#endif
#endif
#ifndef ASAN_POISON_MEMORY_REGION
#define ASAN_POISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#endif

static void on_report(const struct labyrinth_report *r, void *arg)
{
    if (nrep >= MAXREP)
        FAIL("too many reports");
    R[nrep++] = (struct rep){(unsigned)(uintptr_t)arg, r->kind, r->err, r->addr, r->order};
}

/* Refresh the zone's regions (a KERNEL allocation may have added one). */
static void sync_regions(struct fzone *f)
{
    unsigned n = lb_regmap_count(&lb_zone_of(f->z)->map);
    EXPECT(n <= MAXREG, "%u regions", n);
    if (f->nreg && n != f->nreg) /* grown */
        fz_event |= 1u << (f - Z);
    for (unsigned i = f->nreg; i < n; i++) {
        struct lb_region *r = lb_regmap_get(&lb_zone_of(f->z)->map, i);
        f->rlo[i] = r->lo;
        f->rpages[i] = r->bytes / PG;
        EXPECT(f->rpages[i] <= MAXPG, "region of %zu pages", f->rpages[i]);
        memset(f->pm[i], 0, sizeof f->pm[i]);
    }
    f->nreg = n;
}

/* The page-map entry of the page holding a in zone f, or NULL. */
static uint16_t *pm_at(struct fzone *f, uintptr_t a)
{
    if (!f->z || !f->live)
        return NULL;
    for (unsigned i = 0; i < f->nreg; i++)
        if (a - f->rlo[i] < f->rpages[i] * PG)
            return &f->pm[i][(a - f->rlo[i]) / PG];
    return NULL;
}

/* Which live zone holds a, or -1. */
static int zone_of(uintptr_t a)
{
    for (unsigned i = 0; i < NZ; i++)
        if (pm_at(&Z[i], a))
            return (int)i;
    return -1;
}

/* "z0.r1+12" for traces: stable across runs, unlike addresses. */
static const char *pn(const void *p)
{
    static char ring[8][48];
    static unsigned k;
    char *b = ring[k++ % 8];
    uintptr_t a = (uintptr_t)p;
    for (unsigned zi = 0; zi < NZ; zi++)
        for (unsigned i = 0; Z[zi].z && i < Z[zi].nreg; i++)
            if (a - Z[zi].rlo[i] < Z[zi].rpages[i] * PG) {
                size_t off = a - Z[zi].rlo[i];
                snprintf(b, 48, "z%u.r%u+%zu%s", zi, i, off / PG, off % PG ? "+x" : "");
                return b;
            }
    snprintf(b, 48, a ? "foreign" : "NULL");
    return b;
}

static void pm_set(unsigned b, uint16_t v)
{
    for (size_t i = 0; i < ((size_t)1 << B[b].order); i++)
        *pm_at(&Z[B[b].zi], (uintptr_t)B[b].p + i * PG) = v;
}

static lb_atomic_u64 *desc_of(struct fzone *f, uintptr_t a);

static void blk_add(unsigned zi, char *p, unsigned order, bool tracked)
{
    EXPECT(nb < MAXB, "model full");
    struct fzone *f = &Z[zi];
    uint64_t tag = ++tag_seq << 20;
    for (size_t i = 0; i < ((size_t)1 << order); i++) {
        uint16_t *e = pm_at(f, (uintptr_t)p + i * PG);
        EXPECT(e, "block %p order %u: page %zu outside the zone", (void *)p, order, i);
        EXPECT(*e == 0, "block %p order %u overlaps held block %p order %u", (void *)p, order,
               (void *)B[*e - 1].p, B[*e - 1].order);
        memcpy(p + i * PG, &(uint64_t){tag + i}, 8);
        memcpy(p + i * PG + PG - 8, &(uint64_t){~(tag + i)}, 8);
    }
    B[nb] = (struct blk){zi, p, order, tag, tracked, false, desc_of(f, (uintptr_t)p)};
    pm_set(nb, (uint16_t)(nb + 1));
    f->held_pages += (size_t)1 << order;
    nb++;
}

static void blk_verify(unsigned b)
{
    for (size_t i = 0; i < ((size_t)1 << B[b].order); i++) {
        uint64_t x, y;
        memcpy(&x, B[b].p + i * PG, 8);
        memcpy(&y, B[b].p + i * PG + PG - 8, 8);
        EXPECT(x == B[b].tag + i && y == ~(B[b].tag + i),
               "held block %p order %u: page %zu was overwritten while held (handed out twice?)",
               (void *)B[b].p, B[b].order, i);
    }
}

static void blk_remove(unsigned b)
{
    struct fzone *f = &Z[B[b].zi];
    pm_set(b, 0);
    f->held_pages -= (size_t)1 << B[b].order;
    if (b != nb - 1) {
        B[b] = B[nb - 1];
        pm_set(b, (uint16_t)(b + 1));
    }
    nb--;
}

static int blk_of(uintptr_t a)
{
    int zi = zone_of(a);
    if (zi < 0)
        return -1;
    uint16_t e = *pm_at(&Z[zi], a);
    return e ? e - 1 : -1;
}

/* ---- white-box reads (quiescent zone) ------------------------------------------------------- */

static lb_atomic_u64 *desc_of(struct fzone *f, uintptr_t a)
{
    struct lb_region *r = lb_regmap_lookup(&lb_zone_of(f->z)->map, a);
    EXPECT(r, "no region for %p", (void *)a);
    return &r->desc[(a - r->base) >> f->z->page_shift];
}

/* A page the model does not hold whose descriptor still says allocated:
 * freed to another context and on its way back to its owner. */
static bool in_flight(struct fzone *f, uintptr_t a)
{
    return lb_d_state(lb_load_rlx_u64(desc_of(f, a))) == LB_S_ALLOC;
}

/* The level a call at depth d of this thread uses in zone f, or NULL. */
static struct lb_level *my_level(struct fzone *f, unsigned d)
{
    const struct lb_cache *c = &lb_zone_of(f->z)->cache;
    if (d >= LB_LEVELS || c->tls_slot >= LB_TLS_ZONES)
        return NULL;
    const struct lb_tls_zone *e = &lb_tls.z[c->tls_slot];
    return e->serial == c->serial && e->tc ? &e->tc->lvl[d] : NULL;
}

/* The magazine of a stack link (index + 1). */
static const struct lb_mag *mag_at(const struct lb_cache *c, uint32_t index_plus_1)
{
    return lb_mag_at(c, index_plus_1 - 1);
}

/* Entries of level l's inbox that its owner would accept now. */
static unsigned inbox_valid(const struct lb_cache *c, const struct lb_level *l)
{
    unsigned n = 0, guard = 0;
    for (uint32_t top = (uint32_t)lb_load_rlx_u64(&l->inbox.head); top && guard <= c->nmags; guard++) {
        const struct lb_mag *m = mag_at(c, top);
        uint32_t k = lb_load_rlx_u32(&m->count);
        for (uint32_t i = 0; i < k; i++) {
            uintptr_t e = (uintptr_t)m->slot[i];
            uint32_t pid = (uint32_t)(e >> 32);
            struct lb_region *r = lb_cache_id_region(c, pid);
            uint64_t w = lb_load_rlx_u64(&r->desc[pid & 0xffffffu]);
            n += (w & LB_D_OWNED_MASK) == l->pattern && lb_d_gen(w) == (uint32_t)e;
        }
        top = lb_load_rlx_u32(&m->next);
    }
    return n;
}

#define MAXLV (2 * LB_LEVELS) /* levels of two thread caches: max_threads <= 2 */
static void inbox_heads(const struct lb_cache *c, uint64_t *out)
{
    for (uint32_t t = 0; t < c->ntcaches && t * LB_LEVELS < MAXLV; t++)
        for (unsigned d = 0; d < LB_LEVELS; d++)
            out[t * LB_LEVELS + d] = lb_load_rlx_u64(&c->tcaches[t].lvl[d].inbox.head);
}

/* Debugging aid for a failure: the descriptor of page a and every queued
 * free of it (outboxes and inboxes). */
static void dump_entries(const struct lb_cache *c, const struct lb_mag *m, uint32_t pid, const char *where,
                         unsigned t, unsigned d, unsigned dest)
{
    uint32_t k = lb_load_rlx_u32(&m->count);
    for (uint32_t i = 0; i < k && i < c->mag_size; i++)
        if ((uint32_t)((uintptr_t)m->slot[i] >> 32) == pid)
            fprintf(stderr, "    queued in tcache %u level %u %s (to level id %u): gen %#x\n", t, d, where, dest,
                    (uint32_t)(uintptr_t)m->slot[i]);
}

static void dump_page(struct fzone *f, uintptr_t a)
{
    const struct lb_cache *c = &lb_zone_of(f->z)->cache;
    struct lb_region *r = lb_regmap_lookup(&lb_zone_of(f->z)->map, a);
    uint32_t idx = (uint32_t)((a - r->base) >> f->z->page_shift), pid = lb_page_id(r, idx);
    uint64_t w = lb_load_rlx_u64(&r->desc[idx]);
    fprintf(stderr, "  page %p: state %u order %u flags %#x owner %u gen %#x\n", (void *)a, lb_d_state(w),
            lb_d_order(w), lb_d_flags(w), lb_d_owner(w), lb_d_gen(w));
    for (uint32_t t = 0; t < c->ntcaches; t++) {
        fprintf(stderr, "    tcache %u owner %u\n", t, lb_load_rlx_u32(&c->tcaches[t].owner));
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            const struct lb_level *l = &c->tcaches[t].lvl[d];
            for (unsigned k = 0; k < LB_OUTBOX_SLOTS; k++) {
                const struct lb_mag *m = lb_load_rlx_ptr(&l->out_mag[k]);
                if (m)
                    dump_entries(c, m, pid, "outbox", t, d, l->out_dest[k]);
            }
            unsigned guard = 0;
            for (uint32_t top = (uint32_t)lb_load_rlx_u64(&l->inbox.head); top && guard++ <= c->nmags;) {
                const struct lb_mag *m = mag_at(c, top);
                dump_entries(c, m, pid, "inbox", t, d, l->id);
                top = lb_load_rlx_u32(&m->next);
            }
        }
    }
}

/* ---- reports -------------------------------------------------------------------------------- */

static void owe(unsigned zi, const void *addr)
{
    EXPECT(nowed < MAXOWED, "too many owed reports");
    O[nowed++] = (struct owed){zi, addr};
    fz_event |= 1u << zi;
}

static bool misuse_kind(enum labyrinth_report_kind k)
{
    return k != LABYRINTH_REPORT_NOTICE && k != LABYRINTH_REPORT_LEAK;
}

/* Account for the reports made since mark.  want_kind/want_err/want_addr:
 * the one synchronous report the operation must have made (kind 0: none).
 * Late double-free reports must match an owed one.  leaks: LEAK reports
 * allowed (zone destroy), returned through *nleaks. */
static void reports_since(unsigned mark, enum labyrinth_report_kind want_kind, int want_err, const void *want_addr,
                          unsigned want_zi, bool leaks, unsigned *nleaks)
{
    bool seen = false;
    for (unsigned i = mark; i < nrep; i++) {
        struct rep *r = &R[i];
        if (misuse_kind(r->kind))
            Z[r->zi].misuse++;
        if (want_kind && !seen && r->kind == want_kind && r->err == want_err && r->addr == want_addr &&
            r->zi == want_zi) {
            seen = true;
            continue;
        }
        if (r->kind == LABYRINTH_REPORT_BAD_FREE && r->err == -EALREADY) {
            unsigned k;
            for (k = 0; k < nowed; k++)
                if (O[k].zi == r->zi && O[k].addr == r->addr)
                    break;
            EXPECT(k < nowed, "a late double-free report for %p that no free owed", r->addr);
            O[k] = O[--nowed];
            fz_event |= 1u << r->zi;
            continue;
        }
        if (r->kind == LABYRINTH_REPORT_LEAK && leaks) {
            /* Exactly the blocks still held, each once, with its order. */
            int b = blk_of((uintptr_t)r->addr);
            EXPECT(b >= 0 && B[b].zi == r->zi && B[b].p == r->addr && B[b].order == r->order && !B[b].leaked,
                   "a LEAK report for %p order %u: the model holds %s", r->addr, r->order,
                   b < 0 ? "no such block" : B[b].leaked ? "it, reported already" : "another block or order");
            B[b].leaked = true;
            (*nleaks)++;
            continue;
        }
        if (r->kind == LABYRINTH_REPORT_NOTICE)
            continue;
        FAIL("unexpected report kind %d err %d addr %p order %u (expected kind %d err %d addr %p)", r->kind, r->err,
             r->addr, r->order, want_kind, want_err, want_addr);
    }
    EXPECT(!want_kind || seen, "no report kind %d err %d for %p", want_kind, want_err, want_addr);
}

static unsigned owed_in(unsigned zi)
{
    unsigned n = 0;
    for (unsigned k = 0; k < nowed; k++)
        n += O[k].zi == zi;
    return n;
}

/* Run call with fd 2 pointed at /dev/null: refusals on a dead or NULL
 * handle go to the default report handler, which writes a line. */
static int quiet_fd = -1, saved_fd = -1;
static void quiet_begin(void)
{
    fflush(stderr);
    if (quiet_fd < 0) {
        quiet_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        saved_fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
    }
    dup2(quiet_fd, 2);
}
static void quiet_end(void) { dup2(saved_fd, 2); }

/* Such a call costs three system calls (those above and the line) and
 * takes the one path that lb_zone_get refuses: per input, the first two
 * such calls (of different kinds: alloc, free, register, release) are
 * made, later ones skipped (they change nothing, in the model or in a
 * zone). */
enum { DEAD_ALLOC, DEAD_FREE, DEAD_REGISTER, DEAD_RELEASE, DEAD_KINDS };
static unsigned dead_calls[DEAD_KINDS], dead_total;
static bool dead_skip(unsigned kind)
{
    if (dead_calls[kind] >= 1 || dead_total >= 2) {
        TRACE("  (another call on a dead or NULL handle: skipped)\n");
        return true;
    }
    dead_calls[kind]++;
    dead_total++;
    return false;
}

/* ---- workers: one operation at a time, in a chosen thread and depth -------------------------- */

/* Two ways to run operation o "in worker w":
 *   - contexts (the default): labyrinth's per-thread state is its context
 *     struct lb_tls (cache.h; a CPU's in a kernel, where tasks take turns on
 *     one), and nothing else of a thread is seen by the library.  Each worker
 *     is one saved struct lb_tls, swapped into the driver thread's TLS for
 *     the operation and saved back after it: no thread switch per step.
 *     A worker's exit runs in a real, short-lived thread that adopts the
 *     saved context (and arms the library's exit hook, a pthread key, as
 *     the worker had), so the hook's destructor gives its caches back.
 *   - LB_FUZZ_THREADS=real: NW real threads; the driver hands the operation
 *     to one and waits (a mutex and condition variables).  About 20 us a
 *     step; fuzz/replay.c runs every input this way too, so a difference
 *     between the two would show there. */
struct op;
typedef void op_fn(struct op *o);
struct op {
    op_fn *fn;
    unsigned w, d; /* thread, depth */
    unsigned zi, gfp, order, q, sel, kind;
    uint32_t extra;
};

static struct worker {
    pthread_t t;
    pthread_cond_t cv;
    struct op *job;
    bool done;
} W[NW];
static pthread_mutex_t wmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wdone = PTHREAD_COND_INITIALIZER;
static bool workers_up;
static int fz_real = -1;         /* LB_FUZZ_THREADS=real */
static struct lb_tls ctx_tls[NW]; /* contexts mode: each worker's context */

static void run_nested(struct op *o, unsigned d)
{
    if (d == 0) {
        o->fn(o);
        return;
    }
    /* As a signal handler that interrupted a labyrinth call one level up. */
    uint32_t saved = lb_enter();
    run_nested(o, d - 1);
    lb_leave(saved);
}

static void *worker_main(void *arg)
{
    struct worker *me = arg;
    pthread_mutex_lock(&wmu);
    for (;;) {
        while (!me->job)
            pthread_cond_wait(&me->cv, &wmu);
        struct op *o = me->job;
        pthread_mutex_unlock(&wmu);
        if (!o->fn) { /* exit: the driver joins, the key's destructor runs on the way out */
            pthread_mutex_lock(&wmu);
            me->job = NULL;
            pthread_mutex_unlock(&wmu);
            return NULL;
        }
        run_nested(o, o->d);
        pthread_mutex_lock(&wmu);
        me->job = NULL;
        me->done = true;
        pthread_cond_broadcast(&wdone);
    }
    return NULL;
}

static void start_workers(void)
{
    if (workers_up)
        return;
    for (unsigned i = 0; i < NW; i++) {
        pthread_cond_init(&W[i].cv, NULL);
        if (pthread_create(&W[i].t, NULL, worker_main, &W[i]))
            FAIL("pthread_create");
    }
    workers_up = true;
}

/* Contexts mode: the library's exit-hook key, found as the one whose value
 * in this thread is its context (lb_cache_claim arms it with lb_ctx()). */
static pthread_key_t lib_key;
static bool lib_key_known;
static void *exit_main(void *arg)
{
    lb_tls = *(const struct lb_tls *)arg;
    if (lb_tls.armed)
        pthread_setspecific(lib_key, &lb_tls);
    return NULL; /* glibc runs the key's destructor: lb_tls_exit */
}

/* Worker w's thread exits (its caches go back to their zones, as
 * lb_tls_exit does) and a new thread, with a fresh context, takes its
 * place. */
static void worker_exit(unsigned w)
{
    if (fz_real) {
        static struct op bye; /* fn NULL */
        pthread_mutex_lock(&wmu);
        W[w].job = &bye;
        pthread_cond_signal(&W[w].cv);
        pthread_mutex_unlock(&wmu);
        if (pthread_join(W[w].t, NULL) || pthread_create(&W[w].t, NULL, worker_main, &W[w]))
            FAIL("worker thread join/create");
        return;
    }
    if (ctx_tls[w].armed && !lib_key_known) {
        for (unsigned k = 0; k < PTHREAD_KEYS_MAX && !lib_key_known; k++)
            if (pthread_getspecific((pthread_key_t)k) == (void *)&lb_tls) {
                lib_key = (pthread_key_t)k;
                lib_key_known = true;
            }
        EXPECT(lib_key_known, "a context is armed, but no key of this thread holds it");
    }
    pthread_t t;
    if (pthread_create(&t, NULL, exit_main, &ctx_tls[w]) || pthread_join(t, NULL))
        FAIL("exit thread create/join");
    memset(&ctx_tls[w], 0, sizeof ctx_tls[w]);
}

static void op_exit(struct op *o);

static void run_op(struct op *o)
{
    if (o->fn == op_exit) {
        o->fn(o);
        return;
    }
    if (!fz_real) {
        struct lb_tls mine = lb_tls;
        lb_tls = ctx_tls[o->w];
        run_nested(o, o->d);
        ctx_tls[o->w] = lb_tls;
        lb_tls = mine;
        return;
    }
    struct worker *w = &W[o->w];
    pthread_mutex_lock(&wmu);
    w->done = false;
    w->job = o;
    pthread_cond_signal(&w->cv);
    while (!w->done)
        pthread_cond_wait(&wdone, &wmu);
    pthread_mutex_unlock(&wmu);
}

/* ---- allocation ----------------------------------------------------------------------------- */

static bool gfp_ok(unsigned gfp)
{
    if (gfp & ~LABYRINTH_GFP_BITS_ALL)
        return false;
    if ((gfp & LABYRINTH_GFP_BIT_SLEEP) && (gfp & (LABYRINTH_GFP_BIT_TRYLOCK | LABYRINTH_GFP_BIT_RESERVE)))
        return false;
    if ((gfp & LABYRINTH_GFP_BIT_GROW) && !(gfp & LABYRINTH_GFP_BIT_SLEEP))
        return false;
    return true;
}

/* Was this NULL legitimate?  Reads the zone after the call (nothing ran
 * since, and the call's own moves only bring pages closer). */
static void null_earned(struct op *o, const uint64_t *heads_before)
{
    struct fzone *f = &Z[o->zi];
    struct labyrinth_zone *z = f->z;
    struct lb_cache *c = &lb_zone_of(z)->cache;
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(z, &st);
    const char *mode = o->gfp == LABYRINTH_GFP_ATOMIC ? "ATOMIC" : o->gfp == LABYRINTH_GFP_NOWAIT ? "NOWAIT"
                       : o->gfp == LABYRINTH_GFP_KERNEL ? "KERNEL" : "raw";
    EXPECT(lb_load_rlx_u64(&c->pending_pages) == 0, "%s order %u NULL with %llu pending pages", mode, o->order,
           (unsigned long long)lb_load_rlx_u64(&c->pending_pages));
    if (o->gfp & LABYRINTH_GFP_BIT_GROW)
        EXPECT(st.total_pages >= f->max_pages || st.regions >= LB_MAX_REGIONS,
               "%s order %u NULL though the zone could grow (%zu of %zu pages)", mode, o->order, st.total_pages,
               f->max_pages);
    if (o->order > 0) {
        EXPECT(st.largest_free_order == (size_t)-1 || st.largest_free_order < o->order,
               "%s order %u NULL with a free block of order %zu", mode, o->order, st.largest_free_order);
        if (o->gfp & LABYRINTH_GFP_BIT_SLEEP)
            EXPECT(st.depot_pages == 0, "%s order %u NULL without draining %zu depot pages", mode, o->order,
                   st.depot_pages);
        return;
    }
    EXPECT(st.buddy_free_pages == 0, "%s order 0 NULL with %zu pages in the buddy", mode, st.buddy_free_pages);
    EXPECT(st.depot_pages == 0, "%s order 0 NULL with %zu pages in the depot", mode, st.depot_pages);
    if (o->gfp & LABYRINTH_GFP_BIT_RESERVE)
        EXPECT(st.reserve_free_pages == 0, "%s order 0 NULL with %zu reserve pages", mode, st.reserve_free_pages);
    struct lb_level *l = my_level(f, o->d);
    if (!l)
        return; /* the shared path: buddy, depot, reserve */
    EXPECT(lb_load_rlx_u32(&lb_level_loaded(l)->count) == 0 && lb_load_rlx_u32(&lb_level_spare(l)->count) == 0,
           "%s order 0 NULL with pages in its own magazines", mode);
    /* Queued frees: the owner takes a bounded number of batches per call;
     * pages it could have taken but did not are a spurious NULL, unless the
     * call did take batches (that were all double frees). */
    uint64_t heads[MAXLV];
    inbox_heads(c, heads);
    bool took = false;
    for (uint32_t t = 0; t < c->ntcaches && t * LB_LEVELS < MAXLV; t++)
        for (unsigned d = 0; d < LB_LEVELS; d++)
            took |= heads[t * LB_LEVELS + d] != heads_before[t * LB_LEVELS + d];
    unsigned own = inbox_valid(c, l);
    EXPECT(own == 0 || took, "%s order 0 NULL with %u valid frees in its own inbox, untouched", mode, own);
    for (uint32_t t = 0; t < c->ntcaches; t++) {
        if (lb_load_rlx_u32(&c->tcaches[t].owner))
            continue;
        for (unsigned d = 0; d < LB_LEVELS; d++) {
            unsigned n = inbox_valid(c, &c->tcaches[t].lvl[d]);
            EXPECT(n == 0 || took, "%s order 0 NULL with %u valid frees queued to an exited cache", mode, n);
        }
    }
}

static void check_quality(struct fzone *f, char *p, unsigned order, unsigned q)
{
    for (size_t i = 0; i < ((size_t)1 << order); i++) {
        const unsigned char *pg = (const unsigned char *)p + i * PG;
        const size_t offs[] = {0, 7, PG / 2, PG - 1};
        for (unsigned k = 0; k < 4; k++) {
            if (q & LABYRINTH_QUALITY_ZERO)
                EXPECT(pg[offs[k]] == 0, "ZERO block %p order %u: byte %zu of page %zu is %#x", (void *)p, order,
                       offs[k], i, pg[offs[k]]);
            else if (q & LABYRINTH_QUALITY_POISON)
                EXPECT(pg[offs[k]] == f->poison, "POISON block %p order %u: byte %zu of page %zu is %#x",
                       (void *)p, order, offs[k], i, pg[offs[k]]);
        }
    }
}

static void op_alloc(struct op *o)
{
    struct fzone *f = &Z[o->zi];
    struct labyrinth_zone *z = f->z;
    bool macro = o->kind == 1;
    unsigned gfp = macro ? LABYRINTH_GFP_ATOMIC : o->gfp, q = o->q, order = macro ? 0 : o->order;
    unsigned eff = q | f->quality;
    if (macro && f->live)
        eff = (f->flags & LABYRINTH_ZONE_NO_TRACKING) ? eff & ~LABYRINTH_QUALITY_TRACK : eff | LABYRINTH_QUALITY_TRACK;
    int bad = 0;
    if (!f->live)
        bad = -EBADF;
    else if (!gfp_ok(gfp) || (q & ~LABYRINTH_QUALITY_ALL) || order > f->max_order)
        bad = -EINVAL;
    else if ((eff & LABYRINTH_QUALITY_TRACK) && (f->flags & LABYRINTH_ZONE_NO_TRACKING))
        bad = -EOPNOTSUPP;
    uint64_t heads[MAXLV] = {0};
    unsigned long long fails0 = 0;
    if (f->live) {
        inbox_heads(&lb_zone_of(z)->cache, heads);
        for (unsigned i = 0; i < LB_MODE_SLOTS; i++) /* what the stats add up, read without them */
            fails0 += lb_load_rlx_u64(&lb_zone_of(z)->fails[i]);
    }
    if (bad == -EBADF && dead_skip(DEAD_ALLOC))
        return;
    unsigned mark = nrep;
    if (bad == -EBADF)
        quiet_begin();
    errno = 4242;
    TOUCH((int)o->zi);
    char *p = macro ? labyrinth_void_allocpage_gfpatomic_extra_quality(z, q)
                    : labyrinth_alloc_pages(z, gfp, order, q);
    int e = errno;
    if (bad == -EBADF)
        quiet_end();
    TRACE("  %s zone %u gfp %#x order %u q %#x -> %s\n", macro ? "macro" : "alloc", o->zi, gfp, order, q,
          p ? pn(p) : "NULL");
    bool sleeps = gfp & LABYRINTH_GFP_BIT_SLEEP;
    if (bad) {
        EXPECT(!p, "alloc(gfp %#x, order %u, quality %#x) should be refused (%d), got %p", gfp, order, q, bad,
               (void *)p);
        EXPECT(sleeps ? e == -bad : e == 4242, "refused alloc(gfp %#x): errno %d, want %d", gfp, e,
               sleeps ? -bad : 4242);
        reports_since(mark, bad == -EBADF ? 0 : LABYRINTH_REPORT_BAD_ARGS, bad, NULL, o->zi, false, NULL);
        return;
    }
    reports_since(mark, 0, 0, NULL, 0, false, NULL); /* late double frees only */
    sync_regions(f);
    if (!p) {
        EXPECT(sleeps ? e == ETIMEDOUT : e == 4242, "NULL from alloc(gfp %#x): errno %d", gfp, e);
        null_earned(o, heads);
        struct labyrinth_zone_stats st;
        labyrinth_zone_stats(z, &st);
        EXPECT(st.atomic_failures + st.nowait_failures + st.kernel_failures == fails0 + 1,
               "a failed allocation not counted once");
        if (sleeps)
            f->kernel_nulls++;
        return;
    }
    if (!sleeps)
        EXPECT(e == 4242, "alloc(gfp %#x) touched errno (%d)", gfp, e);
    EXPECT(((uintptr_t)p & ((PG << order) - 1)) == 0, "block %p of order %u misaligned", (void *)p, order);
    check_quality(f, p, order, eff);
    bool tracked = eff & LABYRINTH_QUALITY_TRACK;
    if (tracked) {
        struct labyrinth_page_info info;
        EXPECT(labyrinth_page_info(z, p, &info) == 0, "page_info of a fresh block");
        EXPECT(info.tracked && info.block == p && info.order == order && info.state == LABYRINTH_PAGE_IN_USE,
               "TRACK: page_info tracked %d block %p order %u state %d", info.tracked, info.block, info.order,
               info.state);
        if (macro)
            EXPECT(info.site && info.site->line > 0, "the macro recorded no site");
    }
    blk_add(o->zi, p, order, tracked);
}

/* ---- frees ------------------------------------------------------------------------------------ */

/* The documented result of free(Z[zi] or handle, a, order): *alt is a
 * second acceptable result (0 = none, 1 = "0 with a late report"). */
static int expect_free(int zi, uintptr_t a, unsigned order, int *late_ok)
{
    *late_ok = 0;
    if (!a)
        return 0; /* NULL is a no-op, whatever the handle */
    if (zi < 0 || !Z[zi].live)
        return -EBADF;
    int zj = zone_of(a);
    if (zj < 0)
        return -EFAULT;
    if (zj != zi)
        return -EXDEV;
    if (a & (PG - 1))
        return -EINVAL;
    if (order > Z[zi].max_order)
        return -ERANGE;
    int b = blk_of(a);
    if (b >= 0)
        return (uintptr_t)B[b].p != a ? -ENXIO : B[b].order == order ? 0 : -ERANGE;
    if (in_flight(&Z[zi], a)) {
        if (order != 0)
            return -ERANGE; /* the descriptor still says: order 0, allocated */
        *late_ok = 1;
    }
    return -EALREADY;
}

static void do_free(struct op *o, int zi, uintptr_t a, unsigned order)
{
    struct labyrinth_zone *z = zi < 0 ? NULL : Z[zi].z;
    int late_ok;
    int want = expect_free(zi, a, order, &late_ok);
    int b = want == 0 && a ? blk_of(a) : -1;
    if (b >= 0)
        blk_verify((unsigned)b);
    if (want == -EBADF && dead_skip(DEAD_FREE))
        return;
    unsigned mark = nrep;
    if (want == -EBADF)
        quiet_begin();
    TOUCH(zi);
    int rc = labyrinth_free_pages(z, (void *)a, order);
    if (want == -EBADF)
        quiet_end();
    TRACE("  free zone %d %s order %u -> %d (want %d%s)\n", zi, pn((void *)a), order, rc, want, late_ok ? " or 0" : "");
    if (late_ok && rc == 0) {
        /* A second free of a page on its way back to its owner: accepted
         * now, reported when the owner takes the batch. */
        reports_since(mark, 0, 0, NULL, 0, false, NULL);
        owe((unsigned)zi, (const void *)a);
        return;
    }
    EXPECT(rc == want, "free(zone %d, %p, order %u) = %d (%s), want %d (%s)%s", zi, (void *)a, order, rc,
           labyrinth_strerror(rc), want, labyrinth_strerror(want), late_ok ? " or 0" : "");
    if (rc == 0) {
        reports_since(mark, 0, 0, NULL, 0, false, NULL);
        if (b >= 0)
            blk_remove((unsigned)b);
    } else {
        reports_since(mark, want == -EBADF ? 0 : LABYRINTH_REPORT_BAD_FREE, want, (const void *)a, (unsigned)zi,
                      false, NULL);
    }
    (void)o;
}

/* A page of zone zi chosen by sel: held or not. */
static uintptr_t pick_page(unsigned zi, unsigned sel)
{
    struct fzone *f = &Z[zi];
    if (!f->z || !f->nreg)
        return (uintptr_t)foreign;
    unsigned r = sel % f->nreg;
    return f->rlo[r] + (sel / f->nreg % f->rpages[r]) * PG;
}

static void op_free(struct op *o)
{
    /* kind: 0 good, 1 foreign, 2 interior, 3 misaligned, 4 double/not held,
     * 5 wrong order, 6 wrong zone, 7 NULL handle / NULL address. */
    unsigned zi = o->zi;
    if (o->kind == 0 || o->kind == 2 || o->kind == 3 || o->kind == 5 || o->kind == 6) {
        if (!nb) {
            do_free(o, (int)zi, pick_page(zi, o->sel), o->order);
            return;
        }
        struct blk *h = &B[o->sel % nb];
        uintptr_t a = (uintptr_t)h->p;
        switch (o->kind) {
        case 0: do_free(o, (int)h->zi, a, h->order); return;
        case 2: do_free(o, (int)h->zi, a + PG * (h->order ? 1 + o->extra % ((1u << h->order) - 1) : 0), o->order);
                return;
        case 3: do_free(o, (int)h->zi, a + 1 + o->extra % (PG - 1), o->order % (Z[h->zi].max_order + 1)); return;
        case 5: do_free(o, (int)h->zi, a, (h->order + 1 + o->order) % (Z[h->zi].max_order + 2)); return;
        default: do_free(o, (int)(1 - h->zi), a, h->order); return;
        }
    }
    switch (o->kind) {
    case 1: {
        uintptr_t a = o->extra & 1 ? (uintptr_t)foreign + (o->extra >> 1) % 4 * PG
                                   : Z[zi].z && Z[zi].nreg ? Z[zi].rlo[0] - PG : (uintptr_t)foreign;
        do_free(o, (int)zi, a, o->order % (Z[zi].max_order + 1));
        return;
    }
    case 4: do_free(o, (int)zi, pick_page(zi, o->sel), o->order % 2 ? o->order % (Z[zi].max_order + 1) : 0); return;
    default:
        if (o->extra & 1)
            do_free(o, -1, (uintptr_t)foreign, 0);
        else
            do_free(o, (int)zi, 0, o->order);
        return;
    }
}

/* ---- register, page_info ------------------------------------------------------------------------ */

static void op_register(struct op *o)
{
    struct fzone *f = &Z[o->zi];
    uintptr_t a;
    if (o->kind == 0 && nb) {
        struct blk *h = &B[o->sel % nb];
        a = (uintptr_t)h->p + (o->extra % 4 == 3 && h->order ? PG : 0);
        if (h->zi != o->zi && o->extra % 8 != 7)
            f = &Z[h->zi];
    } else {
        a = pick_page(o->zi, o->sel);
    }
    if (o->extra % 16 == 15)
        a += 8; /* misaligned */
    unsigned zi = (unsigned)(f - Z);
    int want;
    if (!f->live)
        want = -EBADF;
    else if (f->flags & LABYRINTH_ZONE_NO_TRACKING)
        want = -EOPNOTSUPP;
    else {
        int zj = zone_of(a);
        int b = zj >= 0 ? blk_of(a) : -1;
        if (zj < 0)
            want = -EFAULT;
        else if (zj != (int)zi)
            want = -EXDEV;
        else if (a & (PG - 1))
            want = -EINVAL;
        else if (b >= 0)
            want = (uintptr_t)B[b].p == a ? 0 : -ENXIO;
        else
            want = in_flight(f, a) ? 0 : -ENOENT; /* a page on its way back still reads as allocated */
    }
    if (want == -EBADF && dead_skip(DEAD_REGISTER))
        return;
    unsigned mark = nrep;
    if (want == -EBADF)
        quiet_begin();
    TOUCH((int)zi);
    int rc = o->extra & 32 ? labyrinth_register_page_tag(f->z, (void *)a, o->extra >> 8)
                           : labyrinth_register_page(f->z, (void *)a);
    if (want == -EBADF)
        quiet_end();
    EXPECT(rc == want, "register(zone %u, %p) = %d, want %d", zi, (void *)a, rc, want);
    if (rc == 0) {
        int b = blk_of(a);
        if (b >= 0) {
            B[b].tracked = true;
            struct labyrinth_page_info info;
            EXPECT(labyrinth_page_info(f->z, (void *)a, &info) == 0 && info.tracked, "registered, not tracked");
            if (o->extra & 32)
                EXPECT(info.tag == ((o->extra >> 8) & 0xffffffu), "tag %u", info.tag);
        }
    }
    reports_since(mark, rc && rc != -EBADF && rc != -EOPNOTSUPP ? LABYRINTH_REPORT_BAD_ARGS : 0, rc,
                  (const void *)a, zi, false, NULL);
}

static void op_info(struct op *o)
{
    struct fzone *f = &Z[o->zi];
    uintptr_t a = nb && o->kind ? (uintptr_t)B[o->sel % nb].p + o->extra % ((size_t)PG << B[o->sel % nb].order)
                                : pick_page(o->zi, o->sel) + o->extra % PG;
    if (o->kind == 3)
        a = (uintptr_t)foreign + o->extra % sizeof foreign;
    struct labyrinth_page_info info;
    int want;
    int zj = zone_of(a);
    if (!f->live)
        want = -EBADF;
    else if (o->extra & 0x10000)
        want = -EINVAL; /* out is NULL */
    else if (zj < 0)
        want = -EFAULT;
    else if (zj != (int)o->zi)
        want = -EXDEV;
    else
        want = 0;
    unsigned mark = nrep;
    int rc = labyrinth_page_info(f->z, (void *)a, o->extra & 0x10000 ? NULL : &info);
    EXPECT(rc == want, "page_info(zone %u, %p) = %d, want %d", o->zi, (void *)a, rc, want);
    reports_since(mark, 0, 0, NULL, 0, false, NULL);
    if (rc)
        return;
    int b = blk_of(a);
    if (b >= 0) {
        EXPECT(info.block == B[b].p && info.order == B[b].order && info.state == LABYRINTH_PAGE_IN_USE &&
                   info.tracked == (int)B[b].tracked,
               "page_info(%p): block %p order %u state %d tracked %d; model: block %p order %u tracked %d",
               (void *)a, info.block, info.order, info.state, info.tracked, (void *)B[b].p, B[b].order,
               B[b].tracked);
    } else {
        uintptr_t page = a & ~(uintptr_t)(PG - 1);
        EXPECT(info.state != LABYRINTH_PAGE_IN_USE || in_flight(f, (uintptr_t)info.block),
               "page_info(%p): a page nobody holds reads as in use (block %p)", (void *)page, info.block);
    }
}

static void op_release(struct op *o)
{
    struct fzone *f = &Z[o->zi];
    if (!f->live && dead_skip(DEAD_RELEASE))
        return;
    unsigned mark = nrep;
    if (!f->live)
        quiet_begin();
    TOUCH((int)o->zi);
    int rc = labyrinth_thread_release(f->z);
    if (!f->live)
        quiet_end();
    EXPECT(rc == (f->live ? 0 : -EBADF), "thread_release = %d", rc);
    reports_since(mark, 0, 0, NULL, 0, false, NULL);
}

static void op_exit(struct op *o)
{
    unsigned mark = nrep;
    TOUCH(0);
    TOUCH(1);
    /* Contexts mode: the caches this worker holds in live zones, which the
     * exit must give back. */
    struct lb_tcache *held[NZ] = {0};
    for (unsigned zi = 0; zi < NZ && !fz_real; zi++) {
        const struct lb_cache *c = Z[zi].live ? &lb_zone_of(Z[zi].z)->cache : NULL;
        if (c && c->tls_slot < LB_TLS_ZONES && ctx_tls[o->w].z[c->tls_slot].serial == c->serial)
            held[zi] = ctx_tls[o->w].z[c->tls_slot].tc;
    }
    worker_exit(o->w);
    for (unsigned zi = 0; zi < NZ; zi++)
        EXPECT(!held[zi] || lb_load_rlx_u32(&held[zi]->owner) == 0,
               "thread %u exited, its cache in zone %u still has owner %u", o->w, zi,
               lb_load_rlx_u32(&held[zi]->owner));
    TRACE("  thread %u exits, a new one takes its place\n", o->w);
    reports_since(mark, 0, 0, NULL, 0, false, NULL); /* late double-free reports only */
}

/* ---- zones ------------------------------------------------------------------------------------------ */

static void zone_create(unsigned zi, unsigned c0, unsigned c1)
{
    T_BEGIN(T_CREATE);
    struct fzone *f = &Z[zi];
    memset(f, 0, sizeof *f);
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = zi ? "fuzz-1" : "fuzz-0";
    cfg.pages = 32 + 32 * (c0 & 3);
    cfg.max_order = 2 + ((c0 >> 2) & 3);
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    if (c0 & 0x20)
        cfg.flags |= LABYRINTH_ZONE_VERIFY;
    if (c0 & 0x40)
        cfg.flags |= LABYRINTH_ZONE_NO_TRACKING;
    if (c0 & 0x80)
        cfg.quality = (c0 & 0x40) ? LABYRINTH_QUALITY_ZERO : LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_TRACK;
    static const unsigned mags[4] = {2, 3, 4, 8};
    cfg.magazine_pages = mags[c1 & 3];
    cfg.reserve_pages = (c1 >> 2) & 7;
    cfg.max_threads = 1 + ((c1 >> 5) & 1);
    cfg.poison_pattern = (c1 & 0x40) ? 0xa5 : 0;
    cfg.wait_timeout_ms = 1;
    f->caller_mem = zi == 1 && (c1 & 0x80);
    char *mem = NULL, *end = NULL;
    for (unsigned k = 0; k < 2; k++)
        if (guard_at[zi][k]) {
            ASAN_UNPOISON_MEMORY_REGION(guard_at[zi][k], PG);
            guard_at[zi][k] = NULL;
        }
    if (f->caller_mem) {
        mem = cfg.memory = caller_mem;
        cfg.memory_bytes = CALLER_BYTES;
        end = caller_mem + CALLER_BYTES;
    } else if ((c0 & 0x10) && (zi == 1 || (c1 & 0x80))) {
        /* Zone 0 takes bit 7 of its second byte too (the caller-memory bit
         * of zone 1): a mapped zone costs five times a plain one. */
        cfg.max_pages = cfg.pages * 3; /* KERNEL grows it */
    } else {
        f->plain = true;
        char *buf = plain_mem[zi];
        end = buf + PLAIN_BYTES;
        uint32_t *meta = &plain_meta[c0][c1];
        if (!*meta) { /* once per configuration: how much metadata goes before the pages */
            cfg.memory = buf;
            cfg.memory_bytes = PLAIN_GIVEN;
            struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
            EXPECT(z, "zone_create (plain, measuring): %s", strerror(errno));
            *meta = (uint32_t)lb_load_rlx_u64(&lb_zone_of(z)->metadata_bytes);
            labyrinth_zone_destroy(z);
            EXPECT(*meta && *meta <= PLAIN_BYTES / 2 && *meta % PG == 0, "metadata of %u bytes", *meta);
        }
        mem = cfg.memory = buf + PLAIN_BYTES / 2 - *meta;
        cfg.memory_bytes = PLAIN_GIVEN;
    }
    TRACE("  create zone %u: pages %zu max_pages %zu max_order %u flags %#x quality %#x magazine %u reserve %zu "
          "threads %u%s\n", zi, cfg.pages, cfg.max_pages, cfg.max_order, cfg.flags, cfg.quality, cfg.magazine_pages,
          cfg.reserve_pages, cfg.max_threads, f->caller_mem ? " caller memory" : "");
    f->z = labyrinth_zone_create(&cfg);
    EXPECT(f->z, "zone_create: %s", strerror(errno));
    EXPECT(lb_zone_of(f->z)->cache.ntcaches * LB_LEVELS <= MAXLV, "%u thread caches", lb_zone_of(f->z)->cache.ntcaches);
    if (mem) {
        struct lb_region *r = &lb_zone_of(f->z)->regions[0];
        EXPECT(!f->plain || (r->first == 0 && r->lo % ((size_t)2 << 20) == 0), "a plain zone's pages at %p, first %u",
               (void *)r->lo, r->first);
        char *pages_end = (char *)r->lo + r->bytes;
        guard_at[zi][0] = f->plain ? mem - PG : NULL;
        guard_at[zi][1] = pages_end + PG <= end ? pages_end : NULL;
        for (unsigned k = 0; k < 2; k++)
            if (guard_at[zi][k])
                ASAN_POISON_MEMORY_REGION(guard_at[zi][k], PG);
    }
    labyrinth_zone_set_report_handler(f->z, on_report, (void *)(uintptr_t)zi);
    f->live = true;
    f->max_order = cfg.max_order;
    f->flags = cfg.flags;
    f->quality = cfg.quality;
    f->poison = cfg.poison_pattern ? cfg.poison_pattern : 0x6b;
    f->max_pages = cfg.max_pages ? cfg.max_pages : cfg.pages;
    sync_regions(f);
    T_END(T_CREATE + (f->caller_mem ? 1 : f->plain ? 2 : 0));
}

static void zone_destroy(unsigned zi)
{
    T_BEGIN(T_DESTROY);
    struct fzone *f = &Z[zi];
    unsigned held = 0;
    for (unsigned b = 0; b < nb; b++)
        held += B[b].zi == zi;
    unsigned mark = nrep, leaks = 0;
    TRACE("  destroy zone %u (%u blocks held)\n", zi, held);
    labyrinth_zone_destroy(f->z);
    reports_since(mark, 0, 0, NULL, 0, true, &leaks);
    EXPECT(leaks == held, "destroy: %u leak reports for %u blocks held", leaks, held);
    EXPECT(owed_in(zi) == 0, "destroy: %u late double-free reports never came", owed_in(zi));
    for (unsigned b = nb; b-- > 0;)
        if (B[b].zi == zi) {
            pm_set(b, 0);
            if (b != nb - 1) {
                B[b] = B[nb - 1];
                pm_set(b, (uint16_t)(b + 1));
            }
            nb--;
        }
    f->live = false;
    f->held_pages = 0;
    fz_event |= 1u << zi;
    if (!f->caller_mem)
        f->z = NULL; /* unmapped: the handle must not be used again */
    T_END(T_DESTROY);
}

/* ---- the checks after every step --------------------------------------------------------------------- */

struct visit {
    unsigned zi, n;
};
static int visit_fn(const struct labyrinth_page_info *info, void *arg)
{
    struct visit *v = arg;
    int b = blk_of((uintptr_t)info->block);
    EXPECT(b >= 0 && B[b].p == info->block && B[b].order == info->order && B[b].zi == v->zi,
           "for_each_in_use: block %p order %u is not held", info->block, info->order);
    v->n++;
    return 0;
}

static void check_stats(unsigned zi);

static void check_queues(unsigned zi);
static void check_visit(unsigned zi);

static void check_zone_now(unsigned zi, bool visit)
{
    struct fzone *f = &Z[zi];
    if (!f->live) {
        if (f->z) {
            struct labyrinth_zone_stats st;
            EXPECT(labyrinth_zone_stats(f->z, &st) == -EBADF && labyrinth_zone_check(f->z) == -EBADF,
                   "a dead zone's handle is not refused");
        }
        return;
    }
    long bad = labyrinth_zone_check(f->z);
    unsigned held = 0;
    for (unsigned b = 0; b < nb; b++)
        held += B[b].zi == zi;
    size_t owed = owed_in(zi);
    if (bad) {
        /* KB1's check half (fixed in 68a148f): a queued double free is no
         * longer counted against the check. */
        struct lb_cache_counts cc;
        lb_cache_counts(&lb_zone_of(f->z)->cache, &cc);
        uint64_t allocs = cc.allocs[0] + cc.allocs[1] + cc.allocs[2] + cc.allocs[3];
        FAIL("labyrinth_zone_check(zone %u) = %ld (allocs %llu - frees %llu = %lld; model holds %u blocks, "
             "%zu late double-free reports owed)",
             zi, bad, (unsigned long long)allocs, (unsigned long long)cc.frees, (long long)(allocs - cc.frees),
             held, owed);
    }
    check_stats(zi);
    check_queues(zi);
    if (visit)
        check_visit(zi);
}

/* for_each_in_use visits exactly the blocks the model holds. */
static void check_visit(unsigned zi)
{
    struct fzone *f = &Z[zi];
    unsigned held = 0;
    for (unsigned b = 0; b < nb; b++)
        held += B[b].zi == zi;
    struct visit v = {zi, 0};
    long n = labyrinth_zone_for_each_in_use(f->z, visit_fn, &v);
    if (n != (long)held || v.n != held) {
        for (unsigned b = 0; b < nb; b++)
            if (B[b].zi == zi)
                dump_page(f, (uintptr_t)B[b].p);
        FAIL("for_each_in_use visited %ld, model holds %u blocks", n, held);
    }
}

/* The statistics against the model (no system call: after every step that
 * touched the zone, and in every full check). */
static void check_stats(unsigned zi)
{
    struct fzone *f = &Z[zi];
    size_t owed = owed_in(zi);
    struct labyrinth_zone_stats st;
    EXPECT(labyrinth_zone_stats(f->z, &st) == 0, "stats");
    sync_regions(f);
    size_t total = 0;
    for (unsigned i = 0; i < f->nreg; i++)
        total += f->rpages[i];
    EXPECT(st.total_pages == total, "total_pages %zu, regions hold %zu", st.total_pages, total);
    EXPECT(st.free_pages + st.in_use_pages == st.total_pages, "free + in use != total");
    /* A double free queued for its owner and not yet refused counts as a
     * free page (include/labyrinth.h, in_flight_pages) until the owner
     * takes the batch: in_use_pages is then low by one per such free. */
    size_t want = f->held_pages, low = f->held_pages > owed ? f->held_pages - owed : 0;
    EXPECT(st.in_use_pages == want || (owed && st.in_use_pages >= low && st.in_use_pages < want),
           "in_use_pages %zu, model holds %zu pages (%zu late double-free reports owed)", st.in_use_pages,
           f->held_pages, owed);
    EXPECT(st.misuse_reports == f->misuse, "misuse_reports %llu, reports seen %llu", st.misuse_reports, f->misuse);
    EXPECT(st.retry_cap_hits == 0, "retry cap hit with one thread at a time");
}

/* visit false: all but for_each_in_use (before a destroy, whose LEAK
 * reports must name exactly the blocks held). */
static void check_zone(unsigned zi, bool visit)
{
    T_BEGIN(T_FULL);
    unchecked[zi] = 0;
    check_zone_now(zi, visit);
    T_END(T_FULL);
}

/* After every step: each held block's descriptors still say so (its head
 * ALLOC of its order, the other pages TAIL), so a block taken back into a
 * cache or the buddy while the application holds it shows at once.  A few
 * loads per block, where labyrinth_zone_check maps and walks everything. */
static void check_held(void)
{
    for (unsigned b = 0; b < nb; b++) {
        const lb_atomic_u64 *d = B[b].desc; /* a region's descriptors never move */
        uint64_t w = lb_load_rlx_u64(d);
        if (lb_d_state(w) != LB_S_ALLOC || lb_d_order(w) != B[b].order) {
            dump_page(&Z[B[b].zi], (uintptr_t)B[b].p);
            FAIL("held block %p order %u: its descriptor says state %u order %u", (void *)B[b].p, B[b].order,
                 lb_d_state(w), lb_d_order(w));
        }
        for (uint32_t i = 1; i < (1u << B[b].order); i++)
            EXPECT(lb_d_state(lb_load_rlx_u64(d + i)) == LB_S_TAIL,
                   "held block %p order %u: page %u's descriptor says state %u", (void *)B[b].p, B[b].order, i,
                   lb_d_state(lb_load_rlx_u64(d + i)));
    }
}

/* After every step: no queued free (outbox or inbox) that its owner would
 * accept names a block the application holds (the owner would take it back
 * while held: how KB2 handed a page out twice).  The validity test is
 * lb_check_entries's: allocated, owned by the destination, same
 * generation. */
static void check_entries(unsigned zi, const struct lb_mag *m, uint32_t dest, const char *where)
{
    const struct lb_cache *c = &lb_zone_of(Z[zi].z)->cache;
    uint32_t k = lb_load_rlx_u32(&m->count);
    EXPECT(k <= c->mag_size, "a queued magazine holds %u entries", k);
    for (uint32_t i = 0; i < k; i++) {
        uintptr_t e = (uintptr_t)m->slot[i];
        uint32_t pid = (uint32_t)(e >> 32);
        struct lb_region *r = lb_cache_id_region(c, pid);
        EXPECT(r && (pid & 0xffffffu) < r->span, "a queued free names no page (%#llx)", (unsigned long long)e);
        uint64_t w = lb_load_rlx_u64(&r->desc[pid & 0xffffffu]);
        if (lb_d_state(w) != LB_S_ALLOC || lb_d_owner(w) != dest || lb_d_gen(w) != (uint32_t)e)
            continue; /* stale: the owner will refuse it */
        uintptr_t a = lb_region_addr(r, pid & 0xffffffu);
        int b = blk_of(a);
        if (b >= 0) {
            dump_page(&Z[zi], a);
            FAIL("held block %p order %u: a valid free of it is queued (%s, to level id %u)", (void *)a, B[b].order,
                 where, dest);
        }
    }
}

static void check_queued_one(void *ctx, const struct lb_mag *m, uint32_t owner, bool inbox)
{
    check_entries(*(unsigned *)ctx, m, owner, inbox ? "inbox" : "outbox");
}

static void check_queues(unsigned zi)
{
    struct fzone *f = &Z[zi];
    if (!f->live)
        return;
    EXPECT(lb_cache_for_each_queued(&lb_zone_of(f->z)->cache, check_queued_one, &zi),
           "an inbox chain longer than the magazine pool");
}

/* LB_FUZZ_WATCH=Z.P (with LB_FUZZ_TRACE): after every step, the descriptor
 * of page P of zone Z's first region, to follow one page through a crash. */
static void watch_page(void)
{
    static int zi = -2;
    static unsigned pg;
    if (zi == -2) {
        const char *w = getenv("LB_FUZZ_WATCH");
        zi = w && sscanf(w, "%d.%u", &zi, &pg) == 2 && zi >= 0 && zi < NZ ? zi : -1;
    }
    if (zi < 0 || !Z[zi].live || !Z[zi].nreg || pg >= Z[zi].rpages[0])
        return;
    uint64_t w = lb_load_rlx_u64(desc_of(&Z[zi], Z[zi].rlo[0] + pg * PG));
    TRACE("  watch z%d.r0+%u: state %u owner %u gen %u (%#llx)\n", zi, pg, (unsigned)lb_d_state(w), lb_d_owner(w),
          lb_d_gen(w), (unsigned long long)w);
}

/* ---- the driver ---------------------------------------------------------------------------------------- */

static const unsigned gfps[16] = {
    LABYRINTH_GFP_ATOMIC, LABYRINTH_GFP_ATOMIC, LABYRINTH_GFP_ATOMIC, LABYRINTH_GFP_NOWAIT,
    LABYRINTH_GFP_NOWAIT, LABYRINTH_GFP_KERNEL, LABYRINTH_GFP_KERNEL, LABYRINTH_GFP_ATOMIC,
    0, LABYRINTH_GFP_BIT_RESERVE, LABYRINTH_GFP_BIT_SLEEP, LABYRINTH_GFP_NOWAIT,
    /* refused: */ LABYRINTH_GFP_BIT_SLEEP | LABYRINTH_GFP_BIT_TRYLOCK, LABYRINTH_GFP_BIT_GROW, 0x10,
    LABYRINTH_GFP_BIT_SLEEP | LABYRINTH_GFP_BIT_RESERVE};

static void reset(void)
{
    nb = 0;
    nrep = 0;
    nowed = 0;
    fz_event = 0;
    fz_touched = 0;
    memset(unchecked, 0, sizeof unchecked);
    memset(dead_calls, 0, sizeof dead_calls);
    dead_total = 0;
    memset(Z, 0, sizeof Z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!PG) {
        PG = labyrinth_page_size();
        const char *t = getenv("LB_FUZZ_THREADS");
        fz_real = t && !strcmp(t, "real");
        t = getenv("LB_FUZZ_CHECK_EVERY");
        fz_every = t && atoi(t) > 0 ? (unsigned)atoi(t) : FZ_CHECK_EVERY;
        fz_stats = getenv("LB_FUZZ_STATS") != NULL;
    }
    T_BEGIN(T_ALL);
    if (fz_real)
        start_workers();
    reset();
    struct input in = {data, size, 0};
    unsigned c00 = in8(&in), c01 = in8(&in), c10 = in8(&in), c11 = in8(&in);
    fz_step = 0;
    fz_opname = "create";
    zone_create(0, c00, c01);
    zone_create(1, c10, c11);
    /* Whether the teardown frees everything first: the steps run until the
     * input does, so bit 7 of its last byte (or, after MAXSTEPS steps, the
     * next unread byte's bit 0). */
    bool free_all = size && (data[size - 1] & 0x80);
    for (fz_step = 1; in.i < in.n && fz_step <= MAXSTEPS; fz_step++) {
        unsigned kind = in8(&in), ctx = in8(&in), a = in8(&in);
        struct op o;
        memset(&o, 0, sizeof o);
        o.w = ctx % NW;
        o.d = (ctx / NW) % 8;
        o.d = o.d < 4 ? 0 : o.d - 4; /* depth 0 half the time */
        o.zi = (a >> 7) & 1;
        o.order = a & 7;
        o.sel = in16(&in);
        o.extra = in16(&in) | (uint32_t)(a & 0x40) << 10;
        struct fzone *f = &Z[o.zi];
        switch (kind % 24) {
        case 0: case 1: case 2: case 3: case 4: case 5: case 6:
            fz_opname = "alloc";
            o.fn = op_alloc;
            o.gfp = gfps[o.sel & 15];
            o.order = (o.sel >> 4) & 7 ? 0 : o.order; /* mostly order 0 */
            if ((o.sel >> 7) & 1)
                o.order = a & 7;
            o.q = (o.sel >> 8) & 0xf;
            if ((o.sel >> 12) == 15)
                o.q |= 0x10; /* unknown quality bit */
            if (o.gfp & LABYRINTH_GFP_BIT_SLEEP) {
                o.d = 0; /* normal thread context only */
                if (f->kernel_nulls >= MAX_KERNEL_NULLS && gfp_ok(o.gfp))
                    o.gfp = LABYRINTH_GFP_NOWAIT;
            }
            break;
        case 7:
            fz_opname = "macro";
            o.fn = op_alloc;
            o.kind = 1;
            o.order = 0;
            o.q = (o.sel >> 8) & 0x1f;
            break;
        case 8: case 9: case 10: case 11: case 12:
            fz_opname = "free";
            o.fn = op_free;
            break;
        case 13: case 14: case 15: case 16:
            fz_opname = "bad free";
            o.fn = op_free;
            o.kind = 1 + o.extra % 7;
            break;
        case 17: case 18:
            fz_opname = "register";
            o.fn = op_register;
            o.kind = o.extra % 5 == 4;
            break;
        case 19:
            fz_opname = "page_info";
            o.fn = op_info;
            o.kind = o.extra % 4;
            break;
        case 20: case 21:
            fz_opname = "thread_release";
            o.fn = op_release;
            o.d = 0;
            break;
        case 22:
            fz_opname = "destroy/create";
            if (f->live && (f->caller_mem || o.extra % 4 == 0)) {
                if (unchecked[o.zi] >= 16 || (fz_every < 16 && unchecked[o.zi]))
                    check_zone(o.zi, false); /* what destroy is handed, unless checked lately */
                zone_destroy(o.zi);
            } else if (!f->live) {
                zone_create(o.zi, o.zi ? c10 : c00, o.zi ? c11 : c01);
            }
            break;
        default:
            if ((o.sel & 15) == 5) {
                fz_opname = "thread_exit";
                o.fn = op_exit;
                o.d = 0;
                break;
            }
            fz_opname = "misc";
            if (f->live) {
                EXPECT(labyrinth_zone_stats(f->z, NULL) == -EINVAL, "stats(NULL)");
                /* A walk maps and unmaps its marks: only when the zone's
                 * last full check (which walks) is 32 steps old. */
                if (unchecked[o.zi] >= 32)
                    check_visit(o.zi);
            }
            break;
        }
        if (fz_trace < 0)
            fz_trace = getenv("LB_FUZZ_TRACE") != NULL;
        TRACE("step %u: %s thread %u depth %u zone %u\n", fz_step, fz_opname, o.w, o.d, o.zi);
        if (o.fn) {
            if (!f->z && o.fn != op_exit) { /* an unmapped zone: nothing to call */
                fz_opname = "skip";
            } else {
                T_BEGIN(T_OPS);
                run_op(&o);
                T_END(T_OPS);
            }
        }
        fz_opname = "check";
        watch_page();
        T_BEGIN(T_CHEAP);
        check_held();
        for (unsigned zi = 0; zi < NZ; zi++)
            if (fz_touched & 1u << zi) {
                check_queues(zi);
                check_stats(zi);
            }
        fz_touched = 0;
        T_END(T_CHEAP);
        /* The full check (labyrinth_zone_check, for_each_in_use, stats) of
         * a live zone every fz_every steps, after the last step and before
         * a destroy; and of a zone after a step that changed what is queued
         * between its contexts in a rare way (a late double free owed or
         * reported), grew it or destroyed it. */
        /* The last step: the teardown's check follows its frees, or destroy's
         * LEAK reports list the blocks held. */
        bool last = in.i >= in.n || fz_step == MAXSTEPS;
        bool full_at_end = fz_every == 1 || !free_all || fz_step == MAXSTEPS;
        for (unsigned zi = 0; zi < NZ; zi++)
            if ((Z[zi].live && (++unchecked[zi] >= fz_every || (last && full_at_end))) || (fz_event & 1u << zi))
                check_zone(zi, !last || fz_every == 1);
        fz_event = 0;
    }
    /* The end: free what is held (or leave it to destroy), destroy. */
    fz_opname = "teardown";
    if (in.i < in.n)
        free_all = in8(&in) & 1;
    if (free_all) {
        while (nb) {
            struct op o;
            memset(&o, 0, sizeof o);
            o.fn = op_free;
            o.w = nb % NW;
            o.sel = nb - 1;
            o.zi = B[nb - 1].zi;
            run_op(&o);
        }
        /* Destroy's LEAK reports (none now) stand for for_each_in_use. */
        check_zone(0, false);
        check_zone(1, false);
    }
    for (unsigned zi = 0; zi < NZ; zi++)
        if (Z[zi].live)
            zone_destroy(zi);
    EXPECT(nowed == 0, "%u late double-free reports never came", nowed);
    T_END(T_ALL);
    if (fz_stats > 0) {
        fprintf(stderr, "fuzz_model: stats: %u steps, %u+%u KERNEL NULLs;", fz_step - 1, Z[0].kernel_nulls,
                Z[1].kernel_nulls);
        for (unsigned k = 0; k < T_N; k++)
            fprintf(stderr, " %s %lu %.1f us;", t_name[k], t_count[k], t_ns[k] / 1e3);
        fputc('\n', stderr);
        memset(t_ns, 0, sizeof t_ns);
        memset(t_count, 0, sizeof t_count);
    }
    return 0;
}
