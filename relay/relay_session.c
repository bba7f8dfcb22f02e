/*
 * One SMTP client session (RFC 5321): connect, greeting, EHLO or HELO,
 * STARTTLS as the destination's policy says, then one transaction after
 * the other for the deliveries its destination hands it, pipelined
 * where the server allows (RFC 2920), until it has been idle a while.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <tls.h>
#include <unistd.h>

#include "splitmx.h"
#include "tlsio.h"
#include "relay.h"

#define RELAY_OBUF_MAX		(1024 * 1024)
#define RELAY_CMD_MAX		2048	/* one command line */
#define RELAY_BODY_CHUNK	(64 * 1024)
#define RELAY_TURNS_PER_RUN	16	/* reads or body chunks, then yield */
#define RELAY_QUIT_TIMEOUT	10

static const char *relay_state_names[] = {
	"connection", "greeting", "EHLO reply", "HELO reply",
	"STARTTLS reply", "TLS handshake", "idle", "next transaction",
	"MAIL/RCPT replies", "DATA reply", "data transfer",
	"end-of-data reply", "QUIT reply", "dead"
};

static void	relay_session_connect(struct relay_session *);
static void	relay_session_connected(struct relay_session *);
static void	relay_session_io(int, short, void *);
static void	relay_session_run(struct relay_session *);
static size_t	relay_session_octet(struct relay_session *, char *, size_t,
		    unsigned char);
static void	relay_session_update(struct relay_session *);
static ssize_t	relay_session_read(struct relay_session *);
static int	relay_session_write(struct relay_session *);
static void	relay_session_timer(struct relay_session *, time_t, int);
static void	relay_session_timeout(int, short, void *);
static void	relay_session_reply(struct relay_session *);
static void	relay_session_ehlo(struct relay_session *);
static void	relay_session_ehlo_done(struct relay_session *);
static void	relay_session_tls_start(struct relay_session *);
static int	relay_session_handshake(struct relay_session *);
static void	relay_session_clear_retry(struct relay_session *,
		    const char *);
static void	relay_session_ready(struct relay_session *);
static void	relay_session_tx_start(struct relay_session *);
static int	relay_session_tx_check(struct relay_session *);
static void	relay_session_tx_send(struct relay_session *, int);
static void	relay_session_tx_reply(struct relay_session *);
static void	relay_session_data_reply(struct relay_session *);
static void	relay_session_eom_reply(struct relay_session *);
static void	relay_session_verdict(struct relay_session *,
		    struct relay_rcpt *, int, const char *);
static void	relay_session_tx_end(struct relay_session *);
static void	relay_session_msg_finish(struct relay_session *);
static int	relay_session_fill(struct relay_session *);
static int	relay_session_out(struct relay_session *, const void *,
		    size_t);
