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
 *	  a server said it, "X-Splitmx; " and our own text otherwise; the
 *	  whole reply, folded (RFC 5322 §2.2.3).
 *	- Lines: none over 998 octets; the text for people is wrapped at
 *	  78 columns.  A reply is long (a server may say 1000 octets in
 *	  many lines), so nothing that holds one is written unfolded.
 *	- Encodings: every part declares what it holds.  The report is
 *	  US-ASCII (an SMTPUTF8 address in it is RFC 6533's utf-8 type,
 *	  \x{HEX} for each non-ASCII character), the text is us-ascii, or
 *	  utf-8 and 8bit for SMTPUTF8 mail, and the original is 7bit, 8bit
 *	  or binary as its octets are, whatever its BODY said; the DSN as a
 *	  whole is sent with the BODY its parts need.
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "splitmx.h"
#include "queue.h"

#define BOUNCE_TEXT_MAX		2048	/* of a reply we report */
#define BOUNCE_FOLD		78	/* columns: text for people, folding */
#define BOUNCE_LINE_MAX		998	/* octets, RFC 5322 §2.1.1 */

/* Content-Transfer-Encoding, from the least to the most demanding. */
enum bounce_cte {
	CTE_7BIT,
	CTE_8BIT,
	CTE_BINARY
};
static const char *const bounce_cte_names[] = { "7bit", "8bit", "binary" };

static void	bounce_route(const char *, struct queue_rcpt *);
static void	bounce_date(char *, size_t, time_t);
static void	bounce_safe(char *, size_t, const char *, int);
static void	bounce_xtext(char *, size_t, const char *);
static void	bounce_addr(char *, size_t, const char *);
static void	bounce_field(FILE *, const char *, const char *);
static void	bounce_wrap(FILE *, size_t, size_t, const char *);
static void	bounce_para(FILE *, size_t, size_t, const char *, ...)
		    __attribute__((__format__ (printf, 4, 5)));
static int	bounce_remote_reply(const char *);
static void	bounce_remote_mta(char *, size_t, const char *);
static int	bounce_copy(FILE *, int, uint64_t, int, int *);
struct bounce_out;
static void	bounce_write_head(struct bounce_out *, const char *);
static void	bounce_write_text(struct bounce_out *);
static void	bounce_write_report(struct bounce_out *);
static void	bounce_write_rcpt(struct bounce_out *,
		    const struct queue_rcpt *);
static struct queue_envelope *bounce_envelope(const struct queue_envelope *,
		    enum bounce_action, const char *, uint64_t, size_t, time_t,
		    uint32_t);

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

/*
 * Text for a header or the DSN: no control characters, and with ascii
 * no 8-bit octet either.
 */
static void
bounce_safe(char *buf, size_t len, const char *s, int ascii)
{
	unsigned char	 c;
	size_t		 i;

	for (i = 0; s[i] != '\0' && i + 1 < len; i++) {
		c = (unsigned char)s[i];
		buf[i] = c < 0x20 || c == 0x7f || (ascii && c > 0x7f) ? '?' :
		    (char)c;
	}
	buf[i] = '\0';
}

/* xtext (RFC 3461 §4) decoded, then made safe; garbage is kept as is. */
static void
bounce_xtext(char *buf, size_t len, const char *s)
{
	char	 tmp[1024];
	size_t	 i = 0;
	int	 hi, lo;

	for (; *s != '\0' && i + 1 < sizeof(tmp); s++) {
		if (*s == '+' && (hi = hex_value(s[1])) != -1 &&
		    (lo = hex_value(s[2])) != -1 && (hi | lo) != 0) {
			tmp[i++] = (char)(hi << 4 | lo);
			s += 2;
		} else
			tmp[i++] = *s;
	}
	tmp[i] = '\0';
	bounce_safe(buf, len, tmp, 1);
}

