/*
 * peer_glibc.c - the C library's aligned_alloc / free (the process's own
 * malloc: nothing else replaces it, see peer_dlopen.c).
 */
#include <stdio.h>
#include <stdlib.h>
#if defined(__GLIBC__)
#include <gnu/libc-version.h>
#endif

#include "bench.h"

static int lbb_glibc_init(struct lbb_peer *p)
{
#if defined(__GLIBC__)
    snprintf(p->version, sizeof p->version, "glibc %s", gnu_get_libc_version());
#else
    snprintf(p->version, sizeof p->version, "libc");
#endif
    lbb_peer_note(p, "the process's malloc");
    return 0;
}

static void *lbb_glibc_thread_init(struct lbb_peer *p)
{
    return p; /* any non-NULL context */
}

static void *lbb_glibc_alloc(void *tctx)
{
    (void)tctx;
    return aligned_alloc(LBB_BLOCK, LBB_BLOCK);
}

static void lbb_glibc_free(void *tctx, void *p)
{
    (void)tctx;
    free(p);
}

static void *lbb_glibco_open(struct lbb_peer *p, size_t pages, enum lbb_omode mode, char *why, size_t len)
{
    (void)pages;
    (void)mode;
    (void)why;
    (void)len;
    return p;
}

static void *lbb_glibco_alloc(void *inst, unsigned order)
{
    (void)inst;
    return aligned_alloc((size_t)LBB_BLOCK << order, (size_t)LBB_BLOCK << order);
}

static void lbb_glibco_free(void *inst, void *p, unsigned order)
{
    (void)inst;
    (void)order;
    free(p);
}

static void lbb_glibco_close(struct lbb_peer *p, void *inst)
{
    (void)p;
    (void)inst;
}

static const struct lbb_order_ops lbb_glibc_orders = {
    .api = "aligned_alloc(4096 << k, 4096 << k) / free(p)",
    .open = lbb_glibco_open,
    .alloc = lbb_glibco_alloc,
    .free = lbb_glibco_free,
    .close = lbb_glibco_close,
};

struct lbb_peer lbb_peer_glibc = {
    .name = "glibc",
    .grows = true,
    .api = "aligned_alloc(4096, 4096) / free(p)",
    .init = lbb_glibc_init,
    .thread_init = lbb_glibc_thread_init,
    .alloc = lbb_glibc_alloc,
    .free = lbb_glibc_free,
    .orders = &lbb_glibc_orders,
};
