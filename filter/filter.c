/*
 * The filter process: the milter client (SPEC §9).  The smtp process
 * asks at every stage of a session whose listener has milters and waits
 * for the verdict; here the stage runs through the session's milters in
 * the listener's order, the first refusal ends it, and the end of the
 * message may leave a modified copy of the message file behind.  One
 * milter conversation is filter_milter.c's, the message file and its
 * copy are filter_message.c's.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/tree.h>

#include <netinet/in.h>

#include <errno.h>
#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmx.h"
#include "filter.h"

static int	filter_session_cmp(struct filter_session *,
		    struct filter_session *);
RB_PROTOTYPE_INTERNAL(filter_sessions, filter_session, node,
    filter_session_cmp, SMX_RB_STATIC);

static struct filter_session *filter_session_get(struct msg *);
static void	filter_session_free(struct filter_session *);
static void	filter_conf_apply(struct msg *);
static void	filter_counters(const struct smx_conf *);
static void	filter_connect(struct msg *);
static void	filter_helo(struct msg *);
static void	filter_mail(struct msg *);
static void	filter_rcpt(struct msg *);
static void	filter_data(struct msg *);
static void	filter_eom(struct msg *);
static void	filter_abort(struct msg *);
static void	filter_close(struct msg *);
static void	filter_unix_result(struct msg *);
static void	filter_open_result(struct msg *);
static void	filter_open(struct filter_session *, int);
static void	filter_stage_begin(struct filter_session *,
		    enum filter_stage);
static void	filter_stage_next(struct filter_session *);
static int	filter_stage_verdict(struct filter_session *,
		    struct filter_milter *);
static void	filter_stage_end(struct filter_session *);
static void	filter_message_over(struct filter_session *);
static void	filter_answer(struct filter_session *, int, const char *);
static void	filter_rewrite(struct filter_session *, int);

static const char *const	 stage_names[FILTER_STAGE_COUNT] = {
	[FILTER_STAGE_CONNECT] = "connect",
	[FILTER_STAGE_HELO] = "helo",
	[FILTER_STAGE_MAIL] = "mail",
	[FILTER_STAGE_RCPT] = "rcpt",
	[FILTER_STAGE_DATA] = "data",
	[FILTER_STAGE_MESSAGE] = "message",
};

static struct filter_sessions	 sessions = RB_INITIALIZER(&sessions);

RB_GENERATE_INTERNAL(filter_sessions, filter_session, node,
    filter_session_cmp, SMX_RB_STATIC);

static int
filter_session_cmp(struct filter_session *a, struct filter_session *b)
{
	if (a->id < b->id)
		return -1;
	return a->id > b->id;
}

void
filter(void)
{
	proc_drop_privileges();
	filter_counters(env->conf);
	event_dispatch();
	fatalx("event loop ended");
}

void
filter_imsg(struct msgchan *ch, struct msg *m, void *arg)
{
	(void)arg;
	if (proc_imsg(ch, m))
		return;
	switch (m->type) {
	case IMSG_CONF_APPLY:
		proc_expect(ch, m, PROC_PARENT);
		filter_conf_apply(m);
		break;
	case IMSG_FILTER_CONNECT:
		proc_expect(ch, m, PROC_SMTP);
		filter_connect(m);
		break;
	case IMSG_FILTER_HELO:
		proc_expect(ch, m, PROC_SMTP);
		filter_helo(m);
		break;
	case IMSG_FILTER_MAIL:
		proc_expect(ch, m, PROC_SMTP);
		filter_mail(m);
		break;
	case IMSG_FILTER_RCPT:
		proc_expect(ch, m, PROC_SMTP);
		filter_rcpt(m);
		break;
	case IMSG_FILTER_DATA:
		proc_expect(ch, m, PROC_SMTP);
		filter_data(m);
		break;
	case IMSG_FILTER_MESSAGE:
		proc_expect(ch, m, PROC_SMTP);
		filter_eom(m);
		break;
	case IMSG_FILTER_ABORT:
		proc_expect(ch, m, PROC_SMTP);
		filter_abort(m);
		break;
	case IMSG_FILTER_CLOSE:
		proc_expect(ch, m, PROC_SMTP);
		filter_close(m);
		break;
	case IMSG_FILTER_MILTER_CONNECT_RESULT:
		proc_expect(ch, m, PROC_PARENT);
		filter_unix_result(m);
		break;
	case IMSG_QUEUE_MESSAGE_OPEN_RESULT:
		proc_expect(ch, m, PROC_QUEUE);
		filter_open_result(m);
		break;
	default:
		fatalx("unexpected %s from %s", imsg_name(m->type),
		    proc_name(ch->peer));
	}
}

/* Sessions carry their milters: the configuration names the counters. */
static void
filter_conf_apply(struct msg *m)
{
	conf_free(proc_conf_apply(m));
	filter_counters(env->conf);
}

