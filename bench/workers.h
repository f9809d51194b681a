/*
 * workers.h - the benchmark's own threads.
 *
 * Every measurement runs on long-lived worker threads (pinned to CPU 0 and
 * CPU 1 unless --no-pin), so per-thread allocator caches stay warm from one
 * run to the next and the main thread only waits.
 */
#ifndef LBB_WORKERS_H
#define LBB_WORKERS_H

#include <stdatomic.h>
#include <stdbool.h>

#include "bench.h"

#define LBB_MAX_WORKERS 2u

/* Start n workers; worker i is pinned to the i-th CPU the process may run
 * on when pin is set.  Returns 0, or -1 with a message on stderr. */
int lbb_workers_start(unsigned n, bool pin);
/* CPU worker w is pinned to, or -1. */
int lbb_worker_cpu(unsigned w);
/* Run fn(arg) on worker w; lbb_worker_wait(w) waits for it to finish. */
void lbb_worker_post(unsigned w, void (*fn)(void *arg), void *arg);
void lbb_worker_wait(unsigned w);
/* Stop the workers: each calls thread_fini for every peer it set up. */
void lbb_workers_stop(void);

/* On a worker: the calling thread's context for peer p (thread_init on
 * first use).  NULL when thread_init failed (p->why says why). */
void *lbb_tctx(struct lbb_peer *p);
/* Run fn(arg) on a new thread, not a worker (it sets up its own peer
 * contexts and finishes them when fn returns); unpinned.  0, or an errno
 * from pthread_create. */
int lbb_run_fresh(void (*fn)(void *arg), void *arg);

/* A one-shot start line for jobs that run on several workers at once. */
struct lbb_start {
    atomic_uint arrived;
    unsigned parties;
};
static inline void lbb_start_init(struct lbb_start *s, unsigned parties)
{
    atomic_init(&s->arrived, 0);
    s->parties = parties;
}
static inline void lbb_start_wait(struct lbb_start *s)
{
    atomic_fetch_add_explicit(&s->arrived, 1, memory_order_acq_rel);
    while (atomic_load_explicit(&s->arrived, memory_order_acquire) < s->parties)
        lbb_cpu_relax();
}

#endif /* LBB_WORKERS_H */
