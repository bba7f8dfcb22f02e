/*
 * The queue process: message files for the smtp process, commits made
 * durable in batches, the in-memory index of the queue, its listing.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/tree.h>

#include <errno.h>
#include <event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "splitmx.h"
#include "queue.h"

#define QUEUE_STAT_INTERVAL	5	/* seconds, queue.oldest_age */
#define QUEUE_BATCH_MAX		128	/* commits per flush: bounds open fds */
#define QUEUE_CREATE_TRIES	8

/* A message file handed to the smtp process, not committed yet. */
#define F_IN_COMMITTING	0x01
#define F_IN_FAILED	0x02
struct queue_incoming {
	RB_ENTRY(queue_incoming) node;
	TAILQ_ENTRY(queue_incoming) batch;
	char			 id[QUEUE_IDSZ];
	int			 flags;
	uint64_t		 reqid;		/* of the COMMIT */
	struct queue_envelope	*env;
	struct queue_fs_commit	 fc;
	struct timespec		 t0;		/* COMMIT received */
};

RB_HEAD(queue_tree, queue_msg);
RB_HEAD(incoming_tree, queue_incoming);

static int	queue_msg_cmp(struct queue_msg *, struct queue_msg *);
static int	queue_incoming_cmp(struct queue_incoming *,
		    struct queue_incoming *);
/* libbsd's RB_*_STATIC need a __unused that libbsd leaves undefined. */
#define QUEUE_RB_ATTR	__attribute__((__unused__)) static
RB_PROTOTYPE_INTERNAL(queue_tree, queue_msg, node, queue_msg_cmp,
    QUEUE_RB_ATTR);
RB_PROTOTYPE_INTERNAL(incoming_tree, queue_incoming, node, queue_incoming_cmp,
    QUEUE_RB_ATTR);

static void	queue_recover(void);
static int	queue_age_cmp(const void *, const void *);
static void	queue_recovered(struct queue_envelope *, void *);
static void	queue_conf_apply(struct msg *);
static void	queue_create(struct msgchan *, struct msg *);
static void	queue_commit(struct msgchan *, struct msg *);
static struct queue_envelope *queue_commit_envelope(struct msg *,
		    uint64_t *, char *);
static void	queue_commit_reply(uint64_t, int, const char *);
static void	queue_commit_flush(int, short, void *);
static void	queue_rollback(struct msgchan *, struct msg *);
static void	queue_ctl_list(struct msgchan *, struct msg *);
static void	queue_ctl_show(struct msgchan *, struct msg *);
static void	queue_ctl_act(struct msgchan *, struct msg *);
static void	queue_ctl_pause(struct msgchan *, struct msg *);
static void	queue_relay_result(struct msgchan *, struct msg *);
static void	queue_ctl_result(uint64_t, uint32_t, uint32_t, uint32_t);
static void	queue_notify_str(char *, size_t, uint32_t);
static void	queue_routed(struct queue_envelope *);
static void	queue_stat_timer(int, short, void *);
static void	queue_stats(void);

struct queue_fs				 queue_spool;
static struct queue_tree		 messages = RB_INITIALIZER(&messages);
static TAILQ_HEAD(queue_age, queue_msg) by_age =
					    TAILQ_HEAD_INITIALIZER(by_age);
static size_t				 nmessages;
static struct incoming_tree		 incoming =
					    RB_INITIALIZER(&incoming);
static TAILQ_HEAD(, queue_incoming)	 pending =
					    TAILQ_HEAD_INITIALIZER(pending);
static size_t				 npending;
static struct event			 ev_flush, ev_stat;
static struct queue_envelope		**recovered;
static size_t				 nrecovered, caprecovered;

RB_GENERATE_INTERNAL(queue_tree, queue_msg, node, queue_msg_cmp,
    QUEUE_RB_ATTR)
RB_GENERATE_INTERNAL(incoming_tree, queue_incoming, node, queue_incoming_cmp,
    QUEUE_RB_ATTR)

static int
queue_msg_cmp(struct queue_msg *a, struct queue_msg *b)
{
	return strcmp(a->env->id, b->env->id);
}

static int
queue_incoming_cmp(struct queue_incoming *a, struct queue_incoming *b)
{
	return strcmp(a->id, b->id);
}

/*
 * Privileges go first: the spool is then "." (our chroot as root, our
 * cwd otherwise), and recovery works with paths relative to it.
 */
