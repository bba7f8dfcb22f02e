/*
 * What the parent needs from the system before it starts: the accounts
 * and directories the configuration names (checked by -n and at the
 * start), the directories it creates, the pid file, and the readiness
 * it tells systemd.
 */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "splitmx.h"
#include "parent.h"

#define STARTUP_PIDFILE		"splitmxd.pid"

static int	startup_check_group(const struct smx_conf *, const char *,
		    const char *, FILE *);
static int	startup_check_socket(const struct smx_conf *, const char *,
		    const char *, FILE *);
static int	startup_check_dir(const struct smx_conf *, const char *,
		    const char *, FILE *);
static int	startup_dirname(const char *, char *, size_t);
static void	startup_mkdir(const char *, mode_t, const char *);

static int	 pid_fd = -1;
static pid_t	 pid_owner;		/* the process that holds it */
static char	 pid_path[PATH_MAX];

/*
 * Everything that would stop the start and can be known without
 * starting: the user (when root: as anyone else every process runs as
 * that one), the groups of the sockets, the directories of the sockets
 * and of the spool (each must exist, or its parent must, for splitmxd
 * creates the last level), and /var/empty.  Every problem is written to
 * errfp as "FILE: message"; -1 if there was any.
 */
int
startup_check(const struct smx_conf *c, FILE *errfp)
{
	struct stat	 st;
	int		 bad = 0;

	if (geteuid() == 0 && getpwnam(c->user) == NULL) {
		fprintf(errfp, "%s: user \"%s\" does not exist (create it, "
		    "for example: adduser --system --group --home /nonexistent"
		    " --no-create-home %s)\n", c->file, c->user, c->user);
		bad = 1;
	}
	bad |= startup_check_group(c, c->control_group, "control socket",
	    errfp);
	bad |= startup_check_group(c, c->admin_group, "control admin",
	    errfp);
	bad |= startup_check_group(c, c->status_group, "status socket",
	    errfp);
	bad |= startup_check_socket(c, c->control_sock, "control socket",
	    errfp);
	bad |= startup_check_socket(c, c->status_sock, "status socket",
	    errfp);
	bad |= startup_check_dir(c, c->queue_dir, "queue", errfp);
	if (geteuid() == 0 && stat(SPLITMX_EMPTY, &st) == 0 &&
	    (!S_ISDIR(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & 022) != 0)) {
		fprintf(errfp, "%s: %s (the children's root) must be a "
		    "directory owned by root and writable by nobody else\n",
		    c->file, SPLITMX_EMPTY);
		bad = 1;
	}
	return bad ? -1 : 0;
}

static int
startup_check_group(const struct smx_conf *c, const char *group,
    const char *what, FILE *errfp)
{
	if (group[0] == '\0' || getgrnam(group) != NULL)
		return 0;
	fprintf(errfp, "%s: group \"%s\" (%s) does not exist\n", c->file,
	    group, what);
	return 1;
}

/*
 * A socket path: short enough, not something else that binding would
 * remove, in a directory that exists or that splitmxd can create.
 */
static int
startup_check_socket(const struct smx_conf *c, const char *path,
    const char *what, FILE *errfp)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	char			 dir[PATH_MAX];

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(errfp, "%s: %s \"%s\": path longer than %zu bytes\n",
		    c->file, what, path, sizeof(sun.sun_path) - 1);
		return 1;
	}
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		fprintf(errfp, "%s: %s \"%s\" exists and is not a socket\n",
		    c->file, what, path);
		return 1;
	}
	if (startup_dirname(path, dir, sizeof(dir)) == -1) {
		fprintf(errfp, "%s: %s \"%s\": bad path\n", c->file, what,
		    path);
		return 1;
	}
	return startup_check_dir(c, dir, what, errfp);
}

