/*
 * Delivery status notifications (RFC 3464, RFC 3461): a failed or
 * delayed report to the envelope sender, written as a new message with
 * the null sender straight into the spool, with the same commit as mail
 * from the smtp process.
 *
 * Format decisions:
 *	- multipart/report; report-type=delivery-status: a text/plain
 *	  explanation, the message/delivery-status, then the original:
 *	  message/rfc822 for a failure with RET=FULL or no RET,
 *	  text/rfc822-headers for RET=HDRS and for every delay warning.
 *	- Status: the enhanced code of the reply when it has one of the
 *	  right class; else 5.0.0 (failed), 4.4.7 (expired), 4.0.0
 *	  (delayed).  Diagnostic-Code: "smtp; " and the remote reply when
 *	  a server said it, "X-Splitmx; " and our own text otherwise.
 *	- Where it goes: the sender's domain routed as the routing rules
 *	  would route a recipient there, without the directory: a domain
 *	  of ours goes to its "forward to" host (type relay) or its
 *	  "local to" host (authoritative, shared), any other domain to the
 *	  outbound smarthost or by MX.  It asks for no DSN itself
 *	  (NOTIFY=NEVER), and since its sender is <> a DSN that fails is
 *	  dropped with a log line, never bounced.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "splitmx.h"
#include "queue.h"

#define BOUNCE_TEXT_MAX		900	/* of a reply in a header field */
#define BOUNCE_FOLD		76

static void	bounce_route(const char *, struct queue_rcpt *);
static void	bounce_date(char *, size_t, time_t);
static void	bounce_safe(char *, size_t, const char *);
static void	bounce_xtext(char *, size_t, const char *);
static void	bounce_field(FILE *, const char *, const char *);
static int	bounce_remote_reply(const char *);
static void	bounce_remote_mta(char *, size_t, const char *);
static int	bounce_copy(FILE *, int, uint64_t, int);
struct bounce_out;
static void	bounce_write_head(struct bounce_out *, const char *);
static void	bounce_write_text(struct bounce_out *);
static void	bounce_write_report(struct bounce_out *);
static void	bounce_write_rcpt(struct bounce_out *,
		    const struct queue_rcpt *);
static struct queue_envelope *bounce_envelope(const struct queue_envelope *,
		    enum bounce_action, const char *, uint64_t, size_t, time_t);

/*
 * RFC 3461 §4.1: no NOTIFY means FAILURE,DELAY; NEVER means none; a
 * success is reported only to who asked with SUCCESS.  Nobody is told
 * anything about mail from <>.
 */
int
bounce_wanted(const struct queue_envelope *e, const struct queue_rcpt *r,
    enum bounce_action action)
{
	if (*e->sender == '\0' || (r->notify & F_NOTIFY_NEVER))
		return 0;
	if (action == BOUNCE_RELAYED)
		return (r->notify & F_NOTIFY_SUCCESS) != 0;
	if (r->notify == 0)
		return 1;
	if (action == BOUNCE_FAILED)
		return (r->notify & F_NOTIFY_FAILURE) != 0;
	return (r->notify & F_NOTIFY_DELAY) != 0;
}

/* "x.y.z" with a class digit, one to three digits each after (RFC 3463). */
static size_t
bounce_enhanced(const char *s)
{
	size_t	 i = 0, n;
	int	 part;

	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return 0;
	i = 1;
	for (part = 0; part < 2; part++) {
		if (s[i++] != '.')
			return 0;
		for (n = 0; s[i] >= '0' && s[i] <= '9' && n < 4; n++)
			i++;
		if (n == 0 || n > 3)
			return 0;
	}
	if (s[i] != '\0' && s[i] != ' ')
		return 0;
	return i;
}

/* A remote server's reply starts with its three-digit code. */
static int
bounce_remote_reply(const char *s)
{
	return s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' &&
	    s[2] >= '0' && s[2] <= '9' && (s[3] == ' ' || s[3] == '-' ||
	    s[3] == '\0');
}

