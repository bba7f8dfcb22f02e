/*
 * The queue process' own structures: a message's envelope in memory and
 * on disk, and the on-disk queue of queue_fs.c.
 */
#ifndef SMX_QUEUE_H
#define SMX_QUEUE_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/tree.h>

#include <stdint.h>
#include <time.h>

struct msg;
struct msgchan;

/* libbsd's RB_*_STATIC need a __unused that libbsd leaves undefined. */

#define QUEUE_IDLEN		24	/* 8 hex digits of time, 16 random */
#define QUEUE_IDSZ		(QUEUE_IDLEN + 1)
#define QUEUE_ENV_VERSION	2
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

/* The policy of a recipient from an envelope older than tls= */
#define QUEUE_TLS_UNKNOWN	UINT32_MAX

/*
 * Routed with a policy that asks more than opportunistic encryption
 * (dane, or one that forbids clear text): worth showing.
 */
#define QUEUE_TLS_STRICT(r)	((r)->class != ROUTE_BOUNCE && \
				    (r)->tls != QUEUE_TLS_UNKNOWN && \
				    (r)->tls >= TLSP_DANE)

struct queue_rcpt {
	char		*rcpt;		/* as given in RCPT TO */
	char		*rewritten;	/* where it goes (custom target) */
	char		*dest;		/* host syntax, "" for DNS */
	char		*orcpt;		/* DSN ORCPT=, "" if none */
	char		*last_error;	/* last remote reply or failure */
	uint32_t	 class;		/* ROUTE_* */
	uint32_t	 tls;		/* TLSP_* routed with, or UNKNOWN */
	uint32_t	 notify;	/* F_NOTIFY_* */
	enum queue_state state;
	uint32_t	 tries;
	time_t		 next_try;
	time_t		 last_try;	/* 0: never tried */
	/* The scheduler's, in memory only (never written to disk). */
	int		 sched;		/* in a batch: waiting or out */
	int		 fail;		/* FAIL_*: failed now, DSN not yet */
};
#define FAIL_NONE	0
#define FAIL_PERM	1	/* 5xx, or a local permanent failure */
#define FAIL_EXPIRED	2	/* still 4xx when the message expired */

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
	/* A milter's reason to hold it (SPEC §9), or NULL/"": not held. */
	char			*quarantine;
	uint32_t		 nrcpt;
	struct queue_rcpt	*rcpts;
	uint32_t		 nhist;
	struct queue_event	*hist;
};

/* Held by a milter: never scheduled until released. */
#define QUEUE_HELD(e)	((e)->quarantine != NULL && (e)->quarantine[0] != '\0')

/*
 * A committed message, as the queue's index holds it (queue_index.c);
 * the scheduler's part follows (scheduler.c).
 */
#define F_QM_TIMER	0x01	/* in the timer tree */
#define F_QM_REMOVE	0x02	/* remove once the deliveries are back */
#define F_QM_BOUNCED	0x04	/* messages.bounced counted */
struct sched_batch;
struct queue_msg {
	RB_ENTRY(queue_msg)	 node;
	TAILQ_ENTRY(queue_msg)	 age;		/* oldest first */
	RB_ENTRY(queue_msg)	 agenode;	/* finds a place in age */
	struct queue_envelope	*env;

	RB_ENTRY(queue_msg)	 timer;		/* by wakeup, then id */
	time_t			 wakeup;
	int			 sflags;	/* F_QM_* */
	uint32_t		 inflight;	/* batches out to the relay */
	TAILQ_HEAD(, sched_batch) batches;	/* waiting or out */
};

/*
 * Files of removed messages kept for reuse (queue_fs.c): at most
 * QUEUE_FS_FREE of them, none larger than QUEUE_FS_FREE_MAXSIZE.
 */
#define QUEUE_FS_FREE		64
#define QUEUE_FS_FREE_MAXSIZE	(1024 * 1024)
struct queue_fs_free {
	char		 id[QUEUE_IDSZ];	/* free/<id> */
	uint64_t	 after;		/* reusable once dirsync > after */
};

