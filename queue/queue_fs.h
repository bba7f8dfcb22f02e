/*
 * The spool's names and the helpers that queue_fs.c (commits) and
 * queue_fs_recover.c (start) share; nothing else includes this.
 */
#ifndef SMX_QUEUE_FS_H
#define SMX_QUEUE_FS_H

#define DIR_INCOMING	"incoming"
#define DIR_QUEUE	"queue"
#define DIR_CORRUPT	"corrupt"
#define DIR_FREE	"free"
#define SUF_MSG		".msg"
#define SUF_ENV		".env"
#define SUF_UPD		".upd"
#define SUF_NEW		".new"
#define QUEUE_FS_NAMESZ	(QUEUE_IDSZ + 8)
#define TRAILER_TAG	"envelope="
#define TRAILER_LEN	30	/* "envelope=" 20 digits "\n" */

/* "<id><suffix>", from a checked id only: never a path outside. */
int	queue_fs_name(char *, const char *id, const char *suffix);
/* fsync, counted for the statistics. */
int	queue_fs_fsync(struct queue_fs *, int);
/* All of len at off, or -1 (EIO if the file is shorter). */
int	queue_fs_pread_all(int, char *, size_t, off_t);
/* The reason into err, for the log; always -1 (queue_fs_envelope.c). */
int	queue_fs_error(char *err, size_t errsz, const char *fmt, ...)
	    __attribute__((__format__ (printf, 3, 4)));

#endif
