/*
 * unit_labyrinth.c - the labyrinth proper: many regions, huge pages, DMA
 * addresses, caller memory without OS calls, fragmentation.
 *
 * Huge pages and physical addresses are tested for real when the machine
 * allows (root: the test reserves huge pages itself and gives them back);
 * otherwise each part says SKIPPED and why, and the rest still runs.
 */
#define _GNU_SOURCE
#include "check.h"
#include "zone.h"

#include <fcntl.h>
#include <labyrinth.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static size_t PG;
static unsigned skipped;

static void skip_part(const char *why)
{
    printf("SKIPPED (part): %s\n", why);
    skipped++;
}

static long read_long(const char *path)
{
    char b[32] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    return n > 0 ? atol(b) : -1;
}

static bool write_long(const char *path, long v)
{
    char b[32];
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return false;
    int n = snprintf(b, sizeof b, "%ld\n", v);
    bool ok = write(fd, b, (size_t)n) == n;
    close(fd);
    return ok;
}

/* A read of addr faults (a guard page), asked in this process: write(2)
 * of one byte from it to a pipe says EFAULT instead of faulting (the raw
 * system call, past any sanitizer's interceptor).  A forked child cannot
 * be asked: the zone's mappings are not in it (MADV_DONTFORK, KB25). */
static bool faults_at(const void *addr)
{
    int p[2];
    REQUIRE(pipe(p) == 0);
    long k = syscall(SYS_write, p[1], addr, 1);
    int e = errno;
    close(p[0]);
    close(p[1]);
    REQUIRE(k == 1 || e == EFAULT);
    return k != 1;
}

static void check_guards(struct labyrinth_zone *z, unsigned index)
{
    struct labyrinth_region_info ri;
    REQUIRE(labyrinth_zone_region_info(z, index, &ri) == 0);
    const char *lo = ri.start, *hi = lo + ri.pages * PG;
    CHECK(faults_at(lo - 1));
    CHECK(faults_at(hi));
    CHECK(!faults_at(lo) && !faults_at(hi - 1));
}

/* ---- regions: growth (KERNEL and ahead of need), info, shrink ----------------- */

