/*
 * libFuzzer target over the SMTP server session: a client's bytes go to
 * a real session (smtp/smtp_session.c, smtp_message.c, smtp_parse.c)
 * over a socketpair, its replies are read back, and what it asks of the
 * lookup and queue processes travels over message channels to this
 * harness, which answers as those processes would (smtp.c's part:
 * finding the session, the result calls).
 * fuzz-link: smtp/smtp_session.c smtp/smtp_message.c smtp/smtp_parse.c
 * fuzz-link: smtp/smtp_policy.c smtp/smtp_filter.c
 * fuzz-link: lib/msg.c lib/util.c lib/tlsio.c lib/log.c
 * fuzz-link: smtpd/names.c smtpd/conf.c smtpd/parse.y smtpd/tls_policy.c
 * fuzz-link: queue/queue_fs_envelope.c queue/queue_fs.c
 *
 * Beyond memory:
 * - every reply line is printable, at most 512 octets with its CRLF,
 *   has a code of 2xx-5xx, continues with the same code, and nothing
 *   follows the last reply of a closing session (221, 421, "closing
 *   connection", the early talker's 554), and only TLS records follow
 *   STARTTLS's 220 (what the client sent in clear after it is never
 *   taken as a command);
 * - every message the session sends decodes as its receiver decodes it
 *   (lookup.c's lookup_rcpt, queue_commit.c's queue_commit_envelope and
 *   queue_commit_create, the rollback), with the receiver's checks;
 * - a commit names a file the queue created, with the size of that
 *   file, a sender and recipients as the lookups accepted them (last
 *   ones, in order, with our rewriting, class, destination and policy),
 *   and becomes an envelope the queue can write and read back;
 * - the message file starts with our Received: header, every line
 *   ends in CRLF and has at most 998 octets, no NUL, no bare CR or LF;
 * - a session ends when its client has gone, releasing what it held;
 * - every log line it writes (protocol trace included) is one line of
 *   printable ASCII: what the client chose is escaped.
 *
 * The input: one byte of options, then the client's bytes.
 *	bits 0-1  the listener: plain, STARTTLS without a usable pki (454),
 *		  tls-require (530), STARTTLS
 *	bit 2     limit recipients 2		bit 3  limit message-size 300
 *	bit 4     the queue cannot create	bit 5  the queue cannot commit
 *	bit 6     the client talks before the banner
 *	bit 7     one line per write (else one write)
 * FUZZ_SHOW=1 in the environment prints the replies.
 * Lookup answers come from the recipient's first letter: x refused, t
 * tempfail, w refused with a bad code and controls in the text, c a
 * custom recipient rewritten to r-<address> for notes.example.com,
 * anything else a local mailbox.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "splitmx.h"
#include "smtp.h"
#include "queue.h"
#include "fuzz.h"

#define O_LISTEN	0x03
#define O_RCPTS		0x04
#define O_SIZE		0x08
#define O_NOCREATE	0x10
#define O_NOCOMMIT	0x20
#define O_EARLY		0x40
#define O_LINES		0x80

#define MAX_FILES	16
#define MAX_ACCEPTED	256
#define OUT_MAX		(4 * 1024 * 1024)
#define IDLE_MAX	2000	/* turns without progress: a hang */

struct accepted {
	char		 sender[SMX_ADDRSZ];
	char		 rcpt[SMX_ADDRSZ];
	char		 rewritten[SMX_ADDRSZ + 2];
	char		 dest[SMX_HOSTSZ];
	uint32_t	 rclass;
	uint32_t	 tls;
};

struct qfile {
	char		 id[QUEUE_IDSZ];
	int		 fd;		/* our copy of the message file */
	int		 done;		/* committed or rolled back */
};

/* What one input's session did. */
struct run {
	int		 opts;
	int		 gone;
	int		 refs;
	char		*out;
	size_t		 outlen;
	struct accepted	 acc[MAX_ACCEPTED];
	size_t		 nacc;
	struct qfile	 files[MAX_FILES];
	size_t		 nfiles;
	int		 progress;
};

