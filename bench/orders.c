/*
 * orders.c - the orders pattern: blocks of 2^k pages (issue 4, item 5).
 *
 * Every allocator that can hand out naturally aligned blocks of 2^k pages
 * (struct lbb_order_ops) gets a fresh pool of LBB_POOL_PAGES pages (the
 * malloc peers are their own pool) and is measured at orders 0, 3 and 9:
 *
 *   LIFO    allocate one block, free it, repeat
 *   burst   allocate LBB_OBURST blocks, free them in the order they were
 *           allocated, repeat (per-thread caches of one block favour LIFO)
 *
 * each on one worker and on both workers at once (each thread its own
 * pairs, from a common start line; the slower thread's time counts), in
 * ns per pair per thread.  Runs interleave every allocator in every cell,
 * so ratios are taken within a run, as in run.c.
 *
 * Then each pool's metadata per page, and a resident-memory probe on a
 * fresh pool: resident pages after opening it, while holding 64 blocks of
 * order 3 and 8 of order 9 (every page of them written, as a user would),
 * and after freeing them (and after the pool's trim call, if it has one).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "patterns.h"
#include "results.h"
#include "timer.h"

const unsigned lbb_ord_k[LBB_NORD] = {0, 3, 9};

#define LBB_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- inner loops ---------------------------------------------------------------- */

LBB_NOINLINE LBB_NOCLONE uint64_t lbb_loop_order_lifo(const struct lbb_order_ops *ops, void *inst, unsigned k,
                                                      uint64_t pairs);
LBB_NOINLINE LBB_NOCLONE uint64_t lbb_loop_order_burst(const struct lbb_order_ops *ops, void *inst, unsigned k,
                                                       uint64_t pairs);

LBB_NOINLINE LBB_NOCLONE uint64_t lbb_loop_order_lifo(const struct lbb_order_ops *ops, void *inst, unsigned k,
                                                      uint64_t pairs)
{
    void *(*alloc)(void *, unsigned) = ops->alloc;
    void (*release)(void *, void *, unsigned) = ops->free;
    uint64_t fails = 0;
    for (uint64_t i = 0; i < pairs; i++) {
        void *b = alloc(inst, k);
        if (LBB_UNLIKELY(!b)) {
            fails++;
            continue;
        }
        lbb_escape(b);
        release(inst, b, k);
    }
    return fails;
}

LBB_NOINLINE LBB_NOCLONE uint64_t lbb_loop_order_burst(const struct lbb_order_ops *ops, void *inst, unsigned k,
                                                       uint64_t pairs)
{
    void *(*alloc)(void *, unsigned) = ops->alloc;
    void (*release)(void *, void *, unsigned) = ops->free;
    void *blk[LBB_OBURST];
    uint64_t fails = 0;
    for (uint64_t r = 0; r < pairs / LBB_OBURST; r++) {
        for (unsigned j = 0; j < LBB_OBURST; j++) {
            blk[j] = alloc(inst, k);
            if (LBB_UNLIKELY(!blk[j]))
                fails++;
        }
        lbb_escape(blk);
        for (unsigned j = 0; j < LBB_OBURST; j++)
            if (blk[j])
                release(inst, blk[j], k);
    }
    return fails;
}

/* ---- jobs ------------------------------------------------------------------------- */

struct lbb_ojob {
    const struct lbb_order_ops *ops;
    void *inst;
    unsigned order;
    bool burst;
    uint64_t iters;
    struct lbb_start *start;
    uint64_t t0, t1, fails;
};

static void lbb_ojob_run(void *arg)
{
    struct lbb_ojob *j = arg;
    if (j->start)
        lbb_start_wait(j->start);
    j->t0 = lbb_now_ns();
    j->fails = j->burst ? lbb_loop_order_burst(j->ops, j->inst, j->order, j->iters)
                        : lbb_loop_order_lifo(j->ops, j->inst, j->order, j->iters);
    j->t1 = lbb_now_ns();
}

static void lbb_ojob_done(void *arg)
{
    struct lbb_ojob *j = arg;
    if (j->ops->thread_done)
        j->ops->thread_done(j->inst);
}

/* Every worker that may have used inst lets go of its thread cache. */
static void lbb_orders_release(const struct lbb_order_ops *ops, void *inst)
{
    struct lbb_ojob j;
    memset(&j, 0, sizeof j);
    j.ops = ops;
    j.inst = inst;
    for (unsigned w = 0; w < 2; w++) {
        lbb_worker_post(w, lbb_ojob_done, &j);
        lbb_worker_wait(w);
    }
}