static void test_regions(void)
{
    struct labyrinth_zone_config cfg = {0};
    cfg.name = "regions";
    cfg.pages = 256;
    cfg.max_pages = 256 * 5;
    cfg.max_order = 6;
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    REQUIRE(z);
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(z, &st);
    CHECK_EQ(st.regions, 1);
    /* KERNEL grows the zone a region at a time, up to max_pages. */
    void *held[64];
    size_t n = 0;
    while (n < 64 && (held[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 6, 0)))
        n++;
    labyrinth_zone_stats(z, &st);
    CHECK_EQ(st.total_pages, cfg.max_pages);
    CHECK(st.regions >= 2);
    CHECK_EQ(st.grow_events, st.regions - 1);
    CHECK(n >= cfg.max_pages / 64 - 2); /* all but what caches and the reserve keep */
    /* Every region described, separate, inside the zone; lookups O(1). */
    uintptr_t prev_end = 0;
    size_t sum = 0;
    for (unsigned i = 0; i < st.regions; i++) {
        struct labyrinth_region_info ri;
        REQUIRE(labyrinth_zone_region_info(z, i, &ri) == 0);
        CHECK(ri.pages > 0 && !ri.released);
        CHECK(((uintptr_t)ri.start & ((PG << 6) - 1)) == 0); /* aligned for max_order blocks */
        CHECK((uintptr_t)ri.start != prev_end || i == 0);    /* separate mappings */
        prev_end = (uintptr_t)ri.start + ri.pages * PG;
        sum += ri.pages;
        struct labyrinth_page_info pi;
        CHECK_EQ(labyrinth_page_info(z, (char *)ri.start + PG * (ri.pages - 1) + 5, &pi), 0);
        CHECK_EQ(pi.region, i);
    }
    CHECK_EQ(sum, st.total_pages);
    /* A guard page before and after every region. */
    for (unsigned i = 0; i < st.regions; i++)
        check_guards(z, i);
    struct labyrinth_region_info none;
    CHECK_EQ(labyrinth_zone_region_info(z, (unsigned)st.regions, &none), -ENOENT);
    CHECK_EQ(labyrinth_zone_region_info(z, 0, NULL), -EINVAL);
    CHECK_EQ(labyrinth_zone_region_info(NULL, 0, &none), -EBADF);
    /* A page of each region can be freed through the general lookup. */
    CHECK_EQ(labyrinth_zone_check(z), 0);
    /* Shrink: nothing to give while blocks are held ... */
    long before = (long)st.total_pages;
    CHECK_EQ(labyrinth_zone_shrink(z), 0);
    /* ... then every idle region but the first goes back to the OS. */
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, held[i], 6), 0);
    CHECK_EQ(labyrinth_thread_release(z), 0);
    long released = labyrinth_zone_shrink(z);
    labyrinth_zone_stats(z, &st);
    printf("regions: grew to %zu regions (%ld pages), shrink released %ld pages, %zu left\n", st.regions,
           before, released, st.total_pages);
    CHECK(released > 0);
    CHECK_EQ((long)st.total_pages, before - released);
    CHECK_EQ(st.shrink_events, st.regions - 1);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    unsigned gone = 0;
    for (unsigned i = 1; i < st.regions; i++) {
        struct labyrinth_region_info ri;
        REQUIRE(labyrinth_zone_region_info(z, i, &ri) == 0);
        if (!ri.released)
            continue;
        gone++;
        /* A stale pointer into a released region is foreign now. */
        CHECK_EQ(labyrinth_free_pages(z, ri.start, 0), -EFAULT);
    }
    CHECK_EQ(gone, st.regions - 1);
    /* And the zone grows again when asked. */
    void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 6, 0);
    void *q = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 6, 0);
    void *r = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 6, 0);
    void *s = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 6, 0);
    CHECK(p && q && r && s);
    labyrinth_zone_stats(z, &st);
    CHECK(st.total_pages > cfg.pages);
    labyrinth_free_pages(z, p, 6);
    labyrinth_free_pages(z, q, 6);
    labyrinth_free_pages(z, r, 6);
    labyrinth_free_pages(z, s, 6);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

/* The warden adds a region before anyone has to wait for it. */
static void test_grow_ahead(void)
{
    struct labyrinth_zone_config cfg = {0};
    cfg.name = "ahead";
    cfg.pages = 512;
    cfg.max_pages = 2048;
    cfg.warden_interval_us = 1000;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    REQUIRE(z);
    void *held[512];
    size_t n = 0;
    /* NOWAIT only: it never grows the zone itself.  NOWAIT only tries the
     * buddy's lock, so a NULL may just mean the warden held it (filling
     * the depot): try again a while before taking NULL for "empty" - the
     * warden grows the zone only once the pages are really taken. */
    for (int misses = 0; n < 480 && misses < 200;) {
        if ((held[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, 0))) {
            n++;
            misses = 0;
        } else {
            misses++;
            usleep(1000);
        }
    }
    struct labyrinth_zone_stats st;
    for (int i = 0; i < 200; i++) {
        labyrinth_zone_stats(z, &st);
        if (st.regions > 1)
            break;
        usleep(5000);
    }
    printf("grow ahead: %zu pages taken with NOWAIT; the warden grew the zone to %zu regions, %zu pages\n", n,
           st.regions, st.total_pages);
    CHECK(st.regions > 1);
    CHECK(st.grow_events >= 1);
    CHECK_EQ(st.kernel_allocs, 0);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, held[i], 0), 0);
    labyrinth_zone_destroy(z);
}

/* ---- huge pages, for real when the machine has (or lets us reserve) them ----- */