/*
 * An address for the report: "rfc822; a@b" when it is ASCII, else RFC
 * 6533's "utf-8; " with each non-ASCII character and '\', '+' and '='
 * written \x{HEX}: the report stays US-ASCII.  Malformed UTF-8 is '?'.
 */
static void
bounce_addr(char *buf, size_t len, const char *addr)
{
	const unsigned char	*p = (const unsigned char *)addr;
	uint32_t		 cp;
	size_t			 n, i, o;
	int			 w;

	for (n = 0; p[n] != '\0' && p[n] < 0x80; n++)
		;
	if (p[n] == '\0') {
		(void)snprintf(buf, len, "rfc822; %s", addr);
		bounce_safe(buf, len, buf, 1);
		return;
	}
	o = strlcpy(buf, "utf-8; ", len);
	while (*p != '\0' && o + 1 < len) {
		if (*p >= 0x21 && *p <= 0x7e && *p != '\\' && *p != '+' &&
		    *p != '=') {
			buf[o++] = (char)*p++;
			continue;
		}
		n = *p >= 0xf0 && *p <= 0xf4 ? 4 : *p >= 0xe0 && *p <= 0xef ?
		    3 : *p >= 0xc2 && *p <= 0xdf ? 2 : *p < 0x80 ? 1 : 0;
		cp = n == 1 ? *p : n == 2 ? *p & 0x1f : n == 3 ? *p & 0x0f :
		    *p & 0x07;
		for (i = 1; i < n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				break;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if (n == 0 || i < n || cp < 0x20 || cp == 0x7f) {
			buf[o++] = '?';
			p++;
			continue;
		}
		w = snprintf(buf + o, len - o, "\\x{%X}", cp);
		if (w < 0 || (size_t)w >= len - o)
			break;
		o += (size_t)w;
		p += n;
	}
	buf[o] = '\0';
}

/*
 * "Name: value" in the report, folded (RFC 5322 §2.2.3) before a space
 * where a line would pass BOUNCE_FOLD columns, so that unfolding gives
 * the value back.  A word longer than a line can be, which no reply of
 * a server holds (relay.h), is broken at BOUNCE_LINE_MAX with a fold
 * of its own.
 */
static void
bounce_field(FILE *f, const char *name, const char *value)
{
	char		 v[BOUNCE_TEXT_MAX + 1];
	const char	*p, *w;
	size_t		 col, n, k;

	bounce_safe(v, sizeof(v), value, 1);
	/* A line of the fold may not be white space only. */
	n = strlen(v);
	while (n > 0 && v[n - 1] == ' ')
		v[--n] = '\0';
	fputs(name, f);
	col = strlen(name);
	for (p = v; *p != '\0'; p = w) {
		/* The next word, with the spaces before it. */
		for (w = p; *w == ' '; w++)
			;
		for (; *w != '\0' && *w != ' '; w++)
			;
		n = (size_t)(w - p);
		if (*p == ' ' && col + n > BOUNCE_FOLD) {
			fputs("\r\n", f);
			col = 0;
		}
		while (col + n > BOUNCE_LINE_MAX) {
			k = BOUNCE_LINE_MAX - col;
			fwrite(p, 1, k, f);
			fputs("\r\n ", f);
			col = 1;
			p += k;
			n -= k;
		}
		fwrite(p, 1, n, f);
		col += n;
	}
	fputs("\r\n", f);
}

/*
 * Text for people: words wrapped at BOUNCE_FOLD columns, the first line
 * indented by first spaces, the others by more.  A word too long for a
 * line has one of its own, broken at BOUNCE_LINE_MAX octets.
 */
static void
bounce_wrap(FILE *f, size_t first, size_t more, const char *text)
{
	const char	*p = text, *w;
	size_t		 col, n, k;
	int		 empty = 1;

	fprintf(f, "%*s", (int)first, "");
	col = first;
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		for (w = p; *w != '\0' && *w != ' '; w++)
			;
		n = (size_t)(w - p);
		if (!empty && col + 1 + n > BOUNCE_FOLD) {
			fprintf(f, "\r\n%*s", (int)more, "");
			col = more;
			empty = 1;
		}
		if (!empty) {
			fputc(' ', f);
			col++;
		}
		while (col + n > BOUNCE_LINE_MAX) {
			k = BOUNCE_LINE_MAX - col;
			fwrite(p, 1, k, f);
			fprintf(f, "\r\n%*s", (int)more, "");
			col = more;
			p += k;
			n -= k;
		}
		fwrite(p, 1, n, f);
		col += n;
		empty = 0;
		p = w;
	}
	fputs("\r\n", f);
}

