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
sleep 1
for p in $P1 $P2; do
	kill -0 $p 2>/dev/null || { echo "make run: a demo sink did not start"; exit 1; }
done

cat <<TXT

splitmx demo: the gateway listens on 127.0.0.1:2525 (STARTTLS offered).
  example.com lives in two systems; both print what they receive:
    the local system          127.0.0.1:10026   "[local system]"
    the other system (notes)  127.0.0.1:10027   "[notes system]"
  directory: $ETC/directory

Try, in another terminal:
  swaks --server 127.0.0.1:2525 --to bob@example.com
      bob is a custom recipient: the notes system gets it for
      <bob@notes.example.com>
  swaks --server 127.0.0.1:2525 --to alice@example.com,bob@example.com
      one message, two deliveries: alice here, bob at notes
  swaks --server 127.0.0.1:2525 --to Alice+news@Example.com
      +detail and case: alice's mailbox, address kept as given
  swaks --server 127.0.0.1:2525 --to nobody@example.com
      unknown: refused with 550 5.1.1 at RCPT
  $OBJ/splitmxctl -s $DEMO/control.sock lookup bob@example.com
      why bob goes where he goes
  $OBJ/splitmxctl -s $DEMO/control.sock show queue
Stop with Ctrl-C.

TXT
"$OBJ/splitmxd" -d -f "$DEMO/splitmx.conf"