/*
 * A throwaway self-signed certificate and key, for the listener that
 * offers STARTTLS: what follows the 220 must go to the handshake, never
 * to the command reader (the client's plain text fails it).
 */
static const char fuzz_cert[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBijCCATGgAwIBAgIUdSg1PSjmn/KPezBKxriYy2c5mWowCgYIKoZIzj0EAwIw\n"
	"GjEYMBYGA1UEAwwPbXgxLmV4YW1wbGUuY29tMCAXDTI2MTIwMzEwNTMxNVoYDzIx\n"
	"MjYxMTA5MTA1MzE1WjAaMRgwFgYDVQQDDA9teDEuZXhhbXBsZS5jb20wWTATBgcq\n"
	"hkjOPQIBBggqhkjOPQMBBwNCAAQ/CWHVjC1HiNHA9ocUhZY31WDox87heS4xchrp\n"
	"YjpiIqyOyz3yBrvY2uXLNmhjWMqqT+m660oT/t1InMPlSizXo1MwUTAdBgNVHQ4E\n"
	"FgQU0vcubQtg24JP602NzDQ/9FNzAuEwHwYDVR0jBBgwFoAU0vcubQtg24JP602N\n"
	"zDQ/9FNzAuEwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiBZTbkT\n"
	"FiF+qGInJ1mzpRN8kAgO/+fZiXSVDr1kfpU++QIgVzmw/PMA0B5FBv3PLkk6A/Db\n"
	"j1eNmBXGSzfsEJlfy0U=\n"
	"-----END CERTIFICATE-----\n";
static const char fuzz_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXTfUIrDevSVQ8p7/\n"
	"NEvG023nCfgZaZXSkPX9YASgz4qhRANCAAQ/CWHVjC1HiNHA9ocUhZY31WDox87h\n"
	"eS4xchrpYjpiIqyOyz3yBrvY2uXLNmhjWMqqT+m660oT/t1InMPlSizX\n"
	"-----END PRIVATE KEY-----\n";

static struct event_base	*base;
static struct smx_conf		*conf;
static struct smx_listener	 listener;
static struct smtp_gen		 gen;
static struct smtp_listen	 listen_;
static struct msgchan		 to[PROC_COUNT], from[PROC_COUNT];
static struct run		 run;
static struct tls		*tls_ctx;
static int			 logfd = -1;	/* the "parent's" end */

static void	setup(void);
static void	handler(struct msgchan *, struct msg *, void *);
static void	answer(int);
static void	answer_lookup(struct msg *);
static void	answer_create(struct msg *);
static void	answer_commit(struct msg *);
static void	answer_rollback(struct msg *);
static struct qfile *file_find(const char *);
static void	check_file(struct qfile *, uint64_t);
static void	check_envelope(struct queue_envelope *);
static void	check_replies(const char *, size_t);
static void	read_output(int);
static void	check_logs(void);
static ssize_t	next_chunk(const uint8_t *, size_t, size_t, int);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	size_t			 off = 1, i;
	ssize_t			 n;
	int			 sv[2], idle = 0, shut = 0;

	if (size < 1 || size > 256 * 1024)
		return 0;
	if (base == NULL)
		setup();
	memset(&run, 0, sizeof(run));
	run.opts = data[0];
	switch (run.opts & O_LISTEN) {
	case 0:
		listener.flags = 0;
		listen_.tls = NULL;
		break;
	case 1:
		listener.flags = F_LISTEN_TLS;
		listen_.tls = NULL;
		break;
	case 2:
		listener.flags = F_LISTEN_TLS_REQUIRE;
		listen_.tls = NULL;
		break;
	default:
		listener.flags = F_LISTEN_TLS;
		listen_.tls = tls_ctx;
		break;
	}
	conf->max_recipients = (run.opts & O_RCPTS) ? 2 : DEF_RECIPIENTS;
	conf->max_message_size = (run.opts & O_SIZE) ? 300 :
	    DEF_MESSAGE_SIZE;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == -1)
		fuzz_fail("socketpair: %s", strerror(errno));
	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(40025);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	run.refs = gen.refs;
	smtp_session_new(sv[0], &ss, sizeof(*sin), &listen_);
	if (run.opts & O_EARLY)
		off += (size_t)next_chunk(data, size, off, sv[1]);

	while (!run.gone) {
		run.progress = 0;
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (off < size &&
		    (n = next_chunk(data, size, off, sv[1])) > 0) {
			off += (size_t)n;
			run.progress = 1;
		}
		if (off == size && !shut) {
			/* The client is done: the session must end. */
			shutdown(sv[1], SHUT_WR);
			shut = 1;
		}
		answer(PROC_LOOKUP);
		answer(PROC_QUEUE);
		read_output(sv[1]);
		check_logs();
		if (run.progress)
			idle = 0;
		else
			FUZZ_CHECK(++idle < IDLE_MAX, "the session hangs");
	}
	read_output(sv[1]);
	close(sv[1]);
	/* What the session sent as it ended (a rollback). */
	answer(PROC_LOOKUP);
	answer(PROC_QUEUE);
	check_logs();
	FUZZ_CHECK(gen.refs == run.refs, "configuration references %d, "
	    "not %d", gen.refs, run.refs);
	if (getenv("FUZZ_SHOW") != NULL && run.outlen > 0)
		fwrite(run.out, 1, run.outlen, stderr);	/* for people */
	check_replies(run.out, run.outlen);
	for (i = 0; i < run.nfiles; i++) {
		FUZZ_CHECK(run.files[i].done, "message file %s neither "
		    "committed nor rolled back", run.files[i].id);
		close(run.files[i].fd);
	}
	free(run.out);
	return 0;
}

