// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * labyrinth_selftest.c - the self-test of labyrinth.ko, run at insmod:
 *
 *   insmod labyrinth_selftest.ko [seconds=3] [bench=1]
 *
 * 1. quality   every quality flag (ZERO, POISON, both, CL_ALIGN, TRACK with
 *              the seed macro's site, a zone-wide quality, VERIFY's
 *              use-after-free check), contents checked
 * 2. misuse    every kind of misuse, each refused with its errno and
 *              reported once (the report handler counts them), none
 *              crashing, from process and hard-IRQ context; a leak found
 *              at destroy.  (A failed CL_ALIGN assertion cannot be caused
 *              through the API - blocks are page-aligned - and STRICT
 *              zones BUG() by design: the user-space unit tests cover
 *              both, on the same code.)
 * 3. stress    for `seconds`: on every CPU a hard-IRQ hrtimer and a
 *              softirq hrtimer allocate with the seed's macro (rotating
 *              quality flags), NMIs sent to self allocate too, kernel
 *              threads on every CPU allocate and free in a loop (so the
 *              interrupts land inside labyrinth calls: nested levels) and
 *              free what the interrupts allocated (frees from other
 *              contexts and CPUs), while the warden refills; every page's
 *              contents are checked, no page may be handed out twice
 * 4. check     labyrinth_zone_check() == 0, nothing in use, counters agree
 *    hotplug   a CPU taken offline with pages out and its magazines loaded:
 *              every page comes back to the others; online again, it
 *              allocates (issue 17.5)
 *    reports   the default handler's limits per zone and kind: one
 *              zone's flood does not starve another's lines, 30 leaks
 *              and their summary are all printed (issue 17.9)
 * 5. bench     cycles per alloc+free pair: labyrinth ATOMIC, the seed
 *              macro, alloc_pages(GFP_ATOMIC, 0) + __free_pages, and
 *              (CONFIG_PAGE_POOL) the kernel's page_pool, its fast path
 *              and its ptr_ring path, with the ratios
 *
 * It prints "labyrinth_selftest: PASS ..." or "labyrinth_selftest: FAIL ..."
 * with its counts; insmod fails (-EIO) on FAIL.
 */
#include <linux/atomic.h>
#include <linux/cpu.h>
#include <linux/ctype.h>
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/hardirq.h>
#include <linux/hrtimer.h>
#include <linux/kasan.h>
#include <linux/kmsg_dump.h>
#include <linux/kthread.h>
#include <linux/llist.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/module.h>
#include <linux/random.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/timex.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>
#if IS_ENABLED(CONFIG_PAGE_POOL)
#include <net/page_pool.h>
#endif
#ifdef CONFIG_X86
#include <asm/apic.h>
#include <asm/nmi.h>
#endif

#include <labyrinth.h>

static int seconds = 3;
module_param(seconds, int, 0444);
MODULE_PARM_DESC(seconds, "length of the interrupt stress phase (s)");
static int bench = 1;
module_param(bench, int, 0444);
MODULE_PARM_DESC(bench, "run the cycles-per-pair benchmark");

/* Exported by labyrinth.ko for tests: this CPU's nesting depth. */
unsigned int labyrinth_kmod_depth(void);

#define ST "labyrinth_selftest: "

static atomic_t st_errors = ATOMIC_INIT(0);
#define ST_FAIL(fmt, ...)                                                  \
	do {                                                               \
		atomic_inc(&st_errors);                                    \
		pr_err(ST "FAIL: " fmt "\n", ##__VA_ARGS__);               \
	} while (0)
#define ST_EXPECT(cond, fmt, ...)                                          \
	do {                                                               \
		if (!(cond))                                               \
			ST_FAIL("%s: " fmt, #cond, ##__VA_ARGS__);         \
	} while (0)

/* ---- reports: counted by kind and errno ------------------------------ */

struct st_reports {
	atomic_t kind[LABYRINTH_REPORT_NOTICE + 1];
	atomic_t err[9]; /* EFAULT EXDEV EINVAL ENXIO EALREADY ERANGE ENOENT EOPNOTSUPP EDEADLK */
	atomic_t total;
};
static struct st_reports st_rep;

static int st_err_slot(int err)
{
	switch (-err) {
	case EFAULT: return 0;
	case EXDEV: return 1;
	case EINVAL: return 2;
	case ENXIO: return 3;
	case EALREADY: return 4;
	case ERANGE: return 5;
	case ENOENT: return 6;
	case EOPNOTSUPP: return 7;
	case EDEADLK: return 8;
	default: return -1;
	}
}

/* Any context: atomics only. */
static void st_report(const struct labyrinth_report *r, void *arg)
{
	struct st_reports *c = arg;
	int s = st_err_slot(r->err);

	if (r->kind >= 1 && r->kind <= LABYRINTH_REPORT_NOTICE)
		atomic_inc(&c->kind[r->kind]);
	if (s >= 0)
		atomic_inc(&c->err[s]);
	atomic_inc(&c->total);
}

static struct labyrinth_zone *st_zone(const char *name, size_t pages, unsigned int max_order,
				      unsigned int flags, unsigned int quality)
{
	struct labyrinth_zone_config cfg = {
		.name = name, .pages = pages, .max_order = max_order,
		.flags = flags, .quality = quality, .poison_pattern = 0x5a,
	};
	struct labyrinth_zone *z = labyrinth_zone_create(&cfg);

	if (!z)
		ST_FAIL("zone '%s' (%zu pages) could not be created", name, pages);
	else
		labyrinth_zone_set_report_handler(z, st_report, &st_rep);
	return z;
}

/* KASAN looks away from an intended bad access (no KASAN: nothing). */
static void st_kasan_off(void) { kasan_disable_current(); }
static void st_kasan_on(void) { kasan_enable_current(); }

static bool st_all(const void *p, size_t n, unsigned char v)
{
	const unsigned char *c = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (c[i] != v)
			return false;
	return true;
}

/* ---- 1. quality ------------------------------------------------------- */

static unsigned long st_quality_checks;

static void st_quality(void)
{
	struct labyrinth_zone *z = st_zone("st-quality", 256, 4, 0, 0), *zz, *zv;
	struct labyrinth_page_info info;
	struct labyrinth_zone_stats s;
	void *p, *q;
	unsigned int line;

	if (!z)
		return;
	/* A dirty page goes back and comes out again: ZERO must clear it. */
	p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
	ST_EXPECT(p, "ATOMIC allocation");
	if (!p)
		goto out;
	memset(p, 0xee, PAGE_SIZE);
	labyrinth_free_pages(z, p, 0);
	q = labyrinth_void_allocpage_gfpatomic_extra_quality(z, LABYRINTH_QUALITY_ZERO);
	ST_EXPECT(q == p, "LIFO: the page just freed comes back (%p, %p)", p, q);
	ST_EXPECT(q && st_all(q, PAGE_SIZE, 0), "ZERO: the page reads as zeros");
	labyrinth_free_pages(z, q, 0);
	q = labyrinth_void_allocpage_gfpatomic_extra_quality(z, LABYRINTH_QUALITY_POISON);
	ST_EXPECT(q && st_all(q, PAGE_SIZE, 0x5a), "POISON: the page holds the zone's pattern");
	labyrinth_free_pages(z, q, 0);
	q = labyrinth_void_allocpage_gfpatomic_extra_quality(z, LABYRINTH_QUALITY_POISON |
							     LABYRINTH_QUALITY_ZERO);
	ST_EXPECT(q && st_all(q, PAGE_SIZE, 0), "POISON|ZERO: zeros win");
	labyrinth_free_pages(z, q, 0);
	q = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 2, LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_CL_ALIGN);
	ST_EXPECT(q && st_all(q, PAGE_SIZE << 2, 0) && IS_ALIGNED((unsigned long)q, PAGE_SIZE << 2),
		  "order 2, ZERO|CL_ALIGN: zeros, naturally aligned");
	labyrinth_free_pages(z, q, 2);
	/* TRACK through the seed's macro: the site is this line, the CPU. */
	line = __LINE__ + 1;
	q = labyrinth_void_allocpage_gfpatomic_extra_quality(z, LABYRINTH_QUALITY_CL_ALIGN);
	ST_EXPECT(q && labyrinth_page_info(z, q, &info) == 0 && info.tracked && info.site &&
		  info.site->line == line && info.state == LABYRINTH_PAGE_IN_USE &&
		  info.thread >= 1 && info.thread <= nr_cpu_ids,
		  "the macro's tracking record: site %s:%u, cpu %u", info.site ? info.site->file : "-",
		  info.site ? info.site->line : 0, info.thread);
	ST_EXPECT(labyrinth_register_page_tag(z, q, 0xabcde) == 0 && labyrinth_page_info(z, q, &info) == 0 &&
		  info.tag == 0xabcde && info.caller, "register_page_tag: tag 0x%x", info.tag);
	labyrinth_free_pages(z, q, 0);
	q = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 1, LABYRINTH_QUALITY_TRACK);
	ST_EXPECT(q && labyrinth_page_info(z, (char *)q + PAGE_SIZE, &info) == 0 && info.tracked &&
		  info.block == q && info.order == 1, "TRACK on an order-1 block, read from its second page");
	labyrinth_free_pages(z, q, 1);
	labyrinth_zone_stats(z, &s);
	ST_EXPECT(s.misuse_reports == 0, "no misuse reported (%llu)", s.misuse_reports);
	st_quality_checks += 8;

	/* A zone-wide quality: every allocation is zeroed. */
	zz = st_zone("st-zero", 64, 2, 0, LABYRINTH_QUALITY_ZERO);
	if (zz) {
		p = labyrinth_alloc_pages(zz, LABYRINTH_GFP_KERNEL, 0, 0);
		if (p) {
			memset(p, 0x11, PAGE_SIZE);
			labyrinth_free_pages(zz, p, 0);
		}
		q = labyrinth_alloc_pages(zz, LABYRINTH_GFP_KERNEL, 0, 0);
		ST_EXPECT(q && st_all(q, PAGE_SIZE, 0), "the zone's quality ZERO");
		labyrinth_free_pages(zz, q, 0);
		ST_EXPECT(labyrinth_zone_check(zz) == 0, "check of the ZERO zone");
		labyrinth_zone_destroy(zz);
		st_quality_checks += 2;
	}
	/* VERIFY: a write to a freed page is found when it is handed out. */
	zv = st_zone("st-verify", 64, 2, LABYRINTH_ZONE_VERIFY | LABYRINTH_ZONE_NO_WARDEN, 0);
	if (zv) {
		int uaf = atomic_read(&st_rep.kind[LABYRINTH_REPORT_USE_AFTER_FREE]);

		p = labyrinth_alloc_pages(zv, LABYRINTH_GFP_ATOMIC, 0, 0);
		ST_EXPECT(p && st_all(p, PAGE_SIZE, 0x5a), "VERIFY: a free page holds the poison");
		if (p) {
			labyrinth_free_pages(zv, p, 0);
			/* The use after free (zone memory: harmless).  Under KASAN
			 * the freed page's shadow says so (src/lb_annotate.h):
			 * this case tests VERIFY's own finding, so KASAN looks away. */
			st_kasan_off();
			((volatile char *)p)[100] = 1;
			st_kasan_on();
			q = labyrinth_alloc_pages(zv, LABYRINTH_GFP_ATOMIC, 0, 0);
			ST_EXPECT(q == p, "VERIFY: LIFO");
			ST_EXPECT(atomic_read(&st_rep.kind[LABYRINTH_REPORT_USE_AFTER_FREE]) == uaf + 1,
				  "VERIFY: the write after free is reported once");
			labyrinth_free_pages(zv, q, 0);
		}
		ST_EXPECT(labyrinth_zone_check(zv) == 0, "check of the VERIFY zone");
		labyrinth_zone_destroy(zv);
		st_quality_checks += 4;
	}
#ifdef CONFIG_KASAN_GENERIC
	/* KASAN sees labyrinth's pages (issue 17, deliver 2): a page freed to
	 * the zone has the page allocator's "freed page" shadow, a page handed
	 * out an accessible one, an order-2 block all four pages. */
	{
		void *a = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
		void *b = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 2, 0);

		ST_EXPECT(a && b, "KASAN: two blocks");
		if (a && b) {
			ST_EXPECT(*(u8 *)kasan_mem_to_shadow(a) == 0 &&
				  *(u8 *)kasan_mem_to_shadow((char *)a + PAGE_SIZE - 8) == 0,
				  "KASAN: a page handed out is accessible");
			ST_EXPECT(*(u8 *)kasan_mem_to_shadow((char *)b + 3 * PAGE_SIZE) == 0,
				  "KASAN: an order-2 block is accessible to its end");
			labyrinth_free_pages(z, a, 0);
			labyrinth_free_pages(z, b, 2);
			ST_EXPECT(*(u8 *)kasan_mem_to_shadow(a) == 0xff &&
				  *(u8 *)kasan_mem_to_shadow((char *)a + PAGE_SIZE - 8) == 0xff,
				  "KASAN: a freed page is poisoned (KASAN_PAGE_FREE)");
			ST_EXPECT(*(u8 *)kasan_mem_to_shadow((char *)b + 3 * PAGE_SIZE) == 0xff,
				  "KASAN: a freed order-2 block is poisoned to its end");
			a = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
			ST_EXPECT(a && *(u8 *)kasan_mem_to_shadow(a) == 0,
				  "KASAN: handed out again, accessible again");
			if (a)
				labyrinth_free_pages(z, a, 0);
		}
		st_quality_checks += 5;
		pr_info(ST "KASAN: labyrinth's pages carry the page allocator's shadow (freed 0xff, handed out 0)\n");
	}
