/*
 * The lookup process' own interfaces between lookup.c (the process) and
 * the modules it dispatches to.
 */
#ifndef SMX_LOOKUP_H
#define SMX_LOOKUP_H

#include "splitmx.h"

/*
 * dns.c: asynchronous, validating DNS (libunbound on the process' event
 * loop) for the relay's destinations and the lookup process itself.
 * Every answer carries its DNSSEC status; a bogus one is a temporary
 * failure, never "no record".  dns_init() runs before the privilege
 * drop (it reads /etc/resolv.conf); dns_conf_prepare() makes the
 * resolver context of a configuration (a new one when the resolver or
 * the trust anchors change), dns_conf_apply() switches to it.
 */
void	dns_init(void);
int	dns_conf_prepare(const struct smx_conf *, char *err, size_t errlen);
void	dns_conf_apply(void);
void	dns_conf_abort(void);
/* IMSG_LOOKUP_DNS_HOST: see "relay protocol" in splitmx.h. */
void	dns_host(struct msgchan *, struct msg *);
/*
 * The same resolution for the lookup process itself (the forward
 * hosts' addresses, for the loop check): the answer goes to cb, never
 * before dns_resolve() returns, with a DNS_* status and the addresses
 * (port 0) in the order dns_host() would send them.
 */
typedef void	(*dns_cb)(void *arg, int status,
		    const struct sockaddr_storage *, int naddrs);
void	dns_resolve(const char *name, int mx, dns_cb, void *arg);
/*
 * The A records of one name, asked as it is (no search list), for the
 * DNS lists: cb gets, never before dns_query_a() returns, a DNS_*
 * status (DNS_OK with at least one address; DNS_NXDOMAIN, DNS_NODATA,
 * or DNS_TEMPFAIL for a timeout, SERVFAIL, a busy resolver), at most
 * DNS_MAX_A addresses, and a TTL in seconds: the smallest of the
 * records' for DNS_OK, the negative TTL (RFC 2308) for DNS_NXDOMAIN
 * and DNS_NODATA where the library tells it, else 0 (unknown).
 */
#define DNS_MAX_A	16
typedef void	(*dns_query_cb)(void *arg, int status, const struct in_addr *,
		    int naddrs, uint32_t ttl);
void	dns_query_a(const char *name, dns_query_cb, void *arg);

/*
 * dnsbl.c: the DNS block and allow lists (SPEC §10).  IMSG_LOOKUP_CLIENT
 * and IMSG_CTL_CHECK_CLIENT: see "client protocol" in splitmx.h.
 */
void	dnsbl_client(struct msgchan *, struct msg *);
void	dnsbl_ctl(struct msgchan *, struct msg *);

/* One question, for the lookup process' own modules (mta_sts.c). */
enum dns_sec {
	DNS_SEC_INSECURE,
	DNS_SEC_BOGUS,
	DNS_SEC_SECURE
};
struct dns_answer {
	int		 status;	/* DNS_OK (rcode 0), DNS_NXDOMAIN, */
					/* DNS_TEMPFAIL (bogus included) */
	enum dns_sec	 sec;
	const char	*why;		/* what failed, or "" */
	const uint8_t	*pkt;		/* the answer, for dns_parse() */
	size_t		 len;
};
/*
 * dns_resolver.c: cb is called from the event loop, never before
 * dns_query() returns; dns_query() only once dns_ready().
 */
void	dns_query(const char *name, uint16_t type,
	    void (*cb)(void *, const struct dns_answer *), void *arg);
int	dns_ready(void);
const char *dns_sec_name(enum dns_sec);

/*
 * splitmxctl lookup: the destination's exchangers, addresses and what
 * the one order of outbound TLS (tls_policy.c) makes of each host.
 * The lines go to cb, one per host, then cb gets NULL; the summary
 * says what went wrong, or the domain's MTA-STS state.
 */
struct dns_explain_host {
	const char	*host;
	uint32_t	 pref;
	const char	*addrs;		/* "192.0.2.1, 2001:db8::1" */
	const char	*mode;		/* tls_mode_name() */
	const char	*why;
};
void	dns_explain(const char *name, int mx, uint16_t port, enum smx_tls,
	    void (*cb)(void *, const struct dns_explain_host *,
	    const char *summary), void *arg);

/*
 * dns_parse.c: the records of one answer, strictly bounded (the bytes
 * came from the network).
 */