static void
setup(void)
{
	struct smx_domain	*d;
	struct smx_net		*n;
	struct tls_config	*cfg;
	int			 sv[2], p;

	base = event_init();
	/* As a child logs: records to the parent, here to check_logs(). */
	log_init(0, 1);
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == -1)
		fuzz_fail("socketpair");
	log_to_parent(sv[0]);
	logfd = sv[1];
	if ((conf = conf_new()) == NULL)
		fuzz_fail("conf_new");
	strlcpy(conf->hostname, "mx1.example.com", sizeof(conf->hostname));
	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (n = calloc(1, sizeof(*n))) == NULL)
		fuzz_fail("calloc");
	strlcpy(d->name, "example.com", sizeof(d->name));
	TAILQ_INIT(&d->forward_from);
	TAILQ_INSERT_TAIL(&conf->domains, d, entry);
	/* Trusted: the banner comes at once, not after 0.5 s. */
	if (parse_net("127.0.0.0/8", &n->ss, &n->prefixlen, NULL) == -1)
		fuzz_fail("parse_net");
	TAILQ_INSERT_TAIL(&conf->trusted, n, entry);
	if (tls_init() == -1 || (cfg = tls_config_new()) == NULL ||
	    tls_config_set_keypair_mem(cfg, (const uint8_t *)fuzz_cert,
	    sizeof(fuzz_cert) - 1, (const uint8_t *)fuzz_key,
	    sizeof(fuzz_key) - 1) == -1 || (tls_ctx = tls_server()) == NULL ||
	    tls_configure(tls_ctx, cfg) == -1)
		fuzz_fail("TLS server context");
	listener.port = 25;
	listener.fd = -1;
	gen.conf = conf;
	gen.refs = 1;
	TAILQ_INIT(&gen.pkis);
	gen.listens = &listen_;
	gen.nlistens = 1;
	listen_.gen = &gen;
	listen_.l = &listener;
	for (p = 0; p < PROC_COUNT; p++) {
		if (p != PROC_LOOKUP && p != PROC_QUEUE)
			continue;
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
			fuzz_fail("socketpair");
		msgchan_init(&to[p], sv[0], p, handler, NULL);
		msgchan_init(&from[p], sv[1], PROC_SMTP, handler, NULL);
	}
}

static void
handler(struct msgchan *ch, struct msg *m, void *arg)
{
	(void)ch;
	(void)m;
	(void)arg;
}

