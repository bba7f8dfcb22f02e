/*
 * splitmx: the structures, message types and prototypes that every
 * process shares.  One header describes the house.
 */
#ifndef SPLITMX_H
#define SPLITMX_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "log.h"
#include "msg.h"
#include "util.h"

#define SPLITMX_VERSION		"0.1.0"
#define SPLITMX_CONF		"/etc/splitmx/splitmx.conf"
#define SPLITMX_USER		"_splitmx"
#define SPLITMX_QUEUE		"/var/spool/splitmx"
#define SPLITMX_CONTROL		"/run/splitmx/control.sock"
#define SPLITMX_STATUS		"/run/splitmx/status.sock"
#define SPLITMX_EMPTY		"/var/empty"	/* chroot of most children */
/* A new control or status socket is bound as PATH.new, renamed to PATH. */
#define SMX_SOCK_NEW		".new"

#define SMX_NAMESZ		64	/* pki, table names */
#define SMX_HOSTSZ		256	/* a domain or host name and its NUL */
#define SMX_ADDRSZ		512	/* an e-mail address, NUL included */

/* Defaults (RFC 5321 §4.5.3 where it has one). */
#define DEF_MESSAGE_SIZE	(35 * 1024 * 1024)
#define DEF_RECIPIENTS		100
#define DEF_SESSIONS		2000
#define DEF_SESSIONS_PER_IP	50
#define DEF_ERRORS		10
#define DEF_TIMEOUT_COMMAND	300	/* 5 minutes */
#define DEF_TIMEOUT_DATA	600	/* 10 minutes */
#define DEF_DATA_RATE		1024	/* octets a second */
#define DEF_RETRY_FIRST		300
#define DEF_RETRY_CAP		(4 * 3600)
#define DEF_EXPIRE		(4 * 86400)
#define DEF_WARN_AFTER		(4 * 3600)
#define DEF_LDAP_FILTER		"(|(mail=%s)(proxyAddresses=smtp:%s))"
#define DEF_LDAP_TARGET		"targetAddress"
#define DEF_LDAP_TIMEOUT	10
#define DEF_LDAP_FAILBACK	300	/* back to the first url after */
#define DEF_DNSBL_THRESHOLD	1
#define DEF_CONNECTION_RATE	0	/* per minute per client IP; 0 none */
#define DNSBL_MAX		32	/* dnsbl and dnswl lines together */
#define DNSBL_WEIGHT_MAX	100
#define DNSBL_THRESHOLD_MAX	1000
/* The longest zone: 64 octets of IPv6 nibbles go in front of it. */
#define DNSBL_ZONE_MAX		(253 - 64)
/* How long a connection waits for the lists before they count as silent. */
#define DNSBL_TIMEOUT		5	/* seconds */
#define DEF_TRUST_ANCHOR	"/usr/share/dns/root.key" /* dns-root-data */
#define DEF_CA_FILE		"/etc/ssl/certs/ca-certificates.crt"
#define DEF_MILTER_TIMEOUT	30	/* per milter reply, SPEC §9 */

enum smx_proc {
	PROC_PARENT,
	PROC_SMTP,
	PROC_LOOKUP,
	PROC_QUEUE,
	PROC_RELAY,
	PROC_CONTROL,
	PROC_FILTER,
	PROC_COUNT
};

/*
 * Outbound TLS policy of a "to" host (SPEC §3 host syntax, §11), weakest
 * first: of two policies the larger is the stricter (a new one goes
 * where it belongs in that order).  The order is what a policy promises
 * for a destination that publishes nothing (no TLSA record, no MTA-STS
 * policy): none and opportunistic promise nothing, dane authentication
 * where it is published and else what opportunistic does, require
 * encryption everywhere, verify encryption authenticated by the CA
 * store, dane-only authentication by DNSSEC or no delivery at all.
 * From require on, a policy never lets mail go in clear text.
 */
enum smx_tls {
	TLSP_NONE,
	TLSP_OPPORTUNISTIC,
	TLSP_DANE,
	TLSP_REQUIRE,
	TLSP_VERIFY,
	TLSP_DANE_ONLY,
	TLSP_COUNT
};

/* "name" (MX lookup) or "[name]" (direct), :port, tls policy. */
#define F_HOST_MX	0x01	/* look up MX records (no brackets) */
struct smx_host {
	char		 name[SMX_HOSTSZ];	/* without brackets */
	uint16_t	 port;			/* 25 unless given */
	int		 flags;
	enum smx_tls	 tls;
	int		 set;			/* configured at all */
};

struct smx_pki {
	TAILQ_ENTRY(smx_pki)	 entry;
	char			 name[SMX_NAMESZ];
	char			 cert_file[PATH_MAX];
	char			 key_file[PATH_MAX];
	/* Read by the parent, sent to smtp and relay, then wiped. */
	uint8_t			*cert;
	size_t			 cert_len;
	uint8_t			*key;
	size_t			 key_len;
	/* Where it is defined, for "FILE:LINE:" (the parent's only). */
	char			 def_file[PATH_MAX];
	int			 def_line;
};

#define F_LISTEN_TLS		0x01	/* STARTTLS offered */
#define F_LISTEN_TLS_REQUIRE	0x02	/* STARTTLS required before MAIL */
#define SMX_LISTEN_MILTERS	8	/* milters on one listener, at most */
struct smx_listener {
	TAILQ_ENTRY(smx_listener) entry;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	uint16_t		 port;
	int			 flags;
	char			 pki[SMX_NAMESZ];
	int			 fd;		/* bound by the parent, or -1 */
	/* The milters every session on it sees, in this order (SPEC §9). */
	char			 milters[SMX_LISTEN_MILTERS][SMX_NAMESZ];
	uint32_t		 nmilters;
};

/*
 * A milter (SPEC §9): "inet:ADDRESS:PORT" is connected by the filter
 * process, "unix:/PATH" by the parent, which passes the connected
 * descriptor (the filter process lives in an empty chroot).
 */
enum smx_milter_error {
	MILTER_ON_ERROR_TEMPFAIL,	/* 451 4.7.1 */
	MILTER_ON_ERROR_ACCEPT,		/* skip the milter for the session */
	MILTER_ON_ERROR_REJECT,		/* 550 5.7.1 */
	MILTER_ON_ERROR_COUNT
};
#define SMX_MILTER_NAMESZ	33	/* 32 characters: in counter names */
#define SMX_MILTER_ADDRSZ	(sizeof("unix:") + 108)	/* sun_path */
struct smx_milter {
	TAILQ_ENTRY(smx_milter)	 entry;
	char			 name[SMX_MILTER_NAMESZ];
	char			 address[SMX_MILTER_ADDRSZ];
	enum smx_milter_error	 on_error;
	time_t			 timeout;	/* seconds, per reply */
};