#endif
	ST_EXPECT(labyrinth_zone_check(z) == 0, "check of the quality zone");
out:
	labyrinth_zone_destroy(z);
}

/* Lines of the kernel log that contain a (and b, unless NULL). */
static unsigned long st_log_count(const char *a, const char *b)
{
	struct kmsg_dump_iter it;
	unsigned long n = 0;
	size_t len;
	char *line = kmalloc(1024, GFP_KERNEL);

	if (!line)
		return 0;
	kmsg_dump_rewind(&it);
	while (kmsg_dump_get_line(&it, false, line, 1023, &len)) {
		line[len] = 0;
		if (strstr(line, a) && (!b || strstr(line, b)))
			n++;
	}
	kfree(line);
	return n;
}

/* ---- 2. misuse -------------------------------------------------------- */

static unsigned long st_misuse_cases;

struct st_irq_misuse {
	struct hrtimer t;
	struct labyrinth_zone *z;
	void *kernel_page; /* what a KERNEL allocation from hard IRQ returned */
	int double_free_rc;
	void *page;
	/* Normal-context calls from hard IRQ: each refused (issue 17.7). */
	struct labyrinth_zone *victim; /* a zone the IRQ tries to destroy */
	struct labyrinth_zone *dead; /* a destroyed zone's handle, destroyed again */
	struct labyrinth_zone *created; /* what zone_create returned in the IRQ */
	int release_rc, region_rc, stats_rc;
	long shrink_rc, each_rc, check_rc;
	bool in_irq, done;
};

static enum hrtimer_restart st_misuse_irq(struct hrtimer *t)
{
	struct st_irq_misuse *m = container_of(t, struct st_irq_misuse, t);

	m->in_irq = in_hardirq();
	/* A mode that may sleep, from hard IRQ: refused, reported. */
	m->kernel_page = labyrinth_alloc_pages(m->z, LABYRINTH_GFP_KERNEL, 0, 0);
	/* A double free from hard IRQ. */
	m->double_free_rc = labyrinth_free_pages(m->z, m->page, 0);
	/* Normal context only: each may spin for the buddy lock or take a
	 * mutex the interrupted code holds on this CPU (issue 17.7). */
	{
		struct labyrinth_region_info ri;
		struct labyrinth_zone_stats zs;
		struct labyrinth_zone_config cfg = { .name = "st-irq-create", .pages = 64 };

		m->release_rc = labyrinth_thread_release(m->z);
		m->region_rc = labyrinth_zone_region_info(m->z, 0, &ri);
		m->stats_rc = labyrinth_zone_stats(m->z, &zs);
		m->shrink_rc = labyrinth_zone_shrink(m->z);
		m->each_rc = labyrinth_zone_for_each_in_use(m->z, NULL, NULL);
		m->check_rc = labyrinth_zone_check(m->z);
		labyrinth_zone_destroy(m->victim); /* refused: the zone lives on */
		/* A dead handle: refused by context before the fork-inherited
		 * path, which takes a mutex (KB39). */
		labyrinth_zone_destroy(m->dead);
		m->created = labyrinth_zone_create(&cfg);
	}
	smp_store_release(&m->done, true);
	return HRTIMER_NORESTART;
}

#define ST_MISUSE(expr, want, what)                                                   \
	do {                                                                          \
		int before_ = atomic_read(&st_rep.total);                             \
		long rc_ = (long)(expr);                                              \
		st_misuse_cases++;                                                    \
		if (rc_ != (want) || atomic_read(&st_rep.total) != before_ + 1)       \
			ST_FAIL("misuse '%s': returned %ld (want %ld), %d report(s)", \
				what, rc_, (long)(want), atomic_read(&st_rep.total) - before_); \
	} while (0)

