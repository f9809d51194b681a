/*
 * bench.h - labyrinth-bench: labyrinth and its peers through the same
 * allocation patterns, in one process.
 *
 * Every allocator is reached through one small vtable (struct lbb_peer):
 * one file per adapter (peer_*.c).  The patterns (patterns.c) only ever
 * call peer->alloc(tctx) and peer->free(tctx, p), where tctx is what the
 * peer's thread_init returned on the calling thread, so every allocator
 * pays the same harness overhead: one indirect call each way.
 */
#ifndef LBB_BENCH_H
#define LBB_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LBB_BLOCK      4096u  /* every allocation: 4 KiB, 4 KiB aligned    */
#define LBB_POOL_PAGES 65536u /* pages a pool-based allocator is given     */
#define LBB_MAX_PEERS  12u
#define LBB_MAX_RUNS   101u
#define LBB_BURST      64u    /* blocks per burst                          */
#define LBB_OMAX       10u    /* largest order of the pools (labyrinth's
                                 default max_order)                        */

#define LBB_NOINLINE __attribute__((noinline))
#if defined(__clang__)
#define LBB_NOCLONE
#else
#define LBB_NOCLONE __attribute__((noclone))
#endif

/* Keep p alive for the compiler: the pointer escapes. */
static inline void lbb_escape(void *p) { __asm__ __volatile__("" : : "r"(p) : "memory"); }

static inline void lbb_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* Copy s into out (len bytes), truncated, always terminated. */
static inline void lbb_copy(char *out, size_t len, const char *s)
{
    size_t n = 0;
    if (!len)
        return;
    while (s && s[n] && n + 1 < len) {
        out[n] = s[n];
        n++;
    }
    out[n] = 0;
}

struct lbb_peer;
typedef void *lbb_alloc_fn(void *tctx);
typedef void lbb_free_fn(void *tctx, void *p);

/* Blocks of 2^order pages on a 2^order-page boundary: the orders and frag
 * patterns (orders.c, frag.c).  An instance is one pool (a zone, an arena)
 * or, for a malloc, the allocator itself; any thread may use it. */
enum lbb_omode {
    LBB_OM_ORDERS, /* timed pairs: labyrinth ATOMIC                        */
    LBB_OM_FRAG,   /* the random workload: labyrinth KERNEL (see frag.c)   */
    LBB_OM_FRAG_ATOMIC, /* the same workload, labyrinth ATOMIC             */
    LBB_OM_GROW    /* resident-memory probe: labyrinth growing from one
                      region and shrinking back, KERNEL                    */
};

/* What a pool knows of its free blocks (labyrinth, spinbuddy). */
struct lbb_ofrag {
    size_t total_pages, in_use_pages;
    size_t buddy_free_pages; /* in the buddy's free lists                  */
    size_t cached_pages;     /* free but held back: magazines, depot,
                                reserve, level caches (labyrinth)          */
    long largest_free_order; /* -1: none                                   */
    size_t free_blocks[LBB_OMAX + 1];
    int frag_index[LBB_OMAX + 1]; /* x1000, Linux's extfrag index          */
    unsigned long long waits; /* labyrinth: KERNEL allocations that waited */
};

struct lbb_order_ops {
    const char *api;   /* what is called                                   */
    /* A fresh instance of about `pages` pages; NULL with why[] filled. */
    void *(*open)(struct lbb_peer *p, size_t pages, enum lbb_omode mode, char *why, size_t len);
    void *(*alloc)(void *inst, unsigned order);
    void (*free)(void *inst, void *p, unsigned order);
    /* Optional: on every thread that used inst, before close (labyrinth
     * gives back its thread cache). */
    void (*thread_done)(void *inst);
    void (*close)(struct lbb_peer *p, void *inst);
    /* Optional: allocator metadata in bytes (what it is in desc). */
    size_t (*metadata)(void *inst, char *desc, size_t len);
    /* Optional: pages of the pool (and of its metadata) resident in
     * memory now (mincore); *span gets the pages mapped.  Without it the
     * process's VmRSS is used. */
    size_t (*resident)(void *inst, size_t *span);
    /* Optional: the free lists now (0 on success). */
    int (*frag)(void *inst, struct lbb_ofrag *out);
    /* Optional: give idle memory back to the OS (labyrinth_zone_shrink);
     * pages released, or negative. */
    long (*trim)(void *inst);
};

