/*
 * The filter process' own structures: a session as the milters see it,
 * one milter connection per session per milter, and a message at its
 * end with what the milters asked to change; the interfaces between
 * filter.c (the process, the stages), filter_milter.c (one milter
 * conversation) and filter_message.c (the message file, its copy).
 */
#ifndef SMX_FILTER_H
#define SMX_FILTER_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/tree.h>

#include <event.h>
#include <event2/bufferevent.h>
#include <stdint.h>

#include "splitmx.h"
#include "filter_parse.h"

#define FILTER_REPLY_MAX	2048	/* a whole SMTP reply, lines joined */
#define FILTER_HEADER_MAX	(1024 * 1024)	/* a header section read */
#define FILTER_HEADERS_MAX	10000	/* header fields of one message */
#define FILTER_OUT_HIGH		(256 * 1024)	/* queued to one milter */

/* A milter connection's state. */
enum milter_state {
	M_NEW,		/* not connected */
	M_CONNECTING,	/* connect under way (ours, or the parent's) */
	M_OPTNEG,	/* OPTNEG sent, its reply due */
	M_READY,	/* negotiated: takes events */
	M_SKIP,		/* accepted for the session, or failed (on-error */
			/* accept): no more events, connection closed */
	M_DONE		/* refused the session, or failed (on-error */
			/* tempfail or reject): closed */
};

/* Where one milter is in the message stage. */
enum milter_mstep {
	MS_HEADERS,
	MS_EOH,
	MS_BODY,
	MS_EOB,		/* BODYEOB sent: modifications, then the verdict */
	MS_OVER
};

/* A header change, as a milter asked for it at the end of message. */
struct filter_mod {
	TAILQ_ENTRY(filter_mod)	 entry;
	int			 cmd;		/* SMFIR_*HEADER */
	uint32_t		 index;
	char			*name;
	char			*value;		/* as written (CR LF) */
};
TAILQ_HEAD(filter_mods, filter_mod);

/* A recipient added or deleted (FILTER_RCPT_*). */
struct filter_rcptop {
	TAILQ_ENTRY(filter_rcptop) entry;
	uint32_t		 op;
	char			*addr;		/* without <> */
	char			*args;
};
TAILQ_HEAD(filter_rcptops, filter_rcptop);

/* What one milter asked for at the end of the message (or all did). */
struct filter_changes {
	struct filter_mods	 mods;
	struct filter_rcptops	 rcptops;
	size_t			 nrcptops;
	char			*sender;	/* CHGFROM, or NULL */
	uint8_t			*body;		/* REPLBODY, as received */
	size_t			 bodylen;
	int			 replbody;
	char			 quarantine[257];
};

/* A header field of the message file: pointers into the section read. */
struct filter_header {
	const char		*name;
	size_t			 namelen;
	const char		*raw;		/* after the colon, CR LFs in */
	size_t			 rawlen;	/* without the last CR LF */
};

/* The message of the message stage. */
struct filter_message {
	char			 id[64];
	uint64_t		 size;		/* of the file */
	uint64_t		 offset;	/* the client's text starts */
	uint64_t		 reqid;		/* of the queue request out */
	int			 rewriting;	/* ... for the new copy */
	int			 fd;		/* the file, read-only */
	char			*section;	/* the header section read */
	struct filter_header	*hdrs;
	size_t			 nhdrs, caphdrs;
	uint64_t		 body;		/* where the body starts */
	int			 sep;		/* a blank line before it */
	struct filter_changes	 ch;		/* from every milter */
};

struct filter_session;

/* One milter, for one session. */
struct filter_milter {
	struct filter_session	*fs;
	char			 name[SMX_MILTER_NAMESZ];
	char			 address[SMX_MILTER_ADDRSZ];
	enum smx_milter_error	 on_error;
	time_t			 timeout;
	enum milter_state	 state;
	struct bufferevent	*bev;
	struct event		 timer;
	uint64_t		 reqid;		/* the parent's connect */
	struct milter_optneg	*neg;
	int			 wait;		/* SMFIC_* whose reply is due */
	int			 paused;	/* output full: on drain */
	int			 in_msg;	/* MAIL sent, not over */
	int			 msg_done;	/* accepted, discarded */
	enum milter_mstep	 mstep;
	size_t			 mhdr;		/* next header to send */
	uint64_t		 mbody;		/* next body octet to send */
	int			 mskip;		/* SKIP: no more BODY */
	struct filter_changes	 ch;		/* at the end of the message */
	/* The stage's answer. */
	int			 verdict;	/* FILTER_*, or -1: failed */
	char			 reply[FILTER_REPLY_MAX];
};

