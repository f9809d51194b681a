/*
 * results.h - options, and what a run measured.
 */
#ifndef LBB_RESULTS_H
#define LBB_RESULTS_H

#include <stdbool.h>
#include <stdint.h>

#include "bench.h"
#include "stats.h"

enum lbb_pattern {
    LBB_P_LIFO,
    LBB_P_BURST,
    LBB_P_HANDOFF, /* and the bare ring */
    LBB_P_SCALING,
    LBB_P_LATENCY, /* LIFO and handoff, with the timer floor */
    LBB_P_ORDERS,  /* blocks of 2^k pages: pairs, bursts, metadata, RSS */
    LBB_P_FRAG,    /* a long random mixed-order workload              */
    LBB_P_INSTR,   /* callgrind */
    LBB_P_COUNT
};
extern const char *const lbb_pattern_name[LBB_P_COUNT];
#define LBB_P_DEFAULT ((1u << LBB_P_INSTR) - 1) /* all but instr */

struct lbb_opts {
    unsigned patterns;      /* bit per enum lbb_pattern                  */
    bool peer_on[LBB_MAX_PEERS];
    unsigned runs;
    double duration_ms;     /* per measurement                           */
    uint64_t iterations;    /* fixed count per measurement; 0 = duration */
    uint64_t lat_samples;
    uint64_t cg_iterations; /* callgrind: N and 2N pairs                 */
    const char *cg_keep;    /* callgrind: keep the profiles in this dir  */
    unsigned ring_slots, ring_batch;
    uint64_t frag_ops;      /* frag: operations in the workload          */
    uint64_t frag_seed;
    unsigned frag_runs;     /* frag: replays per allocator (median)      */
    const char *frag_dat;   /* frag: write the samples here (gnuplot)    */
    bool json, pin, quiet;
};

/* One number per run. */
struct lbb_series {
    double v[LBB_MAX_RUNS];
    unsigned n;
    uint64_t iters;  /* per measurement */
    uint64_t fails;  /* NULL allocations, summed over runs */
    bool measured;
    char error[160]; /* set when the measurement could not be made */
};

struct lbb_latency {
    double ns[LBB_NPCT];
    uint64_t samples, fails;
    bool measured;
    char error[160];
};

struct lbb_instr {
    double per_pair;  /* instructions per alloc+free pair, harness included */
    bool measured;
    char error[200];
};

/* The orders pattern: orders 0, 3 and 9, each as LIFO pairs and bursts of
 * LBB_OBURST blocks, on one thread and on two (ns per pair per thread). */
#define LBB_NORD   3u
#define LBB_OBURST 16u
extern const unsigned lbb_ord_k[LBB_NORD];
enum lbb_ovariant { LBB_OV_LIFO1, LBB_OV_LIFO2, LBB_OV_BURST1, LBB_OV_BURST2, LBB_OV_N };

/* Resident memory against pages in use (orders.c). */
struct lbb_orss {
    bool measured, vmrss; /* vmrss: the process's VmRSS, not the pool's */
    char error[160];
    size_t span_pages;    /* pages the pool maps (pool + metadata)       */
    size_t held_pages;    /* pages in use while held                    */
    long res_open, res_held, res_freed; /* resident pages (VmRSS: the
                             increase over before the pool was opened)  */
    long trimmed;         /* pages given back by the trim call, or -1   */
};

/* The frag pattern, one allocator (frag.c). */
#define LBB_FRAG_SAMPLES 100u
struct lbb_frag_sample {
    uint64_t ops;                      /* operations done               */
    uint64_t fails[LBB_OMAX + 1];      /* failed allocations so far     */
    struct lbb_ofrag f;                /* the pool's free lists         */
    bool have_frag;
};
struct lbb_frag_row {
    bool measured;
    char error[160];
    uint64_t allocs, frees, fails[LBB_OMAX + 1]; /* first run            */
    double mean_ns[LBB_MAX_RUNS];      /* per run: mean ns per allocation,
                                          timer floor subtracted        */
    double wall_ns[LBB_MAX_RUNS];      /* per run: wall ns per operation */
    unsigned nruns;
    double pct_ns[LBB_NPCT];           /* first run, timer included     */
    struct lbb_frag_sample s[LBB_FRAG_SAMPLES];
    unsigned nsamples;
};

