// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * attack.c - labyrinth_attack.ko: an adversarial load on one small zone for
 * about 2 s, then invariant checks.  Rounds of two phases:
 *
 *  ALLOC  kthreads W0 (CPU 0) and W1 (CPU 1) allocate (ATOMIC/NOWAIT), the
 *         hrtimer (hard IRQ) allocates with the seed's macro; every page is
 *         test_and_set_bit in an ownership bitmap (a set bit: handed out
 *         while held) and published in a shared slot array.
 *  FREE   every bit is cleared, then each slot's page is freed by 2 or 3 of
 *         {W0, W1, timer} at once (W0 and W1 start together; the timer
 *         walks the slots backwards and lands inside their frees).
 *
 * No allocation runs in a FREE phase, so no stale double free can hit a
 * page someone was handed again: a set bit at allocation is the
 * allocator's doing.  Meanwhile a migration kthread allocates (ALLOC phase
 * only), moves itself to the other CPU with set_cpus_allowed_ptr and
 * frees, and reader kthreads on both CPUs call labyrinth_page_info on
 * every page of the zone: a site must be the macro's or NULL.
 */
#include <linux/module.h>
#include <linux/kthread.h>
#include <linux/hrtimer.h>
#include <linux/delay.h>
#include <linux/sched.h>
#include <linux/cpumask.h>
#include <linux/workqueue.h>
#include <linux/bitops.h>
#include <linux/string.h>
#include <linux/mm.h>

#include <labyrinth.h>

unsigned int labyrinth_kmod_depth(void); /* labyrinth_main.c */

#define AT "attack: "
#define NPAGES   256
#define MAXSLOTS 64
#define W_ALLOCS 12
#define T_ALLOCS 8
#define RUN_MS   2000

enum { PH_IDLE, PH_ALLOC, PH_CLOSED, PH_FREE, PH_STOP };
enum { F_W0 = 1, F_W1 = 2, F_T = 4 };

static struct {
	struct labyrinth_zone *z;
	unsigned long base;
	size_t npages;
	const struct labyrinth_site *site;	/* the macro's, from a first call */
	DECLARE_BITMAP(own, NPAGES);

	int phase, round;
	atomic_t active;		/* allocators inside an ALLOC phase */
	atomic_t alloc_done, free_ready, free_done;
	int w_alloc_round[2], w_free_round[2];
	int t_alloc_round, t_free_round, t_attempts, t_cursor;

	void *slot[MAXSLOTS];
	unsigned int mask[MAXSLOTS];
	atomic_t succ[MAXSLOTS];
	atomic_t nslots;
	int nfree;			/* slots of this FREE phase */

	struct hrtimer timer;
	struct task_struct *w[2], *mig, *rd[2];

	atomic_t violations, allocs, refusals, other_rc, late_ealready, other_reports;
	atomic_t bad_site, site_seen, infos, migrations, mig_allocs, timer_nested;
	long expected_dups, both_zero, no_free;
	int last_other_rc;
} A;

static void viol(const char *what, long idx)
{
	if (atomic_inc_return(&A.violations) <= 8)
		pr_err(AT "violation: %s (page %ld, phase %d, round %d)\n", what, idx,
		       READ_ONCE(A.phase), READ_ONCE(A.round));
}

static long page_idx(const void *p)
{
	unsigned long a = (unsigned long)p;

	if (a < A.base || (a - A.base) / PAGE_SIZE >= A.npages || !PAGE_ALIGNED(a))
		return -1;
	return (a - A.base) / PAGE_SIZE;
}

/* Any context: atomics only. */
static void at_report(const struct labyrinth_report *r, void *arg)
{
	if (r->kind == LABYRINTH_REPORT_BAD_FREE && r->err == -EALREADY) {
		atomic_inc(&A.late_ealready);
	} else if (r->kind != LABYRINTH_REPORT_NOTICE) {
		if (atomic_inc_return(&A.other_reports) <= 4)
			pr_err(AT "report kind %d err %d: %s\n", r->kind, r->err,
			       r->message ? r->message : "");
	}
}