static void
bounce_para(FILE *f, size_t first, size_t more, const char *fmt, ...)
{
	va_list	 ap;
	char	*text;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) == -1)
		fatal("vasprintf");
	va_end(ap);
	bounce_wrap(f, first, more, text);
	free(text);
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
 * bytes of its file; its envelope follows (queue_fs.c).  With f NULL
 * nothing is written: *eight says whether it has 8-bit octets, for the
 * encoding its part declares.
 */
static int
bounce_copy(FILE *f, int msgfd, uint64_t size, int headers, int *eight)
{
	FILE	*in;
	char	*line = NULL, buf[65536];
	size_t	 cap = 0, n, i;
	ssize_t	 len;
	uint64_t left = size;
	int	 fd, ret = 0;

	*eight = 0;
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
			for (i = 0; i < (size_t)len && !*eight; i++)
				*eight = (unsigned char)line[i] > 0x7f;
			if (f == NULL)
				continue;
			fwrite(line, 1, (size_t)len, f);
			if (line[len - 1] != '\n')
				fputs("\r\n", f);
		}
		free(line);
	} else {
		while (left > 0 && (n = fread(buf, 1, left < sizeof(buf) ?
		    (size_t)left : sizeof(buf), in)) > 0) {
			for (i = 0; i < n && !*eight; i++)
				*eight = (unsigned char)buf[i] > 0x7f;
			if (f != NULL)
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
	int				 utf8;		/* SMTPUTF8 mail */
	enum bounce_cte			 text_cte;	/* of each part */
	enum bounce_cte			 orig_cte;
	enum bounce_cte			 cte;		/* of the whole */
	time_t				 now;
};

/* The DSN's own header, up to the MIME preamble. */
static void
bounce_write_head(struct bounce_out *o, const char *dsnid)
{
	const struct queue_envelope	*e = o->e;
	FILE				*f = o->f;
	char				 date[64], addr[SMX_ADDRSZ];

	bounce_date(date, sizeof(date), o->now);
	bounce_safe(addr, sizeof(addr), e->sender, !o->utf8);
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
	fprintf(f, "Content-Transfer-Encoding: %s\r\n\r\n",
	    bounce_cte_names[o->cte]);
	fprintf(f, "This is a MIME-encapsulated message.\r\n\r\n");
}

/* The part for people: what happened, one paragraph per recipient. */
static void
bounce_write_text(struct bounce_out *o)
{
	const struct smx_conf		*c = env->conf;
	const struct queue_envelope	*e = o->e;
	const struct queue_rcpt		*r;
	FILE				*f = o->f;
	char				 addr[SMX_ADDRSZ], mta[SMX_HOSTSZ];
	char				 text[BOUNCE_TEXT_MAX + 1];
	char				 a[64], b[64];
	size_t				 i;

	fprintf(f, "--%s\r\n", o->boundary);
	fprintf(f, "Content-Description: Notification\r\n");
	fprintf(f, "Content-Type: text/plain; charset=%s\r\n",
	    o->utf8 ? "utf-8" : "us-ascii");
	fprintf(f, "Content-Transfer-Encoding: %s\r\n\r\n",
	    bounce_cte_names[o->text_cte]);
	bounce_para(f, 0, 0, "This is the mail system at host %s.", o->host);
	fputs("\r\n", f);
	if (o->action == BOUNCE_FAILED)
		bounce_para(f, 0, 0, "Your message could not be delivered to "
		    "one or more recipients.  %s is attached below.",
		    o->headers ? "Its header" : "It");
	else if (o->action == BOUNCE_RELAYED)
		bounce_para(f, 0, 0, "Your message was handed over to the "
		    "next mail server for the recipients below.  That server "
		    "does not send delivery notices, so this is the last word "
		    "you will get about it from the mail system.  Its header "
		    "is attached below.");
	else {
		/* A clock set back must not make it "-100s". */
		duration_str(o->now > e->arrival ? o->now - e->arrival : 0,
		    a, sizeof(a));
		duration_str(c->expire, b, sizeof(b));
		bounce_para(f, 0, 0, "Your message could not be delivered for "
		    "%s to the recipients below.  It is still being retried "
		    "until it is %s old; you need not send it again.  Its "
		    "header is attached below.", a, b);
	}
	fputs("\r\n", f);
	for (i = 0; i < o->n; i++) {
		r = &e->rcpts[o->rcpts[i]];
		bounce_safe(addr, sizeof(addr), r->rewritten, !o->utf8);
		bounce_safe(text, sizeof(text), r->last_error, !o->utf8);
		if (bounce_remote_reply(r->last_error) && *o->remote != '\0') {
			bounce_safe(mta, sizeof(mta), o->remote, 1);
			bounce_para(f, 0, 4, "<%s>: %s %s said: %s", addr,
			    o->action == BOUNCE_RELAYED ? "relayed to host" :
			    "host", mta, text);
		} else
			bounce_para(f, 0, 4, "<%s>: %s", addr, *text ? text :
			    "not yet delivered");
		if (o->action == BOUNCE_FAILED && r->fail == FAIL_EXPIRED)
			bounce_para(f, 4, 4, "(delivery time expired after %u "
			    "attempt%s)", r->tries, r->tries == 1 ? "" : "s");
	}
	fputs("\r\n", f);
	bounce_para(f, 0, 0, "For further assistance, please contact the "
	    "postmaster of %s and include this notification.", o->host);
	fputs("\r\n", f);
}

/* The part for programs: message/delivery-status (RFC 3464), 7bit. */
static void
bounce_write_report(struct bounce_out *o)
{
	const struct queue_envelope	*e = o->e;
	FILE				*f = o->f;
	char				 date[64], text[BOUNCE_TEXT_MAX + 1];
	size_t				 i;

	fprintf(f, "--%s\r\n", o->boundary);
	fprintf(f, "Content-Description: Delivery report\r\n");
	fprintf(f, "Content-Type: message/delivery-status\r\n\r\n");
	fprintf(f, "Reporting-MTA: dns; %s\r\n", o->host);
	fprintf(f, "X-Splitmx-Queue-ID: %s\r\n", e->id);
	if (*e->envid != '\0') {
		bounce_xtext(text, sizeof(text), e->envid);
		bounce_field(f, "Original-Envelope-Id: ", text);
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
	char		 text[BOUNCE_TEXT_MAX + 1], addr[BOUNCE_TEXT_MAX + 1];
	char		 status[16], mta[SMX_HOSTSZ], a[64], date[64];
	int		 expired;

	expired = o->action == BOUNCE_FAILED && r->fail == FAIL_EXPIRED;
	fputs("\r\n", f);
	/* Folded too: 6533's escapes can make an address 6 times longer. */
	bounce_addr(addr, sizeof(addr), r->rewritten);
	bounce_field(f, "Final-Recipient: ", addr);
	if ((semi = strchr(r->orcpt, ';')) != NULL) {
		bounce_xtext(text, sizeof(text), semi + 1);
		bounce_safe(a, sizeof(a), r->orcpt, 1);
		if ((size_t)(semi - r->orcpt) < sizeof(a))
			a[semi - r->orcpt] = '\0';
		(void)snprintf(addr, sizeof(addr), "Original-Recipient: %s; ",
		    a);
		bounce_field(f, addr, text);
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
			bounce_safe(mta, sizeof(mta), text, 1);
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
 * Returns the BODY_* the DSN is to be sent with, or -1.
 */
int
bounce_write(int fd, int msgfd, const struct queue_envelope *e,
    enum bounce_action action, const uint32_t *rcpts, size_t n,
    const char *remote, const char *dsnid, time_t now)
{
	struct bounce_out	 o;
	int			 wfd, ret, eight;

	memset(&o, 0, sizeof(o));
	o.e = e;
	o.action = action;
	o.rcpts = rcpts;
	o.n = n;
	o.remote = remote;
	o.now = now;
	/* RFC 3461 §4.3: only a failure may return the whole message. */
	o.headers = action != BOUNCE_FAILED || e->ret == RET_HDRS;
	o.utf8 = (e->flags & F_MSG_SMTPUTF8) != 0;
	bounce_safe(o.host, sizeof(o.host), env->conf->hostname, 1);
	if (snprintf(o.boundary, sizeof(o.boundary), "%s/%s", dsnid,
	    o.host) >= (int)sizeof(o.boundary))
		strlcpy(o.boundary, dsnid, sizeof(o.boundary));

	/* What each part holds decides what it and the whole declare. */
	if (bounce_copy(NULL, msgfd, e->size, o.headers, &eight) == -1)
		return -1;
	o.orig_cte = e->body == BODY_BINARYMIME && !o.headers ? CTE_BINARY :
	    eight ? CTE_8BIT : CTE_7BIT;
	o.text_cte = o.utf8 ? CTE_8BIT : CTE_7BIT;
	o.cte = o.orig_cte > o.text_cte ? o.orig_cte : o.text_cte;

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
	fprintf(o.f, "Content-Type: %s\r\n", o.headers ?
	    "text/rfc822-headers" : "message/rfc822");
	fprintf(o.f, "Content-Transfer-Encoding: %s\r\n\r\n",
	    bounce_cte_names[o.orig_cte]);
	ret = bounce_copy(o.f, msgfd, e->size, o.headers, &eight);
	fprintf(o.f, "\r\n--%s--\r\n", o.boundary);
	if (ferror(o.f))
		ret = -1;
	if (fclose(o.f) != 0)
		ret = -1;
	if (ret == -1)
		return -1;
	return o.cte == CTE_BINARY ? BODY_BINARYMIME : o.cte == CTE_8BIT ?
	    BODY_8BITMIME : BODY_7BIT;
}


/*
 * The DSN's envelope: from <>, to the sender, routed as a recipient
 * in the sender's domain would be (see the top), asking for no DSN,
 * with the BODY its parts need.
 */
static struct queue_envelope *
bounce_envelope(const struct queue_envelope *e, enum bounce_action action,
    const char *id, uint64_t size, size_t nwant, time_t now, uint32_t body)
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
	d->body = body;
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
	int			 fd = -1, msgfd = -1, saved, created = 0, body;

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
	if ((fd = queue_msg_create(id, sizeof(id), 0)) == -1)
		goto fail;
	created = 1;
	if ((msgfd = queue_fs_message_open(&queue_spool, e->id)) == -1 ||
	    (body = bounce_write(fd, msgfd, e, action, want, nwant, remote,
	    id, now)) == -1 || fstat(fd, &st) == -1)
		goto fail;
	close(msgfd);
	msgfd = -1;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;

	if ((d = bounce_envelope(e, action, id, (uint64_t)st.st_size, nwant,
	    now, (uint32_t)body)) == NULL)
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
	log_info("id=%s event=dsn for=%s action=%s to=%s recipients=%zu "
	    "size=%llu", id, e->id, action == BOUNCE_FAILED ? "failed" :
	    action == BOUNCE_DELAYED ? "delayed" : "relayed",
	    log_addr(e->sender), nwant, (unsigned long long)d->size);
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
