/*
 * splitmxctl import: the export is read and parsed by a child process
 * without privileges, which sends back only what it found; splitmxctl
 * checks every field again before it believes any.
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmx.h"
#include "import.h"
#include "splitmxctl.h"

/*
 * Whom the export is read as when splitmxctl runs as root: nobody,
 * which owns no file, in the daemon's empty chroot.  Not the daemon's
 * user (it owns the queue), not the table's owner (it may write it).
 */
#define IMP_READ_USER	"nobody"

#define IMP_REC_ENTRY	1	/* IMSG_IMPORT_ENTRIES' record kinds */
#define IMP_REC_VALUE	2
#define IMP_FOREIGNSZ	256	/* of a foreign target: for its warning */
#define IMP_ERRPIECE	(64 * 1024)	/* an IMSG_IMPORT_ERRORS */
#define IMP_MAXERRTEXT	(4 * 1024 * 1024)	/* the export's messages */

/* Who the child becomes: root's import only. */
struct imp_ident {
	int	 drop;
	uid_t	 uid;
	gid_t	 gid;
};

/* What splitmxctl has received so far. */
struct imp_recv {
	struct imp_export	*ex;
	size_t			 errtext;	/* bytes of messages */
	int			 done;		/* IMSG_IMPORT_DONE seen */
	uint32_t		 status;	/* its IMP_READ_* */
};

static void	 imp_child(struct imp_export *, int, int,
		    const struct imp_ident *,
		    int (*)(void *, struct imp_export *, int), void *)
		    __attribute__((__noreturn__));
static void	 imp_child_fds(int, int);
static int	 imp_child_drop(const struct imp_ident *, FILE *);
static int	 imp_child_room(struct msgchan *, struct msg *, size_t);
static int	 imp_child_export(struct msgchan *, const struct imp_export *);
static int	 imp_child_errors(struct msgchan *, char *, size_t);
static int	 imp_recv_msg(struct imp_recv *, struct msg *);
static int	 imp_recv_entries(struct imp_recv *, struct msg *);
static int	 imp_addr_ok(const char *);

