/*
 * splitmxd: the privileged parent.  It parses the configuration, binds
 * the sockets, starts the children by fork + re-exec and supervises
 * them; reload is orchestrated from here.  It also connects the unix
 * sockets of milters for the filter process (parent_milter_connect).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <err.h>
#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "splitmx.h"
#include "parent.h"

#define STOP_GRACE	10	/* seconds for sessions to finish a command */
#define STOP_BACKSTOP	5	/* more for the children to say they have */
#define STOP_WAITERS	16	/* splitmxctl stop commands answered */

static void	usage(void) __attribute__((__noreturn__));
static int	check_config(const char *, int);
static int	parent_bind_metrics(struct smx_conf *, FILE *);
static void	parent_wipe_pki(struct smx_conf *);
static int	parent_bind(struct smx_conf *, FILE *);
static int	parent_bind_listener(struct smx_listener *, FILE *);
static int	parent_bind_unix(const char *, const char *, mode_t, char *,
		    size_t, FILE *);
static int	parent_sockets_commit(const struct smx_conf *,
		    const struct smx_conf *);
static int	parent_socket_rename(char *, const char *);
static void	parent_sockets_discard(void);
static int	parent_read_trust(struct smx_conf *, FILE *);
static int	parent_open_tables(struct smx_conf *, FILE *);
static void	parent_close_tables(struct smx_conf *);
static void	parent_send_conf(struct smx_conf *);
static void	parent_start(void);
static pid_t	parent_fork(int, int);
static void	parent_syslog_warn(void);
static void	parent_imsg(struct msgchan *, struct msg *, void *);
static void	parent_sig(int, short, void *);
static void	parent_reap(void);
static void	parent_child_exited(int, int);
static void	parent_shutdown(int) __attribute__((__noreturn__));
static void	parent_close_children(int);
static void	parent_conf_done(struct msgchan *, struct msg *);
static void	parent_reload(uint64_t);
static void	parent_reload_reply(uint64_t, int, const char *);
static void	parent_reload_changes(const struct smx_conf *,
		    const struct smx_conf *);
static void	parent_reload_applied(void);
static void	parent_reload_end(void);
static void	parent_send_procs(void);
static void	parent_verbose(struct msg *);
static void	parent_milter_connect(struct msg *);
static int	parent_milter_known(const struct smx_conf *, const char *);
static void	conf_close_fds(struct smx_conf *);
static void	parent_stop(struct msg *);
static void	parent_stop_done(struct msgchan *, struct msg *);
static void	parent_stop_timeout(int, short, void *);
static void	parent_stop_end(const char *) __attribute__((__noreturn__));


/* Reload state: at most one in flight. */
static struct {
	int		 pending;
	uint64_t	 reqid;
	int		 acks;
	char		*error;		/* the first child's refusal */
	char		*changes;	/* for the reply, once applied */
	char		*reports[PROC_COUNT];	/* ... and the children's */
	struct smx_conf	*conf;
} reload;

/*
 * A control or status socket bound for a configuration that is not in
 * force yet waits under PATH.new (SMX_SOCK_NEW); it is renamed over PATH
 * when the configuration is applied.  A refused reload thus leaves the
 * running sockets where their clients find them.
 */
static struct {
	char		 control[PATH_MAX];	/* PATH.new, or "" */
	char		 status[PATH_MAX];
} newsock;

static const char	*conffile = SPLITMX_CONF;
static char		 selfpath[PATH_MAX];	/* re-executed as children */
static uint32_t		 generation = 1;
static int		 shutting_down;
static struct event	 ev_sigterm, ev_sigint, ev_sighup, ev_sigchld;

/* splitmxctl stop: at most one, however many ask. */
static struct {
	int		 active;
	uint64_t	 reqids[STOP_WAITERS];	/* to answer when done */
	int		 nreqids;
	int		 done[PROC_COUNT];	/* PROC_STOPPED received */
	int		 ndone;
	char		*reports[PROC_COUNT];
	struct event	 ev;
} stop;

static void
usage(void)
{
	extern char	*__progname;

	fprintf(stderr, "usage: %s [-dnv] [-f file]\n", __progname);
	exit(2);
}

