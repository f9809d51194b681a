#!/bin/busybox sh
# LB_ATTACK_INIT=kernel/attack-init-handler.sh: (1) a zone whose creator
# unloads without destroying it keeps labyrinth.ko loaded; (2) a report
# handler set by a module on another module's zone outlives its module.
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
verdict() { echo "init: $2"; printf "$1" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null; sleep 1; poweroff -f; }
M=/lib/modules
insmod $M/labyrinth.ko
echo "init: === handler outliving its module"
insmod $M/labyrinth_example.ko
insmod $M/labyrinth_attack.ko which=handler
rmmod labyrinth_attack && echo "init: rmmod labyrinth_attack succeeded (its handler is still set on example-rx)"
echo "init: sitemod fail_init=1 leaves pages in example-rx; unloading the example reports them as LEAKs through the handler"
insmod $M/labyrinth_sitemod.ko fail_init=1 2>/dev/null
rmmod labyrinth_example && echo "init: example unloaded"
echo "init: === leaked zone keeps labyrinth.ko"
insmod $M/labyrinth_attack.ko which=leakzone
rmmod labyrinth_attack && echo "init: creator unloaded, zone left"
echo "init: refcnt $(cat /sys/module/labyrinth/refcnt)"
rmmod labyrinth && echo "init: BREAK rmmod labyrinth succeeded with a live zone" || echo "init: rmmod labyrinth refused (zone live): good"
cat /sys/kernel/debug/labyrinth/atk-leaked.*/stats | head -3
if dmesg | grep -E 'BUG: |WARNING: |Oops|Call Trace:'; then verdict '\001' "FAIL: splat"; fi
verdict '\020' "PASS"
