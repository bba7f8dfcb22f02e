#!/bin/sh
# make run: the demo gateway in the foreground, two receiving systems
# beside it, everything under $OBJ/demo.  Ctrl-C stops it all.
set -eu
OBJ=${1:-obj}
TOP=$(pwd)
DEMO=$TOP/$OBJ/demo
ETC=$TOP/etc/demo
mkdir -p "$DEMO"
chmod 755 "$DEMO"
if [ ! -f "$DEMO/demo.crt" ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 \
	    -keyout "$DEMO/demo.key" -out "$DEMO/demo.crt" \
	    -subj /CN=mx.demo.example 2>/dev/null
	chmod 600 "$DEMO/demo.key"
fi
if [ "$(id -u)" = 0 ] && ! getent passwd _splitmx >/dev/null; then
	echo "make run: creating the unprivileged user _splitmx"
	useradd --system --no-create-home --home-dir /var/empty \
	    --shell /usr/sbin/nologin _splitmx
fi
sed -e "s|@DEMO@|$DEMO|g" -e "s|@ETC@|$ETC|g" "$ETC/splitmx.conf.in" \
    > "$DEMO/splitmx.conf"
"$OBJ/splitmxd" -n -f "$DEMO/splitmx.conf"

/usr/bin/python3 "$ETC/sink.py" local 10026 &
P1=$!
/usr/bin/python3 "$ETC/sink.py" notes 10027 &
P2=$!
trap 'kill $P1 $P2 2>/dev/null' EXIT INT TERM

cat <<TXT

splitmx demo: listening on 127.0.0.1:2525 (STARTTLS offered).
  local system  : 127.0.0.1:10026    other system (notes): 127.0.0.1:10027
  directory     : $ETC/directory

Try, in another terminal:
  swaks --server 127.0.0.1:2525 --to alice@example.com   # local mailbox
  swaks --server 127.0.0.1:2525 --to bob@example.com     # custom -> notes
  swaks --server 127.0.0.1:2525 --to nobody@example.com  # unknown: 550
  $OBJ/splitmxctl -s $DEMO/control.sock show status
  $OBJ/splitmxctl -s $DEMO/control.sock lookup bob@example.com
Stop with Ctrl-C.

TXT
"$OBJ/splitmxd" -d -f "$DEMO/splitmx.conf"
