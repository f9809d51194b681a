/*
 * os_kernel.h - the inline part of the OS layer for the Linux kernel
 * module (included by os.h when __KERNEL__ is set; os_kernel.c has the
 * rest).  docs/kernel.md explains each choice.
 *
 *   context       per-CPU data; lb_enter() disables preemption, so the
 *                 CPU's struct stays the caller's until lb_leave(), and an
 *                 interrupt (softirq, hard IRQ, NMI) that calls labyrinth
 *                 meanwhile runs one nesting level deeper, exactly as a
 *                 signal handler does in user space
 *   buddy lock    the core's own test-and-set word, held with preemption
 *                 off (as raw_spin_trylock would), never waited for in an
 *                 interrupt
 *   mutex         struct mutex
 *   cycles        get_cycles()
 */
#ifndef LB_OS_KERNEL_H
#define LB_OS_KERNEL_H

#include <linux/percpu.h>
#include <linux/preempt.h>
#include <linux/smp.h>
#include <linux/hardirq.h>
#include <linux/irqflags.h>
#include <linux/mutex.h>
#include <linux/timex.h>
#include <linux/mm.h>
#include <linux/version.h>
#include <linux/bug.h>
#include <linux/rcupdate.h>
#include <linux/module.h>
#include <labyrinth.h> /* struct labyrinth_site: its module */

#define LB_OS_CTX_PER_CPU 1
#define LB_OS_CTX_DECLARE(type, name) DECLARE_PER_CPU(type, name)
#define LB_OS_CTX_DEFINE(type, name)  DEFINE_PER_CPU(type, name)
#define lb_os_ctx(name) this_cpu_ptr(&(name))

static inline void lb_os_preempt_off(void) { preempt_disable(); }
static inline void lb_os_preempt_on(void) { preempt_enable(); }

/* Tracking records and labyrinth_thread_id() name the CPU (+ 1). */
static inline uint32_t lb_os_ctx_id(void) { return raw_smp_processor_id() + 1; }

/* Sleeping is allowed: not in an interrupt, preemption and interrupts on
 * (and, where the kernel counts it, no spinlock held), and not inside an
 * RCU read-side critical section (with preemptible RCU, Debian's default,
 * preempt_count() stays 0 there: issue 17.6).  in_interrupt() as well
 * where preemption is counted: on PREEMPT_RT a softirq runs in a thread,
 * counted in the task's softirq count, not in preempt_count(). */
static inline bool lb_os_can_sleep(void)
{
#ifdef CONFIG_PREEMPT_COUNT
	return preempt_count() == 0 && !in_interrupt() && !irqs_disabled() && !rcu_preempt_depth();
#else
	return !in_interrupt() && !irqs_disabled() && !rcu_preempt_depth();
#endif
}

/* A call that may sleep or wait for a lock begins (os.h): refused where
 * that is a bug; otherwise might_sleep(), so that a debug kernel
 * (CONFIG_DEBUG_ATOMIC_SLEEP) checks what we cannot see, as every sleeping
 * kernel function does, even when this call does not sleep after all. */
static inline bool lb_os_may_sleep(void)
{
	if (!lb_os_can_sleep())
		return false;
	might_sleep();
	return true;
}

/* The address map's key: the offset from the direct map (1 GiB aligned),
 * so the kernel's upper-half addresses fit the map's 48 bits. */
#define LB_OS_ADDR_BASE ((uintptr_t)PAGE_OFFSET)

/* The default report handler's window, per zone and report kind (issue
 * 17.9): printk's own default (DEFAULT_RATELIMIT_BURST lines per
 * DEFAULT_RATELIMIT_INTERVAL), but for each zone and kind apart, so one
 * zone's flood cannot starve another's lines; os.h. */
#define LB_OS_REPORT_BURST 10u
#define LB_OS_REPORT_WINDOW_MS 5000u

typedef struct mutex lb_os_mutex;
#define LB_OS_MUTEX_INITIALIZER(name) __MUTEX_INITIALIZER(name)

static inline uint64_t lb_os_cycles(void) { return (uint64_t)get_cycles(); }

/* A STRICT zone's misuse, or a broken invariant: BUG() in line, where
 * objtool sees that the caller does not go on. */
#define lb_os_abort() BUG()

/* The largest order the page allocator gives (6.1: MAX_ORDER - 1). */
#if defined(MAX_PAGE_ORDER)
#define LB_K_MAX_ORDER MAX_PAGE_ORDER
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
#define LB_K_MAX_ORDER MAX_ORDER
#else
#define LB_K_MAX_ORDER (MAX_ORDER - 1)
#endif

/* The seed macro's sites (os.h, issue 17.3): a site names its module
 * (struct labyrinth_site.module, THIS_MODULE in the macro).  A site of a
 * module other than the zone's creator pins that module (try_module_get)
 * at its first use in the zone, until the zone is destroyed; the
 * module's unload is refused meanwhile (-EBUSY).  Sites in the kernel
 * image (module NULL), or in the creator's module, are recorded as they
 * are.  At most LB_K_SITE_MODS modules per zone; a site of one more is not
 * recorded (the record keeps the caller).  (The kernel exports no lookup
 * from an address to its module, __module_address, to modules: the site
 * carries its module instead.)  Only a module that is live is pinned: one
 * still in its __init (MODULE_STATE_COMING) is freed if that init fails,
 * reference or not, so its sites are not recorded (issue 17.3, KB38). */
#define LB_K_SITE_MODS 8
struct module;
struct lb_os_sites {
	struct module *owner;			/* the creator's, or NULL */
	struct module *mods[LB_K_SITE_MODS];	/* pinned; NULL-terminated */
};
const void *lb_k_site_pin(struct lb_os_sites *s, const void *site, struct module *m);
void lb_os_sites_init(struct lb_os_sites *s, void *owner);
void lb_os_sites_release(struct lb_os_sites *s);
int lb_os_handler_keep(struct lb_os_sites *s, void *module);

static inline const void *lb_os_site_keep(struct lb_os_sites *s, const void *site)
{
	struct module *m = ((const struct labyrinth_site *)site)->module;
	unsigned int i;

	/* READ_ONCE: pairs with the cmpxchg that published the entry (a full
	 * barrier, after try_module_get); only compared, never dereferenced. */
	if (!m || m == READ_ONCE(s->owner))
		return site;
	for (i = 0; i < LB_K_SITE_MODS; i++) {
		struct module *p = READ_ONCE(s->mods[i]);

		if (p == m)
			return site;
		if (!p)
			break;
	}
	return lb_k_site_pin(s, site, m);
}

/* Module init / exit of the OS layer (the wait queues). */
void lb_os_kernel_init(void);

#endif /* LB_OS_KERNEL_H */