void
bounce_status(const char *reply, enum bounce_action action, int expired,
    char *buf, size_t len)
{
	const char	*p = reply;
	size_t		 n;
	char		 want;

	if (bounce_remote_reply(p))
		p += p[3] == '\0' ? 3 : 4;
	want = action == BOUNCE_RELAYED ? '2' :
	    action == BOUNCE_DELAYED || expired ? '4' : '5';
	if ((n = bounce_enhanced(p)) > 0 && (p[0] == want ||
	    (expired && p[0] == '5'))) {
		if (n >= len)
			n = len - 1;
		memcpy(buf, p, n);
		buf[n] = '\0';
		return;
	}
	strlcpy(buf, action == BOUNCE_RELAYED ? "2.0.0" :
	    action == BOUNCE_DELAYED ? "4.0.0" : expired ? "4.4.7" : "5.0.0",
	    len);
}

/*
 * The sender's domain, routed like a recipient there (see the top):
 * class, destination and the destination's TLS policy, which the
 * envelope keeps and the scheduler honours as it does the lookup
 * process' routes.
 */
static void
bounce_route(const char *sender, struct queue_rcpt *r)
{
	const struct smx_conf	*c = env->conf;
	const struct smx_domain	*d;
	const struct smx_host	*h;
	const char		*at;
	char			 dest[SMX_HOSTSZ + 16];

	dest[0] = '\0';
	r->class = ROUTE_OUTBOUND;
	r->tls = c->outbound.set ? c->outbound.tls : TLSP_OPPORTUNISTIC;
	if (c->outbound.set && c->outbound.name[0] != '\0')
		host_str(&c->outbound, dest, sizeof(dest));
	if ((at = strrchr(sender, '@')) != NULL &&
	    (d = conf_domain(c, at + 1)) != NULL) {
		h = d->type == DOMAIN_RELAY ? &d->forward : &d->local;
		if (!h->set || h->name[0] == '\0')
			h = d->type == DOMAIN_RELAY ? &d->local : &d->forward;
		if (h->set && h->name[0] != '\0') {
			r->class = h == &d->forward ? ROUTE_FORWARD :
			    ROUTE_LOCAL;
			r->tls = h->tls;
			host_str(h, dest, sizeof(dest));
		}
	}
	r->dest = str_dup(dest);
}

/* RFC 5322 date-time. */
static void
bounce_date(char *buf, size_t len, time_t t)
{
	struct tm	 tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		strlcpy(buf, "Thu, 01 Jan 1970 00:00:00 +0000", len);
}

/* Text for a header or the report: no control characters. */
static void
bounce_safe(char *buf, size_t len, const char *s)
{
	size_t	 i;

	for (i = 0; s[i] != '\0' && i + 1 < len; i++)
		buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' :
		    s[i];
	buf[i] = '\0';
}

static int
bounce_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* xtext (RFC 3461 §4) decoded, then made safe; garbage is kept as is. */
static void
bounce_xtext(char *buf, size_t len, const char *s)
{
	char	 tmp[1024];
	size_t	 i = 0;
	int	 hi, lo;

	for (; *s != '\0' && i + 1 < sizeof(tmp); s++) {
		if (*s == '+' && (hi = bounce_hex(s[1])) != -1 &&
		    (lo = bounce_hex(s[2])) != -1 && (hi | lo) != 0) {
			tmp[i++] = (char)(hi << 4 | lo);
			s += 2;
		} else
			tmp[i++] = *s;
	}
	tmp[i] = '\0';
	bounce_safe(buf, len, tmp);
}

/*
 * "Name: value", folded at spaces near BOUNCE_FOLD columns so that no
 * line comes near the limit of 998 octets.
 */
static void
bounce_field(FILE *f, const char *name, const char *value)
{
	char		 v[BOUNCE_TEXT_MAX + 1];
	const char	*p, *sp;
	size_t		 col, w;

	bounce_safe(v, sizeof(v), value);
	fputs(name, f);
	col = strlen(name);
	for (p = v; *p != '\0'; p = sp) {
		if ((sp = strchr(p + 1, ' ')) == NULL)
			sp = p + strlen(p);
		w = (size_t)(sp - p);
		if (col + w > BOUNCE_FOLD && *p == ' ' && col > strlen(name)) {
			fputs("\r\n", f);
			col = 0;
		}
		fwrite(p, 1, w, f);
		col += w;
	}
	fputs("\r\n", f);
}

/* "mx.example [192.0.2.1]" -> "mx.example". */
static void
bounce_remote_mta(char *buf, size_t len, const char *remote)
{
	const char	*sp;
	size_t		 n;

	if ((sp = strstr(remote, " [")) == NULL)
		sp = remote + strlen(remote);
	n = (size_t)(sp - remote);
	if (n >= len)
		n = len - 1;
	memcpy(buf, remote, n);
	buf[n] = '\0';
}

