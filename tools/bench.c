/*
 * bench.c - `labyrinth bench`: the benchmark patterns from the command line.
 *
 * Two engines:
 *   built-in         this program measures labyrinth (the ATOMIC call and
 *                    the seed's macro) and glibc itself: LIFO pairs, bursts
 *                    of 64, a two-thread handoff over a lock-free ring, and
 *                    the latency of single allocations (a full histogram).
 *   labyrinth-bench  the side-by-side suite of bench/ (DPDK, tcmalloc,
 *                    jemalloc, mimalloc too), built with -DLABYRINTH_BENCH=ON
 *                    (make bench); run as a child with --json and read back.
 * The default (auto) uses labyrinth-bench when a peer only it has is asked
 * for and it can be found, the built-in engine otherwise, and says plainly
 * which peers were not run and why.
 */
#define _GNU_SOURCE
#include "json.h"
#include "tool.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BLOCK 4096u
#define BURST 64u

enum { P_LIFO, P_BURST, P_HANDOFF, P_LATENCY, P_COUNT };
static const char *const pat_name[P_COUNT] = {"lifo", "burst", "handoff", "latency"};

enum { ST_OK, ST_MISSING, ST_NOT_RUN, ST_FAILED };
static const char *const st_name[] = {"ok", "missing", "not run", "failed"};

struct peer_def {
    const char *name;
    bool builtin;
    const char *calls;
};
static const struct peer_def peer_defs[] = {
    {"labyrinth", true, "labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0) / labyrinth_free_pages(z, p, 0)"},
    {"labyrinth-seed", true, "labyrinth_void_allocpage_gfpatomic_extra_quality(z, 0) / labyrinth_free_pages(z, p, 0)"},
    {"dpdk", false, "rte_mempool_get / rte_mempool_put"},
    {"tcmalloc", false, "tc_memalign(4096, 4096) / tc_free(p)"},
    {"jemalloc", false, "aligned_alloc(4096, 4096) / free(p)"},
    {"mimalloc", false, "mi_malloc_aligned(4096, 4096) / mi_free(p)"},
    {"glibc", true, "aligned_alloc(4096, 4096) / free(p)"},
};
#define NPEERS (sizeof peer_defs / sizeof peer_defs[0])

#define NPCT 5
static const double pct_q[NPCT] = {0.5, 0.99, 0.999, 0.9999, 1.0};
static const char *const pct_name[NPCT] = {"p50", "p99", "p99.9", "p99.99", "max"};
/* The same in JSON, as every --json of the command names them. */
static const char *const pct_key[NPCT] = {"p50", "p99", "p99_9", "p99_99", "max"};

struct result {
    const struct peer_def *def;
    int status;
    char why[320];
    double lifo_ns, burst_ns, handoff_mops; /* medians; NaN: not measured */
    uint64_t nulls;
    double pct[NPCT];                       /* ns; NaN: not measured */
    uint64_t lat_samples;
    struct tool_hist *hist;                 /* built-in latency: cycles */
};

struct bench_opts {
    unsigned patterns;
    bool peer_on[NPEERS];
    unsigned runs;
    uint64_t duration_us, samples, pages;
    bool json;
    const char *plot, *binary;
    int engine; /* 0 auto, 1 built-in, 2 labyrinth-bench */
};

/* ---- the allocators of the built-in engine ------------------------------------- */

static struct labyrinth_zone *bz;

static void *a_lab(void) { return labyrinth_alloc_pages(bz, LABYRINTH_GFP_ATOMIC, 0, 0); }
static void *a_seed(void) { return labyrinth_void_allocpage_gfpatomic_extra_quality(bz, 0); }
static void f_lab(void *p) { labyrinth_free_pages(bz, p, 0); }
static void *a_glibc(void) { return aligned_alloc(BLOCK, BLOCK); }
static void f_glibc(void *p) { free(p); }

struct alloc_fns {
    void *(*alloc)(void);
    void (*release)(void *);
};

static struct alloc_fns fns_for(const char *name)
{
    if (!strcmp(name, "labyrinth"))
        return (struct alloc_fns){a_lab, f_lab};
    if (!strcmp(name, "labyrinth-seed"))
        return (struct alloc_fns){a_seed, f_lab};
    return (struct alloc_fns){a_glibc, f_glibc};
}

static inline void escape(void *p) { __asm__ __volatile__("" : : "r"(p) : "memory"); }

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
    if (!n)
        return NAN;
    qsort(v, n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ns per alloc+free pair over about duration_us. */
static double run_lifo(struct alloc_fns f, uint64_t duration_us, uint64_t *nulls)
{
    uint64_t pairs = 0, t0 = tool_now_ns(), t;
    do {
        for (unsigned i = 0; i < 4096; i++) {
            void *p = f.alloc();
            if (!p) {
                ++*nulls;
                continue;
            }
            escape(p);
            f.release(p);
        }
        pairs += 4096;
        t = tool_now_ns();
    } while (t - t0 < duration_us * 1000);
    return (double)(t - t0) / (double)pairs;
}

static double run_burst(struct alloc_fns f, uint64_t duration_us, uint64_t *nulls)
{
    void *b[BURST];
    uint64_t pairs = 0, t0 = tool_now_ns(), t;
    do {
        for (unsigned r = 0; r < 64; r++) {
            for (unsigned i = 0; i < BURST; i++)
                if (!(b[i] = f.alloc()))
                    ++*nulls;
            escape(b);
            for (unsigned i = 0; i < BURST; i++)
                if (b[i])
                    f.release(b[i]);
        }
        pairs += 64 * BURST;
        t = tool_now_ns();
    } while (t - t0 < duration_us * 1000);
    return (double)(t - t0) / (double)pairs;
}

/* The handoff: a producer allocates and pushes, a consumer pops and frees. */
#define HRING 1024u
struct handoff {
    _Alignas(64) uint64_t head;
    _Alignas(64) uint64_t tail;
    _Alignas(64) void *slot[HRING];
    struct alloc_fns f;
    uint64_t duration_ns;
    uint64_t items, nulls, t0, t1;
    int go; /* __atomic: both threads ready */
};
#define HSTOP ((void *)1)

/* Pin the calling thread to the k-th CPU it may use (the two handoff
 * threads on two CPUs, as a pair of cores would run them), if there are two. */
static void pin_kth(unsigned k)
{
    cpu_set_t set, one;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) < 2)
        return;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set) && k-- == 0) {
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            pthread_setaffinity_np(pthread_self(), sizeof one, &one);
            return;
        }
}

