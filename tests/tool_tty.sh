#!/usr/bin/env bash
# tests/tool_tty.sh BUILD_DIR [SOURCE_DIR] - the live status line on a
# terminal (a pseudo-terminal from python3's pty module):
#   at 80 columns (and 40, and a terminal that reports no size, where
#   $COLUMNS is used) no character of a redrawn line lands in the last
#   column, so nothing wraps and each '\r' + erase-line redraw covers the
#   whole of the previous line; demo's line shows the reserve's low point
#   and the failures since the last line, stress's its operations.
# Skipped (77) without python3.
set -u
. "$(dirname "$0")/tool_lib.bash"
tool_setup tool_tty "$@"
if [ "$have_py" != 1 ]; then
  echo "SKIPPED: python3 is needed for the pseudo-terminal"
  exit 77
fi

# ptyrun COLS ROWS NAME ARGS...: run the tool on a pty of COLS x ROWS (0 0:
# a terminal that reports no size); everything it wrote in $tmp/NAME.tty,
# the exit status in $rc.  PTY_INTR=SECONDS types Ctrl-C after SECONDS.
cat >"$tmp/ptyrun.py" <<'PY'
import fcntl, os, pty, signal, struct, sys, termios, time
cols, rows, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
argv = sys.argv[4:]
intr = float(os.environ.get("PTY_INTR", "0"))
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execv(argv[0], argv)
data = b""
t0 = time.time()
sent = False
while True:
    if intr and not sent and time.time() - t0 >= intr:
        os.write(fd, b"\x03")
        sent = True
    try:
        import select
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        break
    if time.time() - t0 > 120:
        os.kill(pid, signal.SIGKILL)
        break
_, st = os.waitpid(pid, 0)
open(out, "wb").write(data)
sys.exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st))
PY
ptyrun() {
  local cols=$1 rows=$2 name=$3
  shift 3
  python3 "$tmp/ptyrun.py" "$cols" "$rows" "$tmp/$name.tty" "$tool" "$@"
  rc=$?
}

# A terminal, emulated: the column after each character; '\r' returns to 0,
# '\n' too (the pty's onlcr), ESC [ ... letter moves nothing here.  Prints
# the widest column a redrawn line reached (from '\r' ESC [ K to the next
# '\r' or '\n'), the widest of any line, the number of redraws, the number
# of '\r' not followed by ESC [ K or '\n', and whether the output ends at
# the start of a line.
cat >"$tmp/term.py" <<'PY'
import re, sys
data = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
col = widest = status_widest = redraws = bare = 0
in_status = False
i = 0
while i < len(data):
    c = data[i]
    if c == "\r":
        in_status = data.startswith("\r\x1b[K", i)
        if in_status:
            redraws += 1
        elif not data.startswith("\r\n", i):
            bare += 1
        col = 0
    elif c == "\n":
        col = 0
        in_status = False
    elif c == "\x1b":
        m = re.match(r"\x1b\[[0-9;?]*[A-Za-z]", data[i:])
        if m:
            i += len(m.group(0))
            continue
    elif c >= " ":
        col += 1
        widest = max(widest, col)
        if in_status:
            status_widest = max(status_widest, col)
    i += 1
print(status_widest, widest, redraws, bare, "eol" if col == 0 else "midline")
PY
# width_ok NAME COLS WHAT [all]: no character of a redrawn line in the last
# column (with 'all': of any line), redraws seen.
width_ok() {
  local sw widest redraws bare end lim
  read -r sw widest redraws bare end < <(python3 "$tmp/term.py" "$tmp/$1.tty")
  lim=$sw
  [ "${4:-}" = all ] && lim=$widest
  if [ "$lim" -le $(($2 - 1)) ] && [ "$redraws" -ge 3 ] && [ "$bare" -eq 0 ]; then
    ok "$3: $redraws redraws, widest $lim of $2 columns, nothing wraps"
  else
    fail "$3: widest status line $sw, widest line $widest (terminal $2 columns), $redraws redraws, $bare bare carriage returns"
    head -c 3000 "$tmp/$1.tty" | tr '\r' '\n' | cat -v | head -20
  fi
}

