/*
 * The queue process' own structures: a message's envelope in memory and
 * on disk, and the on-disk queue of queue_fs.c.
 */
#ifndef SMX_QUEUE_H
#define SMX_QUEUE_H

#include <sys/types.h>

#include <stdint.h>
#include <time.h>

#define QUEUE_IDLEN		24	/* 8 hex digits of time, 16 random */
#define QUEUE_IDSZ		(QUEUE_IDLEN + 1)
#define QUEUE_ENV_VERSION	1
#define QUEUE_ENV_MAXSIZE	(4 * 1024 * 1024)	/* on disk */
#define QUEUE_MAXRCPT		10000	/* per message */
#define QUEUE_MAXHIST		256	/* history entries kept per message */
#define QUEUE_STRMAX		4096	/* a decoded string value */

/* A recipient's delivery state; the scheduler (issue 6) moves it on. */
enum queue_state {
	STATE_QUEUED,		/* waiting for its first attempt */
	STATE_DEFERRED,		/* failed temporarily; next_try is set */
	STATE_DELIVERED,	/* the remote said 250 */
	STATE_FAILED		/* permanent failure or expiry */
};

struct queue_rcpt {
	char		*rcpt;		/* as given in RCPT TO */
	char		*rewritten;	/* where it goes (custom target) */
	char		*dest;		/* host syntax, "" for DNS */
	char		*orcpt;		/* DSN ORCPT=, "" if none */
	char		*last_error;	/* last remote reply or failure */
	uint32_t	 class;		/* ROUTE_* */
	uint32_t	 notify;	/* F_NOTIFY_* */
	enum queue_state state;
	uint32_t	 tries;
	time_t		 next_try;
	time_t		 last_try;	/* 0: never tried */
};

/* One line of a message's history: received, routed, each attempt. */
struct queue_event {
	time_t		 when;
	char		*text;
};

/*
 * A message's envelope: everything but the message bytes.  Strings are
 * allocated and never NULL once built or decoded; an empty sender is
 * the null sender <>.
 */
struct queue_envelope {
	char			 id[QUEUE_IDSZ];
	time_t			 arrival;
	uint64_t		 size;		/* of the message file */
	char			*sender;
	char			*helo;
	char			*client;	/* address, as text */
	char			*client_host;
	char			*envid;
	uint32_t		 body;		/* BODY_* */
	uint32_t		 flags;		/* F_MSG_* */
	uint32_t		 ret;		/* RET_* */
	time_t			 warned;	/* delay DSN sent at, or 0 */
	uint32_t		 nrcpt;
	struct queue_rcpt	*rcpts;
	uint32_t		 nhist;
	struct queue_event	*hist;
};

/* The spool, as descriptors of its directories. */
struct queue_fs {
	int		 root;
	int		 incoming;	/* being written: wiped at start */
	int		 queue;		/* committed: loaded at start */
	int		 corrupt;	/* set aside for the operator */
	uint64_t	 fsyncs;	/* for the statistics */
};

/* One message between prepare and done/abort of a commit. */
struct queue_fs_commit {
	char		 id[QUEUE_IDSZ];
	int		 msgfd;
	int		 envfd;
	int		 published;	/* files renamed into queue/ */
};

/* What recovery found. */
struct queue_fs_counts {
	size_t		 loaded;
	size_t		 partial;	/* an unfinished commit or removal */
	size_t		 corrupt;	/* moved to corrupt/ */
	size_t		 incoming;	/* files removed from incoming/ */
};

/* queue_fs.c: every function returns 0 (or a count, an fd) or -1. */
int		 queue_fs_open(struct queue_fs *, const char *dir);
void		 queue_fs_close(struct queue_fs *);
void		 queue_fs_id_new(char *, size_t, time_t);
int		 queue_fs_id_valid(const char *);
int		 queue_fs_incoming_create(struct queue_fs *, const char *id);
int		 queue_fs_incoming_remove(struct queue_fs *, const char *id);
int		 queue_fs_recover(struct queue_fs *,
		    void (*)(struct queue_envelope *, void *), void *,
		    struct queue_fs_counts *);
int		 queue_fs_commit_prepare(struct queue_fs *,
		    const struct queue_envelope *, struct queue_fs_commit *);
void		 queue_fs_commit_writeback(struct queue_fs_commit *);
int		 queue_fs_commit_sync(struct queue_fs *,
		    struct queue_fs_commit *);
int		 queue_fs_commit_publish(struct queue_fs *,
		    struct queue_fs_commit *);
int		 queue_fs_sync(struct queue_fs *);
void		 queue_fs_commit_done(struct queue_fs_commit *);
void		 queue_fs_commit_abort(struct queue_fs *,
		    struct queue_fs_commit *);
int		 queue_fs_envelope_update(struct queue_fs *,
		    const struct queue_envelope *);
int		 queue_fs_message_open(struct queue_fs *, const char *id);
int		 queue_fs_message_remove(struct queue_fs *, const char *id);

/* The envelope file's text format. */
int		 queue_fs_envelope_encode(const struct queue_envelope *,
		    char **, size_t *);
int		 queue_fs_envelope_decode(const char *, size_t,
		    struct queue_envelope *, char *err, size_t errsz);
int		 queue_fs_envelope_event(struct queue_envelope *, time_t,
		    const char *);
void		 queue_fs_envelope_free(struct queue_envelope *);
const char	*queue_fs_state_name(enum queue_state);
const char	*queue_fs_class_name(uint32_t);

#endif