struct lbb_peer {
    const char *name;  /* row label and --peers name                         */
    const char *api;   /* what is called, for the report                     */
    bool reference;    /* not an allocator (the harness baseline): no ratios */
    bool grows;        /* never runs dry (the malloc family): no failure
                          latency to measure                             */

    /* Process set-up in normal context; 0, or -1 with why[] filled (the
     * peer is then reported MISSING with that reason). */
    int (*init)(struct lbb_peer *p);
    /* Per-thread set-up, on the thread that will allocate; returns the
     * context passed to alloc/free, NULL (why[] filled) on failure. */
    void *(*thread_init)(struct lbb_peer *p);
    void (*thread_fini)(struct lbb_peer *p, void *tctx);
    lbb_alloc_fn *alloc;  /* one LBB_BLOCK block, NULL on failure         */
    lbb_free_fn *free;
    void (*fini)(struct lbb_peer *p);
    /* Optional: a line of allocator-specific state after the run. */
    void (*describe)(struct lbb_peer *p, char *buf, size_t len);
    /* Blocks of 2^order pages (orders, frag); NULL: not applicable, and
     * orders_na says why. */
    const struct lbb_order_ops *orders;
    const char *orders_na;

    /* Filled by init. */
    char version[64];
    char note[200];  /* how it is set up                                   */
    char why[256];   /* why it is MISSING                                  */
    void *state;
    bool ok;
};

extern struct lbb_peer lbb_peer_labyrinth;
extern struct lbb_peer lbb_peer_labyrinth_seed;
extern struct lbb_peer lbb_peer_labyrinth_zero;
extern struct lbb_peer lbb_peer_dpdk;
extern struct lbb_peer lbb_peer_tcmalloc;
extern struct lbb_peer lbb_peer_jemalloc;
extern struct lbb_peer lbb_peer_mimalloc;
extern struct lbb_peer lbb_peer_glibc;
extern struct lbb_peer lbb_peer_spinbuddy;
extern struct lbb_peer lbb_peer_harness;

/* snprintf into p->why; returns -1 for init's convenience. */
int lbb_peer_fail(struct lbb_peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lbb_peer_note(struct lbb_peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Pages of [addr, addr + len) resident in memory (mincore); 0 on error. */
size_t lbb_resident_pages(const void *addr, size_t len, size_t page);

/* Allocators loaded with dlopen(RTLD_LOCAL | RTLD_DEEPBIND) so that their
 * malloc never replaces the process's (peer_dlopen.c). */
struct lbb_dl {
    void *handle;
    void *(*aligned)(size_t align, size_t size); /* (alignment, size) order */
    void (*release)(void *p);
};
/* Open the first soname that loads and look up the two entry points. */
int lbb_dl_open(struct lbb_peer *p, struct lbb_dl *d, const char *const *sonames,
                const char *alloc_sym, const char *free_sym);
void *lbb_dl_sym(struct lbb_dl *d, const char *sym);
void *lbb_dl_alloc(void *tctx);
void lbb_dl_free(void *tctx, void *p);
void *lbb_dl_thread_init(struct lbb_peer *p);
void lbb_dl_thread_fini(struct lbb_peer *p, void *tctx);
/* Orders for the dlopen'ed peers: their aligned allocation of
 * 4096 << order bytes on a 4096 << order boundary. */
extern const struct lbb_order_ops lbb_dl_orders;
/* The GLIBC_TUNABLES value the process needs for dlopen of allocators
 * with large initial-exec TLS (jemalloc); see main.c. */
#define LBB_STATIC_TLS_TUNABLE "glibc.rtld.optional_static_tls=65536"

/* labyrinth's metadata per page for a default zone and a NO_TRACKING one
 * (peer_labyrinth.c); 0 on success. */
int lbb_labyrinth_metadata(double *bytes_per_page_default, double *bytes_per_page_notrack);
/* The same for a NO_TRACKING zone with one thread slot (max_threads 1). */
int lbb_labyrinth_meta_one_thread(double *bytes_per_page);

#endif /* LBB_BENCH_H */
