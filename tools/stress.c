/*
 * stress.c - `labyrinth stress`: the torture test, through the public API.
 *
 * N threads run random operation sequences, each drawn from its own
 * generator seeded from --seed (the same seed gives every thread the same
 * sequence of choices): allocations in every mode (ATOMIC, NOWAIT, KERNEL),
 * random orders and quality flags; frees after a payload check; hand-offs
 * of blocks to the next thread, which checks and frees them; deliberate bad
 * frees (foreign, misaligned, interior, wrong order) that must be refused
 * with their errno; page_info read-backs.  A timer signal per thread
 * interrupts it and its handler allocates, fills, checks and frees ATOMIC
 * pages on the same thread.  Every --check-every operations the threads
 * meet at a barrier with signals blocked: the zone is quiescent, and one
 * of them checks labyrinth_zone_check(), that the pages in use are exactly
 * the pages the threads hold, and that misuse reports are exactly the
 * deliberate bad frees.  Any violation stops the run with the seed, the
 * thread and the operation count (exit 1).
 */
#define _GNU_SOURCE
#include "tool.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SLOTS       64u  /* blocks a thread holds at most        */
#define MBOX        256u /* hand-off ring between two threads    */
#define STASH       8u   /* pages the signal handler keeps       */
#define WORDS       8u   /* payload words at the start of a page */
#define MAX_THREADS 64u
#define STRESS_MAX_US (168ull * 3600000000ull) /* a week */

enum { M_ATOMIC, M_NOWAIT, M_KERNEL };
static const char *const mode_name[3] = {"atomic", "nowait", "kernel"};
static const unsigned mode_gfp[3] = {LABYRINTH_GFP_ATOMIC, LABYRINTH_GFP_NOWAIT, LABYRINTH_GFP_KERNEL};

struct held {
    void *p;
    unsigned order;
    unsigned quality;
    uint64_t tag;
};

/* Hand-off ring: written by one thread, read by the next. */
struct mbox {
    _Alignas(64) uint64_t head;
    _Alignas(64) uint64_t tail;
    struct held slot[MBOX];
};

struct thr {
    unsigned id;
    pthread_t th;
    pid_t tid;           /* __atomic: set by the thread */
    timer_t timer;
    bool timer_ok;
    uint64_t rng;
    uint64_t ops;        /* single writer, relaxed */
    struct held slot[SLOTS];
    unsigned nheld;
    uint64_t held_pages; /* pages in slot[] */
    struct mbox in;      /* blocks handed to this thread */
    /* Counters (single writer; read by the monitor with relaxed loads). */
    uint64_t allocs[3], nulls[3], frees, xfers, xfer_frees, bad_frees, infos, sig_count, sig_allocs, sig_nulls;
    /* The handler's own state: touched by the handler on this thread and,
     * with signals blocked, by the thread itself. */
    uint64_t sig_rng;
    struct held stash[STASH];
    unsigned nstash;
    int sig_off;          /* 1: the handler does nothing */
    char sig_bad[200];    /* a violation the handler found */
    int sig_bad_set;
};

static struct {
    struct labyrinth_zone *zone;
    struct thr *t;
    unsigned nthreads, max_order, quality_mask;
    uint64_t seed, check_every, sabotage_op, end_ns, t0_ns, signal_hz;
    bool verify, sabotaged;
    pthread_barrier_t b1, b2;
    int go;      /* __atomic: the timers are set, start */
    int stop;    /* __atomic */
    int interrupt; /* __atomic: SIGINT or SIGTERM, stop at the next check */
    int failed;  /* __atomic: first violation wins */
    char why[600];
    unsigned fail_thread;
    uint64_t fail_op;
    uint64_t checks; /* written by the serial thread at a barrier */
    /* Report handler counts (any context). */
    uint64_t rep_bad_free, rep_other;
    int rep_msg_set, rep_msg_ready; /* __atomic */
    char rep_msg[200];
} S;

static _Thread_local struct thr *cur; /* the calling thread's state, for the handler */

static void bump(uint64_t *c) { __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED); }
static uint64_t rd(const uint64_t *c) { return __atomic_load_n(c, __ATOMIC_RELAXED); }

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t mix(uint64_t x)
{
    uint64_t s = x;
    return splitmix(&s);
}

/* ---- violations ------------------------------------------------------------ */