/* A network for "trusted" and "forward from": address and prefix. */
struct smx_net {
	TAILQ_ENTRY(smx_net)	 entry;
	struct sockaddr_storage	 ss;
	int			 prefixlen;
};
TAILQ_HEAD(smx_netlist, smx_net);

/* A DNS block list ("dnsbl") or allow list ("dnswl"), SPEC §10. */
struct smx_dnsbl {
	TAILQ_ENTRY(smx_dnsbl)	 entry;
	char			 zone[SMX_HOSTSZ];	/* lower case */
	int			 allow;	/* dnswl: subtracts its weight */
	uint32_t		 weight;
};
TAILQ_HEAD(smx_dnsbllist, smx_dnsbl);

enum smx_table_type {
	TABLE_FILE,
	TABLE_LDAP,
	TABLE_COUNT
};

struct smx_table {
	TAILQ_ENTRY(smx_table)	 entry;
	char			 name[SMX_NAMESZ];
	enum smx_table_type	 type;
	char			 path[PATH_MAX];	/* file */
	/* ldap */
	char			 url[1024];	/* space-separated, in order */
	char			 base[512];
	char			 binddn[512];
	char			 bindpw[256];
	char			 filter[512];
	char			 target_attr[128];
	time_t			 cache;		/* seconds, 0: none */
	time_t			 timeout;	/* seconds */
	time_t			 failback;	/* extension: 0 never */
	int			 starttls;	/* extension: "tls require" */
	char			 ca[PATH_MAX];	/* extension: "" default */
	int			 fd;		/* file: opened by the parent */
	size_t			 entries;	/* file: counted when loaded */
};

enum smx_domain_type {
	DOMAIN_AUTHORITATIVE,
	DOMAIN_SHARED,
	DOMAIN_RELAY,
	DOMAIN_TYPE_COUNT
};

enum smx_unknown {
	UNKNOWN_REJECT,
	UNKNOWN_BOUNCE,
	UNKNOWN_FORWARD,
	UNKNOWN_COUNT
};

struct smx_domain {
	TAILQ_ENTRY(smx_domain)	 entry;
	char			 name[SMX_HOSTSZ];	/* ".x" matches subs */
	enum smx_domain_type	 type;
	char			 directory[SMX_NAMESZ];	/* table name */
	struct smx_host		 local;
	struct smx_host		 forward;
	enum smx_unknown	 unknown;
	/* Extension: addresses the forward host sends from (loop check). */
	struct smx_netlist	 forward_from;
};

struct smx_conf {
	char			 file[PATH_MAX];	/* where it came from */
	uint32_t		 generation;
	time_t			 loaded;

	char			 hostname[SMX_HOSTSZ];
	char			 user[64];
	char			 queue_dir[PATH_MAX];
	char			 control_sock[PATH_MAX];
	char			 control_group[64];
	char			 admin_group[64];
	char			 status_sock[PATH_MAX];
	char			 status_group[64];
	int64_t			 admin_gid;		/* -1 none; by parent */
	char			 resolver[128];		/* "" : resolv.conf */

	int			 metrics;		/* listener set */
	struct sockaddr_storage	 metrics_ss;
	socklen_t		 metrics_sslen;
	uint16_t		 metrics_port;

	size_t			 max_message_size;
	uint32_t		 max_recipients;
	uint32_t		 max_sessions;
	uint32_t		 max_sessions_per_ip;
	uint32_t		 max_errors;		/* extension */
	time_t			 timeout_command;	/* extension */
	time_t			 timeout_data;		/* extension */
	size_t			 min_data_rate;		/* extension */

	/* outbound via mx | via "host": name empty means none configured. */
	struct smx_host		 outbound;
	time_t			 retry_first;
	time_t			 retry_cap;
	time_t			 expire;
	time_t			 warn_after;

	TAILQ_HEAD(, smx_pki)		 pkis;
	TAILQ_HEAD(, smx_listener)	 listeners;
	struct smx_netlist		 trusted;
	TAILQ_HEAD(, smx_table)		 tables;
	TAILQ_HEAD(, smx_domain)	 domains;
	TAILQ_HEAD(, smx_milter)	 milters;

	/*
	 * Authenticated outbound TLS (SPEC §11): the DNSSEC trust anchors
	 * (extension: trust-anchor), the CA certificates outbound
	 * verification trusts (extension: ca), MTA-STS on or off.  The
	 * parent reads both files; the lookup process gets the anchors'
	 * text, lookup and relay the CA file's content.
	 */
	char				 trust_anchor[PATH_MAX];
	char				 ca_file[PATH_MAX];
	int				 ca_set;	/* configured */
	int				 mta_sts;
	char				*anchors;	/* NUL-terminated */
	uint8_t				*ca;
	size_t				 ca_len;
	int				 ca_fd;		/* parent, or -1 */

	/* Sockets the parent binds for the control process, or -1. */
	int				 control_fd;
	int				 status_fd;
	int				 metrics_fd;

	/* Connection policy (SPEC §10). */
	struct smx_dnsbllist		 dnsbls;	/* the file's order */
	uint32_t			 dnsbl_threshold;
	uint32_t			 connection_rate;	/* 0: none */
};
enum smx_sock {
	SOCK_CONTROL,
	SOCK_STATUS,
	SOCK_METRICS
};

/*
 * Message types, grouped by subsystem.  A new type gets its name in
 * smtpd/names.c (regress/lib/names_test.c finds one that has none).
 */
enum imsg_type {
	IMSG_NONE,

	/* parent -> children: process mesh and configuration */
	IMSG_PROC_PEER_OPEN,		/* u32 proc, fd: channel to a sibling */
	IMSG_PROC_START,		/* everything sent, start working */
	IMSG_CONF_RESET,		/* a new configuration follows */
	IMSG_CONF_GLOBAL,
	IMSG_CONF_PKI,
	IMSG_CONF_LISTENER,		/* fd: the bound socket (smtp only) */
	IMSG_CONF_TRUSTED,
	IMSG_CONF_TABLE,
	IMSG_CONF_DOMAIN,
	IMSG_CONF_SOCKET,		/* u32 SOCK_*, fd: control's sockets */
	IMSG_CONF_DONE,			/* child -> parent: u32 ok, str why */
					/* (refused) or its report (ok) */
	IMSG_CONF_APPLY,		/* parent -> child: switch now */
	IMSG_CONF_ABORT,		/* parent -> child: drop the pending */

	/* smtp <-> lookup: may this recipient be accepted, and where to */
	IMSG_LOOKUP_RCPT,		/* see "lookup protocol" below */
	IMSG_LOOKUP_RCPT_RESULT,

