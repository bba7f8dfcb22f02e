/*
 * The control process: the control socket (splitmxctl), the status
 * socket (one JSON object per connection) and the counters every other
 * process reports.  Peer credentials decide who may change things.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <event.h>
#include <signal.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmx.h"
#include "control.h"

#define CTL_MAXLINE	4096
#define CTL_TIMEOUT	60

/* A connected splitmxctl. */
struct ctl_client {
	TAILQ_ENTRY(ctl_client)	 entry;
	struct bufferevent	*bev;
	uint64_t		 reqid;		/* outstanding request, or 0 */
	uid_t			 uid;
	int			 admin;		/* may change things */
	int			 json;
	int			 closing;
	FILE			*out;		/* response being built */
	char			*outbuf;
	size_t			 outlen;
	size_t			 nitems;	/* show queue: lines so far */
};

struct counter {
	char		 name[48];
	int64_t		 value;
	int		 gauge;
};

static void	control_accept(int, short, void *);
static void	control_status_accept(int, short, void *);
static void	control_read(struct bufferevent *, void *);
static void	control_written(struct bufferevent *, void *);
static void	control_error(struct bufferevent *, short, void *);
static void	control_request(struct ctl_client *, char *);
static void	control_reply(struct ctl_client *, int);
static void	control_client_free(struct ctl_client *);
static struct ctl_client *control_client_find(uint64_t);
static void	control_show_status(struct ctl_client *);
static void	control_show_stats(struct ctl_client *);
static void	control_procs(struct msg *);
static void	control_stats(struct msg *);
static void	control_reload_result(struct msg *);
static void	control_show_queue(struct ctl_client *);
static void	control_queue_item(struct msg *);
static void	control_queue_end(struct msg *);
static void	control_listen(void);
static void	control_conf_apply(struct msg *);
static int	control_is_admin(int, uid_t, gid_t);
static void	control_status_json(FILE *);

static TAILQ_HEAD(, ctl_client)	 clients = TAILQ_HEAD_INITIALIZER(clients);
static struct event		 ev_control, ev_status;
static int			 listening;
static uint64_t			 next_reqid = 1;
static pid_t			 pids[PROC_COUNT];
static time_t			 daemon_started;
static struct counter		 counters[128];
static int			 ncounters;

/* SPEC §7 keys: always present, even before anything happened. */
static const char *const	 base_counters[] = {
	"sessions.active", "sessions.total",
	"messages.accepted", "messages.delivered", "messages.deferred",
	"messages.bounced",
	"recipients.local", "recipients.custom", "recipients.forwarded",
	"recipients.rejected",
	"queue.messages", "queue.oldest_age",
};
static const int		 base_gauges[] = {
	1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1
};

void
control(void)
{
	size_t	 i;

	for (i = 0; i < sizeof(base_counters) / sizeof(base_counters[0]); i++)
		counter_get(base_counters[i], base_gauges[i]);
	proc_drop_privileges(PROC_CONTROL, SPLITMX_EMPTY);
	control_listen();
	event_dispatch();
	fatalx("event loop ended");
}

static void
control_listen(void)
{
	if (listening) {
		event_del(&ev_control);
		event_del(&ev_status);
		listening = 0;
	}
	if (env->conf->control_fd == -1 || env->conf->status_fd == -1)
		fatalx("control: sockets missing from the configuration");
	event_set(&ev_control, env->conf->control_fd, EV_READ | EV_PERSIST,
	    control_accept, NULL);
	event_add(&ev_control, NULL);
	event_set(&ev_status, env->conf->status_fd, EV_READ | EV_PERSIST,
	    control_status_accept, NULL);
	event_add(&ev_status, NULL);
	listening = 1;
	control_metrics_listen(env->conf->metrics_fd);
}

void
control_imsg(struct msgchan *ch, struct msg *m, void *arg)
{
	(void)arg;
	if (proc_imsg(ch, m))
		return;
	switch (m->type) {
	case IMSG_CONF_APPLY:
		control_conf_apply(m);
		break;
	case IMSG_CTL_PROCS:
		control_procs(m);
		break;
	case IMSG_CTL_STATS:
		control_stats(m);
		break;
	case IMSG_CTL_RELOAD_RESULT:
		control_reload_result(m);
		break;
	case IMSG_CTL_QUEUE_ITEM:
		control_queue_item(m);
		break;
	case IMSG_CTL_QUEUE_END:
		control_queue_end(m);
		break;
	default:
		fatalx("unexpected %s from %s", imsg_name(m->type),
		    proc_name(ch->peer));
	}
}

