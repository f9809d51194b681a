/*
 * check.h - the tests' tiny harness.  Every CHECK prints what it checked
 * when it fails (file:line, the expression, and values where given); a test
 * program exits 1 if any check failed, 0 otherwise, 77 when it had to skip
 * (CTest reports that as a skip, with the reason printed).
 */
#ifndef LB_TEST_CHECK_H
#define LB_TEST_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A test that touches a freed page on purpose (the use-after-free tests of
 * ZONE_VERIFY) says so first: in ASan builds labyrinth poisons freed pages
 * for ASan, which would rightly stop the test at the touch. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHECK_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(CHECK_ASAN)
#include <sanitizer/asan_interface.h>
#define TEST_TOUCH_FREED(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define TEST_TOUCH_FREED(p, n) ((void)(p), (void)(n))
#endif

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        __atomic_fetch_add(&check_count, 1, __ATOMIC_RELAXED);                                                                       \
        if (!(cond)) {                                                                       \
            __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);                                                                \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
        }                                                                                    \
    } while (0)

#define CHECK_EQ(a, b)                                                                       \
    do {                                                                                     \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                      \
        __atomic_fetch_add(&check_count, 1, __ATOMIC_RELAXED);                                                                       \
        if (check_a_ != check_b_) {                                                          \
            __atomic_fetch_add(&check_failures, 1, __ATOMIC_RELAXED);                                                                \
            fprintf(stderr, "FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, __LINE__,   \
                    #a, #b, check_a_, check_b_);                                             \
        }                                                                                    \
    } while (0)

/* Abort the test at once (a precondition of everything that follows). */
#define REQUIRE(cond)                                                                        \
    do {                                                                                     \
        __atomic_fetch_add(&check_count, 1, __ATOMIC_RELAXED);                                                                       \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "FATAL %s:%d: %s\n", __FILE__, __LINE__, #cond);               \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

#define SKIP(why)                                                                            \
    do {                                                                                     \
        printf("SKIPPED: %s\n", why);                                                        \
        exit(77);                                                                            \
    } while (0)

static inline int check_done(const char *name)
{
    if (check_count == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}

/* What a tracking record keeps of a thread id: all of it (labyrinth.h,
 * page_info.thread; it kept the low 16 bits before issue 11.5's fix).  The
 * wrap flavour's ids are above 2^16: there a record that lost the high
 * half fails every check that uses this. */
static inline uint32_t tracked_id(uint32_t id) { return id; }

#endif