	/* smtp <-> queue: a message file, then its commit */
	IMSG_QUEUE_MESSAGE_CREATE,	/* u64 reqid */
	IMSG_QUEUE_MESSAGE_CREATE_RESULT, /* u64 reqid, u32 ok, str id, fd */
	IMSG_QUEUE_MESSAGE_COMMIT,	/* see "queue protocol" below */
	IMSG_QUEUE_MESSAGE_COMMIT_RESULT, /* u64 reqid, u32 ok, str reply */
	IMSG_QUEUE_MESSAGE_ROLLBACK,	/* str id: drop an uncommitted file */

	/* relay <-> lookup: addresses of a destination (DNS) */
	IMSG_LOOKUP_DNS_HOST,		/* see "relay protocol" below */
	IMSG_LOOKUP_DNS_HOST_RESULT,

	/* queue <-> relay: one delivery attempt of a batch of recipients */
	IMSG_RELAY_DELIVER,		/* see "relay protocol" below */
	IMSG_RELAY_RESULT,

	/* control <-> processes */
	IMSG_CTL_PROCS,			/* parent -> control: i64 started, */
					/* u32 n, (u32 proc, u32 pid)* */
	IMSG_CTL_VERBOSE,		/* u32 verbose, to every process */
	IMSG_CTL_RELOAD,		/* control -> parent; reply: result */
	IMSG_CTL_RELOAD_RESULT,
	IMSG_CTL_STATS,			/* process -> control: counters */
	IMSG_CTL_QUEUE_LIST,		/* control -> queue: u64 reqid */
	IMSG_CTL_QUEUE_ITEM,		/* queue -> control: see below */
	IMSG_CTL_QUEUE_END,		/* queue -> control: u64 reqid */
	IMSG_CTL_SMTP_PAUSE,		/* control -> smtp: u32 paused */
	IMSG_CTL_RELAY_PAUSE,		/* control -> queue: u32 paused */
	IMSG_CTL_QUEUE_SHOW,		/* control -> queue: see below */
	IMSG_CTL_QUEUE_MESSAGE,		/* queue -> control: see below */
	IMSG_CTL_QUEUE_RCPT,
	IMSG_CTL_QUEUE_EVENT,
	IMSG_CTL_QUEUE_SCHEDULE,	/* control -> queue: see below */
	IMSG_CTL_QUEUE_REMOVE,
	IMSG_CTL_QUEUE_RESULT,		/* queue -> control: see below */
	IMSG_CTL_LOOKUP,		/* control -> lookup: see below */
	IMSG_CTL_LOOKUP_RESULT,		/* lookup -> control */

	/* splitmxctl import's reader of the export: see below */
	IMSG_IMPORT_ENTRIES,
	IMSG_IMPORT_ERRORS,
	IMSG_IMPORT_DONE,

	/* connection policy: DNS lists, rate (see "client protocol") */
	IMSG_CONF_POLICY,		/* parent -> children */
	IMSG_LOOKUP_CLIENT,		/* smtp -> lookup: at connect */
	IMSG_LOOKUP_CLIENT_RESULT,
	IMSG_CTL_CHECK_CLIENT,		/* control -> lookup: explain */
	IMSG_CTL_CHECK_CLIENT_RESULT,
	/* authenticated outbound TLS (SPEC §11) */
	IMSG_CONF_OUTBOUND_TLS,		/* see "outbound TLS" below */
	IMSG_QUEUE_STS_STORE,		/* lookup -> queue: keep a policy */
	IMSG_LOOKUP_STS_LOAD,		/* queue -> lookup: one kept */
	IMSG_LOOKUP_STS_LOADED,		/* queue -> lookup: u32 n, the end */
	IMSG_CTL_LOOKUP_TLS,		/* control -> lookup: see below */
	IMSG_CTL_LOOKUP_TLS_RESULT,

	/* splitmxctl stop: the daemon drains and exits */
	IMSG_CTL_STOP,			/* control -> parent: u64 reqid, */
					/* u32 uid of the requester */
	IMSG_CTL_STOP_RESULT,		/* parent -> control: u64 reqid, */
					/* str what each process did */
	IMSG_PROC_STOP,			/* parent -> child: u32 seconds */
					/* it has to finish its work */
	IMSG_PROC_STOPPED,		/* child -> parent: str its report */

	/* milters (SPEC §9): see "filter protocol" below */
	IMSG_CONF_MILTER,		/* parent -> children: one milter */
	IMSG_FILTER_CONNECT,		/* smtp -> filter: a session starts */
	IMSG_FILTER_HELO,
	IMSG_FILTER_MAIL,
	IMSG_FILTER_RCPT,
	IMSG_FILTER_DATA,
	IMSG_FILTER_MESSAGE,		/* the end of the message */
	IMSG_FILTER_ABORT,		/* the transaction ends early */
	IMSG_FILTER_CLOSE,		/* the session ends */
	IMSG_FILTER_RESULT,		/* filter -> smtp */
	IMSG_FILTER_MESSAGE_RESULT,
	IMSG_FILTER_MILTER_CONNECT,	/* filter -> parent: a unix milter */
	IMSG_FILTER_MILTER_CONNECT_RESULT,
	IMSG_QUEUE_MESSAGE_OPEN,	/* filter -> queue: an incoming file */
	IMSG_QUEUE_MESSAGE_OPEN_RESULT,
	IMSG_CTL_QUEUE_RELEASE,		/* control -> queue: u64 reqid, */
					/* str id or "all" */

	IMSG_TYPE_COUNT
};

/*
 * Import protocol, from the child of splitmxctl import that reads and
 * parses the export without privileges (control/splitmxctl_import_read.c)
 * to splitmxctl, which checks every field again:
 * IMSG_IMPORT_ENTRIES: records to the end of the message, each a u8
 *	kind, then for kind 1, an entry: u32 line, u32 flags (IMPE_*),
 *	u32 fline, str foreign (or NULL); for kind 2, a value of the
 *	entry before it: str address, u32 line, u8 primary, u8 target
 * IMSG_IMPORT_ERRORS: str, the next piece of the export's messages
 * IMSG_IMPORT_DONE, the last: u32 ok, u64 errors, u64 entries, u64
 *	values (the totals, checked)
 */