static void st_misuse(void)
{
	struct labyrinth_zone *a = st_zone("st-misuse-a", 128, 3, LABYRINTH_ZONE_NO_WARDEN, 0);
	struct labyrinth_zone *b = st_zone("st-misuse-b", 64, 3, LABYRINTH_ZONE_NO_WARDEN, 0);
	struct labyrinth_zone *nt = st_zone("st-misuse-nt", 64, 3,
					    LABYRINTH_ZONE_NO_WARDEN | LABYRINTH_ZONE_NO_TRACKING, 0);
	struct labyrinth_zone_stats s;
	struct st_irq_misuse *m;
	struct page *foreign;
	void *p, *o1, *o2, *pb, *fake;
	unsigned long long misuse0;

	if (!a || !b || !nt)
		goto out;
	p = labyrinth_alloc_pages(a, LABYRINTH_GFP_KERNEL, 0, 0);
	o1 = labyrinth_alloc_pages(a, LABYRINTH_GFP_KERNEL, 1, 0);
	o2 = labyrinth_alloc_pages(a, LABYRINTH_GFP_KERNEL, 2, 0);
	pb = labyrinth_alloc_pages(b, LABYRINTH_GFP_KERNEL, 0, 0);
	foreign = alloc_page(GFP_KERNEL);
	fake = kzalloc(4096, GFP_KERNEL);
	if (!p || !o1 || !o2 || !pb || !foreign || !fake) {
		ST_FAIL("misuse set-up");
		goto out_free;
	}
	labyrinth_zone_stats(a, &s);
	misuse0 = s.misuse_reports;

	ST_MISUSE(labyrinth_free_pages(a, page_address(foreign), 0), -EFAULT, "foreign pointer");
	ST_MISUSE(labyrinth_free_pages(a, pb, 0), -EXDEV, "another zone's page");
	ST_MISUSE(labyrinth_free_pages(a, (char *)p + 8, 0), -EINVAL, "misaligned");
	ST_MISUSE(labyrinth_free_pages(a, (char *)o2 + PAGE_SIZE, 0), -ENXIO, "interior pointer");
	ST_MISUSE(labyrinth_free_pages(a, o1, 0), -ERANGE, "wrong order");
	ST_EXPECT(labyrinth_free_pages(a, p, 0) == 0, "the real free");
	ST_MISUSE(labyrinth_free_pages(a, p, 0), -EALREADY, "double free");
	ST_MISUSE(labyrinth_register_page(a, p), -ENOENT, "register a free page");
	ST_MISUSE(labyrinth_register_page(a, (char *)o2 + PAGE_SIZE), -ENXIO, "register an interior page");
	ST_MISUSE(labyrinth_alloc_pages(a, LABYRINTH_GFP_BIT_SLEEP | LABYRINTH_GFP_BIT_TRYLOCK, 0, 0),
		  0L, "contradictory gfp");
	ST_MISUSE(labyrinth_alloc_pages(a, 0x100, 0, 0), 0L, "unknown gfp bits");
	ST_MISUSE(labyrinth_alloc_pages(a, LABYRINTH_GFP_ATOMIC, 0, 0x100), 0L, "unknown quality bits");
	ST_MISUSE(labyrinth_alloc_pages(a, LABYRINTH_GFP_ATOMIC, 4, 0), 0L, "order above max_order");
	ST_MISUSE(labyrinth_alloc_pages(nt, LABYRINTH_GFP_ATOMIC, 0, LABYRINTH_QUALITY_TRACK), 0L,
		  "TRACK in a zone without tracking");
	/* A KERNEL allocation may sleep: refused inside an RCU read-side
	 * section (Debian's preemptible RCU leaves preempt_count() at 0
	 * there; issue 17.6), on the fast path and the general one, and with
	 * preemption off; each a BAD_ARGS report with EINVAL, and none
	 * sleeps (no voluntary context switch). */
	{
		unsigned long nvcsw = current->nvcsw;
		int einval = atomic_read(&st_rep.err[2]);
		int bad_args = atomic_read(&st_rep.kind[LABYRINTH_REPORT_BAD_ARGS]);

		rcu_read_lock();
		ST_MISUSE(labyrinth_alloc_pages(a, LABYRINTH_GFP_KERNEL, 0, 0), 0L, "KERNEL under rcu_read_lock()");
		ST_MISUSE(labyrinth_alloc_pages(a, LABYRINTH_GFP_KERNEL, 1, LABYRINTH_QUALITY_ZERO), 0L,
			  "KERNEL order 1 + ZERO under rcu_read_lock()");
		rcu_read_unlock();
		preempt_disable();
		ST_MISUSE(labyrinth_alloc_pages(a, LABYRINTH_GFP_KERNEL, 0, 0), 0L, "KERNEL with preemption off");
		preempt_enable();
		ST_EXPECT(current->nvcsw == nvcsw, "KERNEL refused without sleeping (%lu voluntary switches)",
			  current->nvcsw - nvcsw);
		ST_EXPECT(atomic_read(&st_rep.err[2]) == einval + 3 &&
			  atomic_read(&st_rep.kind[LABYRINTH_REPORT_BAD_ARGS]) == bad_args + 3,
			  "KERNEL in atomic context: 3 BAD_ARGS reports with EINVAL (%d, %d)",
			  atomic_read(&st_rep.err[2]) - einval,
			  atomic_read(&st_rep.kind[LABYRINTH_REPORT_BAD_ARGS]) - bad_args);
	}
	labyrinth_zone_stats(a, &s);
	ST_EXPECT(s.misuse_reports == misuse0 + 15, "misuse_reports counts every misuse of zone a (%llu)",
		  s.misuse_reports - misuse0);
	/* Refused without a report: the zone handle itself is bad, or the
	 * call is not misuse. */
	ST_EXPECT(labyrinth_free_pages(NULL, o1, 1) == -EBADF, "NULL zone");
	ST_EXPECT(labyrinth_free_pages((struct labyrinth_zone *)fake, o1, 1) == -EBADF, "not a zone");
	ST_EXPECT(labyrinth_register_page(nt, pb) == -EOPNOTSUPP, "register in a zone without tracking");
	ST_EXPECT(labyrinth_void_allocpage_gfpatomic_extra_quality(NULL, 0) == NULL, "the macro, NULL zone");
	ST_EXPECT(labyrinth_free_pages(a, NULL, 0) == 0, "free(NULL) is a no-op");
	/* Zone names (issue 17 review): '/' gave no debugfs directory,
	 * silently, and a newline forged a second log line: both refused. */
	{
		struct labyrinth_zone_config nc = {.name = "st-eth0/rx", .pages = 16,
						   .flags = LABYRINTH_ZONE_NO_WARDEN};
		struct labyrinth_zone *nz = labyrinth_zone_create(&nc);

		ST_EXPECT(!nz, "a zone name with '/' refused");
		if (nz)
			labyrinth_zone_destroy(nz);
		nc.name = "st-rx\nlabyrinth: forged";
		nz = labyrinth_zone_create(&nc);
		ST_EXPECT(!nz, "a zone name with a newline refused");
		if (nz)
			labyrinth_zone_destroy(nz);
		st_misuse_cases += 2;
	}
	p = labyrinth_void_allocpage_gfpatomic_extra_quality(nt, LABYRINTH_QUALITY_ZERO);
	ST_EXPECT(p, "the macro in a zone without tracking: a page, unregistered");
	if (p)
		labyrinth_free_pages(nt, p, 0);
	st_misuse_cases += 6;

	/* From hard IRQ: KERNEL refused, a double free refused. */
	m = kzalloc(sizeof(*m), GFP_KERNEL);
	if (m) {
		int before = atomic_read(&st_rep.total);
		int deadlk = atomic_read(&st_rep.err[8]);
		unsigned long dead_refused, dead_ebadf;

		m->z = a;
		m->victim = st_zone("st-irq-victim", 64, 2, LABYRINTH_ZONE_NO_WARDEN, 0);
		/* Destroyed now; no zone is created before the IRQ, so its slot
		 * is not reused and the handle stays dead. */
		m->dead = st_zone("st-irq-dead", 64, 2, LABYRINTH_ZONE_NO_WARDEN, 0);
		labyrinth_zone_destroy(m->dead);
		dead_refused = st_log_count("labyrinth: zone '(none)': zone_destroy refused: normal context only", NULL);
		dead_ebadf = st_log_count("labyrinth: zone '(none)': zone_destroy(", "not a live zone");
		m->page = labyrinth_alloc_pages(a, LABYRINTH_GFP_ATOMIC, 0, 0);
		if (m->page)
			labyrinth_free_pages(a, m->page, 0);
		hrtimer_init(&m->t, CLOCK_MONOTONIC, HRTIMER_MODE_REL_HARD);
		m->t.function = st_misuse_irq;
		hrtimer_start(&m->t, ns_to_ktime(100000), HRTIMER_MODE_REL_HARD);
		while (!smp_load_acquire(&m->done))
			msleep(1);
		hrtimer_cancel(&m->t);
		ST_EXPECT(m->in_irq, "the misuse timer ran in hard-IRQ context");
		ST_EXPECT(m->kernel_page == NULL, "KERNEL from hard IRQ refused");
		ST_EXPECT(m->double_free_rc == -EALREADY, "double free from hard IRQ: %d", m->double_free_rc);
		ST_EXPECT(m->release_rc == -EDEADLK && m->region_rc == -EDEADLK && m->stats_rc == -EDEADLK &&
			  m->shrink_rc == -EDEADLK && m->each_rc == -EDEADLK && m->check_rc == -EDEADLK,
			  "normal-context calls from hard IRQ refused with EDEADLK: thread_release %d, region_info %d, stats %d, shrink %ld, for_each_in_use %ld, check %ld",
			  m->release_rc, m->region_rc, m->stats_rc, m->shrink_rc, m->each_rc, m->check_rc);
		ST_EXPECT(m->created == NULL, "zone_create from hard IRQ refused");
		ST_EXPECT(m->victim && labyrinth_zone_name(m->victim) != NULL, "zone_destroy from hard IRQ refused");
		/* The dead handle's destroy: one EDEADLK line from the default
		 * handler (no zone), not the dead-handle path (KB39: it took the
		 * registry mutex in hard IRQ and reported EBADF). */
		dead_refused = st_log_count("labyrinth: zone '(none)': zone_destroy refused: normal context only", NULL) -
			       dead_refused;
		dead_ebadf = st_log_count("labyrinth: zone '(none)': zone_destroy(", "not a live zone") - dead_ebadf;
		ST_EXPECT(m->dead && dead_refused == 1 && dead_ebadf == 0,
			  "zone_destroy of a dead handle from hard IRQ: %lu EDEADLK line(s), %lu EBADF line(s); want 1, 0",
			  dead_refused, dead_ebadf);
		/* KERNEL, the double free, six calls on a, the destroy of victim
		 * (create has no zone: the default handler prints it). */
		ST_EXPECT(atomic_read(&st_rep.total) == before + 9 && atomic_read(&st_rep.err[8]) == deadlk + 7,
			  "nine reports from hard IRQ, seven of them EDEADLK (%d, %d)",
			  atomic_read(&st_rep.total) - before, atomic_read(&st_rep.err[8]) - deadlk);
		pr_info(ST "from hard IRQ: thread_release %d, zone_region_info %d, zone_stats %d, zone_shrink %ld, for_each_in_use %ld, zone_check %ld, zone_create %s, zone_destroy %s, zone_destroy of a dead handle %s\n",
			m->release_rc, m->region_rc, m->stats_rc, m->shrink_rc, m->each_rc, m->check_rc,
			m->created ? "made a zone" : "NULL", labyrinth_zone_name(m->victim) ? "refused" : "destroyed it",
			dead_refused == 1 ? "refused (EDEADLK)" : "not refused");
		if (m->created)
			labyrinth_zone_destroy(m->created);
		labyrinth_zone_destroy(m->victim);
		st_misuse_cases += 11;
		kfree(m);
	}
	labyrinth_free_pages(a, o1, 1);
	labyrinth_free_pages(a, o2, 2);
	labyrinth_free_pages(b, pb, 0);
	/* A leak: a zone destroyed with a tracked page in use reports it (with
	 * the macro's site), and says how much was left. */
	{
		struct labyrinth_zone *lz = st_zone("st-leak", 64, 2, LABYRINTH_ZONE_NO_WARDEN, 0);
		int leaks = atomic_read(&st_rep.kind[LABYRINTH_REPORT_LEAK]);
		int notes = atomic_read(&st_rep.kind[LABYRINTH_REPORT_NOTICE]);

		if (lz) {
			ST_EXPECT(labyrinth_void_allocpage_gfpatomic_extra_quality(lz, 0), "leak set-up");
			labyrinth_zone_destroy(lz);
			ST_EXPECT(atomic_read(&st_rep.kind[LABYRINTH_REPORT_LEAK]) == leaks + 1 &&
				  atomic_read(&st_rep.kind[LABYRINTH_REPORT_NOTICE]) == notes + 1,
				  "destroy reports the leaked page and a summary");
			st_misuse_cases++;
		}
	}
	ST_EXPECT(labyrinth_zone_check(a) == 0 && labyrinth_zone_check(b) == 0 &&
		  labyrinth_zone_check(nt) == 0, "the zones are intact after every misuse");
out_free:
	if (foreign)
		__free_page(foreign);
	kfree(fake);
out:
	labyrinth_zone_destroy(a);
	labyrinth_zone_destroy(b);
	labyrinth_zone_destroy(nt);
}

/* ---- 3. stress -------------------------------------------------------- */

#define ST_LIVE  0x4c495645u /* "LIVE": a page some context holds */
#define ST_FREED 0x46524545u /* "FREE" */

struct st_hdr {
	struct llist_node node;
	u32 magic;
	u32 quality;
	u32 cpu;
	u32 ctx; /* 0 process, 1 softirq, 2 hardirq, 3 NMI */
};

enum { ST_PROC, ST_SOFT, ST_HARD, ST_NMI, ST_CTXS };
static const char *const st_ctx_name[ST_CTXS] = { "process", "softirq", "hardirq", "nmi" };

struct st_cpu {
	struct hrtimer hard, soft;
	struct task_struct *worker;
	unsigned int ticks;
};

static struct {
	struct labyrinth_zone *z;
	struct st_cpu __percpu *cpu;
	struct llist_head handed; /* pages allocated in interrupts, for the workers */
	bool stop;
	bool nmi_armed;
	atomic64_t allocs[ST_CTXS], fails[ST_CTXS], nested[ST_CTXS];
	atomic_t max_depth[ST_CTXS];
	atomic64_t frees, remote, checked, bad_content, twice, wrong_ctx;
	atomic64_t worker_allocs, worker_kernel;
	atomic64_t nmi_sent;
} st;

static const unsigned int st_qualities[] = {
	0, LABYRINTH_QUALITY_ZERO, LABYRINTH_QUALITY_POISON, LABYRINTH_QUALITY_CL_ALIGN,
	LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_CL_ALIGN, LABYRINTH_QUALITY_TRACK,
};

static void st_note_depth(int ctx)
{
	unsigned int d = labyrinth_kmod_depth();
	int old = atomic_read(&st.max_depth[ctx]);

	if (d)
		atomic64_inc(&st.nested[ctx]);
	while ((int)d > old && !atomic_try_cmpxchg(&st.max_depth[ctx], &old, d))
		;
}

/* An interrupt's allocation: the seed's macro, a quality from the
 * rotation, the header written, the page handed to the workers. */
static void st_irq_alloc(int ctx, unsigned int n)
{
	unsigned int q = st_qualities[n % ARRAY_SIZE(st_qualities)];
	struct st_hdr *h;

	st_note_depth(ctx);
	h = labyrinth_void_allocpage_gfpatomic_extra_quality(st.z, q);
	if (!h) {
		atomic64_inc(&st.fails[ctx]);
		return;
	}
	atomic64_inc(&st.allocs[ctx]);
	/* A page still marked LIVE was never freed: handed out twice.  (ZERO
	 * and POISON rewrite the page, so only the others can tell.) */
	if (!(q & (LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_POISON)) && h->magic == ST_LIVE)
		atomic64_inc(&st.twice);
	if ((q & LABYRINTH_QUALITY_ZERO) && !st_all(h, PAGE_SIZE, 0))
		atomic64_inc(&st.bad_content);
	if ((q & (LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_POISON)) == LABYRINTH_QUALITY_POISON &&
	    !st_all(h, PAGE_SIZE, 0x5a))
		atomic64_inc(&st.bad_content);
	h->magic = ST_LIVE;
	h->quality = q;
	h->cpu = smp_processor_id();
	h->ctx = ctx;
	llist_add(&h->node, &st.handed);
}

static enum hrtimer_restart st_hard_fn(struct hrtimer *t)
{
	struct st_cpu *c = container_of(t, struct st_cpu, hard);
	unsigned int i;

