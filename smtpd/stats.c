/*
 * Counters kept by every process and sent to the control process in
 * batches, so that a busy smtp process costs control one small message
 * every 250 ms instead of one per event.
 */
#include <sys/types.h>

#include <event.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"

#define STAT_MAX	256	/* each milter has six */
#define STAT_INTERVAL	250000	/* microseconds */

struct stat_entry {
	char		 name[64];
	int64_t		 value;		/* delta, or the gauge's value */
	int		 gauge;
	int		 dirty;
};

static struct stat_entry	 stats[STAT_MAX];
static int			 nstats;
static struct event		 stat_ev;
static int			 stat_armed;

static void	stat_timer(int, short, void *);
static struct stat_entry *stat_get(const char *, int);

static struct stat_entry *
stat_get(const char *name, int gauge)
{
	int	 i;

	for (i = 0; i < nstats; i++)
		if (strcmp(stats[i].name, name) == 0)
			return &stats[i];
	if (nstats == STAT_MAX)
		fatalx("too many counters (%s)", name);
	strlcpy(stats[nstats].name, name, sizeof(stats[nstats].name));
	stats[nstats].gauge = gauge;
	return &stats[nstats++];
}

static void
stat_arm(void)
{
	struct timeval	 tv = { 0, STAT_INTERVAL };

	if (stat_armed || env->proc == PROC_CONTROL)
		return;
	if (!event_initialized(&stat_ev))
		evtimer_set(&stat_ev, stat_timer, NULL);
	evtimer_add(&stat_ev, &tv);
	stat_armed = 1;
}

void
stat_add(const char *name, int64_t delta)
{
	struct stat_entry	*s = stat_get(name, 0);

	s->value += delta;
	s->dirty = 1;
	stat_arm();
}

void
stat_set(const char *name, int64_t value)
{
	struct stat_entry	*s = stat_get(name, 1);

	s->value = value;
	s->dirty = 1;
	stat_arm();
}

static void
stat_timer(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	stat_armed = 0;
	stat_flush();
}

/*
 * IMSG_CTL_STATS: u32 n, then n times (str name, u32 gauge, i64 value);
 * a counter's value is the increase since the last batch.
 */
void
stat_flush(void)
{
	struct msg	 m;
	uint32_t	 n = 0;
	int		 i;

	for (i = 0; i < nstats; i++)
		if (stats[i].dirty)
			n++;
	if (n == 0 || env->chan[PROC_CONTROL] == NULL)
		return;
	msg_init(&m, IMSG_CTL_STATS, 0);
	msg_add_u32(&m, n);
	for (i = 0; i < nstats; i++) {
		if (!stats[i].dirty)
			continue;
		msg_add_str(&m, stats[i].name);
		msg_add_u32(&m, (uint32_t)stats[i].gauge);
		msg_add_i64(&m, stats[i].value);
		stats[i].dirty = 0;
		if (!stats[i].gauge)
			stats[i].value = 0;
	}
	proc_send(PROC_CONTROL, &m);
}
