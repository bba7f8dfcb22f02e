/*
 * The control socket: a splitmxctl connects, sends one request line,
 * gets a status line and the answer, and is disconnected.  Peer
 * credentials decide who may change things; the requests are
 * control_verbs.c's table, run by the handlers below.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmx.h"
#include "control.h"
#include "control_verbs.h"

#define CTL_MAXLINE	4096
#define CTL_TIMEOUT	60

static int	control_is_admin(int, uid_t, gid_t);
static int	control_room(int, uid_t);
static void	control_read(struct bufferevent *, void *);
static void	control_written(struct bufferevent *, void *);
static void	control_error(struct bufferevent *, short, void *);
static void	control_client_free(struct ctl_client *);
static void	control_request(struct ctl_client *, char *);
static void	control_reply_now(struct ctl_client *, int);

/* What runs each request of control_verbs.c. */
static void	(*const ctl_handlers[CTL_HANDLER_COUNT])(struct ctl_client *,
		    char **) = {
	[CTL_SHOW_STATUS] = control_show_status,
	[CTL_SHOW_STATS] = control_show_stats,
	[CTL_SHOW_QUEUE] = control_show_queue,
	[CTL_SHOW_MESSAGE] = control_show_message,
	[CTL_LOOKUP] = control_lookup,
	[CTL_RELOAD] = control_reload,
	[CTL_PAUSE] = control_pause,
	[CTL_SCHEDULE] = control_queue_act,
	[CTL_REMOVE] = control_queue_act,
	[CTL_LOG] = control_log,
	[CTL_IMPORT_INFO] = control_import_info,
	[CTL_CHECK_CLIENT] = control_check_client,
	[CTL_STOP] = control_stop,
	[CTL_RELEASE] = control_queue_act,
};

static TAILQ_HEAD(, ctl_client)	 clients = TAILQ_HEAD_INITIALIZER(clients);
static uint64_t			 next_reqid = 1;

/* A request without a handler is a mistake of this build: say so now. */
void
control_ctl_init(void)
{
	int	 i;

	for (i = 0; i < CTL_HANDLER_COUNT; i++)
		if (ctl_handlers[i] == NULL)
			fatalx("control: request %d has no handler", i);
}

uint64_t
control_reqid(void)
{
	return next_reqid++;
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

/*
 * Whether a connection of uid fits the limits (CTL_CLIENTS_PER_UID of
 * one user, CTL_CLIENTS_MAX of all users but root); if not it is told
 * so and closed, and the refusal logged once per CTL_WARN_INTERVAL.
 */
static int
control_room(int fd, uid_t uid)
{
	static struct control_warn	 w;
	static const char		 msg[] = "1\ntoo many connections "
	    "to the control socket; try again later\n";
	struct ctl_client		*c;
	unsigned int			 mine = 0, others = 0;

	TAILQ_FOREACH(c, &clients, entry) {
		if (c->uid == uid)
			mine++;
		if (c->uid != 0)
			others++;
	}
	if (mine < CTL_CLIENTS_PER_UID &&
	    (uid == 0 || others < CTL_CLIENTS_MAX))
		return 1;
	control_warn(&w, "control uid=%u refused: %u connections of this "
	    "user, %u of all users but root (at most %d and %d)",
	    (unsigned)uid, mine, others, CTL_CLIENTS_PER_UID,
	    CTL_CLIENTS_MAX);
	/* Into an empty socket buffer: it cannot block. */
	(void)send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	return 0;
}

void
control_ctl_accept(int lfd, short event, void *arg)
{
	static struct control_warn	 w;
	struct ctl_client		*c;
	struct ucred			 cred;
	socklen_t			 len = sizeof(cred);
	struct timeval			 tv = { CTL_TIMEOUT, 0 };
	int				 fd;

	(void)event;
	(void)arg;
	if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) ==
	    -1) {
		if (errno == EMFILE || errno == ENFILE)
			control_starved("control", errno);
		else if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			control_warn(&w, "control accept: %s",
			    strerror(errno));
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		control_warn(&w, "control SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return;
	}
	if (!control_room(fd, cred.uid))
		return;
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
FILE *
control_out(struct ctl_client *c)
{
	if (c->out == NULL &&
	    (c->out = open_memstream(&c->outbuf, &c->outlen)) == NULL)
		fatal("open_memstream");
	return c->out;
}

void
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

struct ctl_client *
control_client_find(uint64_t reqid)
{
	struct ctl_client	*c;

	TAILQ_FOREACH(c, &clients, entry)
		if (c->reqid == reqid && reqid != 0)
			return c;
	return NULL;
}

/*
 * One request line: "text|json VERB [OBJECT] [ARGS]".  splitmxctl has
 * checked the usage already; here every word is still hostile.
 */
static void
control_request(struct ctl_client *c, char *line)
{
	const struct ctl_verb	*v;
	char			*words[9], *p, *w;
	int			 n = 0;

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

	if ((v = control_verb_find(n - 1, words + 1)) == NULL ||
	    (v->flags & F_CTL_LOCAL)) {
		control_fail(c, "unknown request: %s%s%s", words[1],
		    n > 2 ? " " : "", n > 2 ? words[2] : "");
		return;
	}
	if ((v->flags & F_CTL_ADMIN) && !c->admin) {
		log_info("control uid=%u refused=%s", (unsigned)c->uid,
		    words[1]);
		control_fail(c, "permission denied: %s needs root or "
		    "the control admin group", words[1]);
		return;
	}
	ctl_handlers[v->handler](c, words + 1);
}

void
control_reload(struct ctl_client *c, char **words)
{
	struct msg	 m;

	(void)words;
	c->reqid = control_reqid();
	msg_init(&m, IMSG_CTL_RELOAD, 0);
	msg_add_u64(&m, c->reqid);
	proc_send(PROC_PARENT, &m);
	log_info("control uid=%u reload", (unsigned)c->uid);
}

void
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
		    text, text[0] != '\0' && text[strlen(text) - 1] == '\n' ?
		    "" : "\n");
	else
		fprintf(out, "%s\n", text);
	control_reply(c, failed ? 1 : 0);
}

