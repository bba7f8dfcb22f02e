/*
 * The relay process' own structures: deliveries (one IMSG_RELAY_DELIVER
 * each), destinations with their addresses and waiting deliveries, and
 * the SMTP client sessions, shared by relay.c (the process),
 * relay_dest.c (destinations, DNS, limits) and relay_session.c (one
 * SMTP client connection).
 */
#ifndef SMX_RELAY_H
#define SMX_RELAY_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event.h>
#include <stdint.h>
#include <tls.h>

#include "splitmx.h"

/* Limits; constants for now (configuration keywords if they must move). */
#define RELAY_MAX_SESSIONS	100	/* client sessions in all */
#define RELAY_MAX_DEST_SESSIONS	10	/* ... to one destination */
#define RELAY_MAX_DELIVERIES	1000	/* DELIVERs held at once */
#define RELAY_MAX_RCPT_TX	100	/* recipients per transaction */
#define RELAY_MAX_TX_SESSIONS	2	/* sessions reaching MAIL, per try */
#define RELAY_IDLE_TIMEOUT	5	/* seconds a spare session is kept */
#define RELAY_DNS_REFRESH	300	/* seconds addresses are reused */

/* A hostile server gets this much of our memory and no more. */
#define RELAY_REPLY_LINE_MAX	512	/* octets, CRLF included */
#define RELAY_REPLY_LINES_MAX	100	/* lines in one reply */
#define RELAY_REPLY_TEXT_MAX	1000	/* octets of a reply we keep */

/*
 * RFC 5321 §4.5.3.2 client timeouts, in seconds.  The configuration's
 * "timeout command" caps the command timeouts and "timeout data" the
 * data ones (both are also what our own server allows its clients), so
 * that the defaults give the RFC's values and a test can make a stalled
 * server fail in seconds.
 */
#define RELAY_TO_CONNECT	60	/* not in the RFC */
#define RELAY_TO_GREETING	300
#define RELAY_TO_COMMAND	300	/* EHLO, STARTTLS, RSET, QUIT */
#define RELAY_TO_MAIL		300
#define RELAY_TO_RCPT		300
#define RELAY_TO_DATA_INIT	120
#define RELAY_TO_DATA_BLOCK	180
#define RELAY_TO_DATA_END	600

struct relay_dest;
struct relay_session;

/* One recipient of a delivery. */
struct relay_rcpt {
	uint32_t	 index;		/* the queue's */
	char		*addr;
	uint32_t	 notify;	/* F_NOTIFY_* */
	char		*orcpt;		/* "" if none */
	int		 done;		/* final for this delivery */
	uint32_t	 status;	/* DELIVERY_* */
	char		*reply;		/* the last verdict's text, or NULL */
	char		 tls[32];	/* ... its TLS version, or "none" */
	char		 verified[16];	/* ... what was verified (dane...) */
	int		 here;		/* tried on the current session */
	int		 tx;		/* in the current transaction */
	int		 accepted;	/* ... and the RCPT was accepted */
};

/* One IMSG_RELAY_DELIVER until its IMSG_RELAY_RESULT. */
struct relay_msg {
	TAILQ_ENTRY(relay_msg)	 entry;		/* dest->waiting */
	uint64_t		 reqid;
	char			*msgid;
	char			*sender;
	uint32_t		 body;		/* BODY_* */
	uint32_t		 flags;		/* F_MSG_* */
	char			*envid;
	uint32_t		 ret;		/* RET_* */
	uint64_t		 size;
	char			*destination;	/* as the queue gave it */
	uint32_t		 tls;		/* TLSP_* */
	int			 fd;
	struct relay_rcpt	*rcpts;
	uint32_t		 nrcpt;

	struct relay_dest	*dest;
	struct relay_session	*session;	/* serving it, or NULL */
	int			 next_addr;	/* first address to try */
	int			 ntx;		/* sessions that reached MAIL */
	int			 reused_retry;	/* a stale reused session */
	char			 remote[SMX_HOSTSZ + 64]; /* last tried */
	char			 relay[SMX_HOSTSZ + 64];  /* ... for logs */
	char			 error[RELAY_REPLY_TEXT_MAX + 1];
};

/* An address of a destination, with the exchanger it belongs to. */
struct relay_addr {
	char			 host[SMX_HOSTSZ];
	uint32_t		 pref;
	struct sockaddr_storage	 ss;	/* port set */
	socklen_t		 sslen;
};

/* A TLSA record (RFC 6698 §2.1) of an exchanger. */
struct relay_tlsa {
	uint8_t		 usage, selector, mtype;
	uint8_t		*data;
	size_t		 len;
};

/*
 * What the lookup process found out about an exchanger for its TLS
 * policy (smtpd/tls_policy.c decides with it).
 */
