/*
 * api_create.c - the zone-creation contract at its edges (issue 18 items
 * 2-5, issue 16 item 7):
 *   - two zones over the same or overlapping caller memory: refused
 *     (EEXIST) in every overlap shape, the first zone untouched; adjacent
 *     buffers are fine; the memory is free again once the zone is gone;
 *   - a zone nested in a block allocated from a mapped or a caller-memory
 *     zone: accepted; over that zone's free pages: EEXIST;
 *   - caller memory beyond one region: metadata for the pages asked, and
 *     pages above one region refused naming the limit;
 *   - a quarantine bounded by the zone (EINVAL naming quarantine_pages and
 *     its limit), and the largest one allowed never makes ATOMIC fail
 *     while the thread holds free pages back, the reserve refilled;
 *   - memory NULL with memory_bytes (EINVAL);
 *   - raw gfp 0 counted as NOWAIT (it never sleeps), not as KERNEL;
 *   - MUST_LOCK over the memlock limit, a large DMA zone and a DMA zone
 *     over caller memory as an unprivileged user: EPERM (in a child that
 *     lowers RLIMIT_MEMLOCK and, when root, becomes nobody);
 *   - a DMA zone over caller memory never touched: pinned, with physical
 *     addresses (root), never ENOENT.
 * Public header only.
 */
#define _GNU_SOURCE
#include "api_util.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static size_t PG;

/* Run fn with stderr going to a file; what it wrote comes back in out. */
static void capture_stderr(void (*fn)(void *), void *arg, char *out, size_t cap)
{
    fflush(stderr);
    int saved = dup(2);
    char path[] = "/tmp/lb-api-create-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(saved >= 0 && fd >= 0);
    unlink(path);
    dup2(fd, 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, out, cap - 1, 0);
    out[n > 0 ? n : 0] = 0;
    close(fd);
    fputs(out, stderr); /* still seen in the test's log */
}

struct create_call {
    struct labyrinth_zone_config cfg;
    struct labyrinth_zone *z;
    int err;
};

static void do_create(void *arg)
{
    struct create_call *c = arg;
    errno = 0;
    c->z = labyrinth_zone_create(&c->cfg);
    c->err = errno;
}

/* A healthy zone: everything allocated and freed once, check 0. */
static void exercise(struct labyrinth_zone *z)
{
    void *pages[512];
    size_t n = 0;
    while (n < 512 && (pages[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0)))
        n++;
    CHECK(n > 0);
    for (size_t i = 0; i < n; i++)
        memset(pages[i], 0x5a, PG);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(labyrinth_free_pages(z, pages[i], 0), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
}

static struct labyrinth_zone *over(void *mem, size_t bytes)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "over";
    c.memory = mem;
    c.memory_bytes = bytes;
    errno = 0;
    return labyrinth_zone_create(&c);
}

