# tests/tool_lib.bash - sourced by the tool_*.sh tests of the labyrinth
# command (not a test itself: CTest runs *.sh only).
#   tool_setup NAME "$@"   sets $build $src $tool $tmp; exits 1 if the tool
#                          is missing
#   run NAME ARGS...       runs the tool: $tmp/NAME.out, $tmp/NAME.err, $rc
#   expect_rc N NAME WHAT  checks $rc
#   expect_usage PATTERN ARGS...  exit 2 and a message matching PATTERN
#   json_ok FILE           the file holds one valid JSON document
#   jq_get FILE EXPR       a Python expression over the document `d`
#   finish                 the summary line and the exit status
# JSON is read with python3's json module, or jq's parser when python3 is
# absent (jq_get then needs python3: those checks are skipped).

tool_setup() {
  test_name=$1
  shift
  build=${1:?usage: $test_name.sh BUILD_DIR [SOURCE_DIR]}
  src=${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
  tool="$build/tools/labyrinth"
  if [ ! -x "$tool" ]; then
    echo "FAIL: $tool not built"
    exit 1
  fi
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/labyrinth-$test_name.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  failures=0
  passes=0
  if command -v python3 >/dev/null 2>&1 && python3 -c 'import json' 2>/dev/null; then
    have_py=1
  else
    have_py=0
  fi
}

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; passes=$((passes + 1)); }

run() {
  local name=$1
  shift
  "$tool" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null
  rc=$?
}

show() {
  echo "--- stdout of $1"; head -c 4000 "$tmp/$1.out"; echo "--- stderr"; head -c 4000 "$tmp/$1.err"; echo "---"
}

expect_rc() { # want name what
  if [ "$rc" -eq "$1" ]; then ok "$3 exits $1"; else fail "$3 exits $rc, expected $1"; show "$2"; fi
}

expect_usage() { # pattern args...
  local pat=$1
  shift
  run usage "$@"
  if [ "$rc" -ne 2 ]; then
    fail "'labyrinth $*' exits $rc, expected 2"
    show usage
  elif ! grep -Eqi -- "$pat" "$tmp/usage.err"; then
    fail "'labyrinth $*': no message matching '$pat' on stderr"
    show usage
  else
    ok "'labyrinth $*' exits 2 with a message"
  fi
}

json_ok() { # file
  if [ "$have_py" = 1 ]; then
    python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$1" 2>"$tmp/json.err"
  elif command -v jq >/dev/null 2>&1; then
    jq -e . "$1" >/dev/null 2>"$tmp/json.err"
  else
    echo "note: neither python3 nor jq: JSON not validated"
    return 0
  fi
}

# jq_get FILE EXPR: print eval(EXPR) with d = the document; "SKIP" without python3.
jq_get() {
  if [ "$have_py" != 1 ]; then
    echo SKIP
    return 0
  fi
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); v = eval(sys.argv[2]); print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' "$1" "$2" 2>&1
}

# json_true FILE EXPR WHAT: EXPR (Python, over d) must be true.
json_true() {
  local v
  v=$(jq_get "$1" "$2")
  if [ "$v" = SKIP ]; then
    echo "skip: $3 (no python3)"
  elif [ "$v" = true ]; then
    ok "$3"
  else
    fail "$3: '$2' is $v"
  fi
}

finish() {
  echo "$test_name: $passes checks ok, $failures checks failed"
  [ "$failures" -eq 0 ]
  exit $?
}