/* Every milter's counters exist from the start, at 0. */
static void
filter_counters(const struct smx_conf *c)
{
	static const char *const	 verdicts[] = {
		"accept", "reject", "tempfail", "discard", "quarantine",
		"error"
	};
	const struct smx_milter		*mi;
	char				 name[64];
	size_t				 i;

	TAILQ_FOREACH(mi, &c->milters, entry)
		for (i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++) {
			(void)snprintf(name, sizeof(name), "milter.%s.%s",
			    mi->name, verdicts[i]);
			stat_add(name, 0);
		}
}

/* "milter.rspamd.reject" += 1 */
void
filter_count(const struct filter_milter *m, const char *verdict)
{
	char	 name[64];

	(void)snprintf(name, sizeof(name), "milter.%s.%s", m->name, verdict);
	stat_add(name, 1);
}

/* A session the smtp process opened; any other is a bug of ours. */
static struct filter_session *
filter_session_get(struct msg *m)
{
	struct filter_session	 key, *fs;

	if (msg_get_u64(m, &key.id) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((fs = RB_FIND(filter_sessions, &sessions, &key)) == NULL)
		fatalx("%s for an unknown session %016llx", imsg_name(m->type),
		    (unsigned long long)key.id);
	if (fs->busy && m->type != IMSG_FILTER_ABORT &&
	    m->type != IMSG_FILTER_CLOSE)
		fatalx("%s while a stage is under way", imsg_name(m->type));
	return fs;
}

/* IMSG_FILTER_CONNECT: the session and its milters, then the stage. */
static void
filter_connect(struct msg *m)
{
	struct filter_session	*fs;
	struct filter_milter	*mi;
	struct sockaddr_storage	 local;
	socklen_t		 locallen;
	uint32_t		 n, i, on_error;
	int64_t			 timeout;

	if ((fs = calloc(1, sizeof(*fs))) == NULL)
		fatal("calloc");
	if (msg_get_u64(m, &fs->id) == -1 ||
	    msg_get_str(m, fs->hostname, sizeof(fs->hostname)) == -1 ||
	    msg_get_sockaddr(m, &local, &locallen) == -1 ||
	    msg_get_sockaddr(m, &fs->client, &fs->clientlen) == -1 ||
	    msg_get_u32(m, &n) == -1 || n == 0 || n > SMX_LISTEN_MILTERS)
		fatalx("bad %s", imsg_name(m->type));
	if (RB_INSERT(filter_sessions, &sessions, fs) != NULL)
		fatalx("%s: session %016llx twice", imsg_name(m->type),
		    (unsigned long long)fs->id);
	if ((fs->milters = calloc(n, sizeof(*fs->milters))) == NULL)
		fatal("calloc");
	fs->nmilters = n;
	for (i = 0; i < n; i++) {
		mi = &fs->milters[i];
		filter_milter_init(mi, fs);
		if (msg_get_str(m, mi->name, sizeof(mi->name)) == -1 ||
		    msg_get_str(m, mi->address, sizeof(mi->address)) == -1 ||
		    msg_get_u32(m, &on_error) == -1 ||
		    on_error >= MILTER_ON_ERROR_COUNT ||
		    msg_get_i64(m, &timeout) == -1 || timeout < 1)
			fatalx("bad %s", imsg_name(m->type));
		mi->on_error = (enum smx_milter_error)on_error;
		mi->timeout = (time_t)timeout;
	}
	if (msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	sa_str((struct sockaddr *)&fs->client, fs->client_addr,
	    sizeof(fs->client_addr));
	sa_str((struct sockaddr *)&local, fs->daemon_addr,
	    sizeof(fs->daemon_addr));
	(void)snprintf(fs->client_port, sizeof(fs->client_port), "%u",
	    ntohs(((struct sockaddr_in *)&fs->client)->sin_port));
	(void)snprintf(fs->daemon_port, sizeof(fs->daemon_port), "%u",
	    ntohs(((struct sockaddr_in *)&local)->sin_port));
	filter_stage_begin(fs, FILTER_STAGE_CONNECT);
}

static void
filter_helo(struct msg *m)
{
	struct filter_session	*fs = filter_session_get(m);
	uint32_t		 bits;

	if (msg_get_str(m, fs->helo, sizeof(fs->helo)) == -1 ||
	    msg_get_str(m, fs->tls_version, sizeof(fs->tls_version)) == -1 ||
	    msg_get_str(m, fs->cipher, sizeof(fs->cipher)) == -1 ||
	    msg_get_u32(m, &bits) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	fs->cipher_bits[0] = '\0';
	if (fs->tls_version[0] != '\0')
		(void)snprintf(fs->cipher_bits, sizeof(fs->cipher_bits), "%u",
		    bits);
	filter_stage_begin(fs, FILTER_STAGE_HELO);
}

static void
filter_mail(struct msg *m)
{
	struct filter_session	*fs = filter_session_get(m);
	const char		*args;

	if (msg_get_str(m, fs->mail_addr, sizeof(fs->mail_addr)) == -1 ||
	    msg_get_strp(m, &args) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	free(fs->mail_args);
	fs->mail_args = str_dup(args);
	fs->queue_id[0] = '\0';
	fs->discard = 0;
	filter_stage_begin(fs, FILTER_STAGE_MAIL);
}

static void
filter_rcpt(struct msg *m)
{
	struct filter_session	*fs = filter_session_get(m);
	const char		*args;

	if (msg_get_str(m, fs->rcpt_addr, sizeof(fs->rcpt_addr)) == -1 ||
	    msg_get_strp(m, &args) == -1 ||
	    msg_get_str(m, fs->rcpt_mailer, sizeof(fs->rcpt_mailer)) == -1 ||
	    msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	free(fs->rcpt_args);
	fs->rcpt_args = str_dup(args);
	filter_stage_begin(fs, FILTER_STAGE_RCPT);
}

static void
filter_data(struct msg *m)
{
	struct filter_session	*fs = filter_session_get(m);

	if (msg_get_str(m, fs->queue_id, sizeof(fs->queue_id)) == -1 ||
	    msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	filter_stage_begin(fs, FILTER_STAGE_DATA);
}

/*
 * IMSG_FILTER_MESSAGE: the message file is the queue's to open for us
 * (read-only); the stage starts when it is here.
 */
static void
filter_eom(struct msg *m)
{
	struct filter_session	*fs = filter_session_get(m);
	char			 id[64];
	uint64_t		 size, offset;

	if (msg_get_str(m, id, sizeof(id)) == -1 ||
	    msg_get_u64(m, &size) == -1 || msg_get_u64(m, &offset) == -1 ||
	    offset > size || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	strlcpy(fs->queue_id, id, sizeof(fs->queue_id));
	fs->stage = FILTER_STAGE_MESSAGE;
	fs->busy = 1;
	fs->cur = 0;
	if (fs->refused || fs->failed) {
		filter_stage_begin(fs, FILTER_STAGE_MESSAGE);
		return;
	}
	fs->msg = filter_message_new(id, size, offset);
	filter_open(fs, QUEUE_OPEN_READ);
}

/* The queue opens the incoming file: to read it, or its new copy. */
static void
filter_open(struct filter_session *fs, int mode)
{
	struct msg	 m;

	msg_init(&m, IMSG_QUEUE_MESSAGE_OPEN, 0);
	msg_add_u64(&m, fs->id);
	msg_add_str(&m, fs->msg->id);
	msg_add_u32(&m, (uint32_t)mode);
	proc_send(PROC_QUEUE, &m);
	fs->msg->reqid = fs->id;
	fs->msg->rewriting = mode == QUEUE_OPEN_REWRITE;
}

static void
filter_open_result(struct msg *m)
{
	struct filter_session	 key, *fs;
	struct filter_message	*msg;
	uint32_t		 ok;
	char			 why[128];
	int			 fd;

	fd = msg_take_fd(m);
	if (msg_get_u64(m, &key.id) == -1 || msg_get_u32(m, &ok) == -1 ||
	    msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((fs = RB_FIND(filter_sessions, &sessions, &key)) == NULL ||
	    (msg = fs->msg) == NULL || msg->reqid != key.id) {
		/* The session went away meanwhile. */
		if (fd != -1)
			close(fd);
		return;
	}
	msg->reqid = 0;
	if (!ok || fd == -1) {
		if (fd != -1)
			close(fd);
		log_warnx("session=%016llx id=%s event=milter-open-failed",
		    (unsigned long long)fs->id, msg->id);
		filter_answer(fs, FILTER_TEMPFAIL, "451 4.3.0 Error: the "
		    "message cannot be filtered now, try again later");
		return;
	}
	if (msg->rewriting) {
		filter_rewrite(fs, fd);
		return;
	}
	if (filter_message_load(msg, fd, why, sizeof(why)) == -1) {
		log_info("session=%016llx id=%s event=milter-refused "
		    "reason=%s", (unsigned long long)fs->id, msg->id,
		    log_text(why));
		if (strncmp(why, "header section", 14) == 0)
			filter_answer(fs, FILTER_REJECT, "552 5.3.4 Message "
			    "header too large for the content filters");
		else
			filter_answer(fs, FILTER_TEMPFAIL, "451 4.3.0 Error: "
			    "the message cannot be filtered now, try again "
			    "later");
		return;
	}
	filter_stage_begin(fs, FILTER_STAGE_MESSAGE);
}

/* IMSG_FILTER_ABORT: milters with a message open get SMFIC_ABORT. */
static void
filter_abort(struct msg *m)
{
	struct filter_session	*fs = filter_session_get(m);
	size_t			 i;

	if (msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	for (i = 0; i < fs->nmilters; i++)
		filter_milter_abort(&fs->milters[i]);
	fs->discard = 0;
	if (fs->busy) {
		/* Only on the way out: the stage is dropped, unanswered. */
		fs->busy = 0;
		filter_message_free(fs->msg);
		fs->msg = NULL;
	}
}

static void
filter_close(struct msg *m)
{
	struct filter_session	*fs = filter_session_get(m);

	if (msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	filter_session_free(fs);
}

static void
filter_session_free(struct filter_session *fs)
{
	size_t	 i;

	for (i = 0; i < fs->nmilters; i++)
		filter_milter_close(&fs->milters[i]);
	RB_REMOVE(filter_sessions, &sessions, fs);
	filter_message_free(fs->msg);
	free(fs->milters);
	free(fs->mail_args);
	free(fs->rcpt_args);
	free(fs);
}

/* IMSG_FILTER_MILTER_CONNECT_RESULT: u64 reqid, u32 errno, fd. */
static void
filter_unix_result(struct msg *m)
{
	uint64_t	 reqid;
	uint32_t	 error;
	int		 fd;

	fd = msg_take_fd(m);
	if (msg_get_u64(m, &reqid) == -1 || msg_get_u32(m, &error) == -1 ||
	    msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if (error == 0 && fd == -1)
		error = EBADF;
	filter_milter_connected(reqid, fd, (int)error);
}

/* The session a parent's connect is for, if it still waits. */
struct filter_session *
filter_session_find(uint64_t id)
{
	struct filter_session	 key;

	key.id = id;
	return RB_FIND(filter_sessions, &sessions, &key);
}

/*
 * A stage: a sticky refusal or failure answers at once; otherwise the
 * milters take it in order.
 */
static void
filter_stage_begin(struct filter_session *fs, enum filter_stage stage)
{
	fs->stage = stage;
	fs->busy = 1;
	fs->cur = 0;
	if (fs->refused) {
		filter_answer(fs, fs->refused, fs->refusal);
		return;
	}
	if (fs->failed && stage >= FILTER_STAGE_MAIL) {
		filter_answer(fs, fs->failed, fs->failure);
		return;
	}
	filter_stage_next(fs);
}

static void
filter_stage_next(struct filter_session *fs)
{
	struct filter_milter	*m;

	while (fs->cur < fs->nmilters) {
		m = &fs->milters[fs->cur];
		if (filter_milter_run(m) == 0)
			return;		/* filter_stage_done() follows */
		if (filter_stage_verdict(fs, m))
			return;
		fs->cur++;
	}
	filter_stage_end(fs);
}

/* The milter at work on the stage has its verdict, later than asked. */
void
filter_stage_done(struct filter_milter *m)
{
	struct filter_session	*fs = m->fs;

	if (!fs->busy || fs->cur >= fs->nmilters ||
	    &fs->milters[fs->cur] != m)
		return;
	if (filter_stage_verdict(fs, m))
		return;
	fs->cur++;
	filter_stage_next(fs);
}

/*
 * One milter's verdict on the stage: 0 go on with the next milter, 1
 * the stage is answered.  A refusal at connect or HELO holds for the
 * session; at MAIL, DATA or the end of the message it ends the
 * message (the other milters get ABORT); at RCPT it is that
 * recipient's.
 */
static int
filter_stage_verdict(struct filter_session *fs, struct filter_milter *m)
{
	size_t	 i;

	switch (m->verdict) {
	case FILTER_CONTINUE:
		return 0;
	case -1:
		/* Failed; filter_session_failed() applied its on-error. */
		if (m->on_error == MILTER_ON_ERROR_ACCEPT)
			return 0;
		if (fs->stage <= FILTER_STAGE_HELO) {
			/* The refusal comes at MAIL. */
			filter_answer(fs, FILTER_CONTINUE, "");
			return 1;
		}
		filter_message_over(fs);
		filter_answer(fs, fs->failed, fs->failure);
		return 1;
	case FILTER_REJECT:
	case FILTER_TEMPFAIL:
		if (fs->stage <= FILTER_STAGE_HELO) {
			fs->refused = m->verdict;
			strlcpy(fs->refusal, m->reply, sizeof(fs->refusal));
			for (i = 0; i < fs->nmilters; i++)
				filter_milter_close(&fs->milters[i]);
		} else if (fs->stage != FILTER_STAGE_RCPT)
			filter_message_over(fs);
		/* A multi-line reply: its CR LFs are escaped. */
		log_info("session=%016llx milter=%s event=%s stage=%s "
		    "reply=%s", (unsigned long long)fs->id, m->name,
		    m->verdict == FILTER_REJECT ? "reject" : "tempfail",
		    stage_names[fs->stage], log_text(m->reply));
		filter_answer(fs, m->verdict, m->reply);
		return 1;
	case FILTER_DISCARD:
		log_info("session=%016llx milter=%s event=discard stage=%s",
		    (unsigned long long)fs->id, m->name,
		    stage_names[fs->stage]);
		filter_message_over(fs);
		fs->discard = 1;
		filter_answer(fs, FILTER_DISCARD, "");
		return 1;
	default:
		fatalx("milter verdict %d", m->verdict);
	}
}

/* The message is over for every milter before its end: ABORT. */
static void
filter_message_over(struct filter_session *fs)
{
	size_t	 i;

	for (i = 0; i < fs->nmilters; i++)
		filter_milter_abort(&fs->milters[i]);
}

/* Every milter let the stage go on. */
static void
filter_stage_end(struct filter_session *fs)
{
	struct filter_message	*msg = fs->msg;

	if (fs->stage != FILTER_STAGE_MESSAGE || msg == NULL ||
	    !filter_message_rewrites(msg)) {
		filter_answer(fs, FILTER_CONTINUE, "");
		return;
	}
	filter_open(fs, QUEUE_OPEN_REWRITE);
}

/*
 * The modified message, into the file that has taken the message's
 * name in incoming/ (the original stays readable through msg->fd).
 * The queue fsyncs it at the commit like any message file.
 */
static void
filter_rewrite(struct filter_session *fs, int fd)
{
	struct filter_message	*msg = fs->msg;
	uint64_t		 size;
	int			 r, saved;

	r = filter_message_write(msg, fd, &size);
	saved = errno;
	if (close(fd) == -1 && r == 0) {
		r = -1;
		saved = errno;
	}
	if (r == -1) {
		log_warnx("session=%016llx id=%s event=milter-rewrite-failed "
		    "error=%s", (unsigned long long)fs->id, msg->id,
		    log_text(strerror(saved)));
		filter_answer(fs, FILTER_TEMPFAIL, saved == ENOSPC ||
		    saved == EDQUOT ? "452 4.3.1 Insufficient system storage" :
		    "451 4.3.0 Error: local write error, try again later");
		return;
	}
	log_debug("session=%016llx id=%s event=milter-rewritten size=%llu",
	    (unsigned long long)fs->id, msg->id, (unsigned long long)size);
	msg->size = size;
	filter_answer(fs, FILTER_CONTINUE, "");
}

/*
 * The stage's answer to the smtp process (see "filter protocol" in
 * splitmx.h); the message stage has its own.
 */
static void
filter_answer(struct filter_session *fs, int verdict, const char *reply)
{
	struct msg	 m;

	if (!fs->busy)
		fatalx("filter: answer without a stage");
	if (fs->stage == FILTER_STAGE_MESSAGE) {
		filter_message_answer(fs, verdict, reply);
		return;
	}
	fs->busy = 0;
	msg_init(&m, IMSG_FILTER_RESULT, 0);
	msg_add_u64(&m, fs->id);
	msg_add_u32(&m, (uint32_t)fs->stage);
	msg_add_u32(&m, (uint32_t)verdict);
	msg_add_str(&m, verdict == FILTER_REJECT ||
	    verdict == FILTER_TEMPFAIL ? reply : "");
	proc_send(PROC_SMTP, &m);
}

/*
 * IMSG_FILTER_MESSAGE_RESULT: the verdict on the message and, when it
 * goes on, what the milters changed in its envelope.
 */
void
filter_message_answer(struct filter_session *fs, int verdict,
    const char *reply)
{
	struct filter_message	*msg = fs->msg;
	struct filter_rcptop	*op;
	struct msg		 m;

	fs->busy = 0;
	msg_init(&m, IMSG_FILTER_MESSAGE_RESULT, 0);
	msg_add_u64(&m, fs->id);
	msg_add_u32(&m, (uint32_t)verdict);
	msg_add_str(&m, verdict == FILTER_REJECT ||
	    verdict == FILTER_TEMPFAIL ? reply : "");
	if (verdict != FILTER_CONTINUE || msg == NULL) {
		msg_add_str(&m, "");
		msg_add_u64(&m, msg != NULL ? msg->size : 0);
		msg_add_str(&m, NULL);
		msg_add_u32(&m, 0);
	} else {
		msg_add_str(&m, msg->ch.quarantine);
		msg_add_u64(&m, msg->size);
		msg_add_str(&m, msg->ch.sender);
		msg_add_u32(&m, (uint32_t)msg->ch.nrcptops);
		TAILQ_FOREACH(op, &msg->ch.rcptops, entry) {
			msg_add_u32(&m, op->op);
			msg_add_str(&m, op->addr);
			msg_add_str(&m, op->args);
		}
	}
	filter_message_free(msg);
	fs->msg = NULL;
	if (m.error)
		fatalx("%s too large", imsg_name(m.type));
	proc_send(PROC_SMTP, &m);
}

/*
 * A milter failed (down, timeout, garbage, a broken protocol): its
 * on-error.  accept: the session goes on without it (logged once, as
 * the failure); tempfail, reject: from MAIL on the session is refused.
 */
void
filter_session_failed(struct filter_session *fs, struct filter_milter *m)
{
	m->verdict = -1;
	if (m->on_error == MILTER_ON_ERROR_ACCEPT) {
		m->state = M_SKIP;
		return;
	}
	m->state = M_DONE;
	if (fs->failed)
		return;
	if (m->on_error == MILTER_ON_ERROR_REJECT) {
		fs->failed = FILTER_REJECT;
		strlcpy(fs->failure, "550 5.7.1 Command rejected",
		    sizeof(fs->failure));
	} else {
		fs->failed = FILTER_TEMPFAIL;
		strlcpy(fs->failure, "451 4.7.1 Service unavailable, try "
		    "again later", sizeof(fs->failure));
	}
}

/*
 * The macros of SPEC §9 (and v, our name), as Postfix names them:
 * one-letter names bare, longer ones in braces.  NULL: not known now.
 */
const char *
filter_macro(const struct filter_session *fs, const char *name)
{
	static char	 under[SMX_HOSTSZ + INET6_ADDRSTRLEN + 16];
	const char	*v = NULL;

	if (strcmp(name, "j") == 0 || strcmp(name, "{j}") == 0 ||
	    strcmp(name, "{daemon_name}") == 0)
		v = fs->hostname;
	else if (strcmp(name, "{daemon_addr}") == 0 ||
	    strcmp(name, "{if_addr}") == 0)
		v = fs->daemon_addr;
	else if (strcmp(name, "{daemon_port}") == 0)
		v = fs->daemon_port;
	else if (strcmp(name, "{client_addr}") == 0)
		v = fs->client_addr;
	else if (strcmp(name, "{client_port}") == 0)
		v = fs->client_port;
	else if (strcmp(name, "{client_name}") == 0)
		v = "unknown";
	else if (strcmp(name, "_") == 0) {
		(void)snprintf(under, sizeof(under), "unknown [%s]",
		    fs->client_addr);
		v = under;
	} else if (strcmp(name, "v") == 0)
		v = "splitmx " SPLITMX_VERSION;
	else if (strcmp(name, "{tls_version}") == 0)
		v = fs->tls_version;
	else if (strcmp(name, "{cipher}") == 0)
		v = fs->cipher;
	else if (strcmp(name, "{cipher_bits}") == 0)
		v = fs->cipher_bits;
	else if (strcmp(name, "i") == 0 || strcmp(name, "{i}") == 0)
		v = fs->queue_id;
	else if (strcmp(name, "{mail_addr}") == 0)
		v = fs->stage >= FILTER_STAGE_MAIL ? fs->mail_addr : NULL;
	else if (strcmp(name, "{rcpt_addr}") == 0)
		v = fs->stage >= FILTER_STAGE_RCPT ? fs->rcpt_addr : NULL;
	else if (strcmp(name, "{rcpt_mailer}") == 0)
		v = fs->stage >= FILTER_STAGE_RCPT ? fs->rcpt_mailer : NULL;
	return v != NULL && *v != '\0' ? v : NULL;
}