/*
 * The original message, all of it or up to the empty line that ends its
 * header.  Its lines already end in CRLF.  The message is the first size
 * bytes of its file; its envelope follows (queue_fs.c).
 */
static int
bounce_copy(FILE *f, int msgfd, uint64_t size, int headers)
{
	FILE	*in;
	char	*line = NULL, buf[65536];
	size_t	 cap = 0, n;
	ssize_t	 len;
	uint64_t left = size;
	int	 fd, ret = 0;

	if (lseek(msgfd, 0, SEEK_SET) == -1 || (fd = dup(msgfd)) == -1)
		return -1;
	if ((in = fdopen(fd, "r")) == NULL) {
		close(fd);
		return -1;
	}
	if (headers) {
		while (left > 0 && (len = getline(&line, &cap, in)) > 0) {
			if ((uint64_t)len > left)
				len = (ssize_t)left;
			left -= (uint64_t)len;
			if ((len == 2 && memcmp(line, "\r\n", 2) == 0) ||
			    (len == 1 && line[0] == '\n'))
				break;
			fwrite(line, 1, (size_t)len, f);
			if (line[len - 1] != '\n')
				fputs("\r\n", f);
		}
		free(line);
	} else {
		while (left > 0 && (n = fread(buf, 1, left < sizeof(buf) ?
		    (size_t)left : sizeof(buf), in)) > 0) {
			fwrite(buf, 1, n, f);
			left -= n;
		}
	}
	if (ferror(in))
		ret = -1;
	fclose(in);
	return ret;
}

/* One DSN being written: what bounce_write() was given, and its form. */
struct bounce_out {
	FILE				*f;
	const struct queue_envelope	*e;
	enum bounce_action		 action;
	const uint32_t			*rcpts;
	size_t				 n;
	const char			*remote;
	char				 host[SMX_HOSTSZ];	/* ours */
	char				 boundary[QUEUE_IDSZ + SMX_HOSTSZ + 8];
	int				 headers;	/* not the whole */
	time_t				 now;
};

/* The DSN's own header, up to the MIME preamble. */
static void
bounce_write_head(struct bounce_out *o, const char *dsnid)
{
	const struct queue_envelope	*e = o->e;
	FILE				*f = o->f;
	const char			*cte;
	char				 date[64], addr[SMX_ADDRSZ];

	cte = e->body == BODY_BINARYMIME && !o->headers ? "binary" :
	    e->body != BODY_7BIT || (e->flags & F_MSG_SMTPUTF8) ? "8bit" :
	    "7bit";
	bounce_date(date, sizeof(date), o->now);
	bounce_safe(addr, sizeof(addr), e->sender);
	fprintf(f, "Date: %s\r\n", date);
	fprintf(f, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	    o->host);
	fprintf(f, "To: <%s>\r\n", addr);
	fprintf(f, "Subject: %s\r\n", o->action == BOUNCE_FAILED ?
	    "Undelivered Mail Returned to Sender" :
	    o->action == BOUNCE_DELAYED ?
	    "Delayed Mail (still being retried)" :
	    "Relayed Mail (no further notice will follow)");
	fprintf(f, "Message-ID: <%s@%s>\r\n", dsnid, o->host);
	fprintf(f, "Auto-Submitted: auto-replied\r\n");
	fprintf(f, "MIME-Version: 1.0\r\n");
	fprintf(f, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n",
	    o->boundary);
	fprintf(f, "Content-Transfer-Encoding: %s\r\n\r\n", cte);
	fprintf(f, "This is a MIME-encapsulated message.\r\n\r\n");
}

