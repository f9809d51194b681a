/*
 * os_kernel.c - the OS layer for the Linux kernel module labyrinth.ko:
 * what os_linux.c is to user space (src/os/os.h is the contract;
 * docs/kernel.md the reasons).
 *
 *   memory    a zone's pages: alloc_pages(GFP_KERNEL | __GFP_ZERO) of one
 *             order per region, split, the unused tail given back; so a
 *             region is physically contiguous, in the direct map, aligned
 *             as the core asks, and virt_to_phys() is its DMA address.
 *             No guard pages (LB_OS_MAP_GUARD): the direct map has none.
 *             Metadata: vzalloc (never touched by the page allocator's
 *             callers; mapped in every context on x86-64 and arm64).
 *   threads   kthreads; futex waits: hashed wait queues, hrtimer timeouts
 *   clocks    ktime_get_ns(), get_cycles()
 *   output    printk (the core rate-limits reports per zone and kind); abort: BUG()
 */
#include "os.h"

#include <linux/delay.h>
#include <linux/gfp.h>
#include <linux/hash.h>
#include <linux/hrtimer.h>
#include <linux/io.h>
#include <linux/kallsyms.h>
#include <linux/kthread.h>
#include <linux/math64.h>
#include <linux/ktime.h>
#include <linux/printk.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>
#ifdef CONFIG_X86
#include <asm/tsc.h>
#endif

/* ---- memory ------------------------------------------------------------- */

size_t lb_os_page_size(void) { return PAGE_SIZE; }
/* The possible CPUs, not the online ones: a CPU onlined later (hotplug)
 * claims a cache at its first call like any other, so the zone's
 * max_threads notice counts every CPU that may ever call (KB41). */
unsigned lb_os_ncpus(void) { return num_possible_cpus(); }
size_t lb_os_region_max_pages(void) { return (size_t)1 << LB_K_MAX_ORDER; }

static int lb_k_phys(const void *addr, uint64_t *phys)
{
	if (virt_addr_valid(addr)) {
		*phys = (uint64_t)virt_to_phys((void *)addr);
		return 0;
	}
	if (is_vmalloc_addr(addr)) { /* a caller-supplied vmalloc buffer */
		struct page *pg = vmalloc_to_page(addr);
		if (!pg)
			return -EFAULT;
		*phys = (uint64_t)page_to_phys(pg) + offset_in_page(addr);
		return 0;
	}
	return -EFAULT;
}

int lb_os_virt_to_phys(const void *addr, uint64_t *phys) { return lb_k_phys(addr, phys); }

int lb_os_map(size_t bytes, size_t align, unsigned flags, struct lb_os_mapping *out)
{
	memset(out, 0, sizeof(*out));
	if (!bytes || bytes % PAGE_SIZE || !align || (align & (align - 1)) || align < PAGE_SIZE)
		return -EINVAL;
	if (lb_os_fault(LB_OS_OP_MAP))
		return -ENOMEM;
	if (flags & LB_OS_MAP_PAGES) {
		/* One block of the order that covers both the size and the
		 * alignment: the buddy allocator aligns it physically, and the
		 * direct map (1 GiB aligned) keeps that virtually. */
		unsigned int order = get_order(max(bytes, align));
		unsigned long keep = bytes >> PAGE_SHIFT, i;
		struct page *pg;

		if (order > LB_K_MAX_ORDER)
			return -ENOMEM;
		pg = alloc_pages(GFP_KERNEL | __GFP_ZERO | __GFP_NOWARN | __GFP_RETRY_MAYFAIL, order);
		if (!pg)
			return -ENOMEM;
		/* Base pages from here on: the tail beyond bytes goes back now,
		 * the rest page by page at unmap (free_pages_exact). */
		split_page(pg, order);
		for (i = keep; i < (1ul << order); i++)
			__free_page(pg + i);
		out->addr = page_address(pg);
		out->bytes = bytes;
		out->raw = out->addr;
		out->raw_bytes = bytes;
		return 0;
	}
	if (align > PAGE_SIZE)
		return -EINVAL; /* metadata is only ever asked page-aligned */
	out->addr = vzalloc(bytes);
	if (!out->addr)
		return -ENOMEM;
	out->bytes = bytes;
	out->raw = out->addr;
	out->raw_bytes = bytes;
	return 0;
}

void lb_os_unmap(const struct lb_os_mapping *m)
{
	if (!m->raw || !m->raw_bytes)
		return;
	if (is_vmalloc_addr(m->raw))
		vfree(m->raw);
	else
		free_pages_exact(m->raw, m->raw_bytes);
}

/* Kernel memory is resident and never swapped: populating and locking
 * have nothing to do (the fault-injection counts still run). */
