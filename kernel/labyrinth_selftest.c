#include <linux/module.h>
#include <labyrinth.h>
static int seconds = 3;
module_param(seconds, int, 0444);
static int __init t_init(void) {
  struct labyrinth_zone *z = labyrinth_zone_create(NULL);
  void *p;
  if (!z) { pr_err("labyrinth_selftest: FAIL create\n"); return -EINVAL; }
  p = labyrinth_void_allocpage_gfpatomic_extra_quality(z, LABYRINTH_QUALITY_ZERO);
  pr_info("labyrinth_selftest: page %px check %ld\n", p, labyrinth_zone_check(z));
  labyrinth_free_pages(z, p, 0);
  labyrinth_zone_destroy(z);
  pr_info("labyrinth_selftest: PASS\n");
  return 0; }
static void __exit t_exit(void) {}
module_init(t_init);
module_exit(t_exit);
MODULE_LICENSE("GPL");
