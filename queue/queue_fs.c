/*
 * The on-disk queue: where a message and its envelope live, how a commit
 * makes them durable, and how a restart finds them again.
 *
 * Layout, relative to the spool (the queue process' root or cwd):
 *
 *	incoming/<id>.msg	the message, written by the smtp process
 *	incoming/<id>.upd	an envelope being rewritten (scheduler)
 *	queue/<id>.msg		a committed message: the message bytes, then
 *				its envelope as of the commit, then the
 *				trailer (below)
 *	queue/<id>.env		its envelope as rewritten since, if it was
 *	corrupt/		what recovery could not read, for the operator
 *
 * An id is 24 lower-case hex digits: 8 of the creation time (so that ls
 * sorts by age) and 64 random bits from arc4random (unguessable).
 *
 * A committed message file (format 2):
 *	[0, size)		the message, as the smtp process wrote it
 *	[size, end - 30)	the envelope text (below), its size= being
 *				that same size
 *	[end - 30, end)		the trailer "envelope=%020llu\n": the
 *				offset of the envelope, that is, size
 * Every reader of a message reads its first size bytes only (the relay
 * is told the size; bounce.c stops there).  One file per message: a
 * commit creates one inode, writes it once, fsyncs it once and renames
 * it once.  (Format 1 had a second file, queue/<id>.env, written at
 * commit; creating that inode was the dearest part of a commit.)
 *
 * Commit of a batch (queue.c calls the steps in this order):
 *	1. prepare: check the message file's size against the one the smtp
 *	   process announced, append the envelope and the trailer to it;
 *	2. sync: fsync(<id>.msg) (the writeback of every file of the batch
 *	   is started first, so that one flush carries most of the batch);
 *	3. publish: rename(incoming/<id>.msg, queue/<id>.msg);
 *	4. once per batch: fsync(queue/);
 *	5. only now the smtp process hears "250 queued as <id>".
 * A later change of state (scheduler) writes incoming/<id>.upd, fsyncs
 * it, renames it to queue/<id>.env and fsyncs queue/: from then on that
 * file, not the embedded copy, is the message's envelope.
 * Removal (delivered, bounced, "remove ID") unlinks queue/<id>.msg
 * first and queue/<id>.env second.
 *
 * Recovery at start, and why it is right:
 *	- incoming/ is emptied.  Nothing in it was ever acknowledged: a
 *	  file leaves incoming/ by rename before its 250, and a 250 goes out
 *	  only after the new name was made durable by step 4.  A rename
 *	  whose old name survived a crash (incoming/ is not fsync'd at
 *	  commit) leaves a second link to a committed file: unlinking the
 *	  incoming/ name drops only that link.
 *	- queue/<id>.msg: a committed message.  Its data, envelope and
 *	  trailer included, were fsync'd (step 2) before the name appeared
 *	  in queue/ (step 3), so if the name survived a crash it points at
 *	  the whole file; a file that only the smtp process wrote never
 *	  gets a name in queue/.  Its envelope is queue/<id>.env if that
 *	  exists (written, synced and renamed whole, after the commit, so
 *	  it is newer), else the embedded one.  It is read back and
 *	  checked: every key known and present once, the id that of the
 *	  file name, the size that of the trailer's offset.  Anything else
 *	  goes to corrupt/ with a log line; nothing read from disk can
 *	  crash the process.
 *	- queue/<id>.env alone: a removal that crashed between its two
 *	  unlinks (already done with: the message file went first).  An
 *	  .env is only ever made for a message already in queue/, and a
 *	  message file leaves queue/ only by removal.  Removed.
 * So after recovery the queue holds exactly the acknowledged messages
 * that were not yet removed, each complete and byte-exact, each with
 * the last envelope that was made durable.
 *
 * The envelope: one text holding all the message's recipients, so that
 * a single rename commits or updates the whole message; a message has
 * at most a few hundred recipients, so the scheduler can afford to
 * rewrite it whenever a recipient's state changes.
 * Lines are "key=value"; values escape every byte below 0x21, 0x7f and
 * '%' as %XX, so a value never holds a space, a newline or a NUL.
 *
 *	version=2			first line, always
 *	id= arrival= size= sender= helo= client= client-host= envid=
 *	body=7bit|8bitmime|binarymime	flags=smtputf8,tls
 *	ret=unset|full|hdrs		warned=<time of the delay DSN, 0>
 *	history=<time> <text>		zero or more, oldest first
 *	rcpts=<n>
 *	then n blocks, each starting with rcpt=:
 *	rcpt= rewritten= class= destination= notify= orcpt=
 *	state=queued|deferred|delivered|failed tries= next-try= last-try=
 *	last-error=
 *	end=				last line
 * Every key appears exactly once in its section (history: any number);
 * the header, rcpts= included, comes whole before the first rcpt=, and
 * within a section the order is free.  Times are Unix seconds.  A
 * reader refuses anything else: unknown keys, a missing or repeated
 * key, a count that does not match, bytes after end=.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "splitmx.h"
#include "queue.h"

#define DIR_INCOMING	"incoming"
#define DIR_QUEUE	"queue"
#define DIR_CORRUPT	"corrupt"
#define SUF_MSG		".msg"
#define SUF_ENV		".env"
#define SUF_UPD		".upd"
#define NAMESZ		(QUEUE_IDSZ + 8)
#define TRAILER_TAG	"envelope="
#define TRAILER_LEN	30	/* "envelope=" 20 digits "\n" */

struct name_flag {
	const char	*name;
	uint32_t	 flag;
};

static int	fs_name(char *, const char *, const char *);
static int	fs_fsync(struct queue_fs *, int);
static int	fs_write_all(int, const char *, size_t);
static int	fs_pwrite_all(int, const char *, size_t, off_t);
static int	fs_subdir(int, const char *, int *);
static int	fs_clean_incoming(struct queue_fs *);
static int	fs_trailer(int, const struct stat *, uint64_t *);
static int	fs_pread_all(int, char *, size_t, off_t);
static int	fs_load_one(struct queue_fs *, const char *,
		    struct queue_envelope **, char *, size_t);