int lb_os_populate(void *addr, size_t bytes)
{
	return lb_os_fault(LB_OS_OP_POPULATE) ? -ENOMEM : 0;
}

int lb_os_lock(void *addr, size_t bytes)
{
	return lb_os_fault(LB_OS_OP_LOCK) ? -ENOMEM : 0;
}

int lb_os_phys_table(const void *addr, size_t n, uint64_t *phys)
{
	size_t i;

	if (lb_os_fault(LB_OS_OP_PAGEMAP))
		return -EIO;
	for (i = 0; i < n; i++)
		if (lb_k_phys((const char *)addr + i * PAGE_SIZE, &phys[i]))
			return -EIO;
	return 0;
}

/* No hugetlbfs pools for kernel memory: the direct map already uses large
 * mappings where it can. */
size_t lb_os_huge_pages_free(size_t *huge_page_bytes)
{
	if (huge_page_bytes)
		*huge_page_bytes = 0;
	return 0;
}

size_t lb_os_huge_pages_free_of(size_t huge_page_bytes) { return 0; }
size_t lb_os_memlock_limit(void) { return SIZE_MAX; }
const char *lb_os_getenv(const char *name) { return NULL; }

/* ---- the seed macro's sites (issue 17.3) ----------------------------------- */

/* A site's first use in a zone, from any context (NMI included):
 * try_module_get is an atomic increment that fails once the module is
 * going.  It succeeds while the module is still coming (in its __init),
 * and a failed __init frees the module whatever its count (issue 17.3,
 * KB38): so only a module that is live is pinned.  Its state is read
 * after the reference is taken: LIVE is stored only once its init has
 * returned 0, and from then on only delete_module, which our reference
 * refuses, can free it.  A module seen COMING (or GOING) is not pinned:
 * the caller is recorded instead. */
const void *lb_k_site_pin(struct lb_os_sites *s, const void *site, struct module *m)
{
	struct module *old;
	unsigned int i;

	if (!try_module_get(m))
		return NULL;	/* the module is going: record the caller */
	/* READ_ONCE: the module loader writes the state with plain stores;
	 * after our reference only LIVE -> GOING through delete_module can
	 * follow, which the reference refuses (-EBUSY). */
	if (READ_ONCE(m->state) != MODULE_STATE_LIVE) {
		module_put(m);
		return NULL;	/* in its __init: it may yet fail and be freed */
	}
	for (i = 0; i < LB_K_SITE_MODS; i++) {
		/* Full barrier (cmpxchg): publishes m after its reference was
		 * taken; pairs with READ_ONCE in lb_os_site_keep. */
		old = cmpxchg(&s->mods[i], NULL, m);
		if (!old)
			return site;
		if (old == m) {	/* another context pinned it first */
			module_put(m);
			return site;
		}
	}
	module_put(m);		/* table full */
	return NULL;
}

/* A report handler's module (issue 17 review, helper-26's second break:
 * a handler set by a module that then unloaded was called by the LEAK
 * lines at destroy).  The same table and the same rule as the sites, but
 * a refusal instead of a fallback: a handler cannot be recorded in some
 * other way.  A module in its __init is refused (-EAGAIN) for the reason
 * lb_k_site_pin gives: a failed init frees it, reference or not. */
int lb_os_handler_keep(struct lb_os_sites *s, void *module)
{
	struct module *m = module;
	struct module *old;
	unsigned int i;

	/* READ_ONCE: pairs with the cmpxchg that published an entry; only
	 * compared, never dereferenced. */
	if (!m || m == READ_ONCE(s->owner))
		return 0;
	for (i = 0; i < LB_K_SITE_MODS; i++) {
		old = READ_ONCE(s->mods[i]);
		if (old == m)
			return 0;
		if (!old)
			break;
	}
	if (!try_module_get(m))
		return -ENOENT;
	/* READ_ONCE: as in lb_k_site_pin (after our reference only LIVE ->
	 * GOING through delete_module, which the reference refuses). */
	if (READ_ONCE(m->state) != MODULE_STATE_LIVE) {
		module_put(m);
		return -EAGAIN;
	}
	for (i = 0; i < LB_K_SITE_MODS; i++) {
		/* Full barrier (cmpxchg): as in lb_k_site_pin. */
		old = cmpxchg(&s->mods[i], NULL, m);
		if (!old)
			return 0;
		if (old == m) {
			module_put(m);
			return 0;
		}
	}
	module_put(m);
	return -ENOSPC;
}

void lb_os_sites_init(struct lb_os_sites *s, void *owner)
{
	/* WRITE_ONCE: read by lb_os_site_keep; the handle is not yet known to
	 * anyone but its creator, whose own later calls follow in order. */
	WRITE_ONCE(s->owner, (struct module *)owner);
}