/* The bytes the client sends next: the rest, or its next line. */
static ssize_t
next_chunk(const uint8_t *data, size_t size, size_t off, int fd)
{
	const uint8_t	*nl;
	size_t		 n = size - off;
	ssize_t		 w;

	if (run.opts & O_LINES) {
		if ((nl = memchr(data + off, '\n', n)) != NULL)
			n = (size_t)(nl - (data + off)) + 1;
	}
	if ((w = send(fd, data + off, n, MSG_NOSIGNAL)) == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		/* The session closed its side: the rest goes nowhere. */
		return (ssize_t)n;
	}
	return w;
}

static void
read_output(int fd)
{
	char	 buf[16384];
	ssize_t	 n;
	char	*p;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		run.progress = 1;
		FUZZ_CHECK(run.outlen + (size_t)n <= OUT_MAX,
		    "more than %d octets of replies", OUT_MAX);
		if ((p = realloc(run.out, run.outlen + (size_t)n)) == NULL)
			fuzz_fail("realloc");
		run.out = p;
		memcpy(run.out + run.outlen, buf, (size_t)n);
		run.outlen += (size_t)n;
	}
}

/* The log records so far: one printable line each. */
static void
check_logs(void)
{
	char	 rec[LOG_LINE_MAX + 64];
	ssize_t	 n, i;

	while ((n = recv(logfd, rec, sizeof(rec), MSG_DONTWAIT)) > 0) {
		FUZZ_CHECK(n > 1 && n <= LOG_LINE_MAX + 1, "log record of %zd",
		    n);
		for (i = 1; i < n; i++)
			FUZZ_CHECK(rec[i] >= 0x20 && rec[i] < 0x7f,
			    "octet 0x%02x in a log line: %.*s",
			    (unsigned char)rec[i], (int)(n - 1), rec + 1);
	}
}

/*
 * The other processes, from here.  smtp.c is not linked: these are its
 * parts that the session calls.
 */
void
proc_send(int peer, struct msg *m)
{
	FUZZ_CHECK(peer == PROC_LOOKUP || peer == PROC_QUEUE,
	    "smtp sends to %s", proc_name(peer));
	FUZZ_CHECK(!m->error, "%s too large to send", imsg_name(m->type));
	if (msgchan_send(&to[peer], m) == -1 || msgchan_flush(&to[peer]) ==
	    -1)
		fuzz_fail("send to %s: %s", proc_name(peer), strerror(errno));
}

const char *
proc_name(int p)
{
	return p == PROC_LOOKUP ? "lookup" : p == PROC_QUEUE ? "queue" :
	    "another process";
}

void
stat_add(const char *name, int64_t delta)
{
	(void)name;
	(void)delta;
}

void
stat_set(const char *name, int64_t value)
{
	(void)name;
	(void)value;
}

void
smtp_gen_ref(struct smtp_gen *g)
{
	g->refs++;
}

void
smtp_gen_unref(struct smtp_gen *g)
{
	FUZZ_CHECK(--g->refs > 0, "the configuration released");
}

void
smtp_session_gone(const struct sockaddr_storage *ss)
{
	(void)ss;
	FUZZ_CHECK(!run.gone, "a session gone twice");
	run.gone = 1;
}

void
smtp_queue_rollback(const char *id)
{
	struct msg	 m;

	msg_init(&m, IMSG_QUEUE_MESSAGE_ROLLBACK, 0);
	msg_add_str(&m, id);
	proc_send(PROC_QUEUE, &m);
}

/* Every message waiting from the session to peer, answered. */
static void
answer(int peer)
{
	struct msg	 m;
	int		 r;

	while (msgchan_read(&from[peer]) > 0)
		;
	while ((r = msgchan_get(&from[peer], &m)) == 1) {
		run.progress = 1;
		switch (m.type) {
		case IMSG_LOOKUP_RCPT:
			FUZZ_CHECK(peer == PROC_LOOKUP, "lookup to the queue");
			answer_lookup(&m);
			break;
		case IMSG_QUEUE_MESSAGE_CREATE:
			FUZZ_CHECK(peer == PROC_QUEUE, "create to lookup");
			answer_create(&m);
			break;
		case IMSG_QUEUE_MESSAGE_COMMIT:
			FUZZ_CHECK(peer == PROC_QUEUE, "commit to lookup");
			answer_commit(&m);
			break;
		case IMSG_QUEUE_MESSAGE_ROLLBACK:
			FUZZ_CHECK(peer == PROC_QUEUE, "rollback to lookup");
			answer_rollback(&m);
			break;
		default:
			fuzz_fail("unexpected %s", imsg_name(m.type));
		}
		msg_clear(&m);
	}
	FUZZ_CHECK(r == 0, "a bad frame to %s", proc_name(peer));
}

