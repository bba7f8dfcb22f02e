/*
 * The scheduler: which recipients go to the relay and when, what the
 * relay's results do to the envelopes, retries with backoff, expiry,
 * delay warnings, and when a message is done with.
 *
 * Recipients that are due are cut into batches, one per (destination,
 * domain, TLS policy routed with) and at most SCHED_BATCH_MAX
 * recipients; a batch becomes one IMSG_RELAY_DELIVER, with the policy
 * of sched_policy().  Batches wait in a queue per destination, and the
 * destinations with work take turns, so that a destination that is slow
 * or stalled holds at most SCHED_MAX_DEST_INFLIGHT of the
 * SCHED_MAX_INFLIGHT deliveries out at once and never blocks the
 * others.  Deferred recipients wait in no queue at all: their message
 * sits in a tree ordered by its next wakeup, and one timer is armed for
 * the earliest.
 *
 * What is on disk, and when:
 *	- delivered: the envelope is rewritten (queue_fs_envelope_update)
 *	  before anything else happens; when it was the last recipient the
 *	  message is removed instead.  A crash between the remote's 250
 *	  and either of these delivers again: twice, never zero times.
 *	- deferred: rewritten with the new tries and next try.
 *	- failed: means "the sender has been told".  The DSN is committed
 *	  first (write, fsync, rename, fsync, as any message), and only then
 *	  is the recipient written as failed.  A crash in between retries
 *	  the recipient and may send a second DSN, never none.
 *	- the delay warning: the same, with the envelope's "warned".
 * Operator requests (schedule) and the in-memory marks of batches are
 * not written: after a restart every recipient not delivered or failed
 * is due at once.
 * A message a milter quarantined (its envelope's quarantine=) is held:
 * never batched, never expired, until "release" clears the field and
 * writes the envelope (then it is due at once) or "remove" drops it.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/time.h>
#include <sys/tree.h>

#include <errno.h>
#include <event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "splitmx.h"
#include "queue.h"

#define SCHED_MAX_INFLIGHT	200	/* deliveries out to the relay */
#define SCHED_MAX_DEST_INFLIGHT	20	/* ... to one destination */
#define SCHED_BATCH_MAX		100	/* recipients per delivery */
#define SCHED_TIMER_MAX		300	/* seconds: survive clock jumps */

/* Where batches go: a destination (host syntax, "" by MX) and domain. */
struct sched_dest {
	RB_ENTRY(sched_dest)	 node;
	TAILQ_ENTRY(sched_dest)	 active;	/* has work and room */
	char			*dest;
	char			*domain;	/* lower case */
	TAILQ_HEAD(, sched_batch) waiting;
	uint32_t		 inflight;
	int			 on_active;
};

/* Recipients of one message for one destination: one delivery. */
struct sched_batch {
	TAILQ_ENTRY(sched_batch) dentry;	/* dest's waiting, or out */
	TAILQ_ENTRY(sched_batch) mentry;	/* the message's batches */
	struct queue_msg	*qm;
	struct sched_dest	*dest;
	uint64_t		 reqid;		/* 0 while waiting */
	uint32_t		 tls;		/* routed with (TLSP_*) */
	uint32_t		 n;
	uint32_t		*idx;		/* recipients of the envelope */
};

RB_HEAD(sched_dests, sched_dest);
RB_HEAD(sched_timers, queue_msg);

static int	sched_dest_cmp(struct sched_dest *, struct sched_dest *);
static int	sched_timer_cmp(struct queue_msg *, struct queue_msg *);
RB_PROTOTYPE_INTERNAL(sched_dests, sched_dest, node, sched_dest_cmp,
    SMX_RB_STATIC);
RB_PROTOTYPE_INTERNAL(sched_timers, queue_msg, timer, sched_timer_cmp,
    SMX_RB_STATIC);

static int	sched_update(struct queue_msg *);
static int	sched_settle(struct queue_msg *, const char *, time_t, int);
static void	sched_fail(struct queue_msg *, const char *, time_t);
static void	sched_relayed(struct queue_msg *, const struct sched_batch *,
		    const uint32_t *, const char **, const char *);
static void	sched_warn(struct queue_msg *, time_t);
static int	sched_warn_due(struct queue_msg *, time_t);
static void	sched_done(struct queue_msg *);
static void	sched_save(struct queue_msg *);
static void	sched_batch(struct queue_msg *, time_t);
static int	sched_batch_cmp(const void *, const void *);
static void	sched_batch_free(struct sched_batch *);
static void	sched_send(struct sched_batch *);
static void	sched_send_failed(struct sched_batch *, int);
static enum smx_tls sched_policy(uint32_t, const char *);
static struct sched_dest *sched_dest_get(const char *, const char *);
static void	sched_dest_activate(struct sched_dest *);
static void	sched_dest_gc(struct sched_dest *);
static void	sched_timer_set(struct queue_msg *, time_t, time_t);
static void	sched_timer_del(struct queue_msg *);
static void	sched_timer_arm(void);
static void	sched_timer_fire(int, short, void *);
static void	sched_kick(void);
static void	sched_dispatch(int, short, void *);
static time_t	sched_next_try(const struct queue_envelope *, uint32_t);
static int	sched_final(const struct queue_rcpt *);
static const char *sched_domain(const char *);
static void	sched_set_error(struct queue_rcpt *, const char *);
static void	sched_history(struct queue_envelope *, struct sched_batch *,
		    const uint32_t *, const char **, const char **,
		    const char **, const char *);
