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
/* The same check against byte b (0 for a page of the zeroed stock). */
bool lb_verify_check_byte(struct lb_zone *z, void *p, unsigned order, const void *caller, unsigned char b);

/* The zeroed stock (docs/design.md, "The zeroed stock").  lb_zero_clear:
 * the warden clears free page p, which it holds (VERIFY zones: its poison
 * is checked first, a use after free reported as on allocation); memory
 * tools see the page free before and after.  lb_zero_unstock: a VERIFY
 * zone's stock page p, held by the caller, leaves the stock for the buddy
 * or for an allocation that did not ask for ZERO: its zeros are checked
 * (a write into the stock is a use after free) and the poison restored,
 * as every free page of a VERIFY zone holds it. */
void lb_zero_clear(struct lb_zone *z, void *p);
void lb_zero_unstock(struct lb_zone *z, void *p);

/* Call fn for every block in use (not in flight back to its owner) until
 * it returns non-zero; returns the blocks visited or -ENOMEM (normal
 * context). */
long lb_zone_for_each_in_use(struct lb_zone *z, int (*fn)(const struct labyrinth_page_info *info, void *arg),
                             void *arg);
/* Tracking record layout (16 bytes, struct lb_track_rec, and 4 in the
 * region's track_hi[]: issue 11.5, the full thread id):
 *   who:  bits 0..47  code address of the caller, or a struct labyrinth_site *
 *         bits 48..62 thread id, bits 0..14
 *         bit  63     the address is a site pointer
 *   when: bits 0..38  the zone's clock (lb_zone_clock_read: units of 1.024 ms
 *                     since the zone's creation, 17.8 years; coarse when a
 *                     warden runs)
 *         bit  39     0 (it held the thread id's bit 15 before track_hi)
 *         bits 40..63 tag (24 bits)
 *   track_hi[]:       thread id, bits 15..31
 * Written by the block's owner with relaxed stores; readers (page_info, the
 * leak report, VERIFY's last-owner line) may see a record being rewritten
 * by its owner and get one word old and one new.  The site flag shares the
 * pointer's word, so the pointer is always read as what it was written as:
 * never a caller's code address taken for a site (KB8: the flag used to sit
 * in `when`).  A torn read can only mix the thread, time and tag of two
 * writes, the thread id's two halves included (two contexts writing one
 * record at once, a register racing the page's next allocation, can even
 * leave that mix at rest: the review of issue 11.5). */
#define LB_TRACK_ADDR_MASK ((1ull << 48) - 1)
/* The thread bits and the site flag are tcache.h's id word (lb_id_word). */
#define LB_TRACK_SITE_BIT        LB_ID_WORD_TOP_BIT
#define LB_TRACK_THREAD_LO_SHIFT LB_ID_WORD_LO_SHIFT
#define LB_TRACK_THREAD_LO_MASK  LB_ID_WORD_LO_MASK
#define LB_TRACK_THREAD_HI_SHIFT LB_ID_WORD_HI_SHIFT
#define LB_TRACK_TIME_MASK ((1ull << 39) - 1)

_Static_assert(LB_TRACK_TIME_MASK == LB_CLOCK_MAX, "a clock value fills the time field exactly");

/* Store record t for a site, from the caller's id word tw (lb_id_word),
 * time units <= LB_CLOCK_MAX, tag 0: what lb_track_store(site, true, tid,
 * units, 0) stores.  The pointer's bits 0..47 merged with the word's
 * 48..63; track_hi takes the word's low 32 bits. */
static inline void lb_track_store_site(struct lb_track_rec *t, lb_atomic_u32 *hi, const struct labyrinth_site *site,
                                       uint64_t tw, uint64_t units)
{
    uint64_t who = (((uintptr_t)site ^ tw) & LB_TRACK_ADDR_MASK) ^ tw;
    uint64_t when = units;
    /* Relaxed: as lb_track_store.  The id's high bits: the word's low 32. */
    lb_store_rlx_u32(hi, (uint32_t)tw);
    lb_store_rlx_u64(&t->who, who);
    lb_store_rlx_u64(&t->when, when);
}

/* Tracking records. */
void lb_track_write(struct lb_zone *z, struct lb_region *r, uint32_t idx, const void *caller,
                    const struct labyrinth_site *site, uint32_t tag);
/* Store record t: who (a caller's code address, or a site when is_site),
 * thread tid, time units (lb_zone_clock_read), tag. */
static inline void lb_track_store(struct lb_track_rec *t, lb_atomic_u32 *hi, const void *who_ptr, bool is_site,
                                  uint32_t tid, uint64_t units, uint32_t tag)
{
    /* The id word's bits 48..63 beside the pointer (its site flag
     * cleared for a caller), its low 32 in track_hi. */
    uint64_t tw = lb_id_word(tid);
    uint64_t who = (((uintptr_t)who_ptr ^ tw) & LB_TRACK_ADDR_MASK) ^ tw;
    if (!is_site)
        who &= ~LB_TRACK_SITE_BIT;
    uint64_t when = (units & LB_TRACK_TIME_MASK) | (uint64_t)(tag & 0xffffffu) << 40;
    /* Relaxed: the record's owner is its only writer; readers may see one
     * word old and one new (the layout above says what that can mix). */
    lb_store_rlx_u32(hi, (uint32_t)tw);
    lb_store_rlx_u64(&t->who, who);
    lb_store_rlx_u64(&t->when, when);
}
/* The same, for record t (high word hi), now. */
static inline void lb_track_write_rec(struct lb_zone *z, struct lb_track_rec *t, lb_atomic_u32 *hi,
                                      const void *caller, const struct labyrinth_site *site, uint32_t tag)
{
    lb_track_store(t, hi, site ? (const void *)site : caller, site != NULL, lb_thread_id_fast(),
                   lb_zone_clock_read(z, z->handle), tag);
}
/* Decode page idx's tracking record into out's site or caller, thread,
 * tag and alloc_ns (fields left alone when the record was never written). */
void lb_track_read(struct lb_zone *z, const struct lb_region *r, uint32_t idx,
                   struct labyrinth_page_info *out);
/* What the zone knows of page idx of r (the block holding it). */
void lb_page_info_fill(struct lb_zone *z, struct lb_region *r, uint32_t idx,
                       struct labyrinth_page_info *out);

#endif /* LB_QUALITY_H */
