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

/* Requests to the queue that take an id. */
#define CTL_ARGSZ	64
#define CTL_Q_SHOW	1	/* show message */
#define CTL_Q_SCHEDULE	2
#define CTL_Q_REMOVE	3

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
	int			 kind;		/* CTL_Q_*: the queue request */
	size_t			 nevents;	/* show message: history */
	char			 arg[CTL_ARGSZ]; /* its id, for errors */
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
static void	control_queue_message(struct msg *);
static void	control_queue_rcpt(struct msg *);
static void	control_queue_event(struct msg *);
static void	control_queue_result(struct msg *);
static void	control_lookup_result(struct msg *);
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
	case IMSG_CTL_QUEUE_MESSAGE:
		control_queue_message(m);
		break;
	case IMSG_CTL_QUEUE_RCPT:
		control_queue_rcpt(m);
		break;
	case IMSG_CTL_QUEUE_EVENT:
		control_queue_event(m);
		break;
	case IMSG_CTL_QUEUE_RESULT:
		control_queue_result(m);
		break;
	case IMSG_CTL_LOOKUP_RESULT:
		control_lookup_result(m);
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
 * The requests, as a table: the words, how many arguments follow, whether
 * the request changes something (root or the admin group only), and the
 * handler, which gets the arguments.
 */
struct ctl_verb {
	const char	*verb;
	const char	*object;	/* NULL: none */
	int		 nargs;
	int		 admin;
	void		(*handler)(struct ctl_client *, char **);
};

static void	ctl_show_status(struct ctl_client *, char **);
static void	ctl_show_stats(struct ctl_client *, char **);
static void	ctl_show_queue(struct ctl_client *, char **);
static void	ctl_reload(struct ctl_client *, char **);
static void	ctl_log(struct ctl_client *, char **);
static void	ctl_pause(struct ctl_client *, char **);
static void	ctl_show_message(struct ctl_client *, char **);
static void	ctl_queue_act(struct ctl_client *, char **);
static void	ctl_lookup(struct ctl_client *, char **);

static const struct ctl_verb	 ctl_verbs[] = {
	{ "show",	"status",	0, 0, ctl_show_status },
	{ "show",	"stats",	0, 0, ctl_show_stats },
	{ "show",	"queue",	0, 0, ctl_show_queue },
	{ "reload",	NULL,		0, 1, ctl_reload },
	{ "log",	"verbose",	0, 1, ctl_log },
	{ "log",	"brief",	0, 1, ctl_log },
	{ "pause",	"smtp",		0, 1, ctl_pause },
	{ "resume",	"smtp",		0, 1, ctl_pause },
	{ "show",	"message",	1, 0, ctl_show_message },
	{ "schedule",	NULL,		1, 1, ctl_queue_act },
	{ "remove",	NULL,		1, 1, ctl_queue_act },
	{ "pause",	"relay",	0, 1, ctl_pause },
	{ "resume",	"relay",	0, 1, ctl_pause },
	{ "lookup",	NULL,		1, 0, ctl_lookup },
};

/*
 * One request line: "text|json VERB [OBJECT] [ARGS]".  splitmxctl has
 * checked the usage already; here every word is still hostile.
 */