int
main(int argc, char *argv[], char *envp[])
{
	const char	*pname = NULL;
	int		 ch, noaction = 0, i;

	setproctitle_init(argc, argv, envp);
	while ((ch = getopt(argc, argv, "df:nP:v")) != -1) {
		switch (ch) {
		case 'd':
			env->debug = 1;
			break;
		case 'f':
			conffile = optarg;
			break;
		case 'n':
			noaction = 1;
			break;
		case 'P':
			pname = optarg;
			break;
		case 'v':
			env->verbose++;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	if (argc != 0)
		usage();

	if (pname != NULL) {
		/* A re-executed child: the parent's channel is fd 3. */
		log_init(env->debug, env->verbose);
		if (!env->debug)
			log_to_parent(PROC_LOG_FD);
		if ((i = proc_find(pname)) > PROC_PARENT)
			proc_child(i);
		fatalx("unknown process %s", pname);
	}

	if (noaction)
		exit(check_config(conffile, env->verbose));

	log_init(env->debug, env->verbose);
	/*
	 * The children are this very binary, by its real path (so that
	 * they are "splitmxd" to ps and top, not "exe").
	 */
	{
		ssize_t	 n;

		if ((n = readlink("/proc/self/exe", selfpath,
		    sizeof(selfpath) - 1)) == -1)
			fatal("readlink /proc/self/exe");
		selfpath[n] = '\0';
	}
	parent_start();
	return 0;
}

/* splitmxd -n: parse, try every pki, load every directory, report. */
static int
check_config(const char *file, int verbose)
{
	struct smx_conf	*c;

	if ((c = parse_config(file, stderr)) == NULL)
		return 1;
	if (pki_load(c, stderr) == -1 || lookup_check_config(c, stderr) == -1 ||
	    startup_check(c, stderr) == -1 ||
	    parent_read_trust(c, stderr) == -1) {
		conf_free(c);
		return 1;
	}
	if (verbose)
		conf_print(stdout, c);
	printf("configuration OK\n");
	conf_free(c);
	return 0;
}

static int
parent_bind_listener(struct smx_listener *l, FILE *errfp)
{
	char	 addr[INET6_ADDRSTRLEN];
	int	 fd, on = 1;

	if ((fd = socket(l->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		fprintf(errfp, "socket: %s\n", strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
		goto fail;
	if (l->ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof(on)) == -1)
		goto fail;
	if (bind(fd, (struct sockaddr *)&l->ss, l->sslen) == -1)
		goto fail;
	/*
	 * A burst of connections waits here, not in SYN retries a second
	 * apart; the kernel caps it at net.core.somaxconn.
	 */
	if (listen(fd, 65535) == -1)
		goto fail;
	l->fd = fd;
	return 0;
 fail:
	fprintf(errfp, "listen on %s port %u: %s\n",
	    sa_str((struct sockaddr *)&l->ss, addr, sizeof(addr)), l->port,
	    strerror(errno));
	close(fd);
	return -1;
}

/*
 * A unix socket for control or status, mode and group as configured,
 * bound under its temporary name (tmp, PATH.new) until it is renamed.
 */
static int
parent_bind_unix(const char *path, const char *group, mode_t mode,
    char *tmp, size_t tmplen, FILE *errfp)
{
	struct sockaddr_un	 sun;
	struct group		*gr;
	struct stat		 st;
	gid_t			 gid = (gid_t)-1;
	mode_t			 old;
	int			 fd, n;

	tmp[0] = '\0';
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s%s", path,
	    SMX_SOCK_NEW);
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path) || (size_t)n >= tmplen) {
		fprintf(errfp, "%s: socket path too long\n", path);
		return -1;
	}
	if (group[0] != '\0') {
		if ((gr = getgrnam(group)) == NULL) {
			fprintf(errfp, "%s: group %s does not exist\n", path,
			    group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	/* The rename replaces a socket, never a file that is something else. */
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		fprintf(errfp, "%s: exists and is not a socket\n", path);
		return -1;
	}
	if (lstat(sun.sun_path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		fprintf(errfp, "%s: exists and is not a socket\n",
		    sun.sun_path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		fprintf(errfp, "socket: %s\n", strerror(errno));
		return -1;
	}
	/* A PATH.new left by a parent that died is ours to replace. */
	if (unlink(sun.sun_path) == -1 && errno != ENOENT) {
		fprintf(errfp, "%s: %s\n", sun.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		fprintf(errfp, "%s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	if ((gid != (gid_t)-1 && chown(sun.sun_path, (uid_t)-1, gid) == -1) ||
	    chmod(sun.sun_path, mode) == -1 || listen(fd, 128) == -1) {
		fprintf(errfp, "%s: %s\n", path, strerror(errno));
		unlink(sun.sun_path);
		close(fd);
		return -1;
	}
	strlcpy(tmp, sun.sun_path, tmplen);
	return fd;
}

/*
 * The configuration c is now in force: its new sockets take their
 * names, and the names of old ones that moved elsewhere go.
 */
static int
parent_sockets_commit(const struct smx_conf *c, const struct smx_conf *old)
{
	int	 rv = 0;

	if (parent_socket_rename(newsock.control, c->control_sock) == -1)
		rv = -1;
	if (parent_socket_rename(newsock.status, c->status_sock) == -1)
		rv = -1;
	if (old == NULL)
		return rv;
	if (strcmp(old->control_sock, c->control_sock) != 0 &&
	    strcmp(old->control_sock, c->status_sock) != 0)
		(void)unlink(old->control_sock);
	if (strcmp(old->status_sock, c->status_sock) != 0 &&
	    strcmp(old->status_sock, c->control_sock) != 0)
		(void)unlink(old->status_sock);
	return rv;
}

/* rename(2) replaces path at once: a client finds the old or the new. */
static int
parent_socket_rename(char *tmp, const char *path)
{
	int	 rv = 0;

	if (tmp[0] == '\0')
		return 0;
	if (rename(tmp, path) == -1) {
		log_warn("rename %s to %s", tmp, path);
		(void)unlink(tmp);
		rv = -1;
	}
	tmp[0] = '\0';
	return rv;
}

/* The configuration was refused: its sockets never get their names. */
static void
parent_sockets_discard(void)
{
	if (newsock.control[0] != '\0')
		(void)unlink(newsock.control);
	if (newsock.status[0] != '\0')
		(void)unlink(newsock.status);
	newsock.control[0] = newsock.status[0] = '\0';
}

static int
parent_bind_metrics(struct smx_conf *c, FILE *errfp)
{
	char	 addr[INET6_ADDRSTRLEN];
	int	 fd, on = 1;

	if ((fd = socket(c->metrics_ss.ss_family, SOCK_STREAM |
	    SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    bind(fd, (struct sockaddr *)&c->metrics_ss,
	    c->metrics_sslen) == -1 || listen(fd, 64) == -1) {
		close(fd);
		goto fail;
	}
	c->metrics_fd = fd;
	return 0;
 fail:
	fprintf(errfp, "metrics listen on %s port %u: %s\n",
	    sa_str((struct sockaddr *)&c->metrics_ss, addr, sizeof(addr)),
	    c->metrics_port, strerror(errno));
	return -1;
}

/*
 * Bind everything a configuration needs.  On reload, a listener that
 * exists in the running configuration keeps its socket.
 */
static int
parent_bind(struct smx_conf *c, FILE *errfp)
{
	struct smx_listener	*l, *o;
	struct smx_conf		*old = env->conf;
	struct group		*gr;

	c->admin_gid = -1;
	if (c->admin_group[0] != '\0') {
		if ((gr = getgrnam(c->admin_group)) == NULL) {
			fprintf(errfp, "%s: control admin group %s does not "
			    "exist\n", c->file, c->admin_group);
			return -1;
		}
		c->admin_gid = gr->gr_gid;
	}

	TAILQ_FOREACH(l, &c->listeners, entry) {
		o = NULL;
		if (old != NULL)
			TAILQ_FOREACH(o, &old->listeners, entry)
				if (o->sslen == l->sslen && o->fd != -1 &&
				    memcmp(&o->ss, &l->ss, l->sslen) == 0)
					break;
		if (o != NULL) {
			if ((l->fd = dup(o->fd)) == -1) {
				fprintf(errfp, "dup: %s\n", strerror(errno));
				return -1;
			}
			continue;
		}
		if (parent_bind_listener(l, errfp) == -1)
			return -1;
	}
	if (old != NULL && strcmp(old->control_sock, c->control_sock) == 0 &&
	    strcmp(old->control_group, c->control_group) == 0 &&
	    old->control_fd != -1) {
		if ((c->control_fd = dup(old->control_fd)) == -1)
			return -1;
	} else if ((c->control_fd = parent_bind_unix(c->control_sock,
	    c->control_group, 0660, newsock.control, sizeof(newsock.control),
	    errfp)) == -1)
		return -1;
	if (old != NULL && strcmp(old->status_sock, c->status_sock) == 0 &&
	    strcmp(old->status_group, c->status_group) == 0 &&
	    old->status_fd != -1) {
		if ((c->status_fd = dup(old->status_fd)) == -1)
			return -1;
	} else if ((c->status_fd = parent_bind_unix(c->status_sock,
	    c->status_group, c->status_group[0] ? 0660 : 0666,
	    newsock.status, sizeof(newsock.status), errfp)) == -1)
		return -1;
	if (c->metrics) {
		if (old != NULL && old->metrics && old->metrics_fd != -1 &&
		    old->metrics_sslen == c->metrics_sslen &&
		    memcmp(&old->metrics_ss, &c->metrics_ss,
		    c->metrics_sslen) == 0) {
			if ((c->metrics_fd = dup(old->metrics_fd)) == -1)
				return -1;
		} else if (parent_bind_metrics(c, errfp) == -1)
			return -1;
	}
	return 0;
}

/*
 * The DNSSEC trust anchors (their text goes to the lookup process) and
 * the CA file (a descriptor to lookup and relay, which read it), with
 * privilege, as the keys.  The default CA store may be missing: only
 * what verifies then fails, as it says.
 */
#define PARENT_ANCHORS_MAX	(64 * 1024)
static int
parent_read_trust(struct smx_conf *c, FILE *errfp)
{
	FILE	*fp;
	size_t	 n;
	char	 err[256];

	if ((fp = fopen(c->trust_anchor, "re")) == NULL) {
		fprintf(errfp,
		    "%s: cannot read the DNSSEC trust anchor: %s%s\n",
		    c->trust_anchor, strerror(errno),
		    strcmp(c->trust_anchor, DEF_TRUST_ANCHOR) == 0 ?
		    " (install dns-root-data, or give trust-anchor)" : "");
		return -1;
	}
	if ((c->anchors = calloc(1, PARENT_ANCHORS_MAX + 1)) == NULL)
		fatal("calloc");
	n = fread(c->anchors, 1, PARENT_ANCHORS_MAX + 1, fp);
	if (ferror(fp) || n > PARENT_ANCHORS_MAX || n == 0 ||
	    memchr(c->anchors, '\0', n) != NULL) {
		fprintf(errfp, "%s: %s\n", c->trust_anchor, ferror(fp) ?
		    strerror(errno) : n == 0 ? "no trust anchor in it" :
		    "not a trust anchor file (too large, or binary)");
		fclose(fp);
		return -1;
	}
	fclose(fp);
	c->anchors[n] = '\0';
	if (dns_check_anchors(c->anchors, err, sizeof(err)) == -1) {
		fprintf(errfp, "%s: %s\n", c->trust_anchor, err);
		return -1;
	}
	if ((c->ca_fd = open(c->ca_file, O_RDONLY | O_CLOEXEC)) == -1) {
		if (c->ca_set) {
			fprintf(errfp, "%s: cannot read the CA file: %s\n",
			    c->ca_file, strerror(errno));
			return -1;
		}
		log_warnx("cannot read the CA store %s: %s; outbound "
		    "certificate verification will fail", c->ca_file,
		    strerror(errno));
	}
	return 0;
}

/* Wipe key material once every child has its copy. */
static void
parent_wipe_pki(struct smx_conf *c)
{
	struct smx_pki	*pki;

	TAILQ_FOREACH(pki, &c->pkis, entry) {
		if (pki->key != NULL) {
			tls_unload_file(pki->key, pki->key_len);
			pki->key = NULL;
			pki->key_len = 0;
		}
	}
}

/*
 * The directory files, opened here with privilege; the lookup process
 * reads them through the descriptors, loads and checks them, and may
 * refuse the configuration (lookup_conf_prepare()).
 */
static int
parent_open_tables(struct smx_conf *c, FILE *errfp)
{
	struct smx_table	*t;

	TAILQ_FOREACH(t, &c->tables, entry) {
		if (t->type != TABLE_FILE)
			continue;
		if ((t->fd = open(t->path, O_RDONLY | O_CLOEXEC)) == -1) {
			fprintf(errfp, "%s: %s\n", t->path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Once sent: the lookup process has its own descriptors. */
static void
parent_close_tables(struct smx_conf *c)
{
	struct smx_table	*t;

	TAILQ_FOREACH(t, &c->tables, entry)
		if (t->fd != -1) {
			close(t->fd);
			t->fd = -1;
		}
}

/* RESET..DONE to every child; keys and directory files are let go. */
static void
parent_send_conf(struct smx_conf *c)
{
	int	 i;

	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++)
		if (conf_send(env->chan[i], c, i) == -1)
			fatalx("cannot send the configuration to %s",
			    proc_name(i));
	parent_wipe_pki(c);
	parent_close_tables(c);
	if (c->ca_fd != -1)
		close(c->ca_fd);
	c->ca_fd = -1;
}

static void
conf_close_fds(struct smx_conf *c)
{
	struct smx_listener	*l;

	if (c == NULL)
		return;
	TAILQ_FOREACH(l, &c->listeners, entry)
		if (l->fd != -1) {
			close(l->fd);
			l->fd = -1;
		}
	parent_close_tables(c);
	if (c->ca_fd != -1)
		close(c->ca_fd);
	c->ca_fd = -1;
	if (c->control_fd != -1)
		close(c->control_fd);
	if (c->status_fd != -1)
		close(c->status_fd);
	if (c->metrics_fd != -1)
		close(c->metrics_fd);
	c->control_fd = c->status_fd = c->metrics_fd = -1;
}

/*
 * The start: the directories are loaded here once, so that their
 * errors reach the terminal ("FILE:LINE: ...") and the exit status
 * before splitmxd goes into the background.  At a reload the lookup
 * process alone loads them.
 */
static void
parent_start(void)
{
	struct smx_conf	*c;
	int		 pairs[PROC_COUNT][PROC_COUNT][2];
	int		 i, j;
	struct msg	 m;

	if ((c = parse_config(conffile, stderr)) == NULL)
		exit(1);
	if (lookup_check_config(c, stderr) == -1 ||
	    startup_check(c, stderr) == -1)
		exit(1);
	c->generation = generation++;
	c->loaded = time(NULL);
	c->control_fd = c->status_fd = c->metrics_fd = -1;

	if (geteuid() != 0)
		log_warnx("running as uid %u, not root: every process runs as "
		    "this user, without chroot", (unsigned)geteuid());
	startup_dirs(c);
	if (startup_pidfile_lock(c, stderr) == -1)
		exit(1);
	if (pki_load(c, stderr) == -1 || parent_bind(c, stderr) == -1 ||
	    parent_open_tables(c, stderr) == -1 ||
	    parent_read_trust(c, stderr) == -1 ||
	    parent_sockets_commit(c, NULL) == -1) {
		parent_sockets_discard();
		fatalx("cannot start");
	}

	if (!env->debug) {
		parent_syslog_warn();
		startup_daemon();
	} else
		startup_pidfile_write(getpid());

	env->proc = PROC_PARENT;
	env->started = time(NULL);
	env->conf = c;
	log_procname("parent");

	/* One socketpair per pair of processes, the parent included. */
	for (i = 0; i < PROC_COUNT; i++)
		for (j = i + 1; j < PROC_COUNT; j++)
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
			    0, pairs[i][j]) == -1)
				fatal("socketpair");

	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++)
		env->pids[i] = parent_fork(i, pairs[PROC_PARENT][i][1]);
	env->pids[PROC_PARENT] = getpid();

	if ((env->evbase = event_init()) == NULL)
		fatalx("event_init failed");
	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++) {
		close(pairs[PROC_PARENT][i][1]);
		if ((env->chan[i] = calloc(1, sizeof(struct msgchan))) == NULL)
			fatal("calloc");
		msgchan_init(env->chan[i], pairs[PROC_PARENT][i][0], i,
		    parent_imsg, NULL);
	}
	/* Hand each child its ends of the sibling channels. */
	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++)
		for (j = i + 1; j < PROC_COUNT; j++) {
			msg_init(&m, IMSG_PROC_PEER_OPEN, 0);
			msg_add_u32(&m, (uint32_t)j);
			msg_set_fd(&m, pairs[i][j][0]);
			if (msgchan_send(env->chan[i], &m) == -1)
				fatalx("send peer");
			msg_init(&m, IMSG_PROC_PEER_OPEN, 0);
			msg_add_u32(&m, (uint32_t)i);
			msg_set_fd(&m, pairs[i][j][1]);
			if (msgchan_send(env->chan[j], &m) == -1)
				fatalx("send peer");
		}
	parent_send_conf(c);
	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++) {
		msgchan_compose(env->chan[i], IMSG_PROC_START, 0, -1, NULL, 0);
		if (msgchan_flush(env->chan[i]) == -1)
			fatal("start %s", proc_name(i));
	}
	parent_send_procs();

	signal_set(&ev_sigterm, SIGTERM, parent_sig, NULL);
	signal_set(&ev_sigint, SIGINT, parent_sig, NULL);
	signal_set(&ev_sighup, SIGHUP, parent_sig, NULL);
	signal_set(&ev_sigchld, SIGCHLD, parent_sig, NULL);
	signal_add(&ev_sigterm, NULL);
	signal_add(&ev_sigint, NULL);
	signal_add(&ev_sighup, NULL);
	signal_add(&ev_sigchld, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++)
		msgchan_event_add(env->chan[i]);
	parent_log_start();

	log_info("startup version=%s generation=%u pid=%d", SPLITMX_VERSION,
	    c->generation, (int)getpid());
	startup_notify("READY=1\nSTATUS=running, configuration generation %u",
	    c->generation);
	event_dispatch();
	parent_shutdown(1);
}

/*
 * Fork and re-exec ourselves as a child: fresh address space layout.
 * Its channel to us is fd 3, its log socket (without -d) PROC_LOG_FD.
 */
static pid_t
parent_fork(int proc, int fd)
{
	char	*args[8];
	char	 a0[] = "splitmxd", ap[] = "-P", ad[] = "-d", av[] = "-v";
	char	 name[16];
	int	 n = 0, logfd;
	pid_t	 pid;

	logfd = parent_log_channel(proc);
	switch ((pid = fork())) {
	case -1:
		fatal("fork");
	case 0:
		break;
	default:
		if (logfd != -1)
			close(logfd);
		return pid;
	}
	/* Out of the way of the dup2s below. */
	if (logfd != -1 && logfd <= PROC_LOG_FD &&
	    (logfd = fcntl(logfd, F_DUPFD_CLOEXEC, PROC_LOG_FD + 1)) == -1)
		fatal("fcntl");
	if (fd != 3) {
		if (dup2(fd, 3) == -1)
			fatal("dup2");
	} else if (fcntl(fd, F_SETFD, 0) == -1)
		fatal("fcntl");
	if (logfd != -1 && dup2(logfd, PROC_LOG_FD) == -1)
		fatal("dup2");
	if (close_range(logfd != -1 ? PROC_LOG_FD + 1 : 3 + 1, ~0U, 0) == -1)
		fatal("close_range");
	strlcpy(name, proc_name(proc), sizeof(name));
	args[n++] = a0;
	args[n++] = ap;
	args[n++] = name;
	if (env->debug)
		args[n++] = ad;
	if (log_getverbose())
		args[n++] = av;
	args[n] = NULL;
	execv(selfpath, args);
	fatal("exec %s", proc_name(proc));
}

static void
parent_send_procs(void)
{
	struct msg	 m;
	int		 i;

	msg_init(&m, IMSG_CTL_PROCS, 0);
	msg_add_i64(&m, env->started);
	msg_add_u32(&m, PROC_COUNT);
	for (i = 0; i < PROC_COUNT; i++) {
		msg_add_u32(&m, (uint32_t)i);
		msg_add_u32(&m, (uint32_t)env->pids[i]);
	}
	if (msgchan_send(env->chan[PROC_CONTROL], &m) == -1)
		fatalx("send procs");
}

static void
parent_imsg(struct msgchan *ch, struct msg *m, void *arg)
{
	uint64_t	 reqid;

	(void)arg;
	if (m == NULL) {
		/* Usually the child died: say which and how, then stop. */
		int	 status, tries;
		pid_t	 pid = env->pids[ch->peer];

		parent_log_drain();	/* its last words first */

		for (tries = 0; pid != 0 && tries < 50; tries++) {
			if (waitpid(pid, &status, WNOHANG) == pid) {
				env->pids[ch->peer] = 0;
				parent_child_exited(ch->peer, status);
				break;
			}
			usleep(10000);
		}
		if (env->pids[ch->peer] != 0)
			log_warnx("lost channel to %s", proc_name(ch->peer));
		parent_shutdown(1);
	}
	switch (m->type) {
	case IMSG_CONF_DONE:
		parent_conf_done(ch, m);
		break;
	case IMSG_CTL_RELOAD:
		proc_expect(ch, m, PROC_CONTROL);
		if (msg_get_u64(m, &reqid) == -1 || msg_end(m) == -1)
			fatalx("bad %s from %s", imsg_name(m->type),
			    proc_name(ch->peer));
		parent_reload(reqid);
		break;
	case IMSG_CTL_VERBOSE:
		proc_expect(ch, m, PROC_CONTROL);
		parent_verbose(m);
		break;
	case IMSG_CTL_STOP:
		proc_expect(ch, m, PROC_CONTROL);
		parent_stop(m);
		break;
	case IMSG_PROC_STOPPED:
		parent_stop_done(ch, m);
		break;
	case IMSG_FILTER_MILTER_CONNECT:
		proc_expect(ch, m, PROC_FILTER);
		parent_milter_connect(m);
		break;
	default:
		fatalx("unexpected %s from %s", imsg_name(m->type),
		    proc_name(ch->peer));
	}
}

/* A unix milter of the running configuration or of the one on its way. */
static int
parent_milter_known(const struct smx_conf *c, const char *path)
{
	const struct smx_milter	*mi;

	if (c == NULL)
		return 0;
	TAILQ_FOREACH(mi, &c->milters, entry)
		if (strncmp(mi->address, "unix:", 5) == 0 &&
		    strcmp(mi->address + 5, path) == 0)
			return 1;
	return 0;
}

/*
 * IMSG_FILTER_MILTER_CONNECT: the filter process lives in an empty
 * chroot, so a unix milter is connected here, with our privileges, and
 * the descriptor handed over.  Only a path the configuration names: the
 * filter process cannot make us connect anywhere else.  Never blocks:
 * a unix socket connects at once or not at all (EAGAIN when its
 * backlog is full).
 */
static void
parent_milter_connect(struct msg *m)
{
	struct sockaddr_un	 sun;
	struct msg		 r;
	const char		*path;
	uint64_t		 reqid;
	int			 fd = -1, error = 0;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_strp(m, &path) == -1 ||
	    path == NULL || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((!parent_milter_known(env->conf, path) &&
	    !parent_milter_known(reload.conf, path)) ||
	    strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		error = EPERM;
	else if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		error = errno;
	else if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		error = errno;
		close(fd);
		fd = -1;
	}
	msg_init(&r, IMSG_FILTER_MILTER_CONNECT_RESULT, 0);
	msg_add_u64(&r, reqid);
	msg_add_u32(&r, (uint32_t)error);
	if (fd != -1)
		msg_set_fd(&r, fd);
	if (msgchan_send(env->chan[PROC_FILTER], &r) == -1)
		fatalx("send %s", imsg_name(r.type));
}

/* "log verbose" / "log brief": to ourselves and every child. */
static void
parent_verbose(struct msg *m)
{
	struct msg	 out;
	uint32_t	 v;
	int		 i;

	if (msg_get_u32(m, &v) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	log_setverbose((int)v);
	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++) {
		msg_init(&out, IMSG_CTL_VERBOSE, 0);
		msg_add_u32(&out, v);
		(void)msgchan_send(env->chan[i], &out);
	}
	log_info("log verbosity=%s", v ? "verbose" : "brief");
}

/*
 * Reload: parse and validate with privilege what only the parent can
 * (certificates read, sockets bound, directory files opened), then
 * RESET..DONE to every child.  The lookup process loads and checks the
 * directories as it prepares the new configuration and may refuse it;
 * when all have accepted, APPLY.  Any error leaves the running
 * configuration untouched and goes back to the requester as text.
 */
static void
parent_reload(uint64_t reqid)
{
	struct smx_conf	*c;
	char		*errbuf = NULL;
	size_t		 errlen = 0;
	FILE		*errfp;

	if (reload.pending) {
		parent_reload_reply(reqid, 1,
		    "a reload is already in progress");
		return;
	}
	if (stop.active) {
		parent_reload_reply(reqid, 1, "splitmxd is stopping");
		return;
	}
	if ((errfp = open_memstream(&errbuf, &errlen)) == NULL)
		fatal("open_memstream");
	if ((c = parse_config(conffile, errfp)) != NULL) {
		c->control_fd = c->status_fd = c->metrics_fd = -1;
		if (strcmp(c->user, env->conf->user) != 0 ||
		    strcmp(c->queue_dir, env->conf->queue_dir) != 0) {
			fprintf(errfp, "%s: changing user or queue needs a "
			    "restart of splitmxd\n", conffile);
			conf_free(c);
			c = NULL;
		} else if (pki_load(c, errfp) == -1 ||
		    parent_bind(c, errfp) == -1 ||
		    parent_open_tables(c, errfp) == -1 ||
		    parent_read_trust(c, errfp) == -1) {
			conf_close_fds(c);
			parent_sockets_discard();
			conf_free(c);
			c = NULL;
		}
	}
	fclose(errfp);
	if (c == NULL) {
		log_warnx("reload refused: %s", errbuf ? errbuf : "");
		parent_reload_reply(reqid, 1, errbuf ? errbuf : "invalid");
		free(errbuf);
		return;
	}
	free(errbuf);
	parent_reload_changes(env->conf, c);
	c->generation = generation++;
	c->loaded = time(NULL);
	reload.pending = 1;
	reload.reqid = reqid;
	reload.acks = 0;
	reload.conf = c;
	parent_send_conf(c);
}

/* The reply's account of a reload: what the statements change. */
static void
parent_reload_changes(const struct smx_conf *old, const struct smx_conf *c)
{
	size_t	 len = 0;
	FILE	*fp;

	free(reload.changes);
	reload.changes = NULL;
	if ((fp = open_memstream(&reload.changes, &len)) == NULL)
		fatal("open_memstream");
	conf_changes(fp, old, c);
	if (fclose(fp) != 0)
		fatal("fclose");
}

/*
 * IMSG_CONF_DONE: a child accepted the configuration (with its part of
 * the reply: the lookup process counts the directories' entries) or
 * refused it (why, "FILE:LINE: ..." for a directory).  When all have
 * answered: APPLY, or ABORT if one refused.
 */
static void
parent_conf_done(struct msgchan *ch, struct msg *m)
{
	struct smx_conf	*old;
	const char	*text;
	uint32_t	 ok;
	int		 i;

	if (msg_get_u32(m, &ok) == -1 || msg_get_strp(m, &text) == -1 ||
	    text == NULL || msg_end(m) == -1)
		fatalx("bad %s from %s", imsg_name(m->type),
		    proc_name(ch->peer));
	if (!reload.pending)
		return;		/* the acknowledgement of the first conf */
	if (!ok && reload.error == NULL) {
		if (asprintf(&reload.error, "%s%s", text, text[0] == '\0' ||
		    text[strlen(text) - 1] != '\n' ? "\n" : "") == -1)
			fatal("asprintf");
	} else if (ok && text[0] != '\0') {
		free(reload.reports[ch->peer]);
		reload.reports[ch->peer] = str_dup(text);
	}
	if (++reload.acks < PROC_COUNT - 1)
		return;
	if (reload.error != NULL) {
		/* Some child cannot take it: everyone keeps the old one. */
		for (i = PROC_PARENT + 1; i < PROC_COUNT; i++)
			msgchan_compose(env->chan[i], IMSG_CONF_ABORT, 0, -1,
			    NULL, 0);
		conf_close_fds(reload.conf);
		parent_sockets_discard();
		conf_free(reload.conf);
		log_warnx("reload refused: %s", reload.error);
		parent_reload_reply(reload.reqid, 1, reload.error);
		parent_reload_end();
		return;
	}
	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++)
		msgchan_compose(env->chan[i], IMSG_CONF_APPLY, 0, -1, NULL, 0);
	old = env->conf;
	env->conf = reload.conf;
	(void)parent_sockets_commit(env->conf, old);
	conf_close_fds(old);
	conf_free(old);
	log_info("reload generation=%u applied", env->conf->generation);
	parent_reload_applied();
	parent_reload_end();
}

/* "configuration generation N applied", the changes, the reports. */
static void
parent_reload_applied(void)
{
	char	*text = NULL;
	size_t	 len = 0;
	FILE	*fp;
	int	 i;

	if ((fp = open_memstream(&text, &len)) == NULL)
		fatal("open_memstream");
	fprintf(fp, "configuration generation %u applied\n%s",
	    env->conf->generation, reload.changes ? reload.changes : "");
	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++)
		if (reload.reports[i] != NULL)
			fputs(reload.reports[i], fp);
	if (fclose(fp) != 0)
		fatal("fclose");
	parent_reload_reply(reload.reqid, 0, text);
	free(text);
}

/* Ready for the next one. */
static void
parent_reload_end(void)
{
	int	 i;

	reload.pending = 0;
	reload.conf = NULL;
	free(reload.error);
	reload.error = NULL;
	free(reload.changes);
	reload.changes = NULL;
	for (i = 0; i < PROC_COUNT; i++) {
		free(reload.reports[i]);
		reload.reports[i] = NULL;
	}
}

static void
parent_reload_reply(uint64_t reqid, int failed, const char *text)
{
	struct msg	 m;

	msg_init(&m, IMSG_CTL_RELOAD_RESULT, 0);
	msg_add_u64(&m, reqid);
	msg_add_u32(&m, (uint32_t)failed);
	msg_add_str(&m, text);
	if (msgchan_send(env->chan[PROC_CONTROL], &m) == -1)
		fatalx("send reload result");
}

static void
parent_sig(int sig, short event, void *arg)
{
	(void)event;
	(void)arg;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		log_info("received %s, shutting down",
		    sig == SIGTERM ? "SIGTERM" : "SIGINT");
		parent_shutdown(0);
	case SIGHUP:
		log_info("received SIGHUP, reloading");
		parent_reload(0);
		break;
	case SIGCHLD:
		parent_reap();
		break;
	}
}

/* A child that dies takes the daemon down: no half-working gateway. */
static void
parent_reap(void)
{
	int	 status, i;
	pid_t	 pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = PROC_PARENT + 1; i < PROC_COUNT; i++)
			if (env->pids[i] == pid)
				break;
		if (i == PROC_COUNT)
			continue;
		env->pids[i] = 0;
		if (shutting_down)
			continue;
		parent_log_drain();
		parent_child_exited(i, status);
		parent_shutdown(1);
	}
}

static void
parent_child_exited(int proc, int status)
{
	if (WIFSIGNALED(status))
		log_warnx("child %s terminated by signal %d, stopping",
		    proc_name(proc), WTERMSIG(status));
	else
		log_warnx("child %s exited with status %d, stopping",
		    proc_name(proc), WEXITSTATUS(status));
}

static void
parent_shutdown(int failed)
{
	shutting_down = 1;
	startup_notify("STOPPING=1");
	parent_close_children(-1);
	parent_log_drain();
	parent_sockets_discard();
	if (env->conf != NULL) {
		unlink(env->conf->control_sock);
		unlink(env->conf->status_sock);
	}
	log_info("terminated");
	exit(failed);
}

/*
 * Close the channel of every child but keep (children exit on EOF),
 * wait for them a moment, then kill what is left.  No zombies stay
 * behind.
 */
static void
parent_close_children(int keep)
{
	int	 i, alive, tries;
	pid_t	 pid;

	shutting_down = 1;
	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++)
		if (i != keep && env->chan[i] != NULL) {
			msgchan_clear(env->chan[i]);
			env->chan[i] = NULL;
		}
	for (tries = 0; tries < 100; tries++) {
		alive = 0;
		for (i = PROC_PARENT + 1; i < PROC_COUNT; i++) {
			if (i == keep || env->pids[i] == 0)
				continue;
			pid = waitpid(env->pids[i], NULL, WNOHANG);
			if (pid == env->pids[i] || (pid == -1 &&
			    errno == ECHILD))
				env->pids[i] = 0;
			else
				alive++;
		}
		if (!alive)
			break;
		usleep(10000);
	}
	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++)
		if (i != keep && env->pids[i] != 0) {
			kill(env->pids[i], SIGKILL);
			waitpid(env->pids[i], NULL, 0);
		}
}

