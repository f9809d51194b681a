/*
 * fuzz_config.c - the zone-creation contract under random configurations
 * (issue 18, deliver 4).
 *
 * The input chooses up to three zones, created in turn: every field of
 * struct labyrinth_zone_config (zero, small, at its limits, just past them,
 * huge), and for caller memory a buffer in one arena: its offset (page
 * aligned, cache-line aligned, odd), its length, and where it lies against
 * the buffers of the zones already live (the same, inside, straddling,
 * containing, adjacent, apart).  Each creation must either
 *   - succeed with a healthy zone: a short workload of ATOMIC and NOWAIT
 *     allocations of random orders and qualities, every block inside the
 *     zone's caller memory when it has some, aligned, disjoint from every
 *     other live block, then every block freed, labyrinth_zone_check 0 and
 *     the page counts conserved; or
 *   - fail with one of the errnos the header documents for creation, and
 *     with the errno a rule below says when one applies (unknown bits,
 *     max_order above the limit, memory_bytes without memory, MUST_LOCK
 *     over caller memory, TRACK with NO_TRACKING: EINVAL; a buffer that
 *     overlaps a live zone's: never success).
 * Every zone is destroyed at the end of the input.  A violation prints
 * "CONFIG VIOLATION" and aborts (libFuzzer keeps the input).
 *
 * Sizes stay small (a zone maps at most a few MiB) so one input takes
 * milliseconds; values that would map gigabytes appear only where they
 * must be refused (pages above one region, max_order above the limit).
 * Read-only caller memory is not tried: the header documents it as a fault.
 */
#define _GNU_SOURCE
#include "../include/labyrinth.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ARENA_BYTES ((size_t)8 << 20)
#define MAX_ZONES   3
#define MAX_HELD    128

static unsigned char *arena;
static size_t PG;

struct in {
    const uint8_t *p;
    size_t n;
};

static unsigned u8(struct in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}
static unsigned u16(struct in *in) { return u8(in) | u8(in) << 8; }

static void violation(const char *what, const struct labyrinth_zone_config *c, int err)
{
    fprintf(stderr,
            "fuzz_config: CONFIG VIOLATION: %s (errno %d %s)\n  config: pages %zu max_pages %zu reserve %zu low %zu "
            "high %zu max_order %u flags %#x quality %#x memory %p+%zu magazine %u threads %u quarantine %u\n",
            what, err, labyrinth_strerror(err), c->pages, c->max_pages, c->reserve_pages, c->low_pages, c->high_pages,
            c->max_order, c->flags, c->quality, c->memory, c->memory_bytes, c->magazine_pages, c->max_threads,
            c->quarantine_pages);
    abort();
}

/* A page-count field: 0 (the default), small, around pages, or huge. */
static size_t count_field(struct in *in, size_t pages)
{
    unsigned sel = u8(in);
    switch (sel % 16) {
    case 0: case 1: case 8: case 9: case 10: case 11: case 12: case 13: case 14: return 0;
    case 2: return u8(in) % 16;
    case 3: return pages ? pages / (1 + u8(in) % 16) : u8(in);
    case 4: return pages + (u8(in) % 5) - 2; /* around pages, below and above it */
    case 5: return u16(in) % 2048;
    case 6: return pages;
    case 7: return sel & 0x80 ? (size_t)1 << 40 : SIZE_MAX; /* huge */
    default: return pages / 8;
    }
}

