/*
 * One SMTP server session (RFC 5321 with PIPELINING, SIZE, 8BITMIME,
 * ENHANCEDSTATUSCODES, STARTTLS, SMTPUTF8, DSN and CHUNKING): a state
 * machine over our own bounded buffers, in plain text or TLS.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/tree.h>

#include <netinet/in.h>

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
#include "smtp.h"

#define SMTP_IBUF_SIZE		16384	/* input, bounded */
#define SMTP_OBUF_HIGH		65536	/* take no command while more is out */
#define SMTP_CMD_MAX		512	/* RFC 5321 §4.5.3.1.4, CRLF included */
#define SMTP_CMD_MAX_LONG	1012	/* MAIL/RCPT: DSN adds 500, RFC 3461 */
#define SMTP_REPLY_MAX		1024
#define SMTP_READS_PER_RUN	4	/* then let other sessions run */
#define SMTP_CLOSE_TIMEOUT	10	/* seconds to get the last reply out */
/*
 * Silence expected from the client before the banner (RFC 5321 §4.3.1:
 * the client waits for it).  Anything said earlier is a client that
 * does not listen: 554 and the door.  Short, not configurable; trusted
 * clients (our own systems, which may send a message per connection)
 * get the banner at once.
 */
#define SMTP_BANNER_DELAY	500	/* milliseconds */
/*
 * A client that keeps making errors (unknown recipients among them:
 * directory harvesting) gets its answers more and more slowly: the
 * first SMTP_ERRORS_AT_ONCE at once, then each held back one second
 * more than the one before, up to SMTP_ERROR_DELAY_MAX, by a timer of
 * its session (the process goes on with the others); at `limit
 * errors` the session ends.  Trusted clients are never held back.
 */
#define SMTP_ERRORS_AT_ONCE	3
#define SMTP_ERROR_DELAY_MAX	5	/* seconds */
#define USEC			1000000LL

#define S(st)		(1 << (st))
#define S_ANY		(S(STATE_CONNECTED) | S(STATE_HELO) | S(STATE_MAIL) | \
			 S(STATE_RCPT) | S(STATE_CHUNKING))

struct smtp_cmd {
	const char	*verb;
	int		 states;
	int		 flags;
	void		(*fn)(struct smtp_session *, char *);
};
#define CMD_LONG	0x01	/* may use the DSN allowance */

static int	smtp_session_cmp(struct smtp_session *, struct smtp_session *);
RB_HEAD(smtp_sessions, smtp_session);
RB_PROTOTYPE_INTERNAL(smtp_sessions, smtp_session, entry, smtp_session_cmp,
    SMX_RB_STATIC);

static void	smtp_session_io(int, short, void *);
static void	smtp_session_timeout(int, short, void *);
static void	smtp_session_delay_done(int, short, void *);
static int64_t	smtp_session_now(void);
static int	smtp_session_receiving(const struct smtp_session *);
static void	smtp_session_credit(struct smtp_session *, size_t);
static void	smtp_session_update(struct smtp_session *);
static int	smtp_session_can_read(struct smtp_session *);
static ssize_t	smtp_session_read(struct smtp_session *);
static int	smtp_session_write(struct smtp_session *);
static void	smtp_session_banner(struct smtp_session *);
static void	smtp_session_early(struct smtp_session *);
static int	smtp_session_tls_start(struct smtp_session *);
static int	smtp_session_handshake(struct smtp_session *);
static void	smtp_session_free(struct smtp_session *, const char *);
static void	smtp_session_out(struct smtp_session *, const char *, size_t);
static void	smtp_session_vreply(struct smtp_session *, const char *,
		    va_list) __attribute__((__format__ (printf, 2, 0)));
static void	smtp_session_process(struct smtp_session *);
static int	smtp_session_line(struct smtp_session *);
static void	smtp_session_command(struct smtp_session *, char *, size_t,
		    size_t);
static void	smtp_session_bad_sequence(struct smtp_session *,
		    const struct smtp_cmd *);
static int	smtp_session_greet(struct smtp_session *, char *,
		    const char *);
static int	smtp_session_params(struct smtp_session *, int,
		    const char *);
static void	smtp_session_postmaster(const struct smx_conf *, char *,
		    size_t);

static void	smtp_session_ehlo(struct smtp_session *, char *);
static void	smtp_session_helo(struct smtp_session *, char *);
static void	smtp_session_starttls(struct smtp_session *, char *);
static void	smtp_session_mail(struct smtp_session *, char *);
static void	smtp_session_rcpt(struct smtp_session *, char *);
static void	smtp_session_data(struct smtp_session *, char *);
static void	smtp_session_bdat(struct smtp_session *, char *);
static void	smtp_session_rset(struct smtp_session *, char *);
static void	smtp_session_noop(struct smtp_session *, char *);
static void	smtp_session_quit(struct smtp_session *, char *);
static void	smtp_session_vrfy(struct smtp_session *, char *);
static void	smtp_session_expn(struct smtp_session *, char *);
static void	smtp_session_help(struct smtp_session *, char *);
static void	smtp_session_orcpt(struct smtp_rcpt *);
static void	smtp_session_bye(struct smtp_session *);

static const struct smtp_cmd smtp_cmds[] = {
	{ "EHLO",	S_ANY,				0, smtp_session_ehlo },
	{ "HELO",	S_ANY,				0, smtp_session_helo },
	{ "STARTTLS",	S(STATE_HELO),			0,
	    smtp_session_starttls },
	{ "MAIL",	S(STATE_HELO),			CMD_LONG,
	    smtp_session_mail },
	{ "RCPT",	S(STATE_MAIL) | S(STATE_RCPT),	CMD_LONG,
	    smtp_session_rcpt },
	{ "DATA",	S(STATE_MAIL) | S(STATE_RCPT),	0, smtp_session_data },
	/* BDAT checks its state itself: its chunk must be read anyway. */
	{ "BDAT",	S_ANY,				0, smtp_session_bdat },
	{ "RSET",	S_ANY,				0, smtp_session_rset },
	{ "NOOP",	S_ANY,				0, smtp_session_noop },
	{ "QUIT",	S_ANY,				0, smtp_session_quit },
	{ "VRFY",	S_ANY,				0, smtp_session_vrfy },
	{ "EXPN",	S_ANY,				0, smtp_session_expn },
	{ "HELP",	S_ANY,				0, smtp_session_help },
};

