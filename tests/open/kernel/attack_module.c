// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * attack_module.c - labyrinth_attack.ko: adversarial review of labyrinth.ko's
 * public API (not part of the project's tests).
 *
 *   insmod labyrinth_attack.ko which=ctx,handles,dfrace,reports,leaks
 *   insmod labyrinth_attack.ko which=hotplug   (starts workers; then)
 *   echo 1 > /sys/module/labyrinth_attack/parameters/verify
 *
 * Every attack prints "labyrinth_attack: <name>: OK ..." or
 * "labyrinth_attack: <name>: BREAK ...".
 */
#include <linux/atomic.h>
#include <linux/bitmap.h>
#include <linux/cpu.h>
#include <linux/delay.h>
#include <linux/hrtimer.h>
#include <linux/interrupt.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/random.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/timer.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>

#include <linux/kallsyms.h>
#include <linux/mm.h>
#ifdef CONFIG_X86
#include <asm/apic.h>
#include <asm/nmi.h>
#endif

#include <labyrinth.h>

static char *which = "";
module_param(which, charp, 0444);
static int seconds = 3;
module_param(seconds, int, 0444);

static atomic_t atk_breaks = ATOMIC_INIT(0);
#define BREAK(name, fmt, ...)                                                            \
	do {                                                                             \
		atomic_inc(&atk_breaks);                                                 \
		pr_err("labyrinth_attack: %s: BREAK " fmt "\n", name, ##__VA_ARGS__);   \
	} while (0)

struct atk_rep {
	atomic_t total, kinds[8], errs[256];
};
static void atk_report(const struct labyrinth_report *r, void *arg)
{
	struct atk_rep *c = arg;

	atomic_inc(&c->total);
	if (r->kind >= 0 && r->kind < 8)
		atomic_inc(&c->kinds[r->kind]);
	if (r->err < 0 && -r->err < 256)
		atomic_inc(&c->errs[-r->err]);
}

static struct labyrinth_zone *atk_zone(const char *name, size_t pages, size_t max_pages, unsigned flags)
{
	struct labyrinth_zone_config cfg = {
		.name = name, .pages = pages, .max_pages = max_pages, .max_order = 4, .flags = flags,
	};

	return labyrinth_zone_create(&cfg);
}

/* ====================================================================
 * ctx: sleeping (KERNEL) allocations and normal-context calls from every
 * atomic context we can make; each must be refused, never sleep.
 * ==================================================================== */
static struct labyrinth_zone *ctx_z, *ctx_victim;
static struct atk_rep ctx_rep;
static unsigned long ctx_probes;

static const unsigned int ctx_gfps[] = { LABYRINTH_GFP_KERNEL, LABYRINTH_GFP_BIT_SLEEP,
	LABYRINTH_GFP_BIT_SLEEP | LABYRINTH_GFP_BIT_GROW };
static const unsigned int ctx_quals[] = { 0, LABYRINTH_QUALITY_ZERO, LABYRINTH_QUALITY_TRACK,
	LABYRINTH_QUALITY_POISON };

/* In the atomic context: every may-sleep combination, and the
 * normal-context calls.  Results stored, checked outside. */
struct ctx_res {
	void *got[3][2][4];
	long rc[8];
	struct labyrinth_zone *created;
	unsigned long nvcsw;
};
static struct ctx_res ctx_r;

static void ctx_probe(struct ctx_res *r, bool all)
{
	struct labyrinth_zone_stats s;
	struct labyrinth_region_info ri;
	struct labyrinth_zone_config cfg = { .name = "atk-ctx-create", .pages = 64 };
	unsigned int g, o, q;

	for (g = 0; g < ARRAY_SIZE(ctx_gfps); g++)
		for (o = 0; o < 2; o++)
			for (q = 0; q < ARRAY_SIZE(ctx_quals); q++)
				r->got[g][o][q] = labyrinth_alloc_pages(ctx_z, ctx_gfps[g], o, ctx_quals[q]);
	if (!all)
		return;
	r->rc[0] = labyrinth_zone_stats(ctx_z, &s);
	r->rc[1] = labyrinth_zone_check(ctx_z);
	r->rc[2] = labyrinth_zone_shrink(ctx_z);
	r->rc[3] = labyrinth_zone_region_info(ctx_z, 0, &ri);
	r->rc[4] = labyrinth_zone_for_each_in_use(ctx_z, NULL, NULL);
	r->rc[5] = labyrinth_thread_release(ctx_z);
	r->created = labyrinth_zone_create(&cfg);
	labyrinth_zone_destroy(ctx_victim);
}

static void ctx_check(const char *where, struct ctx_res *r, bool all)
{
	unsigned int g, o, q, i;

	ctx_probes++;
	for (g = 0; g < ARRAY_SIZE(ctx_gfps); g++)
		for (o = 0; o < 2; o++)
			for (q = 0; q < ARRAY_SIZE(ctx_quals); q++)
				if (r->got[g][o][q]) {
					BREAK("ctx", "%s: gfp %#x order %u quality %#x gave a page", where, ctx_gfps[g], o,
					      ctx_quals[q]);
					labyrinth_free_pages(ctx_z, r->got[g][o][q], o);
				}
	if (!all)
		return;
	for (i = 0; i < 6; i++)
		if (r->rc[i] != -EDEADLK)
			BREAK("ctx", "%s: normal-context call %u returned %ld, want -EDEADLK", where, i, r->rc[i]);
	if (r->created) {
		BREAK("ctx", "%s: zone_create gave a zone", where);
		labyrinth_zone_destroy(r->created);
	}
	if (!labyrinth_zone_name(ctx_victim))
		BREAK("ctx", "%s: zone_destroy destroyed the victim", where);
}

static DEFINE_SPINLOCK(ctx_lock);
static DEFINE_RAW_SPINLOCK(ctx_raw);

static enum hrtimer_restart ctx_hard_fn(struct hrtimer *t)
{
	ctx_probe(&ctx_r, true);
	return HRTIMER_NORESTART;
}

static struct timer_list ctx_timer;
static volatile bool ctx_timer_done;
static void ctx_timer_fn(struct timer_list *t)
{
	ctx_probe(&ctx_r, true);
	WRITE_ONCE(ctx_timer_done, true);
}

/* A report handler that itself asks for a KERNEL page (it runs inside a
 * labyrinth call): once per CPU level, refused. */
static atomic_t ctx_in_handler = ATOMIC_INIT(0);
static void *ctx_handler_page;
static int ctx_handler_preemptible;
static void ctx_handler(const struct labyrinth_report *r, void *arg)
{
	atk_report(r, arg);
	if (atomic_cmpxchg(&ctx_in_handler, 1, 2) == 1) {
		ctx_handler_preemptible = preemptible();
		ctx_handler_page = labyrinth_alloc_pages(ctx_z, LABYRINTH_GFP_KERNEL, 0, 0);
	}
}

#ifdef CONFIG_X86
static volatile bool ctx_nmi_armed, ctx_nmi_done;
static int ctx_nmi_fn(unsigned int type, struct pt_regs *regs)
{
	if (!READ_ONCE(ctx_nmi_armed))
		return NMI_DONE;
	WRITE_ONCE(ctx_nmi_armed, false);
	ctx_probe(&ctx_r, true);
	WRITE_ONCE(ctx_nmi_done, true);
	return NMI_HANDLED;
}
#endif

#define CTX_RUN(label, enter, leave)                                 \
	do {                                                         \
		memset(&ctx_r, 0, sizeof(ctx_r));                    \
		nv = current->nvcsw;                                 \
		enter;                                               \
		ctx_probe(&ctx_r, true);                             \
		leave;                                               \
		if (current->nvcsw != nv)                            \
			BREAK("ctx", "%s: slept (nvcsw %lu -> %lu)", label, nv, current->nvcsw); \
		ctx_check(label, &ctx_r, true);                      \
	} while (0)

static void atk_ctx(void)
{
	unsigned long nv, flags;
	struct hrtimer ht;
	void *warm[8];
	int i;

	ctx_z = atk_zone("atk-ctx", 256, 512, 0);
	ctx_victim = atk_zone("atk-ctx-victim", 64, 0, 0);
	if (!ctx_z || !ctx_victim) {
		BREAK("ctx", "zones not created");
		return;
	}
	labyrinth_zone_set_report_handler(ctx_z, atk_report, &ctx_rep);
	/* Pages at hand on this CPU's magazines. */
	for (i = 0; i < 8; i++)
		warm[i] = labyrinth_alloc_pages(ctx_z, LABYRINTH_GFP_ATOMIC, 0, 0);
	for (i = 0; i < 8; i++)
		labyrinth_free_pages(ctx_z, warm[i], 0);

	CTX_RUN("spin_lock", spin_lock(&ctx_lock), spin_unlock(&ctx_lock));
	CTX_RUN("spin_lock_irqsave", spin_lock_irqsave(&ctx_lock, flags), spin_unlock_irqrestore(&ctx_lock, flags));
	CTX_RUN("raw_spin_lock", raw_spin_lock(&ctx_raw), raw_spin_unlock(&ctx_raw));
	CTX_RUN("local_irq_disable", local_irq_disable(), local_irq_enable());
	CTX_RUN("local_bh_disable", local_bh_disable(), local_bh_enable());
	CTX_RUN("preempt_disable", preempt_disable(), preempt_enable());
	CTX_RUN("rcu_read_lock", rcu_read_lock(), rcu_read_unlock());
	CTX_RUN("rcu_read_lock_bh", rcu_read_lock_bh(), rcu_read_unlock_bh());
	CTX_RUN("rcu_read_lock_sched", rcu_read_lock_sched(), rcu_read_unlock_sched());
	CTX_RUN("rcu+spin nested", (rcu_read_lock(), spin_lock(&ctx_lock)),
		(spin_unlock(&ctx_lock), rcu_read_unlock()));

	/* softirq (timer_list) */
	memset(&ctx_r, 0, sizeof(ctx_r));
	ctx_timer_done = false;
	timer_setup_on_stack(&ctx_timer, ctx_timer_fn, 0);
	mod_timer(&ctx_timer, jiffies + 1);
	while (!READ_ONCE(ctx_timer_done))
		msleep(1);
	del_timer_sync(&ctx_timer);
	destroy_timer_on_stack(&ctx_timer);
	ctx_check("softirq timer", &ctx_r, true);

	/* hard IRQ */
	memset(&ctx_r, 0, sizeof(ctx_r));
	hrtimer_init_on_stack(&ht, CLOCK_MONOTONIC, HRTIMER_MODE_REL_HARD);
	ht.function = ctx_hard_fn;
	hrtimer_start(&ht, ns_to_ktime(100000), HRTIMER_MODE_REL_HARD);
	msleep(20);
	hrtimer_cancel(&ht);
	destroy_hrtimer_on_stack(&ht);
	ctx_check("hardirq", &ctx_r, true);

#ifdef CONFIG_X86
	/* NMI */
	memset(&ctx_r, 0, sizeof(ctx_r));
	if (register_nmi_handler(NMI_LOCAL, ctx_nmi_fn, 0, "atk_ctx") == 0) {
		ctx_nmi_done = false;
		ctx_nmi_armed = true;
		preempt_disable();
		apic->send_IPI_self(NMI_VECTOR);
		preempt_enable();
		for (i = 0; i < 200 && !READ_ONCE(ctx_nmi_done); i++)
			msleep(1);
		ctx_nmi_armed = false;
		unregister_nmi_handler(NMI_LOCAL, "atk_ctx");
		if (ctx_nmi_done)
			ctx_check("nmi", &ctx_r, true);
		else
			pr_info("labyrinth_attack: ctx: the NMI did not arrive\n");
	}
#endif

	/* inside a report handler (nested in a labyrinth call) */
	labyrinth_zone_set_report_handler(ctx_z, ctx_handler, &ctx_rep);
	{
		void *p = labyrinth_alloc_pages(ctx_z, LABYRINTH_GFP_ATOMIC, 0, 0);

		labyrinth_free_pages(ctx_z, p, 0);
		atomic_set(&ctx_in_handler, 1);
		nv = current->nvcsw;
		labyrinth_free_pages(ctx_z, p, 0); /* double free: report -> handler */
		if (ctx_handler_page && !ctx_handler_preemptible)
			BREAK("ctx", "report handler (not preemptible): a KERNEL allocation gave a page");
		pr_info("labyrinth_attack: ctx: report handler ran preemptible=%d, its KERNEL allocation %s\n",
			ctx_handler_preemptible, ctx_handler_page ? "gave a page" : "was refused");
		if (ctx_handler_page)
			labyrinth_free_pages(ctx_z, ctx_handler_page, 0);
		if (atomic_read(&ctx_in_handler) != 2)
			BREAK("ctx", "report handler was not called (%d)", atomic_read(&ctx_in_handler));
		if (current->nvcsw != nv)
			BREAK("ctx", "report handler: slept");
		ctx_probes++;
	}
	labyrinth_zone_set_report_handler(ctx_z, atk_report, &ctx_rep);

	if (labyrinth_zone_check(ctx_z) != 0)
		BREAK("ctx", "zone_check %ld", labyrinth_zone_check(ctx_z));
	pr_info("labyrinth_attack: ctx: %lu contexts probed, %d reports (EINVAL %d, EDEADLK %d), breaks so far %d\n",
		ctx_probes, atomic_read(&ctx_rep.total), atomic_read(&ctx_rep.errs[EINVAL]),
		atomic_read(&ctx_rep.errs[EDEADLK]), atomic_read(&atk_breaks));
	labyrinth_zone_destroy(ctx_victim);
	labyrinth_zone_destroy(ctx_z);
}

/* ====================================================================
 * handles: bogus and dead handles to every call; a byte copy of a live
 * handle (readable memory that was never a handle).
 * ==================================================================== */
static int hd_fn(const struct labyrinth_page_info *i, void *a) { return 0; }

static void hd_all(const char *what, struct labyrinth_zone *h, bool readable, void *page)
{
	struct labyrinth_zone_stats s;
	struct labyrinth_region_info ri;
	struct labyrinth_page_info pi;
	struct labyrinth_zero_stock_stats zs;
	u64 phys;
	void *v;
	long rc;

#define HD(expr) do { rc = (long)(expr); if (rc != -EBADF) BREAK("handles", "%s: %s returned %ld", what, #expr, rc); } while (0)
	HD(labyrinth_zone_stats(h, &s));
	HD(labyrinth_zone_check(h));
	HD(labyrinth_zone_shrink(h));
	HD(labyrinth_zone_region_info(h, 0, &ri));
	HD(labyrinth_zone_for_each_in_use(h, hd_fn, NULL));
	HD(labyrinth_thread_release(h));
	HD(labyrinth_zone_set_report_handler(h, atk_report, NULL));
	HD(labyrinth_page_info(h, page, &pi));
	HD(labyrinth_register_page(h, page));
	HD(labyrinth_register_page_tag(h, page, 7));
	HD(labyrinth_zone_zero_stock(h, &zs));
	HD(labyrinth_virt_to_phys(h, page, &phys));
	HD(labyrinth_phys_to_virt(h, 0x1000, &v));
	HD(labyrinth_phys_contiguous(h, page, 0));
	if (labyrinth_zone_name(h))
		BREAK("handles", "%s: zone_name gave a name", what);
	if ((v = labyrinth_alloc_pages(h, LABYRINTH_GFP_ATOMIC, 1, 0)))
		BREAK("handles", "%s: order-1 alloc gave %p", what, v);
	if ((v = labyrinth_alloc_pages(h, LABYRINTH_GFP_KERNEL, 1, LABYRINTH_QUALITY_ZERO)))
		BREAK("handles", "%s: order-1 KERNEL alloc gave %p", what, v);
	if (readable) {
		/* The inlined fast paths read the handle: readable only. */
		if ((v = labyrinth_alloc_pages(h, LABYRINTH_GFP_ATOMIC, 0, 0)))
			BREAK("handles", "%s: order-0 alloc gave %p", what, v);
		if ((v = labyrinth_alloc_pages(h, LABYRINTH_GFP_ATOMIC, 0, LABYRINTH_QUALITY_ZERO)))
			BREAK("handles", "%s: order-0 ZERO alloc gave %p", what, v);
		if ((v = labyrinth_void_allocpage_gfpatomic_extra_quality(h, 0)))
			BREAK("handles", "%s: seed macro gave %p", what, v);
		HD(labyrinth_free_pages(h, page, 0));
	}
	labyrinth_zone_destroy(h);
#undef HD
}

static void atk_handles(void)
{
	struct labyrinth_zone *z = atk_zone("atk-hd", 128, 0, 0), *dead;
	void *page, *junk0, *junkff, *vm, *clone, *p;
	int rc, served = 0, i;

	if (!z) {
		BREAK("handles", "no zone");
		return;
	}
	page = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
	junk0 = kzalloc(4096, GFP_KERNEL);
	junkff = kmalloc(4096, GFP_KERNEL);
	memset(junkff, 0xff, 4096);
	vm = vmalloc(8192);
	vfree(vm);

	hd_all("NULL", NULL, true, page);
	hd_all("kzalloc buffer", junk0, true, page);
	hd_all("0xff buffer", junkff, true, page);
	hd_all("handle+1", (void *)((char *)z + 1), true, page);
	hd_all("handle+8", (void *)((char *)z + 8), true, page);
	hd_all("zone page", page, true, page);
	hd_all("kernel text", (void *)atk_handles, true, page);
	hd_all("ERR_PTR(-ENOMEM)", ERR_PTR(-ENOMEM), false, page);
	hd_all("user address 0x1000", (void *)0x1000UL, false, page);
	hd_all("LIST_POISON1", (void *)LIST_POISON1, false, page);
	hd_all("vfree'd", vm, false, page);

	/* A byte copy of a live handle. */
	clone = kmalloc(1024, GFP_KERNEL);
	memcpy(clone, z, 1024);
	for (i = 0; i < 16; i++) {
		p = labyrinth_alloc_pages(clone, LABYRINTH_GFP_ATOMIC, 0, 0);
		if (p) {
			served++;
			rc = labyrinth_free_pages(clone, p, 0);
			if (rc)
				labyrinth_free_pages(z, p, 0);
			else
				served++;
		}
	}
	p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
	rc = labyrinth_free_pages(clone, p, 0);
	if (rc) labyrinth_free_pages(z, p, 0); else served++;
	if (served)
		BREAK("handles", "a byte copy of a live handle (kmalloc'd memory, never a handle) was served %d time(s): alloc/free through it succeeded",
		      served);
	kfree(clone);

	labyrinth_free_pages(z, page, 0);
	labyrinth_zone_destroy(z);
	dead = z;
	/* Dead handle: everything refused; destroy twice. */
	page = NULL;
	{
		struct labyrinth_zone *z2 = atk_zone("atk-hd2", 64, 0, 0);

		page = labyrinth_alloc_pages(z2, LABYRINTH_GFP_ATOMIC, 0, 0);
		hd_all("dead handle", dead, true, page);
		hd_all("dead handle again", dead, true, page);
		rc = labyrinth_free_pages(dead, page, 0);
		if (rc != -EBADF)
			BREAK("handles", "free of a live zone's page via dead handle: %d", rc);
		if (labyrinth_zone_check(z2) != 0)
			BREAK("handles", "zone 2 check %ld", labyrinth_zone_check(z2));
		labyrinth_free_pages(z2, page, 0);
		labyrinth_zone_destroy(z2);
	}
	kfree(junk0);
	kfree(junkff);
	pr_info("labyrinth_attack: handles: done, breaks so far %d\n", atomic_read(&atk_breaks));
}

/* A byte copy of a handle kept past the zone's destroy, used on the CPU
 * whose current zone it was.  Run last: it may oops. */
static long hd2_fn(void *a)
{
	struct labyrinth_zone *z = atk_zone("atk-hd-stale", 128, 0, 0);
	void *clone = kmalloc(1024, GFP_KERNEL), *p, *q;
	int rc;

	memcpy(clone, z, 1024);
	p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0); /* z is this CPU's current zone */
	q = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
	labyrinth_free_pages(z, p, 0);
	labyrinth_zone_destroy(z);
	pr_info("labyrinth_attack: handles-stale: zone destroyed; allocating through a byte copy of its handle on the same CPU\n");
	p = labyrinth_alloc_pages(clone, LABYRINTH_GFP_ATOMIC, 0, 0);
	if (p)
		BREAK("handles-stale", "alloc through a stale copy of a destroyed zone's handle gave %p", p);
	rc = labyrinth_free_pages(clone, q, 0);
	if (rc != -EBADF)
		BREAK("handles-stale", "free through the stale copy returned %d", rc);
	kfree(clone);
	return 0;
}

static void atk_handles_stale(void)
{
	work_on_cpu(0, hd2_fn, NULL);
	pr_info("labyrinth_attack: handles-stale: done, breaks so far %d\n", atomic_read(&atk_breaks));
}

/* Zone names: long ones that collide once truncated, a slash, format
 * characters, a newline. */
static struct labyrinth_zone *nm_z[6];
static void atk_names(void)
{
	static const char *const names[6] = {
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1",
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx2",
		"a/b", "%px%px%s%n", "nl\nlabyrinth: fake line", "" };
	int i;

	for (i = 0; i < 6; i++) {
		nm_z[i] = atk_zone(names[i], 64, 0, 0);
		pr_info("labyrinth_attack: names: zone %d %s, name '%s'\n", i, nm_z[i] ? "created" : "refused",
			nm_z[i] ? labyrinth_zone_name(nm_z[i]) : "-");
		if (nm_z[i]) {
			void *p = labyrinth_alloc_pages(nm_z[i], LABYRINTH_GFP_ATOMIC, 0, 0);

			labyrinth_free_pages(nm_z[i], p, 0);
			labyrinth_free_pages(nm_z[i], p, 0); /* one report line with the name */
		}
	}
}

static void atk_names_end(void)
{
	int i;

	for (i = 0; i < 6; i++)
		if (nm_z[i])
			labyrinth_zone_destroy(nm_z[i]);
}

/* ====================================================================
 * dfrace: order 0..2 blocks of a two-region zone (some tracked through the
 * macro, some re-registered) freed twice at once from two CPUs (kthread +
 * hard-IRQ hrtimer at depth 0 on the other CPU); a third context
 * registers the block meanwhile.  Ownership bitmap at every allocation.
 * ==================================================================== */
#define DF_PAGES 512
static struct {
	struct labyrinth_zone *z;
	unsigned long *own;	/* per page, by address offset in a sorted table */
	void *base[4];
	size_t pages[4];
	unsigned int nreg;
	void *volatile mailbox;
	unsigned int mb_order;
	atomic_t hits, timer_rc0, timer_eal, timer_other, busy;
	atomic_t twice;
	struct hrtimer t[NR_CPUS];
	bool stop;
	unsigned long rounds, both0, one0, proc_eal, reg_busy;
	struct task_struct *reg;
} df;

static long df_index(void *p)
{
	unsigned int i;
	long off = 0;

	for (i = 0; i < df.nreg; i++) {
		if (p >= df.base[i] && p < df.base[i] + (df.pages[i] << PAGE_SHIFT))
			return off + ((p - df.base[i]) >> PAGE_SHIFT);
		off += df.pages[i];
	}
	return -1;
}

static void df_take(void *p, unsigned int order)
{
	long i = df_index(p), k;

	if (i < 0) {
		BREAK("dfrace", "page %p not in any region", p);
		return;
	}
	for (k = 0; k < (1L << order); k++)
		if (test_and_set_bit(i + k, df.own))
			if (atomic_inc_return(&df.twice) <= 3)
				BREAK("dfrace", "page %ld (order %u block) handed out while held", i + k, order);
}

static void df_give(void *p, unsigned int order)
{
	long i = df_index(p), k;

	for (k = 0; i >= 0 && k < (1L << order); k++)
		clear_bit(i + k, df.own);
}

static enum hrtimer_restart df_timer_fn(struct hrtimer *t)
{
	void *p = xchg(&df.mailbox, NULL);

	if (p) {
		int rc = labyrinth_free_pages(df.z, p, df.mb_order);

		atomic_inc(&df.hits);
		if (rc == 0)
			atomic_inc(&df.timer_rc0);
		else if (rc == -EALREADY)
			atomic_inc(&df.timer_eal);
		else if (rc == -EBUSY)
			atomic_inc(&df.busy);
		else
			atomic_inc(&df.timer_other);
	}
	if (READ_ONCE(df.stop))
		return HRTIMER_NORESTART;
	hrtimer_forward_now(t, ns_to_ktime(7000 + (get_random_u32() & 8191)));
	return HRTIMER_RESTART;
}

static void *volatile df_regp;
static int df_reg_fn(void *a)
{
	while (!kthread_should_stop()) {
		void *p = READ_ONCE(df_regp);

		if (p)
			labyrinth_register_page_tag(df.z, p, 5);
		cond_resched();
	}
	return 0;
}

static atomic_t df_info_reads, df_info_sites, df_info_callers;
static struct task_struct *df_rd;
static int df_rd_fn(void *a)
{
	char sym[KSYM_SYMBOL_LEN];

	while (!kthread_should_stop()) {
		unsigned int i;

		for (i = 0; i < df.nreg; i++) {
			size_t k;

			for (k = 0; k < df.pages[i]; k++) {
				struct labyrinth_page_info pi;

				if (labyrinth_page_info(df.z, df.base[i] + (k << PAGE_SHIFT), &pi))
					continue;
				atomic_inc(&df_info_reads);
				if (pi.site) {
					atomic_inc(&df_info_sites);
					if (pi.site->module != THIS_MODULE || !strstr(pi.site->file, "attack_module.c"))
						BREAK("tornrec2", "page_info gave a site %p not ours", pi.site);
				}
				if (pi.caller) {
					atomic_inc(&df_info_callers);
					if (pi.caller == (const void *)pi.site ||
					    (pi.site && pi.caller >= (const void *)pi.site - 64 && pi.caller < (const void *)pi.site + 64))
						BREAK("tornrec2", "caller %p is a site", pi.caller);
					sprint_symbol(sym, (unsigned long)pi.caller);
					if (!strstr(sym, "labyrinth_attack"))
						if (atomic_inc_return(&df_info_callers) < 1000000 && printk_ratelimit())
							BREAK("tornrec2", "caller %s not in this module", sym);
				}
			}
			cond_resched();
		}
	}
	return 0;
}

static long df_timers_start(void *arg)
{
	struct hrtimer *t = &df.t[smp_processor_id()];

	hrtimer_init(t, CLOCK_MONOTONIC, HRTIMER_MODE_REL_PINNED_HARD);
	t->function = df_timer_fn;
	hrtimer_start(t, ns_to_ktime(10000), HRTIMER_MODE_REL_PINNED_HARD);
	return 0;
}

static struct atk_rep df_rep;
static long df_release(void *a)
{
	return labyrinth_thread_release(df.z);
}

static void atk_dfrace(void)
{
	struct labyrinth_region_info ri;
	struct labyrinth_zone_stats s;
	unsigned long deadline;
	unsigned int i, cpu;
	void *p;
	static void *all[DF_PAGES * 2];
	long n = 0, late;

	memset(&df, 0, sizeof(df));
	df.z = atk_zone("atk-df", 256, 512, LABYRINTH_ZONE_NO_WARDEN);
	if (!df.z) {
		BREAK("dfrace", "no zone");
		return;
	}
	labyrinth_zone_set_report_handler(df.z, atk_report, &df_rep);
	/* Grow to a second region with KERNEL allocations. */
	for (i = 0; i < 300; i++) {
		p = labyrinth_alloc_pages(df.z, LABYRINTH_GFP_KERNEL, 0, 0);
		if (p)
			all[n++] = p;
	}
	while (n)
		labyrinth_free_pages(df.z, all[--n], 0);
	labyrinth_zone_stats(df.z, &s);
	df.nreg = min_t(unsigned, s.regions, 4);
	for (i = 0; i < df.nreg; i++) {
		labyrinth_zone_region_info(df.z, i, &ri);
		df.base[i] = ri.start;
		df.pages[i] = ri.pages;
	}
	df.own = bitmap_zalloc(DF_PAGES * 2, GFP_KERNEL);
	pr_info("labyrinth_attack: dfrace: zone of %zu pages in %zu region(s)\n", s.total_pages, s.regions);

	df.reg = kthread_run(df_reg_fn, NULL, "atk-df-reg");
	df_rd = kthread_run(df_rd_fn, NULL, "atk-df-rd");
	for_each_online_cpu(cpu)
		work_on_cpu(cpu, df_timers_start, NULL);
	deadline = jiffies + seconds * HZ;
	while (time_before(jiffies, deadline)) {
		unsigned int r = get_random_u32(), order = r % 3;
		int rc;

		if (r & 0x100)
			p = labyrinth_alloc_pages(df.z, (r & 0x200) ? LABYRINTH_GFP_ATOMIC : LABYRINTH_GFP_KERNEL, order,
						  (r & 0x400) ? LABYRINTH_QUALITY_TRACK : 0);
		else {
			order = 0;
			p = labyrinth_void_allocpage_gfpatomic_extra_quality(df.z, 0);
		}
		if (!p)
			continue;
		df_take(p, order);
		if (r & 0x800)
			WRITE_ONCE(df_regp, p);
		if ((r & 0x7000) == 0)
			cond_resched();
		if ((r & 0x38000) == 0) {
			/* migrate: sleep a little while holding it */
			usleep_range(50, 100);
		}
		df_give(p, order);
		df.mb_order = order;
		smp_store_release(&df.mailbox, p);
		ndelay(r & 2047);
		do {
			rc = labyrinth_free_pages(df.z, p, order);
			if (rc == -EBUSY)
				df.reg_busy++;
		} while (rc == -EBUSY);
		WRITE_ONCE(df_regp, NULL);
		if (xchg(&df.mailbox, NULL)) {
			if (rc)
				BREAK("dfrace", "single free of order-%u block returned %d", order, rc);
		} else {
			/* a timer took it: wait for the counters */
			udelay(30);
			if (rc == -EALREADY)
				df.proc_eal++;
			else if (rc == 0)
				df.one0++;
			else
				BREAK("dfrace", "raced free returned %d", rc);
		}
		df.rounds++;
	}
	WRITE_ONCE(df.stop, true);
	for_each_online_cpu(cpu)
		hrtimer_cancel(&df.t[cpu]);
	kthread_stop(df.reg);
	kthread_stop(df_rd);
	pr_info("labyrinth_attack: dfrace: page_info reader: %d reads, %d with a site, %d with a caller\n",
		atomic_read(&df_info_reads), atomic_read(&df_info_sites), atomic_read(&df_info_callers));
	msleep(10);
	/* Release every CPU's cache, then every page must come out once. */
	for_each_online_cpu(cpu)
		work_on_cpu(cpu, df_release, NULL);
	bitmap_zero(df.own, DF_PAGES * 2);
	labyrinth_zone_stats(df.z, &s);
	n = 0;
	while ((p = labyrinth_alloc_pages(df.z, LABYRINTH_GFP_ATOMIC, 0, 0))) {
		df_take(p, 0);
		all[n++] = p;
		if (n >= ARRAY_SIZE(all))
			break;
	}
	late = atomic_read(&df_rep.errs[EALREADY]) - 0;
	if ((size_t)n != s.total_pages)
		BREAK("dfrace", "after the race %ld of %zu pages came out (in flight %zu, in use %zu)", n, s.total_pages,
		      s.in_flight_pages, s.in_use_pages);
	while (n)
		labyrinth_free_pages(df.z, all[--n], 0);
	/* Accounting: timer frees that returned 0 + process frees that returned
	 * 0 after a timer took it: each taken block must have exactly one
	 * success that was not refused later (a late report). */
	{
		long taken = atomic_read(&df.hits);
		long zeros = atomic_read(&df.timer_rc0) + df.one0;
		long eal_now = atomic_read(&df.timer_eal) + df.proc_eal;
		long reports = atomic_read(&df_rep.errs[EALREADY]);

		if (atomic_read(&df.timer_other))
			BREAK("dfrace", "%d timer frees returned an unexpected errno", atomic_read(&df.timer_other));
		if (zeros - (reports - eal_now) != taken)
			BREAK("dfrace", "taken %ld, zero returns %ld, EALREADY now %ld, EALREADY reports %ld: %ld block(s) freed twice unnoticed",
			      taken, zeros, eal_now, reports, zeros - (reports - eal_now) - taken);
		pr_info("labyrinth_attack: dfrace: %lu rounds, %ld raced by a timer (%ld refused at once, %ld late), -EBUSY retries %lu (timer %d), check %ld, misuse %llu\n",
			df.rounds, taken, eal_now, reports - eal_now, df.reg_busy, atomic_read(&df.busy),
			labyrinth_zone_check(df.z), s.misuse_reports);
		(void)late;
	}
	if (labyrinth_zone_check(df.z))
		BREAK("dfrace", "zone_check %ld", labyrinth_zone_check(df.z));
	labyrinth_zone_destroy(df.z);
	bitmap_free(df.own);
}

/* ====================================================================
 * reports: two CPUs flood one zone with double frees at once; printed
 * lines + suppressed counts must equal the reports (checked by /init from
 * dmesg, here we print the expected number).  Also 250 leaks at destroy.
 * ==================================================================== */
static struct labyrinth_zone *rp_z;
static void *rp_page;
static atomic_t rp_go;
static long rp_flood(void *arg)
{
	int i;

	atomic_inc(&rp_go);
	while (atomic_read(&rp_go) < 2)
		cpu_relax();
	for (i = 0; i < 40; i++)
		labyrinth_free_pages(rp_z, rp_page, 0);
	return 0;
}

static int rp_flood_thread(void *a)
{
	rp_flood(a);
	return 0;
}

static void atk_reports(void)
{
	struct labyrinth_zone_stats s;
	struct labyrinth_zone *lz;
	void *p;
	int i;

	rp_z = atk_zone("atk-rep", 64, 0, 0);
	rp_page = labyrinth_alloc_pages(rp_z, LABYRINTH_GFP_ATOMIC, 0, 0);
	labyrinth_free_pages(rp_z, rp_page, 0);
	atomic_set(&rp_go, 0);
	{
		struct work_struct w0;
		(void)w0;
	}
	/* two CPUs at once */
	if (num_online_cpus() >= 2) {
		struct task_struct *t = kthread_create(rp_flood_thread, NULL, "atk-rp");
		kthread_bind(t, 1);
		wake_up_process(t);
		work_on_cpu(0, rp_flood, NULL);
		msleep(50);
	}
	labyrinth_zone_stats(rp_z, &s);
	pr_info("labyrinth_attack: reports: atk-rep misuse_reports %llu (expect 80 double-free lines or suppressed counts)\n",
		s.misuse_reports);
	labyrinth_zone_destroy(rp_z);

	/* 250 leaks at destroy */
	lz = atk_zone("atk-leak", 512, 0, 0);
	for (i = 0; i < 250; i++) {
		p = labyrinth_alloc_pages(lz, LABYRINTH_GFP_ATOMIC, 0, 0);
		(void)p;
	}
	pr_info("labyrinth_attack: reports: atk-leak destroying with 250 pages in use\n");
	labyrinth_zone_destroy(lz);
}

/* ====================================================================
 * hotplug: workers allocate on every CPU (kthread per CPU + hard-IRQ
 * hrtimers), pages cross CPUs through a shared ring; /init offlines and
 * onlines CPU 1 meanwhile; verify stops them and checks that every page
 * comes out once.
 * ==================================================================== */
#define HP_RING 64
static struct {
	struct labyrinth_zone *z;
	void *ring[HP_RING];
	spinlock_t lock;
	unsigned int head;
	struct task_struct *w[4];
	struct hrtimer t[NR_CPUS];
	bool tstarted[NR_CPUS];
	bool stop;
	atomic64_t allocs, frees, nulls;
	unsigned long *own;
	void *base;
	size_t pages;
	struct atk_rep rep;
} hp;

static void hp_put(void *p)
{
	void *old;
	unsigned long f;

	spin_lock_irqsave(&hp.lock, f);
	old = hp.ring[hp.head];
	hp.ring[hp.head] = p;
	hp.head = (hp.head + 1) % HP_RING;
	spin_unlock_irqrestore(&hp.lock, f);
	if (old) {
		long i = (old - hp.base) >> PAGE_SHIFT;

		clear_bit(i, hp.own);
		if (labyrinth_free_pages(hp.z, old, 0))
			BREAK("hotplug", "free returned non-zero");
		atomic64_inc(&hp.frees);
	}
}

static void hp_alloc_one(unsigned int mode)
{
	void *p = mode == 0 ? labyrinth_alloc_pages(hp.z, LABYRINTH_GFP_ATOMIC, 0, 0)
		: mode == 1 ? labyrinth_void_allocpage_gfpatomic_extra_quality(hp.z, 0)
		: labyrinth_alloc_pages(hp.z, LABYRINTH_GFP_NOWAIT, 0, LABYRINTH_QUALITY_ZERO);

	if (!p) {
		atomic64_inc(&hp.nulls);
		return;
	}
	if (test_and_set_bit((p - hp.base) >> PAGE_SHIFT, hp.own))
		BREAK("hotplug", "page %ld handed out while held", (long)((p - hp.base) >> PAGE_SHIFT));
	atomic64_inc(&hp.allocs);
	hp_put(p);
}

static enum hrtimer_restart hp_timer_fn(struct hrtimer *t)
{
	hp_alloc_one(1);
	if (READ_ONCE(hp.stop))
		return HRTIMER_NORESTART;
	hrtimer_forward_now(t, ns_to_ktime(40000));
	return HRTIMER_RESTART;
}

static int hp_worker(void *arg)
{
	unsigned long i = 0;

	while (!kthread_should_stop()) {
		hp_alloc_one(i++ % 3);
		if ((i & 63) == 0)
			cond_resched();
		if ((i & 4095) == 0)
			labyrinth_thread_release(hp.z);
	}
	return 0;
}

static int hp_online(unsigned int cpu)
{
	if (cpu < NR_CPUS && !READ_ONCE(hp.stop)) {
		/* not started from here: timers are re-armed by the workers */
	}
	return 0;
}

static int hp_churn(void *arg)
{
	struct labyrinth_zone_config dc = { .name = "atk-hp-drained", .pages = 64, .reserve_pages = 4,
		.wait_timeout_ms = 2, .flags = LABYRINTH_ZONE_NO_WARDEN };
	struct labyrinth_zone *dz = labyrinth_zone_create(&dc);
	static void *held[64];
	int n = 0;
	void *p;

	while ((p = labyrinth_alloc_pages(dz, LABYRINTH_GFP_ATOMIC, 0, 0)) && n < 64)
		held[n++] = p;
	while (!kthread_should_stop()) {
		struct labyrinth_zone *z = atk_zone("atk-hp-churn", 64, 128, 0);
		void *q[8];
		int i;

		for (i = 0; i < 8; i++)
			q[i] = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, i & 1, 0);
		labyrinth_zone_check(z);
		labyrinth_zone_shrink(z);
		for (i = 0; i < 8; i++)
			labyrinth_free_pages(z, q[i], i & 1);
		labyrinth_thread_release(z);
		labyrinth_zone_destroy(z);
		/* a KERNEL allocation that sleeps (drained zone) and times out */
		p = labyrinth_alloc_pages(dz, LABYRINTH_GFP_KERNEL, 0, 0);
		if (p)
			BREAK("hotplug", "drained zone gave a page");
	}
	while (n)
		labyrinth_free_pages(dz, held[--n], 0);
	labyrinth_zone_destroy(dz);
	return 0;
}