void
queue(void)
{
	struct timeval	 tv = { QUEUE_STAT_INTERVAL, 0 };

	proc_drop_privileges(PROC_QUEUE, env->conf->queue_dir);
	sched_init();
	queue_recover();
	evtimer_set(&ev_flush, queue_commit_flush, NULL);
	evtimer_set(&ev_stat, queue_stat_timer, NULL);
	evtimer_add(&ev_stat, &tv);
	queue_stats();
	event_dispatch();
	fatalx("event loop ended");
}

void
queue_imsg(struct msgchan *ch, struct msg *m, void *arg)
{
	(void)arg;
	if (proc_imsg(ch, m))
		return;
	switch (m->type) {
	case IMSG_CONF_APPLY:
		queue_conf_apply(m);
		break;
	case IMSG_QUEUE_MESSAGE_CREATE:
		queue_create(ch, m);
		break;
	case IMSG_QUEUE_MESSAGE_COMMIT:
		queue_commit(ch, m);
		break;
	case IMSG_QUEUE_MESSAGE_ROLLBACK:
		queue_rollback(ch, m);
		break;
	case IMSG_CTL_QUEUE_LIST:
		queue_ctl_list(ch, m);
		break;
	case IMSG_CTL_QUEUE_SHOW:
		queue_ctl_show(ch, m);
		break;
	case IMSG_CTL_QUEUE_SCHEDULE:
	case IMSG_CTL_QUEUE_REMOVE:
		queue_ctl_act(ch, m);
		break;
	case IMSG_CTL_RELAY_PAUSE:
		queue_ctl_pause(ch, m);
		break;
	case IMSG_RELAY_RESULT:
		queue_relay_result(ch, m);
		break;
	default:
		fatalx("unexpected %s from %s", imsg_name(m->type),
		    proc_name(ch->peer));
	}
}

static void
queue_conf_apply(struct msg *m)
{
	conf_free(proc_conf_apply(m));
}

char *
queue_strdup(const char *s)
{
	char	*p;

	if ((p = strdup(s == NULL ? "" : s)) == NULL)
		fatal("strdup");
	return p;
}

static int
queue_age_cmp(const void *a, const void *b)
{
	const struct queue_envelope	*x, *y;

	x = *(const struct queue_envelope *const *)a;
	y = *(const struct queue_envelope *const *)b;

	if (x->arrival != y->arrival)
		return x->arrival < y->arrival ? -1 : 1;
	return strcmp(x->id, y->id);
}

static void
queue_recovered(struct queue_envelope *e, void *arg)
{
	struct queue_envelope	**tmp;

	(void)arg;
	if (nrecovered == caprecovered) {
		caprecovered = caprecovered ? caprecovered * 2 : 256;
		if ((tmp = reallocarray(recovered, caprecovered,
		    sizeof(*recovered))) == NULL)
			fatal("reallocarray");
		recovered = tmp;
	}
	recovered[nrecovered++] = e;
}

