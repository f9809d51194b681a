/*
 * stress_churn.c - thread churn torture: hunts "a page handed out twice or
 * lost" by itself, around thread exit, pthread-key destructors and signals.
 *
 * What runs, for LB_CHURN_SECONDS (default 10):
 *   - Three zones, every thread switching between them call by call:
 *     "churn-map" (mapped, warden, max_threads 4), "churn-mem" (over caller
 *     memory, no warden, max_threads 6), "churn-verify" (ZONE_VERIFY with a
 *     quarantine, warden, max_threads 8).
 *   - SPAWNERS spawner loops keep SLOTS children each alive and start a new
 *     one whenever one has been joined: thousands of threads, far more than
 *     max_threads, so some find no cache and take the shared path.
 *   - A child allocates and frees in every mode (ATOMIC, NOWAIT, KERNEL,
 *     the seed's macro), orders 0-2, sometimes with ZERO, sometimes calls
 *     labyrinth_thread_release, hands blocks to the freer thread through a
 *     lock-free queue (cross-thread frees), and returns leaving blocks for
 *     its pthread-key destructors.
 *   - Four pthread keys: two created before the first zone (their
 *     destructors run before labyrinth's thread-exit hook, a key made at
 *     the first zone creation) and two after it (they run after the hook).
 *     Each destructor frees what it was left, allocates and frees more, and
 *     may set its key again so that glibc runs more rounds (at most 3: the
 *     sanitizer runtimes finalize a thread in round 4).
 *   - A signaller thread aims SIGUSR1/SIGUSR2 (pthread_kill) at children
 *     that have returned from their start function - threads in their exit
 *     path - as fast as it can, and now and then at running ones; a process
 *     timer adds a SIGALRM storm.  The handler allocates ATOMIC pages
 *     (labyrinth_alloc_pages, and the seed's macro), frees some at once and
 *     queues the others to the freer: taken in the fast context, freed by a
 *     normal thread.
 *   - LB_CHURN_MISUSE=1 adds duels: two threads free one page of the VERIFY
 *     zone at the same instant; exactly one free must succeed and the other
 *     be refused with -EALREADY (and reported), nothing handed out twice.
 *     (The page stays in the winner's quarantine until both frees are done,
 *     so the loser can never free a new allocation of it.)  Without it the
 *     torture makes no misuse at all.
 *
 * What is checked:
 *   - Ownership, at the moment it changes: one word per page of each zone,
 *     CAS 0 -> the owner's stamp {thread serial, context, sequence} when a
 *     block is handed out, stamp -> 0 before it is freed.  A failed CAS is
 *     a page handed out twice: reported on the spot (the page, both owners,
 *     what the previous owner was doing, the zone's view of the page), and
 *     the block is abandoned (never written, never freed).
 *   - The stamp is written in every page (first and last word) and
 *     verified at free: anything else there was written by another owner.
 *   - Every free returns 0: a refused free in a correct program is a
 *     violation; so is any report other than a notice (and the duels').
 *   - Ten times a second (white-box: the zones' thread caches): no cache is
 *     owned by a thread that has been joined (a stranded cache: its pages
 *     are lost for good, and no later thread can have it).
 *   - At the end, every thread joined and every block freed, per zone:
 *     in_use_pages == 0 and threads == 0 (polled up to 2 s: the warden may
 *     be reaping), labyrinth_zone_check() == 0, no cache owned, and a drain
 *     (NOWAIT, then ATOMIC, until NULL) hands out exactly total_pages
 *     distinct pages - none lost, none twice (a NULL streak ends it; a
 *     page only KERNEL still finds was behind a busy buddy lock).
 *   A violation ends the run a second later (the checks at the end still
 *   run); a crash prints what the thread was doing and a backtrace (not in
 *   sanitizer builds: theirs do).  Nothing here depends on timing: waits
 *   are bounded polls.
 *
 * Environment: LB_CHURN_SECONDS (default 10), LB_CHURN_SEED (default from
 * the clock; printed with a command that repeats the run's choices, though
 * not its interleavings), LB_CHURN_QUIET=1 (no progress lines on stderr),
 * LB_CHURN_MISUSE=1 (the duels).
 *
 * Signal handlers (and the report handler) use only labyrinth calls,
 * atomics, clock_gettime and write(2).  Exit 0 pass, 1 fail.
 */
#define _GNU_SOURCE
#include "check.h"
#include "zone.h"

#include <errno.h>
#include <execinfo.h>
#include <labyrinth.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NZ        3
#define SPAWNERS  2
#define SLOTS     3      /* live children per spawner                       */
#define HELD      24     /* blocks a child body holds at most               */
#define NKEYS     4
#define NKB       2      /* keys 0..NKB-1 are created before the zones      */
#define KHELD     4      /* blocks left to one key's destructor             */
#define MAX_ROUNDS 3     /* destructor rounds a key asks for at most        */
#define QCAP      1024   /* the cross-thread queue                          */
#define NREC      8192   /* thread records, by serial                       */
#define IDMAP     65536  /* labyrinth thread ids -> our records             */
#define DETAILS   24     /* violations printed in full                      */

#define LD(x)     __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define ST(x, v)  __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)
#define ADD(x, v) __atomic_fetch_add(&(x), (v), __ATOMIC_RELAXED)

/* ---- state ------------------------------------------------------------------ */

struct zinfo {
    struct labyrinth_zone *z;
    const char *name;
    uintptr_t lo;              /* region 0: the zone does not grow          */
    size_t pages;
    size_t total;
    uint64_t *own;             /* stamp of the current owner, 0 = not ours  */
    uint64_t *last;            /* stamp of the last owner that freed it     */
    uint64_t reports, reports_already;
};
static struct zinfo Z[NZ];
static size_t PG;
static void *mem_buf; /* churn-mem's caller memory */

enum { C_BODY = 1, C_HANDLER, C_HANDLER_EXIT, C_DTOR_BEFORE, C_DTOR_AFTER, C_FREER, C_DUEL, C_DRAIN, C_NCTX };
static const char *const ctx_name[C_NCTX] = {
    "?", "thread body", "signal handler", "signal handler in the thread's exit path",
    "key destructor run before labyrinth's exit hook", "key destructor run after labyrinth's exit hook",
    "freer thread", "duel", "final drain"};

enum { R_CHILD = 1, R_SPAWNER, R_FREER, R_SIGNALLER, R_DUEL, R_MAIN, R_OTHER };
static const char *const role_name[] = {"?", "child", "spawner", "freer", "signaller", "duel", "main", "other"};
enum { P_RUN = 1, P_RETURNED, P_DTOR_BEFORE, P_DTOR_AFTER, P_JOINED };
static const char *const phase_name[] = {"?", "running its body", "returned from its start function (exit path)",
                                         "in a key destructor (before labyrinth's)",
                                         "in a key destructor (after labyrinth's)", "joined"};

struct trec {
    uint32_t serial, role, phase, lbid;
};
static struct trec recs[NREC];
static uint32_t next_serial;

struct idrec {
    uint32_t id, serial, gone;
};
static struct idrec idmap[IDMAP];