/* Spin politely: yield now and then, so that two spinning threads sharing
 * one CPU still make progress. */
static inline void wait_a_bit(unsigned *spins)
{
    if (++*spins % 1024 == 0)
        sched_yield();
    else
        relax();
}

static void *handoff_producer(void *arg)
{
    struct handoff *h = arg;
    pin_kth(0);
    unsigned spins = 0;
    __atomic_add_fetch(&h->go, 1, __ATOMIC_ACQ_REL);
    while (__atomic_load_n(&h->go, __ATOMIC_ACQUIRE) < 2)
        wait_a_bit(&spins);
    uint64_t t0 = tool_now_ns(), n = 0, nulls = 0, hd = 0;
    for (;;) {
        if ((n & 255) == 0 && tool_now_ns() - t0 >= h->duration_ns)
            break;
        void *p = h->f.alloc();
        if (!p) {
            nulls++;
            wait_a_bit(&spins);
            continue;
        }
        while (hd - __atomic_load_n(&h->tail, __ATOMIC_ACQUIRE) == HRING)
            wait_a_bit(&spins);
        h->slot[hd % HRING] = p;
        __atomic_store_n(&h->head, ++hd, __ATOMIC_RELEASE);
        n++;
    }
    while (hd - __atomic_load_n(&h->tail, __ATOMIC_ACQUIRE) == HRING)
        wait_a_bit(&spins);
    h->slot[hd % HRING] = HSTOP;
    __atomic_store_n(&h->head, ++hd, __ATOMIC_RELEASE);
    h->items = n;
    h->nulls = nulls;
    h->t0 = t0;
    return NULL;
}

static void *handoff_consumer(void *arg)
{
    struct handoff *h = arg;
    pin_kth(1);
    unsigned spins = 0;
    __atomic_add_fetch(&h->go, 1, __ATOMIC_ACQ_REL);
    uint64_t tl = 0;
    for (;;) {
        if (tl == __atomic_load_n(&h->head, __ATOMIC_ACQUIRE)) {
            wait_a_bit(&spins);
            continue;
        }
        void *p = h->slot[tl % HRING];
        __atomic_store_n(&h->tail, ++tl, __ATOMIC_RELEASE);
        if (p == HSTOP)
            break;
        h->f.release(p);
    }
    h->t1 = tool_now_ns();
    return NULL;
}

/* Million blocks per second through the handoff, or NaN. */
static double run_handoff(struct alloc_fns f, uint64_t duration_us, uint64_t *nulls, char *why, size_t wlen)
{
    struct handoff *h = aligned_alloc(64, sizeof *h);
    if (!h) {
        snprintf(why, wlen, "out of memory");
        return NAN;
    }
    memset(h, 0, sizeof *h);
    h->f = f;
    h->duration_ns = duration_us * 1000;
    pthread_t a, b;
    if (pthread_create(&b, NULL, handoff_consumer, h) != 0) {
        snprintf(why, wlen, "cannot start a thread");
        free(h);
        return NAN;
    }
    if (pthread_create(&a, NULL, handoff_producer, h) != 0) {
        /* Let the consumer finish: it waits for the stop token. */
        h->slot[0] = HSTOP;
        __atomic_store_n(&h->head, 1, __ATOMIC_RELEASE);
        pthread_join(b, NULL);
        snprintf(why, wlen, "cannot start a thread");
        free(h);
        return NAN;
    }
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    double r = h->t1 > h->t0 ? (double)h->items / ((double)(h->t1 - h->t0) / 1e3) : NAN;
    *nulls += h->nulls;
    free(h);
    return r;
}

static void run_latency(struct alloc_fns f, uint64_t samples, struct tool_hist *hist, uint64_t *nulls)
{
    for (uint64_t i = 0; i < samples; i++) {
        uint64_t c0 = tool_cycles();
        void *p = f.alloc();
        uint64_t c1 = tool_cycles();
        tool_hist_add(hist, (int64_t)(c1 - c0) < 0 ? 0 : c1 - c0);
        if (!p) {
            ++*nulls;
            continue;
        }
        escape(p);
        f.release(p);
    }
}

/* The cycle counter: its step (the smallest change two reads see) and
 * its floor (the median of two back-to-back reads), in ns.  Latencies are
 * multiples of the step and include the floor. */
struct counter {
    double step_ns, floor_ns;
};

