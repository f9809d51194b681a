/*
 * peer_common.c - helpers shared by the adapters.
 */
#include <stdarg.h>
#include <stdio.h>

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
