/*
 * The smtp process' own structures: sessions and their transactions,
 * configuration generations with their TLS contexts and listeners, and
 * the interfaces between smtp.c (the process), smtp_session.c (one
 * session), smtp_message.c (its message data) and smtp_parse.c.
 */
#ifndef SMTP_H
#define SMTP_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/tree.h>

#include <event.h>
#include <stdint.h>
#include <tls.h>

#include "splitmx.h"

#define SMTP_ENVID_MAX		100	/* RFC 3461 §4.4 */
#define SMTP_ORCPT_MAX		500	/* RFC 3461 §4.2 */
#define SMTP_QID_MAX		64

enum smtp_state {
	STATE_BANNER,		/* waiting out the banner delay */
	STATE_CONNECTED,	/* banner sent, not greeted */
	STATE_HELO,		/* greeted, no transaction */
	STATE_MAIL,		/* MAIL accepted, no recipient yet */
	STATE_RCPT,		/* at least one recipient accepted */
	STATE_DATA,		/* reading the DATA text */
	STATE_CHUNKING		/* between BDAT chunks */
};

#define F_EHLO		0x0001	/* greeted with EHLO */
#define F_TLS		0x0002	/* TLS is up */
#define F_STARTTLS	0x0004	/* start the handshake once the 220 is out */
#define F_HANDSHAKE	0x0008	/* TLS handshake in progress */
#define F_EOF		0x0010	/* the client closed its side */
#define F_CLOSE		0x0020	/* close once the output is out */
#define F_DISCARD	0x0040	/* dropping an over-long command line */
#define F_CHUNK		0x0080	/* reading a BDAT chunk */
#define F_CHUNK_SKIP	0x0100	/* ... that goes nowhere */
#define F_CHUNK_LAST	0x0200	/* ... the last one */
#define F_CHUNK_ERROR	0x0400	/* ... and the skip reply is an error */
#define F_STOP		0x0800	/* splitmxd stops: 421 at the next command */
#define F_TRUSTED	0x1000	/* a trusted client: errors not delayed */
#define F_FILTER	0x2000	/* the filter process has the session */
#define F_FILTER_CONNECT 0x4000	/* ... its verdict on the connection due */
#define F_BANNER_DUE	0x8000	/* ... and the banner waits for it */

/* The connection policy's verdict on a session (smtp_policy.c). */
enum smtp_policy {
	POLICY_NONE,		/* not asked: trusted, or no lists */
	POLICY_PENDING,		/* asked, the banner delay runs */
	POLICY_LATE,		/* asked, the banner waits for it */
	POLICY_CLEAN,
	POLICY_REFUSED		/* 550 for every RCPT but postmaster */
};

enum smtp_wait {
	WAIT_NONE,
	WAIT_LOOKUP,		/* IMSG_LOOKUP_RCPT */
	WAIT_CREATE,		/* IMSG_QUEUE_MESSAGE_CREATE */
	WAIT_COMMIT,		/* IMSG_QUEUE_MESSAGE_COMMIT */
	WAIT_DELAY,		/* the answer to an error is held back */
	WAIT_FILTER,		/* IMSG_FILTER_* (smtp_filter.c) */
	WAIT_FILTER_LOOKUP	/* a recipient a milter added */
};

/* An accepted recipient with its route, for the commit. */
struct smtp_rcpt {
	TAILQ_ENTRY(smtp_rcpt)	 entry;
	char			*addr;		/* as given */
	char			*rewritten;
	char			*dest;
	char			*orcpt;
	uint32_t		 rclass;
	uint32_t		 tls;		/* TLSP_* of dest */
	uint32_t		 notify;
	char			*args;		/* ESMTP args, for milters */
	char			*error;		/* added, unroutable: bounced */
};

/* A recipient change a milter asked for (FILTER_RCPT_*). */
struct smtp_fop {
	uint32_t		 op;
	char			*addr;
	char			*args;
};

/* A mail transaction: MAIL to the end of the message. */
struct smtp_tx {
	char			 sender[SMX_ADDRSZ];
	uint32_t		 body;		/* BODY_* */
	uint32_t		 mflags;	/* F_MSG_* */
	uint32_t		 ret;		/* RET_* */
	char			 envid[SMTP_ENVID_MAX + 1];
	TAILQ_HEAD(, smtp_rcpt)	 rcpts;
	uint32_t		 nrcpt;
	struct smtp_rcpt	*pending;	/* being looked up */
	int			 bdat;		/* CHUNKING, not DATA */
	int			 creating;	/* CREATE asked, not answered */

	char			 id[SMTP_QID_MAX];
	int			 fd;
	int			 committed;	/* COMMIT sent: no rollback */
	char			*dbuf;
	size_t			 dlen;
	size_t			 written;	/* to the file, with header */
	size_t			 datalen;	/* octets from the client */
	int			 err;		/* TX_* */
	int			 saved_errno;

