// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * site_module.c - labyrinth_sitemod.ko, for the kernel flavour's /init
 * (issue 17.3): a module that allocates with the seed's macro from a zone
 * it did not create (the example driver's).  The example's symbols are
 * taken with symbol_get() and put back at once: no module dependency,
 * which would keep the example loaded.
 *
 *  - Writing N to /sys/module/labyrinth_sitemod/parameters/give (the
 *    module is live) allocates N pages with the macro and hands them to
 *    the example driver.  Each page's tracking record points at this
 *    module's static struct labyrinth_site; labyrinth.ko pins this module
 *    while the zone lives, so its unload is refused (-EBUSY) until the
 *    example driver destroys its zone, and debugfs `tracking` still reads
 *    the sites (KB27).
 *  - Loaded with fail_init=1, its __init allocates SITEMOD_LEFT pages with
 *    the macro, leaves them in the example's zone and fails (-EAGAIN): the
 *    module is freed at once, pin or not.  So a module still in its
 *    __init is not pinned and its sites are not recorded (KB38); the
 *    records name the caller, whose code is gone: tracking and the LEAK
 *    lines at the example's destroy print it hashed, never raw (KB40).
 */
#include <linux/module.h>
#include <linux/moduleparam.h>

#include <labyrinth.h>

struct labyrinth_zone *labyrinth_example_zone(void);
int labyrinth_example_adopt(void *page);

#define SITEMOD_LEFT 2

static bool fail_init;
module_param(fail_init, bool, 0444);
MODULE_PARM_DESC(fail_init, "allocate with the macro in __init, leave the pages in the example's zone, and fail");

/* n pages with the macro, handed to the example driver: how many were. */
static int sitemod_give(int n)
{
	struct labyrinth_zone *(*zone_of)(void) = symbol_get(labyrinth_example_zone);
	int (*adopt)(void *page) = symbol_get(labyrinth_example_adopt);
	int i, handed = 0;

	if (zone_of && adopt) {
		for (i = 0; i < n; i++) {
			void *p = labyrinth_void_allocpage_gfpatomic_extra_quality(zone_of(), 0);

			if (p && adopt(p) == 0)
				handed++;
			else if (p)
				labyrinth_free_pages(zone_of(), p, 0);
		}
	}
	if (zone_of)
		symbol_put(labyrinth_example_zone);
	if (adopt)
		symbol_put(labyrinth_example_adopt);
	pr_info("labyrinth_sitemod: %d of %d page(s) allocated with the seed's macro and handed to the example driver\n",
		handed, n);
	return handed;
}

static int sitemod_give_set(const char *val, const struct kernel_param *kp)
{
	int n, rc = kstrtoint(val, 0, &n);

	if (rc)
		return rc;
	if (n < 0 || n > 8)
		return -EINVAL;
	return sitemod_give(n) == n ? 0 : -ENOMEM;
}

static const struct kernel_param_ops sitemod_give_ops = {
	.set = sitemod_give_set,
};
module_param_cb(give, &sitemod_give_ops, NULL, 0200);
MODULE_PARM_DESC(give, "write N: allocate N pages with the macro and hand them to the example driver");

/* The report handler (issue 17 review, helper-26's second break: a
 * handler of a module that then unloaded was called by the LEAK lines at
 * the zone's destroy, an oops).  Writing 1 to .../parameters/handler
 * (live) sets it on the example's zone, frees a page twice (a BAD_FREE
 * report, to the handler) and leaves one page allocated (a LEAK report at
 * the example's destroy): labyrinth.ko pins this module until that
 * destroy, and the exit line says how many reports the handler saw. */
static atomic_t sitemod_reports = ATOMIC_INIT(0);

static void sitemod_report(const struct labyrinth_report *r, void *arg)
{
	atomic_inc(&sitemod_reports);
}

static int sitemod_handler_set(const char *val, const struct kernel_param *kp)
{
	struct labyrinth_zone *(*zone_of)(void) = symbol_get(labyrinth_example_zone);
	struct labyrinth_zone *z;
	void *p, *left;
	int rc;

	if (!zone_of)
		return -ENOENT;
	z = zone_of();
	rc = labyrinth_zone_set_report_handler(z, sitemod_report, NULL);
	if (!rc) {
		p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
		if (p) {
			labyrinth_free_pages(z, p, 0);
			labyrinth_free_pages(z, p, 0); /* the BAD_FREE report */
		}
		left = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0); /* the LEAK report */
		pr_info("labyrinth_sitemod: report handler set on the example's zone; a double free made, %s page left in it\n",
			left ? "one" : "no");
	}
	symbol_put(labyrinth_example_zone);
	return rc;
}

static const struct kernel_param_ops sitemod_handler_ops = {
	.set = sitemod_handler_set,
};
module_param_cb(handler, &sitemod_handler_ops, NULL, 0200);
MODULE_PARM_DESC(handler, "write 1: set a report handler on the example's zone, make a double free, leave a page");

static int __init sitemod_init(void)
{
	struct labyrinth_zone *(*zone_of)(void);
	int i, left = 0, rc;

	if (!fail_init) {
		pr_info("labyrinth_sitemod: loaded\n");
		return 0;
	}
	zone_of = symbol_get(labyrinth_example_zone);
	if (!zone_of)
		return -ENOENT;	/* the example driver is not loaded */
	for (i = 0; i < SITEMOD_LEFT; i++)
		if (labyrinth_void_allocpage_gfpatomic_extra_quality(zone_of(), 0))
			left++;
	/* Refused (-EAGAIN): a module in its __init cannot be pinned. */
	rc = labyrinth_zone_set_report_handler(zone_of(), sitemod_report, NULL);
	pr_info("labyrinth_sitemod: fail_init: report handler from __init: %d\n", rc);
	symbol_put(labyrinth_example_zone);
	pr_info("labyrinth_sitemod: fail_init: %d page(s) allocated with the seed's macro in __init and left in the example's zone; failing\n",
		left);
	return -EAGAIN;
}

static void __exit sitemod_exit(void)
{
	pr_info("labyrinth_sitemod: unloaded; its report handler saw %d report(s)\n", atomic_read(&sitemod_reports));
}

module_init(sitemod_init);
module_exit(sitemod_exit);
MODULE_DESCRIPTION("labyrinth.ko test: seed-macro sites in a module that is unloaded or whose init fails (issue 17.3)");
MODULE_LICENSE("Dual MIT/GPL");
