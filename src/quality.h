/*
 * quality.h - layer 6: what is applied around an allocation and a free:
 * zero, poison, the cache-line assertion, use-after-free verification
 * (ZONE_VERIFY) in quality.c, and the tracking records (owner, call site,
 * time, tag) in track.c.
 */
#ifndef LB_QUALITY_H
#define LB_QUALITY_H

#include "zone.h"

/* Apply quality q to the block p of 2^order pages the caller now owns.
 * A failed CL_ALIGN assertion is reported (and aborts in STRICT zones). */
void lb_quality_apply(struct lb_zone *z, void *p, unsigned order, unsigned q,
                      const void *caller, const struct labyrinth_site *site, uint32_t tag);

/* The cache-line assertion on its own: true when p is aligned, else a
 * CL_ALIGN report is made. */
bool lb_quality_assert_cl_align(struct lb_zone *z, const void *p, unsigned order,
                                const void *caller);

/* ZONE_VERIFY: every free page holds the poison pattern.  Fill a block
 * being freed; check a block being handed out (a mismatch is reported as
 * USE_AFTER_FREE with the offset and the page's last owner). */
void lb_verify_poison(struct lb_zone *z, void *p, unsigned order);
bool lb_verify_check(struct lb_zone *z, void *p, unsigned order, const void *caller);

/* Call fn for every block in use (not in flight back to its owner) until
 * it returns non-zero; returns the blocks visited or -ENOMEM (normal
 * context). */
long lb_zone_for_each_in_use(struct lb_zone *z, int (*fn)(const struct labyrinth_page_info *info, void *arg),
                             void *arg);
/* Tracking records. */
void lb_track_write(struct lb_zone *z, struct lb_region *r, uint32_t idx, const void *caller,
                    const struct labyrinth_site *site, uint32_t tag);
/* The same, for record t (the seed's macro's fast path has it at hand). */
void lb_track_write_rec(struct lb_zone *z, struct lb_track_rec *t, const void *caller,
                        const struct labyrinth_site *site, uint32_t tag);
/* Decode page idx's tracking record into out's site or caller, thread,
 * tag and alloc_ns (fields left alone when the record was never written). */
void lb_track_read(struct lb_zone *z, const struct lb_region *r, uint32_t idx,
                   struct labyrinth_page_info *out);
/* What the zone knows of page idx of r (the block holding it). */
void lb_page_info_fill(struct lb_zone *z, struct lb_region *r, uint32_t idx,
                       struct labyrinth_page_info *out);

#endif /* LB_QUALITY_H */
