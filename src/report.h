/*
 * report.h - layer 5: misuse and notice reports (report.c).  Every report
 * is built by lb_report_make and handed to the zone's handler through
 * lb_zone_report; the default handler writes one line on stderr
 * (async-signal-safe).  Also the errno texts of labyrinth_strerror and
 * the internal-invariant panic.
 *
 * Context: any (reports are made on the ATOMIC path too), except where
 * said.  The formatter writes into the caller's buffer, never allocates.
 */
#ifndef LB_REPORT_H
#define LB_REPORT_H

#include "zone.h"

/* A tiny async-signal-safe formatter for report lines. */
struct lb_fmt {
    char  *buf;
    size_t len, cap;
};
void lb_fmt_str(struct lb_fmt *f, const char *s);
void lb_fmt_hex(struct lb_fmt *f, uint64_t v);
void lb_fmt_dec(struct lb_fmt *f, uint64_t v);
/* An address: a data address (lb_fmt_ptr) or a code address
 * (lb_fmt_code).  User space: hex, as lb_fmt_hex; a kernel: hashed, or a
 * symbol (lb_os_fmt_addr). */
void lb_fmt_ptr(struct lb_fmt *f, const void *p);
void lb_fmt_code(struct lb_fmt *f, const void *p);

/* The one constructor: a report of kind in zone z (NULL: no zone) with
 * its message; the caller sets the other fields it knows. */
static inline struct labyrinth_report lb_report_make(enum labyrinth_report_kind kind,
                                                     const struct lb_zone *z, int err,
                                                     const char *message)
{
    struct labyrinth_report rep;
    __builtin_memset(&rep, 0, sizeof rep);
    rep.kind = kind;
    rep.err = err;
    rep.zone_name = z ? z->name : "(none)";
    rep.message = message;
    return rep;
}

/* Hand a report to the zone's handler; counts misuse kinds and aborts
 * after the report in STRICT zones. */
void lb_zone_report(struct lb_zone *z, const struct labyrinth_report *rep);
/* The default handler: one line on stderr (async-signal-safe), within
 * the limits per zone and kind (arg: the zone, or NULL; issue 17.9). */
void lb_report_default(const struct labyrinth_report *rep, void *arg);
/* The same; force: past every limit (a STRICT zone's line before its
 * abort). */
void lb_report_print(const struct labyrinth_report *rep, struct lb_zone *z, bool force);
/* At destroy (normal context): a line for each kind whose lines a window
 * held back and no later line summarised, of zone z and of no zone (z
 * NULL: only those; a kernel's module exit). */
void lb_report_flush(struct lb_zone *z);
/* A NOTICE with message msg. */
void lb_zone_notice(struct lb_zone *z, const char *msg);
/* A call refused before any zone could hear of it (NULL or dead zone):
 * reported by the default handler. */
/* "EINVAL" for -EINVAL or EINVAL, "E?" for one the API never returns. */
const char *lb_errname(int err);
void lb_report_no_zone(const char *what, const struct labyrinth_zone *h, const void *addr, const void *caller);
/* The calls that report nothing on a dead handle (stats, check, ...):
 * -EBADF, and a report through the default handler when h is a zone
 * inherited across fork() (the child's surprise deserves a line). */
int lb_refuse_handle_at(const char *what, const struct labyrinth_zone *h, const void *caller);
#define lb_refuse_handle(what, h) lb_refuse_handle_at((what), (h), __builtin_return_address(0))
/* A normal-context entry point called where it cannot sleep (issue 17.7):
 * a BAD_ARGS report (to z's handler, or the default one when z is NULL)
 * naming what; returns -EDEADLK. */
int lb_refuse_context(struct lb_zone *z, const char *what, const void *caller);
/* The check at the top of every normal-context entry point: 0, or
 * -EDEADLK after a report.  User space: always 0 (any context may call
 * them as far as the OS is concerned; a signal handler must not). */
#define LB_NORMAL_CONTEXT(z, what) \
    (LB_LIKELY(lb_os_may_sleep()) ? 0 : lb_refuse_context((z), (what), __builtin_return_address(0)))
/* Report a refused free or register of addr (order) with err; returns err. */
int lb_refuse(struct lb_zone *z, enum labyrinth_report_kind kind, const char *what,
              const void *addr, unsigned order, int err, const void *caller);
/* A queued free found invalid by the page's owner (lb_cache.bad_entry). */
void lb_zone_bad_entry(void *ctx, void *page, uint64_t w);

#endif /* LB_REPORT_H */