/*
 * Lookup protocol.  IMSG_LOOKUP_RCPT, smtp -> lookup:
 *	u64 reqid, sockaddr client, str sender, str rcpt (as given, no <>)
 * IMSG_LOOKUP_RCPT_RESULT, lookup -> smtp:
 *	u64 reqid, u32 verdict (LOOKUP_*), u32 smtp code (250, 550, 451...),
 *	str enhanced reply text ("5.7.1 Relaying denied"),
 *	u32 route class (ROUTE_*), str rewritten recipient,
 *	str destination (host syntax, "" for outbound via DNS),
 *	u32 tls (TLSP_*: the destination's policy as configured)
 * The rewritten recipient is "" when the address stays as given (the
 * smtp process keeps its own spelling then).  The destination and its
 * TLS policy travel together to the queue (COMMIT) and into the
 * envelope: a queued message is delivered with at least the policy it
 * was routed with, whatever a reload does to the configuration.
 *
 * IMSG_CTL_LOOKUP, control -> lookup: u64 reqid, str address.
 * IMSG_CTL_LOOKUP_RESULT, lookup -> control: the decision explained,
 *	u64 reqid, str address, u32 verdict, u32 code, str text,
 *	u32 route class, str rewritten, str destination,
 *	str decision ("local", "custom -> b@x", "unknown -> reject"...),
 *	str policy (the rule applied, in words), u32 nsteps, then nsteps
 *	times (one per address looked at: the recipient, each target):
 *	    str address, str domain (as configured, "" if none),
 *	    str domain type, str table, str entry (the key that matched,
 *	    "" none), str source ("FILE:LINE"), u32 kind (LOOKUP_STEP_*),
 *	    str target
 * then what outbound TLS each host of the destination gets (SPEC §11):
 *	str policy (the route's TLSP_* by name, "" when the recipient goes
 *	nowhere), u32 nhosts, then nhosts times:
 *	    str host, u32 preference, str addresses ("a, b"),
 *	    str check (tls_mode_name(): "dane", "mta-sts"...), str why
 *	then str summary (DNSSEC and MTA-STS state, or the DNS failure)
 * The kind is a number; the control process has the names.
 *
 * IMSG_CTL_LOOKUP_TLS, control -> lookup (show message, for its queued
 * recipients): u64 reqid, str destination (host syntax, "" by MX),
 * str domain (the recipients'), str tls (the policy routed with, by
 * name).  IMSG_CTL_LOOKUP_TLS_RESULT: u64 reqid, then the TLS part of
 * IMSG_CTL_LOOKUP_RESULT above (str policy ... str summary).
 */
enum lookup_verdict {
	LOOKUP_ACCEPT,
	LOOKUP_REJECT,		/* 5xx */
	LOOKUP_TEMPFAIL		/* 4xx */
};

enum route_class {
	ROUTE_LOCAL,		/* local mailbox -> local to */
	ROUTE_CUSTOM,		/* custom recipient, rewritten */
	ROUTE_FORWARD,		/* relay domain / unknown forward */
	ROUTE_BOUNCE,		/* unknown bounce: accepted, DSN later */
	ROUTE_OUTBOUND,		/* trusted client to another domain */
	ROUTE_NONE,
	ROUTE_COUNT
};

/* What one address of IMSG_CTL_LOOKUP_RESULT turned out to be. */
enum lookup_step {
	LOOKUP_STEP_NONE,	/* undecided (no such directory) */
	LOOKUP_STEP_LOCAL,	/* a directory entry: local mailbox */
	LOOKUP_STEP_CUSTOM,	/* a directory entry: custom recipient */
	LOOKUP_STEP_UNKNOWN,	/* not in the directory */
	LOOKUP_STEP_RELAY,	/* a relay domain: no directory */
	LOOKUP_STEP_OUTSIDE,	/* not a configured domain */
	LOOKUP_STEP_LOOP,	/* seen before in this chain */
	LOOKUP_STEP_TOO_LONG,	/* one custom step too many */
	LOOKUP_STEP_TEMPFAIL,	/* the directory cannot answer now */
	LOOKUP_STEP_COUNT
};

/*
 * Queue protocol.  IMSG_QUEUE_MESSAGE_COMMIT, smtp -> queue:
 *	u64 reqid, str id, u64 size (bytes written to the fd),
 *	str sender, str helo, sockaddr client, str client hostname,
 *	u32 body (BODY_*), u32 flags (F_MSG_*), str envid, u32 ret (RET_*),
 *	str quarantine (a milter's reason to hold the message, "" none),
 *	u32 nrcpt, then nrcpt times:
 *	    str rcpt (as given), str rewritten, u32 class, str destination,
 *	    u32 tls (TLSP_*, from the lookup), u32 notify (F_NOTIFY_*),
 *	    str orcpt, str error ("": routed; else the reason a recipient
 *	    a milter added cannot be routed, class ROUTE_BOUNCE: it gets
 *	    a DSN with this text)
 * The smtp process has written the whole message (Received header first)
 * to the descriptor it got with CREATE_RESULT; the queue makes it durable
 * and answers COMMIT_RESULT only once file, envelope and directory are
 * fsync'd.  The size must be the file's: a mismatch fails the commit.
 * COMMIT_RESULT's reply is the complete SMTP reply line without CRLF,
 * "250 2.0.0 Ok: queued as ID" or "451 4.3.0 ..." (ok 0): send it as is.
 * A queue id is 24 lower-case hex digits.
 *
 * IMSG_CTL_QUEUE_ITEM, queue -> control, one per recipient:
 *	u64 reqid, str id, str state ("queued", "deferred", "delivered",
 *	"failed"), i64 arrival, u64 size, str sender, str rcpt,
 *	str rewritten, str route ("local", "custom"...), str destination,
 *	u32 tries, i64 next try, i64 last try (0: never), str last error,
 *	str quarantine (the reason a milter gave, "" if not held; the
 *	state of a recipient not done yet is then "quarantined")
 * then IMSG_CTL_QUEUE_END: u64 reqid.
 *
 * IMSG_CTL_QUEUE_SHOW, control -> queue: u64 reqid, str id.  Answered
 * by IMSG_CTL_QUEUE_RESULT with found 0 for an unknown id, else by
 * IMSG_CTL_QUEUE_MESSAGE: u64 reqid, str id, i64 arrival, u64 size,
 *	str sender, str helo, str client, str client hostname, str envid,
 *	str body ("7bit"...), str ret ("unset"...), str flags
 *	("smtputf8,tls"), i64 warned (0: no delay DSN yet), u32 nrcpt,
 *	u32 in flight (deliveries out to the relay), u32 removing (1: to
 *	be removed when they are back), str quarantine ("" not held)
 * then nrcpt times IMSG_CTL_QUEUE_RCPT: u64 reqid, u32 index,
 *	str rcpt, str rewritten, str route, str destination,
 *	str tls (the policy routed with: "none", "opportunistic", "dane",
 *	"require", "verify", "dane-only", or "unknown" in an envelope
 *	older than it),
 *	str notify ("failure,delay", "" for the default), str orcpt,
 *	str state, u32 tries, i64 next try, i64 last try, str last error,
 *	u32 sending (1: in a delivery now)
 * then one IMSG_CTL_QUEUE_EVENT per history line, oldest first:
 *	u64 reqid, i64 time, str text
 * then IMSG_CTL_QUEUE_RESULT with found 1 ends it.
 *
 * IMSG_CTL_QUEUE_SCHEDULE (retry now) and IMSG_CTL_QUEUE_REMOVE,
 * control -> queue: u64 reqid, str id or "all".  Answer:
 * IMSG_CTL_QUEUE_RESULT: u64 reqid, u32 found (messages that matched),
 *	u32 done (scheduled or removed now), u32 pending (being delivered:
 *	removed once the relay's result is back)
 * IMSG_CTL_QUEUE_RELEASE (release ID|all, a quarantined message goes
 * to the scheduler) is answered the same way, done being the messages
 * released (one that is not held is found, not released).
 * IMSG_CTL_RELAY_PAUSE: u32 paused (1 pause, 0 resume); no answer.  The
 * queue stops handing deliveries to the relay; those out finish.
 * The queue stores BODY_*, F_MSG_*, RET_*, F_NOTIFY_*, ROUTE_* and
 * TLSP_* by name in its envelope files (queue/queue_fs_envelope.c): a
 * new value needs a name there too (a static assertion says so).
 */