static void
control_request(struct ctl_client *c, char *line)
{
	const struct ctl_verb	*v;
	char			*words[9], *p, *w;
	int			 n = 0, first;
	size_t			 i;

	for (p = line; (w = strsep(&p, " ")) != NULL;) {
		if (*w == '\0')
			continue;
		if (n == (int)(sizeof(words) / sizeof(words[0])) - 1) {
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
	words[n] = NULL;

	for (i = 0; i < sizeof(ctl_verbs) / sizeof(ctl_verbs[0]); i++) {
		v = &ctl_verbs[i];
		first = v->object ? 3 : 2;
		if (strcmp(words[1], v->verb) != 0 ||
		    (v->object && (n < 3 || strcmp(words[2], v->object) != 0)))
			continue;
		if (n != first + v->nargs)
			continue;
		if (v->admin && !c->admin) {
			log_info("control uid=%u refused=%s", (unsigned)c->uid,
			    words[1]);
			control_fail(c, "permission denied: %s needs root or "
			    "the control admin group", words[1]);
			return;
		}
		v->handler(c, words + 1);
		return;
	}
	control_fail(c, "unknown request: %s%s%s", words[1],
	    n > 2 ? " " : "", n > 2 ? words[2] : "");
}

static void
ctl_show_status(struct ctl_client *c, char **words)
{
	(void)words;
	control_show_status(c);
}

static void
ctl_show_stats(struct ctl_client *c, char **words)
{
	(void)words;
	control_show_stats(c);
}

static void
ctl_show_queue(struct ctl_client *c, char **words)
{
	(void)words;
	control_show_queue(c);
}

static void
ctl_reload(struct ctl_client *c, char **words)
{
	struct msg	 m;

	(void)words;
	c->reqid = next_reqid++;
	msg_init(&m, IMSG_CTL_RELOAD, 0);
	msg_add_u64(&m, c->reqid);
	proc_send(PROC_PARENT, &m);
	log_info("control uid=%u reload", (unsigned)c->uid);
}

static void
ctl_log(struct ctl_client *c, char **words)
{
	uint32_t	 v = strcmp(words[1], "verbose") == 0;

	proc_compose(PROC_PARENT, IMSG_CTL_VERBOSE, 0, -1, &v, sizeof(v));
	log_setverbose((int)v);
	if (c->json)
		fprintf(control_out(c), "{\"log\": \"%s\"}\n", words[1]);
	else
		fprintf(control_out(c), "log %s\n", words[1]);
	control_reply(c, 0);
}

/*
 * pause|resume smtp (stop accepting; sessions in progress finish) and
 * pause|resume relay (stop dispatching; deliveries under way finish).
 */
static void
ctl_pause(struct ctl_client *c, char **words)
{
	uint32_t	 paused = strcmp(words[0], "pause") == 0;
	int		 smtp = strcmp(words[1], "smtp") == 0;

	proc_compose(smtp ? PROC_SMTP : PROC_QUEUE, smtp ?
	    IMSG_CTL_SMTP_PAUSE : IMSG_CTL_RELAY_PAUSE, 0, -1, &paused,
	    sizeof(paused));
	log_info("control uid=%u %s %s", (unsigned)c->uid, words[0],
	    words[1]);
	if (c->json)
		fprintf(control_out(c), "{\"%s\": \"%s\"}\n", words[1],
		    paused ? "paused" : "running");
	else
		fprintf(control_out(c), "%s %s\n", words[1],
		    paused ? "paused" : "resumed");
	control_reply(c, 0);
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

/* " key=value" when value is set, quoted if asked; nothing otherwise. */
static void
control_put_opt(FILE *out, const char *key, const char *val, int quote)
{
	if (*val == '\0')
		return;
	fprintf(out, " %s=%s", key, quote ? "\"" : "");
	control_put_safe(out, val);
	if (quote)
		fputc('"', out);
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
		control_put_opt(out, "dest", dest, 0);
		control_put_opt(out, "error", error, 1);
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

/*
 * show message ID, schedule ID|all, remove ID|all: the queue answers
 * (see "queue protocol" in splitmx.h); an unknown id is an error.
 */
static void
control_queue_request(struct ctl_client *c, int kind, uint32_t type,
    const char *id)
{
	struct msg	 m;

	c->reqid = next_reqid++;
	c->kind = kind;
	c->nitems = c->nevents = 0;
	strlcpy(c->arg, id, sizeof(c->arg));
	msg_init(&m, type, 0);
	msg_add_u64(&m, c->reqid);
	msg_add_str(&m, id);
	proc_send(PROC_QUEUE, &m);
}

static void
ctl_show_message(struct ctl_client *c, char **words)
{
	control_queue_request(c, CTL_Q_SHOW, IMSG_CTL_QUEUE_SHOW, words[2]);
}

static void
ctl_queue_act(struct ctl_client *c, char **words)
{
	int	 remove = strcmp(words[0], "remove") == 0, valid;

	/* Only an id or "all" goes into the log as it is. */
	valid = strcmp(words[1], "all") == 0 || (strlen(words[1]) == 24 &&
	    strspn(words[1], "0123456789abcdef") == 24);
	log_info("control uid=%u %s %s", (unsigned)c->uid, words[0],
	    valid ? words[1] : "(not an id)");
	control_queue_request(c, remove ? CTL_Q_REMOVE : CTL_Q_SCHEDULE,
	    remove ? IMSG_CTL_QUEUE_REMOVE : IMSG_CTL_QUEUE_SCHEDULE,
	    words[1]);
}

/* "2026-11-25T18:42:14Z", or "-" for never. */
static void
control_time(char *buf, size_t len, int64_t t)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		strlcpy(buf, "-", len);
}

/* A client waiting for this answer to this kind of request, or NULL. */
static struct ctl_client *
control_queue_client(uint64_t reqid, int kind)
{
	struct ctl_client	*c;

	if ((c = control_client_find(reqid)) == NULL || c->kind != kind)
		return NULL;
	return c;
}

/* IMSG_CTL_QUEUE_MESSAGE: the envelope of show message. */
static void
control_queue_message(struct msg *m)
{
	struct ctl_client	*c;
	static const char *const keys[9] = {
		"id", "sender", "helo", "client", "client_host", "envid",
		"body", "ret", "flags"
	};
	const char		*s[9];
	uint64_t		 reqid, size;
	int64_t			 arrival, warned;
	uint32_t		 nrcpt, inflight, removing;
	char			 when[32], age[32], warn[32];
	FILE			*out;
	int			 i;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_strp(m, &s[0]) == -1 ||
	    msg_get_i64(m, &arrival) == -1 || msg_get_u64(m, &size) == -1)
		fatalx("bad %s", imsg_name(m->type));
	/* s[]: id, sender, helo, client, host, envid, body, ret, flags */
	for (i = 1; i < 9; i++)
		if (msg_get_strp(m, &s[i]) == -1 || s[i] == NULL)
			fatalx("bad %s", imsg_name(m->type));
	if (s[0] == NULL || msg_get_i64(m, &warned) == -1 ||
	    msg_get_u32(m, &nrcpt) == -1 || msg_get_u32(m, &inflight) == -1 ||
	    msg_get_u32(m, &removing) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((c = control_queue_client(reqid, CTL_Q_SHOW)) == NULL)
		return;
	out = control_out(c);
	control_time(when, sizeof(when), arrival);
	control_age(age, sizeof(age), (long long)(time(NULL) - arrival));
	control_time(warn, sizeof(warn), warned);
	if (c->json) {
		fputs("{", out);
		for (i = 0; i < 9; i++) {
			fprintf(out, "%s\"%s\": ", i ? ", " : "", keys[i]);
			json_str(out, s[i]);
		}
		fprintf(out, ", \"arrival\": %lld, \"age\": %lld, "
		    "\"size\": %llu, \"warned\": %lld, \"recipients_total\": "
		    "%u, \"deliveries_out\": %u, \"removing\": %s, "
		    "\"recipients\": [", (long long)arrival,
		    (long long)(time(NULL) - arrival),
		    (unsigned long long)size, (long long)warned, nrcpt,
		    inflight, removing ? "true" : "false");
		return;
	}
	fprintf(out, "message %s\n  arrival=%s age=%s size=%llu from=<",
	    s[0], when, age, (unsigned long long)size);
	control_put_safe(out, s[1]);
	fputs(">\n  client=", out);
	control_put_safe(out, *s[3] ? s[3] : "-");
	fputs(" client-host=", out);
	control_put_safe(out, *s[4] ? s[4] : "-");
	fputs(" helo=", out);
	control_put_safe(out, *s[2] ? s[2] : "-");
	fputs("\n  body=", out);
	control_put_safe(out, s[6]);
	fputs(" ret=", out);
	control_put_safe(out, s[7]);
	fputs(" envid=", out);
	control_put_safe(out, *s[5] ? s[5] : "-");
	fputs(" flags=", out);
	control_put_safe(out, *s[8] ? s[8] : "-");
	fprintf(out, " warned=%s deliveries-out=%u%s\n", warn, inflight,
	    removing ? " removing=yes" : "");
}

/* IMSG_CTL_QUEUE_RCPT: one recipient of show message. */
static void
control_queue_rcpt(struct msg *m)
{
	struct ctl_client	*c;
	const char		*rcpt, *rewritten, *route, *dest, *tls;
	const char		*notify, *orcpt, *state, *error;
	uint64_t		 reqid;
	uint32_t		 index, tries, sending;
	int64_t			 next_try, last_try;
	time_t			 now = time(NULL);
	char			 next[40], last[32];
	FILE			*out;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_u32(m, &index) == -1 ||
	    msg_get_strp(m, &rcpt) == -1 || msg_get_strp(m, &rewritten) == -1 ||
	    msg_get_strp(m, &route) == -1 || msg_get_strp(m, &dest) == -1 ||
	    msg_get_strp(m, &tls) == -1 ||
	    msg_get_strp(m, &notify) == -1 || msg_get_strp(m, &orcpt) == -1 ||
	    msg_get_strp(m, &state) == -1 || msg_get_u32(m, &tries) == -1 ||
	    msg_get_i64(m, &next_try) == -1 ||
	    msg_get_i64(m, &last_try) == -1 ||
	    msg_get_strp(m, &error) == -1 || msg_get_u32(m, &sending) == -1 ||
	    msg_end(m) == -1 || rcpt == NULL || rewritten == NULL ||
	    route == NULL || dest == NULL || tls == NULL || notify == NULL ||
	    orcpt == NULL || state == NULL || error == NULL)
		fatalx("bad %s", imsg_name(m->type));
	if ((c = control_queue_client(reqid, CTL_Q_SHOW)) == NULL)
		return;
	out = control_out(c);
	control_time(last, sizeof(last), last_try);
	if (c->json) {
		fprintf(out, "%s{\"index\": %u, \"recipient\": ",
		    c->nitems ? ", " : "", index);
		json_str(out, rcpt);
		fputs(", \"rewritten\": ", out);
		json_str(out, rewritten);
		fputs(", \"route\": ", out);
		json_str(out, route);
		fputs(", \"destination\": ", out);
		json_str(out, dest);
		fputs(", \"tls\": ", out);
		json_str(out, tls);
		fputs(", \"notify\": ", out);
		json_str(out, notify);
		fputs(", \"orcpt\": ", out);
		json_str(out, orcpt);
		fputs(", \"state\": ", out);
		json_str(out, state);
		fprintf(out, ", \"sending\": %s, \"tries\": %u, "
		    "\"next_try\": %lld, \"last_try\": %lld, "
		    "\"last_error\": ", sending ? "true" : "false", tries,
		    (long long)next_try, (long long)last_try);
		json_str(out, error);
		fputs("}", out);
		c->nitems++;
		return;
	}
	if (sending)
		strlcpy(next, "sending", sizeof(next));
	else if (strcmp(state, "queued") != 0 &&
	    strcmp(state, "deferred") != 0)
		strlcpy(next, "-", sizeof(next));
	else if (next_try <= now)
		strlcpy(next, "now", sizeof(next));
	else {
		strlcpy(next, "in", sizeof(next));
		control_age(next + 2, sizeof(next) - 2,
		    (long long)(next_try - now));
	}
	fprintf(out, "recipient %u <", index + 1);
	control_put_safe(out, rcpt);
	fputs("> state=", out);
	control_put_safe(out, state);
	fprintf(out, " tries=%u next=%s last=%s route=", tries, next, last);
	control_put_safe(out, route);
	if (strcmp(rewritten, rcpt) != 0) {
		fputs(" via=<", out);
		control_put_safe(out, rewritten);
		fputs(">", out);
	}
	fputs(" dest=", out);
	control_put_safe(out, *dest ? dest : "mx");
	/* Shown where it forbids clear text, like orcpt where there is one. */
	if (strcmp(tls, "require") == 0 || strcmp(tls, "verify") == 0) {
		fputs(" tls=", out);
		control_put_safe(out, tls);
	}
	fputs(" notify=", out);
	control_put_safe(out, *notify ? notify : "default");
	control_put_opt(out, "orcpt", orcpt, 0);
	control_put_opt(out, "error", error, 1);
	fputs("\n", out);
	c->nitems++;
}

/* Between the recipients and the history of show message. */
static void
control_queue_history(struct ctl_client *c, FILE *out)
{
	if (c->nevents > 0)
		return;
	if (c->json)
		fputs("], \"history\": [", out);
	else
		fputs("history\n", out);
}

/* IMSG_CTL_QUEUE_EVENT: one line of the history of show message. */
static void
control_queue_event(struct msg *m)
{
	struct ctl_client	*c;
	const char		*text;
	uint64_t		 reqid;
	int64_t			 when;
	char			 ts[32];
	FILE			*out;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_i64(m, &when) == -1 ||
	    msg_get_strp(m, &text) == -1 || text == NULL || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((c = control_queue_client(reqid, CTL_Q_SHOW)) == NULL)
		return;
	out = control_out(c);
	control_queue_history(c, out);
	control_time(ts, sizeof(ts), when);
	if (c->json) {
		fprintf(out, "%s{\"time\": %lld, \"text\": ",
		    c->nevents ? ", " : "", (long long)when);
		json_str(out, text);
		fputs("}", out);
	} else {
		fprintf(out, "  %s ", ts);
		control_put_safe(out, text);
		fputs("\n", out);
	}
	c->nevents++;
}

/*
 * IMSG_CTL_QUEUE_RESULT: u64 reqid, u32 found, u32 done, u32 pending;
 * the answer to schedule and remove, and the end of show message.
 */
static void
control_queue_result(struct msg *m)
{
	struct ctl_client	*c;
	uint64_t		 reqid;
	uint32_t		 found, done, later;
	FILE			*out;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_u32(m, &found) == -1 ||
	    msg_get_u32(m, &done) == -1 || msg_get_u32(m, &later) == -1 ||
	    msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((c = control_client_find(reqid)) == NULL || c->kind == 0)
		return;
	if (found == 0 && strcmp(c->arg, "all") != 0) {
		control_fail(c, "no such message: %s", c->arg);
		return;
	}
	out = control_out(c);
	if (c->kind == CTL_Q_SCHEDULE) {
		if (c->json)
			fprintf(out, "{\"scheduled\": %u}\n", done);
		else
			fprintf(out, "scheduled %u message%s\n", done,
			    done == 1 ? "" : "s");
	} else if (c->kind == CTL_Q_REMOVE) {
		if (c->json)
			fprintf(out, "{\"removed\": %u, \"pending\": %u}\n",
			    done, later);
		else {
			fprintf(out, "removed %u message%s", done,
			    done == 1 ? "" : "s");
			if (later > 0)
				fprintf(out, "; %u being delivered, removed "
				    "when the attempt ends", later);
			fputs("\n", out);
		}
	} else {
		/* show message: the end of the stream. */
		control_queue_history(c, out);
		if (c->json)
			fputs("]}\n", out);
	}
	control_reply(c, 0);
}

/*
 * lookup ADDRESS: the lookup process decides as it would for a RCPT
 * from a client that is neither trusted nor the forward host, and
 * explains; see "control lookup protocol" in splitmx.h.
 */
static void
ctl_lookup(struct ctl_client *c, char **words)
{
	struct msg	 m;

	c->reqid = next_reqid++;
	msg_init(&m, IMSG_CTL_LOOKUP, 0);
	msg_add_u64(&m, c->reqid);
	msg_add_str(&m, words[1]);
	proc_send(PROC_LOOKUP, &m);
}

/* One step of the decision, in words. */
static void
control_lookup_step(FILE *out, const char *addr, const char *domain,
    const char *dtype, const char *table, const char *entry,
    const char *source, const char *kind, const char *target)
{
	control_put_safe(out, addr);
	fputs(": ", out);
	if (strcmp(kind, "outside") == 0) {
		fputs("not a configured domain\n", out);
		return;
	}
	if (strcmp(kind, "loop") == 0) {
		fputs("seen before in this chain: a loop\n", out);
		return;
	}
	if (strcmp(kind, "too long") == 0) {
		fputs("one step too many\n", out);
		return;
	}
	fprintf(out, "domain ");
	control_put_safe(out, domain);
	fputs(" (", out);
	control_put_safe(out, dtype);
	if (*table != '\0') {
		fputs(", table ", out);
		control_put_safe(out, table);
	}
	fputs(")", out);
	if (strcmp(kind, "relay") == 0)
		fputs(": no directory, everything to its forward host", out);
	else if (strcmp(kind, "unknown") == 0)
		fputs(": not in the directory (tried the address, without "
		    "+detail, @domain)", out);
	else if (strcmp(kind, "tempfail") == 0) {
		fputs(": directory unavailable", out);
		if (*source != '\0') {
			fputs(" (", out);
			control_put_safe(out, source);
			fputs(")", out);
		}
	} else if (*entry != '\0') {
		fputs(": entry ", out);
		control_put_safe(out, entry);
		if (*source != '\0') {
			fputs(" at ", out);
			control_put_safe(out, source);
		}
		fputs(": ", out);
		control_put_safe(out, kind);
		if (strcmp(kind, "custom") == 0) {
			if (*target != '\0') {
				fputs(" -> ", out);
				control_put_safe(out, target);
			} else
				fputs(" without a target", out);
		}
	}
	fputs("\n", out);
}

static void
control_lookup_result(struct msg *m)
{
	/* A step's fields, in the order the lookup process sends them. */
	static const char *const step_keys[8] = {
		"address", "domain", "type", "table", "entry", "source",
		"kind", "target"
	};
	struct ctl_client	*c;
	const char		*addr, *text, *rewritten, *dest, *decision;
	const char		*policy, *s[8];
	const char		*route, *shown;
	char			 where[SMX_HOSTSZ + 64];
	uint64_t		 reqid;
	uint32_t		 verdict, code, rclass, nsteps, i, j;
	int			 routable;
	FILE			*out;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_strp(m, &addr) == -1 ||
	    msg_get_u32(m, &verdict) == -1 || msg_get_u32(m, &code) == -1 ||
	    msg_get_strp(m, &text) == -1 || msg_get_u32(m, &rclass) == -1 ||
	    msg_get_strp(m, &rewritten) == -1 ||
	    msg_get_strp(m, &dest) == -1 ||
	    msg_get_strp(m, &decision) == -1 ||
	    msg_get_strp(m, &policy) == -1 ||
	    msg_get_u32(m, &nsteps) == -1 || addr == NULL || text == NULL ||
	    rewritten == NULL || dest == NULL || decision == NULL ||
	    policy == NULL || nsteps > 64)
		fatalx("bad %s", imsg_name(m->type));
	c = control_client_find(reqid);
	out = c != NULL ? control_out(c) : NULL;
	/* A bounce is accepted, but goes nowhere: not routable. */
	routable = verdict == LOOKUP_ACCEPT && rclass != ROUTE_BOUNCE;
	route = rclass < ROUTE_NONE ? route_class_name(rclass) : "none";
	shown = *rewritten != '\0' ? rewritten : addr;
	if (verdict != LOOKUP_ACCEPT)
		strlcpy(where, "-", sizeof(where));
	else if (rclass == ROUTE_BOUNCE)
		strlcpy(where, "none (a non-delivery report goes to the "
		    "sender)", sizeof(where));
	else if (*dest != '\0')
		strlcpy(where, dest, sizeof(where));
	else if (snprintf(where, sizeof(where), "MX of %s",
	    strrchr(shown, '@') != NULL ? strrchr(shown, '@') + 1 : shown) >=
	    (int)sizeof(where))
		strlcpy(where, "MX", sizeof(where));

	if (out != NULL && c->json) {
		fputs("{\"address\": ", out);
		json_str(out, addr);
		fprintf(out, ", \"routable\": %s, \"decision\": ",
		    routable ? "true" : "false");
		json_str(out, decision);
		fputs(", \"route\": ", out);
		json_str(out, route);
		fputs(", \"rewritten\": ", out);
		json_str(out, verdict == LOOKUP_ACCEPT ? shown : "");
		fputs(", \"destination\": ", out);
		json_str(out, verdict == LOOKUP_ACCEPT ? dest : "");
		fputs(", \"policy\": ", out);
		json_str(out, policy);
		fprintf(out, ", \"code\": %u, \"reply\": ", code);
		json_str(out, text);
		fputs(", \"steps\": [", out);
	} else if (out != NULL) {
		fputs("address      ", out);
		control_put_safe(out, addr);
		fputs("\ndecision     ", out);
		control_put_safe(out, decision);
		fputs("\n", out);
	}
	for (i = 0; i < nsteps; i++) {
		for (j = 0; j < 8; j++)
			if (msg_get_strp(m, &s[j]) == -1 || s[j] == NULL)
				fatalx("bad %s", imsg_name(m->type));
		if (out == NULL)
			continue;
		if (c->json) {
			fputs(i ? ", {" : "{", out);
			for (j = 0; j < 8; j++) {
				fprintf(out, "%s\"%s\": ", j ? ", " : "",
				    step_keys[j]);
				json_str(out, s[j]);
			}
			fputs("}", out);
		} else {
			fprintf(out, "step %-7u ", i + 1);
			control_lookup_step(out, s[0], s[1], s[2], s[3], s[4],
			    s[5], s[6], s[7]);
		}
	}
	if (msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if (out == NULL)
		return;		/* the client went away */
	if (c->json)
		fputs("]}\n", out);
	else {
		if (verdict == LOOKUP_ACCEPT) {
			fputs("rewritten    ", out);
			control_put_safe(out, shown);
			fputs("\ndestination  ", out);
			control_put_safe(out, where);
			fprintf(out, "\nroute        %s\n", route);
		}
		fputs("policy       ", out);
		control_put_safe(out, policy);
		fprintf(out, "\nreply        %u ", code);
		control_put_safe(out, text);
		fputs("\n", out);
	}
	control_reply(c, routable ? 0 : 1);
}
