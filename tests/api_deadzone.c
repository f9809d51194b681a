/*
 * api_deadzone.c - regression test for finding 16.1: any call on a
 * destroyed zone (or on a pointer that was never a zone) crashes.
 *
 * The header promises -EBADF for "zone is NULL or not a live zone", and
 * labyrinth_zone_name() NULL.  Today the checks read the handle itself
 * (z->magic, z->fast_gfp, z->r0_lo ...): the handle of a destroyed mmap
 * zone is unmapped memory, so every call dies with SIGSEGV; so does a zone
 * over caller memory that the caller unmapped after the destroy, and any
 * pointer into an unmapped area.  Memory the caller reuses after the
 * destroy (here: overwritten with 0xff bytes) sends the allocation fast
 * paths into the garbage.
 *
 * What it does: for each kind of dead handle below, each public call is
 * made on it in a forked child (alarm(2) against hangs, stderr silenced,
 * no core file); the parent records how the child ended: "ok" (the
 * expected -EBADF, NULL or NULL name, and for KERNEL errno EBADF), "=V"
 * (returned V instead), "SEGV"/"BUS"/... (killed by that signal) or
 * "HANG" (still running after 2 s).  It prints a table (calls x handles)
 * and fails if any cell is not "ok".
 *
 * Handles:
 *   1 mmap   - a default zone (with a warden): create, allocate, free, destroy
 *   2 mem    - a zone over caller memory, destroyed, memory still mapped
 *              (the case that works today: a control)
 *   3 unmap  - a zone over caller memory, destroyed, then munmapped
 *   4 reuse  - a zone over caller memory, destroyed, memory then reused
 *              (overwritten with 0xff)
 *   5 zeros  - a pointer to a malloc'd buffer of zeros
 *   6 hole   - a pointer into a munmapped area.  Until the fast paths
 *              took a handle only inside the handle table (KB48), the
 *              calls whose inlined fast path read the handle's first line
 *              before any check (free, the order-0 named modes, the seed's
 *              macro with quality 0) faulted here, and the contract left
 *              it undefined; now every call must answer -EBADF
 *
 * Public header only.
 */
#define _GNU_SOURCE
#include "api_util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

enum { NOT_DONE = 0x7eadbeef };

struct shared {
    long got;
    int done;
};
static struct shared *sh;


/* One call on the dead handle z (page: an address that was one of its
 * pages, or any address).  Returns what it returned, folded to a long. */
typedef long call_fn(struct labyrinth_zone *z, void *page);

static long c_free(struct labyrinth_zone *z, void *page) { return labyrinth_free_pages(z, page, 0); }
static long c_atomic(struct labyrinth_zone *z, void *page)
{
    (void)page;
    return labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0) != NULL;
}
static long c_nowait(struct labyrinth_zone *z, void *page)
{
    (void)page;
    return labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, 0) != NULL;
}
static long c_kernel(struct labyrinth_zone *z, void *page)
{
    (void)page;
    errno = 0;
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
    return p ? 1 : errno == EBADF ? 0 : 1000 + errno;
}
static long c_atomic_o2(struct labyrinth_zone *z, void *page)
{
    (void)page;
    return labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 2, LABYRINTH_QUALITY_ZERO) != NULL;
}
static long c_seed0(struct labyrinth_zone *z, void *page)
{
    (void)page;
    return labyrinth_void_allocpage_gfpatomic_extra_quality(z, 0) != NULL;
}
static long c_seed(struct labyrinth_zone *z, void *page)
{
    (void)page;
    return labyrinth_void_allocpage_gfpatomic_extra_quality(z, LABYRINTH_QUALITY_ZERO) != NULL;
}
static long c_stats(struct labyrinth_zone *z, void *page)
{
    (void)page;
    struct labyrinth_zone_stats s;
    return labyrinth_zone_stats(z, &s);
}
static long c_check(struct labyrinth_zone *z, void *page)
{
    (void)page;
    return labyrinth_zone_check(z);
}
static long c_info(struct labyrinth_zone *z, void *page)
{
    struct labyrinth_page_info info;
    return labyrinth_page_info(z, page, &info);
}
static long c_register(struct labyrinth_zone *z, void *page) { return labyrinth_register_page(z, page); }
static long c_register_tag(struct labyrinth_zone *z, void *page) { return labyrinth_register_page_tag(z, page, 7); }
static long c_each(struct labyrinth_zone *z, void *page)
{
    (void)page;
    return labyrinth_zone_for_each_in_use(z, each_fn, NULL);
}
static long c_v2p(struct labyrinth_zone *z, void *page)
{
    uint64_t phys;
    return labyrinth_virt_to_phys(z, page, &phys);
}
static long c_p2v(struct labyrinth_zone *z, void *page)
{
    (void)page;
    void *a;
    return labyrinth_phys_to_virt(z, 0x100000, &a);
}
static long c_contig(struct labyrinth_zone *z, void *page) { return labyrinth_phys_contiguous(z, page, 0); }
static long c_region(struct labyrinth_zone *z, void *page)
{
    (void)page;
    struct labyrinth_region_info ri;
    return labyrinth_zone_region_info(z, 0, &ri);
}
static long c_shrink(struct labyrinth_zone *z, void *page)
{
    (void)page;
    return labyrinth_zone_shrink(z);
}
static long c_handler(struct labyrinth_zone *z, void *page)
{
    (void)page;
    return labyrinth_zone_set_report_handler(z, quiet_fn, NULL);
}
static long c_release(struct labyrinth_zone *z, void *page)
{
    (void)page;
    return labyrinth_thread_release(z);
}
static long c_name(struct labyrinth_zone *z, void *page)
{
    (void)page;
    return labyrinth_zone_name(z) != NULL;
}
static long c_destroy(struct labyrinth_zone *z, void *page)
{
    (void)page;
    labyrinth_zone_destroy(z);
    return 0;
}