static void violation(struct thr *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(struct thr *t, const char *fmt, ...)
{
    if (__atomic_exchange_n(&S.failed, 1, __ATOMIC_ACQ_REL))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(S.why, sizeof S.why, fmt, ap);
    va_end(ap);
    S.fail_thread = t ? t->id : 0;
    S.fail_op = t ? rd(&t->ops) : 0;
}

static bool failed(void) { return __atomic_load_n(&S.failed, __ATOMIC_ACQUIRE); }

/* Async-signal-safe copy of a message, for the handler. */
static void copy_str(char *out, size_t len, const char *a, const char *b)
{
    size_t n = 0;
    for (const char *s = a; s && *s && n + 1 < len; s++)
        out[n++] = *s;
    for (const char *s = b; s && *s && n + 1 < len; s++)
        out[n++] = *s;
    out[n] = 0;
}

static void on_report(const struct labyrinth_report *r, void *arg)
{
    (void)arg;
    if (r->kind == LABYRINTH_REPORT_BAD_FREE) {
        __atomic_add_fetch(&S.rep_bad_free, 1, __ATOMIC_RELAXED);
        return;
    }
    if (r->kind == LABYRINTH_REPORT_NOTICE)
        return;
    if (!__atomic_exchange_n(&S.rep_msg_set, 1, __ATOMIC_ACQ_REL)) {
        copy_str(S.rep_msg, sizeof S.rep_msg, "unexpected report: ", r->message);
        __atomic_store_n(&S.rep_msg_ready, 1, __ATOMIC_RELEASE);
    }
    __atomic_add_fetch(&S.rep_other, 1, __ATOMIC_RELAXED);
}

/* ---- payloads ----------------------------------------------------------------- */

static size_t page_size;

static uint64_t pat(uint64_t tag, size_t page, unsigned w) { return mix(tag ^ (page << 8) ^ w); }

static void fill(const struct held *h)
{
    size_t pages = (size_t)1 << h->order;
    for (size_t j = 0; j < pages; j++) {
        uint64_t *w = (uint64_t *)(void *)((char *)h->p + j * page_size);
        for (unsigned i = 0; i < WORDS; i++)
            w[i] = pat(h->tag, j, i);
        w[page_size / 8 - 1] = pat(h->tag, j, WORDS);
    }
}

/* The byte offset of the first payload word that changed, or -1. */
static long check(const struct held *h, uint64_t *want, uint64_t *got)
{
    size_t pages = (size_t)1 << h->order;
    for (size_t j = 0; j < pages; j++) {
        const uint64_t *w = (const uint64_t *)(const void *)((const char *)h->p + j * page_size);
        for (unsigned i = 0; i <= WORDS; i++) {
            unsigned k = i < WORDS ? i : (unsigned)(page_size / 8 - 1);
            uint64_t e = pat(h->tag, j, i);
            if (w[k] != e) {
                *want = e;
                *got = w[k];
                return (long)(j * page_size + k * 8);
            }
        }
    }
    return -1;
}

/* What quality promises about a fresh block, on the words we use. */
static long check_fresh(const struct held *h, uint64_t *got)
{
    uint64_t expect;
    if (h->quality & LABYRINTH_QUALITY_ZERO)
        expect = 0;
    else if (h->quality & LABYRINTH_QUALITY_POISON)
        expect = 0x6b6b6b6b6b6b6b6bull;
    else
        return -1;
    size_t pages = (size_t)1 << h->order;
    for (size_t j = 0; j < pages; j++) {
        const uint64_t *w = (const uint64_t *)(const void *)((const char *)h->p + j * page_size);
        for (unsigned i = 0; i <= WORDS; i++) {
            unsigned k = i < WORDS ? i : (unsigned)(page_size / 8 - 1);
            if (w[k] != expect) {
                *got = w[k];
                return (long)(j * page_size + k * 8);
            }
        }
    }
    return -1;
}

/* ---- the signal handler -------------------------------------------------------------- */

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    struct thr *t = cur;
    if (!t || __atomic_load_n(&t->sig_off, __ATOMIC_RELAXED)) {
        errno = saved;
        return;
    }
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    bump(&t->sig_count);
    uint64_t r = splitmix(&t->sig_rng);
    if (t->nstash && ((r & 1) || t->nstash == STASH)) {
        struct held h = t->stash[--t->nstash];
        uint64_t want, got;
        long off = check(&h, &want, &got);
        if (off >= 0 && !t->sig_bad_set) {
            copy_str(t->sig_bad, sizeof t->sig_bad, "a page the signal handler held changed under it", "");
            t->sig_bad_set = 1;
        }
        if (labyrinth_free_pages(S.zone, h.p, 0) != 0 && !t->sig_bad_set) {
            copy_str(t->sig_bad, sizeof t->sig_bad, "the signal handler's free of its own page was refused", "");
            t->sig_bad_set = 1;
        }
    } else {
        unsigned q = (unsigned)(r >> 8) & S.quality_mask;
        void *p = (r >> 16) & 1 ? labyrinth_void_allocpage_gfpatomic_extra_quality(S.zone, q)
                                : labyrinth_alloc_pages(S.zone, LABYRINTH_GFP_ATOMIC, 0, q);
        if (!p) {
            bump(&t->sig_nulls);
        } else {
            bump(&t->sig_allocs);
            struct held h = {p, 0, q, r | 1};
            uint64_t got;
            if (check_fresh(&h, &got) >= 0 && !t->sig_bad_set) {
                copy_str(t->sig_bad, sizeof t->sig_bad, "a page from the handler's ATOMIC allocation does not "
                                                        "read as its quality promises", "");
                t->sig_bad_set = 1;
            }
            fill(&h);
            t->stash[t->nstash++] = h;
        }
    }
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    errno = saved;
}

static void signals_block(bool block)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN);
    pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &s, NULL);
}

/* ---- operations ------------------------------------------------------------------------ */

static void release(struct thr *t, const struct held *h, const char *how)
{
    uint64_t want, got;
    long off = check(h, &want, &got);
    if (off >= 0)
        violation(t, "payload of block %p (order %u, %s) changed at byte %ld: expected %#llx, found %#llx", h->p,
                  h->order, how, off, (unsigned long long)want, (unsigned long long)got);
    int rc = labyrinth_free_pages(S.zone, h->p, h->order);
    if (rc != 0)
        violation(t, "free of allocated block %p (order %u, %s) refused: %s", h->p, h->order, how,
                  labyrinth_strerror(rc));
    bump(&t->frees);
}