static void
control_conf_apply(struct msg *m)
{
	struct smx_conf	*old = proc_conf_apply(m);

	control_listen();
	/* The metrics socket is closed by evhttp when it lets go of it. */
	if (old->control_fd != -1)
		close(old->control_fd);
	if (old->status_fd != -1)
		close(old->status_fd);
	conf_free(old);
}

static void
control_procs(struct msg *m)
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

struct counter *
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

int
counter_count(void)
{
	return ncounters;
}

const char *
counter_at(int i, int64_t *value, int *gauge)
{
	*value = counters[i].value;
	*gauge = counters[i].gauge;
	return counters[i].name;
}

static void
control_stats(struct msg *m)
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

/*
 * Root, or a member (primary or supplementary) of the admin group.
 * SO_PEERGROUPS gives the peer's supplementary groups without /proc.
 */
static int
control_is_admin(int fd, uid_t uid, gid_t gid)
{
	gid_t		 groups[256];
	socklen_t	 len = sizeof(groups);
	int64_t		 admin = env->conf->admin_gid;
	size_t		 i;

	if (uid == 0)
		return 1;
	if (admin == -1)
		return 0;
	if ((int64_t)gid == admin)
		return 1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == -1)
		return 0;
	for (i = 0; i < len / sizeof(gid_t); i++)
		if ((int64_t)groups[i] == admin)
			return 1;
	return 0;
}