#define DNS_T_A		1
#define DNS_T_CNAME	5
#define DNS_T_MX	15
#define DNS_T_TXT	16
#define DNS_T_AAAA	28
#define DNS_T_TLSA	52
#define DNS_TXT_MAX	1024	/* longer TXT text is cut: toolong */
#define DNS_MAXCNAME	8	/* CNAMEs followed in one answer */
struct dns_rr {
	uint16_t	 type;
	uint32_t	 ttl;
	const uint8_t	*rdata;		/* in the packet */
	uint16_t	 rdlen;
	/* By type: */
	struct in_addr	 a;
	struct in6_addr	 aaaa;
	uint16_t	 pref;			/* MX */
	char		 name[SMX_HOSTSZ];	/* MX, CNAME; "?" unusable */
	uint8_t		 usage, selector, mtype;	/* TLSA */
	const uint8_t	*data;
	size_t		 datalen;
	char		 text[DNS_TXT_MAX + 1];	/* TXT, strings joined */
	size_t		 textlen;
	int		 toolong;
};
int	dns_parse(const uint8_t *pkt, size_t len, const char *qname,
	    uint16_t qtype, int *rcode,
	    int (*cb)(void *, const struct dns_rr *), void *arg);

/*
 * mta_sts_parse.c: the MTA-STS TXT record and policy (RFC 8461), which
 * come from the network, and its MX patterns.
 */
#define STS_MAX_MX	32		/* mx lines in a policy */
#define STS_POLICY_MAX	(64 * 1024)	/* octets of a policy */
#define STS_IDSZ	33		/* 1 to 32 letters and digits */
struct sts_policy {
	enum sts_mode	 mode;		/* "none" is STS_NONE */
	uint32_t	 max_age;	/* seconds, at most a year */
	char		 mx[STS_MAX_MX][SMX_HOSTSZ];	/* "*.x" patterns */
	int		 nmx;
};
int	sts_parse_txt(const char *, size_t, char *id, size_t idlen);
int	sts_parse_policy(const char *, size_t, struct sts_policy *,
	    char *err, size_t errlen);
int	sts_mx_match(const struct sts_policy *, const char *host);

/*
 * mta_sts.c: the MTA-STS policy of a domain (RFC 8461): its TXT record,
 * the policy in memory or fetched over HTTPS, kept on disk by the queue
 * (IMSG_QUEUE_STS_STORE, IMSG_LOOKUP_STS_LOAD).  mta_sts_init() runs
 * before the privilege drop.  The answer's policy is NULL when none
 * applies; note says what happened, for the logs and splitmxctl.
 */
struct sts_answer {
	const struct sts_policy	*policy;
	const char		*id;
	time_t			 expires;
	const char		*note;
};
void	mta_sts_init(void);
void	mta_sts_get(const char *domain,
	    void (*cb)(void *, const struct sts_answer *), void *arg);
void	mta_sts_load(struct msgchan *, struct msg *);
void	mta_sts_loaded(struct msgchan *, struct msg *);

/*
 * table.c: the directory tables ("table NAME file|ldap", SPEC §4).
 * A lookup may be answered at once (file) or later (LDAP): the caller
 * fills a table_query and keeps it in place; table_lookup() calls
 * q->done exactly once, possibly before it returns.  A table answers
 * for the configuration it was opened for; table_reload() makes the one
 * for a new configuration while the old one goes on answering, and the
 * caller closes the old one once nothing waits on it.
 */
enum table_status {
	TABLE_FOUND,
	TABLE_NOTFOUND,
	TABLE_TEMPFAIL		/* cannot answer now: 451, never a bounce */
};

struct table_query {
	char		  key[SMX_ADDRSZ];	/* lower case: "a@x" or "@x" */
	void		(*done)(struct table_query *);
	void		 *arg;
	/* The answer. */
	enum table_status status;
	enum dir_kind	  kind;
	char		  target[SMX_ADDRSZ];	/* "": the address itself */
	char		  source[256];		/* "FILE:LINE", server, dn */
	/* TEMPFAIL with a reply of its own ("4.3.0 ..."), or "": 4.4.3. */
	char		  reply[128];
};

struct table;
struct table	*table_open(struct smx_table *, FILE *errfp);
struct table	*table_reload(struct table *old, struct smx_table *,
		    FILE *errfp);
