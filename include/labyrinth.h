/*
 * labyrinth.h - page allocation for code that must never wait.
 *
 * This header is the reference for the public API: every function lists
 * the errors it returns.  docs/design.md explains the architecture,
 * docs/memory-ordering.md the lock-free protocols.
 *
 * CALLING CONTEXTS (read this first)
 *
 *   A "zone" owns pages from one or more separately mapped regions.  Pages
 *   are handed out in naturally aligned blocks of 2^order pages.
 *
 *   Function                                  may be called from
 *   ----------------------------------------  ------------------------------
 *   labyrinth_alloc_pages(..ATOMIC..)         any context: signal handlers
 *   labyrinth_alloc_pages(..NOWAIT..)           (also one that interrupts
 *   labyrinth_void_allocpage_gfpatomic_         labyrinth on the same thread),
 *     extra_quality()                           busy pollers, critical
 *   labyrinth_free_pages()                      sections. Never sleeps, never
 *   labyrinth_register_page[_tag]()             makes a system call, never
 *   labyrinth_page_info()                       page-faults, never waits for
 *   labyrinth_virt_to_phys()                    a lock.
 *   labyrinth_zone_zero_stock()
 *   labyrinth_alloc_pages(..KERNEL..)         normal thread context only: may
 *                                               sleep, take locks, map memory.
 *   labyrinth_zone_create/_destroy,           normal thread context only.
 *   labyrinth_zone_stats/_check,
 *   labyrinth_zone_region_info/_shrink,
 *   labyrinth_zone_for_each_in_use,
 *   labyrinth_thread_release
 *
 *   In the kernel module (labyrinth.ko) a call of a normal-context function
 *   where it cannot sleep (an interrupt, preemption or interrupts off, an
 *   RCU read-side section) is refused with -EDEADLK and a BAD_ARGS report,
 *   and zone_create returns NULL, zone_destroy does nothing: each may take
 *   a mutex or spin for a lock the interrupted code holds.  A KERNEL
 *   allocation there is refused with EINVAL (docs/kernel.md, "Contexts,
 *   checked").
 *
 *   The one exception to "no system call": a misuse report through the
 *   default report handler writes one line to stderr with write(2).  The
 *   line names the call, its arguments, the reason and errno, and the
 *   caller as "caller 0xADDR (object+0xOFFSET)", from any context (objects
 *   loaded before the last zone creation are known); `addr2line -f -e
 *   object 0xOFFSET` gives the function and line.  A LEAK line at destroy
 *   gives the function's name when the object exports it.
 *
 * ERRORS
 *
 *   Allocation returns NULL on failure.  ATOMIC and NOWAIT calls never touch
 *   errno (a signal handler must not clobber the code it interrupted); their
 *   failures are counted in struct labyrinth_zone_stats.  KERNEL calls set
 *   errno.  Every other function returns 0 or a negative errno, listed at
 *   the function.  A refused call changes nothing.  Misuse (a bad free, bad
 *   arguments, a failed CL_ALIGN assertion, a use-after-free write found by
 *   LABYRINTH_ZONE_VERIFY) is also counted in misuse_reports and reported
 *   once through the zone's report handler; in a LABYRINTH_ZONE_STRICT zone
 *   the report is followed by abort(), as BUG_ON would.
 *
 *   The errnos of a refused free or register, one per kind of misuse:
 *     -EFAULT    the address belongs to no zone (a foreign pointer)
 *     -EXDEV     the address belongs to a different live zone
 *     -EINVAL    the address is not on a page boundary (misaligned)
 *     -ENXIO     the address is a page inside a block, not the block's start
 *     -EALREADY  the block is not allocated (double free)
 *     -ERANGE    the order is not the order the block was allocated with
 *     -EBADF     the zone handle is NULL or not a live zone
 *     -EBUSY     the block's descriptor kept changing under a concurrent
 *                labyrinth_register_page (nothing freed: free it again)
 *   And of a refused normal-context call (kernel module only):
 *     -EDEADLK   called where it cannot sleep or wait for a lock
 *   labyrinth_strerror() turns any of them into a sentence.
 *
 * HANDLES
 *
 *   A zone handle is a slot of a process-wide table that is never
 *   unmapped.  Every call given a destroyed zone's handle, or any pointer
 *   that is not a live slot (a byte copy of a live handle, a forgery,
 *   readable or unmapped memory), refuses it (-EBADF, NULL, an EBADF
 *   report on stderr) without touching that memory or the zone's, also
 *   when the zone's caller memory has been freed since: the fast paths
 *   take a handle only at the start of a slot of the table, and key the
 *   current zone on the slot.  A slot is reused only after every other free slot (2048 in
 *   all): a handle destroyed that many zone creations ago may name a new
 *   zone.  A call racing the destruction of its own zone is still the
 *   caller's error.
 *
 *   In the Linux kernel module (docs/kernel.md) there is no errno: what
 *   would set it sets nothing, and the return values are the same.  There
 *   "thread" means CPU, and a KERNEL allocation from a context that must
 *   not sleep is refused as misuse (BAD_ARGS, -EINVAL).
 *
 * FORK
 *
 *   A zone belongs to the process that created it.  In the child of a
 *   fork(), every zone the parent had (an "inherited" zone) is refused as
 *   a dead handle is, by every call: -EBADF from the calls that return an
 *   int or long, NULL from labyrinth_alloc_pages (errno EBADF when gfp has
 *   the SLEEP bit; ATOMIC and NOWAIT leave errno alone) and from
 *   labyrinth_zone_name, and each call writes one report line through the
 *   default handler (stderr): "zone inherited across fork(), usable only
 *   in the process that created it".  labyrinth_zone_destroy on an
 *   inherited zone in the child releases it at once (no warden is waited
 *   for, no leak is reported) and frees its caller memory for a new zone;
 *   until then a zone over that memory is refused with EEXIST.  Zones the
 *   child creates work normally, from any of its threads.  The parent is
 *   unaffected: labyrinth's own mappings (pages and metadata) are not
 *   copied into the child (MADV_DONTFORK), so the parent takes no
 *   copy-on-write fault and a DMA zone's pages keep their physical
 *   addresses; in the child, a block of a mapped zone is not mapped at all
 *   (touching it is SIGSEGV), while a zone over caller memory leaves the
 *   child the caller's copy of that memory.  Only fork() (glibc's, which
 *   runs pthread_atfork handlers) is covered: a child made by a raw clone
 *   or _Fork() must not call labyrinth on an inherited zone.  vfork and
 *   posix_spawn copy nothing and need nothing.  Not supported: fork()
 *   from a signal handler that interrupted a labyrinth call (POSIX.1-2024
 *   no longer counts fork as async-signal-safe): the fork handlers take
 *   the registry mutex, which an interrupted zone creation or destroy
 *   holds (the fork never returns), and a child that returns from the
 *   handler into an interrupted ATOMIC call finishes it on metadata it
 *   does not have (SIGSEGV).  A grandchild inherits the zones its parent
 *   inherited and had not destroyed, refused the same way.
 *   docs/design.md, "fork", says why the child is refused rather than
 *   given working zones.
 *
 * FREES FROM OTHER THREADS
 *
 *   An order-0 page taken from a thread's cache belongs to that thread
 *   (to the nesting level it was taken at).  Its owner frees it with plain
 *   stores; any other context queues it in a per-thread batch that goes
 *   back to the owner, which checks every queued page when it takes the
 *   batch.  No locked instruction is spent per page, and no page is ever
 *   handed out twice.  A double free is refused at once (-EALREADY) when
 *   the page already reads as free, or is still in the freeing thread's own
 *   batch; when two frees of one page by different threads are both under
 *   way, the second is found by the owner and reported then (a BAD_FREE
 *   report with err -EALREADY, counted in misuse_reports) while its call
 *   returned 0.  Pages queued this way count as free (in_flight_pages).
 *   They return to circulation when the owner next needs pages, when it
 *   calls labyrinth_thread_release or exits, or (for an owner that has
 *   exited) through the warden.
 */