static struct smtp_sessions	 sessions = RB_INITIALIZER(&sessions);

void
smtp_session_new(int fd, const struct sockaddr_storage *ss, socklen_t sslen,
    struct smtp_listen *ls)
{
	struct smtp_session	*s;
	struct smx_net		*n;
	struct timeval		 tv = { 0, SMTP_BANNER_DELAY * 1000 };

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->ibuf = malloc(SMTP_IBUF_SIZE)) == NULL)
		fatal("smtp_session_new");
	do {
		s->id = ((uint64_t)arc4random() << 32) | arc4random();
	} while (s->id == 0 || RB_FIND(smtp_sessions, &sessions, s) != NULL);
	RB_INSERT(smtp_sessions, &sessions, s);
	s->fd = fd;
	s->ss = *ss;
	s->sslen = sslen;
	s->listen = ls;
	s->gen = ls->gen;
	smtp_gen_ref(s->gen);
	sa_str((struct sockaddr *)&s->ss, s->addr, sizeof(s->addr));
	s->rwant = EV_READ;
	s->wwant = EV_WRITE;
	s->state = STATE_BANNER;
	TAILQ_FOREACH(n, &s->gen->conf->trusted, entry)
		if (net_match(&n->ss, n->prefixlen,
		    (const struct sockaddr *)&s->ss)) {
			tv.tv_usec = 0;
			s->flags |= F_TRUSTED;
			break;
		}
	evtimer_set(&s->tmo, smtp_session_timeout, s);
	evtimer_set(&s->delay, smtp_session_delay_done, s);
	evtimer_add(&s->tmo, &tv);
	log_info("session=%016llx event=connect client=%s port=%u "
	    "local-port=%u", (unsigned long long)s->id, s->addr,
	    ntohs(((struct sockaddr_in *)&s->ss)->sin_port), ls->l->port);
	smtp_policy_connect(s);
	smtp_filter_connect(s);
	smtp_session_update(s);
}

struct smtp_session *
smtp_session_find(uint64_t id)
{
	struct smtp_session	 find;

	find.id = id;
	return RB_FIND(smtp_sessions, &sessions, &find);
}

static int
smtp_session_cmp(struct smtp_session *a, struct smtp_session *b)
{
	if (a->id < b->id)
		return -1;
	return a->id > b->id;
}

RB_GENERATE_INTERNAL(smtp_sessions, smtp_session, entry, smtp_session_cmp,
    SMX_RB_STATIC);

/*
 * I/O.  The pump reads what it may, answers every complete command in
 * order and writes the replies once it has run out of input or must
 * wait: a pipelined packet gets its answers in one write (RFC 2920).
 */
static void
smtp_session_io(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	smtp_session_run(arg);
}

void
smtp_session_run(struct smtp_session *s)
{
	ssize_t	 n;
	int	 reads = 0, drained = 0, r;

	for (;;) {
		if (s->flags & F_HANDSHAKE) {
			if ((r = smtp_session_handshake(s)) == -1) {
				smtp_session_free(s, "tls-failed");
				return;
			}
			if (r == 0)
				break;
		}
		smtp_session_process(s);
		/* The client is gone and everything it said is answered. */
		if ((s->flags & (F_EOF | F_CLOSE)) == F_EOF &&
		    s->wait == WAIT_NONE && s->olen - s->opos < SMTP_OBUF_HIGH)
			smtp_session_close(s, "disconnected");
		if (s->opos < s->olen &&
		    (s->wait == WAIT_NONE || (s->flags & F_CLOSE)) &&
		    smtp_session_write(s) == -1) {
			smtp_session_free(s, "write-error");
			return;
		}
		if (s->opos == s->olen) {
			if (s->flags & F_CLOSE) {
				smtp_session_free(s, NULL);
				return;
			}
			if (s->flags & F_STARTTLS) {
				if (smtp_session_tls_start(s) == -1) {
					smtp_session_free(s, "tls-failed");
					return;
				}
				continue;
			}
		}
		/* A short read of plain TCP emptied the socket: no EAGAIN. */
		if (!smtp_session_can_read(s) || (drained && s->tls == NULL))
			break;
		if (reads++ == SMTP_READS_PER_RUN) {
			/* Fairness: come back after the others had a turn. */
			smtp_session_update(s);
			event_active(&s->ev, EV_READ, 1);
			return;
		}
		if ((n = smtp_session_read(s)) == -2)
			break;
		if (n == -1) {
			smtp_session_free(s, "read-error");
			return;
		}
		if (n == 0) {
			s->flags |= F_EOF;
			continue;
		}
		smtp_session_credit(s, (size_t)n);
		drained = s->ilen < SMTP_IBUF_SIZE;
		smtp_session_timer(s);
		if (s->state == STATE_BANNER)
			smtp_session_early(s);
	}
	smtp_session_update(s);
}

static int
smtp_session_can_read(struct smtp_session *s)
{
	return !(s->flags & (F_EOF | F_CLOSE | F_STARTTLS | F_HANDSHAKE)) &&
	    s->ilen - s->ipos < SMTP_IBUF_SIZE &&
	    s->olen - s->opos < SMTP_OBUF_HIGH;
}

static void
smtp_session_update(struct smtp_session *s)
{
	short	 ev = 0;

	if (s->flags & F_HANDSHAKE)
		ev = s->hwant;
	else {
		if (s->opos < s->olen &&
		    (s->wait == WAIT_NONE || (s->flags & F_CLOSE)))
			ev |= s->wwant;
		if (smtp_session_can_read(s))
			ev |= s->rwant;
	}
	tlsio_watch(&s->ev, &s->evflags, s->fd, ev, smtp_session_io, s);
}

/* Bytes read, 0 at the end of the stream, -1 error, -2 try later. */
static ssize_t
smtp_session_read(struct smtp_session *s)
{
	ssize_t	 n;

	if (s->ipos > 0) {
		memmove(s->ibuf, s->ibuf + s->ipos, s->ilen - s->ipos);
		s->ilen -= s->ipos;
		s->ipos = 0;
	}
	n = tlsio_read(s->fd, s->tls, s->ibuf + s->ilen,
	    SMTP_IBUF_SIZE - s->ilen, &s->rwant);
	if (n == -1 && s->tls != NULL)
		log_debug("session=%016llx tls_read: %s",
		    (unsigned long long)s->id, tls_error(s->tls));
	if (n > 0)
		s->ilen += (size_t)n;
	return n;
}

