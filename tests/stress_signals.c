/*
 * stress_signals.c - threads and a signal storm against one zone.
 *
 * T threads allocate and free in every mode, order and quality, hand some
 * blocks to each other for cross-thread frees, while a per-thread timer
 * signal (tens of kHz) interrupts them - allocations in progress included -
 * and its handler allocates and frees ATOMIC pages on the same thread.  The
 * warden runs throughout.
 *
 * Ownership is checked exactly: every page has an owner byte set with an
 * atomic exchange when its block is handed out and cleared before it is
 * freed, so a page handed to two owners at once is caught on the spot.
 * Every owner also writes a pattern into its pages and verifies it before
 * freeing.  At the end: labyrinth_zone_check() == 0, nothing in use, the
 * page count conserved, no misuse reported.
 *
 * LB_STRESS_SECONDS sets the duration (default 2).
 */
#define _GNU_SOURCE
#include "check.h"
#include "region.h"
#include "zone.h"

#include <labyrinth.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define THREADS   4
#define HELD      48
#define STASH     8
#define MAX_ORDER 4

static struct labyrinth_zone *Z;
static size_t PG;
static uint8_t *owner;          /* one byte per page of region 0 */
static uintptr_t zlo, zhi;
static int stop; /* atomic: __atomic_load_n / __atomic_store_n */

static uint64_t own_violations, pattern_violations, quality_violations;
static uint64_t handler_allocs, handler_fails, signals;
static uint64_t misuse_seen;

static void count(uint64_t *c) { __atomic_fetch_add(c, 1, __ATOMIC_RELAXED); }

static void on_report(const struct labyrinth_report *r, void *arg)
{
    (void)arg;
    if (r->kind != LABYRINTH_REPORT_NOTICE)
        count(&misuse_seen);
}

static size_t page_index(const void *p)
{
    return ((uintptr_t)p - zlo) / PG;
}

/* Take ownership of every page of a block: each must have been unowned. */
static void own(void *p, unsigned order, uint64_t tag)
{
    if ((uintptr_t)p < zlo || (uintptr_t)p >= zhi) {
        count(&own_violations);
        return;
    }
    for (size_t i = 0; i < ((size_t)1 << order); i++)
        if (__atomic_exchange_n(&owner[page_index(p) + i], 1, __ATOMIC_ACQ_REL) != 0)
            count(&own_violations);
    for (size_t i = 0; i < ((size_t)1 << order); i++) {
        uint64_t *w = (uint64_t *)((char *)p + i * PG);
        w[0] = tag;
        w[PG / 8 - 1] = ~tag;
    }
}

static void disown(void *p, unsigned order, uint64_t tag)
{
    for (size_t i = 0; i < ((size_t)1 << order); i++) {
        uint64_t *w = (uint64_t *)((char *)p + i * PG);
        if (w[0] != tag || w[PG / 8 - 1] != ~tag)
            count(&pattern_violations);
    }
    for (size_t i = 0; i < ((size_t)1 << order); i++)
        if (__atomic_exchange_n(&owner[page_index(p) + i], 0, __ATOMIC_ACQ_REL) != 1)
            count(&own_violations);
}

/* ---- the signal handler: ATOMIC pages on the interrupted thread ------------- */

struct stash {
    void *p[STASH];
    uint64_t tag[STASH];
    unsigned n;
};
static __thread struct stash hstash; /* touched only by this thread's handler */
static __thread uint64_t hseq;

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    count(&signals);
    uint64_t tag = 0x5100000000000000ull | (uint64_t)labyrinth_thread_id() << 32 | hseq++;
    void *p = (hseq & 1) ? labyrinth_void_allocpage_gfpatomic_extra_quality(Z, LABYRINTH_QUALITY_ZERO)
                         : labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
    if (!p) {
        count(&handler_fails);
    } else {
        count(&handler_allocs);
        if ((hseq & 1) && ((uint64_t *)p)[1] != 0)
            count(&quality_violations);
        own(p, 0, tag);
        if (hstash.n == STASH) {
            disown(hstash.p[0], 0, hstash.tag[0]);
            if (labyrinth_free_pages(Z, hstash.p[0], 0) != 0)
                count(&own_violations);
            memmove(hstash.p, hstash.p + 1, sizeof(void *) * (STASH - 1));
            memmove(hstash.tag, hstash.tag + 1, sizeof(uint64_t) * (STASH - 1));
            hstash.n--;
        }
        hstash.p[hstash.n] = p;
        hstash.tag[hstash.n++] = tag;
    }
    errno = saved;
}

/* ---- cross-thread hand-off: a mutex-protected queue (normal context) -------- */

struct blk {
    void *p;
    unsigned order;
    uint64_t tag;
};
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static struct blk queue[1024];
static unsigned q_n;

static bool q_put(struct blk b)
{
    pthread_mutex_lock(&q_lock);
    bool ok = q_n < 1024;
    if (ok)
        queue[q_n++] = b;
    pthread_mutex_unlock(&q_lock);
    return ok;
}

static bool q_get(struct blk *b)
{
    pthread_mutex_lock(&q_lock);
    bool ok = q_n > 0;
    if (ok)
        *b = queue[--q_n];
    pthread_mutex_unlock(&q_lock);
    return ok;
}

/* ---- workers ---------------------------------------------------------------- */