static void drain_mbox(struct thr *t)
{
    struct mbox *m = &t->in;
    uint64_t tl = __atomic_load_n(&m->tail, __ATOMIC_RELAXED);
    uint64_t hd = __atomic_load_n(&m->head, __ATOMIC_ACQUIRE);
    while (tl != hd) {
        struct held h = m->slot[tl % MBOX];
        release(t, &h, "handed over by another thread");
        bump(&t->xfer_frees);
        __atomic_store_n(&m->tail, ++tl, __ATOMIC_RELEASE);
    }
}

static bool hand_over(struct thr *t, const struct held *h)
{
    struct mbox *m = &S.t[(t->id + 1) % S.nthreads].in;
    uint64_t hd = __atomic_load_n(&m->head, __ATOMIC_RELAXED);
    if (hd - __atomic_load_n(&m->tail, __ATOMIC_ACQUIRE) == MBOX)
        return false;
    m->slot[hd % MBOX] = *h;
    __atomic_store_n(&m->head, hd + 1, __ATOMIC_RELEASE);
    return true;
}

static void take_slot(struct thr *t, unsigned i)
{
    t->held_pages -= (uint64_t)1 << t->slot[i].order;
    t->slot[i] = t->slot[--t->nheld];
}

static void op_alloc(struct thr *t, const uint64_t r[4])
{
    unsigned mode = r[1] % 10 < 7 ? M_ATOMIC : r[1] % 10 < 9 ? M_NOWAIT : M_KERNEL;
    unsigned order = r[2] % 10 < 7 || S.max_order == 0 ? 0 : 1 + (unsigned)((r[2] >> 8) % S.max_order);
    unsigned q = (unsigned)r[3] & S.quality_mask;
    void *p = labyrinth_alloc_pages(S.zone, mode_gfp[mode], order, q);
    bump(&t->allocs[mode]);
    if (!p) {
        bump(&t->nulls[mode]);
        return;
    }
    struct held h = {p, order, q, ((uint64_t)t->id << 48) ^ rd(&t->ops) ^ (r[3] & ~0xffull)};
    if ((uintptr_t)p % (page_size << order)) {
        violation(t, "block %p of order %u is not naturally aligned", p, order);
    }
    uint64_t got;
    long off = check_fresh(&h, &got);
    if (off >= 0)
        violation(t, "fresh block %p (order %u, quality %#x, %s) reads %#llx at byte %ld, not what its quality "
                     "promises", p, order, q, mode_name[mode], (unsigned long long)got, off);
    fill(&h);
    t->slot[t->nheld++] = h;
    t->held_pages += (uint64_t)1 << order;
}

static void op_bad_free(struct thr *t, const uint64_t r[4])
{
    struct held *h = &t->slot[r[1] % t->nheld];
    unsigned kind = (unsigned)(r[2] % 4);
    char local;
    void *addr;
    unsigned order = h->order;
    int want;
    const char *what;
    switch (kind) {
    case 0: addr = &local; want = -EFAULT; what = "a foreign pointer"; break;
    case 1: addr = (char *)h->p + 64; want = -EINVAL; what = "a misaligned pointer"; break;
    case 2:
        if (h->order == 0) {
            addr = h->p;
            order = 1;
            want = -ERANGE;
            what = "the wrong order";
        } else {
            addr = (char *)h->p + page_size;
            want = -ENXIO;
            what = "an interior page";
        }
        break;
    default:
        addr = h->p;
        order = h->order ? h->order - 1 : 1;
        want = -ERANGE;
        what = "the wrong order";
        break;
    }
    int rc = labyrinth_free_pages(S.zone, addr, order);
    bump(&t->bad_frees);
    if (rc != want)
        violation(t, "free of %s (%p, order %u; block %p of order %u) returned %d (%s), expected %d (%s)", what, addr,
                  order, h->p, h->order, rc, rc ? labyrinth_strerror(rc) : "accepted", want, labyrinth_strerror(want));
}

static void op_info(struct thr *t, const uint64_t r[4])
{
    struct held *h = &t->slot[r[1] % t->nheld];
    struct labyrinth_page_info in;
    const char *a = (const char *)h->p + ((r[2] % ((uint64_t)1 << h->order)) * page_size);
    int rc = labyrinth_page_info(S.zone, a, &in);
    bump(&t->infos);
    if (rc != 0 || in.block != h->p || in.order != h->order || in.state != LABYRINTH_PAGE_IN_USE)
        violation(t, "page_info(%p) inside block %p (order %u, in use): rc %d, block %p, order %u, state %d", (void *)a,
                  h->p, h->order, rc, in.block, in.order, (int)in.state);
}

static void one_op(struct thr *t)
{
    uint64_t r[4];
    for (unsigned i = 0; i < 4; i++)
        r[i] = splitmix(&t->rng);
    unsigned op = (unsigned)(r[0] % 100);
    if (t->nheld == 0 || (op < 45 && t->nheld < SLOTS)) {
        op_alloc(t, r);
    } else if (op < 85 || t->nheld == SLOTS) {
        unsigned i = (unsigned)(r[1] % t->nheld);
        struct held h = t->slot[i];
        take_slot(t, i);
        release(t, &h, "held by its allocating thread");
    } else if (op < 93) {
        unsigned i = (unsigned)(r[1] % t->nheld);
        struct held h = t->slot[i];
        if (hand_over(t, &h)) {
            take_slot(t, i);
            bump(&t->xfers);
        }
    } else if (op < 97) {
        op_bad_free(t, r);
    } else {
        op_info(t, r);
    }
    if (S.sabotage_op && t->id == 0 && !S.sabotaged && rd(&t->ops) >= S.sabotage_op && t->nheld) {
        /* --sabotage: change one payload byte behind the allocator's back. */
        ((volatile char *)t->slot[0].p)[3] ^= 0x5a;
        S.sabotaged = true;
    }
    bump(&t->ops);
}

