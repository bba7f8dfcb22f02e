/*
 * The message of a transaction: DATA lines and BDAT chunks streamed into
 * the file the queue gave us, checked on the way, with our Received:
 * header first; at its end the queue commits it or we refuse it.
 */
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "splitmx.h"
#include "smtp.h"

#define SMTP_DBUF_SIZE		65536	/* writes to the message file */
#define SMTP_TEXT_MAX		1000	/* RFC 5321 §4.5.3.1.6, CRLF included */
#define SMTP_MAX_HOPS		100	/* Received: headers, RFC 5321 §6.3 */

/* Why a message is refused at its end; the first that applies answers. */
#define TX_IOERR	0x01
#define TX_TOOBIG	0x02
#define TX_HOPS		0x04
#define TX_NUL		0x08
#define TX_BARE		0x10
#define TX_LONG		0x20

static void	smtp_message_content(struct smtp_session *, const char *,
		    size_t);
static void	smtp_message_write(struct smtp_tx *, const char *, size_t);
static int	smtp_message_flush(struct smtp_tx *);
static size_t	smtp_message_run(const char *, size_t);
static int	smtp_message_longline(struct smtp_session *, char *, size_t);
static size_t	smtp_message_header(struct smtp_tx *, const char *, size_t);
static void	smtp_message_body(struct smtp_tx *, const char *, size_t);
static void	smtp_message_received(struct smtp_session *);
static void	smtp_message_end(struct smtp_session *);
static void	smtp_message_refuse(struct smtp_session *);
static void	smtp_message_request(struct smtp_session *);
static void	smtp_message_begin(struct smtp_session *);
static void	smtp_message_free(struct smtp_session *);
static int	smtp_message_append(char *, size_t, size_t *, const char *,
		    ...) __attribute__((__format__ (printf, 4, 5)));

/*
 * DATA text.  A line ends with CRLF and nothing else, so only CRLF "."
 * CRLF ends the message: "\n.\n", "\r.\r", "\n.\r\n" and "\r\n.\n" are
 * text (and refused as bare LF/CR at the end, see
 * smtp_message_content()).  Lines that need nothing done go on as one
 * run, up to the next line that starts with a dot; that line is
 * unstuffed (RFC 5321 §4.5.2) or ends the message.
 */
int
smtp_message_dataline(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;
	char		*p = s->ibuf + s->ipos, *e;
	size_t		 avail = s->ilen - s->ipos, len;

	if (avail == 0)
		return 0;
	if (!tx->midline && p[0] == '.') {
		if ((e = memmem(p, avail, "\r\n", 2)) == NULL)
			return smtp_message_longline(s, p, avail);
		len = (size_t)(e - p);
		s->ipos += len + 2;
		if (len == 1) {
			smtp_message_end(s);
			return 1;
		}
		smtp_message_content(s, p + 1, len + 1);
		return 1;
	}
	if ((len = smtp_message_run(p, avail)) == 0)
		return smtp_message_longline(s, p, avail);
	s->ipos += len;
	tx->midline = 0;
	smtp_message_content(s, p, len);
	return 1;
}

/*
 * The length of the whole lines at the start of p, up to the first
 * line after them that starts with a dot or to the last CRLF; 0 if p
 * holds no CRLF.
 */
static size_t
smtp_message_run(const char *p, size_t n)
{
	const char	*q, *d, *end = p + n;

	for (q = p + 2; q < end &&
	    (d = memchr(q, '.', (size_t)(end - q))) != NULL; q = d + 1)
		if (d[-1] == '\n' && d[-2] == '\r')
			return (size_t)(d - p);
	for (q = end; q > p &&
	    (d = memrchr(p, '\n', (size_t)(q - p))) != NULL; q = d)
		if (d > p && d[-1] == '\r')
			return (size_t)(d + 1 - p);
	return 0;
}

/*
 * No CRLF in sight.  A line this long is refused at the end anyway:
 * pass it on rather than hold it, but keep a last CR, which may be
 * half of the CRLF.
 */