# ---- 80 columns, the widest line the demo makes --------------------------------------
# A paused worker: failures in the hundred thousands, the pause marker, the
# p99 above a microsecond.
ptyrun 80 24 d80 demo --duration 2500ms --pause-worker 500ms,1200ms --worker-delay 1us
expect_rc 0 d80 "demo on an 80-column terminal"
width_ok d80 80 "demo at 80 columns (the report too)" all
tr '\r' '\n' <"$tmp/d80.tty" | grep -Eq 'failures \+[1-9][0-9]*  .*reserve [0-9]+/[0-9]+ low 0' \
  && ok "the live line shows the failures and the low point since the last line" \
  || { fail "no line with failures and a low point of 0"; tr '\r' '\n' <"$tmp/d80.tty" | cat -v | head -30; }
tr '\r' '\n' <"$tmp/d80.tty" | grep -q '\[worker paused\]' && ok "the pause is shown on the line" || fail "no pause marker"
grep -q "verdict  *healthy" "$tmp/d80.tty" && ok "the report follows" || fail "no report on the terminal"

ptyrun 40 24 d40 demo --duration 1500ms --pause-worker 300ms,600ms
expect_rc 0 d40 "demo on a 40-column terminal"
width_ok d40 40 "demo at 40 columns"

ptyrun 200 24 d200 demo --duration 1500ms --pause-worker 300ms,600ms
tr '\r' '\n' <"$tmp/d200.tty" | grep -Eq 'in use [0-9]+  p99 [0-9]+ ns' && ok "a wide terminal shows every field" \
  || { fail "fields missing at 200 columns"; tr '\r' '\n' <"$tmp/d200.tty" | cat -v | head; }

# No size from the terminal: $COLUMNS.
COLUMNS=60 ptyrun 0 0 dcol demo --duration 1500ms --pause-worker 300ms,600ms
width_ok dcol 60 "demo with COLUMNS=60 and a terminal that reports no size"

ptyrun 80 24 s80 stress --duration 2500ms --threads 2 --seed 7
expect_rc 0 s80 "stress on an 80-column terminal"
width_ok s80 80 "stress at 80 columns (the report too)" all

# ---- Ctrl-C at the terminal ---------------------------------------------------------
# The partial report, marked; the cursor left at the start of a line.
PTY_INTR=1.5 ptyrun 80 24 dintr demo --duration 60s
expect_rc 130 dintr "demo, Ctrl-C typed on the terminal"
grep -q "labyrinth demo report: INTERRUPTED by SIGINT" "$tmp/dintr.tty" && ok "the partial report on the terminal" \
  || { fail "no partial report"; cat -v "$tmp/dintr.tty" | head; }
read -r _ _ _ _ end < <(python3 "$tmp/term.py" "$tmp/dintr.tty")
[ "$end" = eol ] && ok "the cursor is left at the start of a line" || fail "the output ends mid-line"
python3 - "$tmp/dintr.tty" <<'PY' && ok "the redrawn line is ended before the report" || fail "the report starts on the status line"
import sys
d = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
i = d.index("labyrinth demo: SIGINT: stopping")
sys.exit(0 if d[i - 1] == "\n" else 1)
PY
PTY_INTR=1.5 ptyrun 80 24 sintr stress --duration 1h --threads 2
expect_rc 130 sintr "stress, Ctrl-C typed on the terminal"
grep -q "labyrinth stress report: INTERRUPTED by SIGINT" "$tmp/sintr.tty" && ok "stress: the partial report" \
  || fail "stress: no partial report"
read -r _ _ _ _ end < <(python3 "$tmp/term.py" "$tmp/sintr.tty")
[ "$end" = eol ] && ok "stress: the cursor is left at the start of a line" || fail "stress: the output ends mid-line"

# ---- off a terminal: 79 columns at most -------------------------------------------
run plain demo --duration 2200ms --pause-worker 500ms,1200ms --worker-delay 1us
awk 'length($0) > 79 { bad = 1; print "too long (" length($0) "): " $0 } END { exit bad }' "$tmp/plain.err" "$tmp/plain.out" \
  && ok "plain lines (status, messages, report) fit 79 columns" || fail "a plain line is wider than 79 columns"
grep -Eq '^ *[12]\.[0-9]s +[0-9]+ pkt/s  failures \+[1-9][0-9]*  .*low 0' "$tmp/plain.err" \
  && ok "plain lines: a 1 s worker pause is visible (failures since the last line, low point 0)" \
  || { fail "the pause does not show in the plain lines"; cat "$tmp/plain.err"; }
finish
