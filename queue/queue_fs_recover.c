/*
 * The queue at start: what the spool holds after a crash or a restart,
 * read back into the index (layout and commit steps: queue_fs.c).
 *
 * Recovery at start, and why it is right:
 *	- incoming/ is emptied.  Nothing in it was ever acknowledged: a
 *	  file leaves incoming/ by rename before its 250, and a 250 goes out
 *	  only after the new name was made durable by step 4.  A rename
 *	  whose old name survived a crash (incoming/ is not fsync'd at
 *	  commit) leaves a second link to a committed file: unlinking the
 *	  incoming/ name drops only that link.
 *	- free/ is emptied: files of removed messages kept for reuse.  One
 *	  got there by a rename out of queue/ after its message was done
 *	  with; if the rename did not survive, the message is back in
 *	  queue/ (delivered twice, never lost), and if only its free/ name
 *	  did, unlinking drops that.
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
#include <unistd.h>

#include "splitmx.h"
#include "queue.h"
#include "queue_fs.h"

static int	fs_clean(struct queue_fs *, int, const char *);
static int	fs_trailer(int, const struct stat *, uint64_t *);
static int	fs_load_one(struct queue_fs *, const char *,
		    struct queue_envelope **, char *, size_t);
static void	fs_set_aside(struct queue_fs *, const char *);
static int	fs_read_file(int, const char *, char **, size_t *);
static const char *fs_printable(char *, size_t, const char *);
static int	fs_list_queue(struct queue_fs *, char ***, size_t *);
static void	fs_stray(struct queue_fs *, const char *,
		    struct queue_fs_counts *);
static int	fs_recover_one(struct queue_fs *, const char *,
		    void (*)(struct queue_envelope *, void *), void *,
		    struct queue_fs_counts *);
static int	name_cmp(const void *, const void *);

/*
 * Everything in incoming/ (or free/) is from before this start: none of
 * it counts.
 */
