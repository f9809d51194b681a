/*
 * peer_spinbuddy.c - the baseline of the orders pattern: a plain binary
 * buddy allocator behind one spinlock, written for this bench (the kind
 * issue 4 measures NBBS's "classic buddy behind one spinlock" with).
 *
 *   arena     one mmap of `pages` pages (not pre-faulted: pages become
 *             resident when touched), its base aligned to 2^LBB_OMAX pages
 *             so that every block is naturally aligned in the address space
 *   metadata  one byte per page, out of band: 0x80 | order at the head of a
 *             free block, 0 everywhere else; and the list heads.  The free
 *             lists are doubly linked through the first 16 bytes of each
 *             free block, as in a textbook buddy (so a free block's first
 *             page is written, and becomes resident)
 *   lock      test-and-set on a cache line of its own: an exchange, and
 *             while the lock is held a plain load with pause, up to
 *             LBB_SB_SPINS times per acquisition, then sched_yield
 *
 * Allocation: the smallest non-empty list of order >= k, split down to k
 * (the upper halves go on their lists).  Free: merge with the buddy while
 * the buddy is the head of a free block of the same order.  The order-0
 * rows (lifo, burst, handoff, ...) use the same code with order 0.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

#define LBB_SB_SPINS 128u
#define LBB_SB_FREE  0x80u

struct lbb_sb_node {
    struct lbb_sb_node *next, *prev;
};

struct lbb_sb {
    _Alignas(64) atomic_uint lock;
    _Alignas(64) struct lbb_sb_node *head[LBB_OMAX + 1];
    size_t nfree[LBB_OMAX + 1]; /* blocks on each list                      */
    size_t in_use;              /* pages handed out                         */
    uint8_t *meta;              /* one byte per page                        */
    char *base;                 /* page 0, aligned to 2^LBB_OMAX pages      */
    size_t pages, page;
    unsigned shift;
    void *map, *meta_map;
    size_t map_len, meta_len;
    atomic_ullong yields;       /* sched_yield calls while waiting          */
};

static void lbb_sb_lock(struct lbb_sb *b)
{
    unsigned spins = 0;
    while (atomic_exchange_explicit(&b->lock, 1, memory_order_acquire)) {
        while (atomic_load_explicit(&b->lock, memory_order_relaxed)) {
            if (spins < LBB_SB_SPINS) {
                spins++;
                lbb_cpu_relax();
            } else {
                atomic_fetch_add_explicit(&b->yields, 1, memory_order_relaxed);
                sched_yield();
            }
        }
    }
}

static void lbb_sb_unlock(struct lbb_sb *b) { atomic_store_explicit(&b->lock, 0, memory_order_release); }

static struct lbb_sb_node *lbb_sb_node(struct lbb_sb *b, size_t idx)
{
    return (struct lbb_sb_node *)(void *)(b->base + (idx << b->shift));
}

static void lbb_sb_push(struct lbb_sb *b, size_t idx, unsigned k)
{
    struct lbb_sb_node *n = lbb_sb_node(b, idx), *h = b->head[k];
    n->prev = NULL;
    n->next = h;
    if (h)
        h->prev = n;
    b->head[k] = n;
    b->nfree[k]++;
    b->meta[idx] = (uint8_t)(LBB_SB_FREE | k);
}

static void lbb_sb_unlink(struct lbb_sb *b, size_t idx, unsigned k)
{
    struct lbb_sb_node *n = lbb_sb_node(b, idx);
    if (n->prev)
        n->prev->next = n->next;
    else
        b->head[k] = n->next;
    if (n->next)
        n->next->prev = n->prev;
    b->nfree[k]--;
    b->meta[idx] = 0;
}