static int	relay_session_cmd(struct relay_session *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
static void	relay_session_fail(struct relay_session *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
static void	relay_session_quit(struct relay_session *);
static void	relay_session_end(struct relay_session *, const char *);
static void	relay_session_unlink(struct relay_session *, const char *);
static void	relay_session_reap(int, short, void *);
static const char *relay_session_tlsname(struct relay_session *);
static const char *relay_session_verified(struct relay_session *);
static void	relay_session_policy(struct relay_session *);
static int	relay_session_dane(struct relay_session *);
static void	relay_session_sts_report(struct relay_session *,
		    const char *);

int				 relay_nsessions;
static TAILQ_HEAD(, relay_session) graveyard =
    TAILQ_HEAD_INITIALIZER(graveyard);
static struct event		 ev_reap;

/* A session to address addr of d, for delivery m. */
struct relay_session *
relay_session_new(struct relay_dest *d, int addr, struct relay_msg *m)
{
	struct relay_session	*s;
	char			 ip[INET6_ADDRSTRLEN];

	if ((s = calloc(1, sizeof(*s))) == NULL)
		fatal("calloc");
	arc4random_buf(&s->id, sizeof(s->id));
	s->dest = d;
	s->addr = addr;
	s->a = d->addrs[addr];
	s->fd = -1;
	sa_str((struct sockaddr *)&s->a.ss, ip, sizeof(ip));
	(void)snprintf(s->name, sizeof(s->name), "%s[%s]:%u", s->a.host, ip,
	    (unsigned)d->host.port);
	(void)snprintf(s->remote, sizeof(s->remote), "%s [%s]", s->a.host,
	    ip);
	evtimer_set(&s->tmo, relay_session_timeout, s);
	TAILQ_INSERT_TAIL(&d->sessions, s, entry);
	d->nsessions++;
	relay_nsessions++;
	stat_set("relay.sessions", relay_nsessions);

	s->msg = m;
	m->session = s;
	strlcpy(m->remote, s->remote, sizeof(m->remote));
	strlcpy(m->relay, s->name, sizeof(m->relay));
	relay_session_policy(s);
	relay_session_connect(s);
	return s;
}

/*
 * The check this connection's TLS gets: smtpd/tls_policy.c's one order
 * over what the lookup process said of the exchanger (DANE, MTA-STS,
 * the configured policy).
 */
static void
relay_session_policy(struct relay_session *s)
{
	const struct relay_hostinfo	*hi;
	struct tls_host			 none;

	if ((hi = relay_dest_hostinfo(s->dest, s->a.host)) == NULL) {
		memset(&none, 0, sizeof(none));
		none.sts = s->dest->sts;
	}
	s->mode = tls_policy_decide(s->dest->tls, s->a.host, hi != NULL ?
	    &hi->th : &none, &s->testing, s->why, sizeof(s->why));
	log_debug("session=%016llx event=tls-policy relay=%s check=%s "
	    "why=%s", (unsigned long long)s->id, s->name,
	    tls_mode_name(s->mode), log_text(s->why));
}

/* Nothing is reported from here: a failure is taken up by the timer. */
static void
relay_session_connect(struct relay_session *s)
{
	struct timeval	 now = { 0, 0 };
	int		 one = 1;

	s->state = RELAY_STATE_CONNECT;
	s->up = 0;
	s->caps = 0;
	s->size_max = 0;
	s->ipos = s->ilen = 0;
	s->opos = s->olen = 0;
	s->reply.lines = 0;
	s->rwant = EV_READ;
	s->wwant = EV_WRITE;
	if (s->mode == TLSM_REFUSE) {
		/* Never connected: reported by the timer, as a failure. */
		(void)snprintf(s->err, sizeof(s->err), "4.7.5 %s not used: "
		    "%s", s->name, s->why);
		s->flags |= F_RELAY_REFUSED;
		stat_add("relay.tls.refused", 1);
		evtimer_add(&s->tmo, &now);
		return;
	}
	stat_add("relay.connections", 1);
	log_debug("session=%016llx event=connecting relay=%s",
	    (unsigned long long)s->id, s->name);
	if ((s->fd = socket(s->a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1 ||
	    (connect(s->fd, (struct sockaddr *)&s->a.ss, s->a.sslen) == -1 &&
	    errno != EINPROGRESS)) {
		(void)snprintf(s->err, sizeof(s->err), "4.4.1 connection to "
		    "%s failed: %s", s->name, strerror(errno));
		s->flags |= F_RELAY_CONNFAIL;
		evtimer_add(&s->tmo, &now);
		return;
	}
	/*
	 * Commands and the end of data are small writes that wait for a
	 * reply: without this, Nagle and the server's delayed ACK cost
	 * some 40 ms a message.
	 */
	if (setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one)) == -1)
		log_warn("session=%016llx TCP_NODELAY",
		    (unsigned long long)s->id);
	relay_session_timer(s, RELAY_TO_CONNECT, 0);
	relay_session_update(s);
}

static void
relay_session_connected(struct relay_session *s)
{
	socklen_t	 len = sizeof(int);
	int		 error;

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
		error = errno;
	if (error != 0) {
		relay_session_fail(s, "4.4.1 connection to %s failed: %s",
		    s->name, strerror(error));
		return;
	}
	log_debug("session=%016llx event=connected relay=%s",
	    (unsigned long long)s->id, s->name);
	s->state = RELAY_STATE_GREETING;
	relay_session_timer(s, RELAY_TO_GREETING, 0);
	relay_session_update(s);
}

static void
relay_session_io(int fd, short event, void *arg)
{
	struct relay_session	*s = arg;

	(void)fd;
	(void)event;
	if (s->state == RELAY_STATE_CONNECT) {
		relay_session_connected(s);
		return;
	}
	relay_session_run(s);
}

/*
 * The pump: finish the handshake, write what is queued (feeding the
 * message text as the socket takes it), read and act on every complete
 * reply.  Whatever ends the session leaves it RELAY_STATE_DEAD: stop there.
 */
static void
relay_session_run(struct relay_session *s)
{
	const char	*why;
	ssize_t		 n;
	int		 turns = 0, r;

	for (;;) {
		if (s->state == RELAY_STATE_HANDSHAKE) {
			if ((r = relay_session_handshake(s)) == -1)
				return;
			if (r == 0)
				break;
		}
		if (s->opos < s->olen && relay_session_write(s) == -1) {
			s->flags |= F_RELAY_IOERR;
			relay_session_fail(s, "4.4.2 lost connection to %s "
			    "while sending (%s)", s->name,
			    relay_state_names[s->state]);
			return;
		}
		if (turns++ == RELAY_TURNS_PER_RUN) {
			/* Fairness: come back after the others had a turn. */
			relay_session_update(s);
			event_active(&s->ev, EV_READ, 1);
			return;
		}
		if (s->state == RELAY_STATE_BODY &&
		    !(s->flags & F_RELAY_BODY_EOF) &&
		    s->olen - s->opos < RELAY_BODY_CHUNK) {
			if (relay_session_fill(s) == -1)
				return;
			continue;
		}
		if ((n = relay_session_read(s)) == -2)
			break;
		if (n == -1 || n == 0) {
			s->flags |= F_RELAY_IOERR;
			if (s->state == RELAY_STATE_QUIT)
				relay_session_end(s, "quit");
			else if (s->state == RELAY_STATE_READY)
				relay_session_end(s, "closed by server");
			else
				relay_session_fail(s, "4.4.2 connection %s by "
				    "%s while waiting for the %s", n == 0 ?
				    "closed" : "lost", s->name,
				    relay_state_names[s->state]);
			return;
		}
		while ((r = relay_parse_reply(&s->reply, s->ibuf, s->ilen,
		    &s->ipos, s->state == RELAY_STATE_EHLO ? &s->caps : NULL,
		    &s->size_max, &why)) == 1) {
			if (s->msg != NULL && s->state != RELAY_STATE_ASSIGNED)
				s->msg_replies++;
			relay_session_reply(s);
			if (s->state == RELAY_STATE_DEAD ||
			    s->state == RELAY_STATE_CONNECT)
				return;
		}
		if (r == -1) {
			relay_session_fail(s, "4.4.2 bad reply from %s: %s",
			    s->name, why);
			return;
		}
		if (s->state == RELAY_STATE_HANDSHAKE)
			continue;
	}
	relay_session_update(s);
}

static void
relay_session_update(struct relay_session *s)
{
	short	 ev;

	if (s->state == RELAY_STATE_DEAD)
		return;
	if (s->state == RELAY_STATE_CONNECT)
		ev = EV_WRITE;
	else if (s->state == RELAY_STATE_HANDSHAKE)
		ev = s->hwant;
	else {
		ev = s->rwant;
		if (s->opos < s->olen)
			ev |= s->wwant;
	}
	tlsio_watch(&s->ev, &s->evflags, s->fd, ev, relay_session_io, s);
}

/* Bytes read, 0 at the end of the stream, -1 error, -2 try later. */
static ssize_t
relay_session_read(struct relay_session *s)
{
	ssize_t	 n;

	if (s->ipos > 0) {
		memmove(s->ibuf, s->ibuf + s->ipos, s->ilen - s->ipos);
		s->ilen -= s->ipos;
		s->ipos = 0;
	}
	n = tlsio_read(s->fd, s->tls, s->ibuf + s->ilen,
	    sizeof(s->ibuf) - s->ilen, &s->rwant);
	if (n == -1 && s->tls != NULL)
		log_debug("session=%016llx tls_read: %s",
		    (unsigned long long)s->id, tls_error(s->tls));
	if (n > 0)
		s->ilen += (size_t)n;
	return n;
}

/* 0: all written or the rest must wait (s->wwant), -1: error. */
static int
relay_session_write(struct relay_session *s)
{
	ssize_t	 n;
	int	 progress = 0;

	while (s->opos < s->olen) {
		if ((n = tlsio_write(s->fd, s->tls, s->obuf + s->opos,
		    s->olen - s->opos, &s->wwant)) == -1)
			return -1;
		if (n == 0)
			break;
		s->opos += (size_t)n;
		progress = 1;
	}
	if (s->opos == s->olen)
		s->opos = s->olen = 0;
	/* RFC 5321 §4.5.3.2.5-6: each block, then the wait for the reply. */
	if (s->state == RELAY_STATE_EOM && s->olen == 0 &&
	    !(s->flags & F_RELAY_EOM_SENT)) {
		s->flags |= F_RELAY_EOM_SENT;
		relay_session_timer(s, RELAY_TO_DATA_END, 1);
	} else if (progress && (s->state == RELAY_STATE_BODY ||
	    s->state == RELAY_STATE_EOM))
		relay_session_timer(s, RELAY_TO_DATA_BLOCK, 1);
	return 0;
}

static void
relay_session_timer(struct relay_session *s, time_t rfc, int data)
{
	struct timeval	 tv = { 0, 0 };

	tv.tv_sec = relay_timeout(rfc, data);
	evtimer_add(&s->tmo, &tv);
}

static void
relay_session_timeout(int fd, short event, void *arg)
{
	struct relay_session	*s = arg;

	(void)fd;
	(void)event;
	switch (s->state) {
	case RELAY_STATE_CONNECT:
		if (s->flags & (F_RELAY_CONNFAIL | F_RELAY_REFUSED))
			relay_session_fail(s, "%s", s->err);
		else
			relay_session_fail(s, "4.4.1 connection to %s timed "
			    "out", s->name);
		break;
	case RELAY_STATE_READY:
		relay_session_quit(s);
		break;
	case RELAY_STATE_ASSIGNED:
		relay_session_tx_start(s);
		if (s->state != RELAY_STATE_DEAD)
			relay_session_run(s);
		break;
	case RELAY_STATE_HANDSHAKE:
		s->flags |= F_RELAY_IOERR;
		if (s->mode == TLSM_MAY)
			relay_session_clear_retry(s, "handshake timeout");
		else
			relay_session_fail(s, "4.7.5 TLS handshake with %s "
			    "timed out", s->name);
		break;
	case RELAY_STATE_QUIT:
		relay_session_end(s, "quit");
		break;
	case RELAY_STATE_DEAD:
		break;
	default:
		relay_session_fail(s, "4.4.2 timeout waiting for the %s from "
		    "%s", relay_state_names[s->state], s->name);
		break;
	}
}

static void
relay_session_reply(struct relay_session *s)
{
	int			 code = s->reply.code;

	if (log_getverbose())
		log_debug("session=%016llx state=%s reply=%s",
		    (unsigned long long)s->id, relay_state_names[s->state],
		    log_text(s->reply.text));
	switch (s->state) {
	case RELAY_STATE_GREETING:
		if (code != 220) {
			relay_session_fail(s, "%s", s->reply.text);
			return;
		}
		relay_session_ehlo(s);
		break;
	case RELAY_STATE_EHLO:
		if (code / 100 == 2)
			relay_session_ehlo_done(s);
		else if (code / 100 == 5 && !(s->flags & F_RELAY_TLS)) {
			/* RFC 5321 §3.2: an old server, try HELO. */
			s->caps = 0;
			s->state = RELAY_STATE_HELO;
			if (relay_session_cmd(s, "HELO %s",
			    env->conf->hostname) == 0)
				relay_session_timer(s, RELAY_TO_COMMAND, 0);
		} else
			relay_session_fail(s, "%s", s->reply.text);
		break;
	case RELAY_STATE_HELO:
		if (code / 100 == 2)
			relay_session_ehlo_done(s);
		else
			relay_session_fail(s, "%s", s->reply.text);
		break;
	case RELAY_STATE_STARTTLS:
		if (code == 220) {
			/*
			 * Anything after the 220 was sent before TLS and
			 * would be read as if it came through it.
			 */
			if (s->ipos < s->ilen) {
				relay_session_fail(s, "4.7.0 %s sent data "
				    "after its STARTTLS reply", s->name);
				return;
			}
			relay_session_tls_start(s);
		} else if (s->mode == TLSM_MAY) {
			log_info("session=%016llx event=starttls-refused "
			    "relay=%s reply=%s", (unsigned long long)s->id,
			    log_value(s->name), log_text(s->reply.text));
			if (s->testing)
				relay_session_sts_report(s, "STARTTLS refused");
			relay_session_ready(s);
		} else {
			stat_add("relay.tls.downgrade", 1);
			relay_session_fail(s, "4.7.4 TLS required but "
			    "STARTTLS refused by %s: %s (%s: %s)", s->name,
			    s->reply.text, tls_mode_name(s->mode), s->why);
		}
		break;
	case RELAY_STATE_TX:
		relay_session_tx_reply(s);
		break;
	case RELAY_STATE_DATA:
		relay_session_data_reply(s);
		break;
	case RELAY_STATE_BODY:
		/*
		 * Before the dot: the server gave up on the message, and
		 * what we still send would be read as commands.
		 */
		s->flags |= F_RELAY_IOERR;
		relay_session_fail(s, "%s", s->reply.text);
		break;
	case RELAY_STATE_EOM:
		relay_session_eom_reply(s);
		break;
	case RELAY_STATE_QUIT:
		relay_session_end(s, "quit");
		break;
	case RELAY_STATE_READY:
	case RELAY_STATE_ASSIGNED:
	default:
		/* Unasked for: "421 idle too long" and the like. */
		if (s->msg != NULL)
			relay_session_fail(s, "%s", s->reply.text);
		else
			relay_session_end(s, "unexpected reply");
		break;
	}
}

static void
relay_session_ehlo(struct relay_session *s)
{
	s->caps = 0;
	s->size_max = 0;
	s->state = RELAY_STATE_EHLO;
	if (relay_session_cmd(s, "EHLO %s", env->conf->hostname) == 0)
		relay_session_timer(s, RELAY_TO_COMMAND, 0);
}

/* Greeted: TLS as the policy says, then ready for transactions. */
static void
relay_session_ehlo_done(struct relay_session *s)
{
	if (!(s->flags & F_RELAY_TLS) && s->mode != TLSM_NONE &&
	    !(s->flags & F_RELAY_CLEAR)) {
		if (s->caps & CAP_STARTTLS) {
			s->state = RELAY_STATE_STARTTLS;
			if (relay_session_cmd(s, "STARTTLS") == 0)
				relay_session_timer(s, RELAY_TO_COMMAND, 0);
			return;
		}
		if (s->mode != TLSM_MAY) {
			/* A man in the middle may have removed it. */
			stat_add("relay.tls.downgrade", 1);
			relay_session_fail(s, "4.7.4 TLS required but not "
			    "offered by %s (%s: %s)", s->name,
			    tls_mode_name(s->mode), s->why);
			return;
		}
		if (s->testing)
			relay_session_sts_report(s, "STARTTLS not offered");
	}
	relay_session_ready(s);
}

static void
relay_session_tls_start(struct relay_session *s)
{
	struct tls_config	*cfg;
	const char		*why;

	/* DANE checks the chain itself, after the handshake. */
	cfg = s->mode == TLSM_PKIX || s->mode == TLSM_STS ? relay_tls_verify :
	    relay_tls_noverify;
	if (cfg == NULL) {
		relay_session_fail(s, "4.7.5 cannot verify the certificate "
		    "of %s: no CA store", s->name);
		return;
	}
	if ((s->tls = tls_client()) == NULL) {
		relay_session_fail(s, "4.7.5 TLS with %s: tls_client failed",
		    s->name);
		return;
	}
	/* The name checked is the MX host's, or the one in brackets. */
	if (tls_configure(s->tls, cfg) == -1 ||
	    tls_connect_socket(s->tls, s->fd, s->a.host) == -1) {
		why = tls_error(s->tls);
		relay_session_fail(s, "4.7.5 TLS with %s: %s", s->name,
		    why ? why : "setup failed");
		return;
	}
	s->state = RELAY_STATE_HANDSHAKE;
	s->hwant = EV_WRITE;
	relay_session_timer(s, RELAY_TO_COMMAND, 0);
}

/* 1 done, 0 in progress (s->hwant), -1 failed (and handled). */
static int
relay_session_handshake(struct relay_session *s)
{
	char		 why[256];
	const char	*v, *e;

	switch (tls_handshake(s->tls)) {
	case 0:
		break;
	case TLS_WANT_POLLIN:
		s->hwant = EV_READ;
		return 0;
	case TLS_WANT_POLLOUT:
		s->hwant = EV_WRITE;
		return 0;
	default:
		e = tls_error(s->tls);
		str_printable(why, sizeof(why), e ? e : "unknown error");
		if (s->mode == TLSM_MAY) {
			relay_session_clear_retry(s, why);
			return -1;
		}
		s->flags |= F_RELAY_IOERR;
		if (s->mode == TLSM_PKIX || s->mode == TLSM_STS) {
			stat_add(s->mode == TLSM_STS ?
			    "relay.tls.mta_sts_failed" :
			    "relay.tls.pkix_failed", 1);
			relay_session_fail(s, "4.7.5 TLS with %s failed "
			    "(certificate verification required by %s: %s): "
			    "%s", s->name, tls_mode_name(s->mode), s->why,
			    why);
		}
		else
			relay_session_fail(s, "4.7.5 TLS handshake with %s "
			    "failed: %s", s->name, why);
		return -1;
	}
	if ((v = tls_conn_version(s->tls)) == NULL)
		v = "unknown";
	str_printable(s->tls_version, sizeof(s->tls_version), v);
	if (s->mode == TLSM_DANE && relay_session_dane(s) == -1)
		return -1;
	if (s->testing)
		relay_session_sts_report(s, NULL);
	s->flags |= F_RELAY_TLS;
	log_info("session=%016llx event=starttls relay=%s version=%s "
	    "cipher=%s verified=%s check=%s", (unsigned long long)s->id,
	    s->name, s->tls_version, tls_conn_cipher(s->tls) ?
	    tls_conn_cipher(s->tls) : "unknown", relay_session_verified(s),
	    log_text(s->why));
	switch (s->mode) {
	case TLSM_DANE:
		stat_add("relay.tls.dane", 1);
		break;
	case TLSM_STS:
		stat_add("relay.tls.mta_sts", 1);
		break;
	case TLSM_PKIX:
		stat_add("relay.tls.pkix", 1);
		break;
	default:
		stat_add("relay.tls.unauthenticated", 1);
		break;
	}
	/* RFC 3207 §4.2: forget what the server said before TLS. */
	s->rwant = EV_READ;
	s->wwant = EV_WRITE;
	relay_session_ehlo(s);
	return 1;
}

/*
 * "opportunistic" means encryption when it works: a server whose TLS
 * fails is tried once more on a new connection, in the clear, rather
 * than holding the mail up.  (A man in the middle can force that, as he
 * can by removing STARTTLS: this policy does not protect against him.)
 */
static void
relay_session_clear_retry(struct relay_session *s, const char *why)
{
	log_info("session=%016llx event=tls-failed relay=%s error=%s "
	    "action=retry-without-tls", (unsigned long long)s->id,
	    log_value(s->name), log_text(why));
	if (s->testing)
		relay_session_sts_report(s, "TLS handshake failed");
	if (s->evflags)
		event_del(&s->ev);
	s->evflags = 0;
	evtimer_del(&s->tmo);
	tls_free(s->tls);
	s->tls = NULL;
	close(s->fd);
	s->fd = -1;
	s->flags = F_RELAY_CLEAR;
	relay_session_connect(s);
}

/* Greeted and secured as required: the delivery may start. */
static void
relay_session_ready(struct relay_session *s)
{
	s->up = 1;
	log_debug("session=%016llx event=ready relay=%s caps=0x%x size=%llu "
	    "tls=%s", (unsigned long long)s->id, s->name, s->caps,
	    (unsigned long long)s->size_max, relay_session_tlsname(s));
	if (s->msg != NULL) {
		relay_session_tx_start(s);
		return;
	}
	s->state = RELAY_STATE_READY;
	relay_session_timer(s, RELAY_IDLE_TIMEOUT, 0);
}

int
relay_session_idle(struct relay_session *s)
{
	return s->state == RELAY_STATE_READY && s->msg == NULL;
}

int
relay_session_up(struct relay_session *s)
{
	return s->up && s->state != RELAY_STATE_DEAD;
}

int
relay_session_addr(struct relay_session *s)
{
	return s->addr;
}

/* The transaction starts from the event loop, not the caller's stack. */
void
relay_session_assign(struct relay_session *s, struct relay_msg *m)
{
	struct timeval	 now = { 0, 0 };

	s->msg = m;
	m->session = s;
	strlcpy(m->remote, s->remote, sizeof(m->remote));
	strlcpy(m->relay, s->name, sizeof(m->relay));
	s->msg_replies = 0;
	s->flags &= ~F_RELAY_COUNTED;
	s->state = RELAY_STATE_ASSIGNED;
	evtimer_add(&s->tmo, &now);
}

/*
 * A transaction for the recipients of the delivery not yet tried on
 * this session, RELAY_MAX_RCPT_TX at a time.
 */
static void
relay_session_tx_start(struct relay_session *s)
{
	struct relay_msg	*m = s->msg;
	struct relay_rcpt	*r;
	uint32_t		 i;
	int			 n = 0;

	if (relay_session_tx_check(s) == -1) {
		relay_session_msg_finish(s);
		return;
	}
	s->ncmd = s->nsent = s->nreplied = 0;
	s->mail_ok = -1;
	s->naccepted = 0;
	/* A reused session starts clean whatever happened before. */
	if (s->flags & F_RELAY_USED)
		s->cmds[s->ncmd++].type = CMD_RSET;
	s->cmds[s->ncmd++].type = CMD_MAIL;
	for (i = 0; i < m->nrcpt && n < RELAY_MAX_RCPT_TX; i++) {
		r = &m->rcpts[i];
		if (r->done || r->here)
			continue;
		r->tx = 1;
		r->accepted = 0;
		s->cmds[s->ncmd].type = CMD_RCPT;
		s->cmds[s->ncmd++].rcpt = i;
		n++;
	}
	if (n == 0) {
		relay_session_msg_finish(s);
		return;
	}
	s->flags |= F_RELAY_USED;
	s->state = RELAY_STATE_TX;
	relay_session_tx_send(s, (s->caps & CAP_PIPELINING) ? s->ncmd : 1);
	if (s->state != RELAY_STATE_DEAD)
		relay_session_timer(s, RELAY_TO_MAIL, 0);
}

/*
 * What the server must offer for this message.  Nothing is converted:
 * a server that cannot take the message as it is gets none of it.
 */
static int
relay_session_tx_check(struct relay_session *s)
{
	struct relay_msg	*m = s->msg;
	char			 text[RELAY_REPLY_TEXT_MAX + 1];
	uint32_t		 i;

	text[0] = '\0';
	if ((s->caps & CAP_SIZE) && s->size_max > 0 && m->size > s->size_max)
		(void)snprintf(text, sizeof(text), "5.3.4 message size %llu "
		    "exceeds the limit of %s (%llu)",
		    (unsigned long long)m->size, s->name,
		    (unsigned long long)s->size_max);
	else if (m->body == BODY_BINARYMIME)
		(void)snprintf(text, sizeof(text), "5.6.3 binary message "
		    "cannot be relayed to %s", s->name);
	else if (m->body == BODY_8BITMIME && !(s->caps & CAP_8BITMIME))
		(void)snprintf(text, sizeof(text), "5.6.3 %s does not support "
		    "8BITMIME and the message has 8-bit content", s->name);
	else if ((m->flags & F_MSG_SMTPUTF8) && !(s->caps & CAP_SMTPUTF8))
		(void)snprintf(text, sizeof(text), "5.6.7 %s does not support "
		    "SMTPUTF8, which the message needs", s->name);
	if (text[0] == '\0')
		return 0;
	for (i = 0; i < m->nrcpt; i++)
		if (!m->rcpts[i].done)
			relay_rcpt_set(m, &m->rcpts[i], DELIVERY_PERMFAIL,
			    text, s->name, relay_session_tlsname(s),
			    relay_session_verified(s));
	return -1;
}

/* Send commands up to the upto-th (all of them when pipelining). */
static void
relay_session_tx_send(struct relay_session *s, int upto)
{
	struct relay_msg	*m = s->msg;
	struct relay_rcpt	*r;
	struct relay_cmd	*c;
	char			 notify[40], size[32];
	int			 dsn = s->caps & CAP_DSN;

	size[0] = '\0';
	if (s->caps & CAP_SIZE)
		(void)snprintf(size, sizeof(size), " SIZE=%llu",
		    (unsigned long long)m->size);

	for (; s->nsent < upto && s->nsent < s->ncmd; s->nsent++) {
		c = &s->cmds[s->nsent];
		switch (c->type) {
		case CMD_RSET:
			if (relay_session_cmd(s, "RSET") == -1)
				return;
			break;
		case CMD_MAIL:
			if (relay_session_cmd(s, "MAIL FROM:<%s>%s%s%s%s%s%s",
			    m->sender, size,
			    m->body == BODY_8BITMIME ? " BODY=8BITMIME" : "",
			    (m->flags & F_MSG_SMTPUTF8) ? " SMTPUTF8" : "",
			    dsn && m->ret == RET_FULL ? " RET=FULL" :
			    dsn && m->ret == RET_HDRS ? " RET=HDRS" : "",
			    dsn && m->envid[0] ? " ENVID=" : "",
			    dsn && m->envid[0] ? m->envid : "") == -1)
				return;
			break;
		case CMD_RCPT:
			r = &m->rcpts[c->rcpt];
			notify[0] = '\0';
			if (dsn && (r->notify & F_NOTIFY_NEVER))
				strlcpy(notify, " NOTIFY=NEVER",
				    sizeof(notify));
			else if (dsn && r->notify != 0) {
				strlcpy(notify, " NOTIFY=", sizeof(notify));
				if (r->notify & F_NOTIFY_SUCCESS)
					strlcat(notify, "SUCCESS,",
					    sizeof(notify));
				if (r->notify & F_NOTIFY_FAILURE)
					strlcat(notify, "FAILURE,",
					    sizeof(notify));
				if (r->notify & F_NOTIFY_DELAY)
					strlcat(notify, "DELAY,",
					    sizeof(notify));
				notify[strlen(notify) - 1] = '\0';
			}
			if (relay_session_cmd(s, "RCPT TO:<%s>%s%s%s", r->addr,
			    notify, dsn && r->orcpt[0] ? " ORCPT=" : "",
			    dsn && r->orcpt[0] ? r->orcpt : "") == -1)
				return;
			break;
		}
	}
}

static void
relay_session_tx_reply(struct relay_session *s)
{
	struct relay_msg	*m = s->msg;
	struct relay_cmd	*c;
	struct relay_rcpt	*r;
	int			 code = s->reply.code;
	uint32_t		 i;

	if (s->nreplied >= s->nsent) {
		relay_session_fail(s, "4.4.2 %s replied to a command not "
		    "sent: %s", s->name, s->reply.text);
		return;
	}
	c = &s->cmds[s->nreplied++];
	switch (c->type) {
	case CMD_RSET:
		if (code / 100 != 2) {
			relay_session_fail(s, "%s", s->reply.text);
			return;
		}
		break;
	case CMD_MAIL:
		if (!(s->flags & F_RELAY_COUNTED)) {
			s->flags |= F_RELAY_COUNTED;
			m->ntx++;
		}
		s->mail_ok = code / 100 == 2;
		if (s->mail_ok)
			break;
		/* The sender is refused: so is every recipient. */
		for (i = 0; i < m->nrcpt; i++) {
			r = &m->rcpts[i];
			if (!r->done && !r->here)
				relay_session_verdict(s, r, code,
				    s->reply.text);
		}
		break;
	case CMD_RCPT:
		r = &m->rcpts[c->rcpt];
		if (s->mail_ok != 1)
			break;		/* pipelined after a refused MAIL */
		if (code / 100 == 2) {
			r->accepted = 1;
			s->naccepted++;
		} else
			relay_session_verdict(s, r, code, s->reply.text);
		break;
	}
	if (!(s->caps & CAP_PIPELINING) && s->nsent < s->ncmd &&
	    s->mail_ok != 0) {
		relay_session_tx_send(s, s->nsent + 1);
		if (s->state != RELAY_STATE_DEAD)
			relay_session_timer(s, RELAY_TO_RCPT, 0);
		return;
	}
	if (s->nreplied < s->nsent)
		return;
	if (s->mail_ok != 1 || s->naccepted == 0) {
		relay_session_tx_end(s);
		return;
	}
	s->state = RELAY_STATE_DATA;
	if (relay_session_cmd(s, "DATA") == 0)
		relay_session_timer(s, RELAY_TO_DATA_INIT, 0);
}

static void
relay_session_data_reply(struct relay_session *s)
{
	struct relay_msg	*m = s->msg;
	uint32_t		 i;

	if (s->reply.code != 354) {
		for (i = 0; i < m->nrcpt; i++)
			if (m->rcpts[i].accepted)
				relay_session_verdict(s, &m->rcpts[i],
				    s->reply.code / 100 == 3 ? 451 :
				    s->reply.code, s->reply.text);
		relay_session_tx_end(s);
		return;
	}
	s->state = RELAY_STATE_BODY;
	s->flags &= ~(F_RELAY_BODY_EOF | F_RELAY_EOM_SENT);
	s->body_off = 0;
	s->body_bol = 1;
	s->body_cr = 0;
	relay_session_timer(s, RELAY_TO_DATA_BLOCK, 1);
}

/* The end-of-data reply is every accepted recipient's (RFC 5321 §4.1.1.4). */
static void
relay_session_eom_reply(struct relay_session *s)
{
	struct relay_msg	*m = s->msg;
	uint32_t		 i;
	int			 code = s->reply.code;

	if (code / 100 == 2) {
		s->nmsgs++;
		stat_add("relay.messages", 1);
	} else if (code / 100 == 3)
		code = 451;	/* nonsense at this point: try later */
	for (i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].accepted)
			relay_session_verdict(s, &m->rcpts[i], code,
			    s->reply.text);
	relay_session_tx_end(s);
}

/* A server's verdict on a recipient of the current transaction. */
static void
relay_session_verdict(struct relay_session *s, struct relay_rcpt *r,
    int code, const char *reply)
{
	uint32_t	 status;

	if (code / 100 == 2)
		status = !(s->caps & CAP_DSN) &&
		    (r->notify & F_NOTIFY_SUCCESS) ? DELIVERY_RELAYED :
		    DELIVERY_OK;
	else if (code / 100 == 5)
		status = DELIVERY_PERMFAIL;
	else
		status = DELIVERY_TEMPFAIL;
	relay_rcpt_set(s->msg, r, status, reply, s->name,
	    relay_session_tlsname(s), relay_session_verified(s));
	/*
	 * RFC 5321 §4.5.3.1.10: "452 too many recipients" asks for
	 * another transaction, which is worth it if this one got some.
	 */
	r->here = !(code == 452 && s->state == RELAY_STATE_TX);
}

/*
 * A transaction is over.  Recipients left over (more than one
 * transaction takes, or refused with 452 while others were accepted)
 * get another on this session; else the delivery is done here.
 */
static void
relay_session_tx_end(struct relay_session *s)
{
	struct relay_msg	*m = s->msg;
	struct relay_rcpt	*r;
	uint32_t		 i;
	int			 more = 0, progress = s->naccepted > 0;

	for (i = 0; i < m->nrcpt; i++) {
		r = &m->rcpts[i];
		if (r->tx && (!progress || s->mail_ok != 1))
			r->here = 1;
		if (r->tx && r->accepted)
			r->here = 1;
		r->tx = 0;
		r->accepted = 0;
		if (!r->done && !r->here)
			more = 1;
	}
	if (more && s->mail_ok == 1) {
		relay_session_tx_start(s);
		return;
	}
	relay_session_msg_finish(s);
}

/*
 * The session is done with its delivery: hand it back (reported, or
 * waiting for the next address) and look for more work; with none, the
 * session idles a few seconds for the next delivery to its destination,
 * unless another destination is waiting for a session slot.
 */
static void
relay_session_msg_finish(struct relay_session *s)
{
	struct relay_dest	*d = s->dest;
	struct relay_msg	*m = s->msg;

	s->msg = NULL;
	s->state = RELAY_STATE_READY;
	relay_session_timer(s, RELAY_IDLE_TIMEOUT, 0);
	relay_dest_msg_done(m, s->addr + 1);
	relay_dest_dispatch(d);
	if (relay_session_idle(s) && relay_dest_starved()) {
		relay_session_close(s);
		relay_dest_session_gone(d);
	}
}

/*
 * One octet of the message text into out at o; returns the new o.  A
 * CR waits for the next octet to say whether it ends a line.
 */
static size_t
relay_session_octet(struct relay_session *s, char *out, size_t o,
    unsigned char c)
{
	if (s->body_cr) {
		s->body_cr = 0;
		out[o++] = '\r';
		out[o++] = '\n';
		s->body_bol = 1;
		if (c == '\n')
			return o;
	}
	if (c == '\r') {
		s->body_cr = 1;
		return o;
	}
	if (c == '\n') {
		out[o++] = '\r';
		out[o++] = '\n';
		s->body_bol = 1;
		return o;
	}
	if (s->body_bol && c == '.')
		out[o++] = '.';
	out[o++] = (char)c;
	s->body_bol = 0;
	return o;
}

/*
 * Feed the message text: CRLF line ends (a bare CR or LF becomes one,
 * which the smtp process made sure never happens), dot-stuffing, and
 * after the last line the terminating dot.  -1: the session failed.
 */
static int
relay_session_fill(struct relay_session *s)
{
	static char	 buf[RELAY_BODY_CHUNK];
	char		*out, *p, *nl;
	ssize_t		 n, i;
	size_t		 o, want, len, k;

	/* The message is the file's first size bytes (queue/queue_fs.c). */
	want = sizeof(buf);
	if (s->msg->size - (uint64_t)s->body_off < want)
		want = (size_t)(s->msg->size - (uint64_t)s->body_off);
	n = 0;
	while (want > 0 && (n = pread(s->msg->fd, buf, want,
	    s->body_off)) == -1 && errno == EINTR)
		;
	if (n == -1) {
		s->flags |= F_RELAY_IOERR;	/* no dot may follow */
		relay_session_fail(s, "4.3.0 cannot read the message: %s",
		    strerror(errno));
		return -1;
	}
	if (s->olen + 2 * (size_t)n + 8 > s->ocap) {
		if (relay_session_out(s, NULL, 2 * (size_t)n + 8) == -1)
			return -1;
	}
	out = s->obuf;
	o = s->olen;
	for (i = 0; i < n; i += len) {
		/* A whole line that ends with its only CR and LF: as it is. */
		p = buf + i;
		nl = memchr(p, '\n', (size_t)(n - i));
		len = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(n - i);
		if (!s->body_cr && nl != NULL && len >= 2 && nl[-1] == '\r' &&
		    memchr(p, '\r', len - 2) == NULL) {
			if (s->body_bol && p[0] == '.')
				out[o++] = '.';
			memcpy(out + o, p, len);
			o += len;
			s->body_bol = 1;
			continue;
		}
		for (k = 0; k < len; k++)
			o = relay_session_octet(s, out, o, (unsigned char)p[k]);
	}
	if (n == 0) {
		if (s->body_cr || !s->body_bol) {
			out[o++] = '\r';
			out[o++] = '\n';
		}
		memcpy(out + o, ".\r\n", 3);
		o += 3;
		s->flags |= F_RELAY_BODY_EOF;
		s->state = RELAY_STATE_EOM;
	}
	s->olen = o;
	s->body_off += n;
	return 0;
}

/*
 * Append to the output (or with data NULL, make room for len more).
 * -1 if the session's output limit is reached: the session failed.
 */
static int
relay_session_out(struct relay_session *s, const void *data, size_t len)
{
	char	*p;
	size_t	 cap;

	if (s->opos > 0 && s->olen + len > s->ocap) {
		memmove(s->obuf, s->obuf + s->opos, s->olen - s->opos);
		s->olen -= s->opos;
		s->opos = 0;
	}
	if (s->olen + len > s->ocap) {
		if (s->olen + len > RELAY_OBUF_MAX) {
			relay_session_fail(s, "4.3.0 output buffer full");
			return -1;
		}
		cap = s->ocap ? s->ocap : 4096;
		while (cap < s->olen + len)
			cap *= 2;
		if ((p = realloc(s->obuf, cap)) == NULL)
			fatal("realloc");
		s->obuf = p;
		s->ocap = cap;
	}
	if (data != NULL) {
		memcpy(s->obuf + s->olen, data, len);
		s->olen += len;
	}
	return 0;
}

/* A command line; -1 if it failed the session. */
static int
relay_session_cmd(struct relay_session *s, const char *fmt, ...)
{
	char		 buf[RELAY_CMD_MAX];
	va_list		 ap;
	int		 n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf) - 2) {
		relay_session_fail(s, "4.3.0 command too long");
		return -1;
	}
	if (log_getverbose())
		log_debug("session=%016llx >>> %s", (unsigned long long)s->id,
		    log_text(buf));
	memcpy(buf + n, "\r\n", 2);
	return relay_session_out(s, buf, (size_t)n + 2);
}