/* 18.4: every overlap shape against zone A over [a, a + A). */
static void test_overlap(void)
{
    const size_t A = 256 * PG;
    size_t span = 4 * A;
    unsigned char *base = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(base != MAP_FAILED);
    unsigned char *a = base + A; /* A covers [A, 2A) of the mapping */
    struct labyrinth_zone *za = over(a, A);
    REQUIRE(za);
    void *held = labyrinth_alloc_pages(za, LABYRINTH_GFP_ATOMIC, 0, 0);
    REQUIRE(held);
    memset(held, 0xa5, PG);

    struct {
        const char *what;
        unsigned char *mem;
        size_t bytes;
        int refused;
    } shapes[] = {
        {"the same buffer", a, A, 1},
        {"inside", a + 16 * PG, 32 * PG, 1},
        {"unaligned, inside", a + 100, 64 * PG, 1},
        {"straddling the start", a - 64 * PG, 128 * PG, 1},
        {"straddling the end", a + A - 64 * PG, 128 * PG, 1},
        {"containing it", base, 3 * A, 1},
        {"same start, shorter", a, 64 * PG, 1},
        {"ending one byte in", a - 128 * PG, 128 * PG + 1, 1},
        {"adjacent before", a - 128 * PG, 128 * PG, 0},
        {"adjacent after", a + A, 128 * PG, 0},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        struct labyrinth_zone *zb = over(shapes[i].mem, shapes[i].bytes);
        int err = errno;
        if (shapes[i].refused) {
            if (zb)
                fprintf(stderr, "overlap %s: accepted\n", shapes[i].what);
            CHECK(zb == NULL);
            CHECK_EQ(err, EEXIST);
            if (zb && zb != za)
                labyrinth_zone_destroy(zb);
        } else {
            if (!zb)
                fprintf(stderr, "overlap %s: refused (%s)\n", shapes[i].what, labyrinth_strerror(err));
            CHECK(zb != NULL);
            CHECK(zb != za);
            if (zb) {
                exercise(zb);
                labyrinth_zone_destroy(zb);
            }
        }
        /* A is untouched: its handle still names it, its page still holds
         * what was written, it is healthy. */
        struct labyrinth_zone_stats st;
        CHECK_EQ(labyrinth_zone_stats(za, &st), 0);
        CHECK_EQ(st.in_use_pages, 1);
        CHECK_EQ(((unsigned char *)held)[PG - 1], 0xa5);
        CHECK_EQ(labyrinth_zone_check(za), 0);
    }
    /* A's page is A's: freed to A it goes (not -EALREADY or a zone that
     * another creation re-initialised). */
    CHECK_EQ(labyrinth_free_pages(za, held, 0), 0);
    exercise(za);
    labyrinth_zone_destroy(za);
    /* Once A is gone its memory may carry a new zone. */
    struct labyrinth_zone *again = over(a, A);
    CHECK(again != NULL);
    if (again) {
        exercise(again);
        labyrinth_zone_destroy(again);
    }
    munmap(base, span);
    printf("overlap: 8 overlapping shapes refused (EEXIST), 2 adjacent accepted, the memory reusable after destroy\n");
}

/* A zone nested in a block allocated from another zone (mapped or over
 * caller memory) is the block's caller's: accepted.  Memory over another
 * zone's free pages, or straddling the block's end, is not. */
static void nest_in(struct labyrinth_zone *outer, const char *what)
{
    const unsigned order = 8; /* 1 MiB */
    unsigned char *blk = labyrinth_alloc_pages(outer, LABYRINTH_GFP_NOWAIT, order, 0);
    REQUIRE(blk);
    size_t bytes = PG << order;
    struct labyrinth_zone *in = over(blk, bytes);
    if (!in)
        fprintf(stderr, "nested in a block of %s: %s\n", what, labyrinth_strerror(errno));
    CHECK(in != NULL);
    if (in) {
        exercise(in);
        /* Another nested zone over the same block: the first one's. */
        CHECK(over(blk, bytes) == NULL);
        CHECK_EQ(errno, EEXIST);
        labyrinth_zone_destroy(in);
    }
    /* Straddling the block's end, into pages of the outer zone that are
     * not allocated. */
    CHECK(over(blk + bytes / 2, bytes) == NULL);
    CHECK_EQ(errno, EEXIST);
    CHECK_EQ(labyrinth_free_pages(outer, blk, order), 0);
    /* The block freed: its pages are the outer zone's again. */
    CHECK(over(blk, bytes) == NULL);
    CHECK_EQ(errno, EEXIST);
    CHECK_EQ(labyrinth_zone_check(outer), 0);
}

static void test_nested(void)
{
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "outer-mapped";
    c.pages = 1024;
    c.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *mapped = labyrinth_zone_create(&c);
    REQUIRE(mapped);
    nest_in(mapped, "a mapped zone");
    labyrinth_zone_destroy(mapped);

    size_t bytes = 8u << 20;
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(mem != MAP_FAILED);
    struct labyrinth_zone *outer = over(mem, bytes);
    REQUIRE(outer);
    nest_in(outer, "a caller-memory zone");
    labyrinth_zone_destroy(outer);
    munmap(mem, bytes);
    printf("nested: a zone in a 1 MiB block of a mapped and of a caller-memory zone accepted; over free pages refused\n");
}