#ifndef LABYRINTH_H
#define LABYRINTH_H

#if defined(__KERNEL__)
/* Linux kernel modules (labyrinth.ko and its users, docs/kernel.md). */
#include <linux/types.h>
#include <linux/errno.h> /* the E* names the functions return, negated */
#include <linux/stddef.h>
#include <linux/export.h> /* THIS_MODULE, for the sites and zone owners (issue 17.3) */
#else
#include <errno.h> /* the E* names the functions return, negated */
#include <stddef.h>
#include <stdint.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define LABYRINTH_API __attribute__((__visibility__("default")))
#else
#define LABYRINTH_API
#endif

#define LABYRINTH_VERSION_MAJOR 0
#define LABYRINTH_VERSION_MINOR 1
#define LABYRINTH_VERSION_PATCH 0

/* Largest max_order a zone accepts: blocks of up to 2^20 pages (4 GiB). */
#define LABYRINTH_MAX_ORDER_LIMIT 20u

/* ------------------------------------------------------------------------
 * Allocation modes (the GFP analogues), in three tiers as Linux documents
 * its gfp flags: raw bits, the named modes built from them, and what each
 * named mode promises.  Unknown bits, or contradictory ones (SLEEP together
 * with TRYLOCK or RESERVE, GROW without SLEEP), are refused as misuse.
 * ---------------------------------------------------------------------- */

/* Tier 1: raw bits. */
#define LABYRINTH_GFP_BIT_RESERVE 0x01u /* may take pages from the reserve     */
#define LABYRINTH_GFP_BIT_TRYLOCK 0x02u /* never waits for a lock: try only    */
#define LABYRINTH_GFP_BIT_SLEEP   0x04u /* may sleep until pages are freed     */
#define LABYRINTH_GFP_BIT_GROW    0x08u /* may map a new region (system calls) */
#define LABYRINTH_GFP_BITS_ALL    0x0fu

/* Tier 2 and 3: the named modes and their promises.
 *
 *   mode     sleeps  locks     syscalls  reserve  grows  on failure
 *   ATOMIC   never   try-only  never     yes      no     NULL at once
 *   NOWAIT   never   try-only  never     no       no     NULL at once
 *   KERNEL   may     yes       yes       no       yes    NULL after the
 *                                                        zone's wait timeout
 *
 * The reserve is refilled before anything else: pages freed while it is
 * below reserve_pages go to it first, so a KERNEL caller waits until frees
 * have restored the reserve and then some (the kernel's min watermark).
 *
 * ATOMIC returns NULL only when the lock-free supplies (this thread's
 * magazines, the depot, the reserve) are all empty and the buddy lock is
 * busy or the buddy has no block: never because another thread was
 * touching the same lock-free structure at the same time.  Pages another
 * context holds in its hands while it moves them between supplies (the
 * warden refilling the reserve or clearing a page for the zeroed stock, a
 * thread releasing its cache) are in no supply for that moment: a zone
 * drained to its last pages can give NULL then, and has them again when
 * the move ends (docs/design.md, "Limits").
 */