static void	fs_set_aside(struct queue_fs *, const char *);
static int	fs_read_file(int, const char *, char **, size_t *);
static const char *fs_printable(char *, size_t, const char *);
static void	esc_put(FILE *, const char *);
static int	esc_get(const char *, size_t, char **);
static int	flags_parse(const char *, const struct name_flag *,
		    uint32_t *);
static void	flags_put(FILE *, const struct name_flag *, uint32_t);
static int	name_index(const char *, const char *const *, size_t);
static int	decode_line(struct queue_envelope *, const char *, size_t,
		    uint64_t *, int *, uint32_t *, char *, size_t);
static int	decode_error(char *, size_t, const char *, ...)
		    __attribute__((__format__ (printf, 3, 4)));

static const char *const	 body_names[] = {
	"7bit", "8bitmime", "binarymime"
};
static const char *const	 ret_names[] = {
	"unset", "full", "hdrs"
};
static const char *const	 class_names[] = {
	"local", "custom", "forward", "bounce", "outbound", "none"
};
static const char *const	 state_names[] = {
	"queued", "deferred", "delivered", "failed"
};
static const struct name_flag	 msg_flags[] = {
	{ "smtputf8",	F_MSG_SMTPUTF8 },
	{ "tls",	F_MSG_TLS },
	{ NULL,		0 }
};
static const struct name_flag	 notify_flags[] = {
	{ "never",	F_NOTIFY_NEVER },
	{ "success",	F_NOTIFY_SUCCESS },
	{ "failure",	F_NOTIFY_FAILURE },
	{ "delay",	F_NOTIFY_DELAY },
	{ NULL,		0 }
};

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* A value added to an enum of splitmx.h needs its name here. */
_Static_assert(NELEM(body_names) == BODY_COUNT, "body_names");
_Static_assert(NELEM(ret_names) == RET_COUNT, "ret_names");
_Static_assert(NELEM(class_names) == ROUTE_COUNT, "class_names");
_Static_assert(NELEM(state_names) == STATE_FAILED + 1, "state_names");

/*
 * Keys, by section.  The bit is the key's place in a "seen" mask: every
 * key but history must be seen exactly once.
 */
enum env_key {
	K_ID, K_ARRIVAL, K_SIZE, K_SENDER, K_HELO, K_CLIENT, K_CLIENT_HOST,
	K_ENVID, K_BODY, K_FLAGS, K_RET, K_WARNED, K_RCPTS,
	K_HEAD_END,		/* header keys above, all required */
	K_HISTORY = K_HEAD_END,
	K_RCPT, K_REWRITTEN, K_CLASS, K_DEST, K_NOTIFY, K_ORCPT, K_STATE,
	K_TRIES, K_NEXT_TRY, K_LAST_TRY, K_LAST_ERROR,
	K_END, K_VERSION, K_COUNT
};
#define HEAD_KEYS	((1U << K_HEAD_END) - 1)
#define RCPT_KEYS	(((1U << (K_LAST_ERROR + 1)) - 1) & \
			    ~((1U << K_RCPT) - 1))

static const char *const	 key_names[K_COUNT] = {
	"id", "arrival", "size", "sender", "helo", "client", "client-host",
	"envid", "body", "flags", "ret", "warned", "rcpts",
	"history",
	"rcpt", "rewritten", "class", "destination", "notify", "orcpt",
	"state", "tries", "next-try", "last-try", "last-error",
	"end", "version"
};

const char *
queue_fs_state_name(enum queue_state s)
{
	if ((size_t)s >= NELEM(state_names))
		return "unknown";
	return state_names[s];
}

const char *
queue_fs_class_name(uint32_t c)
{
	if (c >= NELEM(class_names))
		return "unknown";
	return class_names[c];
}