struct blk {
    void *p;
    uint64_t stamp;
    uint8_t zi, order;
};

struct child;
struct kstate {
    struct child *c;
    unsigned key, calls, rounds, n;
    struct blk held[KHELD];
};
enum { S_FREE = 0, S_LIVE, S_JOINING };
struct child {
    pthread_mutex_t mu;
    pthread_t th;
    uint32_t state;       /* the spawner's, changed under mu               */
    uint32_t returned;    /* set by the child as its start function ends    */
    uint32_t sig_in_exit; /* handler runs in its exit path                  */
    uint32_t serial;      /* the child's thread serial                      */
    struct kstate ks[NKEYS];
};
static struct child kids[SPAWNERS][SLOTS];
static pthread_key_t keys[NKEYS];

static __thread uint32_t t_serial, t_seq, t_hseq;
static __thread uint64_t t_rng, t_hrng;
static __thread struct child *t_child;

static uint64_t seed;
static unsigned seconds = 10;
static int quiet, misuse;
static uint64_t t0_ns;
static int stop, final_drain;

/* Counters (relaxed atomics). */
static uint64_t n_created, n_joined, n_exit_signalled, n_exit_kills, n_run_kills, n_signals;
static uint64_t n_handler_allocs, n_handler_exit_allocs, n_handler_nulls;
static uint64_t n_xqueued, n_xfreed, n_dtor_calls, n_dtor_allocs, n_dtor_after_allocs, n_key_resets;
static uint64_t n_allocs, n_frees, n_nulls, n_releases, n_leftovers, n_duels, n_duel_refused;
static uint64_t n_violations, n_printed, first_violation_ms;
static uint64_t v_twice, v_corrupt, v_table, v_refused, v_report, v_bounds, v_zero, v_stranded, v_duel;

/* ---- async-signal-safe output -------------------------------------------------- */

