#!/usr/bin/env bash
# tests/install.sh BUILD_DIR SOURCE_DIR - the installed library, as an
# outside program sees it: `make install PREFIX=... BUILD=...` into a
# temporary prefix, then a program that uses every name of shared/API.md is
# compiled with `pkg-config --cflags --libs labyrinth` (strict C17, warnings
# as errors) and linked against the static library and against the shared
# one (run with LD_LIBRARY_PATH).  Also: the installed files, the version,
# and that the shared library exports only labyrinth_* symbols.
# Exit 0 pass, 1 fail, 77 skipped (pkg-config missing).
set -u
build=${1:?usage: install.sh BUILD_DIR SOURCE_DIR}
src=${2:?usage: install.sh BUILD_DIR SOURCE_DIR}
: "$build"

if ! command -v pkg-config >/dev/null 2>&1; then
  echo "SKIPPED: pkg-config is not installed (scripts/deps.sh test installs it)"
  exit 77
fi
cc=${CC:-cc}
command -v "$cc" >/dev/null 2>&1 || cc=gcc

tmp=$(mktemp -d "${TMPDIR:-/tmp}/labyrinth-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# ---- install --------------------------------------------------------------
# The sanitizer flavours' flags must not leak into the installed library.
if ! env -u CFLAGS -u LDFLAGS make -C "$src" install PREFIX="$tmp" BUILD="$tmp/b" >"$tmp/install.log" 2>&1; then
  cat "$tmp/install.log"
  echo "FAIL: make install PREFIX=$tmp failed"
  exit 1
fi
ok "make install PREFIX=$tmp"

pc=$(find "$tmp" -path "$tmp/b*" -prune -o -name labyrinth.pc -print | head -n 1)
if [ -z "$pc" ]; then
  echo "FAIL: no labyrinth.pc installed under $tmp"
  find "$tmp" -path "$tmp/b*" -prune -o -print
  exit 1
fi
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir labyrinth)
includedir=$(pkg-config --variable=includedir labyrinth)
case "$libdir" in "$tmp"/*) ok "libdir $libdir" ;; *) fail "libdir '$libdir' is outside the prefix $tmp" ;; esac
case "$includedir" in "$tmp"/*) ok "includedir $includedir" ;; *) fail "includedir '$includedir' is outside the prefix" ;; esac

for f in "$includedir/labyrinth.h" "$libdir/liblabyrinth.a" "$libdir/liblabyrinth.so" "$libdir/liblabyrinth.so.0"; do
  [ -e "$f" ] && ok "installed $(basename "$f")" || fail "not installed: $f"
done

# The version: pkg-config's agrees with the header's.
hv=$(awk '/#define LABYRINTH_VERSION_(MAJOR|MINOR|PATCH)/ {v = v (v == "" ? "" : ".") $3} END {print v}' \
     "$includedir/labyrinth.h")
pv=$(pkg-config --modversion labyrinth)
[ -n "$hv" ] && [ "$hv" = "$pv" ] && ok "version $pv" || fail "pkg-config says '$pv', the header '$hv'"

# The static link needs the threads library (Libs.private).
pkg-config --static --libs labyrinth | grep -q -- "-pthread\|-lpthread" \
  && ok "Libs.private names the threads library" || fail "pkg-config --static --libs lacks -pthread"

# Only labyrinth_* is exported from the shared library.
if command -v nm >/dev/null 2>&1; then
  extra=$(nm -D --defined-only "$libdir/liblabyrinth.so" | awk '{print $NF}' | grep -v '^labyrinth_' | grep -v '^_init$\|^_fini$' || true)
  [ -z "$extra" ] && ok "exports only labyrinth_*" || fail "the shared library also exports: $(echo $extra)"
fi

# ---- an outside program -----------------------------------------------------
cat >"$tmp/prog.c" <<'EOF'
/* An outside program: every name of shared/API.md. */
#define _POSIX_C_SOURCE 200809L
#include <labyrinth.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int failed;
#define EXPECT(c) do { if (!(c)) { printf("prog: FAIL line %d: %s\n", __LINE__, #c); failed++; } } while (0)

static unsigned char arena[1 << 20];