/* lookup.c's lookup_rcpt reads it so; the answer is route.c's kind. */
static void
answer_lookup(struct msg *m)
{
	struct sockaddr_storage	 ss;
	struct smtp_session	*s;
	struct accepted		*a;
	socklen_t		 sslen;
	uint64_t		 reqid;
	const char		*sender, *rcpt, *p;
	char			 text[SMX_ADDRSZ + 64];
	char			 rewritten[SMX_ADDRSZ + 2];

	if (msg_get_u64(m, &reqid) == -1 ||
	    msg_get_sockaddr(m, &ss, &sslen) == -1 ||
	    msg_get_strp(m, &sender) == -1 ||
	    msg_get_strp(m, &rcpt) == -1 ||
	    msg_end(m) == -1 || sender == NULL || rcpt == NULL)
		fuzz_fail("bad %s", imsg_name(m->type));
	FUZZ_CHECK(ss.ss_family == AF_INET && sslen == sizeof(struct
	    sockaddr_in), "client address");
	FUZZ_CHECK(rcpt[0] != '\0' && strlen(rcpt) < SMX_ADDRSZ &&
	    strlen(sender) < SMX_ADDRSZ, "lookup of <%s> from <%s>", rcpt,
	    sender);
	for (p = rcpt; *p != '\0'; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f,
		    "control octet in a recipient");
	for (p = sender; *p != '\0'; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f,
		    "control octet in a sender");
	if ((s = smtp_session_find(reqid)) == NULL)
		return;		/* gone meanwhile, as smtp.c does */

	switch (rcpt[0]) {
	case 'x':
		(void)snprintf(text, sizeof(text), "5.1.1 <%s>: Recipient "
		    "address rejected", rcpt);
		smtp_session_rcpt_result(s, LOOKUP_REJECT, 550, text,
		    ROUTE_NONE, "", "", TLSP_NONE);
		return;
	case 't':
		smtp_session_rcpt_result(s, LOOKUP_TEMPFAIL, 451,
		    "4.4.3 Directory unavailable", ROUTE_NONE, "", "",
		    TLSP_NONE);
		return;
	case 'w':
		smtp_session_rcpt_result(s, LOOKUP_REJECT, 250,
		    "\x1b[31m5.7.1\r\nno\x7f\xff", ROUTE_NONE, "", "",
		    TLSP_NONE);
		return;
	}
	FUZZ_CHECK(run.nacc < MAX_ACCEPTED, "too many recipients accepted");
	a = &run.acc[run.nacc++];
	strlcpy(a->sender, sender, sizeof(a->sender));
	strlcpy(a->rcpt, rcpt, sizeof(a->rcpt));
	if (rcpt[0] == 'c') {
		(void)snprintf(rewritten, sizeof(rewritten), "r-%s", rcpt);
		strlcpy(a->rewritten, rewritten, sizeof(a->rewritten));
		strlcpy(a->dest, "notes.example.com", sizeof(a->dest));
		a->rclass = ROUTE_CUSTOM;
		a->tls = TLSP_REQUIRE;
	} else {
		rewritten[0] = '\0';
		strlcpy(a->rewritten, rcpt, sizeof(a->rewritten));
		strlcpy(a->dest, "[10.0.0.5]:25", sizeof(a->dest));
		a->rclass = ROUTE_LOCAL;
		a->tls = TLSP_OPPORTUNISTIC;
	}
	smtp_session_rcpt_result(s, LOOKUP_ACCEPT, 250, "2.1.5 Ok",
	    a->rclass, rewritten, a->dest, a->tls);
}

