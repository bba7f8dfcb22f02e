# Sourced by bench/run.sh and bench/milter.sh: what a bench needs on the
# machine besides make deps.  Postfix is a bench dependency only
# (smtp-source, smtp-sink and the peer); _splitmx is the daemon's user.
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