/* The part for people: what happened, one line per recipient. */
static void
bounce_write_text(struct bounce_out *o)
{
	const struct smx_conf		*c = env->conf;
	const struct queue_envelope	*e = o->e;
	const struct queue_rcpt		*r;
	FILE				*f = o->f;
	char				 addr[SMX_ADDRSZ], mta[SMX_HOSTSZ];
	char				 text[BOUNCE_TEXT_MAX + 64];
	char				 a[64], b[64];
	size_t				 i;

	fprintf(f, "--%s\r\n", o->boundary);
	fprintf(f, "Content-Description: Notification\r\n");
	fprintf(f, "Content-Type: text/plain; charset=%s\r\n\r\n",
	    (e->flags & F_MSG_SMTPUTF8) ? "utf-8" : "us-ascii");
	fprintf(f, "This is the mail system at host %s.\r\n\r\n", o->host);
	if (o->action == BOUNCE_FAILED)
		fprintf(f, "Your message could not be delivered to one or "
		    "more recipients.\r\n%s is attached below.\r\n\r\n",
		    o->headers ? "Its header" : "It");
	else if (o->action == BOUNCE_RELAYED)
		fprintf(f, "Your message was handed over to the next mail "
		    "server for the recipients\r\nbelow.  That server does "
		    "not send delivery notices, so this is the last\r\n"
		    "word you will get about it from the mail system.\r\n"
		    "Its header is attached below.\r\n\r\n");
	else {
		duration_str(o->now - e->arrival, a, sizeof(a));
		duration_str(c->expire, b, sizeof(b));
		fprintf(f, "Your message could not be delivered for %s to "
		    "the recipients below.\r\nIt is still being retried "
		    "until it is %s old; you need not send it again.\r\n"
		    "Its header is attached below.\r\n\r\n", a, b);
	}
	for (i = 0; i < o->n; i++) {
		r = &e->rcpts[o->rcpts[i]];
		bounce_safe(addr, sizeof(addr), r->rewritten);
		bounce_safe(text, sizeof(text), r->last_error);
		if (bounce_remote_reply(r->last_error) && *o->remote != '\0') {
			bounce_safe(mta, sizeof(mta), o->remote);
			fprintf(f, "<%s>: %s %s said: %s\r\n", addr,
			    o->action == BOUNCE_RELAYED ? "relayed to host" :
			    "host", mta, text);
		} else
			fprintf(f, "<%s>: %s\r\n", addr, *text ? text :
			    "not yet delivered");
		if (o->action == BOUNCE_FAILED && r->fail == FAIL_EXPIRED)
			fprintf(f, "    (delivery time expired after %u "
			    "attempt%s)\r\n", r->tries, r->tries == 1 ? "" :
			    "s");
	}
	fprintf(f, "\r\nFor further assistance, please contact the "
	    "postmaster of %s\r\nand include this notification.\r\n\r\n",
	    o->host);
}

/* The part for programs: message/delivery-status (RFC 3464). */
static void
bounce_write_report(struct bounce_out *o)
{
	const struct queue_envelope	*e = o->e;
	FILE				*f = o->f;
	char				 date[64], text[BOUNCE_TEXT_MAX + 64];
	size_t				 i;

	fprintf(f, "--%s\r\n", o->boundary);
	fprintf(f, "Content-Description: Delivery report\r\n");
	fprintf(f, "Content-Type: message/delivery-status\r\n\r\n");
	fprintf(f, "Reporting-MTA: dns; %s\r\n", o->host);
	fprintf(f, "X-Splitmx-Queue-ID: %s\r\n", e->id);
	if (*e->envid != '\0') {
		bounce_xtext(text, sizeof(text), e->envid);
		fprintf(f, "Original-Envelope-Id: %s\r\n", text);
	}
	bounce_date(date, sizeof(date), e->arrival);
	fprintf(f, "Arrival-Date: %s\r\n", date);
	for (i = 0; i < o->n; i++)
		bounce_write_rcpt(o, &e->rcpts[o->rcpts[i]]);
	fputs("\r\n", f);
}