/* 0: all written or the rest must wait (s->wwant), -1: error. */
static int
smtp_session_write(struct smtp_session *s)
{
	ssize_t	 n;

	while (s->opos < s->olen) {
		if ((n = tlsio_write(s->fd, s->tls, s->obuf + s->opos,
		    s->olen - s->opos, &s->wwant)) == -1)
			return -1;
		if (n == 0)
			return 0;
		/*
		 * No new time for the client's reading our answers: one that
		 * reads them slowly enough is a slowloris the other way.
		 */
		s->opos += (size_t)n;
	}
	s->opos = s->olen = 0;
	return 0;
}

/*
 * Time against slowloris clients (splitmx.conf(5), TIMEOUTS AND
 * LIMITS).  What the client sends never buys it more time by itself:
 *	- between commands it may be silent for `timeout command';
 *	- a command line (and a TLS handshake) must be complete within
 *	  `timeout command' of its first octet (cmd_deadline);
 *	- a message (DATA, or BDAT from the first chunk to the last) has a
 *	  deadline `timeout data' ahead when it begins, and every octet
 *	  that arrives moves it 1/rate seconds later, but never more than
 *	  `timeout data' ahead of now (data_deadline): the client must
 *	  keep to `limit data-rate' on average and may fall behind by at
 *	  most `timeout data'.
 * While another process owes the next step, the client is not to blame:
 * the idle time starts again.  The timer is (re)armed from these
 * deadlines, so arming it again never extends one.
 */
void
smtp_session_timer(struct smtp_session *s)
{
	struct smx_conf	*c = s->gen->conf;
	struct timeval	 tv;
	int64_t		 now = smtp_session_now(), at;

	if (s->flags & F_CLOSE)
		at = now + SMTP_CLOSE_TIMEOUT * USEC;
	else if (s->state == STATE_BANNER)
		return;		/* the banner timer runs */
	else if (s->wait != WAIT_NONE)
		at = now + c->timeout_command * USEC;
	else {
		at = s->cmd_deadline != 0 ? s->cmd_deadline :
		    now + c->timeout_command * USEC;
		if (smtp_session_receiving(s) &&
		    (s->state != STATE_CHUNKING || s->data_deadline < at))
			at = s->data_deadline;
	}
	if (at < now)
		at = now;
	tv.tv_sec = (time_t)((at - now) / USEC);
	tv.tv_usec = (suseconds_t)((at - now) % USEC);
	evtimer_add(&s->tmo, &tv);
}

static int64_t
smtp_session_now(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		fatal("clock_gettime");
	return (int64_t)ts.tv_sec * USEC + ts.tv_nsec / 1000;
}

/* Is a message's data coming (its deadline applies)? */
static int
smtp_session_receiving(const struct smtp_session *s)
{
	return s->state == STATE_DATA || s->state == STATE_CHUNKING ||
	    (s->flags & F_CHUNK);
}

void
smtp_session_data_begin(struct smtp_session *s)
{
	s->data_deadline = smtp_session_now() +
	    s->gen->conf->timeout_data * USEC;
}

/* n octets arrived: while a message comes, they buy it time. */
static void
smtp_session_credit(struct smtp_session *s, size_t n)
{
	struct smx_conf	*c = s->gen->conf;
	int64_t		 cap, rate;

	if (!smtp_session_receiving(s))
		return;
	cap = smtp_session_now() + c->timeout_data * USEC;
	rate = c->min_data_rate > 0 ? (int64_t)c->min_data_rate : 1;
	s->data_deadline += (int64_t)n * USEC / rate;
	if (s->data_deadline > cap)
		s->data_deadline = cap;
}

static void
smtp_session_timeout(int fd, short event, void *arg)
{
	struct smtp_session	*s = arg;
	const char		*host = s->gen->conf->hostname;
	int64_t			 now = smtp_session_now() + USEC / 100;

	(void)fd;
	(void)event;
	if (s->flags & (F_CLOSE | F_HANDSHAKE)) {
		smtp_session_free(s, "timeout");
		return;
	}
	if (s->state == STATE_BANNER) {
		smtp_session_banner(s);
		return;
	}
	if (s->wait == WAIT_NONE && smtp_session_receiving(s) &&
	    s->data_deadline <= now) {
		smtp_session_reply(s, "421 4.4.2 %s Message data too slow, "
		    "closing connection", host);
		smtp_session_close(s, "data-timeout");
	} else if (s->wait == WAIT_NONE && s->cmd_deadline != 0 &&
	    s->cmd_deadline <= now) {
		smtp_session_reply(s, "421 4.4.2 %s Command not complete in "
		    "time, closing connection", host);
		smtp_session_close(s, "command-timeout");
	} else {
		smtp_session_reply(s, "421 4.4.2 %s Timeout, closing "
		    "connection", host);
		smtp_session_close(s, "timeout");
	}
	smtp_session_run(s);
}

static void
smtp_session_banner(struct smtp_session *s)
{
	ssize_t	 n;

	/* Whatever arrived just before the timer still counts as early. */
	n = smtp_session_read(s);
	if (n == 0 || n == -1) {
		smtp_session_free(s, "disconnected");
		return;
	}
	if (n > 0)
		smtp_session_early(s);
	else if (smtp_policy_banner_wait(s) || smtp_filter_banner(s))
		return;
	else {
		s->state = STATE_CONNECTED;
		smtp_session_reply(s, "220 %s ESMTP splitmx",
		    s->gen->conf->hostname);
		smtp_session_timer(s);
	}
	smtp_session_run(s);
}

/* The client spoke before the banner: it does not follow the protocol. */
static void
smtp_session_early(struct smtp_session *s)
{
	log_info("session=%016llx event=early-talker client=%s bytes=%zu",
	    (unsigned long long)s->id, s->addr, s->ilen - s->ipos);
	s->ipos = s->ilen;
	smtp_session_reply(s, "554 5.5.0 Protocol error: data sent before "
	    "the greeting");
	smtp_session_close(s, "early-talker");
}

