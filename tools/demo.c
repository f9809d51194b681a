/*
 * demo.c - `labyrinth demo`: the seed's scenario.
 *
 * A fast context (a timer-signal handler, the user-space interrupt context,
 * or a busy poller) "receives packets": for each it takes a page with the
 * seed's macro, writes the packet into it and hands it over a lock-free
 * single-producer ring to a worker thread, which checks it and frees it.
 * Between signals the receiving thread runs its own NOWAIT traffic, so the
 * handler regularly interrupts labyrinth on the same thread.  The warden
 * keeps the reserve topped up.  At the end: totals, latency percentiles,
 * the reserve's low point, leaks, misuse and the zone's invariant check.
 */
#define _GNU_SOURCE
#include "tool.h"

#include <errno.h>
#include <sched.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ----------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t cycles(void)
{
#if defined(__x86_64__)
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ __volatile__("isb; mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    return now_ns();
#endif
}

bool tool_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    if (*end == 'k' && !end[1])
        v *= 1000;
    else if (*end == 'M' && !end[1])
        v *= 1000000;
    else if (*end)
        return false;
    *out = v;
    return true;
}

bool tool_parse_duration_us(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return false;
    double v = strtod(s, &end);
    if (errno || v < 0)
        return false;
    if (!*end || !strcmp(end, "s"))
        v *= 1e6;
    else if (!strcmp(end, "ms"))
        v *= 1e3;
    else if (strcmp(end, "us"))
        return false;
    *out = (uint64_t)v;
    return true;
}

/* ---- the ring: one producer (the fast context), one consumer (the worker) ---- */

#define RING_SIZE 8192u
struct ring {
    _Alignas(64) uint64_t head; /* written by the producer */
    _Alignas(64) uint64_t tail; /* written by the consumer */
    _Alignas(64) void *slot[RING_SIZE];
};

static bool ring_push(struct ring *r, void *p)
{
    uint64_t h = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
    /* Acquire: the consumer is done with the slot it freed (pairs with its
     * release store of tail). */
    if (h - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) == RING_SIZE)
        return false;
    r->slot[h % RING_SIZE] = p;
    /* Release: the slot (and the packet in the page) before the index. */
    __atomic_store_n(&r->head, h + 1, __ATOMIC_RELEASE);
    return true;
}

static void *ring_pop(struct ring *r)
{
    uint64_t t = __atomic_load_n(&r->tail, __ATOMIC_RELAXED);
    /* Acquire: pairs with ring_push's release. */
    if (t == __atomic_load_n(&r->head, __ATOMIC_ACQUIRE))
        return NULL;
    void *p = r->slot[t % RING_SIZE];
    __atomic_store_n(&r->tail, t + 1, __ATOMIC_RELEASE);
    return p;
}

/* ---- shared state -------------------------------------------------------------- */

#define HIST_CYCLES 65536u /* latency histogram, one bucket per cycle */

struct packet {
    uint64_t seq;
    uint32_t len;
    uint32_t sum;
};

static struct {
    struct labyrinth_zone *zone;
    struct ring ring;
    unsigned quality;
    unsigned burst;
    uint64_t worker_delay_ns;
    int stop_rx; /* __atomic loads and stores */
    int stop_worker;
    /* Counters: single writer each, read by the monitor (relaxed). */
    uint64_t rx_packets, rx_pages, rx_fail, rx_drop;
    uint64_t ticks;
    uint64_t wk_done, wk_bad, wk_free_err;
    uint64_t bg_allocs;
    uint64_t hist[HIST_CYCLES + 1];
    uint64_t seq;
} D;

static void bump(uint64_t *c, uint64_t n) { __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED); }
static uint64_t rd(const uint64_t *c) { return __atomic_load_n(c, __ATOMIC_RELAXED); }

