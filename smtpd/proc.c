/*
 * The process table, and what every child process has in common: its
 * start after exec, the channels to the parent and the siblings, the
 * configuration handshake and the one privilege drop they all go through.
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmx.h"

#define PROC_MAXFILES	65536	/* thousands of sessions, their files */

static void	proc_start_wait(void);
static void	proc_peer_open(struct msg *);
static void	proc_conf(struct msg *);
static void	proc_conf_ack(int, const char *);
static void	proc_verbose(struct msg *);
static void	proc_stop(struct msg *);

/*
 * The process table: everything that makes a process what it is.  A
 * new process is a PROC_* in splitmx.h, a line here, its system call
 * list in sandbox.c, and its entry point and message handler in its
 * own folder.
 */
static const struct proc_ident	proc_idents[PROC_COUNT] = {
	[PROC_PARENT] = {
		.name = "parent",
		.root = ROOT_NONE,
	},
	[PROC_SMTP] = {
		.name = "smtp",
		.main = smtp,
		.imsg = smtp_imsg,
		.prepare = smtp_conf_prepare,
		.root = ROOT_EMPTY,
		.syscalls = sandbox_smtp,
		.nofile = PROC_MAXFILES,
		.flags = F_PROC_PKI_KEYS | F_PROC_LISTENERS,
		.stop = smtp_stop,
	},
	[PROC_LOOKUP] = {
		.name = "lookup",
		.main = lookup,
		.imsg = lookup_imsg,
		.prepare = lookup_conf_prepare,
		.report = conf_tables_report,
		.root = ROOT_EMPTY,
		.syscalls = sandbox_lookup,
		.nofile = PROC_MAXFILES,
		.flags = F_PROC_TABLES | F_PROC_TLS_TRUST,
	},
	[PROC_QUEUE] = {
		.name = "queue",
		.main = queue,
		.imsg = queue_imsg,
		.root = ROOT_SPOOL,
		.syscalls = sandbox_queue,
		.nofile = PROC_MAXFILES,
		.stop = queue_stop,
	},
	[PROC_RELAY] = {
		.name = "relay",
		.main = relay,
		.imsg = relay_imsg,
		.root = ROOT_EMPTY,
		.syscalls = sandbox_relay,
		/* Sessions and the deliveries' files: all it may have. */
		.nofile = RLIM_INFINITY,
		.flags = F_PROC_TLS_TRUST,
	},
	[PROC_CONTROL] = {
		.name = "control",
		.main = control,
		.imsg = control_imsg,
		.root = ROOT_EMPTY,
		.syscalls = sandbox_control,
		.nofile = PROC_MAXFILES,
		.flags = F_PROC_SOCKETS | F_PROC_PROBE,
	},
	[PROC_FILTER] = {
		.name = "filter",
		.main = filter,
		.imsg = filter_imsg,
		.root = ROOT_EMPTY,
		.syscalls = sandbox_filter,
		/* Every session's milter connections, a message file. */
		.nofile = PROC_MAXFILES,
	},
};

static int	 proc_started;
static int	 proc_stop_answered;
static struct smx_env	 env_store;
struct smx_env		*env = &env_store;

const struct proc_ident *
proc_ident(int proc)
{
	if (proc < 0 || proc >= PROC_COUNT)
		fatalx("no process %d", proc);
	return &proc_idents[proc];
}

const char *
proc_name(int proc)
{
	if (proc < 0 || proc >= PROC_COUNT)
		return "unknown";
	return proc_idents[proc].name;
}

int
proc_find(const char *name)
{
	int	 i;

	for (i = 0; i < PROC_COUNT; i++)
		if (strcmp(proc_idents[i].name, name) == 0)
			return i;
	return -1;
}