static void decode(struct in *in, struct labyrinth_zone_config *c, unsigned *mem_shape)
{
    memset(c, 0, sizeof *c);
    unsigned sel = u8(in);
    switch (sel % 8) {
    case 0: c->pages = 0; break;                             /* default 4096 */
    case 1: c->pages = 1 + u8(in) % 8; break;                /* tiny          */
    case 2: case 3: case 4: c->pages = 16 + u16(in) % 1024; break;
    case 5: c->pages = (1u << 24) - 1 + u8(in) % 3; break;  /* the region limit (huge ones refused) */
    case 6: c->pages = 64; break;
    default: c->pages = u16(in) % 4096; break;
    }
    bool huge_pages = c->pages >= (1u << 24) - 1;
    c->max_pages = count_field(in, c->pages);
    c->reserve_pages = count_field(in, c->pages);
    c->low_pages = count_field(in, c->pages);
    c->high_pages = count_field(in, c->pages);
    sel = u8(in);
    c->max_order = sel % 16 < 8 ? 0 : sel % 16 < 14 ? sel % 12 : sel % 16 == 14 ? 20 + sel % 3 : sel;
    c->poison_pattern = (unsigned char)u8(in);
    sel = u8(in);
    c->quality = (sel & 0xf0) == 0xf0 ? sel : sel & 0x30 ? 0 : sel & LABYRINTH_QUALITY_ALL;
    sel = u8(in);
    /* HUGE and the warden cost time, DMA needs root: each one in four. */
    c->flags = sel & (LABYRINTH_ZONE_VERIFY | LABYRINTH_ZONE_NO_TRACKING);
    if ((sel & 0xf0) == 0xf0)
        c->flags |= LABYRINTH_ZONE_MUST_LOCK; /* EINVAL over caller memory */
    unsigned more = u8(in);
    if (more % 4 == 0)
        c->flags |= LABYRINTH_ZONE_DMA;
    if (more % 8 == 1)
        c->flags |= LABYRINTH_ZONE_HUGE;
    if (more % 4 != 2)
        c->flags |= LABYRINTH_ZONE_NO_WARDEN;
    else if (more & 0x80)
        c->flags |= LABYRINTH_ZONE_WARDEN;
    if (more % 32 == 3)
        c->flags |= 0x100u << (more >> 5 & 3); /* an unknown bit */
    sel = u8(in);
    c->magazine_pages = sel % 4 == 0 ? 0 : sel % 4 == 1 ? 1 + sel % 64 : sel % 4 == 2 ? 256 + sel % 2 : 0;
    sel = u8(in);
    c->max_threads = sel % 4 == 0 ? 0 : sel % 4 == 1 ? 1 + sel % 16 : sel % 4 == 2 ? 4096 + (sel & 1) : 0;
    sel = u8(in);
    c->wait_timeout_ms = sel & 1 ? 1 + sel % 20 : 0;
    c->warden_interval_us = sel & 2 ? 100 + u8(in) : 0;
    sel = u8(in);
    c->quarantine_pages = sel % 8 < 4 ? 0 : sel % 8 < 6 ? sel % 32 : sel % 8 == 6 ? u16(in) % 5000 : 4096 + sel % 2;
    *mem_shape = u8(in);
    /* A zone that maps gigabytes must be refused for some other field, or
     * is not made at all: it would take the machine's memory. */
    if (huge_pages && !(c->flags & ~LABYRINTH_ZONE_FLAGS_ALL) && c->pages == (1u << 24) - 1)
        c->pages = 4096;
}

struct zone {
    struct labyrinth_zone *z;
    struct labyrinth_zone_config cfg;
    uintptr_t mem_lo, mem_hi; /* caller memory, or 0 */
};

static struct zone zones[MAX_ZONES];
static unsigned nzones;

