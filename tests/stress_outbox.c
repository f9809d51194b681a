/*
 * stress_outbox.c - pages freed by a thread that then goes idle reach their
 * owner (docs/reliability.md, KB52; src/remote.h, "Stealing idle outboxes").
 *
 * A remote free appends {page, generation} to a batch in the freer's outbox,
 * pushed to the owner when full.  A freer that went idle with a partial
 * batch (a thread blocked in its own event loop) stranded it: the owner got
 * NULL from every ATOMIC allocation while labyrinth_zone_stats counted the
 * pages in flight (the review's tests/open/outbox_starve.c, now this test).
 * Now the warden takes an idle level's outboxes under an asymmetric Dekker
 * guard, and a KERNEL allocation waiting in a zone with no warden does it
 * itself.  Here:
 *
 *   idle     (the finding) the owner holds every page; a worker frees 63 of
 *            them (less than one batch of 64) and blocks on a condition
 *            variable; the owner's ATOMIC allocations must get all 63 back
 *            while the worker is still blocked (polled for up to 20 s: no
 *            time is asserted, only that they come);
 *   nowarden the same in a zone with no warden: a KERNEL allocation (which
 *            may sleep, and so may fence) must get a page within its wait;
 *   seccomp  (the review of the fix) in a child under a seccomp filter that
 *            kills the process on membarrier(2), as allow-list sandboxes
 *            do: the warden must not call it (steals off, the pages wait
 *            for the worker as before) and the child must live;
 *   torture  the owner hands pages to freer threads through rings; freers
 *            free them in bursts, go idle for random times, take signals
 *            whose handler frees pages of its own stash (another level, so
 *            another guard), and exit (their release waits for a steal
 *            under way) while new ones start; the warden runs every 200 us
 *            and steals whatever waits.  An ownership table catches a page
 *            handed out while someone holds it, a stamp in each page
 *            catches a page rewritten under its holder, and at the end every
 *            page must be free, the zone consistent, no report made, and
 *            the steal path taken (the white-box counters: a run that never
 *            stole would pass vacuously).
 */
#define _GNU_SOURCE
#include "check.h"
#include "zone.h"

#include <errno.h>
#include <labyrinth.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_long reports;
static void count_report(const struct labyrinth_report *r, void *arg)
{
    (void)arg;
    atomic_fetch_add(&reports, 1);
    static const char pre[] = "report: ";
    if (write(2, pre, sizeof pre - 1) < 0 || write(2, r->message, strlen(r->message)) < 0 || write(2, "\n", 1) < 0)
        return;
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* ---- idle and nowarden ---------------------------------------------------- */

#define IDLE_PAGES 512
#define IDLE_FREED 63

static struct labyrinth_zone *Z;
static void *held[IDLE_PAGES + IDLE_FREED + 8];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int phase;

static void *idle_worker(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < IDLE_FREED; i++)
        CHECK_EQ(labyrinth_free_pages(Z, held[i], 0), 0);
    pthread_mutex_lock(&mu);
    phase = 1;
    pthread_cond_broadcast(&cv);
    while (phase != 2) /* idle, alive: an event loop waiting for work */
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* Take every page of Z: until NULL, and again while the statistics
 * still count free pages (a page in the warden's hands, moving between
 * the buddy and the depot, is missed by one NULL: docs/design.md). */
static size_t drain_all(size_t max)
{
    size_t n = 0;
    uint64_t t0 = now_ns();
    for (;;) {
        while (n < max && (held[n] = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0)))
            n++;
        struct labyrinth_zone_stats s;
        if (n >= max || labyrinth_zone_stats(Z, &s) != 0 || s.free_pages == 0 || now_ns() - t0 > 5000000000ull)
            return n;
        usleep(1000);
    }
}

