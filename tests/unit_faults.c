/*
 * unit_faults.c - OS failures after creation: growth, check, for_each,
 * KERNEL waits, the running warden, DMA growth (issue 6, part 2).
 *
 * tests/unit_os.c fails every OS call zone *creation* makes; this test
 * fails the calls a zone makes once it exists.  A workload (KERNEL
 * allocations that grow the zone region by region up to max_pages and then
 * wait, labyrinth_zone_check and labyrinth_zone_for_each_in_use, which map
 * their page maps, frees, destroy, which stops the warden) runs on a zone
 * created without faults; for every op kind and every N until the workload
 * makes fewer than N calls of that kind, the Nth call fails, once and then
 * persistently from N on.  Every N must give:
 *   - clean errors only: NULL with ENOMEM (growth refused) or ETIMEDOUT,
 *     -ENOMEM from check and for_each, nothing else and no crash;
 *   - while the fault is armed, every check that runs returns 0 or -ENOMEM,
 *     never a violation;
 *   - once the fault clears: labyrinth_zone_check() == 0, the in-use count
 *     and for_each agree with what the workload holds, the zone grows and
 *     serves again, and destroy leaves no mapping behind (address-space size
 *     back where it was; LeakSanitizer covers the heap in the asan flavour).
 * Configurations: warden + growth; HUGE + growth (the huge-page attempt of
 * each new region); no warden (KERNEL waits poll the futex themselves); and,
 * as root, DMA + warden + growth, where the workload starts with the
 * creation itself (the physical-address table of every region is read).
 */
#define _GNU_SOURCE
#include "check.h"

#include "zone.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define UT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UT_TSAN 1
#endif
#endif
#ifndef UT_TSAN
#define UT_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UT_ASAN 1
#endif
#endif
#ifndef UT_ASAN
#define UT_ASAN 0
#endif
/* Address-space sizes compare exactly only without a sanitizer runtime
 * (TSan's background thread and ASan's allocator map memory at their own
 * pace); the asan flavour's LeakSanitizer covers the heap instead. */
#define UT_VM_EXACT (!UT_TSAN && !UT_ASAN)

static size_t PG;
static const char *op_name[LB_OS_OP_COUNT] = {"MAP", "LOCK", "POPULATE", "HUGE", "PAGEMAP", "THREAD", "FUTEX", "OTHER"};