/* A session, with the milters of its listener in their order. */
struct filter_session {
	RB_ENTRY(filter_session) node;
	uint64_t		 id;
	struct filter_milter	*milters;
	size_t			 nmilters;
	/* Macros (SPEC §9). */
	char			 hostname[SMX_HOSTSZ];
	struct sockaddr_storage	 client;
	socklen_t		 clientlen;
	char			 client_addr[INET6_ADDRSTRLEN];
	char			 client_port[8];
	char			 daemon_addr[INET6_ADDRSTRLEN];
	char			 daemon_port[8];
	char			 helo[SMX_HOSTSZ];
	char			 tls_version[32];
	char			 cipher[64];
	char			 cipher_bits[16];
	char			 mail_addr[SMX_ADDRSZ];
	char			*mail_args;
	char			 rcpt_addr[SMX_ADDRSZ];
	char			*rcpt_args;
	char			 rcpt_mailer[16];
	char			 queue_id[64];
	/* The stage under way. */
	enum filter_stage	 stage;
	int			 busy;
	size_t			 cur;		/* the milter working on it */
	/* A refusal for the rest of the session (connect, HELO). */
	int			 refused;	/* FILTER_REJECT, _TEMPFAIL */
	char			 refusal[FILTER_REPLY_MAX];
	/* A failed milter (on-error tempfail or reject): MAIL on. */
	int			 failed;
	char			 failure[FILTER_REPLY_MAX];
	int			 discard;	/* the message is discarded */
	struct filter_message	*msg;
};

/* filter.c */
void	filter_stage_done(struct filter_milter *);
/* A milter failed: the session's on-error for it, and counters. */
void	filter_session_failed(struct filter_session *, struct filter_milter *);
void	filter_count(const struct filter_milter *, const char *);
const char *filter_macro(const struct filter_session *, const char *);
struct filter_session *filter_session_find(uint64_t);

/* filter_milter.c: one milter conversation */
void	filter_milter_init(struct filter_milter *, struct filter_session *);
/* Run the session's stage on this milter: 1 answered now, 0 later. */
int	filter_milter_run(struct filter_milter *);
/* The unix socket the parent connected (fd -1: errno). */
void	filter_milter_connected(uint64_t reqid, int fd, int error);
/* The transaction is over before its end of message. */
void	filter_milter_abort(struct filter_milter *);
/* The session is over: QUIT and close. */
void	filter_milter_close(struct filter_milter *);
void	filter_changes_init(struct filter_changes *);
void	filter_changes_clear(struct filter_changes *);
/* Moves from's changes after to's (a later milter's apply later). */
void	filter_changes_take(struct filter_changes *to,
	    struct filter_changes *from);

/* filter_message.c: the message file, its header section, its copy */
struct filter_message *filter_message_new(const char *id, uint64_t size,
	    uint64_t offset);
void	filter_message_free(struct filter_message *);
/* Reads and splits the header section: 0, or -1 (too large, I/O). */
int	filter_message_load(struct filter_message *, int fd, char *why,
	    size_t);
/* A header's value as milters get it (negotiated leading space). */
char	*filter_message_hvalue(const struct filter_header *, int leadspc);
/* Reads body octets at off: how many (at most len), or -1. */
ssize_t	filter_message_body(struct filter_message *, uint64_t off,
	    uint8_t *buf, size_t len);
/* Whether the milters' changes need a new copy of the file. */
int	filter_message_rewrites(const struct filter_message *);
/* Writes the changed message to fd; its size, or -1 (errno). */
int	filter_message_write(struct filter_message *, int fd, uint64_t *);

/* Sends IMSG_FILTER_MESSAGE_RESULT and ends the stage. */
void	filter_message_answer(struct filter_session *, int verdict,
	    const char *reply);

RB_HEAD(filter_sessions, filter_session);

#endif
