/*
 * peer_jemalloc.c - jemalloc.  Debian builds it without a symbol prefix:
 * its aligned_alloc / free are malloc's own names, so it is dlopen'ed and
 * they are looked up on its handle (see peer_dlopen.c).
 */
#include <stdio.h>

#include "bench.h"

static struct lbb_dl lbb_je;

static int lbb_je_init(struct lbb_peer *p)
{
    static const char *const so[] = {"libjemalloc.so.2", "libjemalloc.so", NULL};
    if (lbb_dl_open(p, &lbb_je, so, "aligned_alloc", "free"))
        return -1;
    int (*ctl)(const char *, void *, size_t *, void *, size_t);
    *(void **)&ctl = lbb_dl_sym(&lbb_je, "mallctl");
    const char *v = NULL;
    size_t len = sizeof v;
    if (ctl && ctl("version", &v, &len, NULL, 0) == 0 && v)
        snprintf(p->version, sizeof p->version, "%s", v);
    return 0;
}

struct lbb_peer lbb_peer_jemalloc = {
    .name = "jemalloc",
    .grows = true,
    .api = "aligned_alloc(4096, 4096) / free(p), jemalloc's own",
    .init = lbb_je_init,
    .thread_init = lbb_dl_thread_init,
    .thread_fini = lbb_dl_thread_fini,
    .alloc = lbb_dl_alloc,
    .free = lbb_dl_free,
    .orders = &lbb_dl_orders,
};