/* One measurement: elapsed ns of the slower thread for n pairs each. */
static uint64_t lbb_omeasure(const struct lbb_order_ops *ops, void *inst, unsigned k, enum lbb_ovariant v,
                             uint64_t n, uint64_t *fails)
{
    unsigned threads = (v == LBB_OV_LIFO2 || v == LBB_OV_BURST2) ? 2 : 1;
    struct lbb_start start;
    struct lbb_ojob j[2];
    lbb_start_init(&start, threads);
    for (unsigned w = 0; w < threads; w++) {
        memset(&j[w], 0, sizeof j[w]);
        j[w].ops = ops;
        j[w].inst = inst;
        j[w].order = k;
        j[w].burst = v == LBB_OV_BURST1 || v == LBB_OV_BURST2;
        j[w].iters = n;
        j[w].start = threads > 1 ? &start : NULL;
    }
    for (unsigned w = threads; w-- > 0;)
        lbb_worker_post(w, lbb_ojob_run, &j[w]);
    uint64_t ns = 0;
    for (unsigned w = 0; w < threads; w++) {
        lbb_worker_wait(w);
        *fails += j[w].fails;
        if (j[w].t1 - j[w].t0 > ns)
            ns = j[w].t1 - j[w].t0;
    }
    return ns ? ns : 1;
}

/* Pairs per thread that make one measurement last --duration (a multiple
 * of the burst), or exactly --iterations.  Doubles as the warm-up. */
static uint64_t lbb_ocalibrate(const struct lbb_opts *o, const struct lbb_order_ops *ops, void *inst, unsigned k,
                               enum lbb_ovariant v)
{
    uint64_t g = LBB_OBURST, fails = 0;
    if (o->iterations)
        return (o->iterations + g - 1) / g * g;
    uint64_t n = g * 4;
    for (;;) {
        uint64_t ns = lbb_omeasure(ops, inst, k, v, n, &fails);
        if (ns >= 2000000u || n >= (1ull << 34)) {
            double want = o->duration_ms * 1e6 / (double)ns * (double)n;
            uint64_t q = (uint64_t)(want / (double)g);
            return (q ? q : 1) * g;
        }
        n *= 4;
    }
}

/* ---- resident memory -------------------------------------------------------------- */

/* The process's VmRSS in pages, or -1. */
static long lbb_vmrss_pages(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    if (f)
        fclose(f);
    return kb < 0 ? -1 : kb * 1024 / sysconf(_SC_PAGESIZE);
}

#define LBB_RSS_O3 64u /* blocks of order 3 held by the probe */
#define LBB_RSS_O9 8u  /* blocks of order 9                    */

struct lbb_rss_job {
    struct lbb_peer *peer;
    enum lbb_omode mode;
    struct lbb_orss *out;
};

static long lbb_rss_now(const struct lbb_order_ops *ops, void *inst, long vm0, size_t *span)
{
    if (ops->resident)
        return (long)ops->resident(inst, span);
    long v = lbb_vmrss_pages();
    return v < 0 || vm0 < 0 ? -1 : v - vm0;
}

static void lbb_rss_run(void *arg)
{
    struct lbb_rss_job *j = arg;
    const struct lbb_order_ops *ops = j->peer->orders;
    struct lbb_orss *out = j->out;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), span = 0;
    memset(out, 0, sizeof *out);
    out->trimmed = -1;
    long vm0 = lbb_vmrss_pages();
    void *inst = ops->open(j->peer, LBB_POOL_PAGES, j->mode, out->error, sizeof out->error);
    if (!inst)
        return;
    out->vmrss = !ops->resident;
    out->res_open = lbb_rss_now(ops, inst, vm0, &span);
    void *held[LBB_RSS_O3 + LBB_RSS_O9];
    unsigned ord[LBB_RSS_O3 + LBB_RSS_O9], n = 0;
    for (unsigned i = 0; i < LBB_RSS_O3 + LBB_RSS_O9; i++) {
        unsigned k = i < LBB_RSS_O3 ? 3 : 9;
        void *b = ops->alloc(inst, k);
        if (!b)
            continue;
        for (size_t off = 0; off < (page << k); off += page)
            ((volatile char *)b)[off] = 1;
        held[n] = b;
        ord[n++] = k;
        out->held_pages += (size_t)1 << k;
    }
    out->res_held = lbb_rss_now(ops, inst, vm0, &span);
    for (unsigned i = 0; i < n; i++)
        ops->free(inst, held[i], ord[i]);
    if (ops->thread_done)
        ops->thread_done(inst);
    if (ops->trim)
        out->trimmed = ops->trim(inst);
    out->res_freed = lbb_rss_now(ops, inst, vm0, &span);
    out->span_pages = span;
    out->measured = true;
    ops->close(j->peer, inst);
}