static void
control_accept(int lfd, short event, void *arg)
{
	struct ctl_client	*c;
	struct ucred		 cred;
	socklen_t		 len = sizeof(cred);
	struct timeval		 tv = { CTL_TIMEOUT, 0 };
	int			 fd;

	(void)event;
	(void)arg;
	if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) ==
	    -1) {
		if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("control accept");
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		log_warn("control SO_PEERCRED");
		close(fd);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("calloc");
	c->uid = cred.uid;
	c->admin = control_is_admin(fd, cred.uid, cred.gid);
	if ((c->bev = bufferevent_socket_new(NULL, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		fatalx("bufferevent_socket_new");
	bufferevent_setcb(c->bev, control_read, NULL, control_error, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ);
	TAILQ_INSERT_TAIL(&clients, c, entry);
}

static void
control_read(struct bufferevent *bev, void *arg)
{
	struct ctl_client	*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	char			*line;
	size_t			 len;

	if (c->closing || c->reqid != 0)
		return;
	if ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) == NULL) {
		if (evbuffer_get_length(in) > CTL_MAXLINE)
			control_client_free(c);
		return;
	}
	bufferevent_disable(bev, EV_READ);
	if (len > CTL_MAXLINE) {
		free(line);
		control_client_free(c);
		return;
	}
	control_request(c, line);
	free(line);
}

/* Start a response: the body goes to c->out, the status line first. */
static FILE *
control_out(struct ctl_client *c)
{
	if (c->out == NULL &&
	    (c->out = open_memstream(&c->outbuf, &c->outlen)) == NULL)
		fatal("open_memstream");
	return c->out;
}

static void
control_reply(struct ctl_client *c, int status)
{
	FILE	*out = control_out(c);

	if (fclose(out) != 0)
		fatal("fclose");
	c->out = NULL;
	evbuffer_add_printf(bufferevent_get_output(c->bev), "%d\n", status);
	evbuffer_add(bufferevent_get_output(c->bev), c->outbuf, c->outlen);
	free(c->outbuf);
	c->outbuf = NULL;
	c->closing = 1;
	c->reqid = 0;
	bufferevent_setcb(c->bev, NULL, control_written, control_error, c);
	bufferevent_enable(c->bev, EV_WRITE);
}

/* A refusal or error: text and JSON alike. */
void
control_fail(struct ctl_client *c, const char *fmt, ...)
{
	char	 buf[1024];
	va_list	 ap;
	FILE	*out = control_out(c);

	va_start(ap, fmt);
	if (vsnprintf(buf, sizeof(buf), fmt, ap) < 0)
		strlcpy(buf, "error", sizeof(buf));
	va_end(ap);
	if (c->json) {
		fputs("{\"error\": ", out);
		json_str(out, buf);
		fputs("}\n", out);
	} else
		fprintf(out, "%s\n", buf);
	control_reply(c, 1);
}

static void
control_written(struct bufferevent *bev, void *arg)
{
	(void)bev;
	control_client_free(arg);
}

static void
control_error(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	control_client_free(arg);
}

static void
control_client_free(struct ctl_client *c)
{
	TAILQ_REMOVE(&clients, c, entry);
	if (c->out != NULL)
		fclose(c->out);
	free(c->outbuf);
	bufferevent_free(c->bev);
	free(c);
}

static struct ctl_client *
control_client_find(uint64_t reqid)
{
	struct ctl_client	*c;

	TAILQ_FOREACH(c, &clients, entry)
		if (c->reqid == reqid && reqid != 0)
			return c;
	return NULL;
}

/*
 * One request line: "text|json VERB [ARGS]".  splitmxctl has checked
 * the usage already; here every word is still hostile.
 */
static void
control_request(struct ctl_client *c, char *line)
{
	char		*words[8], *p, *w;
	int		 n = 0;
	uint32_t	 v;
	struct msg	 m;

	for (p = line; (w = strsep(&p, " ")) != NULL;) {
		if (*w == '\0')
			continue;
		if (n == (int)(sizeof(words) / sizeof(words[0]))) {
			control_fail(c, "too many words");
			return;
		}
		words[n++] = w;
	}
	if (n < 2 || (strcmp(words[0], "json") != 0 &&
	    strcmp(words[0], "text") != 0)) {
		control_fail(c, "malformed request");
		return;
	}
	c->json = strcmp(words[0], "json") == 0;

	if (n == 3 && strcmp(words[1], "show") == 0 &&
	    strcmp(words[2], "status") == 0) {
		control_show_status(c);
		return;
	}
	if (n == 3 && strcmp(words[1], "show") == 0 &&
	    strcmp(words[2], "stats") == 0) {
		control_show_stats(c);
		return;
	}
	if (n == 3 && strcmp(words[1], "show") == 0 &&
	    strcmp(words[2], "queue") == 0) {
		control_show_queue(c);
		return;
	}

	/* Everything below changes something. */
	if (strcmp(words[1], "reload") != 0 && strcmp(words[1], "log") != 0 &&
	    strcmp(words[1], "pause") != 0 && strcmp(words[1], "resume") != 0 &&
	    strcmp(words[1], "schedule") != 0 &&
	    strcmp(words[1], "remove") != 0) {
		control_fail(c, "unknown request: %s", words[1]);
		return;
	}
	if (!c->admin) {
		log_info("control uid=%u refused=%s", (unsigned)c->uid,
		    words[1]);
		control_fail(c, "permission denied: %s needs root or the "
		    "control admin group", words[1]);
		return;
	}
	if (n == 2 && strcmp(words[1], "reload") == 0) {
		c->reqid = next_reqid++;
		msg_init(&m, IMSG_CTL_RELOAD, 0);
		msg_add_u64(&m, c->reqid);
		proc_send(PROC_PARENT, &m);
		log_info("control uid=%u reload", (unsigned)c->uid);
		return;
	}
	if (n == 3 && strcmp(words[1], "log") == 0 &&
	    (strcmp(words[2], "verbose") == 0 ||
	    strcmp(words[2], "brief") == 0)) {
		v = strcmp(words[2], "verbose") == 0;
		proc_compose(PROC_PARENT, IMSG_CTL_VERBOSE, 0, -1, &v,
		    sizeof(v));
		log_setverbose((int)v);
		if (c->json)
			fprintf(control_out(c), "{\"log\": \"%s\"}\n",
			    words[2]);
		else
			fprintf(control_out(c), "log %s\n", words[2]);
		control_reply(c, 0);
		return;
	}
	control_fail(c, "unsupported request: %s%s%s", words[1],
	    n > 2 ? " " : "", n > 2 ? words[2] : "");
}

static void
control_reload_result(struct msg *m)
{
	struct ctl_client	*c;
	uint64_t		 reqid;
	uint32_t		 failed;
	const char		*text;
	FILE			*out;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_u32(m, &failed) == -1 ||
	    msg_get_strp(m, &text) == -1 || text == NULL || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((c = control_client_find(reqid)) == NULL)
		return;		/* SIGHUP, or the client went away */
	out = control_out(c);
	if (c->json) {
		fprintf(out, "{\"reload\": \"%s\", \"message\": ",
		    failed ? "refused" : "applied");
		json_str(out, text);
		fputs("}\n", out);
	} else if (failed)
		fprintf(out, "reload refused, configuration unchanged:\n%s%s",
		    text, text[0] && text[strlen(text) - 1] == '\n' ? "" : "\n");
	else
		fprintf(out, "%s\n", text);
	control_reply(c, failed ? 1 : 0);
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

static int64_t
counter_value(const char *name)
{
	struct counter	*c = counter_get(name, 0);

	return c ? c->value : 0;
}

static void
control_show_status(struct ctl_client *c)
{
	FILE	*out = control_out(c);
	time_t	 now = time(NULL);
	int	 i;

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
		    (long long)counter_value("sessions.active"),
		    (long long)counter_value("queue.messages"));
	} else {
		fprintf(out, "splitmxd %s, up %llds, configuration "
		    "generation %u\n", SPLITMX_VERSION,
		    (long long)(now - daemon_started),
		    env->conf->generation);
		for (i = 0; i < PROC_COUNT; i++)
			fprintf(out, "%-8s pid %-7d %s\n", proc_name(i),
			    (int)pids[i], control_proc_state(i));
		fprintf(out, "sessions %lld\nqueue %lld messages\n",
		    (long long)counter_value("sessions.active"),
		    (long long)counter_value("queue.messages"));
	}
	control_reply(c, 0);
}