static void test_huge(void)
{
    const char *nr = "/proc/sys/vm/nr_hugepages";
    long before = read_long(nr);
    bool reserved = false;
    if (before >= 0 && geteuid() == 0) {
        reserved = write_long(nr, before + 48); /* 96 MiB of 2 MiB pages */
    }
    size_t free2m = lb_os_huge_pages_free_of(2u << 20);
    struct labyrinth_zone_config cfg = {0};
    cfg.name = "huge";
    cfg.pages = 4096; /* 16 MiB */
    cfg.max_order = 9;
    cfg.flags = LABYRINTH_ZONE_HUGE;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    REQUIRE(z);
    struct labyrinth_region_info ri;
    REQUIRE(labyrinth_zone_region_info(z, 0, &ri) == 0);
    if (free2m >= 8) {
        printf("huge: %zu free 2 MiB pages; region 0 is backed by %zu KiB pages\n", free2m, ri.huge_page_bytes >> 10);
        CHECK_EQ(ri.huge_page_bytes, 2u << 20);
        CHECK(((uintptr_t)ri.start & ((2u << 20) - 1)) == 0);
        check_guards(z, 0); /* guards around huge pages too */
        /* The memory works: every page writable, blocks of max_order. */
        void *b = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 9, LABYRINTH_QUALITY_ZERO);
        REQUIRE(b);
        CHECK(((uintptr_t)b & ((PG << 9) - 1)) == 0);
        memset(b, 0x33, PG << 9);
        CHECK_EQ(labyrinth_free_pages(z, b, 9), 0);
        /* DMA over huge pages: each 2 MiB page is physically contiguous,
         * so are the max_order blocks inside it. */
        struct labyrinth_zone_config dc = cfg;
        dc.name = "huge-dma";
        dc.flags |= LABYRINTH_ZONE_DMA;
        struct labyrinth_zone *dz = labyrinth_zone_create(&dc);
        if (dz) {
            void *db = labyrinth_alloc_pages(dz, LABYRINTH_GFP_KERNEL, 9, 0);
            REQUIRE(db);
            CHECK_EQ(labyrinth_phys_contiguous(dz, db, 9), 1);
            struct labyrinth_region_info dri;
            labyrinth_zone_region_info(dz, 0, &dri);
            printf("huge+dma: a 2 MiB block is physically contiguous; region in %zu physical runs\n", dri.phys_runs);
            CHECK(dri.phys_runs <= dri.pages / 512);
            labyrinth_free_pages(dz, db, 9);
            labyrinth_zone_destroy(dz);
        } else {
            skip_part("huge+dma: physical addresses are not readable here");
        }
    } else {
        skip_part(reserved ? "huge pages reserved but not free" : "no 2 MiB huge pages reserved and not root to reserve them");
        /* Without them: the transparent huge page fallback, said plainly. */
        CHECK_EQ(ri.huge_page_bytes, 0);
        CHECK(ri.transparent_huge);
    }
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
    if (reserved)
        CHECK(write_long(nr, before));
}

/* ---- DMA: physical addresses, reverse lookup, contiguity ------------------------ */