static void	sched_result_read(struct msg *, const struct sched_batch *,
		    uint32_t, uint32_t *, const char **, const char **,
		    const char **);
static void	sched_outcomes(struct queue_envelope *,
		    const struct sched_batch *, uint32_t *, const char **,
		    const char **, const char **, time_t, int *, int *);

static struct sched_dests	 dests = RB_INITIALIZER(&dests);
static TAILQ_HEAD(, sched_dest)	 active = TAILQ_HEAD_INITIALIZER(active);
static TAILQ_HEAD(, sched_batch) out = TAILQ_HEAD_INITIALIZER(out);
static struct sched_timers	 timers = RB_INITIALIZER(&timers);
static struct event		 ev_timer, ev_dispatch;
static uint32_t			 ninflight;
static uint64_t			 last_reqid;
static int			 paused;
static const struct queue_envelope *sort_env;	/* for sched_batch_cmp */

RB_GENERATE_INTERNAL(sched_dests, sched_dest, node, sched_dest_cmp,
    SMX_RB_STATIC)
RB_GENERATE_INTERNAL(sched_timers, queue_msg, timer, sched_timer_cmp,
    SMX_RB_STATIC)

static int
sched_dest_cmp(struct sched_dest *a, struct sched_dest *b)
{
	int	 c;

	if ((c = strcmp(a->dest, b->dest)) != 0)
		return c;
	return strcmp(a->domain, b->domain);
}

static int
sched_timer_cmp(struct queue_msg *a, struct queue_msg *b)
{
	if (a->wakeup != b->wakeup)
		return a->wakeup < b->wakeup ? -1 : 1;
	return strcmp(a->env->id, b->env->id);
}

void
sched_init(void)
{
	evtimer_set(&ev_timer, sched_timer_fire, NULL);
	evtimer_set(&ev_dispatch, sched_dispatch, NULL);
}

/*
 * FIRST, then doubling, at most CAP: the wait after the tries-th
 * attempt failed.
 */
time_t
sched_backoff(uint32_t tries, time_t first, time_t cap)
{
	time_t		 d = first;
	uint32_t	 i;

	for (i = 1; i < tries && d < cap; i++)
		d *= 2;
	return d > cap ? cap : d;
}

/*
 * Never earlier than the backoff (the wall clock's fraction of a second
 * is rounded up), never later than the expiry: the last attempt is made
 * when the message expires.
 */
static time_t
sched_next_try(const struct queue_envelope *e, uint32_t tries)
{
	struct timeval	 tv;
	const struct smx_conf *c = env->conf;
	time_t		 next, expires = e->arrival + c->expire;

	if (gettimeofday(&tv, NULL) == -1)
		fatal("gettimeofday");
	next = tv.tv_sec + sched_backoff(tries, c->retry_first, c->retry_cap);
	if (tv.tv_usec > 0)
		next++;
	if (next > expires && expires > tv.tv_sec)
		next = expires;
	return next;
}

/* A history line; the oldest go when there are too many. */
void
sched_event(struct queue_envelope *e, const char *fmt, ...)
{
	char	 buf[QUEUE_STRMAX + 1];
	va_list	 ap;

	va_start(ap, fmt);
	if (vsnprintf(buf, sizeof(buf), fmt, ap) < 0)
		strlcpy(buf, "(history line too long)", sizeof(buf));
	va_end(ap);
	if (queue_fs_envelope_event(e, time(NULL), buf) == -1)
		fatal("queue_fs_envelope_event");
}

static int
sched_final(const struct queue_rcpt *r)
{
	return r->state == STATE_DELIVERED || r->state == STATE_FAILED;
}

static const char *
sched_domain(const char *addr)
{
	const char	*at;

	return (at = strrchr(addr, '@')) == NULL ? "" : at + 1;
}

static void
sched_set_error(struct queue_rcpt *r, const char *text)
{
	free(r->last_error);
	r->last_error = str_dup(text);
}

/*
 * A message new in the index.  After a restart everything not done is
 * due now; a message that was done but not yet removed goes now.
 */
void
sched_add(struct queue_msg *qm, int recovered)
{
	struct queue_envelope	*e = qm->env;
	time_t			 now = time(NULL);
	uint32_t		 i;

	for (i = 0; i < e->nrcpt && recovered; i++)
		if (!sched_final(&e->rcpts[i]))
			e->rcpts[i].next_try = now;
	(void)sched_update(qm);
	sched_kick();
}

/*
 * Where a message stands now: recipients that cannot be delivered fail,
 * a due delay warning goes out, due recipients are batched, and the
 * message waits in the timer tree for its next wakeup.  1 if the
 * message is gone.
 */
