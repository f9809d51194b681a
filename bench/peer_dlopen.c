/*
 * peer_dlopen.c - allocators that would replace malloc, kept apart.
 *
 * tcmalloc, jemalloc and mimalloc all define malloc/free.  Linked into the
 * program, the first one on the link line would become the malloc of the
 * whole process (glibc's row, DPDK's and labyrinth's internals included),
 * and the others would be shadowed.  So none is linked: each is opened
 * with dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND):
 *   RTLD_LOCAL    its symbols do not join the global scope, so nothing
 *                 else in the process binds to its malloc;
 *   RTLD_DEEPBIND its own references (malloc inside tcmalloc's operator
 *                 new, say) bind to itself before the global scope.
 * Its entry points are then looked up with dlsym on its handle and called
 * through pointers: every peer pays one indirect call more than labyrinth
 * and DPDK, whose calls are direct (a few instructions, see the harness
 * row of the instruction counts).
 *
 * jemalloc's initial-exec TLS (2.6 KiB) does not fit glibc's default
 * surplus of static TLS for dlopen (512 bytes): main() re-executes the
 * program once with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=65536.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

int lbb_dl_open(struct lbb_peer *p, struct lbb_dl *d, const char *const *sonames,
                const char *alloc_sym, const char *free_sym)
{
    char errs[200] = "";
    memset(d, 0, sizeof *d);
    for (const char *const *s = sonames; *s; s++) {
        d->handle = dlopen(*s, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
        if (d->handle) {
            lbb_peer_note(p, "dlopen(\"%s\", RTLD_LOCAL|RTLD_DEEPBIND); %s / %s via dlsym", *s, alloc_sym,
                          free_sym);
            break;
        }
        const char *e = dlerror();
        if (!errs[0]) /* the first soname's reason is the telling one */
            lbb_copy(errs, sizeof errs, e ? e : *s);
    }
    if (!d->handle)
        return lbb_peer_fail(p, "not loadable: %s", errs);
    *(void **)&d->aligned = dlsym(d->handle, alloc_sym);
    *(void **)&d->release = dlsym(d->handle, free_sym);
    if (!d->aligned || !d->release)
        return lbb_peer_fail(p, "%s or %s not found in %s", alloc_sym, free_sym, sonames[0]);
    /* One call now, so that first-use set-up is not timed. */
    void *b = d->aligned(LBB_BLOCK, LBB_BLOCK);
    if (!b || ((uintptr_t)b & (LBB_BLOCK - 1)))
        return lbb_peer_fail(p, "%s(%u, %u) returned %p", alloc_sym, LBB_BLOCK, LBB_BLOCK, b);
    d->release(b);
    p->state = d;
    return 0;
}

void *lbb_dl_sym(struct lbb_dl *d, const char *sym) { return dlsym(d->handle, sym); }

void *lbb_dl_thread_init(struct lbb_peer *p) { return p->state; }

void lbb_dl_thread_fini(struct lbb_peer *p, void *tctx)
{
    (void)p;
    (void)tctx;
}

void *lbb_dl_alloc(void *tctx)
{
    const struct lbb_dl *d = tctx;
    return d->aligned(LBB_BLOCK, LBB_BLOCK);
}

void lbb_dl_free(void *tctx, void *p)
{
    const struct lbb_dl *d = tctx;
    d->release(p);
}

/* ---- orders: the same entry points, 4096 << k bytes on a 4096 << k boundary ---- */

static void *lbb_dlo_open(struct lbb_peer *p, size_t pages, enum lbb_omode mode, char *why, size_t len)
{
    (void)pages;
    (void)mode;
    if (!p->state)
        snprintf(why, len, "not set up");
    return p->state; /* the allocator itself: one per process */
}

static void *lbb_dlo_alloc(void *inst, unsigned order)
{
    const struct lbb_dl *d = inst;
    return d->aligned((size_t)LBB_BLOCK << order, (size_t)LBB_BLOCK << order);
}

static void lbb_dlo_free(void *inst, void *p, unsigned order)
{
    const struct lbb_dl *d = inst;
    (void)order;
    d->release(p);
}

static void lbb_dlo_close(struct lbb_peer *p, void *inst)
{
    (void)p;
    (void)inst;
}

const struct lbb_order_ops lbb_dl_orders = {
    .api = "its aligned allocation of 4096 << k bytes, 4096 << k aligned / its free",
    .open = lbb_dlo_open,
    .alloc = lbb_dlo_alloc,
    .free = lbb_dlo_free,
    .close = lbb_dlo_close,
};
