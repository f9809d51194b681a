/*
 * peer_mimalloc.c - mimalloc, through its prefixed mi_aligned_alloc /
 * mi_free (dlopen'ed like the others: Debian's libmimalloc also overrides
 * malloc when linked).
 */
#include <stdio.h>

#include "bench.h"

static struct lbb_dl lbb_mi;

static int lbb_mi_init(struct lbb_peer *p)
{
    static const char *const so[] = {"libmimalloc.so.2", "libmimalloc.so", NULL};
    if (lbb_dl_open(p, &lbb_mi, so, "mi_aligned_alloc", "mi_free"))
        return -1;
    int (*ver)(void);
    *(void **)&ver = lbb_dl_sym(&lbb_mi, "mi_version");
    if (ver) {
        int v = ver();
        snprintf(p->version, sizeof p->version, "%d.%d.%d", v / 100, v / 10 % 10, v % 10);
    }
    return 0;
}

struct lbb_peer lbb_peer_mimalloc = {
    .name = "mimalloc",
    .grows = true,
    .api = "mi_aligned_alloc(4096, 4096) / mi_free(p)",
    .init = lbb_mi_init,
    .thread_init = lbb_dl_thread_init,
    .thread_fini = lbb_dl_thread_fini,
    .alloc = lbb_dl_alloc,
    .free = lbb_dl_free,
    .orders = &lbb_dl_orders,
};