/*
 * The session failed.  Its delivery goes back to its destination: the
 * recipients in the transaction are deferred with the reason, and the
 * delivery goes on at the next address, or, if the connection was a
 * reused one that died before the server said anything about this
 * delivery, once more at the same address.  A failure before the
 * session was up counts against the address.
 */
static void
relay_session_fail(struct relay_session *s, const char *fmt, ...)
{
	struct relay_dest	*d = s->dest;
	struct relay_msg	*m = s->msg;
	struct relay_rcpt	*r;
	char			 text[RELAY_REPLY_TEXT_MAX + 1];
	va_list			 ap;
	uint32_t		 i;
	int			 next = s->addr + 1;

	if (s->state == RELAY_STATE_DEAD)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	str_printable(text, sizeof(text), text);

	log_info("session=%016llx event=%s relay=%s state=%s error=%s",
	    (unsigned long long)s->id, s->up ? "failed" : "connect-failed",
	    log_value(s->name), log_text(relay_state_names[s->state]),
	    log_text(text));
	if (m != NULL) {
		s->msg = NULL;
		m->session = NULL;
		strlcpy(m->error, text, sizeof(m->error));
		if ((s->flags & F_RELAY_USED) && s->msg_replies == 0 &&
		    !m->reused_retry) {
			m->reused_retry = 1;
			next = s->addr;
		} else
			for (i = 0; i < m->nrcpt; i++) {
				r = &m->rcpts[i];
				if (r->tx && !r->done)
					relay_rcpt_set(m, r, DELIVERY_TEMPFAIL,
					    text, s->name,
					    relay_session_tlsname(s),
					    relay_session_verified(s));
			}
		relay_dest_msg_done(m, next);
	}
	if (!s->up)
		relay_dest_addr_failed(d, s->addr, text);
	relay_session_end(s, "failed");
}