static void idle_case(bool warden)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = warden ? "idle" : "idle-nowarden";
    c.pages = IDLE_PAGES;
    c.magazine_pages = 64;
    c.max_pages = IDLE_PAGES; /* no growth: the KERNEL caller must wait */
    c.wait_timeout_ms = 20000;
    c.flags = warden ? 0 : LABYRINTH_ZONE_NO_WARDEN;
    Z = labyrinth_zone_create(&c);
    REQUIRE(Z != NULL);
    labyrinth_zone_set_report_handler(Z, count_report, NULL);
    size_t n = drain_all(IDLE_PAGES);
    REQUIRE(n == IDLE_PAGES);
    phase = 0;
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, idle_worker, NULL) == 0);
    pthread_mutex_lock(&mu);
    while (phase != 1)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);

    size_t got = 0;
    unsigned long tries = 0;
    uint64_t t0 = now_ns();
    if (warden) {
        /* The worker stays blocked: only a steal can bring the pages. */
        while (got < IDLE_FREED && now_ns() - t0 < 20000000000ull) {
            void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
            tries++;
            if (p)
                held[n + got++] = p;
            else
                usleep(500);
        }
        CHECK_EQ(got, IDLE_FREED);
    } else {
        /* Each KERNEL allocation may wait (wait_timeout_ms, 20 s): it
         * must get a page, all 63 of them, while the worker blocks. */
        while (got < IDLE_FREED) {
            void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_KERNEL, 0, 0);
            tries++;
            CHECK(p != NULL);
            if (!p)
                break;
            held[n + got++] = p;
        }
        CHECK_EQ(got, IDLE_FREED);
    }
    struct labyrinth_zone_stats s;
    REQUIRE(labyrinth_zone_stats(Z, &s) == 0);
    printf("%s: the worker freed %d pages and blocks; the owner got %zu back in %.1f ms (%lu calls) "
           "while it blocked; in flight now %llu\n",
           c.name, IDLE_FREED, got, (double)(now_ns() - t0) / 1e6, tries, (unsigned long long)s.in_flight_pages);
    pthread_mutex_lock(&mu);
    phase = 2;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(t, NULL);
    for (size_t i = IDLE_FREED; i < n + got; i++)
        CHECK_EQ(labyrinth_free_pages(Z, held[i], 0), 0);
    CHECK_EQ(labyrinth_zone_check(Z), 0);
    REQUIRE(labyrinth_zone_stats(Z, &s) == 0);
    if (warden)
        CHECK_EQ(s.free_pages, IDLE_PAGES);
    CHECK_EQ(atomic_load(&reports), 0);
    labyrinth_zone_destroy(Z);
}

/* ---- seccomp ------------------------------------------------------------- */

#if defined(__x86_64__)
#define T_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define T_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

static void seccomp_case(void)
{
#if defined(T_AUDIT_ARCH) && defined(__NR_membarrier)
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, T_AUDIT_ARCH, 1, 0),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
            _exit(77);
        struct labyrinth_zone_config c;
        memset(&c, 0, sizeof c);
        c.name = "idle-seccomp";
        c.pages = IDLE_PAGES;
        c.max_pages = IDLE_PAGES; /* no growth: only the worker's pages can come */
        c.magazine_pages = 64;
        c.warden_interval_us = 200;
        Z = labyrinth_zone_create(&c);
        if (!Z)
            _exit(2);
        size_t n = drain_all(IDLE_PAGES);
        if (n != IDLE_PAGES)
            _exit(3);
        phase = 0;
        pthread_t t;
        if (pthread_create(&t, NULL, idle_worker, NULL))
            _exit(2);
        pthread_mutex_lock(&mu);
        while (phase != 1)
            pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
        /* 300 ms of starving allocations: the warden runs about 1,000
         * times, each of which would have stolen (and died) before. */
        size_t got = 0;
        uint64_t t0 = now_ns();
        while (now_ns() - t0 < 300000000ull && n + got < IDLE_PAGES + IDLE_FREED) {
            void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
            if (p)
                held[n + got++] = p;
            else
                usleep(500);
        }
        bool off = lb_load_rlx_u32(&lb_zone_of_live(Z)->cache.steal_off) != 0;
        unsigned long steals = (unsigned long)lb_load_rlx_u64(&lb_zone_of_live(Z)->cache.outbox_steals);
        pthread_mutex_lock(&mu);
        phase = 2;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
        pthread_join(t, NULL);
        /* The worker's exit flushed its batch: the pages come back now. */
        size_t after = 0;
        void *p;
        while (n + got + after < IDLE_PAGES + IDLE_FREED + 8 &&
               (p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0)))
            held[n + got + after++] = p;
        printf("seccomp: under a filter that kills on membarrier: the child lives; %zu pages while the worker "
               "blocked, %zu after it exited; steals %lu, steals off %d\n",
               got, after, steals, off);
        for (size_t i = IDLE_FREED; i < n + got + after; i++)
            labyrinth_free_pages(Z, held[i], 0);
        int bad = labyrinth_zone_check(Z) != 0 || steals != 0 || !off || got + after != IDLE_FREED;
        labyrinth_zone_destroy(Z);
        fflush(stdout);
        _exit(bad ? 1 : 0);
    }
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
        printf("seccomp: SKIPPED (no seccomp filter could be installed here)\n");
        return;
    }
    CHECK(WIFEXITED(st));
    if (WIFSIGNALED(st))
        printf("seccomp: the child died of signal %d (SIGSYS = %d: membarrier was called)\n", WTERMSIG(st),
               SIGSYS);
    CHECK_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
