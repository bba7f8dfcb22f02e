/*
 * What the control process tells about the daemon: show status, show
 * stats, and the status socket (one JSON object per connection, for
 * monitoring, SPEC §7).
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "splitmx.h"
#include "control.h"

static const char *control_proc_state(int);
static void	control_status_json(FILE *);

static pid_t			 pids[PROC_COUNT];
static time_t			 daemon_started;

/* IMSG_CTL_PROCS: i64 started, u32 n, then n times u32 proc, u32 pid. */
void
control_status_procs(struct msg *m)
{
	uint32_t	 n, i, proc, pid;
	int64_t		 started;

	if (msg_get_i64(m, &started) == -1 || msg_get_u32(m, &n) == -1 ||
	    n > PROC_COUNT)
		fatalx("bad %s", imsg_name(m->type));
	for (i = 0; i < n; i++) {
		if (msg_get_u32(m, &proc) == -1 ||
		    msg_get_u32(m, &pid) == -1 || proc >= PROC_COUNT)
			fatalx("bad %s", imsg_name(m->type));
		pids[proc] = (pid_t)pid;
	}
	if (msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	daemon_started = (time_t)started;
}

static const char *
control_proc_state(int proc)
{
	if (proc == PROC_CONTROL)
		return "running";
	if (pids[proc] == 0)
		return "unknown";
	/* EPERM: alive, but not ours to signal (the root parent). */
	if (kill(pids[proc], 0) == 0 || errno == EPERM)
		return "running";
	return "dead";
}

void
control_show_status(struct ctl_client *c, char **words)
{
	FILE	*out = control_out(c);
	time_t	 now = time(NULL);
	int	 i;

	(void)words;
	if (c->json) {
		fprintf(out, "{\"version\": \"%s\", \"uptime\": %lld, "
		    "\"pid\": %d, \"generation\": %u, \"processes\": [",
		    SPLITMX_VERSION, (long long)(now - daemon_started),
		    (int)pids[PROC_PARENT], env->conf->generation);
		for (i = 0; i < PROC_COUNT; i++)
			fprintf(out, "%s{\"name\": \"%s\", \"pid\": %d, "
			    "\"state\": \"%s\"}", i ? ", " : "",
			    proc_name(i), (int)pids[i], control_proc_state(i));
		fprintf(out, "], \"sessions\": %lld, \"queue\": %lld}\n",
		    (long long)control_counters_value("sessions.active"),
		    (long long)control_counters_value("queue.messages"));
	} else {
		fprintf(out, "splitmxd %s, up %llds, configuration "
		    "generation %u\n", SPLITMX_VERSION,
		    (long long)(now - daemon_started),
		    env->conf->generation);
		for (i = 0; i < PROC_COUNT; i++)
			fprintf(out, "%-8s pid %-7d %s\n", proc_name(i),
			    (int)pids[i], control_proc_state(i));
		fprintf(out, "sessions %lld\nqueue %lld messages\n",
		    (long long)control_counters_value("sessions.active"),
		    (long long)control_counters_value("queue.messages"));
	}
	control_reply(c, 0);
}

void
control_show_stats(struct ctl_client *c, char **words)
{
	FILE		*out = control_out(c);
	const char	*name;
	int64_t		 v;
	int		 i, gauge;

	(void)words;
	if (c->json)
		fputs("{", out);
	for (i = 0; i < control_counters_n(); i++) {
		name = control_counters_at(i, &v, &gauge);
		if (c->json)
			fprintf(out, "%s\"%s\": %lld", i ? ", " : "", name,
			    (long long)v);
		else
			fprintf(out, "%s=%lld\n", name, (long long)v);
	}
	if (c->json)
		fputs("}\n", out);
	control_reply(c, 0);
}

/* The status socket: one JSON object, then close. */
static void
control_status_json(FILE *out)
{
	time_t		 now = time(NULL);
	const char	*name;
	int64_t		 v;
	int		 i, gauge;

	fprintf(out, "{\"version\": \"%s\", \"uptime\": %lld, "
	    "\"generation\": %u, \"loaded\": %lld, \"processes\": {",
	    SPLITMX_VERSION, (long long)(now - daemon_started),
	    env->conf->generation, (long long)env->conf->loaded);
	for (i = 0; i < PROC_COUNT; i++)
		fprintf(out, "%s\"%s\": {\"pid\": %d, \"state\": \"%s\"}",
		    i ? ", " : "", proc_name(i), (int)pids[i],
		    control_proc_state(i));
	fputs("}", out);
	for (i = 0; i < control_counters_n(); i++) {
		name = control_counters_at(i, &v, &gauge);
		fprintf(out, ", \"%s\": %lld", name, (long long)v);
	}
	fputs("}\n", out);
}

void
control_status_accept(int lfd, short event, void *arg)
{
	static struct control_warn	 w;
	struct timeval			 tv = { 1, 0 };
	char				*buf = NULL;
	size_t				 len = 0, off = 0;
	ssize_t				 n;
	FILE				*out;
	int				 fd;

	(void)event;
	(void)arg;
	/* Answered and closed here: never more than one connection held. */
	if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1) {
		if (errno == EMFILE || errno == ENFILE)
			control_starved("status", errno);
		else if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			control_warn(&w, "status accept: %s", strerror(errno));
		return;
	}
	if ((out = open_memstream(&buf, &len)) == NULL)
		fatal("open_memstream");
	control_status_json(out);
	if (fclose(out) != 0)
		fatal("fclose");
	/* A few hundred bytes: fits the socket buffer, cannot block long. */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (off < len) {
		if ((n = send(fd, buf + off, len - off, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		off += (size_t)n;
	}
	free(buf);
	close(fd);
}