/* One recipient's fields in the report. */
static void
bounce_write_rcpt(struct bounce_out *o, const struct queue_rcpt *r)
{
	FILE		*f = o->f;
	const char	*semi;
	char		 addr[SMX_ADDRSZ], text[BOUNCE_TEXT_MAX + 64];
	char		 status[16], mta[SMX_HOSTSZ], a[64], date[64];
	int		 expired;

	expired = o->action == BOUNCE_FAILED && r->fail == FAIL_EXPIRED;
	fputs("\r\n", f);
	bounce_safe(addr, sizeof(addr), r->rewritten);
	fprintf(f, "Final-Recipient: rfc822; %s\r\n", addr);
	if ((semi = strchr(r->orcpt, ';')) != NULL) {
		bounce_xtext(text, sizeof(text), semi + 1);
		bounce_safe(a, sizeof(a), r->orcpt);
		if ((size_t)(semi - r->orcpt) < sizeof(a))
			a[semi - r->orcpt] = '\0';
		fprintf(f, "Original-Recipient: %s; %s\r\n", a, text);
	}
	fprintf(f, "Action: %s\r\n", o->action == BOUNCE_FAILED ?
	    "failed" : o->action == BOUNCE_DELAYED ? "delayed" :
	    "relayed");
	bounce_status(r->last_error, o->action, expired, status,
	    sizeof(status));
	fprintf(f, "Status: %s\r\n", status);
	if (bounce_remote_reply(r->last_error)) {
		if (*o->remote != '\0') {
			bounce_remote_mta(text, sizeof(text), o->remote);
			bounce_safe(mta, sizeof(mta), text);
			fprintf(f, "Remote-MTA: dns; %s\r\n", mta);
		}
		bounce_field(f, "Diagnostic-Code: smtp; ", r->last_error);
	} else if (*r->last_error != '\0')
		bounce_field(f, "Diagnostic-Code: X-Splitmx; ",
		    r->last_error);
	if (r->last_try != 0) {
		bounce_date(date, sizeof(date), r->last_try);
		fprintf(f, "Last-Attempt-Date: %s\r\n", date);
	}
	if (o->action == BOUNCE_DELAYED) {
		bounce_date(date, sizeof(date),
		    o->e->arrival + env->conf->expire);
		fprintf(f, "Will-Retry-Until: %s\r\n", date);
	}
}

/*
 * The DSN's text.  Every line ends in CRLF, as the relay sends them;
 * the boundary holds the new id, which no message holds by chance.
 */
int
bounce_write(int fd, int msgfd, const struct queue_envelope *e,
    enum bounce_action action, const uint32_t *rcpts, size_t n,
    const char *remote, const char *dsnid, time_t now)
{
	struct bounce_out	 o;
	int			 wfd, ret;

	memset(&o, 0, sizeof(o));
	o.e = e;
	o.action = action;
	o.rcpts = rcpts;
	o.n = n;
	o.remote = remote;
	o.now = now;
	/* RFC 3461 §4.3: only a failure may return the whole message. */
	o.headers = action != BOUNCE_FAILED || e->ret == RET_HDRS;
	bounce_safe(o.host, sizeof(o.host), env->conf->hostname);
	if (snprintf(o.boundary, sizeof(o.boundary), "%s/%s", dsnid,
	    o.host) >= (int)sizeof(o.boundary))
		strlcpy(o.boundary, dsnid, sizeof(o.boundary));
	if ((wfd = dup(fd)) == -1)
		return -1;
	if ((o.f = fdopen(wfd, "w")) == NULL) {
		close(wfd);
		return -1;
	}
	bounce_write_head(&o, dsnid);
	bounce_write_text(&o);
	bounce_write_report(&o);

	/* The message itself, or its header. */
	fprintf(o.f, "--%s\r\n", o.boundary);
	fprintf(o.f, "Content-Description: %s\r\n", o.headers ?
	    "Message header" : action == BOUNCE_FAILED ?
	    "Undelivered message" : "Delayed message");
	fprintf(o.f, "Content-Type: %s\r\n\r\n", o.headers ?
	    "text/rfc822-headers" : "message/rfc822");
	ret = bounce_copy(o.f, msgfd, e->size, o.headers);
	fprintf(o.f, "\r\n--%s--\r\n", o.boundary);
	if (ferror(o.f))
		ret = -1;
	if (fclose(o.f) != 0)
		ret = -1;
	return ret;
}

/*
 * The DSN's envelope: from <>, to the sender, routed as a recipient
 * in the sender's domain would be (see the top), asking for no DSN.
 */