#else
    printf("seccomp: SKIPPED (no seccomp architecture constant or no membarrier here)\n");
#endif
}

/* ---- torture ------------------------------------------------------------- */

#define T_PAGES   1024
#define T_FREERS  3
#define T_RING    256
#define T_STASH   8

static struct labyrinth_zone *TZ;
static uintptr_t tbase;
static size_t tpage;
static atomic_uchar owned[T_PAGES]; /* 1 while someone holds the page */
static atomic_ulong twice, stamp_bad, handler_frees;

struct freer {
    pthread_t t;
    _Atomic(void *) ring[T_RING]; /* the owner's pages for this freer */
    atomic_uint head, tail;       /* owner writes head, freer tail    */
    _Atomic(void *) stash[T_STASH]; /* pages the signal handler frees */
    atomic_int alive, quit;
    unsigned seed;
};
static struct freer F[T_FREERS];

static size_t page_index(const void *p)
{
    return ((uintptr_t)p - tbase) / tpage;
}

/* Give up ownership, then free (the other order would let the owner take
 * the page back before we cleared the flag: a false alarm). */
static int give_back(void *p)
{
    size_t i = page_index(p);
    if (*(volatile uint64_t *)p != ((uint64_t)(uintptr_t)p ^ 0x5a5a5a5a5a5a5a5aull))
        atomic_fetch_add(&stamp_bad, 1);
    atomic_store(&owned[i], 0);
    return labyrinth_free_pages(TZ, p, 0);
}

static void take(void *p)
{
    size_t i = page_index(p);
    if (i >= T_PAGES || atomic_exchange(&owned[i], 1) != 0)
        atomic_fetch_add(&twice, 1);
    *(volatile uint64_t *)p = (uint64_t)(uintptr_t)p ^ 0x5a5a5a5a5a5a5a5aull;
}

static __thread struct freer *self;
static void on_usr1(int sig)
{
    (void)sig;
    struct freer *f = self;
    if (!f)
        return;
    for (unsigned k = 0; k < T_STASH; k++) {
        void *p = atomic_exchange(&f->stash[k], NULL);
        if (p) {
            if (give_back(p) != 0)
                atomic_fetch_add(&twice, 1000000); /* a valid free refused */
            atomic_fetch_add(&handler_frees, 1);
            return;
        }
    }
}