static void test_dma(void)
{
    struct labyrinth_zone_config cfg = {0};
    cfg.name = "dma";
    cfg.pages = 1024;
    cfg.max_order = 4;
    cfg.flags = LABYRINTH_ZONE_DMA;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    if (!z) {
        CHECK(errno == EPERM || errno == EIO);
        skip_part("DMA: physical addresses are not readable here (not root)");
        return;
    }
    struct labyrinth_region_info ri;
    REQUIRE(labyrinth_zone_region_info(z, 0, &ri) == 0);
    CHECK(ri.first_phys != 0);
    CHECK(ri.phys_runs >= 1 && ri.phys_runs <= ri.pages);
    size_t contiguous = 0, blocks = 0;
    for (int i = 0; i < 32; i++) {
        char *b = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 4, 0);
        if (!b)
            break;
        blocks++;
        for (unsigned k = 0; k < 16; k++) {
            uint64_t ph;
            REQUIRE(labyrinth_virt_to_phys(z, b + k * PG + 100, &ph) == 0);
            CHECK_EQ(ph & (PG - 1), 100);
            void *back;
            CHECK_EQ(labyrinth_phys_to_virt(z, ph, &back), 0);
            CHECK(back == b + k * PG + 100);
        }
        int c = labyrinth_phys_contiguous(z, b, 4);
        CHECK(c == 0 || c == 1);
        contiguous += c == 1;
        /* Contiguity is what the table says, page by page. */
        uint64_t p0, pk;
        bool cont = true;
        labyrinth_virt_to_phys(z, b, &p0);
        for (unsigned k = 1; k < 16; k++) {
            labyrinth_virt_to_phys(z, b + k * PG, &pk);
            cont &= pk == p0 + k * PG;
        }
        CHECK_EQ(c, cont);
        CHECK_EQ(labyrinth_free_pages(z, b, 4), 0);
    }
    printf("dma: %zu physically contiguous of %zu order-4 blocks; region in %zu physical runs\n", contiguous,
           blocks, ri.phys_runs);
    void *out;
    CHECK_EQ(labyrinth_phys_to_virt(z, 0x1000, &out), -ENOENT);
    CHECK_EQ(labyrinth_phys_contiguous(z, &out, 0), -EFAULT);
    labyrinth_zone_destroy(z);
    /* Not a DMA zone: the calls say so. */
    struct labyrinth_zone *nz = labyrinth_zone_create(NULL);
    REQUIRE(nz);
    void *p = labyrinth_alloc_pages(nz, LABYRINTH_GFP_ATOMIC, 0, 0);
    CHECK_EQ(labyrinth_phys_contiguous(nz, p, 0), -EOPNOTSUPP);
    CHECK_EQ(labyrinth_phys_to_virt(nz, 0, &out), -EOPNOTSUPP);
    labyrinth_free_pages(nz, p, 0);
    labyrinth_zone_destroy(nz);
}

/* ---- caller memory: no OS call at all, counted -------------------------------------- */

static char arena[4 << 20] __attribute__((aligned(4096)));

static void *other_thread(void *arg)
{
    struct labyrinth_zone *z = arg;
    for (int i = 0; i < 10000; i++) {
        void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
        if (p)
            labyrinth_free_pages(z, p, 0);
    }
    return NULL;
}

static void test_caller_memory(void)
{
    /* Warm up whatever the process itself sets up once (the thread-exit key,
     * the registry) with a first zone, then count. */
    struct labyrinth_zone *w = labyrinth_zone_create(NULL);
    REQUIRE(w);
    labyrinth_zone_destroy(w);
    pthread_t t;
    uint64_t calls0 = lb_os_calls_total();
    struct labyrinth_zone_config cfg = {0};
    cfg.name = "static";
    cfg.memory = arena;
    cfg.memory_bytes = sizeof arena;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    REQUIRE(z);
    uint64_t calls_created = lb_os_calls_total();
    void *held[300];
    for (int round = 0; round < 50; round++) {
        size_t n = 0;
        while (n < 300 && (held[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, n % 3, LABYRINTH_QUALITY_ZERO)))
            n++;
        for (size_t i = 0; i < n; i++)
            CHECK_EQ(labyrinth_free_pages(z, held[i], i % 3), 0);
    }
    void *m = labyrinth_void_allocpage_gfpatomic_extra_quality(z, LABYRINTH_QUALITY_POISON);
    CHECK(m != NULL);
    labyrinth_free_pages(z, m, 0);
    uint64_t calls_used = lb_os_calls_total();
    /* Another thread too (the thread itself is the test's OS call). */
    REQUIRE(pthread_create(&t, NULL, other_thread, z) == 0);
    pthread_join(t, NULL);
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(z, &st);
    printf("caller memory: %zu pages in a %zu KiB static array; OS calls: %llu at creation, %llu in use\n",
           st.total_pages, sizeof arena >> 10, (unsigned long long)(calls_created - calls0),
           (unsigned long long)(calls_used - calls_created));
    CHECK_EQ(calls_created, calls0);
    CHECK_EQ(calls_used, calls_created);
    CHECK_EQ(st.warden_runs, 0); /* no warden unless asked */
    labyrinth_zone_destroy(z);
}

/* ---- fragmentation, visible ------------------------------------------------------------ */