#define LABYRINTH_GFP_ATOMIC (LABYRINTH_GFP_BIT_RESERVE | LABYRINTH_GFP_BIT_TRYLOCK)
#define LABYRINTH_GFP_NOWAIT (LABYRINTH_GFP_BIT_TRYLOCK)
#define LABYRINTH_GFP_KERNEL (LABYRINTH_GFP_BIT_SLEEP | LABYRINTH_GFP_BIT_GROW)
#define LABYRINTH_GFP_WAIT   LABYRINTH_GFP_KERNEL /* the name in the original design notes */

/* ------------------------------------------------------------------------
 * Quality: applied to an allocation (per call, or to every allocation of a
 * zone through its config).
 * ---------------------------------------------------------------------- */
#define LABYRINTH_QUALITY_ZERO     0x01u /* the block reads as zeros            */
#define LABYRINTH_QUALITY_POISON   0x02u /* filled with the zone's poison_pattern;
                                            ZERO wins when both are given (the
                                            seed poisons then clears)          */
#define LABYRINTH_QUALITY_CL_ALIGN 0x04u /* assert the block is cache-line
                                            aligned; a failure is misuse       */
#define LABYRINTH_QUALITY_TRACK    0x08u /* record call site, time, thread in the
                                            zone's tracking table, as
                                            labyrinth_register_page does       */
#define LABYRINTH_QUALITY_ALL      0x0fu

/* ------------------------------------------------------------------------
 * Zone flags.
 * ---------------------------------------------------------------------- */
#define LABYRINTH_ZONE_DMA    0x01u /* pinned pages with known physical addresses:
                                       creation reads them once (needs the right
                                       to read /proc/self/pagemap, i.e. root or
                                       CAP_SYS_ADMIN) and fails with EPERM
                                       otherwise                             */
#define LABYRINTH_ZONE_HUGE   0x02u /* back regions with huge pages where the
                                       system has them reserved; otherwise
                                       transparent huge pages, with a notice  */
#define LABYRINTH_ZONE_VERIFY 0x04u /* poison freed pages, verify the poison
                                       when they are handed out again: a
                                       use-after-free write is reported      */
#define LABYRINTH_ZONE_STRICT 0x08u /* misuse aborts after its report        */
#define LABYRINTH_ZONE_NO_WARDEN   0x10u /* no background thread: reserves are
                                            refilled only by frees and by
                                            KERNEL allocations                 */
#define LABYRINTH_ZONE_NO_TRACKING 0x20u /* no tracking table (saves 20 bytes
                                            per page); TRACK and register
                                            return -EOPNOTSUPP                 */
#define LABYRINTH_ZONE_MUST_LOCK   0x40u /* fail creation when pages cannot be
                                            locked in memory, instead of a
                                            notice: EPERM for the memlock
                                            limit, ENOMEM for want of memory */
#define LABYRINTH_ZONE_WARDEN      0x80u /* start a warden even for a zone over
                                            caller memory (which otherwise
                                            makes no OS call at all)          */
#define LABYRINTH_ZONE_FLAGS_ALL   0xffu

/* KERNEL allocations wait at most this long by default (config.wait_timeout_ms). */
#define LABYRINTH_DEFAULT_WAIT_MS 1000u
#define LABYRINTH_WAIT_FOREVER    0xffffffffu

struct labyrinth_zone; /* opaque */

/* All-zero means sensible defaults for every field (see docs/design.md,
 * "Defaults").  The first block of fields is the original contract (the seed's API). */
struct labyrinth_zone_config {
    const char   *name;           /* for reports; copied (the first 47 bytes);
                                     NULL = "zone"; a control character or
                                     '/' in it is refused (EINVAL)          */
    size_t        pages;          /* mapped, pre-faulted and locked at
                                     creation; 0 = 4096 (16 MiB)               */
    size_t        max_pages;      /* growth limit for KERNEL requests;
                                     0 = pages (no growth)                    */
    size_t        reserve_pages;  /* min watermark: only ATOMIC may take these;
                                     0 = pages/16                             */
    size_t        low_pages;      /* the warden refills when the lock-free
                                     supply (reserve + depot) falls below
                                     this; 0 = max(pages/8, reserve)          */
    size_t        high_pages;     /* ... up to this; 0 = max(pages/4, low)    */
    unsigned      max_order;      /* largest block is 2^max_order pages;
                                     0 = 10, at most LABYRINTH_MAX_ORDER_LIMIT */
    unsigned char poison_pattern; /* byte written by QUALITY_POISON and by
                                     ZONE_VERIFY; 0 = 0x6b (Linux's POISON_FREE) */
    unsigned      quality;        /* LABYRINTH_QUALITY_* for every allocation */
    unsigned      flags;          /* LABYRINTH_ZONE_*                         */
    void         *memory;         /* optional caller-supplied backing memory:
                                     the zone then makes no OS call at all (no
                                     warden unless flags ask otherwise; DMA
                                     locks it and reads its physical
                                     addresses at creation); readable and
                                     writable, and no other live zone's   */
    size_t        memory_bytes;