	if (!in_hardirq())
		atomic64_inc(&st.wrong_ctx);
	for (i = 0; i < 4; i++)
		st_irq_alloc(ST_HARD, c->ticks++);
#ifdef CONFIG_X86
	/* Now and then an NMI to self: it lands here, or in whatever this
	 * CPU runs next. */
	if ((c->ticks & 63) == 0 && READ_ONCE(st.nmi_armed)) {
		atomic64_inc(&st.nmi_sent);
		apic->send_IPI_self(NMI_VECTOR);
	}
#endif
	if (READ_ONCE(st.stop))
		return HRTIMER_NORESTART;
	hrtimer_forward_now(t, ns_to_ktime(50000));
	return HRTIMER_RESTART;
}

static enum hrtimer_restart st_soft_fn(struct hrtimer *t)
{
	struct st_cpu *c = container_of(t, struct st_cpu, soft);
	unsigned int i;

	if (!in_serving_softirq() || in_hardirq())
		atomic64_inc(&st.wrong_ctx);
	for (i = 0; i < 4; i++)
		st_irq_alloc(ST_SOFT, c->ticks++ + 3);
	if (READ_ONCE(st.stop))
		return HRTIMER_NORESTART;
	hrtimer_forward_now(t, ns_to_ktime(80000));
	return HRTIMER_RESTART;
}

#ifdef CONFIG_X86
static int st_nmi_fn(unsigned int type, struct pt_regs *regs)
{
	static atomic_t n;

	if (!READ_ONCE(st.nmi_armed))
		return NMI_DONE;
	if (!in_nmi())
		atomic64_inc(&st.wrong_ctx);
	st_irq_alloc(ST_NMI, atomic_inc_return(&n));
	return NMI_HANDLED;
}
#endif

/* Check and free a page an interrupt allocated (maybe on another CPU). */
static void st_consume(struct st_hdr *h)
{
	if (h->magic != ST_LIVE || h->ctx >= ST_CTXS || h->cpu >= nr_cpu_ids)
		atomic64_inc(&st.bad_content);
	if ((h->quality & LABYRINTH_QUALITY_ZERO) && !st_all(h + 1, PAGE_SIZE - sizeof(*h), 0))
		atomic64_inc(&st.bad_content);
	if (h->cpu != raw_smp_processor_id())
		atomic64_inc(&st.remote);
	h->magic = ST_FREED;
	atomic64_inc(&st.checked);
	if (labyrinth_free_pages(st.z, h, 0) == 0)
		atomic64_inc(&st.frees);
	else
		atomic64_inc(&st.bad_content);
}

static void st_drain(void)
{
	struct llist_node *n = llist_del_all(&st.handed), *next;

	while (n) {
		next = n->next;
		st_consume(container_of(n, struct st_hdr, node));
		n = next;
	}
}

static int st_worker(void *arg)
{
	struct st_cpu *c = arg;
	static const unsigned int modes[] = { LABYRINTH_GFP_ATOMIC, LABYRINTH_GFP_NOWAIT, LABYRINTH_GFP_KERNEL };
	void *keep[8];
	unsigned long it = 0;
	unsigned int i;

	hrtimer_start(&c->hard, ns_to_ktime(50000), HRTIMER_MODE_REL_PINNED_HARD);
	hrtimer_start(&c->soft, ns_to_ktime(80000), HRTIMER_MODE_REL_PINNED_SOFT);
	while (!kthread_should_stop()) {
		/* Allocate and free in a loop: the interrupts land inside these
		 * calls and run at the next nesting level. */
		for (i = 0; i < ARRAY_SIZE(keep); i++) {
			keep[i] = labyrinth_alloc_pages(st.z, modes[(it + i) % 3], 0, 0);
			if (keep[i]) {
				atomic64_inc(&st.worker_allocs);
				*(volatile unsigned long *)keep[i] = it;
			}
		}
		for (i = ARRAY_SIZE(keep); i-- > 0;)
			if (keep[i] && labyrinth_free_pages(st.z, keep[i], 0))
				atomic64_inc(&st.bad_content);
		/* A higher order now and then (may sleep: KERNEL). */
		if ((it & 15) == 0) {
			void *b = labyrinth_alloc_pages(st.z, LABYRINTH_GFP_KERNEL, 2, LABYRINTH_QUALITY_ZERO);

			if (b) {
				atomic64_inc(&st.worker_kernel);
				if (!st_all(b, PAGE_SIZE << 2, 0))
					atomic64_inc(&st.bad_content);
				labyrinth_free_pages(st.z, b, 2);
			}
		}
		st_drain();
		if ((++it & 7) == 0)
			cond_resched();
	}
	return 0;
}

static void st_stress(void)
{
	struct labyrinth_zone_stats s0, s;
	unsigned int cpu, i;
	long check;
	u64 total_irq = 0;

	st.z = st_zone("st-stress", 2048, 4, 0, 0); /* two regions of 1024 pages */
	if (!st.z)
		return;
	labyrinth_zone_stats(st.z, &s0);
	init_llist_head(&st.handed);
	st.cpu = alloc_percpu(struct st_cpu);
	if (!st.cpu) {
		ST_FAIL("alloc_percpu");
		goto out;
	}
#ifdef CONFIG_X86
	if (register_nmi_handler(NMI_LOCAL, st_nmi_fn, 0, "lb_selftest") == 0)
		WRITE_ONCE(st.nmi_armed, true);
#endif
	for_each_online_cpu(cpu) {
		struct st_cpu *c = per_cpu_ptr(st.cpu, cpu);

		hrtimer_init(&c->hard, CLOCK_MONOTONIC, HRTIMER_MODE_REL_PINNED_HARD);
		c->hard.function = st_hard_fn;
		hrtimer_init(&c->soft, CLOCK_MONOTONIC, HRTIMER_MODE_REL_PINNED_SOFT);
		c->soft.function = st_soft_fn;
		c->worker = kthread_create_on_cpu(st_worker, c, cpu, "lb-st/%u");
		if (IS_ERR(c->worker)) {
			c->worker = NULL;
			ST_FAIL("worker on CPU %u", cpu);
			continue;
		}
		wake_up_process(c->worker);
	}
	msleep(seconds * 1000);
	WRITE_ONCE(st.stop, true);
	for_each_online_cpu(cpu) {
		struct st_cpu *c = per_cpu_ptr(st.cpu, cpu);

		hrtimer_cancel(&c->hard);
		hrtimer_cancel(&c->soft);
	}
	WRITE_ONCE(st.nmi_armed, false);
#ifdef CONFIG_X86
	unregister_nmi_handler(NMI_LOCAL, "lb_selftest");
#endif
	for_each_online_cpu(cpu) {
		struct st_cpu *c = per_cpu_ptr(st.cpu, cpu);

		if (c->worker)
			kthread_stop(c->worker);
	}
	st_drain();
	free_percpu(st.cpu);

	/* 4. The zone at rest: intact, nothing in use, counters agree. */
	msleep(50); /* the warden's current tick */
	check = labyrinth_zone_check(st.z);
	labyrinth_zone_stats(st.z, &s);
	ST_EXPECT(check == 0, "labyrinth_zone_check after the stress: %ld violation(s)", check);
	ST_EXPECT(s.in_use_pages == 0, "nothing in use after the stress (%zu pages)", s.in_use_pages);
	ST_EXPECT(labyrinth_zone_for_each_in_use(st.z, NULL, NULL) == 0, "for_each_in_use finds nothing");
	ST_EXPECT(s.misuse_reports == s0.misuse_reports, "no misuse during the stress (%llu)",
		  s.misuse_reports - s0.misuse_reports);
	ST_EXPECT(atomic64_read(&st.bad_content) == 0, "%lld page(s) with wrong contents or refused frees",
		  atomic64_read(&st.bad_content));
	ST_EXPECT(atomic64_read(&st.twice) == 0, "%lld page(s) handed out twice", atomic64_read(&st.twice));
	ST_EXPECT(atomic64_read(&st.wrong_ctx) == 0, "%lld callback(s) not in the context they test",
		  atomic64_read(&st.wrong_ctx));
	ST_EXPECT(atomic64_read(&st.allocs[ST_HARD]) > 0, "allocations in hard-IRQ context");
	ST_EXPECT(atomic64_read(&st.allocs[ST_SOFT]) > 0, "allocations in softirq context");
	ST_EXPECT(atomic64_read(&st.checked) == atomic64_read(&st.frees), "every handed page freed");
	ST_EXPECT(s.warden_runs > s0.warden_runs, "the warden ran (%llu runs, %llu pages moved)",
		  s.warden_runs - s0.warden_runs, s.warden_pages_moved - s0.warden_pages_moved);
	for (i = 0; i < ST_CTXS; i++)
		total_irq += i == ST_PROC ? 0 : atomic64_read(&st.allocs[i]);
	pr_info(ST "stress %d s on %u CPUs: interrupt allocations %llu (hardirq %lld, softirq %lld, nmi %lld of %lld NMIs sent), atomic NULLs %lld/%lld/%lld, worker allocations %lld + %lld order-2 KERNEL\n",
		seconds, num_online_cpus(), total_irq, atomic64_read(&st.allocs[ST_HARD]),
		atomic64_read(&st.allocs[ST_SOFT]), atomic64_read(&st.allocs[ST_NMI]),
		atomic64_read(&st.nmi_sent), atomic64_read(&st.fails[ST_HARD]),
		atomic64_read(&st.fails[ST_SOFT]), atomic64_read(&st.fails[ST_NMI]),
		atomic64_read(&st.worker_allocs), atomic64_read(&st.worker_kernel));
	pr_info(ST "stress: nested in a labyrinth call on their CPU: hardirq %lld (max depth %d), softirq %lld (max %d), nmi %lld (max %d); frees of interrupt pages %lld (%lld on another CPU); warden %llu runs, %llu pages moved; zone stats: atomic_allocs %llu, atomic_failures %llu, reserve low water %zu of %zu\n",
		atomic64_read(&st.nested[ST_HARD]), atomic_read(&st.max_depth[ST_HARD]),
		atomic64_read(&st.nested[ST_SOFT]), atomic_read(&st.max_depth[ST_SOFT]),
		atomic64_read(&st.nested[ST_NMI]), atomic_read(&st.max_depth[ST_NMI]),
		atomic64_read(&st.frees), atomic64_read(&st.remote), s.warden_runs - s0.warden_runs,
		s.warden_pages_moved - s0.warden_pages_moved, s.atomic_allocs, s.atomic_failures,
		s.reserve_low_water, s.reserve_target_pages);
out:
	labyrinth_zone_destroy(st.z);
	st.z = NULL;
}

/* ---- 4b. CPU hotplug (issue 17.5) -------------------------------------- */

#define ST_HP_PAGES 128
#define ST_HP_TAKE  64

struct st_hp {
	struct labyrinth_zone *z;
	void *taken[ST_HP_TAKE];
	void *all[2 * ST_HP_PAGES];
	unsigned int ntaken, nall, cpu;
	int release_rc;
};

/* On the CPU that goes offline next: take pages (the test frees them
 * elsewhere later) and leave the CPU's magazines loaded. */
