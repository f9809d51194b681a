/*
 * demo.c - `labyrinth demo`: the seed's scenario.
 *
 * A fast context (a timer-signal handler, the user-space interrupt context,
 * or a busy poller pinned to a core) "receives packets": for each it takes
 * a page with the seed's macro, writes the packet into it and hands it over
 * a lock-free single-producer ring to a worker thread, which checks it and
 * frees it.  Between signals the receiving thread runs its own NOWAIT
 * traffic, so the handler regularly interrupts labyrinth on the same
 * thread.  The warden keeps the reserve topped up.  The main thread samples
 * the zone every 100 ms (the live status line, the plot's time series).  At
 * the end: totals, latency percentiles, the reserve's low point, leaks,
 * misuse and the zone's invariant check.
 */
#define _GNU_SOURCE
#include "tool.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- the ring: one producer (the fast context), one consumer (the worker) ---- */

#define RING_SIZE 65536u
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
    uint64_t t0_ns;                    /* __atomic: start of the run, the time
                                          series' zero                       */
    uint64_t paused_from_ns, paused_to_ns; /* __atomic: the pause as it was,
                                          relative to t0 (0: not yet)        */
    uint64_t pause_at_ns, pause_len_ns; /* worker pause, relative to t0      */
    int stop_rx; /* __atomic loads and stores */
    int stop_worker;
    int worker_paused;
    /* Counters: single writer each, read by the monitor (relaxed). */
    uint64_t rx_packets, rx_pages, rx_fail, rx_drop;
    uint64_t ticks;
    uint64_t wk_done, wk_bad, wk_free_err;
    uint64_t wk_undelayed;   /* freed at the end without --worker-delay */
    uint64_t drain_until_ns; /* __atomic: the delay holds until then once stopped */
    uint64_t bg_allocs;
    /* Written by the fast context.  In cycles: hist, the allocator's call
     * alone for each page handed out; hist_fail, the same for each NULL;
     * hist_burst, a whole burst (its allocations, packet writes and ring
     * pushes: the handler's own work).  In ns: hist_late, how late each
     * burst started after its scheduled time (the timer's and the
     * machine's delay, not the allocator's). */
    struct tool_hist hist, hist_fail, hist_burst, hist_late;
    uint64_t timer_t0_ns, interval_ns; /* __atomic: the timer's schedule */
    uint64_t seq;
} D;

