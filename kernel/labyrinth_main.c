/*
 * labyrinth_main.c - the module labyrinth.ko: init and exit, and debugfs.
 *
 * The allocator itself is the shared core (the C files of src/, compiled unchanged
 * with src/os/os_kernel.c as its OS layer); api.c exports the API of
 * include/labyrinth.h with EXPORT_SYMBOL_GPL.  This file adds what only a
 * kernel has: one debugfs directory per live zone,
 *
 *   /sys/kernel/debug/labyrinth/<zone>.<n>/stats      every counter
 *   /sys/kernel/debug/labyrinth/<zone>.<n>/buddyinfo  free blocks per order,
 *                                                     zone and regions
 *   /sys/kernel/debug/labyrinth/<zone>.<n>/tracking   the tracking records
 *                                                     of blocks in use
 *
 * read without stopping anyone (snapshots, as labyrinth_zone_stats says),
 * and a CPU hotplug callback: a CPU that has gone offline gives its caches
 * back to every live zone (issue 17.5).
 */
#include <linux/cpuhotplug.h>
#include <linux/debugfs.h>
#include <linux/kallsyms.h>
#include <linux/list.h>
#include <linux/math64.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/seq_file.h>
#include <linux/slab.h>

#include "quality.h"

static struct dentry *lb_dbg_root;
static DEFINE_MUTEX(lb_dbg_mutex);
static LIST_HEAD(lb_dbg_zones);
static unsigned int lb_dbg_seq;

struct lb_dbg_zone {
	struct list_head link;
	struct lb_zone *z;
	struct dentry *dir;
};