static long st_hp_take(void *arg)
{
	struct st_hp *h = arg;
	unsigned int i;

	h->cpu = raw_smp_processor_id();
	for (i = 0; i < ST_HP_TAKE; i++) {
		h->taken[i] = labyrinth_alloc_pages(h->z, LABYRINTH_GFP_NOWAIT, 0, 0);
		if (h->taken[i])
			h->ntaken++;
	}
	return 0;
}

/* On a CPU that stays: free what the offline CPU handed out, then take
 * every page the zone will give (ATOMIC, reserve included), then give
 * them back and release this CPU's cache. */
static long st_hp_reclaim(void *arg)
{
	struct st_hp *h = arg;
	unsigned int i;

	for (i = 0; i < ST_HP_TAKE; i++)
		if (h->taken[i] && labyrinth_free_pages(h->z, h->taken[i], 0))
			ST_FAIL("hotplug: the free of a page the offline CPU handed out");
	/* Our outboxes go to their owners now, not at some later free. */
	labyrinth_thread_release(h->z);
	h->nall = 0;
	while (h->nall < ARRAY_SIZE(h->all) &&
	       (h->all[h->nall] = labyrinth_alloc_pages(h->z, LABYRINTH_GFP_ATOMIC, 0, 0)))
		h->nall++;
	for (i = 0; i < h->nall; i++)
		labyrinth_free_pages(h->z, h->all[i], 0);
	h->release_rc = labyrinth_thread_release(h->z);
	return 0;
}

/* On the CPU back online: it allocates again. */
static long st_hp_again(void *arg)
{
	struct st_hp *h = arg;
	void *p = labyrinth_alloc_pages(h->z, LABYRINTH_GFP_NOWAIT, 0, 0);

	h->cpu = raw_smp_processor_id();
	h->ntaken = p ? 1 : 0;
	if (p && labyrinth_free_pages(h->z, p, 0))
		ST_FAIL("hotplug: the free on the CPU back online");
	labyrinth_thread_release(h->z);
	return 0;
}

static void st_hotplug(void)
{
	struct labyrinth_zone_config cfg = {
		.name = "st-hotplug", .pages = ST_HP_PAGES, .max_pages = ST_HP_PAGES, .max_order = 2,
		.flags = LABYRINTH_ZONE_NO_WARDEN,
	};
	unsigned int stay = 0, off = 1, got, taken;
	struct labyrinth_zone_stats s;
	struct st_hp *h;
	long check;
	int rc;

	if (num_online_cpus() < 2 || !cpu_online(off)) {
		ST_FAIL("hotplug: needs CPUs 0 and 1 online (QEMU -smp 2)");
		return;
	}
	h = kzalloc(sizeof(*h), GFP_KERNEL);
	if (!h)
		return;
	h->z = labyrinth_zone_create(&cfg);
	if (!h->z) {
		ST_FAIL("hotplug: zone");
		goto out;
	}
	labyrinth_zone_set_report_handler(h->z, st_report, &st_rep);
	work_on_cpu(off, st_hp_take, h);
	taken = h->ntaken;
	ST_EXPECT(h->cpu == off && taken == ST_HP_TAKE, "hotplug: CPU %u took %u pages", h->cpu, taken);
	rc = remove_cpu(off);
	if (rc) {
		ST_FAIL("hotplug: remove_cpu(%u): %d", off, rc);
		work_on_cpu(stay, st_hp_reclaim, h);
		goto out;
	}
	work_on_cpu(stay, st_hp_reclaim, h);
	got = h->nall;
	labyrinth_zone_stats(h->z, &s);
	ST_EXPECT(got == s.total_pages, "hotplug: with CPU %u offline, CPU %u got %u of the zone's %zu pages",
		  off, stay, got, s.total_pages);
	ST_EXPECT(s.free_pages == s.total_pages && s.in_flight_pages == 0 && s.in_use_pages == 0,
		  "hotplug: offline, free %zu of %zu, in flight %zu, in use %zu", s.free_pages, s.total_pages,
		  s.in_flight_pages, s.in_use_pages);
	ST_EXPECT(h->release_rc == 0, "hotplug: thread_release %d", h->release_rc);
	check = labyrinth_zone_check(h->z);
	ST_EXPECT(check == 0, "hotplug: zone check with CPU %u offline: %ld", off, check);
	rc = add_cpu(off);
	ST_EXPECT(rc == 0, "hotplug: add_cpu(%u): %d", off, rc);
	if (!rc) {
		h->ntaken = 0;
		work_on_cpu(off, st_hp_again, h);
		ST_EXPECT(h->cpu == off && h->ntaken == 1, "hotplug: CPU %u back online allocates (%u)", h->cpu,
			  h->ntaken);
	}
	labyrinth_zone_stats(h->z, &s);
	check = labyrinth_zone_check(h->z);
	ST_EXPECT(check == 0 && s.free_pages == s.total_pages && s.in_use_pages == 0,
		  "hotplug: online again, check %ld, free %zu of %zu", check, s.free_pages, s.total_pages);
	pr_info(ST "hotplug: CPU %u offline after taking %u pages (its magazines loaded): CPU %u then got %u of %zu pages; back online it allocates: %s; zone check %ld\n",
		off, taken, stay, got, s.total_pages, h->ntaken == 1 ? "yes" : "no", check);
out:
	labyrinth_zone_destroy(h->z);
	kfree(h);
}

/* ---- 5. benchmark ------------------------------------------------------ */

#define ST_BENCH_PAIRS 20000

/* The rows: 0 labyrinth ATOMIC, 1 the seed's macro, 2 alloc_pages, 3 and
 * 4 the kernel's page_pool (issue 12, target 5: the anchor a NIC driver
 * would use): its fast path (the per-pool LIFO cache, refilled and
 * emptied by page_pool_recycle_direct) and its ptr_ring path (pages put
 * back with allow_direct false go to the ring; the allocation refills its
 * cache from it).  A pool without a device: no DMA mapping. */
static u64 st_bench_one(int which, struct labyrinth_zone *z, void *pool)
{
	u64 best = U64_MAX, t;
	int round, i;

	for (round = 0; round < 5; round++) {
		if (which >= 3)
			local_bh_disable(); /* page_pool's direct recycling runs in softirq context */
		else
			preempt_disable();
		t = get_cycles();
		for (i = 0; i < ST_BENCH_PAIRS; i++) {
			if (which == 0) {
				void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);

				labyrinth_free_pages(z, p, 0);
			} else if (which == 1) {
				void *p = labyrinth_void_allocpage_gfpatomic_extra_quality(z, 0);

				labyrinth_free_pages(z, p, 0);
			} else if (which == 2) {
				struct page *pg = alloc_pages(GFP_ATOMIC, 0);

				if (pg)
					__free_pages(pg, 0);
			} else {
#if IS_ENABLED(CONFIG_PAGE_POOL)
				struct page *pg = page_pool_dev_alloc_pages(pool);

				if (pg)
					page_pool_put_full_page(pool, pg, which == 3);
#endif
			}
		}
		t = get_cycles() - t;
		if (which >= 3)
			local_bh_enable();
		else
			preempt_enable();
		best = min(best, t);
		cond_resched();
	}
	return div_u64(best, ST_BENCH_PAIRS);
}

/* a / b as "x.yy" (b > 0). */
static void st_ratio(char *buf, size_t n, u64 a, u64 b)
{
	u64 r = b ? div64_u64(a * 100 + b / 2, b) : 0;

	snprintf(buf, n, "%llu.%02llu", r / 100, r % 100);
}

static void st_bench(void)
{
	struct labyrinth_zone *z = st_zone("st-bench", 1024, 4, 0, 0);
	u64 lb, macro, kern;
	char r1[16], r2[16], r3[16];

	if (!z)
		return;
	lb = st_bench_one(0, z, NULL);
	macro = st_bench_one(1, z, NULL);
	kern = st_bench_one(2, z, NULL);
	pr_info(ST "bench (cycles per alloc+free pair, best of 5 x %d, preemption off; under TCG only the ratios mean anything): labyrinth ATOMIC %llu, seed macro (TRACK) %llu, alloc_pages(GFP_ATOMIC, 0)+__free_pages %llu\n",
		ST_BENCH_PAIRS, lb, macro, kern);
	st_ratio(r1, sizeof(r1), macro, lb);
	pr_info(ST "bench: seed macro / labyrinth ATOMIC %s (target: at most 1.30)\n", r1);
#if IS_ENABLED(CONFIG_PAGE_POOL)
	{
		struct page_pool_params pp = {
			.order = 0, .pool_size = 256, .nid = NUMA_NO_NODE, .dma_dir = DMA_BIDIRECTIONAL,
		};
		struct page_pool *pool = page_pool_create(&pp);
		u64 ppd, ppr;

		if (IS_ERR(pool)) {
			pr_info(ST "bench: page_pool_create failed (%ld): no page_pool rows\n", PTR_ERR(pool));
		} else {
			ppd = st_bench_one(3, z, pool);
			ppr = st_bench_one(4, z, pool);
			page_pool_destroy(pool);
			st_ratio(r2, sizeof(r2), lb, ppd);
			st_ratio(r3, sizeof(r3), lb, ppr);
			pr_info(ST "bench: page_pool (no device, bottom halves off) fast path (alloc + page_pool_recycle_direct) %llu, ptr_ring path (alloc + put, allow_direct false) %llu; labyrinth ATOMIC / page_pool fast %s, / ptr_ring %s (TCG: instruction counts more than cache effects)\n",
				ppd, ppr, r2, r3);
		}
	}
#else
	(void)r2;
	(void)r3;
	pr_info(ST "bench: this kernel has no CONFIG_PAGE_POOL: no page_pool rows\n");
#endif
	ST_EXPECT(labyrinth_zone_check(z) == 0, "check of the bench zone");
	labyrinth_zone_destroy(z);
}

/* ---- 6. no raw kernel addresses in labyrinth's log lines (issue 17.8) */

/* "ffff" and 12 more hex digits, not inside a longer hex run: an x86-64
 * kernel address as %px or a raw hex formatter prints it.  (%p prints
 * 00000000 and a 32-bit hash; %pS a symbol.) */
static bool st_raw_addr(const char *s, size_t n)
{
	size_t i, k;

	for (i = 0; i + 16 <= n; i++) {
		if (strncmp(s + i, "ffff", 4) || (i && isxdigit(s[i - 1])))
			continue;
		for (k = 4; k < 16 && isxdigit(s[i + k]); k++)
			;
		if (k == 16 && (i + 16 == n || !isxdigit(s[i + 16])))
			return true;
	}
	return false;
}

static void st_log(void)
{
	struct labyrinth_zone_config cfg = { .name = "st-log", .pages = 64, .flags = LABYRINTH_ZONE_NO_WARDEN };
	struct labyrinth_zone *z = labyrinth_zone_create(&cfg); /* the default handler: printk */
	unsigned long lines = 0, raw = 0;
	struct kmsg_dump_iter it;
	size_t len;
	char *line;
	void *p;

	/* A bad free and a leak through the default handler: an address, a
	 * caller, a leaked block and its allocator's symbol. */
	if (z) {
		p = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
		labyrinth_free_pages(z, p, 0);
		labyrinth_free_pages(z, p, 0);
		labyrinth_void_allocpage_gfpatomic_extra_quality(z, 0);
		labyrinth_zone_destroy(z);
	}
	line = kmalloc(1024, GFP_KERNEL);
	if (!line)
		return;
	kmsg_dump_rewind(&it);
	while (kmsg_dump_get_line(&it, false, line, 1023, &len)) {
		line[len] = 0;
		if (!strstr(line, "labyrinth: "))
			continue;
		lines++;
		if (st_raw_addr(line, len) && raw++ < 3)
			pr_err(ST "a raw kernel address in: %s", line);
	}
	kfree(line);
	ST_EXPECT(lines >= 4 && raw == 0, "%lu of %lu labyrinth log line(s) print a raw kernel address", raw,
		  lines);
	pr_info(ST "log: %lu labyrinth line(s), %lu with a raw kernel address\n", lines, raw);
}

