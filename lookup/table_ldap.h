/*
 * Between the two halves of the LDAP table: table_ldap.c (the tables,
 * their searches and caches) and table_ldap_conn.c (the connection to
 * the first server that answers, failover and fail-back).  Include
 * after <event.h>, <ldap.h> and "lookup.h".
 */
#ifndef SMX_TABLE_LDAP_H
#define SMX_TABLE_LDAP_H

#define TL_MAXURLS	8

/* One server of the url list. */
struct tl_url {
	char		 url[SMX_HOSTSZ + 16];	/* "ldap://host:port" */
	char		 host[SMX_HOSTSZ];
	uint16_t	 port;
	int		 ldaps;
};

enum tl_state {
	TL_IDLE,		/* no connection, none being made */
	TL_RESOLVING,
	TL_CONNECTING,
	TL_STARTTLS,
	TL_BINDING,
	TL_READY,
	TL_DOWN			/* every server failed: waiting to retry */
};

struct tl_conn;
struct tl_tls;
struct tl_resolve;

/* A search, waiting for the connection or sent on it. */
struct tl_op {
	TAILQ_ENTRY(tl_op)	 entry;
	struct tl_conn		*conn;
	struct table_ldap	*tl;
	struct table_query	*q;
	int			 msgid;		/* -1: not sent yet */
	time_t			 sent;
	struct event		 timer;
	int			 nentries;
	char			 dn[2][200];
	char			 target[SMX_ADDRSZ];
	int			 has_target;	/* the attribute was there */
	char			 bad[128];	/* why the entry is unusable */
};
TAILQ_HEAD(tl_oplist, tl_op);

/*
 * One connection to the first server of the list that answers, with
 * every search of the tables that share it outstanding on it.
 */
struct tl_conn {
	int			 refs;		/* tables */
	int			 busy;		/* in one of its callbacks */
	char			 name[SMX_NAMESZ];	/* first table, logs */
	char			 urls_str[1024];
	struct tl_url		 urls[TL_MAXURLS];
	int			 nurls;
	char			 binddn[512];
	char			 bindpw[256];
	int			 starttls;
	char			 ca[PATH_MAX];
	time_t			 timeout;
	time_t			 failback;	/* 0: stay on a later server */
	int			 failingback;	/* this round is a fail-back */
	struct tl_tls		*tls;		/* NULL: no server uses TLS */

	enum tl_state		 state;
	int			 cur;		/* the server tried or in use */
	int			 fd;
	LDAP			*ld;
	uint32_t		 gen;		/* teardowns, for callbacks */
	struct event		 ev;		/* connect, then read */
	struct event		 timer;		/* a setup step; backoff */
	int			 ctlmsgid;	/* the bind or StartTLS */
	struct tl_resolve	*res;
	time_t			 last_read;
	struct tl_oplist	 waiting;
	struct tl_oplist	 sent;
	int			 down;		/* an outage, logged */
	time_t			 down_since;
	int			 backoff;
	time_t			 round;		/* when the last round began */
	char			 err[256];	/* the last server's failure */
};

/*
 * table_ldap_conn.c.  A caller inside one of the connection's
 * callbacks holds it with c->busy++ and lets go with tl_conn_release(),
 * which frees a connection whose last table closed meanwhile.
 */
struct tl_conn	*tl_conn_new(struct smx_table *, FILE *errfp);
int		 tl_conn_same(const struct tl_conn *,
		    const struct smx_table *);
void		 tl_conn_unref(struct tl_conn *);
void		 tl_conn_release(struct tl_conn *);
/* A round: every server in order, from the first. */
void		 tl_conn_start(struct tl_conn *);
/* The server in use failed: searches on it wait for a new round. */
void		 tl_conn_lost(struct tl_conn *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));

/*
 * table_ldap.c: what the connection does with the searches: send one
 * (it is on c->sent), hand it an answer, fail it (it is on no list),
 * free it.
 */
void		 tl_op_send(struct tl_op *);
void		 tl_op_message(struct tl_conn *, struct tl_op *,
		    LDAPMessage *);
void		 tl_op_unavailable(struct tl_op *, const char *);
void		 tl_op_free(struct tl_op *);
/* Log and reply texts, cut short where they do not fit. */
void		 tl_fmt(char *, size_t, const char *, ...)
		    __attribute__((__format__ (printf, 3, 4)));

#endif