int main(void)
{
    /* Types and every config field. */
    struct labyrinth_zone *z;
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "outside";
    cfg.pages = 256;
    cfg.max_pages = 512;
    cfg.reserve_pages = 16;
    cfg.low_pages = 32;
    cfg.high_pages = 64;
    cfg.max_order = 6;
    cfg.poison_pattern = 0x5a;
    cfg.quality = 0;
    cfg.flags = LABYRINTH_ZONE_VERIFY;
    cfg.memory = NULL;
    cfg.memory_bytes = 0;
    z = labyrinth_zone_create(&cfg);
    EXPECT(z != NULL);
    if (!z)
        return 1;

    /* The flags are distinct bits. */
    unsigned zf[] = {LABYRINTH_ZONE_DMA, LABYRINTH_ZONE_HUGE, LABYRINTH_ZONE_VERIFY, LABYRINTH_ZONE_STRICT};
    unsigned qf[] = {LABYRINTH_QUALITY_ZERO, LABYRINTH_QUALITY_POISON, LABYRINTH_QUALITY_CL_ALIGN,
                     LABYRINTH_QUALITY_TRACK};
    unsigned all_z = 0, all_q = 0;
    for (int i = 0; i < 4; i++) {
        EXPECT(zf[i] && !(zf[i] & (zf[i] - 1)) && !(all_z & zf[i]));
        EXPECT(qf[i] && !(qf[i] & (qf[i] - 1)) && !(all_q & qf[i]));
        all_z |= zf[i];
        all_q |= qf[i];
    }
    EXPECT(LABYRINTH_GFP_ATOMIC != LABYRINTH_GFP_NOWAIT && LABYRINTH_GFP_NOWAIT != LABYRINTH_GFP_KERNEL &&
           LABYRINTH_GFP_ATOMIC != LABYRINTH_GFP_KERNEL);

    /* The modes and the qualities. */
    unsigned char *a = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, LABYRINTH_QUALITY_ZERO);
    unsigned char *n = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 1, LABYRINTH_QUALITY_POISON);
    unsigned char *k = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 2,
                                             LABYRINTH_QUALITY_CL_ALIGN | LABYRINTH_QUALITY_TRACK);
    EXPECT(a && n && k);
    if (!a || !n || !k)
        return 1;
    EXPECT(a[0] == 0 && a[4095] == 0);
    EXPECT(n[0] == 0x5a && n[8191] == 0x5a);
    EXPECT(((uintptr_t)k & 63) == 0);

    /* The seed's macro, and register. */
    void *m = labyrinth_void_allocpage_gfpatomic_extra_quality(z, LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_CL_ALIGN);
    EXPECT(m != NULL);
    EXPECT(labyrinth_register_page(z, a) == 0);

    struct labyrinth_zone_stats st;
    EXPECT(labyrinth_zone_stats(z, &st) == 0);
    EXPECT(st.total_pages == 256);
    EXPECT(st.in_use_pages == 1 + 2 + 4 + 1);
    EXPECT(st.total_pages == st.free_pages + st.in_use_pages);
    EXPECT(st.reserve_free_pages <= 16);
    EXPECT(st.atomic_allocs == 2);
    EXPECT(st.atomic_failures == 0);
    EXPECT(st.misuse_reports == 0);
    EXPECT(labyrinth_zone_check(z) == 0);

    uint64_t phys = 0;
    EXPECT(labyrinth_virt_to_phys(z, a, &phys) < 0); /* not a DMA zone */

    /* Frees: NULL is a no-op, a refused free is counted and changes nothing. */
    EXPECT(labyrinth_free_pages(z, NULL, 0) == 0);
    EXPECT(labyrinth_free_pages(z, a, 0) == 0);
    EXPECT(labyrinth_free_pages(z, a, 0) < 0);
    EXPECT(labyrinth_free_pages(z, k + 4096, 2) < 0);
    EXPECT(labyrinth_free_pages(z, n, 0) < 0);
    EXPECT(labyrinth_zone_stats(z, &st) == 0);
    EXPECT(st.misuse_reports == 3);
    EXPECT(st.in_use_pages == 2 + 4 + 1);
    EXPECT(labyrinth_free_pages(z, n, 1) == 0);
    EXPECT(labyrinth_free_pages(z, k, 2) == 0);
    EXPECT(labyrinth_free_pages(z, m, 0) == 0);
    EXPECT(labyrinth_zone_check(z) == 0);
    labyrinth_zone_destroy(z);

    /* Defaults, and caller-supplied memory. */
    z = labyrinth_zone_create(NULL);
    EXPECT(z != NULL);
    labyrinth_zone_destroy(z);
    memset(&cfg, 0, sizeof cfg);
    cfg.memory = arena;
    cfg.memory_bytes = sizeof arena;
    z = labyrinth_zone_create(&cfg);
    EXPECT(z != NULL);
    if (z) {
        void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
        EXPECT(p && (unsigned char *)p >= arena && (unsigned char *)p < arena + sizeof arena);
        EXPECT(labyrinth_free_pages(z, p, 0) == 0);
        labyrinth_zone_destroy(z);
    }
    /* DMA and HUGE zones: created, or refused with a reason. */
    memset(&cfg, 0, sizeof cfg);
    cfg.pages = 64;
    cfg.flags = LABYRINTH_ZONE_DMA;
    errno = 0;
    z = labyrinth_zone_create(&cfg);
    EXPECT(z != NULL || errno != 0);
    if (z) {
        void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
        EXPECT(p && labyrinth_virt_to_phys(z, p, &phys) == 0 && phys != 0);
        labyrinth_free_pages(z, p, 0);
        labyrinth_zone_destroy(z);
    }
    cfg.flags = LABYRINTH_ZONE_HUGE | LABYRINTH_ZONE_STRICT;
    z = labyrinth_zone_create(&cfg);
    EXPECT(z != NULL);
    labyrinth_zone_destroy(z);

    printf(failed ? "prog: %d FAILED\n" : "prog: OK\n", failed);
    return failed ? 1 : 0;
}
EOF