    /* Extensions (0 = default). */
    unsigned      magazine_pages;    /* pages per magazine; 0 = auto (<= 64)   */
    unsigned      max_threads;       /* threads with their own caches; 0 = 64;
                                        further threads use the shared path   */
    unsigned      wait_timeout_ms;   /* KERNEL wait; 0 = LABYRINTH_DEFAULT_WAIT_MS */
    unsigned      warden_interval_us;/* longest warden sleep; 0 = 10000       */
    unsigned      quarantine_pages;  /* per thread cache level: the last this
                                        many order-0 pages a thread freed are
                                        held back before reuse (a use after
                                        free then hits a page nobody has yet;
                                        with ZONE_VERIFY it is found when the
                                        page leaves quarantine); 0 = none,
                                        at most (pages - reserve_pages) / 4
                                        and 4096.  A freed page enters the
                                        quarantine before anything else, the
                                        reserve included: the pages it lets
                                        out refill a low reserve first.  An
                                        order-0 request that finds nothing
                                        else takes its own level's oldest
                                        held page rather than fail or wait;
                                        another thread's held pages are out
                                        of its reach, as its magazines are    */
};

struct labyrinth_zone_stats {
    /* The original contract (the seed's API).  free_pages counts every page not in use:
     * buddy + cached (depot, thread magazines and the zeroed stock) + reserve +
     * in flight (below). */
    size_t total_pages, free_pages, in_use_pages, reserve_free_pages;
    unsigned long long atomic_allocs, atomic_failures, misuse_reports;

    /* Extensions. */
    size_t max_pages, regions;
    size_t buddy_free_pages;     /* in the buddy's free areas               */
    size_t cached_pages;         /* in magazines (depot and threads), and in
                                    the zeroed stock (stock_pages of
                                    labyrinth_zone_zero_stock)              */
    size_t depot_pages;          /* in full magazines in the depot          */
    /* reserve_free_pages may exceed reserve_target_pages by up to one
     * magazine per context freeing at that moment: a batch freed while the
     * reserve is low goes to it whole, and the warden trims back only what
     * is more than a magazine over. */
    size_t reserve_target_pages, low_pages, high_pages;
    size_t reserve_low_water;    /* lowest reserve level seen               */
    size_t threads;              /* threads holding a cache in this zone    */
    size_t largest_free_order;   /* -1 cast to size_t when nothing is free  */
    size_t free_blocks[LABYRINTH_MAX_ORDER_LIMIT + 1]; /* buddyinfo-style   */
    unsigned long long atomic_reserve_allocs;  /* ATOMIC served by reserve  */
    /* Counted by what a call may do, for raw gfp values too: with SLEEP
     * as KERNEL, else with RESERVE as ATOMIC, else as NOWAIT (gfp 0, which
     * never sleeps, is NOWAIT's). */
    unsigned long long nowait_allocs, nowait_failures;
    unsigned long long kernel_allocs, kernel_failures, kernel_waits;
    unsigned long long frees;
    unsigned long long warden_runs, warden_pages_moved;
    unsigned long long grow_events;
    unsigned long long retry_cap_hits; /* lock-free retry bound reached     */
    unsigned long long max_retries;    /* most retries one operation needed */
    size_t in_flight_pages;      /* freed, on their way back: to the thread
                                    cache that allocated them (freed by
                                    another thread), or to the buddy (freed
                                    while its lock was busy: the next lock
                                    holder takes them in); a double free
                                    still on its way counts here
                                    (in_use_pages one low) until the owner
                                    refuses it.  buddy + cached + reserve +
                                    in flight = free_pages, but for such
                                    double frees: each adds one to the sum,
                                    and free_pages stops at total_pages     */
    unsigned long long remote_cas_fallbacks; /* such frees queued through the
                                    page's own link for want of a batch
                                    magazine (docs/design.md, "Ownership";
                                    the name is older than the queue)       */
    size_t metadata_bytes;       /* allocator metadata, all out of band     */
    size_t locked_pages;         /* pages locked in memory (mlock)          */
    int    frag_index[LABYRINTH_MAX_ORDER_LIMIT + 1]; /* per order, x1000, as
                                    Linux's extfrag index: -1000 when a block
                                    of that order is free; else towards 1000
                                    the more the free pages are scattered in
                                    smaller blocks, towards 0 when they are
                                    simply few; 0 when nothing is free       */
    unsigned long long shrink_events; /* regions given back to the OS       */
    size_t quarantined_pages;    /* freed, held back before reuse          */
    size_t page_size;
};

/* A call site recorded by the seed's macro: file, line and function. */
struct labyrinth_site {
    const char *file;
    const char *func;
    unsigned    line;
#if defined(__KERNEL__)
    struct module *module; /* the module holding this site (THIS_MODULE),
                              NULL in the kernel image: labyrinth.ko pins
                              it while a zone it did not create keeps a
                              record of the site (issue 17.3)             */
#endif
};
#if defined(__KERNEL__)
#define LABYRINTH_SITE_MODULE_ , THIS_MODULE
#else
#define LABYRINTH_SITE_MODULE_
#endif

