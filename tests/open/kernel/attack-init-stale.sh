#!/bin/busybox sh
# LB_ATTACK_INIT=kernel/attack-init-stale.sh: a byte copy of a live handle
# is served by the fast paths; kept past the zone's destroy it makes
# labyrinth_alloc_pages read the destroyed zone's freed metadata.
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
verdict() { echo "init: $2"; printf "$1" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null; sleep 1; poweroff -f; }
insmod /lib/modules/labyrinth.ko
insmod /lib/modules/labyrinth_attack.ko which=handles
insmod /lib/modules/labyrinth_attack.ko which=stale 2>/dev/null || { rmmod labyrinth_attack; insmod /lib/modules/labyrinth_attack.ko which=stale; }
if dmesg | grep -E 'BUG: |Oops'; then verdict '\001' "FAIL: oops"; fi
verdict '\020' "PASS"
