#!/usr/bin/env bash
# tests/tool_man.sh BUILD_DIR SOURCE_DIR - the manual, labyrinth(1):
#   it has a section per subcommand and names every option that the
#   subcommand's --help lists; it renders without warnings (groff, when
#   installed); `cmake --install` puts it in share/man/man1; `labyrinth
#   help` lists every subcommand, and each has --help.
set -u
. "$(dirname "$0")/tool_lib.bash"
tool_setup tool_man "$@"
man="$src/tools/labyrinth.1"
[ -f "$man" ] || { echo "FAIL: $man missing"; exit 1; }

# The man page's text with roff escapes of '-' undone.
sed 's/\\-/-/g' "$man" >"$tmp/man.txt"
cmds="demo bench stress info stats"
run help help
for c in $cmds version help; do
  grep -Eq "^  $c " "$tmp/help.out" && ok "'labyrinth help' lists $c" || fail "'labyrinth help' does not list $c"
done
for c in $cmds; do
  grep -q "^\.SS labyrinth $c\$" "$tmp/man.txt" && ok "man: a section for $c" || fail "man: no section for $c"
  run h "$c" --help
  [ "$rc" -eq 0 ] || fail "$c --help exits $rc"
  # The options of this subcommand's section: from its .SS to the next.
  awk -v c="labyrinth $c" '/^\.SS / { on = ($0 == ".SS " c) } on' "$tmp/man.txt" >"$tmp/sec.txt"
  # --help is described once for all commands (DESCRIPTION).
  for opt in $(grep -Eo -- '--[a-z][a-z-]*' "$tmp/h.out" | grep -vx -- --help | sort -u); do
    grep -q -- "$opt" "$tmp/sec.txt" && ok "man ($c): $opt" || fail "man: $c's section does not describe $opt"
  done
done
grep -q "Every command takes" "$tmp/man.txt" && grep -q -- "--help" "$tmp/man.txt" && ok "man: --help" || fail "man: no --help"
for s in NAME SYNOPSIS DESCRIPTION "EXIT STATUS" "SEE ALSO"; do
  grep -q "^\.SH $s" "$tmp/man.txt" && ok "man: $s" || fail "man: no $s section"
done

if command -v groff >/dev/null 2>&1; then
  groff -man -ww -z "$man" 2>"$tmp/groff.err"
  [ -s "$tmp/groff.err" ] && fail "groff warns: $(head -5 "$tmp/groff.err")" || ok "groff renders it without warnings"
fi
if command -v man >/dev/null 2>&1; then
  MANWIDTH=80 man -l "$man" >"$tmp/man.out" 2>"$tmp/man.err"
  grep -q "labyrinth stress" "$tmp/man.out" && ok "man -l renders it" || fail "man -l: $(head -3 "$tmp/man.err")"
fi

# Installed by CMake.
if cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1; then
  [ -f "$tmp/prefix/share/man/man1/labyrinth.1" ] && ok "installed as share/man/man1/labyrinth.1" \
    || fail "not installed: $(find "$tmp/prefix" -name 'labyrinth.1*')"
  [ -x "$tmp/prefix/bin/labyrinth" ] && ok "the command installed in bin/" || fail "labyrinth not in bin/"
else
  fail "cmake --install failed: $(tail -3 "$tmp/install.log")"
fi
finish