static void *lbb_sb_alloc(void *inst, unsigned k)
{
    struct lbb_sb *b = inst;
    if (k > LBB_OMAX)
        return NULL;
    lbb_sb_lock(b);
    unsigned j = k;
    while (j <= LBB_OMAX && !b->head[j])
        j++;
    if (j > LBB_OMAX) {
        lbb_sb_unlock(b);
        return NULL;
    }
    struct lbb_sb_node *n = b->head[j];
    size_t idx = (size_t)((char *)n - b->base) >> b->shift;
    lbb_sb_unlink(b, idx, j);
    while (j > k) {
        j--;
        lbb_sb_push(b, idx + ((size_t)1 << j), j);
    }
    b->in_use += (size_t)1 << k;
    lbb_sb_unlock(b);
    return n;
}

static void lbb_sb_free(void *inst, void *p, unsigned k)
{
    struct lbb_sb *b = inst;
    size_t idx = (size_t)((char *)p - b->base) >> b->shift;
    lbb_sb_lock(b);
    b->in_use -= (size_t)1 << k;
    while (k < LBB_OMAX) {
        size_t buddy = idx ^ ((size_t)1 << k);
        if (buddy >= b->pages || b->meta[buddy] != (LBB_SB_FREE | k))
            break;
        lbb_sb_unlink(b, buddy, k);
        idx &= ~((size_t)1 << k);
        k++;
    }
    lbb_sb_push(b, idx, k);
    lbb_sb_unlock(b);
}

static void lbb_sb_destroy(struct lbb_sb *b)
{
    if (!b)
        return;
    if (b->map)
        munmap(b->map, b->map_len);
    if (b->meta_map)
        munmap(b->meta_map, b->meta_len);
    free(b);
}

