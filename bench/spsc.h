/*
 * spsc.h - a bounded single-producer single-consumer ring of pointers.
 *
 * Lamport's ring with batched index publication (after the B-Queue and
 * MCRingBuffer designs).  Each side works on private copies of the indices
 * and publishes its own index (a release store to a cache line of its own)
 * only every `batch` items, or before it has to wait (the ring looks full
 * to the producer, empty to the consumer), or on lbb_spsc_flush().  It
 * reads the other side's index (an acquire load) only when its view says
 * full / empty.  So each side touches the other's cache lines about once
 * per batch, whatever the ring's fill level: with per-item publication
 * (batch 1) a cross-CPU ring falls into a slow mode (one line transfer per
 * item) whenever it runs nearly empty or nearly full, and the rate of a
 * measurement then depends on which mode it happened to settle in.
 *
 * Release on publish, acquire on observe: the slots (and the blocks the
 * pointers refer to) travel with the index.
 */
#ifndef LBB_SPSC_H
#define LBB_SPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct lbb_spsc {
    _Alignas(64) atomic_size_t head; /* published by the producer        */
    _Alignas(64) size_t p_head;      /* producer: next slot to fill      */
    size_t p_pub;                    /* producer: last head published    */
    size_t p_tail_seen;              /* producer: last tail read         */
    _Alignas(64) atomic_size_t tail; /* published by the consumer        */
    _Alignas(64) size_t c_tail;      /* consumer: next slot to drain     */
    size_t c_pub;                    /* consumer: last tail published    */
    size_t c_head_seen;              /* consumer: last head read         */
    _Alignas(64) size_t mask;        /* slots - 1 (a power of two)       */
    size_t batch;                    /* publish every batch items        */
    void **slot;
};

/* slots: a power of two; storage: slots pointers; 1 <= batch <= slots. */
static inline void lbb_spsc_init(struct lbb_spsc *r, void **storage, size_t slots, size_t batch)
{
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    r->p_head = r->p_pub = r->p_tail_seen = 0;
    r->c_tail = r->c_pub = r->c_head_seen = 0;
    r->mask = slots - 1;
    r->batch = batch;
    r->slot = storage;
}

/* Producer: make every pushed item visible. */
static inline void lbb_spsc_flush(struct lbb_spsc *r)
{
    if (r->p_head != r->p_pub) {
        /* Release: the slots written so far before the new head. */
        atomic_store_explicit(&r->head, r->p_head, memory_order_release);
        r->p_pub = r->p_head;
    }
}

/* Consumer: hand every drained slot back. */
static inline void lbb_spsc_release(struct lbb_spsc *r)
{
    if (r->c_tail != r->c_pub) {
        /* Release: our reads of the slots are done before the producer
         * may reuse them. */
        atomic_store_explicit(&r->tail, r->c_tail, memory_order_release);
        r->c_pub = r->c_tail;
    }
}

static inline bool lbb_spsc_push(struct lbb_spsc *r, void *p)
{
    size_t h = r->p_head;
    if (h - r->p_tail_seen > r->mask) {
        /* Acquire: pairs with the consumer's release of tail. */
        r->p_tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (h - r->p_tail_seen > r->mask) {
            lbb_spsc_flush(r); /* let the consumer see all there is */
            return false;
        }
    }
    r->slot[h & r->mask] = p;
    r->p_head = h + 1;
    if (r->p_head - r->p_pub >= r->batch)
        lbb_spsc_flush(r);
    return true;
}

static inline void *lbb_spsc_pop(struct lbb_spsc *r)
{
    size_t t = r->c_tail;
    if (t == r->c_head_seen) {
        /* Acquire: pairs with the producer's release of head. */
        r->c_head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
        if (t == r->c_head_seen) {
            lbb_spsc_release(r); /* let the producer reuse all there is */
            return NULL;
        }
    }
    void *p = r->slot[t & r->mask];
    r->c_tail = t + 1;
    if (r->c_tail - r->c_pub >= r->batch)
        lbb_spsc_release(r);
    return p;
}

#endif /* LBB_SPSC_H */
