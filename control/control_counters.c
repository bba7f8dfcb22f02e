/*
 * The counter store of the control process: what every process reports
 * in IMSG_CTL_STATS, kept by name for show stats, the status socket and
 * the metrics listener.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"
#include "control.h"

struct counter {
	char		 name[64];
	int64_t		 value;
	int		 gauge;
};

static struct counter	*counter_get(const char *, int);

static struct counter	 counters[512];
static int		 ncounters;

/* SPEC §7 keys: always present, even before anything happened. */
static const struct {
	const char	*name;
	int		 gauge;
} base_counters[] = {
	{ "sessions.active", 1 },
	{ "sessions.total", 0 },
	{ "messages.accepted", 0 },
	{ "messages.delivered", 0 },
	{ "messages.deferred", 0 },
	{ "messages.bounced", 0 },
	{ "recipients.local", 0 },
	{ "recipients.custom", 0 },
	{ "recipients.forwarded", 0 },
	{ "recipients.rejected", 0 },
	{ "queue.messages", 1 },
	{ "queue.oldest_age", 1 },
};

void
control_counters_init(void)
{
	size_t	 i;

	for (i = 0; i < sizeof(base_counters) / sizeof(base_counters[0]); i++)
		counter_get(base_counters[i].name, base_counters[i].gauge);
}

static struct counter *
counter_get(const char *name, int gauge)
{
	int	 i;

	for (i = 0; i < ncounters; i++)
		if (strcmp(counters[i].name, name) == 0)
			return &counters[i];
	if (ncounters == (int)(sizeof(counters) / sizeof(counters[0])))
		return NULL;
	strlcpy(counters[ncounters].name, name, sizeof(counters[0].name));
	counters[ncounters].gauge = gauge;
	return &counters[ncounters++];
}

/*
 * IMSG_CTL_STATS: u32 n, then n times str name, u32 gauge, i64 value;
 * a counter's value is added, a gauge's replaces the one before.
 */
void
control_counters_stats(struct msg *m)
{
	struct counter	*c;
	const char	*name;
	uint32_t	 n, i, gauge;
	int64_t		 v;

	if (msg_get_u32(m, &n) == -1 || n > 1024)
		fatalx("bad %s", imsg_name(m->type));
	for (i = 0; i < n; i++) {
		if (msg_get_strp(m, &name) == -1 || name == NULL ||
		    msg_get_u32(m, &gauge) == -1 || msg_get_i64(m, &v) == -1)
			fatalx("bad %s", imsg_name(m->type));
		if ((c = counter_get(name, (int)gauge)) == NULL) {
			log_warnx("too many counters, %s dropped", name);
			continue;
		}
		if (gauge)
			c->value = v;
		else
			c->value += v;
	}
	if (msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
}

int
control_counters_n(void)
{
	return ncounters;
}

const char *
control_counters_at(int i, int64_t *value, int *gauge)
{
	*value = counters[i].value;
	*gauge = counters[i].gauge;
	return counters[i].name;
}

/* 0 for a counter nobody reported. */
int64_t
control_counters_value(const char *name)
{
	int	 i;

	for (i = 0; i < ncounters; i++)
		if (strcmp(counters[i].name, name) == 0)
			return counters[i].value;
	return 0;
}