/* One burst of packets, from the fast context (signal handler or poller). */
static void rx_burst(void)
{
    for (unsigned i = 0; i < D.burst; i++) {
        uint64_t t0 = cycles();
        void *page = labyrinth_void_allocpage_gfpatomic_extra_quality(D.zone, D.quality);
        uint64_t dt = cycles() - t0;
        bump(&D.hist[dt < HIST_CYCLES ? dt : HIST_CYCLES], 1);
        bump(&D.rx_packets, 1);
        if (!page) {
            bump(&D.rx_fail, 1); /* the reserve is spent: drop the packet */
            continue;
        }
        struct packet *pk = page;
        pk->seq = D.seq++;
        pk->len = 64 + (uint32_t)(pk->seq % 1400);
        pk->sum = (uint32_t)(pk->seq * 2654435761u);
        if (!ring_push(&D.ring, page)) {
            labyrinth_free_pages(D.zone, page, 0); /* the worker is behind */
            bump(&D.rx_drop, 1);
            continue;
        }
        bump(&D.rx_pages, 1);
    }
    bump(&D.ticks, 1);
}

static void on_tick(int sig)
{
    (void)sig;
    int saved = errno;
    if (!__atomic_load_n(&D.stop_rx, __ATOMIC_RELAXED))
        rx_burst();
    errno = saved;
}

/* ---- threads --------------------------------------------------------------------- */

struct rx_args {
    bool poll;
    uint64_t interval_ns;
    pid_t tid;
    volatile int ready;
};

static void *rx_main(void *arg)
{
    struct rx_args *a = arg;
    a->tid = (pid_t)syscall(SYS_gettid);
    __atomic_store_n(&a->ready, 1, __ATOMIC_RELEASE);
    uint64_t next = now_ns();
    while (!__atomic_load_n(&D.stop_rx, __ATOMIC_RELAXED)) {
        if (a->poll) {
            /* Busy poller: a burst every interval, spinning in between. */
            uint64_t t = now_ns();
            if (t >= next) {
                rx_burst();
                next += a->interval_ns;
                if (t > next + 100 * a->interval_ns)
                    next = t; /* we fell far behind: do not burst to catch up */
            }
        } else {
            /* Background work on the same thread: bursts of NOWAIT pages
             * taken and freed, which the timer signal keeps interrupting,
             * then a short sleep so the worker has a CPU. */
            for (int i = 0; i < 2000; i++) {
                void *p = labyrinth_alloc_pages(D.zone, LABYRINTH_GFP_NOWAIT, 0, 0);
                if (p) {
                    ((volatile char *)p)[0] = 1;
                    labyrinth_free_pages(D.zone, p, 0);
                    bump(&D.bg_allocs, 1);
                }
            }
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static void *worker_main(void *arg)
{
    (void)arg;
    uint64_t expect = 0;
    unsigned idle = 0;
    for (;;) {
        void *p = ring_pop(&D.ring);
        if (!p) {
            /* Stop only once the producer has stopped and the ring is
             * seen empty after that. */
            if (__atomic_load_n(&D.stop_worker, __ATOMIC_ACQUIRE) && !(p = ring_pop(&D.ring)))
                break;
            if (!p) {
                if (++idle > 64)
                    sched_yield(); /* share the CPU when there is nothing to do */
                continue;
            }
        }
        idle = 0;
        struct packet *pk = p;
        if (pk->sum != (uint32_t)(pk->seq * 2654435761u) || pk->seq < expect)
            bump(&D.wk_bad, 1);
        expect = pk->seq + 1;
        if (D.worker_delay_ns) {
            uint64_t until = now_ns() + D.worker_delay_ns;
            while (now_ns() < until) {
            }
        }
        if (labyrinth_free_pages(D.zone, p, 0) != 0)
            bump(&D.wk_free_err, 1);
        bump(&D.wk_done, 1);
    }
    return NULL;
}

/* ---- report ------------------------------------------------------------------------ */

static double cyc_per_ns;

static double calibrate(void)
{
    uint64_t t0 = now_ns(), c0 = cycles();
    while (now_ns() - t0 < 20000000u) {
    }
    uint64_t t1 = now_ns(), c1 = cycles();
    return (double)(c1 - c0) / (double)(t1 - t0);
}

static double hist_pct(const uint64_t *h, uint64_t total, double q)
{
    uint64_t want = (uint64_t)(q * (double)total), acc = 0;
    for (unsigned i = 0; i <= HIST_CYCLES; i++) {
        acc += h[i];
        if (acc > want || (acc == total && total))
            return i / cyc_per_ns;
    }
    return 0;
}

static uint64_t hist_max(const uint64_t *h)
{
    for (unsigned i = HIST_CYCLES + 1; i-- > 0;)
        if (h[i])
            return i;
    return 0;
}

static void status_line(bool tty, double secs, uint64_t prev_pk, double dt)
{
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(D.zone, &st);
    uint64_t h[HIST_CYCLES + 1], total = 0;
    for (unsigned i = 0; i <= HIST_CYCLES; i++)
        total += h[i] = rd(&D.hist[i]);
    char line[200];
    snprintf(line, sizeof line,
             "%5.1fs  %8.0f pkt/s  atomic failures %llu  reserve %zu/%zu  in flight %zu  p99 %.0f ns",
             secs, (double)(rd(&D.rx_packets) - prev_pk) / dt, (unsigned long long)rd(&D.rx_fail),
             st.reserve_free_pages, st.reserve_target_pages, st.in_use_pages,
             hist_pct(h, total, 0.99));
    if (tty)
        fprintf(stderr, "\r%-100s", line);
    else
        fprintf(stderr, "%s\n", line);
}

static void demo_usage(FILE *f)
{
    fprintf(f,
            "usage: labyrinth demo [options]\n"
            "  The seed's scenario: a fast context takes a page per packet with\n"
            "  labyrinth_void_allocpage_gfpatomic_extra_quality() and hands it to a\n"
            "  worker thread that checks and frees it.\n"
            "options:\n"
            "  --duration T      how long to run (e.g. 5s, 500ms; default 5s)\n"
            "  --mode M          fast context: 'signal' (a timer-signal handler, default)\n"
            "                    or 'poll' (a busy-polling thread)\n"
            "  --rate N          packets per second (default 200k)\n"
            "  --burst N         packets per signal or poll (default 32)\n"
            "  --pages N         zone size in pages (default 4096)\n"
            "  --reserve N       reserve pages only ATOMIC may take (default pages/16)\n"
            "  --worker-delay T  time the worker spends per packet (e.g. 2us; default 0)\n"
            "  --quality LIST    comma list of zero,poison,cl_align (default poison,cl_align)\n"
            "  --json            print the final report as JSON on stdout\n"
            "  --help            this text\n"
            "Exit status: 0 healthy (no leak, no misuse, invariants hold), 1 otherwise,\n"
            "2 bad usage.  Atomic failures are not unhealthy: they are GFP_ATOMIC's\n"
            "contract when the reserve is spent (try --worker-delay 20us).\n");
}

static bool parse_quality(const char *s, unsigned *q)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    *q = 0;
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "zero"))
            *q |= LABYRINTH_QUALITY_ZERO;
        else if (!strcmp(t, "poison"))
            *q |= LABYRINTH_QUALITY_POISON;
        else if (!strcmp(t, "cl_align"))
            *q |= LABYRINTH_QUALITY_CL_ALIGN;
        else if (!strcmp(t, "none"))
            ;
        else
            return false;
    }
    return true;
}