struct lbb_row {
    struct lbb_peer *peer;
    struct lbb_series lifo, burst, handoff, scale1, scale2;
    struct lbb_series handoff_b; /* handoff through the batched ring   */
    struct lbb_series scale2h; /* two threads right after a handoff burst */
    struct lbb_latency lat_lifo, lat_handoff;
    /* A failed allocation of a drained pool: on the thread that drained
     * it, and on a new thread (no cache of its own yet); fails counts
     * allocations that succeeded after all. */
    struct lbb_latency lat_fail, lat_fail_fresh;
    uint64_t fail_drained;     /* blocks the drain took                   */
    struct lbb_instr instr_lifo, instr_burst;
    char after[400]; /* the peer's own account after the run */
    /* orders */
    struct lbb_series ord[LBB_NORD][LBB_OV_N]; /* ns per pair per thread */
    char ord_error[200];
    size_t meta_bytes;     /* the orders pool's metadata, 0 unknown      */
    size_t meta_pages;     /* pages of that pool                         */
    char meta_desc[240];
    struct lbb_orss rss;
    /* frag */
    struct lbb_frag_row frag;   /* labyrinth: KERNEL                     */
    struct lbb_frag_row frag_b; /* labyrinth: ATOMIC, the same sequence  */
};

struct lbb_results {
    struct lbb_row rows[LBB_MAX_PEERS];
    unsigned nrows;
    struct lbb_series ring;   /* bare SPSC ring, M pointers/s          */
    struct lbb_series ring_b; /* the same, indices published in batches */
    struct lbb_latency floor; /* two back-to-back timer reads */
    double ticks_per_ns;
    double tick_step_ns; /* the counter's resolution                */
    double meta_default, meta_notrack; /* labyrinth bytes per page, < 0 unknown */
    int worker_cpu[2];
    char load_before[64], load_after[64]; /* /proc/loadavg around the timed part */
    double others_pct; /* CPU time of other processes during it, % of all CPUs */
    double steal_pct;  /* CPU time the hypervisor stole, % of all CPUs         */
    double wall_s;
    /* orders: labyrinth's metadata with tracking off and one thread slot */
    double meta_1thread;
    struct lbb_orss rss_grow; /* labyrinth growing and shrinking          */
    /* frag: the workload */
    uint64_t frag_allocs, frag_frees, frag_by_order[LBB_OMAX + 1];
    size_t frag_pages, frag_target;
    double frag_floor_ns; /* the timer floor subtracted from the means */
};

/* run.c: the measurements. */
void lbb_run_all(const struct lbb_opts *o, struct lbb_results *r);
/* The cycle counter's rate and resolution (normal context). */
void lbb_timer_setup(struct lbb_results *r);
/* callgrind.c: instruction counts (spawns valgrind); the child side. */
void lbb_callgrind_all(const struct lbb_opts *o, struct lbb_results *r, const char *self);
int lbb_callgrind_child(struct lbb_peer *peer, const char *pattern, uint64_t pairs);
/* orders.c and frag.c, on the running workers (run.c). */
void lbb_orders_run(const struct lbb_opts *o, struct lbb_results *r);
void lbb_frag_run(const struct lbb_opts *o, struct lbb_results *r);
/* report.c */
void lbb_report_text(const struct lbb_opts *o, struct lbb_results *r);
void lbb_report_json(const struct lbb_opts *o, struct lbb_results *r);
/* main.c: progress on stderr unless --quiet. */
void lbb_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* LBB_RESULTS_H */