/* ---- 7. a racing double free across preemption and migration (17.1) --- */

/*
 * Unpinned workers, each with two zones of its own (X and Y) used in turn:
 * a round allocates page P from one, now and then lets itself be
 * rescheduled or migrated (cond_resched, schedule_timeout, or a KERNEL
 * allocation that sleeps in a drained zone), allocates and frees a page
 * of the other zone (so the CPU's current zone is the other one, and the
 * free of P takes lb_free_general's general branch), then publishes P in
 * its mailbox and frees it.  A hard-IRQ and a softirq hrtimer on every CPU
 * take whatever P is published and free it too: on the worker's CPU they
 * land anywhere in its free, at depth 0 before its lb_enter(); on the
 * other, they race with it.  KB7: the descriptor read before lb_enter()
 * let such a free land in between, and both frees pushed P.  The zones are
 * private to a worker and it waits for the timer's free to finish, so no
 * one can be handed P between the two frees: a page handed out twice is
 * the allocator's doing, never the test's.  An ownership bitmap per zone
 * is set on every allocation and must be clear.
 */
#define ST_RF_WORKERS 4
#define ST_RF_PAGES   64
#define ST_RF_MS      3000

struct st_rf_zone {
	struct labyrinth_zone *z;
	unsigned long base;
	DECLARE_BITMAP(own, ST_RF_PAGES);
};

struct st_rf_worker {
	struct task_struct *task;
	struct st_rf_zone zone[2];
	struct labyrinth_zone *mbzone;	/* P's zone, for the timer */
	void *mailbox;			/* P while a timer may take it */
	int phase;			/* 0 before main's free of P, 1 in it, 2 after */
	int timer_rc, timer_phase, timer_cpu, timer_soft;
	bool timer_done;
	unsigned long rounds, taken, during, same_cpu, soft, migrated, slept, both_zero, refused_now;
};

struct st_rf_cpu {
	struct hrtimer hard, soft;
};

static struct {
	struct st_rf_worker w[ST_RF_WORKERS];
	struct st_rf_cpu *cpu;		/* nr_cpu_ids of them */
	struct labyrinth_zone *sleepy;	/* drained: KERNEL allocations there sleep */
	void *sleepy_pages[ST_RF_PAGES];
	unsigned long deadline;
	bool stop;
	unsigned int drained_short;
	long bad_check;
	atomic_t twice, bad_rc, ealready, other;
} st_rf;

/* Any context: atomics only. */
static void st_rf_report(const struct labyrinth_report *r, void *arg)
{
	/* atomic_inc: relaxed; read after kthread_stop(), which orders it. */
	if (r->kind == LABYRINTH_REPORT_BAD_FREE && r->err == -EALREADY)
		atomic_inc(&st_rf.ealready);
	else
		atomic_inc(&st_rf.other);
}

static struct labyrinth_zone *st_rf_zone_create(const char *name)
{
	struct labyrinth_zone_config cfg = {
		.name = name, .pages = ST_RF_PAGES, .max_pages = ST_RF_PAGES, .max_order = 2,
		.flags = LABYRINTH_ZONE_NO_WARDEN, .wait_timeout_ms = 1,
	};
	struct labyrinth_zone *z = labyrinth_zone_create(&cfg);

	if (!z)
		ST_FAIL("racefree: zone '%s' could not be created", name);
	else
		labyrinth_zone_set_report_handler(z, st_rf_report, NULL);
	return z;
}

/* The test is handed p from zone rz: its bit must be clear. */
static void st_rf_take(struct st_rf_zone *rz, void *p)
{
	unsigned long i = ((unsigned long)p - rz->base) >> PAGE_SHIFT;

	if ((unsigned long)p < rz->base || i >= ST_RF_PAGES || !PAGE_ALIGNED(p)) {
		ST_FAIL("racefree: %p is not a page of zone %s", p, labyrinth_zone_name(rz->z));
		return;
	}
	/* test_and_set_bit: a value-returning RMW, fully ordered. */
	if (test_and_set_bit(i, rz->own) && atomic_inc_return(&st_rf.twice) <= 3)
		ST_FAIL("racefree: page %lu of %s (%p) handed out twice", i, labyrinth_zone_name(rz->z), p);
}

static void st_rf_give(struct st_rf_zone *rz, void *p)
{
	/* clear_bit: unordered; only the owning worker uses its tables until
	 * kthread_stop(), which orders them before the final drain. */
	clear_bit(((unsigned long)p - rz->base) >> PAGE_SHIFT, rz->own);
}

/* The second freer, in hard-IRQ or softirq context on any CPU. */
static void st_rf_timer_free(bool soft)
{
	unsigned int i;

	for (i = 0; i < ST_RF_WORKERS; i++) {
		struct st_rf_worker *w = &st_rf.w[i];
		/* xchg: fully ordered; exactly one of the timers and the
		 * worker takes P, and sees the worker's stores before it
		 * published P (mbzone, phase). */
		void *p = xchg(&w->mailbox, NULL);

		if (!p)
			continue;
		w->timer_phase = READ_ONCE(w->phase);
		w->timer_cpu = raw_smp_processor_id();
		w->timer_soft = soft;
		w->timer_rc = labyrinth_free_pages(w->mbzone, p, 0);
		/* Release: the fields above are visible once done is. */
		smp_store_release(&w->timer_done, true);
	}
}

static enum hrtimer_restart st_rf_hard_fn(struct hrtimer *t)
{
	st_rf_timer_free(false);
	if (READ_ONCE(st_rf.stop))
		return HRTIMER_NORESTART;
	hrtimer_forward_now(t, ns_to_ktime(10000 + (get_random_u32() & 0x3fff)));
	return HRTIMER_RESTART;
}

static enum hrtimer_restart st_rf_soft_fn(struct hrtimer *t)
{
	st_rf_timer_free(true);
	if (READ_ONCE(st_rf.stop))
		return HRTIMER_NORESTART;
	hrtimer_forward_now(t, ns_to_ktime(20000 + (get_random_u32() & 0x7fff)));
	return HRTIMER_RESTART;
}

/* On each CPU (a bound kworker): its timers, pinned there. */
static long st_rf_timers_start(void *arg)
{
	struct st_rf_cpu *c = &st_rf.cpu[raw_smp_processor_id()];

	hrtimer_init(&c->hard, CLOCK_MONOTONIC, HRTIMER_MODE_REL_PINNED_HARD);
	c->hard.function = st_rf_hard_fn;
	hrtimer_init(&c->soft, CLOCK_MONOTONIC, HRTIMER_MODE_REL_PINNED_SOFT);
	c->soft.function = st_rf_soft_fn;
	hrtimer_start(&c->hard, ns_to_ktime(10000), HRTIMER_MODE_REL_PINNED_HARD);
	hrtimer_start(&c->soft, ns_to_ktime(15000), HRTIMER_MODE_REL_PINNED_SOFT);
	return 0;
}

/* Allocate every page rz will give on this CPU, holding them all (each
 * must be clear in the table), then give them back.  Returns how many. */
static unsigned int st_rf_deep(struct st_rf_zone *rz)
{
	void *held[ST_RF_PAGES + 8];
	unsigned int n = 0, i;

	while (n < ARRAY_SIZE(held) && (held[n] = labyrinth_alloc_pages(rz->z, LABYRINTH_GFP_ATOMIC, 0, 0)))
		st_rf_take(rz, held[n++]);
	for (i = 0; i < n; i++) {
		st_rf_give(rz, held[i]);
		if (labyrinth_free_pages(rz->z, held[i], 0))
			ST_FAIL("racefree: the free of a drained page %p", held[i]);
	}
	return n;
}

static void st_rf_round(struct st_rf_worker *w)
{
	unsigned int k = w->rounds & 1, r = get_random_u32();
	struct st_rf_zone *rz = &w->zone[k], *other = &w->zone[!k];
	int cpu, rc;
	void *p, *q;

	p = labyrinth_alloc_pages(rz->z, LABYRINTH_GFP_ATOMIC, 0, 0);
	if (!p) {
		ST_FAIL("racefree: ATOMIC allocation from the worker's own zone %s", labyrinth_zone_name(rz->z));
		return;
	}
	st_rf_take(rz, p);
	cpu = raw_smp_processor_id();
	/* Now and then (1 round in 128) reschedule or migrate while P is held. */
	switch (r & 511) {
	case 0:
		cond_resched();
		break;
	case 1:
		schedule_timeout_uninterruptible(1);
		break;
	case 2:
	case 3:
		/* Sleeps (1 ms) in the drained zone, then fails with
		 * ETIMEDOUT; the worker may wake on another CPU. */
		if (labyrinth_alloc_pages(st_rf.sleepy, LABYRINTH_GFP_KERNEL, 0, 0))
			ST_FAIL("racefree: the drained zone gave a page");
		w->slept++;
		break;
	default:
		break;
	}
	/* The other zone becomes this CPU's current zone. */
	q = labyrinth_alloc_pages(other->z, LABYRINTH_GFP_ATOMIC, 0, 0);
	if (q) {
		st_rf_take(other, q);
		st_rf_give(other, q);
		labyrinth_free_pages(other->z, q, 0);
	}
	if (raw_smp_processor_id() != cpu)
		w->migrated++;
	cpu = raw_smp_processor_id();
	/* The race: our free of P and a timer's. */
	st_rf_give(rz, p);
	w->mbzone = rz->z;
	WRITE_ONCE(w->phase, 0);
	w->timer_done = false;
	/* Release: a timer that takes P sees the stores above. */
	smp_store_release(&w->mailbox, p);
	WRITE_ONCE(w->phase, 1);
	rc = labyrinth_free_pages(rz->z, p, 0);
	WRITE_ONCE(w->phase, 2);
	w->rounds++;
	/* xchg: fully ordered, pairs with the timers'. */
	if (xchg(&w->mailbox, NULL)) {
		/* No timer took P: a single free. */
		if (rc)
			ST_FAIL("racefree: a single free of %p returned %d", p, rc);
		return;
	}
	/* A timer took P: wait until its free is over (acquire: pairs with
	 * its release of the results).  A softirq may run in ksoftirqd on
	 * this CPU: let it. */
	while (!smp_load_acquire(&w->timer_done))
		cond_resched();
	w->taken++;
	w->during += w->timer_phase == 1;
	w->same_cpu += w->timer_cpu == cpu;
	w->soft += w->timer_soft;
	if ((rc && rc != -EALREADY) || (w->timer_rc && w->timer_rc != -EALREADY) ||
	    (rc == -EALREADY && w->timer_rc == -EALREADY)) {
		if (atomic_inc_return(&st_rf.bad_rc) <= 3)
			ST_FAIL("racefree: the two frees of %p returned %d (process) and %d (%s)", p, rc,
				w->timer_rc, w->timer_soft ? "softirq" : "hardirq");
		return;
	}
	w->refused_now += (rc == -EALREADY) + (w->timer_rc == -EALREADY);
	if (!rc && !w->timer_rc) {
		/* Both 0: one was queued to P's owner, which refuses it later
		 * (a late report) - or P was pushed twice (KB7): look for it. */
		w->both_zero++;
		st_rf_deep(rz);
	}
}