static int
sched_update(struct queue_msg *qm)
{
	struct queue_envelope	*e = qm->env;
	struct queue_rcpt	*r;
	time_t			 now = time(NULL), wake = 0;
	uint32_t		 i;
	int			 settle = 1, deferred = 0;

	if (qm->sflags & F_QM_REMOVE)
		return 0;
	sched_timer_del(qm);
	if (QUEUE_HELD(e))
		return 0;
	for (i = 0; i < e->nrcpt; i++) {
		r = &e->rcpts[i];
		if (sched_final(r))
			continue;
		settle = 0;
		if (r->sched || r->next_try > now)
			continue;
		/* "unknown bounce" (and nowhere to go): a DSN, no relay. */
		if (r->class == ROUTE_BOUNCE || r->class >= ROUTE_NONE) {
			r->fail = FAIL_PERM;
			/* A milter's recipient keeps the lookup's reply. */
			if (*r->last_error == '\0')
				sched_set_error(r, r->class == ROUTE_BOUNCE ?
				    "5.1.1 unknown recipient" :
				    "5.4.4 no route to this recipient");
			settle = 1;
		}
	}
	if (settle || sched_warn_due(qm, now)) {
		if (sched_settle(qm, "", now, 0))
			return 1;
	}
	sched_batch(qm, now);

	for (i = 0; i < e->nrcpt; i++) {
		r = &e->rcpts[i];
		if (sched_final(r))
			continue;
		if (r->state == STATE_DEFERRED)
			deferred = 1;
		if (!r->sched && (wake == 0 || r->next_try < wake))
			wake = r->next_try;
	}
	if (deferred && e->warned == 0 && env->conf->warn_after > 0 &&
	    (wake == 0 || e->arrival + env->conf->warn_after < wake))
		wake = e->arrival + env->conf->warn_after;
	if (wake != 0)
		sched_timer_set(qm, wake, now);
	return 0;
}

static int
sched_warn_due(struct queue_msg *qm, time_t now)
{
	struct queue_envelope	*e = qm->env;
	uint32_t		 i;

	if (e->warned != 0 || env->conf->warn_after <= 0 ||
	    now < e->arrival + env->conf->warn_after)
		return 0;
	for (i = 0; i < e->nrcpt; i++)
		if (e->rcpts[i].state == STATE_DEFERRED &&
		    e->rcpts[i].fail == FAIL_NONE)
			return 1;
	return 0;
}

/*
 * After anything happened to a message: DSNs for the recipients that
 * failed just now and for a due delay warning, then the envelope is
 * written (dirty) or, when every recipient is done, the message
 * removed.  1 if the message is gone.
 */
static int
sched_settle(struct queue_msg *qm, const char *remote, time_t now, int dirty)
{
	struct queue_envelope	*e = qm->env;
	uint32_t		 i;
	int			 done = 1, failed = 0;

	for (i = 0; i < e->nrcpt; i++)
		if (e->rcpts[i].fail != FAIL_NONE)
			failed = 1;
	if (failed) {
		sched_fail(qm, remote, now);
		dirty = 1;
	}
	if (sched_warn_due(qm, now)) {
		sched_warn(qm, now);
		dirty = 1;
	}
	for (i = 0; i < e->nrcpt; i++)
		if (!sched_final(&e->rcpts[i]))
			done = 0;
	if (done && qm->inflight == 0) {
		sched_done(qm);
		return 1;
	}
	if (dirty)
		sched_save(qm);
	return 0;
}

/*
 * The recipients marked failed (r->fail): one DSN for those who want
 * one, and once it is committed they are failed for good.  If it cannot
 * be written they stay deferred, to fail (and bounce) again later.
 */
static void
sched_fail(struct queue_msg *qm, const char *remote, time_t now)
{
	struct queue_envelope	*e = qm->env;
	struct queue_rcpt	*r;
	uint32_t		*idx;
	size_t			 n = 0, k;
	char			 dsnid[QUEUE_IDSZ], why[64];
	const char		*dsn;
	int			 rc;

	if ((idx = calloc(e->nrcpt, sizeof(*idx))) == NULL)
		fatal("calloc");
	for (k = 0; k < e->nrcpt; k++)
		if (e->rcpts[k].fail != FAIL_NONE)
			idx[n++] = (uint32_t)k;
	rc = bounce_create(qm, BOUNCE_FAILED, idx, n, remote, dsnid);
	if (rc == -1)
		log_warn("id=%s event=dsn-failed action=failed: recipients "
		    "stay deferred", e->id);
	for (k = 0; k < n; k++) {
		r = &e->rcpts[idx[k]];
		if (r->fail == FAIL_EXPIRED)
			(void)snprintf(why, sizeof(why), "expired after %u "
			    "attempt%s", r->tries, r->tries == 1 ? "" : "s");
		else
			strlcpy(why, "failed", sizeof(why));
		if (rc == -1) {
			r->state = STATE_DEFERRED;
			r->next_try = now + env->conf->retry_first;
			r->fail = FAIL_NONE;
			continue;
		}
		if (rc == 1 && bounce_wanted(e, r, BOUNCE_FAILED))
			dsn = dsnid;
		else
			dsn = *e->sender == '\0' ? "none (null sender)" :
			    "none (NOTIFY)";
		log_info("id=%s event=failed to=%s reason=%s error=%s dsn=%s%s",
		    e->id, log_addr(r->rewritten), log_text(why),
		    log_text(r->last_error), log_value(dsn),
		    *e->sender == '\0' ? " dropped=yes" : "");
		sched_event(e, "%s <%s>: %s; DSN %s", why, r->rewritten,
		    r->last_error, dsn);
		r->state = STATE_FAILED;
		r->fail = FAIL_NONE;
	}
	free(idx);
	if (rc != -1 && !(qm->sflags & F_QM_BOUNCED)) {
		qm->sflags |= F_QM_BOUNCED;
		stat_add("messages.bounced", 1);
	}
}