/* 18.3: quarantine bounded against pages and reserve. */
static void test_quarantine(void)
{
    struct create_call c;
    memset(&c, 0, sizeof c);
    c.cfg.name = "q";
    c.cfg.pages = 64;
    c.cfg.quarantine_pages = 4096;
    c.cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    char msg[1024];
    capture_stderr(do_create, &c, msg, sizeof msg);
    CHECK(c.z == NULL);
    CHECK_EQ(c.err, EINVAL);
    /* The refusal names the field and its limit: (64 - 4) / 4 = 15. */
    CHECK(strstr(msg, "quarantine_pages 4096") != NULL);
    CHECK(strstr(msg, "at most 15") != NULL);
    if (c.z)
        labyrinth_zone_destroy(c.z);

    /* VERIFY, 100 pages of quarantine in a 64-page zone. */
    memset(&c, 0, sizeof c);
    c.cfg.pages = 64;
    c.cfg.quarantine_pages = 100;
    c.cfg.flags = LABYRINTH_ZONE_VERIFY;
    capture_stderr(do_create, &c, msg, sizeof msg);
    CHECK(c.z == NULL);
    CHECK_EQ(c.err, EINVAL);
    if (c.z)
        labyrinth_zone_destroy(c.z);

    /* The largest allowed, with and without VERIFY: take everything,
     * free everything, and everything can be taken again by ATOMIC (the
     * quarantine gives its pages when nothing else is left); the reserve
     * is full again after the frees. */
    for (int verify = 0; verify < 2; verify++) {
        struct labyrinth_zone_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.pages = 64;
        cfg.quarantine_pages = 15;
        cfg.wait_timeout_ms = 50;
        cfg.flags = LABYRINTH_ZONE_NO_WARDEN | (verify ? LABYRINTH_ZONE_VERIFY : 0);
        struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
        REQUIRE(z);
        struct labyrinth_zone_stats st;
        labyrinth_zone_stats(z, &st);
        size_t total = st.total_pages;
        void *p[65];
        for (int round = 0; round < 3; round++) {
            size_t n = 0;
            while (n < 65 && (p[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0)))
                n++;
            CHECK_EQ(n, total);
            labyrinth_zone_stats(z, &st);
            CHECK_EQ(st.free_pages, 0);
            for (size_t i = 0; i < n; i++)
                CHECK_EQ(labyrinth_free_pages(z, p[i], 0), 0);
            labyrinth_zone_stats(z, &st);
            CHECK_EQ(st.free_pages, total);
            CHECK_EQ(st.quarantined_pages, 15);
            CHECK(st.reserve_free_pages >= st.reserve_target_pages);
            CHECK_EQ(labyrinth_zone_check(z), 0);
        }
        /* KERNEL too, from this thread: every page but the reserve, with
         * no wait (the quarantine gives its pages before a KERNEL caller
         * would sleep); the timeout only bounds a failure of this test. */
        size_t n = 0, want = total - st.reserve_target_pages;
        while (n < want && (p[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0)))
            n++;
        CHECK_EQ(n, want);
        for (size_t i = 0; i < n; i++)
            CHECK_EQ(labyrinth_free_pages(z, p[i], 0), 0);
        labyrinth_zone_stats(z, &st);
        CHECK_EQ(st.atomic_failures, 3);
        CHECK_EQ(st.kernel_failures, 0);
        CHECK_EQ(st.kernel_waits, 0);
        CHECK_EQ(labyrinth_zone_check(z), 0);
        labyrinth_zone_destroy(z);
    }
    printf("quarantine: 4096 and 100 (VERIFY) in a 64-page zone refused, naming the limit 15; at 15 every page comes back\n");
}