static long hp_timer_start(void *arg)
{
	int cpu = smp_processor_id();

	hrtimer_init(&hp.t[cpu], CLOCK_MONOTONIC, HRTIMER_MODE_REL_PINNED_HARD);
	hp.t[cpu].function = hp_timer_fn;
	hrtimer_start(&hp.t[cpu], ns_to_ktime(40000), HRTIMER_MODE_REL_PINNED_HARD);
	hp.tstarted[cpu] = true;
	return 0;
}

static void atk_hotplug_start(void)
{
	struct labyrinth_region_info ri;
	int i;

	spin_lock_init(&hp.lock);
	hp.z = atk_zone("atk-hp", 256, 0, LABYRINTH_ZONE_NO_WARDEN);
	labyrinth_zone_set_report_handler(hp.z, atk_report, &hp.rep);
	labyrinth_zone_region_info(hp.z, 0, &ri);
	hp.base = ri.start;
	hp.pages = ri.pages;
	hp.own = bitmap_zalloc(hp.pages, GFP_KERNEL);
	{
		int c;

		for_each_online_cpu(c)
			work_on_cpu(c, hp_timer_start, NULL);
	}
	for (i = 0; i < 2; i++) {
		hp.w[i] = kthread_create(hp_worker, NULL, "atk-hp-%d", i);
		if (i == 0)
			kthread_bind(hp.w[i], 0);
		wake_up_process(hp.w[i]);	/* worker 1 unbound: migrates on offline */
	}
	hp.w[2] = kthread_create(hp_worker, NULL, "atk-hp-2");
	wake_up_process(hp.w[2]);
	hp.w[3] = kthread_run(hp_churn, NULL, "atk-hp-churn");
	pr_info("labyrinth_attack: hotplug: workers started on zone of %zu pages\n", hp.pages);
	(void)hp_online;
}