/* Idle long enough: say goodbye and wait for the answer, briefly. */
static void
relay_session_quit(struct relay_session *s)
{
	struct timeval	 tv = { RELAY_QUIT_TIMEOUT, 0 };

	s->state = RELAY_STATE_QUIT;
	if (relay_session_cmd(s, "QUIT") == -1)
		return;
	evtimer_add(&s->tmo, &tv);
	relay_session_run(s);
}

/* Close an idle session now, for its slot; no callbacks. */
void
relay_session_close(struct relay_session *s)
{
	relay_session_unlink(s, "closed for another destination");
}

/* The session is over: its slot goes to whoever waits for one. */
static void
relay_session_end(struct relay_session *s, const char *reason)
{
	struct relay_dest	*d = s->dest;

	if (s->state == RELAY_STATE_DEAD)
		return;
	relay_session_unlink(s, reason);
	relay_dest_session_gone(d);
}

/*
 * Take the session out of its destination and the counts and close the
 * connection, with a QUIT where the protocol state allows one; the
 * memory goes at the end of this event, as callers up the stack may
 * still look at s->state.
 */
static void
relay_session_unlink(struct relay_session *s, const char *reason)
{
	struct relay_dest	*d = s->dest;
	struct timeval		 now = { 0, 0 };

	log_info("session=%016llx event=disconnect relay=%s reason=%s "
	    "messages=%u", (unsigned long long)s->id, log_value(s->name),
	    log_text(reason), s->nmsgs);
	if (s->msg != NULL)
		fatalx("session ends with a delivery");
	if (s->evflags)
		event_del(&s->ev);
	s->evflags = 0;
	evtimer_del(&s->tmo);
	if (s->fd != -1 && !(s->flags & F_RELAY_IOERR) && s->opos == s->olen &&
	    (s->state == RELAY_STATE_GREETING || s->state == RELAY_STATE_EHLO ||
	    s->state == RELAY_STATE_HELO || s->state == RELAY_STATE_STARTTLS ||
	    s->state == RELAY_STATE_READY || s->state == RELAY_STATE_ASSIGNED ||
	    s->state == RELAY_STATE_TX)) {
		/* One try, no waiting: the server may be gone already. */
		if (s->tls != NULL)
			(void)tls_write(s->tls, "QUIT\r\n", 6);
		else
			(void)send(s->fd, "QUIT\r\n", 6, MSG_NOSIGNAL);
	}
	if (s->tls != NULL) {
		if (!(s->flags & F_RELAY_IOERR) && (s->flags & F_RELAY_TLS))
			(void)tls_close(s->tls);
		tls_free(s->tls);
		s->tls = NULL;
	}
	if (s->fd != -1)
		close(s->fd);
	s->fd = -1;
	s->state = RELAY_STATE_DEAD;
	TAILQ_REMOVE(&d->sessions, s, entry);
	d->nsessions--;
	relay_nsessions--;
	stat_set("relay.sessions", relay_nsessions);

	TAILQ_INSERT_TAIL(&graveyard, s, entry);
	if (!event_initialized(&ev_reap))
		evtimer_set(&ev_reap, relay_session_reap, NULL);
	evtimer_add(&ev_reap, &now);
}

