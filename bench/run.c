/*
 * run.c - the measurements: every selected pattern, every peer, --runs
 * times, peers interleaved within each run so that drift (frequency,
 * neighbours on the host) hits all of them alike.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "patterns.h"
#include "results.h"
#include "timer.h"

const char *const lbb_pattern_name[LBB_P_COUNT] = {"lifo",    "burst",  "handoff", "scaling",
                                                    "latency", "orders", "frag",    "instr"};

/* Rows that are measured: real allocators that initialised. */
static bool lbb_row_active(const struct lbb_row *row)
{
    return row->peer->ok && !row->peer->reference;
}

/* The label of the bare ring's row. */
static struct lbb_peer lbb_ring_label = {.name = "bare SPSC ring", .ok = true};

/* A measurement: elapsed ns for n operations, or 0 with row error set. */
typedef uint64_t lbb_measure_fn(struct lbb_row *row, uint64_t n, uint64_t *fails, char *err, size_t errlen);

static unsigned lbb_ring_slots = 512;
/* The ring's publication batch for the next lbb_pair: 1 (every item) or
 * --ring-batch. */
static unsigned lbb_ring_batch = 1;
static void **lbb_ring_mem;

static void lbb_seterr(char *err, size_t len, const struct lbb_job *j)
{
    if (j->error == 1)
        snprintf(err, len, "thread set-up failed: %.120s", j->peer && j->peer->why[0] ? j->peer->why : "?");
    else if (j->error == 2)
        snprintf(err, len, "gave up: allocations kept failing for %llu s",
                 (unsigned long long)(LBB_GIVE_UP_NS / 1000000000u));
    else if (j->error == 3)
        snprintf(err, len, "never runs dry: %llu blocks taken without a NULL", (unsigned long long)j->cap);
}

/* One job on worker 0 alone. */
static uint64_t lbb_single(void (*fn)(void *), struct lbb_peer *p, uint64_t n, struct lbb_hist *h,
                           uint64_t *fails, char *err, size_t errlen)
{
    struct lbb_job j;
    memset(&j, 0, sizeof j);
    j.peer = p;
    j.iters = n;
    j.hist = h;
    lbb_worker_post(0, fn, &j);
    lbb_worker_wait(0);
    *fails += j.fails;
    if (j.error) {
        lbb_seterr(err, errlen, &j);
        return 0;
    }
    uint64_t ns = j.t1 - j.t0;
    return ns ? ns : 1;
}

static uint64_t lbb_m_lifo(struct lbb_row *row, uint64_t n, uint64_t *fails, char *err, size_t errlen)
{
    return lbb_single(lbb_job_lifo, row->peer, n, NULL, fails, err, errlen);
}

static uint64_t lbb_m_burst(struct lbb_row *row, uint64_t n, uint64_t *fails, char *err, size_t errlen)
{
    return lbb_single(lbb_job_burst, row->peer, n, NULL, fails, err, errlen);
}

/* Producer on worker 0, consumer on worker 1; elapsed from the start line
 * to the consumer's last free. */
static uint64_t lbb_pair(void (*prod)(void *), void (*cons)(void *), struct lbb_peer *p, uint64_t n,
                         struct lbb_hist *h, uint64_t *fails, char *err, size_t errlen)
{
    struct lbb_spsc ring;
    struct lbb_start start;
    struct lbb_job jp, jc;
    lbb_spsc_init(&ring, lbb_ring_mem, lbb_ring_slots, lbb_ring_batch);
    lbb_start_init(&start, 2);
    memset(&jp, 0, sizeof jp);
    jp.peer = p;
    jp.iters = n;
    jp.start = &start;
    jp.ring = &ring;
    jp.hist = h;
    jc = jp;
    jc.hist = NULL;
    lbb_worker_post(1, cons, &jc);
    lbb_worker_post(0, prod, &jp);
    lbb_worker_wait(0);
    lbb_worker_wait(1);
    *fails += jp.fails;
    if (jp.error || jc.error) {
        lbb_seterr(err, errlen, jp.error ? &jp : &jc);
        return 0;
    }
    uint64_t t0 = jp.t0 < jc.t0 ? jp.t0 : jc.t0;
    uint64_t ns = jc.t1 - t0;
    return ns ? ns : 1;
}