/* queue_commit_create: a file, its descriptor for the session. */
static void
answer_create(struct msg *m)
{
	struct smtp_session	*s;
	struct qfile		*f;
	uint64_t		 reqid;
	int			 fd;

	if (msg_get_u64(m, &reqid) == -1 || msg_end(m) == -1)
		fuzz_fail("bad %s", imsg_name(m->type));
	if ((s = smtp_session_find(reqid)) == NULL)
		return;
	if ((run.opts & O_NOCREATE) || run.nfiles == MAX_FILES) {
		smtp_message_create_result(s, 0, "", -1);
		return;
	}
	f = &run.files[run.nfiles++];
	(void)snprintf(f->id, sizeof(f->id), "%024zx", run.nfiles);
	if ((f->fd = memfd_create(f->id, MFD_CLOEXEC)) == -1 ||
	    (fd = dup(f->fd)) == -1)
		fuzz_fail("memfd: %s", strerror(errno));
	smtp_message_create_result(s, 1, f->id, fd);
}

static struct qfile *
file_find(const char *id)
{
	size_t	 i;

	for (i = 0; i < run.nfiles; i++)
		if (strcmp(run.files[i].id, id) == 0)
			return &run.files[i];
	return NULL;
}

/*
 * queue_commit_envelope's reading and checks, then ours: the file, the
 * recipients as the lookups accepted them, an envelope on disk.
 */
static void
answer_commit(struct msg *m)
{
	struct queue_envelope	 e;
	struct queue_rcpt	*r;
	struct sockaddr_storage	 ss;
	struct smtp_session	*s;
	struct accepted		*a;
	struct qfile		*f;
	socklen_t		 sslen;
	const char		*str[6];
	char			 id[QUEUE_IDSZ], addr[INET6_ADDRSTRLEN];
	uint64_t		 reqid, size;
	uint32_t		 i, nrcpt;

	memset(&e, 0, sizeof(e));
	if (msg_get_u64(m, &reqid) == -1 || msg_get_str(m, id, QUEUE_IDSZ) ==
	    -1 || !queue_fs_id_valid(id) || msg_get_u64(m, &size) == -1)
		fuzz_fail("bad %s", imsg_name(m->type));
	if (msg_get_strp(m, &str[0]) == -1 || msg_get_strp(m, &str[1]) == -1 ||
	    msg_get_sockaddr(m, &ss, &sslen) == -1 ||
	    msg_get_strp(m, &str[2]) == -1 || msg_get_u32(m, &e.body) == -1 ||
	    msg_get_u32(m, &e.flags) == -1 || msg_get_strp(m, &str[3]) == -1 ||
	    msg_get_u32(m, &e.ret) == -1 || msg_get_strp(m, &str[4]) == -1 ||
	    msg_get_u32(m, &nrcpt) == -1)
		fuzz_fail("bad %s", imsg_name(m->type));
	/* No milter here: nothing held, no recipient added with an error. */
	FUZZ_CHECK(str[4] == NULL || *str[4] == '\0', "quarantined: %s",
	    str[4]);
	if (e.body >= BODY_COUNT || e.ret >= RET_COUNT || nrcpt == 0 ||
	    nrcpt > QUEUE_MAXRCPT ||
	    (e.flags & ~(uint32_t)(F_MSG_SMTPUTF8 | F_MSG_TLS)) != 0)
		fuzz_fail("bad %s: field out of range", imsg_name(m->type));
	FUZZ_CHECK(nrcpt <= conf->max_recipients && nrcpt <= run.nacc,
	    "%u recipients committed, %zu accepted", nrcpt, run.nacc);
	strlcpy(e.id, id, sizeof(e.id));
	e.arrival = 1764756000;
	e.size = size;
	e.sender = str_dup(str[0]);
	e.helo = str_dup(str[1]);
	e.client = str_dup(sa_str((struct sockaddr *)&ss, addr,
	    sizeof(addr)));
	e.client_host = str_dup(str[2]);
	e.envid = str_dup(str[3]);
	if ((e.rcpts = calloc(nrcpt, sizeof(*e.rcpts))) == NULL)
		fuzz_fail("calloc");
	e.nrcpt = nrcpt;
	for (i = 0; i < nrcpt; i++) {
		r = &e.rcpts[i];
		if (msg_get_strp(m, &str[0]) == -1 ||
		    msg_get_strp(m, &str[1]) == -1 ||
		    msg_get_u32(m, &r->class) == -1 ||
		    msg_get_strp(m, &str[2]) == -1 ||
		    msg_get_u32(m, &r->tls) == -1 ||
		    msg_get_u32(m, &r->notify) == -1 ||
		    msg_get_strp(m, &str[3]) == -1 ||
		    msg_get_strp(m, &str[4]) == -1)
			fuzz_fail("bad %s", imsg_name(m->type));
		FUZZ_CHECK(str[4] == NULL || *str[4] == '\0',
		    "recipient %u with an error: %s", i, str[4]);
		if (r->class >= ROUTE_COUNT || r->tls >= TLSP_COUNT ||
		    (r->notify & ~(uint32_t)(F_NOTIFY_NEVER |
		    F_NOTIFY_SUCCESS | F_NOTIFY_FAILURE | F_NOTIFY_DELAY)) != 0)
			fuzz_fail("bad %s: field out of range",
			    imsg_name(m->type));
		r->rcpt = str_dup(str[0]);
		r->rewritten = str_dup(str[1] != NULL && *str[1] != '\0' ?
		    str[1] : str[0]);
		r->dest = str_dup(str[2]);
		r->orcpt = str_dup(str[3]);
		r->last_error = str_dup("");
		r->state = STATE_QUEUED;
		r->next_try = e.arrival;

		/* The last nrcpt accepted, in order, as we answered. */
		a = &run.acc[run.nacc - nrcpt + i];
		FUZZ_CHECK(strcmp(a->sender, e.sender) == 0,
		    "sender <%s> committed, <%s> looked up", e.sender,
		    a->sender);
		FUZZ_CHECK(strcmp(a->rcpt, r->rcpt) == 0 &&
		    strcmp(a->rewritten, r->rewritten) == 0 &&
		    strcmp(a->dest, r->dest) == 0 && a->rclass == r->class &&
		    a->tls == r->tls, "recipient %u: <%s> committed as "
		    "<%s> to %s, accepted <%s> as <%s> to %s", i, r->rcpt,
		    r->rewritten, r->dest, a->rcpt, a->rewritten, a->dest);
	}
	if (msg_end(m) == -1)
		fuzz_fail("bad %s", imsg_name(m->type));
	FUZZ_CHECK((f = file_find(id)) != NULL && !f->done,
	    "commit of a file the queue did not give: %s", id);
	f->done = 1;
	check_file(f, size);
	check_envelope(&e);
	queue_fs_envelope_free(&e);

	if ((s = smtp_session_find(reqid)) == NULL)
		return;
	if (run.opts & O_NOCOMMIT)
		smtp_message_commit_result(s, 0, "451 4.3.0 fsync failed");
	else
		smtp_message_commit_result(s, 1, "250 2.0.0 Ok");
}