/*
 * Before daemon(3), while the terminal still listens: say so if no
 * syslog daemon will take the log (lines are kept trying for, and
 * counted, until one does).
 */
static void
parent_syslog_warn(void)
{
	if (log_syslog_probe() == 0)
		return;
	fprintf(stderr, "splitmxd: warning: no syslog daemon at %s (%s): log "
	    "lines are lost until one listens there; start one, or run "
	    "splitmxd -d to log to standard error\n", log_syslog_path(),
	    strerror(errno));
}

/*
 * splitmxctl stop.  Every child is told to finish within STOP_GRACE
 * seconds: the smtp process stops accepting, lets each session finish
 * the command it is in (a lookup, DATA up to its commit) and closes it
 * with 421; the queue stops handing out deliveries and waits for those
 * under way.  When all have said so (IMSG_PROC_STOPPED), or at the
 * backstop, the requesters get the report and the daemon exits 0.
 * Whatever was acknowledged is on disk by then: a 250 is only sent for
 * a message fsync'd.
 */
static void
parent_stop(struct msg *m)
{
	struct timeval	 tv = { STOP_GRACE + STOP_BACKSTOP, 0 };
	struct msg	 out;
	uint64_t	 reqid;
	uint32_t	 uid;
	int		 i;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_u32(m, &uid) == -1 ||
	    msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if (stop.nreqids < STOP_WAITERS)
		stop.reqids[stop.nreqids++] = reqid;
	if (stop.active)
		return;
	stop.active = 1;
	log_info("stop requested by uid=%u, sessions have %d s to finish",
	    uid, STOP_GRACE);
	startup_notify("STOPPING=1\nSTATUS=stopping");
	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++) {
		msg_init(&out, IMSG_PROC_STOP, 0);
		msg_add_u32(&out, STOP_GRACE);
		proc_send(i, &out);
	}
	evtimer_set(&stop.ev, parent_stop_timeout, NULL);
	evtimer_add(&stop.ev, &tv);
}

