/*
 * Commits: a message file for the smtp process, then its envelope made
 * durable in batches that share the fsyncs, and only then the 250; a
 * rollback for a transaction that was given up.
 *
 * Group commit.  The commits that arrive while a batch's files are
 * being synced wait, and form the next batch as soon as those are
 * done: the busier the gateway, the bigger the batches.  A batch's
 * files are synced side by side (queue_aio.c), so that they share the
 * disk's cache flushes; then each synced file is renamed into queue/,
 * queue/ is synced, and only then are the batch's commits answered.
 * The next batch's files may be synced while the last one's directory
 * is: each message still goes through the steps of queue_fs.c in their
 * order (its file synced, then renamed, then the directory synced
 * after its rename), whatever the others do.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <sys/tree.h>

#include <errno.h>
#include <event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "splitmx.h"
#include "queue.h"

#define QUEUE_BATCH_MAX		256	/* commits per batch */
#define QUEUE_CREATE_TRIES	8
#define REPLY_TEMPFAIL	"451 4.3.0 Queue write failed, try again later"
#define REPLY_NOSPACE	"452 4.3.1 Insufficient system storage"
#define NOSPACE(e)	((e) == ENOSPC || (e) == EDQUOT)

/* A message file handed to the smtp process, not committed yet. */
#define F_IN_COMMITTING	0x01
#define F_IN_FAILED	0x02
#define F_IN_NOSPACE	0x04	/* ... because the spool is full */
struct queue_incoming {
	RB_ENTRY(queue_incoming) node;
	TAILQ_ENTRY(queue_incoming) batch;
	char			 id[QUEUE_IDSZ];
	int			 flags;
	uint64_t		 reqid;		/* of the COMMIT */
	struct queue_envelope	*env;
	struct queue_fs_commit	 fc;
	struct timespec		 t0;		/* COMMIT received */
	struct queue_aio	 aio;		/* fsync of its file */
	struct queue_batch	*b;
};

/* Commits made durable together. */
struct queue_batch {
	TAILQ_HEAD(, queue_incoming) msgs;
	size_t			 n;
	size_t			 outstanding;	/* file fsyncs not back */
	size_t			 published;	/* renamed into queue/ */
	int			 now;		/* fsync(2), not AIO */
	struct queue_aio	 dir;		/* fsync(queue/) */
	uint64_t		 dirsync;	/* its number */
};

RB_HEAD(incoming_tree, queue_incoming);

static int	queue_incoming_cmp(struct queue_incoming *,
		    struct queue_incoming *);
RB_PROTOTYPE_INTERNAL(incoming_tree, queue_incoming, node, queue_incoming_cmp,
    SMX_RB_STATIC);

static struct queue_incoming *queue_incoming_find(const char *);
static struct queue_envelope *queue_commit_envelope(struct msg *,
		    uint64_t *, char *);
static void	queue_commit_routed(struct queue_envelope *);
static void	queue_commit_reply(uint64_t, int, const char *);
static void	queue_commit_kick(void);
static void	queue_commit_start(int, short, void *);
static void	queue_commit_synced(struct queue_aio *, int);
static void	queue_commit_publish(struct queue_batch *);
static void	queue_commit_durable(struct queue_aio *, int);
static void	queue_commit_answer(struct queue_batch *);

static struct incoming_tree		 incoming =
					    RB_INITIALIZER(&incoming);
static TAILQ_HEAD(, queue_incoming)	 pending =
					    TAILQ_HEAD_INITIALIZER(pending);
static struct queue_batch		*syncing;	/* its files */
static size_t				 nbatches;	/* in flight */
static struct event			 ev_start;

RB_GENERATE_INTERNAL(incoming_tree, queue_incoming, node, queue_incoming_cmp,
    SMX_RB_STATIC)

static int
queue_incoming_cmp(struct queue_incoming *a, struct queue_incoming *b)
{
	return strcmp(a->id, b->id);
}