struct relay_hostinfo {
	char			 host[SMX_HOSTSZ];
	struct tls_host		 th;		/* th.tlsa_error: below */
	char			 tlsa_error[256];
	struct relay_tlsa	*tlsa;
	int			 ntlsa;
};

enum relay_dns {
	DEST_DNS_NONE,
	DEST_DNS_PENDING,
	DEST_DNS_DONE
};

/*
 * Where deliveries go: a host (MX or direct, port) with a TLS policy.
 * Deliveries wait here for a session; sessions to it are reused.
 */
struct relay_dest {
	TAILQ_ENTRY(relay_dest)	 entry;
	char			 key[SMX_HOSTSZ + 32];
	struct smx_host		 host;
	enum smx_tls		 tls;
	enum relay_dns		 dns;
	uint64_t		 dns_reqid;
	time_t			 dns_time;
	struct relay_addr	*addrs;
	int			 naddrs;
	struct relay_hostinfo	*hosts;
	int			 nhosts;
	enum sts_mode		 sts;		/* the MTA-STS policy */
	char			 sts_note[256];	/* ... in words */
	TAILQ_HEAD(, relay_msg)	 waiting;
	TAILQ_HEAD(, relay_session) sessions;
	int			 nsessions;
};

#define RELAY_IBUF_SIZE		4096	/* > RELAY_REPLY_LINE_MAX */

/* A session's protocol state (relay_session.c). */
enum relay_state {
	RELAY_STATE_CONNECT,	/* connect() in progress */
	RELAY_STATE_GREETING,	/* waiting for the 220 */
	RELAY_STATE_EHLO,
	RELAY_STATE_HELO,
	RELAY_STATE_STARTTLS,
	RELAY_STATE_HANDSHAKE,	/* TLS handshake */
	RELAY_STATE_READY,	/* idle, no delivery */
	RELAY_STATE_ASSIGNED,	/* a delivery, its transaction soon */
	RELAY_STATE_TX,		/* RSET, MAIL, RCPT replies */
	RELAY_STATE_DATA,	/* waiting for the 354 */
	RELAY_STATE_BODY,	/* sending the message */
	RELAY_STATE_EOM,	/* waiting for the end-of-data reply */
	RELAY_STATE_QUIT,
	RELAY_STATE_DEAD	/* freed at the end of this event */
};

/* What the server offers (EHLO keywords). */
#define CAP_PIPELINING	0x01
#define CAP_SIZE	0x02
#define CAP_8BITMIME	0x04
#define CAP_SMTPUTF8	0x08
#define CAP_STARTTLS	0x10
#define CAP_DSN		0x20

/* A session's flags (F_* of the smtp process are another set). */
#define F_RELAY_TLS		0x0001	/* TLS is up */
#define F_RELAY_CLEAR		0x0002	/* opportunistic: again in clear */
#define F_RELAY_USED		0x0004	/* a transaction was started before */
#define F_RELAY_IOERR		0x0008	/* the connection is broken */
#define F_RELAY_CONNFAIL	0x0010	/* connect failed at once (s->err) */
#define F_RELAY_BODY_EOF	0x0020	/* the final dot is in obuf */
#define F_RELAY_EOM_SENT	0x0040	/* ... and written */
#define F_RELAY_COUNTED		0x0080	/* the delivery's MAIL got a reply */
#define F_RELAY_REFUSED		0x0100	/* the TLS policy rules it out */

enum relay_cmd_type {
	CMD_RSET,
	CMD_MAIL,
	CMD_RCPT
};

/* A command whose reply is awaited, in the order sent. */
struct relay_cmd {
	enum relay_cmd_type	 type;
	uint32_t		 rcpt;
};

/* A reply of the server, read line by line (relay_parse.c). */
struct relay_reply {
	int			 code;
	int			 lines;		/* so far; 0: a new reply */
	char			 text[RELAY_REPLY_TEXT_MAX + 1];
	size_t			 len;
};

/* One SMTP client connection, bound to one address of a destination. */
struct relay_session {
	TAILQ_ENTRY(relay_session) entry;	/* dest->sessions, graveyard */
	uint64_t		 id;
	struct relay_dest	*dest;
	int			 addr;		/* index in dest->addrs */
	struct relay_addr	 a;
	char			 name[SMX_HOSTSZ + 64];	/* host[ip]:port */
	char			 remote[SMX_HOSTSZ + 64]; /* host [ip] */
	int			 fd;
	struct tls		*tls;
	char			 tls_version[32];
	enum tls_mode		 mode;		/* the check TLS gets */
	int			 testing;	/* MTA-STS testing: report */
	char			 why[512];	/* ... and why */
	struct event		 ev;
	short			 evflags;
	short			 rwant, wwant, hwant;
	struct event		 tmo;
	enum relay_state	 state;
	int			 flags;
	int			 caps;
	uint64_t		 size_max;	/* SIZE, 0: none given */
	int			 up;		/* greeted, EHLO done, TLS */
	uint32_t		 nmsgs;
	char			 err[RELAY_REPLY_TEXT_MAX + 1];