void lb_os_sites_release(struct lb_os_sites *s)
{
	unsigned int i;
	struct module *m;

	for (i = 0; i < LB_K_SITE_MODS; i++) {
		/* Full barrier (xchg): the slot is empty before the reference
		 * goes; no reader is left (destroy, after debugfs and the leak
		 * report). */
		m = xchg(&s->mods[i], NULL);
		if (m)
			module_put(m);
	}
	WRITE_ONCE(s->owner, NULL);
}

/* ---- threads and waiting -------------------------------------------------- */

struct lb_k_thread {
	struct task_struct *task;
	void *(*fn)(void *);
	void *arg;
};

static int lb_k_thread_main(void *p)
{
	struct lb_k_thread *t = p;

	t->fn(t->arg);
	/* The core's thread returns when told to stop; wait for kthread_stop()
	 * (lb_os_thread_join) so the task is still there to be stopped. */
	for (;;) {
		set_current_state(TASK_IDLE);
		if (kthread_should_stop())
			break;
		schedule();
	}
	__set_current_state(TASK_RUNNING);
	return 0;
}

int lb_os_thread_create(lb_os_thread *t, void *(*fn)(void *), void *arg, const char *name)
{
	struct lb_k_thread *k;

	if (lb_os_fault(LB_OS_OP_THREAD))
		return -EAGAIN;
	k = kzalloc(sizeof(*k), GFP_KERNEL);
	if (!k)
		return -EAGAIN;
	k->fn = fn;
	k->arg = arg;
	k->task = kthread_run(lb_k_thread_main, k, "%s", name ? name : "labyrinth");
	if (IS_ERR(k->task)) {
		kfree(k);
		return -EAGAIN;
	}
	t->handle = (uintptr_t)k;
	return 0;
}

void lb_os_thread_join(lb_os_thread t)
{
	struct lb_k_thread *k = (struct lb_k_thread *)t.handle;

	kthread_stop(k->task);
	kfree(k);
}

/* Futex words: a waiter sleeps on the wait queue its word hashes to; a
 * wake wakes that whole queue (waiters re-check their word: a spurious
 * wake-up is allowed by the contract). */
#define LB_K_WQ_BITS 6
static wait_queue_head_t lb_k_wq[1 << LB_K_WQ_BITS];

static wait_queue_head_t *lb_k_wq_of(const void *word)
{
	return &lb_k_wq[hash_ptr((void *)word, LB_K_WQ_BITS)];
}

void lb_os_kernel_init(void)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(lb_k_wq); i++)
		init_waitqueue_head(&lb_k_wq[i]);
	/* Calibrated here, in normal context: the report windows of
	 * zone-less reports read the cached rate in any context (report.c). */
	(void)lb_os_cycles_per_ms();
}

int lb_os_futex_wait(lb_atomic_u32 *word, uint32_t expected, uint64_t timeout_ns)
{
	wait_queue_head_t *wq = lb_k_wq_of(word);
	DEFINE_WAIT(wait);
	int rc = 0;

	if (lb_os_fault(LB_OS_OP_FUTEX))
		return -EINTR; /* a spurious wake-up: callers re-check and loop */
	/* prepare_to_wait() sets the task state with a full barrier before the
	 * word is read; the waker changes the word before it takes the queue's
	 * lock to wake: a change is never missed. */
	prepare_to_wait(wq, &wait, TASK_IDLE);
	if (lb_load_rlx_u32(word) == expected) {
		if (timeout_ns) {
			ktime_t t = ns_to_ktime(timeout_ns);

			/* 0: the timer expired; -EINTR: woken earlier. */
			if (schedule_hrtimeout(&t, HRTIMER_MODE_REL) == 0)
				rc = -ETIMEDOUT;
		} else {
			schedule();
		}
	}
	finish_wait(wq, &wait);
	return rc;
}

void lb_os_futex_wake(lb_atomic_u32 *word, int n)
{
	lb_os_fault(LB_OS_OP_OTHER);
	wake_up_all(lb_k_wq_of(word));
}

int lb_os_fence_all(void)
{
	if (!lb_os_can_sleep())
		return -EAGAIN;
	synchronize_rcu_expedited();
	return 0;
}

void lb_os_yield(void)
{
	lb_os_fault(LB_OS_OP_OTHER);
	if (lb_os_can_sleep())
		cond_resched();
	else
		cpu_relax(); /* a lock holder runs on another CPU, unpreempted */
}

void lb_os_sleep_ns(uint64_t ns)
{
	lb_os_fault(LB_OS_OP_OTHER);
	fsleep((unsigned long)DIV_ROUND_UP_ULL(ns, 1000));
}

/* One lockdep class per kind (mutex_init's own key is per call site, and
 * this is one call site for every mutex). */