int
ctl_import_read(struct imp_export *ex, int fd,
    int (*reader)(void *, struct imp_export *, int), void *arg, FILE *err)
{
	struct imp_ident	 id;
	struct passwd		*pw;
	pid_t			 pid;
	int			 sp[2], r, status;

	memset(&id, 0, sizeof(id));
	if (geteuid() == 0) {
		/* Looked up here: there is no passwd file in the chroot. */
		if ((pw = getpwnam(IMP_READ_USER)) == NULL) {
			fprintf(err, "splitmxctl: no user %s to read the "
			    "export as\n", IMP_READ_USER);
			return IMP_READ_FAILED;
		}
		id.drop = 1;
		id.uid = pw->pw_uid;
		id.gid = pw->pw_gid;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1) {
		fprintf(err, "splitmxctl: socketpair: %s\n", strerror(errno));
		return IMP_READ_FAILED;
	}
	/* Nothing buffered twice: the child leaves with _exit(). */
	fflush(stdout);
	fflush(stderr);
	switch ((pid = fork())) {
	case -1:
		fprintf(err, "splitmxctl: fork: %s\n", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return IMP_READ_FAILED;
	case 0:
		close(sp[0]);
		imp_child(ex, sp[1], fd, &id, reader, arg);
	}
	close(sp[1]);
	r = ctl_import_receive(ex, sp[0], err);
	if (r == IMP_READ_FAILED)
		(void)kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			fprintf(err, "splitmxctl: waitpid: %s\n",
			    strerror(errno));
			return IMP_READ_FAILED;
		}
	if (r != IMP_READ_FAILED &&
	    (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		if (WIFSIGNALED(status))
			fprintf(err, "splitmxctl: the reader of the export "
			    "died of signal %d\n", WTERMSIG(status));
		else
			fprintf(err, "splitmxctl: the reader of the export "
			    "failed\n");
		r = IMP_READ_FAILED;
	}
	return r;
}

/*
 * The child: nothing of splitmxctl's but the export and the socket,
 * then no privileges, then the reader; what it found goes back as
 * IMSG_IMPORT_ENTRIES, its messages as IMSG_IMPORT_ERRORS, and the
 * end as IMSG_IMPORT_DONE.
 */
static void
imp_child(struct imp_export *ex, int s, int fd, const struct imp_ident *id,
    int (*reader)(void *, struct imp_export *, int), void *arg)
{
	struct msgchan	 ch;
	struct msg	 m;
	char		*text = NULL;
	size_t		 len = 0;
	FILE		*msgs;
	int		 r = IMP_READ_FAILED;

	imp_child_fds(s, fd);
	msgchan_init(&ch, s, -1, NULL, NULL);
	if ((msgs = open_memstream(&text, &len)) == NULL)
		_exit(1);
	if (imp_child_drop(id, msgs) == 0) {
		ex->errfp = msgs;
		r = reader(arg, ex, fd);
	}
	if (fflush(msgs) == EOF ||
	    (r == IMP_READ_OK && imp_child_export(&ch, ex) == -1) ||
	    imp_child_errors(&ch, text, len) == -1)
		_exit(1);
	msg_init(&m, IMSG_IMPORT_DONE, 0);
	msg_add_u32(&m, (uint32_t)r);
	msg_add_u64(&m, ex->errors);
	msg_add_u64(&m, ex->nents);
	msg_add_u64(&m, ex->nvals);
	if (msgchan_send(&ch, &m) == -1 || msgchan_flush(&ch) == -1)
		_exit(1);
	_exit(0);
}

/*
 * The export and the socket stay; 0-2 become /dev/null (a terminal
 * would let the reader type into the administrator's shell), every
 * other descriptor (the table's, with its lock) is closed.
 */
static void
imp_child_fds(int s, int fd)
{
	int	 keep[2], i, lo = 3, null;

	if ((null = open("/dev/null", O_RDWR)) == -1)
		_exit(1);
	for (i = 0; i < 3; i++)
		if (i != fd && i != s && dup2(null, i) == -1)
			_exit(1);
	keep[0] = s < fd ? s : fd;
	keep[1] = s < fd ? fd : s;
	for (i = 0; i < 2; i++) {
		if (keep[i] > lo && close_range((unsigned)lo,
		    (unsigned)keep[i] - 1, 0) == -1)
			_exit(1);
		if (keep[i] >= lo)
			lo = keep[i] + 1;
	}
	if (close_range((unsigned)lo, ~0U, 0) == -1)
		_exit(1);
}

/*
 * As root: the steps of smtpd/proc.c's privilege drop, in its order,
 * into SPLITMX_EMPTY as IMP_READ_USER.  Else the user's own rights.
 * Either way no new privileges and no core file or ptrace by others.
 */
static int
imp_child_drop(const struct imp_ident *id, FILE *msgs)
{
	struct rlimit	 rl;

	rl.rlim_cur = rl.rlim_max = 0;
	if (setrlimit(RLIMIT_CORE, &rl) == -1) {
		fprintf(msgs, "splitmxctl: setrlimit: %s\n", strerror(errno));
		return -1;
	}
	if (id->drop) {
		if (chroot(SPLITMX_EMPTY) == -1 || chdir("/") == -1) {
			fprintf(msgs, "splitmxctl: chroot %s: %s (splitmxd "
			    "makes it when it starts as root)\n",
			    SPLITMX_EMPTY, strerror(errno));
			return -1;
		}
		if (setgroups(1, &id->gid) == -1 ||
		    setresgid(id->gid, id->gid, id->gid) == -1 ||
		    setresuid(id->uid, id->uid, id->uid) == -1) {
			fprintf(msgs, "splitmxctl: cannot become %s: %s\n",
			    IMP_READ_USER, strerror(errno));
			return -1;
		}
		if (setuid(0) != -1 || seteuid(0) != -1) {
			fprintf(msgs, "splitmxctl: privileges could be "
			    "regained\n");
			return -1;
		}
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1) {
		fprintf(msgs, "splitmxctl: prctl: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* Room for need more bytes in m, else m goes and a new one starts. */
static int
imp_child_room(struct msgchan *ch, struct msg *m, size_t need)
{
	if (m->len + need <= MSG_MAXPAYLOAD)
		return 0;
	if (msgchan_send(ch, m) == -1 || msgchan_flush(ch) == -1)
		return -1;
	msg_init(m, IMSG_IMPORT_ENTRIES, 0);
	return 0;
}

static int
imp_child_export(struct msgchan *ch, const struct imp_export *ex)
{
	const struct imp_entry	*e;
	const struct imp_value	*v;
	struct msg		 m;
	char			 foreign[IMP_FOREIGNSZ];
	size_t			 i, j, len;

	msg_init(&m, IMSG_IMPORT_ENTRIES, 0);
	for (i = 0; i < ex->nents; i++) {
		e = &ex->ents[i];
		if (imp_child_room(ch, &m, sizeof(foreign) + 32) == -1)
			return -1;
		msg_add_u8(&m, IMP_REC_ENTRY);
		msg_add_u32(&m, e->line);
		msg_add_u32(&m, e->flags);
		msg_add_u32(&m, e->fline);
		if (e->foreign != NULL &&
		    strlcpy(foreign, e->foreign, sizeof(foreign)) >=
		    sizeof(foreign)) {
			/* Cut between UTF-8 characters, not inside one. */
			len = sizeof(foreign) - 1;
			while (len > 0 &&
			    ((unsigned char)e->foreign[len] & 0xc0) == 0x80)
				len--;
			foreign[len] = '\0';
		}
		msg_add_str(&m, e->foreign != NULL ? foreign : NULL);
		for (j = e->first; j < e->first + e->n; j++) {
			v = &ex->vals[j];
			if (imp_child_room(ch, &m, strlen(v->addr) + 32) == -1)
				return -1;
			msg_add_u8(&m, IMP_REC_VALUE);
			msg_add_str(&m, v->addr);
			msg_add_u32(&m, v->line);
			msg_add_u8(&m, v->primary);
			msg_add_u8(&m, v->target);
		}
	}
	if (m.len == 0) {
		msg_clear(&m);
		return 0;
	}
	if (msgchan_send(ch, &m) == -1 || msgchan_flush(ch) == -1)
		return -1;
	return 0;
}

/* The messages, in pieces; a NUL in them would end a string early. */
static int
imp_child_errors(struct msgchan *ch, char *text, size_t len)
{
	struct msg	 m;
	size_t		 off, n;
	char		*p, save;

	for (p = text; (p = memchr(p, '\0', (size_t)(text + len - p))) !=
	    NULL;)
		*p = '?';
	for (off = 0; off < len; off += n) {
		n = len - off > IMP_ERRPIECE ? IMP_ERRPIECE : len - off;
		save = text[off + n];
		text[off + n] = '\0';
		msg_init(&m, IMSG_IMPORT_ERRORS, 0);
		msg_add_str(&m, text + off);
		text[off + n] = save;
		if (msgchan_send(ch, &m) == -1 || msgchan_flush(ch) == -1)
			return -1;
	}
	return 0;
}

/*
 * splitmxctl's side: the messages until the child closes the socket.
 * A message out of order or a field out of range ends it: the child
 * is not trusted more than the export it read.
 */
int
ctl_import_receive(struct imp_export *ex, int s, FILE *err)
{
	struct imp_recv	 st;
	struct msgchan	 ch;
	struct msg	 m;
	struct pollfd	 pfd;
	ssize_t		 n;
	int		 r;

	memset(&st, 0, sizeof(st));
	st.ex = ex;
	msgchan_init(&ch, s, -1, NULL, NULL);
	for (;;) {
		while ((r = msgchan_get(&ch, &m)) == 1) {
			r = imp_recv_msg(&st, &m);
			msg_clear(&m);
			if (r == -1)
				goto bad;
		}
		if (r == -1)
			goto bad;
		if ((n = msgchan_read(&ch)) == 0)
			break;
		if (n > 0)
			continue;
		if (errno != EAGAIN && errno != EINTR) {
			fprintf(err, "splitmxctl: the reader of the export: "
			    "%s\n", strerror(errno));
			goto fail;
		}
		pfd.fd = s;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, -1) == -1 && errno != EINTR) {
			fprintf(err, "splitmxctl: poll: %s\n", strerror(errno));
			goto fail;
		}
	}
	msgchan_clear(&ch);
	if (!st.done) {
		fprintf(err, "splitmxctl: the reader of the export stopped "
		    "early\n");
		return IMP_READ_FAILED;
	}
	return (int)st.status;
bad:
	fprintf(err, "splitmxctl: bad message from the reader of the "
	    "export\n");
fail:
	msgchan_clear(&ch);
	return IMP_READ_FAILED;
}

static int
imp_recv_msg(struct imp_recv *st, struct msg *m)
{
	struct imp_export	*ex = st->ex;
	const char		*text;
	uint64_t		 errors, nents, nvals;
	uint32_t		 status;
	size_t			 len;

	if (st->done)
		return -1;
	switch (m->type) {
	case IMSG_IMPORT_ENTRIES:
		return imp_recv_entries(st, m);
	case IMSG_IMPORT_ERRORS:
		if (msg_get_strp(m, &text) == -1 || text == NULL ||
		    msg_end(m) == -1)
			return -1;
		len = strlen(text);
		if (st->errtext < IMP_MAXERRTEXT &&
		    st->errtext + len >= IMP_MAXERRTEXT)
			fprintf(ex->errfp, "%.*s\n%s: more messages cut\n",
			    (int)(IMP_MAXERRTEXT - st->errtext), text,
			    ex->name);
		else if (st->errtext < IMP_MAXERRTEXT)
			fputs(text, ex->errfp);
		st->errtext += len;
		return 0;
	case IMSG_IMPORT_DONE:
		if (msg_get_u32(m, &status) == -1 ||
		    msg_get_u64(m, &errors) == -1 ||
		    msg_get_u64(m, &nents) == -1 ||
		    msg_get_u64(m, &nvals) == -1 || msg_end(m) == -1)
			return -1;
		/* What was parsed arrived whole, or nothing was. */
		if (status > IMP_READ_FAILED ||
		    (status == IMP_READ_OK && (errors != 0 ||
		    nents != ex->nents || nvals != ex->nvals)) ||
		    (status != IMP_READ_OK && ex->nents != 0))
			return -1;
		ex->errors = (size_t)errors;
		st->status = status;
		st->done = 1;
		return 0;
	default:
		return -1;
	}
}

static int
imp_recv_entries(struct imp_recv *st, struct msg *m)
{
	struct imp_export	*ex = st->ex;
	const char		*s;
	uint32_t		 line, flags, fline;
	uint8_t			 kind, primary, target;

	while (m->rpos < m->len) {
		if (msg_get_u8(m, &kind) == -1)
			return -1;
		if (kind == IMP_REC_ENTRY) {
			if (msg_get_u32(m, &line) == -1 ||
			    msg_get_u32(m, &flags) == -1 ||
			    msg_get_u32(m, &fline) == -1 ||
			    msg_get_strp(m, &s) == -1)
				return -1;
			if ((flags & ~(uint32_t)(IMPE_LOCAL | IMPE_FOREIGN)) ||
			    (s != NULL) != ((flags & IMPE_FOREIGN) != 0) ||
			    (s != NULL && strlen(s) >= IMP_FOREIGNSZ))
				return -1;
			if (imp_export_entry(ex, line, flags, s, fline) == -1)
				return -1;
		} else if (kind == IMP_REC_VALUE) {
			if (msg_get_strp(m, &s) == -1 ||
			    msg_get_u32(m, &line) == -1 ||
			    msg_get_u8(m, &primary) == -1 ||
			    msg_get_u8(m, &target) == -1)
				return -1;
			if (s == NULL || !imp_addr_ok(s) || primary > 1 ||
			    target > 1 || ex->nents == 0)
				return -1;
			if (imp_export_value(ex, s, line, primary, target) ==
			    -1)
				return -1;
		} else
			return -1;
	}
	return msg_end(m);
}

/* As the reader leaves an address: the directory's syntax, lower case. */
static int
imp_addr_ok(const char *s)
{
	const char	*p;

	for (p = s; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			return 0;
	return table_file_check_addr(s, 0) == NULL;
}