	/* The scan of the content as it streams by. */
	int			 cr;		/* the last octet was a CR */
	size_t			 linelen;	/* octets, without CR LF */
	int			 headers;	/* in the header section */
	int			 hmatch;	/* "received:" so far, -1 no */
	uint32_t		 nreceived;
	int			 midline;	/* DATA: a line half read */

	/* Milters (smtp_filter.c). */
	size_t			 received;	/* our Received: header */
	int			 filtered;	/* the filter has the message */
	int			 discard;	/* a milter discarded it */
	char			*quarantine;	/* a milter's reason to hold */
	struct smtp_fop		*fops;		/* its recipient changes */
	size_t			 nfops, fop;
};

/*
 * One client connection.  Its id is also the request id of the one
 * lookup or queue request it may have outstanding (wait).
 */
struct smtp_session {
	RB_ENTRY(smtp_session)	 entry;
	uint64_t		 id;
	struct smtp_gen		*gen;		/* the rules it started with */
	struct smtp_listen	*listen;
	int			 fd;
	struct tls		*tls;
	char			 tls_version[32];
	char			 tls_cipher[64];
	struct event		 ev;
	short			 evflags;	/* registered */
	short			 rwant, wwant, hwant;
	struct event		 tmo;
	struct event		 delay;		/* ends WAIT_DELAY */
	int64_t			 cmd_deadline;	/* usec, 0: no command begun */
	int64_t			 data_deadline;	/* usec, while data comes */
	enum smtp_state		 state;
	int			 flags;
	enum smtp_wait		 wait;
	const char		*reason;	/* why it closes */
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 addr[INET6_ADDRSTRLEN];
	char			 helo[SMX_HOSTSZ];
	uint32_t		 errors;
	uint32_t		 nmsgs;

	char			*ibuf;		/* SMTP_IBUF_SIZE */
	size_t			 ipos, ilen;
	char			*obuf;
	size_t			 opos, olen, ocap;

	struct smtp_tx		*tx;
	enum filter_stage	 fstage;	/* WAIT_FILTER: for this */
	size_t			 chunk_left;
	size_t			 chunk_size;
	char			 chunk_reply[128];

	enum smtp_policy	 policy;
	char			*policy_reply;	/* POLICY_REFUSED: "5.7.1..." */
};

/* One pki of a generation, ready to accept TLS. */
struct smtp_pki {
	TAILQ_ENTRY(smtp_pki)	 entry;
	char			 name[SMX_NAMESZ];
	struct tls_config	*cfg;
	struct tls		*ctx;
};

/* A listening socket of a generation and its accept event. */
struct smtp_listen {
	struct smtp_gen		*gen;
	struct smx_listener	*l;
	struct tls		*tls;	/* STARTTLS offered if not NULL */
	struct event		 ev;
	int			 active;	/* ev is added */
};

/*
 * A configuration as the smtp process uses it.  Sessions keep the
 * generation they started with, so a reload never changes the rules
 * under a session's feet; the generation is freed when the last session
 * that refers to it ends.
 */
struct smtp_gen {
	struct smx_conf		*conf;
	int			 refs;
	TAILQ_HEAD(, smtp_pki)	 pkis;
	struct smtp_listen	*listens;
	size_t			 nlistens;
};

/* smtp.c */
void	smtp_gen_ref(struct smtp_gen *);
void	smtp_gen_unref(struct smtp_gen *);
/* A session ended: account for it (counts, per-ip, accepting again). */
void	smtp_session_gone(const struct sockaddr_storage *);
/* Tell the queue to drop an uncommitted message file. */
void	smtp_queue_rollback(const char *);

/* smtp_session.c: one session, its I/O, replies and commands */
void	smtp_session_new(int, const struct sockaddr_storage *, socklen_t,
	    struct smtp_listen *);
struct smtp_session *smtp_session_find(uint64_t);
void	smtp_session_rcpt_result(struct smtp_session *, uint32_t verdict,
	    uint32_t code, const char *text, uint32_t rclass,
	    const char *rewritten, const char *dest, uint32_t tls);
/* Take the input that is there, answer, write: may free the session. */
void	smtp_session_run(struct smtp_session *);
void	smtp_session_timer(struct smtp_session *);
/* A message's data begins (354 or the first chunk): its deadline runs. */
void	smtp_session_data_begin(struct smtp_session *);
void	smtp_session_reply(struct smtp_session *, const char *, ...)
	    __attribute__((__format__ (printf, 2, 3)));
/* A client error: replied, counted, past the limit the session ends. */
void	smtp_session_error(struct smtp_session *, const char *, ...)
	    __attribute__((__format__ (printf, 2, 3)));