/* A directory that exists, or whose parent does (it is created). */
static int
startup_check_dir(const struct smx_conf *c, const char *dir,
    const char *what, FILE *errfp)
{
	struct stat	 st;
	char		 up[PATH_MAX];

	if (stat(dir, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		fprintf(errfp, "%s: %s directory \"%s\" is not a directory\n",
		    c->file, what, dir);
		return 1;
	}
	if (errno == ENOENT && startup_dirname(dir, up, sizeof(up)) == 0 &&
	    stat(up, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	fprintf(errfp, "%s: %s directory \"%s\": %s\n", c->file, what, dir,
	    errno == ENOENT ? "neither it nor its parent exists" :
	    strerror(errno));
	return 1;
}

static int
startup_dirname(const char *path, char *dir, size_t size)
{
	char	 buf[PATH_MAX];

	if (strlcpy(buf, path, sizeof(buf)) >= sizeof(buf) ||
	    strlcpy(dir, dirname(buf), size) >= size)
		return -1;
	return 0;
}

static void
startup_mkdir(const char *dir, mode_t mode, const char *what)
{
	if (mkdir(dir, mode) == 0) {
		log_info("created %s directory %s", what, dir);
		return;
	}
	if (errno != EEXIST)
		fatal("mkdir %s", dir);
}

/*
 * Create what is missing (checked by startup_check() before): the
 * directories of the sockets (root's, mode 0755: the sockets carry
 * their own group and mode), the spool (the user's, 0700) and, as root,
 * the children's empty root.
 */
void
startup_dirs(const struct smx_conf *c)
{
	struct passwd	*pw = NULL;
	struct stat	 st;
	char		 dir[PATH_MAX];

	if (geteuid() == 0) {
		if ((pw = getpwnam(c->user)) == NULL)
			fatalx("user %s does not exist", c->user);
		startup_mkdir(SPLITMX_EMPTY, 0755, "empty root");
		if (stat(SPLITMX_EMPTY, &st) == -1)
			fatal("stat %s", SPLITMX_EMPTY);
		if (st.st_uid != 0 || (st.st_mode & 022) != 0)
			fatalx("%s must be owned by root and not writable "
			    "by others", SPLITMX_EMPTY);
	}
	if (startup_dirname(c->control_sock, dir, sizeof(dir)) == 0)
		startup_mkdir(dir, 0755, "run");
	if (startup_dirname(c->status_sock, dir, sizeof(dir)) == 0)
		startup_mkdir(dir, 0755, "run");

	startup_mkdir(c->queue_dir, 0700, "spool");
	if (stat(c->queue_dir, &st) == -1)
		fatal("stat %s", c->queue_dir);
	if (!S_ISDIR(st.st_mode))
		fatalx("%s is not a directory", c->queue_dir);
	if (pw != NULL && st.st_uid != pw->pw_uid) {
		/* The mode first: root owns it still, no CAP_FOWNER needed. */
		if (chmod(c->queue_dir, 0700) == -1)
			fatal("chmod %s", c->queue_dir);
		if (chown(c->queue_dir, pw->pw_uid, pw->pw_gid) == -1)
			fatal("chown %s", c->queue_dir);
	}
}

/*
 * The pid file, beside the control socket (/run/splitmx/splitmxd.pid
 * by default), locked while splitmxd runs: a second splitmxd for the
 * same sockets stops here, before it could take them over.  The pid is
 * written once the daemon has its final one.
 */
int
startup_pidfile_lock(const struct smx_conf *c, FILE *errfp)
{
	char	 dir[PATH_MAX], buf[32];
	ssize_t	 n;
	int	 fd;

	if (startup_dirname(c->control_sock, dir, sizeof(dir)) == -1 ||
	    (size_t)snprintf(pid_path, sizeof(pid_path), "%s/%s", dir,
	    STARTUP_PIDFILE) >= sizeof(pid_path)) {
		fprintf(errfp, "%s: pid file path too long\n", c->file);
		return -1;
	}
	if ((fd = open(pid_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0644)) == -1) {
		fprintf(errfp, "%s: %s\n", pid_path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK) {
			n = pread(fd, buf, sizeof(buf) - 1, 0);
			buf[n > 0 ? n : 0] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			fprintf(errfp, "splitmxd is already running (pid %s, "
			    "%s)\n", buf[0] ? buf : "?", pid_path);
		} else
			fprintf(errfp, "%s: %s\n", pid_path, strerror(errno));
		close(fd);
		return -1;
	}
	pid_fd = fd;
	pid_owner = getpid();
	if (atexit(startup_pidfile_remove) != 0)
		fatalx("atexit");
	return 0;
}

void
startup_pidfile_write(pid_t pid)
{
	char	 buf[32];
	int	 n;

	if (pid_fd == -1)
		return;
	if (pid == getpid())
		pid_owner = pid;
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)pid);
	/* Readable by anyone whatever the umask, as pid files are. */
	if (fchmod(pid_fd, 0644) == -1 || ftruncate(pid_fd, 0) == -1 ||
	    pwrite(pid_fd, buf, (size_t)n, 0) != n)
		log_warn("%s", pid_path);
}

/*
 * daemon(3), but the pid file holds the daemon's pid before the
 * process that started it exits: whoever reads it then (a script, an
 * init system) finds the right one.
 */
void
startup_daemon(void)
{
	pid_t	 pid;
	int	 fd;

	switch ((pid = fork())) {
	case -1:
		fatal("fork");
	case 0:
		break;
	default:
		startup_pidfile_write(pid);
		_exit(0);
	}
	startup_pidfile_write(getpid());
	if (setsid() == -1)
		fatal("setsid");
	if ((fd = open("/dev/null", O_RDWR)) == -1)
		fatal("/dev/null");
	if (dup2(fd, STDIN_FILENO) == -1 || dup2(fd, STDOUT_FILENO) == -1 ||
	    dup2(fd, STDERR_FILENO) == -1)
		fatal("dup2");
	if (fd > STDERR_FILENO)
		close(fd);
}

/*
 * At the exit of the parent, however it exits; not in a child that
 * fails between fork and exec, nor in the process that started the
 * daemon.
 */
void
startup_pidfile_remove(void)
{
	if (pid_fd == -1 || getpid() != pid_owner)
		return;
	(void)unlink(pid_path);
	close(pid_fd);
	pid_fd = -1;
}

/*
 * sd_notify(3) for a Type=notify unit: READY=1, STOPPING=1
 * and STATUS= lines.  Without NOTIFY_SOCKET nothing happens.
 */
void
startup_notify(const char *fmt, ...)
{
	char	 buf[256];
	va_list	 ap;
	int	 r;

	va_start(ap, fmt);
	r = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= sizeof(buf))
		return;
	if ((r = sd_notify(0, buf)) < 0)
		log_warnx("sd_notify: %s", strerror(-r));
}