/*
 * Recipients with NOTIFY=SUCCESS delivered to a server without DSN: the
 * "relayed" DSN is ours to send (RFC 3461 §5.2.2), with the server's
 * reply.  Like the delay warning it is advice: one that cannot be
 * written is logged, not tried again.
 */
static void
sched_relayed(struct queue_msg *qm, const struct sched_batch *b,
    const uint32_t *status, const char **replies, const char *remote)
{
	struct queue_envelope	*e = qm->env;
	uint32_t		*idx;
	size_t			 n = 0, k;
	char			 dsnid[QUEUE_IDSZ];
	int			 rc;

	if ((idx = calloc(b->n, sizeof(*idx))) == NULL)
		fatal("calloc");
	for (k = 0; k < b->n; k++)
		if (status[k] == DELIVERY_RELAYED) {
			idx[n++] = b->idx[k];
			sched_set_error(&e->rcpts[b->idx[k]], replies[k]);
		}
	rc = bounce_create(qm, BOUNCE_RELAYED, idx, n, remote, dsnid);
	if (rc == -1)
		log_warn("id=%s event=dsn-failed action=relayed", e->id);
	else if (rc == 1) {
		log_info("id=%s event=relayed recipients=%zu dsn=%s", e->id,
		    n, dsnid);
		sched_event(e, "relayed to a server without DSN: success "
		    "DSN %s", dsnid);
	}
	for (k = 0; k < n; k++)
		sched_set_error(&e->rcpts[idx[k]], "");
	free(idx);
}

/*
 * The delay warning, once per message, for the recipients deferred now.
 * A warning that cannot be written is not tried again: it is advice,
 * and the failure DSN will still come.
 */
static void
sched_warn(struct queue_msg *qm, time_t now)
{
	struct queue_envelope	*e = qm->env;
	uint32_t		*idx;
	size_t			 n = 0, k;
	char			 dsnid[QUEUE_IDSZ];
	int			 rc;

	if ((idx = calloc(e->nrcpt, sizeof(*idx))) == NULL)
		fatal("calloc");
	for (k = 0; k < e->nrcpt; k++)
		if (e->rcpts[k].state == STATE_DEFERRED &&
		    e->rcpts[k].fail == FAIL_NONE)
			idx[n++] = (uint32_t)k;
	rc = bounce_create(qm, BOUNCE_DELAYED, idx, n, "", dsnid);
	free(idx);
	if (rc == -1)
		log_warn("id=%s event=dsn-failed action=delayed", e->id);
	else if (rc == 1) {
		log_info("id=%s event=delayed recipients=%zu dsn=%s", e->id,
		    n, dsnid);
		sched_event(e, "delayed for %lld seconds: warning DSN %s",
		    (long long)(now - e->arrival), dsnid);
	}
	e->warned = now;
}

/* Every recipient delivered or failed, nothing out: gone. */
static void
sched_done(struct queue_msg *qm)
{
	struct queue_envelope	*e = qm->env;
	uint32_t		 i, delivered = 0, failed = 0;

	for (i = 0; i < e->nrcpt; i++) {
		if (e->rcpts[i].state == STATE_DELIVERED)
			delivered++;
		else
			failed++;
	}
	if (delivered > 0)
		stat_add("messages.delivered", 1);
	log_info("id=%s event=done delivered=%u failed=%u", e->id,
	    delivered, failed);
	sched_timer_del(qm);
	queue_msg_remove(qm);
}

/* A write that fails leaves the old state on disk: work done again. */
static void
sched_save(struct queue_msg *qm)
{
	if (queue_fs_envelope_update(&queue_spool, qm->env) == -1) {
		log_warn("id=%s event=update-failed", qm->env->id);
		stat_add("queue.update_failures", 1);
	}
}

/*
 * Due recipients into batches: sorted by destination and domain, cut
 * into runs of at most SCHED_BATCH_MAX.
 */
static void
sched_batch(struct queue_msg *qm, time_t now)
{
	struct queue_envelope	*e = qm->env;
	struct queue_rcpt	*r, *first;
	struct sched_batch	*b;
	uint32_t		*idx;
	size_t			 n = 0, i, j;

	if ((idx = calloc(e->nrcpt, sizeof(*idx))) == NULL)
		fatal("calloc");
	for (i = 0; i < e->nrcpt; i++) {
		r = &e->rcpts[i];
		if (sched_final(r) || r->sched || r->fail != FAIL_NONE ||
		    r->next_try > now || r->class == ROUTE_BOUNCE ||
		    r->class >= ROUTE_NONE)
			continue;
		idx[n++] = (uint32_t)i;
	}
	sort_env = e;
	if (n > 1)
		qsort(idx, n, sizeof(*idx), sched_batch_cmp);
	sort_env = NULL;
	for (i = 0; i < n; i = j) {
		first = &e->rcpts[idx[i]];
		for (j = i + 1; j < n && j - i < SCHED_BATCH_MAX; j++) {
			r = &e->rcpts[idx[j]];
			if (strcmp(r->dest, first->dest) != 0 ||
			    strcasecmp(sched_domain(r->rewritten),
			    sched_domain(first->rewritten)) != 0 ||
			    r->tls != first->tls)
				break;
		}
		if ((b = calloc(1, sizeof(*b))) == NULL ||
		    (b->idx = reallocarray(NULL, j - i, sizeof(*b->idx))) ==
		    NULL)
			fatal("calloc");
		memcpy(b->idx, &idx[i], (j - i) * sizeof(*b->idx));
		b->n = (uint32_t)(j - i);
		b->tls = first->tls;
		b->qm = qm;
		b->dest = sched_dest_get(first->dest,
		    sched_domain(first->rewritten));
		for (; i < j; i++)
			e->rcpts[idx[i]].sched = 1;
		TAILQ_INSERT_TAIL(&qm->batches, b, mentry);
		TAILQ_INSERT_TAIL(&b->dest->waiting, b, dentry);
		sched_dest_activate(b->dest);
	}
	free(idx);
	if (n > 0)
		sched_kick();
}