static const struct {
    const char *name;
    call_fn *fn;
    long expect;
} calls[] = {
    {"labyrinth_free_pages", c_free, -EBADF},
    {"labyrinth_alloc_pages ATOMIC", c_atomic, 0},
    {"labyrinth_alloc_pages NOWAIT", c_nowait, 0},
    {"labyrinth_alloc_pages KERNEL (errno)", c_kernel, 0},
    {"seed macro, quality 0", c_seed0, 0},
    {"labyrinth_alloc_pages ATOMIC o2 ZERO", c_atomic_o2, 0},
    {"seed macro (alloc_page_atomic_site)", c_seed, 0},
    {"labyrinth_zone_stats", c_stats, -EBADF},
    {"labyrinth_zone_check", c_check, -EBADF},
    {"labyrinth_page_info", c_info, -EBADF},
    {"labyrinth_register_page", c_register, -EBADF},
    {"labyrinth_register_page_tag", c_register_tag, -EBADF},
    {"labyrinth_zone_for_each_in_use", c_each, -EBADF},
    {"labyrinth_virt_to_phys", c_v2p, -EBADF},
    {"labyrinth_phys_to_virt", c_p2v, -EBADF},
    {"labyrinth_phys_contiguous", c_contig, -EBADF},
    {"labyrinth_zone_region_info", c_region, -EBADF},
    {"labyrinth_zone_shrink", c_shrink, -EBADF},
    {"labyrinth_zone_set_report_handler", c_handler, -EBADF},
    {"labyrinth_thread_release", c_release, -EBADF},
    {"labyrinth_zone_name (NULL)", c_name, 0},
    {"labyrinth_zone_destroy (again)", c_destroy, 0},
};
#define NCALLS (sizeof calls / sizeof calls[0])

#define NHANDLES 6
static const char *handle_name[NHANDLES] = {"mmap", "mem", "unmap", "reuse", "zeros", "hole"};
static const char *handle_what[NHANDLES] = {
    "default mmap zone, destroyed",
    "zone over caller memory, destroyed, memory still mapped",
    "zone over caller memory, destroyed, memory then munmapped",
    "zone over caller memory, destroyed, memory then reused (0xff)",
    "pointer to a malloc'd buffer of zeros",
    "pointer into a munmapped area",
};

static char cell[NCALLS][NHANDLES][16];
static int bad_cells;
static int crash_count[NHANDLES];

/* Run every call on z in its own child; fill column h. */
static void run_column(unsigned h, struct labyrinth_zone *z, void *page)
{
    for (unsigned i = 0; i < NCALLS; i++) {
        sh->got = NOT_DONE;
        sh->done = 0;
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0)
                dup2(devnull, 2);
            struct rlimit nocore = {0, 0}; /* a crash is expected: no core file */
            setrlimit(RLIMIT_CORE, &nocore);
            alarm(2);
            long got = calls[i].fn(z, page);
            sh->got = got;
            __atomic_store_n(&sh->done, 1, __ATOMIC_RELEASE);
            _exit(0);
        }
        int st = 0;
        REQUIRE(waitpid(pid, &st, 0) == pid);
        char *c = cell[i][h];
        if (WIFSIGNALED(st)) {
            int sig = WTERMSIG(st);
            snprintf(c, sizeof cell[i][h], "%s",
                     sig == SIGSEGV ? "SEGV" : sig == SIGBUS ? "BUS" : sig == SIGALRM ? "HANG"
                     : sig == SIGABRT ? "ABRT" : "SIG?");
            bad_cells++;
            crash_count[h]++;
        } else if (!__atomic_load_n(&sh->done, __ATOMIC_ACQUIRE)) {
            snprintf(c, sizeof cell[i][h], "exit%d", WEXITSTATUS(st));
            bad_cells++;
        } else if (sh->got != calls[i].expect) {
            snprintf(c, sizeof cell[i][h], "=%ld", sh->got);
            bad_cells++;
        } else {
            snprintf(c, sizeof cell[i][h], "ok");
        }
    }
}

