/*
 * One milter conversation (protocol version 6) for one session: the
 * connection, option negotiation, each stage's event with its macros,
 * the replies and, at the end of a message, the modifications.  One
 * timer runs while anything is due from the milter (a connect, a reply,
 * room in its socket); a progress reply restarts it.  Whatever goes
 * wrong ends in milter_fail(), which applies the milter's on-error.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "splitmx.h"
#include "filter.h"

#define MILTER_MODS_MAX		1000	/* header changes per message */

/* A packet being built: u32 length, command, data. */
struct pkt {
	uint8_t		*buf;
	size_t		 len;
	size_t		 cap;
};

static void	pkt_init(struct pkt *, int);
static void	pkt_add(struct pkt *, const void *, size_t);
static void	pkt_str(struct pkt *, const char *);
static void	pkt_args(struct pkt *, const char *);
static void	milter_send(struct filter_milter *, struct pkt *);
static void	milter_send_empty(struct filter_milter *, int);
static void	milter_macros(struct filter_milter *, int);
static int	milter_open(struct filter_milter *);
static void	milter_start(struct filter_milter *);
static int	milter_event(struct filter_milter *);
static int	milter_message_step(struct filter_milter *);
static int	milter_expect(struct filter_milter *, int, uint32_t);
static int	milter_fail(struct filter_milter *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
static void	milter_finish(struct filter_milter *);
static void	milter_teardown(struct filter_milter *);
static void	milter_quit(struct filter_milter *);
static void	milter_timer(struct filter_milter *);
static void	milter_timeout(int, short, void *);
static void	milter_read(struct bufferevent *, void *);
static void	milter_write(struct bufferevent *, void *);
static void	milter_error(struct bufferevent *, short, void *);
static int	milter_packet(struct filter_milter *, int, const uint8_t *,
		    size_t);
static int	milter_optneg(struct filter_milter *, const uint8_t *,
		    size_t);
static int	milter_change(struct filter_milter *,
		    const struct milter_reply *);
static int	milter_final(struct filter_milter *, int,
		    const struct milter_reply *);
static void	milter_reply_default(struct filter_milter *, int);
static char	*milter_raw_value(const char *, int);

/* Per stage (SMFIM_* order), what a milter gets unless it asks. */
static const char *const	 default_macros[MILTER_MACRO_STAGES] = {
	("j {daemon_name} {daemon_addr} {if_addr} {client_addr} "
	    "{client_port} {client_name} _ v"),
	"{tls_version} {cipher} {cipher_bits}",
	"{mail_addr}",
	"{rcpt_addr} {rcpt_mailer}",
	"i",
	"i",
	"i",
};
/* The MACRO packet names its stage by the command's letter. */
static const char	 macro_letters[MILTER_MACRO_STAGES] = {
	SMFIC_CONNECT, SMFIC_HELO, SMFIC_MAIL, SMFIC_RCPT, SMFIC_DATA,
	SMFIC_BODYEOB, SMFIC_EOH
};
#define MACRO_CONNECT	0
#define MACRO_HELO	1
#define MACRO_MAIL	2
#define MACRO_RCPT	3
#define MACRO_DATA	4
#define MACRO_EOM	5
#define MACRO_EOH	6

static uint8_t	 chunk[MILTER_CHUNK];

void
filter_milter_init(struct filter_milter *m, struct filter_session *fs)
{
	memset(m, 0, sizeof(*m));
	m->fs = fs;
	m->state = M_NEW;
	evtimer_set(&m->timer, milter_timeout, m);
	filter_changes_init(&m->ch);
}

static void
pkt_init(struct pkt *p, int cmd)
{
	uint8_t	 c = (uint8_t)cmd;

	memset(p, 0, sizeof(*p));
	pkt_add(p, "\0\0\0\0", 4);
	pkt_add(p, &c, 1);
}

static void
pkt_add(struct pkt *p, const void *data, size_t len)
{
	uint8_t	*n;
	size_t	 cap;

	if (p->len + len > p->cap) {
		cap = p->cap ? p->cap : 256;
		while (cap < p->len + len)
			cap *= 2;
		if ((n = realloc(p->buf, cap)) == NULL)
			fatal("realloc");
		p->buf = n;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, data, len);
	p->len += len;
}

static void
pkt_str(struct pkt *p, const char *s)
{
	pkt_add(p, s, strlen(s) + 1);
}

/* ESMTP arguments "A=1 B=2" as the strings of a list. */
static void
pkt_args(struct pkt *p, const char *args)
{
	const char	*s = args, *e;

	while (*s != '\0') {
		while (*s == ' ')
			s++;
		if (*s == '\0')
			break;
		e = s + strcspn(s, " ");
		pkt_add(p, s, (size_t)(e - s));
		pkt_add(p, "", 1);
		s = e;
	}
}

static void
milter_send(struct filter_milter *m, struct pkt *p)
{
	uint32_t	 n = (uint32_t)(p->len - 4);

	p->buf[0] = (uint8_t)(n >> 24);
	p->buf[1] = (uint8_t)(n >> 16);
	p->buf[2] = (uint8_t)(n >> 8);
	p->buf[3] = (uint8_t)n;
	if (bufferevent_write(m->bev, p->buf, p->len) == -1)
		fatalx("bufferevent_write");
	free(p->buf);
	p->buf = NULL;
}

static void
milter_send_empty(struct filter_milter *m, int cmd)
{
	struct pkt	 p;

	pkt_init(&p, cmd);
	milter_send(m, &p);
}

/*
 * The stage's macros, before its command (also when the milter does
 * not want the command: the macros may serve a later one): those it
 * asked for in OPTNEG, else our default list.
 */
static void
milter_macros(struct filter_milter *m, int stage)
{
	const char	*list, *v;
	char		 name[72];
	struct pkt	 p;
	size_t		 n;
	int		 any = 0;

	list = m->neg->have[stage] ? m->neg->macros[stage] :
	    default_macros[stage];
	pkt_init(&p, SMFIC_MACRO);
	pkt_add(&p, &macro_letters[stage], 1);
	while (*list != '\0') {
		while (*list == ' ')
			list++;
		n = strcspn(list, " ");
		if (n == 0)
			break;
		if (n < sizeof(name)) {
			memcpy(name, list, n);
			name[n] = '\0';
			if ((v = filter_macro(m->fs, name)) != NULL) {
				pkt_str(&p, name);
				pkt_str(&p, v);
				any = 1;
			}
		}
		list += n;
	}
	if (any)
		milter_send(m, &p);
	else
		free(p.buf);
}

/* While anything is due from the milter, its timer runs. */
static void
milter_timer(struct filter_milter *m)
{
	struct timeval	 tv = { m->timeout, 0 };


	if (m->wait != 0 || m->paused || m->state == M_CONNECTING ||
	    m->state == M_OPTNEG)
		evtimer_add(&m->timer, &tv);
	else if (evtimer_pending(&m->timer, NULL))
		evtimer_del(&m->timer);
}

static void
milter_timeout(int fd, short event, void *arg)
{
	struct filter_milter	*m = arg;

	(void)fd;
	(void)event;
	milter_fail(m, "timed out after %llds", (long long)m->timeout);
	milter_finish(m);
}

/*
 * A verdict reached in a callback: the session's stage goes on if this
 * milter was the one at work on it.
 */
static void
milter_finish(struct filter_milter *m)
{
	filter_stage_done(m);
}

/* Closes the connection: no more events, timer off. */
static void
milter_teardown(struct filter_milter *m)
{
	if (evtimer_pending(&m->timer, NULL))
		evtimer_del(&m->timer);
	if (m->bev != NULL) {
		bufferevent_free(m->bev);
		m->bev = NULL;
	}
	free(m->neg);
	m->neg = NULL;
	m->wait = 0;
	m->paused = 0;
	m->in_msg = 0;
	m->msg_done = 0;
	filter_changes_clear(&m->ch);
}

/*
 * A polite end: SMFIC_QUIT when nothing else is on its way, then the
 * close (which a milter takes as the end of the session anyway).
 */
static void
milter_quit(struct filter_milter *m)
{
	static const uint8_t	 quit[] = { 0, 0, 0, 1, SMFIC_QUIT };
	int			 fd;

	if (m->bev != NULL && m->state == M_READY && m->wait == 0 &&
	    evbuffer_get_length(bufferevent_get_output(m->bev)) == 0 &&
	    (fd = bufferevent_getfd(m->bev)) != -1)
		(void)send(fd, quit, sizeof(quit), MSG_NOSIGNAL | MSG_DONTWAIT);
	milter_teardown(m);
}

/*
 * The milter failed: logged, counted, closed, and its on-error decides
 * (filter_session_failed()).  Returns -1: its verdict (-1) is set.
 */
static int
milter_fail(struct filter_milter *m, const char *fmt, ...)
{
	char	 why[256];
	va_list	 ap;

	va_start(ap, fmt);
	if (vsnprintf(why, sizeof(why), fmt, ap) < 0)
		strlcpy(why, "error", sizeof(why));
	va_end(ap);
	log_warnx("session=%016llx milter=%s event=error error=%s "
	    "on-error=%s%s", (unsigned long long)m->fs->id, m->name,
	    log_text(why),
	    milter_on_error_name(m->on_error),
	    m->on_error == MILTER_ON_ERROR_ACCEPT ?
	    " (skipped for the rest of the session)" : "");
	filter_count(m, "error");
	milter_teardown(m);
	filter_session_failed(m->fs, m);
	return -1;
}

/*
 * The session's stage, on this milter: 1 its verdict is set now, 0 it
 * comes later (filter_stage_done()).
 */
int
filter_milter_run(struct filter_milter *m)
{
	m->verdict = FILTER_CONTINUE;
	m->reply[0] = '\0';
	switch (m->state) {
	case M_NEW:
		if (m->fs->stage != FILTER_STAGE_CONNECT)
			return 1;
		return milter_open(m);
	case M_READY:
		return milter_event(m);
	default:
		/* Skipped or closed: no events for it. */
		return 1;
	}
}

/*
 * An inet milter we connect ourselves; a unix one the parent connects
 * for us (IMSG_FILTER_MILTER_CONNECT): our chroot has no sockets.
 */
static int
milter_open(struct filter_milter *m)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	struct msg		 msg;
	const char		*errstr;
	int			 fd;

	if (milter_address(m->address, &ss, &len, &errstr) == -1) {
		milter_fail(m, "%s", errstr);
		return 1;
	}
	m->state = M_CONNECTING;
	if (ss.ss_family == AF_UNIX) {
		m->reqid = m->fs->id;
		msg_init(&msg, IMSG_FILTER_MILTER_CONNECT, 0);
		msg_add_u64(&msg, m->reqid);
		msg_add_str(&msg, ((struct sockaddr_un *)&ss)->sun_path);
		proc_send(PROC_PARENT, &msg);
		milter_timer(m);
		return 0;
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		milter_fail(m, "socket: %s", strerror(errno));
		return 1;
	}
	if ((m->bev = bufferevent_socket_new(env->evbase, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		fatalx("bufferevent_socket_new");
	bufferevent_setcb(m->bev, milter_read, milter_write, milter_error, m);
	if (bufferevent_socket_connect(m->bev, (struct sockaddr *)&ss,
	    (int)len) == -1) {
		milter_fail(m, "connect: %s", strerror(errno));
		return 1;
	}
	milter_timer(m);
	return 0;
}

/* The parent's answer for a unix milter. */
void
filter_milter_connected(uint64_t reqid, int fd, int error)
{
	struct filter_session	*fs;
	struct filter_milter	*m;

	if ((fs = filter_session_find(reqid)) == NULL || !fs->busy ||
	    fs->stage != FILTER_STAGE_CONNECT || fs->cur >= fs->nmilters ||
	    (m = &fs->milters[fs->cur])->state != M_CONNECTING ||
	    m->reqid != reqid || m->bev != NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	if (error != 0) {
		if (fd != -1)
			close(fd);
		milter_fail(m, "connect: %s", strerror(error));
		milter_finish(m);
		return;
	}
	if ((m->bev = bufferevent_socket_new(env->evbase, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		fatalx("bufferevent_socket_new");
	bufferevent_setcb(m->bev, milter_read, milter_write, milter_error, m);
	milter_start(m);
}

/* Connected: OPTNEG, offering everything we can do. */
static void
milter_start(struct filter_milter *m)
{
	struct pkt	 p;
	uint8_t		 w[12];
	uint32_t	 v[3] = { MILTER_VERSION, SMFIF_ALL,
			    MILTER_OFFER_PROTOCOL };
	int		 i, fd, one = 1;

	for (i = 0; i < 3; i++) {
		w[i * 4] = (uint8_t)(v[i] >> 24);
		w[i * 4 + 1] = (uint8_t)(v[i] >> 16);
		w[i * 4 + 2] = (uint8_t)(v[i] >> 8);
		w[i * 4 + 3] = (uint8_t)v[i];
	}
	/*
	 * A packet that gets no reply (a MACRO, an event the milter says
	 * it does not answer) must not hold the next one back until the
	 * milter's delayed ACK comes (Nagle): 40 ms a message otherwise.
	 */
	if ((fd = bufferevent_getfd(m->bev)) != -1)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	/* Replies are read as they come; a body waits for room. */
	bufferevent_setwatermark(m->bev, EV_WRITE, FILTER_OUT_HIGH / 4, 0);
	bufferevent_enable(m->bev, EV_READ | EV_WRITE);
	pkt_init(&p, SMFIC_OPTNEG);
	pkt_add(&p, w, sizeof(w));
	milter_send(m, &p);
	m->state = M_OPTNEG;
	m->wait = SMFIC_OPTNEG;
	milter_timer(m);
}

/*
 * A command: wait for its reply unless the milter said it sends none
 * (its NR bit, honoured even if we had not offered it).  1: no reply,
 * the verdict is "continue"; 0: waiting.
 */
static int
milter_expect(struct filter_milter *m, int cmd, uint32_t nr)
{
	if (m->neg->protocol & nr)
		return 1;
	m->wait = cmd;
	milter_timer(m);
	return 0;
}

/* The event of the session's stage.  1: verdict now, 0: later. */
static int
milter_event(struct filter_milter *m)
{
	struct filter_session	*fs = m->fs;
	uint32_t		 proto = m->neg->protocol;
	struct pkt		 p;
	uint8_t			 port[2];
	uint16_t		 nport;

	switch (fs->stage) {
	case FILTER_STAGE_CONNECT:
		milter_macros(m, MACRO_CONNECT);
		if (proto & SMFIP_NOCONNECT)
			return 1;
		pkt_init(&p, SMFIC_CONNECT);
		pkt_str(&p, "unknown");
		if (fs->client.ss_family == AF_INET ||
		    fs->client.ss_family == AF_INET6) {
			pkt_add(&p, fs->client.ss_family == AF_INET ? "4" :
			    "6", 1);
			nport = ((struct sockaddr_in *)&fs->client)->sin_port;
			memcpy(port, &nport, 2);	/* network order */
			pkt_add(&p, port, 2);
			pkt_str(&p, fs->client_addr);
		} else
			pkt_add(&p, "U", 1);
		milter_send(m, &p);
		return milter_expect(m, SMFIC_CONNECT, SMFIP_NR_CONN);
	case FILTER_STAGE_HELO:
		milter_macros(m, MACRO_HELO);
		if (proto & SMFIP_NOHELO)
			return 1;
		pkt_init(&p, SMFIC_HELO);
		pkt_str(&p, fs->helo);
		milter_send(m, &p);
		return milter_expect(m, SMFIC_HELO, SMFIP_NR_HELO);
	case FILTER_STAGE_MAIL:
		m->in_msg = 1;
		m->msg_done = 0;
		filter_changes_clear(&m->ch);
		milter_macros(m, MACRO_MAIL);
		if (proto & SMFIP_NOMAIL)
			return 1;
		pkt_init(&p, SMFIC_MAIL);
		pkt_add(&p, "<", 1);
		pkt_add(&p, fs->mail_addr, strlen(fs->mail_addr));
		pkt_str(&p, ">");
		pkt_args(&p, fs->mail_args);
		milter_send(m, &p);
		return milter_expect(m, SMFIC_MAIL, SMFIP_NR_MAIL);
	case FILTER_STAGE_RCPT:
		if (m->msg_done)
			return 1;
		milter_macros(m, MACRO_RCPT);
		if (proto & SMFIP_NORCPT)
			return 1;
		pkt_init(&p, SMFIC_RCPT);
		pkt_add(&p, "<", 1);
		pkt_add(&p, fs->rcpt_addr, strlen(fs->rcpt_addr));
		pkt_str(&p, ">");
		pkt_args(&p, fs->rcpt_args);
		milter_send(m, &p);
		return milter_expect(m, SMFIC_RCPT, SMFIP_NR_RCPT);
	case FILTER_STAGE_DATA:
		if (m->msg_done)
			return 1;
		milter_macros(m, MACRO_DATA);
		if (proto & SMFIP_NODATA)
			return 1;
		milter_send_empty(m, SMFIC_DATA);
		return milter_expect(m, SMFIC_DATA, SMFIP_NR_DATA);
	case FILTER_STAGE_MESSAGE:
		if (m->msg_done)
			return 1;
		m->mstep = MS_HEADERS;
		m->mhdr = 0;
		m->mbody = fs->msg->body;
		m->mskip = 0;
		return milter_message_step(m);
	default:
		fatalx("filter: stage %d", fs->stage);
	}
}

/*
 * The message, for this milter: every header, EOH, the body in chunks,
 * BODYEOB.  Without replies (NR bits) packets go out back to back as
 * long as the milter reads them; with replies one at a time.  1: its
 * verdict is set (the message cannot be read), 0: waiting.
 */
static int
milter_message_step(struct filter_milter *m)
{
	struct filter_message	*msg = m->fs->msg;
	struct filter_header	*h;
	uint32_t		 proto = m->neg->protocol;
	struct pkt		 p;
	char			*value;
	ssize_t			 n;

	for (;;) {
		if (m->mstep != MS_EOB && evbuffer_get_length(
		    bufferevent_get_output(m->bev)) > FILTER_OUT_HIGH) {
			m->paused = 1;
			milter_timer(m);
			return 0;	/* milter_write() goes on */
		}
		switch (m->mstep) {
		case MS_HEADERS:
			if ((proto & SMFIP_NOHDRS) || m->mhdr == msg->nhdrs) {
				m->mstep = MS_EOH;
				break;
			}
			h = &msg->hdrs[m->mhdr++];
			value = filter_message_hvalue(h,
			    (proto & SMFIP_HDR_LEADSPC) != 0);
			pkt_init(&p, SMFIC_HEADER);
			pkt_add(&p, h->name, h->namelen);
			pkt_add(&p, "", 1);
			pkt_str(&p, value);
			free(value);
			milter_send(m, &p);
			if (milter_expect(m, SMFIC_HEADER, SMFIP_NR_HDR) == 0)
				return 0;
			break;
		case MS_EOH:
			m->mstep = MS_BODY;
			milter_macros(m, MACRO_EOH);
			if (proto & SMFIP_NOEOH)
				break;
			milter_send_empty(m, SMFIC_EOH);
			if (milter_expect(m, SMFIC_EOH, SMFIP_NR_EOH) == 0)
				return 0;
			break;
		case MS_BODY:
			if ((proto & SMFIP_NOBODY) || m->mskip ||
			    m->mbody >= msg->size) {
				m->mstep = MS_EOB;
				break;
			}
			if ((n = filter_message_body(msg, m->mbody, chunk,
			    sizeof(chunk))) <= 0) {
				log_warn("session=%016llx id=%s: message "
				    "file", (unsigned long long)m->fs->id,
				    msg->id);
				m->verdict = FILTER_TEMPFAIL;
				strlcpy(m->reply, "451 4.3.0 Error: the "
				    "message cannot be read, try again later",
				    sizeof(m->reply));
				return 1;
			}
			m->mbody += (uint64_t)n;
			pkt_init(&p, SMFIC_BODY);
			pkt_add(&p, chunk, (size_t)n);
			milter_send(m, &p);
			if (milter_expect(m, SMFIC_BODY, SMFIP_NR_BODY) == 0)
				return 0;
			break;
		case MS_EOB:
			milter_macros(m, MACRO_EOM);
			milter_send_empty(m, SMFIC_BODYEOB);
			m->wait = SMFIC_BODYEOB;
			m->mstep = MS_OVER;
			milter_timer(m);
			return 0;
		default:
			fatalx("filter: message step %d", m->mstep);
		}
	}
}

/* The transaction ends before its end of message. */
void
filter_milter_abort(struct filter_milter *m)
{
	if (m->state == M_READY && m->wait != 0) {
		/* A reply is on its way that nobody will read: close. */
		log_debug("session=%016llx milter=%s event=closed "
		    "reason=abort-under-way", (unsigned long long)m->fs->id,
		    m->name);
		milter_teardown(m);
		m->state = M_SKIP;
		return;
	}
	if (m->state == M_READY && m->in_msg)
		milter_send_empty(m, SMFIC_ABORT);
	m->in_msg = 0;
	m->msg_done = 0;
	m->paused = 0;
	m->mstep = MS_OVER;
	filter_changes_clear(&m->ch);
	milter_timer(m);
}

/* The session is over. */
void
filter_milter_close(struct filter_milter *m)
{
	milter_quit(m);
	if (m->state != M_SKIP)
		m->state = M_DONE;
}

static void
milter_read(struct bufferevent *bev, void *arg)
{
	struct filter_milter	*m = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	const uint8_t		*buf, *data;
	size_t			 len, dlen;
	uint32_t		 n;
	int			 cmd, r, used, fd, one = 1;

	while ((len = evbuffer_get_length(in)) >= 4) {
		if ((buf = evbuffer_pullup(in, 4)) == NULL)
			fatalx("evbuffer_pullup");
		n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
		    (uint32_t)buf[2] << 8 | (uint32_t)buf[3];
		if (n == 0 || n - 1 > MILTER_PACKET_MAX) {
			milter_fail(m, "a packet of length %u (garbage?)", n);
			milter_finish(m);
			return;
		}
		if (len - 4 < n)
			return;
		if ((buf = evbuffer_pullup(in, (ssize_t)n + 4)) == NULL ||
		    (used = milter_parse_packet(buf, (size_t)n + 4, &cmd,
		    &data, &dlen)) <= 0)
			fatalx("filter: packet of %u octets", n);
		if ((r = milter_packet(m, cmd, data, dlen)) == -1) {
			/* Failed: the connection went with its buffers. */
			milter_finish(m);
			return;
		}
		evbuffer_drain(in, (size_t)used);
		if (r == 1) {
			milter_finish(m);
			/* The stage's end may have closed this milter. */
			if (m->bev != bev)
				return;
		}
	}
	/*
	 * More is due (the final reply after modifications, a reply after
	 * PROGRESS): ACK now.  libmilter writes each packet by itself
	 * without TCP_NODELAY, so our delayed ACK would hold the next one
	 * back for 40 ms.
	 */
	if (m->wait != 0 && (fd = bufferevent_getfd(bev)) != -1)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one,
		    sizeof(one));
}

/* Room again in the milter's socket: a paused message goes on. */
static void
milter_write(struct bufferevent *bev, void *arg)
{
	struct filter_milter	*m = arg;

	(void)bev;
	if (!m->paused)
		return;
	m->paused = 0;
	milter_timer(m);
	if (milter_message_step(m) == 1)
		milter_finish(m);
}

static void
milter_error(struct bufferevent *bev, short what, void *arg)
{
	struct filter_milter	*m = arg;
	int			 error = EVUTIL_SOCKET_ERROR();

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		milter_start(m);
		return;
	}
	if (what & BEV_EVENT_EOF)
		milter_fail(m, "connection closed by the milter");
	else
		milter_fail(m, "%s: %s", m->state == M_CONNECTING ?
		    "connect" : "connection", error ? strerror(error) :
		    "error");
	milter_finish(m);
}

/*
 * One packet from the milter.  0: read on; 1: its verdict on the stage
 * is set; -1: it failed (verdict set, connection gone).
 */
static int
milter_packet(struct filter_milter *m, int cmd, const uint8_t *data,
    size_t len)
{
	struct milter_reply	 r;
	const char		*why;

	if (m->state == M_OPTNEG) {
		if (cmd != SMFIR_OPTNEG)
			return milter_fail(m, "reply '%c' to OPTNEG",
			    cmd > 0x20 && cmd < 0x7f ? cmd : '?');
		return milter_optneg(m, data, len);
	}
	if (m->state != M_READY)
		return milter_fail(m, "a packet out of turn");
	if (milter_parse_reply(cmd, data, len, &r, &why) == -1)
		return milter_fail(m, "bad reply '%c': %s",
		    cmd > 0x20 && cmd < 0x7f ? cmd : '?', why);
	if (m->wait == 0)
		return milter_fail(m, "reply '%c' when none was due",
		    cmd > 0x20 && cmd < 0x7f ? cmd : '?');
	if (cmd == SMFIR_PROGRESS) {
		milter_timer(m);	/* the reply may take longer */
		return 0;
	}
	switch (cmd) {
	case SMFIR_ADDHEADER:
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
	case SMFIR_REPLBODY:
	case SMFIR_ADDRCPT:
	case SMFIR_ADDRCPT_PAR:
	case SMFIR_DELRCPT:
	case SMFIR_CHGFROM:
	case SMFIR_QUARANTINE:
		if (m->wait != SMFIC_BODYEOB)
			return milter_fail(m, "modification '%c' before the "
			    "end of the message", cmd);
		return milter_change(m, &r);
	default:
		return milter_final(m, cmd, &r);
	}
}

/* The OPTNEG reply; then the stage (connect) goes on. */
static int
milter_optneg(struct filter_milter *m, const uint8_t *data, size_t len)
{
	const char	*why;

	if ((m->neg = calloc(1, sizeof(*m->neg))) == NULL)
		fatal("calloc");
	if (milter_parse_optneg(data, len, m->neg, &why) == -1)
		return milter_fail(m, "%s", why);
	if (m->neg->version < 2 || m->neg->version > MILTER_VERSION)
		return milter_fail(m, "protocol version %u, not 2 to %d",
		    m->neg->version, MILTER_VERSION);
	if (m->neg->actions & ~(uint32_t)SMFIF_ALL)
		return milter_fail(m, "actions 0x%x beyond those offered",
		    m->neg->actions);
	log_debug("session=%016llx milter=%s event=negotiated version=%u "
	    "actions=0x%x protocol=0x%x", (unsigned long long)m->fs->id,
	    m->name, m->neg->version, m->neg->actions, m->neg->protocol);
	m->wait = 0;
	m->state = M_READY;
	milter_timer(m);
	return milter_event(m);
}

/* A modification at the end of the message: allowed, then kept. */
static int
milter_change(struct filter_milter *m, const struct milter_reply *r)
{
	struct filter_changes	*ch = &m->ch;
	struct filter_mod	*mod;
	struct filter_rcptop	*op;
	size_t			 max = env->conf->max_message_size, nmods = 0;
	uint32_t		 need;
	char			 addr[SMX_ADDRSZ];
	uint8_t			*b;

	switch (r->cmd) {
	case SMFIR_ADDHEADER:
	case SMFIR_INSHEADER:
		need = SMFIF_ADDHDRS;
		break;
	case SMFIR_CHGHEADER:
		need = SMFIF_CHGHDRS;
		break;
	case SMFIR_REPLBODY:
		need = SMFIF_CHGBODY;
		break;
	case SMFIR_ADDRCPT:
		need = SMFIF_ADDRCPT;
		break;
	case SMFIR_ADDRCPT_PAR:
		need = SMFIF_ADDRCPT_PAR;
		break;
	case SMFIR_DELRCPT:
		need = SMFIF_DELRCPT;
		break;
	case SMFIR_CHGFROM:
		need = SMFIF_CHGFROM;
		break;
	default:
		need = SMFIF_QUARANTINE;
		break;
	}
	if (!(m->neg->actions & need))
		return milter_fail(m, "modification '%c' it did not "
		    "negotiate", r->cmd);
	switch (r->cmd) {
	case SMFIR_ADDHEADER:
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		TAILQ_FOREACH(mod, &ch->mods, entry)
			nmods++;
		if (nmods >= MILTER_MODS_MAX)
			return milter_fail(m, "more than %d header changes",
			    MILTER_MODS_MAX);
		if ((mod = calloc(1, sizeof(*mod))) == NULL)
			fatal("calloc");
		mod->cmd = r->cmd;
		mod->index = r->index;
		mod->name = str_dup(r->name);
		/* An empty CHGHEADER value deletes: no value then. */
		if (r->cmd != SMFIR_CHGHEADER || r->value[0] != '\0')
			mod->value = milter_raw_value(r->value,
			    (m->neg->protocol & SMFIP_HDR_LEADSPC) != 0);
		TAILQ_INSERT_TAIL(&ch->mods, mod, entry);
		return 0;
	case SMFIR_REPLBODY:
		if (ch->bodylen + r->bodylen > max || r->bodylen > max)
			return milter_fail(m, "replaced body larger than the "
			    "message size limit");
		if (r->bodylen > 0) {
			if ((b = realloc(ch->body, ch->bodylen +
			    r->bodylen)) == NULL)
				fatal("realloc");
			ch->body = b;
			memcpy(ch->body + ch->bodylen, r->body, r->bodylen);
			ch->bodylen += r->bodylen;
		}
		ch->replbody = 1;
		return 0;
	case SMFIR_QUARANTINE:
		if (ch->quarantine[0] == '\0')
			strlcpy(ch->quarantine, r->text,
			    sizeof(ch->quarantine));
		return 0;
	case SMFIR_CHGFROM:
		if (milter_parse_address(r->addr, addr, sizeof(addr), 1) == -1)
			return milter_fail(m, "bad sender");
		if (r->args != NULL && r->args[0] != '\0')
			log_info("session=%016llx milter=%s event=chgfrom "
			    "ignored-args=%s", (unsigned long long)
			    m->fs->id, m->name, log_text(r->args));
		free(ch->sender);
		ch->sender = str_dup(addr);
		return 0;
	default:
		if (ch->nrcptops + (m->fs->msg != NULL ?
		    m->fs->msg->ch.nrcptops : 0) >= FILTER_RCPT_OPS_MAX)
			return milter_fail(m, "more than %d recipients added "
			    "or deleted", FILTER_RCPT_OPS_MAX);
		if (milter_parse_address(r->addr, addr, sizeof(addr), 0) == -1)
			return milter_fail(m, "bad recipient");
		if ((op = calloc(1, sizeof(*op))) == NULL)
			fatal("calloc");
		op->op = r->cmd == SMFIR_DELRCPT ? FILTER_RCPT_DEL :
		    FILTER_RCPT_ADD;
		op->addr = str_dup(addr);
		op->args = str_dup(r->args);
		TAILQ_INSERT_TAIL(&ch->rcptops, op, entry);
		ch->nrcptops++;
		return 0;
	}
}

/*
 * The header value as it will be written after "Name:": our leading
 * space unless the milter negotiated its own (HDR_LEADSPC), and every
 * line break a CR LF (milters fold with a bare LF).
 */
static char *
milter_raw_value(const char *v, int leadspc)
{
	char	*out, *o;
	size_t	 len = strlen(v);

	if ((out = malloc(2 * len + 2)) == NULL)
		fatal("malloc");
	o = out;
	if (!leadspc)
		*o++ = ' ';
	for (; *v != '\0'; v++) {
		if (*v == '\n' && (o == out || o[-1] != '\r'))
			*o++ = '\r';
		*o++ = *v;
	}
	*o = '\0';
	return out;
}

/* The reply we send for a plain REJECT or TEMPFAIL at this stage. */
static void
milter_reply_default(struct filter_milter *m, int verdict)
{
	const char	*r;

	if (m->fs->stage == FILTER_STAGE_CONNECT)
		r = verdict == FILTER_REJECT ? "554 5.7.1 Connection refused" :
		    "421 4.7.1 Service unavailable, try again later";
	else
		r = verdict == FILTER_REJECT ? "550 5.7.1 Command rejected" :
		    "451 4.7.1 Service unavailable, try again later";
	strlcpy(m->reply, r, sizeof(m->reply));
}

/*
 * The reply that ends the milter's part of the stage.  0 read on (the
 * message goes on), 1 verdict set, -1 failed.
 */
static int
milter_final(struct filter_milter *m, int cmd, const struct milter_reply *r)
{
	enum filter_stage	 stage = m->fs->stage;
	int			 w = m->wait, code;

	if (cmd == SMFIR_SKIP) {
		if (w != SMFIC_BODY)
			return milter_fail(m, "SKIP not after a body chunk");
		m->wait = 0;
		m->mskip = 1;
		milter_timer(m);
		return milter_message_step(m);
	}
	m->wait = 0;
	milter_timer(m);
	switch (cmd) {
	case SMFIR_CONTINUE:
		if (w == SMFIC_HEADER || w == SMFIC_EOH || w == SMFIC_BODY)
			return milter_message_step(m);
		/* FALLTHROUGH */
	case SMFIR_ACCEPT:
		m->verdict = FILTER_CONTINUE;
		if (stage <= FILTER_STAGE_HELO) {
			if (cmd == SMFIR_ACCEPT) {
				/* Accepted for the session: done with it. */
				filter_count(m, "accept");
				milter_quit(m);
				m->state = M_SKIP;
			}
			return 1;
		}
		if (w == SMFIC_BODYEOB || cmd == SMFIR_ACCEPT) {
			/* This message is over for it (libmilter agrees). */
			m->in_msg = 0;
			m->msg_done = 1;
			filter_count(m, "accept");
			if (m->ch.quarantine[0] != '\0')
				filter_count(m, "quarantine");
			if (m->fs->msg != NULL)
				filter_changes_take(&m->fs->msg->ch, &m->ch);
			filter_changes_clear(&m->ch);
		}
		return 1;
	case SMFIR_REJECT:
	case SMFIR_TEMPFAIL:
		m->verdict = cmd == SMFIR_REJECT ? FILTER_REJECT :
		    FILTER_TEMPFAIL;
		milter_reply_default(m, m->verdict);
		break;
	case SMFIR_REPLYCODE:
		if (milter_parse_replycode(r->text, m->reply, sizeof(m->reply),
		    &code) == -1)
			return milter_fail(m, "unusable reply code");
		m->verdict = code >= 500 ? FILTER_REJECT : FILTER_TEMPFAIL;
		break;
	case SMFIR_DISCARD:
		if (stage <= FILTER_STAGE_HELO)
			return milter_fail(m, "DISCARD before MAIL");
		m->verdict = FILTER_DISCARD;
		m->in_msg = 0;
		m->msg_done = 1;
		filter_count(m, "discard");
		filter_changes_clear(&m->ch);
		return 1;
	default:
		return milter_fail(m, "reply '%c' not allowed here",
		    cmd > 0x20 && cmd < 0x7f ? cmd : '?');
	}
	/* A refusal: what it asked to change goes with the message. */
	filter_count(m, m->verdict == FILTER_REJECT ? "reject" : "tempfail");
	filter_changes_clear(&m->ch);
	if (w == SMFIC_BODYEOB)
		m->in_msg = 0;
	return 1;
}

void
filter_changes_init(struct filter_changes *ch)
{
	memset(ch, 0, sizeof(*ch));
	TAILQ_INIT(&ch->mods);
	TAILQ_INIT(&ch->rcptops);
}

void
filter_changes_clear(struct filter_changes *ch)
{
	struct filter_mod	*mod;
	struct filter_rcptop	*op;

	while ((mod = TAILQ_FIRST(&ch->mods)) != NULL) {
		TAILQ_REMOVE(&ch->mods, mod, entry);
		free(mod->name);
		free(mod->value);
		free(mod);
	}
	while ((op = TAILQ_FIRST(&ch->rcptops)) != NULL) {
		TAILQ_REMOVE(&ch->rcptops, op, entry);
		free(op->addr);
		free(op->args);
		free(op);
	}
	free(ch->sender);
	free(ch->body);
	filter_changes_init(ch);
}

/*
 * A milter accepted the message: its changes come after those of the
 * milters before it.  Its body and sender replace theirs; the first
 * quarantine reason stays.
 */
void
filter_changes_take(struct filter_changes *to, struct filter_changes *from)
{
	struct filter_mod	*mod;
	struct filter_rcptop	*op;

	while ((mod = TAILQ_FIRST(&from->mods)) != NULL) {
		TAILQ_REMOVE(&from->mods, mod, entry);
		TAILQ_INSERT_TAIL(&to->mods, mod, entry);
	}
	while ((op = TAILQ_FIRST(&from->rcptops)) != NULL) {
		TAILQ_REMOVE(&from->rcptops, op, entry);
		TAILQ_INSERT_TAIL(&to->rcptops, op, entry);
		to->nrcptops++;
	}
	from->nrcptops = 0;
	if (from->sender != NULL) {
		free(to->sender);
		to->sender = from->sender;
		from->sender = NULL;
	}
	if (from->replbody) {
		free(to->body);
		to->body = from->body;
		to->bodylen = from->bodylen;
		to->replbody = 1;
		from->body = NULL;
		from->bodylen = 0;
		from->replbody = 0;
	}
	if (to->quarantine[0] == '\0')
		strlcpy(to->quarantine, from->quarantine,
		    sizeof(to->quarantine));
}
