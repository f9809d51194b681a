/*
 * proof_nofault.c - the ATOMIC path never page-faults.
 *
 * After the zone is created, a fresh thread (its stack touched in advance,
 * so the test's own stack growth does not count) runs a long ATOMIC
 * workload from its first labyrinth call: pairs, bursts through the depot,
 * the seed's macro with tracking and every quality flag, higher orders, a
 * drain down through the reserve.  getrusage(RUSAGE_THREAD) must show no
 * minor and no major fault for the whole run.  Another thread frees part of
 * the pages meanwhile (its own faults are not counted: only the ATOMIC
 * thread's).
 *
 * The program's own code and libc's must be resident too, or the first
 * run of a rarely taken branch can fault on a text page the kernel dropped
 * under memory pressure (seen: one major fault with other tests running).
 * Real-time programs call mlockall(); so does this test, and the docs say
 * so.  Everything the allocator itself owns is pre-faulted and locked by
 * labyrinth_zone_create.
 *
 * Plain build only: sanitizer runtimes fault in their own shadow memory.
 */
#define _GNU_SOURCE
#include "check.h"

#include <labyrinth.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <errno.h>
#include <sys/resource.h>

static struct labyrinth_zone *Z;
static long minflt, majflt;
static uint64_t ops, bad;

static __attribute__((noinline)) void touch_stack(void)
{
    volatile char buf[256 * 1024];
    for (size_t i = 0; i < sizeof buf; i += 512)
        buf[i] = 1;
}

static void *atomic_main(void *arg)
{
    (void)arg;
    static void *all[1 << 15];
    touch_stack();
    memset(all, 0, sizeof all); /* the test's own array: fault it in now */
    if (getenv("LB_PROOF_SABOTAGE")) { /* the self-test: a fault that must be caught */
        char *p = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        static struct rusage r0;
        getrusage(RUSAGE_THREAD, &r0);
        p[0] = 1;
        struct rusage r1;
        getrusage(RUSAGE_THREAD, &r1);
        minflt = r1.ru_minflt - r0.ru_minflt;
        return NULL;
    }
    struct rusage r0, r1;
    getrusage(RUSAGE_THREAD, &r0);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 1000000; i++) {
            void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0);
            if (p)
                bad += labyrinth_free_pages(Z, p, 0) != 0;
            ops++;
        }
        for (int k = 0; k < 2000; k++) {
            void *b[200];
            int n = 0;
            for (int i = 0; i < 200; i++)
                if ((b[n] = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0)))
                    n++;
            for (int i = 0; i < n; i++)
                bad += labyrinth_free_pages(Z, b[i], 0) != 0;
            ops += 200;
        }
        for (int i = 0; i < 100000; i++) {
            void *p = labyrinth_void_allocpage_gfpatomic_extra_quality(
                Z, LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_CL_ALIGN | LABYRINTH_QUALITY_TRACK);
            if (p)
                bad += labyrinth_free_pages(Z, p, 0) != 0;
            ops++;
        }
        for (int i = 0; i < 10000; i++) {
            unsigned o = 1 + (unsigned)i % 5;
            void *p = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, o, LABYRINTH_QUALITY_POISON);
            if (p)
                bad += labyrinth_free_pages(Z, p, o) != 0;
            ops++;
        }
        size_t n = 0;
        while (n < (1u << 15) && (all[n] = labyrinth_alloc_pages(Z, LABYRINTH_GFP_ATOMIC, 0, 0)))
            n++;
        for (size_t i = 0; i < n; i++)
            bad += labyrinth_free_pages(Z, all[i], 0) != 0;
        ops += n;
    }
    getrusage(RUSAGE_THREAD, &r1);
    minflt = r1.ru_minflt - r0.ru_minflt;
    majflt = r1.ru_majflt - r0.ru_majflt;
    return NULL;
}

int main(void)
{
#ifdef LB_TEST_SANITIZED
    SKIP("sanitizer runtimes fault in shadow memory; this proof runs on the plain build");
#endif
    if (mlockall(MCL_CURRENT) != 0) /* the code; the zone locks its own memory */
        printf("note: mlockall failed (%s): code pages may fault under memory pressure\n", strerror(errno));
    struct labyrinth_zone_config cfg = {0};
    cfg.name = "nofault";
    cfg.pages = 16384;
    cfg.max_order = 6;
    Z = labyrinth_zone_create(&cfg);
    REQUIRE(Z);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, atomic_main, NULL) == 0);
    pthread_join(t, NULL);
    if (getenv("LB_PROOF_SABOTAGE")) {
        printf("sabotage: %ld minor faults seen\n", minflt);
        CHECK_EQ(minflt, 0); /* must fail: proves the counter sees faults */
        return check_done("proof_nofault (sabotaged)");
    }
    printf("ATOMIC thread: %llu operations, %ld minor faults, %ld major faults\n",
           (unsigned long long)ops, minflt, majflt);
    CHECK(ops > 3000000);
    CHECK_EQ(bad, 0);
    CHECK_EQ(minflt, 0);
    CHECK_EQ(majflt, 0);
    CHECK_EQ(labyrinth_zone_check(Z), 0);
    labyrinth_zone_destroy(Z);
    return check_done("proof_nofault");
}
