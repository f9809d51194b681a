/*
 * patterns.c - LIFO, burst, handoff, the bare ring, latency and the timer
 * floor.
 */
#include "patterns.h"

#include "timer.h"

#include <time.h>

#define LBB_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- inner loops ---------------------------------------------------------------- */

LBB_NOINLINE LBB_NOCLONE uint64_t lbb_loop_lifo(struct lbb_peer *p, void *tctx, uint64_t pairs)
{
    lbb_alloc_fn *alloc = p->alloc;
    lbb_free_fn *release = p->free;
    uint64_t fails = 0;
    for (uint64_t i = 0; i < pairs; i++) {
        void *b = alloc(tctx);
        if (LBB_UNLIKELY(!b)) {
            fails++;
            continue;
        }
        lbb_escape(b);
        release(tctx, b);
    }
    return fails;
}

LBB_NOINLINE LBB_NOCLONE uint64_t lbb_loop_burst(struct lbb_peer *p, void *tctx, uint64_t pairs)
{
    lbb_alloc_fn *alloc = p->alloc;
    lbb_free_fn *release = p->free;
    void *blk[LBB_BURST];
    uint64_t fails = 0;
    for (uint64_t r = 0; r < pairs / LBB_BURST; r++) {
        for (unsigned j = 0; j < LBB_BURST; j++) {
            blk[j] = alloc(tctx);
            if (LBB_UNLIKELY(!blk[j]))
                fails++;
        }
        lbb_escape(blk);
        /* Freed in the order they were allocated. */
        for (unsigned j = 0; j < LBB_BURST; j++)
            if (blk[j])
                release(tctx, blk[j]);
    }
    return fails;
}

/* ---- jobs ------------------------------------------------------------------------- */

/* The calling worker's context for the job's peer; on failure the job is
 * marked and still passes the start line (its partner must not hang). */
static void *lbb_job_ctx(struct lbb_job *j)
{
    void *ctx = lbb_tctx(j->peer);
    if (!ctx)
        j->error = 1;
    return ctx;
}

static void lbb_job_begin(struct lbb_job *j)
{
    if (j->start)
        lbb_start_wait(j->start);
    j->t0 = lbb_now_ns();
}

void lbb_job_lifo(void *arg)
{
    struct lbb_job *j = arg;
    void *ctx = lbb_job_ctx(j);
    lbb_job_begin(j);
    if (ctx)
        j->fails = lbb_loop_lifo(j->peer, ctx, j->iters);
    j->t1 = lbb_now_ns();
}

void lbb_job_burst(void *arg)
{
    struct lbb_job *j = arg;
    void *ctx = lbb_job_ctx(j);
    lbb_job_begin(j);
    if (ctx)
        j->fails = lbb_loop_burst(j->peer, ctx, j->iters);
    j->t1 = lbb_now_ns();
}

static void lbb_push_spin(struct lbb_spsc *r, void *p)
{
    while (!lbb_spsc_push(r, p))
        lbb_cpu_relax();
}

/* The producer's last word: the stop token, and everything published. */
static void lbb_push_stop(struct lbb_spsc *r)
{
    lbb_push_spin(r, LBB_STOP);
    lbb_spsc_flush(r);
}

void lbb_job_producer(void *arg)
{
    struct lbb_job *j = arg;
    void *ctx = lbb_job_ctx(j);
    lbb_job_begin(j);
    if (!ctx) {
        lbb_push_stop(j->ring);
        j->t1 = lbb_now_ns();
        return;
    }
    lbb_alloc_fn *alloc = j->peer->alloc;
    struct lbb_hist *h = j->hist;
    uint64_t fails = 0;
    for (uint64_t i = 0; i < j->iters; i++) {
        void *b;
        for (;;) {
            if (h) {
                uint64_t c0 = lbb_tick_start();
                b = alloc(ctx);
                uint64_t c1 = lbb_tick_stop();
                lbb_hist_add(h, c1 - c0);
            } else {
                b = alloc(ctx);
            }
            if (b)
                break;
            /* The consumer still holds pages: it will free them. */
            fails++;
            if ((fails & 1023) == 0 && lbb_now_ns() - j->t0 > LBB_GIVE_UP_NS) {
                j->error = 2;
                j->fails = fails;
                lbb_push_stop(j->ring);
                j->t1 = lbb_now_ns();
                return;
            }
            lbb_cpu_relax();
        }
        lbb_push_spin(j->ring, b);
    }
    lbb_spsc_flush(j->ring);
    j->fails = fails;
    j->t1 = lbb_now_ns();
}