/* 18.5: memory NULL with memory_bytes; gfp 0's statistics. */
static void test_args(void)
{
    struct create_call c;
    memset(&c, 0, sizeof c);
    c.cfg.memory_bytes = 4096;
    char msg[1024];
    capture_stderr(do_create, &c, msg, sizeof msg);
    CHECK(c.z == NULL);
    CHECK_EQ(c.err, EINVAL);
    CHECK(strstr(msg, "memory_bytes") != NULL);
    if (c.z)
        labyrinth_zone_destroy(c.z);

    /* Each refusal names its field. */
    static const struct {
        const char *field;
        struct labyrinth_zone_config cfg;
    } bad[] = {
        {"max_order 21", {.max_order = 21}},
        {"flags 256", {.flags = 0x100}},
        {"quality 16", {.quality = 0x10}},
        {"max_pages 100", {.pages = 200, .max_pages = 100}},
        {"reserve_pages 300", {.pages = 256, .reserve_pages = 300, .low_pages = 100, .high_pages = 200}},
        {"high_pages 300", {.pages = 256, .high_pages = 300}},
        {"low_pages 200", {.pages = 256, .low_pages = 200, .high_pages = 100}},
        {"magazine_pages 1000", {.pages = 256, .magazine_pages = 1000}},
        {"max_threads 5000", {.pages = 256, .max_threads = 5000}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&c, 0, sizeof c);
        c.cfg = bad[i].cfg;
        capture_stderr(do_create, &c, msg, sizeof msg);
        CHECK(c.z == NULL);
        CHECK_EQ(c.err, EINVAL);
        if (!strstr(msg, bad[i].field))
            fprintf(stderr, "refusal does not name '%s': %s\n", bad[i].field, msg);
        CHECK(strstr(msg, bad[i].field) != NULL);
        if (c.z)
            labyrinth_zone_destroy(c.z);
    }

    /* gfp 0: no SLEEP, no RESERVE: it never waits, and is counted with
     * NOWAIT; gfp 1 (RESERVE alone) with ATOMIC. */
    struct labyrinth_zone *z = zone_small("gfp0", 64, LABYRINTH_ZONE_NO_WARDEN, NULL);
    struct labyrinth_zone_stats before, after;
    labyrinth_zone_stats(z, &before);
    void *p0 = labyrinth_alloc_pages(z, 0, 0, 0);
    void *p1 = labyrinth_alloc_pages(z, LABYRINTH_GFP_BIT_RESERVE, 0, 0);
    CHECK(p0 && p1);
    labyrinth_zone_stats(z, &after);
    CHECK_EQ(after.kernel_allocs - before.kernel_allocs, 0);
    CHECK_EQ(after.nowait_allocs - before.nowait_allocs, 1);
    CHECK_EQ(after.atomic_allocs - before.atomic_allocs, 1);
    /* Its failures too, once only the reserve is left. */
    void *held[64];
    size_t n = 0;
    while (n < 64 && (held[n] = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, 0)))
        n++;
    labyrinth_zone_stats(z, &before);
    CHECK(labyrinth_alloc_pages(z, 0, 0, 0) == NULL);
    labyrinth_zone_stats(z, &after);
    CHECK_EQ(after.kernel_failures - before.kernel_failures, 0);
    CHECK_EQ(after.nowait_failures - before.nowait_failures, 1);
    for (size_t i = 0; i < n; i++)
        labyrinth_free_pages(z, held[i], 0);
    labyrinth_free_pages(z, p0, 0);
    labyrinth_free_pages(z, p1, 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
    printf("args: memory NULL with memory_bytes refused; 9 refusals name their field; gfp 0 counted as NOWAIT\n");
}

/* Zone names (issue 17 review): a newline forged a second report line, a
 * '/' (kernel) left the zone without its debugfs directory, silently.
 * Every control character and '/' is refused, naming the byte; other
 * bytes (UTF-8 included) are kept, and a long name is cut at 47 bytes. */
static void test_names(void)
{
    static const struct {
        const char *name;
        const char *byte; /* what the refusal names */
    } bad[] = {
        {"rx\nlabyrinth: zone 'x': forged", "name byte 2 "},
        {"eth0/rx", "name byte 4 "},
        {"\t", "name byte 0 "},
        {"del\x7f", "name byte 3 "},
        {"cr\r", "name byte 2 "},
        {"esc\x1b[31m", "name byte 3 "},
    };
    char msg[1024];
    struct create_call c;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&c, 0, sizeof c);
        c.cfg.name = bad[i].name;
        c.cfg.pages = 64;
        capture_stderr(do_create, &c, msg, sizeof msg);
        CHECK(c.z == NULL);
        CHECK_EQ(c.err, EINVAL);
        if (!strstr(msg, bad[i].byte))
            fprintf(stderr, "name refusal %zu does not name '%s': %s\n", i, bad[i].byte, msg);
        CHECK(strstr(msg, bad[i].byte) != NULL);
        /* One line: the name itself is not echoed. */
        CHECK(strchr(msg, '\n') == msg + strlen(msg) - 1);
        if (c.z)
            labyrinth_zone_destroy(c.z);
    }
    /* Kept: UTF-8, spaces, punctuation; the 48th byte on is cut, and a
     * control character past the cut is not looked at. */
    static const char *good[] = {"z\xc3\xa9ro-copie rx:0 (q1)", "0123456789012345678901234567890123456789012345678\n"};
    for (size_t i = 0; i < 2; i++) {
        memset(&c, 0, sizeof c);
        c.cfg.name = good[i];
        c.cfg.pages = 64;
        capture_stderr(do_create, &c, msg, sizeof msg);
        CHECK(c.z != NULL);
        if (!c.z)
            continue;
        size_t want = strlen(good[i]) > 47 ? 47 : strlen(good[i]);
        CHECK_EQ(strlen(labyrinth_zone_name(c.z)), want);
        CHECK(memcmp(labyrinth_zone_name(c.z), good[i], want) == 0);
        exercise(c.z);
        labyrinth_zone_destroy(c.z);
    }
    printf("names: 6 with a control character or '/' refused, naming the byte; UTF-8 kept, 49 bytes cut to 47\n");
}