/* The handoff row of an allocator, or the bare ring's row. */
static uint64_t lbb_m_handoff(struct lbb_row *row, uint64_t n, uint64_t *fails, char *err, size_t errlen)
{
    if (row->peer == &lbb_ring_label)
        return lbb_pair(lbb_job_ring_producer, lbb_job_ring_consumer, NULL, n, NULL, fails, err, errlen);
    return lbb_pair(lbb_job_producer, lbb_job_consumer, row->peer, n, NULL, fails, err, errlen);
}

/* Two workers, each n LIFO pairs, from one start line; the slower one's
 * elapsed time. */
static uint64_t lbb_m_two(struct lbb_row *row, uint64_t n, uint64_t *fails, char *err, size_t errlen)
{
    struct lbb_start start;
    struct lbb_job j[2];
    lbb_start_init(&start, 2);
    for (unsigned w = 0; w < 2; w++) {
        memset(&j[w], 0, sizeof j[w]);
        j[w].peer = row->peer;
        j[w].iters = n;
        j[w].start = &start;
    }
    lbb_worker_post(1, lbb_job_lifo, &j[1]);
    lbb_worker_post(0, lbb_job_lifo, &j[0]);
    lbb_worker_wait(0);
    lbb_worker_wait(1);
    uint64_t ns = 0;
    for (unsigned w = 0; w < 2; w++) {
        *fails += j[w].fails;
        if (j[w].error) {
            lbb_seterr(err, errlen, &j[w]);
            return 0;
        }
        if (j[w].t1 - j[w].t0 > ns)
            ns = j[w].t1 - j[w].t0;
    }
    return ns ? ns : 1;
}

/* How many operations make one measurement last --duration (or exactly
 * --iterations), in multiples of granule.  Doubles as the warm-up. */
static uint64_t lbb_calibrate(const struct lbb_opts *o, lbb_measure_fn *m, struct lbb_row *row,
                              uint64_t granule, char *err, size_t errlen)
{
    if (o->iterations)
        return (o->iterations + granule - 1) / granule * granule;
    uint64_t n = granule * 16, fails = 0;
    for (;;) {
        uint64_t ns = m(row, n, &fails, err, errlen);
        if (!ns)
            return 0;
        if (ns >= 2000000u || n >= (1ull << 34)) {
            double want = o->duration_ms * 1e6 / (double)ns * (double)n;
            uint64_t k = (uint64_t)(want / (double)granule);
            return (k ? k : 1) * granule;
        }
        n *= 4;
    }
}

static void lbb_series_fail(struct lbb_series *s, const char *err)
{
    s->measured = false;
    snprintf(s->error, sizeof s->error, "%s", err);
}

/* Calibrate and measure one series per row (value = per_op ? ns per
 * operation : millions of operations per second).  Every run measures
 * every row once, in the same order. */
/* Which series of a row a pattern fills. */
enum lbb_sid { LBB_S_LIFO, LBB_S_BURST, LBB_S_HANDOFF, LBB_S_HANDOFF_BATCHED };

static struct lbb_series *lbb_series_of(struct lbb_row *row, enum lbb_sid sid)
{
    switch (sid) {
    case LBB_S_LIFO: return &row->lifo;
    case LBB_S_BURST: return &row->burst;
    case LBB_S_HANDOFF: return &row->handoff;
    default: return &row->handoff_b;
    }
}

static void lbb_pattern(const struct lbb_opts *o, struct lbb_row *const *rows, unsigned nrows, const char *what,
                        enum lbb_sid pat, lbb_measure_fn *m, uint64_t granule, bool per_op)
{
    char err[160];
    for (unsigned i = 0; i < nrows; i++) {
        struct lbb_row *row = rows[i];
        struct lbb_series *s = lbb_series_of(row, pat);
        memset(s, 0, sizeof *s);
        if (!lbb_row_active(row))
            continue;
        err[0] = 0;
        s->iters = lbb_calibrate(o, m, row, granule, err, sizeof err);
        s->measured = s->iters != 0;
        if (!s->measured)
            lbb_series_fail(s, err);
    }
    for (unsigned run = 0; run < o->runs; run++) {
        lbb_progress("%s: run %u/%u", what, run + 1, o->runs);
        for (unsigned i = 0; i < nrows; i++) {
            struct lbb_row *row = rows[i];
            struct lbb_series *s = lbb_series_of(row, pat);
            if (!s->measured)
                continue;
            err[0] = 0;
            uint64_t ns = m(row, s->iters, &s->fails, err, sizeof err);
            if (!ns) {
                lbb_series_fail(s, err);
                continue;
            }
            double ops = (double)s->iters;
            s->v[s->n++] = per_op ? (double)ns / ops : ops * 1e3 / (double)ns;
        }
    }
}