	char			 ibuf[RELAY_IBUF_SIZE];
	size_t			 ipos, ilen;
	char			*obuf;
	size_t			 opos, olen, ocap;

	struct relay_reply	 reply;		/* being read */

	/* The delivery and its transaction. */
	struct relay_msg	*msg;
	uint32_t		 msg_replies;	/* replies since it came */
	struct relay_cmd	 cmds[RELAY_MAX_RCPT_TX + 2];
	int			 ncmd, nsent, nreplied;
	int			 mail_ok;
	int			 naccepted;
	off_t			 body_off;
	int			 body_bol, body_cr;
};

/* relay.c */
extern struct tls_config	*relay_tls_verify;	/* NULL: no CA store */
extern struct x509_store_st	*relay_ca_store;	/* same, libcrypto */
extern struct tls_config	*relay_tls_noverify;
/* Sends IMSG_RELAY_RESULT and frees the delivery. */
void	relay_result(struct relay_msg *);
void	relay_msg_free(struct relay_msg *);
/* Sets a recipient's verdict and logs the attempt. */
void	relay_rcpt_set(struct relay_msg *, struct relay_rcpt *, uint32_t,
	    const char *reply, const char *relay, const char *tls,
	    const char *verified);
time_t	relay_timeout(time_t rfc, int data);

/* relay_dest.c */
void	relay_dest_deliver(struct relay_msg *);
void	relay_dest_dns_result(struct msg *);
/* A session is ready for (more) work or ended: find it some. */
void	relay_dest_dispatch(struct relay_dest *);
/* A session of d ended: its slot may go to whoever waits. */
void	relay_dest_session_gone(struct relay_dest *);
/*
 * A delivery a session is done with: report it, or put it back to wait
 * for another address.
 */
void	relay_dest_msg_done(struct relay_msg *, int addr);
/* A session could not connect to address addr: it fails for the rest. */
void	relay_dest_addr_failed(struct relay_dest *, int addr,
	    const char *error);
int	relay_dest_starved(void);

/* relay_dest.c: the exchanger an address belongs to, or NULL. */
const struct relay_hostinfo *relay_dest_hostinfo(const struct relay_dest *,
	    const char *host);

/*
 * relay_dane.c: the chain a server sent (PEM, leaf first) against its
 * TLSA records; names are the reference identifiers of DANE-TA.
 */
enum relay_dane {
	DANE_MATCH,
	DANE_NOMATCH,
	DANE_NOUSABLE,
	DANE_ERROR
};
enum relay_dane relay_dane_match(const uint8_t *pem, size_t pemlen,
	    const struct relay_tlsa *, int nrecs, const char **names,
	    int nnames, char *why, size_t whylen);
/*
 * The CA store (PEM) as libcrypto's X509_STORE, and a chain checked
 * against it for a name as a verifying handshake would: 0, or -1 and
 * why.  For reports on MTA-STS policies in testing mode.
 */
struct x509_store_st;
struct x509_store_st *relay_dane_store(const uint8_t *, size_t);
void	relay_dane_store_free(struct x509_store_st *);
int	relay_dane_pkix(const uint8_t *pem, size_t pemlen,
	    struct x509_store_st *, const char *name, char *why,
	    size_t whylen);

/* relay_parse.c: what a next hop answers; every octet is hostile */
/*
 * One reply off buf[*pos..len): 1 complete (code, printable text), 0
 * more input needed, -1 not SMTP (*why).  With caps (an EHLO reply),
 * the keywords of its 250 lines go to *caps and *size_max.
 */
int	relay_parse_reply(struct relay_reply *, char *buf, size_t len,
	    size_t *pos, int *caps, uint64_t *size_max, const char **why);
/* One EHLO keyword line: CAP_* added to *caps; SIZE sets *size_max. */
void	relay_parse_ehlo(char *, int *caps, uint64_t *size_max);

/* relay_session.c */
struct relay_session *relay_session_new(struct relay_dest *, int addr,
	    struct relay_msg *);
/* Give an idle session a delivery to send. */
void	relay_session_assign(struct relay_session *, struct relay_msg *);
int	relay_session_idle(struct relay_session *);
/* Greeted, EHLO and TLS done: the address works. */
int	relay_session_up(struct relay_session *);
int	relay_session_addr(struct relay_session *);
/* Close an idle session at once (QUIT, no wait). */
void	relay_session_close(struct relay_session *);
extern int relay_nsessions;

#endif