/*
 * Relay protocol.  IMSG_RELAY_DELIVER, queue -> relay, with the message
 * file's descriptor (read-only, positioned at 0):
 *	u64 reqid, str msgid, str sender, u32 body (BODY_*), u32 flags
 *	(F_MSG_*), str envid, u32 ret, u64 size,
 *	str destination (host syntax, "" = by MX of the recipients' domain),
 *	u32 tls (TLSP_*: the stricter of the policy the recipients were
 *	routed with and the one the configuration gives the destination
 *	now), u32 nrcpt, then nrcpt times:
 *	    u32 index (the queue's own), str rcpt, u32 notify, str orcpt
 * All recipients of one DELIVER share the destination, the domain and
 * the policy.
 * IMSG_RELAY_RESULT, relay -> queue:
 *	u64 reqid, str remote ("mx.example [192.0.2.1]" or ""),
 *	u32 nrcpt, then nrcpt times:
 *	    u32 index, u32 status (DELIVERY_*), str reply (the remote
 *	    reply, or our own text for a local failure), str tls (the TLS
 *	    version of the attempt, "none"), str verified (what its TLS
 *	    verified: "dane", "mta-sts", "pkix", "none")
 *	DELIVERY_RELAYED is DELIVERY_OK to a server that did not offer
 *	DSN, for a recipient with NOTIFY=SUCCESS: the "relayed" DSN is
 *	ours to send (RFC 3461 §5.2.2).
 *
 * IMSG_LOOKUP_DNS_HOST, relay -> lookup:
 *	u64 reqid, str name, u32 mx (1: MX then A/AAAA; 0: A/AAAA only),
 *	u16 port, u32 tls (TLSP_*: the dane policies ask for TLSA records)
 * IMSG_LOOKUP_DNS_HOST_RESULT, lookup -> relay:
 *	u64 reqid, u32 status (DNS_*), str error text, u32 n, then n times:
 *	    str host (the MX name), u32 preference, sockaddr (port 0)
 * in the order to try: by preference, equal preferences shuffled; then
 * what each host's TLS policy is decided from (tls_policy.c), u32
 * nhosts, then nhosts times:
 *	    str host, u32 secure (MX and addresses DNSSEC-validated),
 *	    u32 tlsa (TLSA_*), str what failed (TLSA_FAILED), u32 ntlsa,
 *	    then ntlsa times: u32 usage, u32 selector, u32 matching type,
 *	    data; then u32 sts_match (the host is in the MTA-STS policy)
 * and the destination's MTA-STS policy: u32 mode (STS_*), str the
 * policy in words (for the logs).  A bogus answer is a DNS_TEMPFAIL
 * with the reason, never "no such record".
 *
 * Outbound TLS.  IMSG_CONF_OUTBOUND_TLS, parent -> children, a
 * configuration item: u32 mta-sts, str trust-anchor file, str its text
 * ("" but to lookup), str ca file, u32 ca configured, and to lookup
 * and relay (F_PROC_TLS_TRUST) the ca file's descriptor, read there.
 *
 * MTA-STS policies are fetched by the lookup process and kept on disk
 * by the queue (the spool is its own): IMSG_QUEUE_STS_STORE, lookup ->
 * queue, and IMSG_LOOKUP_STS_LOAD, queue -> lookup at the queue's
 * start, one per policy: str domain, str id, i64 fetched, i64 expires,
 * str policy (as fetched; "" in a STORE removes it); then
 * IMSG_LOOKUP_STS_LOADED: u32 the number sent.
 */
enum delivery_status {
	DELIVERY_OK,
	DELIVERY_TEMPFAIL,
	DELIVERY_PERMFAIL,
	DELIVERY_RELAYED,
	DELIVERY_COUNT
};
enum dns_status {
	DNS_OK,
	DNS_TEMPFAIL,		/* SERVFAIL, timeout: try later */
	DNS_NXDOMAIN,		/* the name does not exist: permanent */
	DNS_NODATA,		/* no usable address: permanent */
	DNS_COUNT
};

/*
 * Client protocol: the connection policy of SPEC §10.
 * IMSG_CONF_POLICY, parent -> children, once per configuration:
 *	u32 dnsbl threshold, u32 connection rate, u32 n, then n times (in
 *	the file's order): str zone, u32 allow (1: dnswl), u32 weight
 * IMSG_LOOKUP_CLIENT, smtp -> lookup, when a client that is not
 * trusted connects and lists are configured:
 *	u64 reqid (the session id), sockaddr client
 * IMSG_LOOKUP_CLIENT_RESULT, lookup -> smtp, at most DNSBL_TIMEOUT
 * seconds later (a list that has not answered then counts as not
 * listing the client):
 *	u64 reqid, u32 refused (1: the score reached the threshold),
 *	i64 score, str lists (the block lists that list the client, "a,b"),
 *	str reply (when refused, the text after "550" for every RCPT but
 *	postmaster: "5.7.1 ..."; else "")
 * IMSG_CTL_CHECK_CLIENT, control -> lookup: u64 reqid, sockaddr client.
 * IMSG_CTL_CHECK_CLIENT_RESULT, lookup -> control, the same decision
 * explained:
 *	u64 reqid, str client, u32 trusted (1: never checked), i64 score,
 *	u32 threshold, u32 refused, str reply, u32 n, then n times (one
 *	per list, in the configuration's order):
 *	    str zone, u32 allow, u32 weight, str query name,
 *	    u32 answer (DNSBL_ANS_*), str addresses ("127.0.0.2 127.0.0.4"),
 *	    u32 cached (1: the cache answered), i64 ttl (seconds the
 *	    answer stays cached, 0 not cached)
 */