void
control_log(struct ctl_client *c, char **words)
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
void
control_pause(struct ctl_client *c, char **words)
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

/*
 * stop: the answer comes when the daemon has drained, just before it
 * exits; splitmxctl returns then (ExecStop= of the systemd unit).
 */
void
control_stop(struct ctl_client *c, char **words)
{
	struct msg	 m;

	(void)words;
	c->reqid = control_reqid();
	msg_init(&m, IMSG_CTL_STOP, 0);
	msg_add_u64(&m, c->reqid);
	msg_add_u32(&m, (uint32_t)c->uid);
	proc_send(PROC_PARENT, &m);
	log_info("control uid=%u stop", (unsigned)c->uid);
}

/*
 * IMSG_CTL_STOP_RESULT: u64 reqid, str the report.  The parent closes
 * our channel right after it, and we exit then: the answer is written
 * now rather than by the event loop (control_reply_now()).
 */
void
control_stop_result(struct msg *m)
{
	struct ctl_client	*c;
	uint64_t		 reqid;
	const char		*text;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_strp(m, &text) == -1 ||
	    text == NULL || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((c = control_client_find(reqid)) == NULL)
		return;
	if (c->json) {
		fputs("{\"stop\": \"done\", \"message\": ", control_out(c));
		json_str(control_out(c), text);
		fputs("}\n", control_out(c));
	} else
		fputs(text, control_out(c));
	control_reply_now(c, 0);
}

/*
 * The answer written out at once, past the client's bufferevent (its
 * output is only drained by the event loop), and the client gone: for
 * an answer the process may not live to send otherwise.
 */
static void
control_reply_now(struct ctl_client *c, int status)
{
	struct pollfd	 pfd;
	char		 head[16];
	const char	*p;
	size_t		 off = 0, len;
	ssize_t		 n;
	int		 part, tries = 0;

	if (fclose(control_out(c)) != 0)
		fatal("fclose");
	c->out = NULL;
	(void)snprintf(head, sizeof(head), "%d\n", status);
	pfd.fd = bufferevent_getfd(c->bev);
	pfd.events = POLLOUT;
	for (part = 0; part < 2; part++) {
		p = part == 0 ? head : c->outbuf;
		len = part == 0 ? strlen(head) : c->outlen;
		for (off = 0; off < len && tries < 20;) {
			if ((n = write(pfd.fd, p + off, len - off)) > 0) {
				off += (size_t)n;
				continue;
			}
			if (n == -1 && errno != EAGAIN && errno != EINTR)
				break;
			tries++;
			(void)poll(&pfd, 1, 100);
		}
	}
	control_client_free(c);
}

/* Text output: whatever the queue holds, no control bytes reach a tty. */
void
control_put_safe(FILE *out, const char *s)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)s; *p; p++)
		fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, out);
}
