/*
 * spsc.h - a bounded single-producer single-consumer ring of pointers.
 *
 * Lamport's ring with each side caching the other side's index: the
 * producer reads the consumer's index (one shared cache line) only when
 * the ring looks full, the consumer the producer's only when it looks
 * empty.  Each side's own index and its cached copy share a cache line
 * that the other side never writes.  Release on publish, acquire on
 * observe: the slot (and the page behind the pointer) travels with it.
 */
#ifndef LBB_SPSC_H
#define LBB_SPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct lbb_spsc {
    _Alignas(64) atomic_size_t head; /* next slot to fill (producer)     */
    size_t tail_seen;                /* producer's copy of tail          */
    _Alignas(64) atomic_size_t tail; /* next slot to drain (consumer)    */
    size_t head_seen;                /* consumer's copy of head          */
    _Alignas(64) size_t mask;        /* slots - 1 (a power of two)       */
    void **slot;
};

/* slots: a power of two; storage: slots pointers. */
static inline void lbb_spsc_init(struct lbb_spsc *r, void **storage, size_t slots)
{
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    r->tail_seen = r->head_seen = 0;
    r->mask = slots - 1;
    r->slot = storage;
}

static inline bool lbb_spsc_push(struct lbb_spsc *r, void *p)
{
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (h - r->tail_seen > r->mask) {
        /* Acquire: the consumer is done with the slot it released. */
        r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (h - r->tail_seen > r->mask)
            return false;
    }
    r->slot[h & r->mask] = p;
    /* Release: the slot (and what p points to) before the new head. */
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    return true;
}

static inline void *lbb_spsc_pop(struct lbb_spsc *r)
{
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (t == r->head_seen) {
        /* Acquire: pairs with the producer's release of head. */
        r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
        if (t == r->head_seen)
            return NULL;
    }
    void *p = r->slot[t & r->mask];
    /* Release: our read of the slot is done before the producer reuses it. */
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return p;
}

#endif /* LBB_SPSC_H */