enum dnsbl_answer {
	DNSBL_ANS_CLEAN,	/* no such name, or no 127.0.0.0/8 address */
	DNSBL_ANS_LISTED,	/* an address in 127.0.0.0/8 */
	DNSBL_ANS_OPERATOR,	/* 127.255.255.0/24: the list's error code */
	DNSBL_ANS_ERROR,	/* SERVFAIL and the like */
	DNSBL_ANS_TIMEOUT,	/* no answer within DNSBL_TIMEOUT */
	DNSBL_ANS_COUNT
};

enum body_type {
	BODY_7BIT,
	BODY_8BITMIME,
	BODY_BINARYMIME,
	BODY_COUNT
};
#define F_MSG_SMTPUTF8		0x01
#define F_MSG_TLS		0x02
enum dsn_ret {
	RET_UNSET,
	RET_FULL,
	RET_HDRS,
	RET_COUNT
};
#define F_NOTIFY_NEVER		0x01
#define F_NOTIFY_SUCCESS	0x02
#define F_NOTIFY_FAILURE	0x04
#define F_NOTIFY_DELAY		0x08

/*
 * Filter protocol (SPEC §9): the smtp process asks the filter process
 * at every stage of a session whose listener has milters, and waits
 * for the verdict; the filter process holds the milter connections.
 * Every message starts with u64 session (the smtp session id).
 *
 * IMSG_FILTER_CONNECT, smtp -> filter: u64 session, str hostname (ours),
 *	sockaddr local (the listener's address and port), sockaddr client,
 *	u32 nmilters, then nmilters times (in the listener's order):
 *	    str name, str address ("inet:..."/"unix:..."), u32 on-error
 *	    (MILTER_ON_ERROR_*), i64 timeout (seconds)
 *	The session carries its milters: a reload never changes them
 *	under a session's feet.
 * IMSG_FILTER_HELO: u64 session, str helo, str tls version ("" without
 *	TLS), str cipher, u32 cipher bits
 * IMSG_FILTER_MAIL: u64 session, str sender (no <>), str ESMTP args
 * IMSG_FILTER_RCPT: u64 session, str rcpt, str ESMTP args, str mailer
 *	(the routing decision: "local", "custom", "relay", "bounce")
 * IMSG_FILTER_DATA: u64 session, str queue id
 * IMSG_FILTER_MESSAGE: u64 session, str queue id, u64 size (of the file
 *	in incoming/), u64 offset (where the client's text starts: our
 *	Received: header comes before, and no milter sees it)
 *	Each is answered by IMSG_FILTER_RESULT, filter -> smtp:
 *	    u64 session, u32 stage (FILTER_STAGE_*), u32 verdict
 *	    (FILTER_*), str reply (the whole SMTP reply for REJECT and
 *	    TEMPFAIL, lines joined by CR LF, checked; "" otherwise)
 *	but IMSG_FILTER_MESSAGE, answered by IMSG_FILTER_MESSAGE_RESULT:
 *	    u64 session, u32 verdict, str reply, str quarantine ("" none),
 *	    u64 size (of the file in incoming/ now: the filter process may
 *	    have replaced it with the modified message), str sender (NULL:
 *	    unchanged, else the new one without <>), u32 nops, then nops
 *	    times, in the order the milters asked for them:
 *		u32 op (FILTER_RCPT_ADD, FILTER_RCPT_DEL), str address
 *		(no <>), str ESMTP args (ADD: "" or "NOTIFY=...")
 * IMSG_FILTER_ABORT: u64 session: the transaction ended before its end
 *	of message (RSET, a refusal, a new HELO).  No answer.
 * IMSG_FILTER_CLOSE: u64 session: the session is gone.  No answer; a
 *	stage under way is dropped.
 *
 * IMSG_FILTER_MILTER_CONNECT, filter -> parent: u64 reqid, str path
 *	(a unix milter of the configuration); IMSG_FILTER_MILTER_CONNECT_
 *	RESULT: u64 reqid, u32 errno (0: connected), fd (the socket).
 * IMSG_QUEUE_MESSAGE_OPEN, filter -> queue: u64 reqid, str id, u32 mode
 *	(QUEUE_OPEN_READ: the incoming message file, read-only;
 *	QUEUE_OPEN_REWRITE: a new, empty, write-only file that has taken
 *	the message's name in incoming/, for the modified message); only
 *	a message the smtp process holds and has not committed.
 *	IMSG_QUEUE_MESSAGE_OPEN_RESULT: u64 reqid, u32 ok, fd.
 */
enum filter_stage {
	FILTER_STAGE_CONNECT,
	FILTER_STAGE_HELO,
	FILTER_STAGE_MAIL,
	FILTER_STAGE_RCPT,
	FILTER_STAGE_DATA,
	FILTER_STAGE_MESSAGE,
	FILTER_STAGE_COUNT
};
enum filter_verdict {
	FILTER_CONTINUE,	/* go on (at the end of the message: accept) */
	FILTER_REJECT,		/* the reply is a 5xx */
	FILTER_TEMPFAIL,	/* the reply is a 4xx */
	FILTER_DISCARD,		/* 250 to the client, nothing delivered */
	FILTER_VERDICT_COUNT
};
#define FILTER_RCPT_ADD		1
#define FILTER_RCPT_DEL		2
#define FILTER_RCPT_OPS_MAX	200	/* per message: fits one message */
#define QUEUE_OPEN_READ		0
#define QUEUE_OPEN_REWRITE	1

/* What every process knows about itself and its peers. */
struct smx_env {
	int		 proc;			/* PROC_* of this process */
	pid_t		 pids[PROC_COUNT];	/* filled in the parent */
	struct msgchan	*chan[PROC_COUNT];	/* to the parent and siblings */
	struct smx_conf	*conf;			/* in force */
	struct smx_conf	*pending;		/* being received (reload) */
	struct event_base *evbase;
	time_t		 started;
	int		 debug;
	int		 verbose;
};
extern struct smx_env	*env;

/* names.c */
const char	*imsg_name(uint32_t);
int		 imsg_names_complete(void);
const char	*route_class_name(enum route_class);
const char	*tls_policy_name(enum smx_tls);

/* parse.y: every error is written to errfp as "FILE:LINE: message" */
struct smx_conf	*parse_config(const char *file, FILE *errfp);
/* A word the lexer takes for a keyword: a name spelt so is quoted. */
int		 parse_keyword(const char *);

/*
 * pki.c: every certificate and key read and tried with libtls (the
 * parent, with privilege); "FILE:LINE: pki NAME: why" to errfp.
 */