static int
smtp_message_longline(struct smtp_session *s, char *p, size_t len)
{
	struct smtp_tx	*tx = s->tx;

	if (len < SMTP_TEXT_MAX)
		return 0;
	if (p[len - 1] == '\r')
		len--;
	if (!tx->midline && p[0] == '.') {
		p++;
		len--;
		s->ipos++;
	}
	s->ipos += len;
	tx->midline = 1;
	smtp_message_content(s, p, len);
	return 1;
}

/* A BDAT chunk: exactly its size in octets, whatever they are. */
int
smtp_message_chunk(struct smtp_session *s)
{
	size_t	 n = s->ilen - s->ipos;

	if (n > s->chunk_left)
		n = s->chunk_left;
	if (n > 0) {
		if (!(s->flags & F_CHUNK_SKIP))
			smtp_message_content(s, s->ibuf + s->ipos, n);
		s->ipos += n;
		s->chunk_left -= n;
	}
	if (s->chunk_left > 0)
		return 0;
	s->flags &= ~F_CHUNK;
	if (s->flags & F_CHUNK_SKIP) {
		s->flags &= ~F_CHUNK_SKIP;
		if (s->flags & F_CHUNK_ERROR)
			smtp_session_error(s, "%s", s->chunk_reply);
		else
			smtp_session_reply(s, "%s", s->chunk_reply);
		return 1;
	}
	if (s->flags & F_CHUNK_LAST)
		smtp_message_end(s);
	else if (s->tx->err) {
		/* RFC 3030 §2: after a failed chunk the transaction is off. */
		smtp_message_refuse(s);
	} else
		smtp_session_reply(s, "250 2.0.0 Ok: %zu octets received",
		    s->chunk_size);
	return 1;
}

/* Read the chunk the client announced, then answer with reply. */
void
smtp_message_chunk_skip(struct smtp_session *s, int error, const char *reply)
{
	s->flags |= F_CHUNK | F_CHUNK_SKIP;
	if (error)
		s->flags |= F_CHUNK_ERROR;
	else
		s->flags &= ~F_CHUNK_ERROR;
	strlcpy(s->chunk_reply, reply, sizeof(s->chunk_reply));
	smtp_session_data_begin(s);
}

/*
 * The message content as it streams by (unstuffed DATA lines, raw BDAT
 * chunks): size, line lengths, NUL, Received: count and line ends are
 * checked here, and the content goes to the message file.
 *
 * The rule for line ends: every line must end with CRLF.  A bare LF or
 * a bare CR anywhere in the content refuses the whole message with
 * "550 5.6.0" at its end (RFC 5321 §2.3.8 forbids them; normalising
 * would hide an SMTP smuggling attempt from the next hop's logs, and
 * passing them on would make us the smuggler).  Over-long lines and
 * NUL octets are refused the same way.  Once a message is refused,
 * nothing more of it is written.
 */
static void
smtp_message_content(struct smtp_session *s, const char *p, size_t n)
{
	struct smtp_tx	*tx = s->tx;
	size_t		 max = s->gen->conf->max_message_size, i = 0;

	tx->datalen += n;
	if (max != 0 && tx->datalen > max)
		tx->err |= TX_TOOBIG;
	if (memchr(p, '\0', n) != NULL)
		tx->err |= TX_NUL;
	while (i < n && tx->headers)
		i += smtp_message_header(tx, p + i, n - i);
	if (i < n)
		smtp_message_body(tx, p + i, n - i);
	if (tx->err == 0)
		smtp_message_write(tx, p, n);
}

/*
 * The header, octet by octet, up to and including the first LF: line
 * ends, line length and the Received: count.  Returns what it used.
 */
static size_t
smtp_message_header(struct smtp_tx *tx, const char *p, size_t n)
{
	static const char received[] = "received:";
	size_t		 i;
	unsigned char	 c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)p[i];
		if (c == '\n') {
			if (!tx->cr)
				tx->err |= TX_BARE;
			if (tx->linelen > SMTP_TEXT_MAX - 2)
				tx->err |= TX_LONG;
			if (tx->linelen == 0)
				tx->headers = 0;
			tx->linelen = 0;
			tx->hmatch = 0;
			tx->cr = 0;
			return i + 1;
		}
		if (tx->cr)
			tx->err |= TX_BARE;
		if (c == '\r') {
			tx->cr = 1;
			continue;
		}
		tx->linelen++;
		if (tx->hmatch >= 0 && tx->hmatch < (int)sizeof(received) - 1) {
			if (tolower(c) != received[tx->hmatch])
				tx->hmatch = -1;
			else if (++tx->hmatch == (int)sizeof(received) - 1 &&
			    ++tx->nreceived > SMTP_MAX_HOPS)
				tx->err |= TX_HOPS;
		}
	}
	return n;
}