static int
smtp_session_tls_start(struct smtp_session *s)
{
	s->flags &= ~F_STARTTLS;
	if (tls_accept_socket(s->listen->tls, &s->tls, s->fd) == -1) {
		log_warnx("session=%016llx tls_accept_socket: %s",
		    (unsigned long long)s->id, tls_error(s->listen->tls));
		return -1;
	}
	s->flags |= F_HANDSHAKE;
	s->hwant = EV_READ;
	/* The handshake is a command: its time does not start again. */
	s->cmd_deadline = smtp_session_now() +
	    s->gen->conf->timeout_command * USEC;
	smtp_session_timer(s);
	return 0;
}

/* 1 done, 0 in progress (s->hwant), -1 failed. */
static int
smtp_session_handshake(struct smtp_session *s)
{
	const char	*v, *c;

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
		log_info("session=%016llx event=tls-failed error=%s",
		    (unsigned long long)s->id, log_text(tls_error(s->tls)));
		return -1;
	}
	s->flags &= ~F_HANDSHAKE;
	s->flags |= F_TLS;
	s->cmd_deadline = 0;
	if ((v = tls_conn_version(s->tls)) == NULL)
		v = "unknown";
	if ((c = tls_conn_cipher(s->tls)) == NULL)
		c = "unknown";
	str_printable(s->tls_version, sizeof(s->tls_version), v);
	str_printable(s->tls_cipher, sizeof(s->tls_cipher), c);
	log_info("session=%016llx event=starttls version=%s cipher=%s",
	    (unsigned long long)s->id, s->tls_version, s->tls_cipher);
	/* RFC 3207 §4.2: forget what the client said before TLS. */
	s->helo[0] = '\0';
	s->flags &= ~F_EHLO;
	s->state = STATE_CONNECTED;
	s->rwant = EV_READ;
	s->wwant = EV_WRITE;
	smtp_session_timer(s);
	return 1;
}

/* Stop taking input; the session ends once the replies are out. */
void
smtp_session_close(struct smtp_session *s, const char *reason)
{
	if (s->flags & F_CLOSE)
		return;
	s->flags |= F_CLOSE;
	s->reason = reason;
	s->ipos = s->ilen = 0;
	smtp_session_timer(s);
}

static void
smtp_session_free(struct smtp_session *s, const char *reason)
{
	char	 junk[4096];
	int	 i;

	if (reason == NULL)
		reason = s->reason ? s->reason : "closed";
	log_info("session=%016llx event=disconnect reason=%s messages=%u",
	    (unsigned long long)s->id, reason, s->nmsgs);
	smtp_message_abort(s);
	smtp_filter_close(s);
	if (s->evflags)
		event_del(&s->ev);
	evtimer_del(&s->tmo);
	evtimer_del(&s->delay);
	if (s->tls != NULL) {
		if (!(s->flags & F_HANDSHAKE))
			(void)tls_close(s->tls);
		tls_free(s->tls);
	}
	/*
	 * Unread input makes close() send a reset, which can destroy our
	 * last reply in flight: half-close, then drop what is pending.
	 */
	(void)shutdown(s->fd, SHUT_WR);
	for (i = 0; i < 16; i++)
		if (read(s->fd, junk, sizeof(junk)) <= 0)
			break;
	close(s->fd);
	RB_REMOVE(smtp_sessions, &sessions, s);
	smtp_session_gone(&s->ss);
	smtp_policy_free(s);
	smtp_gen_unref(s->gen);
	free(s->ibuf);
	free(s->obuf);
	free(s);
}

/*
 * Replies.
 */
static void
smtp_session_out(struct smtp_session *s, const char *p, size_t len)
{
	size_t	 cap;
	char	*n;

	if (s->opos == s->olen)
		s->opos = s->olen = 0;
	if (s->olen + len > s->ocap) {
		cap = s->ocap ? s->ocap : 1024;
		while (cap < s->olen + len)
			cap *= 2;
		if ((n = realloc(s->obuf, cap)) == NULL)
			fatal("realloc");
		s->obuf = n;
		s->ocap = cap;
	}
	memcpy(s->obuf + s->olen, p, len);
	s->olen += len;
}

static void
smtp_session_vreply(struct smtp_session *s, const char *fmt, va_list ap)
{
	char	 buf[SMTP_REPLY_MAX];
	int	 n;

	if ((n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap)) < 0)
		fatalx("smtp reply format");
	if ((size_t)n >= sizeof(buf) - 2)
		n = sizeof(buf) - 3;
	if (log_getverbose())
		log_debug("session=%016llx >>> %s", (unsigned long long)s->id,
		    log_textn(buf, (size_t)n));
	buf[n++] = '\r';
	buf[n++] = '\n';
	smtp_session_out(s, buf, (size_t)n);
}

void
smtp_session_reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	smtp_session_vreply(s, fmt, ap);
	va_end(ap);
}

/*
 * An error of the client's: replied and counted; after a few the
 * answers are held back (see SMTP_ERRORS_AT_ONCE), and at the limit the
 * session ends.
 */
void
smtp_session_error(struct smtp_session *s, const char *fmt, ...)
{
	struct smx_conf	*c = s->gen->conf;
	struct timeval	 tv = { 0, 0 };
	va_list		 ap;

	va_start(ap, fmt);
	smtp_session_vreply(s, fmt, ap);
	va_end(ap);
	if (c->max_errors == 0 || ++s->errors < c->max_errors) {
		if (s->errors <= SMTP_ERRORS_AT_ONCE ||
		    (s->flags & (F_TRUSTED | F_CLOSE)) ||
		    s->wait != WAIT_NONE)
			return;
		tv.tv_sec = s->errors - SMTP_ERRORS_AT_ONCE;
		if (tv.tv_sec > SMTP_ERROR_DELAY_MAX)
			tv.tv_sec = SMTP_ERROR_DELAY_MAX;
		s->wait = WAIT_DELAY;
		evtimer_add(&s->delay, &tv);
		smtp_session_timer(s);
		return;
	}
	log_info("session=%016llx event=too-many-errors client=%s errors=%u",
	    (unsigned long long)s->id, s->addr, s->errors);
	smtp_session_reply(s, "421 4.7.0 %s Too many errors, closing "
	    "connection", c->hostname);
	smtp_session_close(s, "errors");
}