int		 pki_load(struct smx_conf *, FILE *errfp);
int		 pki_check(const struct smx_pki *, char *why, size_t);

/* conf.c: building, freeing, printing, looking up a configuration */
struct smx_conf	*conf_new(void);
void		 conf_free(struct smx_conf *);
void		 conf_print(FILE *, const struct smx_conf *);
struct smx_pki	*conf_pki(const struct smx_conf *, const char *);
struct smx_table *conf_table(const struct smx_conf *, const char *);
struct smx_domain *conf_domain(const struct smx_conf *, const char *);
struct smx_milter *conf_milter(const struct smx_conf *, const char *);
/* "tempfail", "accept", "reject" */
const char	*milter_on_error_name(enum smx_milter_error);
/*
 * "inet:ADDRESS:PORT" ("inet:[::1]:PORT" for IPv6) or "unix:/PATH":
 * 0 and the socket address (a unix path is checked only for its
 * form), or -1 with *errstr.
 */
int		 milter_address(const char *, struct sockaddr_storage *,
		    socklen_t *, const char **errstr);
/* "name", "[name]", "[1.2.3.4]:25", "[::1]:2525"; tls left alone. */
int		 parse_host(const char *, struct smx_host *,
		    const char **errstr);
/* Prints a host back in configuration syntax (without tls). */
void		 host_str(const struct smx_host *, char *, size_t);
/* "directory NAME: N entries from PATH" lines, as the lookup counted. */
void		 conf_tables_report(const struct smx_conf *, char *, size_t);
/*
 * The strictest TLS policy the configuration gives the destination
 * dest (host_str() syntax, "" for outbound by MX) in any "local to",
 * "forward to" or "outbound via": 0, or -1 if no host is that one.
 */
int		 conf_host_tls(const struct smx_conf *, const char *dest,
		    enum smx_tls *);
/* conf_diff.c: what a reload changes, one "changed: ..." line each */
void		 conf_changes(FILE *, const struct smx_conf *old,
		    const struct smx_conf *new);

/* conf_msg.c: shipping a configuration to the children */
int		 conf_send(struct msgchan *, const struct smx_conf *, int proc);
/* Children: feed IMSG_CONF_* here; returns the finished conf on DONE. */
int		 conf_recv(struct msg *, struct smx_conf **building);

/*
 * proc.c: the process table and what every child has in common.
 *
 * A process is what its line in the table says: its name ("-P name"),
 * its entry function and message handler, the step that prepares a new
 * configuration, its chroot, its system calls (sandbox.c), the
 * descriptors it may hold and what it is sent beyond the configuration.
 */
enum proc_root {
	ROOT_NONE,		/* the parent: it keeps its root */
	ROOT_EMPTY,		/* SPLITMX_EMPTY */
	ROOT_SPOOL		/* the configuration's queue directory */
};
#define F_PROC_PKI_KEYS		0x01	/* gets certificates and keys */
#define F_PROC_LISTENERS	0x02	/* ... the bound SMTP listeners */
#define F_PROC_TABLES		0x04	/* ... directory files, passwords */
#define F_PROC_SOCKETS		0x08	/* ... control, status, metrics */
#define F_PROC_PROBE		0x10	/* sandbox: kill(pid, 0) on others */
#define F_PROC_TLS_TRUST	0x20	/* ... trust anchors, CA store */
struct proc_ident {
	const char	*name;
	void		(*main)(void);		/* never returns */
	msg_handler	 imsg;
	/*
	 * A process that must prepare a new configuration before it can
	 * switch to it (the lookup process loads its tables) does so
	 * when all items have arrived, before the acknowledgement; -1
	 * with the buffer set refuses it (the reload fails, nothing
	 * changes).
	 */
	int		(*prepare)(struct smx_conf *, char *, size_t);
	/* Its part of the reply to a reload it accepted, or NULL. */
	void		(*report)(const struct smx_conf *, char *, size_t);
	/*
	 * splitmxctl stop: finish the work under way within the seconds
	 * given, take no new work, then call proc_stopped().  NULL: the
	 * process has nothing to finish and answers at once.
	 */
	void		(*stop)(unsigned int grace);
	enum proc_root	 root;
	const int	*syscalls;		/* sandbox.c, -1 ends it */
	rlim_t		 nofile;		/* descriptors it may open */
	int		 flags;			/* F_PROC_* */
};
#define PROC_TEXTSZ	(64 * 1024)	/* a refusal or a report, at most */
const struct proc_ident *proc_ident(int proc);
const char	*proc_name(int);
int		 proc_find(const char *name);	/* PROC_*, or -1 */

/*
 * A child is started by fork + exec of splitmxd with "-P name"; fd 3 is
 * its channel to the parent.  It receives the sibling channels and the
 * configuration, then its entry function (smtp(), lookup(), ...) is
 * called: that function does what must happen with privilege, calls
 * proc_drop_privileges(), sets up its events and runs event_dispatch().
 * Every message that reaches the process goes to its X_imsg() after
 * proc_imsg() had the first look (peers, configuration, verbosity):
 * X_imsg() is one switch, and an unknown type there is fatal.
 */
void		 proc_child(int proc);		/* never returns */
void		 proc_drop_privileges(void);
/*
 * Without -d a child's log records go to the parent over a datagram
 * socket at this descriptor; the parent writes them to syslog.
 */
#define PROC_LOG_FD	4
/* The stop is done here: IMSG_PROC_STOPPED with a line for the reply. */
void		 proc_stopped(const char *report);

/* sandbox.c: the seccomp filter, the last step of the drop. */
void		 sandbox_enter(int proc);
/* The system calls of each process beyond the common ones. */
extern const int sandbox_smtp[], sandbox_lookup[], sandbox_queue[],
		 sandbox_relay[], sandbox_control[], sandbox_filter[];
/* IMSG_CONF_APPLY in a child: swap in the new conf, return the old. */
struct smx_conf	*proc_conf_apply(struct msg *);
/* The common part of a child's dispatch: 1 if it handled the message. */
int		 proc_imsg(struct msgchan *, struct msg *);
/* Send to a sibling or the parent; a failure here is fatal. */
void		 proc_send(int peer, struct msg *);
void		 proc_compose(int peer, uint32_t type, uint32_t peerid, int fd,
		    const void *, size_t);
/* Fatal unless the message came from that peer (PROC_*). */
void		 proc_expect(struct msgchan *, struct msg *, int peer);
/* A lost peer ends the process: a half-working gateway is worse than none. */
void		 proc_lost(struct msgchan *);

/*
 * stats.c: counters every process keeps and sends to control in
 * batches (at most four times a second), never a message per event.
 * Names are the status socket's keys ("messages.accepted").
 */
