// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * site_module.c - labyrinth_sitemod.ko, for the kernel flavour's /init
 * (issue 17.3): a module that allocates with the seed's macro from a zone
 * it did not create (the example driver's), hands the pages over to that
 * driver, and is then unloaded.  Each page's tracking record points at
 * this module's static struct labyrinth_site; labyrinth.ko pins this
 * module while the zone lives, so the unload is refused (-EBUSY) until the
 * example driver destroys its zone, and debugfs `tracking` still reads the
 * sites.  The example's symbols are taken with symbol_get() and put back
 * at once: no module dependency, which would keep the example loaded.
 */
#include <linux/module.h>

#include <labyrinth.h>

struct labyrinth_zone *labyrinth_example_zone(void);
int labyrinth_example_adopt(void *page);

#define SITEMOD_PAGES 4

static int __init sitemod_init(void)
{
	struct labyrinth_zone *(*zone_of)(void) = symbol_get(labyrinth_example_zone);
	int (*adopt)(void *page) = symbol_get(labyrinth_example_adopt);
	int i, handed = 0, rc = 0;

	if (!zone_of || !adopt) {
		rc = -ENOENT;	/* the example driver is not loaded */
		goto out;
	}
	for (i = 0; i < SITEMOD_PAGES; i++) {
		void *p = labyrinth_void_allocpage_gfpatomic_extra_quality(zone_of(), 0);

		if (p && adopt(p) == 0)
			handed++;
		else if (p)
			labyrinth_free_pages(zone_of(), p, 0);
	}
	pr_info("labyrinth_sitemod: %d page(s) allocated with the seed's macro and handed to the example driver\n",
		handed);
	if (handed != SITEMOD_PAGES)
		rc = -ENOMEM;
out:
	if (zone_of)
		symbol_put(labyrinth_example_zone);
	if (adopt)
		symbol_put(labyrinth_example_adopt);
	return rc;
}

static void __exit sitemod_exit(void)
{
	pr_info("labyrinth_sitemod: unloaded\n");
}

module_init(sitemod_init);
module_exit(sitemod_exit);
MODULE_DESCRIPTION("labyrinth.ko test: seed-macro sites in a module that is unloaded (issue 17.3)");
MODULE_LICENSE("Dual MIT/GPL");