static int
fs_clean(struct queue_fs *fs, int dir, const char *dirname)
{
	DIR		*d;
	struct dirent	*de;
	char		 pname[64];
	int		 fd, n = 0;

	if ((fd = dup(dir)) == -1)
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
		if (unlinkat(dir, de->d_name, 0) == -1) {
			log_warn("cannot remove %s/%s", dirname,
			    fs_printable(pname, sizeof(pname), de->d_name));
			continue;
		}
		n++;
	}
	if (errno != 0) {
		log_warn("readdir %s", dirname);
		closedir(d);
		return -1;
	}
	closedir(d);
	if (n > 0 && queue_fs_fsync(fs, dir) == -1)
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
	char	 id[QUEUE_IDSZ], other[QUEUE_FS_NAMESZ], pname[64];
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
	if (queue_fs_name(other, id, strcmp(name + QUEUE_IDLEN, SUF_ENV) == 0 ?
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
	if (queue_fs_pread_all(fd, buf, sizeof(buf),
	    st->st_size - TRAILER_LEN) == -1)
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
	char			 name[QUEUE_FS_NAMESZ];
	struct queue_envelope	*e;
	struct stat		 st;
	char			*buf = NULL;
	uint64_t		 off;
	size_t			 len;
	int			 fd, efd, r;

	*ep = NULL;
	if (queue_fs_name(name, id, SUF_MSG) == -1)
		return queue_fs_error(err, errsz, "bad id");
	if ((fd = openat(fs->queue, name, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return queue_fs_error(err, errsz, "message file: %s",
		    strerror(errno));
	if (fstat(fd, &st) == -1) {
		close(fd);
		return queue_fs_error(err, errsz, "message file: %s",
		    strerror(errno));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return queue_fs_error(err, errsz, "message is not a file");
	}
	if (fs_trailer(fd, &st, &off) == -1) {
		close(fd);
		return queue_fs_error(err, errsz, "message file: no envelope "
		    "trailer: %s", strerror(errno));
	}
	if (queue_fs_name(name, id, SUF_ENV) == -1) {
		close(fd);
		return queue_fs_error(err, errsz, "bad id");
	}
	if ((efd = openat(fs->queue, name, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) != -1) {
		/* Rewritten since the commit: this one is newer. */
		close(fd);
		r = fs_read_file(efd, name, &buf, &len);
		close(efd);
		if (r == -1)
			return queue_fs_error(err, errsz, "read: %s",
			    strerror(errno));
	} else if (errno != ENOENT) {
		close(fd);
		return queue_fs_error(err, errsz, "open: %s", strerror(errno));
	} else {
		len = (size_t)((uint64_t)st.st_size - TRAILER_LEN - off);
		if ((buf = malloc(len + 1)) == NULL) {
			close(fd);
			return queue_fs_error(err, errsz, "out of memory");
		}
		r = queue_fs_pread_all(fd, buf, len, (off_t)off);
		close(fd);
		if (r == -1) {
			free(buf);
			return queue_fs_error(err, errsz, "read: %s",
			    strerror(errno));
		}
		buf[len] = '\0';
	}
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		free(buf);
		return queue_fs_error(err, errsz, "out of memory");
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
		return queue_fs_error(err, errsz, "envelope of another id");
	}
	if (e->size != off) {
		queue_fs_error(err, errsz, "size %llu, message file has %llu",
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

/* The names in queue/, sorted, so that moving files disturbs no readdir. */
static int
fs_list_queue(struct queue_fs *fs, char ***namesp, size_t *np)
{
	DIR		*d;
	struct dirent	*de;
	char		**names = NULL, **tmp;
	size_t		 n = 0, cap = 0, i;
	int		 fd;

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
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp);
	*namesp = names;
	*np = n;
	return 0;
 fail:
	closedir(d);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return -1;
}

/* A name in queue/ that is neither a message nor an envelope. */
static void
fs_stray(struct queue_fs *fs, const char *name, struct queue_fs_counts *counts)
{
	char	 pname[64];

	log_warnx("event=stray file=%s/%s moved=%s/", DIR_QUEUE,
	    fs_printable(pname, sizeof(pname), name), DIR_CORRUPT);
	fs_set_aside(fs, name);
	counts->corrupt++;
}

/*
 * One name in queue/, as the argument at the top of this file says:
 * a message is loaded (or set aside), an envelope without its message
 * is the end of a removal.  1 if the directory changed.
 */
static int
fs_recover_one(struct queue_fs *fs, const char *name,
    void (*cb)(struct queue_envelope *, void *), void *arg,
    struct queue_fs_counts *counts)
{
	struct queue_envelope	*e;
	struct stat		 st;
	char			 id[QUEUE_IDSZ], other[QUEUE_FS_NAMESZ];
	char			 err[256];

	if (strlen(name) == QUEUE_IDLEN + 4) {
		memcpy(id, name, QUEUE_IDLEN);
		id[QUEUE_IDLEN] = '\0';
	} else
		id[0] = '\0';
	if (!queue_fs_id_valid(id)) {
		fs_stray(fs, name, counts);
		return 1;
	}
	if (strcmp(name + QUEUE_IDLEN, SUF_ENV) == 0) {
		/* Gone already: set aside with its message. */
		if (fstatat(fs->queue, name, &st, AT_SYMLINK_NOFOLLOW) == -1 &&
		    errno == ENOENT)
			return 0;
		/* Handled with its message, if it has one. */
		if (queue_fs_name(other, id, SUF_MSG) == 0 &&
		    fstatat(fs->queue, other, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return 0;
		if (errno != ENOENT) {
			log_warn("%s/%s", DIR_QUEUE, other);
			return 0;
		}
		log_info("id=%s event=partial-removed", id);
		if (unlinkat(fs->queue, name, 0) == -1)
			log_warn("unlink %s/%s", DIR_QUEUE, name);
		counts->partial++;
		return 1;
	}
	if (strcmp(name + QUEUE_IDLEN, SUF_MSG) != 0) {
		fs_stray(fs, name, counts);
		return 1;
	}
	/* Gone already: set aside with a corrupt envelope. */
	if (fstatat(fs->queue, name, &st, AT_SYMLINK_NOFOLLOW) == -1 &&
	    errno == ENOENT)
		return 0;
	if (fs_load_one(fs, id, &e, err, sizeof(err)) == -1) {
		log_warnx("id=%s event=corrupt reason=%s moved=%s/", id,
		    log_text(err), DIR_CORRUPT);
		fs_set_aside(fs, name);
		counts->corrupt++;
		return 1;
	}
	counts->loaded++;
	cb(e, arg);
	return 0;
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
	char	**names;
	size_t	 n, i;
	int	 r, changed = 0;

	memset(counts, 0, sizeof(*counts));
	if ((r = fs_clean(fs, fs->incoming, DIR_INCOMING)) == -1 ||
	    fs_clean(fs, fs->free, DIR_FREE) == -1)
		return -1;
	counts->incoming = (size_t)r;
	if (fs_list_queue(fs, &names, &n) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (fs_recover_one(fs, names[i], cb, arg, counts))
			changed = 1;
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (changed && (queue_fs_fsync(fs, fs->queue) == -1 ||
	    queue_fs_fsync(fs, fs->corrupt) == -1))
		return -1;
	return 0;
}