static void
relay_session_reap(int fd, short event, void *arg)
{
	struct relay_session	*s;

	(void)fd;
	(void)event;
	(void)arg;
	while ((s = TAILQ_FIRST(&graveyard)) != NULL) {
		TAILQ_REMOVE(&graveyard, s, entry);
		free(s->obuf);
		free(s);
	}
}

static const char *
relay_session_tlsname(struct relay_session *s)
{
	return (s->flags & F_RELAY_TLS) ? s->tls_version : "none";
}

/* What TLS verified on this connection: "dane", "mta-sts", "pkix". */
static const char *
relay_session_verified(struct relay_session *s)
{
	return (s->flags & F_RELAY_TLS) ? tls_mode_verified(s->mode) :
	    "none";
}

/*
 * An MTA-STS policy in testing mode (RFC 8461 §5): what enforcing it
 * would have refused is logged and counted, and the delivery goes on
 * under the configured policy.  failure is what already went wrong
 * (no STARTTLS), or NULL after a handshake: then the host must be one
 * of the policy's and its certificate valid for its name.
 */
static void
relay_session_sts_report(struct relay_session *s, const char *failure)
{
	const struct relay_hostinfo	*hi;
	const uint8_t			*pem;
	char				 why[256];
	size_t				 len = 0;

	hi = relay_dest_hostinfo(s->dest, s->a.host);
	if (failure == NULL && (hi == NULL || !hi->th.sts_match))
		failure = "the MX host is not in the policy";
	if (failure == NULL) {
		if ((pem = tls_peer_cert_chain_pem(s->tls, &len)) == NULL)
			failure = "no certificate";
		else if (relay_dane_pkix(pem, len, relay_ca_store, s->a.host,
		    why, sizeof(why)) == -1)
			failure = why;
	}
	log_info("session=%016llx event=mta-sts-testing domain=%s relay=%s "
	    "result=%s%s%s", (unsigned long long)s->id, s->dest->host.name,
	    s->name, failure ? "fail" : "pass", failure ? " error=" : "",
	    failure ? log_text(failure) : "");
	stat_add(failure ? "relay.tls.mta_sts_testing_failed" :
	    "relay.tls.mta_sts_testing_passed", 1);
}