/* queue_commit_rollback: a file that was created and is not in. */
static void
answer_rollback(struct msg *m)
{
	struct qfile	*f;
	char		 id[QUEUE_IDSZ];

	if (msg_get_str(m, id, sizeof(id)) == -1 || msg_end(m) == -1 ||
	    !queue_fs_id_valid(id))
		fuzz_fail("bad %s", imsg_name(m->type));
	FUZZ_CHECK((f = file_find(id)) != NULL && !f->done,
	    "rollback of %s, not the queue's or done", id);
	f->done = 1;
}

/* The message file as the queue will keep and the relay send it. */
static void
check_file(struct qfile *f, uint64_t size)
{
	struct stat	 st;
	char		*buf, *p, *end, *nl;

	FUZZ_CHECK(fstat(f->fd, &st) == 0 && (uint64_t)st.st_size == size,
	    "commit says %llu octets, the file has %lld",
	    (unsigned long long)size, (long long)st.st_size);
	if ((buf = malloc(size + 1)) == NULL)
		fuzz_fail("malloc");
	FUZZ_CHECK(pread(f->fd, buf, size, 0) == (ssize_t)size, "pread");
	buf[size] = '\0';
	FUZZ_CHECK(strncmp(buf, "Received: from ", 15) == 0,
	    "the file does not start with our Received: header");
	FUZZ_CHECK(memchr(buf, '\0', size) == NULL, "NUL in the file");
	end = buf + size;
	for (p = buf; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		FUZZ_CHECK(nl != NULL, "the file does not end with CRLF");
		FUZZ_CHECK(nl > p && nl[-1] == '\r' &&
		    memchr(p, '\r', (size_t)(nl - p - 1)) == NULL,
		    "bare CR or LF in the file");
		FUZZ_CHECK(nl - p - 1 <= 998, "a line of %zd octets",
		    nl - p - 1);
	}
	free(buf);
}