/* The one macro site of this module. */
static noinline void *at_macro_alloc(void)
{
	return labyrinth_void_allocpage_gfpatomic_extra_quality(A.z, 0);
}

/* An allocation of ours: it must not be held. false: dropped. */
static bool take(void *p, unsigned int order)
{
	long i = page_idx(p), j;
	bool ok = true;

	atomic_inc(&A.allocs);
	if (i < 0) {
		viol("a page outside the zone's region", (long)p);
		return false;
	}
	for (j = 0; j < (1L << order); j++)
		if (test_and_set_bit(i + j, A.own)) {
			viol("page handed out while held", i + j);
			ok = false;
		}
	return ok;
}

static void give_back(void *p, unsigned int order)
{
	long i = page_idx(p), j;
	int rc;

	for (j = 0; j < (1L << order); j++)
		clear_bit(i + j, A.own);
	smp_mb();
	rc = labyrinth_free_pages(A.z, p, order);
	if (rc) {
		viol("a legitimate free refused", i);
		pr_err(AT "free rc %d\n", rc);
	}
}

static void publish(void *p)
{
	int i;

	if (!take(p, 0))
		return;
	i = atomic_inc_return(&A.nslots) - 1;
	if (i >= MAXSLOTS) {
		give_back(p, 0);
		return;
	}
	WRITE_ONCE(A.slot[i], p);
}

static bool alloc_enter(void)
{
	atomic_inc(&A.active);
	smp_mb__after_atomic();
	if (READ_ONCE(A.phase) == PH_ALLOC)
		return true;
	atomic_dec(&A.active);
	return false;
}

static void alloc_exit(void)
{
	smp_mb__before_atomic();
	atomic_dec(&A.active);
}

static void free_slot(int i, unsigned int who)
{
	int rc;

	if (!(A.mask[i] & who))
		return;
	rc = labyrinth_free_pages(A.z, A.slot[i], 0);
	if (rc == 0)
		atomic_inc(&A.succ[i]);
	else if (rc == -EALREADY)
		atomic_inc(&A.refusals);
	else {
		atomic_inc(&A.other_rc);
		WRITE_ONCE(A.last_other_rc, rc);
	}
}

static enum hrtimer_restart at_timer(struct hrtimer *t)
{
	int ph = READ_ONCE(A.phase), r, k;

	smp_rmb();
	r = READ_ONCE(A.round);
	if (labyrinth_kmod_depth())
		atomic_inc(&A.timer_nested);
	if (ph == PH_ALLOC && A.t_alloc_round != r) {
		if (alloc_enter()) {
			for (k = 0; k < 2 && A.t_attempts < T_ALLOCS; k++, A.t_attempts++) {
				void *p = at_macro_alloc();

				if (p)
					publish(p);
			}
			alloc_exit();
		}
		if (A.t_attempts >= T_ALLOCS) {
			A.t_attempts = 0;
			A.t_alloc_round = r;
			A.t_cursor = -1;
			atomic_inc(&A.alloc_done);
		}
	} else if (ph == PH_FREE && A.t_free_round != r) {
		if (A.t_cursor < 0)
			A.t_cursor = READ_ONCE(A.nfree) - 1;
		for (k = 0; k < 6 && A.t_cursor >= 0; k++, A.t_cursor--)
			free_slot(A.t_cursor, F_T);
		if (A.t_cursor < 0) {
			A.t_free_round = r;
			atomic_inc(&A.free_done);
		}
	}
	if (ph == PH_STOP)
		return HRTIMER_NORESTART;
	hrtimer_forward_now(t, ns_to_ktime(20000));
	return HRTIMER_RESTART;
}

