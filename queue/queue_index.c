/*
 * The queue's index: every committed message in memory, by id and by
 * age, loaded from the spool at start (queue_fs_recover.c), and the
 * gauges that describe it.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/tree.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "splitmx.h"
#include "queue.h"

RB_HEAD(queue_tree, queue_msg);
RB_HEAD(queue_agetree, queue_msg);

static int	queue_msg_cmp(struct queue_msg *, struct queue_msg *);
RB_PROTOTYPE_INTERNAL(queue_tree, queue_msg, node, queue_msg_cmp,
    SMX_RB_STATIC);
static int	queue_msg_agecmp(struct queue_msg *, struct queue_msg *);
RB_PROTOTYPE_INTERNAL(queue_agetree, queue_msg, agenode, queue_msg_agecmp,
    SMX_RB_STATIC);

static int	queue_age_cmp(const void *, const void *);
static void	queue_recovered(struct queue_envelope *, void *);

struct queue_fs				 queue_spool;
static struct queue_tree		 messages = RB_INITIALIZER(&messages);
static TAILQ_HEAD(queue_age, queue_msg) by_age =
					    TAILQ_HEAD_INITIALIZER(by_age);
static struct queue_agetree		 ages = RB_INITIALIZER(&ages);
static size_t				 nmessages;
static struct queue_envelope		**recovered;
static size_t				 nrecovered, caprecovered;

RB_GENERATE_INTERNAL(queue_tree, queue_msg, node, queue_msg_cmp,
    SMX_RB_STATIC)
RB_GENERATE_INTERNAL(queue_agetree, queue_msg, agenode, queue_msg_agecmp,
    SMX_RB_STATIC)

static int
queue_msg_cmp(struct queue_msg *a, struct queue_msg *b)
{
	return strcmp(a->env->id, b->env->id);
}

static int
queue_msg_agecmp(struct queue_msg *a, struct queue_msg *b)
{
	return queue_age_cmp(&a->env, &b->env);
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

/*
 * At start.  Why wiping incoming/ and loading queue/ is right: see
 * queue_fs_recover.c.
 */
void
queue_index_recover(void)
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
 * same order after a restart.  The tree ages says where a new message
 * goes: not last, as a rule, but among the others of the same second,
 * by its random id (walking the list for that place cost a comparison
 * per message of that second, thousands with the relay paused).
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
	if (RB_INSERT(queue_agetree, &ages, qm) != NULL)
		fatalx("id=%s twice in the age index", e->id);
	prev = RB_PREV(queue_agetree, &ages, qm);
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
 * Removal (see queue_fs.c: the message file goes first).  A failure leaves
 * files that the next start loads again: delivered twice, never lost.
 */
void
queue_msg_remove(struct queue_msg *qm)
{
	if (queue_fs_message_remove(&queue_spool, qm->env->id,
	    qm->env->size) == -1)
		log_warn("id=%s event=remove-failed", qm->env->id);
	RB_REMOVE(queue_tree, &messages, qm);
	RB_REMOVE(queue_agetree, &ages, qm);
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

size_t
queue_msg_count(void)
{
	return nmessages;
}

/* queue.messages, queue.oldest_age and queue.quarantined. */
void
queue_index_stats(void)
{
	struct queue_msg	*qm;
	time_t			 now = time(NULL), age = 0;
	int64_t			 held = 0;

	if ((qm = TAILQ_FIRST(&by_age)) != NULL && now > qm->env->arrival)
		age = now - qm->env->arrival;
	TAILQ_FOREACH(qm, &by_age, age)
		if (QUEUE_HELD(qm->env))
			held++;
	stat_set("queue.messages", (int64_t)nmessages);
	stat_set("queue.oldest_age", (int64_t)age);
	stat_set("queue.quarantined", held);
}
