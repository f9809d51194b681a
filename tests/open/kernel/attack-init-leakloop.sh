#!/bin/busybox sh
# LB_ATTACK_INIT=kernel/attack-init-leakloop.sh: memory across zone
# create/destroy cycles (plain, KERNEL allocations with growth, grow +
# shrink, thread_release, no warden).
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
verdict() { echo "init: $2"; printf "$1" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null; sleep 1; poweroff -f; }
insmod /lib/modules/labyrinth.ko
LOOPS=100; VFIRST=1
grep -E "MemFree|MemAvail|Vmalloc" /proc/meminfo; cat /proc/buddyinfo
insmod /lib/modules/labyrinth_attack.ko which=leakloop loops=${LOOPS:-200} vfirst=${VFIRST:-0}; echo "init: buddyinfo after:"; cat /proc/buddyinfo
grep -E "MemFree|MemAvail|VmallocUsed" /proc/meminfo
rmmod labyrinth_attack; rmmod labyrinth
grep -E "MemFree|MemAvail|VmallocUsed" /proc/meminfo
n=$(dmesg | grep -c "labyrinth_attack: .*BREAK")
[ "$n" = 0 ] && verdict '\020' "PASS: no break"
verdict '\001' "FAIL: $n break line(s)"
