// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * example_driver.c - how a driver uses labyrinth.ko (docs/kernel.md).
 *
 * An imaginary network card: its receive interrupt (an hrtimer in hard-IRQ
 * mode stands in for the device) takes a page per packet with the seed's
 * macro, never waiting, and queues it for process context; a work item
 * "delivers" the packets and frees the pages, keeping the last few (an
 * upper layer still holding them: /sys/kernel/debug/labyrinth/example-rx.N/
 * tracking shows them with this file's line).  When the reserve is spent
 * the interrupt drops the packet, as a card does, and the zone counts it.
 *
 *   insmod labyrinth.ko; insmod labyrinth_example.ko; rmmod labyrinth_example
 */
#include <linux/hrtimer.h>
#include <linux/llist.h>
#include <linux/module.h>
#include <linux/workqueue.h>

#include <labyrinth.h>

struct rx_buf {			/* at the start of each page */
	struct llist_node node;
	u64 dma;		/* what the device would write to */
	u32 len;
};

static struct labyrinth_zone *rx_zone;
static struct hrtimer rx_irq;
static struct work_struct rx_work;
static LLIST_HEAD(rx_ring);
static struct rx_buf *held[8];	/* delivered, not yet released */
static unsigned int held_next;
static atomic_t rx_dropped = ATOMIC_INIT(0);
static void *adopted[8];	/* pages another module handed over */
static DEFINE_SPINLOCK(adopt_lock);
static bool stopping;

/* Hard-IRQ context: no sleeping, no waiting for a lock. */
static enum hrtimer_restart rx_interrupt(struct hrtimer *t)
{
	struct rx_buf *b = labyrinth_void_allocpage_gfpatomic_extra_quality(rx_zone,
			LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_CL_ALIGN);

	if (b) {
		labyrinth_virt_to_phys(rx_zone, b, &b->dma);
		b->len = 64;
		llist_add(&b->node, &rx_ring);
		schedule_work(&rx_work);
	} else {
		atomic_inc(&rx_dropped);	/* reserve spent: drop, never wait */
	}
	if (READ_ONCE(stopping))
		return HRTIMER_NORESTART;
	hrtimer_forward_now(t, ns_to_ktime(500 * NSEC_PER_USEC));
	return HRTIMER_RESTART;
}

/* Process context: deliver, then give pages back (any context may). */
static void rx_deliver(struct work_struct *w)
{
	struct llist_node *n = llist_reverse_order(llist_del_all(&rx_ring));
	struct rx_buf *b, *tmp;

	llist_for_each_entry_safe(b, tmp, n, node) {
		struct rx_buf *old = held[held_next];

		held[held_next] = b;
		held_next = (held_next + 1) % ARRAY_SIZE(held);
		if (old)
			labyrinth_free_pages(rx_zone, old, 0);
	}
}

/* For the test's site module (site_module.c, issue 17.3): the zone, and
 * a page it allocated there that this driver keeps and frees at exit.  Not
 * something a driver needs. */
struct labyrinth_zone *labyrinth_example_zone(void);
struct labyrinth_zone *labyrinth_example_zone(void)
{
	return rx_zone;
}
EXPORT_SYMBOL_GPL(labyrinth_example_zone);

int labyrinth_example_adopt(void *page);
int labyrinth_example_adopt(void *page)
{
	unsigned int i;
	int rc = -ENOSPC;

	spin_lock(&adopt_lock);
	for (i = 0; i < ARRAY_SIZE(adopted); i++) {
		if (!adopted[i]) {
			adopted[i] = page;
			rc = 0;
			break;
		}
	}
	spin_unlock(&adopt_lock);
	return rc;
}
EXPORT_SYMBOL_GPL(labyrinth_example_adopt);

static int __init example_init(void)
{
	struct labyrinth_zone_config cfg = {
		.name = "example-rx",
		.pages = 512,			/* 2 MiB, one physically contiguous region */
		.reserve_pages = 64,		/* only ATOMIC may take these */
		.max_order = 9,
		.flags = LABYRINTH_ZONE_DMA,	/* physical addresses read once, at creation */
	};

	rx_zone = labyrinth_zone_create(&cfg);
	if (!rx_zone)
		return -ENOMEM;
	INIT_WORK(&rx_work, rx_deliver);
	hrtimer_init(&rx_irq, CLOCK_MONOTONIC, HRTIMER_MODE_REL_HARD);
	rx_irq.function = rx_interrupt;
	hrtimer_start(&rx_irq, ns_to_ktime(500 * NSEC_PER_USEC), HRTIMER_MODE_REL_HARD);
	pr_info("labyrinth_example: receiving into zone '%s'\n", labyrinth_zone_name(rx_zone));
	return 0;
}

static void __exit example_exit(void)
{
	struct labyrinth_zone_stats s;
	unsigned int i;

	WRITE_ONCE(stopping, true);
	hrtimer_cancel(&rx_irq);
	flush_work(&rx_work);
	rx_deliver(NULL);			/* whatever the last interrupt queued */
	for (i = 0; i < ARRAY_SIZE(held); i++)
		if (held[i])
			labyrinth_free_pages(rx_zone, held[i], 0);
	for (i = 0; i < ARRAY_SIZE(adopted); i++)
		if (adopted[i])
			labyrinth_free_pages(rx_zone, adopted[i], 0);
	labyrinth_zone_stats(rx_zone, &s);
	pr_info("labyrinth_example: %llu packets received, %d dropped, %llu misuse, check %ld\n",
		s.atomic_allocs, atomic_read(&rx_dropped), s.misuse_reports, labyrinth_zone_check(rx_zone));
	labyrinth_zone_destroy(rx_zone);	/* would report any page still in use */
}

module_init(example_init);
module_exit(example_exit);
MODULE_DESCRIPTION("labyrinth.ko example: a receive interrupt that must never wait");
MODULE_LICENSE("Dual MIT/GPL");