struct out {
    char b[768];
    size_t n;
};
static void o_s(struct out *o, const char *s)
{
    while (s && *s && o->n < sizeof o->b - 2)
        o->b[o->n++] = *s++;
}
static void o_u(struct out *o, uint64_t v)
{
    char t[24];
    int i = 0;
    do
        t[i++] = (char)('0' + v % 10);
    while (v /= 10);
    while (i && o->n < sizeof o->b - 2)
        o->b[o->n++] = t[--i];
}
static void o_x(struct out *o, uint64_t v)
{
    char t[20];
    int i = 0;
    do
        t[i++] = "0123456789abcdef"[v & 15];
    while (v >>= 4);
    o_s(o, "0x");
    while (i && o->n < sizeof o->b - 2)
        o->b[o->n++] = t[--i];
}
static void o_end(struct out *o)
{
    o->b[o->n++] = '\n';
    size_t off = 0;
    while (off < o->n) {
        ssize_t w = write(2, o->b + off, o->n - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static uint64_t ms_since_start(void) { return (now_ns() - t0_ns) / 1000000u; }

/* Counts a violation; true if it should be printed in full. */
static bool violation(uint64_t *kind)
{
    ADD(*kind, 1);
    if (ADD(n_violations, 1) == 0)
        ST(first_violation_ms, ms_since_start() + 1);
    return ADD(n_printed, 1) < DETAILS;
}

static void o_head(struct out *o, const char *what)
{
    o_s(o, "VIOLATION t=");
    o_u(o, ms_since_start());
    o_s(o, "ms: ");
    o_s(o, what);
}

static void o_stamp(struct out *o, uint64_t s)
{
    uint32_t serial = (uint32_t)(s >> 36), ctx = (uint32_t)(s >> 32) & 15;
    o_s(o, "{thread #");
    o_u(o, serial);
    o_s(o, ", ");
    o_s(o, ctx < C_NCTX ? ctx_name[ctx] : "?");
    o_s(o, ", seq ");
    o_u(o, (uint32_t)s);
    o_s(o, "}");
    const struct trec *r = &recs[serial % NREC];
    if (serial && (LD(r->serial) & 0xfffffffu) == serial) {
        uint32_t role = LD(r->role), ph = LD(r->phase);
        o_s(o, " [");
        o_s(o, role <= R_OTHER ? role_name[role] : "?");
        o_s(o, ", labyrinth id ");
        o_u(o, LD(r->lbid));
        o_s(o, ", now ");
        o_s(o, ph <= P_JOINED ? phase_name[ph] : "?");
        o_s(o, "]");
    }
}

static void o_pageinfo(struct out *o, const struct zinfo *zz, const void *p)
{
    static const char *const st[] = {"interior", "free (buddy)", "in use", "cached", "reserved"};
    struct labyrinth_page_info pi;
    if (labyrinth_page_info(zz->z, p, &pi) != 0)
        return;
    o_s(o, "; the zone says: ");
    o_s(o, (unsigned)pi.state <= LABYRINTH_PAGE_RESERVED ? st[pi.state] : "?");
    o_s(o, ", block ");
    o_x(o, (uintptr_t)pi.block);
    o_s(o, " order ");
    o_u(o, pi.order);
    if (pi.tracked) {
        o_s(o, ", tracked to labyrinth thread ");
        o_u(o, pi.thread);
    }
}

/* ---- threads: serials, records, random numbers ----------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint32_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return (uint32_t)((x * 0x2545f4914f6cdd1dull) >> 32);
}
static uint32_t rnd(void) { return xs(&t_rng); }
static uint32_t hrnd(void) { return xs(&t_hrng); }

static void set_phase(uint32_t ph)
{
    struct trec *r = &recs[t_serial % NREC];
    if (LD(r->serial) == t_serial)
        ST(r->phase, ph);
}

static uint32_t ll_serial[16], ll_n; /* long-lived threads, marked gone after their joins */

static uint32_t self_register(uint32_t role)
{
    uint32_t s = (uint32_t)ADD(next_serial, 1) + 1;
    struct trec *r = &recs[s % NREC];
    ST(r->serial, 0);
    ST(r->role, role);
    ST(r->phase, (uint32_t)P_RUN);
    t_serial = s;
    t_rng = mix64(seed ^ (uint64_t)s * 0x9e3779b97f4a7c15ull) | 1;
    t_hrng = mix64(t_rng + 0x5bd1e995u) | 1;
    /* The thread's labyrinth id, fixed now, before any handler can run:
     * the id its thread caches are claimed with. */
    uint32_t id = role == R_OTHER ? 0 : labyrinth_thread_id();
    ST(r->lbid, id);
    ST(r->serial, s);
    if (role != R_CHILD && role != R_OTHER && role != R_MAIN) {
        uint32_t i = (uint32_t)ADD(ll_n, 1);
        if (i < 16)
            ST(ll_serial[i], s);
    }
    if (id) {
        struct idrec *m = &idmap[id % IDMAP];
        ST(m->gone, 0u);
        ST(m->serial, s);
        ST(m->id, id);
    }
    return s;
}

static void mark_gone(uint32_t serial)
{
    struct trec *r = &recs[serial % NREC];
    if (LD(r->serial) != serial)
        return;
    ST(r->phase, (uint32_t)P_JOINED);
    uint32_t id = LD(r->lbid);
    struct idrec *m = &idmap[id % IDMAP];
    if (id && LD(m->id) == id)
        ST(m->gone, 1u);
}

static uint64_t mkstamp(unsigned ctx, uint32_t seq)
{
    /* {28-bit thread serial, 4-bit context, 32-bit sequence}: never 0. */
    return (uint64_t)(t_serial & 0xfffffffu) << 36 | (uint64_t)(ctx & 15) << 32 | seq;
}

/* ---- ownership ------------------------------------------------------------------------ */

static void report_twice(const struct zinfo *zz, size_t idx, uint64_t prev, uint64_t mine, const struct blk *b)
{
    if (!violation(&v_twice))
        return;
    struct out o = {.n = 0};
    o_head(&o, "page handed out twice: zone ");
    o_s(&o, zz->name);
    o_s(&o, ", page ");
    o_x(&o, zz->lo + idx * PG);
    o_s(&o, " (index ");
    o_u(&o, idx);
    o_s(&o, ", block ");
    o_x(&o, (uintptr_t)b->p);
    o_s(&o, " order ");
    o_u(&o, b->order);
    o_s(&o, ") handed to ");
    o_stamp(&o, mine);
    o_s(&o, " while owned by ");
    o_stamp(&o, prev);
    o_pageinfo(&o, zz, (void *)(zz->lo + idx * PG));
    o_end(&o);
}

/* The block b just came from the zone: take every page in the table (a
 * failed CAS is a page handed out twice: undo and abandon the block), then
 * stamp the pages.  want_zero: the caller asked for QUALITY_ZERO. */
static bool take(struct blk *b, bool want_zero)
{
    struct zinfo *zz = &Z[b->zi];
    uintptr_t a = (uintptr_t)b->p;
    size_t n = (size_t)1 << b->order;
    if (a < zz->lo || a + n * PG > zz->lo + zz->pages * PG || (a & ((PG << b->order) - 1))) {
        if (violation(&v_bounds)) {
            struct out o = {.n = 0};
            o_head(&o, "block outside its zone or misaligned: zone ");
            o_s(&o, zz->name);
            o_s(&o, ", block ");
            o_x(&o, a);
            o_s(&o, " order ");
            o_u(&o, b->order);
            o_end(&o);
        }
        return false;
    }
    if (want_zero) {
        for (size_t i = 0; i < n; i++) {
            const uint64_t *w = (const uint64_t *)(a + i * PG);
            if ((w[0] | w[1] | w[PG / 16] | w[PG / 8 - 1]) && violation(&v_zero)) {
                struct out o = {.n = 0};
                o_head(&o, "QUALITY_ZERO block not zero: zone ");
                o_s(&o, zz->name);
                o_s(&o, ", page ");
                o_x(&o, a + i * PG);
                o_s(&o, " first word ");
                o_x(&o, w[0]);
                o_s(&o, ", last owner ");
                o_stamp(&o, LD(zz->last[(a - zz->lo) / PG + i]));
                o_end(&o);
            }
        }
    }
    size_t idx = (a - zz->lo) / PG;
    for (size_t i = 0; i < n; i++) {
        uint64_t exp = 0;
        if (!__atomic_compare_exchange_n(&zz->own[idx + i], &exp, b->stamp, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) {
            report_twice(zz, idx + i, exp, b->stamp, b);
            while (i--)
                ST(zz->own[idx + i], 0ull);
            return false;
        }
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t *w = (uint64_t *)(a + i * PG);
        w[0] = b->stamp;
        w[PG / 8 - 1] = ~b->stamp;
    }
    return true;
}

/* Give up b in the table (after checking the stamps in its pages). */
static void untake(const struct blk *b)
{
    struct zinfo *zz = &Z[b->zi];
    size_t n = (size_t)1 << b->order, idx = ((uintptr_t)b->p - zz->lo) / PG;
    for (size_t i = 0; i < n; i++) {
        const uint64_t *w = (const uint64_t *)((uintptr_t)b->p + i * PG);
        uint64_t w0 = w[0], wl = w[PG / 8 - 1];
        if ((w0 != b->stamp || wl != ~b->stamp) && violation(&v_corrupt)) {
            struct out o = {.n = 0};
            o_head(&o, "page written by another owner: zone ");
            o_s(&o, zz->name);
            o_s(&o, ", page ");
            o_x(&o, (uintptr_t)b->p + i * PG);
            o_s(&o, " of ");
            o_stamp(&o, b->stamp);
            o_s(&o, " reads ");
            o_x(&o, w0);
            o_s(&o, " / ");
            o_x(&o, wl);
            if ((w0 >> 36) && (w0 >> 32 & 15) && (w0 >> 32 & 15) < C_NCTX) {
                o_s(&o, " (a stamp: ");
                o_stamp(&o, w0);
                o_s(&o, ")");
            }
            o_pageinfo(&o, zz, b->p);
            o_end(&o);
        }
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t exp = b->stamp;
        if (!__atomic_compare_exchange_n(&zz->own[idx + i], &exp, 0ull, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
            violation(&v_table)) {
            struct out o = {.n = 0};
            o_head(&o, "ownership table changed under its owner: zone ");
            o_s(&o, zz->name);
            o_s(&o, ", page ");
            o_x(&o, (uintptr_t)b->p + i * PG);
            o_s(&o, " of ");
            o_stamp(&o, b->stamp);
            o_s(&o, " is in the table as ");
            o_stamp(&o, exp);
            o_end(&o);
        }
        ST(zz->last[idx + i], b->stamp);
    }
}

/* Free b: stamps checked, table cleared, then the free, which must succeed. */
static void put(const struct blk *b)
{
    untake(b);
    int rc = labyrinth_free_pages(Z[b->zi].z, b->p, b->order);
    ADD(n_frees, 1);
    if (rc != 0 && violation(&v_refused)) {
        struct out o = {.n = 0};
        o_head(&o, "free refused in a correct program: zone ");
        o_s(&o, Z[b->zi].name);
        o_s(&o, ", block ");
        o_x(&o, (uintptr_t)b->p);
        o_s(&o, " order ");
        o_u(&o, b->order);
        o_s(&o, " of ");
        o_stamp(&o, b->stamp);
        o_s(&o, ": ");
        o_s(&o, labyrinth_strerror(rc));
        o_pageinfo(&o, &Z[b->zi], b->p);
        o_end(&o);
    }
}

enum { M_ATOMIC, M_NOWAIT, M_KERNEL, M_SEED };

/* Allocate a block into *b; false on NULL or on a violation. */
static bool grab(struct blk *b, unsigned zi, unsigned mode, unsigned order, unsigned quality, unsigned ctx,
                 uint32_t seq)
{
    void *p;
    if (mode == M_SEED) {
        p = labyrinth_void_allocpage_gfpatomic_extra_quality(Z[zi].z, quality);
        order = 0;
    } else {
        unsigned gfp = mode == M_ATOMIC ? LABYRINTH_GFP_ATOMIC
                     : mode == M_NOWAIT ? LABYRINTH_GFP_NOWAIT
                                        : LABYRINTH_GFP_KERNEL;
        p = labyrinth_alloc_pages(Z[zi].z, gfp, order, quality);
    }
    if (!p) {
        ADD(n_nulls, 1);
        return false;
    }
    ADD(n_allocs, 1);
    b->p = p;
    b->zi = (uint8_t)zi;
    b->order = (uint8_t)order;
    b->stamp = mkstamp(ctx, seq);
    return take(b, quality & LABYRINTH_QUALITY_ZERO);
}

/* ---- the cross-thread queue: bounded MPMC (Vyukov), atomics only ----------------------- */

struct qcell {
    uint64_t seq;
    struct blk b;
};
static struct qcell q[QCAP];
static uint64_t q_enq, q_deq;

static bool q_push(const struct blk *b)
{
    uint64_t pos = __atomic_load_n(&q_enq, __ATOMIC_RELAXED);
    for (;;) {
        struct qcell *c = &q[pos % QCAP];
        int64_t diff = (int64_t)(LD(c->seq) - pos);
        if (diff == 0) {
            if (__atomic_compare_exchange_n(&q_enq, &pos, pos + 1, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
                c->b = *b;
                ST(c->seq, pos + 1);
                ADD(n_xqueued, 1);
                return true;
            }
        } else if (diff < 0) {
            return false; /* full */
        } else {
            pos = __atomic_load_n(&q_enq, __ATOMIC_RELAXED);
        }
    }
}

static bool q_pop(struct blk *b)
{
    uint64_t pos = __atomic_load_n(&q_deq, __ATOMIC_RELAXED);
    for (;;) {
        struct qcell *c = &q[pos % QCAP];
        int64_t diff = (int64_t)(LD(c->seq) - (pos + 1));
        if (diff == 0) {
            if (__atomic_compare_exchange_n(&q_deq, &pos, pos + 1, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
                *b = c->b;
                ST(c->seq, pos + QCAP);
                return true;
            }
        } else if (diff < 0) {
            return false; /* empty, or the next push not yet published */
        } else {
            pos = __atomic_load_n(&q_deq, __ATOMIC_RELAXED);
        }
    }
}

/* Free b now, or (sometimes) queue it for the freer. */
static void dispose(const struct blk *b, bool queue_it)
{
    if (queue_it && q_push(b))
        return;
    put(b);
}

/* ---- the signal handler ------------------------------------------------------------------ */

static void on_signal(int sig)
{
    int saved = errno;
    ADD(n_signals, 1);
    if (!t_serial)
        self_register(R_OTHER); /* not expected: every thread registers first */
    uint32_t ph = P_RUN;
    const struct trec *me = &recs[t_serial % NREC];
    if (LD(me->serial) == t_serial)
        ph = LD(me->phase);
    bool exiting = t_child && ph >= P_RETURNED && ph <= P_DTOR_AFTER;
    if (exiting && ADD(t_child->sig_in_exit, 1) == 0)
        ADD(n_exit_signalled, 1);
    struct blk b[3];
    unsigned got = 0, want = 1 + hrnd() % 3;
    for (unsigned i = 0; i < want; i++) {
        uint32_t r = hrnd();
        unsigned zi = r % NZ;
        unsigned mode = sig == SIGUSR2 ? M_SEED : sig == SIGUSR1 ? M_ATOMIC : (r >> 8) % 3 == 0 ? M_NOWAIT
                      : (r >> 8) % 3 == 1 ? M_SEED : M_ATOMIC;
        unsigned order = mode != M_SEED && (r >> 12) % 8 == 0 ? 1 : 0;
        unsigned quality = mode == M_SEED && (r >> 16) & 1 ? LABYRINTH_QUALITY_ZERO : 0;
        if (grab(&b[got], zi, mode, order, quality, exiting ? C_HANDLER_EXIT : C_HANDLER, t_hseq++)) {
            ADD(n_handler_allocs, 1);
            if (exiting)
                ADD(n_handler_exit_allocs, 1);
            got++;
        } else {
            ADD(n_handler_nulls, 1);
        }
    }
    for (unsigned i = 0; i < got; i++)
        dispose(&b[i], hrnd() & 1);
    errno = saved;
}

static void signals_unblock(bool all)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGALRM);
    if (all) {
        sigaddset(&s, SIGUSR1);
        sigaddset(&s, SIGUSR2);
    }
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}

static void signals_block(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGALRM);
    sigaddset(&s, SIGUSR1);
    sigaddset(&s, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
}

/* A crash (the library's state corrupted, typically after a page was handed
 * out twice): say so, with what this thread was doing and a backtrace,
 * then die of the signal.  Not in sanitizer builds: theirs report it. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHURN_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CHURN_SANITIZED 1
#endif
#endif
static void on_crash(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    struct out o = {.n = 0};
    o_s(&o, "stress_churn: CRASH t=");
    o_u(&o, ms_since_start());
    o_s(&o, "ms: signal ");
    o_u(&o, (uint64_t)sig);
    o_s(&o, " at address ");
    o_x(&o, (uintptr_t)si->si_addr);
    o_s(&o, " in thread #");
    o_u(&o, t_serial);
    const struct trec *r = &recs[t_serial % NREC];
    if (t_serial && LD(r->serial) == t_serial) {
        uint32_t ph = LD(r->phase), role = LD(r->role);
        o_s(&o, " (");
        o_s(&o, role <= R_OTHER ? role_name[role] : "?");
        o_s(&o, ", ");
        o_s(&o, ph <= P_JOINED ? phase_name[ph] : "?");
        o_s(&o, ")");
    }
    o_s(&o, "; ");
    o_u(&o, LD(n_violations));
    o_s(&o, " violation(s) seen before it. Backtrace (addr2line -f -i -e <this program> <+offsets>):");
    o_end(&o);
    void *bt[48];
    int n = backtrace(bt, 48);
    backtrace_symbols_fd(bt, n, 2);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void crash_handlers(void)
{
#ifndef CHURN_SANITIZED
    void *bt[4];
    backtrace(bt, 4); /* loads what backtrace needs now, not in the crash */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
#endif
}

/* ---- children: body and key destructors ----------------------------------------------------- */

static unsigned pick_mode(uint32_t r, bool kernel_ok)
{
    unsigned m = r % 10;
    return m < 4 ? M_ATOMIC : m < 7 ? M_NOWAIT : m < 9 ? M_SEED : kernel_ok ? M_KERNEL : M_ATOMIC;
}
static unsigned pick_order(uint32_t r) { return r % 8 == 0 ? 1 + (r >> 3) % 2 : 0; }

static void key_dtor(void *v)
{
    struct kstate *ks = v;
    bool after = ks->key >= NKB;
    ks->calls++;
    set_phase(after ? P_DTOR_AFTER : P_DTOR_BEFORE);
    ADD(n_dtor_calls, 1);
    for (unsigned i = 0; i < ks->n; i++)
        dispose(&ks->held[i], rnd() % 3 == 0);
    ks->n = 0;
    /* Another round: glibc runs one while any key has a value again. */
    bool again = ks->calls < ks->rounds && ks->calls < MAX_ROUNDS;
    unsigned want = 1 + rnd() % 3;
    for (unsigned i = 0; i < want; i++) {
        uint32_t r = rnd();
        struct blk b;
        if (!grab(&b, r % NZ, pick_mode(r >> 4, true), pick_order(r >> 8), (r >> 12) % 4 == 0 ? LABYRINTH_QUALITY_ZERO : 0,
                  after ? C_DTOR_AFTER : C_DTOR_BEFORE, t_seq++))
            continue;
        ADD(n_dtor_allocs, 1);
        if (after)
            ADD(n_dtor_after_allocs, 1);
        if (again && ks->n < KHELD && (r >> 16) & 1)
            ks->held[ks->n++] = b;
        else
            dispose(&b, (r >> 17) % 3 == 0);
    }
    if (rnd() % 8 == 0) {
        labyrinth_thread_release(Z[rnd() % NZ].z);
        ADD(n_releases, 1);
    }
    if (again) {
        ADD(n_key_resets, 1);
        pthread_setspecific(keys[ks->key], ks);
    }
}

static void *child_main(void *arg)
{
    struct child *c = arg;
    ST(c->serial, self_register(R_CHILD));
    t_child = c;
    bool set[NKEYS];
    for (unsigned k = 0; k < NKEYS; k++) {
        set[k] = rnd() % 4 != 0;
        c->ks[k].rounds = 1 + rnd() % MAX_ROUNDS;
        if (set[k])
            pthread_setspecific(keys[k], &c->ks[k]);
    }
    signals_unblock(true);
    struct blk held[HELD];
    unsigned nheld = 0, ops = 8 + rnd() % 64;
    for (unsigned op = 0; op < ops; op++) {
        uint32_t r = rnd();
        if (nheld < HELD && r % 8 < 5) {
            if (grab(&held[nheld], (r >> 3) % NZ, pick_mode(r >> 6, true), pick_order(r >> 10),
                     (r >> 14) % 6 == 0 ? LABYRINTH_QUALITY_ZERO : 0, C_BODY, t_seq++))
                nheld++;
        } else if (nheld) {
            unsigned i = (r >> 3) % nheld;
            struct blk b = held[i];
            held[i] = held[--nheld];
            dispose(&b, (r >> 10) % 3 == 0);
        }
        if ((r >> 20) % 64 == 0) {
            labyrinth_thread_release(Z[(r >> 26) % NZ].z);
            ADD(n_releases, 1);
        }
    }
    /* What is left: to the destructors, the freer, or freed now. */
    for (unsigned i = 0; i < nheld; i++) {
        uint32_t r = rnd();
        unsigned k = r % NKEYS;
        if ((r >> 4) % 4 >= 2 && set[k] && c->ks[k].n < KHELD)
            c->ks[k].held[c->ks[k].n++] = held[i];
        else
            dispose(&held[i], (r >> 4) % 4 == 0);
    }
    set_phase(P_RETURNED);
    ST(c->returned, 1u);
    return NULL; /* the exit path: destructors, labyrinth's hook, signals */
}

/* ---- spawners, signaller, freer, duels ---------------------------------------------------------- */

static void child_prepare(struct child *c)
{
    ST(c->returned, 0u);
    ST(c->sig_in_exit, 0u);
    ST(c->serial, 0u);
    for (unsigned k = 0; k < NKEYS; k++) {
        c->ks[k].c = c;
        c->ks[k].key = k;
        c->ks[k].calls = 0;
        c->ks[k].n = 0;
    }
}

/* After the join: blocks no destructor round took (none expected). */
static void child_joined(struct child *c)
{
    mark_gone(LD(c->serial));
    __atomic_fetch_add(&n_joined, 1, __ATOMIC_SEQ_CST);
    for (unsigned k = 0; k < NKEYS; k++) {
        for (unsigned i = 0; i < c->ks[k].n; i++) {
            ADD(n_leftovers, 1);
            while (!q_push(&c->ks[k].held[i]))
                sched_yield(); /* the freer frees them: spawners hold no cache */
        }
        c->ks[k].n = 0;
    }
}

static void *spawner_main(void *arg)
{
    unsigned sid = (unsigned)(uintptr_t)arg;
    self_register(R_SPAWNER);
    while (!LD(stop)) {
        bool busy = false;
        for (unsigned i = 0; i < SLOTS; i++) {
            struct child *c = &kids[sid][i];
            pthread_mutex_lock(&c->mu);
            if (LD(c->state) == S_LIVE && pthread_tryjoin_np(c->th, NULL) == 0) {
                ST(c->state, (uint32_t)S_FREE);
                child_joined(c);
                busy = true;
            }
            if (LD(c->state) == S_FREE && !LD(stop)) {
                child_prepare(c);
                __atomic_fetch_add(&n_created, 1, __ATOMIC_SEQ_CST);
                if (pthread_create(&c->th, NULL, child_main, c) == 0) {
                    ST(c->state, (uint32_t)S_LIVE);
                    busy = true;
                } else {
                    __atomic_fetch_sub(&n_created, 1, __ATOMIC_SEQ_CST);
                }
            }
            pthread_mutex_unlock(&c->mu);
        }
        if (!busy)
            sched_yield();
    }
    for (unsigned i = 0; i < SLOTS; i++) {
        struct child *c = &kids[sid][i];
        pthread_mutex_lock(&c->mu);
        bool live = LD(c->state) == S_LIVE;
        if (live)
            ST(c->state, (uint32_t)S_JOINING);
        pthread_mutex_unlock(&c->mu);
        if (!live)
            continue;
        pthread_join(c->th, NULL);
        pthread_mutex_lock(&c->mu);
        ST(c->state, (uint32_t)S_FREE);
        child_joined(c);
        pthread_mutex_unlock(&c->mu);
    }
    return NULL;
}

static void *signaller_main(void *arg)
{
    (void)arg;
    self_register(R_SIGNALLER);
    while (!LD(stop)) {
        bool exiting = false;
        for (unsigned s = 0; s < SPAWNERS; s++)
            for (unsigned i = 0; i < SLOTS; i++) {
                struct child *c = &kids[s][i];
                if (LD(c->state) != S_LIVE)
                    continue;
                bool ret = LD(c->returned);
                if (!ret && rnd() % 32)
                    continue;
                pthread_mutex_lock(&c->mu);
                if (LD(c->state) == S_LIVE && pthread_kill(c->th, rnd() & 1 ? SIGUSR1 : SIGUSR2) == 0)
                    ADD(*(ret ? &n_exit_kills : &n_run_kills), 1);
                pthread_mutex_unlock(&c->mu);
                exiting |= ret;
            }
        if (!exiting) {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static void *freer_main(void *arg)
{
    (void)arg;
    self_register(R_FREER);
    signals_unblock(false); /* the timer storm reaches it too */
    for (;;) {
        struct blk b;
        if (q_pop(&b)) {
            put(&b);
            ADD(n_xfreed, 1);
            continue;
        }
        if (LD(final_drain)) {
            signals_block(); /* our own handlers' pushes are in before this returns */
            while (q_pop(&b)) {
                put(&b);
                ADD(n_xfreed, 1);
            }
            return NULL;
        }
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
}

/* Duels (LB_CHURN_MISUSE=1): duel 1 allocates a page of churn-verify, both
 * free it at once.  Their signals stay blocked, and neither allocates in
 * that zone before both frees returned: the page waits in the winner's
 * quarantine, so the loser's free can only meet it freed. */
#define DUEL_ZONE 2
static uint64_t duel_go, duel_done;
static void *duel_page;
static int duel_rc2;
static uint32_t duel_ready;
#define DUEL_END UINT64_MAX

static void duel_claim(void)
{
    struct blk b;
    while (!grab(&b, DUEL_ZONE, M_KERNEL, 0, 0, C_DUEL, t_seq++))
        sched_yield();
    put(&b); /* the free claims this thread's cache, if the alloc did not */
    ADD(duel_ready, 1);
}

static void *duel1_main(void *arg)
{
    (void)arg;
    self_register(R_DUEL);
    duel_claim();
    for (uint64_t round = 1; !LD(stop); round++) {
        struct blk b;
        if (!grab(&b, DUEL_ZONE, rnd() & 1 ? M_ATOMIC : M_NOWAIT, 0, 0, C_DUEL, t_seq++)) {
            sched_yield();
            round--;
            continue;
        }
        untake(&b); /* both frees are about to happen: no owner from here */
        duel_page = b.p;
        ST(duel_go, round);
        int rc1 = labyrinth_free_pages(Z[DUEL_ZONE].z, b.p, 0);
        while (LD(duel_done) != round)
            sched_yield();
        int rc2 = duel_rc2;
        ADD(n_duels, 1);
        ADD(n_frees, 2);
        if ((rc1 == 0 && rc2 == -EALREADY) || (rc2 == 0 && rc1 == -EALREADY)) {
            ADD(n_duel_refused, 1);
        } else if (violation(&v_duel)) {
            struct out o = {.n = 0};
            o_head(&o, "racing double free: page ");
            o_x(&o, (uintptr_t)b.p);
            o_s(&o, " of zone ");
            o_s(&o, Z[DUEL_ZONE].name);
            o_s(&o, ": the frees returned ");
            o_u(&o, (uint64_t)-rc1);
            o_s(&o, " and ");
            o_u(&o, (uint64_t)-rc2);
            o_s(&o, " (negated), not one 0 and one EALREADY");
            o_end(&o);
        }
    }
    ST(duel_go, DUEL_END);
    return NULL;
}

static void *duel2_main(void *arg)
{
    (void)arg;
    self_register(R_DUEL);
    duel_claim();
    uint64_t seen = 0;
    for (;;) {
        uint64_t g;
        while ((g = LD(duel_go)) == seen)
            sched_yield();
        if (g == DUEL_END)
            return NULL;
        duel_rc2 = labyrinth_free_pages(Z[DUEL_ZONE].z, duel_page, 0);
        seen = g;
        ST(duel_done, g);
    }
}

/* ---- reports, stranded caches ----------------------------------------------------------------- */

static void on_report(const struct labyrinth_report *r, void *arg)
{
    struct zinfo *zz = arg;
    if (r->kind == LABYRINTH_REPORT_NOTICE)
        return;
    ADD(zz->reports, 1);
    bool already = r->kind == LABYRINTH_REPORT_BAD_FREE && r->err == -EALREADY;
    if (already)
        ADD(zz->reports_already, 1);
    if (misuse && zz == &Z[DUEL_ZONE] && already)
        return; /* a duel's loser: counted against the duels at the end */
    if (violation(&v_report)) {
        struct out o = {.n = 0};
        o_head(&o, "report from zone ");
        o_s(&o, zz->name);
        o_s(&o, ": ");
        o_s(&o, r->message);
        o_end(&o);
    }
}

/* White-box: a thread cache whose owner has been joined is stranded (a
 * correct library releases every cache of a thread before its join
 * returns).  Each stranded cache is reported once; returns how many. */
static uint8_t stranded_said[NZ][4096];

static unsigned stranded_scan(unsigned zi)
{
    struct lb_cache *c = &lb_zone_of(Z[zi].z)->cache;
    unsigned n = 0;
    for (uint32_t t = 0; t < c->ntcaches; t++) {
        uint32_t owner = __atomic_load_n(&c->tcaches[t].owner.v, __ATOMIC_ACQUIRE);
        if (!owner || owner == LB_OWNER_WARDEN)
            continue;
        struct idrec *m = &idmap[owner % IDMAP];
        if (LD(m->id) != owner || !LD(m->gone))
            continue;
        /* Joined, and after that still the owner: stranded for good (ids
         * are never reused, and a joined thread claims nothing). */
        if (__atomic_load_n(&c->tcaches[t].owner.v, __ATOMIC_ACQUIRE) != owner)
            continue;
        n++;
        if (t >= 4096 || stranded_said[zi][t])
            continue;
        stranded_said[zi][t] = 1;
        if (violation(&v_stranded)) {
            struct out o = {.n = 0};
            o_head(&o, "thread cache stranded: zone ");
            o_s(&o, Z[zi].name);
            o_s(&o, ", cache ");
            o_u(&o, t);
            o_s(&o, " of ");
            o_u(&o, c->ntcaches);
            o_s(&o, " still owned by labyrinth thread ");
            o_u(&o, owner);
            o_s(&o, " (thread #");
            o_u(&o, LD(m->serial));
            o_s(&o, "), which has exited and been joined: its cached pages are lost, and the cache is gone for "
                    "every later thread");
            o_end(&o);
        }
    }
    return n;
}

static void stranded_check(void)
{
    for (unsigned zi = 0; zi < NZ; zi++)
        stranded_scan(zi);
}

/* ---- set-up and the end ------------------------------------------------------------------- */

static void zone_make(unsigned zi, const char *name, struct labyrinth_zone_config *cfg)
{
    cfg->name = name;
    struct labyrinth_zone *z = labyrinth_zone_create(cfg);
    if (!z) {
        fprintf(stderr, "zone %s: %s\n", name, strerror(errno));
        REQUIRE(z);
    }
    struct zinfo *zz = &Z[zi];
    zz->z = z;
    zz->name = name;
    labyrinth_zone_set_report_handler(z, on_report, zz);
    struct labyrinth_region_info ri;
    REQUIRE(labyrinth_zone_region_info(z, 0, &ri) == 0);
    struct labyrinth_zone_stats st;
    REQUIRE(labyrinth_zone_stats(z, &st) == 0);
    REQUIRE(st.regions == 1 && st.max_pages == st.total_pages); /* no growth: region 0 is all */
    zz->lo = (uintptr_t)ri.start;
    zz->pages = ri.pages;
    zz->total = st.total_pages;
    zz->own = calloc(zz->pages, sizeof *zz->own);
    zz->last = calloc(zz->pages, sizeof *zz->last);
    REQUIRE(zz->own && zz->last);
}

static void zones_create(void)
{
    struct labyrinth_zone_config a = {0};
    a.pages = 1024;
    a.max_order = 3;
    a.max_threads = 4;
    a.reserve_pages = 64;
    a.wait_timeout_ms = 20;
    a.warden_interval_us = 1000;
    zone_make(0, "churn-map", &a);

    struct labyrinth_zone_config m = {0};
    m.memory_bytes = (size_t)1100 * PG;
    mem_buf = aligned_alloc(PG, m.memory_bytes);
    REQUIRE(mem_buf);
    memset(mem_buf, 0, m.memory_bytes);
    m.memory = mem_buf;
    m.max_order = 3;
    m.max_threads = 6;
    m.reserve_pages = 48;
    m.wait_timeout_ms = 20;
    zone_make(1, "churn-mem", &m);

    struct labyrinth_zone_config v = {0};
    v.pages = 512;
    v.max_order = 2;
    v.max_threads = 8;
    v.reserve_pages = 32;
    v.flags = LABYRINTH_ZONE_VERIFY;
    v.quarantine_pages = 16;
    v.wait_timeout_ms = 20;
    v.warden_interval_us = 1000;
    zone_make(2, "churn-verify", &v);
}

static void say_stats(const struct zinfo *zz, const struct labyrinth_zone_stats *st)
{
    fprintf(stderr,
            "  %s: total %zu, in use %zu, free %zu (buddy %zu, cached %zu, depot %zu, reserve %zu, in flight %zu), "
            "thread caches %zu, misuse reports %llu\n",
            zz->name, st->total_pages, st->in_use_pages, st->free_pages, st->buddy_free_pages, st->cached_pages,
            st->depot_pages, st->reserve_free_pages, st->in_flight_pages, st->threads,
            (unsigned long long)st->misuse_reports);
}

/* Allocate until NULL: every page, each once.  Returns the pages got. */
static size_t drain(unsigned zi, struct blk *arr, size_t cap, size_t *late)
{
    struct zinfo *zz = &Z[zi];
    size_t n = 0;
    unsigned streak = 0;
    bool atomic = false;
    *late = 0;
    for (;;) {
        void *p = labyrinth_alloc_pages(zz->z, atomic ? LABYRINTH_GFP_ATOMIC : LABYRINTH_GFP_NOWAIT, 0, 0);
        if (!p) {
            if (!atomic) {
                atomic = true; /* then the reserve too */
                continue;
            }
            /* The buddy lock may be busy (the warden): a NULL streak, not
             * one NULL, ends the drain. */
            if (++streak > 100)
                break;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        streak = 0;
        struct blk b = {p, mkstamp(C_DRAIN, t_seq++), (uint8_t)zi, 0};
        if (n == cap) {
            if (violation(&v_twice))
                fprintf(stderr, "VIOLATION: zone %s handed out more than its %zu pages in the drain\n", zz->name,
                        cap);
            break;
        }
        if (take(&b, false))
            arr[n++] = b;
    }
    /* Short?  A waiting allocation takes the buddy lock for sure: any page
     * it still finds was only behind a busy lock. */
    while (n < cap) {
        void *p = labyrinth_alloc_pages(zz->z, LABYRINTH_GFP_KERNEL, 0, 0);
        if (!p)
            break;
        struct blk b = {p, mkstamp(C_DRAIN, t_seq++), (uint8_t)zi, 0};
        if (take(&b, false)) {
            arr[n++] = b;
            (*late)++;
        }
    }
    return n;
}

static void final_checks(void)
{
    /* Nothing owned in the tables. */
    for (unsigned zi = 0; zi < NZ; zi++) {
        size_t owned = 0;
        for (size_t i = 0; i < Z[zi].pages; i++)
            owned += LD(Z[zi].own[i]) != 0;
        if (owned)
            fprintf(stderr, "zone %s: %zu pages still owned by the torture (abandoned after violations)\n",
                    Z[zi].name, owned);
    }
    /* Caches released: poll up to 2 s (a bounded wait, not a timing). */
    struct labyrinth_zone_stats st[NZ];
    for (unsigned tries = 0; tries <= 200; tries++) {
        bool settled = true;
        for (unsigned zi = 0; zi < NZ; zi++) {
            labyrinth_zone_stats(Z[zi].z, &st[zi]);
            settled &= st[zi].threads == 0 && st[zi].in_use_pages == 0;
        }
        if (settled)
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    stranded_check();
    fprintf(stderr, "stress_churn: after the run, every thread joined:\n");
    for (unsigned zi = 0; zi < NZ; zi++) {
        struct zinfo *zz = &Z[zi];
        say_stats(zz, &st[zi]);
        unsigned stranded = stranded_scan(zi);
        if (stranded)
            fprintf(stderr, "  %s: %u thread cache(s) owned by exited threads\n", zz->name, stranded);
        CHECK_EQ(st[zi].in_use_pages, 0);
        CHECK_EQ(st[zi].threads, 0);
        long bad = labyrinth_zone_check(zz->z);
        CHECK_EQ(bad, 0);
        uint64_t expected = misuse && zi == DUEL_ZONE ? LD(n_duel_refused) : 0;
        CHECK_EQ(st[zi].misuse_reports, expected);

        size_t late = 0;
        struct blk *arr = calloc(zz->total, sizeof *arr);
        REQUIRE(arr);
        size_t got = drain(zi, arr, zz->total, &late);
        fprintf(stderr, "  %s: the drain handed out %zu distinct pages of %zu%s\n", zz->name, got, zz->total,
                late ? " (some only to KERNEL: the buddy lock was busy)" : "");
        if (got != zz->total) {
            struct labyrinth_zone_stats s2;
            labyrinth_zone_stats(zz->z, &s2);
            fprintf(stderr, "VIOLATION: zone %s: %zu page(s) lost (never handed out by the drain); now:\n", zz->name,
                    zz->total - got);
            say_stats(zz, &s2);
        }
        CHECK_EQ(got, zz->total);
        for (size_t i = 0; i < got; i++)
            put(&arr[i]);
        free(arr);
        labyrinth_thread_release(zz->z);
        labyrinth_zone_stats(zz->z, &st[zi]);
        CHECK_EQ(st[zi].in_use_pages, 0);
        CHECK_EQ(st[zi].threads, 0);
        CHECK_EQ(labyrinth_zone_check(zz->z), 0);
    }
}

static void progress(unsigned sec)
{
    unsigned live = (unsigned)(__atomic_load_n(&n_created, __ATOMIC_SEQ_CST) -
                               __atomic_load_n(&n_joined, __ATOMIC_SEQ_CST));
    fprintf(stderr,
            "churn %u s: %llu threads (%u live), %llu exits signalled, handler allocs %llu (%llu in exit), "
            "cross-thread frees %llu, destructor allocs %llu (%llu after labyrinth's), duels %llu, "
            "violations %llu\n",
            sec, (unsigned long long)LD(n_created), live, (unsigned long long)LD(n_exit_signalled),
            (unsigned long long)LD(n_handler_allocs), (unsigned long long)LD(n_handler_exit_allocs),
            (unsigned long long)LD(n_xfreed), (unsigned long long)LD(n_dtor_allocs),
            (unsigned long long)LD(n_dtor_after_allocs), (unsigned long long)LD(n_duels),
            (unsigned long long)LD(n_violations));
}

static pthread_t start(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, fn, arg) == 0);
    return t;
}

int main(int argc, char **argv)
{
    (void)argc;
    t0_ns = now_ns();
    if (getenv("LB_CHURN_SECONDS"))
        seconds = (unsigned)strtoul(getenv("LB_CHURN_SECONDS"), NULL, 0);
    if (seconds < 1)
        seconds = 1;
    seed = getenv("LB_CHURN_SEED") ? strtoull(getenv("LB_CHURN_SEED"), NULL, 0)
                                   : mix64(t0_ns ^ (uint64_t)getpid() << 32);
    quiet = getenv("LB_CHURN_QUIET") && atoi(getenv("LB_CHURN_QUIET"));
    misuse = getenv("LB_CHURN_MISUSE") && atoi(getenv("LB_CHURN_MISUSE"));
    PG = labyrinth_page_size();
    printf("stress_churn: seed %#llx, %u s%s; reproduce: LB_CHURN_SEED=%#llx LB_CHURN_SECONDS=%u%s %s\n",
           (unsigned long long)seed, seconds, misuse ? ", misuse (duels)" : "", (unsigned long long)seed, seconds,
           misuse ? " LB_CHURN_MISUSE=1" : "", argv[0]);
    fflush(stdout);

    /* Every thread starts with the signals blocked (inherited); those that
     * take them unblock after registering. */
    signals_block();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask); /* other signals may nest: deeper levels */
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    crash_handlers();

    for (unsigned k = 0; k < NKB; k++)
        REQUIRE(pthread_key_create(&keys[k], key_dtor) == 0); /* before labyrinth's exit key */
    zones_create();                                            /* the first zone makes that key */
    for (unsigned k = NKB; k < NKEYS; k++)
        REQUIRE(pthread_key_create(&keys[k], key_dtor) == 0); /* after it */
    self_register(R_MAIN);
    for (unsigned i = 0; i < QCAP; i++)
        q[i].seq = i;
    for (unsigned s = 0; s < SPAWNERS; s++)
        for (unsigned i = 0; i < SLOTS; i++)
            pthread_mutex_init(&kids[s][i].mu, NULL);

    pthread_t freer = start(freer_main, NULL), duel[2] = {0, 0}, spawner[SPAWNERS], signaller;
    if (misuse) {
        duel[0] = start(duel1_main, NULL);
        duel[1] = start(duel2_main, NULL);
        while (LD(duel_ready) < 2)
            sched_yield(); /* their caches claimed before the churn begins */
    }
    for (unsigned s = 0; s < SPAWNERS; s++)
        spawner[s] = start(spawner_main, (void *)(uintptr_t)s);
    signaller = start(signaller_main, NULL);

    timer_t timer;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGALRM;
    REQUIRE(timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0);
    struct itimerspec its = {{0, 200000}, {0, 200000}}; /* 5 kHz, to the process */
    timer_settime(timer, 0, &its, NULL);

    for (unsigned sec = 1; sec <= seconds; sec++) {
        for (unsigned tenth = 0; tenth < 10; tenth++) {
            struct timespec ts = {0, 100000000};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
            stranded_check();
        }
        if (!quiet)
            progress(sec);
        uint64_t fv = LD(first_violation_ms);
        if (fv && ms_since_start() >= fv + 1000) {
            fprintf(stderr, "stress_churn: stopping early, %llu violation(s)\n",
                    (unsigned long long)LD(n_violations));
            break;
        }
    }
    ST(stop, 1);
    for (unsigned s = 0; s < SPAWNERS; s++)
        pthread_join(spawner[s], NULL);
    if (misuse) {
        pthread_join(duel[0], NULL);
        pthread_join(duel[1], NULL);
    }
    pthread_join(signaller, NULL);
    timer_delete(timer);
    ST(final_drain, 1);
    pthread_join(freer, NULL);
    struct blk b;
    while (q_pop(&b)) { /* nothing should be left */
        put(&b);
        ADD(n_xfreed, 1);
    }
    for (uint32_t i = 0; i < LD(ll_n) && i < 16; i++)
        mark_gone(LD(ll_serial[i]));
    double run_s = (double)(now_ns() - t0_ns) / 1e9;

    final_checks();

    printf("stress_churn: seed %#llx, %.1f s: threads created %llu, exits with signals during exit %llu "
           "(%llu signals aimed at exiting threads, %llu at running ones, %llu handler runs), "
           "allocations in handlers %llu (%llu during exit, %llu NULL), cross-thread frees %llu, "
           "destructor calls %llu, destructor allocations %llu (%llu after labyrinth's hook, %llu key re-sets), "
           "allocations %llu, frees %llu, NULLs %llu, releases %llu, leftovers %llu, duels %llu (%llu refused), "
           "violations %llu (twice %llu, corrupt %llu, table %llu, refused frees %llu, reports %llu, bounds %llu, "
           "zero %llu, stranded %llu, duel %llu)\n",
           (unsigned long long)seed, run_s, (unsigned long long)n_created, (unsigned long long)n_exit_signalled,
           (unsigned long long)n_exit_kills, (unsigned long long)n_run_kills, (unsigned long long)n_signals,
           (unsigned long long)n_handler_allocs, (unsigned long long)n_handler_exit_allocs,
           (unsigned long long)n_handler_nulls, (unsigned long long)n_xfreed, (unsigned long long)n_dtor_calls,
           (unsigned long long)n_dtor_allocs, (unsigned long long)n_dtor_after_allocs,
           (unsigned long long)n_key_resets, (unsigned long long)n_allocs, (unsigned long long)n_frees,
           (unsigned long long)n_nulls, (unsigned long long)n_releases, (unsigned long long)n_leftovers,
           (unsigned long long)n_duels, (unsigned long long)n_duel_refused, (unsigned long long)n_violations,
           (unsigned long long)v_twice, (unsigned long long)v_corrupt, (unsigned long long)v_table,
           (unsigned long long)v_refused, (unsigned long long)v_report, (unsigned long long)v_bounds,
           (unsigned long long)v_zero, (unsigned long long)v_stranded, (unsigned long long)v_duel);
    CHECK(n_created > 2u * 8u);          /* more threads than any zone's max_threads */
    CHECK(n_dtor_after_allocs > 0);      /* destructors after labyrinth's ran */
    CHECK(n_handler_exit_allocs > 0);    /* handlers ran in exit paths */
    CHECK(n_xfreed > 0);
    if (misuse) {
        CHECK(n_duels > 0);
        CHECK_EQ(Z[DUEL_ZONE].reports_already, n_duel_refused);
    }
    CHECK_EQ(n_violations, 0);

    for (unsigned zi = 0; zi < NZ; zi++)
        labyrinth_zone_destroy(Z[zi].z);
    CHECK_EQ(v_report, 0); /* no leak reports at destroy either */
    for (unsigned zi = 0; zi < NZ; zi++) {
        free(Z[zi].own);
        free(Z[zi].last);
    }
    free(mem_buf);
    if (check_failures)
        fprintf(stderr, "stress_churn: FAILED; reproduce the run's choices: LB_CHURN_SEED=%#llx LB_CHURN_SECONDS=%u%s %s\n",
                (unsigned long long)seed, seconds, misuse ? " LB_CHURN_MISUSE=1" : "", argv[0]);
    return check_done("stress_churn");
}
