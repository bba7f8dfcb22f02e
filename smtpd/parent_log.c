/*
 * The parent's end of the children's log channel: without -d, every
 * child sends its log records to the parent, which writes them to
 * syslog under the child's name and pid.
 *
 * Why the parent: a child is chrooted and sandboxed, so it cannot open
 * /dev/log again once syslogd has been restarted (or if there was none
 * at its start); the parent can, and does at the first write that
 * fails (lib/log.c).  Each child has a datagram socketpair of its own
 * at PROC_LOG_FD: one record is one datagram, whole or not at all,
 * which even a signal handler may send, and the parent knows who sent
 * it by the socket it came on, not by anything in the record.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <stdint.h>
#include <syslog.h>
#include <unistd.h>

#include "splitmx.h"
#include "parent.h"

#define PARENT_LOG_BATCH	64	/* records per child and event */

static void	parent_log_read(int, short, void *);
static void	parent_log_take(int, int);

static int		 log_fds[PROC_COUNT];
static int		 log_have[PROC_COUNT];	/* log_fds[] is set */
static pid_t		 log_pids[PROC_COUNT];	/* also once reaped */
static struct event	 log_evs[PROC_COUNT];

/*
 * Before the fork of child proc: its log socket.  Returns the child's
 * end (to become its PROC_LOG_FD), or -1 with -d (children write to
 * stderr themselves).
 */
int
parent_log_channel(int proc)
{
	int	 sp[2];

	if (env->debug)
		return -1;
	if (proc <= PROC_PARENT || proc >= PROC_COUNT)
		fatalx("%s: no process %d", __func__, proc);
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp) == -1)
		fatal("socketpair for the log of %s", proc_name(proc));
	if (fcntl(sp[0], F_SETFL, O_NONBLOCK) == -1)
		fatal("fcntl");
	log_fds[proc] = sp[0];
	log_have[proc] = 1;
	return sp[1];
}

/* With the event loop: read each child's records as they come. */
void
parent_log_start(void)
{
	int	 i;

	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++) {
		if (!log_have[i])
			continue;
		log_pids[i] = env->pids[i];
		event_set(&log_evs[i], log_fds[i], EV_READ | EV_PERSIST,
		    parent_log_read, (void *)(intptr_t)i);
		if (event_add(&log_evs[i], NULL) == -1)
			fatal("event_add log of %s", proc_name(i));
	}
}

static void
parent_log_read(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	parent_log_take((int)(intptr_t)arg, PARENT_LOG_BATCH);
}

/*
 * Everything the children have sent so far: before the parent says a
 * child died (its last words are in its socket), and before it exits.
 */
void
parent_log_drain(void)
{
	int	 i;

	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++)
		parent_log_take(i, -1);
}

/* At most max records (-1: all there are) from child proc. */
static void
parent_log_take(int proc, int max)
{
	char	 rec[1 + LOG_LINE_MAX];
	ssize_t	 n;

	if (!log_have[proc])
		return;
	while (max == -1 || max-- > 0) {
		n = recv(log_fds[proc], rec, sizeof(rec), MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("log of %s", proc_name(proc));
			return;
		}
		if (n == 0)
			return;		/* an empty datagram: never sent */
		/* A longer record was cut to what a record may hold. */
		log_relay(rec[0] & LOG_PRIMASK, (long)log_pids[proc],
		    proc_name(proc), rec + 1, (size_t)n - 1);
	}
}
