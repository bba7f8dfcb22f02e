#!/bin/bash
# make bench: splitmx beside Postfix on this machine, in one run, with
# ../shared/bench/ (smtp-source / smtp-sink from the postfix package).
# Prints one table; quote ratios from it, not absolute figures.
set -u
OBJ=${1:-obj}
TOP=$(pwd)
SHARED=$TOP/../shared/bench
[ -d "$SHARED" ] || { echo "bench: $SHARED not found" >&2; exit 1; }
N=${BENCH_N:-2000}
SIZES=${BENCH_SIZES:-"1024 102400"}
SESSIONS=${BENCH_SESSIONS:-"1 10 50"}
SMX_PORT=12525 PFX_PORT=12526 SINK=12527
WORK=/var/spool/splitmx-bench

if ! command -v smtp-source >/dev/null; then
	echo "bench: installing postfix (bench dependency only)"
	apt-get update -qq
	echo "postfix postfix/main_mailer_type select No configuration" |
	    debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix \
	    >/dev/null || exit 1
fi
[ -f /etc/postfix/main.cf ] || cp /usr/share/postfix/main.cf.debian \
    /etc/postfix/main.cf
getent passwd _splitmx >/dev/null || useradd --system --no-create-home \
    --home-dir /var/empty --shell /usr/sbin/nologin _splitmx

rm -rf "$WORK"; mkdir -p "$WORK"; chmod 755 "$WORK"
cat > "$WORK/splitmx.conf" <<CONF
hostname "mx.bench.example"
queue "$WORK/queue"
control socket "$WORK/control.sock"
status socket "$WORK/status.sock"
listen on 127.0.0.1 port $SMX_PORT
limit sessions 6000
limit sessions-per-ip 6000
limit message-size 50M
trusted 127.0.0.0/8
domain "example.test" {
	type relay
	forward to "[127.0.0.1]:$SINK" tls none
}
CONF

echo "== $(date -u +%Y-%m-%d) $(nproc) cores, $(uname -r)"
echo "== disk: $(python3 "$SHARED/fsync_rate.py" /var/spool)"

smx_start() {
	"$OBJ/splitmxd" -d -f "$WORK/splitmx.conf" 2>"$WORK/splitmxd.log" &
	SMX_PID=$!
	for _ in $(seq 100); do
		"$OBJ/splitmxctl" -s "$WORK/control.sock" show status \
		    >/dev/null 2>&1 && break
		sleep 0.1
	done
}
smx_stop() {
	kill "$SMX_PID" 2>/dev/null; wait "$SMX_PID" 2>/dev/null
	rm -rf "$WORK/queue"
	settle
}
# ext4 without a journal walks every inode freed in the last 30 s when
# it creates a file: let the deletions of one run age before the next.
settle() {
	sleep "${BENCH_SETTLE:-30}"
}

echo "== accept rate, relay paused (msg/s, client side)"
printf "%-10s %-6s %-9s %10s %10s %7s\n" size sessions "" splitmx \
    postfix ratio
"$SHARED/peer-postfix.sh" start $PFX_PORT $SINK
postconf -e "defer_transports = smtp" && postfix reload >/dev/null 2>&1
for L in $SIZES; do
	for S in $SESSIONS; do
		smx_start
		"$OBJ/splitmxctl" -s "$WORK/control.sock" pause relay \
		    >/dev/null 2>&1
		a=$(E2E_TIMEOUT=0 "$SHARED/measure.sh" splitmx $SMX_PORT \
		    $SINK "$N" "$S" "$L" | grep -o 'accept=[0-9]*' | cut -d= -f2)
		smx_stop
		b=$(E2E_TIMEOUT=0 "$SHARED/measure.sh" postfix $PFX_PORT \
		    $SINK "$N" "$S" "$L" | grep -o 'accept=[0-9]*' | cut -d= -f2)
		postsuper -d ALL >/dev/null 2>&1
		settle
		printf "%-10s %-6s %-9s %10s %10s %7s\n" "$L" "$S" "" "$a" \
		    "$b" "$(python3 -c "print('%.2f' % ($a/max($b,1)))")"
	done
done
postconf -e "defer_transports =" && postfix reload >/dev/null 2>&1

echo "== end to end: client -> MTA -> smtp-sink (msg/s until the sink has all)"
printf "%-10s %-6s %-9s %10s %10s %7s %s\n" size sessions "" splitmx \
    postfix ratio "splitmx relay connections"
for L in $SIZES; do
	for S in $SESSIONS; do
		smx_start
		a=$("$SHARED/measure.sh" splitmx $SMX_PORT $SINK "$N" "$S" "$L" |
		    grep -o 'end2end=[0-9]*' | cut -d= -f2)
		conns=$("$OBJ/splitmxctl" -s "$WORK/control.sock" show stats |
		    grep '^relay.connections=' | cut -d= -f2)
		smx_stop
		b=$("$SHARED/measure.sh" postfix $PFX_PORT $SINK "$N" "$S" "$L" |
		    grep -o 'end2end=[0-9]*' | cut -d= -f2)
		settle
		printf "%-10s %-6s %-9s %10s %10s %7s %s\n" "$L" "$S" "" "$a" \
		    "$b" "$(python3 -c "print('%.2f' % ($a/max($b,1)))")" \
		    "${conns:-?} for $N messages"
	done
done
"$SHARED/peer-postfix.sh" stop

# Milters: OpenDKIM signing, splitmx beside Postfix (issue 13).
bash "$TOP/bench/milter.sh" "$OBJ"

echo "== memory and concurrency"
smx_start
python3 "$TOP/bench/idle_sessions.py" $SMX_PORT 1000 "$SMX_PID"
python3 "$TOP/bench/idle_sessions.py" $SMX_PORT 5000 "$SMX_PID"
smx_stop