/* splitmxd stops: every session, at its next command or now. */
void	smtp_session_stop_all(int now);

/* Stop taking input; the session ends once the replies are out. */
void	smtp_session_close(struct smtp_session *, const char *);
/* After the filter's verdicts (smtp_filter.c): the normal replies. */
void	smtp_session_greeted(struct smtp_session *);
void	smtp_session_rcpt_accept(struct smtp_session *, struct smtp_rcpt *);

/* smtp_message.c: the message of a transaction, from DATA/BDAT to queue */
void	smtp_message_prepare(struct smtp_session *);	/* 1st RCPT */
void	smtp_message_create(struct smtp_session *);
/* fd is taken over (closed or kept) in every case. */
void	smtp_message_create_result(struct smtp_session *, int ok,
	    const char *id, int fd);
void	smtp_message_commit_result(struct smtp_session *, int ok,
	    const char *reply);
/* One DATA line or part of a BDAT chunk; 0 when more input is needed. */
int	smtp_message_dataline(struct smtp_session *);
int	smtp_message_chunk(struct smtp_session *);
/* Read and drop the announced chunk, then answer reply. */
void	smtp_message_chunk_skip(struct smtp_session *, int error,
	    const char *reply);
/* Drop the transaction; the queue forgets its uncommitted file. */
void	smtp_message_abort(struct smtp_session *);
/* DATA or BDAT may go on: 354, or the first chunk is read. */
void	smtp_message_start(struct smtp_session *);
/* The queue protocol's commit of the transaction. */
void	smtp_message_commit(struct smtp_session *);
void	smtp_message_free_rcpt(struct smtp_rcpt *);

/*
 * smtp_filter.c: the session's milters, through the filter process.
 * Each stage function returns 1 if the session now waits for the
 * filter's verdict (WAIT_FILTER), 0 if it goes on as without milters.
 */
void	smtp_filter_connect(struct smtp_session *);
int	smtp_filter_banner(struct smtp_session *);
int	smtp_filter_helo(struct smtp_session *);
int	smtp_filter_mail(struct smtp_session *, const char *args);
int	smtp_filter_rcpt(struct smtp_session *, struct smtp_rcpt *);
int	smtp_filter_data(struct smtp_session *);
int	smtp_filter_message(struct smtp_session *);
void	smtp_filter_abort(struct smtp_session *);
void	smtp_filter_close(struct smtp_session *);
void	smtp_filter_result(struct msg *);
void	smtp_filter_message_result(struct msg *);
void	smtp_filter_lookup_result(struct smtp_session *, uint32_t verdict,
	    uint32_t code, const char *text, uint32_t rclass,
	    const char *rewritten, const char *dest, uint32_t tls);

/*
 * smtp_policy.c: the connection policy (SPEC §10).  The connection rate
 * is checked at accept (-1: refused with 421 and closed); the DNS lists
 * are asked when a session starts, answered during the banner delay,
 * and their verdict applies at RCPT (1: refused with 550, replied).
 */
int	smtp_policy_rate(int, const struct sockaddr_storage *, const char *,
	    const struct smx_conf *);
void	smtp_policy_connect(struct smtp_session *);
/* At the end of the banner delay: 1 if the banner must wait for it. */
int	smtp_policy_banner_wait(struct smtp_session *);
void	smtp_policy_result(struct msg *);
int	smtp_policy_rcpt(struct smtp_session *, const char *);
void	smtp_policy_free(struct smtp_session *);

/* smtp_parse.c: the syntax of what clients send; every octet is hostile */
enum path_result {
	PATH_OK,
	PATH_SYNTAX,
	PATH_TOOLONG
};
int	smtp_parse_path(char **, char *, size_t, int *);
int	smtp_parse_helo(const char *);
char	*smtp_parse_param(char **, char **);
int	smtp_parse_keyword(const char *);
int	smtp_parse_xtext(const char *, size_t);
int	smtp_parse_orcpt(const char *, size_t);
/* ESMTP parameters of MAIL and RCPT: PARAM_OK or what is wrong. */
enum param_result {
	PARAM_OK,
	PARAM_SYNTAX,		/* 501 5.5.4 */
	PARAM_UNKNOWN,		/* 555 5.5.4, *badkey */
	PARAM_TWICE,		/* 501 5.5.4, *badkey */
	PARAM_BODY,		/* 501 5.5.4: not 7BIT or 8BITMIME */
	PARAM_SIZE		/* 552 5.3.4: SIZE= over the limit */
};
int	smtp_parse_mail_params(char *, size_t max, struct smtp_tx *,
	    const char **badkey);
int	smtp_parse_rcpt_params(char *, uint32_t *notify, char *orcpt,
	    size_t orcptsz, const char **badkey);

#endif