enum labyrinth_page_state {
    LABYRINTH_PAGE_NOT_A_BLOCK = 0, /* interior page of a block            */
    LABYRINTH_PAGE_FREE,            /* in the buddy's free areas           */
    LABYRINTH_PAGE_IN_USE,          /* allocated                           */
    LABYRINTH_PAGE_CACHED,          /* free, in a magazine or the zeroed
                                       stock                              */
    LABYRINTH_PAGE_RESERVED         /* free, in the atomic reserve         */
};

/* What labyrinth_page_info() reads back. */
struct labyrinth_page_info {
    void    *block;        /* start of the block holding the address      */
    unsigned order;
    enum labyrinth_page_state state;
    int      tracked;      /* 1 when a tracking record describes the
                              current allocation                          */
    const void *caller;    /* code address of the allocating call, or NULL */
    const struct labyrinth_site *site; /* set by the seed's macro, or NULL */
    uint64_t alloc_ns;     /* when, in ns since the zone was created.  In a
                              zone with a warden this is the warden's
                              clock, advanced at each of its runs: up to
                              warden_interval_us (default 10 ms) early, more
                              while the warden is not scheduled; never ahead
                              of the real time, never going back.  Without
                              a warden: the cycle counter (exact).        */
    uint32_t thread;       /* labyrinth_thread_id() of the allocating
                              thread, all 32 bits                         */
    uint32_t tag;          /* from labyrinth_register_page_tag(), else 0    */
    unsigned region;       /* index of the region holding the page         */
};

/* ------------------------------------------------------------------------
 * Misuse reports.
 * ---------------------------------------------------------------------- */
enum labyrinth_report_kind {
    LABYRINTH_REPORT_BAD_FREE = 1, /* a free refused (err says why)          */
    LABYRINTH_REPORT_BAD_ARGS,     /* an allocation/register with bad args   */
    LABYRINTH_REPORT_CL_ALIGN,     /* QUALITY_CL_ALIGN assertion failed      */
    LABYRINTH_REPORT_USE_AFTER_FREE, /* ZONE_VERIFY found a freed page written */
    LABYRINTH_REPORT_LEAK,         /* at destroy: a page still in use        */
    LABYRINTH_REPORT_NOTICE        /* information, not misuse (e.g. a zone
                                      that could not lock its pages)        */
};

struct labyrinth_report {
    enum labyrinth_report_kind kind;
    int         err;        /* negative errno for BAD_FREE/BAD_ARGS, else 0 */
    const char *zone_name;
    const void *addr;       /* the address concerned, or NULL              */
    unsigned    order;
    size_t      offset;     /* USE_AFTER_FREE: first bad byte in the block */
    const void *caller;     /* code that made the call (or allocated, for
                               LEAK and USE_AFTER_FREE), or NULL           */
    const struct labyrinth_site *site; /* for LEAK/USE_AFTER_FREE when the
                                          seed's macro recorded one       */
    uint32_t    thread;     /* LEAK: allocating thread (its
                               labyrinth_thread_id(), as page_info)       */
    const char *message;    /* one line, no newline                        */
};

/* Called once per report, from the context that found the misuse (maybe a
 * signal handler): it must be async-signal-safe.  The report and its strings
 * live only during the call. */
typedef void labyrinth_report_fn(const struct labyrinth_report *report, void *arg);

/* ------------------------------------------------------------------------
 * Functions.
 * ---------------------------------------------------------------------- */

/* Create a zone.  cfg NULL or all-zero means defaults.
 * Returns the zone, or NULL with errno.  A refusal also writes one line
 * through the default report handler (there is no zone, so no handler of
 * the caller's yet) naming the field, its value and the allowed range,
 * e.g. "quarantine_pages 4096 must be at most 15 (...)".
 *   EINVAL  a field out of range (unknown flag or quality bits, max_order
 *           above LABYRINTH_MAX_ORDER_LIMIT, watermarks out of order
 *           reserve <= low <= high <= pages, max_pages below pages,
 *           memory without memory_bytes or memory_bytes without memory,
 *           memory + memory_bytes past the end of the address space,
 *           pages above what memory holds, memory with max_pages other
 *           than pages (no growth), quality TRACK with ZONE_NO_TRACKING,
 *           memory with ZONE_MUST_LOCK, magazine_pages above 256,
 *           max_threads above 4096, quarantine_pages above a quarter of
 *           pages - reserve_pages or above 4096, a name with a
 *           control character or '/')
 *   EEXIST  memory overlaps the caller memory or the pages of a live
 *           zone (the same buffer twice included): the new zone's
 *           metadata would be written over pages the other hands out.
 *           Adjacent buffers are fine, and so is memory inside one block
 *           allocated from a zone (a zone nested in a block: the block is
 *           its caller's, and freeing it while the nested zone lives is
 *           a use after free); the memory is free for a new zone once its
 *           zone is destroyed.
 *   ENOMEM  mapping or metadata failed, or memory too small for metadata
 *           plus one page, or ZONE_MUST_LOCK or ZONE_DMA and the pages
 *           could not be locked for want of memory
 *   EPERM   ZONE_DMA without the right to read physical addresses, or
 *           ZONE_MUST_LOCK or ZONE_DMA and the pages could not be locked
 *           for the memlock limit (RLIMIT_MEMLOCK without CAP_IPC_LOCK)
 *   EIO     ZONE_DMA and /proc/self/pagemap could not be read
 *   EAGAIN  the warden thread could not be started
 *   ENOSPC  too many live zones (see docs/design.md, "Limits")
 * Caller memory must be readable and writable for memory_bytes: creation
 * writes the metadata and touches every page without an OS call, so
 * read-only or unmapped memory faults (SIGSEGV) there, as memset would.
 * Memory beyond one region (2^24 - 1 pages with the alignment hole, 64 GiB
 * of 4 KiB pages) is left unused: pages = 0 takes what one region holds.
 * ZONE_DMA over caller memory: the pages are touched, locked (mlock; the
 * lock stays after destroy) and their physical addresses read, so such a
 * zone makes those OS calls at creation.
 * The zone is this process's: in the child of a fork() it is refused
 * (EBADF, "FORK" at the top of this header), and the child makes its own. */