struct worker {
    pthread_t th;
    unsigned seed;
    uint64_t allocs, frees, fails;
    timer_t timer;
};

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void free_blk(struct worker *w, struct blk b)
{
    disown(b.p, b.order, b.tag);
    if (labyrinth_free_pages(Z, b.p, b.order) != 0)
        count(&own_violations);
    w->frees++;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct blk held[HELD];
    unsigned nheld = 0;
    uint64_t seq = 0;

    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGUSR1;
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    REQUIRE(timer_create(CLOCK_MONOTONIC, &sev, &w->timer) == 0);
    struct itimerspec its = {{0, 40000}, {0, 40000}}; /* 25 kHz per thread */
    timer_settime(w->timer, 0, &its, NULL);

    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        unsigned r = rnd(&w->seed);
        if (nheld < HELD && (r & 3) != 0) {
            unsigned order = (r >> 4) % 8 == 0 ? 1 + (r >> 8) % MAX_ORDER : 0;
            unsigned m = (r >> 12) % 10;
            unsigned gfp = m < 6 ? LABYRINTH_GFP_ATOMIC : m < 9 ? LABYRINTH_GFP_NOWAIT : LABYRINTH_GFP_KERNEL;
            unsigned q = (r >> 16) % 4 == 0 ? LABYRINTH_QUALITY_ZERO
                       : (r >> 16) % 4 == 1 ? LABYRINTH_QUALITY_TRACK | LABYRINTH_QUALITY_POISON : 0;
            void *p = labyrinth_alloc_pages(Z, gfp, order, q);
            if (!p) {
                w->fails++;
                continue;
            }
            if ((q & LABYRINTH_QUALITY_ZERO) && ((uint64_t *)p)[3] != 0)
                count(&quality_violations);
            if ((q & LABYRINTH_QUALITY_POISON) && ((unsigned char *)p)[17] != 0x6b)
                count(&quality_violations);
            if ((uintptr_t)p & ((PG << order) - 1))
                count(&quality_violations); /* natural alignment */
            uint64_t tag = (uint64_t)(uintptr_t)w << 16 ^ (uint64_t)w->seed << 20 ^ seq++;
            own(p, order, tag);
            held[nheld++] = (struct blk){p, order, tag};
            w->allocs++;
        } else if (nheld) {
            unsigned i = (r >> 4) % nheld;
            struct blk b = held[i];
            held[i] = held[--nheld];
            if ((r >> 20) % 4 == 0 && q_put(b))
                continue; /* someone else frees it */
            free_blk(w, b);
        }
        struct blk b;
        if ((r >> 24) % 4 == 0 && q_get(&b))
            free_blk(w, b);
    }
    timer_delete(w->timer);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &s, NULL); /* no handler while we clean up */
    for (unsigned i = 0; i < nheld; i++)
        free_blk(w, held[i]);
    for (unsigned i = 0; i < hstash.n; i++) {
        disown(hstash.p[i], 0, hstash.tag[i]);
        if (labyrinth_free_pages(Z, hstash.p[i], 0) != 0)
            count(&own_violations);
    }
    hstash.n = 0;
    return NULL;
}

int main(void)
{
    unsigned seconds = 2;
    if (getenv("LB_STRESS_SECONDS"))
        seconds = (unsigned)atoi(getenv("LB_STRESS_SECONDS"));
    struct labyrinth_zone_config cfg = {0};
    cfg.name = "stress";
    cfg.pages = 2048;
    cfg.max_order = MAX_ORDER;
    cfg.reserve_pages = 96;
    cfg.warden_interval_us = 2000;
    Z = labyrinth_zone_create(&cfg);
    REQUIRE(Z);
    labyrinth_zone_set_report_handler(Z, on_report, NULL);
    PG = labyrinth_page_size();
    struct lb_region *r0 = lb_zone_of(Z)->map.r0;
    zlo = r0->lo;
    zhi = r0->lo + r0->bytes;
    owner = calloc((zhi - zlo) / PG, 1);
    REQUIRE(owner);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);

    struct worker w[THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < THREADS; i++) {
        w[i].seed = 0x9e3779b9u * (unsigned)(i + 1);
        REQUIRE(pthread_create(&w[i].th, NULL, worker_main, &w[i]) == 0);
    }
    sleep(seconds);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    uint64_t allocs = 0, frees = 0, fails = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(w[i].th, NULL);
        allocs += w[i].allocs;
        frees += w[i].frees;
        fails += w[i].fails;
    }
    struct blk b;
    while (q_get(&b)) {
        disown(b.p, b.order, b.tag);
        CHECK_EQ(labyrinth_free_pages(Z, b.p, b.order), 0);
        frees++;
    }

    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(Z, &st);
    printf("stress: %u s, %d threads: %llu allocs, %llu frees, %llu NULLs; %llu signals, "
           "%llu handler allocs, %llu handler NULLs; reserve low water %zu/%zu; "
           "warden runs %llu; max CAS retries %llu\n",
           seconds, THREADS, (unsigned long long)allocs, (unsigned long long)frees,
           (unsigned long long)fails, (unsigned long long)signals, (unsigned long long)handler_allocs,
           (unsigned long long)handler_fails, st.reserve_low_water, st.reserve_target_pages,
           (unsigned long long)st.warden_runs, (unsigned long long)st.max_retries);

    CHECK(allocs > 1000);
    CHECK(signals > 100); /* the storm really happened */
    CHECK(handler_allocs > 50);
    CHECK_EQ(own_violations, 0);
    CHECK_EQ(pattern_violations, 0);
    CHECK_EQ(quality_violations, 0);
    CHECK_EQ(misuse_seen, 0);
    CHECK_EQ(st.misuse_reports, 0);
    CHECK_EQ(st.in_use_pages, 0);
    CHECK_EQ(st.free_pages, st.total_pages);
    CHECK_EQ(labyrinth_zone_check(Z), 0);
    CHECK_EQ(st.retry_cap_hits, 0);
    for (size_t i = 0; i < (zhi - zlo) / PG; i++)
        if (owner[i])
            count(&own_violations);
    CHECK_EQ(own_violations, 0);
    labyrinth_zone_destroy(Z);
    free(owner);
    return check_done("stress_signals");
}