static int lb_dbg_stats_show(struct seq_file *m, void *unused)
{
	struct lb_zone *z = m->private;
	struct labyrinth_zone_stats s;

	if (labyrinth_zone_stats(z->handle, &s))
		return -ENODEV;
#define LB_SHOW(f) seq_printf(m, "%-22s %llu\n", #f, (unsigned long long)s.f)
	LB_SHOW(total_pages);
	LB_SHOW(free_pages);
	LB_SHOW(in_use_pages);
	LB_SHOW(reserve_free_pages);
	LB_SHOW(atomic_allocs);
	LB_SHOW(atomic_failures);
	LB_SHOW(misuse_reports);
	LB_SHOW(max_pages);
	LB_SHOW(regions);
	LB_SHOW(buddy_free_pages);
	LB_SHOW(cached_pages);
	LB_SHOW(depot_pages);
	LB_SHOW(reserve_target_pages);
	LB_SHOW(low_pages);
	LB_SHOW(high_pages);
	LB_SHOW(reserve_low_water);
	LB_SHOW(threads);
	LB_SHOW(atomic_reserve_allocs);
	LB_SHOW(nowait_allocs);
	LB_SHOW(nowait_failures);
	LB_SHOW(kernel_allocs);
	LB_SHOW(kernel_failures);
	LB_SHOW(kernel_waits);
	LB_SHOW(frees);
	LB_SHOW(warden_runs);
	LB_SHOW(warden_pages_moved);
	LB_SHOW(grow_events);
	LB_SHOW(shrink_events);
	LB_SHOW(retry_cap_hits);
	LB_SHOW(max_retries);
	LB_SHOW(in_flight_pages);
	LB_SHOW(remote_cas_fallbacks);
	LB_SHOW(metadata_bytes);
	LB_SHOW(page_size);
#undef LB_SHOW
	seq_printf(m, "%-22s %lld\n", "largest_free_order",
			   s.largest_free_order == (size_t)-1 ? -1LL : (long long)s.largest_free_order);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(lb_dbg_stats);

/* As /proc/buddyinfo: free blocks of each order, for the zone and for each
 * of its regions (a region is one physically contiguous allocation). */
static int lb_dbg_buddyinfo_show(struct seq_file *m, void *unused)
{
	struct lb_zone *z = m->private;
	unsigned int n = lb_regmap_count(&z->map), i, o;

	seq_printf(m, "zone %-16s", z->name);
	for (o = 0; o <= z->max_order; o++)
		seq_printf(m, " %6llu", (unsigned long long)lb_load_rlx_u64(&z->buddy.free_blocks[o]));
	seq_puts(m, "\n");
	for (i = 0; i < n; i++) {
		struct lb_region *r = lb_regmap_get(&z->map, i);

		seq_printf(m, "  region %-2u %p", i, (void *)r->lo);
		if (r->released) {
			seq_puts(m, " released\n");
			continue;
		}
		/* Counts written under the buddy lock: a racy snapshot. */
		for (o = 0; o <= z->max_order; o++)
			seq_printf(m, " %6u", READ_ONCE(z->buddy.area[i][o].count));
		seq_puts(m, "\n");
	}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(lb_dbg_buddyinfo);

/* Every block in use whose tracking record is current: address, order,
 * the seed macro's site or the caller, the CPU, the tag, the age.  Pages
 * freed by another context and still queued back to their owner read as
 * in use here (labyrinth_zone_for_each_in_use excludes them, but needs a
 * quiescent zone). */
/* The zone's time in us, on the records' clock (lb_os_cycles_per_ms is an
 * upper bound, so this is never ahead of a record's alloc_ns either). */
static u64 lb_track_age_us(const struct lb_zone *z)
{
	u64 d = lb_os_cycles() - z->epoch_cycles, cpm = z->cycles_per_ms ? z->cycles_per_ms : 1, rem;
	u64 ms = div64_u64_rem(d, cpm, &rem);

	return ms * 1000 + div64_u64(rem * 1000, cpm);
}

static int lb_dbg_tracking_show(struct seq_file *m, void *unused)
{
	struct lb_zone *z = m->private;
	unsigned int n = lb_regmap_count(&z->map), i;
	unsigned long shown = 0;

	if (z->flags & LABYRINTH_ZONE_NO_TRACKING) {
		seq_puts(m, "no tracking table (LABYRINTH_ZONE_NO_TRACKING)\n");
		return 0;
	}
	for (i = 0; i < n; i++) {
		struct lb_region *r = lb_regmap_get(&z->map, i);
		uint32_t idx;

		if (r->released)
			continue;
		for (idx = r->first; idx < r->end;) {
			uint64_t w = lb_load_rlx_u64(&r->desc[idx]);
			unsigned int s = lb_d_state(w);
			struct labyrinth_page_info info;

			if (s == LB_S_ALLOC && (lb_d_flags(w) & LB_D_TRACKED)) {
				lb_page_info_fill(z, r, idx, &info);
				if (info.tracked) {
					seq_printf(m, "%p order %u cpu %u tag %u age %llu us ", info.block, info.order,
							   info.thread ? info.thread - 1 : 0, info.tag,
							   (unsigned long long)(lb_track_age_us(z) - info.alloc_ns / 1000));
					if (info.site)
						seq_printf(m, "%s:%u (%s)\n", info.site->file, info.site->line, info.site->func);
					else {
						/* Hashed when it names no symbol (an unloaded
						 * module's code; issue 17.8, KB40). */
						char sym[KSYM_SYMBOL_LEN];

						lb_os_fmt_addr(sym, sizeof(sym), info.caller, true);
						seq_printf(m, "%s\n", sym);
					}
					shown++;
				}
			}
			idx += (s == LB_S_TAIL || s == LB_S_HOLE) ? 1u : 1u << lb_d_order(w);
			cond_resched();
		}
	}
	seq_printf(m, "# %lu tracked block(s) in use\n", shown);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(lb_dbg_tracking);

/* For tests and diagnostics: this CPU's labyrinth nesting depth (> 0 in
 * an interrupt that arrived while a labyrinth call was under way on this
 * CPU).  Not part of the API. */
unsigned int labyrinth_kmod_depth(void);
unsigned int labyrinth_kmod_depth(void)
{
	return raw_cpu_ptr(&lb_tls)->depth;
}
EXPORT_SYMBOL_GPL(labyrinth_kmod_depth);

/* The OS layer's zone hook (os.h): publish a zone, or withdraw it before
 * it goes (debugfs_remove waits for readers still in a file). */
void lb_os_zone_event(void *zone, const char *name, bool created)
{
	struct lb_zone *z = zone;
	struct lb_dbg_zone *e, *tmp;
	char dname[64];

	/* A live zone pins the module (issue 17.4: rmmod used to succeed while
	 * a zone lived, and its warden then ran unloaded code). */
	if (created)
		__module_get(THIS_MODULE);
	mutex_lock(&lb_dbg_mutex);
	if (created) {
		e = kzalloc(sizeof(*e), GFP_KERNEL);
		if (e && lb_dbg_root) {
			snprintf(dname, sizeof(dname), "%s.%u", name, lb_dbg_seq++);
			e->z = z;
			e->dir = debugfs_create_dir(dname, lb_dbg_root);
			debugfs_create_file("stats", 0444, e->dir, z, &lb_dbg_stats_fops);
			debugfs_create_file("buddyinfo", 0444, e->dir, z, &lb_dbg_buddyinfo_fops);
			debugfs_create_file("tracking", 0444, e->dir, z, &lb_dbg_tracking_fops);
			list_add(&e->link, &lb_dbg_zones);
		} else {
			kfree(e);
		}
	} else {
		list_for_each_entry_safe(e, tmp, &lb_dbg_zones, link) {
			if (e->z != z)
				continue;
			debugfs_remove_recursive(e->dir);
			list_del(&e->link);
			kfree(e);
		}
	}
	mutex_unlock(&lb_dbg_mutex);
	if (!created)
		module_put(THIS_MODULE);
}

/* CPU hotplug: the caches of a CPU that went offline.  The CPU's per-CPU
 * struct still names them and their owner is the CPU's id, so the warden's
 * reap and adopt skip them: without this, every page the CPU handed out
 * and someone freed later would wait in its inboxes until the CPU came
 * back and ran dry (issue 17.5).
 *
 * CPUHP_BP_PREPARE_DYN, teardown only: its teardown is the "dead" callback,
 * run on a control CPU in process context after the CPU has stopped.
 * Nothing runs on that CPU any more (no task, no interrupt, no NMI), so
 * its struct and caches are ours without a race, exactly as an exited
 * thread's are to the exit hook in user space; and we may take the TLS
 * mutex and the buddy lock.  (CPUHP_AP_ONLINE_DYN's teardown runs on the
 * dying CPU itself, where interrupts and per-CPU kthreads still run after
 * it and could claim a cache again.)  No startup callback: a CPU claims a
 * cache at its first labyrinth call, online or back online. */
static enum cpuhp_state lb_cpuhp_state;

static int lb_cpu_dead(unsigned int cpu)
{
	lb_cache_release_ctx(per_cpu_ptr(&lb_tls, cpu), cpu + 1); /* its id: lb_os_ctx_id() */
	return 0;
}

static int __init labyrinth_init(void)
{
	int rc;

	lb_os_kernel_init();
	rc = cpuhp_setup_state_nocalls(CPUHP_BP_PREPARE_DYN, "labyrinth:dead", NULL, lb_cpu_dead);
	if (rc < 0)
		return rc;
	lb_cpuhp_state = rc;
	lb_dbg_root = debugfs_create_dir("labyrinth", NULL);
	pr_info("labyrinth: page allocator for code that must never wait, %u.%u.%u (%u CPUs, %lu-page regions)\n",
			LABYRINTH_VERSION_MAJOR, LABYRINTH_VERSION_MINOR, LABYRINTH_VERSION_PATCH, num_online_cpus(),
			(unsigned long)lb_os_region_max_pages());
	return 0;
}

static void __exit labyrinth_exit(void)
{
	/* Modules using ours hold a reference: every zone is gone by now. */
	lb_report_flush(NULL);	/* zone-less lines held back since the last destroy */
	debugfs_remove_recursive(lb_dbg_root);
	cpuhp_remove_state_nocalls(lb_cpuhp_state);
}

module_init(labyrinth_init);
module_exit(labyrinth_exit);
MODULE_DESCRIPTION("labyrinth: page allocation for code that must never wait");
/* EXPORT_SYMBOL_GPL and the GPL-only kernel symbols used (split_page,
 * debugfs) need a GPL-compatible module licence. */
MODULE_LICENSE("Dual MIT/GPL");
