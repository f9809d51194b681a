#!/usr/bin/env bash
# kernel/debug-kernel.sh - `make kernel-debug`: the QEMU self-test of
# kernel/run-qemu.sh, on a debug kernel built here from Debian's
# linux-source package: KASAN, lockdep (PROVE_LOCKING), PROVE_RCU,
# DEBUG_ATOMIC_SLEEP and kmemleak, on a small configuration (tinyconfig
# plus what the self-test and its initramfs need).
#
# Not in `make test`: building the kernel takes about 13 minutes of wall
# time on this project's 2-vCPU machine beside other work (docs/kernel.md,
# "The debug kernel"), which alone would take the suite past its 25-minute
# budget; the build is cached, so only the first run pays it.
#
# Verdict: as run-qemu.sh (PASS only when the guest writes PASS to the
# isa-debug-exit port), and in addition any KASAN, lockdep, RCU, sleep-in-
# atomic or kmemleak report in the guest's log fails the run.
#
# Needs, installed from Debian's packages as root when missing: linux-source
# and the kernel's build tools (flex bison bc libelf-dev libssl-dev
# xz-utils), plus what run-qemu.sh needs.
#
# Environment: LB_DEBUG_KERNEL_CACHE (where the source is unpacked and
# built; default /var/cache/labyrinth/debug-kernel), LB_QEMU_TIMEOUT
# (default here 600 s: KASAN and lockdep slow the guest several times).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${LB_DEBUG_KERNEL_CACHE:-/var/cache/labyrinth/debug-kernel}
die() { echo "kernel-debug: FAILED - $*" >&2; exit 1; }
skip() { echo "kernel-debug: SKIPPED - $*"; exit 77; }

why=$(bash "$root/scripts/deps.sh" --strict kernel-debug) || skip "$why"

tarball=$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | sort -V | tail -n 1)
[ -n "$tarball" ] || die "linux-source is installed but /usr/src/linux-source-*.tar.xz is missing"
ver=$(basename "$tarball" .tar.xz)
src="$cache/$ver"
mkdir -p "$cache" || die "cannot create $cache"

# The configuration: its text is part of the cache key, so a change here
# rebuilds.
config_extra='
CONFIG_64BIT=y
CONFIG_SMP=y
CONFIG_NR_CPUS=4
CONFIG_ACPI=y
CONFIG_X86_MPPARSE=y
CONFIG_X86_IO_APIC=y
CONFIG_HOTPLUG_CPU=y
CONFIG_X86_LOCAL_APIC=y
CONFIG_PCI=y
CONFIG_DEVPORT=y
CONFIG_MODULES=y
CONFIG_MODULE_UNLOAD=y
CONFIG_BLK_DEV_INITRD=y
CONFIG_RD_GZIP=y
CONFIG_BINFMT_ELF=y
CONFIG_BINFMT_SCRIPT=y
CONFIG_PRINTK=y
CONFIG_PRINTK_TIME=y
CONFIG_TTY=y
CONFIG_SERIAL_8250=y
CONFIG_SERIAL_8250_CONSOLE=y
CONFIG_DEVTMPFS=y
CONFIG_PROC_FS=y
CONFIG_SYSFS=y
CONFIG_DEBUG_FS=y
CONFIG_KALLSYMS=y
CONFIG_KALLSYMS_ALL=y
CONFIG_MULTIUSER=y
CONFIG_FUTEX=y
CONFIG_HIGH_RES_TIMERS=y
CONFIG_PREEMPT=y
CONFIG_DEBUG_KERNEL=y
CONFIG_DEBUG_INFO_NONE=y
CONFIG_SLUB=y
CONFIG_KASAN=y
CONFIG_KASAN_GENERIC=y
CONFIG_KASAN_INLINE=y
CONFIG_PROVE_LOCKING=y
CONFIG_PROVE_RCU=y
CONFIG_DEBUG_ATOMIC_SLEEP=y
CONFIG_DEBUG_KMEMLEAK=y
CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE=16000
CONFIG_DEBUG_KMEMLEAK_AUTO_SCAN=n
CONFIG_FRAME_WARN=2048
'
key=$(printf '%s\n%s\n' "$ver" "$config_extra" | sha256sum | cut -c1-16)
stamp="$src/.labyrinth-built-$key"

if [ ! -e "$stamp" ]; then
  t0=$(date +%s)
  if [ ! -d "$src" ]; then
    echo "kernel-debug: unpacking $tarball into $cache"
    tar -C "$cache" -xf "$tarball" || die "cannot unpack $tarball"
  fi
  echo "kernel-debug: configuring $ver (tinyconfig + the debug options)"
  printf '%s\n' "$config_extra" >"$src/labyrinth.config"
  (cd "$src" && make -s tinyconfig >/dev/null && \
     ./scripts/kconfig/merge_config.sh -m .config labyrinth.config >"$cache/merge.log" 2>&1 && \
     make -s olddefconfig >/dev/null) || die "configuration failed (see $cache/merge.log)"
  for o in KASAN PROVE_LOCKING PROVE_RCU DEBUG_ATOMIC_SLEEP DEBUG_KMEMLEAK MODULES SMP ACPI HOTPLUG_CPU DEVPORT SERIAL_8250_CONSOLE DEBUG_FS; do
    grep -q "^CONFIG_$o=y" "$src/.config" || die "CONFIG_$o did not survive olddefconfig (see $src/.config)"
  done
  echo "kernel-debug: building bzImage and the module tooling (about 13 minutes on 2 vCPUs; progress every 60 s)"
  ( while sleep 60; do echo "kernel-debug: still building ($(( $(date +%s) - t0 )) s, $(find "$src" -name '*.o' -newer "$src/labyrinth.config" | wc -l) objects)"; done ) &
  ticker=$!
  (cd "$src" && make -j "$(nproc)" bzImage modules >"$cache/build.log" 2>&1)
  brc=$?
  kill $ticker 2>/dev/null; wait $ticker 2>/dev/null
  [ "$brc" = 0 ] || { tail -30 "$cache/build.log"; die "kernel build failed (see $cache/build.log)"; }
  touch "$stamp"
  echo "kernel-debug: built $ver in $(( $(date +%s) - t0 )) s"
else
  echo "kernel-debug: using the cached build in $src"
fi

LB_KDIR="$src" LB_KIMAGE="$src/arch/x86/boot/bzImage" LB_KERNEL_BUILD="$root/build-kernel-debug" \
  LB_QEMU_TIMEOUT=${LB_QEMU_TIMEOUT:-600} LB_QEMU_STRICT_LOG=1 bash "$root/kernel/run-qemu.sh"