static struct counter measure_counter(double cyc_per_ns)
{
    uint64_t step = UINT64_MAX, prev = tool_cycles();
    for (unsigned i = 0; i < 200000; i++) {
        uint64_t now = tool_cycles();
        if (now != prev && now - prev < step)
            step = now - prev;
        prev = now;
    }
    struct tool_hist *h = calloc(1, sizeof *h);
    double floor_ns = NAN;
    if (h) {
        for (unsigned i = 0; i < 100000; i++) {
            uint64_t a = tool_cycles(), b = tool_cycles();
            tool_hist_add(h, b - a);
        }
        floor_ns = (double)tool_hist_quantile(h, 0.5) / cyc_per_ns;
        free(h);
    }
    return (struct counter){step == UINT64_MAX ? NAN : (double)step / cyc_per_ns, floor_ns};
}

struct zone_health {
    bool measured;
    size_t in_use;
    unsigned long long misuse;
    long check, leaks;
};

static int run_builtin(const struct bench_opts *o, struct result *res, unsigned nres, struct zone_health *zh,
                       double cyc_per_ns)
{
    struct labyrinth_zone_config cfg = {0};
    cfg.name = "bench";
    cfg.pages = o->pages;
    bool need_zone = false;
    for (unsigned i = 0; i < nres; i++)
        need_zone |= res[i].status == ST_OK && strncmp(res[i].def->name, "labyrinth", 9) == 0;
    if (need_zone) {
        bz = labyrinth_zone_create(&cfg);
        if (!bz) {
            int e = errno;
            for (unsigned i = 0; i < nres; i++)
                if (!strncmp(res[i].def->name, "labyrinth", 9)) {
                    res[i].status = ST_FAILED;
                    snprintf(res[i].why, sizeof res[i].why, "cannot create a zone of %llu pages: %s",
                             (unsigned long long)o->pages, labyrinth_strerror(e));
                }
        }
    }
    for (unsigned i = 0; i < nres; i++) {
        struct result *r = &res[i];
        if (r->status != ST_OK)
            continue;
        struct alloc_fns f = fns_for(r->def->name);
        double v[3][128];
        unsigned n = 0;
        fprintf(stderr, "labyrinth bench: %s ...\n", r->def->name);
        for (unsigned run = 0; run < o->runs; run++, n++) {
            if (o->patterns & (1u << P_LIFO))
                v[0][n] = run_lifo(f, o->duration_us, &r->nulls);
            if (o->patterns & (1u << P_BURST))
                v[1][n] = run_burst(f, o->duration_us, &r->nulls);
            if (o->patterns & (1u << P_HANDOFF))
                v[2][n] = run_handoff(f, o->duration_us, &r->nulls, r->why, sizeof r->why);
        }
        if (o->patterns & (1u << P_LIFO))
            r->lifo_ns = median(v[0], n);
        if (o->patterns & (1u << P_BURST))
            r->burst_ns = median(v[1], n);
        if (o->patterns & (1u << P_HANDOFF))
            r->handoff_mops = median(v[2], n);
        if (o->patterns & (1u << P_LATENCY)) {
            r->hist = calloc(1, sizeof *r->hist);
            if (r->hist) {
                /* A warm-up, then the timed allocations. */
                run_latency(f, o->samples / 10 + 1, r->hist, &r->nulls);
                memset(r->hist, 0, sizeof *r->hist);
                run_latency(f, o->samples, r->hist, &r->nulls);
                r->lat_samples = tool_hist_total(r->hist);
                for (unsigned k = 0; k < NPCT; k++)
                    r->pct[k] = (double)(k + 1 < NPCT ? tool_hist_quantile(r->hist, pct_q[k])
                                                      : tool_hist_max(r->hist)) /
                                cyc_per_ns;
            }
        }
    }
    if (bz) {
        /* Every page went back: nothing in use, no misuse, invariants hold. */
        labyrinth_thread_release(bz);
        struct labyrinth_zone_stats st;
        labyrinth_zone_stats(bz, &st);
        zh->measured = true;
        zh->in_use = st.in_use_pages;
        zh->misuse = st.misuse_reports;
        zh->check = labyrinth_zone_check(bz);
        zh->leaks = labyrinth_zone_for_each_in_use(bz, NULL, NULL);
        labyrinth_zone_destroy(bz);
        bz = NULL;
    }
    return TOOL_OK;
}

/* ---- the labyrinth-bench engine ------------------------------------------------------ */

static bool exe_ok(const char *p) { return access(p, X_OK) == 0; }

/* Append ", s" (or s) to buf, truncating. */
static void append(char *buf, size_t len, const char *s)
{
    size_t l = strlen(buf);
    if (l && l + 2 < len) {
        buf[l++] = ',';
        buf[l++] = ' ';
    }
    while (*s && l + 1 < len)
        buf[l++] = *s++;
    buf[l] = 0;
}

/* Where labyrinth-bench may be: --bench-binary, beside this program, in a
 * build tree's bench/ (build/tools/labyrinth -> build/bench/), the tree
 * make bench builds (build-bench/), then PATH. */
