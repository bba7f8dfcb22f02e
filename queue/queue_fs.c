/*
 * The on-disk queue: where a message and its envelope live and how a
 * commit makes them durable.  How a restart finds them again, and why
 * that is right: queue_fs_recover.c; the envelope's text:
 * queue_fs_envelope.c.
 *
 * Layout, relative to the spool (the queue process' root or cwd):
 *
 *	incoming/<id>.msg	the message, written by the smtp process (or,
 *				once milters changed it, by the filter process)
 *	incoming/<id>.new	the modified copy, for its moment before the
 *				rename over <id>.msg
 *	incoming/<id>.upd	an envelope being rewritten (scheduler)
 *	queue/<id>.msg		a committed message: the message bytes, then
 *				its envelope as of the commit, then the
 *				trailer (below)
 *	queue/<id>.env		its envelope as rewritten since, if it was
 *	free/<id>		a removed message's file, kept to be reused
 *	corrupt/		what recovery could not read, for the operator
 *
 * An id is 24 lower-case hex digits: 8 of the creation time (so that ls
 * sorts by age) and 64 random bits from arc4random (unguessable).
 *
 * A committed message file (format 2):
 *	[0, size)		the message, as the smtp process wrote it
 *	[size, end - 30)	the envelope text (queue_fs_envelope.c), its
 *				size= being that same size
 *	[end - 30, end)		the trailer "envelope=%020llu\n": the
 *				offset of the envelope, that is, size
 * Every reader of a message reads its first size bytes only (the relay
 * is told the size; bounce.c stops there).  One file per message: a
 * commit creates one inode, writes it once, fsyncs it once and renames
 * it once.  (Format 1 had a second file, queue/<id>.env, written at
 * commit; creating that inode was the dearest part of a commit.)
 *
 * Commit of a batch (queue_commit.c calls the steps in this order):
 *	1. prepare: check the message file's size against the one the smtp
 *	   process announced, append the envelope and the trailer to it;
 *	2. sync: fsync(<id>.msg), for every file of the batch at once
 *	   (queue_aio.c: in flight together, the fsyncs share the disk's
 *	   cache flushes; without AIO the writeback of every file is
 *	   started first and the fsyncs follow one another);
 *	3. publish: rename(incoming/<id>.msg, queue/<id>.msg), once its own
 *	   fsync has succeeded;
 *	4. once per batch, after its renames: fsync(queue/);
 *	5. only when that has succeeded the smtp process hears "250 queued
 *	   as <id>".
 * Batches overlap (the next one's step 2 during this one's step 4);
 * what holds is the order of the steps for each message.
 * Milters that change a message (filter process): before the commit,
 * queue_fs_incoming_rewrite() creates incoming/<id>.new and renames it
 * over incoming/<id>.msg; the filter process, which holds the original
 * open, writes the modified message into it and reports its size, and
 * the smtp process commits that size.  The commit's steps are then
 * exactly the above for the new file: step 1 checks its size, step 2
 * fsyncs it (through our own descriptor: an fsync is the inode's,
 * whoever wrote), step 3 renames it.  The rename inside incoming/ need
 * not be durable: incoming/ is emptied at start, and nothing in it was
 * acknowledged.  So the 250 still follows the fsync of exactly the
 * bytes that will be delivered, Received: header first.
 * A later change of state (scheduler) writes incoming/<id>.upd, fsyncs
 * it, renames it to queue/<id>.env and fsyncs queue/: from then on that
 * file, not the embedded copy, is the message's envelope.
 * Removal (delivered, bounced, "remove ID") unlinks queue/<id>.msg
 * first and queue/<id>.env second.
 *
 * Reuse.  Unlinking a file frees its inode and blocks, and a new
 * message then allocates others: on ext4 each free can cost a discard
 * the unlink waits for, and each allocation a scan past the inodes freed
 * in the last minutes.  So removal renames a message file of at most
 * QUEUE_FS_FREE_MAXSIZE to free/<id> instead, while fewer than
 * QUEUE_FS_FREE wait there, and a new message for the smtp process
 * takes the oldest one that is safe to reuse:
 *	- its removal is durable: an fsync of queue/ that began after the
 *	  rename has succeeded (every commit batch makes one), so a crash
 *	  cannot bring back the old name with the new message's bytes;
 *	- nobody else has it open (a write lease is granted only then):
 *	  a relay or smtp process that kept its descriptor must not read or
 *	  write the next message.  Only we can open the spool's files, so
 *	  the answer cannot change after the lease is let go;
 *	- it reads as zeros: fallocate(FALLOC_FL_ZERO_RANGE) turns its
 *	  blocks into unwritten extents, without freeing them and without
 *	  writing them.  The smtp process writes the new message over them
 *	  and truncates the file to what it wrote (the commit still checks
 *	  the size); whatever it did not write reads as zeros, never as the
 *	  old message.
 * It gets the new name with RENAME_NOREPLACE (as new as O_EXCL would
 * make it).  Where any of this fails (a file system without the zeroing
 * stops reuse for good), the file is unlinked and a new one created.
 * free/ is emptied at start, like incoming/.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "splitmx.h"
#include "queue.h"
#include "queue_fs.h"

static int	fs_reuse(struct queue_fs *, const char *);
static void	fs_reuse_off(struct queue_fs *, const char *);
static void	fs_pool_pop(struct queue_fs *);
static int	fs_write_all(int, const char *, size_t);
static int	fs_pwrite_all(int, const char *, size_t, off_t);
static int	fs_subdir(int, const char *, int *);

/* "<id><suffix>", from a checked id only: never a path outside. */
int
queue_fs_name(char *buf, const char *id, const char *suffix)
{
	int	 n;

	if (!queue_fs_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	n = snprintf(buf, QUEUE_FS_NAMESZ, "%s%s", id, suffix);
	if (n < 0 || n >= QUEUE_FS_NAMESZ) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
queue_fs_fsync(struct queue_fs *fs, int fd)
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

int
queue_fs_pread_all(int fd, char *buf, size_t len, off_t off)
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
	fs->root = fs->incoming = fs->queue = fs->corrupt = fs->free = -1;
	if ((fs->root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		goto fail;
	if ((fs->incoming = fs_subdir(fs->root, DIR_INCOMING, &created)) ==
	    -1 ||
	    (fs->queue = fs_subdir(fs->root, DIR_QUEUE, &created)) == -1 ||
	    (fs->corrupt = fs_subdir(fs->root, DIR_CORRUPT, &created)) == -1 ||
	    (fs->free = fs_subdir(fs->root, DIR_FREE, &created)) == -1)
		goto fail;
	if (created && queue_fs_fsync(fs, fs->root) == -1)
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
	if (fs->free != -1)
		close(fs->free);
	fs->root = fs->incoming = fs->queue = fs->corrupt = fs->free = -1;
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

/*
 * The message file for the smtp process: new (or reused, zeroed: see
 * the top), write-only, ours alone.
 */
int
queue_fs_incoming_create(struct queue_fs *fs, const char *id, int reuse)
{
	char	 name[QUEUE_FS_NAMESZ];
	int	 fd;

	if (queue_fs_name(name, id, SUF_MSG) == -1)
		return -1;
	if (reuse && ((fd = fs_reuse(fs, name)) != -1 || errno == EEXIST))
		return fd;
	return openat(fs->incoming, name, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600);
}

/*
 * The oldest file in free/ that may be reused, as incoming/<name>: -1
 * if there is none (errno EEXIST if name exists, to try another id).
 */
static int
fs_reuse(struct queue_fs *fs, const char *name)
{
	struct queue_fs_free	*f;
	struct stat		 st;
	off_t			 len;
	int			 fd;

	while (fs->pool_len > 0 && !fs->noreuse) {
		f = &fs->pool[fs->pool_head];
		if (fs->dirsynced <= f->after)
			break;			/* its removal is not durable */
		if (renameat2(fs->free, f->id, fs->incoming, name,
		    RENAME_NOREPLACE) == -1) {
			if (errno == EEXIST)
				return -1;	/* f stays for the next id */
			log_warn("rename %s/%s", DIR_FREE, f->id);
			(void)unlinkat(fs->free, f->id, 0);
			fs_pool_pop(fs);
			continue;
		}
		fs_pool_pop(fs);
		if ((fd = openat(fs->incoming, name, O_WRONLY | O_NOFOLLOW |
		    O_CLOEXEC)) == -1) {
			(void)unlinkat(fs->incoming, name, 0);
			continue;
		}
		if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
		    st.st_nlink != 1)
			goto drop;
		/* Granted only if no other descriptor has the file open. */
		if (fcntl(fd, F_SETLEASE, F_WRLCK) == -1) {
			if (errno != EAGAIN)
				fs_reuse_off(fs, "no file leases");
			goto drop;
		}
		(void)fcntl(fd, F_SETLEASE, F_UNLCK);
		len = st.st_size;
		if (st.st_blksize > 0 && len % st.st_blksize != 0)
			len += st.st_blksize - len % st.st_blksize;
		if (len > 0 && fallocate(fd, FALLOC_FL_ZERO_RANGE |
		    FALLOC_FL_KEEP_SIZE, 0, len) == -1) {
			if (errno == EOPNOTSUPP || errno == ENOSYS ||
			    errno == EINVAL)
				fs_reuse_off(fs, "cannot zero a file's blocks");
			goto drop;
		}
		fs->reused++;
		return fd;
 drop:
		close(fd);
		(void)unlinkat(fs->incoming, name, 0);
	}
	errno = 0;
	return -1;
}

/* Reuse cannot be made safe here: unlink what waits, and stop. */
static void
fs_reuse_off(struct queue_fs *fs, const char *why)
{
	struct queue_fs_free	*f;

	log_warn("queue: %s: removed files are unlinked, not reused", why);
	fs->noreuse = 1;
	while (fs->pool_len > 0) {
		f = &fs->pool[fs->pool_head];
		(void)unlinkat(fs->free, f->id, 0);
		fs_pool_pop(fs);
	}
}

/* The oldest entry of free/'s ring is gone (reused or unlinked). */
static void
fs_pool_pop(struct queue_fs *fs)
{
	fs->pool_head = (fs->pool_head + 1) % QUEUE_FS_FREE;
	fs->pool_len--;
}

int
queue_fs_incoming_remove(struct queue_fs *fs, const char *id)
{
	char	 name[QUEUE_FS_NAMESZ];

	if (queue_fs_name(name, id, SUF_MSG) == -1)
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
	char		 name[QUEUE_FS_NAMESZ], trailer[TRAILER_LEN + 1];
	struct stat	 st;
	char		*buf = NULL, *p;
	size_t		 len;
	int		 saved, n;

	memset(c, 0, sizeof(*c));
	c->msgfd = -1;
	if (strlcpy(c->id, e->id, sizeof(c->id)) >= sizeof(c->id) ||
	    queue_fs_name(name, e->id, SUF_MSG) == -1) {
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
	return queue_fs_fsync(fs, c->msgfd);
}

/* Step 3: one rename publishes message and envelope together. */
int
queue_fs_commit_publish(struct queue_fs *fs, struct queue_fs_commit *c)
{
	char	 name[QUEUE_FS_NAMESZ];

	if (queue_fs_name(name, c->id, SUF_MSG) == -1 ||
	    renameat(fs->incoming, name, fs->queue, name) == -1)
		return -1;
	c->published = 1;
	return 0;
}

/*
 * Step 4, once per batch: the new names in queue/ are durable.  Not
 * incoming/: whether the old names are still there after a crash does
 * not matter, recovery removes them (queue_fs_recover.c).
 */
int
queue_fs_sync(struct queue_fs *fs)
{
	uint64_t	 n = queue_fs_dirsync_begin(fs);

	if (queue_fs_fsync(fs, fs->queue) == -1)
		return -1;
	queue_fs_dirsync_done(fs, n);
	return 0;
}

/*
 * Every removal before an fsync of queue/ began is durable once it has
 * succeeded: the numbers say which files in free/ may be reused.
 */
uint64_t
queue_fs_dirsync_begin(struct queue_fs *fs)
{
	return ++fs->dirsyncs;
}

void
queue_fs_dirsync_done(struct queue_fs *fs, uint64_t n)
{
	if (n > fs->dirsynced)
		fs->dirsynced = n;
}

/*
 * A committed message that will not be read soon (the relay is paused,
 * the message is held) keeps no pages in the cache: they are clean
 * once synced, and the next message's data is written into them
 * rather than into pages taken anew.  Only a hint.
 */
void
queue_fs_commit_uncache(struct queue_fs_commit *c)
{
	if (c->msgfd != -1)
		(void)posix_fadvise(c->msgfd, 0, 0, POSIX_FADV_DONTNEED);
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
	char	 name[QUEUE_FS_NAMESZ];

	queue_fs_commit_done(c);
	if (c->published && queue_fs_name(name, c->id, SUF_MSG) == 0 &&
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
	char	 tmp[QUEUE_FS_NAMESZ], name[QUEUE_FS_NAMESZ];
	char	*buf = NULL;
	size_t	 len;
	int	 fd = -1, saved;

	if (queue_fs_name(tmp, e->id, SUF_UPD) == -1 ||
	    queue_fs_name(name, e->id, SUF_ENV) == -1)
		return -1;
	if (queue_fs_envelope_encode(e, &buf, &len) == -1)
		return -1;
	if ((fd = openat(fs->incoming, tmp, O_WRONLY | O_CREAT | O_TRUNC |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) == -1)
		goto fail;
	if (fs_write_all(fd, buf, len) == -1 || queue_fs_fsync(fs, fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (renameat(fs->incoming, tmp, fs->queue, name) == -1)
		goto fail;
	free(buf);
	return queue_fs_sync(fs);
 fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	(void)unlinkat(fs->incoming, tmp, 0);
	free(buf);
	errno = saved;
	return -1;
}

/* An incoming message, read-only (for the filter process). */
int
queue_fs_incoming_open(struct queue_fs *fs, const char *id)
{
	char	 name[QUEUE_FS_NAMESZ];

	if (queue_fs_name(name, id, SUF_MSG) == -1)
		return -1;
	return openat(fs->incoming, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
}

/*
 * A new, empty file that takes the incoming message's name: whoever has
 * the old one open still reads the original.  Write-only.
 */
int
queue_fs_incoming_rewrite(struct queue_fs *fs, const char *id)
{
	char	 tmp[QUEUE_FS_NAMESZ], name[QUEUE_FS_NAMESZ];
	int	 fd, saved;

	if (queue_fs_name(tmp, id, SUF_NEW) == -1 ||
	    queue_fs_name(name, id, SUF_MSG) == -1)
		return -1;
	(void)unlinkat(fs->incoming, tmp, 0);
	if ((fd = openat(fs->incoming, tmp, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) == -1)
		return -1;
	if (renameat(fs->incoming, tmp, fs->incoming, name) == -1) {
		saved = errno;
		close(fd);
		(void)unlinkat(fs->incoming, tmp, 0);
		errno = saved;
		return -1;
	}
	return fd;
}

/* The committed message, read-only (for the relay). */
int
queue_fs_message_open(struct queue_fs *fs, const char *id)
{
	char	 name[QUEUE_FS_NAMESZ];

	if (queue_fs_name(name, id, SUF_MSG) == -1)
		return -1;
	return openat(fs->queue, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
}

/*
 * The message file first: once it is gone the message is gone, and an
 * envelope left alone is removed at the next start.  Not synced: a
 * crash here brings the message back (delivered twice, never lost).
 * A file of a message of at most QUEUE_FS_FREE_MAXSIZE goes to free/
 * while there is room (see the top), the others are unlinked.
 */
int
queue_fs_message_remove(struct queue_fs *fs, const char *id, uint64_t size)
{
	struct queue_fs_free	*f;
	char			 name[QUEUE_FS_NAMESZ];
	int			 kept = 0;

	if (queue_fs_name(name, id, SUF_MSG) == -1)
		return -1;
	if (!fs->noreuse && fs->pool_len < QUEUE_FS_FREE &&
	    size <= QUEUE_FS_FREE_MAXSIZE) {
		f = &fs->pool[(fs->pool_head + fs->pool_len) % QUEUE_FS_FREE];
		if (strlcpy(f->id, id, sizeof(f->id)) < sizeof(f->id) &&
		    renameat2(fs->queue, name, fs->free, f->id,
		    RENAME_NOREPLACE) == 0) {
			f->after = fs->dirsyncs;
			fs->pool_len++;
			kept = 1;
		}
	}
	if (!kept && unlinkat(fs->queue, name, 0) == -1 && errno != ENOENT)
		return -1;
	if (queue_fs_name(name, id, SUF_ENV) == -1)
		return -1;
	if (unlinkat(fs->queue, name, 0) == -1 && errno != ENOENT)
		return -1;
	return 0;
}