static void bump(uint64_t *c, uint64_t n)
{
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
static uint64_t rd(const uint64_t *c) { return __atomic_load_n(c, __ATOMIC_RELAXED); }

/* One burst of packets, from the fast context (signal handler or poller). */
static void rx_burst(void)
{
    uint64_t b0 = tool_cycles();
    for (unsigned i = 0; i < D.burst; i++) {
        uint64_t t0 = tool_cycles();
        void *page = labyrinth_void_allocpage_gfpatomic_extra_quality(D.zone, D.quality);
        uint64_t dt = tool_cycles() - t0;
        tool_hist_add(page ? &D.hist : &D.hist_fail, (int64_t)dt < 0 ? 0 : dt);
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
    uint64_t bd = tool_cycles() - b0;
    tool_hist_add(&D.hist_burst, (int64_t)bd < 0 ? 0 : bd);
    bump(&D.ticks, 1);
}

static void on_tick(int sig)
{
    (void)sig;
    int saved = errno;
    /* How long after its latest scheduled expiry this signal came (the
     * expiries are t0 + k * interval; a later one may have merged into
     * this signal, so the lateness is taken modulo the interval). */
    uint64_t t0 = __atomic_load_n(&D.timer_t0_ns, __ATOMIC_RELAXED), iv = __atomic_load_n(&D.interval_ns, __ATOMIC_RELAXED);
    uint64_t now = tool_now_ns();
    if (t0 && iv && now >= t0 + iv)
        tool_hist_add(&D.hist_late, (now - t0) % iv);
    if (!__atomic_load_n(&D.stop_rx, __ATOMIC_RELAXED))
        rx_burst();
    errno = saved;
}

/* ---- threads --------------------------------------------------------------------- */

struct rx_args {
    bool poll;
    int cpu; /* pin to this CPU, or -1 */
    uint64_t interval_ns;
    pid_t tid;
    int ready;   /* __atomic */
    int pinned;  /* 1 pinned, 0 not asked, -1 failed */
    long nivcsw; /* involuntary context switches of the thread, at its end */
};

static void *rx_main(void *arg)
{
    struct rx_args *a = arg;
    a->tid = (pid_t)syscall(SYS_gettid);
    if (a->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(a->cpu, &set);
        a->pinned = pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0 ? 1 : -1;
    }
    __atomic_store_n(&a->ready, 1, __ATOMIC_RELEASE);
    uint64_t next = tool_now_ns();
    while (!__atomic_load_n(&D.stop_rx, __ATOMIC_RELAXED)) {
        if (a->poll) {
            /* Busy poller: a burst every interval, spinning in between. */
            uint64_t t = tool_now_ns();
            if (t >= next) {
                tool_hist_add(&D.hist_late, t - next);
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
    struct rusage ru;
    a->nivcsw = getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nivcsw : -1;
    return NULL;
}

static void *worker_main(void *arg)
{
    (void)arg;
    uint64_t expect = 0;
    unsigned idle = 0;
    for (;;) {
        if (D.pause_len_ns) {
            /* --pause-worker: stop taking packets for a while. */
            uint64_t t = tool_now_ns() - __atomic_load_n(&D.t0_ns, __ATOMIC_ACQUIRE);
            if (t >= D.pause_at_ns && t < D.pause_at_ns + D.pause_len_ns &&
                !__atomic_load_n(&D.stop_worker, __ATOMIC_ACQUIRE)) {
                if (!__atomic_load_n(&D.paused_from_ns, __ATOMIC_RELAXED))
                    __atomic_store_n(&D.paused_from_ns, t, __ATOMIC_RELAXED);
                __atomic_store_n(&D.worker_paused, 1, __ATOMIC_RELAXED);
                tool_sleep_us(1000);
                continue;
            }
            if (__atomic_load_n(&D.worker_paused, __ATOMIC_RELAXED)) {
                __atomic_store_n(&D.paused_to_ns, t, __ATOMIC_RELAXED);
                __atomic_store_n(&D.worker_paused, 0, __ATOMIC_RELAXED);
            }
        }
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
            /* After the run the delay holds only until drain_until_ns (set
             * before stop_worker): the rest of the queue is freed at once. */
            uint64_t now = tool_now_ns();
            if (__atomic_load_n(&D.stop_worker, __ATOMIC_ACQUIRE) &&
                now >= __atomic_load_n(&D.drain_until_ns, __ATOMIC_RELAXED)) {
                bump(&D.wk_undelayed, 1);
            } else {
                uint64_t until = now + D.worker_delay_ns;
                while (tool_now_ns() < until) {
                }
            }
        }
        if (labyrinth_free_pages(D.zone, p, 0) != 0)
            bump(&D.wk_free_err, 1);
        bump(&D.wk_done, 1);
    }
    return NULL;
}

/* ---- the time series ---------------------------------------------------------------- */

#define SAMPLE_US 100000u
#define DEMO_MAX_US 3600000000ull /* an hour: 36,000 samples of the timeline */

struct sample {
    double t, pps;
    uint64_t fails;       /* atomic failures in the interval */
    size_t reserve, target, in_use, depot;
    double p50, p99, max; /* ns, allocations in the interval */
    int paused;
};

static double cyc_per_ns;

static double cyc_ns(uint64_t c) { return (double)c / cyc_per_ns; }

/* ---- usage --------------------------------------------------------------------------- */

static void demo_usage(FILE *f)
{
    fprintf(f,
            "usage: labyrinth demo [options]\n"
            "  The seed's scenario (the use the brief labyrinth was written from\n"
            "  describes): a fast context takes a page per packet with\n"
            "  labyrinth_void_allocpage_gfpatomic_extra_quality() and hands it over a\n"
            "  lock-free ring to a worker thread that checks and frees it; the warden\n"
            "  keeps the reserve topped up.  A live status line, fitted to the terminal:\n"
            "  packets/s, atomic failures since the last line, the reserve's level and\n"
            "  its low point since the last line, pages in use, p99 allocation latency;\n"
            "  then a report.\n"
            "options:\n"
            "  --duration T      how long to run, 1ms to 1h (e.g. 500ms, 2m; default 10s)\n"
            "  --mode M          fast context: 'signal' (a timer-signal handler, default)\n"
            "                    or 'poll' (a busy-polling thread pinned to a core)\n"
            "  --cpu N           pin the fast context's thread to CPU N (poll mode\n"
            "                    default: the last CPU; signal mode: not pinned)\n"
            "  --rate N          packets per second, 1 to 100M (default 200k)\n"
            "  --burst N         packets per signal or poll, 1 to 4096 (default 32)\n"
            "  --pages N         zone size in pages, 64 to 4194304 (default 4096)\n"
            "  --reserve N       reserve pages only ATOMIC may take, 1 to pages-1\n"
            "                    (default pages/16)\n"
            "  --worker-delay T  time the worker spends per packet, 0 to 1s (e.g. 2us;\n"
            "                    default 0)\n"
            "  --drain-limit T   at the end, how long the worker keeps its delay while it\n"
            "                    drains the pages queued for it; the rest is then freed\n"
            "                    at once (default 2s; 0 to 1h)\n"
            "  --pause-worker AT,LEN\n"
            "                    the worker stops taking packets at AT for LEN (e.g.\n"
            "                    3s,2s): watch the reserve drain, atomic allocations\n"
            "                    fail cleanly, then recover\n"
            "  --quality LIST    comma list of zero,poison,cl_align; or all, or none\n"
            "                    (default poison,cl_align)\n"
            "  --json            print the final report as JSON on stdout\n"
            "  --plot FILE       draw the reserve level and allocation latency over\n"
            "                    time into FILE (.png or .svg; needs gnuplot)\n"
            "  --stats           after the report, the zone's free blocks per order and\n"
            "                    counters (as 'labyrinth stats')\n"
            "  --quiet           no live status line\n"
            "  --help            this text\n"
            "Exit status: 0 healthy (no leak, no misuse, no corrupt packet, invariants\n"
            "hold), 1 otherwise, 2 bad usage.  Atomic failures are not unhealthy: they\n"
            "are GFP_ATOMIC's contract when the reserve is spent (try --worker-delay 20us\n"
            "or --pause-worker 3s,2s).\n");
}


static bool parse_pause(const char *s, uint64_t *at_us, uint64_t *len_us)
{
    char buf[64];
    const char *comma = strchr(s, ',');
    if (!comma || (size_t)(comma - s) >= sizeof buf)
        return false;
    snprintf(buf, sizeof buf, "%.*s", (int)(comma - s), s);
    return tool_parse_duration_us(buf, at_us) && tool_parse_duration_us(comma + 1, len_us) && *len_us > 0;
}

/* The worker's pause as it happened, in seconds from the start; from < 0:
 * none. */
struct pause_span {
    double from, to;
};

static struct pause_span pause_span(double end_s)
{
    uint64_t from = __atomic_load_n(&D.paused_from_ns, __ATOMIC_RELAXED),
             to = __atomic_load_n(&D.paused_to_ns, __ATOMIC_RELAXED);
    struct pause_span p = {-1, -1};
    if (from) {
        p.from = from / 1e9;
        p.to = to > from ? to / 1e9 : end_s; /* still paused at the end */
    }
    return p;
}

static int plot_demo(const char *file, const struct sample *s, size_t n, const char *title, struct pause_span ps)
{
    char dir[512], dat[600];
    if (!tool_tmpdir(dir, sizeof dir)) {
        fprintf(stderr, "labyrinth demo: cannot make a temporary directory: %s\n", strerror(errno));
        return -1;
    }
    snprintf(dat, sizeof dat, "%s/demo.dat", dir);
    FILE *f = fopen(dat, "w");
    if (!f) {
        fprintf(stderr, "labyrinth demo: %s: %s\n", dat, strerror(errno));
        tool_rmtree(dir);
        return -1;
    }
    fprintf(f, "# t reserve target in_use failures p50 p99 max paused pps\n");
    double fmax = 0;
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%.3f %zu %zu %zu %llu %.1f %.1f %.1f %d %.0f\n", s[i].t, s[i].reserve, s[i].target,
                s[i].in_use, (unsigned long long)s[i].fails, s[i].p50 > 1 ? s[i].p50 : 1,
                s[i].p99 > 1 ? s[i].p99 : 1, s[i].max > 1 ? s[i].max : 1, s[i].paused, s[i].pps);
        if ((double)s[i].fails > fmax)
            fmax = (double)s[i].fails;
    }
    fclose(f);
    char term[1400], script[8192], shade[400] = "", key[200] = "";
    tool_plot_terminal(term, sizeof term, file, 1000, 720);
    /* The pause shaded from when the worker stopped to when it resumed, as
     * it measured them (not from the 100 ms samples: a box per sample
     * would start a sample early). */
    if (ps.from >= 0) {
        snprintf(shade, sizeof shade,
                 "set object 1 rectangle from first %.3f, graph 0 to first %.3f, graph 1 behind "
                 "fc rgb '#e8e8e8' fs solid 1.0 noborder\n",
                 ps.from, ps.to);
        snprintf(key, sizeof key, "NaN with boxes fs solid 1.0 noborder fc rgb '#e8e8e8' title 'worker paused', ");
    }
    snprintf(script, sizeof script,
             "%s"
             "set datafile commentschars '#'\n"
             "set multiplot layout 2,1 title \"%s\"\n"
             "set grid\n"
             "set key top right opaque box\n"
             "set lmargin 12\n set rmargin 12\n"
             "set xlabel 'time (s)'\n"
             "set xrange [0:%.3f]\n"
             "%s"
             "set ylabel 'reserve (pages)'\n"
             "set yrange [0:*]\n"
             "set ytics nomirror\n"
             "set y2label 'atomic failures per 100 ms'\n"
             "set y2range [0:%g]\n"
             "set y2tics\n"
             "plot %s'%s' using 1:5 with impulses lw 3 lc rgb '#d62728' title 'atomic failures' axes x1y2, \\\n"
             "     '' using 1:3 with lines dt 2 lw 2 lc rgb '#555555' title 'reserve target', \\\n"
             "     '' using 1:2 with lines lw 3 lc rgb '#1f77b4' title 'reserve level'\n"
             "unset y2label\n unset y2tics\n set ytics mirror\n"
             "set logscale y\n set yrange [*:*]\n"
             "set ylabel 'allocation latency (ns)'\n"
             "set key top right\n"
             "plot '%s' using 1:8 with lines lw 1 lc rgb '#ff7f0e' title 'max per 100 ms (spikes: thread off its CPU)', \\\n"
             "     '' using 1:7 with lines lw 2 lc rgb '#2ca02c' title 'p99', \\\n"
             "     '' using 1:6 with lines lw 2 lc rgb '#1f77b4' title 'p50'\n"
             "unset multiplot\n",
             term, title, n ? s[n - 1].t : 1.0, shade, fmax > 0 ? fmax * 1.1 : 1.0, key, dat, dat);
    /* LABYRINTH_PLOT_KEEP=DIR: keep the data and the script there. */
    const char *keep = getenv("LABYRINTH_PLOT_KEEP");
    if (keep && *keep) {
        char path[1200];
        snprintf(path, sizeof path, "%s/demo.gp", keep);
        FILE *g = fopen(path, "w");
        if (g) {
            fputs(script, g);
            fclose(g);
        }
        snprintf(path, sizeof path, "%s/demo.dat", keep);
        FILE *in = fopen(dat, "r"), *out = fopen(path, "w");
        char buf[4096];
        size_t k;
        while (in && out && (k = fread(buf, 1, sizeof buf, in)) > 0)
            fwrite(buf, 1, k, out);
        if (in)
            fclose(in);
        if (out)
            fclose(out);
    }
    int rc = tool_gnuplot("demo", script, file);
    tool_rmtree(dir);
    return rc;
}

int tool_demo(int argc, char **argv)
{
    uint64_t duration_us = 10000000, rate = 200000, burst = 32, pages = 4096, reserve = 0, delay_us = 0;
    uint64_t pause_at_us = 0, pause_len_us = 0, cpu = 0, drain_limit_us = 2000000;
    bool poll = false, json = false, stats = false, quiet = false, cpu_set = false, reserve_set = false;
    const char *plot = NULL, *pause_arg = "";
    unsigned quality = LABYRINTH_QUALITY_POISON | LABYRINTH_QUALITY_CL_ALIGN;
    static const struct option opts[] = {
        {"duration", required_argument, 0, 'd'}, {"mode", required_argument, 0, 'm'},
        {"rate", required_argument, 0, 'r'},     {"burst", required_argument, 0, 'b'},
        {"pages", required_argument, 0, 'p'},    {"reserve", required_argument, 0, 'R'},
        {"worker-delay", required_argument, 0, 'w'}, {"quality", required_argument, 0, 'q'},
        {"pause-worker", required_argument, 0, 'P'}, {"cpu", required_argument, 0, 'c'},
        {"plot", required_argument, 0, 'o'},     {"stats", no_argument, 0, 's'},
        {"quiet", no_argument, 0, 'Q'},          {"json", no_argument, 0, 'j'},
        {"drain-limit", required_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    int c, li = 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    char cpus[96];
    snprintf(cpus, sizeof cpus, "a CPU number from 0 to %ld (this machine has %ld online)", ncpu - 1, ncpu);
    optind = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, &li)) != -1) {
        bool ok = true;
        const char *valid = NULL;
        switch (c) {
        case 'd':
            ok = tool_parse_duration_us(optarg, &duration_us) && duration_us >= 1000 && duration_us <= DEMO_MAX_US;
            valid = "a duration from 1ms to 1h, a number with us, ms, s, m or h (the demo keeps its timeline in "
                    "memory; 'labyrinth stress' runs longer)";
            break;
        case 'm':
            ok = !strcmp(optarg, "signal") || !strcmp(optarg, "poll");
            poll = !strcmp(optarg, "poll");
            valid = "'signal' or 'poll'";
            break;
        case 'r':
            ok = tool_parse_u64(optarg, &rate) && rate > 0 && rate <= 100000000;
            valid = "packets per second, from 1 to 100M (k and M allowed)";
            break;
        case 'b':
            ok = tool_parse_u64(optarg, &burst) && burst > 0 && burst <= 4096;
            valid = "packets per signal or poll, from 1 to 4096";
            break;
        case 'p':
            ok = tool_parse_u64(optarg, &pages) && pages >= 64 && pages <= (1u << 22);
            valid = "a zone of 64 to 4194304 pages (k and M allowed)";
            break;
        case 'R':
            ok = tool_parse_u64(optarg, &reserve) && reserve >= 1;
            reserve_set = true;
            valid = "from 1 to one below --pages (0 would be the library's default, pages/16: leave --reserve out "
                    "for it)";
            break;
        case 'w':
            ok = tool_parse_duration_us(optarg, &delay_us) && delay_us <= 1000000;
            valid = "a duration from 0 to 1s (e.g. 2us, 1ms)";
            break;
        case 'q':
            ok = tool_parse_quality(optarg, LABYRINTH_QUALITY_ALL & ~LABYRINTH_QUALITY_TRACK, &quality);
            valid = "a comma list of zero, poison, cl_align, or 'all' or 'none' alone";
            break;
        case 'P':
            ok = parse_pause(optarg, &pause_at_us, &pause_len_us);
            pause_arg = optarg;
            valid = "AT,LEN, two durations, LEN above 0 (e.g. 3s,2s)";
            break;
        case 'c':
            ok = tool_parse_u64(optarg, &cpu) && cpu < (uint64_t)ncpu && cpu < CPU_SETSIZE;
            cpu_set = true;
            valid = cpus;
            break;
        case 'D':
            ok = tool_parse_duration_us(optarg, &drain_limit_us) && drain_limit_us <= 3600000000ull;
            valid = "a duration from 0 (free the queue at once) to 1h";
            break;
        case 'o': plot = optarg; break;
        case 's': stats = true; break;
        case 'Q': quiet = true; break;
        case 'j': json = true; break;
        case 'h': demo_usage(stdout); return TOOL_OK;
        default: return tool_usage_hint("demo");
        }
        if (!ok)
            return tool_bad_value("demo", opts[li].name, optarg, valid);
    }
    if (optind < argc) {
        fprintf(stderr, "labyrinth demo: unexpected argument '%s'\n", argv[optind]);
        return TOOL_USAGE;
    }
    if (reserve_set && reserve >= pages) {
        fprintf(stderr, "labyrinth demo: --reserve %llu must be below --pages %llu (from 1 to %llu)\n",
                (unsigned long long)reserve, (unsigned long long)pages, (unsigned long long)pages - 1);
        return TOOL_USAGE;
    }
    if (pause_len_us && pause_at_us >= duration_us) {
        char d[32];
        tool_fmt_duration(d, sizeof d, duration_us);
        fprintf(stderr,
                "labyrinth demo: --pause-worker %s would start after the run ends (--duration %s): the worker "
                "would never pause; start it before %s\n",
                pause_arg, d, d);
        return TOOL_USAGE;
    }
    /* The fast context's clock: a burst at most every microsecond. */
    if (burst * 1000000ull < rate) {
        fprintf(stderr,
                "labyrinth demo: --rate %llu in bursts of %llu needs a burst every %.0f ns; the fast context bursts "
                "at most once a microsecond, %llu packets/s with --burst %llu: raise --burst (up to 4096) or lower "
                "--rate\n",
                (unsigned long long)rate, (unsigned long long)burst, burst * 1e9 / (double)rate,
                (unsigned long long)(burst * 1000000ull), (unsigned long long)burst);
        return TOOL_USAGE;
    }
    if (plot) {
        int rc = tool_plot_check("demo", plot);
        if (rc != TOOL_OK)
            return rc;
    }
    bool report = !tool_stats_req.quiet_run;
    if (!report)
        quiet = true;

    memset(&D, 0, sizeof D);
    /* Ctrl-C or SIGTERM ends the run early, with its report.  Only the
     * main thread takes them: blocked here, inherited by every thread
     * made (the warden's too), unblocked below for this one. */
    tool_interrupt_install();
    tool_interrupt_block(true);
    struct labyrinth_zone_config cfg = {0};
    cfg.name = "demo";
    cfg.pages = pages;
    cfg.reserve_pages = reserve;
    /* Watermarks follow a reserve set above their defaults. */
    if (reserve > pages / 8)
        cfg.low_pages = reserve;
    if (reserve > pages / 4)
        cfg.high_pages = reserve;
    D.zone = labyrinth_zone_create(&cfg);
    if (!D.zone) {
        fprintf(stderr, "labyrinth demo: cannot create the zone: %s\n", labyrinth_strerror(errno));
        tool_interrupt_block(false);
        tool_interrupt_restore();
        return TOOL_FAIL;
    }
    D.quality = quality;
    D.burst = (unsigned)burst;
    D.worker_delay_ns = delay_us * 1000;
    D.pause_at_ns = pause_at_us * 1000;
    D.pause_len_ns = pause_len_us * 1000;
    cyc_per_ns = tool_calibrate();
    /* The cycle counter's own cost, in every allocation time: the median
     * of back-to-back reads. */
    struct tool_hist *fh = calloc(1, sizeof *fh);
    uint64_t floor_cyc = 0;
    if (fh) {
        for (int i = 0; i < 10000; i++) {
            uint64_t a = tool_cycles(), b = tool_cycles();
            tool_hist_add(fh, b - a);
        }
        floor_cyc = tool_hist_quantile(fh, 0.5);
        free(fh);
    }
    bool tty = isatty(2);

    struct labyrinth_zone_stats st0;
    labyrinth_zone_stats(D.zone, &st0);
    int pin = cpu_set ? (int)cpu : poll && ncpu > 1 ? (int)ncpu - 1 : -1;
    if (report) {
        fprintf(stderr,
                "labyrinth demo: a zone of %zu pages (%zu KiB), reserve %zu, warden on;\n"
                "  %s fast context%s, %llu packets/s in bursts of %llu, for %.1f s\n",
                st0.total_pages, st0.total_pages * st0.page_size / 1024, st0.reserve_target_pages,
                poll ? "busy-poll" : "timer-signal", pin >= 0 ? " (pinned)" : "", (unsigned long long)rate,
                (unsigned long long)burst, duration_us / 1e6);
        if (pause_len_us && pause_at_us + pause_len_us > duration_us)
            fprintf(stderr,
                    "labyrinth demo: warning: the run ends at %.1f s, before the pause would (%.1f s):\n"
                    "  the worker pauses from %.1f s to the end\n",
                    duration_us / 1e6, (pause_at_us + pause_len_us) / 1e6, pause_at_us / 1e6);
        else if (pause_len_us)
            fprintf(stderr, "labyrinth demo: the worker pauses from %.1f s to %.1f s\n", pause_at_us / 1e6,
                    (pause_at_us + pause_len_us) / 1e6);
        if (!poll && rate / burst > 100000)
            fprintf(stderr,
                    "labyrinth demo: warning: %llu packets/s in bursts of %llu is a timer signal\n"
                    "  every %.1f us (%llu/s): more than most machines deliver; the report says what\n"
                    "  was delivered (a larger --burst asks for fewer signals)\n",
                    (unsigned long long)rate, (unsigned long long)burst, burst * 1e6 / (double)rate,
                    (unsigned long long)(rate / burst));
    }

    size_t nsamples_max = duration_us / SAMPLE_US + 4, nsamples = 0;
    struct sample *samples = calloc(nsamples_max, sizeof *samples);
    struct tool_hist *hprev = calloc(1, sizeof *hprev), *hnow = calloc(1, sizeof *hnow),
                     *hd = calloc(1, sizeof *hd), *hline = calloc(1, sizeof *hline);
    if (!samples || !hprev || !hnow || !hd || !hline) {
        fprintf(stderr, "labyrinth demo: out of memory\n");
        labyrinth_zone_destroy(D.zone);
        tool_interrupt_block(false);
        tool_interrupt_restore();
        return TOOL_FAIL;
    }

    pthread_t rx, wk;
    struct rx_args ra = {.poll = poll, .cpu = pin, .interval_ns = burst * 1000000000ull / rate};
    if (ra.interval_ns < 1000)
        ra.interval_ns = 1000;
    __atomic_store_n(&D.t0_ns, tool_now_ns(), __ATOMIC_RELEASE);
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
    tool_interrupt_block(false);
    while (!__atomic_load_n(&ra.ready, __ATOMIC_ACQUIRE))
        tool_sleep_us(100);
    if (report && pin >= 0 && ra.pinned < 0)
        fprintf(stderr, "labyrinth demo: could not pin the fast context to CPU %d; it runs unpinned\n", pin);

    timer_t timer = 0;
    int rc = TOOL_OK;
    if (!poll) {
        struct sigevent sev;
        memset(&sev, 0, sizeof sev);
        sev.sigev_notify = SIGEV_THREAD_ID;
        sev.sigev_signo = SIGRTMIN;
        sev._sigev_un._tid = ra.tid;
        if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0) {
            perror("labyrinth demo: timer_create");
            rc = TOOL_FAIL;
            duration_us = 0;
        } else {
            struct itimerspec its = {{0, (long)ra.interval_ns}, {0, (long)ra.interval_ns}};
            __atomic_store_n(&D.interval_ns, ra.interval_ns, __ATOMIC_RELAXED);
            __atomic_store_n(&D.timer_t0_ns, tool_now_ns(), __ATOMIC_RELAXED);
            timer_settime(timer, 0, &its, NULL);
        }
    }

    /* The monitor: a sample every 100 ms, a status line every 200 ms on a
     * terminal or every second otherwise, stats snapshots when asked. */
    uint64_t t_start = tool_now_ns(), t_end = t_start + duration_us * 1000, prev_t = t_start, prev_pk = 0,
             prev_fail = 0, next_stats = tool_stats_req.interval_us ? tool_stats_req.interval_us * 1000 : 0;
    /* The worker's pause counts from here too: the samples' zero. */
    __atomic_store_n(&D.t0_ns, t_start, __ATOMIC_RELEASE);
    unsigned tick = 0;
    uint64_t line_t = t_start, line_pk = 0, line_fail = 0;
    size_t line_low = SIZE_MAX;
    int line_paused = 0;
    while (tool_now_ns() < t_end && !tool_interrupted()) {
        uint64_t left = (t_end - tool_now_ns()) / 1000;
        tool_sleep_us(left < SAMPLE_US ? left : SAMPLE_US);
        uint64_t t = tool_now_ns();
        struct labyrinth_zone_stats st;
        labyrinth_zone_stats(D.zone, &st);
        tool_hist_snapshot(hnow, &D.hist);
        tool_hist_diff(hd, hnow, hprev);
        struct tool_hist *sw = hprev;
        hprev = hnow;
        hnow = sw;
        uint64_t pk = rd(&D.rx_packets), fl = rd(&D.rx_fail);
        double dt = (t - prev_t) / 1e9;
        struct sample s = {
            .t = (t - t_start) / 1e9,
            .pps = dt > 0 ? (double)(pk - prev_pk) / dt : 0,
            .fails = fl - prev_fail,
            .reserve = st.reserve_free_pages,
            .target = st.reserve_target_pages,
            .in_use = st.in_use_pages,
            .depot = st.depot_pages,
            .p50 = cyc_ns(tool_hist_quantile(hd, 0.5)),
            .p99 = cyc_ns(tool_hist_quantile(hd, 0.99)),
            .max = cyc_ns(tool_hist_max(hd)),
            .paused = __atomic_load_n(&D.worker_paused, __ATOMIC_RELAXED),
        };
        if (nsamples < nsamples_max)
            samples[nsamples++] = s;
        prev_t = t;
        prev_pk = pk;
        prev_fail = fl;
        tick++;
        bool last = tool_now_ns() >= t_end || tool_interrupted();
        /* Since the last line: the reserve's low point (sampled every
         * 100 ms; an atomic failure means it was at 0), the failures, the
         * packet rate, the p99 and whether the worker paused. */
        if (s.reserve < line_low)
            line_low = s.reserve;
        line_paused |= s.paused;
        if (!quiet && (tty ? tick % 2 == 0 : tick % 10 == 0 || last)) {
            tool_hist_diff(hd, hprev, hline);
            double lt = (t - line_t) / 1e9;
            uint64_t nf = fl - line_fail;
            char f_t[24], f_pps[40], f_fail[40], f_all[48], f_res[80], f_use[40], f_p99[40];
            snprintf(f_t, sizeof f_t, "%5.1fs", s.t);
            snprintf(f_pps, sizeof f_pps, "%.0f pkt/s", lt > 0 ? (double)(pk - line_pk) / lt : 0.0);
            snprintf(f_fail, sizeof f_fail, "failures +%llu", (unsigned long long)nf);
            snprintf(f_all, sizeof f_all, "(%llu in all)", (unsigned long long)fl);
            snprintf(f_res, sizeof f_res, "reserve %zu/%zu low %zu", s.reserve, s.target, nf ? 0 : line_low);
            snprintf(f_use, sizeof f_use, "in use %zu", s.in_use);
            snprintf(f_p99, sizeof f_p99, "p99 %.0f ns", cyc_ns(tool_hist_quantile(hd, 0.99)));
            const struct tool_field fields[] = {
                {f_t, 0},   {f_pps, 0}, {f_fail, 0}, {f_all, 5}, {f_res, 0},
                {f_use, 4}, {f_p99, 2}, {line_paused ? "[worker paused]" : "", 1},
            };
            tool_status_fields(tty, fields, sizeof fields / sizeof fields[0]);
            struct tool_hist *x = hline;
            memcpy(x, hprev, sizeof *x);
            line_t = t;
            line_pk = pk;
            line_fail = fl;
            line_low = SIZE_MAX;
            line_paused = 0;
        }
        if (next_stats && t - t_start >= next_stats && !last) {
            tool_stats_emit(D.zone, "demo", s.t, false);
            next_stats += tool_stats_req.interval_us * 1000;
        }
    }
    if (!quiet)
        tool_status_done(tty);
    if (tool_interrupted() && report)
        fprintf(stderr, "labyrinth demo: %s: stopping after %.1f s, with the report of the run so far\n"
                        "  (the same signal again quits at once)\n",
                tool_signal_name(tool_interrupted()), (tool_now_ns() - t_start) / 1e9);
    if (!poll && rc == TOOL_OK)
        timer_delete(timer);
    __atomic_store_n(&D.stop_rx, 1, __ATOMIC_RELAXED);
    pthread_join(rx, NULL);
    uint64_t t_stop = tool_now_ns();
    double secs = (t_stop - t_start) / 1e9;

    /* The drain: the worker frees what is queued for it.  With a delay it
     * may take long (4096 pages at 10 ms: 41 s): it keeps the delay for
     * --drain-limit at most (none once interrupted), then frees the rest at
     * once, and says so. */
    uint64_t queued = __atomic_load_n(&D.ring.head, __ATOMIC_ACQUIRE) - __atomic_load_n(&D.ring.tail, __ATOMIC_ACQUIRE);
    uint64_t limit_ns = tool_interrupted() ? 0 : drain_limit_us * 1000;
    double drain_est = (double)queued * (double)D.worker_delay_ns / 1e9;
    __atomic_store_n(&D.drain_until_ns, t_stop + limit_ns, __ATOMIC_RELAXED);
    __atomic_store_n(&D.stop_worker, 1, __ATOMIC_RELEASE);
    bool drain_talk = report && D.worker_delay_ns && drain_est >= 0.5;
    if (drain_talk) {
        char d[32], l[32];
        tool_fmt_duration(d, sizeof d, delay_us);
        tool_fmt_duration(l, sizeof l, limit_ns / 1000);
        if (drain_est * 1e9 > (double)limit_ns)
            fprintf(stderr,
                    "labyrinth demo: %llu pages queued for the worker at %s each would take %.1f s;\n"
                    "  it drains for %s%s, then frees the rest at once\n",
                    (unsigned long long)queued, d, drain_est, limit_ns ? l : "no time",
                    tool_interrupted() ? " (interrupted)" : " (--drain-limit)");
        else
            fprintf(stderr, "labyrinth demo: draining %llu pages queued for the worker at %s each: %.1f s\n",
                    (unsigned long long)queued, d, drain_est);
    }
    uint64_t next_line = t_stop;
    bool drain_cut = false;
    while (pthread_tryjoin_np(wk, NULL) != 0) {
        tool_sleep_us(20000);
        uint64_t t = tool_now_ns();
        if (tool_interrupted() && !drain_cut) {
            /* Interrupted while draining: the rest at once. */
            __atomic_store_n(&D.drain_until_ns, 0, __ATOMIC_RELAXED);
            limit_ns = t - t_stop;
            drain_cut = true;
            if (drain_talk && !quiet)
                tool_status_done(tty);
            if (report)
                fprintf(stderr, "labyrinth demo: %s: the pages still queued are freed at once\n",
                        tool_signal_name(tool_interrupted()));
        }
        if (drain_talk && !quiet && t >= next_line) {
            uint64_t left_q = __atomic_load_n(&D.ring.head, __ATOMIC_ACQUIRE) -
                              __atomic_load_n(&D.ring.tail, __ATOMIC_ACQUIRE);
            double by_delay = (double)left_q * (double)D.worker_delay_ns / 1e9,
                   by_cap = t < t_stop + limit_ns ? (t_stop + limit_ns - t) / 1e9 : 0;
            char f_a[32], f_b[48], f_c[48];
            snprintf(f_a, sizeof f_a, "%5.1fs", (t - t_start) / 1e9);
            snprintf(f_b, sizeof f_b, "draining: %llu pages queued", (unsigned long long)left_q);
            snprintf(f_c, sizeof f_c, "%.1f s left", by_delay < by_cap ? by_delay : by_cap);
            const struct tool_field fields[] = {{f_a, 0}, {f_b, 0}, {f_c, 1}};
            tool_status_fields(tty, fields, 3);
            next_line = t + (tty ? 200000000ull : 1000000000ull);
        }
    }
    if (drain_talk && !quiet)
        tool_status_done(tty);
    double drain_secs = (tool_now_ns() - t_stop) / 1e9;
    int interrupted = tool_interrupted();

    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(D.zone, &st);
    long violations = labyrinth_zone_check(D.zone);
    long leaks = labyrinth_zone_for_each_in_use(D.zone, NULL, NULL);
    const struct tool_hist *h = &D.hist;
    double p50 = cyc_ns(tool_hist_quantile(h, 0.50)), p99 = cyc_ns(tool_hist_quantile(h, 0.99)),
           p999 = cyc_ns(tool_hist_quantile(h, 0.999)), p9999 = cyc_ns(tool_hist_quantile(h, 0.9999)),
           pmax = cyc_ns(tool_hist_max(h));
    /* The failed calls, the bursts and the timer's lateness, apart: the
     * allocation latency above is the allocator's call alone. */
    const struct tool_hist *hf = &D.hist_fail, *hb = &D.hist_burst, *hl = &D.hist_late;
    uint64_t nfail = tool_hist_total(hf), nburst = tool_hist_total(hb), nlate = tool_hist_total(hl);
    double f50 = cyc_ns(tool_hist_quantile(hf, 0.50)), f99 = cyc_ns(tool_hist_quantile(hf, 0.99)),
           f999 = cyc_ns(tool_hist_quantile(hf, 0.999)), fmax = cyc_ns(tool_hist_max(hf));
    double b50 = cyc_ns(tool_hist_quantile(hb, 0.50)), b99 = cyc_ns(tool_hist_quantile(hb, 0.99)),
           b999 = cyc_ns(tool_hist_quantile(hb, 0.999)), bmax = cyc_ns(tool_hist_max(hb));
    double l50 = (double)tool_hist_quantile(hl, 0.50), l99 = (double)tool_hist_quantile(hl, 0.99),
           l999 = (double)tool_hist_quantile(hl, 0.999), lmax = (double)tool_hist_max(hl);
    double floor_ns = cyc_ns(floor_cyc);
    bool healthy = rc == TOOL_OK && violations == 0 && leaks == 0 && st.misuse_reports == 0 && D.wk_bad == 0 &&
                   D.wk_free_err == 0;
    double drop_rate = D.rx_packets ? (double)(D.rx_fail + D.rx_drop) / (double)D.rx_packets : 0.0;
    /* The rate asked for is not always the rate delivered: timer signals
     * come late on a busy machine, and faster than some 100k/s they do not
     * come at all.  The verdict is about the allocator; say it. */
    double delivered = secs > 0 ? (double)D.rx_packets / secs : 0;
    bool rate_short = secs >= 0.2 && delivered < 0.9 * (double)rate;
    if (rate_short && report)
        fprintf(stderr,
                "labyrinth demo: warning: %.0f packets/s delivered, of %llu/s asked (%.0f%%):\n"
                "  the fast context could not keep up (%s);\n  the allocator's numbers stand\n",
                delivered, (unsigned long long)rate, 100.0 * delivered / (double)rate,
                poll ? "the poller lost its CPU" : "timer signals came late or were merged");
    size_t reserve_low = st.reserve_low_water;
    /* Allocations that took over 100 us: in a call that never waits, that
     * is the thread losing its CPU mid-call, not the allocator. */
    uint64_t slow_n = 0;
    for (unsigned b = 0; b < TOOL_HIST_BUCKETS; b++)
        if (cyc_ns(tool_hist_value(b)) >= 100000.0)
            slow_n += h->n[b];

    if (report && json) {
        /* Names and units as every --json of the command has them
         * (docs/json.md): times in seconds (_s, "seconds"), latencies in
         * nanoseconds (_ns), percentiles p50 p99 p99_9 p99_99 max. */
        printf("{\"command\":\"demo\",\"seconds\":%.3f,\"mode\":\"%s\",\"packets\":%llu,\"pages_served\":%llu,"
               "\"atomic_failures\":%llu,\"ring_drops\":%llu,\"drop_rate\":%.6f,\"worker_frees\":%llu,"
               "\"corrupt_packets\":%llu,\"signals\":%llu,\"background_allocs\":%llu,"
               "\"latency_ns\":{\"p50\":%.1f,\"p99\":%.1f,\"p99_9\":%.1f,\"p99_99\":%.1f,\"max\":%.1f},"
               "\"slow_allocations\":%llu,\"fast_context_involuntary_switches\":%ld,"
               "\"reserve\":{\"target\":%zu,\"now\":%zu,\"low_water\":%zu},"
               "\"atomic_reserve_allocs\":%llu,\"warden_runs\":%llu,\"leaks\":%ld,"
               "\"misuse_reports\":%llu,\"check_violations\":%ld,\"interrupted\":%s,\"interrupted_by\":%s%s%s,"
               "\"drain\":{\"queued_pages\":%llu,\"seconds\":%.3f,\"freed_without_delay\":%llu},",
               secs, poll ? "poll" : "signal", (unsigned long long)D.rx_packets, (unsigned long long)D.rx_pages,
               (unsigned long long)D.rx_fail, (unsigned long long)D.rx_drop, drop_rate,
               (unsigned long long)D.wk_done, (unsigned long long)D.wk_bad, (unsigned long long)D.ticks,
               (unsigned long long)D.bg_allocs, p50, p99, p999, p9999, pmax, (unsigned long long)slow_n, ra.nivcsw,
               st.reserve_target_pages,
               st.reserve_free_pages, reserve_low, st.atomic_reserve_allocs, st.warden_runs, leaks,
               st.misuse_reports, violations, interrupted ? "true" : "false", interrupted ? "\"" : "",
               interrupted ? tool_signal_name(interrupted) : "null", interrupted ? "\"" : "",
               (unsigned long long)queued, drain_secs, (unsigned long long)D.wk_undelayed);
        /* Each null when nothing was measured (docs/json.md). */
        printf("\"timer_floor_ns\":%.1f,", floor_ns);
        if (nfail)
            printf("\"failed_latency_ns\":{\"p50\":%.1f,\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f},", f50, f99, f999,
                   fmax);
        else
            printf("\"failed_latency_ns\":null,");
        if (nburst)
            printf("\"burst_ns\":{\"p50\":%.1f,\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f},", b50, b99, b999, bmax);
        else
            printf("\"burst_ns\":null,");
        if (nlate)
            printf("\"timer_late_ns\":{\"p50\":%.1f,\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f},", l50, l99, l999, lmax);
        else
            printf("\"timer_late_ns\":null,");
        struct pause_span ps = pause_span(secs);
        if (ps.from >= 0)
            printf("\"worker_pause\":{\"from_s\":%.3f,\"to_s\":%.3f},", ps.from, ps.to);
        else
            printf("\"worker_pause\":null,");
        printf("\"rate\":{\"asked_per_s\":%llu,\"delivered_per_s\":%.0f,\"reached\":%s},",
               (unsigned long long)rate, delivered, rate_short ? "false" : "true");
        printf("\"config\":{\"duration_s\":%.3f,\"rate_per_s\":%llu,\"burst\":%llu,\"pages\":%zu,"
               "\"reserve_pages\":%zu,\"worker_delay_s\":%.6f,\"drain_limit_s\":%.3f,\"pause_worker_s\":[%.3f,%.3f],"
               "\"cpu\":%d,\"quality\":",
               duration_us / 1e6, (unsigned long long)rate, (unsigned long long)burst, st.total_pages,
               st.reserve_target_pages, delay_us / 1e6, drain_limit_us / 1e6, pause_at_us / 1e6, pause_len_us / 1e6,
               pin);
        tool_json_quality(stdout, quality);
        printf("},");
        printf("\"timeline\":[");
        for (size_t i = 0; i < nsamples; i++)
            printf("%s{\"t_s\":%.2f,\"packets_per_s\":%.0f,\"failures\":%llu,\"reserve\":%zu,\"in_use\":%zu,"
                   "\"p99_ns\":%.1f}",
                   i ? "," : "", samples[i].t, samples[i].pps, (unsigned long long)samples[i].fails,
                   samples[i].reserve, samples[i].in_use, samples[i].p99);
        printf("],");
        if (stats) {
            printf("\"zone\":");
            tool_zone_snapshot(stdout, D.zone, "demo", secs, true, true);
            printf(",");
        }
        printf("\"healthy\":%s}\n", healthy ? "true" : "false");
    } else if (report) {
        /* Every line fits 79 columns: a label of 23, a number of 12, a
         * note of 40 (continued on lines of its own). */
        const char *more = "                                       "; /* under the note */
        if (interrupted)
            printf("\nlabyrinth demo report: INTERRUPTED by %s after %.1f s of %.1f s\n",
                   tool_signal_name(interrupted), secs, duration_us / 1e6);
        else
            printf("\nlabyrinth demo report (%.1f s, %s fast context)\n", secs, poll ? "busy-poll" : "timer-signal");
        printf("  packets received       %12llu  (%.0f/s)\n", (unsigned long long)D.rx_packets,
               D.rx_packets / secs);
        if (rate_short)
            printf("  rate NOT REACHED       %12.0f/s delivered of %llu/s asked (%.0f%%)\n", delivered,
                   (unsigned long long)rate, 100.0 * delivered / (double)rate);
        printf("  pages served (macro)   %12llu\n", (unsigned long long)(D.rx_packets - D.rx_fail));
        if (D.rx_fail)
            printf("  atomic failures        %12llu  (%.3f%%: NULL, the reserve was empty)\n",
                   (unsigned long long)D.rx_fail, D.rx_packets ? 100.0 * D.rx_fail / D.rx_packets : 0.0);
        else
            printf("  atomic failures        %12llu  (the reserve never ran out)\n", 0ull);
        printf("  ring drops             %12llu  (worker behind; page freed at once)\n",
               (unsigned long long)D.rx_drop);
        printf("  drop rate              %11.3f%%  (failures and ring drops)\n", 100.0 * drop_rate);
        printf("  processed and freed    %12llu  by the worker thread\n", (unsigned long long)D.wk_done);
        if (D.worker_delay_ns && queued) {
            char l[32];
            tool_fmt_duration(l, sizeof l, limit_ns / 1000);
            printf("  drain at the end       %12llu  pages queued when the run stopped,\n"
                   "%sdrained in %.1f s", (unsigned long long)queued, more, drain_secs);
            if (D.wk_undelayed)
                printf("; %llu of them freed\n%sat once, without the delay (%s%s)\n",
                       (unsigned long long)D.wk_undelayed, more, interrupted ? "interrupted" : "--drain-limit ",
                       interrupted ? "" : l);
            else
                printf("\n");
        }
        printf("  corrupt packets        %12llu\n", (unsigned long long)D.wk_bad);
        if (!poll) {
            /* The signals land on a thread busy with labyrinth itself. */
            printf("  timer signals          %12llu  (the handler allocates the packets)\n",
                   (unsigned long long)D.ticks);
            printf("  NOWAIT pages meanwhile %12llu  taken and freed by the same thread\n"
                   "%sbetween signals: a signal often lands\n"
                   "%sin the middle of a labyrinth call\n",
                   (unsigned long long)D.bg_allocs, more, more);
        }
        printf("  allocation latency     p50 %.0f ns  p99 %.0f ns  p99.9 %.0f ns\n"
               "                         p99.99 %.0f ns  max %.0f ns\n"
               "                         the call alone, per page handed out\n"
               "                         (the cycle counter's own %.0f ns in it)\n",
               p50, p99, p999, p9999, pmax, floor_ns);
        if (nfail)
            printf("  failed allocations     p50 %.0f ns  p99 %.0f ns  p99.9 %.0f ns\n"
                   "                         max %.0f ns; %llu NULLs (reserve spent)\n",
                   f50, f99, f999, fmax, (unsigned long long)nfail);
        if (nburst)
            printf("  %-22s p50 %.0f ns  p99 %.0f ns  max %.0f ns\n"
                   "                         per burst of %u (allocations, packet\n"
                   "                         writes, ring pushes: the %s)\n",
                   poll ? "burst" : "handler", b50, b99, bmax, D.burst, poll ? "poller's work" : "handler's work");
        if (nlate)
            printf("  %-22s p50 %.0f ns  p99 %.0f ns  max %.0f ns\n"
                   "                         the burst's start after its scheduled\n"
                   "                         time: %s\n",
                   poll ? "poller lateness" : "timer lateness", l50, l99, lmax,
                   poll ? "the poller off its CPU" : "the kernel and the machine");
        if (slow_n) {
            printf("  slow outliers          %12llu  allocations over 100 us: the thread\n"
                   "%slost its CPU in mid-call (switched out\n"
                   "%s%ld times in the run against its will,\n"
                   "%sor the hypervisor took the CPU); the\n"
                   "%sallocator itself never waits\n",
                   (unsigned long long)slow_n, more, more, ra.nivcsw, more, more);
        }
        printf("  reserve                %zu of %zu pages now, low point %zu;\n"
               "                         %llu ATOMIC pages served from it\n",
               st.reserve_free_pages, st.reserve_target_pages, reserve_low,
               (unsigned long long)st.atomic_reserve_allocs);
        printf("  warden                 %llu runs, %llu pages moved\n", (unsigned long long)st.warden_runs,
               (unsigned long long)st.warden_pages_moved);
        printf("  leaks                  %s\n", leaks ? "SOME (see above)" : "none");
        printf("  misuse reports         %llu\n", (unsigned long long)st.misuse_reports);
        printf("  invariant check        %s\n", violations ? "VIOLATED" : "ok (labyrinth_zone_check = 0)");
        if (interrupted)
            printf("  verdict                %s, for the %.1f s it ran (interrupted)\n",
                   healthy ? "healthy" : "UNHEALTHY", secs);
        else if (rate_short)
            printf("  verdict                %s\n"
                   "                         (the allocator's; the rate asked was not reached)\n",
                   healthy ? "healthy" : "UNHEALTHY");
        else
            printf("  verdict                %s\n", healthy ? "healthy" : "UNHEALTHY");
        if (stats)
            tool_zone_snapshot(stdout, D.zone, "demo", secs, true, false);
    }
    fflush(stdout);
    tool_stats_emit(D.zone, "demo", secs, true);
    if (plot) {
        char title[300];
        snprintf(title, sizeof title,
                 "labyrinth demo: %s fast context, %llu packets/s, %zu pages, reserve %zu%s", poll ? "busy-poll"
                                                                                                    : "timer-signal",
                 (unsigned long long)rate, st.total_pages, st.reserve_target_pages,
                 pause_len_us ? ", worker paused" : "");
        if (plot_demo(plot, samples, nsamples, title, pause_span(secs)) != 0)
            healthy = false;
        else if (report)
            fprintf(stderr, "labyrinth demo: wrote %s\n", plot);
    }
    free(samples);
    free(hprev);
    free(hnow);
    free(hd);
    free(hline);
    labyrinth_zone_destroy(D.zone);
    D.zone = NULL;
    tool_interrupt_restore();
    if (rc != TOOL_OK)
        return rc;
    if (!healthy)
        return TOOL_FAIL;
    return interrupted ? TOOL_INTERRUPTED(interrupted) : TOOL_OK;
}