static struct lock_class_key lb_k_mutex_keys[LB_MUTEX_KINDS];
static const char *const lb_k_mutex_names[LB_MUTEX_KINDS] = {
    "labyrinth grow", "labyrinth rebalance", "labyrinth tls", "labyrinth registry",
};
void lb_os_mutex_init(lb_os_mutex *m, enum lb_os_mutex_kind kind)
{
    __mutex_init(m, lb_k_mutex_names[kind], &lb_k_mutex_keys[kind]);
}
void lb_os_mutex_lock(lb_os_mutex *m) { mutex_lock(m); }
void lb_os_mutex_unlock(lb_os_mutex *m) { mutex_unlock(m); }
void lb_os_mutex_destroy(lb_os_mutex *m) { mutex_destroy(m); }

/* Per-CPU caches are not tied to a thread: no exit hook. */
int lb_os_thread_exit_hook_init(void (*fn)(void *)) { return 0; }
void lb_os_thread_exit_arm(void *arg) { }

/* No fork in a kernel: nothing to prepare or clean up. */
int lb_os_fork_hooks(void (*prepare)(void), void (*parent)(void), void (*child)(void)) { return 0; }

/* ---- time --------------------------------------------------------------------- */

uint64_t lb_os_clock_ns(void) { return ktime_get_ns(); }

/* Per millisecond, never below the true rate (os.h).  x86: the kernel's
 * own calibration (tsc_khz) plus 1/1024; elsewhere the counter over 2 ms of
 * ktime with preemption off (this is normal context), rounded up. */
uint64_t lb_os_cycles_per_ms(void)
{
	static lb_atomic_u64 cached;
	uint64_t v = lb_load_rlx_u64(&cached), t0, c0, c1, ns;

	if (v)
		return v;
#ifdef CONFIG_X86
	v = tsc_khz;
#endif
	if (!v) {
		/* The counter's reads outside the clock's: its interval holds
		 * the clock's, so the ratio is an upper bound. */
		preempt_disable();
		c0 = lb_os_cycles();
		t0 = ktime_get_ns();
		while ((ns = ktime_get_ns() - t0) < 2000000)
			cpu_relax();
		c1 = lb_os_cycles();
		preempt_enable();
		v = div64_u64((c1 - c0) * 1000000 + ns - 1, ns);
	}
	v += (v + 1023) / 1024;
	if (!v)
		v = 1;
	lb_store_rlx_u64(&cached, v);
	return v;
}

/* ---- output ------------------------------------------------------------------- */

void lb_os_write_err(const char *buf, size_t n)
{
	lb_os_fault(LB_OS_OP_OTHER);
	/* Any context (printk defers the console in NMI and with locks held);
	 * the lines already end in a newline.  No rate limit here: one call
	 * site for every zone let one zone's burst starve all the others and
	 * drop a STRICT zone's line right before BUG() (issue 17.9).  The
	 * core limits report lines per zone and kind (LB_OS_REPORT_BURST in
	 * os_kernel.h), and lb_panic's line always goes out. */
	printk(KERN_WARNING "%.*s", (int)n, buf);
}

/* A code address as a symbol (%pS), or hashed when it names none.  %pS
 * of an address in no symbol (an unloaded module, a module's freed __init
 * text) prints the raw address as "0x..." (__sprint_symbol), past
 * kptr_restrict (issue 17.8, KB40): such an address is printed with %p
 * (hashed) and "(unloaded code)" instead.  A symbol never starts with
 * "0x".  (An address whose module was unloaded and another loaded there
 * since names the newcomer's symbol: wrong, but not a leak.) */
static size_t lb_k_fmt_code(char *buf, size_t cap, const void *addr)
{
	size_t n = scnprintf(buf, cap, "%pS", addr);

	if (addr && n >= 2 && buf[0] == '0' && buf[1] == 'x')
		n = scnprintf(buf, cap, "%p (unloaded code)", addr);
	return n;
}

/* %p hashes (or, with kptr_restrict, zeroes) a data address; a code
 * address is a symbol (lb_k_fmt_code).  vsnprintf is safe in any context,
 * NMI included (the dumps of stacks use it there). */
size_t lb_os_fmt_addr(char *buf, size_t cap, const void *addr, bool code)
{
	return code ? lb_k_fmt_code(buf, cap, addr) : scnprintf(buf, cap, "%p", addr);
}

int lb_os_symbolize(const void *addr, char *buf, size_t n)
{
	if (!addr || !n)
		return -ENOENT;
	lb_k_fmt_code(buf, n, addr);
	return 0;
}

/* Nothing to add: a kernel's report lines print callers with %pS already
 * (lb_os_fmt_addr), in any context. */
int lb_os_symbolize_any(const void *addr, char *buf, size_t n)
{
	(void)addr, (void)buf, (void)n;
	return -ENOENT;
}

void lb_os_objects_note(void)
{
}
