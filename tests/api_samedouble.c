/*
 * api_samedouble.c - regression test for finding 11.5: a thread's second
 * free of a page still in its own outbox batch returns 0, not -EALREADY.
 *
 * The header (FREES FROM OTHER THREADS): "A double free is refused at once
 * (-EALREADY) when the page already reads as free, or is still in the
 * freeing thread's own batch".  A page owned by another thread's cache is
 * freed into the freeing level's outbox for that owner, and a 32-entry
 * `recent` table per level (slot lb_recent_slot(page id), src/cache.h)
 * remembers it; lb_level_out_append looks in the outbox only when the
 * page's slot still names the page.  Once a later free of another page
 * has overwritten that slot, a second free of the page - still in the very
 * same batch - is appended again and returns 0 (the owner refuses it later
 * with a BAD_FREE report; the caller was told it succeeded).
 *
 * Deterministic, no race: thread T1 allocates 64 pages and stays alive
 * (they stay owned by its cache); the main thread frees all 64 (remote
 * frees: all into its one outbox batch for T1, 256-entry magazines, so the
 * batch is not handed on; the zone has no warden and is never short, so
 * nothing flushes it), then frees each of them a second time.  64 pages in
 * 32 slots: at least 32 of them have had their slot overwritten (and each
 * second free wrongly appended rewrites the slot of its partner, so on
 * 55db5ad all 63 are accepted).  Control:
 * the second free of the last page freed (its slot intact) is -EALREADY -
 * the batch is still the main thread's.  Every second free must return
 * -EALREADY; the test counts those that returned 0.  Public header only.
 */
#include "api_util.h"

#include <pthread.h>

#define NPG 64

static struct recorder rec;
static struct labyrinth_zone *Z;
static void *pages[NPG];
static int t1_ready, t1_go;

static void *t1_main(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < NPG; i++) {
        pages[i] = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
        REQUIRE(pages[i] != NULL);
    }
    __atomic_store_n(&t1_ready, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&t1_go, __ATOMIC_ACQUIRE))
        sleep_ms(1);
    return NULL;
}

int main(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "samedouble";
    c.pages = 4096;
    c.magazine_pages = 256;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    Z = zone_new(&c, &rec);

    pthread_t t1;
    REQUIRE(pthread_create(&t1, NULL, t1_main, NULL) == 0);
    while (!__atomic_load_n(&t1_ready, __ATOMIC_ACQUIRE))
        sleep_ms(1);

    /* First frees: T1's pages, freed by this thread, all legitimate. */
    for (unsigned i = 0; i < NPG; i++) {
        int rc = labyrinth_free_pages(Z, pages[i], 0);
        if (rc != 0)
            fprintf(stderr, "FAIL: first free of page %u (%p) returned %d (%s)\n", i, pages[i], rc,
                    labyrinth_strerror(rc));
        CHECK_EQ(rc, 0);
    }
    CHECK_EQ(rec_count(&rec), 0);
    struct labyrinth_zone_stats s = stats_of(Z);
    printf("%u pages of thread T1 freed by the main thread: %zu in flight to T1\n", NPG, s.in_flight_pages);
    CHECK_EQ(s.in_flight_pages, NPG);

    /* Control: the last page's slot still names it. */
    int rc = labyrinth_free_pages(Z, pages[NPG - 1], 0);
    if (rc != -EALREADY) {
        fprintf(stderr,
                "FAIL: control: the second free of the last page freed (%p) returned %d, not -EALREADY: "
                "the batch is no longer the freeing thread's (flushed?)\n", pages[NPG - 1], rc);
        CHECK_EQ(rc, -EALREADY);
    }

    /* Second frees of the others, in order: still in the same batch. */
    unsigned zero = 0, already = 0, other = 0, first_zero = NPG;
    for (unsigned i = 0; i < NPG - 1; i++) {
        rc = labyrinth_free_pages(Z, pages[i], 0);
        if (rc == 0) {
            if (zero++ == 0)
                first_zero = i;
        } else if (rc == -EALREADY) {
            already++;
        } else {
            other++;
            fprintf(stderr, "FAIL: second free of page %u (%p) returned %d (%s)\n", i, pages[i], rc,
                    labyrinth_strerror(rc));
        }
    }
    printf("second frees by the same thread, pages still in its outbox batch: %u -EALREADY, %u returned 0, "
           "%u other\n", already, zero, other);
    if (zero)
        fprintf(stderr,
                "FAIL: %u of %u double frees by the same thread of pages still in its own outbox batch "
                "returned 0 instead of -EALREADY (first: page %u, %p: its `recent` slot had been "
                "overwritten by a later free)\n",
                zero, NPG - 1, first_zero, pages[first_zero]);
    CHECK_EQ(zero, 0);
    CHECK_EQ(other, 0);

    /* Let everything settle: T1 exits (its cache takes the batches back and
     * refuses the queued duplicates), the main thread hands its batch on. */
    REQUIRE(labyrinth_thread_release(Z) == 0);
    __atomic_store_n(&t1_go, 1, __ATOMIC_RELEASE);
    REQUIRE(pthread_join(t1, NULL) == 0);
    CHECK_EQ(labyrinth_zone_check(Z), 0);
    printf("misuse reports: %d (refused double frees, at once or by the owner)\n", rec_count(&rec));
    labyrinth_zone_destroy(Z);
    return check_done("api_samedouble");
}