/* "<id><suffix>", from a checked id only: never a path outside. */
static int
fs_name(char *buf, const char *id, const char *suffix)
{
	int	 n;

	if (!queue_fs_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	n = snprintf(buf, NAMESZ, "%s%s", id, suffix);
	if (n < 0 || n >= NAMESZ) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int
fs_fsync(struct queue_fs *fs, int fd)
{
	fs->fsyncs++;
	return fsync(fd);
}

static int
fs_write_all(int fd, const char *buf, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
fs_pwrite_all(int fd, const char *buf, size_t len, off_t off)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = pwrite(fd, buf, len, off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static int
fs_pread_all(int fd, char *buf, size_t len, off_t off)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = pread(fd, buf, len, off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;	/* shorter than its own fstat */
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* Opens (creating if needed) a subdirectory; *created set if it was. */
static int
fs_subdir(int root, const char *name, int *created)
{
	int	 fd;

	if (mkdirat(root, name, 0700) == 0)
		*created = 1;
	else if (errno != EEXIST)
		return -1;
	if ((fd = openat(root, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return -1;
	return fd;
}

int
queue_fs_open(struct queue_fs *fs, const char *dir)
{
	int	 created = 0, saved;

	memset(fs, 0, sizeof(*fs));
	fs->root = fs->incoming = fs->queue = fs->corrupt = -1;
	if ((fs->root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		goto fail;
	if ((fs->incoming = fs_subdir(fs->root, DIR_INCOMING, &created)) ==
	    -1 ||
	    (fs->queue = fs_subdir(fs->root, DIR_QUEUE, &created)) == -1 ||
	    (fs->corrupt = fs_subdir(fs->root, DIR_CORRUPT, &created)) == -1)
		goto fail;
	if (created && fs_fsync(fs, fs->root) == -1)
		goto fail;
	return 0;
 fail:
	saved = errno;
	queue_fs_close(fs);
	errno = saved;
	return -1;
}

void
queue_fs_close(struct queue_fs *fs)
{
	if (fs->root != -1)
		close(fs->root);
	if (fs->incoming != -1)
		close(fs->incoming);
	if (fs->queue != -1)
		close(fs->queue);
	if (fs->corrupt != -1)
		close(fs->corrupt);
	fs->root = fs->incoming = fs->queue = fs->corrupt = -1;
}

void
queue_fs_id_new(char *buf, size_t len, time_t now)
{
	uint64_t	 r;
	int		 n;

	arc4random_buf(&r, sizeof(r));
	n = snprintf(buf, len, "%08x%016llx", (unsigned int)(uint32_t)now,
	    (unsigned long long)r);
	if (n < 0 || (size_t)n >= len)
		fatalx("queue_fs_id_new: buffer too small");
}

int
queue_fs_id_valid(const char *id)
{
	size_t	 i;

	for (i = 0; i < QUEUE_IDLEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	return id[i] == '\0';
}

/* The message file for the smtp process: new, write-only, ours alone. */
int
queue_fs_incoming_create(struct queue_fs *fs, const char *id)
{
	char	 name[NAMESZ];

	if (fs_name(name, id, SUF_MSG) == -1)
		return -1;
	return openat(fs->incoming, name, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600);
}

int
queue_fs_incoming_remove(struct queue_fs *fs, const char *id)
{
	char	 name[NAMESZ];

	if (fs_name(name, id, SUF_MSG) == -1)
		return -1;
	if (unlinkat(fs->incoming, name, 0) == -1 && errno != ENOENT)
		return -1;
	return 0;
}

/*
 * Step 1 of a commit: the message file must be what the smtp process
 * says it wrote; the envelope and the trailer are appended to it, not
 * yet synced.
 */
int
queue_fs_commit_prepare(struct queue_fs *fs, const struct queue_envelope *e,
    struct queue_fs_commit *c)
{
	char		 name[NAMESZ], trailer[TRAILER_LEN + 1];
	struct stat	 st;
	char		*buf = NULL, *p;
	size_t		 len;
	int		 saved, n;

	memset(c, 0, sizeof(*c));
	c->msgfd = -1;
	if (strlcpy(c->id, e->id, sizeof(c->id)) >= sizeof(c->id) ||
	    fs_name(name, e->id, SUF_MSG) == -1) {
		errno = EINVAL;
		return -1;
	}
	if ((c->msgfd = openat(fs->incoming, name, O_WRONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		goto fail;
	if (fstat(c->msgfd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size ||
	    e->size > (uint64_t)LLONG_MAX - QUEUE_ENV_MAXSIZE - TRAILER_LEN) {
		errno = EBADMSG;
		goto fail;
	}
	if (queue_fs_envelope_encode(e, &buf, &len) == -1)
		goto fail;
	if (len > QUEUE_ENV_MAXSIZE) {
		errno = EFBIG;
		goto fail;
	}
	n = snprintf(trailer, sizeof(trailer), TRAILER_TAG "%020llu\n",
	    (unsigned long long)e->size);
	if (n != TRAILER_LEN) {
		errno = EINVAL;
		goto fail;
	}
	if ((p = realloc(buf, len + TRAILER_LEN)) == NULL)
		goto fail;
	buf = p;
	memcpy(buf + len, trailer, TRAILER_LEN);
	len += TRAILER_LEN;
	if (fs_pwrite_all(c->msgfd, buf, len, (off_t)e->size) == -1)
		goto fail;
	free(buf);
	return 0;
 fail:
	saved = errno;
	free(buf);
	queue_fs_commit_done(c);
	errno = saved;
	return -1;
}

/*
 * Before step 2, for every message of the batch: start the writeback
 * now, so that the batch's first fsync finds the others' data on its
 * way; their fsyncs then find little left to do.  Only a hint: fsync is
 * what counts.
 */
void
queue_fs_commit_writeback(struct queue_fs_commit *c)
{
	(void)sync_file_range(c->msgfd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

/* Step 2: the file's data, envelope and size on stable storage. */
int
queue_fs_commit_sync(struct queue_fs *fs, struct queue_fs_commit *c)
{
	return fs_fsync(fs, c->msgfd);
}

/* Step 3: one rename publishes message and envelope together. */
int
queue_fs_commit_publish(struct queue_fs *fs, struct queue_fs_commit *c)
{
	char	 name[NAMESZ];

	if (fs_name(name, c->id, SUF_MSG) == -1 ||
	    renameat(fs->incoming, name, fs->queue, name) == -1)
		return -1;
	c->published = 1;
	return 0;
}

/*
 * Step 4, once per batch: the new names in queue/ are durable.  Not
 * incoming/: whether the old names are still there after a crash does
 * not matter, recovery removes them (see the top of this file).
 */
int
queue_fs_sync(struct queue_fs *fs)
{
	return fs_fsync(fs, fs->queue);
}

void
queue_fs_commit_done(struct queue_fs_commit *c)
{
	if (c->msgfd != -1)
		close(c->msgfd);
	c->msgfd = -1;
}

/* Undo a commit wherever it stopped. */
void
queue_fs_commit_abort(struct queue_fs *fs, struct queue_fs_commit *c)
{
	char	 name[NAMESZ];

	queue_fs_commit_done(c);
	if (c->published && fs_name(name, c->id, SUF_MSG) == 0 &&
	    unlinkat(fs->queue, name, 0) == -1 && errno != ENOENT)
		log_warn("unlink %s/%s", DIR_QUEUE, name);
	if (queue_fs_incoming_remove(fs, c->id) == -1)
		log_warn("unlink %s/%s", DIR_INCOMING, c->id);
	c->published = 0;
}

/*
 * A committed envelope replaced atomically: the old one or the new one
 * survives a crash, never a mix.
 */
int
queue_fs_envelope_update(struct queue_fs *fs, const struct queue_envelope *e)
{
	char	 tmp[NAMESZ], name[NAMESZ];
	char	*buf = NULL;
	size_t	 len;
	int	 fd = -1, saved;

	if (fs_name(tmp, e->id, SUF_UPD) == -1 ||
	    fs_name(name, e->id, SUF_ENV) == -1)
		return -1;
	if (queue_fs_envelope_encode(e, &buf, &len) == -1)
		return -1;
	if ((fd = openat(fs->incoming, tmp, O_WRONLY | O_CREAT | O_TRUNC |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) == -1)
		goto fail;
	if (fs_write_all(fd, buf, len) == -1 || fs_fsync(fs, fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (renameat(fs->incoming, tmp, fs->queue, name) == -1)
		goto fail;
	free(buf);
	return fs_fsync(fs, fs->queue);
 fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	(void)unlinkat(fs->incoming, tmp, 0);
	free(buf);
	errno = saved;
	return -1;
}

/* The committed message, read-only (for the relay). */
int
queue_fs_message_open(struct queue_fs *fs, const char *id)
{
	char	 name[NAMESZ];

	if (fs_name(name, id, SUF_MSG) == -1)
		return -1;
	return openat(fs->queue, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
}

/*
 * The message file first: once it is gone the message is gone, and an
 * envelope left alone is removed at the next start.  Not synced: a
 * crash here brings the message back (delivered twice, never lost).
 */
int
queue_fs_message_remove(struct queue_fs *fs, const char *id)
{
	char	 name[NAMESZ];

	if (fs_name(name, id, SUF_MSG) == -1)
		return -1;
	if (unlinkat(fs->queue, name, 0) == -1 && errno != ENOENT)
		return -1;
	if (fs_name(name, id, SUF_ENV) == -1)
		return -1;
	if (unlinkat(fs->queue, name, 0) == -1 && errno != ENOENT)
		return -1;
	return 0;
}

/* Everything in incoming/ is from before this start: none of it counts. */
static int
fs_clean_incoming(struct queue_fs *fs)
{
	DIR		*d;
	struct dirent	*de;
	char		 pname[64];
	int		 fd, n = 0;

	if ((fd = dup(fs->incoming)) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	rewinddir(d);
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fs->incoming, de->d_name, 0) == -1) {
			log_warn("cannot remove %s/%s", DIR_INCOMING,
			    fs_printable(pname, sizeof(pname), de->d_name));
			continue;
		}
		n++;
	}
	if (errno != 0) {
		log_warn("readdir %s", DIR_INCOMING);
		closedir(d);
		return -1;
	}
	closedir(d);
	if (n > 0 && fs_fsync(fs, fs->incoming) == -1)
		return -1;
	return n;
}

/* A file name for the log: no control bytes, whatever is on disk. */
static const char *
fs_printable(char *buf, size_t len, const char *s)
{
	size_t	 i;

	for (i = 0; s[i] != '\0' && i + 1 < len; i++)
		buf[i] = (s[i] > 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

/* Moves <id>.msg and <id>.env (or a stray name) to corrupt/. */
static void
fs_set_aside(struct queue_fs *fs, const char *name)
{
	char	 id[QUEUE_IDSZ], other[NAMESZ], pname[64];
	size_t	 len = strlen(name);

	if (renameat(fs->queue, name, fs->corrupt, name) == -1 &&
	    errno != ENOENT)
		log_warn("cannot move %s to %s/", fs_printable(pname,
		    sizeof(pname), name), DIR_CORRUPT);
	if (len != QUEUE_IDLEN + 4 || (strcmp(name + QUEUE_IDLEN,
	    SUF_ENV) != 0 && strcmp(name + QUEUE_IDLEN, SUF_MSG) != 0))
		return;
	memcpy(id, name, QUEUE_IDLEN);
	id[QUEUE_IDLEN] = '\0';
	if (fs_name(other, id, strcmp(name + QUEUE_IDLEN, SUF_ENV) == 0 ?
	    SUF_MSG : SUF_ENV) == 0 &&
	    renameat(fs->queue, other, fs->corrupt, other) == -1 &&
	    errno != ENOENT)
		log_warn("cannot move %s to %s/", other, DIR_CORRUPT);
}

static int
fs_read_file(int fd, const char *name, char **bufp, size_t *lenp)
{
	struct stat	 st;
	char		*buf;
	size_t		 off = 0;
	ssize_t		 n;

	(void)name;
	if (fstat(fd, &st) == -1)
		return -1;
	if (!S_ISREG(st.st_mode) || st.st_size > QUEUE_ENV_MAXSIZE) {
		errno = EFBIG;
		return -1;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		return -1;
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	buf[off] = '\0';
	*bufp = buf;
	*lenp = off;
	return 0;
}

/*
 * The trailer of a committed message file: the offset of the envelope,
 * which is the message's size.  -1 (EBADMSG) if it is not one.
 */
static int
fs_trailer(int fd, const struct stat *st, uint64_t *off)
{
	char			 buf[TRAILER_LEN];
	unsigned long long	 v = 0;
	size_t			 i, tag = strlen(TRAILER_TAG);

	if (st->st_size < TRAILER_LEN) {
		errno = EBADMSG;
		return -1;
	}
	if (fs_pread_all(fd, buf, sizeof(buf), st->st_size - TRAILER_LEN) ==
	    -1)
		return -1;
	if (memcmp(buf, TRAILER_TAG, tag) != 0 ||
	    buf[TRAILER_LEN - 1] != '\n') {
		errno = EBADMSG;
		return -1;
	}
	for (i = tag; i < TRAILER_LEN - 1; i++) {
		if (buf[i] < '0' || buf[i] > '9') {
			errno = EBADMSG;
			return -1;
		}
		if (v > (ULLONG_MAX - 9) / 10) {
			errno = EBADMSG;
			return -1;
		}
		v = v * 10 + (unsigned long long)(buf[i] - '0');
	}
	/* The envelope lies between the message and the trailer. */
	if (v > (unsigned long long)(st->st_size - TRAILER_LEN) ||
	    (unsigned long long)(st->st_size - TRAILER_LEN) - v >
	    QUEUE_ENV_MAXSIZE) {
		errno = EBADMSG;
		return -1;
	}
	*off = v;
	return 0;
}

/*
 * One committed message: its envelope (queue/<id>.env if there is one,
 * else the one in the message file) read and checked against its file
 * name and its message file's trailer.  -1 with a reason in err.
 */
static int
fs_load_one(struct queue_fs *fs, const char *id, struct queue_envelope **ep,
    char *err, size_t errsz)
{
	char			 name[NAMESZ];
	struct queue_envelope	*e;
	struct stat		 st;
	char			*buf = NULL;
	uint64_t		 off;
	size_t			 len;
	int			 fd, efd, r;

	*ep = NULL;
	if (fs_name(name, id, SUF_MSG) == -1)
		return decode_error(err, errsz, "bad id");
	if ((fd = openat(fs->queue, name, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return decode_error(err, errsz, "message file: %s",
		    strerror(errno));
	if (fstat(fd, &st) == -1) {
		close(fd);
		return decode_error(err, errsz, "message file: %s",
		    strerror(errno));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return decode_error(err, errsz, "message is not a file");
	}
	if (fs_trailer(fd, &st, &off) == -1) {
		close(fd);
		return decode_error(err, errsz, "message file: no envelope "
		    "trailer: %s", strerror(errno));
	}
	if (fs_name(name, id, SUF_ENV) == -1) {
		close(fd);
		return decode_error(err, errsz, "bad id");
	}
	if ((efd = openat(fs->queue, name, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) != -1) {
		/* Rewritten since the commit: this one is newer. */
		close(fd);
		r = fs_read_file(efd, name, &buf, &len);
		close(efd);
		if (r == -1)
			return decode_error(err, errsz, "read: %s",
			    strerror(errno));
	} else if (errno != ENOENT) {
		close(fd);
		return decode_error(err, errsz, "open: %s", strerror(errno));
	} else {
		len = (size_t)((uint64_t)st.st_size - TRAILER_LEN - off);
		if ((buf = malloc(len + 1)) == NULL) {
			close(fd);
			return decode_error(err, errsz, "out of memory");
		}
		r = fs_pread_all(fd, buf, len, (off_t)off);
		close(fd);
		if (r == -1) {
			free(buf);
			return decode_error(err, errsz, "read: %s",
			    strerror(errno));
		}
		buf[len] = '\0';
	}
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		free(buf);
		return decode_error(err, errsz, "out of memory");
	}
	r = queue_fs_envelope_decode(buf, len, e, err, errsz);
	free(buf);
	if (r == -1) {
		free(e);
		return -1;
	}
	if (strcmp(e->id, id) != 0) {
		queue_fs_envelope_free(e);
		free(e);
		return decode_error(err, errsz, "envelope of another id");
	}
	if (e->size != off) {
		decode_error(err, errsz, "size %llu, message file has %llu",
		    (unsigned long long)e->size, (unsigned long long)off);
		queue_fs_envelope_free(e);
		free(e);
		return -1;
	}
	*ep = e;
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * At start: empty incoming/, then hand every committed message to cb
 * (which owns the envelope, allocated with malloc) in id order.  The
 * argument for why this is right is at the top of this file.
 */
int
queue_fs_recover(struct queue_fs *fs, void (*cb)(struct queue_envelope *,
    void *), void *arg, struct queue_fs_counts *counts)
{
	DIR			*d;
	struct dirent		*de;
	struct queue_envelope	*e;
	struct stat		 st;
	char			**names = NULL, **tmp;
	char			 id[QUEUE_IDSZ], other[NAMESZ], err[256];
	char			 pname[64];
	size_t			 n = 0, cap = 0, i, len;
	int			 fd, r, changed = 0;

	memset(counts, 0, sizeof(*counts));
	if ((r = fs_clean_incoming(fs)) == -1)
		return -1;
	counts->incoming = (size_t)r;

	/* The names first, so that moving files does not disturb readdir. */
	if ((fd = dup(fs->queue)) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	rewinddir(d);
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			if ((tmp = reallocarray(names, cap,
			    sizeof(*names))) == NULL)
				goto fail;
			names = tmp;
		}
		if ((names[n] = strdup(de->d_name)) == NULL)
			goto fail;
		n++;
	}
	if (errno != 0)
		goto fail;
	closedir(d);
	d = NULL;
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp);

	for (i = 0; i < n; i++) {
		len = strlen(names[i]);
		if (len == QUEUE_IDLEN + 4) {
			memcpy(id, names[i], QUEUE_IDLEN);
			id[QUEUE_IDLEN] = '\0';
		} else
			id[0] = '\0';
		if (!queue_fs_id_valid(id)) {
			log_warnx("event=stray file=%s/%s moved=%s/",
			    DIR_QUEUE, fs_printable(pname, sizeof(pname),
			    names[i]), DIR_CORRUPT);
			fs_set_aside(fs, names[i]);
			counts->corrupt++;
			changed = 1;
			continue;
		}
		if (strcmp(names[i] + QUEUE_IDLEN, SUF_ENV) == 0) {
			/* Gone already: set aside with its message. */
			if (fstatat(fs->queue, names[i], &st,
			    AT_SYMLINK_NOFOLLOW) == -1 && errno == ENOENT)
				continue;
			/* Handled with its message, if it has one. */
			if (fs_name(other, id, SUF_MSG) == 0 &&
			    fstatat(fs->queue, other, &st,
			    AT_SYMLINK_NOFOLLOW) == 0)
				continue;
			if (errno != ENOENT) {
				log_warn("%s/%s", DIR_QUEUE, other);
				continue;
			}
			log_info("id=%s event=partial-removed", id);
			if (unlinkat(fs->queue, names[i], 0) == -1)
				log_warn("unlink %s/%s", DIR_QUEUE,
				    names[i]);
			counts->partial++;
			changed = 1;
			continue;
		}
		if (strcmp(names[i] + QUEUE_IDLEN, SUF_MSG) != 0) {
			log_warnx("event=stray file=%s/%s moved=%s/",
			    DIR_QUEUE, fs_printable(pname, sizeof(pname),
			    names[i]), DIR_CORRUPT);
			fs_set_aside(fs, names[i]);
			counts->corrupt++;
			changed = 1;
			continue;
		}
		/* Gone already: set aside with a corrupt envelope. */
		if (fstatat(fs->queue, names[i], &st,
		    AT_SYMLINK_NOFOLLOW) == -1 && errno == ENOENT)
			continue;
		if (fs_load_one(fs, id, &e, err, sizeof(err)) == -1) {
			log_warnx("id=%s event=corrupt reason=\"%s\" "
			    "moved=%s/", id, err, DIR_CORRUPT);
			fs_set_aside(fs, names[i]);
			counts->corrupt++;
			changed = 1;
			continue;
		}
		counts->loaded++;
		cb(e, arg);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (changed && (fs_fsync(fs, fs->queue) == -1 ||
	    fs_fsync(fs, fs->corrupt) == -1))
		return -1;
	return 0;
 fail:
	if (d != NULL)
		closedir(d);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return -1;
}

/*
 * The text format.
 */

static void
esc_put(FILE *f, const char *s)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)s; *p; p++) {
		if (*p <= 0x20 || *p == 0x7f || *p == '%')
			fprintf(f, "%%%02X", *p);
		else
			fputc(*p, f);
	}
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes an escaped value; a raw control byte or %00 is an error. */
static int
esc_get(const char *s, size_t len, char **out)
{
	char		*buf, *q;
	size_t		 i;
	int		 hi, lo;
	unsigned char	 c;

	if (len > QUEUE_STRMAX * 3)
		return -1;
	if ((buf = malloc(len + 1)) == NULL)
		return -1;
	for (i = 0, q = buf; i < len; i++) {
		c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f)
			goto bad;
		if (c == '%') {
			if (i + 2 >= len)
				goto bad;
			if ((hi = hexval(s[i + 1])) == -1 ||
			    (lo = hexval(s[i + 2])) == -1)
				goto bad;
			c = (unsigned char)(hi << 4 | lo);
			if (c == 0)
				goto bad;
			i += 2;
		}
		*q++ = (char)c;
	}
	*q = '\0';
	if ((size_t)(q - buf) > QUEUE_STRMAX)
		goto bad;
	*out = buf;
	return 0;
 bad:
	free(buf);
	return -1;
}

static void
flags_put(FILE *f, const struct name_flag *t, uint32_t v)
{
	int	 first = 1;

	for (; t->name != NULL; t++)
		if (v & t->flag) {
			fprintf(f, "%s%s", first ? "" : ",", t->name);
			first = 0;
		}
}

static int
flags_parse(const char *s, const struct name_flag *table, uint32_t *v)
{
	const struct name_flag	*t;
	const char		*end;
	size_t			 len;

	*v = 0;
	while (*s != '\0') {
		end = strchr(s, ',');
		len = end ? (size_t)(end - s) : strlen(s);
		for (t = table; t->name != NULL; t++)
			if (strlen(t->name) == len &&
			    strncmp(t->name, s, len) == 0)
				break;
		if (t->name == NULL || (*v & t->flag))
			return -1;
		*v |= t->flag;
		if (end == NULL)
			break;
		s = end + 1;
		if (*s == '\0')
			return -1;
	}
	return 0;
}

static int
name_index(const char *s, const char *const *names, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return (int)i;
	return -1;
}

int
queue_fs_envelope_encode(const struct queue_envelope *e, char **bufp,
    size_t *lenp)
{
	const struct queue_rcpt	*r;
	FILE			*f;
	char			*buf = NULL;
	size_t			 len = 0;
	uint32_t		 i;

	if (!queue_fs_id_valid(e->id) || e->nrcpt == 0 ||
	    e->nrcpt > QUEUE_MAXRCPT || e->nhist > QUEUE_MAXHIST ||
	    e->body >= NELEM(body_names) || e->ret >= NELEM(ret_names)) {
		errno = EINVAL;
		return -1;
	}
	if ((f = open_memstream(&buf, &len)) == NULL)
		return -1;
	fprintf(f, "version=%d\nid=%s\narrival=%lld\nsize=%llu\nsender=",
	    QUEUE_ENV_VERSION, e->id, (long long)e->arrival,
	    (unsigned long long)e->size);
	esc_put(f, e->sender);
	fputs("\nhelo=", f);
	esc_put(f, e->helo);
	fputs("\nclient=", f);
	esc_put(f, e->client);
	fputs("\nclient-host=", f);
	esc_put(f, e->client_host);
	fputs("\nenvid=", f);
	esc_put(f, e->envid);
	fprintf(f, "\nbody=%s\nflags=", body_names[e->body]);
	flags_put(f, msg_flags, e->flags);
	fprintf(f, "\nret=%s\nwarned=%lld\n", ret_names[e->ret],
	    (long long)e->warned);
	for (i = 0; i < e->nhist; i++) {
		fprintf(f, "history=%lld ", (long long)e->hist[i].when);
		esc_put(f, e->hist[i].text);
		fputc('\n', f);
	}
	fprintf(f, "rcpts=%u\n", e->nrcpt);
	for (i = 0; i < e->nrcpt; i++) {
		r = &e->rcpts[i];
		if (r->class >= NELEM(class_names) ||
		    (size_t)r->state >= NELEM(state_names)) {
			fclose(f);
			free(buf);
			errno = EINVAL;
			return -1;
		}
		fputs("rcpt=", f);
		esc_put(f, r->rcpt);
		fputs("\nrewritten=", f);
		esc_put(f, r->rewritten);
		fprintf(f, "\nclass=%s\ndestination=", class_names[r->class]);
		esc_put(f, r->dest);
		fputs("\nnotify=", f);
		flags_put(f, notify_flags, r->notify);
		fputs("\norcpt=", f);
		esc_put(f, r->orcpt);
		fprintf(f, "\nstate=%s\ntries=%u\nnext-try=%lld\n"
		    "last-try=%lld\nlast-error=", state_names[r->state],
		    r->tries, (long long)r->next_try, (long long)r->last_try);
		esc_put(f, r->last_error);
		fputc('\n', f);
	}
	fputs("end=\n", f);
	if (ferror(f)) {
		fclose(f);
		free(buf);
		errno = ENOMEM;
		return -1;
	}
	if (fclose(f) != 0) {
		free(buf);
		return -1;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

static int
decode_error(char *err, size_t errsz, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	if (vsnprintf(err, errsz, fmt, ap) < 0)
		strlcpy(err, "error", errsz);
	va_end(ap);
	return -1;
}

static int
parse_time(const char *s, time_t *t)
{
	const char	*errstr;
	long long	 v;

	v = strtonum(s, 0, LLONG_MAX, &errstr);
	if (errstr != NULL)
		return -1;
	*t = (time_t)v;
	return 0;
}

/*
 * One "key=value" line (without its newline).  *seen tracks the keys
 * of the current section; *cur is the recipient being filled, or -1.
 */
static int
decode_line(struct queue_envelope *e, const char *line, size_t len,
    uint64_t *seen, int *cur, uint32_t *nrcpt_seen, char *err, size_t errsz)
{
	struct queue_rcpt	*r = NULL;
	struct queue_event	*h;
	const char		*eq, *errstr, *sp;
	char			 key[16], *v = NULL, **dst = NULL;
	size_t			 klen;
	long long		 num;
	time_t			 when;
	int			 k, i;
	uint32_t		 u;

	if ((eq = memchr(line, '=', len)) == NULL)
		return decode_error(err, errsz, "no '='");
	klen = (size_t)(eq - line);
	if (klen == 0 || klen >= sizeof(key))
		return decode_error(err, errsz, "bad key");
	memcpy(key, line, klen);
	key[klen] = '\0';
	/* The key goes into the log: only print what could be a key. */
	if (strspn(key, "abcdefghijklmnopqrstuvwxyz-") != klen)
		return decode_error(err, errsz, "bad key");
	if ((k = name_index(key, key_names, K_COUNT)) == -1)
		return decode_error(err, errsz, "unknown key %s", key);
	line = eq + 1;
	len -= klen + 1;

	if (k == K_VERSION)
		return decode_error(err, errsz, "version not first");
	if (k == K_HISTORY) {
		if (*cur != -1)
			return decode_error(err, errsz, "history after rcpt");
		if (e->nhist == QUEUE_MAXHIST)
			return decode_error(err, errsz, "too much history");
		if ((sp = memchr(line, ' ', len)) == NULL)
			return decode_error(err, errsz, "bad history");
		if ((h = reallocarray(e->hist, e->nhist + 1,
		    sizeof(*e->hist))) == NULL)
			return decode_error(err, errsz, "out of memory");
		e->hist = h;
		if ((v = strndup(line, (size_t)(sp - line))) == NULL)
			return decode_error(err, errsz, "out of memory");
		i = parse_time(v, &when);
		free(v);
		v = NULL;
		if (i == -1 || esc_get(sp + 1, len - (size_t)(sp + 1 - line),
		    &v) == -1)
			return decode_error(err, errsz, "bad history");
		e->hist[e->nhist].when = when;
		e->hist[e->nhist].text = v;
		e->nhist++;
		return 0;
	}
	if (k == K_RCPT) {
		if ((*seen & HEAD_KEYS) != HEAD_KEYS)
			return decode_error(err, errsz, "header incomplete");
		if (*cur != -1 && (*seen & RCPT_KEYS) != RCPT_KEYS)
			return decode_error(err, errsz, "recipient %d "
			    "incomplete", *cur + 1);
		if (*nrcpt_seen == e->nrcpt)
			return decode_error(err, errsz, "more than %u "
			    "recipients", e->nrcpt);
		*cur = (int)(*nrcpt_seen)++;
		*seen &= ~(uint64_t)RCPT_KEYS;
	}
	if (k >= K_RCPT && k <= K_LAST_ERROR) {
		if (*cur == -1)
			return decode_error(err, errsz, "%s before rcpt", key);
		r = &e->rcpts[*cur];
	} else if (k < K_HEAD_END && *cur != -1)
		return decode_error(err, errsz, "%s after rcpt", key);
	if (k != K_END) {
		if (*seen & (1ULL << k))
			return decode_error(err, errsz, "%s twice", key);
		*seen |= 1ULL << k;
	}

	if (esc_get(line, len, &v) == -1)
		return decode_error(err, errsz, "bad value for %s", key);

	switch (k) {
	case K_ID:
		if (!queue_fs_id_valid(v))
			goto bad;
		strlcpy(e->id, v, sizeof(e->id));
		break;
	case K_ARRIVAL:
		if (parse_time(v, &e->arrival) == -1)
			goto bad;
		break;
	case K_WARNED:
		if (parse_time(v, &e->warned) == -1)
			goto bad;
		break;
	case K_SIZE:
		num = strtonum(v, 0, LLONG_MAX, &errstr);
		if (errstr != NULL)
			goto bad;
		e->size = (uint64_t)num;
		break;
	case K_SENDER:
		dst = &e->sender;
		break;
	case K_HELO:
		dst = &e->helo;
		break;
	case K_CLIENT:
		dst = &e->client;
		break;
	case K_CLIENT_HOST:
		dst = &e->client_host;
		break;
	case K_ENVID:
		dst = &e->envid;
		break;
	case K_BODY:
		if ((i = name_index(v, body_names, NELEM(body_names))) == -1)
			goto bad;
		e->body = (uint32_t)i;
		break;
	case K_RET:
		if ((i = name_index(v, ret_names, NELEM(ret_names))) == -1)
			goto bad;
		e->ret = (uint32_t)i;
		break;
	case K_FLAGS:
		if (flags_parse(v, msg_flags, &e->flags) == -1)
			goto bad;
		break;
	case K_RCPTS:
		num = strtonum(v, 1, QUEUE_MAXRCPT, &errstr);
		if (errstr != NULL)
			goto bad;
		if ((e->rcpts = calloc((size_t)num, sizeof(*e->rcpts))) ==
		    NULL) {
			free(v);
			return decode_error(err, errsz, "out of memory");
		}
		e->nrcpt = (uint32_t)num;
		break;
	case K_RCPT:
		dst = &r->rcpt;
		break;
	case K_REWRITTEN:
		dst = &r->rewritten;
		break;
	case K_DEST:
		dst = &r->dest;
		break;
	case K_ORCPT:
		dst = &r->orcpt;
		break;
	case K_LAST_ERROR:
		dst = &r->last_error;
		break;
	case K_CLASS:
		if ((i = name_index(v, class_names, NELEM(class_names))) == -1)
			goto bad;
		r->class = (uint32_t)i;
		break;
	case K_NOTIFY:
		if (flags_parse(v, notify_flags, &u) == -1)
			goto bad;
		r->notify = u;
		break;
	case K_STATE:
		if ((i = name_index(v, state_names, NELEM(state_names))) == -1)
			goto bad;
		r->state = (enum queue_state)i;
		break;
	case K_TRIES:
		num = strtonum(v, 0, UINT32_MAX, &errstr);
		if (errstr != NULL)
			goto bad;
		r->tries = (uint32_t)num;
		break;
	case K_NEXT_TRY:
		if (parse_time(v, &r->next_try) == -1)
			goto bad;
		break;
	case K_LAST_TRY:
		if (parse_time(v, &r->last_try) == -1)
			goto bad;
		break;
	case K_END:
		if (*v != '\0')
			goto bad;
		free(v);
		if ((*seen & HEAD_KEYS) != HEAD_KEYS)
			return decode_error(err, errsz, "header incomplete");
		if (*nrcpt_seen != e->nrcpt)
			return decode_error(err, errsz, "%u of %u recipients",
			    *nrcpt_seen, e->nrcpt);
		if (*cur != -1 && (*seen & RCPT_KEYS) != RCPT_KEYS)
			return decode_error(err, errsz, "recipient %d "
			    "incomplete", *cur + 1);
		*seen |= 1ULL << K_END;
		return 0;
	}
	if (dst != NULL) {
		*dst = v;
		return 0;
	}
	free(v);
	return 0;
 bad:
	free(v);
	return decode_error(err, errsz, "bad value for %s", key);
}

/*
 * Reads an envelope back.  Strict: anything unexpected is an error with
 * a reason in err ("line 7: unknown key foo"), and e is left empty.
 */
int
queue_fs_envelope_decode(const char *buf, size_t len,
    struct queue_envelope *e, char *err, size_t errsz)
{
	const char	*p, *nl, *end = buf + len;
	char		 why[200];
	uint64_t	 seen = 0;
	uint32_t	 nrcpt_seen = 0;
	int		 cur = -1, lineno = 1;
	char		 version[32];

	memset(e, 0, sizeof(*e));
	if (snprintf(version, sizeof(version), "version=%d\n",
	    QUEUE_ENV_VERSION) < 0 || len < strlen(version) ||
	    memcmp(buf, version, strlen(version)) != 0) {
		queue_fs_envelope_free(e);
		return decode_error(err, errsz, "line 1: not a version %d "
		    "envelope", QUEUE_ENV_VERSION);
	}
	for (p = buf + strlen(version); p < end; p = nl + 1) {
		lineno++;
		if (seen & (1ULL << K_END)) {
			decode_error(why, sizeof(why), "data after end");
			goto fail;
		}
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			decode_error(why, sizeof(why), "no newline");
			goto fail;
		}
		if (decode_line(e, p, (size_t)(nl - p), &seen, &cur,
		    &nrcpt_seen, why, sizeof(why)) == -1)
			goto fail;
	}
	if (!(seen & (1ULL << K_END))) {
		decode_error(why, sizeof(why), "truncated (no end)");
		goto fail;
	}
	return 0;
 fail:
	queue_fs_envelope_free(e);
	return decode_error(err, errsz, "line %d: %s", lineno, why);
}

/* Appends to the history, dropping the oldest past the limit. */
int
queue_fs_envelope_event(struct queue_envelope *e, time_t when,
    const char *text)
{
	struct queue_event	*h;
	char			*s;

	if ((s = strdup(text)) == NULL)
		return -1;
	if (strlen(s) > QUEUE_STRMAX)
		s[QUEUE_STRMAX] = '\0';
	if (e->nhist == QUEUE_MAXHIST) {
		free(e->hist[0].text);
		memmove(&e->hist[0], &e->hist[1],
		    (QUEUE_MAXHIST - 1) * sizeof(*e->hist));
		e->nhist--;
	} else {
		if ((h = reallocarray(e->hist, e->nhist + 1,
		    sizeof(*e->hist))) == NULL) {
			free(s);
			return -1;
		}
		e->hist = h;
	}
	h = &e->hist[e->nhist++];
	h->when = when;
	h->text = s;
	return 0;
}

void
queue_fs_envelope_free(struct queue_envelope *e)
{
	uint32_t	 i;

	free(e->sender);
	free(e->helo);
	free(e->client);
	free(e->client_host);
	free(e->envid);
	if (e->rcpts != NULL)
		for (i = 0; i < e->nrcpt; i++) {
			free(e->rcpts[i].rcpt);
			free(e->rcpts[i].rewritten);
			free(e->rcpts[i].dest);
			free(e->rcpts[i].orcpt);
			free(e->rcpts[i].last_error);
		}
	free(e->rcpts);
	if (e->hist != NULL)
		for (i = 0; i < e->nhist; i++)
			free(e->hist[i].text);
	free(e->hist);
	memset(e, 0, sizeof(*e));
}