/* The spool, as descriptors of its directories. */
struct queue_fs {
	int		 root;
	int		 incoming;	/* being written: wiped at start */
	int		 queue;		/* committed: loaded at start */
	int		 corrupt;	/* set aside for the operator */
	int		 free;		/* removed files to reuse: wiped */
	uint64_t	 fsyncs;	/* for the statistics */
	uint64_t	 dirsyncs;	/* fsyncs of queue/ begun */
	uint64_t	 dirsynced;	/* the last of them known done */
	struct queue_fs_free pool[QUEUE_FS_FREE];	/* a ring */
	size_t		 pool_head, pool_len;
	int		 noreuse;	/* the file system cannot zero */
	uint64_t	 reused;	/* for the statistics */
};

/* One message between prepare and done/abort of a commit. */
struct queue_fs_commit {
	char		 id[QUEUE_IDSZ];
	int		 msgfd;
	int		 published;	/* renamed into queue/ */
};

/* What recovery found. */
struct queue_fs_counts {
	size_t		 loaded;
	size_t		 partial;	/* an unfinished commit or removal */
	size_t		 corrupt;	/* moved to corrupt/ */
	size_t		 incoming;	/* files removed from incoming/ */
};

/*
 * queue_fs.c (files, commits) and queue_fs_recover.c (start): every
 * function returns 0 (or a count, an fd) or -1.
 */
int		 queue_fs_open(struct queue_fs *, const char *dir);
void		 queue_fs_close(struct queue_fs *);
void		 queue_fs_id_new(char *, size_t, time_t);
int		 queue_fs_id_valid(const char *);
/* reuse: a removed message's file may be given (zeroed, see queue_fs.c) */
int		 queue_fs_incoming_create(struct queue_fs *, const char *id,
		    int reuse);
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
/* An fsync of queue/ begun (its number), and done. */
uint64_t	 queue_fs_dirsync_begin(struct queue_fs *);
void		 queue_fs_dirsync_done(struct queue_fs *, uint64_t);
void		 queue_fs_commit_uncache(struct queue_fs_commit *);
void		 queue_fs_commit_done(struct queue_fs_commit *);
void		 queue_fs_commit_abort(struct queue_fs *,
		    struct queue_fs_commit *);
int		 queue_fs_envelope_update(struct queue_fs *,
		    const struct queue_envelope *);
int		 queue_fs_message_open(struct queue_fs *, const char *id);
/* An incoming message file: read-only, or replaced by a new one. */
int		 queue_fs_incoming_open(struct queue_fs *, const char *id);
int		 queue_fs_incoming_rewrite(struct queue_fs *, const char *id);
int		 queue_fs_message_remove(struct queue_fs *, const char *id,
		    uint64_t size);

/* queue.c: the process */

/* queue_index.c: the index, for the scheduler and the bounces. */
extern struct queue_fs	 queue_spool;
/* Opens the spool, recovers it and hands every message to sched_add. */
void		 queue_index_recover(void);
void		 queue_index_stats(void);
struct queue_msg *queue_msg_find(const char *id);
struct queue_msg *queue_msg_oldest(void);	/* then TAILQ_NEXT(, age) */
size_t		 queue_msg_count(void);
/* Indexes a committed message (the index takes the envelope). */
struct queue_msg *queue_msg_add(struct queue_envelope *);
/* Off the disk and out of the index; the scheduler has let go of it. */
void		 queue_msg_remove(struct queue_msg *);

/*
 * queue_aio.c: an fsync that the event loop does not wait for; done()
 * is called from the loop with 0 or an errno.
 */
struct queue_aio {
	TAILQ_ENTRY(queue_aio)	 entry;
	void			(*done)(struct queue_aio *, int);
	void			*arg;
	int			 fd;
	int			 error;
};
int		 queue_aio_init(void);	/* before the privilege drop */
void		 queue_aio_start(void);	/* in the event loop */
int		 queue_aio_enabled(void);
void		 queue_aio_fsync(struct queue_aio *, int fd, int now);