void lbb_job_consumer(void *arg)
{
    struct lbb_job *j = arg;
    void *ctx = lbb_job_ctx(j);
    lbb_job_begin(j);
    lbb_free_fn *release = j->peer->free;
    for (uint64_t i = 0; i < j->iters; i++) {
        void *b;
        while (!(b = lbb_spsc_pop(j->ring)))
            lbb_cpu_relax();
        if (b == LBB_STOP)
            break;
        if (ctx)
            release(ctx, b);
    }
    j->t1 = lbb_now_ns();
}

/* Something for the bare ring to pass: any non-NULL pointer. */
static char lbb_token[64];

void lbb_job_ring_producer(void *arg)
{
    struct lbb_job *j = arg;
    lbb_job_begin(j);
    for (uint64_t i = 0; i < j->iters; i++) {
        void *b = &lbb_token[i & 63];
        lbb_escape(b);
        lbb_push_spin(j->ring, b);
    }
    lbb_spsc_flush(j->ring);
    j->t1 = lbb_now_ns();
}

void lbb_job_ring_consumer(void *arg)
{
    struct lbb_job *j = arg;
    lbb_job_begin(j);
    for (uint64_t i = 0; i < j->iters; i++) {
        void *b;
        while (!(b = lbb_spsc_pop(j->ring)))
            lbb_cpu_relax();
        lbb_escape(b);
    }
    j->t1 = lbb_now_ns();
}

void lbb_job_lat_lifo(void *arg)
{
    struct lbb_job *j = arg;
    void *ctx = lbb_job_ctx(j);
    lbb_job_begin(j);
    if (ctx) {
        lbb_alloc_fn *alloc = j->peer->alloc;
        lbb_free_fn *release = j->peer->free;
        struct lbb_hist *h = j->hist;
        for (uint64_t i = 0; i < j->iters; i++) {
            uint64_t c0 = lbb_tick_start();
            void *b = alloc(ctx);
            uint64_t c1 = lbb_tick_stop();
            lbb_hist_add(h, c1 - c0);
            if (LBB_UNLIKELY(!b)) {
                j->fails++;
                continue;
            }
            release(ctx, b);
        }
    }
    j->t1 = lbb_now_ns();
}

void lbb_job_drain(void *arg)
{
    struct lbb_job *j = arg;
    void *ctx = lbb_job_ctx(j);
    lbb_job_begin(j);
    if (ctx) {
        /* Dry means three NULLs in a row, a millisecond apart (a pool
         * whose refill is under way elsewhere is not dry yet). */
        unsigned nulls = 0;
        while (nulls < 3) {
            void *b = j->held < j->cap ? j->peer->alloc(ctx) : NULL;
            if (b) {
                j->hold[j->held++] = b;
                nulls = 0;
                continue;
            }
            if (j->held >= j->cap) {
                j->error = 3;
                break;
            }
            nulls++;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    j->t1 = lbb_now_ns();
}

void lbb_job_lat_fail(void *arg)
{
    struct lbb_job *j = arg;
    void *ctx = lbb_job_ctx(j);
    lbb_job_begin(j);
    if (ctx) {
        lbb_alloc_fn *alloc = j->peer->alloc;
        struct lbb_hist *h = j->hist;
        for (uint64_t i = 0; i < j->iters; i++) {
            uint64_t c0 = lbb_tick_start();
            void *b = alloc(ctx);
            uint64_t c1 = lbb_tick_stop();
            lbb_hist_add(h, c1 - c0);
            if (LBB_UNLIKELY(b != NULL)) {
                /* Not dry after all: kept (freed with the rest), counted. */
                j->fails++;
                if (j->held < j->cap)
                    j->hold[j->held++] = b;
                else
                    j->peer->free(ctx, b);
            }
        }
    }
    j->t1 = lbb_now_ns();
}

void lbb_job_undrain(void *arg)
{
    struct lbb_job *j = arg;
    void *ctx = lbb_job_ctx(j);
    lbb_job_begin(j);
    if (ctx)
        for (uint64_t i = 0; i < j->held; i++)
            j->peer->free(ctx, j->hold[i]);
    j->held = 0;
    j->t1 = lbb_now_ns();
}

void lbb_job_floor(void *arg)
{
    struct lbb_job *j = arg;
    lbb_job_begin(j);
    for (uint64_t i = 0; i < j->iters; i++) {
        uint64_t c0 = lbb_tick_start();
        uint64_t c1 = lbb_tick_stop();
        lbb_hist_add(j->hist, c1 - c0);
    }
    j->t1 = lbb_now_ns();
}
