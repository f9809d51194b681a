/*
 * peer_tcmalloc.c - gperftools' tcmalloc (libtcmalloc_minimal), through
 * its prefixed entry points tc_memalign / tc_free (see peer_dlopen.c for
 * why it is dlopen'ed).
 */
#include <stdio.h>

#include "bench.h"

static struct lbb_dl lbb_tc;

static int lbb_tc_init(struct lbb_peer *p)
{
    static const char *const so[] = {"libtcmalloc_minimal.so.4", "libtcmalloc_minimal.so", NULL};
    if (lbb_dl_open(p, &lbb_tc, so, "tc_memalign", "tc_free"))
        return -1;
    const char *(*ver)(int *, int *, const char **);
    *(void **)&ver = lbb_dl_sym(&lbb_tc, "tc_version");
    if (ver) {
        int major = 0, minor = 0;
        const char *patch = "";
        ver(&major, &minor, &patch);
        snprintf(p->version, sizeof p->version, "gperftools %d.%d%s", major, minor, patch ? patch : "");
    }
    return 0;
}

struct lbb_peer lbb_peer_tcmalloc = {
    .name = "tcmalloc",
    .grows = true,
    .api = "tc_memalign(4096, 4096) / tc_free(p)",
    .init = lbb_tc_init,
    .thread_init = lbb_dl_thread_init,
    .thread_fini = lbb_dl_thread_fini,
    .alloc = lbb_dl_alloc,
    .free = lbb_dl_free,
    .orders = &lbb_dl_orders,
};
