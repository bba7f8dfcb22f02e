#!/bin/bash
# bench/milter.sh OBJ: the accept rate with OpenDKIM signing every
# message, splitmx beside Postfix with the same OpenDKIM, in one run,
# and what the milter hop costs splitmx: the same load without it, and
# the CPU time per message of each process (from /proc/PID/stat).
# Called by bench/run.sh (make bench); runs alone too, as root, with
# Postfix and OpenDKIM installed.  Quote ratios, not absolute figures.
set -u
OBJ=${1:-obj}
SHARED=$(pwd)/../shared/bench
N=${BENCH_MILTER_N:-2000}
SESSIONS=${BENCH_MILTER_SESSIONS:-"10 50"}
SIZE=1024
SMX_PORT=12535 PFX_PORT=12536 SINK=12537 DKIM_PORT=12538
WORK=/var/spool/splitmx-bench-milter
TICK=$(getconf CLK_TCK)

command -v opendkim >/dev/null || { echo "bench: opendkim missing (make deps)" >&2; exit 1; }
. "$(dirname "$0")/setup.sh"

rm -rf "$WORK"; mkdir -p "$WORK/dkim"; chmod 755 "$WORK"
# OpenDKIM signs mail from 127.0.0.1 (InternalHosts) whose From: is at
# b.test, the domain smtp-source writes: every message of the run.
opendkim-genkey -b 2048 -d b.test -s bench -D "$WORK/dkim" || exit 1
cat > "$WORK/dkim/opendkim.conf" <<CONF
Syslog no
Background no
Mode s
Socket inet:$DKIM_PORT@127.0.0.1
PidFile $WORK/dkim/opendkim.pid
Canonicalization relaxed/relaxed
InternalHosts 127.0.0.1
RequireSafeKeys no
Nameservers 127.0.0.1
Domain b.test
Selector bench
KeyFile $WORK/dkim/bench.private
CONF
# Another opendkim on the port (one a killed bench left) would answer
# for ours, and its CPU would not be counted.
if (exec 3<>/dev/tcp/127.0.0.1/$DKIM_PORT) 2>/dev/null; then
	echo "bench: port $DKIM_PORT is in use (an opendkim left running?)" >&2
	exit 1
fi
opendkim -f -x "$WORK/dkim/opendkim.conf" >"$WORK/dkim/opendkim.log" 2>&1 &
DKIM_PID=$!
trap 'kill "$DKIM_PID" 2>/dev/null' EXIT
for _ in $(seq 50); do
	(exec 3<>/dev/tcp/127.0.0.1/$DKIM_PORT) 2>/dev/null && break
	sleep 0.1
done
if ! kill -0 "$DKIM_PID" 2>/dev/null; then
	echo "bench: opendkim exited: $(tail -1 "$WORK/dkim/opendkim.log")" >&2
	exit 1
fi

smx_conf() {	# $1: "milter dkim" or ""
	cat > "$WORK/splitmx.conf" <<CONF
hostname "mx.bench.example"
queue "$WORK/queue"
control socket "$WORK/control.sock"
status socket "$WORK/status.sock"
milter dkim "inet:127.0.0.1:$DKIM_PORT"
listen on 127.0.0.1 port $SMX_PORT $1
limit sessions 6000
limit sessions-per-ip 6000
trusted 127.0.0.0/8
domain "example.test" {
	type relay
	forward to "[127.0.0.1]:$SINK" tls none
}
CONF
}
smx_start() {
	"$OBJ/splitmxd" -d -f "$WORK/splitmx.conf" 2>"$WORK/splitmxd.log" &
	SMX_PID=$!
	for _ in $(seq 100); do
		"$OBJ/splitmxctl" -s "$WORK/control.sock" show status \
		    >/dev/null 2>&1 && break
		sleep 0.1
	done
	"$OBJ/splitmxctl" -s "$WORK/control.sock" pause relay >/dev/null
}
smx_stop() {
	kill "$SMX_PID" 2>/dev/null; wait "$SMX_PID" 2>/dev/null
	rm -rf "$WORK/queue"
	sleep "${BENCH_SETTLE:-30}"
}
# utime + stime of a process, in ticks.
ticks() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null ||
	    echo 0
}
# "name pid" for splitmx's processes and OpenDKIM.
procs() {
	echo "parent $SMX_PID"
	for p in $(pgrep -P "$SMX_PID"); do
		echo "$(tr '\0' ' ' </proc/$p/cmdline | awk '{print $2}') $p"
	done
	echo "opendkim $DKIM_PID"
}
# One run: accept rate; CPU ticks per process into $WORK/cpu.$2.
run_smx() {	# $1 sessions, $2 label
	procs > "$WORK/procs"
	while read -r n p; do echo "$n $(ticks "$p")"; done \
	    < "$WORK/procs" > "$WORK/t0"
	rate=$(E2E_TIMEOUT=0 "$SHARED/measure.sh" splitmx $SMX_PORT $SINK \
	    "$N" "$1" $SIZE | grep -o 'accept=[0-9]*' | cut -d= -f2)
	while read -r n p; do echo "$n $(ticks "$p")"; done \
	    < "$WORK/procs" > "$WORK/t1"
	paste "$WORK/t0" "$WORK/t1" | awk -v n="$N" -v t="$TICK" \
	    '{ printf "%s %.3f\n", $1, ($4 - $2) * 1000 / t / n }' \
	    > "$WORK/cpu.$2"
}

