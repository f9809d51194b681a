#!/usr/bin/env bash
# kernel/run-qemu.sh - the `kernel` flavour of `make test`: build
# labyrinth.ko, its self-test and the example driver against the newest
# installed Debian *-amd64 kernel (not the running one), pack a minimal
# initramfs (busybox-static, the modules, an /init that loads them and reads
# the self-test's verdict) and boot it under qemu-system-x86_64 with TCG.
#
# Verdict: the guest writes to the isa-debug-exit port (0xf4) only on PASS,
# which makes QEMU exit with status 33.  Anything else fails: a FAIL (3), a
# panic (panic_on_warn=1 oops=panic panic=-1 with -no-reboot: QEMU exits 0),
# a timeout (LB_QEMU_TIMEOUT, default 120 s).  /init also reports FAIL
# for a splat that does not panic ("BUG: ", "WARNING: ", "Oops",
# "sleeping function called", "scheduling while atomic", "Call Trace:" in
# dmesg), and for the site module's checks (KB27, KB38, KB40).
#
# Needs (as root it installs them from Debian's packages when missing):
#   linux-image-amd64 linux-headers-amd64 qemu-system-x86 busybox-static cpio kmod
# Without them it prints SKIPPED, loudly, and exits 77 (never a pass).
#
# Environment: LB_QEMU_TIMEOUT (s), LB_SELFTEST_SECONDS (the stress phase,
# default 3), LB_KERNEL_BUILD (build directory, default build-kernel).
# kernel/debug-kernel.sh (`make kernel-debug`) sets LB_KDIR (a built kernel
# tree to build the modules against) and LB_KIMAGE (its bzImage) instead of
# the installed Debian kernel, and LB_QEMU_STRICT_LOG=1: then any KASAN,
# lockdep, RCU, sleep-in-atomic or kmemleak report in the log fails.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
out=${LB_KERNEL_BUILD:-$root/build-kernel}
timeout_s=${LB_QEMU_TIMEOUT:-120}
secs=${LB_SELFTEST_SECONDS:-3}

skip() {
  echo
  echo "################################################################"
  echo "## kernel: SKIPPED - $*"
  echo "## (the kernel module was NOT tested; run as root with Debian's"
  echo "##  package mirror reachable: scripts/deps.sh kernel)"
  echo "################################################################"
  exit 77
}
die() { echo "kernel: FAILED - $*" >&2; exit 1; }

# ---- packages -----------------------------------------------------------------
why=$(bash "$root/scripts/deps.sh" --strict kernel) || skip "$why"

# ---- the kernel: the newest *-amd64 with headers and an image ---------------------
kver=""
if [ -n "${LB_KDIR:-}" ]; then
  [ -e "$LB_KDIR/Makefile" ] && [ -e "${LB_KIMAGE:-}" ] || die "LB_KDIR=$LB_KDIR needs LB_KIMAGE, a bzImage"
  kdir=$LB_KDIR; kimage=$LB_KIMAGE; kver="$(basename "$LB_KDIR") (debug build)"