static int at_worker(void *arg)
{
	int me = (long)arg;
	unsigned int who = me ? F_W1 : F_W0;
	unsigned long it = 0;

	while (!kthread_should_stop()) {
		int ph = READ_ONCE(A.phase), r, k;

		smp_rmb();
		r = READ_ONCE(A.round);
		if (ph == PH_ALLOC && A.w_alloc_round[me] != r) {
			if (alloc_enter()) {
				for (k = 0; k < W_ALLOCS; k++) {
					void *p = labyrinth_alloc_pages(A.z, (k + it) & 1 ?
							LABYRINTH_GFP_ATOMIC : LABYRINTH_GFP_NOWAIT, 0, 0);
					if (p)
						publish(p);
				}
				alloc_exit();
			}
			A.w_alloc_round[me] = r;
			atomic_inc(&A.alloc_done);
			it++;
		} else if (ph == PH_FREE && A.w_free_round[me] != r) {
			int n = READ_ONCE(A.nfree), i;

			atomic_inc(&A.free_ready);
			while (atomic_read(&A.free_ready) < 2 && !kthread_should_stop())
				cpu_relax();
			for (i = 0; i < n; i++)
				free_slot(i, who);
			A.w_free_round[me] = r;
			atomic_inc(&A.free_done);
		} else {
			cond_resched();
			cpu_relax();
		}
	}
	return 0;
}

static int at_migrator(void *arg)
{
	void *p[4];
	unsigned int ord[4];
	int k, n, from;

	while (!kthread_should_stop()) {
		n = 0;
		if (alloc_enter()) {
			for (k = 0; k < 4; k++) {
				unsigned int o = (k == 3) ? 1 : 0;
				void *q = labyrinth_alloc_pages(A.z, k & 1 ? LABYRINTH_GFP_ATOMIC :
								LABYRINTH_GFP_NOWAIT, o, 0);

				if (q && take(q, o)) {
					atomic_inc(&A.mig_allocs);
					p[n] = q;
					ord[n++] = o;
				}
			}
			alloc_exit();
		}
		from = raw_smp_processor_id();
		set_cpus_allowed_ptr(current, cpumask_of(from ^ 1));
		if (raw_smp_processor_id() != from)
			atomic_inc(&A.migrations);
		for (k = 0; k < n; k++)
			give_back(p[k], ord[k]);
		usleep_range(50, 200);
	}
	return 0;
}

static int at_reader(void *arg)
{
	struct labyrinth_page_info info;
	size_t i;

	while (!kthread_should_stop()) {
		for (i = 0; i < A.npages; i++) {
			if (labyrinth_page_info(A.z, (void *)(A.base + i * PAGE_SIZE), &info))
				continue;
			atomic_inc(&A.infos);
			if (info.site) {
				atomic_inc(&A.site_seen);
				if (info.site != A.site && atomic_inc_return(&A.bad_site) <= 4)
					pr_err(AT "page %zu: site %p, the macro's is %p\n", i,
					       info.site, A.site);
			}
		}
		cond_resched();
	}
	return 0;
}

static long at_release(void *arg)
{
	return labyrinth_thread_release(A.z);
}

static bool wait_count(atomic_t *c, int want, const char *what)
{
	unsigned long end = jiffies + msecs_to_jiffies(3000);

	while (atomic_read(c) < want) {
		if (time_after(jiffies, end)) {
			pr_err(AT "timeout waiting for %s (%d of %d)\n", what, atomic_read(c), want);
			return false;
		}
		usleep_range(20, 50);
	}
	return true;
}

static struct task_struct *start_on(int (*fn)(void *), void *arg, int cpu, const char *name)
{
	struct task_struct *t = cpu >= 0 ? kthread_create_on_cpu(fn, arg, cpu, name)
					 : kthread_create(fn, arg, "%s", name);

	if (IS_ERR(t))
		return NULL;
	wake_up_process(t);
	return t;
}