int tool_demo(int argc, char **argv)
{
    uint64_t duration_us = 5000000, rate = 200000, burst = 32, pages = 4096, reserve = 0, delay_us = 0;
    bool poll = false, json = false;
    unsigned quality = LABYRINTH_QUALITY_POISON | LABYRINTH_QUALITY_CL_ALIGN;
    static const struct option opts[] = {
        {"duration", required_argument, 0, 'd'}, {"mode", required_argument, 0, 'm'},
        {"rate", required_argument, 0, 'r'},     {"burst", required_argument, 0, 'b'},
        {"pages", required_argument, 0, 'p'},    {"reserve", required_argument, 0, 'R'},
        {"worker-delay", required_argument, 0, 'w'}, {"quality", required_argument, 0, 'q'},
        {"json", no_argument, 0, 'j'},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c, li = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, &li)) != -1) {
        bool ok = true;
        switch (c) {
        case 'd': ok = tool_parse_duration_us(optarg, &duration_us) && duration_us > 0; break;
        case 'm':
            ok = !strcmp(optarg, "signal") || !strcmp(optarg, "poll");
            poll = !strcmp(optarg, "poll");
            break;
        case 'r': ok = tool_parse_u64(optarg, &rate) && rate > 0 && rate <= 100000000; break;
        case 'b': ok = tool_parse_u64(optarg, &burst) && burst > 0 && burst <= 4096; break;
        case 'p': ok = tool_parse_u64(optarg, &pages) && pages >= 64 && pages <= (1u << 22); break;
        case 'R': ok = tool_parse_u64(optarg, &reserve); break;
        case 'w': ok = tool_parse_duration_us(optarg, &delay_us); break;
        case 'q': ok = parse_quality(optarg, &quality); break;
        case 'j': json = true; break;
        case 'h': demo_usage(stdout); return 0;
        default: demo_usage(stderr); return 2;
        }
        if (!ok) {
            fprintf(stderr, "labyrinth demo: bad value '%s' for --%s\n", optarg, opts[li].name);
            demo_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "labyrinth demo: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (reserve >= pages) {
        fprintf(stderr, "labyrinth demo: --reserve must be below --pages\n");
        return 2;
    }

    struct labyrinth_zone_config cfg = {0};
    cfg.name = "demo";
    cfg.pages = pages;
    cfg.reserve_pages = reserve;
    D.zone = labyrinth_zone_create(&cfg);
    if (!D.zone) {
        fprintf(stderr, "labyrinth demo: cannot create the zone: %s\n", labyrinth_strerror(errno));
        return 1;
    }
    D.quality = quality;
    D.burst = (unsigned)burst;
    D.worker_delay_ns = delay_us * 1000;
    cyc_per_ns = calibrate();
    bool tty = isatty(2);

    struct labyrinth_zone_stats st0;
    labyrinth_zone_stats(D.zone, &st0);
    fprintf(stderr,
            "labyrinth demo: zone of %zu pages (%zu KiB), reserve %zu, warden on; "
            "%s fast context, %llu packets/s in bursts of %llu, %.1f s\n",
            st0.total_pages, st0.total_pages * st0.page_size / 1024, st0.reserve_target_pages,
            poll ? "busy-poll" : "timer-signal", (unsigned long long)rate, (unsigned long long)burst,
            duration_us / 1e6);

    pthread_t rx, wk;
    struct rx_args ra = {.poll = poll, .interval_ns = burst * 1000000000ull / rate};
    if (ra.interval_ns < 1000)
        ra.interval_ns = 1000;
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGRTMIN);
    pthread_sigmask(SIG_BLOCK, &block, &old); /* only the rx thread takes it */
    pthread_create(&wk, NULL, worker_main, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_tick;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGRTMIN, &sa, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_create(&rx, NULL, rx_main, &ra);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    while (!__atomic_load_n(&ra.ready, __ATOMIC_ACQUIRE))
        usleep(100);

    timer_t timer = 0;
    if (!poll) {
        struct sigevent sev;
        memset(&sev, 0, sizeof sev);
        sev.sigev_notify = SIGEV_THREAD_ID;
        sev.sigev_signo = SIGRTMIN;
        sev._sigev_un._tid = ra.tid;
        if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0) {
            perror("labyrinth demo: timer_create");
            return 1;
        }
        struct itimerspec its = {{0, (long)ra.interval_ns}, {0, (long)ra.interval_ns}};
        timer_settime(timer, 0, &its, NULL);
    }

    uint64_t t_start = now_ns(), t_end = t_start + duration_us * 1000, prev_t = t_start, prev_pk = 0;
    while (now_ns() < t_end) {
        uint64_t left = (t_end - now_ns()) / 1000;
        usleep((useconds_t)(left < 500000 ? left : 500000));
        uint64_t t = now_ns();
        status_line(tty, (t - t_start) / 1e9, prev_pk, (t - prev_t) / 1e9);
        prev_t = t;
        prev_pk = rd(&D.rx_packets);
    }
    if (tty)
        fprintf(stderr, "\n");
    if (!poll)
        timer_delete(timer);
    __atomic_store_n(&D.stop_rx, 1, __ATOMIC_RELAXED);
    pthread_join(rx, NULL);
    __atomic_store_n(&D.stop_worker, 1, __ATOMIC_RELEASE);
    pthread_join(wk, NULL);
    double secs = (now_ns() - t_start) / 1e9;

    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(D.zone, &st);
    long violations = labyrinth_zone_check(D.zone);
    long leaks = labyrinth_zone_for_each_in_use(D.zone, NULL, NULL);
    uint64_t total = 0;
    for (unsigned i = 0; i <= HIST_CYCLES; i++)
        total += D.hist[i];
    double p50 = hist_pct(D.hist, total, 0.50), p99 = hist_pct(D.hist, total, 0.99),
           p999 = hist_pct(D.hist, total, 0.999), p9999 = hist_pct(D.hist, total, 0.9999),
           pmax = hist_max(D.hist) / cyc_per_ns;
    bool healthy = violations == 0 && leaks == 0 && st.misuse_reports == 0 && D.wk_bad == 0 &&
                   D.wk_free_err == 0;

    if (json) {
        printf("{\"seconds\":%.3f,\"mode\":\"%s\",\"packets\":%llu,\"pages_served\":%llu,"
               "\"atomic_failures\":%llu,\"ring_drops\":%llu,\"worker_frees\":%llu,"
               "\"corrupt_packets\":%llu,\"signals\":%llu,\"background_allocs\":%llu,"
               "\"latency_ns\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"p9999\":%.1f,\"max\":%.1f},"
               "\"reserve\":{\"target\":%zu,\"now\":%zu,\"low_water\":%zu},"
               "\"atomic_reserve_allocs\":%llu,\"warden_runs\":%llu,\"leaks\":%ld,"
               "\"misuse_reports\":%llu,\"check_violations\":%ld,\"healthy\":%s}\n",
               secs, poll ? "poll" : "signal", (unsigned long long)D.rx_packets,
               (unsigned long long)D.rx_pages, (unsigned long long)D.rx_fail,
               (unsigned long long)D.rx_drop, (unsigned long long)D.wk_done,
               (unsigned long long)D.wk_bad, (unsigned long long)D.ticks,
               (unsigned long long)D.bg_allocs, p50, p99, p999, p9999, pmax, st.reserve_target_pages,
               st.reserve_free_pages, st.reserve_low_water, st.atomic_reserve_allocs, st.warden_runs,
               leaks, st.misuse_reports, violations, healthy ? "true" : "false");
    } else {
        printf("\nlabyrinth demo report (%.1f s, %s fast context)\n", secs,
               poll ? "busy-poll" : "timer-signal");
        printf("  packets received       %12llu  (%.0f/s)\n", (unsigned long long)D.rx_packets,
               D.rx_packets / secs);
        printf("  pages served (macro)   %12llu\n", (unsigned long long)(D.rx_packets - D.rx_fail));
        printf("  atomic failures        %12llu  (%.3f%% of packets dropped: reserve spent)\n",
               (unsigned long long)D.rx_fail, D.rx_packets ? 100.0 * D.rx_fail / D.rx_packets : 0.0);
        printf("  ring drops             %12llu  (worker behind; page freed at once)\n",
               (unsigned long long)D.rx_drop);
        printf("  processed and freed    %12llu  by the worker thread\n", (unsigned long long)D.wk_done);
        printf("  corrupt packets        %12llu\n", (unsigned long long)D.wk_bad);
        if (!poll)
            printf("  timer signals          %12llu  (handler interrupting %llu background NOWAIT pairs)\n",
                   (unsigned long long)D.ticks, (unsigned long long)D.bg_allocs);
        printf("  allocation latency     p50 %.0f ns  p99 %.0f ns  p99.9 %.0f ns  p99.99 %.0f ns  max %.0f ns\n",
               p50, p99, p999, p9999, pmax);
        printf("  reserve                %zu of %zu pages now, low point %zu; %llu ATOMIC pages from it\n",
               st.reserve_free_pages, st.reserve_target_pages, st.reserve_low_water,
               (unsigned long long)st.atomic_reserve_allocs);
        printf("  warden                 %llu runs, %llu pages moved\n", (unsigned long long)st.warden_runs,
               (unsigned long long)st.warden_pages_moved);
        printf("  leaks                  %s\n", leaks ? "SOME (see above)" : "none");
        printf("  misuse reports         %llu\n", (unsigned long long)st.misuse_reports);
        printf("  invariant check        %s\n", violations ? "VIOLATED" : "ok (labyrinth_zone_check = 0)");
        printf("  verdict                %s\n", healthy ? "healthy" : "UNHEALTHY");
    }
    labyrinth_zone_destroy(D.zone);
    return healthy ? 0 : 1;
}