else
  for d in $(ls -d /lib/modules/*-amd64 2>/dev/null | sort -V); do
    v=$(basename "$d")
    [ -e "$d/build/Makefile" ] && [ -e "/boot/vmlinuz-$v" ] && kver=$v
  done
  [ -n "$kver" ] || skip "no Debian *-amd64 kernel with both headers and /boot/vmlinuz under /lib/modules"
  kdir=/lib/modules/$kver/build; kimage=/boot/vmlinuz-$kver
fi
for t in qemu-system-x86_64 cpio gzip; do command -v $t >/dev/null || skip "$t not found"; done
busybox=$(command -v busybox || true)
[ -x /bin/busybox ] && busybox=/bin/busybox
[ -n "$busybox" ] && file -L "$busybox" 2>/dev/null | grep -q "statically linked" \
  || { ldd "$busybox" 2>&1 | grep -q "not a dynamic" || skip "no static busybox (busybox-static)"; }
echo "kernel: building the modules against $kver (host runs $(uname -r))"

# ---- build ----------------------------------------------------------------------------
mkdir -p "$out"
t0=$(date +%s)
if ! make -s -C "$root/kernel" KDIR="$kdir" BUILD="$out" >"$out/build.log" 2>&1; then
  cat "$out/build.log"; die "module build failed"
fi
if grep -E "warning|error" "$out/build.log" | grep -v "Skipping BTF"; then
  die "the module build has warnings (W=1; see $out/build.log)"
fi
for m in labyrinth labyrinth_selftest labyrinth_example labyrinth_sitemod labyrinth_attack; do
  [ -f "$out/$m.ko" ] || die "$m.ko was not built"
done
echo "kernel: built labyrinth.ko, labyrinth_selftest.ko, labyrinth_example.ko ($(( $(date +%s) - t0 )) s, W=1, no warnings)"

# ---- initramfs -------------------------------------------------------------------------
ird="$out/initramfs"
rm -rf "$ird"; mkdir -p "$ird"/{bin,dev,proc,sys,lib/modules,tmp}
cp "$busybox" "$ird/bin/busybox"
cp "$out"/labyrinth.ko "$out"/labyrinth_selftest.ko "$out"/labyrinth_example.ko "$out"/labyrinth_sitemod.ko "$out"/labyrinth_attack.ko "$ird/lib/modules/"
cat >"$ird/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
verdict() { # byte for the isa-debug-exit port: 0x10 PASS (QEMU exits 33), 0x01 FAIL (3)
  echo "init: \$2"
  printf "\$1" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
  sleep 1; poweroff -f
}
echo "init: insmod labyrinth.ko"
insmod /lib/modules/labyrinth.ko || verdict '\\001' "FAIL: labyrinth.ko did not load"
ref0=\$(cat /sys/module/labyrinth/refcnt)
echo "init: insmod labyrinth_example.ko (the example driver; its zone stays while it is loaded)"
insmod /lib/modules/labyrinth_example.ko || verdict '\\001' "FAIL: the example driver did not load"
# Issue 17.4: each live zone holds a reference on labyrinth.ko (rmmod
# used to succeed under a zone, and its warden ran unloaded code).
ref1=\$(cat /sys/module/labyrinth/refcnt)
echo "init: labyrinth.ko refcnt \$ref0 before the example's zone, \$ref1 with it"
[ "\$ref1" -gt "\$ref0" ] || verdict '\\001' "FAIL: the example's zone holds no reference on labyrinth.ko"
sleep 1
for f in /sys/kernel/debug/labyrinth/*/stats /sys/kernel/debug/labyrinth/*/buddyinfo /sys/kernel/debug/labyrinth/*/tracking; do
  [ -r "\$f" ] || verdict '\\001' "FAIL: no debugfs file \$f"
  echo "init: --- \$f"; head -n 12 "\$f"
  # No raw kernel addresses (%px) in debugfs: %p hashes them (issue 17.8).
  grep -qE 'ffff[0-9a-f]{12}' "\$f" && verdict '\\001' "FAIL: a raw kernel address in \$f"
done
# Issue 17.3 (KB27): a module's seed-macro sites in a zone it did not
# create.  labyrinth_sitemod, once live, allocates from the example's zone
# and hands the pages over; its unload must be refused while the zone
# lives (the zone pins it), and the tracking file must still name its sites.
trk=\$(ls /sys/kernel/debug/labyrinth/example-rx.*/tracking)
insmod /lib/modules/labyrinth_sitemod.ko || verdict '\\001' "FAIL: labyrinth_sitemod.ko did not load"
echo 4 >/sys/module/labyrinth_sitemod/parameters/give || verdict '\\001' "FAIL: labyrinth_sitemod could not hand 4 pages over"
if rmmod labyrinth_sitemod 2>/dev/null; then
  echo "init: rmmod labyrinth_sitemod succeeded while its sites are in the example's zone; reading \$trk:"
  cat "\$trk" >/tmp/trk 2>&1; echo "init: cat status \$?"; grep site_module /tmp/trk | head -n 2
  verdict '\\001' "FAIL: a site-owning module was unloaded while its records lived"
fi
echo "init: rmmod labyrinth_sitemod refused while the example's zone holds its sites"
n=\$(grep -c 'site_module.c:[0-9]* (sitemod_give)' "\$trk")
echo "init: \$trk names site_module.c \$n time(s)"
[ "\$n" -ge 4 ] || verdict '\\001' "FAIL: the tracking file lost the site module's records"
rmmod labyrinth_example || verdict '\\001' "FAIL: the example driver did not unload"
rmmod labyrinth_sitemod || verdict '\\001' "FAIL: labyrinth_sitemod did not unload once the zone was destroyed"
echo "init: labyrinth_sitemod unloaded after the example's zone was destroyed"
ref2=\$(cat /sys/module/labyrinth/refcnt)
[ "\$ref2" = "\$ref0" ] || verdict '\\001' "FAIL: labyrinth.ko refcnt \$ref2 after the example's destroy, want \$ref0"
# KB43, the issue-17 review's second break: a report handler of a module
# that then unloads (the LEAK lines at destroy called unloaded code).
# Here the handler alone pins labyrinth_sitemod (no seed-macro sites of it
# in this zone): its unload is refused until the example's destroy, whose
# LEAK line reaches the handler.
insmod /lib/modules/labyrinth_example.ko || verdict '\\001' "FAIL: the example driver did not load (handler case)"
insmod /lib/modules/labyrinth_sitemod.ko || verdict '\\001' "FAIL: labyrinth_sitemod.ko did not load (handler case)"
echo 1 >/sys/module/labyrinth_sitemod/parameters/handler || verdict '\\001' "FAIL: labyrinth_sitemod could not set its report handler"
if rmmod labyrinth_sitemod 2>/dev/null; then
  verdict '\\001' "FAIL: a module whose report handler a zone holds was unloaded"
fi
echo "init: rmmod labyrinth_sitemod refused while the example's zone holds its report handler"
rmmod labyrinth_example || verdict '\\001' "FAIL: the example driver did not unload (handler case)"
rmmod labyrinth_sitemod || verdict '\\001' "FAIL: labyrinth_sitemod did not unload once the zone holding its handler was destroyed"
n=\$(dmesg | sed -n 's/.*labyrinth_sitemod: unloaded; its report handler saw \\([0-9]*\\) report.*/\\1/p' | tail -n 1)
echo "init: labyrinth_sitemod's report handler saw \${n:-no} report(s) (a double free, then a leak at the example's destroy)"
[ "\${n:-0}" -ge 2 ] || verdict '\\001' "FAIL: the report handler of labyrinth_sitemod saw \${n:-no} report(s), want 2 (bad free, leak)"
# KB38 and KB40: a module whose __init allocates with the macro from the
# example's (new) zone, leaves the pages there and fails.  It is freed at
# once: its sites must not be recorded (reading them oopsed), and its
# code, named as the records' caller, must print hashed, never raw, in
# the tracking file and in the LEAK lines at the example's destroy.
insmod /lib/modules/labyrinth_example.ko || verdict '\\001' "FAIL: the example driver did not load again"
trk=\$(ls /sys/kernel/debug/labyrinth/example-rx.*/tracking)
insmod /lib/modules/labyrinth_sitemod.ko fail_init=1 2>/dev/null && verdict '\\001' "FAIL: labyrinth_sitemod fail_init=1 loaded"
n=\$(dmesg | grep -c 'labyrinth_sitemod: fail_init: report handler from __init: -11')
echo "init: a report handler set from a failing __init: refused (EAGAIN) \$n time(s)"
[ "\$n" -ge 1 ] || verdict '\\001' "FAIL: a report handler set from __init was not refused with -EAGAIN"
cat "\$trk" >/tmp/trk2 || verdict '\\001' "FAIL: reading \$trk after the failed init"
echo "init: after a failed __init, \$trk:"; grep -v ' (rx_interrupt)' /tmp/trk2 | head -n 4 | sed 's/^/init:   /'
grep -q 'sitemod_init' /tmp/trk2 && verdict '\\001' "FAIL: the tracking file names a site of a module whose __init failed"
grep -qE 'ffff[0-9a-f]{12}' /tmp/trk2 && verdict '\\001' "FAIL: a raw kernel address in \$trk after the failed init"
n=\$(grep -c '(unloaded code)' /tmp/trk2)
# (busybox's insmod runs the init twice: finit_module, then init_module.)
[ "\$n" -ge 2 ] || verdict '\\001' "FAIL: \$n record(s) of the failed __init's caller (want 2 or more, '(unloaded code)')"
rmmod labyrinth_example || verdict '\\001' "FAIL: the example driver did not unload (second time)"
n=\$(dmesg | grep "labyrinth: zone 'example-rx': leak: block" | grep -c '(unloaded code)')
echo "init: the example's destroy reported \$n leak(s) allocated by unloaded code"
[ "\$n" -ge 2 ] || verdict '\\001' "FAIL: \$n LEAK line(s) naming the failed __init's caller, want 2 or more"
dmesg | grep 'labyrinth: ' | grep -E 'ffff[0-9a-f]{12}' && verdict '\\001' "FAIL: a raw kernel address in a labyrinth line"
# The adversarial module: racing double frees, migration, page_info
# against the seed macro, for about 2 s; its init fails on a violation.
echo "init: insmod labyrinth_attack.ko"
insmod /lib/modules/labyrinth_attack.ko || { dmesg | grep 'attack: ' | tail -n 20 | sed 's/^/init: /'; verdict '\\001' "FAIL: labyrinth_attack.ko reported violations"; }
dmesg | grep 'attack: ' | tail -n 4 | sed 's/^/init: /'
rmmod labyrinth_attack || verdict '\\001' "FAIL: labyrinth_attack did not unload"
echo "init: insmod labyrinth_selftest.ko seconds=$secs"
insmod /lib/modules/labyrinth_selftest.ko seconds=$secs
rc=\$?
# A splat that does not panic (might_sleep's "sleeping function called
# from invalid context", a lockdep or hung-task report) fails the run too.
if dmesg | grep -E 'BUG: |WARNING: |Oops|sleeping function called|scheduling while atomic|Call Trace:'; then
  verdict '\\001' "FAIL: a kernel splat in the log"
fi
if [ \$rc = 0 ] && dmesg | grep -q "labyrinth_selftest: PASS"; then
  rmmod labyrinth_selftest && rmmod labyrinth || verdict '\\001' "FAIL: the modules did not unload"
  if [ -w /sys/kernel/debug/kmemleak ]; then
    # kmemleak (debug kernel): two scans apart, as its documentation asks;
    # a leak whose trace names a labyrinth module fails.
    echo scan >/sys/kernel/debug/kmemleak; sleep 6; echo scan >/sys/kernel/debug/kmemleak
    n=\$(grep -c "unreferenced object" /sys/kernel/debug/kmemleak)
    echo "init: kmemleak: \$n suspected leak(s) in the whole kernel"
    if grep -q "labyrinth" /sys/kernel/debug/kmemleak; then
      head -n 40 /sys/kernel/debug/kmemleak; verdict '\\001' "FAIL: init: KMEMLEAK: a leak traced to a labyrinth module"
    fi
  fi
  verdict '\\020' "PASS"
fi
verdict '\\001' "FAIL: the self-test (insmod status \$rc)"
INIT
chmod +x "$ird/init"
(cd "$ird" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$out/initramfs.gz" || die "cpio failed"

# ---- boot --------------------------------------------------------------------------------
log="$out/qemu.log"
echo "kernel: booting $kimage under qemu-system-x86_64 -accel tcg (timeout ${timeout_s} s; serial log: $log)"
t0=$(date +%s)
timeout --foreground -k 5 "$timeout_s" qemu-system-x86_64 -accel tcg -m 512 -smp 2 -nographic -no-reboot -nic none \
  -kernel "$kimage" -initrd "$out/initramfs.gz" \
  -append "console=ttyS0 panic_on_warn=1 oops=panic panic=-1 mitigations=off" \
  -device isa-debug-exit,iobase=0xf4,iosize=0x04 </dev/null >"$log" 2>&1
qrc=$?
secs_run=$(( $(date +%s) - t0 ))
# The first 120 such lines, then the self-test's verdict and bench lines
# wherever they are (the summary of scripts/test.sh reads the PASS line:
# 120 lines alone lost it once the /init grew).
tr -d '\r' <"$log" | grep -E "labyrinth|init:|Kernel panic|BUG|WARNING|Oops" | grep -v "^init: ---" | head -120
tr -d '\r' <"$log" | grep -E "labyrinth_selftest: (PASS|FAIL|bench)" | tail -n 6
if [ "$qrc" = 33 ] && [ "${LB_QEMU_STRICT_LOG:-0}" = 1 ]; then
  # The debug kernel's tools report without panicking (lockdep, PROVE_RCU)
  # or only on a scan (kmemleak): any such line fails the run.
  if tr -d '\r' <"$log" | grep -E "BUG: KASAN|possible (recursive|circular) locking|inconsistent lock state|suspicious RCU usage|sleeping function called from invalid context|scheduling while atomic|unreferenced object|init: KMEMLEAK" ; then
    die "the debug kernel's tools reported the lines above (see $log)"
  fi
  echo "kernel: the debug kernel's log has no KASAN, lockdep, RCU, atomic-sleep or kmemleak report"
fi
case $qrc in
  33) echo "kernel: PASS (guest wrote PASS to the isa-debug-exit port; ${secs_run} s in QEMU)"; exit 0 ;;
  3)  die "the guest reported FAIL (see $log)" ;;
  124|137) die "timeout after ${timeout_s} s (see $log)" ;;
  0)  die "the guest stopped without a verdict: a panic or an early power-off (see $log)" ;;
  *)  die "QEMU exited with $qrc (see $log)" ;;
esac