static int st_rf_worker_fn(void *arg)
{
	struct st_rf_worker *w = arg;

	while (!kthread_should_stop()) {
		if (time_before(jiffies, READ_ONCE(st_rf.deadline)))
			st_rf_round(w);
		else
			schedule_timeout_uninterruptible(1);
	}
	return 0;
}

/* Normal context on each CPU: give the CPU's caches of every zone back. */
static long st_rf_release(void *arg)
{
	unsigned int i, k;

	for (i = 0; i < ST_RF_WORKERS; i++)
		for (k = 0; k < 2; k++)
			if (st_rf.w[i].zone[k].z)
				labyrinth_thread_release(st_rf.w[i].zone[k].z);
	return 0;
}

/* On one CPU (a bound kworker: no migration mid-drain): every page of
 * every worker zone comes out once, and the zones check clean. */
static long st_rf_final(void *arg)
{
	unsigned int i, k, n;

	for (i = 0; i < ST_RF_WORKERS; i++)
		for (k = 0; k < 2; k++) {
			n = st_rf_deep(&st_rf.w[i].zone[k]);
			if (n != ST_RF_PAGES && st_rf.drained_short++ < 3)
				ST_FAIL("racefree: zone %s drained %u of %u pages",
					labyrinth_zone_name(st_rf.w[i].zone[k].z), n, ST_RF_PAGES);
			st_rf.bad_check += labyrinth_zone_check(st_rf.w[i].zone[k].z);
		}
	return 0;
}

static void st_racefree(void)
{
	unsigned long rounds = 0, taken = 0, during = 0, same = 0, soft = 0, migrated = 0, slept = 0;
	unsigned long both = 0, now = 0;
	unsigned int i, k, n, cpu, pass;
	char name[32];

	memset(&st_rf, 0, sizeof(st_rf));
	st_rf.cpu = kcalloc(nr_cpu_ids, sizeof(*st_rf.cpu), GFP_KERNEL);
	st_rf.sleepy = st_rf_zone_create("st-rf-sleepy");
	if (!st_rf.cpu || !st_rf.sleepy)
		goto out;
	for (n = 0; n < ST_RF_PAGES && (st_rf.sleepy_pages[n] = labyrinth_alloc_pages(st_rf.sleepy,
							LABYRINTH_GFP_ATOMIC, 0, 0)); n++)
		;
	for (i = 0; i < ST_RF_WORKERS; i++) {
		for (k = 0; k < 2; k++) {
			struct st_rf_zone *rz = &st_rf.w[i].zone[k];
			struct labyrinth_region_info ri;

			snprintf(name, sizeof(name), "st-rf-%u%c", i, "xy"[k]);
			rz->z = st_rf_zone_create(name);
			if (!rz->z || labyrinth_zone_region_info(rz->z, 0, &ri) || ri.pages != ST_RF_PAGES) {
				ST_FAIL("racefree: zone %s: one region of %u pages", name, ST_RF_PAGES);
				goto out;
			}
			rz->base = (unsigned long)ri.start;
		}
	}
	for_each_online_cpu(cpu)
		work_on_cpu(cpu, st_rf_timers_start, NULL);
	/* Written before the workers start (kthread_run orders it). */
	st_rf.deadline = jiffies + msecs_to_jiffies(ST_RF_MS);
	for (i = 0; i < ST_RF_WORKERS; i++) {
		/* Not bound to a CPU: the scheduler moves them. */
		st_rf.w[i].task = kthread_run(st_rf_worker_fn, &st_rf.w[i], "lb-st-rf/%u", i);
		if (IS_ERR(st_rf.w[i].task)) {
			st_rf.w[i].task = NULL;
			ST_FAIL("racefree: worker %u", i);
		}
	}
	msleep(ST_RF_MS);
	for (i = 0; i < ST_RF_WORKERS; i++)
		if (st_rf.w[i].task)
			kthread_stop(st_rf.w[i].task);
	WRITE_ONCE(st_rf.stop, true);
	for_each_online_cpu(cpu) {
		hrtimer_cancel(&st_rf.cpu[cpu].hard);
		hrtimer_cancel(&st_rf.cpu[cpu].soft);
	}
	/* Every CPU's caches back (twice: the first pass's outboxes reach
	 * their owners' inboxes, the second takes them in), then every page
	 * of every zone drainable on one CPU, none handed out twice. */
	for (pass = 0; pass < 2; pass++)
		for_each_online_cpu(cpu)
			work_on_cpu(cpu, st_rf_release, NULL);
	work_on_cpu(cpumask_first(cpu_online_mask), st_rf_final, NULL);
	for (i = 0; i < ST_RF_WORKERS; i++) {
		struct st_rf_worker *w = &st_rf.w[i];

		rounds += w->rounds;
		taken += w->taken;
		during += w->during;
		same += w->same_cpu;
		soft += w->soft;
		migrated += w->migrated;
		slept += w->slept;
		both += w->both_zero;
		now += w->refused_now;
	}
	ST_EXPECT(st_rf.bad_check == 0, "racefree: labyrinth_zone_check: %ld violation(s)", st_rf.bad_check);
	ST_EXPECT(atomic_read(&st_rf.twice) == 0, "racefree: %d page(s) handed out twice",
		  atomic_read(&st_rf.twice));
	/* Each double free refused exactly once: at once, or by P's owner
	 * later (the rounds whose frees both returned 0). */
	ST_EXPECT(atomic_read(&st_rf.ealready) == taken,
		  "racefree: %lu double frees, %d EALREADY reports (%lu refused at once, %lu both 0)", taken,
		  atomic_read(&st_rf.ealready), now, both);
	ST_EXPECT(atomic_read(&st_rf.other) == 0, "racefree: %d other report(s)", atomic_read(&st_rf.other));
	/* Softirq hits are counted, not required: under TCG a boot may see
	 * none (0 of 72 double frees once; usually 15-35). */
	ST_EXPECT(during > 0 && same > 0 && migrated > 0,
		  "racefree: timer frees during the worker's free %lu, on its CPU %lu; migrations %lu", during,
		  same, migrated);
	pr_info(ST "racefree: %u unpinned workers, %lu rounds in %u ms, %lu migrated between P's allocation and its free (%lu KERNEL sleeps): %lu double frees (%lu during the worker's free, %lu on its CPU, %lu in softirq), %lu refused at once, %lu by a late report; %d page(s) handed out twice; zones drained %u short, check %ld\n",
		ST_RF_WORKERS, rounds, ST_RF_MS, migrated, slept, taken, during, same, soft, now, both,
		atomic_read(&st_rf.twice), st_rf.drained_short, st_rf.bad_check);
out:
	for (i = 0; i < ST_RF_WORKERS; i++)
		for (k = 0; k < 2; k++)
			labyrinth_zone_destroy(st_rf.w[i].zone[k].z);
	for (n = 0; n < ST_RF_PAGES && st_rf.sleepy_pages[n]; n++)
		labyrinth_free_pages(st_rf.sleepy, st_rf.sleepy_pages[n], 0);
	labyrinth_zone_destroy(st_rf.sleepy);
	kfree(st_rf.cpu);
}

/* ---- 8. mixed site and caller records read concurrently (17.2) -------- */

/*
 * A writer (CPU 0) allocates a page with the seed's macro (a site record)
 * and registers it with labyrinth_register_page (a caller record), again
 * and again; a reader (CPU 1) calls labyrinth_page_info on it, and a third
 * thread reads the zone's debugfs `tracking` file (which prints
 * site->file).  Every site pointer must be NULL or this file's own struct
 * labyrinth_site, every caller never that struct.  KB8: the site flag sat
 * in the record's other word, and a torn read paired a caller's code
 * address with it.
 */
#define ST_TR_MS 2000

static struct {
	struct labyrinth_zone *z;
	const struct labyrinth_site *site;
	void *page;
	bool stop;
	unsigned long rounds, reads, sites, callers, wild, site_as_caller, files, lines, site_lines;
	const void *first_wild;
	char path[96];
} st_tr;

static noinline void *st_tr_seed_alloc(void)
{
	return labyrinth_void_allocpage_gfpatomic_extra_quality(st_tr.z, 0);
}

static int st_tr_writer(void *arg)
{
	while (!READ_ONCE(st_tr.stop)) {
		void *p = st_tr_seed_alloc();

		if (p) {
			WRITE_ONCE(st_tr.page, p); /* any value is safe for page_info */
			labyrinth_register_page(st_tr.z, p);
			labyrinth_free_pages(st_tr.z, p, 0);
			st_tr.rounds++;
		}
		if ((st_tr.rounds & 255) == 0)
			cond_resched();
	}
	return 0;
}

static int st_tr_reader(void *arg)
{
	struct labyrinth_page_info info;
	unsigned long n = 0;

	while (!READ_ONCE(st_tr.stop)) {
		void *p = READ_ONCE(st_tr.page);

		if (p && labyrinth_page_info(st_tr.z, p, &info) == 0 && info.tracked) {
			st_tr.reads++;
			if (!info.site) {
				st_tr.callers++;
			} else if (info.site == st_tr.site) {
				st_tr.sites++;
			} else {
				if (!st_tr.wild++)
					st_tr.first_wild = info.site; /* never dereferenced */
			}
			if (info.caller && info.caller == (const void *)st_tr.site)
				st_tr.site_as_caller++;
		}
		if ((++n & 1023) == 0)
			cond_resched();
	}
	return 0;
}

/* Reads the zone's debugfs tracking file (which follows info.site->file:
 * a wild site oopses here) until the deadline, in the insmod task: a
 * debugfs seq_file has no read_iter, so kernel_read() refuses it, and its
 * read() wants a user buffer (mapped here in insmod's mm). */
static void st_tr_debugfs(unsigned long deadline)
{
	char *kbuf = kmalloc(PAGE_SIZE, GFP_KERNEL);
	unsigned long ubuf = -ENOMEM;
	struct file *f;
	loff_t pos;
	ssize_t got;
	char *s;

	if (kbuf && current->mm)
		ubuf = vm_mmap(NULL, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, 0);
	while (!IS_ERR_VALUE(ubuf) && time_before(jiffies, deadline)) {
		f = filp_open(st_tr.path, O_RDONLY, 0);
		if (IS_ERR(f))
			break;
		pos = 0;
		while ((got = f->f_op->read(f, (char __user *)ubuf, PAGE_SIZE - 1, &pos)) > 0) {
			if (copy_from_user(kbuf, (const void __user *)ubuf, got))
				break;
			kbuf[got] = 0;
			for (s = kbuf; (s = strchr(s, '\n')); s++)
				st_tr.lines++;
			for (s = kbuf; (s = strstr(s, "(st_tr_seed_alloc)")); s++)
				st_tr.site_lines++;
		}
		filp_close(f, NULL);
		st_tr.files++;
		cond_resched();
	}
	if (!IS_ERR_VALUE(ubuf))
		vm_munmap(ubuf, PAGE_SIZE);
	kfree(kbuf);
	/* The rest of the time, if the file could not be read. */
	while (time_before(jiffies, deadline))
		msleep(10);
}