static long hp_release(void *a)
{
	return labyrinth_thread_release(hp.z);
}

static void atk_hotplug_verify(void)
{
	struct labyrinth_zone_stats s;
	void **all;
	long n = 0, i, chk;
	int cpu;
	void *p;

	WRITE_ONCE(hp.stop, true);
	for (i = 0; i < 4; i++)
		kthread_stop(hp.w[i]);
	for (cpu = 0; cpu < NR_CPUS; cpu++)
		if (hp.tstarted[cpu])
			hrtimer_cancel(&hp.t[cpu]);
	for (i = 0; i < HP_RING; i++)
		if (hp.ring[i]) {
			clear_bit((hp.ring[i] - hp.base) >> PAGE_SHIFT, hp.own);
			labyrinth_free_pages(hp.z, hp.ring[i], 0);
			hp.ring[i] = NULL;
		}
	for_each_online_cpu(cpu)
		work_on_cpu(cpu, hp_release, NULL);
	labyrinth_zone_stats(hp.z, &s);
	chk = labyrinth_zone_check(hp.z);
	all = kcalloc(hp.pages, sizeof(void *), GFP_KERNEL);
	while ((p = labyrinth_alloc_pages(hp.z, LABYRINTH_GFP_ATOMIC, 0, 0))) {
		if (test_and_set_bit((p - hp.base) >> PAGE_SHIFT, hp.own))
			BREAK("hotplug", "drain: page handed out twice");
		all[n++] = p;
		if (n >= hp.pages)
			break;
	}
	if (n != hp.pages)
		BREAK("hotplug", "after %lld allocations and CPU 1 offline/online cycles, %ld of %zu pages come out (in flight %zu, in use %zu, check %ld)",
		      (long long)atomic64_read(&hp.allocs), n, hp.pages, s.in_flight_pages, s.in_use_pages, chk);
	if (chk)
		BREAK("hotplug", "zone_check %ld", chk);
	if (atomic_read(&hp.rep.total))
		BREAK("hotplug", "%d misuse reports", atomic_read(&hp.rep.total));
	while (n)
		labyrinth_free_pages(hp.z, all[--n], 0);
	kfree(all);
	pr_info("labyrinth_attack: hotplug: %lld allocs, %lld frees, %lld NULLs; drained %zu/%zu, check %ld\n",
		(long long)atomic64_read(&hp.allocs), (long long)atomic64_read(&hp.frees),
		(long long)atomic64_read(&hp.nulls), hp.pages, hp.pages, chk);
	labyrinth_zone_destroy(hp.z);
	hp.z = NULL;
	bitmap_free(hp.own);
}

