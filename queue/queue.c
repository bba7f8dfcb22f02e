/*
 * The queue process: its start and its messages.  The work is in
 * queue_commit.c (message files, commits), queue_index.c (the queue in
 * memory), queue_ctl.c (splitmxctl), scheduler.c (deliveries),
 * bounce.c (DSNs), queue_fs*.c (the spool on disk) and queue_sts.c
 * (the MTA-STS policies kept for the lookup process).
 */
#include <sys/types.h>

#include <event.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"
#include "queue.h"

#define QUEUE_STAT_INTERVAL	5	/* seconds, queue.oldest_age */
#define QUEUE_STOP_POLL		100	/* ms, deliveries out at a stop */

static void	queue_conf_apply(struct msg *);
static void	queue_relay_result(struct msgchan *, struct msg *);
static void	queue_stat_timer(int, short, void *);
static void	queue_stop_poll(int, short, void *);

static struct event	 ev_stat;
/* splitmxctl stop: until when the deliveries out may come back. */
static struct {
	time_t		 deadline;
	uint32_t	 out;		/* when it began */
	struct event	 ev;
} stopping;

/*
 * Privileges go first: the spool is then "." (our chroot as root, our
 * cwd otherwise), and recovery works with paths relative to it.
 */
void
queue(void)
{
	struct timeval	 tv = { QUEUE_STAT_INTERVAL, 0 };

	/* AIO's context and eventfd need calls the sandbox refuses. */
	(void)queue_aio_init();
	proc_drop_privileges();
	sched_init();
	queue_index_recover();
	queue_commit_init();
	queue_sts_init();
	evtimer_set(&ev_stat, queue_stat_timer, NULL);
	evtimer_add(&ev_stat, &tv);
	queue_index_stats();
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
		queue_commit_create(ch, m);
		break;
	case IMSG_QUEUE_MESSAGE_COMMIT:
		queue_commit_message(ch, m);
		break;
	case IMSG_QUEUE_MESSAGE_ROLLBACK:
		queue_commit_rollback(ch, m);
		break;
	case IMSG_QUEUE_MESSAGE_OPEN:
		queue_commit_open(ch, m);
		break;
	case IMSG_CTL_QUEUE_RELEASE:
		queue_ctl_release(ch, m);
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
	case IMSG_QUEUE_STS_STORE:
		queue_sts_store(ch, m);
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

/* IMSG_RELAY_RESULT: the scheduler's. */
static void
queue_relay_result(struct msgchan *ch, struct msg *m)
{
	proc_expect(ch, m, PROC_RELAY);
	sched_result(m);
}

static void
queue_stat_timer(int fd, short event, void *arg)
{
	struct timeval	 tv = { QUEUE_STAT_INTERVAL, 0 };

	(void)fd;
	(void)event;
	(void)arg;
	queue_index_stats();
	evtimer_add(&ev_stat, &tv);
}


/*
 * splitmxctl stop: nothing more goes to the relay; the deliveries out
 * have grace seconds to come back with their results.  One still out
 * then is tried again at the next start (its recipients are still
 * queued on disk): twice, never zero times.  Commits go on as long as
 * the smtp process sends them.
 */
void
queue_stop(unsigned int grace)
{
	stopping.deadline = time(NULL) + grace;
	stopping.out = sched_inflight();
	sched_pause(1);
	evtimer_set(&stopping.ev, queue_stop_poll, NULL);
	queue_stop_poll(-1, 0, NULL);
}

static void
queue_stop_poll(int fd, short event, void *arg)
{
	struct timeval	 tv = { 0, QUEUE_STOP_POLL * 1000 };
	char		 report[160];
	uint32_t	 out = sched_inflight();

	(void)fd;
	(void)event;
	(void)arg;
	if (out > 0 && time(NULL) < stopping.deadline) {
		evtimer_add(&stopping.ev, &tv);
		return;
	}
	(void)snprintf(report, sizeof(report), "queue: %u deliver%s out "
	    "at the stop, %u still out (tried again at the next start)",
	    stopping.out, stopping.out == 1 ? "y was" : "ies were", out);
	proc_stopped(report);
}