/* Blocks moved from worker 0 to worker 1 before "after handoff" run k:
 * LBB_CHURN + k, so that where the handoff stops (which block is on top of
 * each thread's cache) varies from run to run instead of always falling
 * on the same magazine boundary. */
#define LBB_CHURN 4096u

/* Scaling: per run, n LIFO pairs on one thread, then n on each of two
 * threads at once.  Then a second series: before each run an untimed
 * handoff of about LBB_CHURN blocks from worker 0 to worker 1 (as a packet
 * loop does), then the two threads again.  Allocators whose per-thread
 * state ends up sharing cache lines after pages changed threads show it
 * there. */
static void lbb_scaling(const struct lbb_opts *o, struct lbb_results *r)
{
    char err[160];
    for (unsigned i = 0; i < r->nrows; i++) {
        struct lbb_row *row = &r->rows[i];
        memset(&row->scale1, 0, sizeof row->scale1);
        memset(&row->scale2, 0, sizeof row->scale2);
        memset(&row->scale2h, 0, sizeof row->scale2h);
        if (!lbb_row_active(row))
            continue;
        err[0] = 0;
        uint64_t n = lbb_calibrate(o, lbb_m_lifo, row, 1, err, sizeof err);
        row->scale1.iters = row->scale2.iters = row->scale2h.iters = n;
        row->scale1.measured = row->scale2.measured = row->scale2h.measured = n != 0;
        if (!n) {
            lbb_series_fail(&row->scale1, err);
            lbb_series_fail(&row->scale2, err);
            lbb_series_fail(&row->scale2h, err);
        }
    }
    for (unsigned run = 0; run < o->runs; run++) {
        lbb_progress("scaling: run %u/%u", run + 1, o->runs);
        for (unsigned i = 0; i < r->nrows; i++) {
            struct lbb_row *row = &r->rows[i];
            if (!row->scale1.measured || !row->scale2.measured)
                continue;
            uint64_t n = row->scale1.iters;
            err[0] = 0;
            uint64_t ns1 = lbb_m_lifo(row, n, &row->scale1.fails, err, sizeof err);
            uint64_t ns2 = ns1 ? lbb_m_two(row, n, &row->scale2.fails, err, sizeof err) : 0;
            if (!ns1 || !ns2) {
                lbb_series_fail(&row->scale1, err);
                lbb_series_fail(&row->scale2, err);
                continue;
            }
            row->scale1.v[row->scale1.n++] = (double)n * 1e3 / (double)ns1;
            row->scale2.v[row->scale2.n++] = 2.0 * (double)n * 1e3 / (double)ns2;
        }
    }
    for (unsigned run = 0; run < o->runs; run++) {
        lbb_progress("scaling after handoff: run %u/%u", run + 1, o->runs);
        for (unsigned i = 0; i < r->nrows; i++) {
            struct lbb_row *row = &r->rows[i];
            if (!row->scale2h.measured)
                continue;
            uint64_t n = row->scale2h.iters, churn_fails = 0;
            err[0] = 0;
            uint64_t ns = lbb_pair(lbb_job_producer, lbb_job_consumer, row->peer, LBB_CHURN + 1 + run, NULL,
                                   &churn_fails, err, sizeof err);
            if (ns)
                ns = lbb_m_two(row, n, &row->scale2h.fails, err, sizeof err);
            if (!ns) {
                lbb_series_fail(&row->scale2h, err);
                continue;
            }
            row->scale2h.v[row->scale2h.n++] = 2.0 * (double)n * 1e3 / (double)ns;
        }
    }
}