/* queue_commit.c: IMSG_QUEUE_MESSAGE_* from the smtp process */
void		 queue_commit_init(void);
void		 queue_commit_create(struct msgchan *, struct msg *);
void		 queue_commit_message(struct msgchan *, struct msg *);
void		 queue_commit_rollback(struct msgchan *, struct msg *);
/* IMSG_QUEUE_MESSAGE_OPEN from the filter process. */
void		 queue_commit_open(struct msgchan *, struct msg *);
/* A new id and its message file in incoming/ (write-only), or -1. */
int		 queue_msg_create(char *id, size_t, int reuse);

/* queue_ctl.c: IMSG_CTL_* from the control process */
void		 queue_ctl_list(struct msgchan *, struct msg *);
void		 queue_ctl_show(struct msgchan *, struct msg *);
void		 queue_ctl_act(struct msgchan *, struct msg *);
void		 queue_ctl_pause(struct msgchan *, struct msg *);
void		 queue_ctl_release(struct msgchan *, struct msg *);

/* scheduler.c */
void		 sched_init(void);
/* A message new in the index; recovered ones are due at once. */
void		 sched_add(struct queue_msg *, int recovered);
void		 sched_result(struct msg *);
void		 sched_pause(int);
int		 sched_paused(void);
uint32_t	 sched_inflight(void);
/* Operator requests: 1 done now, 0 pending (removal while out). */
void		 sched_schedule(struct queue_msg *);
int		 sched_remove(struct queue_msg *);
/* release ID: 1 released, 0 it was not held. */
int		 sched_release(struct queue_msg *);
time_t		 sched_backoff(uint32_t tries, time_t first, time_t cap);
void		 sched_event(struct queue_envelope *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));

/*
 * bounce.c: delivery status notifications (RFC 3464).  One DSN for the
 * recipients given (indexes into the envelope) that want one, all with
 * one action; remote is the host that answered ("mx.example
 * [192.0.2.1]") or "".  The DSN is committed (fsync'd) and indexed
 * before this returns 1 with its id in dsnid; 0: nobody to tell (null
 * sender, NOTIFY); -1: it could not be written (errno), and the caller
 * must not consider those recipients dealt with.
 */
enum bounce_action {
	BOUNCE_FAILED,
	BOUNCE_DELAYED,
	BOUNCE_RELAYED		/* delivered to a server without DSN */
};
int		 bounce_create(struct queue_msg *, enum bounce_action,
		    const uint32_t *rcpts, size_t n, const char *remote,
		    char *dsnid);
/* Whether the recipient asked for a DSN of that kind (RFC 3461). */
int		 bounce_wanted(const struct queue_envelope *,
		    const struct queue_rcpt *, enum bounce_action);
/* "5.1.1" from a reply ("550 5.1.1 ...", "5.1.1 ...") or a default. */
void		 bounce_status(const char *reply, enum bounce_action,
		    int expired, char *, size_t);
/*
 * Writes the DSN's text to fd (for bounce_create and the unit test);
 * returns the BODY_* it needs, or -1.
 */
int		 bounce_write(int fd, int msgfd, const struct queue_envelope *,
		    enum bounce_action, const uint32_t *rcpts, size_t n,
		    const char *remote, const char *dsnid, time_t now);

/* queue_fs_envelope.c: the envelope file's text format. */
int		 queue_fs_envelope_encode(const struct queue_envelope *,
		    char **, size_t *);
int		 queue_fs_envelope_decode(const char *, size_t,
		    struct queue_envelope *, char *err, size_t errsz);
int		 queue_fs_envelope_event(struct queue_envelope *, time_t,
		    const char *);
void		 queue_fs_envelope_free(struct queue_envelope *);
const char	*queue_fs_state_name(enum queue_state);
const char	*queue_fs_class_name(uint32_t);
const char	*queue_fs_tls_name(uint32_t);	/* "unknown" if not recorded */

/*
 * queue_sts.c: the MTA-STS policies kept for the lookup process in the
 * spool's sts/: handed back at the start, stored when it asks.
 */
void		 queue_sts_init(void);
void		 queue_sts_store(struct msgchan *, struct msg *);

#endif