/* 18.5: caller memory larger than one region (2^24 - 1 pages with the
 * alignment hole): the zone takes what it is asked for, with metadata for
 * that much; pages above one region are refused naming the limit.  The
 * buffer is reserved, never touched beyond what the zone uses. */
static void test_big_memory(void)
{
    size_t bytes = ((size_t)1 << 24) * PG + 64 * PG;
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) {
        printf("big memory: no %zu GiB of address space here, skipped\n", bytes >> 30);
        return;
    }
    struct create_call c;
    memset(&c, 0, sizeof c);
    c.cfg.memory = mem;
    c.cfg.memory_bytes = bytes;
    c.cfg.pages = 1024;
    do_create(&c);
    CHECK(c.z != NULL);
    if (c.z) {
        struct labyrinth_zone_stats st;
        labyrinth_zone_stats(c.z, &st);
        CHECK_EQ(st.total_pages, 1024);
        /* Metadata for 1024 pages, not for the 2^24 the buffer could hold
         * (that was 400 MB of it, every byte written). */
        CHECK(st.metadata_bytes < ((size_t)4 << 20));
        exercise(c.z);
        labyrinth_zone_destroy(c.z);
    }
    char msg[1024];
    memset(&c, 0, sizeof c);
    c.cfg.memory = mem;
    c.cfg.memory_bytes = bytes;
    c.cfg.pages = (size_t)1 << 24;
    capture_stderr(do_create, &c, msg, sizeof msg);
    CHECK(c.z == NULL);
    CHECK_EQ(c.err, EINVAL);
    CHECK(strstr(msg, "pages 16777216 must be at most") != NULL);
    CHECK(strstr(msg, "one region") != NULL);
    if (c.z)
        labyrinth_zone_destroy(c.z);
    munmap(mem, bytes);
    printf("big memory: 1024 pages of a 64 GiB buffer with small metadata; 2^24 pages refused naming one region\n");
}

/* 18.2 as root: DMA over caller memory never touched. */
static void test_dma_untouched_root(void)
{
    if (geteuid() != 0) {
        printf("dma over caller memory: not root, the privileged half skipped\n");
        return;
    }
    size_t bytes = 256 * PG;
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(mem != MAP_FAILED);
    struct labyrinth_zone_config c;
    memset(&c, 0, sizeof c);
    c.name = "dma-mem";
    c.memory = mem;
    c.memory_bytes = bytes;
    c.flags = LABYRINTH_ZONE_DMA;
    errno = 0;
    struct labyrinth_zone *z = labyrinth_zone_create(&c);
    if (!z)
        fprintf(stderr, "DMA over untouched caller memory: %s (%d)\n", labyrinth_strerror(errno), errno);
    CHECK(z != NULL);
    if (z) {
        struct labyrinth_region_info ri;
        CHECK_EQ(labyrinth_zone_region_info(z, 0, &ri), 0);
        CHECK_EQ(ri.caller_memory, 1);
        CHECK_EQ(ri.locked, 1);
        CHECK(ri.first_phys != 0);
        void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
        uint64_t phys = 0;
        void *back = NULL;
        CHECK(p != NULL);
        CHECK_EQ(labyrinth_virt_to_phys(z, p, &phys), 0);
        CHECK(phys != 0);
        CHECK_EQ(labyrinth_phys_to_virt(z, phys, &back), 0);
        CHECK(back == p);
        labyrinth_free_pages(z, p, 0);
        exercise(z);
        labyrinth_zone_destroy(z);
    }
    munmap(mem, bytes);
    printf("dma over caller memory never touched: pinned (locked=1), physical addresses read\n");
}

