/*
 * peer_harness.c - no allocator at all: alloc returns the same static
 * block, free does nothing.  Its instruction count is the harness's own
 * cost per pair (the loop and two indirect calls), which the report
 * subtracts to give each allocator's net count.
 */
#include "bench.h"

static _Alignas(4096) char lbb_harness_block[LBB_BLOCK];

static int lbb_harness_init(struct lbb_peer *p)
{
    lbb_peer_note(p, "returns one static block; free does nothing");
    return 0;
}

static void *lbb_harness_thread_init(struct lbb_peer *p) { return p; }

static void *lbb_harness_alloc(void *tctx)
{
    (void)tctx;
    return lbb_harness_block;
}

static void lbb_harness_free(void *tctx, void *p)
{
    (void)tctx;
    (void)p;
}

struct lbb_peer lbb_peer_harness = {
    .name = "harness",
    .api = "none (loop and indirect calls only)",
    .reference = true,
    .init = lbb_harness_init,
    .thread_init = lbb_harness_thread_init,
    .alloc = lbb_harness_alloc,
    .free = lbb_harness_free,
};