/* The queue writes it to disk and reads it back after a crash. */
static void
check_envelope(struct queue_envelope *e)
{
	struct queue_envelope	 back;
	char			*buf, err[256];
	size_t			 len;
	uint32_t		 i;

	FUZZ_CHECK(queue_fs_envelope_event(e, e->arrival, "received") == 0,
	    "history");
	FUZZ_CHECK(queue_fs_envelope_encode(e, &buf, &len) == 0,
	    "a committed message cannot be written: %s", strerror(errno));
	FUZZ_CHECK(queue_fs_envelope_decode(buf, len, &back, err,
	    sizeof(err)) == 0, "its envelope does not read back: %s", err);
	FUZZ_CHECK(strcmp(back.sender, e->sender) == 0 &&
	    strcmp(back.helo, e->helo) == 0 &&
	    strcmp(back.envid, e->envid) == 0 && back.nrcpt == e->nrcpt,
	    "envelope read back differs");
	for (i = 0; i < e->nrcpt; i++)
		FUZZ_CHECK(strcmp(back.rcpts[i].rcpt, e->rcpts[i].rcpt) == 0 &&
		    strcmp(back.rcpts[i].orcpt, e->rcpts[i].orcpt) == 0 &&
		    back.rcpts[i].notify == e->rcpts[i].notify,
		    "recipient %u read back differs", i);
	queue_fs_envelope_free(&back);
	free(buf);
}

/* Replies: RFC 5321 §4.2 lines, and silence after the last one. */
static void
check_replies(const char *out, size_t len)
{
	const char	*p, *nl, *end = out + len, *q;
	int		 code = 0, more = 0, closing = 0, tls = 0, c;

	for (p = out; p < end; p = nl + 1) {
		if (tls) {
			/* TLS records now (an alert): no reply in clear. */
			FUZZ_CHECK((p[0] == 0x15 || p[0] == 0x16) &&
			    end - p >= 2 && p[1] == 0x03,
			    "not TLS after STARTTLS: %.*s", (int)(end - p), p);
			break;
		}
		FUZZ_CHECK(!closing, "a reply after the session's last: %.*s",
		    (int)(end - p), p);
		nl = memchr(p, '\n', (size_t)(end - p));
		FUZZ_CHECK(nl != NULL && nl > p && nl[-1] == '\r',
		    "a reply line without CRLF");
		FUZZ_CHECK(nl + 1 - p <= 512, "a reply line of %zd octets",
		    nl + 1 - p);
		for (q = p; q < nl - 1; q++)
			FUZZ_CHECK(*q >= 0x20 && *q < 0x7f,
			    "octet 0x%02x in a reply", (unsigned char)*q);
		FUZZ_CHECK(nl - 1 - p >= 4 && p[0] >= '2' && p[0] <= '5' &&
		    p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' &&
		    (p[3] == ' ' || p[3] == '-'), "malformed reply %.*s",
		    (int)(nl - p), p);
		c = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
		FUZZ_CHECK(!more || c == code, "code %d continues %d", c,
		    code);
		code = c;
		more = p[3] == '-';
		if (!more && c == 220 &&
		    memmem(p, (size_t)(nl - p), "Ready to start TLS", 18))
			tls = 1;
		if (!more && (c == 221 || c == 421 ||
		    memmem(p, (size_t)(nl - p), "closing connection", 18) ||
		    memmem(p, (size_t)(nl - p), "before the greeting", 19)))
			closing = 1;
	}
	FUZZ_CHECK(!more, "the replies end in a continuation line");
}