/* The error delay is over: the held answer goes out, input goes on. */
static void
smtp_session_delay_done(int fd, short event, void *arg)
{
	struct smtp_session	*s = arg;

	(void)fd;
	(void)event;
	if (s->wait != WAIT_DELAY)
		return;
	s->wait = WAIT_NONE;
	smtp_session_timer(s);
	smtp_session_run(s);
}

/*
 * Input: command lines, DATA text, BDAT chunks, as long as nothing
 * needs an answer from another process first.  Then the timer, for the
 * state the input left the session in.
 */
static void
smtp_session_process(struct smtp_session *s)
{
	int	 more, done = 0;

	while (s->wait == WAIT_NONE && s->state != STATE_BANNER &&
	    !(s->flags & (F_CLOSE | F_STARTTLS | F_HANDSHAKE)) &&
	    s->olen - s->opos < SMTP_OBUF_HIGH) {
		if (s->flags & F_CHUNK)
			more = smtp_message_chunk(s);
		else if (s->state == STATE_DATA)
			more = smtp_message_dataline(s);
		else if (s->flags & F_STOP) {
			/* Between two commands: what was pipelined waits. */
			smtp_session_bye(s);
			break;
		} else
			more = smtp_session_line(s);
		if (!more)
			break;
		done = 1;
	}
	if (done)
		smtp_session_timer(s);
}

/* splitmxd stops (RFC 5321 §3.8: 421 before closing). */
static void
smtp_session_bye(struct smtp_session *s)
{
	smtp_session_reply(s, "421 4.3.2 %s Service shutting down, closing "
	    "connection", s->gen->conf->hostname);
	smtp_session_close(s, "shutdown");
}

/*
 * splitmxctl stop.  A session between commands is told 421 now; one in
 * the middle of a command (waiting for a lookup or a commit, reading
 * DATA or a chunk, in a TLS handshake) finishes it first and is told
 * at the next (smtp_session_process()).  now: the deadline, every
 * session left is told and closed at once; a message not yet committed
 * is not acknowledged and goes away with it.
 */
void
smtp_session_stop_all(int now)
{
	struct smtp_session	*s, *next;

	RB_FOREACH_SAFE(s, smtp_sessions, &sessions, next) {
		s->flags |= F_STOP;
		if (now) {
			if (!(s->flags & (F_CLOSE | F_HANDSHAKE))) {
				smtp_session_bye(s);
				(void)smtp_session_write(s);
			}
			smtp_session_free(s, "shutdown");
			continue;
		}
		if (s->state == STATE_BANNER) {
			/* No banner then: the 421 is the greeting. */
			evtimer_del(&s->tmo);
			s->state = STATE_CONNECTED;
			smtp_session_bye(s);
		}
		smtp_session_run(s);
	}
}

/* One command line; 0 if there is none complete yet. */
static int
smtp_session_line(struct smtp_session *s)
{
	char	*p = s->ibuf + s->ipos, *nl;
	size_t	 avail = s->ilen - s->ipos, len, linelen;

	if (avail == 0)
		return 0;
	nl = memchr(p, '\n', avail);
	if (nl == NULL && s->cmd_deadline == 0) {
		/* The first octets of a command: its time runs from here. */
		s->cmd_deadline = smtp_session_now() +
		    s->gen->conf->timeout_command * USEC;
		smtp_session_timer(s);
	}
	if (s->flags & F_DISCARD) {
		if (nl == NULL) {
			s->ipos = s->ilen;
			return 0;
		}
		s->ipos += (size_t)(nl - p) + 1;
		s->flags &= ~F_DISCARD;
		s->cmd_deadline = 0;
		smtp_session_error(s, "500 5.5.2 Error: line too long");
		return 1;
	}
	if (nl == NULL) {
		if (avail >= SMTP_CMD_MAX_LONG) {
			/* No command is this long: drop it to its end. */
			s->flags |= F_DISCARD;
			s->ipos = s->ilen;
		}
		return 0;
	}
	s->cmd_deadline = 0;
	linelen = (size_t)(nl - p) + 1;
	s->ipos += linelen;
	len = linelen - 1;
	if (len > 0 && p[len - 1] == '\r')
		len--;
	p[len] = '\0';
	if (linelen > SMTP_CMD_MAX_LONG) {
		smtp_session_error(s, "500 5.5.2 Error: line too long");
		return 1;
	}
	smtp_session_command(s, p, len, linelen);
	return 1;
}