static int
sched_batch_cmp(const void *a, const void *b)
{
	const struct queue_rcpt	*x, *y;
	int			 c;

	x = &sort_env->rcpts[*(const uint32_t *)a];
	y = &sort_env->rcpts[*(const uint32_t *)b];
	if ((c = strcmp(x->dest, y->dest)) != 0)
		return c;
	if ((c = strcasecmp(sched_domain(x->rewritten),
	    sched_domain(y->rewritten))) != 0)
		return c;
	if (x->tls != y->tls)
		return x->tls < y->tls ? -1 : 1;
	/* Stable: the order the client gave. */
	return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

static void
sched_batch_free(struct sched_batch *b)
{
	free(b->idx);
	free(b);
}

static struct sched_dest *
sched_dest_get(const char *dest, const char *domain)
{
	struct sched_dest	 key, *d;
	/* Envelope strings are at most QUEUE_STRMAX: never truncated. */
	char			 lower[QUEUE_STRMAX + 1];
	char			 host[QUEUE_STRMAX + 1];

	strlcpy(lower, domain, sizeof(lower));
	str_lower(lower);
	strlcpy(host, dest, sizeof(host));
	key.dest = host;
	key.domain = lower;
	if ((d = RB_FIND(sched_dests, &dests, &key)) != NULL)
		return d;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		fatal("calloc");
	d->dest = str_dup(host);
	d->domain = str_dup(lower);
	TAILQ_INIT(&d->waiting);
	RB_INSERT(sched_dests, &dests, d);
	return d;
}

/* On the round robin while it has waiting batches and room for more. */
static void
sched_dest_activate(struct sched_dest *d)
{
	int	 want;

	want = !TAILQ_EMPTY(&d->waiting) &&
	    d->inflight < SCHED_MAX_DEST_INFLIGHT;
	if (want && !d->on_active) {
		TAILQ_INSERT_TAIL(&active, d, active);
		d->on_active = 1;
	} else if (!want && d->on_active) {
		TAILQ_REMOVE(&active, d, active);
		d->on_active = 0;
	}
}

static void
sched_dest_gc(struct sched_dest *d)
{
	if (!TAILQ_EMPTY(&d->waiting) || d->inflight > 0)
		return;
	if (d->on_active)
		TAILQ_REMOVE(&active, d, active);
	RB_REMOVE(sched_dests, &dests, d);
	free(d->dest);
	free(d->domain);
	free(d);
}

/* Dispatching happens once per event-loop turn, after everything else. */
static void
sched_kick(void)
{
	struct timeval	 tv = { 0, 0 };

	if (!evtimer_pending(&ev_dispatch, NULL))
		evtimer_add(&ev_dispatch, &tv);
}

/* The destinations take turns, one delivery each, while there is room. */
static void
sched_dispatch(int fd, short event, void *arg)
{
	struct sched_dest	*d;
	struct sched_batch	*b;

	(void)fd;
	(void)event;
	(void)arg;
	while (!paused && ninflight < SCHED_MAX_INFLIGHT &&
	    (d = TAILQ_FIRST(&active)) != NULL) {
		TAILQ_REMOVE(&active, d, active);
		d->on_active = 0;
		if ((b = TAILQ_FIRST(&d->waiting)) == NULL) {
			sched_dest_gc(d);
			continue;
		}
		TAILQ_REMOVE(&d->waiting, b, dentry);
		sched_send(b);
		sched_dest_activate(d);
		sched_dest_gc(d);
	}
	stat_set("queue.deliveries_out", (int64_t)ninflight);
	sched_timer_arm();
}

/*
 * IMSG_RELAY_DELIVER (see "relay protocol" in splitmx.h), with a
 * descriptor of its own on the message file.
 */
static void
sched_send(struct sched_batch *b)
{
	struct queue_msg	*qm = b->qm;
	struct queue_envelope	*e = qm->env;
	struct queue_rcpt	*r;
	struct msg		 m;
	enum smx_tls		 tls;
	uint32_t		 i;
	int			 fd;

	if ((fd = queue_fs_message_open(&queue_spool, e->id)) == -1) {
		sched_send_failed(b, errno);
		return;
	}
	b->reqid = ++last_reqid;
	msg_init(&m, IMSG_RELAY_DELIVER, 0);
	msg_add_u64(&m, b->reqid);
	msg_add_str(&m, e->id);
	msg_add_str(&m, e->sender);
	msg_add_u32(&m, e->body);
	msg_add_u32(&m, e->flags);
	msg_add_str(&m, e->envid);
	msg_add_u32(&m, e->ret);
	msg_add_u64(&m, e->size);
	msg_add_str(&m, b->dest->dest);
	tls = sched_policy(b->tls, b->dest->dest);
	msg_add_u32(&m, (uint32_t)tls);
	msg_add_u32(&m, b->n);
	for (i = 0; i < b->n; i++) {
		r = &e->rcpts[b->idx[i]];
		msg_add_u32(&m, b->idx[i]);
		msg_add_str(&m, r->rewritten);
		msg_add_u32(&m, r->notify);
		msg_add_str(&m, r->orcpt);
	}
	msg_set_fd(&m, fd);
	proc_send(PROC_RELAY, &m);
	TAILQ_INSERT_TAIL(&out, b, dentry);
	b->dest->inflight++;
	qm->inflight++;
	ninflight++;
	log_debug("id=%s event=dispatch reqid=%llu dest=%s domain=%s "
	    "tls=%s rcpts=%u", e->id, (unsigned long long)b->reqid,
	    *b->dest->dest ? b->dest->dest : "mx", b->dest->domain,
	    queue_fs_tls_name(tls), b->n);
}

/* The message file would not open: the batch is deferred, not tried. */
static void
sched_send_failed(struct sched_batch *b, int error)
{
	struct queue_msg	*qm = b->qm;
	struct queue_envelope	*e = qm->env;
	struct queue_rcpt	*r;
	char			 text[128];
	uint32_t		 i;

	log_warnx("id=%s event=open-failed error=%s", e->id,
	    log_text(strerror(error)));
	(void)snprintf(text, sizeof(text), "4.3.0 cannot open the message "
	    "file: %s", strerror(error));
	for (i = 0; i < b->n; i++) {
		r = &e->rcpts[b->idx[i]];
		r->sched = 0;
		r->state = STATE_DEFERRED;
		r->next_try = time(NULL) + env->conf->retry_first;
		sched_set_error(r, text);
	}
	TAILQ_REMOVE(&qm->batches, b, mentry);
	sched_batch_free(b);
	sched_save(qm);
	(void)sched_update(qm);
}

/*
 * The policy a batch goes out with: the one its recipients were routed
 * with (the lookup process decided it, the envelope keeps it), raised
 * to the one the configuration gives the destination now if that is
 * stricter.  A reload may tighten the policy of queued mail, never
 * loosen it; a destination no longer configured keeps the policy it
 * was routed with.  A recipient from an envelope older than tls= has
 * none recorded: it takes the configuration's, as it did then, and
 * opportunistic if its destination is gone.
 */
static enum smx_tls
sched_policy(uint32_t routed, const char *dest)
{
	enum smx_tls	 now;

	if (conf_host_tls(env->conf, dest, &now) == -1)
		return routed == QUEUE_TLS_UNKNOWN ? TLSP_OPPORTUNISTIC :
		    (enum smx_tls)routed;
	if (routed == QUEUE_TLS_UNKNOWN || (uint32_t)now > routed)
		return now;
	return (enum smx_tls)routed;
}

/*
 * The verdicts of IMSG_RELAY_RESULT after its header, each at its
 * recipient's place in the batch; a recipient twice or not in the
 * batch is a broken relay.
 */
static void
sched_result_read(struct msg *m, const struct sched_batch *b,
    uint32_t nrcpt, uint32_t *status, const char **replies,
    const char **tlss, const char **verifs)
{
	const char	*reply, *tls, *verified;
	uint32_t	 i, j, index, st;

	for (i = 0; i < nrcpt; i++) {
		if (msg_get_u32(m, &index) == -1 ||
		    msg_get_u32(m, &st) == -1 ||
		    msg_get_strp(m, &reply) == -1 || reply == NULL ||
		    msg_get_strp(m, &tls) == -1 || tls == NULL ||
		    msg_get_strp(m, &verified) == -1 || verified == NULL ||
		    st >= DELIVERY_COUNT)
			fatalx("bad %s", imsg_name(m->type));
		for (j = 0; j < b->n; j++)
			if (b->idx[j] == index)
				break;
		if (j == b->n || replies[j] != NULL)
			fatalx("bad %s: recipient %u", imsg_name(m->type),
			    index);
		status[j] = st;
		replies[j] = reply;
		tlss[j] = tls;
		verifs[j] = verified;
	}
	if (msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
}

/*
 * Each recipient of the batch takes its verdict: delivered, deferred
 * (or expired) or failed; one without a verdict is deferred.  Says in
 * *relayed and *deferred whether any was.
 */
static void
sched_outcomes(struct queue_envelope *e, const struct sched_batch *b,
    uint32_t *status, const char **replies, const char **tlss,
    const char **verifs, time_t now, int *relayed, int *deferred)
{
	struct queue_rcpt	*r;
	uint32_t		 j;

	for (j = 0; j < b->n; j++) {
		r = &e->rcpts[b->idx[j]];
		if (replies[j] == NULL) {
			log_warnx("id=%s event=no-result to=%s", e->id,
			    log_addr(r->rewritten));
			status[j] = DELIVERY_TEMPFAIL;
			replies[j] = "4.3.0 no result from the relay";
			tlss[j] = verifs[j] = "none";
		}
		r->tries++;
		r->last_try = now;
		switch (status[j]) {
		case DELIVERY_RELAYED:
			*relayed = 1;
			/* FALLTHROUGH */
		case DELIVERY_OK:
			r->state = STATE_DELIVERED;
			sched_set_error(r, "");
			break;
		case DELIVERY_TEMPFAIL:
			sched_set_error(r, replies[j]);
			*deferred = 1;
			if (now >= e->arrival + env->conf->expire) {
				r->fail = FAIL_EXPIRED;
				break;
			}
			r->state = STATE_DEFERRED;
			r->next_try = sched_next_try(e, r->tries);
			log_info("id=%s event=deferred to=%s tries=%u "
			    "next=%llds error=%s", e->id,
			    log_addr(r->rewritten), r->tries,
			    (long long)(r->next_try - now),
			    log_text(r->last_error));
			break;
		default:
			sched_set_error(r, replies[j]);
			r->fail = FAIL_PERM;
			break;
		}
	}
}

/*
 * IMSG_RELAY_RESULT: each recipient's verdict.  A recipient the relay
 * did not mention is deferred (it cannot have been delivered without a
 * verdict).
 */
void
sched_result(struct msg *m)
{
	struct sched_batch	*b;
	struct sched_dest	*d;
	struct queue_msg	*qm;
	struct queue_envelope	*e;
	const char		*remote, **replies, **tlss, **verifs;
	uint32_t		*status, nrcpt, j;
	uint64_t		 reqid;
	time_t			 now = time(NULL);
	int			 deferred = 0, relayed = 0;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_strp(m, &remote) == -1 ||
	    remote == NULL || msg_get_u32(m, &nrcpt) == -1)
		fatalx("bad %s", imsg_name(m->type));
	TAILQ_FOREACH(b, &out, dentry)
		if (b->reqid == reqid)
			break;
	if (b == NULL || nrcpt > b->n)
		fatalx("%s: unknown delivery %llu", imsg_name(m->type),
		    (unsigned long long)reqid);
	if ((status = calloc(b->n, sizeof(*status))) == NULL ||
	    (replies = calloc(b->n, sizeof(*replies))) == NULL ||
	    (tlss = calloc(b->n, sizeof(*tlss))) == NULL ||
	    (verifs = calloc(b->n, sizeof(*verifs))) == NULL)
		fatal("calloc");
	sched_result_read(m, b, nrcpt, status, replies, tlss, verifs);

	TAILQ_REMOVE(&out, b, dentry);
	ninflight--;
	b->dest->inflight--;
	qm = b->qm;
	e = qm->env;
	qm->inflight--;
	TAILQ_REMOVE(&qm->batches, b, mentry);
	for (j = 0; j < b->n; j++)
		e->rcpts[b->idx[j]].sched = 0;

	if (qm->sflags & F_QM_REMOVE) {
		/* The operator removed it meanwhile; the result is moot. */
		if (qm->inflight == 0) {
			log_info("id=%s event=removed by=operator", e->id);
			queue_msg_remove(qm);
		}
		goto done;
	}
	sched_outcomes(e, b, status, replies, tlss, verifs, now, &relayed,
	    &deferred);
	sched_history(e, b, status, replies, tlss, verifs, remote);
	if (relayed)
		sched_relayed(qm, b, status, replies, remote);
	if (deferred)
		stat_add("messages.deferred", 1);
	if (!sched_settle(qm, remote, now, 1))
		(void)sched_update(qm);
 done:
	free(status);
	free(replies);
	free(tlss);
	free(verifs);
	d = b->dest;
	sched_batch_free(b);
	sched_dest_activate(d);
	sched_dest_gc(d);
	sched_kick();
}

/*
 * One history line per outcome of the attempt, with its recipients and
 * what its TLS verified: "deferred via mx.example [192.0.2.1]
 * tls=TLSv1.3 verified=dane: "451 4.3.0 later" <a>, <b>".
 */
static void
sched_history(struct queue_envelope *e, struct sched_batch *b,
    const uint32_t *status, const char **replies, const char **tlss,
    const char **verifs, const char *remote)
{
	static const char *const	 names[] = {
		"delivered", "deferred", "bounced", "delivered"
	};
	char				 line[QUEUE_STRMAX + 1];
	uint32_t			*done, i, j;

	if ((done = calloc(b->n, sizeof(*done))) == NULL)
		fatal("calloc");
	for (i = 0; i < b->n; i++) {
		if (done[i])
			continue;
		(void)snprintf(line, sizeof(line), "%s via %s tls=%s "
		    "verified=%s: \"%s\"", names[status[i]],
		    *remote ? remote : "-", tlss[i], verifs[i], replies[i]);
		for (j = i; j < b->n; j++) {
			if (done[j] || status[j] != status[i] ||
			    strcmp(replies[j], replies[i]) != 0 ||
			    strcmp(tlss[j], tlss[i]) != 0 ||
			    strcmp(verifs[j], verifs[i]) != 0)
				continue;
			done[j] = 1;
			strlcat(line, j == i ? " <" : ", <", sizeof(line));
			strlcat(line, e->rcpts[b->idx[j]].rewritten,
			    sizeof(line));
			strlcat(line, ">", sizeof(line));
		}
		sched_event(e, "%s", line);
	}
	free(done);
}

/* schedule ID: every recipient not done is due now. */
void
sched_schedule(struct queue_msg *qm)
{
	struct queue_envelope	*e = qm->env;
	time_t			 now = time(NULL);
	uint32_t		 i;

	if (qm->sflags & F_QM_REMOVE)
		return;
	for (i = 0; i < e->nrcpt; i++)
		if (!sched_final(&e->rcpts[i]) && !e->rcpts[i].sched)
			e->rcpts[i].next_try = now;
	(void)sched_update(qm);
	sched_kick();
}

/*
 * remove ID: batches still waiting are dropped; with deliveries out the
 * message stays until their results are back (0), else it goes now (1).
 */
int
sched_remove(struct queue_msg *qm)
{
	struct sched_batch	*b, *next;
	struct sched_dest	*d;
	uint32_t		 i;

	if (qm->sflags & F_QM_REMOVE)
		return 0;
	for (b = TAILQ_FIRST(&qm->batches); b != NULL; b = next) {
		next = TAILQ_NEXT(b, mentry);
		if (b->reqid != 0)
			continue;
		for (i = 0; i < b->n; i++)
			qm->env->rcpts[b->idx[i]].sched = 0;
		d = b->dest;
		TAILQ_REMOVE(&d->waiting, b, dentry);
		TAILQ_REMOVE(&qm->batches, b, mentry);
		sched_batch_free(b);
		sched_dest_activate(d);
		sched_dest_gc(d);
	}
	sched_timer_del(qm);
	if (qm->inflight > 0) {
		qm->sflags |= F_QM_REMOVE;
		log_info("id=%s event=remove-pending deliveries=%u",
		    qm->env->id, qm->inflight);
		return 0;
	}
	log_info("id=%s event=removed by=operator", qm->env->id);
	queue_msg_remove(qm);
	sched_kick();
	return 1;
}

/*
 * release ID: a quarantined message is no longer held; written first,
 * so that a restart does not hold it again, then due at once.
 */
int
sched_release(struct queue_msg *qm)
{
	struct queue_envelope	*e = qm->env;
	time_t			 now = time(NULL);
	uint32_t		 i;

	if (!QUEUE_HELD(e) || (qm->sflags & F_QM_REMOVE))
		return 0;
	log_info("id=%s event=released by=operator quarantine=%s", e->id,
	    log_text(e->quarantine));
	sched_event(e, "released from quarantine (%s) by the operator",
	    e->quarantine);
	free(e->quarantine);
	e->quarantine = str_dup("");
	for (i = 0; i < e->nrcpt; i++)
		if (!sched_final(&e->rcpts[i]))
			e->rcpts[i].next_try = now;
	sched_save(qm);
	(void)sched_update(qm);
	sched_kick();
	return 1;
}

/* Whether messages go out at all now (pause relay). */
int
sched_paused(void)
{
	return paused;
}

/* pause relay: nothing more goes out; what is out comes back. */
void
sched_pause(int p)
{
	if (paused != p)
		log_info("event=relay-%s deliveries_out=%u",
		    p ? "paused" : "resumed", ninflight);
	paused = p;
	sched_kick();
}

/* Deliveries out to the relay now (splitmxctl stop waits for them). */
uint32_t
sched_inflight(void)
{
	return ninflight;
}

static void
sched_timer_set(struct queue_msg *qm, time_t wake, time_t now)
{
	sched_timer_del(qm);
	/* Never in the past: the timer must make progress. */
	qm->wakeup = wake > now ? wake : now + 1;
	if (RB_INSERT(sched_timers, &timers, qm) != NULL)
		fatalx("id=%s twice in the timer tree", qm->env->id);
	qm->sflags |= F_QM_TIMER;
}

static void
sched_timer_del(struct queue_msg *qm)
{
	if (!(qm->sflags & F_QM_TIMER))
		return;
	RB_REMOVE(sched_timers, &timers, qm);
	qm->sflags &= ~F_QM_TIMER;
}

/* One timer, for the earliest wakeup of all. */
static void
sched_timer_arm(void)
{
	struct queue_msg	*qm;
	struct timeval		 now, tv;
	long long		 us;

	if ((qm = RB_MIN(sched_timers, &timers)) == NULL) {
		if (evtimer_pending(&ev_timer, NULL))
			evtimer_del(&ev_timer);
		return;
	}
	if (gettimeofday(&now, NULL) == -1)
		fatal("gettimeofday");
	us = ((long long)qm->wakeup - now.tv_sec) * 1000000LL - now.tv_usec;
	if (us < 0)
		us = 0;
	if (us > SCHED_TIMER_MAX * 1000000LL)
		us = SCHED_TIMER_MAX * 1000000LL;
	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	evtimer_add(&ev_timer, &tv);
}

static void
sched_timer_fire(int fd, short event, void *arg)
{
	struct queue_msg	*qm;
	time_t			 now = time(NULL);

	(void)fd;
	(void)event;
	(void)arg;
	while ((qm = RB_MIN(sched_timers, &timers)) != NULL &&
	    qm->wakeup <= now) {
		sched_timer_del(qm);
		(void)sched_update(qm);
	}
	sched_kick();
}