/* handler: a report handler in this module on the example driver's zone
 * (which this module did not create); the module then unloads. */
struct labyrinth_zone *labyrinth_example_zone(void);
static struct atk_rep hl_rep;
static void atk_handler(void)
{
	struct labyrinth_zone *(*zone_of)(void) = symbol_get(labyrinth_example_zone);
	int rc;

	if (!zone_of) {
		pr_info("labyrinth_attack: handler: the example driver is not loaded\n");
		return;
	}
	rc = labyrinth_zone_set_report_handler(zone_of(), atk_report, &hl_rep);
	symbol_put(labyrinth_example_zone);
	pr_info("labyrinth_attack: handler: set this module's report handler on the example's zone: %d\n", rc);
}

/* leakzone: a zone this module creates and never destroys (misuse), with
 * no seed-macro record: labyrinth.ko must stay loaded. */
static void atk_leakzone(void)
{
	struct labyrinth_zone *z = atk_zone("atk-leaked", 64, 0, 0);
	void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);

	pr_info("labyrinth_attack: leakzone: zone %s left alive with a page %s\n", z ? "created" : "NOT created",
		p ? "in use" : "-");
}

/* burst: 30 zone-less reports (destroys of a non-handle), nothing after:
 * the summary must come at the next destroy or at labyrinth.ko's exit. */