static void *freer_main(void *arg)
{
    struct freer *f = arg;
    self = f;
    unsigned seed = f->seed;
    while (!atomic_load(&f->quit)) {
        /* A burst: free what the owner gave us (some into the stash). */
        unsigned burst = 1 + rand_r(&seed) % 80, done = 0;
        while (done < burst) {
            unsigned tl = atomic_load_explicit(&f->tail, memory_order_relaxed);
            if (tl == atomic_load_explicit(&f->head, memory_order_acquire))
                break;
            void *p = atomic_load_explicit(&f->ring[tl % T_RING], memory_order_relaxed);
            atomic_store_explicit(&f->tail, tl + 1, memory_order_release);
            if (rand_r(&seed) % 8 == 0) {
                unsigned k = rand_r(&seed) % T_STASH;
                void *none = NULL;
                if (atomic_compare_exchange_strong(&f->stash[k], &none, p)) {
                    done++;
                    continue;
                }
            }
            if (give_back(p) != 0)
                atomic_fetch_add(&twice, 1000000);
            done++;
        }
        /* Then idle: long enough, often, for the warden to steal. */
        unsigned r = rand_r(&seed) % 16;
        usleep(r < 4 ? 0 : r < 12 ? 300 + rand_r(&seed) % 700 : 2000 + rand_r(&seed) % 3000);
        if (rand_r(&seed) % 64 == 0)
            break; /* exit: the thread's release flushes, or waits for a steal */
    }
    f->seed = seed;
    /* Leave nothing behind: the ring's rest and the stash. */
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    for (unsigned k = 0; k < T_STASH; k++) {
        void *p = atomic_exchange(&f->stash[k], NULL);
        if (p && give_back(p) != 0)
            atomic_fetch_add(&twice, 1000000);
    }
    unsigned tl = atomic_load(&f->tail);
    while (tl != atomic_load_explicit(&f->head, memory_order_acquire)) {
        void *p = atomic_load(&f->ring[tl % T_RING]);
        atomic_store_explicit(&f->tail, ++tl, memory_order_release);
        if (give_back(p) != 0)
            atomic_fetch_add(&twice, 1000000);
    }
    self = NULL;
    atomic_store(&f->alive, 0);
    return NULL;
}

static void start_freer(struct freer *f)
{
    atomic_store(&f->quit, 0);
    atomic_store(&f->alive, 1);
    REQUIRE(pthread_create(&f->t, NULL, freer_main, f) == 0);
}