static struct lbb_sb *lbb_sb_create(size_t pages, char *why, size_t len)
{
    struct lbb_sb *b = aligned_alloc(64, sizeof *b);
    if (!b) {
        snprintf(why, len, "out of memory");
        return NULL;
    }
    memset(b, 0, sizeof *b);
    atomic_init(&b->lock, 0);
    atomic_init(&b->yields, 0);
    b->page = (size_t)sysconf(_SC_PAGESIZE);
    b->shift = (unsigned)__builtin_ctzl(b->page);
    b->pages = pages;
    size_t align = b->page << LBB_OMAX;
    b->map_len = pages * b->page + align;
    b->map = mmap(NULL, b->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    b->meta_len = (pages + b->page - 1) / b->page * b->page;
    b->meta_map = mmap(NULL, b->meta_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b->map == MAP_FAILED || b->meta_map == MAP_FAILED) {
        snprintf(why, len, "mmap of %zu pages failed", pages);
        if (b->map == MAP_FAILED)
            b->map = NULL;
        if (b->meta_map == MAP_FAILED)
            b->meta_map = NULL;
        lbb_sb_destroy(b);
        return NULL;
    }
    b->base = (char *)(((uintptr_t)b->map + align - 1) & ~(uintptr_t)(align - 1));
    b->meta = b->meta_map;
    /* The arena as the largest aligned blocks that fit. */
    for (size_t idx = 0; idx < pages;) {
        unsigned k = LBB_OMAX;
        while (k && ((idx & (((size_t)1 << k) - 1)) || idx + ((size_t)1 << k) > pages))
            k--;
        lbb_sb_push(b, idx, k);
        idx += (size_t)1 << k;
    }
    return b;
}

/* ---- the order-0 peer (lifo, burst, handoff, scaling, latency, instr) ------------- */

static int lbb_sbp_init(struct lbb_peer *p)
{
    char why[128];
    struct lbb_sb *b = lbb_sb_create(LBB_POOL_PAGES, why, sizeof why);
    if (!b)
        return lbb_peer_fail(p, "%s", why);
    p->state = b;
    snprintf(p->version, sizeof p->version, "bench/peer_spinbuddy.c");
    lbb_peer_note(p, "arena of %u pages (mmap, not pre-faulted), one byte of metadata per page, "
                     "one test-and-set spinlock (pause x%u, then sched_yield)", LBB_POOL_PAGES, LBB_SB_SPINS);
    return 0;
}

static void *lbb_sbp_thread_init(struct lbb_peer *p) { return p->state; }

static void *lbb_sbp_alloc(void *tctx) { return lbb_sb_alloc(tctx, 0); }

static void lbb_sbp_free(void *tctx, void *p) { lbb_sb_free(tctx, p, 0); }

static void lbb_sbp_describe(struct lbb_peer *p, char *buf, size_t len)
{
    struct lbb_sb *b = p->state;
    snprintf(buf, len, "in use %zu pages, sched_yield calls while waiting for the lock %llu", b->in_use,
             (unsigned long long)atomic_load(&b->yields));
}

static void lbb_sbp_fini(struct lbb_peer *p)
{
    lbb_sb_destroy(p->state);
    p->state = NULL;
}

/* ---- orders ------------------------------------------------------------------------ */

static void *lbb_sbo_open(struct lbb_peer *p, size_t pages, enum lbb_omode mode, char *why, size_t len)
{
    (void)p;
    (void)mode;
    return lbb_sb_create(pages, why, len);
}

static void lbb_sbo_close(struct lbb_peer *p, void *inst)
{
    (void)p;
    lbb_sb_destroy(inst);
}

static size_t lbb_sbo_metadata(void *inst, char *desc, size_t len)
{
    const struct lbb_sb *b = inst;
    snprintf(desc, len, "one byte per page (0x80 + order at a free block's head) and %zu bytes of list heads "
                        "and counters; the free-list links live inside the free blocks",
             sizeof *b);
    return b->pages + sizeof *b;
}

static size_t lbb_sbo_resident(void *inst, size_t *span)
{
    const struct lbb_sb *b = inst;
    *span = b->map_len / b->page + b->meta_len / b->page;
    return lbb_resident_pages(b->map, b->map_len, b->page) + lbb_resident_pages(b->meta_map, b->meta_len, b->page);
}

static int lbb_sbo_frag(void *inst, struct lbb_ofrag *o)
{
    struct lbb_sb *b = inst;
    memset(o, 0, sizeof *o);
    lbb_sb_lock(b);
    o->total_pages = b->pages;
    o->in_use_pages = b->in_use;
    for (unsigned k = 0; k <= LBB_OMAX; k++)
        o->free_blocks[k] = b->nfree[k];
    lbb_sb_unlock(b);
    size_t total = 0;
    o->largest_free_order = -1;
    for (unsigned k = 0; k <= LBB_OMAX; k++) {
        total += o->free_blocks[k];
        o->buddy_free_pages += o->free_blocks[k] << k;
        if (o->free_blocks[k])
            o->largest_free_order = (long)k;
    }
    /* Linux's extfrag index (as labyrinth_zone_stats computes it). */
    for (unsigned k = 0; k <= LBB_OMAX; k++) {
        if (!total)
            o->frag_index[k] = 0;
        else if (o->largest_free_order >= (long)k)
            o->frag_index[k] = -1000;
        else
            o->frag_index[k] = (int)(1000 - (1000 + o->buddy_free_pages * 1000 / ((size_t)1 << k)) / total);
    }
    return 0;
}

static const struct lbb_order_ops lbb_sb_orders = {
    .api = "its own alloc(order) / free(p, order)",
    .open = lbb_sbo_open,
    .alloc = lbb_sb_alloc,
    .free = lbb_sb_free,
    .close = lbb_sbo_close,
    .metadata = lbb_sbo_metadata,
    .resident = lbb_sbo_resident,
    .frag = lbb_sbo_frag,
};

struct lbb_peer lbb_peer_spinbuddy = {
    .name = "spinbuddy",
    .api = "buddy alloc(0) / free(p, 0) under one test-and-set spinlock",
    .init = lbb_sbp_init,
    .thread_init = lbb_sbp_thread_init,
    .alloc = lbb_sbp_alloc,
    .free = lbb_sbp_free,
    .describe = lbb_sbp_describe,
    .fini = lbb_sbp_fini,
    .orders = &lbb_sb_orders,
};