static void atk_burst(void)
{
	static char junk[64];
	int i;

	for (i = 0; i < 30; i++)
		labyrinth_zone_destroy((struct labyrinth_zone *)junk);
	pr_info("labyrinth_attack: burst: 30 zone-less reports made\n");
}

/* leakloop: create/destroy cycles, free memory sampled (si_mem_available). */
static int loops = 300, vfirst;
module_param(vfirst, int, 0444);
module_param(loops, int, 0444);
static void atk_leakloop(void)
{
	int variant, i;

	for (variant = vfirst; variant < 5; variant++) {
		long before = si_mem_available(), after, fails = 0;

		for (i = 0; i < loops; i++) {
			struct labyrinth_zone *z = atk_zone("atk-ll", 64, variant >= 1 ? 128 : 0,
							    variant == 4 ? LABYRINTH_ZONE_NO_WARDEN : 0);
			void *q[8];
			int k;

			if (!z) {
				fails++;
				continue;
			}
			if (variant >= 1)
				for (k = 0; k < 8; k++)
					q[k] = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, k & 1, 0);
			if (variant >= 1 && variant != 2)
				for (k = 0; k < 8; k++)
					labyrinth_free_pages(z, q[k], k & 1);
			if (variant == 2) {	/* grow to a second region, shrink */
				static void *g[200];
				for (k = 0; k < 100; k++)
					g[k] = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 0, 0);
				for (k = 0; k < 100; k++)
					labyrinth_free_pages(z, g[k], 0);
				for (k = 0; k < 8; k++)
					labyrinth_free_pages(z, q[k], k & 1);
				labyrinth_zone_shrink(z);
			}
			if (variant == 3)
				labyrinth_thread_release(z);
			labyrinth_zone_destroy(z);
			if ((i & 15) == 0)
				cond_resched();
		}
		after = si_mem_available();
		pr_info("labyrinth_attack: leakloop: variant %d: %d cycles, %ld failed, available %ld -> %ld pages (%ld per cycle)\n",
			variant, loops, fails, before, after, (before - after) / (loops ? loops : 1));
		if (before - after > (long)loops * 4)
			BREAK("leakloop", "variant %d: %ld pages gone over %d create/destroy cycles", variant,
			      before - after, loops);
	}
}