static void
smtp_session_command(struct smtp_session *s, char *line, size_t len,
    size_t linelen)
{
	const struct smtp_cmd	*cmd = NULL;
	char			*args, *e;
	size_t			 i;

	if (memchr(line, '\0', len) != NULL) {
		smtp_session_error(s, "500 5.5.2 Error: NUL octet in command");
		return;
	}
	if (log_getverbose())
		log_debug("session=%016llx <<< %s", (unsigned long long)s->id,
		    log_textn(line, len));
	if (memchr(line, '\r', len) != NULL) {
		smtp_session_error(s, "500 5.5.2 Error: bare CR in command");
		return;
	}
	if ((args = strchr(line, ' ')) != NULL) {
		*args++ = '\0';
		while (*args == ' ')
			args++;
		e = args + strlen(args);
		while (e > args && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
	} else
		args = line + strlen(line);
	for (i = 0; i < sizeof(smtp_cmds) / sizeof(smtp_cmds[0]); i++)
		if (strcasecmp(line, smtp_cmds[i].verb) == 0) {
			cmd = &smtp_cmds[i];
			break;
		}
	if (cmd == NULL) {
		smtp_session_error(s, "500 5.5.2 Error: command not "
		    "recognized");
		return;
	}
	if (linelen > SMTP_CMD_MAX && !(cmd->flags & CMD_LONG)) {
		smtp_session_error(s, "500 5.5.2 Error: line too long");
		return;
	}
	if (!(cmd->states & S(s->state))) {
		smtp_session_bad_sequence(s, cmd);
		return;
	}
	cmd->fn(s, args);
}

static void
smtp_session_bad_sequence(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	const char	*why;

	switch (s->state) {
	case STATE_CONNECTED:
		why = "send HELO/EHLO first";
		break;
	case STATE_HELO:
		why = "need MAIL command";
		break;
	case STATE_MAIL:
	case STATE_RCPT:
		why = strcmp(cmd->verb, "MAIL") == 0 ? "nested MAIL command" :
		    "not allowed in a mail transaction";
		break;
	case STATE_CHUNKING:
		why = "BDAT transaction in progress";
		break;
	default:
		why = "bad sequence of commands";
		break;
	}
	smtp_session_error(s, "503 5.5.1 Error: %s", why);
}

/*
 * Commands.
 */
static int
smtp_session_greet(struct smtp_session *s, char *args, const char *verb)
{
	if (!smtp_parse_helo(args)) {
		smtp_session_error(s, "501 5.5.4 Syntax: %s hostname", verb);
		return -1;
	}
	/* RFC 5321 §4.1.4: a new greeting resets the transaction. */
	smtp_message_abort(s);
	strlcpy(s->helo, args, sizeof(s->helo));
	s->flags &= ~F_EHLO;
	s->state = STATE_HELO;
	return 0;
}

static void
smtp_session_ehlo(struct smtp_session *s, char *args)
{
	if (smtp_session_greet(s, args, "EHLO") == -1)
		return;
	s->flags |= F_EHLO;
	if (!smtp_filter_helo(s))
		smtp_session_greeted(s);
}

/* The reply to HELO or EHLO (F_EHLO). */
void
smtp_session_greeted(struct smtp_session *s)
{
	struct smx_conf	*c = s->gen->conf;

	if (!(s->flags & F_EHLO)) {
		smtp_session_reply(s, "250 %s Hello %s [%s]", c->hostname,
		    s->helo, s->addr);
		return;
	}
	smtp_session_reply(s, "250-%s Hello %s [%s]", c->hostname, s->helo,
	    s->addr);
	smtp_session_reply(s, "250-PIPELINING");
	smtp_session_reply(s, "250-SIZE %zu", c->max_message_size);
	smtp_session_reply(s, "250-8BITMIME");
	smtp_session_reply(s, "250-ENHANCEDSTATUSCODES");
	if (s->listen->tls != NULL && !(s->flags & F_TLS))
		smtp_session_reply(s, "250-STARTTLS");
	smtp_session_reply(s, "250-SMTPUTF8");
	smtp_session_reply(s, "250-DSN");
	smtp_session_reply(s, "250 CHUNKING");
}

static void
smtp_session_helo(struct smtp_session *s, char *args)
{
	if (smtp_session_greet(s, args, "HELO") == -1)
		return;
	if (!smtp_filter_helo(s))
		smtp_session_greeted(s);
}

static void
smtp_session_starttls(struct smtp_session *s, char *args)
{
	if (*args != '\0') {
		smtp_session_error(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->flags & F_TLS) {
		smtp_session_error(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (s->listen->tls == NULL) {
		if (s->listen->l->flags & (F_LISTEN_TLS | F_LISTEN_TLS_REQUIRE))
			smtp_session_reply(s, "454 4.7.0 TLS not available");
		else
			smtp_session_error(s, "502 5.5.1 Error: command not "
			    "implemented");
		return;
	}
	smtp_session_reply(s, "220 2.0.0 Ready to start TLS");
	/*
	 * Nothing sent after STARTTLS in the same stream may count once
	 * TLS is up (CVE-2011-0411): the buffered rest goes away here, and
	 * nothing more is read until the handshake owns the socket.
	 */
	if (s->ilen > s->ipos)
		log_info("session=%016llx event=starttls-discard bytes=%zu",
		    (unsigned long long)s->id, s->ilen - s->ipos);
	s->ipos = s->ilen = 0;
	s->flags |= F_STARTTLS;
}

static void
smtp_session_mail(struct smtp_session *s, char *args)
{
	struct smtp_tx	*tx;
	const char	*key = NULL;
	char		*p = args, margs[SMTP_CMD_MAX_LONG];
	int		 utf8, r;

	if ((s->listen->l->flags & F_LISTEN_TLS_REQUIRE) &&
	    !(s->flags & F_TLS)) {
		smtp_session_error(s, "530 5.7.0 Must issue a STARTTLS "
		    "command first");
		return;
	}
	if (strncasecmp(p, "FROM:", 5) != 0) {
		smtp_session_error(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	p += 5;
	while (*p == ' ')
		p++;
	if ((tx = calloc(1, sizeof(*tx))) == NULL)
		fatal("calloc");
	tx->fd = -1;
	tx->headers = 1;
	tx->body = BODY_7BIT;
	tx->ret = RET_UNSET;
	TAILQ_INIT(&tx->rcpts);
	switch (smtp_parse_path(&p, tx->sender, sizeof(tx->sender), &utf8)) {
	case PATH_OK:
		if (*p == '\0' || *p == ' ')
			break;
		/* FALLTHROUGH */
	case PATH_SYNTAX:
		smtp_session_error(s, "501 5.1.7 Bad sender address syntax");
		free(tx);
		return;
	case PATH_TOOLONG:
		smtp_session_error(s, "553 5.1.7 Sender address too long");
		free(tx);
		return;
	}
	strlcpy(margs, p, sizeof(margs));	/* for milters */
	r = smtp_parse_mail_params(p, s->gen->conf->max_message_size, tx,
	    &key);
	if (smtp_session_params(s, r, key) == -1) {
		free(tx);
		return;
	}
	if (utf8 && !(tx->mflags & F_MSG_SMTPUTF8)) {
		smtp_session_error(s, "553 5.6.7 Non-ASCII address needs "
		    "SMTPUTF8");
		free(tx);
		return;
	}
	if (s->flags & F_TLS)
		tx->mflags |= F_MSG_TLS;
	s->tx = tx;
	s->state = STATE_MAIL;
	if (!smtp_filter_mail(s, margs))
		smtp_session_reply(s, "250 2.1.0 Ok");
}

/* The reply to what smtp_parse_*_params() found; -1 after a reply. */
static int
smtp_session_params(struct smtp_session *s, int r, const char *key)
{
	switch (r) {
	case PARAM_OK:
		return 0;
	case PARAM_UNKNOWN:
		smtp_session_error(s, "555 5.5.4 Unsupported parameter %s",
		    key);
		break;
	case PARAM_TWICE:
		smtp_session_error(s, "501 5.5.4 Duplicate parameter %s", key);
		break;
	case PARAM_BODY:
		smtp_session_error(s, "501 5.5.4 Unsupported BODY type");
		break;
	case PARAM_SIZE:
		smtp_session_reply(s, "552 5.3.4 Message size exceeds fixed "
		    "maximum message size");
		break;
	default:
		smtp_session_error(s, "501 5.5.4 Syntax error in parameters");
		break;
	}
	return -1;
}

static void
smtp_session_rcpt(struct smtp_session *s, char *args)
{
	struct smtp_tx		*tx = s->tx;
	struct smx_conf		*c = s->gen->conf;
	struct smtp_rcpt	*r;
	struct msg		 m;
	char			 addr[SMX_ADDRSZ], orcpt[SMTP_ORCPT_MAX + 1];
	char			 lookup[SMX_ADDRSZ], *p = args;
	char			 rargs[SMTP_CMD_MAX_LONG];
	const char		*key = NULL;
	uint32_t		 notify = 0;
	int			 utf8 = 0, pr;

	if (strncasecmp(p, "TO:", 3) != 0) {
		smtp_session_error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	p += 3;
	while (*p == ' ')
		p++;
	orcpt[0] = '\0';
	if (strncasecmp(p, "<postmaster>", 12) == 0) {
		/* RFC 5321 §4.5.1: accepted without a domain. */
		strlcpy(addr, "postmaster", sizeof(addr));
		p += 12;
	} else {
		switch (smtp_parse_path(&p, addr, sizeof(addr), &utf8)) {
		case PATH_OK:
			if (addr[0] != '\0' && (*p == '\0' || *p == ' '))
				break;
			/* FALLTHROUGH */
		case PATH_SYNTAX:
			smtp_session_error(s, "501 5.1.3 Bad recipient "
			    "address syntax");
			return;
		case PATH_TOOLONG:
			smtp_session_error(s, "553 5.1.3 Recipient address "
			    "too long");
			return;
		}
	}
	strlcpy(rargs, p, sizeof(rargs));	/* for milters */
	pr = smtp_parse_rcpt_params(p, &notify, orcpt, sizeof(orcpt), &key);
	if (smtp_session_params(s, pr, key) == -1)
		return;
	if (utf8 && !(tx->mflags & F_MSG_SMTPUTF8)) {
		smtp_session_error(s, "553 5.6.7 Non-ASCII address needs "
		    "SMTPUTF8");
		return;
	}
	if (c->max_recipients != 0 && tx->nrcpt >= c->max_recipients) {
		smtp_session_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	if (smtp_policy_rcpt(s, addr))
		return;
	if (strcmp(addr, "postmaster") == 0)
		smtp_session_postmaster(c, lookup, sizeof(lookup));
	else
		strlcpy(lookup, addr, sizeof(lookup));

	/* From here on a bare <postmaster> is its full address. */
	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("calloc");
	r->addr = str_dup(lookup);
	r->orcpt = str_dup(orcpt);
	r->args = str_dup(rargs);
	r->notify = notify;
	r->rclass = ROUTE_NONE;
	tx->pending = r;

	msg_init(&m, IMSG_LOOKUP_RCPT, 0);
	msg_add_u64(&m, s->id);
	msg_add_sockaddr(&m, (struct sockaddr *)&s->ss, s->sslen);
	msg_add_str(&m, tx->sender);
	msg_add_str(&m, lookup);
	proc_send(PROC_LOOKUP, &m);
	s->wait = WAIT_LOOKUP;
}

/*
 * A bare <postmaster> (RFC 5321 §4.5.1) is the postmaster of our domain
 * that the host name is in (hostname mx1.example.com, domain example.com
 * or .example.com: postmaster@example.com), else of the first domain
 * configured; with no domain at all, of the host name.
 */
static void
smtp_session_postmaster(const struct smx_conf *c, char *buf, size_t len)
{
	const struct smx_domain	*d = NULL;
	const char		*h;

	for (h = c->hostname; h != NULL && d == NULL;
	    h = (h = strchr(h, '.')) != NULL ? h + 1 : NULL)
		d = conf_domain(c, h);
	if (d == NULL)
		d = TAILQ_FIRST(&c->domains);
	h = d == NULL ? c->hostname : d->name[0] == '.' ? d->name + 1 :
	    d->name;
	if (snprintf(buf, len, "postmaster@%s", h) >= (int)len)
		fatalx("domain name too long");
}

/*
 * RFC 3461 §4.2: a recipient the directory rewrote goes on with the
 * address the client gave as its ORCPT, so that every DSN, ours or the
 * other system's, names the address the sender knows.  ASCII only: an
 * SMTPUTF8 address would need RFC 6533's utf-8 type.
 */
static void
smtp_session_orcpt(struct smtp_rcpt *r)
{
	char			 buf[SMTP_ORCPT_MAX + 1];
	const unsigned char	*p;
	size_t			 n;
	int			 w;

	n = strlcpy(buf, "rfc822;", sizeof(buf));
	for (p = (const unsigned char *)r->addr; *p != '\0'; p++) {
		if (*p > 0x7e)
			return;
		if (*p < 0x21 || *p == '+' || *p == '=')
			w = snprintf(buf + n, sizeof(buf) - n, "+%02X", *p);
		else
			w = snprintf(buf + n, sizeof(buf) - n, "%c", *p);
		if (w < 0 || (size_t)w >= sizeof(buf) - n)
			return;
		n += (size_t)w;
	}
	free(r->orcpt);
	r->orcpt = str_dup(buf);
}

void
smtp_session_rcpt_result(struct smtp_session *s, uint32_t verdict,
    uint32_t code, const char *text, uint32_t rclass, const char *rewritten,
    const char *dest, uint32_t tls)
{
	struct smtp_tx		*tx = s->tx;
	struct smtp_rcpt	*r;
	char			 clean[256], reply[264];

	if (s->wait != WAIT_LOOKUP || tx == NULL || tx->pending == NULL) {
		log_warnx("session=%016llx: unexpected lookup result",
		    (unsigned long long)s->id);
		return;
	}
	s->wait = WAIT_NONE;
	r = tx->pending;
	tx->pending = NULL;
	if (verdict == LOOKUP_ACCEPT && rclass < ROUTE_NONE) {
		if ((r->rewritten = strdup(rewritten[0] ? rewritten :
		    r->addr)) == NULL || (r->dest = strdup(dest)) == NULL)
			fatal("strdup");
		if (r->orcpt[0] == '\0' && strcmp(r->rewritten, r->addr) != 0)
			smtp_session_orcpt(r);
		r->rclass = rclass;
		r->tls = tls;
		if (smtp_filter_rcpt(s, r))
			return;		/* the milters' turn */
		smtp_session_rcpt_accept(s, r);
	} else {
		/* The lookup process is trusted, but the reply is ours. */
		if (code < 400 || code > 599)
			code = verdict == LOOKUP_TEMPFAIL ? 451 : 550;
		str_printable(clean, sizeof(clean), text);
		if (clean[0] == '\0')
			strlcpy(clean, code < 500 ? "4.3.0 Try again later" :
			    "5.1.1 Recipient rejected", sizeof(clean));
		/* Refused recipients are errors (directory harvesting). */
		if (code >= 500 && !(s->flags & F_TRUSTED))
			smtp_session_error(s, "%u %s", code, clean);
		else
			smtp_session_reply(s, "%u %s", code, clean);
		if (code >= 500)
			stat_add("recipients.rejected", 1);
		(void)snprintf(reply, sizeof(reply), "%u %s", code, clean);
		log_info("session=%016llx event=rcpt-rejected from=%s to=%s "
		    "reply=%s", (unsigned long long)s->id,
		    log_addr(tx->sender), log_addr(r->addr), log_text(reply));
		smtp_message_free_rcpt(r);
	}
	smtp_session_timer(s);
	smtp_session_run(s);
}

/* A recipient routed (and let through by the milters): 250. */
void
smtp_session_rcpt_accept(struct smtp_session *s, struct smtp_rcpt *r)
{
	struct smtp_tx	*tx = s->tx;

	TAILQ_INSERT_TAIL(&tx->rcpts, r, entry);
	tx->nrcpt++;
	s->state = STATE_RCPT;
	smtp_session_reply(s, "250 2.1.5 Ok");
	smtp_message_prepare(s);
}

static void
smtp_session_data(struct smtp_session *s, char *args)
{
	if (*args != '\0') {
		smtp_session_error(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (s->state == STATE_MAIL) {
		/* RFC 5321 §3.3: every RCPT was refused. */
		smtp_session_reply(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	smtp_message_create(s);
}

/* BDAT size [LAST] (RFC 3030). */
static void
smtp_session_bdat(struct smtp_session *s, char *args)
{
	const char	*errstr = NULL;
	char		*last;
	long long	 size = 0;

	if ((last = strchr(args, ' ')) != NULL) {
		*last++ = '\0';
		while (*last == ' ')
			last++;
	}
	if (*args == '\0' || strspn(args, "0123456789") != strlen(args) ||
	    strlen(args) > 18)
		errstr = "invalid";
	else
		size = strtonum(args, 0, LLONG_MAX, &errstr);
	if (errstr != NULL || (last != NULL && strcasecmp(last, "LAST") != 0)) {
		/*
		 * Where the chunk ends is unknown, so what follows cannot be
		 * taken for commands: answer and close.
		 */
		smtp_session_reply(s, "501 5.5.4 Syntax: BDAT size [LAST], "
		    "closing connection");
		smtp_session_close(s, "bdat-syntax");
		return;
	}
	s->chunk_left = s->chunk_size = (size_t)size;
	if (last != NULL)
		s->flags |= F_CHUNK_LAST;
	else
		s->flags &= ~F_CHUNK_LAST;
	switch (s->state) {
	case STATE_CONNECTED:
		smtp_message_chunk_skip(s, 1, "503 5.5.1 Error: send "
		    "HELO/EHLO first");
		break;
	case STATE_HELO:
		smtp_message_chunk_skip(s, 1, "503 5.5.1 Error: need MAIL "
		    "command");
		break;
	case STATE_MAIL:
		smtp_message_chunk_skip(s, 0, "554 5.5.1 Error: no valid "
		    "recipients");
		break;
	case STATE_RCPT:
		s->tx->bdat = 1;
		smtp_message_create(s);
		break;
	case STATE_CHUNKING:
		s->flags |= F_CHUNK;
		smtp_session_timer(s);
		break;
	default:
		fatalx("BDAT in state %d", s->state);
	}
}

static void
smtp_session_rset(struct smtp_session *s, char *args)
{
	if (*args != '\0') {
		smtp_session_error(s, "501 5.5.4 Syntax: RSET");
		return;
	}
	smtp_message_abort(s);
	if (s->state != STATE_CONNECTED)
		s->state = STATE_HELO;
	smtp_session_reply(s, "250 2.0.0 Ok");
}

static void
smtp_session_noop(struct smtp_session *s, char *args)
{
	(void)args;
	smtp_session_reply(s, "250 2.0.0 Ok");
}

static void
smtp_session_quit(struct smtp_session *s, char *args)
{
	(void)args;
	smtp_session_reply(s, "221 2.0.0 %s Bye", s->gen->conf->hostname);
	smtp_session_close(s, "quit");
}

static void
smtp_session_vrfy(struct smtp_session *s, char *args)
{
	if (*args == '\0') {
		smtp_session_error(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	/* RFC 5321 §3.5.3: no address harvesting here. */
	smtp_session_reply(s, "252 2.0.0 Cannot VRFY user, but will accept "
	    "message and attempt delivery");
}

static void
smtp_session_expn(struct smtp_session *s, char *args)
{
	(void)args;
	smtp_session_reply(s, "502 5.5.1 EXPN not supported");
}

static void
smtp_session_help(struct smtp_session *s, char *args)
{
	(void)args;
	smtp_session_reply(s, "214-2.0.0 splitmx SMTP gateway, commands:");
	smtp_session_reply(s, "214-2.0.0   EHLO HELO MAIL RCPT DATA BDAT RSET");
	smtp_session_reply(s, "214-2.0.0   NOOP QUIT VRFY HELP%s",
	    s->listen->tls != NULL && !(s->flags & F_TLS) ? " STARTTLS" : "");
	smtp_session_reply(s, "214 2.0.0 End of HELP info");
}