static void lbb_lat_fill(struct lbb_latency *l, struct lbb_hist *h, double ticks_per_ns)
{
    l->samples = h->n;
    for (unsigned k = 0; k < LBB_NPCT; k++)
        l->ns[k] = (double)lbb_hist_pct(h, lbb_pct_q[k]) / ticks_per_ns;
    l->measured = true;
}

/* The failure latency of row (issue 12 target 4): both workers take every
 * block they can reach (worker 1 first: what it has cached is out of
 * worker 0's reach), then worker 0, which drained last, times n failing
 * allocations, and so does a new thread (no cache of its own); then the
 * blocks go back, each freed by the thread that took it.  A peer that
 * never runs dry (malloc grows) is not measured. */
static void lbb_fail_latency(struct lbb_row *row, uint64_t n, struct lbb_hist *h, double ticks_per_ns)
{
    static void *hold[2][4 * LBB_POOL_PAGES];
    struct lbb_job jd[2];
    char err[160] = "";
    for (unsigned w = 2; w-- > 0;) {
        memset(&jd[w], 0, sizeof jd[w]);
        jd[w].peer = row->peer;
        jd[w].hold = hold[w];
        jd[w].cap = 4 * LBB_POOL_PAGES;
        lbb_worker_post(w, lbb_job_drain, &jd[w]);
        lbb_worker_wait(w);
    }
    row->fail_drained = jd[0].held + jd[1].held;
    if (jd[0].error || jd[1].error) {
        lbb_seterr(err, sizeof err, jd[0].error ? &jd[0] : &jd[1]);
        snprintf(row->lat_fail.error, sizeof row->lat_fail.error, "%s", err);
        snprintf(row->lat_fail_fresh.error, sizeof row->lat_fail_fresh.error, "%s", err);
    } else {
        struct lbb_job jt = jd[0];
        jt.iters = n;
        jt.hist = h;
        jt.fails = 0;
        lbb_hist_reset(h);
        lbb_worker_post(0, lbb_job_lat_fail, &jt);
        lbb_worker_wait(0);
        jd[0].held = jt.held;
        row->lat_fail.fails = jt.fails;
        if (jt.error) {
            lbb_seterr(err, sizeof err, &jt);
            snprintf(row->lat_fail.error, sizeof row->lat_fail.error, "%s", err);
        } else
            lbb_lat_fill(&row->lat_fail, h, ticks_per_ns);
        /* The new thread keeps what it got (nothing, if dry) in its own
         * hold and frees it before it ends. */
        static void *fresh_hold[LBB_POOL_PAGES];
        struct lbb_job jf;
        memset(&jf, 0, sizeof jf);
        jf.peer = row->peer;
        jf.iters = n;
        jf.hist = h;
        jf.hold = fresh_hold;
        jf.cap = LBB_POOL_PAGES;
        lbb_hist_reset(h);
        if (lbb_run_fresh(lbb_job_lat_fail, &jf) == 0 && !jf.error) {
            row->lat_fail_fresh.fails = jf.fails;
            lbb_lat_fill(&row->lat_fail_fresh, h, ticks_per_ns);
        } else {
            lbb_seterr(err, sizeof err, &jf);
            snprintf(row->lat_fail_fresh.error, sizeof row->lat_fail_fresh.error, "%s",
                     err[0] ? err : "thread creation failed");
        }
        /* What the new thread got back (a pool not dry after all): freed
         * by worker 0, as a cross-thread free. */
        for (uint64_t i = 0; i < jf.held && i + jd[0].held < jd[0].cap; i++)
            hold[0][jd[0].held++] = fresh_hold[i];
    }
    for (unsigned w = 0; w < 2; w++) {
        lbb_worker_post(w, lbb_job_undrain, &jd[w]);
        lbb_worker_wait(w);
    }
}