LABYRINTH_API struct labyrinth_zone *labyrinth_zone_create(const struct labyrinth_zone_config *cfg);
#if defined(__KERNEL__)
/* A kernel module's labyrinth_zone_create names the module (THIS_MODULE),
 * whose own seed-macro sites the zone then does not pin: it destroys its
 * zones before it unloads (issue 17.3, docs/kernel.md). */
LABYRINTH_API struct labyrinth_zone *labyrinth_zone_create_owned(const struct labyrinth_zone_config *cfg,
                                                                 struct module *owner);
#define labyrinth_zone_create(cfg) labyrinth_zone_create_owned((cfg), THIS_MODULE)
#endif

/* Destroy a zone: stops its warden, reports every page still in use as a
 * LABYRINTH_REPORT_LEAK (tracked ones with their call sites), and returns
 * all its memory.  No other thread may use the zone during or after the
 * call.  NULL is a no-op.  In the child of a fork(), a zone inherited from
 * the parent is released at once, without a report ("FORK" above). */
LABYRINTH_API void labyrinth_zone_destroy(struct labyrinth_zone *zone);

/* Allocate 2^order pages, naturally aligned, with quality flags added to
 * the zone's own.  gfp is LABYRINTH_GFP_ATOMIC, _NOWAIT, _KERNEL or a valid
 * combination of LABYRINTH_GFP_BIT_*.  Returns the block or NULL.
 * NULL with errno (whenever gfp has the SLEEP bit; ATOMIC and NOWAIT leave
 * errno alone):
 *   EINVAL     unknown gfp or quality bits, or order > the zone's max_order
 *              (also a BAD_ARGS report)
 *   ENOMEM     the zone had to grow and the OS refused the memory
 *   ETIMEDOUT  waited the zone's wait_timeout_ms without a block (also when
 *              the zone is at max_pages and nothing was freed in time)
 * A KERNEL request for order > 0 that finds no block first gives the
 * depot's cached pages back to the buddy, where they coalesce, and the
 * warden stops refilling the depot while KERNEL callers wait.
 *   EOPNOTSUPP QUALITY_TRACK in a ZONE_NO_TRACKING zone (also a report)
 *   EBADF      zone is NULL or not a live zone */
LABYRINTH_API void *labyrinth_alloc_pages(struct labyrinth_zone *zone, unsigned gfp,
                            unsigned order, unsigned quality);

/* Free a block.  NULL is a no-op returning 0.  Any thread, any context.
 * Returns 0, or (nothing changed, a BAD_FREE report made):
 *   -EFAULT, -EXDEV, -EINVAL, -ENXIO, -EALREADY, -ERANGE, -EBADF, -EBUSY
 *   (see ERRORS at the top).  In a ZONE_VERIFY zone the freed block is
 *   poisoned before it is cached. */
LABYRINTH_API int labyrinth_free_pages(struct labyrinth_zone *zone, void *addr, unsigned order);

/* Register an allocated block in the zone's tracking table: records the
 * caller's code address, the time and the calling thread, replacing any
 * earlier record of the block.  Any context.  Register a block you hold:
 * a register racing another thread's free of the block and its next
 * allocation may land on that allocation's record (its time and tag then
 * the register's, which may be earlier than the allocation's, and its
 * thread id may mix the two callers' ids: the low 15 bits of one, the
 * rest of the other; the site or caller pointer is never wild).
 * Returns 0, or -EFAULT, -EXDEV, -EINVAL, -ENXIO, -EBADF as a free would,
 *   -ENOENT      the block is not allocated
 *   -EOPNOTSUPP  the zone has no tracking table (ZONE_NO_TRACKING) */
LABYRINTH_API int labyrinth_register_page(struct labyrinth_zone *zone, void *page);

/* As labyrinth_register_page, with a caller-chosen tag (low 24 bits kept). */
LABYRINTH_API int labyrinth_register_page_tag(struct labyrinth_zone *zone, void *page, uint32_t tag);

/* Read back what the zone knows of the page holding addr (any page of a
 * block).  Any context.
 * Returns 0, or -EFAULT, -EXDEV, -EBADF, or -EINVAL (out is NULL). */
LABYRINTH_API int labyrinth_page_info(struct labyrinth_zone *zone, const void *addr,
                        struct labyrinth_page_info *out);

/* One region of a zone: a separately mapped span of pages (the labyrinth's
 * rooms).  Region 0 is the zone's first; KERNEL allocations and the warden
 * add more (up to max_pages), labyrinth_zone_shrink gives idle ones back. */