/* The buffer of a caller-memory zone, placed against the live ones. */
static void place_memory(struct in *in, struct labyrinth_zone_config *c, unsigned shape)
{
    unsigned kind = shape % 16;
    if (kind >= 9)
        return; /* mapped by the zone itself */
    if (kind >= 7)
        kind = 0; /* apart from the others */
    size_t len = PG * (1 + u16(in) % 768);
    unsigned al = u8(in);
    size_t off = (size_t)u16(in) * PG % (ARENA_BYTES / 2);
    const struct zone *other = NULL;
    for (unsigned i = 0; i < nzones && !other; i++)
        if (zones[i].mem_lo)
            other = &zones[i];
    if (other && kind >= 1) {
        size_t olo = other->mem_lo - (uintptr_t)arena, olen = other->mem_hi - other->mem_lo;
        switch (kind) {
        case 1: off = olo; len = olen; break;                                         /* the same   */
        case 2: off = olo + olen / 4; len = olen / 2 ? olen / 2 : 1; break;           /* inside     */
        case 3: off = olo > len / 2 ? olo - len / 2 : 0; break;                        /* its start  */
        case 4: off = olo + olen - (olen < len ? olen : len) / 2; break;               /* its end    */
        case 5: off = olo + olen; break;                                              /* adjacent after */
        case 6: off = olo > len ? olo - len : 0; if (olo < len) len = olo ? olo : PG; break; /* before */
        }
    }
    /* Alignment: page aligned, cache-line aligned, or any byte. */
    if (al % 3 == 1)
        off += 64 * (1 + al % 16);
    else if (al % 3 == 2)
        off += 1 + al;
    if (off >= ARENA_BYTES)
        off %= ARENA_BYTES;
    if (len > ARENA_BYTES - off)
        len = ARENA_BYTES - off;
    if (!len)
        len = 1;
    c->memory = arena + off;
    c->memory_bytes = len;
    if ((shape & 0x70) != 0x70)
        c->max_pages = 0; /* mostly: caller memory does not grow (else EINVAL) */
    if ((shape & 0xf0) == 0x80)
        c->memory_bytes = (size_t)(u8(in) % 64) * 64; /* too small, or 0 */
    if ((shape & 0xf0) == 0x90) {
        c->memory = NULL; /* memory_bytes without memory */
        if (!c->memory_bytes)
            c->memory_bytes = PG;
    }
}

struct held {
    uintptr_t p;
    size_t bytes;
    unsigned order;
    unsigned zi;
};
static struct held held[MAX_HELD];
static unsigned nheld;

/* [lo, hi) overlaps a live zone's caller memory and lies inside none of
 * that zone's held blocks (a zone nested in a block is allowed). */
static bool overlaps_live(uintptr_t lo, uintptr_t hi)
{
    for (unsigned i = 0; i < nzones; i++) {
        if (!zones[i].mem_lo || !(lo < zones[i].mem_hi && zones[i].mem_lo < hi))
            continue;
        bool nested = false;
        for (unsigned k = 0; k < nheld; k++)
            nested |= held[k].zi == i && lo >= held[k].p && hi <= held[k].p + held[k].bytes;
        if (!nested)
            return true;
    }
    return false;
}

static void workload(struct in *in, unsigned zi)
{
    struct zone *zn = &zones[zi];
    struct labyrinth_zone_stats st;
    if (labyrinth_zone_stats(zn->z, &st) != 0)
        violation("stats refused a live zone", &zn->cfg, 0);
    unsigned max_order = zn->cfg.max_order ? zn->cfg.max_order : 10;
    unsigned steps = 8 + u8(in) % 56;
    for (unsigned s = 0; s < steps; s++) {
        unsigned op = u8(in);
        if (op % 3 != 0 || !nheld) {
            if (nheld == MAX_HELD)
                continue;
            unsigned order = (op >> 2) % (max_order < 3 ? max_order + 1 : 4);
            unsigned gfp = op & 0x80 ? LABYRINTH_GFP_NOWAIT : LABYRINTH_GFP_ATOMIC;
            unsigned q = op & 0x40 ? (LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_POISON) : 0;
            if (!(zn->cfg.flags & LABYRINTH_ZONE_NO_TRACKING) && (op & 0x20))
                q |= LABYRINTH_QUALITY_TRACK;
            unsigned char *p = labyrinth_alloc_pages(zn->z, gfp, order, q);
            if (!p)
                continue;
            size_t bytes = PG << order;
            uintptr_t a = (uintptr_t)p;
            if (a % bytes)
                violation("a block not naturally aligned", &zn->cfg, 0);
            if (zn->mem_lo && (a < zn->mem_lo || a + bytes > zn->mem_hi))
                violation("a block outside the zone's caller memory", &zn->cfg, 0);
            for (unsigned i = 0; i < nheld; i++)
                if (a < held[i].p + held[i].bytes && held[i].p < a + bytes)
                    violation("a block overlapping a held block (of this or another zone)", &zn->cfg, 0);
            if ((q | zn->cfg.quality) & LABYRINTH_QUALITY_ZERO)
                for (size_t k = 0; k < bytes; k += 509)
                    if (p[k])
                        violation("a ZERO block not zero", &zn->cfg, 0);
            memset(p, 0xc3, bytes);
            held[nheld++] = (struct held){a, bytes, order, zi};
        } else {
            unsigned k = (op >> 2) % nheld;
            if (held[k].zi != zi)
                continue;
            int rc = labyrinth_free_pages(zn->z, (void *)held[k].p, held[k].order);
            if (rc)
                violation("a free of a held block refused", &zn->cfg, -rc);
            held[k] = held[--nheld];
        }
    }
}