static bool find_bench(const char *given, char *out, size_t len, char *looked, size_t llen)
{
    if (given) {
        snprintf(out, len, "%s", given);
        snprintf(looked, llen, "%s", given);
        return exe_ok(out);
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    looked[0] = 0;
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = 0;
        const char *rel[] = {"labyrinth-bench", "../bench/labyrinth-bench", "../../build-bench/bench/labyrinth-bench"};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            snprintf(out, len, "%s/%s", self, rel[i]);
            char real[PATH_MAX];
            if (realpath(out, real))
                snprintf(out, len, "%s", real);
            append(looked, llen, out);
            if (exe_ok(out))
                return true;
        }
    }
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path ? path : "");
    for (char *save, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, len, "%s/labyrinth-bench", d);
        if (exe_ok(out))
            return true;
    }
    append(looked, llen, "PATH");
    return false;
}

static double series_median(const struct tj *a, const char *key, char *err, size_t elen)
{
    const struct tj *s = tj_get(a, key);
    if (!s)
        return NAN;
    const struct tj *e = tj_get(s, "error");
    if (e && e->type == TJ_STR && !err[0])
        snprintf(err, elen, "%s: %s", key, e->str);
    return tj_num(s, "median");
}

static int run_external(const struct bench_opts *o, const char *bin, struct result *res, unsigned nres,
                        struct zone_health *zh, struct counter *ctr)
{
    char patterns[128] = "", peers[256] = "", runs[16], dur[32], samples[32];
    for (unsigned k = 0; k < P_COUNT; k++)
        if (o->patterns & (1u << k)) {
            size_t l = strlen(patterns);
            snprintf(patterns + l, sizeof patterns - l, "%s%s", l ? "," : "", pat_name[k]);
        }
    for (unsigned i = 0; i < nres; i++) {
        size_t l = strlen(peers);
        snprintf(peers + l, sizeof peers - l, "%s%s", l ? "," : "", res[i].def->name);
    }
    snprintf(runs, sizeof runs, "%u", o->runs);
    snprintf(dur, sizeof dur, "%llu", (unsigned long long)((o->duration_us + 999) / 1000));
    snprintf(samples, sizeof samples, "%llu", (unsigned long long)(o->samples < 1000 ? 1000 : o->samples));
    /* Its progress lines go to our stderr; its JSON comes back on a pipe. */
    char *argv[] = {(char *)bin, (char *)"--json", (char *)"--patterns", patterns,
                    (char *)"--peers", peers, (char *)"--runs", runs, (char *)"--duration", dur,
                    (char *)"--samples", samples, NULL};
    fprintf(stderr, "labyrinth bench: running %s --patterns %s --peers %s --runs %s --duration %s --samples %s\n",
            bin, patterns, peers, runs, dur, samples);
    fflush(NULL);
    int fds[2];
    if (pipe(fds) != 0) {
        perror("labyrinth bench: pipe");
        return TOOL_FAIL;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("labyrinth bench: fork");
        return TOOL_FAIL;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(bin, argv);
        fprintf(stderr, "labyrinth bench: cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            break;
        if (len + 4096 > cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        ssize_t r = read(fds[0], buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fds[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!buf) {
        fprintf(stderr, "labyrinth bench: out of memory\n");
        return TOOL_FAIL;
    }
    buf[len] = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "labyrinth bench: %s failed (exit status %d)\n", bin, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        free(buf);
        return TOOL_FAIL;
    }
    char err[200];
    struct tj *doc = tj_parse(buf, err, sizeof err);
    free(buf);
    const struct tj *al = doc ? tj_get(doc, "allocators") : NULL;
    if (!al || al->type != TJ_ARR) {
        fprintf(stderr, "labyrinth bench: cannot read %s's JSON: %s\n", bin, doc ? "no allocators" : err);
        tj_free(doc);
        return TOOL_FAIL;
    }
    /* Its counter's step and floor, which its latencies sit on. */
    const struct tj *tm = tj_get(doc, "timer");
    ctr->step_ns = tj_num(tm, "step_ns");
    ctr->floor_ns = tj_num(tj_get(tm, "floor"), "p50_ns");
    for (unsigned i = 0; i < nres; i++) {
        struct result *r = &res[i];
        const struct tj *a = NULL;
        for (size_t k = 0; k < al->n; k++)
            if (!strcmp(tj_str(al->kid[k], "name"), r->def->name))
                a = al->kid[k];
        if (!a) {
            r->status = ST_FAILED;
            snprintf(r->why, sizeof r->why, "labyrinth-bench did not report it");
            continue;
        }
        if (strcmp(tj_str(a, "status"), "ok") != 0) {
            r->status = ST_MISSING;
            snprintf(r->why, sizeof r->why, "%s", tj_str(a, "setup"));
            continue;
        }
        char e[sizeof r->why] = "";
        r->lifo_ns = series_median(a, "lifo_ns_per_pair", e, sizeof e);
        r->burst_ns = series_median(a, "burst_ns_per_pair", e, sizeof e);
        r->handoff_mops = series_median(a, "handoff_mops", e, sizeof e);
        snprintf(r->why, sizeof r->why, "%s", e);
        const struct tj *lat = tj_get(a, "latency_lifo");
        if (lat) {
            static const char *const keys[NPCT] = {"p50_ns", "p99_ns", "p99_9_ns", "p99_99_ns", "max_ns"};
            for (unsigned k = 0; k < NPCT; k++)
                r->pct[k] = tj_num(lat, keys[k]);
            double s = tj_num(lat, "samples");
            r->lat_samples = isfinite(s) ? (uint64_t)s : 0;
        }
        if (!strcmp(r->def->name, "labyrinth")) {
            /* Its account after the run: "... misuse_reports N, ..., in_use N, zone_check N violation(s)" */
            const char *after = tj_str(a, "after");
            const char *m = strstr(after, "misuse_reports "), *u = strstr(after, "in_use "),
                       *c = strstr(after, "zone_check ");
            if (m && u && c) {
                zh->measured = true;
                zh->misuse = strtoull(m + 15, NULL, 10);
                zh->in_use = strtoull(u + 7, NULL, 10);
                zh->check = strtol(c + 11, NULL, 10);
            }
        }
    }
    tj_free(doc);
    return TOOL_OK;
}

/* ---- report ----------------------------------------------------------------------------- */

static void fmt(char *out, size_t len, double v, int prec)
{
    if (isfinite(v))
        snprintf(out, len, "%.*f", prec, v);
    else
        snprintf(out, len, "-");
}

static void report_text(const struct bench_opts *o, const char *engine, struct result *res, unsigned nres,
                        const struct zone_health *zh, const struct counter *ctr)
{
    printf("labyrinth bench: %s engine, blocks of %u bytes, median of %u run(s) of %.0f ms\n", engine, BLOCK,
           o->runs, o->duration_us / 1e3);
    printf("%-15s %12s %13s %11s", "allocator", "LIFO ns/pair", "burst ns/pair", "handoff M/s");
    for (unsigned k = 0; k < NPCT; k++)
        printf(" %8s", pct_name[k]);
    printf("  (latency, ns)\n");
    for (unsigned i = 0; i < nres; i++) {
        const struct result *r = &res[i];
        if (r->status != ST_OK) {
            printf("%-15s %s: %s\n", r->def->name, r->status == ST_MISSING ? "MISSING" : r->status == ST_NOT_RUN
                                                                                          ? "NOT RUN"
                                                                                          : "FAILED",
                   r->why);
            continue;
        }
        char a[32], b[32], c[32];
        fmt(a, sizeof a, r->lifo_ns, 2);
        fmt(b, sizeof b, r->burst_ns, 2);
        fmt(c, sizeof c, r->handoff_mops, 1);
        printf("%-15s %12s %13s %11s", r->def->name, a, b, c);
        for (unsigned k = 0; k < NPCT; k++) {
            char p[32];
            fmt(p, sizeof p, r->pct[k], 0);
            printf(" %8s", p);
        }
        if (r->nulls)
            printf("  %llu NULLs", (unsigned long long)r->nulls);
        if (r->why[0])
            printf("  (%s)", r->why);
        printf("\n");
    }
    if (zh->measured)
        printf("labyrinth's zone after the runs: %zu pages in use, %llu misuse reports,\n"
               "  %ld invariant violation(s)\n",
               zh->in_use, zh->misuse, zh->check);
    char note[800], part[300];
    snprintf(note, sizeof note,
             "Lower ns is better; higher M/s is better.  Latency: each allocation timed alone with the cycle "
             "counter, LIFO pattern.");
    if (isfinite(ctr->step_ns)) {
        snprintf(part, sizeof part,
                 "  The counter moves in steps of %.1f ns here, so latencies are multiples of it and differences "
                 "below it are not seen.",
                 ctr->step_ns);
        strncat(note, part, sizeof note - strlen(note) - 1);
    }
    if (isfinite(ctr->floor_ns)) {
        snprintf(part, sizeof part, "  Two back-to-back reads of it take %.0f ns (its floor), included in every "
                                    "latency.", ctr->floor_ns);
        strncat(note, part, sizeof note - strlen(note) - 1);
    }
    tool_wrap(stdout, note, 79);
}

static void report_json(const struct bench_opts *o, const char *engine, struct result *res, unsigned nres,
                        const struct zone_health *zh, bool healthy, const struct counter *ctr)
{
    printf("{\"command\":\"bench\",\"engine\":");
    tool_json_str(stdout, engine);
    printf(",\"runs\":%u,\"duration_s\":%.6f,\"latency_samples\":%llu,\"block_bytes\":%u,\"patterns\":[", o->runs,
           o->duration_us / 1e6, (unsigned long long)o->samples, BLOCK);
    bool first = true;
    for (unsigned k = 0; k < P_COUNT; k++)
        if (o->patterns & (1u << k)) {
            printf("%s\"%s\"", first ? "" : ",", pat_name[k]);
            first = false;
        }
    printf("],\"counter\":{\"step_ns\":");
    tool_json_num(stdout, ctr->step_ns);
    printf(",\"floor_ns\":");
    tool_json_num(stdout, ctr->floor_ns);
    printf("},\"allocators\":[");
    for (unsigned i = 0; i < nres; i++) {
        const struct result *r = &res[i];
        printf("%s{\"name\":", i ? "," : "");
        tool_json_str(stdout, r->def->name);
        printf(",\"status\":\"%s\",\"calls\":", st_name[r->status]);
        tool_json_str(stdout, r->def->calls);
        printf(",\"reason\":");
        tool_json_str(stdout, r->why);
        if (r->status == ST_OK) {
            printf(",\"lifo_ns_per_pair\":");
            tool_json_num(stdout, r->lifo_ns);
            printf(",\"burst_ns_per_pair\":");
            tool_json_num(stdout, r->burst_ns);
            printf(",\"handoff_mops\":");
            tool_json_num(stdout, r->handoff_mops);
            printf(",\"nulls\":%llu,\"latency_ns\":{", (unsigned long long)r->nulls);
            for (unsigned k = 0; k < NPCT; k++) {
                printf("%s\"%s\":", k ? "," : "", pct_key[k]);
                tool_json_num(stdout, r->pct[k]);
            }
            printf(",\"samples\":%llu}", (unsigned long long)r->lat_samples);
        }
        printf("}");
    }
    printf("],\"labyrinth_zone\":");
    if (zh->measured)
        printf("{\"in_use_pages\":%zu,\"misuse_reports\":%llu,\"check_violations\":%ld}", zh->in_use, zh->misuse,
               zh->check);
    else
        printf("null");
    printf(",\"healthy\":%s}\n", healthy ? "true" : "false");
}

static int plot_bench(const char *file, const struct result *res, unsigned nres, double cyc_per_ns,
                      const char *engine)
{
    char dir[512], cdf[600], tput[600];
    if (!tool_tmpdir(dir, sizeof dir)) {
        fprintf(stderr, "labyrinth bench: cannot make a temporary directory: %s\n", strerror(errno));
        return -1;
    }
    snprintf(cdf, sizeof cdf, "%s/cdf.dat", dir);
    snprintf(tput, sizeof tput, "%s/tput.dat", dir);
    FILE *c = fopen(cdf, "w"), *t = fopen(tput, "w");
    if (!c || !t) {
        fprintf(stderr, "labyrinth bench: cannot write in %s: %s\n", dir, strerror(errno));
        if (c)
            fclose(c);
        if (t)
            fclose(t);
        tool_rmtree(dir);
        return -1;
    }
    /* The CDF: x = latency (ns), y = "nines" = -log10(1 - F): 50% is 0.3,
     * 99% is 2, 99.99% is 4; one data block per allocator. */
    char names[512] = "";
    unsigned nblocks = 0;
    double ymax = 1;
    for (unsigned i = 0; i < nres; i++) {
        const struct result *r = &res[i];
        if (r->status != ST_OK || !isfinite(r->pct[0]))
            continue;
        fprintf(c, "# %s\n", r->def->name);
        double nmax = r->lat_samples > 1 ? log10((double)r->lat_samples) : 1;
        if (r->hist) {
            uint64_t n = tool_hist_total(r->hist), acc = 0;
            for (unsigned b = 0; b < TOOL_HIST_BUCKETS && n; b++) {
                if (!r->hist->n[b])
                    continue;
                acc += r->hist->n[b];
                double f = (double)acc / (double)n;
                double y = f < 1 ? -log10(1 - f) : nmax;
                double x = (double)tool_hist_value(b) / cyc_per_ns;
                fprintf(c, "%.2f %.4f\n", x > 0.5 ? x : 0.5, y);
            }
        } else {
            for (unsigned k = 0; k < NPCT; k++)
                if (isfinite(r->pct[k]))
                    fprintf(c, "%.2f %.4f\n", r->pct[k] > 0.5 ? r->pct[k] : 0.5,
                            k + 1 < NPCT ? -log10(1 - pct_q[k]) : nmax);
        }
        fprintf(c, "\n\n");
        if (nmax > ymax)
            ymax = nmax;
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s%s", l ? " " : "", r->def->name);
        nblocks++;
    }
    fprintf(t, "# allocator lifo_mpairs burst_mpairs handoff_mops\n");
    unsigned nbars = 0;
    for (unsigned i = 0; i < nres; i++) {
        const struct result *r = &res[i];
        if (r->status != ST_OK)
            continue;
        double l = isfinite(r->lifo_ns) && r->lifo_ns > 0 ? 1e3 / r->lifo_ns : NAN;
        double b = isfinite(r->burst_ns) && r->burst_ns > 0 ? 1e3 / r->burst_ns : NAN;
        fprintf(t, "\"%s\"", r->def->name);
        double cols[3] = {l, b, r->handoff_mops};
        for (unsigned k = 0; k < 3; k++)
            if (isfinite(cols[k]))
                fprintf(t, " %.3f", cols[k]);
            else
                fprintf(t, " NaN");
        fprintf(t, "\n");
        nbars++;
    }
    fclose(c);
    fclose(t);
    char term[1400], script[8192], left[2048] = "", right[2048] = "";
    if (nblocks)
        snprintf(left, sizeof left,
                 "set title 'allocation latency, CDF (LIFO)'\n"
                 "set logscale x\n set xlabel 'latency (ns, log scale)'\n"
                 "set ylabel 'fraction of allocations at or below'\n"
                 "set yrange [0:%g]\n"
                 "set ytics ('0%%%%' 0, '50%%%%' 0.30103, '90%%%%' 1, '99%%%%' 2, '99.9%%%%' 3, '99.99%%%%' 4, "
                 "'99.999%%%%' 5, '99.9999%%%%' 6)\n"
                 "set key bottom right\n set grid\n"
                 "names = '%s'\n"
                 "plot for [i=1:%u] '%s' index (i-1) using 1:2 with %s lw 2 title word(names, i)\n",
                 ceil(ymax) + 0.2, names, nblocks, cdf, strcmp(engine, "built-in") ? "linespoints pt 7 ps 0.6" : "steps");
    else
        snprintf(left, sizeof left,
                 "set title 'allocation latency: not measured'\n unset key\n"
                 "set xrange [0:1]\n set yrange [0:1]\n plot 2 notitle\n");
    if (nbars)
        snprintf(right, sizeof right,
                 "reset\n set title 'throughput (higher is better)'\n"
                 "set style data histograms\n set style histogram clustered gap 1\n"
                 "set style fill solid 0.85 border -1\n set boxwidth 0.9\n"
                 "set ylabel 'million per second'\n set yrange [0:*]\n set grid ytics\n"
                 "set xtics rotate by -20\n set key top right\n"
                 "plot '%s' using 2:xtic(1) title 'LIFO pairs', '' using 3 title 'burst pairs', "
                 "'' using 4 title 'handoff blocks'\n",
                 tput);
    tool_plot_terminal(term, sizeof term, file, 1200, 520);
    snprintf(script, sizeof script,
             "%sset multiplot layout 1,2 title \"labyrinth bench (%s engine)\"\n%s%sunset multiplot\n", term, engine,
             left, right);
    int rc = tool_gnuplot("bench", script, file);
    tool_rmtree(dir);
    return rc;
}

/* ---- options ---------------------------------------------------------------------------- */

static void bench_usage(FILE *f)
{
    fprintf(f,
            "usage: labyrinth bench [options]\n"
            "  The benchmark patterns on 4 KiB blocks: LIFO (allocate one, free it),\n"
            "  burst (64 then free them), handoff (one thread allocates, a lock-free\n"
            "  ring carries the blocks, another frees them) and the latency of single\n"
            "  allocations, for labyrinth and its peers.  labyrinth (the ATOMIC call and\n"
            "  the seed's macro) and glibc are measured by this program; DPDK, tcmalloc,\n"
            "  jemalloc and mimalloc by labyrinth-bench (bench/, built by 'make bench'),\n"
            "  which is run when it is found.  Peers that cannot be run are listed with\n"
            "  the reason.\n"
            "options:\n"
            "  --patterns LIST   comma list of lifo, burst, handoff, latency, all (default all)\n"
            "  --peers LIST      comma list of labyrinth, labyrinth-seed, glibc, dpdk,\n"
            "                    tcmalloc, jemalloc, mimalloc, all (default all)\n"
            "  --duration T      length of one timed run, 1ms to 10m (default 200ms)\n"
            "  --runs N          runs per measurement; the median is reported (1..101,\n"
            "                    default 3)\n"
            "  --samples N       latency: allocations timed per allocator, 100 to 2^32\n"
            "                    (default 200k)\n"
            "  --pages N         built-in engine: labyrinth's zone size, 256 to 4194304\n"
            "                    pages (default 16384)\n"
            "  --engine E        auto (default), builtin, or labyrinth-bench\n"
            "  --bench-binary P  the labyrinth-bench program to run (default: beside this\n"
            "                    program, in the build tree, or in PATH)\n"
            "  --json            one JSON object on stdout instead of the table\n"
            "  --plot FILE       latency CDF per allocator and throughput bars into FILE\n"
            "                    (.png or .svg; needs gnuplot)\n"
            "  --help            this text\n"
            "Exit status: 0 done, 1 the run failed or labyrinth's zone was left unhealthy,\n"
            "2 bad usage.  Slow results are results, not failures.\n");
}

static bool parse_list(const char *s, const char *const *names, unsigned n, unsigned *mask)
{
    char buf[256];
    if (!*s || strlen(s) >= sizeof buf)
        return false;
    snprintf(buf, sizeof buf, "%s", s);
    *mask = 0;
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "all")) {
            *mask |= (1u << n) - 1;
            continue;
        }
        unsigned k;
        for (k = 0; k < n; k++)
            if (!strcmp(t, names[k]))
                break;
        if (k == n)
            return false;
        *mask |= 1u << k;
    }
    return *mask != 0;
}

