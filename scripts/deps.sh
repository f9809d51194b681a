#!/usr/bin/env bash
# scripts/deps.sh SET - make sure what SET needs is installed.
# Installs missing Debian packages with apt-get when run as root; otherwise
# says plainly what is missing and what it will cost (a skipped part).
# Sets: test (valgrind, clang and its fuzzer runtime, spin, gnuplot), bench
# (the peers, gnuplot). The kernel flavour installs its own (kernel/run-qemu.sh).
set -u
set_name=${1:-test}
case "$set_name" in
  test)  pkgs="valgrind clang pkg-config libclang-rt-14-dev spin gnuplot-nox" ;;
  bench) pkgs="valgrind pkg-config libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev libdpdk-dev gnuplot-nox" ;;
  *) echo "deps.sh: unknown set '$set_name'" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
# DPkg::Lock::Timeout: wait up to 10 minutes for another apt or dpkg (a
# parallel flavour, an unattended upgrade) instead of failing at once.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "deps: installing from Debian's packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing >/tmp/labyrinth-apt.log 2>&1; then
    apt-get -o DPkg::Lock::Timeout=600 update -q >>/tmp/labyrinth-apt.log 2>&1
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing >>/tmp/labyrinth-apt.log 2>&1 \
      || { echo "deps: apt-get failed (see /tmp/labyrinth-apt.log); missing:$missing" >&2; exit 1; }
  fi
else
  echo "deps: NOT INSTALLED (need root and apt-get):$missing" >&2
  echo "deps: the parts that need them will say SKIPPED" >&2
fi
exit 0