echo "== milter: accept rate with OpenDKIM signing, $SIZE octets, relay" \
    "paused (msg/s, client side)"
"$SHARED/peer-postfix.sh" start $PFX_PORT $SINK
postconf -e "defer_transports = smtp" \
    "smtpd_milters = inet:127.0.0.1:$DKIM_PORT" \
    "milter_default_action = tempfail" "milter_protocol = 6" \
    "non_smtpd_milters =" && postfix reload >/dev/null 2>&1
printf "%-9s %12s %12s %7s %12s %8s\n" sessions "splitmx+dkim" \
    "postfix+dkim" ratio "splitmx" "hop cost"
for S in $SESSIONS; do
	smx_conf "milter dkim"
	smx_start
	run_smx "$S" "dkim.$S"
	a=$rate
	# The messages are signed: look at one in the queue.
	signed=$(grep -l "^DKIM-Signature: " "$WORK"/queue/queue/*.msg \
	    2>/dev/null | wc -l)
	smx_stop
	smx_conf ""
	smx_start
	run_smx "$S" "plain.$S"
	c=$rate
	smx_stop
	b=$(E2E_TIMEOUT=0 "$SHARED/measure.sh" postfix $PFX_PORT $SINK \
	    "$N" "$S" $SIZE | grep -o 'accept=[0-9]*' | cut -d= -f2)
	pid=$(postqueue -j 2>/dev/null | head -1 | sed 's/.*"queue_id": *"\([^"]*\)".*/\1/')
	psigned=$(postcat -hq "$pid" 2>/dev/null | grep -c "^DKIM-Signature:")
	postsuper -d ALL >/dev/null 2>&1
	sleep "${BENCH_SETTLE:-30}"
	printf "%-9s %12s %12s %7s %12s %7s%%   (signed: splitmx %s of %s queued, postfix sample %s)\n" \
	    "$S" "$a" "$b" "$(python3 -c "print('%.2f' % ($a/max($b,1)))")" \
	    "$c" "$(python3 -c "print('%.0f' % (100*(1-$a/max($c,1))))")" \
	    "$signed" "$N" "${psigned:-?}"
done
postconf -e "defer_transports =" "smtpd_milters =" &&
    postfix reload >/dev/null 2>&1
"$SHARED/peer-postfix.sh" stop

echo "== milter: CPU per message (ms), by process, without and with" \
    "OpenDKIM"
for S in $SESSIONS; do
	printf "%s sessions:\n" "$S"
	printf "  %-9s %10s %10s\n" process "no milter" "dkim"
	for p in parent smtp lookup queue relay control filter opendkim; do
		x=$(awk -v p=$p '$1 == p { print $2 }' "$WORK/cpu.plain.$S")
		y=$(awk -v p=$p '$1 == p { print $2 }' "$WORK/cpu.dkim.$S")
		printf "  %-9s %10s %10s\n" "$p" "${x:--}" "${y:--}"
	done
done
kill "$DKIM_PID" 2>/dev/null; wait "$DKIM_PID" 2>/dev/null
rm -rf "$WORK"
