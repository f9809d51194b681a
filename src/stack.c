/*
 * stack.c - layer 4: the tagged lock-free stacks (magazine stacks: the
 * depot and the inboxes; page stacks: the reserve and the pending stack).
 */
#include "cache.h"

void lb_cache_note_retries(struct lb_cache *c, unsigned retries)
{
    if (retries > lb_load_rlx_u64(&c->max_retries))
        lb_store_rlx_u64(&c->max_retries, retries); /* a statistic: racy max is fine */
}

struct lb_mag *lb_magstack_pop(struct lb_cache *c, struct lb_stack *s)
{
    /* Acquire: pairs with the release CAS in lb_magstack_push, making the
     * magazine's slots, count and next link visible. */
    uint64_t old = lb_load_acq_u64(&s->head);
    for (unsigned tries = 0; tries < LB_RETRY_CAP; tries++) {
        uint32_t top = (uint32_t)old;
        if (!top) {
            lb_cache_note_retries(c, tries);
            return NULL;
        }
        struct lb_mag *m = lb_mag_at(c, top - 1);
        /* May be stale if m was popped and pushed again meanwhile: then the
         * tag has moved and the CAS below fails. */
        uint32_t next = lb_load_rlx_u32(&m->next);
        /* Acquire on success and failure: see above. */
        if (lb_cas_acq_u64(&s->head, &old, lb_head_next(old, next))) {
            lb_sub_rlx_u64(&s->count, 1);
            lb_cache_note_retries(c, tries);
            return m;
        }
    }
    lb_add_rlx_u64(&c->retry_cap_hits, 1);
    return NULL;
}

void lb_magstack_push(struct lb_cache *c, struct lb_stack *s, struct lb_mag *m)
{
    uint32_t me = lb_mag_index(c, m) + 1;
    uint64_t old = lb_load_rlx_u64(&s->head);
    unsigned tries = 0;
    /* Lock-free, not capped: a push must not lose its magazine, and each
     * failed CAS means another operation on this stack succeeded. */
    for (;; tries++) {
        lb_store_rlx_u32(&m->next, (uint32_t)old);
        /* Release: publishes the magazine (slots, count, next) to the
         * popper's acquire. */
        if (lb_cas_rel_u64(&s->head, &old, lb_head_next(old, me)))
            break;
    }
    lb_add_rlx_u64(&s->count, 1);
    lb_cache_note_retries(c, tries);
}

void lb_pstack_push_chain(struct lb_cache *c, struct lb_stack *s, uint32_t first_id,
                          uint32_t last_id, unsigned last_state, unsigned last_order,
                          unsigned last_flags, uint64_t n)
{
    lb_atomic_u64 *last = lb_id_desc(c, last_id);
    uint64_t old = lb_load_rlx_u64(&s->head);
    unsigned tries = 0;
    for (;; tries++) {
        /* Only the chain's owner writes these descriptors until the CAS. */
        lb_store_rlx_u64(last, lb_d_make_linked(last_state, last_order, last_flags, (uint32_t)old));
        /* Release: the chain's descriptors (states and links) are visible
         * to whoever pops them (pairs with lb_pstack_pop's acquire). */
        if (lb_cas_rel_u64(&s->head, &old, lb_head_next(old, first_id + 1)))
            break;
    }
    lb_add_rlx_u64(&s->count, n);
    lb_cache_note_retries(c, tries);
}

uint32_t lb_pstack_take_all(struct lb_cache *c, struct lb_stack *s)
{
    (void)c;
    /* Acquire: the chain's links are visible (pairs with the pushes'
     * release); the CAS below re-reads with acquire too. */
    uint64_t old = lb_load_acq_u64(&s->head);
    while ((uint32_t)old) {
        /* Acquire: the whole chain's links are visible (pairs with the
         * pushes' release). */
        if (lb_cas_acq_u64(&s->head, &old, lb_head_next(old, 0))) {
            lb_store_rlx_u64(&s->count, 0);
            return (uint32_t)old;
        }
    }
    return 0;
}


struct lb_mag *lb_magstack_take_all(struct lb_cache *c, struct lb_stack *s)
{
    uint64_t old = lb_load_rlx_u64(&s->head);
    while ((uint32_t)old) {
        /* Acquire: the pushers' entries are visible (pairs with the
         * release CAS in lb_magstack_push). */
        if (lb_cas_acq_u64(&s->head, &old, lb_head_next(old, 0))) {
            lb_store_rlx_u64(&s->count, 0);
            return lb_mag_at(c, (uint32_t)old - 1);
        }
    }
    return NULL;
}
