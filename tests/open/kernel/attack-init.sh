#!/bin/busybox sh
# /init for the adversarial review (LB_ATTACK_INIT=kernel/attack-init.sh).
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
verdict() { echo "init: $2"; printf "$1" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null; sleep 1; poweroff -f; }
M=/lib/modules
insmod $M/labyrinth.ko || verdict '\001' "FAIL: labyrinth.ko"
ATTACKS="${ATTACKS:-ctx,handles,dfrace,busy,reports,names}"
echo "init: === attack $ATTACKS"
( while [ ! -e /tmp/stop1 ]; do for f in /sys/kernel/debug/labyrinth/*/tracking /sys/kernel/debug/labyrinth/*/buddyinfo /sys/kernel/debug/labyrinth/*/stats; do cat $f >>/tmp/dbg1 2>/dev/null; done; [ $(wc -c </tmp/dbg1) -gt 4000000 ] && : >/tmp/dbg1; grep -qE 'ffff[0-9a-f]{12}' /tmp/dbg1 && echo "init: RAW ADDRESS in debugfs"; done ) &
insmod $M/labyrinth_attack.ko which=$ATTACKS seconds=${DF_SECONDS:-8} || echo "init: insmod attack failed $?"
touch /tmp/stop1; sleep 0.5
ls /sys/kernel/debug/labyrinth/
for f in /sys/kernel/debug/labyrinth/*/buddyinfo; do head -1 "$f"; done
# --- reports accounting (from dmesg) ---
dmesg > /tmp/d1
p=$(grep -c "zone 'atk-rep'.*\(double\|already\|not allocated\)" /tmp/d1)
s=$(grep "zone 'atk-rep': [0-9]* bad free line(s) suppressed" /tmp/d1 | sed 's/.*atk-rep.: \([0-9]*\) bad free.*/\1/' | awk '{t+=$1} END {print t+0}')
echo "init: reports: atk-rep bad-free lines printed $p, suppressed counted $s, total $((p+s)) (reports made: see misuse_reports above)"
grep "atk-rep" /tmp/d1 | head -3
grep "atk-rep.*suppress" /tmp/d1
l=$(grep -c "zone 'atk-leak': leak: block" /tmp/d1)
echo "init: reports: atk-leak leak lines $l"; grep "atk-leak" /tmp/d1 | grep -v "leak: block" | head -5
grep "zone '(none)'" /tmp/d1 | tail -3
grep "names:" /tmp/d1
grep -A1 "nl$" /tmp/d1 | head -4
rmmod labyrinth_attack
echo "init: labyrinth refcnt after the attack module went: $(cat /sys/module/labyrinth/refcnt)"
# --- hotplug under load ---
if [ -e /sys/devices/system/cpu/cpu1/online ]; then
  echo "init: === hotplug attack"
  insmod $M/labyrinth_attack.ko which=hotplug
  echo "init: labyrinth refcnt with the hotplug zone live: $(cat /sys/module/labyrinth/refcnt)"
  ( while [ ! -e /tmp/stop2 ]; do cat /sys/kernel/debug/labyrinth/*/tracking /sys/kernel/debug/labyrinth/*/stats >/dev/null 2>&1; done ) &
  i=0
  while [ $i -lt ${HP_CYCLES:-30} ]; do
    echo 0 > /sys/devices/system/cpu/cpu1/online || echo "init: offline failed"
    sleep 0.2
    echo 1 > /sys/devices/system/cpu/cpu1/online || echo "init: online failed"
    sleep 0.2
    i=$((i+1))
  done
  echo "init: hotplug: $i offline/online cycles"
  touch /tmp/stop2
  echo 1 > /sys/module/labyrinth_attack/parameters/verify
  rmmod labyrinth_attack
fi
# --- debugfs raw address scan of any labyrinth files left ---
for f in /sys/kernel/debug/labyrinth/*/*; do [ -r "$f" ] && grep -E 'ffff[0-9a-f]{12}' "$f" && echo "init: RAW ADDRESS in $f"; done
if [ -n "$EXTRA" ]; then . $EXTRA; fi
if [ -n "$STALE" ]; then echo "init: === stale handle copy"; insmod $M/labyrinth_attack.ko which=stale; rmmod labyrinth_attack; fi
insmod $M/labyrinth_attack.ko which=burst; rmmod labyrinth_attack
rmmod labyrinth || echo "init: rmmod labyrinth failed"
echo "init: after the burst and rmmod labyrinth:"; dmesg | grep -A3 "burst: 30" | tail -3
dmesg | grep 'labyrinth' | grep -E 'ffff[0-9a-f]{12}' && echo "init: RAW ADDRESS in a labyrinth line"
if dmesg | grep -E 'BUG: |WARNING: |Oops|sleeping function called|scheduling while atomic|Call Trace:|possible (recursive|circular)|suspicious RCU|inconsistent lock'; then
  verdict '\001' "FAIL: a kernel splat in the log"
fi
n=$(dmesg | grep -c "labyrinth_attack: .*BREAK")
[ "$n" = 0 ] && verdict '\020' "PASS: no break" 
verdict '\001' "FAIL: $n break line(s)"