static struct labyrinth_zone *zone_over(void *mem, size_t bytes)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "dead-mem";
    c.memory = mem;
    c.memory_bytes = bytes;
    struct labyrinth_zone *z = labyrinth_zone_create(&c);
    REQUIRE(z != NULL);
    return z;
}

/* Use the zone a little, keep the address of one of its pages. */
static void *use(struct labyrinth_zone *z)
{
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
    REQUIRE(p != NULL);
    void *q = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 1, 0);
    REQUIRE(q != NULL);
    REQUIRE(labyrinth_free_pages(z, q, 1) == 0);
    REQUIRE(labyrinth_free_pages(z, p, 0) == 0);
    return p;
}

int main(void)
{
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(sh != MAP_FAILED);
    printf("api_deadzone: each call in a child, on each kind of dead handle\n");
    fflush(stdout);
    size_t memb = 1u << 20;

    /* 1: mmap zone. */
    {
        struct labyrinth_zone_config c;
        memset(&c, 0, sizeof c);
        c.name = "dead-mmap";
        c.pages = 256;
        struct labyrinth_zone *z = labyrinth_zone_create(&c);
        REQUIRE(z != NULL);
        void *page = use(z);
        labyrinth_zone_destroy(z);
        run_column(0, z, page);
    }
    /* 2: caller memory, still mapped. */
    {
        void *mem = mmap(NULL, memb, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(mem != MAP_FAILED);
        struct labyrinth_zone *z = zone_over(mem, memb);
        void *page = use(z);
        labyrinth_zone_destroy(z);
        run_column(1, z, page);
        munmap(mem, memb);
    }
    /* 3: caller memory, unmapped after the destroy. */
    {
        void *mem = mmap(NULL, memb, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(mem != MAP_FAILED);
        struct labyrinth_zone *z = zone_over(mem, memb);
        void *page = use(z);
        labyrinth_zone_destroy(z);
        REQUIRE(munmap(mem, memb) == 0);
        run_column(2, z, page);
    }
    /* 4: caller memory, reused after the destroy. */
    {
        void *mem = mmap(NULL, memb, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(mem != MAP_FAILED);
        struct labyrinth_zone *z = zone_over(mem, memb);
        void *page = use(z);
        labyrinth_zone_destroy(z);
        memset(mem, 0xff, memb);
        run_column(3, z, page);
        munmap(mem, memb);
    }
    /* 5: a buffer of zeros. */
    {
        void *buf = calloc(1, 1u << 16);
        void *page = aligned_alloc(pg(), pg());
        REQUIRE(buf != NULL && page != NULL);
        run_column(4, (struct labyrinth_zone *)buf, page);
        free(page);
        free(buf);
    }
    /* 6: an unmapped area. */
    {
        void *hole = mmap(NULL, 1u << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(hole != MAP_FAILED);
        REQUIRE(munmap(hole, 1u << 16) == 0);
        run_column(5, (struct labyrinth_zone *)((char *)hole + 256), (char *)hole + 4096);
    }

    printf("%-38s", "call \\ handle");
    for (unsigned h = 0; h < NHANDLES; h++)
        printf(" %-6s", handle_name[h]);
    printf("\n");
    for (unsigned i = 0; i < NCALLS; i++) {
        printf("%-38s", calls[i].name);
        for (unsigned h = 0; h < NHANDLES; h++)
            printf(" %-6s", cell[i][h]);
        printf("\n");
    }
    printf("handles:\n");
    for (unsigned h = 0; h < NHANDLES; h++)
        printf("  %-6s %s: %d of %u calls crashed\n", handle_name[h], handle_what[h], crash_count[h],
               (unsigned)NCALLS);
    printf("expected everywhere: -EBADF (alloc: NULL, KERNEL with errno EBADF; zone_name: NULL), no crash\n");
    fflush(stdout);
    if (bad_cells) {
        fprintf(stderr, "FAIL: %d of %u calls on dead handles crashed or returned other than -EBADF/NULL\n",
                bad_cells, (unsigned)(NCALLS * NHANDLES));
        CHECK(bad_cells == 0);
    } else {
        CHECK(1);
    }
    munmap(sh, sizeof *sh);
    return check_done("api_deadzone");
}