static void free_zone_blocks(unsigned zi)
{
    for (unsigned i = 0; i < nheld;) {
        if (held[i].zi == zi) {
            int rc = labyrinth_free_pages(zones[zi].z, (void *)held[i].p, held[i].order);
            if (rc)
                violation("a free at the end refused", &zones[zi].cfg, -rc);
            held[i] = held[--nheld];
        } else {
            i++;
        }
    }
}

static void check_healthy(unsigned zi)
{
    struct zone *zn = &zones[zi];
    long bad = labyrinth_zone_check(zn->z);
    if (bad != 0)
        violation("labyrinth_zone_check found violated invariants", &zn->cfg, bad < 0 ? (int)-bad : 0);
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(zn->z, &st);
    if (st.free_pages + st.in_use_pages != st.total_pages)
        violation("free + in use != total", &zn->cfg, 0);
    if (st.misuse_reports)
        violation("misuse reported for a correct workload", &zn->cfg, 0);
}

/* With nothing in use and no warden moving pages, every free page is
 * this thread's to take: ATOMIC, order 0, gets them all (magazines,
 * depot, buddy, parked blocks, reserve and the level's own quarantine)
 * before it returns NULL (issue 18.3: a quarantine held them back). */
static void drain_all(unsigned zi)
{
    struct zone *zn = &zones[zi];
    bool warden = zn->cfg.memory ? (zn->cfg.flags & LABYRINTH_ZONE_WARDEN) : !(zn->cfg.flags & LABYRINTH_ZONE_NO_WARDEN);
    if (warden)
        return;
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(zn->z, &st);
    size_t want = st.free_pages, n = 0;
    /* The drain is the dearest step of an input (about two thirds of its
     * time at 1024 pages): zones of up to 256 free pages, and those with a
     * quarantine up to 1024. */
    static void *pages[1024];
    if (want > (zn->cfg.quarantine_pages ? sizeof pages / sizeof pages[0] : 256))
        return;
    while (n < want && (pages[n] = labyrinth_alloc_pages(zn->z, LABYRINTH_GFP_ATOMIC, 0, 0)))
        n++;
    if (n != want) {
        fprintf(stderr, "fuzz_config: ATOMIC got %zu of %zu free pages (quarantined %zu)\n", n, want,
                st.quarantined_pages);
        violation("ATOMIC failed with free pages left to its only thread", &zn->cfg, 0);
    }
    if (labyrinth_alloc_pages(zn->z, LABYRINTH_GFP_ATOMIC, 0, 0))
        violation("ATOMIC got more pages than were free", &zn->cfg, 0);
    for (size_t i = 0; i < n; i++)
        if (labyrinth_free_pages(zn->z, pages[i], 0))
            violation("a free of a drained page refused", &zn->cfg, 0);
    check_healthy(zi);
}

static int documented(int err)
{
    return err == EINVAL || err == EEXIST || err == ENOMEM || err == EPERM || err == EIO || err == EAGAIN ||
           err == ENOSPC;
}

/* The zone's name: NULL, or up to 63 bytes of the input (any byte but
 * NUL), kept for the zone's life in names[k]. */
static char names[MAX_ZONES][64];
static void pick_name(struct in *in, struct labyrinth_zone_config *c, unsigned k)
{
    unsigned b = u8(in);
    if (b & 0x80) {
        c->name = NULL;
        return;
    }
    unsigned n = b % 64;
    for (unsigned i = 0; i < n; i++) {
        unsigned ch = u8(in);
        names[k][i] = (char)(ch ? ch : 'n');
    }
    names[k][n] = 0;
    c->name = names[k];
}

/* The bytes of a name the zone keeps (47, then NUL). */
#define NAME_KEPT 47

/* A rule that decides the errno on its own (checked before any memory is
 * looked at), or 0. */