/* See queue_fs.c for why wiping incoming/ and loading queue/ is right. */
static void
queue_recover(void)
{
	struct queue_fs_counts	 counts;
	struct queue_msg	*qm, *next, *last;
	struct timespec		 t0, t1;
	size_t			 i;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (queue_fs_open(&queue_spool, ".") == -1)
		fatal("queue: cannot open the spool %s", env->conf->queue_dir);
	if (queue_fs_recover(&queue_spool, queue_recovered, NULL,
	    &counts) == -1)
		fatal("queue: recovery of %s failed", env->conf->queue_dir);
	if (nrecovered > 0)
		qsort(recovered, nrecovered, sizeof(*recovered),
		    queue_age_cmp);
	for (i = 0; i < nrecovered; i++)
		queue_msg_add(recovered[i]);
	free(recovered);
	recovered = NULL;
	nrecovered = caprecovered = 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("event=recovered messages=%zu partial=%zu corrupt=%zu "
	    "incoming=%zu ms=%lld", counts.loaded, counts.partial,
	    counts.corrupt, counts.incoming,
	    (long long)((t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000));
	/*
	 * Whatever waited before the restart is due now, oldest first.
	 * Bounces made meanwhile go last, and are not recovered messages.
	 */
	last = TAILQ_LAST(&by_age, queue_age);
	for (qm = TAILQ_FIRST(&by_age); qm != NULL; qm = next) {
		next = qm == last ? NULL : TAILQ_NEXT(qm, age);
		sched_add(qm, 1);
	}
}

/*
 * The index takes the envelope.  by_age is ordered by (arrival, id), the
 * same order after a restart; a new message nearly always goes last.
 */
struct queue_msg *
queue_msg_add(struct queue_envelope *e)
{
	struct queue_msg	*qm, *prev;

	if ((qm = calloc(1, sizeof(*qm))) == NULL)
		fatal("calloc");
	qm->env = e;
	TAILQ_INIT(&qm->batches);
	if (RB_INSERT(queue_tree, &messages, qm) != NULL)
		fatalx("id=%s twice in the index", e->id);
	TAILQ_FOREACH_REVERSE(prev, &by_age, queue_age, age)
		if (queue_age_cmp(&prev->env, &qm->env) < 0)
			break;
	if (prev == NULL)
		TAILQ_INSERT_HEAD(&by_age, qm, age);
	else
		TAILQ_INSERT_AFTER(&by_age, prev, qm, age);
	nmessages++;
	return qm;
}

struct queue_msg *
queue_msg_oldest(void)
{
	return TAILQ_FIRST(&by_age);
}

/*
 * Removal (see queue_fs.c: the envelope goes first).  A failure leaves
 * files that the next start loads again: delivered twice, never lost.
 */
void
queue_msg_remove(struct queue_msg *qm)
{
	if (queue_fs_message_remove(&queue_spool, qm->env->id) == -1)
		log_warn("id=%s event=remove-failed", qm->env->id);
	RB_REMOVE(queue_tree, &messages, qm);
	TAILQ_REMOVE(&by_age, qm, age);
	nmessages--;
	stat_set("queue.messages", (int64_t)nmessages);
	queue_fs_envelope_free(qm->env);
	free(qm->env);
	free(qm);
}

struct queue_msg *
queue_msg_find(const char *id)
{
	struct queue_envelope	 ke;
	struct queue_msg	 key;

	memset(&ke, 0, sizeof(ke));
	strlcpy(ke.id, id, sizeof(ke.id));
	key.env = &ke;
	return RB_FIND(queue_tree, &messages, &key);
}

static struct queue_incoming *
queue_incoming_find(const char *id)
{
	struct queue_incoming	 key;

	strlcpy(key.id, id, sizeof(key.id));
	return RB_FIND(incoming_tree, &incoming, &key);
}

/*
 * A fresh message file: the id is new in the index and in incoming/,
 * and O_EXCL proves it new on disk.
 */
int
queue_msg_create(char *id, size_t idsz)
{
	int	 fd = -1, tries;

	errno = EEXIST;
	for (tries = 0; tries < QUEUE_CREATE_TRIES; tries++) {
		queue_fs_id_new(id, idsz, time(NULL));
		if (queue_msg_find(id) != NULL ||
		    queue_incoming_find(id) != NULL)
			continue;
		if ((fd = queue_fs_incoming_create(&queue_spool, id)) != -1 ||
		    errno != EEXIST)
			break;
	}
	return fd;
}

/*
 * IMSG_QUEUE_MESSAGE_CREATE: a fresh message file, its descriptor
 * write-only for the smtp process.
 */
static void
queue_create(struct msgchan *ch, struct msg *m)
{
	struct queue_incoming	*in;
	struct msg		 r;
	uint64_t		 reqid;
	char			 id[QUEUE_IDSZ];
	int			 fd;

	proc_expect(ch, m, PROC_SMTP);
	if (msg_get_u64(m, &reqid) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	fd = queue_msg_create(id, sizeof(id));
	msg_init(&r, IMSG_QUEUE_MESSAGE_CREATE_RESULT, 0);
	msg_add_u64(&r, reqid);
	if (fd == -1) {
		log_warn("event=create-failed");
		msg_add_u32(&r, 0);
		msg_add_str(&r, "");
		proc_send(PROC_SMTP, &r);
		return;
	}
	if ((in = calloc(1, sizeof(*in))) == NULL)
		fatal("calloc");
	strlcpy(in->id, id, sizeof(in->id));
	in->fc.msgfd = -1;
	RB_INSERT(incoming_tree, &incoming, in);
	msg_add_u32(&r, 1);
	msg_add_str(&r, id);
	msg_set_fd(&r, fd);
	proc_send(PROC_SMTP, &r);
	log_debug("id=%s event=created", id);
}

/* Reads the COMMIT fields (see splitmx.h) into a new envelope. */
static struct queue_envelope *
queue_commit_envelope(struct msg *m, uint64_t *reqid, char *id)
{
	struct queue_envelope	*e;
	struct queue_rcpt	*r;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	const char		*s[6];
	char			 addr[INET6_ADDRSTRLEN], text[128];
	uint64_t		 size;
	uint32_t		 i, nrcpt;

	if (msg_get_u64(m, reqid) == -1 || msg_get_str(m, id, QUEUE_IDSZ) ==
	    -1 || !queue_fs_id_valid(id) || msg_get_u64(m, &size) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((e = calloc(1, sizeof(*e))) == NULL)
		fatal("calloc");
	strlcpy(e->id, id, sizeof(e->id));
	e->arrival = time(NULL);
	e->size = size;
	if (msg_get_strp(m, &s[0]) == -1 || msg_get_strp(m, &s[1]) == -1 ||
	    msg_get_sockaddr(m, &ss, &sslen) == -1 ||
	    msg_get_strp(m, &s[2]) == -1 || msg_get_u32(m, &e->body) == -1 ||
	    msg_get_u32(m, &e->flags) == -1 || msg_get_strp(m, &s[3]) == -1 ||
	    msg_get_u32(m, &e->ret) == -1 || msg_get_u32(m, &nrcpt) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if (e->body >= BODY_COUNT || e->ret >= RET_COUNT || nrcpt == 0 ||
	    nrcpt > QUEUE_MAXRCPT ||
	    (e->flags & ~(uint32_t)(F_MSG_SMTPUTF8 | F_MSG_TLS)) != 0)
		fatalx("bad %s: field out of range", imsg_name(m->type));
	e->sender = queue_strdup(s[0]);
	e->helo = queue_strdup(s[1]);
	e->client = queue_strdup(sa_str((struct sockaddr *)&ss, addr,
	    sizeof(addr)));
	e->client_host = queue_strdup(s[2]);
	e->envid = queue_strdup(s[3]);
	if ((e->rcpts = calloc(nrcpt, sizeof(*e->rcpts))) == NULL)
		fatal("calloc");
	e->nrcpt = nrcpt;
	for (i = 0; i < nrcpt; i++) {
		r = &e->rcpts[i];
		if (msg_get_strp(m, &s[0]) == -1 ||
		    msg_get_strp(m, &s[1]) == -1 ||
		    msg_get_u32(m, &r->class) == -1 ||
		    msg_get_strp(m, &s[2]) == -1 ||
		    msg_get_u32(m, &r->notify) == -1 ||
		    msg_get_strp(m, &s[3]) == -1)
			fatalx("bad %s", imsg_name(m->type));
		if (r->class >= ROUTE_COUNT || (r->notify &
		    ~(uint32_t)(F_NOTIFY_NEVER | F_NOTIFY_SUCCESS |
		    F_NOTIFY_FAILURE | F_NOTIFY_DELAY)) != 0)
			fatalx("bad %s: field out of range",
			    imsg_name(m->type));
		r->rcpt = queue_strdup(s[0]);
		r->rewritten = queue_strdup(s[1] != NULL && *s[1] != '\0' ?
		    s[1] : s[0]);
		r->dest = queue_strdup(s[2]);
		r->orcpt = queue_strdup(s[3]);
		r->last_error = queue_strdup("");
		r->state = STATE_QUEUED;
		r->next_try = e->arrival;
	}
	if (msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	(void)snprintf(text, sizeof(text), "received from %s size %llu",
	    e->client, (unsigned long long)size);
	if (queue_fs_envelope_event(e, e->arrival, text) == -1)
		fatal("queue_fs_envelope_event");
	queue_routed(e);
	return e;
}

/*
 * The routing decisions, as history: one line per recipient, as many as
 * leave room in the history for the delivery attempts.
 */
#define QUEUE_ROUTED_MAX	32
static void
queue_routed(struct queue_envelope *e)
{
	struct queue_rcpt	*r;
	uint32_t		 i;

	for (i = 0; i < e->nrcpt && i < QUEUE_ROUTED_MAX; i++) {
		r = &e->rcpts[i];
		sched_event(e, "routed <%s>%s%s%s as %s to %s", r->rcpt,
		    strcmp(r->rcpt, r->rewritten) ? " -> <" : "",
		    strcmp(r->rcpt, r->rewritten) ? r->rewritten : "",
		    strcmp(r->rcpt, r->rewritten) ? ">" : "",
		    queue_fs_class_name(r->class),
		    r->class == ROUTE_BOUNCE ? "a bounce" :
		    *r->dest ? r->dest : "the MX of its domain");
	}
	if (i < e->nrcpt)
		sched_event(e, "routed %u more recipients", e->nrcpt - i);
}

static void
queue_commit_reply(uint64_t reqid, int ok, const char *text)
{
	struct msg	 r;

	msg_init(&r, IMSG_QUEUE_MESSAGE_COMMIT_RESULT, 0);
	msg_add_u64(&r, reqid);
	msg_add_u32(&r, ok ? 1 : 0);
	msg_add_str(&r, text);
	proc_send(PROC_SMTP, &r);
}

#define REPLY_TEMPFAIL	"451 4.3.0 Queue write failed, try again later"

/*
 * IMSG_QUEUE_MESSAGE_COMMIT: the envelope is written now; syncing and
 * publishing wait for the end of this event-loop turn, so that every
 * commit that arrived meanwhile shares the directory fsyncs.
 */
static void
queue_commit(struct msgchan *ch, struct msg *m)
{
	struct queue_incoming	*in;
	struct queue_envelope	*e;
	struct timeval		 tv = { 0, 0 };
	uint64_t		 reqid;
	char			 id[QUEUE_IDSZ];

	proc_expect(ch, m, PROC_SMTP);
	e = queue_commit_envelope(m, &reqid, id);
	if ((in = queue_incoming_find(id)) == NULL ||
	    (in->flags & F_IN_COMMITTING)) {
		log_warnx("id=%s event=commit-unknown", id);
		queue_fs_envelope_free(e);
		free(e);
		queue_commit_reply(reqid, 0, REPLY_TEMPFAIL);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &in->t0);
	if (queue_fs_commit_prepare(&queue_spool, e, &in->fc) == -1) {
		log_warn("id=%s event=commit-failed", id);
		queue_fs_commit_abort(&queue_spool, &in->fc);
		queue_fs_envelope_free(e);
		free(e);
		RB_REMOVE(incoming_tree, &incoming, in);
		free(in);
		stat_add("queue.commit_failures", 1);
		queue_commit_reply(reqid, 0, REPLY_TEMPFAIL);
		return;
	}
	in->flags |= F_IN_COMMITTING;
	in->reqid = reqid;
	in->env = e;
	TAILQ_INSERT_TAIL(&pending, in, batch);
	if (++npending >= QUEUE_BATCH_MAX)
		queue_commit_flush(-1, 0, NULL);
	else if (!evtimer_pending(&ev_flush, NULL))
		evtimer_add(&ev_flush, &tv);
}

/*
 * One batch: fsync every file, rename every message into queue/, fsync
 * the two directories once, and only then answer.  A message that
 * failed anywhere is undone and answered 451.
 */
static void
queue_commit_flush(int fd, short event, void *arg)
{
	struct queue_incoming	*in;
	struct queue_msg	*qm;
	struct timespec		 t1;
	char			 text[128];
	uint64_t		 fsyncs = queue_spool.fsyncs;
	long long		 us, maxus = 0;
	size_t			 n = 0, failed = 0, published = 0;

	(void)fd;
	(void)event;
	(void)arg;
	if (evtimer_pending(&ev_flush, NULL))
		evtimer_del(&ev_flush);

	/* Files first: one journal commit can then carry the whole batch. */
	TAILQ_FOREACH(in, &pending, batch)
		queue_fs_commit_writeback(&in->fc);
	TAILQ_FOREACH(in, &pending, batch)
		if (queue_fs_commit_sync(&queue_spool, &in->fc) == -1) {
			log_warn("id=%s event=commit-failed step=fsync",
			    in->id);
			in->flags |= F_IN_FAILED;
		}
	TAILQ_FOREACH(in, &pending, batch) {
		if (in->flags & F_IN_FAILED)
			continue;
		if (queue_fs_commit_publish(&queue_spool, &in->fc) == -1) {
			log_warn("id=%s event=commit-failed step=rename",
			    in->id);
			in->flags |= F_IN_FAILED;
		} else
			published++;
	}
	if (published > 0 && queue_fs_sync(&queue_spool) == -1) {
		log_warn("event=commit-failed step=fsync-dirs");
		TAILQ_FOREACH(in, &pending, batch)
			in->flags |= F_IN_FAILED;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);

	while ((in = TAILQ_FIRST(&pending)) != NULL) {
		TAILQ_REMOVE(&pending, in, batch);
		RB_REMOVE(incoming_tree, &incoming, in);
		n++;
		us = (t1.tv_sec - in->t0.tv_sec) * 1000000LL +
		    (t1.tv_nsec - in->t0.tv_nsec) / 1000;
		if (us > maxus)
			maxus = us;
		if (in->flags & F_IN_FAILED) {
			queue_fs_commit_abort(&queue_spool, &in->fc);
			queue_fs_envelope_free(in->env);
			free(in->env);
			failed++;
			queue_commit_reply(in->reqid, 0, REPLY_TEMPFAIL);
		} else {
			queue_fs_commit_done(&in->fc);
			log_info("id=%s event=queued size=%llu rcpts=%u "
			    "from=<%s>", in->id,
			    (unsigned long long)in->env->size,
			    in->env->nrcpt, in->env->sender);
			qm = queue_msg_add(in->env);
			(void)snprintf(text, sizeof(text),
			    "250 2.0.0 Ok: queued as %s", in->id);
			queue_commit_reply(in->reqid, 1, text);
			sched_add(qm, 0);
		}
		free(in);
	}
	npending = 0;
	if (n == 0)
		return;
	if (failed > 0)
		stat_add("queue.commit_failures", (int64_t)failed);
	stat_add("queue.commits", (int64_t)(n - failed));
	stat_add("queue.batches", 1);
	stat_add("queue.fsyncs", (int64_t)(queue_spool.fsyncs - fsyncs));
	stat_set("queue.commit_latency_us", maxus);
	stat_set("queue.messages", (int64_t)nmessages);
	log_debug("event=batch commits=%zu failed=%zu fsyncs=%llu "
	    "max_us=%lld", n, failed,
	    (unsigned long long)(queue_spool.fsyncs - fsyncs), maxus);
}

/* IMSG_QUEUE_MESSAGE_ROLLBACK: the session gave up on this message. */
static void
queue_rollback(struct msgchan *ch, struct msg *m)
{
	struct queue_incoming	*in;
	char			 id[QUEUE_IDSZ];

	proc_expect(ch, m, PROC_SMTP);
	if (msg_get_str(m, id, sizeof(id)) == -1 || msg_end(m) == -1 ||
	    !queue_fs_id_valid(id))
		fatalx("bad %s", imsg_name(m->type));
	if ((in = queue_incoming_find(id)) == NULL) {
		log_warnx("id=%s event=rollback-unknown", id);
		return;
	}
	if (in->flags & F_IN_COMMITTING) {
		/* Too late: the commit decides; it is answered anyway. */
		log_warnx("id=%s event=rollback-ignored "
		    "reason=committing", id);
		return;
	}
	if (queue_fs_incoming_remove(&queue_spool, id) == -1)
		log_warn("id=%s event=rollback-failed", id);
	RB_REMOVE(incoming_tree, &incoming, in);
	free(in);
	log_debug("id=%s event=rolled-back", id);
}

/*
 * IMSG_CTL_QUEUE_LIST: one IMSG_CTL_QUEUE_ITEM per recipient, oldest
 * message first, then IMSG_CTL_QUEUE_END.
 */
static void
queue_ctl_list(struct msgchan *ch, struct msg *m)
{
	struct queue_msg	*qm;
	struct queue_envelope	*e;
	struct queue_rcpt	*r;
	struct msg		 item;
	uint64_t		 reqid;
	uint32_t		 i;

	proc_expect(ch, m, PROC_CONTROL);
	if (msg_get_u64(m, &reqid) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	TAILQ_FOREACH(qm, &by_age, age) {
		e = qm->env;
		for (i = 0; i < e->nrcpt; i++) {
			r = &e->rcpts[i];
			msg_init(&item, IMSG_CTL_QUEUE_ITEM, 0);
			msg_add_u64(&item, reqid);
			msg_add_str(&item, e->id);
			msg_add_str(&item, queue_fs_state_name(r->state));
			msg_add_i64(&item, (int64_t)e->arrival);
			msg_add_u64(&item, e->size);
			msg_add_str(&item, e->sender);
			msg_add_str(&item, r->rcpt);
			msg_add_str(&item, r->rewritten);
			msg_add_str(&item, queue_fs_class_name(r->class));
			msg_add_str(&item, r->dest);
			msg_add_u32(&item, r->tries);
			msg_add_i64(&item, (int64_t)r->next_try);
			msg_add_i64(&item, (int64_t)r->last_try);
			msg_add_str(&item, r->last_error);
			proc_send(PROC_CONTROL, &item);
		}
	}
	msg_init(&item, IMSG_CTL_QUEUE_END, 0);
	msg_add_u64(&item, reqid);
	proc_send(PROC_CONTROL, &item);
}

static void
queue_stats(void)
{
	struct queue_msg	*qm;
	time_t			 now = time(NULL), age = 0;

	if ((qm = TAILQ_FIRST(&by_age)) != NULL && now > qm->env->arrival)
		age = now - qm->env->arrival;
	stat_set("queue.messages", (int64_t)nmessages);
	stat_set("queue.oldest_age", (int64_t)age);
}

static void
queue_stat_timer(int fd, short event, void *arg)
{
	struct timeval	 tv = { QUEUE_STAT_INTERVAL, 0 };

	(void)fd;
	(void)event;
	(void)arg;
	queue_stats();
	evtimer_add(&ev_stat, &tv);
}

/* IMSG_RELAY_RESULT: the scheduler's. */
static void
queue_relay_result(struct msgchan *ch, struct msg *m)
{
	proc_expect(ch, m, PROC_RELAY);
	sched_result(m);
}

/* IMSG_CTL_RELAY_PAUSE: u32 paused. */
static void
queue_ctl_pause(struct msgchan *ch, struct msg *m)
{
	uint32_t	 paused;

	proc_expect(ch, m, PROC_CONTROL);
	if (msg_get_u32(m, &paused) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	sched_pause(paused != 0);
}

static void
queue_ctl_result(uint64_t reqid, uint32_t found, uint32_t done,
    uint32_t later)
{
	struct msg	 r;

	msg_init(&r, IMSG_CTL_QUEUE_RESULT, 0);
	msg_add_u64(&r, reqid);
	msg_add_u32(&r, found);
	msg_add_u32(&r, done);
	msg_add_u32(&r, later);
	proc_send(PROC_CONTROL, &r);
}

/* F_NOTIFY_* as the envelope file writes them; "" is the default. */
static void
queue_notify_str(char *buf, size_t len, uint32_t notify)
{
	buf[0] = '\0';
	if (notify & F_NOTIFY_NEVER)
		strlcat(buf, "never,", len);
	if (notify & F_NOTIFY_SUCCESS)
		strlcat(buf, "success,", len);
	if (notify & F_NOTIFY_FAILURE)
		strlcat(buf, "failure,", len);
	if (notify & F_NOTIFY_DELAY)
		strlcat(buf, "delay,", len);
	if (buf[0] != '\0')
		buf[strlen(buf) - 1] = '\0';
}

/*
 * IMSG_CTL_QUEUE_SHOW: the message's envelope, its recipients and its
 * history (see splitmx.h), or a RESULT that found nothing.
 */
static void
queue_ctl_show(struct msgchan *ch, struct msg *m)
{
	static const char *const	 bodies[] = {
		"7bit", "8bitmime", "binarymime"
	};
	static const char *const	 rets[] = { "unset", "full", "hdrs" };
	struct queue_msg		*qm;
	struct queue_envelope		*e;
	struct queue_rcpt		*r;
	struct msg			 out;
	const char			*id;
	char				 flags[32], notify[40];
	uint64_t			 reqid;
	uint32_t			 i;

	proc_expect(ch, m, PROC_CONTROL);
	if (msg_get_u64(m, &reqid) == -1 || msg_get_strp(m, &id) == -1 ||
	    id == NULL || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if (!queue_fs_id_valid(id) || (qm = queue_msg_find(id)) == NULL) {
		queue_ctl_result(reqid, 0, 0, 0);
		return;
	}
	e = qm->env;
	flags[0] = '\0';
	if (e->flags & F_MSG_SMTPUTF8)
		strlcat(flags, "smtputf8", sizeof(flags));
	if (e->flags & F_MSG_TLS)
		strlcat(flags, flags[0] ? ",tls" : "tls", sizeof(flags));
	msg_init(&out, IMSG_CTL_QUEUE_MESSAGE, 0);
	msg_add_u64(&out, reqid);
	msg_add_str(&out, e->id);
	msg_add_i64(&out, (int64_t)e->arrival);
	msg_add_u64(&out, e->size);
	msg_add_str(&out, e->sender);
	msg_add_str(&out, e->helo);
	msg_add_str(&out, e->client);
	msg_add_str(&out, e->client_host);
	msg_add_str(&out, e->envid);
	msg_add_str(&out, e->body < BODY_COUNT ? bodies[e->body] : "?");
	msg_add_str(&out, e->ret < RET_COUNT ? rets[e->ret] : "?");
	msg_add_str(&out, flags);
	msg_add_i64(&out, (int64_t)e->warned);
	msg_add_u32(&out, e->nrcpt);
	msg_add_u32(&out, qm->inflight);
	msg_add_u32(&out, (qm->sflags & F_QM_REMOVE) ? 1 : 0);
	proc_send(PROC_CONTROL, &out);
	for (i = 0; i < e->nrcpt; i++) {
		r = &e->rcpts[i];
		queue_notify_str(notify, sizeof(notify), r->notify);
		msg_init(&out, IMSG_CTL_QUEUE_RCPT, 0);
		msg_add_u64(&out, reqid);
		msg_add_u32(&out, i);
		msg_add_str(&out, r->rcpt);
		msg_add_str(&out, r->rewritten);
		msg_add_str(&out, queue_fs_class_name(r->class));
		msg_add_str(&out, r->dest);
		msg_add_str(&out, notify);
		msg_add_str(&out, r->orcpt);
		msg_add_str(&out, queue_fs_state_name(r->state));
		msg_add_u32(&out, r->tries);
		msg_add_i64(&out, (int64_t)r->next_try);
		msg_add_i64(&out, (int64_t)r->last_try);
		msg_add_str(&out, r->last_error);
		msg_add_u32(&out, r->sched ? 1 : 0);
		proc_send(PROC_CONTROL, &out);
	}
	for (i = 0; i < e->nhist; i++) {
		msg_init(&out, IMSG_CTL_QUEUE_EVENT, 0);
		msg_add_u64(&out, reqid);
		msg_add_i64(&out, (int64_t)e->hist[i].when);
		msg_add_str(&out, e->hist[i].text);
		proc_send(PROC_CONTROL, &out);
	}
	queue_ctl_result(reqid, 1, 0, 0);
}

/*
 * IMSG_CTL_QUEUE_SCHEDULE and IMSG_CTL_QUEUE_REMOVE: u64 reqid, str id
 * or "all".  A message being delivered is removed when its delivery
 * is back (the scheduler holds on to it until then).
 */
static void
queue_ctl_act(struct msgchan *ch, struct msg *m)
{
	struct queue_msg	*qm, *next;
	const char		*id;
	uint64_t		 reqid;
	uint32_t		 found = 0, done = 0, later = 0;
	int			 all, remove = m->type == IMSG_CTL_QUEUE_REMOVE;

	proc_expect(ch, m, PROC_CONTROL);
	if (msg_get_u64(m, &reqid) == -1 || msg_get_strp(m, &id) == -1 ||
	    id == NULL || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	all = strcmp(id, "all") == 0;
	if (!all && (!queue_fs_id_valid(id) ||
	    (qm = queue_msg_find(id)) == NULL)) {
		queue_ctl_result(reqid, 0, 0, 0);
		return;
	}
	qm = all ? TAILQ_FIRST(&by_age) : queue_msg_find(id);
	for (; qm != NULL; qm = all ? next : NULL) {
		next = TAILQ_NEXT(qm, age);
		found++;
		if (!remove) {
			sched_schedule(qm);
			done++;
		} else if (sched_remove(qm))
			done++;
		else
			later++;
	}
	log_info("event=%s target=%s messages=%u pending=%u",
	    remove ? "remove" : "schedule", id, found, later);
	queue_ctl_result(reqid, found, done, later);
}