/* control: what a zone's life does to the page allocator, without
 * labyrinth: a 2 MiB block split into pages (64 kept), metadata vzalloc'd,
 * a kthread started and stopped, all freed again. */
static int ctl_thread(void *a)
{
	while (!kthread_should_stop())
		schedule_timeout_interruptible(HZ / 100);
	return 0;
}

static void atk_control(void)
{
	int i;

	for (i = 0; i < loops; i++) {
		struct page *pg = alloc_pages(GFP_KERNEL | __GFP_ZERO | __GFP_NOWARN | __GFP_RETRY_MAYFAIL, 9);
		void *meta = vzalloc(64 << 10), *meta2 = vzalloc(16 << 10);
		struct task_struct *t = kthread_run(ctl_thread, NULL, "atk-ctl");
		unsigned long k;

		if (!pg) {
			pr_info("labyrinth_attack: control: order-9 allocation failed at cycle %d\n", i);
			vfree(meta); vfree(meta2);
			if (!IS_ERR(t)) kthread_stop(t);
			break;
		}
		split_page(pg, 9);
		for (k = 64; k < 512; k++)
			__free_page(pg + k);
		msleep(1);
		if (!IS_ERR(t))
			kthread_stop(t);
		vfree(meta2);
		vfree(meta);
		free_pages_exact(page_address(pg), 64 * PAGE_SIZE);
	}
	pr_info("labyrinth_attack: control: %d cycles\n", i);
}