cflags=$(pkg-config --cflags labyrinth)
libs=$(pkg-config --libs labyrinth)
slibs=$(pkg-config --static --libs labyrinth)
warn="-std=c17 -pedantic -Wall -Wextra -Werror"

# Static: the archive, and nothing of labyrinth needed at run time.
# shellcheck disable=SC2086
if "$cc" $warn $cflags "$tmp/prog.c" -o "$tmp/prog_static" -Wl,-Bstatic $slibs -Wl,-Bdynamic >"$tmp/cc_static.log" 2>&1; then
  ok "compiled and linked against liblabyrinth.a"
  if readelf -d "$tmp/prog_static" 2>/dev/null | grep -q 'NEEDED.*liblabyrinth'; then
    fail "the static program needs liblabyrinth.so"
  fi
  if "$tmp/prog_static" >"$tmp/run_static.log" 2>&1 && grep -q "prog: OK" "$tmp/run_static.log"; then
    ok "static program ran"
  else
    cat "$tmp/run_static.log"; fail "static program"
  fi
else
  cat "$tmp/cc_static.log"; fail "compile/link against the static library ($cc $warn $cflags ... $slibs)"
fi

# Shared: needs liblabyrinth.so.0, found through LD_LIBRARY_PATH.
# shellcheck disable=SC2086
if "$cc" $warn $cflags "$tmp/prog.c" -o "$tmp/prog_shared" $libs >"$tmp/cc_shared.log" 2>&1; then
  ok "compiled and linked against liblabyrinth.so"
  readelf -d "$tmp/prog_shared" 2>/dev/null | grep -q 'NEEDED.*liblabyrinth\.so\.0' \
    || fail "the shared program does not need liblabyrinth.so.0"
  if LD_LIBRARY_PATH="$libdir" "$tmp/prog_shared" >"$tmp/run_shared.log" 2>&1 && grep -q "prog: OK" "$tmp/run_shared.log"; then
    ok "shared program ran"
  else
    cat "$tmp/run_shared.log"; fail "shared program"
  fi
  if command -v ldd >/dev/null 2>&1; then
    LD_LIBRARY_PATH="$libdir" ldd "$tmp/prog_shared" | grep -q "liblabyrinth.so.0 => $libdir/" \
      && ok "liblabyrinth.so.0 resolved in $libdir" || fail "liblabyrinth.so.0 not resolved to $libdir"
  fi
else
  cat "$tmp/cc_shared.log"; fail "compile/link against the shared library ($cc $warn $cflags ... $libs)"
fi

if [ "$failures" -ne 0 ]; then
  echo "install: $failures failed"
  exit 1
fi
echo "install: all passed"
exit 0
