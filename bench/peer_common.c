/*
 * peer_common.c - helpers shared by the adapters.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>

#include "bench.h"

int lbb_peer_fail(struct lbb_peer *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why, sizeof p->why, fmt, ap);
    va_end(ap);
    return -1;
}

void lbb_peer_note(struct lbb_peer *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->note, sizeof p->note, fmt, ap);
    va_end(ap);
}

size_t lbb_resident_pages(const void *addr, size_t len, size_t page)
{
    size_t n = (len + page - 1) / page, res = 0;
    unsigned char vec[4096];
    for (size_t off = 0; off < n; off += sizeof vec) {
        size_t m = n - off < sizeof vec ? n - off : sizeof vec;
        if (mincore((char *)addr + off * page, m * page, vec) != 0)
            return 0;
        for (size_t i = 0; i < m; i++)
            res += vec[i] & 1;
    }
    return res;
}
