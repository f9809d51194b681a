/*
 * patterns.h - the allocation patterns, as jobs for the worker threads.
 *
 * The inner loops (lbb_loop_*) are out of line and never cloned, so that
 * `--callgrind` can count exactly them (valgrind --toggle-collect) and the
 * instruction counts describe the same code the timings do.
 */
#ifndef LBB_PATTERNS_H
#define LBB_PATTERNS_H

#include <stdint.h>

#include "bench.h"
#include "spsc.h"
#include "stats.h"
#include "workers.h"

/* The token the handoff producer sends when it gives up. */
#define LBB_STOP ((void *)1)
/* How long a producer retries failing allocations before giving up. */
#define LBB_GIVE_UP_NS 10000000000ull

struct lbb_job {
    struct lbb_peer *peer;   /* NULL for the bare ring and the timer floor */
    uint64_t iters;          /* pairs (lifo, burst: a multiple of 64),
                                pages handed off, or samples              */
    struct lbb_start *start; /* multi-thread start line, or NULL          */
    struct lbb_spsc *ring;   /* handoff                                   */
    struct lbb_hist *hist;   /* latency samples, or NULL                  */
    void **hold;             /* drain/undrain: the blocks taken            */
    uint64_t cap, held;      /* hold's size; blocks in it                  */

    /* Results. */
    uint64_t t0, t1;         /* CLOCK_MONOTONIC ns around the loop        */
    uint64_t fails;          /* allocations that returned NULL            */
    int error;               /* 1: thread_init failed; 2: gave up         */
};

/* The inner loops; each returns the number of NULL allocations. */
uint64_t lbb_loop_lifo(struct lbb_peer *p, void *tctx, uint64_t pairs);
uint64_t lbb_loop_burst(struct lbb_peer *p, void *tctx, uint64_t pairs);

/* Jobs (arg: struct lbb_job *). */
void lbb_job_lifo(void *arg);
void lbb_job_burst(void *arg);
void lbb_job_producer(void *arg);      /* alloc, push; hist: time each alloc */
void lbb_job_consumer(void *arg);      /* pop, free                           */
void lbb_job_ring_producer(void *arg); /* pointers only                       */
void lbb_job_ring_consumer(void *arg);
void lbb_job_lat_lifo(void *arg);      /* time each alloc of a LIFO pair      */
/* The failure latency: drain takes blocks into hold until the pool runs
 * dry (error 3: not dry after cap), lat_fail times iters allocations of
 * the dry pool (a success is kept in hold and counted in fails), undrain
 * frees hold. */
void lbb_job_drain(void *arg);
void lbb_job_lat_fail(void *arg);
void lbb_job_undrain(void *arg);
void lbb_job_floor(void *arg);         /* two back-to-back timer reads        */

#endif /* LBB_PATTERNS_H */