/* busy: a block's free raced by a tight loop of labyrinth_register_page
 * on another CPU (the -EBUSY path); nothing else allocates. */
static long bz_release(void *a);
static struct {
	struct labyrinth_zone *z;
	void *volatile p;
	volatile unsigned int order;
	volatile bool stop;
	atomic_t hammering;
	unsigned long rounds, busy, bad_state, reg_ok, reg_enoent, reg_other;
	int reg_other_rc;
	struct atk_rep rep;
} bz;

static int bz_reg(void *a)
{
	while (!READ_ONCE(bz.stop)) {
		void *p = READ_ONCE(bz.p);
		int rc;

		if (!p) {
			cpu_relax();
			continue;
		}
		atomic_inc(&bz.hammering);
		rc = labyrinth_register_page_tag(bz.z, p, 9);
		if (rc == 0)
			bz.reg_ok++;
		else if (rc == -ENOENT)
			bz.reg_enoent++;
		else {
			bz.reg_other++;
			bz.reg_other_rc = rc;
		}
	}
	return 0;
}

static long bz_release(void *a)
{
	return labyrinth_thread_release(bz.z);
}

static long busy_main(void *unused)
{
	struct task_struct *t;
	unsigned long deadline;
	struct labyrinth_zone_stats s;
	static void *all[1024];
	long n = 0;
	void *p;

	bz.z = atk_zone("atk-busy", 256, 0, LABYRINTH_ZONE_NO_WARDEN);
	labyrinth_zone_set_report_handler(bz.z, atk_report, &bz.rep);
	t = kthread_create(bz_reg, NULL, "atk-bz");
	kthread_bind(t, 1);
	wake_up_process(t);
	deadline = jiffies + seconds * HZ;
	preempt_disable();	/* stay on this CPU (0 or not 1 mostly) */
	preempt_enable();
	while (time_before(jiffies, deadline)) {
		unsigned int r = get_random_u32(), order = r % 3;
		struct labyrinth_page_info pi;
		int rc, h;

		p = (r & 8) ? labyrinth_alloc_pages(bz.z, LABYRINTH_GFP_ATOMIC, order, (r & 16) ? LABYRINTH_QUALITY_TRACK : 0)
			    : labyrinth_void_allocpage_gfpatomic_extra_quality(bz.z, 0);
		if (!(r & 8))
			order = 0;
		if (!p)
			continue;
		h = atomic_read(&bz.hammering);
		WRITE_ONCE(bz.p, p);
		while (atomic_read(&bz.hammering) < h + 2 && time_before(jiffies, deadline))
			cpu_relax();
		do {
			rc = labyrinth_free_pages(bz.z, p, order);
			if (rc == -EBUSY)
				bz.busy++;
		} while (rc == -EBUSY);
		if (rc)
			BREAK("busy", "free of an order-%u block raced by register returned %d", order, rc);
		WRITE_ONCE(bz.p, NULL);
		ndelay(200);
		if (labyrinth_page_info(bz.z, p, &pi) == 0 && pi.state == LABYRINTH_PAGE_IN_USE) {
			if (++bz.bad_state <= 3)
				BREAK("busy", "a freed order-%u block reads as in use (tag %u)", order, pi.tag);
		}
		bz.rounds++;
		if ((bz.rounds & 255) == 0)
			cond_resched();
	}
	WRITE_ONCE(bz.stop, true);
	kthread_stop(t);
	bz_release(NULL);	/* we are on CPU 0 */
	work_on_cpu(1, bz_release, NULL);
	labyrinth_zone_stats(bz.z, &s);
	while ((p = labyrinth_alloc_pages(bz.z, LABYRINTH_GFP_ATOMIC, 0, 0)) && n < 1024)
		all[n++] = p;
	if ((size_t)n != s.total_pages)
		BREAK("busy", "%ld of %zu pages came out after the race", n, s.total_pages);
	while (n)
		labyrinth_free_pages(bz.z, all[--n], 0);
	if (bz.reg_other)
		BREAK("busy", "%lu registers returned an unexpected %d", bz.reg_other, bz.reg_other_rc);
	pr_info("labyrinth_attack: busy: %lu rounds, %lu -EBUSY, registers ok %lu, ENOENT %lu, other %lu, reports %d, check %ld\n",
		bz.rounds, bz.busy, bz.reg_ok, bz.reg_enoent, bz.reg_other, atomic_read(&bz.rep.total),
		labyrinth_zone_check(bz.z));
	if (labyrinth_zone_check(bz.z))
		BREAK("busy", "zone_check %ld", labyrinth_zone_check(bz.z));
	labyrinth_zone_destroy(bz.z);
	return 0;
}