/* Address-space size in pages (/proc/self/statm), read without malloc. */
static unsigned long vm_pages(void)
{
    char b[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    if (n <= 0)
        return 0;
    b[n] = 0;
    return strtoul(b, NULL, 10);
}

static int cap_sys_admin(void)
{
    static char b[8192];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    if (n <= 0)
        return 0;
    b[n] = 0;
    const char *p = strstr(b, "CapEff:");
    return p && (strtoull(p + 7, NULL, 16) >> 21 & 1);
}

/* Reports: count them (misuse must not happen here). */
static unsigned misuse_seen;
static void on_report(const struct labyrinth_report *r, void *arg)
{
    (void)arg;
    if (r->kind != LABYRINTH_REPORT_NOTICE && r->kind != LABYRINTH_REPORT_LEAK)
        __atomic_fetch_add(&misuse_seen, 1, __ATOMIC_RELAXED);
}

struct run {
    const char *cfg_name;
    enum lb_os_op op;
    uint64_t n;
    int persistent;
    unsigned bad;  /* failures of this run, for the summary line */
};

static void bad(struct run *r, const char *what, long v)
{
    __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
    r->bad++;
    fprintf(stderr, "FAIL %s, %s call %llu failed%s: %s (%ld)\n", r->cfg_name, op_name[r->op],
            (unsigned long long)r->n, r->persistent ? " from then on" : "", what, v);
}

#define MAXHELD 1024
struct held {
    void *p;
    unsigned order;
};

/* Check + for_each under a possible fault: 0 or -ENOMEM, never a violation. */
static void check_armed(struct run *r, struct labyrinth_zone *z, size_t held_blocks)
{
    long c = labyrinth_zone_check(z);
    __atomic_fetch_add(&check_count, 2, __ATOMIC_RELAXED);
    if (c != 0 && c != -ENOMEM)
        bad(r, "labyrinth_zone_check under the fault", c);
    long n = labyrinth_zone_for_each_in_use(z, NULL, NULL);
    if (n != (long)held_blocks && n != -ENOMEM)
        bad(r, "for_each_in_use under the fault (visited, or an undocumented error)", n);
}

/* The workload; returns calls of r->op it made. */
static uint64_t workload(struct run *r, const struct labyrinth_zone_config *cfg, bool create_armed)
{
    static struct held h[MAXHELD];
    size_t nh = 0, held_pages = 0;
    unsigned long vm0 = vm_pages();
    uint64_t c0 = 0;
    struct labyrinth_zone *z = NULL;
    if (!create_armed) {
        z = labyrinth_zone_create(cfg);
        REQUIRE(z != NULL);
        labyrinth_zone_set_report_handler(z, on_report, NULL);
    }
    c0 = lb_os_calls(r->op);
    if (r->n)
        lb_os_fault_set(r->op, r->n, r->persistent);
    if (create_armed) {
        errno = 0;
        z = labyrinth_zone_create(cfg);
        if (!z) {
            int e = errno;
            uint64_t made = lb_os_calls(r->op) - c0;
            lb_os_fault_set(r->op, 0, 0);
            __atomic_fetch_add(&check_count, 2, __ATOMIC_RELAXED);
            if (!(e == ENOMEM || e == EPERM || e == EIO || e == EAGAIN))
                bad(r, "creation: undocumented errno", e);
            if (UT_VM_EXACT && vm_pages() != vm0)
                bad(r, "creation failed and left mappings (pages)", (long)(vm_pages() - vm0));
            return made;
        }
        labyrinth_zone_set_report_handler(z, on_report, NULL);
    }

    /* Grow: order-0 pages past the first region, then the largest blocks,
     * until the zone is at max_pages and a KERNEL call must wait. */
    for (int round = 0; round < 2; round++) {
        for (;;) {
            unsigned order = round ? cfg->max_order : 0;
            errno = 0;
            void *p = nh < MAXHELD ? labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, order, 0) : NULL;
            if (!p) {
                __atomic_fetch_add(&check_count, 1, __ATOMIC_RELAXED);
                if (nh < MAXHELD && errno != ENOMEM && errno != ETIMEDOUT) {
                    bad(r, "KERNEL NULL with an undocumented errno", errno);
                    fprintf(stderr, "  errno %d: %s\n", errno, strerror(errno));
                }
                break;
            }
            memset(p, 0x5a, PG); /* the page is really there */
            h[nh++] = (struct held){p, order};
            held_pages += (size_t)1 << order;
            if (round == 0 && held_pages >= cfg->pages + cfg->pages / 2)
                break; /* into the second region; the big blocks do the rest */
        }
        check_armed(r, z, nh);
    }
    /* ATOMIC and NOWAIT never reach the OS: they just fail or succeed. */
    void *a = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
    if (a && nh < MAXHELD)
        h[nh++] = (struct held){a, 0};
    /* Free half, check, free the rest, check. */
    for (size_t i = 0; i < nh; i += 2) {
        if (labyrinth_free_pages(z, h[i].p, h[i].order) != 0)
            bad(r, "free of a held block refused", (long)i);
        h[i].p = NULL;
    }
    size_t left = 0;
    for (size_t i = 0; i < nh; i++)
        left += h[i].p != NULL;
    check_armed(r, z, left);
    for (size_t i = 1; i < nh; i += 2)
        if (labyrinth_free_pages(z, h[i].p, h[i].order) != 0)
            bad(r, "free of a held block refused", (long)i);
    check_armed(r, z, 0);

    uint64_t made = lb_os_calls(r->op) - c0;
    lb_os_fault_set(r->op, 0, 0);

    /* The fault has cleared: healthy, and working (it grows again if it
     * could not before). */
    struct labyrinth_zone_stats st;
    labyrinth_zone_stats(z, &st);
    __atomic_fetch_add(&check_count, 5, __ATOMIC_RELAXED);
    long c = labyrinth_zone_check(z);
    if (c != 0)
        bad(r, "labyrinth_zone_check after the fault cleared", c);
    if (st.in_use_pages != 0)
        bad(r, "pages in use after every free", (long)st.in_use_pages);
    long fe = labyrinth_zone_for_each_in_use(z, NULL, NULL);
    if (fe != 0)
        bad(r, "for_each_in_use after every free", fe);
    nh = 0;
    for (int retries = 0;;) {
        void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, cfg->max_order, 0);
        if (!p) {
            /* With a warden, pages it moves (a drained pending stack, a
             * reaped inbox) may coalesce into a block just after the
             * NULL: ask again while the stats show one, a few times. */
            labyrinth_zone_stats(z, &st);
            if (retries++ < 20 && st.largest_free_order != (size_t)-1 && st.largest_free_order >= cfg->max_order)
                continue;
            break;
        }
        h[nh++] = (struct held){p, cfg->max_order};
    }
    labyrinth_zone_stats(z, &st);
    if (st.total_pages != cfg->max_pages)
        bad(r, "the zone did not grow to max_pages once the fault cleared", (long)st.total_pages);
    /* A NULL only when no such block is left (the reserve and this
     * thread's magazines keep a few pages). */
    if (nh == 0 || (st.largest_free_order != (size_t)-1 && st.largest_free_order >= cfg->max_order))
        bad(r, "max_order blocks served once the fault cleared", (long)nh);
    for (size_t i = 0; i < nh; i++)
        labyrinth_free_pages(z, h[i].p, h[i].order);
    if (labyrinth_zone_check(z) != 0)
        bad(r, "labyrinth_zone_check at the end", labyrinth_zone_check(z));
    if (__atomic_load_n(&misuse_seen, __ATOMIC_RELAXED))
        bad(r, "misuse reports", (long)misuse_seen);
    __atomic_store_n(&misuse_seen, 0, __ATOMIC_RELAXED);
    labyrinth_zone_destroy(z);
    /* TSan's background thread maps memory at its own pace; the warm-up
     * run (n 0) caches a thread stack. */
    if (UT_VM_EXACT && r->n && vm_pages() != vm0)
        bad(r, "mappings left after destroy (pages)", (long)(vm_pages() - vm0));
    return made;
}