void
proc_child(int proc)
{
	const struct proc_ident	*pi = proc_ident(proc);
	struct msgchan		*ch;

	if (pi->main == NULL)
		fatalx("%s is not a child process", pi->name);
	env->proc = proc;
	env->started = time(NULL);
	log_procname(pi->name);
	setproctitle("%s", pi->name);

	/* The parent owns signals; a closed channel tells us to go. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);

	if ((env->evbase = event_init()) == NULL)
		fatalx("event_init failed");
	if ((ch = calloc(1, sizeof(*ch))) == NULL)
		fatal("calloc");
	msgchan_init(ch, 3, PROC_PARENT, pi->imsg, NULL);
	env->chan[PROC_PARENT] = ch;

	proc_start_wait();
	msgchan_event_add(ch);
	pi->main();
	fatalx("%s returned", pi->name);
}

/*
 * Before the event loop: take the sibling channels and the first
 * configuration, synchronously, until the parent says START.
 */
static void
proc_start_wait(void)
{
	struct msgchan	*ch = env->chan[PROC_PARENT];
	struct msg	 m;
	ssize_t		 n;
	int		 r;

	while (!proc_started) {
		while ((r = msgchan_get(ch, &m)) == 1) {
			if (!proc_imsg(ch, &m))
				fatalx("unexpected %s before start",
				    imsg_name(m.type));
			msg_clear(&m);
			if (proc_started)
				break;
		}
		if (r == -1)
			fatalx("bad message from the parent");
		if (proc_started)
			break;
		if ((n = msgchan_read(ch)) == 0)
			exit(0);	/* parent went away during start */
		if (n == -1 && errno != EAGAIN && errno != EINTR)
			fatal("read from parent");
		if (n == -1) {
			struct timeval	tv = { 1, 0 };
			fd_set		rfds;

			FD_ZERO(&rfds);
			FD_SET(ch->fd, &rfds);
			if (select(ch->fd + 1, &rfds, NULL, NULL, &tv) == -1 &&
			    errno != EINTR)
				fatal("select");
		}
	}
	/* Buffered frames beyond START are left for the event loop. */
}

int
proc_imsg(struct msgchan *ch, struct msg *m)
{
	if (m == NULL) {
		proc_lost(ch);
		return 1;
	}
	switch (m->type) {
	case IMSG_PROC_PEER_OPEN:
	case IMSG_PROC_START:
	case IMSG_CONF_RESET:
	case IMSG_CONF_GLOBAL:
	case IMSG_CONF_PKI:
	case IMSG_CONF_LISTENER:
	case IMSG_CONF_TRUSTED:
	case IMSG_CONF_TABLE:
	case IMSG_CONF_DOMAIN:
	case IMSG_CONF_SOCKET:
	case IMSG_CONF_POLICY:
	case IMSG_CONF_OUTBOUND_TLS:
	case IMSG_CONF_MILTER:
	case IMSG_CONF_DONE:
	case IMSG_CONF_ABORT:
	case IMSG_CONF_APPLY:
	case IMSG_CTL_VERBOSE:
	case IMSG_PROC_STOP:
		proc_expect(ch, m, PROC_PARENT);
		break;
	default:
		return 0;
	}
	switch (m->type) {
	case IMSG_PROC_PEER_OPEN:
		proc_peer_open(m);
		return 1;
	case IMSG_PROC_START:
		if (msg_end(m) == -1)
			fatalx("bad %s", imsg_name(m->type));
		proc_started = 1;
		return 1;
	case IMSG_CONF_ABORT:
		if (msg_end(m) == -1)
			fatalx("bad %s", imsg_name(m->type));
		conf_free(env->pending);
		env->pending = NULL;
		return 1;
	case IMSG_CONF_APPLY:
		/*
		 * The process' own: its handler swaps with
		 * proc_conf_apply() and frees the old configuration when
		 * nothing refers to it any more (smtp sessions and lookup
		 * queries under way keep theirs until they end).
		 */
		return 0;
	case IMSG_CTL_VERBOSE:
		proc_verbose(m);
		return 1;
	case IMSG_PROC_STOP:
		proc_stop(m);
		return 1;
	default:
		proc_conf(m);	/* IMSG_CONF_RESET to IMSG_CONF_DONE */
		return 1;
	}
}

static void
proc_peer_open(struct msg *m)
{
	struct msgchan	*ch;
	uint32_t	 peer;
	int		 fd;

	if (msg_get_u32(m, &peer) == -1 || msg_end(m) == -1 ||
	    peer == PROC_PARENT || peer >= PROC_COUNT ||
	    (int)peer == env->proc || env->chan[peer] != NULL)
		fatalx("bad %s", imsg_name(m->type));
	if ((fd = msg_take_fd(m)) == -1)
		fatalx("%s without a descriptor", imsg_name(m->type));
	if ((ch = calloc(1, sizeof(*ch))) == NULL)
		fatal("calloc");
	msgchan_init(ch, fd, peer, proc_ident(env->proc)->imsg, NULL);
	env->chan[peer] = ch;
	msgchan_event_add(ch);
}

static void
proc_conf(struct msg *m)
{
	const struct proc_ident	*pi = proc_ident(env->proc);
	char			*text;
	int			 r, ok = 1;

	if ((r = conf_recv(m, &env->pending)) == -1)
		fatalx("bad configuration message %s", imsg_name(m->type));
	if (r == 0)
		return;

	/* All items are here: prepare, acknowledge, wait for APPLY. */
	if ((text = calloc(1, PROC_TEXTSZ)) == NULL)
		fatal("calloc");
	if (pi->prepare != NULL &&
	    pi->prepare(env->pending, text, PROC_TEXTSZ) == -1) {
		if (!proc_started)
			fatalx("%s", text);
		log_warnx("new configuration refused: %s", text);
		ok = 0;
	} else if (pi->report != NULL)
		pi->report(env->pending, text, PROC_TEXTSZ);
	proc_conf_ack(ok, text);
	free(text);
	if (!ok) {
		conf_free(env->pending);
		env->pending = NULL;
	} else if (!proc_started) {
		/* First configuration: nothing runs yet, apply now. */
		conf_free(env->conf);
		env->conf = env->pending;
		env->pending = NULL;
	}
}

/* IMSG_CONF_DONE: u32 ok, str the refusal, or this process' report. */
static void
proc_conf_ack(int ok, const char *text)
{
	struct msg	 ack;

	msg_init(&ack, IMSG_CONF_DONE, 0);
	msg_add_u32(&ack, (uint32_t)ok);
	msg_add_str(&ack, text);
	proc_send(PROC_PARENT, &ack);
}

/*
 * Called by each process' dispatcher for IMSG_CONF_APPLY: swaps in the
 * pending configuration and returns the old one for the caller to free
 * once nothing refers to it.
 */
struct smx_conf *
proc_conf_apply(struct msg *m)
{
	struct smx_conf	*old;

	if (msg_end(m) == -1 || env->pending == NULL)
		fatalx("bad %s", imsg_name(m->type));
	old = env->conf;
	env->conf = env->pending;
	env->pending = NULL;
	log_info("configuration generation=%u applied",
	    env->conf->generation);
	return old;
}

static void
proc_verbose(struct msg *m)
{
	uint32_t	 v;

	if (msg_get_u32(m, &v) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	log_setverbose((int)v);
	env->verbose = (int)v;
}

/* splitmxctl stop: the process' own stop, or done at once. */
static void
proc_stop(struct msg *m)
{
	const struct proc_ident	*pi = proc_ident(env->proc);
	uint32_t		 grace;

	if (msg_get_u32(m, &grace) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if (pi->stop != NULL)
		pi->stop(grace);
	else
		proc_stopped("");
}

void
proc_stopped(const char *report)
{
	struct msg	 m;

	if (proc_stop_answered++)
		return;
	msg_init(&m, IMSG_PROC_STOPPED, 0);
	msg_add_str(&m, report);
	proc_send(PROC_PARENT, &m);
}

static void
proc_lost_timeout(int fd, short event, void *arg)
{
	struct msgchan	*ch = arg;

	(void)fd;
	(void)event;
	log_warnx("lost channel to %s, exiting", proc_name(ch->peer));
	exit(1);
}

/* A message that only one peer may send: from anyone else it is a bug. */
void
proc_expect(struct msgchan *ch, struct msg *m, int peer)
{
	if (ch->peer != peer)
		fatalx("%s from %s, expected from %s", imsg_name(m->type),
		    proc_name(ch->peer), proc_name(peer));
}

void
proc_lost(struct msgchan *ch)
{
	static struct event	 ev;
	struct timeval		 tv = { 1, 0 };

	if (ch->peer == PROC_PARENT) {
		/* The parent closed us: an orderly shutdown. */
		log_debug("parent closed the channel, exiting");
		exit(0);
	}
	/* Stopping: the parent closes the others first, then us. */
	if (proc_stop_answered) {
		msgchan_event_del(ch);
		return;
	}
	/*
	 * A sibling went away.  The parent learns of its death by SIGCHLD,
	 * names it, and closes our channel; give it a moment to do so, so
	 * that the log names the process that really died.
	 */
	if (getppid() == 1)
		exit(0);
	msgchan_event_del(ch);
	if (event_initialized(&ev))
		return;
	evtimer_set(&ev, proc_lost_timeout, ch);
	evtimer_add(&ev, &tv);
}

void
proc_send(int peer, struct msg *m)
{
	if (env->chan[peer] == NULL)
		fatalx("no channel to %s for %s", proc_name(peer),
		    imsg_name(m->type));
	if (msgchan_send(env->chan[peer], m) == -1)
		fatalx("cannot send %s to %s", imsg_name(m->type),
		    proc_name(peer));
}

void
proc_compose(int peer, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t len)
{
	if (env->chan[peer] == NULL)
		fatalx("no channel to %s for %s", proc_name(peer),
		    imsg_name(type));
	if (msgchan_compose(env->chan[peer], type, peerid, fd, data,
	    len) == -1)
		fatalx("cannot send %s to %s", imsg_name(type),
		    proc_name(peer));
}

/*
 * The soft limit on descriptors as the process table says.  Started as
 * root, a child may also lift the hard limit it inherited (a shell's
 * 4096 would cap the sessions), before it drops privileges.
 */
static void
proc_nofile(rlim_t want)
{
	struct rlimit	 rl, raised;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		fatal("getrlimit nofile");
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max < want && want != RLIM_INFINITY && geteuid() == 0) {
		raised.rlim_cur = raised.rlim_max = want;
		if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
			return;
	}
	if (rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		fatal("setrlimit nofile");
}

/*
 * The privilege drop, in the same order in every child: chroot,
 * chdir("/"), setgroups, setresgid, setresuid, then no new privileges,
 * no core files, and the seccomp filter (sandbox.c).  The chroot is the
 * process table's.  As a non-root user there is nothing to drop; the
 * parent has already warned once.
 */
void
proc_drop_privileges(void)
{
	const struct proc_ident	*pi = proc_ident(env->proc);
	struct passwd		*pw;
	struct rlimit		 rl;
	const char		*root;

	rl.rlim_cur = rl.rlim_max = 0;
	if (setrlimit(RLIMIT_CORE, &rl) == -1)
		fatal("setrlimit core");
	proc_nofile(pi->nofile);

	switch (pi->root) {
	case ROOT_EMPTY:
		root = SPLITMX_EMPTY;
		break;
	case ROOT_SPOOL:
		root = env->conf->queue_dir;
		break;
	default:
		fatalx("%s: no root to drop into", pi->name);
	}
	if (geteuid() == 0) {
		if ((pw = getpwnam(env->conf->user)) == NULL)
			fatalx("unknown user %s", env->conf->user);
		if (chroot(root) == -1)
			fatal("chroot %s", root);
		if (chdir("/") == -1)
			fatal("chdir /");
		if (setgroups(1, &pw->pw_gid) == -1)
			fatal("setgroups");
		if (setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1)
			fatal("setresgid");
		if (setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
			fatal("setresuid");
		/* Must not be able to get back. */
		if (setuid(0) != -1 || seteuid(0) != -1)
			fatalx("privileges could be regained");
	} else if (pi->root == ROOT_SPOOL) {
		/* Unprivileged: no chroot, but work inside the spool. */
		if (chdir(root) == -1)
			fatal("chdir %s", root);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("prctl no_new_privs");
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		fatal("prctl dumpable");
	sandbox_enter(env->proc);
	log_debug("privileges dropped, root=%s", root);
}