/* In a child: RLIMIT_MEMLOCK lowered to 64 KiB and, when root, the child
 * becomes nobody (root's CAP_IPC_LOCK lifts the limit). */
static int unprivileged_child(void)
{
    struct rlimit rl = {64 << 10, 64 << 10};
    if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        return 10;
    if (geteuid() == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            return 11;
        prctl(PR_SET_DUMPABLE, 1); /* /proc/self/pagemap stays readable */
    }
    int bad = 0;
    struct labyrinth_zone_config c;
    /* Is the limit enforced?  The sanitizers' runtimes intercept mlock and
     * make it succeed without locking anything. */
    void *probe = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int enforced = probe != MAP_FAILED && mlock(probe, 1 << 20) != 0;
    if (probe != MAP_FAILED)
        munmap(probe, 1 << 20);
    if (!enforced)
        printf("unprivileged: mlock over RLIMIT_MEMLOCK succeeded (a sanitizer's interceptor): MUST_LOCK not checked\n");
    fflush(stdout);
    /* MUST_LOCK over the limit: EPERM (was ENOMEM). */
    memset(&c, 0, sizeof c);
    c.pages = 1024;
    c.flags = LABYRINTH_ZONE_MUST_LOCK | LABYRINTH_ZONE_NO_WARDEN;
    errno = 0;
    struct labyrinth_zone *z = enforced ? labyrinth_zone_create(&c) : NULL;
    if (enforced && (z || errno != EPERM)) {
        fprintf(stderr, "MUST_LOCK over RLIMIT_MEMLOCK: %s, errno %d (want EPERM)\n", z ? "created" : "NULL", errno);
        bad |= 1;
    }
    /* A large DMA zone: EPERM (was ENOMEM). */
    c.flags = LABYRINTH_ZONE_DMA | LABYRINTH_ZONE_NO_WARDEN;
    errno = 0;
    z = labyrinth_zone_create(&c);
    if (z || errno != EPERM) {
        fprintf(stderr, "large DMA zone unprivileged: %s, errno %d (want EPERM)\n", z ? "created" : "NULL", errno);
        bad |= 2;
    }
    /* A small DMA zone (lockable): EPERM from the physical addresses. */
    c.pages = 8;
    errno = 0;
    z = labyrinth_zone_create(&c);
    if (z || errno != EPERM) {
        fprintf(stderr, "small DMA zone unprivileged: %s, errno %d (want EPERM)\n", z ? "created" : "NULL", errno);
        bad |= 4;
    }
    /* DMA over caller memory never touched: EPERM (was ENOENT), and the
     * memory can carry a zone afterwards (the claim was given back). */
    size_t bytes = 256 * PG;
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(&c, 0, sizeof c);
    c.memory = mem;
    c.memory_bytes = bytes;
    c.flags = LABYRINTH_ZONE_DMA;
    errno = 0;
    z = labyrinth_zone_create(&c);
    if (z || errno != EPERM) {
        fprintf(stderr, "DMA over caller memory unprivileged: %s, errno %d (want EPERM)\n", z ? "created" : "NULL",
                errno);
        bad |= 8;
    }
    c.flags = 0;
    z = labyrinth_zone_create(&c);
    if (!z) {
        fprintf(stderr, "the same memory without DMA: errno %d\n", errno);
        bad |= 16;
    } else {
        labyrinth_zone_destroy(z);
    }
    return bad;
}

static void test_unprivileged(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
        _exit(unprivileged_child());
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
    printf("unprivileged (RLIMIT_MEMLOCK 64 KiB%s): MUST_LOCK, large DMA, small DMA, DMA over caller memory: EPERM\n",
           geteuid() == 0 ? ", as nobody" : "");
}

/* One part by name (argv[1]), or all of them. */
int main(int argc, char **argv)
{
    PG = labyrinth_page_size();
    static const struct {
        const char *name;
        void (*fn)(void);
    } parts[] = {{"overlap", test_overlap}, {"nested", test_nested}, {"quarantine", test_quarantine}, {"args", test_args}, {"names", test_names},
                 {"big", test_big_memory},
                 {"dma", test_dma_untouched_root}, {"unprivileged", test_unprivileged}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (argc < 2 || !strcmp(argv[1], parts[i].name))
            parts[i].fn();
    return check_done("api_create");
}