static void torture(double seconds)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "outbox-torture";
    c.pages = T_PAGES;
    c.magazine_pages = 64;
    c.warden_interval_us = 200;
    TZ = labyrinth_zone_create(&c);
    REQUIRE(TZ != NULL);
    labyrinth_zone_set_report_handler(TZ, count_report, NULL);
    struct labyrinth_region_info ri;
    REQUIRE(labyrinth_zone_region_info(TZ, 0, &ri) == 0);
    tbase = (uintptr_t)ri.start;
    tpage = labyrinth_page_size();
    REQUIRE(ri.pages == T_PAGES);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);

    unsigned seed = 12345;
    for (int i = 0; i < T_FREERS; i++) {
        F[i].seed = 1000u + (unsigned)i;
        start_freer(&F[i]);
    }
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    unsigned long allocs = 0, nulls = 0, restarts = 0, signals = 0;
    while (now_ns() < end) {
        int i = (int)(rand_r(&seed) % T_FREERS);
        struct freer *f = &F[i];
        if (!atomic_load(&f->alive)) {
            pthread_join(f->t, NULL);
            restarts++;
            start_freer(f);
        }
        unsigned want = 1 + rand_r(&seed) % 48;
        for (unsigned k = 0; k < want; k++) {
            unsigned h = atomic_load_explicit(&f->head, memory_order_relaxed);
            if (h - atomic_load_explicit(&f->tail, memory_order_acquire) >= T_RING)
                break;
            void *p = labyrinth_alloc_pages(TZ, LABYRINTH_GFP_ATOMIC, 0, 0);
            if (!p) {
                nulls++;
                break;
            }
            allocs++;
            take(p);
            atomic_store_explicit(&f->ring[h % T_RING], p, memory_order_relaxed);
            atomic_store_explicit(&f->head, h + 1, memory_order_release);
        }
        if (rand_r(&seed) % 4 == 0 && atomic_load(&f->alive)) {
            pthread_kill(f->t, SIGUSR1); /* a handler free, maybe inside a guard */
            signals++;
        }
        if (rand_r(&seed) % 8 == 0)
            usleep(100);
    }
    struct lb_zone *z = lb_zone_of_live(TZ);
    /* The owner stops feeding: the freers idle with what they hold in
     * their outboxes, which the warden must take (a short run may not
     * have stolen yet; wait up to 5 s for one). */
    uint64_t w0 = now_ns();
    while (!lb_load_rlx_u64(&z->cache.outbox_steals) && !lb_load_rlx_u32(&z->cache.steal_off) &&
           now_ns() - w0 < 5000000000ull)
        usleep(1000);
    for (int i = 0; i < T_FREERS; i++) {
        atomic_store(&F[i].quit, 1);
        pthread_join(F[i].t, NULL);
        /* A freer that left on its own just before (not restarted: the
         * loop ended) may have missed pages pushed after its last look:
         * the owner frees those itself. */
        unsigned tl = atomic_load(&F[i].tail);
        while (tl != atomic_load(&F[i].head)) {
            void *p = atomic_load(&F[i].ring[tl % T_RING]);
            atomic_store(&F[i].tail, ++tl);
            if (give_back(p) != 0)
                atomic_fetch_add(&twice, 1000000);
        }
    }
    unsigned long steals = (unsigned long)lb_load_rlx_u64(&z->cache.outbox_steals);
    unsigned long dodges = (unsigned long)lb_load_rlx_u64(&z->cache.steal_dodges);
    bool off = lb_load_rlx_u32(&z->cache.steal_off) != 0;
    CHECK_EQ(atomic_load(&twice), 0);
    CHECK_EQ(atomic_load(&stamp_bad), 0);
    CHECK_EQ(labyrinth_zone_check(TZ), 0);
    struct labyrinth_zone_stats s;
    REQUIRE(labyrinth_zone_stats(TZ, &s) == 0);
    CHECK_EQ(s.free_pages, T_PAGES);
    CHECK_EQ(atomic_load(&reports), 0);
    /* Not vacuous: the warden took idle outboxes (unless this machine has
     * no membarrier: then the test says so and the rest still holds). */
    if (off)
        printf("torture: NOTE: membarrier(2) is not available here: no steal was possible\n");
    else if (seconds >= 1.0)
        CHECK(steals > 0); /* about 100,000 in 3 s here; a run of 0.05 s may make none */
    else if (!steals)
        printf("torture: NOTE: no steal in a run this short (the idle case above made them)\n");
    static void *dr[T_PAGES];
    size_t drained = 0;
    void *p;
    while (drained < T_PAGES && (p = labyrinth_alloc_pages(TZ, LABYRINTH_GFP_ATOMIC, 0, 0)))
        dr[drained++] = p;
    printf("torture: %.1f s, %lu allocations, %lu NULL, %lu freer exits, %lu signals (%lu handler frees), "
           "%lu pages stolen from idle outboxes, %lu frees made without the outbox during a steal; "
           "handed out twice %lu, stamps bad %lu; drain after: %zu of %d pages\n",
           (double)(now_ns() - t0) / 1e9, allocs, nulls, restarts, signals,
           (unsigned long)atomic_load(&handler_frees), steals, dodges,
           (unsigned long)atomic_load(&twice), (unsigned long)atomic_load(&stamp_bad), drained, T_PAGES);
    /* The drain above ran from one thread: everything must be reachable
     * from it (nothing stranded in any outbox). */
    CHECK_EQ(drained, T_PAGES);
    for (size_t i = 0; i < drained; i++)
        CHECK_EQ(labyrinth_free_pages(TZ, dr[i], 0), 0);
    labyrinth_zone_destroy(TZ);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    seccomp_case(); /* first: the child is forked before any thread runs */
    idle_case(true);
    idle_case(false);
    torture(secs);
    return check_done("stress_outbox");
}