void
queue_commit_init(void)
{
	evtimer_set(&ev_start, queue_commit_start, NULL);
	queue_aio_start();
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
 * and O_EXCL (or RENAME_NOREPLACE) proves it new on disk.  With reuse,
 * the file may be a removed message's, zeroed (queue_fs.c): its writer
 * truncates it to what it wrote.  A bounce takes its size from fstat,
 * so it asks for a new file.
 */
int
queue_msg_create(char *id, size_t idsz, int reuse)
{
	int	 fd = -1, tries;

	errno = EEXIST;
	for (tries = 0; tries < QUEUE_CREATE_TRIES; tries++) {
		queue_fs_id_new(id, idsz, time(NULL));
		if (queue_msg_find(id) != NULL ||
		    queue_incoming_find(id) != NULL)
			continue;
		if ((fd = queue_fs_incoming_create(&queue_spool, id,
		    reuse)) != -1 ||
		    errno != EEXIST)
			break;
	}
	return fd;
}

/*
 * IMSG_QUEUE_MESSAGE_CREATE: a fresh message file, its descriptor
 * write-only for the smtp process.
 */
void
queue_commit_create(struct msgchan *ch, struct msg *m)
{
	struct queue_incoming	*in;
	struct msg		 r;
	uint64_t		 reqid;
	char			 id[QUEUE_IDSZ];
	int			 fd;

	proc_expect(ch, m, PROC_SMTP);
	if (msg_get_u64(m, &reqid) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	fd = queue_msg_create(id, sizeof(id), 1);
	stat_set("queue.files_reused", (int64_t)queue_spool.reused);
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
	const char		*s[6], *held;
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
	    msg_get_u32(m, &e->ret) == -1 || msg_get_strp(m, &held) == -1 ||
	    msg_get_u32(m, &nrcpt) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if (e->body >= BODY_COUNT || e->ret >= RET_COUNT || nrcpt == 0 ||
	    nrcpt > QUEUE_MAXRCPT ||
	    (e->flags & ~(uint32_t)(F_MSG_SMTPUTF8 | F_MSG_TLS)) != 0)
		fatalx("bad %s: field out of range", imsg_name(m->type));
	e->sender = str_dup(s[0]);
	e->helo = str_dup(s[1]);
	e->client = str_dup(sa_str((struct sockaddr *)&ss, addr,
	    sizeof(addr)));
	e->client_host = str_dup(s[2]);
	e->envid = str_dup(s[3]);
	e->quarantine = str_dup(held);
	if ((e->rcpts = calloc(nrcpt, sizeof(*e->rcpts))) == NULL)
		fatal("calloc");
	e->nrcpt = nrcpt;
	for (i = 0; i < nrcpt; i++) {
		r = &e->rcpts[i];
		if (msg_get_strp(m, &s[0]) == -1 ||
		    msg_get_strp(m, &s[1]) == -1 ||
		    msg_get_u32(m, &r->class) == -1 ||
		    msg_get_strp(m, &s[2]) == -1 ||
		    msg_get_u32(m, &r->tls) == -1 ||
		    msg_get_u32(m, &r->notify) == -1 ||
		    msg_get_strp(m, &s[3]) == -1 ||
		    msg_get_strp(m, &s[4]) == -1)
			fatalx("bad %s", imsg_name(m->type));
		if (r->class >= ROUTE_COUNT || r->tls >= TLSP_COUNT ||
		    (r->notify & ~(uint32_t)(F_NOTIFY_NEVER |
		    F_NOTIFY_SUCCESS | F_NOTIFY_FAILURE | F_NOTIFY_DELAY)) != 0)
			fatalx("bad %s: field out of range",
			    imsg_name(m->type));
		r->rcpt = str_dup(s[0]);
		r->rewritten = str_dup(s[1] != NULL && *s[1] != '\0' ?
		    s[1] : s[0]);
		r->dest = str_dup(s[2]);
		r->orcpt = str_dup(s[3]);
		/* A recipient a milter added that cannot be routed. */
		r->last_error = str_dup(s[4]);
		r->state = STATE_QUEUED;
		r->next_try = e->arrival;
	}
	if (msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	(void)snprintf(text, sizeof(text), "received from %s size %llu",
	    e->client, (unsigned long long)size);
	if (queue_fs_envelope_event(e, e->arrival, text) == -1)
		fatal("queue_fs_envelope_event");
	queue_commit_routed(e);
	if (QUEUE_HELD(e))
		sched_event(e, "quarantined by a milter: %s", e->quarantine);
	return e;
}

/*
 * The routing decisions, as history: one line per recipient, as many as
 * leave room in the history for the delivery attempts.  A policy that
 * forbids clear text is named: it holds for every later attempt.
 */
#define QUEUE_ROUTED_MAX	32
static void
queue_commit_routed(struct queue_envelope *e)
{
	struct queue_rcpt	*r;
	uint32_t		 i;

	for (i = 0; i < e->nrcpt && i < QUEUE_ROUTED_MAX; i++) {
		r = &e->rcpts[i];
		sched_event(e, "routed <%s>%s%s%s as %s to %s%s%s%s", r->rcpt,
		    strcmp(r->rcpt, r->rewritten) ? " -> <" : "",
		    strcmp(r->rcpt, r->rewritten) ? r->rewritten : "",
		    strcmp(r->rcpt, r->rewritten) ? ">" : "",
		    queue_fs_class_name(r->class),
		    r->class == ROUTE_BOUNCE ? "a bounce" :
		    *r->dest ? r->dest : "the MX of its domain",
		    QUEUE_TLS_STRICT(r) ? " (tls " : "",
		    QUEUE_TLS_STRICT(r) ? queue_fs_tls_name(r->tls) : "",
		    QUEUE_TLS_STRICT(r) ? ")" : "");
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

/*
 * IMSG_QUEUE_MESSAGE_COMMIT: the envelope is written now; the commit
 * then waits for a batch: at the end of this event-loop turn, or when
 * the files of the batch before are synced.
 */
void
queue_commit_message(struct msgchan *ch, struct msg *m)
{
	struct queue_incoming	*in;
	struct queue_envelope	*e;
	uint64_t		 reqid;
	char			 id[QUEUE_IDSZ];
	int			 nospace;

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
		nospace = NOSPACE(errno);
		log_warn("id=%s event=commit-failed", id);
		queue_fs_commit_abort(&queue_spool, &in->fc);
		queue_fs_envelope_free(e);
		free(e);
		RB_REMOVE(incoming_tree, &incoming, in);
		free(in);
		stat_add("queue.commit_failures", 1);
		queue_commit_reply(reqid, 0, nospace ? REPLY_NOSPACE :
		    REPLY_TEMPFAIL);
		return;
	}
	in->flags |= F_IN_COMMITTING;
	in->reqid = reqid;
	in->env = e;
	TAILQ_INSERT_TAIL(&pending, in, batch);
	queue_commit_kick();
}

/* A batch starts at the end of this turn if none is syncing files. */
static void
queue_commit_kick(void)
{
	if (syncing == NULL && !TAILQ_EMPTY(&pending))
		event_active(&ev_start, EV_TIMEOUT, 1);
}

/* Steps 1 and 2 of queue_fs.c for what is pending: every file synced. */
static void
queue_commit_start(int fd, short event, void *arg)
{
	struct queue_batch	*b;
	struct queue_incoming	*in;

	(void)fd;
	(void)event;
	(void)arg;
	if (syncing != NULL || TAILQ_EMPTY(&pending))
		return;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		fatal("calloc");
	TAILQ_INIT(&b->msgs);
	while (b->n < QUEUE_BATCH_MAX && (in = TAILQ_FIRST(&pending)) != NULL) {
		TAILQ_REMOVE(&pending, in, batch);
		TAILQ_INSERT_TAIL(&b->msgs, in, batch);
		in->b = b;
		b->n++;
	}
	syncing = b;
	nbatches++;
	b->outstanding = b->n;
	/*
	 * One commit and nothing else under way (one session): fsync(2)
	 * itself is quicker than a kernel worker and a wakeup.
	 */
	b->now = b->n == 1 && nbatches == 1;
	/* One after another, a flush can at least carry the others' data. */
	if (!queue_aio_enabled())
		TAILQ_FOREACH(in, &b->msgs, batch)
			queue_fs_commit_writeback(&in->fc);
	TAILQ_FOREACH(in, &b->msgs, batch) {
		in->aio.done = queue_commit_synced;
		in->aio.arg = in;
		queue_aio_fsync(&in->aio, in->fc.msgfd, b->now);
	}
}

static void
queue_commit_synced(struct queue_aio *a, int error)
{
	struct queue_incoming	*in = a->arg;

	if (error) {
		if (NOSPACE(error))
			in->flags |= F_IN_NOSPACE;
		errno = error;
		log_warn("id=%s event=commit-failed step=fsync", in->id);
		in->flags |= F_IN_FAILED;
	}
	if (--in->b->outstanding == 0)
		queue_commit_publish(in->b);
}

/*
 * Step 3 for every synced file, and step 4 once for the batch.  The
 * next batch may start syncing its files now.
 */
static void
queue_commit_publish(struct queue_batch *b)
{
	struct queue_incoming	*in;

	TAILQ_FOREACH(in, &b->msgs, batch) {
		if (in->flags & F_IN_FAILED)
			continue;
		if (queue_fs_commit_publish(&queue_spool, &in->fc) == -1) {
			log_warn("id=%s event=commit-failed step=rename",
			    in->id);
			in->flags |= F_IN_FAILED;
		} else
			b->published++;
	}
	syncing = NULL;
	queue_commit_kick();
	if (b->published == 0) {
		queue_commit_answer(b);
		return;
	}
	b->dir.done = queue_commit_durable;
	b->dir.arg = b;
	b->dirsync = queue_fs_dirsync_begin(&queue_spool);
	queue_aio_fsync(&b->dir, queue_spool.queue,
	    b->now && TAILQ_EMPTY(&pending));
}

/*
 * Not incoming/: whether the old names are still there after a crash
 * does not matter, recovery removes them (queue_fs_recover.c).
 */
static void
queue_commit_durable(struct queue_aio *a, int error)
{
	struct queue_batch	*b = a->arg;
	struct queue_incoming	*in;

	if (error) {
		errno = error;
		log_warn("event=commit-failed step=fsync-dirs");
		TAILQ_FOREACH(in, &b->msgs, batch)
			in->flags |= F_IN_FAILED;
	} else
		queue_fs_dirsync_done(&queue_spool, b->dirsync);
	queue_commit_answer(b);
}

/* Step 5: the 250s, or a 451 for what failed anywhere (and is undone). */
static void
queue_commit_answer(struct queue_batch *b)
{
	struct queue_incoming	*in;
	struct queue_msg	*qm;
	struct timespec		 t1;
	char			 text[128];
	long long		 us, maxus = 0;
	size_t			 failed = 0;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	while ((in = TAILQ_FIRST(&b->msgs)) != NULL) {
		TAILQ_REMOVE(&b->msgs, in, batch);
		RB_REMOVE(incoming_tree, &incoming, in);
		us = (t1.tv_sec - in->t0.tv_sec) * 1000000LL +
		    (t1.tv_nsec - in->t0.tv_nsec) / 1000;
		if (us > maxus)
			maxus = us;
		if (in->flags & F_IN_FAILED) {
			queue_fs_commit_abort(&queue_spool, &in->fc);
			queue_fs_envelope_free(in->env);
			free(in->env);
			failed++;
			queue_commit_reply(in->reqid, 0,
			    (in->flags & F_IN_NOSPACE) ? REPLY_NOSPACE :
			    REPLY_TEMPFAIL);
		} else {
			if (sched_paused() || QUEUE_HELD(in->env))
				queue_fs_commit_uncache(&in->fc);
			queue_fs_commit_done(&in->fc);
			log_info("id=%s event=queued size=%llu rcpts=%u "
			    "from=%s%s%s", in->id,
			    (unsigned long long)in->env->size,
			    in->env->nrcpt, log_addr(in->env->sender),
			    QUEUE_HELD(in->env) ? " quarantine=" : "",
			    QUEUE_HELD(in->env) ?
			    log_text(in->env->quarantine) : "");
			qm = queue_msg_add(in->env);
			(void)snprintf(text, sizeof(text),
			    "250 2.0.0 Ok: queued as %s", in->id);
			queue_commit_reply(in->reqid, 1, text);
			sched_add(qm, 0);
		}
		free(in);
	}
	if (failed > 0)
		stat_add("queue.commit_failures", (int64_t)failed);
	stat_add("queue.commits", (int64_t)(b->n - failed));
	stat_add("queue.batches", 1);
	stat_add("queue.fsyncs", (int64_t)(b->n + (b->published > 0)));
	stat_set("queue.commit_latency_us", maxus);
	stat_set("queue.messages", (int64_t)queue_msg_count());
	log_debug("event=batch commits=%zu failed=%zu fsyncs=%zu "
	    "max_us=%lld", b->n, failed, b->n + (b->published > 0), maxus);
	nbatches--;
	free(b);
}

/* IMSG_QUEUE_MESSAGE_ROLLBACK: the session gave up on this message. */
void
queue_commit_rollback(struct msgchan *ch, struct msg *m)
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
 * IMSG_QUEUE_MESSAGE_OPEN: the filter process reads a message the smtp
 * process has written and not committed, or writes its modified copy
 * into a new file that takes the message's name (queue_fs.c says why a
 * commit stays durable with it).  Nothing else: no committed message,
 * none being committed.
 */
void
queue_commit_open(struct msgchan *ch, struct msg *m)
{
	struct queue_incoming	*in;
	struct msg		 r;
	uint64_t		 reqid;
	uint32_t		 mode;
	char			 id[QUEUE_IDSZ];
	int			 fd = -1;

	proc_expect(ch, m, PROC_FILTER);
	if (msg_get_u64(m, &reqid) == -1 ||
	    msg_get_str(m, id, sizeof(id)) == -1 ||
	    msg_get_u32(m, &mode) == -1 || msg_end(m) == -1 ||
	    !queue_fs_id_valid(id) ||
	    (mode != QUEUE_OPEN_READ && mode != QUEUE_OPEN_REWRITE))
		fatalx("bad %s", imsg_name(m->type));
	if ((in = queue_incoming_find(id)) == NULL ||
	    (in->flags & F_IN_COMMITTING))
		log_warnx("id=%s event=open-refused mode=%u", id, mode);
	else if ((fd = mode == QUEUE_OPEN_READ ?
	    queue_fs_incoming_open(&queue_spool, id) :
	    queue_fs_incoming_rewrite(&queue_spool, id)) == -1)
		log_warn("id=%s event=open-failed mode=%u", id, mode);
	msg_init(&r, IMSG_QUEUE_MESSAGE_OPEN_RESULT, 0);
	msg_add_u64(&r, reqid);
	msg_add_u32(&r, fd != -1);
	if (fd != -1)
		msg_set_fd(&r, fd);
	proc_send(PROC_FILTER, &r);
}