struct labyrinth_region_info {
    void    *start;            /* first page                                */
    size_t   pages;
    size_t   free_pages;       /* in the buddy's free areas of this region  */
    size_t   largest_free_order; /* -1 cast to size_t: none free            */
    size_t   huge_page_bytes;  /* explicit huge pages backing it, or 0       */
    int      transparent_huge; /* transparent huge pages were asked for      */
    int      locked;           /* mlock succeeded                           */
    int      caller_memory;    /* the zone's caller-supplied memory          */
    int      released;         /* given back to the OS by a shrink          */
    uint64_t first_phys;       /* DMA zones: physical address of start      */
    size_t   phys_runs;        /* DMA zones: physically contiguous runs     */
};

/* Describe region index (0 .. stats.regions - 1).  Normal context.
 * Returns 0, or -EBADF, -EINVAL (out is NULL), -ENOENT (no such region),
 * -EDEADLK (kernel: not normal context). */
LABYRINTH_API int labyrinth_zone_region_info(struct labyrinth_zone *zone, unsigned index,
                                             struct labyrinth_region_info *out);

/* Give every idle region (all of its pages free in the buddy) except the
 * first back to the OS.  Pages cached in magazines are first returned to
 * the buddy (the depot; thread caches stay).  Normal context.  Returns the
 * pages released, or -EBADF, -EDEADLK (kernel: not normal context). */
LABYRINTH_API long labyrinth_zone_shrink(struct labyrinth_zone *zone);

/* DMA zones, any context.  The zone page holding physical address phys
 * (the byte's virtual address in *addr).  Returns 0, or -ENOENT (no page
 * of this zone), -EOPNOTSUPP (not a DMA zone), -EBADF, -EINVAL. */
LABYRINTH_API int labyrinth_phys_to_virt(struct labyrinth_zone *zone, uint64_t phys, void **addr);

/* DMA zones, any context: 1 when the 2^order pages from block are
 * physically contiguous, 0 when not; or -EFAULT/-EXDEV (not this zone's),
 * -EINVAL (not page-aligned, order > max_order, or the block leaves its
 * region), -EOPNOTSUPP (not a DMA zone), -EBADF. */
LABYRINTH_API int labyrinth_phys_contiguous(struct labyrinth_zone *zone, const void *block, unsigned order);

/* (In C++, the struct types labyrinth_zone_stats and labyrinth_page_info
 * share their names with functions: write `struct labyrinth_zone_stats`.) */

/* Fill *out.  Counters are read without stopping other threads, so a
 * snapshot taken while others allocate is approximate; it is exact when
 * the zone is quiescent.  Normal context.  Returns 0, -EBADF, -EINVAL (out
 * is NULL), or -EDEADLK (kernel: not normal context). */
LABYRINTH_API int labyrinth_zone_stats(struct labyrinth_zone *zone, struct labyrinth_zone_stats *out);

/* Count violated invariants (0 = healthy): conservation (free + cached +
 * reserved + in use == total), buddy lists against descriptors, magazine
 * and reserve contents, block alignment, coalescing.  Call it when the zone
 * is quiescent (no other thread allocating or freeing; the call itself
 * keeps the warden out): pages moving between threads make counts race.
 * Returns the count, or -EBADF, or -ENOMEM (no memory for its page map),
 * or -EDEADLK (kernel: not normal context). */
LABYRINTH_API long labyrinth_zone_check(struct labyrinth_zone *zone);

/* The zeroed stock (docs/design.md, "The zeroed stock").  A zone with a
 * warden keeps a stock of order-0 pages the warden has cleared in the
 * background; an order-0 ZERO allocation (labyrinth_alloc_pages with
 * LABYRINTH_QUALITY_ZERO, the seed's macro with it, or any allocation of a
 * zone whose quality has it) takes one when there is one, with no memset,
 * and otherwise clears its page itself.  The stock is free memory: its
 * pages are in cached_pages, and any order-0 request that finds nothing
 * else takes them.  Its target starts at 0 (nothing is cleared in a zone
 * that never asks for ZERO), doubles from a magazine's worth after each
 * warden run that follows a miss, up to max_pages (the zone's
 * reserve_target_pages; 0 in a zone without a warden, which has no stock),
 * and halves after 64 warden runs without ZERO demand. */
struct labyrinth_zero_stock_stats {
    unsigned long long hits;     /* ZERO allocations served from the stock  */
    unsigned long long misses;   /* ZERO order-0 allocations that found it
                                    empty (the page was cleared in the call) */
    unsigned long long cleared_pages; /* pages the warden has cleared      */
    size_t stock_pages;          /* in the stock now (part of cached_pages) */
    size_t target_pages;         /* what the warden keeps in it now        */
    size_t max_pages;            /* the target's bound                      */
};

/* Fill *out with the zone's zeroed stock figures: hit rate =
 * hits / (hits + misses).  A snapshot of relaxed counters, any context
 * (no lock, no system call).  Returns 0, or
 *   -EBADF   zone is NULL or not a live zone (also a report)
 *   -EINVAL  out is NULL */
LABYRINTH_API int labyrinth_zone_zero_stock(struct labyrinth_zone *zone, struct labyrinth_zero_stock_stats *out);

