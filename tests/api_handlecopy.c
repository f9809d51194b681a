/*
 * api_handlecopy.c - a byte copy of a live handle is not a handle
 * (include/labyrinth.h, HANDLES: readable memory that was never a handle
 * is refused).  Found by the issue-17 review in the kernel: the inlined
 * fast paths compared the copy's serial with the thread's current zone and
 * served it; after labyrinth_zone_destroy the copy, used on the thread
 * that had used the zone last, read the zone's freed metadata (an oops in
 * the kernel; here a read of unmapped memory).  Now the fast paths compare
 * a key tied to the handle's address, so the copy misses and is refused.
 *
 * Each case runs in a child (a fault is reported, not fatal to the test):
 *   live  - the thread uses the zone, then allocates, frees and calls the
 *           seed's macro through a copy: NULL / -EBADF, the zone unchanged
 *   stale - the same after the zone is destroyed (and its memory, caller
 *           memory here, unmapped)
 *   forged - copies of X at the addresses where a copy keyed as zone Y
 *           (below)
 * On the code before the key, "live" got pages through the copy and
 * "stale" died with SIGSEGV; before the table check (KB48), "forged"
 * aborted.
 */
#define _GNU_SOURCE
#include "api_util.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define COPY_BYTES 1024 /* more than a handle's size (the type is opaque) */

static void quiet(const struct labyrinth_report *r, void *a)
{
    (void)r;
    (void)a;
}

/* The child: returns its exit status (0 = every call refused). */
static int child(int stale)
{
    size_t bytes = 256 * labyrinth_page_size();
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return 10;
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "copy";
    cfg.memory = mem;
    cfg.memory_bytes = bytes;
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    if (!z)
        return 11;
    labyrinth_zone_set_report_handler(z, quiet, NULL);
    /* Make z this thread's current zone, with pages in its magazine. */
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    if (!p || labyrinth_free_pages(z, p, 0) != 0)
        return 12;
    static unsigned char copy[COPY_BYTES] __attribute__((aligned(64)));
    memcpy(copy, z, sizeof copy);
    struct labyrinth_zone *c = (struct labyrinth_zone *)copy;
    struct labyrinth_zone_stats before, after;
    if (labyrinth_zone_stats(z, &before))
        return 13;
    if (stale) {
        labyrinth_zone_destroy(z);
        munmap(mem, bytes);
        /* The copy names a destroyed zone's serial; the thread's current
         * zone entry may still name it too. */
    }
    int bad = 0;
    for (int i = 0; i < 4; i++) { /* each refusal prints a report line */
        if (labyrinth_alloc_pages(c, LABYRINTH_GFP_ATOMIC, 0, 0) != NULL)
            bad |= 1;
        if (labyrinth_void_allocpage_gfpatomic_extra_quality(c, 0) != NULL)
            bad |= 2;
        if (!stale && labyrinth_free_pages(c, p, 0) != -EBADF)
            bad |= 4;
    }
    if (!stale) {
        if (labyrinth_zone_stats(z, &after))
            return 14;
        if (after.atomic_allocs != before.atomic_allocs || after.frees != before.frees || after.in_use_pages != 0)
            bad |= 8;
        if (labyrinth_zone_check(z) != 0)
            bad |= 16;
        labyrinth_zone_destroy(z);
    }
    return bad ? 20 + bad : 0;
}

/* A copy of zone X placed where its key would equal zone Y's (helper-29,
 * KB48).  The key was the handle's word xored with its address, so a copy
 * of X at Y's address xored with (the serials' difference << 21) keyed as
 * Y, the thread's current zone: the free through the copy returned 0 and
 * put X's page in Y's magazine, the allocation took Y's page, and both
 * ended in an abort.  The serials are unknown here (the type is opaque),
 * so every difference up to 127 is tried, one page mapped at each such
 * address; the calls through each copy must be refused, and X and Y stay
 * whole.  Returns the child's exit status. */
static int forged(void)
{
    struct labyrinth_zone *x = zone_small("copy-x", 64, LABYRINTH_ZONE_NO_WARDEN, NULL);
    struct labyrinth_zone *y = zone_small("copy-y", 64, LABYRINTH_ZONE_NO_WARDEN, NULL);
    labyrinth_zone_set_report_handler(x, quiet, NULL);
    labyrinth_zone_set_report_handler(y, quiet, NULL);
    void *px = labyrinth_alloc_pages(x, LABYRINTH_GFP_ATOMIC, 0, 0);
    void *py = labyrinth_alloc_pages(y, LABYRINTH_GFP_ATOMIC, 0, 0);
    if (!px || !py || labyrinth_free_pages(y, py, 0) != 0) /* y current, a page in its magazine */
        return 30;
    size_t pg = labyrinth_page_size();
    int bad = 0, placed = 0;
    for (uintptr_t d = 1; d < 128; d++) {
        uintptr_t at = (uintptr_t)y ^ (d << 21);
        void *page = mmap((void *)(at & ~(uintptr_t)(pg - 1)), 2 * pg, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (page == MAP_FAILED)
            continue;
        if ((uintptr_t)page != (at & ~(uintptr_t)(pg - 1))) { /* an old kernel ignoring the flag */
            munmap(page, 2 * pg);
            continue;
        }
        placed++;
        size_t room = 2 * pg - (at & (pg - 1));
        memcpy((void *)at, x, room < COPY_BYTES ? room : COPY_BYTES);
        struct labyrinth_zone *c = (struct labyrinth_zone *)at;
        if (labyrinth_free_pages(c, px, 0) != -EBADF)
            bad |= 1;
        if (labyrinth_alloc_pages(c, LABYRINTH_GFP_ATOMIC, 0, 0) != NULL)
            bad |= 2;
        if (labyrinth_void_allocpage_gfpatomic_extra_quality(c, 0) != NULL)
            bad |= 4;
        munmap(page, 2 * pg);
    }
    if (labyrinth_free_pages(x, px, 0) != 0)
        bad |= 8;
    if (labyrinth_zone_check(x) != 0 || labyrinth_zone_check(y) != 0)
        bad |= 16;
    struct labyrinth_zone_stats sx, sy;
    if (labyrinth_zone_stats(x, &sx) || labyrinth_zone_stats(y, &sy) || sx.in_use_pages || sy.in_use_pages)
        bad |= 32;
    labyrinth_zone_destroy(x);
    labyrinth_zone_destroy(y);
    printf("forged: %d copies of X placed at Y's address xor (1..127 << 21)\n", placed);
    fflush(stdout);
    if (placed < 64)
        return 31; /* too few addresses free to say anything */
    return bad ? 40 + bad : 0;
}

static void run(const char *name, int stale)
{
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(10);
        _exit(stale == 2 ? forged() : child(stale));
    }
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    if (WIFSIGNALED(st))
        printf("%s: the child died of signal %d\n", name, WTERMSIG(st));
    else
        printf("%s: the child exited %d (0: every call through the copy refused)\n", name, WEXITSTATUS(st));
    CHECK(WIFEXITED(st));
    CHECK_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
}

int main(void)
{
    run("live copy", 0);
    run("stale copy", 1);
    run("forged copy", 2);
    return check_done("api_handlecopy");
}