/*
 * DANE: the chain the server sent against its exchanger's TLSA records
 * (relay_dane.c), the names for DANE-TA being the MX host's and the
 * next-hop domain's (RFC 7672 §3.2.2).  -1: the session failed.
 */
static int
relay_session_dane(struct relay_session *s)
{
	const struct relay_hostinfo	*hi;
	const uint8_t			*pem;
	const char			*names[2];
	char				 why[256];
	size_t				 len = 0;
	int				 n = 0;
	enum relay_dane			 r;

	hi = relay_dest_hostinfo(s->dest, s->a.host);
	names[n++] = s->a.host;
	if ((s->dest->host.flags & F_HOST_MX) &&
	    strcmp(s->dest->host.name, s->a.host) != 0)
		names[n++] = s->dest->host.name;
	if ((pem = tls_peer_cert_chain_pem(s->tls, &len)) == NULL) {
		r = DANE_ERROR;
		strlcpy(why, "no certificate from the server", sizeof(why));
	} else if (hi == NULL) {
		r = DANE_NOUSABLE;
		strlcpy(why, "the TLSA records are gone", sizeof(why));
	} else
		r = relay_dane_match(pem, len, hi->tlsa, hi->ntlsa, names, n,
		    why, sizeof(why));
	if (r == DANE_MATCH) {
		strlcat(s->why, "; ", sizeof(s->why));
		strlcat(s->why, why, sizeof(s->why));
		return 0;
	}
	stat_add("relay.tls.dane_failed", 1);
	s->flags |= F_RELAY_IOERR;
	relay_session_fail(s, "4.7.5 DANE: the certificate of %s does not "
	    "match its TLSA records (%s)", s->name, why);
	return -1;
}
