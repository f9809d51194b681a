/*
 * lb_annotate.h - tell memory tools about labyrinth's pages.
 *
 * Pages come from labyrinth's own mappings, so by default ASan and
 * valgrind's memcheck know nothing of allocations and frees inside them.
 * These hooks make a page handed out look allocated and a freed page look
 * freed:
 *   - AddressSanitizer builds (automatic): a freed block is poisoned, a
 *     block handed out unpoisoned, so a read or write of a freed page is a
 *     use-after-poison report.
 *   - memcheck, with -DLABYRINTH_VALGRIND=ON (valgrind's header-only client
 *     requests; off by default to keep the fast paths as short as possible):
 *     blocks are announced as malloc-like, so a use after free is an
 *     "Invalid read/write ... inside a block ... free'd" and a block never
 *     freed is "definitely lost" at exit.
 *   - a kernel with generic KASAN: the pages' shadow (see below).
 * Otherwise the hooks compile to nothing.
 */
#ifndef LB_ANNOTATE_H
#define LB_ANNOTATE_H

#if defined(LABYRINTH_VALGRIND) && !defined(__KERNEL__)
#include <valgrind/memcheck.h>
#define LB_TOOL_ALLOC(p, bytes, defined) VALGRIND_MALLOCLIKE_BLOCK((p), (bytes), 0, (defined))
#define LB_TOOL_FREE(p, bytes) VALGRIND_FREELIKE_BLOCK((p), 0)
#define LB_TOOL_FORGET(p, bytes) ((void)(p), (void)(bytes))
#define LB_TOOL_ACTIVE 1
#else
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LB_ASAN 1
#endif
#endif
/* Not in a kernel build: KASAN defines __SANITIZE_ADDRESS__ too; a kernel
 * gets KASAN's own shadow calls below. */
#if (defined(__SANITIZE_ADDRESS__) || defined(LB_ASAN)) && !defined(__KERNEL__)
#include <sanitizer/asan_interface.h>
#define LB_TOOL_ALLOC(p, bytes, defined) ASAN_UNPOISON_MEMORY_REGION((p), (bytes))
#define LB_TOOL_FREE(p, bytes) ASAN_POISON_MEMORY_REGION((p), (bytes))
/* Pages leaving labyrinth (unmapped, or caller memory handed back): ASan
 * keeps manual poison in its shadow past munmap, so clear it. */
#define LB_TOOL_FORGET(p, bytes) ASAN_UNPOISON_MEMORY_REGION((p), (bytes))
#define LB_TOOL_ACTIVE 1
#elif defined(__KERNEL__) && defined(CONFIG_KASAN_GENERIC)
/* A kernel with generic KASAN (issue 17, deliver 2): a freed block's
 * shadow says "freed page" (0xff, KASAN_PAGE_FREE), a block handed out is
 * accessible again (0), so KASAN reports a use after free of a labyrinth
 * page as it does one of the page allocator's.  kasan_poison is exported
 * by mm/kasan/shadow.c but declared only in mm/kasan/kasan.h, not under
 * include/: its prototype is repeated here (the 6.1 to 6.12 signature).
 * Blocks are whole pages, so the granule alignment it checks holds. */
#include <linux/types.h>
void kasan_poison(const void *addr, size_t size, u8 value, bool init);
#define LB_KASAN_PAGE_FREE 0xffu
#define LB_TOOL_ALLOC(p, bytes, defined) ((void)(defined), kasan_poison((p), (bytes), 0, false))
#define LB_TOOL_FREE(p, bytes) kasan_poison((p), (bytes), LB_KASAN_PAGE_FREE, false)
#define LB_TOOL_FORGET(p, bytes) kasan_poison((p), (bytes), 0, false)
#define LB_TOOL_ACTIVE 1
#else
#define LB_TOOL_ALLOC(p, bytes, defined) ((void)(p), (void)(bytes), (void)(defined))
#define LB_TOOL_FREE(p, bytes) ((void)(p), (void)(bytes))
#define LB_TOOL_FORGET(p, bytes) ((void)(p), (void)(bytes))
#define LB_TOOL_ACTIVE 0
#endif
#endif

#endif /* LB_ANNOTATE_H */