static void sweep(const char *name, const struct labyrinth_zone_config *cfg, bool create_armed, const enum lb_os_op *ops,
                  unsigned nops)
{
    struct run r = {name, LB_OS_OP_MAP, 0, 0, 0};
    workload(&r, cfg, create_armed); /* warm-up: thread stacks, TLS, stdio */
    for (unsigned k = 0; k < nops; k++) {
        r.op = ops[k];
        r.bad = 0;
        unsigned runs = 0, hit[2] = {0, 0};
        for (int persistent = 0; persistent < 2; persistent++) {
            r.persistent = persistent;
            for (r.n = 1;; r.n++) {
                REQUIRE(r.n < 400);
                uint64_t made = workload(&r, cfg, create_armed);
                runs++;
                if (made < r.n)
                    break; /* the workload ran with no fault hit */
                hit[persistent]++;
            }
        }
        printf("faults %s: %s: %u runs, the Nth call failed for N = 1..%u (once) and 1..%u (from then on); "
               "%u check failures\n", name, op_name[r.op], runs, hit[0], hit[1], r.bad);
    }
}

/* Focused reproducers of what the sweeps found (docs/reliability.md). */
static void test_check_map_leak(void)
{
    /* KB3: labyrinth_zone_check maps one page map per region; when a later
     * map fails it returns -ENOMEM without unmapping the earlier ones. */
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.pages = 64;
    cfg.max_pages = 128;
    cfg.max_order = 4;
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    REQUIRE(z != NULL);
    void *p[6];
    for (int i = 0; i < 6; i++)
        REQUIRE((p[i] = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 4, 0)) != NULL); /* two regions */
    CHECK_EQ(labyrinth_zone_check(z), 0);
    for (int fn = 0; fn < 2; fn++) {
        unsigned long vm0 = vm_pages();
        lb_os_fault_set(LB_OS_OP_MAP, 2, 0); /* the second region's page map */
        long rc = fn ? labyrinth_zone_for_each_in_use(z, NULL, NULL) : labyrinth_zone_check(z);
        lb_os_fault_set(LB_OS_OP_MAP, 0, 0);
        CHECK_EQ(rc, -ENOMEM);
        if (UT_VM_EXACT && vm_pages() != vm0) {
            __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
            fprintf(stderr, "FAIL KB3: %s returned -ENOMEM and left %ld page(s) mapped\n",
                    fn ? "labyrinth_zone_for_each_in_use" : "labyrinth_zone_check", (long)(vm_pages() - vm0));
        }
    }
    for (int i = 0; i < 6; i++)
        labyrinth_free_pages(z, p[i], 4);
    labyrinth_zone_destroy(z);
}