/* IMSG_PROC_STOPPED: str what the child did (may be empty). */
static void
parent_stop_done(struct msgchan *ch, struct msg *m)
{
	const char	*text;

	if (msg_get_strp(m, &text) == -1 || text == NULL ||
	    msg_end(m) == -1 || !stop.active || stop.done[ch->peer])
		fatalx("bad %s from %s", imsg_name(m->type),
		    proc_name(ch->peer));
	stop.done[ch->peer] = 1;
	if (text[0] != '\0')
		stop.reports[ch->peer] = str_dup(text);
	if (++stop.ndone == PROC_COUNT - 1)
		parent_stop_end(NULL);
}

static void
parent_stop_timeout(int fd, short event, void *arg)
{
	char	 late[256] = "";
	int	 i;

	(void)fd;
	(void)event;
	(void)arg;
	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++)
		if (!stop.done[i]) {
			(void)strlcat(late, " ", sizeof(late));
			(void)strlcat(late, proc_name(i), sizeof(late));
		}
	log_warnx("stop: no answer from%s, stopping them", late);
	parent_stop_end(late);
}

/*
 * The reply to every splitmxctl stop, then the exit.  Everything that
 * a new splitmxd would need is let go before the reply (the children
 * but control and their sockets, the parent's copies of the listeners,
 * the pid file): splitmxctl stop returns when the control process
 * exits, and a start right after it must not find anything held.
 */