static void
control_show_stats(struct ctl_client *c)
{
	FILE	*out = control_out(c);
	int	 i;

	if (c->json) {
		fputs("{", out);
		for (i = 0; i < ncounters; i++)
			fprintf(out, "%s\"%s\": %lld", i ? ", " : "",
			    counters[i].name, (long long)counters[i].value);
		fputs("}\n", out);
	} else
		for (i = 0; i < ncounters; i++)
			fprintf(out, "%s=%lld\n", counters[i].name,
			    (long long)counters[i].value);
	control_reply(c, 0);
}

/* The status socket: one JSON object, then close. */
static void
control_status_json(FILE *out)
{
	time_t	 now = time(NULL);
	int	 i;

	fprintf(out, "{\"version\": \"%s\", \"uptime\": %lld, "
	    "\"generation\": %u, \"loaded\": %lld, \"processes\": {",
	    SPLITMX_VERSION, (long long)(now - daemon_started),
	    env->conf->generation, (long long)env->conf->loaded);
	for (i = 0; i < PROC_COUNT; i++)
		fprintf(out, "%s\"%s\": {\"pid\": %d, \"state\": \"%s\"}",
		    i ? ", " : "", proc_name(i), (int)pids[i],
		    control_proc_state(i));
	fputs("}", out);
	for (i = 0; i < ncounters; i++)
		fprintf(out, ", \"%s\": %lld", counters[i].name,
		    (long long)counters[i].value);
	fputs("}\n", out);
}

static void
control_status_accept(int lfd, short event, void *arg)
{
	char	*buf = NULL;
	size_t	 len = 0, off = 0;
	ssize_t	 n;
	FILE	*out;
	int	 fd;

	(void)event;
	(void)arg;
	if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1) {
		if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("status accept");
		return;
	}
	if ((out = open_memstream(&buf, &len)) == NULL)
		fatal("open_memstream");
	control_status_json(out);
	if (fclose(out) != 0)
		fatal("fclose");
	/* A few hundred bytes: fits the socket buffer, cannot block long. */
	{
		struct timeval	tv = { 1, 0 };

		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
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

void
json_str(FILE *out, const char *s)
{
	const unsigned char	*p;

	fputc('"', out);
	for (p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		default:
			if (*p < 0x20)
				fprintf(out, "\\u%04x", *p);
			else
				fputc(*p, out);
		}
	}
	fputc('"', out);
}

/*
 * show queue: the queue process streams one IMSG_CTL_QUEUE_ITEM per
 * recipient and an IMSG_CTL_QUEUE_END; each is formatted as it comes.
 * A client that went away meanwhile is simply not found.
 */
static void
control_show_queue(struct ctl_client *c)
{
	struct msg	 m;

	c->reqid = next_reqid++;
	c->nitems = 0;
	if (c->json)
		fputs("{\"queue\": [", control_out(c));
	msg_init(&m, IMSG_CTL_QUEUE_LIST, 0);
	msg_add_u64(&m, c->reqid);
	proc_send(PROC_QUEUE, &m);
}

/* "3d4h", "2h5m", "5m7s", "9s": short, and exact enough to read. */
static void
control_age(char *buf, size_t len, long long t)
{
	int	 n;

	if (t < 0)
		t = 0;
	if (t >= 86400)
		n = snprintf(buf, len, "%lldd%lldh", t / 86400,
		    (t % 86400) / 3600);
	else if (t >= 3600)
		n = snprintf(buf, len, "%lldh%lldm", t / 3600, (t % 3600) / 60);
	else if (t >= 60)
		n = snprintf(buf, len, "%lldm%llds", t / 60, t % 60);
	else
		n = snprintf(buf, len, "%llds", t);
	if (n < 0 || (size_t)n >= len)
		strlcpy(buf, "?", len);
}

