#include <linux/module.h>
#include <labyrinth.h>
static struct labyrinth_zone *z;
static int __init e_init(void) { z = labyrinth_zone_create(NULL); return z ? 0 : -ENOMEM; }
static void __exit e_exit(void) { labyrinth_zone_destroy(z); }
module_init(e_init);
module_exit(e_exit);
MODULE_LICENSE("GPL");