static int __init at_init(void)
{
	struct labyrinth_zone_config cfg = {
		.name = "attack", .pages = NPAGES, .max_order = 3, .magazine_pages = 8,
	};
	struct labyrinth_region_info ri;
	struct labyrinth_page_info info;
	struct labyrinth_zone_stats s;
	unsigned long deadline;
	long check;
	int i, cpu, rounds = 0, err = 0;
	bool ok = true;
	void *p;

	if (num_online_cpus() < 2 || !cpu_online(0) || !cpu_online(1)) {
		pr_err(AT "needs CPUs 0 and 1\n");
		return -ENODEV;
	}
	A.z = labyrinth_zone_create(&cfg);
	if (!A.z)
		return -ENOMEM;
	labyrinth_zone_set_report_handler(A.z, at_report, NULL);
	if (labyrinth_zone_region_info(A.z, 0, &ri) || ri.pages > NPAGES) {
		pr_err(AT "region 0: %zu pages\n", ri.pages);
		labyrinth_zone_destroy(A.z);
		return -EIO;
	}
	A.base = (unsigned long)ri.start;
	A.npages = ri.pages;

	/* The macro's site, from one call of the one site. */
	p = at_macro_alloc();
	if (!p || labyrinth_page_info(A.z, p, &info) || !info.site ||
	    info.site->line == 0 || strcmp(info.site->func, "at_macro_alloc")) {
		pr_err(AT "could not learn the macro's site\n");
		labyrinth_free_pages(A.z, p, 0);
		labyrinth_zone_destroy(A.z);
		return -EIO;
	}
	A.site = info.site;
	labyrinth_free_pages(A.z, p, 0);

	A.t_cursor = -1;
	hrtimer_init(&A.timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_HARD);
	A.timer.function = at_timer;
	for (i = 0; i < 2; i++) {
		A.w[i] = start_on(at_worker, (void *)(long)i, i, "at-w/%u");
		A.rd[i] = start_on(at_reader, NULL, i, "at-rd/%u");
	}
	A.mig = start_on(at_migrator, NULL, -1, "at-mig");
	if (!A.w[0] || !A.w[1] || !A.rd[0] || !A.rd[1] || !A.mig) {
		pr_err(AT "a kthread did not start\n");
		ok = false;
		goto stop;
	}
	hrtimer_start(&A.timer, ns_to_ktime(20000), HRTIMER_MODE_REL_HARD);

	deadline = jiffies + msecs_to_jiffies(RUN_MS);
	while (time_before(jiffies, deadline)) {
		int n;

		/* ALLOC */
		atomic_set(&A.alloc_done, 0);
		atomic_set(&A.nslots, 0);
		WRITE_ONCE(A.round, ++rounds);
		smp_wmb();
		WRITE_ONCE(A.phase, PH_ALLOC);
		ok = wait_count(&A.alloc_done, 3, "the allocators");
		WRITE_ONCE(A.phase, PH_CLOSED);
		smp_mb();
		while (atomic_read(&A.active))
			cond_resched();
		if (!ok)
			break;
		/* FREE: bits cleared first (the pages are being given back). */
		n = min(atomic_read(&A.nslots), MAXSLOTS);
		for (i = 0; i < n; i++) {
			static const unsigned int masks[4] = {
				F_W0 | F_W1 | F_T, F_W0 | F_W1, F_W0 | F_T, F_W1 | F_T };

			A.mask[i] = masks[(i + rounds) & 3];
			atomic_set(&A.succ[i], 0);
			A.expected_dups += hweight32(A.mask[i]) - 1;
			clear_bit(page_idx(A.slot[i]), A.own);
		}
		A.nfree = n;
		atomic_set(&A.free_ready, 0);
		atomic_set(&A.free_done, 0);
		smp_mb();
		WRITE_ONCE(A.phase, PH_FREE);
		ok = wait_count(&A.free_done, 3, "the freers");
		WRITE_ONCE(A.phase, PH_IDLE);
		if (!ok)
			break;
		for (i = 0; i < n; i++) {
			int sc = atomic_read(&A.succ[i]);

			if (sc > 1)
				A.both_zero += sc - 1;
			if (sc == 0 && labyrinth_page_info(A.z, A.slot[i], &info) == 0 &&
			    info.state == LABYRINTH_PAGE_IN_USE) {
				viol("a double-freed page every free refused, still in use",
				     page_idx(A.slot[i]));
				A.no_free++;
				labyrinth_free_pages(A.z, A.slot[i], 0);
			}
		}
	}
stop:
	WRITE_ONCE(A.phase, PH_STOP);
	hrtimer_cancel(&A.timer);
	for (i = 0; i < 2; i++) {
		if (A.w[i])
			kthread_stop(A.w[i]);
		if (A.rd[i])
			kthread_stop(A.rd[i]);
	}
	if (A.mig)
		kthread_stop(A.mig);
	if (!ok)
		atomic_inc(&A.violations);

	/* Free everything held: after the last FREE phase only a migrator's
	 * pages could be, and it frees before it looks at kthread_should_stop. */
	for (i = 0; i < (int)A.npages; i++)
		if (test_bit(i, A.own)) {
			viol("a page still held at the end", i);
			clear_bit(i, A.own);
		}
	for_each_online_cpu(cpu)
		if (work_on_cpu(cpu, at_release, NULL))
			viol("thread_release refused", cpu);

	check = labyrinth_zone_check(A.z);
	labyrinth_zone_stats(A.z, &s);
	if (check != 0) {
		pr_err(AT "labyrinth_zone_check: %ld\n", check);
		atomic_inc(&A.violations);
	}
	if (s.in_use_pages != 0) {
		pr_err(AT "in_use_pages %zu (in flight %zu)\n", s.in_use_pages, s.in_flight_pages);
		atomic_inc(&A.violations);
	}
	if (atomic_read(&A.bad_site))
		atomic_add(atomic_read(&A.bad_site), &A.violations);
	/* Each double free: exactly one -EALREADY, at once or late (header,
	 * "FREES FROM OTHER THREADS"); every refused call is reported too. */
	if (atomic_read(&A.late_ealready) != A.expected_dups || atomic_read(&A.other_rc) ||
	    atomic_read(&A.other_reports)) {
		pr_err(AT "EALREADY reports %d, double frees %ld, other rc %d (last %d), other reports %d\n",
		       atomic_read(&A.late_ealready), A.expected_dups, atomic_read(&A.other_rc),
		       A.last_other_rc, atomic_read(&A.other_reports));
		atomic_inc(&A.violations);
	}
	pr_info(AT "rounds %d, migrations %d (migrator allocs %d), page_info calls %d (%d with a site, %d bad), both-0 double frees %ld, EALREADY reports %d of %ld double frees, timer ticks nested %d, misuse_reports %llu, zone_check %ld, in_use %zu\n",
		rounds, atomic_read(&A.migrations), atomic_read(&A.mig_allocs),
		atomic_read(&A.infos), atomic_read(&A.site_seen), atomic_read(&A.bad_site),
		A.both_zero, atomic_read(&A.late_ealready), A.expected_dups,
		atomic_read(&A.timer_nested), s.misuse_reports, check, s.in_use_pages);
	pr_info(AT "violations %d, allocs %d, double-free refusals %d\n",
		atomic_read(&A.violations), atomic_read(&A.allocs), atomic_read(&A.refusals));
	if (atomic_read(&A.violations))
		err = -EIO;
	labyrinth_zone_destroy(A.z);
	return err;
}

static void __exit at_exit(void)
{
}

module_init(at_init);
module_exit(at_exit);
MODULE_DESCRIPTION("labyrinth.ko adversarial test: racing double frees, migration, page_info against the seed macro");
MODULE_LICENSE("Dual MIT/GPL");