void		 table_close(struct table *);
void		 table_lookup(struct table *, struct table_query *);
/* At once, for the configuration checks: -1 if the backend cannot. */
int		 table_lookup_now(struct table *, struct table_query *);
/*
 * The i-th entry of a table that can list its entries (a file), in
 * key order, for the configuration checks: 0, or -1 past the end.
 * Only the kind of a local entry is filled in; key, target and source
 * only for a custom one (what the checks look at).
 */
int		 table_entry(struct table *, size_t i, struct table_query *);
const char	*table_name(const struct table *);
size_t		 table_count(const struct table *);

/*
 * table_ldap.c: an LDAP directory ("table NAME ldap", SPEC §3, §4),
 * asked asynchronously, with failover, a bounded cache and the outage
 * answer (TEMPFAIL).  old: the same table of the configuration in
 * force, whose connection and cache may be shared.
 */
struct table_ldap;
struct table_ldap *table_ldap_open(struct smx_table *, struct table_ldap *old,
		    FILE *errfp);
void		 table_ldap_lookup(struct table_ldap *, struct table_query *);
size_t		 table_ldap_count(const struct table_ldap *);
void		 table_ldap_close(struct table_ldap *);
/*
 * RFC 4515 escaping of len bytes of s, and a filter with %s (the key),
 * %u (its local part), %d (its domain), %% put in: -1 if out is short.
 */
int		 table_ldap_escape(const char *s, size_t len, char *out,
		    size_t outlen);
int		 table_ldap_filter(const char *filter, const char *key,
		    char *out, size_t outlen);

/* Every table of one configuration, opened together. */
struct table_set {
	struct table	**tables;	/* in the order of conf->tables */
	size_t		  n;
};
/*
 * Opens every table of c, from the descriptors in c (closed here) or,
 * with use_fds 0, by opening the files.  NULL, with every error on
 * errfp, if any table is bad.  old: the set in force (may be NULL),
 * whose tables the new ones may share state with.  The routing checks
 * of the entries are route_check()'s, called by whoever opens the set.
 */
struct table_set *table_set_open(struct smx_conf *c, int use_fds,
		    struct table_set *old, FILE *errfp);
struct table	*table_set_find(const struct table_set *, const char *name);
void		 table_set_close(struct table_set *);

/*
 * lookup.c: a configuration and its tables, kept alive by whatever
 * still works on it (a lookup waiting for LDAP) across a reload.
 */
struct lookup_gen {
	struct smx_conf		*conf;
	struct table_set	*tables;
	int			 refs;
	int			 owns_conf;	/* applied: ours to free */
};
void		 lookup_gen_ref(struct lookup_gen *);
void		 lookup_gen_unref(struct lookup_gen *);

/*
 * route.c: where a recipient goes (SPEC §3, §4).  route_start() asks
 * the directory as often as the decision needs (exact address, without
 * +detail, whole domain, each step of a custom chain) and calls cb once
 * with the answer, possibly before it returns.  client is NULL for a
 * question from splitmxctl (a client neither trusted nor the forward
 * host).  With explain, cb also gets every step of the decision.
 */
#define ROUTE_MAXSTEPS	8	/* custom -> custom hops followed */

struct route_step {
	char		 addr[SMX_ADDRSZ];	/* the address looked up */
	char		 domain[SMX_HOSTSZ];	/* configured domain, or "" */
	char		 dtype[16];		/* its type */
	char		 table[SMX_NAMESZ];	/* its directory */
	char		 entry[SMX_ADDRSZ];	/* the entry that matched */
	char		 source[256];		/* where the entry is */
	enum lookup_step kind;
	char		 target[SMX_ADDRSZ];	/* a custom entry's target */
};

struct route_explain {
	char			 decision[SMX_ADDRSZ + 64];
	char			 policy[512];
	struct route_step	 steps[ROUTE_MAXSTEPS + 2];
	int			 nsteps;
};

typedef void	(*route_cb)(const struct route_result *,
		    const struct route_explain *, void *arg);
void		 route_start(struct lookup_gen *, const struct sockaddr *,
		    const char *rcpt, int explain, route_cb, void *arg);
/* Directory warnings for c (custom targets that would loop). */
void		 route_check(const struct smx_conf *,
		    const struct table_set *, FILE *warnfp);
/*
 * The forward hosts' addresses (the loop check of "unknown forward"):
 * resolved for the configuration in force, again every few minutes.
 */
void		 route_fwd_update(const struct smx_conf *);

#endif
