#!/bin/sh
# make bench: splitmx beside Postfix on this machine, in one run, with
# ../shared/bench/ (smtp-source / smtp-sink from the postfix package).
# Every cell is run BENCH_RUNS times (3), splitmx and Postfix in turn
# (which of them goes first alternates from run to run), and printed
# as the median with the smallest and largest figure: quote ratios of
# medians from one table, not absolute figures.
#
# The spool's file system on the machines this was written on is ext4
# without a journal: there, a new file skips every inode freed in the
# last 60 s (360 s while the inode table block is not yet written), and
# each create after a large delete walks all of them (ms a file).  So
# nothing is deleted between cells: every splitmx run gets a fresh spool
# in a directory of its own, spread over the file system (chattr +T),
# kept until the end; Postfix's accepted messages are put on hold, not
# deleted.  Postfix's end-to-end runs delete what they deliver; splitmx
# reuses the files of what it delivered (queue_fs.c) and deletes next to
# nothing (the table shows how many files it reused).  Deleting 2,000
# files halves this disk's durable-file rate for about a minute, so every
# end-to-end run, splitmx's or Postfix's, waits until BENCH_WINDOW
# seconds (61) have passed since the last run that deleted, and the data
# of each run is synced before the next one starts.  The spools are deleted at the end; a run
# that starts within BENCH_SETTLE seconds (240) of that waits out the
# rest.
set -u
OBJ=${1:-obj}
TOP=$(pwd)
SHARED=$TOP/../shared/bench
[ -d "$SHARED" ] || { echo "bench: $SHARED not found" >&2; exit 1; }
N=${BENCH_N:-2000}
RUNS=${BENCH_RUNS:-3}
SIZES=${BENCH_SIZES:-"1024 102400"}
SESSIONS=${BENCH_SESSIONS:-"1 10 50"}
HELD=${BENCH_HELD:-"1000 5000 10000"}
WINDOW=${BENCH_WINDOW:-61}
SMX_PORT=12525 PFX_PORT=12526 SINK=12527
WORK=/var/spool/splitmx-bench
CLEANED=/var/spool/splitmx-bench.cleaned
SETTLE=${BENCH_SETTLE:-240}
T0=$(date +%s)

. "$TOP/bench/setup.sh"
# 10,000 held sessions: the daemon and the client need the descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -H -n)"

# The last bench's deletes: their inodes would slow the first cells.
if [ -e "$WORK" ]; then
	rm -rf "$WORK"
	date +%s > "$CLEANED"
fi
if [ -f "$CLEANED" ]; then
	left=$(($(cat "$CLEANED") + SETTLE - $(date +%s)))
	if [ "$left" -gt 0 ]; then
		echo "== waiting ${left}s after the last bench's deletes"
		sleep "$left"
	fi
fi
mkdir -p "$WORK/runs"
chmod 755 "$WORK" "$WORK/runs"
SPREAD=yes
chattr +T "$WORK/runs" 2>/dev/null || SPREAD=no
RUN=0

