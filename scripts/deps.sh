#!/usr/bin/env bash
# scripts/deps.sh [--strict] SET - make sure what SET needs is installed.
# Installs missing Debian packages with apt-get when run as root; otherwise
# says plainly what is missing and what it will cost (a skipped part).
# Sets: test (valgrind, clang and its fuzzer runtime, spin, gnuplot), bench
# (the peers, gnuplot), kernel (kernel/run-qemu.sh: Debian's kernel image
# and headers, QEMU, a static busybox), kernel-debug (kernel/debug-kernel.sh:
# linux-source and the kernel's build tools).
# --strict: when something is still missing (not root, or apt-get failed),
# print why on stdout, one line, and exit 77; the caller says SKIPPED.
set -u
strict=0
[ "${1:-}" = --strict ] && { strict=1; shift; }
set_name=${1:-test}
case "$set_name" in
  test)  pkgs="valgrind clang pkg-config libclang-rt-14-dev spin gnuplot-nox" ;;
  bench) pkgs="valgrind pkg-config libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev libdpdk-dev gnuplot-nox" ;;
  kernel) pkgs="linux-image-amd64 linux-headers-amd64 qemu-system-x86 busybox-static cpio kmod" ;;
  kernel-debug) pkgs="linux-source flex bison bc libelf-dev libssl-dev xz-utils make gcc" ;;
  *) echo "deps.sh: unknown set '$set_name'" >&2; exit 2 ;;
esac
log=/tmp/labyrinth-apt-$set_name.log
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
# DPkg::Lock::Timeout: wait up to 10 minutes for another apt or dpkg (a
# parallel flavour, an unattended upgrade) instead of failing at once.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "deps: installing from Debian's packages:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing >"$log" 2>&1; then
    apt-get -o DPkg::Lock::Timeout=600 update -q >>"$log" 2>&1
    if ! apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing >>"$log" 2>&1; then
      [ "$strict" = 1 ] && { echo "apt-get could not install:$missing (see $log)"; exit 77; }
      echo "deps: apt-get failed (see $log); missing:$missing" >&2; exit 1
    fi
  fi
else
  [ "$strict" = 1 ] && { echo "missing:$missing (not root: cannot install)"; exit 77; }
  echo "deps: NOT INSTALLED (need root and apt-get):$missing" >&2
  echo "deps: the parts that need them will say SKIPPED" >&2
fi
exit 0