static void atk_busy(void)
{
	work_on_cpu(0, busy_main, NULL);
}

static int verify_set(const char *val, const struct kernel_param *kp)
{
	if (hp.z)
		atk_hotplug_verify();
	pr_info("labyrinth_attack: verify done: %d break(s)\n", atomic_read(&atk_breaks));
	return 0;
}
static const struct kernel_param_ops verify_ops = { .set = verify_set };
module_param_cb(verify, &verify_ops, NULL, 0200);

static int __init atk_init(void)
{
	if (strstr(which, "ctx"))
		atk_ctx();
	if (strstr(which, "handles"))
		atk_handles();
	if (strstr(which, "dfrace"))
		atk_dfrace();
	if (strstr(which, "reports"))
		atk_reports();
	if (strstr(which, "names"))
		atk_names();
	if (strstr(which, "hotplug"))
		atk_hotplug_start();
	if (strstr(which, "handler"))
		atk_handler();
	if (strstr(which, "leakzone"))
		atk_leakzone();
	if (strstr(which, "busy"))
		atk_busy();
	if (strstr(which, "control"))
		atk_control();
	if (strstr(which, "leakloop"))
		atk_leakloop();
	if (strstr(which, "burst"))
		atk_burst();
	if (strstr(which, "stale"))
		atk_handles_stale();
	pr_info("labyrinth_attack: init done (%s): %d break(s)\n", which, atomic_read(&atk_breaks));
	return 0;
}

static void __exit atk_exit(void)
{
	if (hp.z)
		atk_hotplug_verify();
	atk_names_end();
	pr_info("labyrinth_attack: unloaded, %d break(s)\n", atomic_read(&atk_breaks));
}

module_init(atk_init);
module_exit(atk_exit);
MODULE_DESCRIPTION("adversarial tests of labyrinth.ko");
MODULE_LICENSE("Dual MIT/GPL");