# A fresh spool for every run; none is deleted before the end.
smx_start() {
	RUN=$((RUN + 1))
	R=$WORK/runs/$RUN
	mkdir -p "$R"
	chmod 755 "$R"
	cat > "$R/splitmx.conf" <<CONF
hostname "mx.bench.example"
queue "$R/queue"
control socket "$R/control.sock"
status socket "$R/status.sock"
listen on 127.0.0.1 port $SMX_PORT
limit sessions 12000
limit sessions-per-ip 12000
limit message-size 50M
trusted 127.0.0.0/8
domain "example.test" {
	type relay
	forward to "[127.0.0.1]:$SINK" tls none
}
CONF
	"$OBJ/splitmxd" -d -f "$R/splitmx.conf" 2>"$R/splitmxd.log" &
	SMX_PID=$!
	for _ in $(seq 100); do
		"$OBJ/splitmxctl" -s "$R/control.sock" show status \
		    >/dev/null 2>&1 && break
		sleep 0.1
	done
}
smx_ctl() {
	"$OBJ/splitmxctl" -s "$R/control.sock" "$@"
}
smx_stop() {
	kill "$SMX_PID" 2>/dev/null
	wait "$SMX_PID" 2>/dev/null
	[ "$SPREAD" = yes ] || { rm -rf "$R/queue"; sleep "$WINDOW"; }
}
# The last run's data on disk before the next run starts.
quiesce() {
	sync
	sleep 1
}
# No end-to-end run starts within WINDOW seconds of a run that deleted.
PFX_DELETED=0
del_wait() {
	left=$((PFX_DELETED + WINDOW - $(date +%s)))
	[ "$left" -gt 0 ] && sleep "$left"
	quiesce
}
# "1 2 3" -> "median [min-max]"; and a ratio of two medians.
stat3() {
	python3 -c 'import sys
v = sorted(int(x) for x in sys.argv[1:])
print("%d [%d-%d]" % (v[len(v) // 2], v[0], v[-1]) if v else "-")' "$@"
}
ratio() {
	python3 -c 'import sys
a = sorted(int(x) for x in sys.argv[1].split())
b = sorted(int(x) for x in sys.argv[2].split())
print("%.2f" % (a[len(a) // 2] / max(b[len(b) // 2], 1)) if a and b else "-")' \
	    "$1" "$2"
}
measure() {		# splitmx|postfix SESSIONS SIZE -> accept and end2end
	if [ "$1" = splitmx ]; then port=$SMX_PORT; else port=$PFX_PORT; fi
	"$SHARED/measure.sh" "$1" "$port" "$SINK" "$N" "$2" "$3"
}
# Who goes first in run I of a cell: each in turn, so that neither
# always runs right after the other's writes (or, end to end, deletes).
turns() {
	if [ $(($1 % 2)) = 1 ]; then echo splitmx postfix
	else echo postfix splitmx; fi
}

echo "== $(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) cores, $(uname -r)," \
    "load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== disk: $(python3 "$SHARED/fsync_rate.py" /var/spool)"
echo "== $RUNS runs a cell, $N messages a run; median [min-max]"

echo "== accept rate, relay paused (msg/s, client side)"
printf "%-7s %-8s %-22s %-22s %s\n" size sessions splitmx postfix ratio
"$SHARED/peer-postfix.sh" start $PFX_PORT $SINK
postconf -e "defer_transports = smtp" && postfix reload >/dev/null 2>&1
for L in $SIZES; do
	for S in $SESSIONS; do
		a="" b=""
		for i in $(seq "$RUNS"); do
			for mta in $(turns "$i"); do
				quiesce
				if [ "$mta" = postfix ]; then
					v=$(E2E_TIMEOUT=0 measure postfix "$S" "$L" |
					    grep -o 'accept=[0-9]*' | cut -d= -f2)
					b="$b ${v:-0}"
					postsuper -h ALL >/dev/null 2>&1
					continue
				fi
				smx_start
				smx_ctl pause relay >/dev/null 2>&1
				v=$(E2E_TIMEOUT=0 measure splitmx "$S" "$L" |
				    grep -o 'accept=[0-9]*' | cut -d= -f2)
				a="$a ${v:-0}"
				smx_stop
			done
		done
		printf "%-7s %-8s %-22s %-22s %s\n" "$L" "$S" "$(stat3 $a)" \
		    "$(stat3 $b)" "$(ratio "$a" "$b")"
	done
done
postconf -e "defer_transports =" && postfix reload >/dev/null 2>&1

echo "== end to end: client -> MTA -> smtp-sink (msg/s until the sink has all)"
printf "%-7s %-8s %-22s %-22s %-6s %s\n" size sessions splitmx postfix \
    ratio "splitmx relay connections, files reused"
for L in $SIZES; do
	for S in $SESSIONS; do
		a="" b="" c="" r=""
		for i in $(seq "$RUNS"); do
			for mta in $(turns "$i"); do
				del_wait
				if [ "$mta" = postfix ]; then
					v=$(measure postfix "$S" "$L" |
					    grep -o 'end2end=[0-9]*' | cut -d= -f2)
					b="$b ${v:-0}"
					PFX_DELETED=$(date +%s)
					continue
				fi
				smx_start
				v=$(measure splitmx "$S" "$L" |
				    grep -o 'end2end=[0-9]*' | cut -d= -f2)
				a="$a ${v:-0}"
				v=$(smx_ctl show stats |
				    grep '^relay.connections=' | cut -d= -f2)
				c="${c:+$c/}${v:-?}"
				v=$(smx_ctl show stats |
				    grep '^queue.files_reused=' | cut -d= -f2)
				r="${r:+$r/}${v:-0}"
				smx_stop
			done
		done
		printf "%-7s %-8s %-22s %-22s %-6s %s\n" "$L" "$S" "$(stat3 $a)" \
		    "$(stat3 $b)" "$(ratio "$a" "$b")" "$c, $r of $N"
	done
done
"$SHARED/peer-postfix.sh" stop
postsuper -d ALL >/dev/null 2>&1

# Milters: OpenDKIM signing, splitmx beside Postfix (issue 13).
bash "$TOP/bench/milter.sh" "$OBJ"

echo "== sessions held at once (relay paused; the last: one message" \
    "through each in turn)"
last=$(echo $HELD | tr ' ' '\n' | tail -1)
for H in $HELD; do
	quiesce
	smx_start
	smx_ctl pause relay >/dev/null 2>&1
	if [ "$H" = "$last" ]; then
		python3 "$TOP/bench/sessions.py" $SMX_PORT "$H" "$SMX_PID" \
		    --message
	else
		python3 "$TOP/bench/sessions.py" $SMX_PORT "$H" "$SMX_PID"
	fi
	smx_stop
done
rm -rf "$WORK"
date +%s > "$CLEANED"
echo "== $(( ($(date +%s) - T0) / 60 )) minutes"