static void test_dma_grow_errno(void)
{
    /* KB4: a KERNEL allocation whose growth cannot read the new region's
     * physical addresses fails with errno EIO, which the header does not
     * list for labyrinth_alloc_pages (ENOMEM: "the OS refused"). */
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.pages = 64;
    cfg.max_pages = 128;
    cfg.max_order = 4;
    cfg.wait_timeout_ms = 2;
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN | LABYRINTH_ZONE_DMA;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    REQUIRE(z != NULL);
    void *p[3];
    for (int i = 0; i < 3; i++)
        REQUIRE((p[i] = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 4, 0)) != NULL);
    lb_os_fault_set(LB_OS_OP_PAGEMAP, 1, 1);
    errno = 0;
    void *q = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 4, 0);
    int e = errno;
    lb_os_fault_set(LB_OS_OP_PAGEMAP, 0, 0);
    CHECK(q == NULL);
    if (e != ENOMEM) {
        __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);
        fprintf(stderr, "FAIL KB4: DMA growth refused: errno %d (%s), the header lists ENOMEM\n", e, strerror(e));
    }
    CHECK_EQ(labyrinth_zone_check(z), 0);
    if (q)
        labyrinth_free_pages(z, q, 4);
    q = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 4, 0); /* the fault has cleared: it grows */
    CHECK(q != NULL);
    if (q)
        labyrinth_free_pages(z, q, 4);
    for (int i = 0; i < 3; i++)
        labyrinth_free_pages(z, p[i], 4);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    labyrinth_zone_destroy(z);
}

int main(void)
{
    PG = lb_os_page_size();
    test_check_map_leak();
    if (cap_sys_admin())
        test_dma_grow_errno();
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.pages = 64;
    cfg.max_pages = 256;
    cfg.max_order = 4;
    cfg.wait_timeout_ms = 2;
    cfg.warden_interval_us = 200;

    /* Growth regions, their metadata and the address map's tables (MAP),
     * pre-faulting (POPULATE), locking (LOCK: degraded, a notice); the
     * check's and for_each's page maps (MAP); the warden running meanwhile
     * (FUTEX, OTHER: its waits and sleeps fail, it must keep working). */
    static const enum lb_os_op all[] = {LB_OS_OP_MAP, LB_OS_OP_POPULATE, LB_OS_OP_LOCK, LB_OS_OP_FUTEX,
                                        LB_OS_OP_OTHER, LB_OS_OP_THREAD};
    cfg.name = "grow";
    sweep("warden+growth", &cfg, false, all, LB_ARRAY_SIZE(all));

    /* KERNEL waits without a warden: the futex and the clock. */
    cfg.name = "grow-nowarden";
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    static const enum lb_os_op waits[] = {LB_OS_OP_FUTEX, LB_OS_OP_OTHER, LB_OS_OP_MAP};
    sweep("no-warden+growth", &cfg, false, waits, LB_ARRAY_SIZE(waits));

    /* Each new region of a HUGE zone tries huge pages first. */
    cfg.name = "grow-huge";
    cfg.flags = LABYRINTH_ZONE_HUGE;
    cfg.pages = 512;
    cfg.max_pages = 1536;
    cfg.max_order = 9;
    static const enum lb_os_op huge[] = {LB_OS_OP_HUGE, LB_OS_OP_MAP};
    sweep("huge+growth", &cfg, false, huge, LB_ARRAY_SIZE(huge));

    int rc;
    if (cap_sys_admin()) {
        /* DMA: creation (with a warden and growth allowed) is part of the
         * workload; every region's physical addresses are read. */
        cfg.name = "grow-dma";
        cfg.flags = LABYRINTH_ZONE_DMA;
        cfg.pages = 64;
        cfg.max_pages = 256;
        cfg.max_order = 4;
        static const enum lb_os_op dma[] = {LB_OS_OP_PAGEMAP, LB_OS_OP_LOCK, LB_OS_OP_MAP};
        sweep("dma+warden+growth", &cfg, true, dma, LB_ARRAY_SIZE(dma));
        rc = check_done("unit_faults");
    } else {
        rc = check_done("unit_faults");
        if (rc == 0)
            SKIP("DMA zones need CAP_SYS_ADMIN (root): their part was not run");
    }
    return rc;
}