static struct queue_envelope *
bounce_envelope(const struct queue_envelope *e, enum bounce_action action,
    const char *id, uint64_t size, size_t nwant, time_t now)
{
	struct queue_envelope	*d;
	struct queue_rcpt	*r;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	if ((d->rcpts = calloc(1, sizeof(*d->rcpts))) == NULL) {
		free(d);
		return NULL;
	}
	strlcpy(d->id, id, sizeof(d->id));
	d->arrival = now;
	d->size = size;
	d->sender = str_dup("");
	d->helo = str_dup(env->conf->hostname);
	d->client = str_dup("");
	d->client_host = str_dup("");
	d->envid = str_dup("");
	d->body = (action != BOUNCE_FAILED || e->ret == RET_HDRS) &&
	    e->body == BODY_BINARYMIME ? BODY_8BITMIME : e->body;
	d->flags = e->flags & F_MSG_SMTPUTF8;
	d->ret = RET_UNSET;
	d->nrcpt = 1;
	r = &d->rcpts[0];
	bounce_route(e->sender, r);
	r->rcpt = str_dup(e->sender);
	r->rewritten = str_dup(e->sender);
	r->orcpt = str_dup("");
	r->last_error = str_dup("");
	r->notify = F_NOTIFY_NEVER;
	r->state = STATE_QUEUED;
	r->next_try = now;
	sched_event(d, "created: %s DSN for %s (%zu recipient%s)",
	    action == BOUNCE_FAILED ? "failure" : action == BOUNCE_DELAYED ?
	    "delay" : "relay", e->id, nwant,
	    nwant == 1 ? "" : "s");
	sched_event(d, "routed <%s> as %s to %s%s%s%s", r->rcpt,
	    queue_fs_class_name(r->class), *r->dest ? r->dest :
	    "the MX of its domain", QUEUE_TLS_STRICT(r) ? " (tls " : "",
	    QUEUE_TLS_STRICT(r) ? queue_fs_tls_name(r->tls) : "",
	    QUEUE_TLS_STRICT(r) ? ")" : "");
	return d;
}

int
bounce_create(struct queue_msg *qm, enum bounce_action action,
    const uint32_t *rcpts, size_t n, const char *remote, char *dsnid)
{
	struct queue_envelope	*e = qm->env, *d = NULL;
	struct queue_fs_commit	 fc;
	struct stat		 st;
	uint32_t		*want;
	char			 id[QUEUE_IDSZ];
	size_t			 nwant = 0, i;
	time_t			 now = time(NULL);
	int			 fd = -1, msgfd = -1, saved, created = 0;

	if ((want = calloc(n + 1, sizeof(*want))) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (bounce_wanted(e, &e->rcpts[rcpts[i]], action))
			want[nwant++] = rcpts[i];
	if (nwant == 0) {
		free(want);
		return 0;
	}
	memset(&fc, 0, sizeof(fc));
	fc.msgfd = -1;
	if ((fd = queue_msg_create(id, sizeof(id))) == -1)
		goto fail;
	created = 1;
	if ((msgfd = queue_fs_message_open(&queue_spool, e->id)) == -1 ||
	    bounce_write(fd, msgfd, e, action, want, nwant, remote, id,
	    now) == -1 || fstat(fd, &st) == -1)
		goto fail;
	close(msgfd);
	msgfd = -1;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;

	if ((d = bounce_envelope(e, action, id, (uint64_t)st.st_size, nwant,
	    now)) == NULL)
		goto fail;

	if (queue_fs_commit_prepare(&queue_spool, d, &fc) == -1)
		goto fail;
	queue_fs_commit_writeback(&fc);
	if (queue_fs_commit_sync(&queue_spool, &fc) == -1 ||
	    queue_fs_commit_publish(&queue_spool, &fc) == -1 ||
	    queue_fs_sync(&queue_spool) == -1)
		goto fail;
	queue_fs_commit_done(&fc);
	free(want);
	log_info("id=%s event=dsn for=%s action=%s to=<%s> recipients=%zu "
	    "size=%llu", id, e->id, action == BOUNCE_FAILED ? "failed" :
	    action == BOUNCE_DELAYED ? "delayed" : "relayed", e->sender, nwant,
	    (unsigned long long)d->size);
	strlcpy(dsnid, id, QUEUE_IDSZ);
	sched_add(queue_msg_add(d), 0);
	return 1;

 fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	if (msgfd != -1)
		close(msgfd);
	if (fc.published)
		queue_fs_commit_abort(&queue_spool, &fc);
	else {
		queue_fs_commit_done(&fc);
		if (created && queue_fs_incoming_remove(&queue_spool, id) == -1)
			log_warn("id=%s event=dsn-cleanup-failed", id);
	}
	if (d != NULL) {
		queue_fs_envelope_free(d);
		free(d);
	}
	free(want);
	errno = saved;
	return -1;
}