int tool_bench(int argc, char **argv)
{
    struct bench_opts o = {.patterns = (1u << P_COUNT) - 1, .runs = 3, .duration_us = 200000,
                           .samples = 200000, .pages = 16384};
    for (unsigned i = 0; i < NPEERS; i++)
        o.peer_on[i] = true;
    const char *peer_names[NPEERS];
    for (unsigned i = 0; i < NPEERS; i++)
        peer_names[i] = peer_defs[i].name;
    static const struct option opts[] = {
        {"patterns", required_argument, 0, 'P'}, {"peers", required_argument, 0, 'p'},
        {"duration", required_argument, 0, 'd'}, {"runs", required_argument, 0, 'r'},
        {"samples", required_argument, 0, 's'},  {"pages", required_argument, 0, 'n'},
        {"engine", required_argument, 0, 'e'},   {"bench-binary", required_argument, 0, 'b'},
        {"json", no_argument, 0, 'j'},           {"plot", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    int c, li = 0;
    uint64_t v;
    unsigned mask = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, &li)) != -1) {
        bool ok = true;
        const char *valid = NULL;
        switch (c) {
        case 'P':
            ok = parse_list(optarg, pat_name, P_COUNT, &o.patterns);
            valid = "a comma list of lifo, burst, handoff, latency, all";
            break;
        case 'p':
            ok = parse_list(optarg, peer_names, NPEERS, &mask);
            for (unsigned i = 0; i < NPEERS; i++)
                o.peer_on[i] = mask & (1u << i);
            valid = "a comma list of labyrinth, labyrinth-seed, glibc, dpdk, tcmalloc, jemalloc, mimalloc, all";
            break;
        case 'd':
            ok = tool_parse_duration_us(optarg, &o.duration_us) && o.duration_us >= 1000 &&
                 o.duration_us <= 600000000;
            valid = "a duration from 1ms to 10m (a number with us, ms, s, m or h)";
            break;
        case 'r':
            ok = tool_parse_u64(optarg, &v) && v >= 1 && v <= 101;
            o.runs = (unsigned)v;
            valid = "from 1 to 101 runs";
            break;
        case 's':
            ok = tool_parse_u64(optarg, &o.samples) && o.samples >= 100 && o.samples <= (1ull << 32);
            valid = "from 100 to 4294967296 allocations (k and M allowed)";
            break;
        case 'n':
            ok = tool_parse_u64(optarg, &o.pages) && o.pages >= 256 && o.pages <= (1u << 22);
            valid = "a zone of 256 to 4194304 pages (k and M allowed)";
            break;
        case 'e':
            ok = !strcmp(optarg, "auto") || !strcmp(optarg, "builtin") || !strcmp(optarg, "labyrinth-bench");
            o.engine = !strcmp(optarg, "builtin") ? 1 : !strcmp(optarg, "labyrinth-bench") ? 2 : 0;
            valid = "auto, builtin or labyrinth-bench";
            break;
        case 'b': o.binary = optarg; break;
        case 'j': o.json = true; break;
        case 'o': o.plot = optarg; break;
        case 'h': bench_usage(stdout); return TOOL_OK;
        default: return tool_usage_hint("bench");
        }
        if (!ok)
            return tool_bad_value("bench", opts[li].name, optarg, valid);
    }
    if (optind < argc) {
        fprintf(stderr, "labyrinth bench: unexpected argument '%s'\n", argv[optind]);
        return TOOL_USAGE;
    }
    if (o.plot) {
        int rc = tool_plot_check("bench", o.plot);
        if (rc != TOOL_OK)
            return rc;
    }

    struct result res[NPEERS];
    unsigned nres = 0;
    bool want_external = false;
    for (unsigned i = 0; i < NPEERS; i++) {
        if (!o.peer_on[i])
            continue;
        struct result *r = &res[nres++];
        memset(r, 0, sizeof *r);
        r->def = &peer_defs[i];
        r->lifo_ns = r->burst_ns = r->handoff_mops = NAN;
        for (unsigned k = 0; k < NPCT; k++)
            r->pct[k] = NAN;
        want_external |= !peer_defs[i].builtin;
    }

    char bin[PATH_MAX + 64], looked[2048];
    bool have_bin = o.engine != 1 && find_bench(o.binary, bin, sizeof bin, looked, sizeof looked);
    bool external = o.engine == 2 || (o.engine == 0 && want_external && have_bin) || (o.engine == 0 && o.binary);
    if (external && !have_bin) {
        fprintf(stderr, "labyrinth bench: labyrinth-bench not found (looked at %s); build it with 'make bench' "
                        "or cmake -DLABYRINTH_BENCH=ON, or give --bench-binary\n",
                looked);
        return o.binary ? TOOL_USAGE : TOOL_FAIL;
    }
    struct zone_health zh = {0};
    double cyc_per_ns = tool_calibrate();
    struct counter ctr = {NAN, NAN};
    if (!external)
        ctr = measure_counter(cyc_per_ns);
    int rc;
    const char *engine = external ? "labyrinth-bench" : "built-in";
    if (external) {
        rc = run_external(&o, bin, res, nres, &zh, &ctr);
    } else {
        for (unsigned i = 0; i < nres; i++)
            if (!res[i].def->builtin) {
                res[i].status = ST_NOT_RUN;
                if (o.engine == 1)
                    snprintf(res[i].why, sizeof res[i].why, "measured only by labyrinth-bench (--engine auto)");
                else
                    snprintf(res[i].why, sizeof res[i].why, "needs labyrinth-bench, not found");
            }
        rc = run_builtin(&o, res, nres, &zh, cyc_per_ns);
    }
    if (rc != TOOL_OK)
        return rc;
    bool healthy = !zh.measured || (zh.in_use == 0 && zh.misuse == 0 && zh.check == 0 && zh.leaks == 0);
    for (unsigned i = 0; i < nres; i++)
        healthy &= res[i].status != ST_FAILED;
    if (o.json)
        report_json(&o, engine, res, nres, &zh, healthy, &ctr);
    else
        report_text(&o, engine, res, nres, &zh, &ctr);
    fflush(stdout);
    /* The peers not run, once, on stderr: the table and the JSON say so
     * per peer, briefly. */
    char notrun[256] = "";
    unsigned nnot = 0;
    for (unsigned i = 0; i < nres; i++)
        if (res[i].status == ST_NOT_RUN) {
            append(notrun, sizeof notrun, res[i].def->name);
            nnot++;
        }
    if (nnot && o.engine == 1)
        fprintf(stderr, "labyrinth bench: not run: %s\n  (labyrinth-bench measures %s; --engine auto runs it)\n",
                notrun, nnot > 1 ? "them" : "it");
    else if (nnot)
        fprintf(stderr,
                "labyrinth bench: not run: %s; %s labyrinth-bench, which was not found\n"
                "  beside this program, in the build tree or in PATH ('make bench' builds it,\n"
                "  --bench-binary names it)\n",
                notrun, nnot > 1 ? "they need" : "it needs");
    if (o.plot) {
        if (plot_bench(o.plot, res, nres, cyc_per_ns, engine) != 0)
            healthy = false;
        else
            fprintf(stderr, "labyrinth bench: wrote %s\n", o.plot);
    }
    for (unsigned i = 0; i < nres; i++)
        free(res[i].hist);
    if (!healthy)
        fprintf(stderr, "labyrinth bench: FAILED (a measurement failed or labyrinth's zone was left unhealthy)\n");
    return healthy ? TOOL_OK : TOOL_FAIL;
}