/* ---- the quiescent check ------------------------------------------------------------------ */

static uint64_t pages_held_by_all(void)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < S.nthreads; i++) {
        struct thr *t = &S.t[i];
        n += t->held_pages + t->nstash;
        for (uint64_t k = t->in.tail; k != t->in.head; k++)
            n += (uint64_t)1 << t->in.slot[k % MBOX].order;
    }
    return n;
}

static void quiescent_check(struct thr *self)
{
    bump(&S.checks);
    long bad = labyrinth_zone_check(S.zone);
    if (bad != 0) {
        violation(self, "labyrinth_zone_check found %ld violated invariant(s) at check %llu", bad,
                  (unsigned long long)S.checks);
        return;
    }
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(S.zone, &st);
    uint64_t held = pages_held_by_all(), bad_frees = 0;
    for (unsigned i = 0; i < S.nthreads; i++)
        bad_frees += S.t[i].bad_frees;
    if (st.in_use_pages != held)
        violation(self, "the zone counts %zu pages in use, the threads hold %llu (check %llu)", st.in_use_pages,
                  (unsigned long long)held, (unsigned long long)S.checks);
    else if (st.misuse_reports != bad_frees)
        violation(self, "the zone counts %llu misuse reports, the threads made %llu deliberate bad frees (check %llu)",
                  st.misuse_reports, (unsigned long long)bad_frees, (unsigned long long)S.checks);
    else if (st.free_pages + st.in_use_pages != st.total_pages)
        violation(self, "free %zu + in use %zu != total %zu pages (check %llu)", st.free_pages, st.in_use_pages,
                  st.total_pages, (unsigned long long)S.checks);
    else if (__atomic_load_n(&S.rep_other, __ATOMIC_RELAXED))
        violation(self, "%s", __atomic_load_n(&S.rep_msg_ready, __ATOMIC_ACQUIRE) ? S.rep_msg : "unexpected report");
}

/* ---- threads -------------------------------------------------------------------------------- */

static void *thr_main(void *arg)
{
    struct thr *t = arg;
    signals_block(true);
    cur = t;
    __atomic_store_n(&t->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
    while (!__atomic_load_n(&S.go, __ATOMIC_ACQUIRE)) /* until the timers are set */
        tool_sleep_us(100);
    for (;;) {
        signals_block(false);
        for (uint64_t i = 0; i < S.check_every && !failed() && !__atomic_load_n(&S.interrupt, __ATOMIC_RELAXED);
             i++) {
            one_op(t);
            if ((i & 15) == 0)
                drain_mbox(t);
            if (t->sig_bad_set)
                violation(t, "%s (signal %llu on this thread)", t->sig_bad, (unsigned long long)rd(&t->sig_count));
        }
        signals_block(true);
        if (t->sig_bad_set)
            violation(t, "%s (signal %llu on this thread)", t->sig_bad, (unsigned long long)rd(&t->sig_count));
        if (pthread_barrier_wait(&S.b1) == PTHREAD_BARRIER_SERIAL_THREAD) {
            if (!failed())
                quiescent_check(t);
            if (failed() || __atomic_load_n(&S.interrupt, __ATOMIC_RELAXED) || tool_now_ns() >= S.end_ns) {
                /* The last round: no more signals. */
                for (unsigned i = 0; i < S.nthreads; i++)
                    if (S.t[i].timer_ok) {
                        timer_delete(S.t[i].timer);
                        S.t[i].timer_ok = false;
                    }
                __atomic_store_n(&S.stop, 1, __ATOMIC_RELEASE);
            }
        }
        pthread_barrier_wait(&S.b2);
        if (__atomic_load_n(&S.stop, __ATOMIC_ACQUIRE))
            break;
    }
    /* Signals stay blocked; give everything back. */
    __atomic_store_n(&t->sig_off, 1, __ATOMIC_RELAXED);
    while (t->nheld) {
        struct held h = t->slot[0];
        take_slot(t, 0);
        release(t, &h, "held at the end");
    }
    while (t->nstash) {
        struct held h = t->stash[--t->nstash];
        release(t, &h, "held by the signal handler at the end");
    }
    pthread_barrier_wait(&S.b1); /* every hand-off made */
    drain_mbox(t);
    labyrinth_thread_release(S.zone);
    return NULL;
}

/* ---- usage and main ------------------------------------------------------------------------- */

static void stress_usage(FILE *f)
{
    fprintf(f,
            "usage: labyrinth stress [options]\n"
            "  The torture test: threads allocate in every mode (ATOMIC, NOWAIT, KERNEL)\n"
            "  with random orders and quality flags, check payloads before every free,\n"
            "  hand blocks to each other, make deliberate bad frees that must be\n"
            "  refused, while a timer-signal storm allocates and frees on the same\n"
            "  threads.  Every N operations the threads stop at a barrier and the zone\n"
            "  is checked (labyrinth_zone_check, pages in use, misuse reports).\n"
            "options:\n"
            "  --duration T      how long to run, 1ms to 168h (e.g. 500ms, 2m, 1h;\n"
            "                    default 10s)\n"
            "  --threads N       worker threads, 1 to 64 (default 4)\n"
            "  --seed S          seed of the operation sequences (default: from the clock;\n"
            "                    printed, so a failing run can be repeated)\n"
            "  --check-every N   operations per thread between checks, 1 to 100M\n"
            "                    (default 5000)\n"
            "  --signal-rate N   timer signals per second, all threads together, 0 to 1M\n"
            "                    (default 20k; 0 for none)\n"
            "  --pages N         zone size in pages, 256 to 4194304 (default 4096)\n"
            "  --max-order N     largest block order allocated, 0 to 10 (default 4)\n"
            "  --quality LIST    quality flags drawn at random: comma list of zero,\n"
            "                    poison,cl_align,track, all or none (default all)\n"
            "  --verify          a LABYRINTH_ZONE_VERIFY zone (use-after-free writes found)\n"
            "  --sabotage N      corrupt a payload at thread 0's operation N, to see a\n"
            "                    violation reported (a self-test; the run then fails)\n"
            "  --json            the final report as JSON on stdout\n"
            "  --quiet           no progress lines\n"
            "  --help            this text\n"
            "Exit status: 0 no violation, 1 a violation (printed with the seed and the\n"
            "operation count), 2 bad usage.\n");
}


static uint64_t sum(size_t off)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < S.nthreads; i++)
        n += rd((const uint64_t *)(const void *)((const char *)&S.t[i] + off));
    return n;
}
#define SUM(field) sum(offsetof(struct thr, field))