static void
parent_stop_end(const char *late)
{
	struct msg	 m;
	char		*text = NULL;
	size_t		 len = 0;
	FILE		*fp;
	int		 i;

	parent_close_children(PROC_CONTROL);
	conf_close_fds(env->conf);
	unlink(env->conf->control_sock);
	unlink(env->conf->status_sock);
	startup_pidfile_remove();

	if ((fp = open_memstream(&text, &len)) == NULL)
		fatal("open_memstream");
	fprintf(fp, "splitmxd stopped\n");
	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++)
		if (stop.reports[i] != NULL)
			fprintf(fp, "%s\n", stop.reports[i]);
	if (late != NULL)
		fprintf(fp, "no answer in time from:%s\n", late);
	if (fclose(fp) != 0)
		fatal("fclose");
	for (i = 0; i < stop.nreqids; i++) {
		msg_init(&m, IMSG_CTL_STOP_RESULT, 0);
		msg_add_u64(&m, stop.reqids[i]);
		msg_add_str(&m, text);
		(void)msgchan_send(env->chan[PROC_CONTROL], &m);
	}
	/* The control process answers before it sees the channel close. */
	(void)msgchan_flush(env->chan[PROC_CONTROL]);
	free(text);
	log_info("stopped");
	parent_shutdown(0);
}
