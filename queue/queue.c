/*
 * The queue process: its start and its messages.  The work is in
 * queue_commit.c (message files, commits), queue_index.c (the queue in
 * memory), queue_ctl.c (splitmxctl), scheduler.c (deliveries),
 * bounce.c (DSNs) and queue_fs*.c (the spool on disk).
 */
#include <sys/types.h>

#include <event.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"
#include "queue.h"

#define QUEUE_STAT_INTERVAL	5	/* seconds, queue.oldest_age */

static void	queue_conf_apply(struct msg *);
static void	queue_relay_result(struct msgchan *, struct msg *);
static void	queue_stat_timer(int, short, void *);

static struct event	 ev_stat;

/*
 * Privileges go first: the spool is then "." (our chroot as root, our
 * cwd otherwise), and recovery works with paths relative to it.
 */
void
queue(void)
{
	struct timeval	 tv = { QUEUE_STAT_INTERVAL, 0 };

	proc_drop_privileges();
	sched_init();
	queue_index_recover();
	queue_commit_init();
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