int tool_stress(int argc, char **argv)
{
    uint64_t duration_us = 10000000, threads = 4, seed = 0, check_every = 5000, signal_hz = 20000, pages = 4096,
             max_order = 4, sabotage = 0;
    unsigned quality = LABYRINTH_QUALITY_ALL;
    bool json = false, quiet = false, verify = false, seed_set = false;
    static const struct option opts[] = {
        {"duration", required_argument, 0, 'd'},    {"threads", required_argument, 0, 't'},
        {"seed", required_argument, 0, 's'},        {"check-every", required_argument, 0, 'c'},
        {"signal-rate", required_argument, 0, 'r'}, {"pages", required_argument, 0, 'p'},
        {"max-order", required_argument, 0, 'o'},   {"quality", required_argument, 0, 'q'},
        {"verify", no_argument, 0, 'V'},            {"sabotage", required_argument, 0, 'S'},
        {"json", no_argument, 0, 'j'},              {"quiet", no_argument, 0, 'Q'},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    int c, li = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, &li)) != -1) {
        bool ok = true;
        const char *valid = NULL;
        switch (c) {
        case 'd':
            ok = tool_parse_duration_us(optarg, &duration_us) && duration_us >= 1000 && duration_us <= STRESS_MAX_US;
            valid = "a duration from 1ms to 168h, a week (a number with us, ms, s, m or h)";
            break;
        case 't':
            ok = tool_parse_u64(optarg, &threads) && threads >= 1 && threads <= MAX_THREADS;
            valid = "from 1 to 64 threads";
            break;
        case 's':
            ok = tool_parse_u64(optarg, &seed);
            seed_set = true;
            valid = "a whole number from 0 to 18446744073709551615";
            break;
        case 'c':
            ok = tool_parse_u64(optarg, &check_every) && check_every >= 1 && check_every <= 100000000;
            valid = "operations per thread between checks, from 1 to 100M";
            break;
        case 'r':
            ok = tool_parse_u64(optarg, &signal_hz) && signal_hz <= 1000000;
            valid = "signals per second, from 0 (none) to 1M";
            break;
        case 'p':
            ok = tool_parse_u64(optarg, &pages) && pages >= 256 && pages <= (1u << 22);
            valid = "a zone of 256 to 4194304 pages (k and M allowed)";
            break;
        case 'o':
            ok = tool_parse_u64(optarg, &max_order) && max_order <= 10;
            valid = "an order from 0 (single pages) to 10 (blocks of 1024 pages)";
            break;
        case 'q':
            ok = tool_parse_quality(optarg, LABYRINTH_QUALITY_ALL, &quality);
            valid = "a comma list of zero, poison, cl_align, track, or 'all' or 'none' alone";
            break;
        case 'V': verify = true; break;
        case 'S':
            ok = tool_parse_u64(optarg, &sabotage) && sabotage >= 1;
            valid = "an operation number of thread 0, 1 or more";
            break;
        case 'j': json = true; break;
        case 'Q': quiet = true; break;
        case 'h': stress_usage(stdout); return TOOL_OK;
        default: return tool_usage_hint("stress");
        }
        if (!ok)
            return tool_bad_value("stress", opts[li].name, optarg, valid);
    }
    if (optind < argc) {
        fprintf(stderr, "labyrinth stress: unexpected argument '%s'\n", argv[optind]);
        return TOOL_USAGE;
    }
    if (!seed_set)
        seed = tool_now_ns() % 1000000007u;
    bool report = !tool_stats_req.quiet_run;
    if (!report)
        quiet = true;

    memset(&S, 0, sizeof S);
    page_size = labyrinth_page_size();
    /* Ctrl-C or SIGTERM: the run stops at the next quiescent check, with
     * its report.  Only the main thread takes them (blocked for the
     * threads it makes, the warden's too). */
    tool_interrupt_install();
    tool_interrupt_block(true);
    S.nthreads = (unsigned)threads;
    S.max_order = (unsigned)max_order;
    S.quality_mask = quality;
    S.seed = seed;
    S.check_every = check_every;
    S.sabotage_op = sabotage;
    S.signal_hz = signal_hz;
    S.verify = verify;

    struct labyrinth_zone_config cfg = {0};
    cfg.name = "stress";
    cfg.pages = pages;
    cfg.max_order = max_order > 10 ? (unsigned)max_order : 10;
    cfg.wait_timeout_ms = 20;
    cfg.flags = verify ? LABYRINTH_ZONE_VERIFY : 0;
    S.zone = labyrinth_zone_create(&cfg);
    if (!S.zone) {
        fprintf(stderr, "labyrinth stress: cannot create the zone: %s\n", labyrinth_strerror(errno));
        tool_interrupt_block(false);
        tool_interrupt_restore();
        return TOOL_FAIL;
    }
    labyrinth_zone_set_report_handler(S.zone, on_report, NULL);
    S.t = aligned_alloc(64, ((sizeof *S.t * threads) + 63) / 64 * 64);
    if (!S.t) {
        labyrinth_zone_destroy(S.zone);
        fprintf(stderr, "labyrinth stress: out of memory\n");
        tool_interrupt_block(false);
        tool_interrupt_restore();
        return TOOL_FAIL;
    }
    memset(S.t, 0, sizeof *S.t * threads);
    char again[400], sab[40] = "";
    if (sabotage)
        snprintf(sab, sizeof sab, " --sabotage %llu", (unsigned long long)sabotage);
    snprintf(again, sizeof again,
             "labyrinth stress --seed %llu --threads %u --check-every %llu --signal-rate %llu --pages %llu "
             "--max-order %u --quality %s%s%s%s%s%s",
             (unsigned long long)seed, S.nthreads, (unsigned long long)check_every, (unsigned long long)signal_hz,
             (unsigned long long)pages, S.max_order, quality ? "" : "none",
             quality & LABYRINTH_QUALITY_ZERO ? "zero," : "", quality & LABYRINTH_QUALITY_POISON ? "poison," : "",
             quality & LABYRINTH_QUALITY_CL_ALIGN ? "cl_align," : "", quality & LABYRINTH_QUALITY_TRACK ? "track" : "",
             verify ? " --verify" : "");
    size_t al = strlen(again);
    if (al && again[al - 1] == ',')
        again[--al] = 0;
    snprintf(again + al, sizeof again - al, "%s", sab);
    if (report)
        fprintf(stderr, "labyrinth stress: seed %llu, %u threads, %.1f s, checks every %llu\n"
                        "  operations, %llu signals/s%s\n",
                (unsigned long long)seed, S.nthreads, duration_us / 1e6, (unsigned long long)check_every,
                (unsigned long long)signal_hz, verify ? ", VERIFY zone" : "");

    pthread_barrier_init(&S.b1, NULL, S.nthreads);
    pthread_barrier_init(&S.b2, NULL, S.nthreads);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    struct sigaction old_sa;
    sigaction(SIGRTMIN, &sa, &old_sa);
    signals_block(true); /* only the workers take the timer signals */

    unsigned started = 0;
    for (unsigned i = 0; i < S.nthreads; i++) {
        struct thr *t = &S.t[i];
        t->id = i;
        uint64_t s = seed * 0x100000001b3ull + i + 1;
        t->rng = splitmix(&s);
        t->sig_rng = splitmix(&s);
    }
    for (; started < S.nthreads; started++)
        if (pthread_create(&S.t[started].th, NULL, thr_main, &S.t[started]) != 0)
            break;
    if (started < S.nthreads) {
        fprintf(stderr, "labyrinth stress: cannot start thread %u\n", started);
        /* The barrier would never open: nothing sensible is left to do. */
        _exit(TOOL_FAIL);
    }
    for (unsigned i = 0; i < S.nthreads; i++)
        while (!__atomic_load_n(&S.t[i].tid, __ATOMIC_ACQUIRE))
            tool_sleep_us(100);
    if (signal_hz) {
        uint64_t per = signal_hz / S.nthreads ? signal_hz / S.nthreads : 1;
        long interval = (long)(1000000000ull / per);
        for (unsigned i = 0; i < S.nthreads; i++) {
            struct sigevent sev;
            memset(&sev, 0, sizeof sev);
            sev.sigev_notify = SIGEV_THREAD_ID;
            sev.sigev_signo = SIGRTMIN;
            sev._sigev_un._tid = S.t[i].tid;
            if (timer_create(CLOCK_MONOTONIC, &sev, &S.t[i].timer) == 0) {
                struct itimerspec its = {{interval / 1000000000, interval % 1000000000},
                                         {interval / 1000000000, interval % 1000000000}};
                timer_settime(S.t[i].timer, 0, &its, NULL);
                S.t[i].timer_ok = true;
            } else if (report) {
                fprintf(stderr, "labyrinth stress: timer_create: %s; thread %u runs without signals\n",
                        strerror(errno), i);
            }
        }
    }
    /* The run's clock starts now that every thread runs and has its timer. */
    S.t0_ns = tool_now_ns();
    S.end_ns = S.t0_ns + duration_us * 1000;
    __atomic_store_n(&S.go, 1, __ATOMIC_RELEASE);
    tool_interrupt_block(false);

    bool tty = isatty(2);
    uint64_t prev_ops = 0, prev_t = S.t0_ns, next_line = S.t0_ns + 1000000000ull,
             next_stats = tool_stats_req.interval_us ? S.t0_ns + tool_stats_req.interval_us * 1000 : 0;
    bool joined[MAX_THREADS] = {0};
    unsigned left = S.nthreads;
    while (left) {
        tool_sleep_us(tty ? 100000 : 50000);
        if (tool_interrupted() && !__atomic_load_n(&S.interrupt, __ATOMIC_RELAXED)) {
            __atomic_store_n(&S.interrupt, 1, __ATOMIC_RELAXED);
            if (!quiet)
                tool_status_done(tty);
            if (report)
                fprintf(stderr, "labyrinth stress: %s: stopping at the next check, after %.1f s, with the\n"
                                "  report of the run so far (the same signal again quits at once)\n",
                        tool_signal_name(tool_interrupted()), (tool_now_ns() - S.t0_ns) / 1e9);
        }
        for (unsigned i = 0; i < S.nthreads; i++)
            if (!joined[i] && pthread_tryjoin_np(S.t[i].th, NULL) == 0) {
                joined[i] = true;
                left--;
            }
        uint64_t t = tool_now_ns();
        if (!quiet && left && !__atomic_load_n(&S.interrupt, __ATOMIC_RELAXED) && (tty || t >= next_line)) {
            uint64_t ops = SUM(ops);
            char f_t[24], f_ops[48], f_rate[40], f_sig[40], f_chk[40], f_null[40], f_viol[32];
            snprintf(f_t, sizeof f_t, "%5.1fs", (t - S.t0_ns) / 1e9);
            snprintf(f_ops, sizeof f_ops, "ops %llu", (unsigned long long)ops);
            snprintf(f_rate, sizeof f_rate, "(%.0f/s)", (double)(ops - prev_ops) / ((t - prev_t) / 1e9));
            snprintf(f_sig, sizeof f_sig, "signals %llu", (unsigned long long)SUM(sig_count));
            snprintf(f_chk, sizeof f_chk, "checks %llu", (unsigned long long)rd(&S.checks));
            snprintf(f_null, sizeof f_null, "NULLs %llu",
                     (unsigned long long)(SUM(nulls[0]) + SUM(nulls[1]) + SUM(nulls[2]) + SUM(sig_nulls)));
            snprintf(f_viol, sizeof f_viol, "violations %d", failed() ? 1 : 0);
            const struct tool_field fields[] = {{f_t, 0},   {f_ops, 0},  {f_rate, 3}, {f_sig, 2},
                                                {f_chk, 1}, {f_null, 4}, {f_viol, 0}};
            tool_status_fields(tty, fields, sizeof fields / sizeof fields[0]);
            prev_ops = ops;
            prev_t = t;
            next_line = t + 1000000000ull;
        }
        if (next_stats && t >= next_stats && left) {
            tool_stats_emit(S.zone, "stress", (t - S.t0_ns) / 1e9, false);
            next_stats += tool_stats_req.interval_us * 1000;
        }
    }
    if (!quiet)
        tool_status_done(tty);
    double secs = (tool_now_ns() - S.t0_ns) / 1e9;
    int interrupted = tool_interrupted();
    signals_block(false);
    sigaction(SIGRTMIN, &old_sa, NULL);

    /* The end: nothing in use, the misuse reports exactly the bad frees,
     * the invariants hold. */
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(S.zone, &st);
    long viol = labyrinth_zone_check(S.zone);
    long leaks = labyrinth_zone_for_each_in_use(S.zone, NULL, NULL);
    uint64_t bad_frees = SUM(bad_frees);
    if (!failed()) {
        if (viol)
            violation(NULL, "labyrinth_zone_check found %ld violated invariant(s) at the end", viol);
        else if (leaks || st.in_use_pages)
            violation(NULL, "%zu pages (%ld blocks) still in use at the end, after every block was freed",
                      st.in_use_pages, leaks);
        else if (st.misuse_reports != bad_frees)
            violation(NULL, "the zone counts %llu misuse reports, the threads made %llu deliberate bad frees",
                      st.misuse_reports, (unsigned long long)bad_frees);
        else if (__atomic_load_n(&S.rep_other, __ATOMIC_RELAXED))
            violation(NULL, "%s", __atomic_load_n(&S.rep_msg_ready, __ATOMIC_ACQUIRE) ? S.rep_msg : "unexpected report");
    }
    bool ok = !failed();
    uint64_t ops = SUM(ops);
    /* --sabotage N beyond what thread 0 reached: nothing was corrupted, and
     * "no violation" would test nothing. */
    bool sabotage_missed = S.sabotage_op && !S.sabotaged;
    if (sabotage_missed && report)
        fprintf(stderr,
                "labyrinth stress: warning: --sabotage %llu was never reached: thread 0\n"
                "  made %llu operations; nothing was corrupted, so the self-test tested nothing\n"
                "  (a longer --duration or a smaller N)\n",
                (unsigned long long)S.sabotage_op, (unsigned long long)rd(&S.t[0].ops));
    if (report && json) {
        printf("{\"command\":\"stress\",\"seed\":%llu,\"threads\":%u,\"seconds\":%.3f,", (unsigned long long)seed,
               S.nthreads, secs);
        printf("\"config\":{\"duration_s\":%.3f,\"check_every\":%llu,\"signal_rate_per_s\":%llu,\"pages\":%llu,"
               "\"max_order\":%u,\"verify\":%s,\"quality\":",
               duration_us / 1e6, (unsigned long long)check_every, (unsigned long long)signal_hz,
               (unsigned long long)pages, S.max_order, verify ? "true" : "false");
        tool_json_quality(stdout, quality);
        printf("},\"operations\":%llu,\"allocs\":{", (unsigned long long)ops);
        for (unsigned m = 0; m < 3; m++)
            printf("%s\"%s\":%llu", m ? "," : "", mode_name[m], (unsigned long long)sum(offsetof(struct thr, allocs) + m * 8));
        printf("},\"nulls\":{");
        for (unsigned m = 0; m < 3; m++)
            printf("%s\"%s\":%llu", m ? "," : "", mode_name[m], (unsigned long long)sum(offsetof(struct thr, nulls) + m * 8));
        printf("},\"frees\":%llu,\"handoffs\":%llu,\"bad_frees\":%llu,\"misuse_reports\":%llu,\"page_infos\":%llu,"
               "\"signals\":%llu,\"signal_allocs\":%llu,\"signal_nulls\":%llu,\"checks\":%llu,\"in_use_pages\":%zu,"
               "\"check_violations\":%ld,\"violations\":%d,",
               (unsigned long long)SUM(frees), (unsigned long long)SUM(xfers), (unsigned long long)bad_frees,
               st.misuse_reports, (unsigned long long)SUM(infos), (unsigned long long)SUM(sig_count),
               (unsigned long long)SUM(sig_allocs), (unsigned long long)SUM(sig_nulls), (unsigned long long)S.checks,
               st.in_use_pages, viol, ok ? 0 : 1);
        printf("\"violation\":");
        if (ok) {
            printf("null");
        } else {
            printf("{\"what\":");
            tool_json_str(stdout, S.why);
            printf(",\"thread\":%u,\"operation\":%llu,\"reproduce\":", S.fail_thread, (unsigned long long)S.fail_op);
            tool_json_str(stdout, again);
            printf("}");
        }
        if (S.sabotage_op)
            printf(",\"sabotage\":{\"at_operation\":%llu,\"done\":%s}", (unsigned long long)S.sabotage_op,
                   S.sabotaged ? "true" : "false");
        printf(",\"interrupted\":%s,\"interrupted_by\":", interrupted ? "true" : "false");
        if (interrupted)
            tool_json_str(stdout, tool_signal_name(interrupted));
        else
            printf("null");
        printf(",\"healthy\":%s}\n", ok ? "true" : "false");
    } else if (report) {
        if (interrupted)
            printf("\nlabyrinth stress report: INTERRUPTED by %s after %.1f s of %.1f s (seed %llu,\n"
                   "  %u threads)\n",
                   tool_signal_name(interrupted), secs, duration_us / 1e6, (unsigned long long)seed, S.nthreads);
        else
            printf("\nlabyrinth stress report (%.1f s, seed %llu, %u threads)\n", secs, (unsigned long long)seed,
                   S.nthreads);
        printf("  operations             %12llu  (%.0f/s)\n", (unsigned long long)ops, ops / secs);
        for (unsigned m = 0; m < 3; m++)
            printf("  %-6s allocations     %12llu  (%llu NULL)\n", mode_name[m],
                   (unsigned long long)sum(offsetof(struct thr, allocs) + m * 8),
                   (unsigned long long)sum(offsetof(struct thr, nulls) + m * 8));
        printf("  frees after a check    %12llu  (%llu after a hand-off)\n",
               (unsigned long long)SUM(frees), (unsigned long long)SUM(xfers));
        printf("  deliberate bad frees   %12llu  refused, each with its errno;\n"
               "                                       misuse reports %llu\n",
               (unsigned long long)bad_frees, st.misuse_reports);
        printf("  page_info read-backs   %12llu\n", (unsigned long long)SUM(infos));
        printf("  timer signals          %12llu  (handler: %llu ATOMIC pages, %llu NULL)\n",
               (unsigned long long)SUM(sig_count), (unsigned long long)SUM(sig_allocs),
               (unsigned long long)SUM(sig_nulls));
        printf("  quiescent checks       %12llu  (every %llu operations per thread)\n", (unsigned long long)S.checks,
               (unsigned long long)check_every);
        printf("  pages in use at end    %12zu\n", st.in_use_pages);
        printf("  invariant check        %s\n", viol ? "VIOLATED" : "ok (labyrinth_zone_check = 0)");
        if (sabotage_missed)
            printf("  sabotage               NOT DONE: thread 0 stopped at operation %llu,\n"
                   "                         before %llu\n",
                   (unsigned long long)rd(&S.t[0].ops), (unsigned long long)S.sabotage_op);
        if (interrupted && ok)
            printf("  verdict                no violation, in the %.1f s it ran (interrupted)\n", secs);
        else if (sabotage_missed && ok)
            printf("  verdict                no violation, but --sabotage was never reached\n");
        else
            printf("  verdict                %s\n", ok ? "no violation" : "VIOLATION");
    }
    fflush(stdout);
    if (!ok) {
        fprintf(stderr,
                "labyrinth stress: VIOLATION: %s\n"
                "  seed %llu, thread %u, operation %llu of that thread (%llu operations in all)\n"
                "  reproduce: %s\n",
                S.why, (unsigned long long)seed, S.fail_thread, (unsigned long long)S.fail_op, (unsigned long long)ops,
                again);
    }
    tool_stats_emit(S.zone, "stress", secs, true);
    pthread_barrier_destroy(&S.b1);
    pthread_barrier_destroy(&S.b2);
    free(S.t);
    S.t = NULL;
    labyrinth_zone_destroy(S.zone);
    S.zone = NULL;
    tool_interrupt_restore();
    if (!ok)
        return TOOL_FAIL;
    return interrupted ? TOOL_INTERRUPTED(interrupted) : TOOL_OK;
}