/*
 * The body, a line at a time: the same checks as the header's, with
 * memchr() doing the looking.  A CR is right only as the last octet
 * before a LF, and a LF only right after a CR (tx->cr carries a CR at
 * the end of one piece to the next); linelen counts the octets
 * between, as the header's loop does.
 */
static void
smtp_message_body(struct smtp_tx *tx, const char *p, size_t n)
{
	const char	*end = p + n, *nl, *cr;
	size_t		 len;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = (size_t)((nl != NULL ? nl : end) - p);
		if (len > 0) {
			if (tx->cr)
				tx->err |= TX_BARE;
			cr = memchr(p, '\r', len);
			if (cr != NULL && cr != p + len - 1)
				tx->err |= TX_BARE;
			tx->cr = p[len - 1] == '\r';
			tx->linelen += len - (size_t)tx->cr;
		}
		if (nl == NULL)
			break;
		if (!tx->cr)
			tx->err |= TX_BARE;
		if (tx->linelen > SMTP_TEXT_MAX - 2)
			tx->err |= TX_LONG;
		tx->linelen = 0;
		tx->cr = 0;
		p = nl + 1;
	}
}

static void
smtp_message_write(struct smtp_tx *tx, const char *p, size_t n)
{
	size_t	 k;

	while (n > 0 && !(tx->err & TX_IOERR)) {
		if (tx->dlen == SMTP_DBUF_SIZE && smtp_message_flush(tx) == -1)
			return;
		k = SMTP_DBUF_SIZE - tx->dlen;
		if (k > n)
			k = n;
		memcpy(tx->dbuf + tx->dlen, p, k);
		tx->dlen += k;
		p += k;
		n -= k;
	}
}

static int
smtp_message_flush(struct smtp_tx *tx)
{
	size_t	 off = 0;
	ssize_t	 w;

	while (off < tx->dlen) {
		if ((w = write(tx->fd, tx->dbuf + off, tx->dlen - off)) == -1) {
			if (errno == EINTR)
				continue;
			tx->saved_errno = errno;
			tx->err |= TX_IOERR;
			return -1;
		}
		off += (size_t)w;
	}
	tx->written += tx->dlen;
	tx->dlen = 0;
	return 0;
}

/*
 * Our trace header, first in the file (RFC 5321 §4.4); the protocol
 * names are RFC 3848's and RFC 6531's.
 */