static void lbb_latency(const struct lbb_opts *o, struct lbb_results *r)
{
    struct lbb_hist h;
    char err[160];
    if (lbb_hist_init(&h)) {
        for (unsigned i = 0; i < r->nrows; i++) {
            snprintf(r->rows[i].lat_lifo.error, sizeof r->rows[i].lat_lifo.error, "out of memory");
            snprintf(r->rows[i].lat_handoff.error, sizeof r->rows[i].lat_handoff.error, "out of memory");
        }
        return;
    }
    uint64_t n = o->lat_samples, fails = 0;
    lbb_progress("latency: timer floor");
    lbb_single(lbb_job_floor, NULL, n, &h, &fails, err, sizeof err);
    lbb_lat_fill(&r->floor, &h, r->ticks_per_ns);
    for (unsigned i = 0; i < r->nrows; i++) {
        struct lbb_row *row = &r->rows[i];
        if (!lbb_row_active(row))
            continue;
        lbb_progress("latency: %s", row->peer->name);
        uint64_t warm = 0;
        err[0] = 0;
        /* Warm-up: a few LIFO pairs, then the timed LIFO allocations. */
        if (!lbb_single(lbb_job_lifo, row->peer, 16384, NULL, &warm, err, sizeof err)) {
            snprintf(row->lat_lifo.error, sizeof row->lat_lifo.error, "%s", err);
            snprintf(row->lat_handoff.error, sizeof row->lat_handoff.error, "%s", err);
            continue;
        }
        lbb_hist_reset(&h);
        row->lat_lifo.fails = 0;
        if (lbb_single(lbb_job_lat_lifo, row->peer, n, &h, &row->lat_lifo.fails, err, sizeof err))
            lbb_lat_fill(&row->lat_lifo, &h, r->ticks_per_ns);
        else
            snprintf(row->lat_lifo.error, sizeof row->lat_lifo.error, "%s", err);
        /* Handoff: the producer times each of its allocations. */
        if (!lbb_pair(lbb_job_producer, lbb_job_consumer, row->peer, 16384, NULL, &warm, err, sizeof err)) {
            snprintf(row->lat_handoff.error, sizeof row->lat_handoff.error, "%s", err);
            continue;
        }
        lbb_hist_reset(&h);
        row->lat_handoff.fails = 0;
        if (lbb_pair(lbb_job_producer, lbb_job_consumer, row->peer, n, &h, &row->lat_handoff.fails, err,
                     sizeof err))
            lbb_lat_fill(&row->lat_handoff, &h, r->ticks_per_ns);
        else
            snprintf(row->lat_handoff.error, sizeof row->lat_handoff.error, "%s", err);
        if (row->peer->grows) {
            snprintf(row->lat_fail.error, sizeof row->lat_fail.error, "never runs dry (it grows)");
            snprintf(row->lat_fail_fresh.error, sizeof row->lat_fail_fresh.error, "never runs dry (it grows)");
        } else {
            lbb_progress("latency: %s, failed allocations of a drained pool", row->peer->name);
            lbb_fail_latency(row, n / 4 ? n / 4 : 1, &h, r->ticks_per_ns);
        }
    }
    lbb_hist_free(&h);
}

void lbb_timer_setup(struct lbb_results *r)
{
    lbb_progress("calibrating the cycle counter");
    r->ticks_per_ns = lbb_timer_calibrate();
    uint64_t step = UINT64_MAX, prev = lbb_tick_start();
    for (unsigned i = 0; i < 1000000; i++) {
        uint64_t now = lbb_tick_start();
        if (now != prev && now - prev < step)
            step = now - prev;
        prev = now;
    }
    r->tick_step_ns = step == UINT64_MAX ? NAN : (double)step / r->ticks_per_ns;
}

/* The first three fields of /proc/loadavg: other work on the machine
 * shows in the numbers, so the report says how busy it was. */
static void lbb_loadavg(char *out, size_t len)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double a = 0, b = 0, c = 0;
    if (f && fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
        snprintf(out, len, "%.2f %.2f %.2f", a, b, c);
    else
        snprintf(out, len, "unknown");
    if (f)
        fclose(f);
}

/* CPU time (clock ticks) of the whole machine (busy, and stolen by the
 * hypervisor) and of this process, from /proc. */
struct lbb_cpu_times {
    unsigned long long busy, steal, self;
    bool ok;
};