/* Text output: whatever the queue holds, no control bytes reach a tty. */
static void
control_put_safe(FILE *out, const char *s)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)s; *p; p++)
		fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, out);
}

/*
 * IMSG_CTL_QUEUE_ITEM: u64 reqid, str id, str state, i64 arrival,
 * u64 size, str sender, str rcpt, str rewritten, str route,
 * str destination, u32 tries, i64 next try, i64 last try,
 * str last error.
 */
static void
control_queue_item(struct msg *m)
{
	struct ctl_client	*c;
	const char		*id, *state, *sender, *rcpt, *rewritten;
	const char		*route, *dest, *error;
	uint64_t		 reqid, size;
	uint32_t		 tries;
	int64_t			 arrival, next_try, last_try;
	time_t			 now = time(NULL);
	char			 age[32], next[40];
	FILE			*out;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_strp(m, &id) == -1 ||
	    msg_get_strp(m, &state) == -1 || msg_get_i64(m, &arrival) == -1 ||
	    msg_get_u64(m, &size) == -1 || msg_get_strp(m, &sender) == -1 ||
	    msg_get_strp(m, &rcpt) == -1 ||
	    msg_get_strp(m, &rewritten) == -1 ||
	    msg_get_strp(m, &route) == -1 || msg_get_strp(m, &dest) == -1 ||
	    msg_get_u32(m, &tries) == -1 || msg_get_i64(m, &next_try) == -1 ||
	    msg_get_i64(m, &last_try) == -1 ||
	    msg_get_strp(m, &error) == -1 || msg_end(m) == -1 ||
	    id == NULL || state == NULL || sender == NULL || rcpt == NULL ||
	    rewritten == NULL || route == NULL || dest == NULL ||
	    error == NULL)
		fatalx("bad %s", imsg_name(m->type));
	if ((c = control_client_find(reqid)) == NULL)
		return;
	out = control_out(c);
	if (c->json) {
		fprintf(out, "%s{\"id\": ", c->nitems ? ", " : "");
		json_str(out, id);
		fputs(", \"state\": ", out);
		json_str(out, state);
		fprintf(out, ", \"arrival\": %lld, \"age\": %lld, "
		    "\"size\": %llu, \"tries\": %u, \"next_try\": %lld, "
		    "\"last_try\": %lld, \"sender\": ", (long long)arrival,
		    (long long)(now - arrival), (unsigned long long)size,
		    tries, (long long)next_try, (long long)last_try);
		json_str(out, sender);
		fputs(", \"recipient\": ", out);
		json_str(out, rcpt);
		fputs(", \"rewritten\": ", out);
		json_str(out, rewritten);
		fputs(", \"route\": ", out);
		json_str(out, route);
		fputs(", \"destination\": ", out);
		json_str(out, dest);
		fputs(", \"last_error\": ", out);
		json_str(out, error);
		fputs("}", out);
	} else {
		control_age(age, sizeof(age), (long long)(now - arrival));
		if (strcmp(state, "queued") != 0 &&
		    strcmp(state, "deferred") != 0)
			strlcpy(next, "-", sizeof(next));
		else if (next_try <= now)
			strlcpy(next, "now", sizeof(next));
		else {
			strlcpy(next, "in", sizeof(next));
			control_age(next + 2, sizeof(next) - 2,
			    (long long)(next_try - now));
		}
		fprintf(out, "%s ", id);
		control_put_safe(out, state);
		fprintf(out, " age=%s tries=%u next=%s size=%llu from=<", age,
		    tries, next, (unsigned long long)size);
		control_put_safe(out, sender);
		fputs("> to=<", out);
		control_put_safe(out, rcpt);
		fputs("> route=", out);
		control_put_safe(out, route);
		if (strcmp(rewritten, rcpt) != 0) {
			fputs(" via=<", out);
			control_put_safe(out, rewritten);
			fputs(">", out);
		}
		if (*dest != '\0') {
			fputs(" dest=", out);
			control_put_safe(out, dest);
		}
		if (*error != '\0') {
			fputs(" error=\"", out);
			control_put_safe(out, error);
			fputs("\"", out);
		}
		fputs("\n", out);
	}
	c->nitems++;
}

/* IMSG_CTL_QUEUE_END: u64 reqid. */
static void
control_queue_end(struct msg *m)
{
	struct ctl_client	*c;
	uint64_t		 reqid;

	if (msg_get_u64(m, &reqid) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((c = control_client_find(reqid)) == NULL)
		return;
	if (c->json)
		fputs("]}\n", control_out(c));
	control_reply(c, 0);
}
