#!/bin/busybox sh
# LB_ATTACK_INIT=kernel/attack-init-leakzone.sh: a zone whose creator unloads without
# destroying it (misuse) must keep labyrinth.ko loaded.
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
verdict() { echo "init: $2"; printf "$1" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null; sleep 1; poweroff -f; }
M=/lib/modules
insmod $M/labyrinth.ko
echo "init: === leaked zone keeps labyrinth.ko"
insmod $M/labyrinth_attack.ko which=leakzone
rmmod labyrinth_attack && echo "init: creator unloaded, zone left"
echo "init: refcnt $(cat /sys/module/labyrinth/refcnt)"
rmmod labyrinth && echo "init: BREAK rmmod labyrinth succeeded with a live zone" || echo "init: rmmod labyrinth refused (zone live): good"
cat /sys/kernel/debug/labyrinth/atk-leaked.*/stats | head -3
if dmesg | grep -E 'BUG: |WARNING: |Oops|Call Trace:'; then verdict '\001' "FAIL: splat"; fi
verdict '\020' "PASS"