static void lbb_cpu_times(struct lbb_cpu_times *t)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    if (f && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                    &v[6], &v[7]) == 8) {
        t->busy = v[0] + v[1] + v[2] + v[5] + v[6]; /* user nice system irq softirq */
        t->steal = v[7];
        t->ok = true;
    }
    if (f)
        fclose(f);
    f = fopen("/proc/self/stat", "r");
    char buf[1024];
    t->ok = t->ok && f && fgets(buf, sizeof buf, f);
    if (f)
        fclose(f);
    if (t->ok) {
        /* Fields after the ")" that ends the command name: state is 3,
         * utime 14 and stime 15. */
        char *p = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        t->ok = p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2;
        t->self = ut + st;
    }
}

void lbb_run_all(const struct lbb_opts *o, struct lbb_results *r)
{
    uint64_t t0 = lbb_now_ns();
    struct lbb_cpu_times c0, c1;
    lbb_cpu_times(&c0);
    lbb_loadavg(r->load_before, sizeof r->load_before);
    lbb_ring_slots = o->ring_slots;
    lbb_ring_mem = calloc(lbb_ring_slots, sizeof *lbb_ring_mem);
    if (!lbb_ring_mem) {
        fprintf(stderr, "labyrinth-bench: out of memory\n");
        exit(1);
    }
    if (lbb_workers_start(2, o->pin)) {
        fprintf(stderr, "labyrinth-bench: cannot start the worker threads\n");
        exit(1);
    }
    r->worker_cpu[0] = lbb_worker_cpu(0);
    r->worker_cpu[1] = lbb_worker_cpu(1);
    unsigned p = o->patterns;
    struct lbb_row *rows[LBB_MAX_PEERS + 1];
    for (unsigned i = 0; i < r->nrows; i++)
        rows[i] = &r->rows[i];
    if (p & (1u << LBB_P_LIFO))
        lbb_pattern(o, rows, r->nrows, "lifo", LBB_S_LIFO, lbb_m_lifo, 1, true);
    if (p & (1u << LBB_P_BURST))
        lbb_pattern(o, rows, r->nrows, "burst", LBB_S_BURST, lbb_m_burst, LBB_BURST, true);
    if (p & (1u << LBB_P_SCALING))
        lbb_scaling(o, r);
    if (p & (1u << LBB_P_HANDOFF)) {
        /* The bare ring is one more row, measured in the same runs. */
        static struct lbb_row ring;
        memset(&ring, 0, sizeof ring);
        ring.peer = &lbb_ring_label;
        rows[r->nrows] = &ring;
        lbb_pattern(o, rows, r->nrows + 1, "handoff", LBB_S_HANDOFF, lbb_m_handoff, 1, false);
        /* Again with the ring's indices published in batches. */
        lbb_ring_batch = o->ring_batch;
        lbb_pattern(o, rows, r->nrows + 1, "handoff, batched ring", LBB_S_HANDOFF_BATCHED, lbb_m_handoff, 1, false);
        lbb_ring_batch = 1;
        r->ring = ring.handoff;
        r->ring_b = ring.handoff_b;
    }
    if (p & (1u << LBB_P_LATENCY))
        lbb_latency(o, r);
    if (p & (1u << LBB_P_ORDERS))
        lbb_orders_run(o, r);
    if (p & (1u << LBB_P_FRAG))
        lbb_frag_run(o, r);
    lbb_workers_stop();
    for (unsigned i = 0; i < r->nrows; i++)
        if (r->rows[i].peer->describe && r->rows[i].peer->ok)
            r->rows[i].peer->describe(r->rows[i].peer, r->rows[i].after, sizeof r->rows[i].after);
    free(lbb_ring_mem);
    lbb_loadavg(r->load_after, sizeof r->load_after);
    r->wall_s = (double)(lbb_now_ns() - t0) / 1e9;
    lbb_cpu_times(&c1);
    long hz = sysconf(_SC_CLK_TCK), ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    r->others_pct = r->steal_pct = NAN;
    if (c0.ok && c1.ok && hz > 0 && ncpu > 0 && r->wall_s > 0) {
        double avail = r->wall_s * (double)hz * (double)ncpu;
        double others = (double)(c1.busy - c0.busy) - (double)(c1.self - c0.self);
        r->others_pct = 100.0 * (others > 0 ? others : 0) / avail;
        r->steal_pct = 100.0 * (double)(c1.steal - c0.steal) / avail;
    }
}