static void
smtp_message_received(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;
	struct tm	 tm;
	time_t		 now = time(NULL);
	char		 hdr[2048], date[64];
	const char	*with;
	size_t		 len = 0;
	int		 r;

	if (tx->mflags & F_MSG_SMTPUTF8)
		with = (s->flags & F_TLS) ? "UTF8SMTPS" : "UTF8SMTP";
	else if (s->flags & F_TLS)
		with = "ESMTPS";
	else
		with = (s->flags & F_EHLO) ? "ESMTP" : "SMTP";
	if (localtime_r(&now, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		strlcpy(date, "Thu, 01 Jan 1970 00:00:00 +0000", sizeof(date));

	r = smtp_message_append(hdr, sizeof(hdr), &len,
	    "Received: from %s ([%s%s])\r\n\tby %s (splitmx) with %s id %s",
	    s->helo, s->ss.ss_family == AF_INET6 ? "IPv6:" : "", s->addr,
	    s->gen->conf->hostname, with, tx->id);
	if (r == 0 && (s->flags & F_TLS))
		r = smtp_message_append(hdr, sizeof(hdr), &len,
		    "\r\n\t(version=%s cipher=%s)", s->tls_version,
		    s->tls_cipher);
	if (r == 0 && tx->nrcpt == 1)
		r = smtp_message_append(hdr, sizeof(hdr), &len,
		    "\r\n\tfor <%s>", TAILQ_FIRST(&tx->rcpts)->addr);
	if (r == 0)
		r = smtp_message_append(hdr, sizeof(hdr), &len,
		    ";\r\n\t%s\r\n", date);
	if (r == -1) {
		/* Cannot happen within our bounds; refuse rather than cut. */
		tx->err |= TX_IOERR;
		tx->saved_errno = EOVERFLOW;
		return;
	}
	smtp_message_write(tx, hdr, len);
	tx->received = len;	/* milters get the client's text after it */
}

/* The end of the message: refuse it, or have the queue commit it. */
static void
smtp_message_end(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;
	int		 r;

	s->state = STATE_HELO;
	if (tx->cr)
		tx->err |= TX_BARE;	/* a last BDAT octet that is a CR */
	if (tx->linelen > SMTP_TEXT_MAX - 2)
		tx->err |= TX_LONG;
	/* A BDAT message need not end with CRLF; the file does. */
	if (tx->linelen > 0 && tx->err == 0)
		smtp_message_write(tx, "\r\n", 2);
	/*
	 * The queue may have given us a removed message's file, zeroed:
	 * the message is what we wrote, not a byte more.
	 */
	if (tx->err == 0 && smtp_message_flush(tx) == 0) {
		r = ftruncate(tx->fd, (off_t)tx->written);
		if (close(tx->fd) == -1)
			r = -1;
		tx->fd = -1;
		if (r == -1) {
			tx->saved_errno = errno;
			tx->err |= TX_IOERR;
		}
	}
	if (tx->err) {
		smtp_message_refuse(s);
		return;
	}
	if (!smtp_filter_message(s))
		smtp_message_commit(s);
}

static void
smtp_message_refuse(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;
	const char	*reply, *reason;

	if (tx->err & TX_IOERR) {
		if (tx->saved_errno == ENOSPC || tx->saved_errno == EDQUOT) {
			reply = "452 4.3.1 Insufficient system storage";
			reason = "no-space";
		} else {
			reply = "451 4.3.0 Error: local write error, try "
			    "again later";
			reason = "write-error";
		}
	} else if (tx->err & TX_TOOBIG) {
		reply = "552 5.3.4 Message size exceeds fixed maximum message "
		    "size";
		reason = "size";
	} else if (tx->err & TX_HOPS) {
		reply = "554 5.4.6 Too many hops (Received: headers), "
		    "probably a mail loop";
		reason = "hops";
	} else if (tx->err & TX_NUL) {
		reply = "550 5.6.0 Message refused: it contains NUL octets";
		reason = "nul";
	} else if (tx->err & TX_BARE) {
		reply = "550 5.6.0 Message refused: bare CR or LF; lines "
		    "must end with CRLF (RFC 5321 2.3.8)";
		reason = "bare-line-end";
	} else {
		reply = "550 5.6.0 Message refused: a line is longer than "
		    "998 octets";
		reason = "line-length";
	}
	log_info("session=%016llx event=message-refused id=%s from=%s "
	    "size=%zu reason=%s", (unsigned long long)s->id, tx->id,
	    log_addr(tx->sender), tx->datalen, reason);
	smtp_session_reply(s, "%s", reply);
	smtp_message_abort(s);
	s->state = STATE_HELO;
}

/* The queue protocol of splitmx.h: envelope and recipients. */
void
smtp_message_commit(struct smtp_session *s)
{
	struct smtp_tx		*tx = s->tx;
	struct smtp_rcpt	*r;
	struct msg		 m;

	msg_init(&m, IMSG_QUEUE_MESSAGE_COMMIT, 0);
	msg_add_u64(&m, s->id);
	msg_add_str(&m, tx->id);
	msg_add_u64(&m, tx->written);
	msg_add_str(&m, tx->sender);
	msg_add_str(&m, s->helo);
	msg_add_sockaddr(&m, (struct sockaddr *)&s->ss, s->sslen);
	msg_add_str(&m, "");		/* no reverse DNS in this process */
	msg_add_u32(&m, tx->body);
	msg_add_u32(&m, tx->mflags);
	msg_add_str(&m, tx->envid);
	msg_add_u32(&m, tx->ret);
	msg_add_str(&m, tx->quarantine != NULL ? tx->quarantine : "");
	msg_add_u32(&m, tx->nrcpt);
	TAILQ_FOREACH(r, &tx->rcpts, entry) {
		msg_add_str(&m, r->addr);
		msg_add_str(&m, r->rewritten);
		msg_add_u32(&m, r->rclass);
		msg_add_str(&m, r->dest);
		msg_add_u32(&m, r->tls);
		msg_add_u32(&m, r->notify);
		msg_add_str(&m, r->orcpt);
		msg_add_str(&m, r->error != NULL ? r->error : "");
	}
	if (m.error) {
		msg_clear(&m);
		tx->err |= TX_IOERR;
		tx->saved_errno = EMSGSIZE;
		smtp_message_refuse(s);
		return;
	}
	proc_send(PROC_QUEUE, &m);
	tx->committed = 1;
	s->wait = WAIT_COMMIT;
}

void
smtp_message_commit_result(struct smtp_session *s, int ok, const char *reply)
{
	struct smtp_tx		*tx = s->tx;
	struct smtp_rcpt	*r;

	if (s->wait != WAIT_COMMIT || tx == NULL || !tx->committed) {
		log_warnx("session=%016llx: unexpected commit result",
		    (unsigned long long)s->id);
		return;
	}
	s->wait = WAIT_NONE;
	if (ok) {
		smtp_session_reply(s, "250 2.0.0 Ok: queued as %s", tx->id);
		stat_add("messages.accepted", 1);
		s->nmsgs++;
		log_info("session=%016llx event=message id=%s from=%s "
		    "size=%zu rcpts=%u%s%s", (unsigned long long)s->id,
		    tx->id, log_addr(tx->sender), tx->written, tx->nrcpt,
		    (s->flags & F_TLS) ? " tls=" : "",
		    (s->flags & F_TLS) ? s->tls_version : "");
		TAILQ_FOREACH(r, &tx->rcpts, entry)
			log_info("session=%016llx event=rcpt id=%s to=%s "
			    "route=%s destination=%s",
			    (unsigned long long)s->id, tx->id,
			    log_addr(r->rewritten),
			    route_class_name(r->rclass),
			    log_value(r->dest[0] ? r->dest : "mx"));
	} else {
		log_warnx("session=%016llx event=commit-failed id=%s "
		    "reply=%s", (unsigned long long)s->id, tx->id,
		    log_text(reply));
		/* A full spool is worth telling (RFC 3463 4.3.1). */
		if (strncmp(reply, "452 4.3.1", 9) == 0)
			smtp_session_reply(s, "452 4.3.1 Insufficient system "
			    "storage");
		else
			smtp_session_reply(s, "451 4.3.0 Error: message not "
			    "queued, try again later");
	}
	/* Committed or failed, the file is the queue's business now. */
	smtp_message_free(s);
	s->state = STATE_HELO;
	smtp_session_timer(s);
	smtp_session_run(s);
}

/*
 * The message file is asked for as soon as the first recipient is
 * accepted, so that it is usually there when DATA or BDAT comes: the
 * queue's round trip and its file creation happen while the client
 * reads the 250 and sends DATA.  A file that comes back for a
 * transaction that no longer wants it (it ended, or has one) goes back
 * to the queue (rollback).
 */
void
smtp_message_prepare(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;

	if (tx != NULL && !tx->creating && tx->id[0] == '\0')
		smtp_message_request(s);
}

static void
smtp_message_request(struct smtp_session *s)
{
	struct msg	 m;

	msg_init(&m, IMSG_QUEUE_MESSAGE_CREATE, 0);
	msg_add_u64(&m, s->id);
	proc_send(PROC_QUEUE, &m);
	s->tx->creating = 1;
}

/* DATA or BDAT: the file if it is there, else the wait for it. */
void
smtp_message_create(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;

	s->wait = WAIT_CREATE;
	if (tx->id[0] != '\0') {
		smtp_message_begin(s);
		return;
	}
	if (!tx->creating)
		smtp_message_request(s);
}

/* Our Received: first in the file, then the client's text. */
static void
smtp_message_begin(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;

	s->wait = WAIT_NONE;
	if ((tx->dbuf = malloc(SMTP_DBUF_SIZE)) == NULL)
		fatal("malloc");
	smtp_message_received(s);
	if (!smtp_filter_data(s))
		smtp_message_start(s);
	smtp_session_timer(s);
}

/* The 354, or BDAT's chunks, once the milters have seen DATA. */

void
smtp_message_start(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;

	if (tx->bdat) {
		s->state = STATE_CHUNKING;
		s->flags |= F_CHUNK;
	} else {
		s->state = STATE_DATA;
		tx->midline = 0;
		smtp_session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	}
	smtp_session_data_begin(s);
	smtp_session_timer(s);
}

void
smtp_message_create_result(struct smtp_session *s, int ok, const char *id,
    int fd)
{
	struct smtp_tx	*tx = s->tx;
	size_t		 i, len = strlen(id);
	int		 good = ok && fd != -1 && len > 0 && len < SMTP_QID_MAX;

	if (tx == NULL || !tx->creating) {
		/* Not wanted any more (RSET, a new MAIL): back it goes. */
		log_debug("session=%016llx event=create-unwanted",
		    (unsigned long long)s->id);
		if (fd != -1)
			close(fd);
		if (ok && len > 0)
			smtp_queue_rollback(id);
		return;
	}
	tx->creating = 0;
	/* The id goes into replies and headers: letters and digits only. */
	for (i = 0; good && i < len; i++)
		if (!isalnum((unsigned char)id[i]))
			good = 0;
	if (!good) {
		log_warnx("session=%016llx event=create-failed ok=%d",
		    (unsigned long long)s->id, ok);
		if (fd != -1)
			close(fd);
		if (ok && len > 0)
			smtp_queue_rollback(id);
		/* Not waited for yet: DATA will ask again. */
		if (s->wait != WAIT_CREATE)
			return;
		s->wait = WAIT_NONE;
		if (tx->bdat) {
			smtp_message_abort(s);
			s->state = STATE_HELO;
			smtp_message_chunk_skip(s, 0, "451 4.3.0 Error: queue "
			    "unavailable, try again later");
		} else
			smtp_session_reply(s, "451 4.3.0 Error: queue "
			    "unavailable, try again later");
		smtp_session_timer(s);
		smtp_session_run(s);
		return;
	}
	strlcpy(tx->id, id, sizeof(tx->id));
	tx->fd = fd;
	if (s->wait != WAIT_CREATE)
		return;		/* DATA will find it */
	smtp_message_begin(s);
	smtp_session_run(s);
}

void
smtp_message_abort(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;

	if (tx == NULL)
		return;
	smtp_filter_abort(s);
	if (tx->fd != -1)
		close(tx->fd);
	tx->fd = -1;
	if (tx->id[0] != '\0' && !tx->committed)
		smtp_queue_rollback(tx->id);
	smtp_message_free(s);
}

static void
smtp_message_free(struct smtp_session *s)
{
	struct smtp_tx		*tx = s->tx;
	struct smtp_rcpt	*r;
	size_t			 i;

	if (tx == NULL)
		return;
	if (tx->fd != -1)
		close(tx->fd);
	if (tx->pending != NULL)
		TAILQ_INSERT_TAIL(&tx->rcpts, tx->pending, entry);
	while ((r = TAILQ_FIRST(&tx->rcpts)) != NULL) {
		TAILQ_REMOVE(&tx->rcpts, r, entry);
		smtp_message_free_rcpt(r);
	}
	for (i = 0; i < tx->nfops; i++) {
		free(tx->fops[i].addr);
		free(tx->fops[i].args);
	}
	free(tx->fops);
	free(tx->quarantine);
	free(tx->dbuf);
	free(tx);
	s->tx = NULL;
}

void
smtp_message_free_rcpt(struct smtp_rcpt *r)
{
	free(r->addr);
	free(r->rewritten);
	free(r->dest);
	free(r->orcpt);
	free(r->args);
	free(r->error);
	free(r);
}

/* Checked snprintf at *len; -1 if it does not fit. */
static int
smtp_message_append(char *buf, size_t bufsz, size_t *len, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	if (*len >= bufsz)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, bufsz - *len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= bufsz - *len)
		return -1;
	*len += (size_t)n;
	return 0;
}