void		 stat_add(const char *name, int64_t delta);
void		 stat_set(const char *name, int64_t value);	/* a gauge */
void		 stat_flush(void);

/* Process entry points and dispatchers (one file each). */
void		 smtp(void);
void		 smtp_imsg(struct msgchan *, struct msg *, void *);
void		 smtp_stop(unsigned int);
int		 smtp_conf_prepare(struct smx_conf *, char *errbuf, size_t);
void		 lookup(void);
void		 lookup_imsg(struct msgchan *, struct msg *, void *);
int		 lookup_conf_prepare(struct smx_conf *, char *errbuf, size_t);
void		 queue(void);
void		 queue_imsg(struct msgchan *, struct msg *, void *);
void		 queue_stop(unsigned int);
void		 relay(void);
void		 relay_imsg(struct msgchan *, struct msg *, void *);
void		 control(void);
void		 control_imsg(struct msgchan *, struct msg *, void *);
void		 filter(void);
void		 filter_imsg(struct msgchan *, struct msg *, void *);

/*
 * route.c: where a recipient goes (lookup process).  The answer is what
 * IMSG_LOOKUP_RCPT_RESULT carries.
 */
struct route_result {
	enum lookup_verdict	 verdict;
	uint32_t		 code;		/* 250, 550, 451... */
	char			 text[128];	/* "5.7.1 Relaying denied" */
	enum route_class	 rclass;
	char			 rewritten[SMX_ADDRSZ];
	/* host syntax, "" DNS */
	char			 dest[SMX_HOSTSZ + 16];
	enum smx_tls		 tls;		/* dest's, as configured */
};
/* The rest of route.c and table.c is the lookup process' (lookup.h). */

/*
 * lookup.c, for splitmxd -n and the start of splitmxd (a reload is the
 * lookup process' to check): every directory read as the lookup process
 * will, errors and warnings to errfp ("FILE:LINE: ..."); -1 if any
 * table is bad.  Sets t->entries.
 */
int		 lookup_check_config(struct smx_conf *, FILE *errfp);
/*
 * dns.c, for the parent: do these DNSSEC trust anchors (a file's text)
 * load in libunbound?  0, or -1 with the reason.
 */
int		 dns_check_anchors(const char *, char *err, size_t errlen);

/* table_file.c: the directory file (SPEC §4) */
enum dir_kind {
	DIR_LOCAL,
	DIR_CUSTOM
};
struct table_file;
/*
 * Loads a directory from an open descriptor (the parent opens it);
 * name is the file name used in "FILE:LINE: message" errors, which are
 * written to errfp (all of them).  NULL if the file had any error.
 */
struct table_file *table_file_load(int fd, const char *name, FILE *errfp);
void		 table_file_free(struct table_file *);
size_t		 table_file_count(const struct table_file *);
/*
 * Exact lookup of a lower-cased key ("alice@example.com" or
 * "@sales.example.com"); the target is NULL for a custom entry without
 * a target (the address itself).  0 found, -1 not found.
 */
int		 table_file_get(const struct table_file *, const char *key,
		    enum dir_kind *, const char **target);
/* Custom chains that cycle (more than 8 steps): errors to errfp; -1. */
int		 table_file_check_cycles(const struct table_file *,
		    const char *name, FILE *errfp);
/* As table_file_get, with the line: the entry's index, or -1. */
ssize_t		 table_file_find(const struct table_file *, const char *key,
		    enum dir_kind *, const char **target, uint32_t *line);
/* The i-th entry in key order: 0, or -1 past the end. */
int		 table_file_entry(const struct table_file *, size_t i,
		    const char **key, enum dir_kind *, const char **target,
		    uint32_t *line);
/*
 * An address of the directory, lower-cased: NULL if good, else why not.
 * "@domain" (a whole domain) only if whole_domain_ok.
 */
const char	*table_file_check_addr(const char *, int whole_domain_ok);

/*
 * tls_policy.c: the one order of authenticated outbound TLS (SPEC §11),
 * for the relay, which applies it to each MX host it connects to, and
 * for the lookup process, which explains it (splitmxctl lookup).  DANE
 * when the host has usable TLSA records, else MTA-STS when a policy
 * applies, else the configured policy (dane falls back to
 * opportunistic, dane-only to no delivery).
 */
enum tlsa_state {
	TLSA_UNASKED,		/* no DANE policy, or DNS not DNSSEC-secure */
	TLSA_NONE,		/* validated: no TLSA record for the host */
	TLSA_FOUND,		/* validated TLSA records (usable or not) */
	TLSA_FAILED,		/* bogus, SERVFAIL, timeout: host unusable */
	TLSA_STATE_COUNT
};
enum sts_mode {
	STS_NONE,		/* no policy applies */
	STS_TESTING,
	STS_ENFORCE,
	STS_MODE_COUNT
};
/* What the lookup process found out about one MX host. */
struct tls_host {
	int		 secure;	/* MX and addresses DNSSEC-validated */
	enum tlsa_state	 tlsa;
	int		 ntlsa;		/* records found */
	int		 nusable;	/* ... usable: usage 2/3, known types */
	const char	*tlsa_error;	/* TLSA_FAILED: what failed */
	enum sts_mode	 sts;		/* the domain's MTA-STS policy */
	int		 sts_match;	/* the host is one of its mx patterns */
};
enum tls_mode {
	TLSM_NONE,		/* no STARTTLS */
	TLSM_MAY,		/* opportunistic: TLS when offered */
	TLSM_ENCRYPT,		/* TLS required, not authenticated */
	TLSM_PKIX,		/* ... chain to the CA store, name (verify) */
	TLSM_STS,		/* ... the same, for an MTA-STS policy */
	TLSM_DANE,		/* ... a match with a usable TLSA record */
	TLSM_REFUSE,		/* this host may not be used: why says */
	TLSM_COUNT
};
/*
 * The mode for a host under the configured policy tls, and why in
 * words; *testing is set when an MTA-STS policy in testing mode should
 * be checked and reported on without being enforced.
 */
enum tls_mode	 tls_policy_decide(enum smx_tls tls, const char *host,
		    const struct tls_host *, int *testing, char *why,
		    size_t whylen);
/* "none", "opportunistic", "encrypt", "pkix", "mta-sts", "dane"... */
const char	*tls_mode_name(enum tls_mode);
/* What a connection in that mode verified: "dane", "mta-sts", "pkix". */
const char	*tls_mode_verified(enum tls_mode);
/* A TLSA record this client can use (RFC 7672 §3.1): 1 or 0. */
int		 tls_tlsa_usable(uint8_t usage, uint8_t selector,
		    uint8_t mtype, size_t len);

#endif
