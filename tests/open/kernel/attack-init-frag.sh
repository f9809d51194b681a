#!/bin/busybox sh
# LB_ATTACK_INIT=kernel/attack-init-frag.sh: the page allocator's large
# blocks across 200 zone create/destroy cycles (labyrinth) and across 200
# cycles of the same page-allocator calls without labyrinth (control).
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
verdict() { echo "init: $2"; printf "$1" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null; sleep 1; poweroff -f; }
insmod /lib/modules/labyrinth.ko
echo "init: start:   $(grep nr_free_pages /proc/vmstat)"; cat /proc/buddyinfo
insmod /lib/modules/labyrinth_attack.ko which=control loops=200; rmmod labyrinth_attack
sleep 2; echo 3 > /proc/sys/vm/drop_caches; sleep 1
echo "init: after control: $(grep nr_free_pages /proc/vmstat)"; cat /proc/buddyinfo
insmod /lib/modules/labyrinth_attack.ko which=leakloop loops=200 vfirst=4; rmmod labyrinth_attack
sleep 2; echo 3 > /proc/sys/vm/drop_caches; sleep 1
echo "init: after 200 labyrinth NO_WARDEN create/destroy: $(grep nr_free_pages /proc/vmstat)"; cat /proc/buddyinfo
insmod /lib/modules/labyrinth_attack.ko which=leakloop loops=200 vfirst=0; rmmod labyrinth_attack
sleep 2; echo 3 > /proc/sys/vm/drop_caches; sleep 1
echo "init: after labyrinth variants 0-4: $(grep nr_free_pages /proc/vmstat)"; cat /proc/buddyinfo
rmmod labyrinth
sleep 2; echo "init: after rmmod labyrinth: $(grep nr_free_pages /proc/vmstat)"; cat /proc/buddyinfo
verdict '\020' "PASS"