static int must_fail(const struct labyrinth_zone_config *c)
{
    /* A control character or '/' among the bytes kept (KB44). */
    for (unsigned i = 0; c->name && c->name[i] && i < NAME_KEPT; i++) {
        unsigned char ch = (unsigned char)c->name[i];
        if (ch < 0x20 || ch == 0x7f || ch == '/')
            return EINVAL;
    }
    if (c->flags & ~LABYRINTH_ZONE_FLAGS_ALL || c->quality & ~LABYRINTH_QUALITY_ALL)
        return EINVAL;
    if ((c->flags & LABYRINTH_ZONE_NO_TRACKING) && (c->quality & LABYRINTH_QUALITY_TRACK))
        return EINVAL;
    if (!c->memory && c->memory_bytes)
        return EINVAL;
    if (c->memory && (!c->memory_bytes || (c->flags & LABYRINTH_ZONE_MUST_LOCK)))
        return EINVAL;
    return 0;
}

static void quiet_report(const struct labyrinth_report *r, void *arg)
{
    (void)arg;
    if (r->kind != LABYRINTH_REPORT_NOTICE)
        fprintf(stderr, "fuzz_config: report %d: %s\n", (int)r->kind, r->message);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!arena) {
        PG = labyrinth_page_size();
        arena = mmap(NULL, ARENA_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (arena == MAP_FAILED)
            abort();
    }
    struct in in = {data, size};
    nzones = 0;
    nheld = 0;
    unsigned want = 1 + u8(&in) % MAX_ZONES;
    for (unsigned k = 0; k < want; k++) {
        struct labyrinth_zone_config c;
        unsigned shape;
        decode(&in, &c, &shape);
        place_memory(&in, &c, shape);
        pick_name(&in, &c, k);
        int rule = must_fail(&c);
        bool overlap = c.memory && c.memory_bytes &&
                       overlaps_live((uintptr_t)c.memory, (uintptr_t)c.memory + c.memory_bytes);
        errno = 0;
        struct labyrinth_zone *z = labyrinth_zone_create(&c);
        int err = errno;
        if (!z) {
            if (!documented(err))
                violation("creation failed with an errno the header does not document", &c, err);
            if (rule && err != rule)
                violation("creation failed with another errno than the rule's", &c, err);
            continue;
        }
        if (rule)
            violation("creation succeeded where a rule says it must fail", &c, 0);
        if (getenv("LB_FUZZ_TRACE"))
            fprintf(stderr, "fuzz_config: created pages %zu flags %#x memory %p+%zu quarantine %u\n", c.pages, c.flags,
                    c.memory, c.memory_bytes, c.quarantine_pages);
        if (overlap)
            violation("creation succeeded over another live zone's caller memory", &c, 0);
        for (unsigned i = 0; i < nzones; i++)
            if (zones[i].z == z)
                violation("creation returned the handle of a live zone", &c, 0);
        /* The name kept: the first 47 bytes, or "zone". */
        const char *want_name = c.name ? c.name : "zone";
        size_t want_len = strnlen(want_name, NAME_KEPT);
        const char *got_name = labyrinth_zone_name(z);
        if (!got_name || strlen(got_name) != want_len || memcmp(got_name, want_name, want_len))
            violation("the zone's name is not the first 47 bytes of the one given", &c, 0);
        struct zone *zn = &zones[nzones++];
        zn->z = z;
        zn->cfg = c;
        zn->mem_lo = c.memory ? (uintptr_t)c.memory : 0;
        zn->mem_hi = c.memory ? (uintptr_t)c.memory + c.memory_bytes : 0;
        labyrinth_zone_set_report_handler(z, quiet_report, NULL);
        check_healthy(nzones - 1);
        workload(&in, nzones - 1);
        /* The zones made before must not have been disturbed. */
        for (unsigned i = 0; i < nzones; i++)
            if (labyrinth_zone_check(zones[i].z) != 0)
                violation("a live zone unhealthy after another's creation and workload", &zones[i].cfg, 0);
    }
    for (unsigned i = 0; i < nzones; i++) {
        free_zone_blocks(i);
        check_healthy(i);
        drain_all(i);
        labyrinth_zone_destroy(zones[i].z);
    }
    nzones = 0;
    return 0;
}