static void st_tornrec(void)
{
	struct task_struct *t[2] = { NULL, NULL };
	bool found = false;
	struct labyrinth_page_info info;
	struct file *f;
	unsigned int i;
	long check;
	void *p;

	memset(&st_tr, 0, sizeof(st_tr));
	if (num_online_cpus() < 2) {
		ST_FAIL("tornrec: needs two CPUs");
		return;
	}
	st_tr.z = st_zone("st-tornrec", 64, 2, LABYRINTH_ZONE_NO_WARDEN, 0);
	if (!st_tr.z)
		return;
	/* The macro's site, learnt with nothing racing. */
	p = st_tr_seed_alloc();
	if (!p || labyrinth_page_info(st_tr.z, p, &info) || !info.tracked || !info.site ||
	    strcmp(info.site->func, "st_tr_seed_alloc")) {
		ST_FAIL("tornrec: the macro's site record");
		goto out;
	}
	st_tr.site = info.site;
	ST_EXPECT(labyrinth_register_page(st_tr.z, p) == 0 && labyrinth_page_info(st_tr.z, p, &info) == 0 &&
		  info.tracked && !info.site && info.caller, "tornrec: a caller record replaces the site record");
	labyrinth_free_pages(st_tr.z, p, 0);
	/* The zone's debugfs directory is "<name>.<n>": find n. */
	for (i = 0; i < 4096; i++) {
		snprintf(st_tr.path, sizeof(st_tr.path), "/sys/kernel/debug/labyrinth/st-tornrec.%u/tracking", i);
		f = filp_open(st_tr.path, O_RDONLY, 0);
		if (!IS_ERR(f)) {
			filp_close(f, NULL);
			found = true;
			break;
		}
	}
	t[0] = kthread_create_on_cpu(st_tr_writer, NULL, 0, "lb-st-tr-w/%u");
	t[1] = kthread_create_on_cpu(st_tr_reader, NULL, 1, "lb-st-tr-r/%u");
	for (i = 0; i < 2; i++) {
		if (IS_ERR(t[i])) {
			ST_FAIL("tornrec: thread %u", i);
			t[i] = NULL;
		}
		if (t[i]) {
			get_task_struct(t[i]); /* kthread_stop after a thread that ended */
			wake_up_process(t[i]);
		}
	}
	if (found)
		st_tr_debugfs(jiffies + msecs_to_jiffies(ST_TR_MS));
	else
		msleep(ST_TR_MS);
	WRITE_ONCE(st_tr.stop, true);
	for (i = 0; i < 2; i++)
		if (t[i]) {
			kthread_stop(t[i]);
			put_task_struct(t[i]);
		}
	check = labyrinth_zone_check(st_tr.z);
	ST_EXPECT(st_tr.wild == 0, "tornrec: %lu wild site pointer(s) from labyrinth_page_info, first %p (the site is %p)",
		  st_tr.wild, st_tr.first_wild, st_tr.site);
	ST_EXPECT(st_tr.site_as_caller == 0, "tornrec: %lu read(s) gave the site's address as the caller",
		  st_tr.site_as_caller);
	ST_EXPECT(st_tr.sites > 0 && st_tr.callers > 0, "tornrec: both kinds read (%lu site, %lu caller records)",
		  st_tr.sites, st_tr.callers);
	ST_EXPECT(check == 0, "tornrec: labyrinth_zone_check: %ld", check);
	pr_info(ST "tornrec: %u ms, %lu rewrites (macro, then register_page), %lu tracked reads (%lu site, %lu caller): %lu wild site pointer(s), %lu site as caller; debugfs tracking read %lu time(s) (%lu lines, %lu naming the site)%s\n",
		ST_TR_MS, st_tr.rounds, st_tr.reads, st_tr.sites, st_tr.callers, st_tr.wild, st_tr.site_as_caller,
		st_tr.files, st_tr.lines, st_tr.site_lines, found ? "" : " - no debugfs file found");
out:
	labyrinth_zone_destroy(st_tr.z);
}

/* Issue 17 deliver 1, findings 1 and 2 (KB7, KB8). */
static void st_core_races(void)
{
	st_racefree();
	st_tornrec();
}

/* ---- 8. reports per zone and kind (issue 17.9) ------------------------ */

/* Two zones with the default handler (printk).  Zone A: 30 double frees,
 * then 30 leaks at destroy; zone B, in between: one double free.  Each
 * zone and kind has its own rate limit: B's line is printed although A
 * flooded, A's leaks are all printed with their summary, and A's bad frees
 * beyond the burst are counted in a "suppressed" line at destroy. */
#define ST_RL_N 30
static void st_ratelimit(void)
{
	struct labyrinth_zone_config ca = { .name = "st-rl-a", .pages = 128, .flags = LABYRINTH_ZONE_NO_WARDEN };
	struct labyrinth_zone_config cb = { .name = "st-rl-b", .pages = 64, .flags = LABYRINTH_ZONE_NO_WARDEN };
	struct labyrinth_zone *a = labyrinth_zone_create(&ca), *b = labyrinth_zone_create(&cb);
	unsigned long bad_a, bad_b, leaks, summary, supp;
	void *p;
	int i;

	if (!a || !b) {
		ST_FAIL("rate limit: zones not created");
		goto out;
	}
	p = labyrinth_alloc_pages(a, LABYRINTH_GFP_KERNEL, 0, 0);
	labyrinth_free_pages(a, p, 0);
	for (i = 0; i < ST_RL_N; i++)
		labyrinth_free_pages(a, p, 0);
	p = labyrinth_alloc_pages(b, LABYRINTH_GFP_KERNEL, 0, 0);
	labyrinth_free_pages(b, p, 0);
	labyrinth_free_pages(b, p, 0);
	for (i = 0; i < ST_RL_N; i++)
		labyrinth_alloc_pages(a, LABYRINTH_GFP_KERNEL, 0, 0);
	labyrinth_zone_destroy(a);
	labyrinth_zone_destroy(b);
	a = b = NULL;
	{
		/* A zone with fewer thread caches than possible CPUs (a CPU
		 * onlined later claims one too) says so once, at creation
		 * (issue 17.10, KB41). */
		struct labyrinth_zone_config one = { .name = "st-one-cache", .pages = 64, .max_threads = 1 };
		struct labyrinth_zone *z1 = num_possible_cpus() > 1 ? labyrinth_zone_create(&one) : NULL;

		if (z1) {
			char want[96];
			unsigned long said;

			snprintf(want, sizeof(want), "labyrinth: zone 'st-one-cache': max_threads 1 is below the %u possible CPUs",
				 num_possible_cpus());
			said = st_log_count(want, NULL);
			labyrinth_zone_destroy(z1);
			ST_EXPECT(said == 1, "max_threads below the possible CPUs: %lu notice line(s), want 1", said);
			pr_info(ST "reports: a zone with max_threads 1 on %u possible CPUs said so in %lu line(s)\n",
				num_possible_cpus(), said);
		}
	}
	{
		/* Reports with no zone beyond their window's burst: counted, and
		 * summarised at the next destroy (KB41; before, only a later
		 * zone-less line opening a new window did).  3 bursts of a dead
		 * handle's destroy: whichever window holds the last of them
		 * held some back, or a window boundary summarised them. */
		struct labyrinth_zone_config cd = { .name = "st-rl-dead", .pages = 64, .flags = LABYRINTH_ZONE_NO_WARDEN };
		struct labyrinth_zone *d = labyrinth_zone_create(&cd), *e;
		unsigned long printed, summ;

		if (d) {
			labyrinth_zone_destroy(d); /* d is dead from here on */
			printed = st_log_count("labyrinth: zone '(none)': zone_destroy(", "not a live zone");
			summ = st_log_count("labyrinth: zone '(none)': ", "bad args line(s) suppressed");
			for (i = 0; i < 3 * 10; i++)
				labyrinth_zone_destroy(d);
			printed = st_log_count("labyrinth: zone '(none)': zone_destroy(", "not a live zone") - printed;
			e = labyrinth_zone_create(&cd);
			if (e)
				labyrinth_zone_destroy(e);
			summ = st_log_count("labyrinth: zone '(none)': ", "bad args line(s) suppressed") - summ;
			pr_info(ST "reports: 30 zone-less bad-args reports, %lu printed, %lu suppressed-summary line(s)\n",
				printed, summ);
			ST_EXPECT(e && printed < 30 && summ >= 1,
				  "zone-less reports held back are summarised: %lu of 30 printed, %lu summary line(s)",
				  printed, summ);
		}
	}
	bad_a = st_log_count("labyrinth: zone 'st-rl-a': free_pages(", "double free");
	bad_b = st_log_count("labyrinth: zone 'st-rl-b': free_pages(", "double free");
	leaks = st_log_count("labyrinth: zone 'st-rl-a': leak: block", NULL);
	summary = st_log_count("labyrinth: zone 'st-rl-a': 30 block(s), 30 page(s), still in use at destroy", NULL);
	supp = st_log_count("labyrinth: zone 'st-rl-a': 20 bad free line(s) suppressed", NULL);
	pr_info(ST "reports: zone A %lu of %d bad-free lines, %lu suppressed-summary line(s), %lu of %d leak lines, %lu leak summary; zone B %lu of 1 bad-free line\n",
		bad_a, ST_RL_N, supp, leaks, ST_RL_N, summary, bad_b);
	ST_EXPECT(bad_b == 1, "zone B's report starved by zone A's (%lu line(s))", bad_b);
	ST_EXPECT(leaks == ST_RL_N && summary == 1, "leak lines %lu of %d, summary %lu", leaks, ST_RL_N, summary);
	ST_EXPECT(bad_a == 10 && supp == 1, "zone A: %lu bad-free lines (want the burst, 10), %lu suppressed line(s)",
		  bad_a, supp);
out:
	if (a)
		labyrinth_zone_destroy(a);
	if (b)
		labyrinth_zone_destroy(b);
}

static int __init st_init(void)
{
	int i, errs;

	pr_info(ST "start: %u CPUs, stress %d s\n", num_online_cpus(), seconds);
	st_quality();
	st_misuse();
	st_stress();
	st_hotplug();
	st_core_races();
	st_log();
	st_ratelimit();
	if (bench)
		st_bench();
	errs = atomic_read(&st_errors);
	pr_info(ST "%s: %lu quality checks, %lu misuse cases (%d reports: bad free %d, bad args %d, use after free %d, leak %d), %lld interrupt allocations, %d error(s)\n",
		errs ? "FAIL" : "PASS", st_quality_checks, st_misuse_cases, atomic_read(&st_rep.total),
		atomic_read(&st_rep.kind[LABYRINTH_REPORT_BAD_FREE]),
		atomic_read(&st_rep.kind[LABYRINTH_REPORT_BAD_ARGS]),
		atomic_read(&st_rep.kind[LABYRINTH_REPORT_USE_AFTER_FREE]),
		atomic_read(&st_rep.kind[LABYRINTH_REPORT_LEAK]),
		atomic64_read(&st.allocs[ST_HARD]) + atomic64_read(&st.allocs[ST_SOFT]) +
			atomic64_read(&st.allocs[ST_NMI]), errs);
	for (i = 0; i < ST_CTXS; i++)
		(void)st_ctx_name[i];
	return errs ? -EIO : 0;
}

static void __exit st_exit(void)
{
}

module_init(st_init);
module_exit(st_exit);
MODULE_DESCRIPTION("labyrinth.ko self-test: interrupts, misuse, quality, invariants, benchmark");
MODULE_LICENSE("Dual MIT/GPL");