static void lbb_rss_probe(struct lbb_peer *p, enum lbb_omode mode, struct lbb_orss *out)
{
    struct lbb_rss_job j = {p, mode, out};
    lbb_worker_post(0, lbb_rss_run, &j);
    lbb_worker_wait(0);
}

/* ---- the pattern ------------------------------------------------------------------ */

static bool lbb_orow(const struct lbb_row *row)
{
    return row->peer->ok && !row->peer->reference && row->peer->orders;
}

void lbb_orders_run(const struct lbb_opts *o, struct lbb_results *r)
{
    void *inst[LBB_MAX_PEERS] = {0};
    for (unsigned i = 0; i < r->nrows; i++) {
        struct lbb_row *row = &r->rows[i];
        memset(row->ord, 0, sizeof row->ord);
        row->ord_error[0] = 0;
        if (!lbb_orow(row))
            continue;
        lbb_progress("orders: setting up %s", row->peer->name);
        inst[i] = row->peer->orders->open(row->peer, LBB_POOL_PAGES, LBB_OM_ORDERS, row->ord_error,
                                          sizeof row->ord_error);
        if (!inst[i])
            continue;
        if (row->peer->orders->metadata) {
            row->meta_bytes = row->peer->orders->metadata(inst[i], row->meta_desc, sizeof row->meta_desc);
            row->meta_pages = LBB_POOL_PAGES;
        }
        for (unsigned a = 0; a < LBB_NORD; a++)
            for (unsigned v = 0; v < LBB_OV_N; v++) {
                struct lbb_series *s = &row->ord[a][v];
                s->iters = lbb_ocalibrate(o, row->peer->orders, inst[i], lbb_ord_k[a], v);
                s->measured = true;
            }
    }
    for (unsigned run = 0; run < o->runs; run++) {
        lbb_progress("orders: run %u/%u", run + 1, o->runs);
        for (unsigned a = 0; a < LBB_NORD; a++)
            for (unsigned v = 0; v < LBB_OV_N; v++)
                for (unsigned i = 0; i < r->nrows; i++) {
                    struct lbb_row *row = &r->rows[i];
                    struct lbb_series *s = &row->ord[a][v];
                    if (!inst[i] || !s->measured)
                        continue;
                    uint64_t ns = lbb_omeasure(row->peer->orders, inst[i], lbb_ord_k[a], v, s->iters, &s->fails);
                    s->v[s->n++] = (double)ns / (double)s->iters;
                }
    }
    for (unsigned i = 0; i < r->nrows; i++) {
        if (!inst[i])
            continue;
        lbb_orders_release(r->rows[i].peer->orders, inst[i]);
        r->rows[i].peer->orders->close(r->rows[i].peer, inst[i]);
    }

    /* Metadata of labyrinth with tracking off and one thread slot: what is
     * left is the descriptors and the shared part. */
    r->meta_1thread = -1;
    const struct lbb_row *lab = NULL;
    for (unsigned i = 0; i < r->nrows; i++)
        if (strcmp(r->rows[i].peer->name, "labyrinth") == 0 && lbb_orow(&r->rows[i]))
            lab = &r->rows[i];
    if (lab)
        lbb_labyrinth_meta_one_thread(&r->meta_1thread);

    /* Resident memory. */
    for (unsigned i = 0; i < r->nrows; i++) {
        struct lbb_row *row = &r->rows[i];
        memset(&row->rss, 0, sizeof row->rss);
        if (!lbb_orow(row))
            continue;
        lbb_progress("orders: resident memory, %s", row->peer->name);
        lbb_rss_probe(row->peer, LBB_OM_ORDERS, &row->rss);
    }
    memset(&r->rss_grow, 0, sizeof r->rss_grow);
    if (lab) {
        lbb_progress("orders: resident memory, labyrinth growing from one region");
        lbb_rss_probe(lab->peer, LBB_OM_GROW, &r->rss_grow);
    }
}