/* Physical address of addr (any byte of a zone page).  O(1) and safe in any
 * context for LABYRINTH_ZONE_DMA zones (a table read at creation).
 * Returns 0, or -EFAULT/-EXDEV (not a page of this zone), -EBADF,
 * -EINVAL (phys is NULL), -EOPNOTSUPP (not a DMA zone). */
LABYRINTH_API int labyrinth_virt_to_phys(struct labyrinth_zone *zone, const void *addr, uint64_t *phys);

/* Set the zone's report handler; NULL restores the default (one line on
 * stderr: zone, address, reason).  Any thread, any context (lock-free:
 * neither a report nor another change waits for a change under way); a
 * report always gets the handler together with its own arg, the one set
 * before the report or the one being set, and never the default handler
 * while one of the caller's is set, however the changes interleave (a
 * signal handler's changes inside a change or a report included), unless
 * 1024 changes are published while that one report reads the handler (its
 * tries are bounded, and each fails only when a change was published
 * during it: a signal handler changing the handler at every instruction
 * of a report, as a single-stepping test can).  The handler's code
 * and arg must stay valid until the zone is destroyed (a report may still
 * be running an old handler when a new one is set): user space, do not
 * unload the library holding them first.  A kernel module that sets a
 * handler on a zone it did not create is pinned (its unload refused,
 * -EBUSY) until that zone is destroyed, as its seed-macro sites are.
 * Returns 0, or
 *   -EBADF   zone is NULL or not a live zone
 *   -EBUSY   7 other changes of this zone's handler are under way at once
 *            (stalled in signal handlers or preempted threads) and hold
 *            every free slot; a NOTICE report says so; nothing changed
 *   kernel only, with a report (the handler stays as it was):
 *   -EAGAIN  the calling module is still in its __init (a failed init
 *            frees it whatever its count): set it once the module is live
 *   -ENOENT  the calling module is unloading
 *   -ENOSPC  the zone already pins 8 other modules (sites and handlers) */
LABYRINTH_API int labyrinth_zone_set_report_handler(struct labyrinth_zone *zone,
                                      labyrinth_report_fn *fn, void *arg);
#if defined(__KERNEL__)
/* The module setting the handler (THIS_MODULE), through the macro. */
LABYRINTH_API int labyrinth_zone_set_report_handler_owned(struct labyrinth_zone *zone, labyrinth_report_fn *fn,
                                                          void *arg, struct module *owner);
#define labyrinth_zone_set_report_handler(zone, fn, arg) \
    labyrinth_zone_set_report_handler_owned((zone), (fn), (arg), THIS_MODULE)
#endif

/* Return the calling thread's cached pages in this zone to the zone and
 * release its cache (a thread does this at exit by itself).  Normal thread
 * context.  Returns 0, or -EBADF, -EDEADLK (kernel: not normal context). */
LABYRINTH_API int labyrinth_thread_release(struct labyrinth_zone *zone);

/* Call fn for every block still in use, in address order, with what
 * labyrinth_page_info would say of it; stops early when fn returns
 * non-zero.  Pages freed and queued back to their owner are not in use.
 * Normal thread context, quiescent zone.  Returns the number of blocks
 * visited, or -EBADF, or -ENOMEM, or -EDEADLK (kernel: not normal context). */
LABYRINTH_API long labyrinth_zone_for_each_in_use(struct labyrinth_zone *zone,
                                    int (*fn)(const struct labyrinth_page_info *info, void *arg),
                                    void *arg);

/* The zone's name and page size; the library's page size. */
LABYRINTH_API const char *labyrinth_zone_name(const struct labyrinth_zone *zone);
LABYRINTH_API size_t labyrinth_page_size(void);

/* This thread's number as recorded in tracking records (1, 2, ...). */
LABYRINTH_API uint32_t labyrinth_thread_id(void);

/* A sentence for any errno this API returns (positive or negative). */
LABYRINTH_API const char *labyrinth_strerror(int err);

/* Used by the seed's macro: an order-0 ATOMIC allocation with quality,
 * registered with the given site.  Prefer the macro. */
LABYRINTH_API void *labyrinth_alloc_page_atomic_site(struct labyrinth_zone *zone, unsigned quality,
                                       const struct labyrinth_site *site);

/* ------------------------------------------------------------------------
 * The seed's macro: one expression, an order-0 LABYRINTH_GFP_ATOMIC
 * allocation from zone with quality_flags applied, the page registered in
 * the zone's tracking table as labyrinth_register_page does (with the file,
 * line and function of the call), evaluating to the page or NULL.
 * In a ZONE_NO_TRACKING zone the page is still returned, unregistered.
 * ---------------------------------------------------------------------- */
#if defined(__GNUC__)
#define labyrinth_void_allocpage_gfpatomic_extra_quality(zone, quality_flags)          \
    __extension__({                                                                 \
        static const struct labyrinth_site labyrinth_site_here_ = {                 \
            __FILE__, __func__, __LINE__ LABYRINTH_SITE_MODULE_};                   \
        labyrinth_alloc_page_atomic_site((zone), (quality_flags),                   \
                                         &labyrinth_site_here_);                    \
    })
#else
#define labyrinth_void_allocpage_gfpatomic_extra_quality(zone, quality_flags)          \
    labyrinth_alloc_page_atomic_site((zone), (quality_flags), NULL)
#endif

#ifdef __cplusplus
}
#endif

#endif /* LABYRINTH_H */