static void test_fragmentation(void)
{
    struct labyrinth_zone_config cfg = {0};
    cfg.name = "frag";
    cfg.pages = 1024;
    cfg.max_order = 6;
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    REQUIRE(z);
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(z, &st);
    CHECK_EQ(st.frag_index[6], -1000); /* a whole max_order block is free */
    /* Take every order-1 block, give back every other one: only order-1
     * holes remain, scattered. */
    void *b[600];
    size_t n = 0;
    while (n < 600 && (b[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 1, 0)))
        n++;
    for (size_t i = 0; i < n; i += 2)
        labyrinth_free_pages(z, b[i], 1);
    labyrinth_zone_stats(z, &st);
    printf("fragmentation: after freeing every other order-1 block: largest free order %zu, index at order 2: "
           "%d, order 6: %d (x1000)\n", st.largest_free_order, st.frag_index[2], st.frag_index[6]);
    CHECK_EQ(st.largest_free_order, 1);
    CHECK(st.frag_index[1] == -1000);
    /* Only order-1 holes: for order 2 the index tends to 500 (half the
     * free pages would do, were they together), for order 6 to 1000. */
    CHECK(st.frag_index[2] > 400 && st.frag_index[2] < 500);
    CHECK(st.frag_index[6] > st.frag_index[2]);
    CHECK(st.free_blocks[1] > 100);
    for (size_t i = 1; i < n; i += 2)
        labyrinth_free_pages(z, b[i], 1);
    labyrinth_zone_stats(z, &st);
    CHECK_EQ(st.frag_index[6], -1000); /* coalesced again */
    labyrinth_zone_destroy(z);
}

/* ---- quarantine: freed pages held back before reuse ---------------------------- */

static unsigned uaf_reports;
static size_t uaf_offset;
static void on_report(const struct labyrinth_report *r, void *arg)
{
    (void)arg;
    if (r->kind == LABYRINTH_REPORT_USE_AFTER_FREE) {
        uaf_reports++;
        uaf_offset = r->offset;
    }
}

static void test_quarantine(void)
{
    struct labyrinth_zone_config cfg = {0};
    cfg.name = "quarantine";
    cfg.pages = 512;
    cfg.quarantine_pages = 8;
    cfg.flags = LABYRINTH_ZONE_VERIFY | LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    REQUIRE(z);
    labyrinth_zone_set_report_handler(z, on_report, NULL);
    char *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(p);
    CHECK_EQ(labyrinth_free_pages(z, p, 0), 0);
    TEST_TOUCH_FREED(p, PG);
    p[77] = 1; /* a use after free while p waits in quarantine */
    /* Seven more frees: p is still held back, never handed out. */
    for (int i = 0; i < 7; i++) {
        char *q = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
        REQUIRE(q);
        CHECK(q != p);
        CHECK_EQ(labyrinth_free_pages(z, q, 0), 0);
    }
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(z, &st);
    CHECK_EQ(st.quarantined_pages, 8);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    CHECK_EQ(uaf_reports, 0);
    /* The ninth free lets p out (LIFO: handed out next), and VERIFY finds
     * the write it suffered while held back. */
    char *q = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    CHECK(q != p);
    CHECK_EQ(labyrinth_free_pages(z, q, 0), 0);
    char *again = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    CHECK(again == p);
    CHECK_EQ(uaf_reports, 1);
    CHECK_EQ(uaf_offset, 77);
    labyrinth_free_pages(z, again, 0);
    /* Released with the thread's cache. */
    CHECK_EQ(labyrinth_thread_release(z), 0);
    labyrinth_zone_stats(z, &st);
    CHECK_EQ(st.quarantined_pages, 0);
    CHECK_EQ(st.in_use_pages, 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
    cfg.quarantine_pages = 5000;
    CHECK(labyrinth_zone_create(&cfg) == NULL && errno == EINVAL);
    printf("quarantine: a page freed is held back for 8 frees; a write to it meanwhile was reported at offset %zu\n",
           uaf_offset);
}

int main(void)
{
    PG = labyrinth_page_size();
    test_regions();
    test_grow_ahead();
    test_huge();
    test_dma();
    test_caller_memory();
    test_fragmentation();
    test_quarantine();
    if (skipped)
        printf("unit_labyrinth: %u part(s) SKIPPED, see above\n", skipped);
    return check_done("unit_labyrinth");
}
