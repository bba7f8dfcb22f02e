/*
 * LDAP directory tables (SPEC §3 "table NAME ldap", §4): searches on one
 * asynchronous connection per server list, failover, a bounded cache
 * that also covers outages, and 451 rather than a guess when in doubt.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <lber.h>
#include <ldap.h>
#include <openldap.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "splitmx.h"
#include "lookup.h"

#define TL_MAXURLS	8
#define TL_CACHE_MAX	100000		/* entries per table */
#define TL_HASH_SIZE	65536		/* buckets, a power of two */
#define TL_STALE_MAX	86400		/* found answers served in outages */
#define TL_BACKOFF_MIN	1		/* seconds between reconnections */
#define TL_BACKOFF_MAX	15
#define TL_RETRY_ASKED	2		/* a lookup in an outage retries */
#define TL_TLS_MAXWAIT	5		/* the TLS handshake blocks: bound */
#define TL_DEF_CA	"/etc/ssl/certs/ca-certificates.crt"

/*
 * libldap gives a context back with a reference held for the caller;
 * this (exported, but not in its public headers) drops that reference.
 */
void	ldap_pvt_tls_ctx_free(void *);

/* One server of the url list. */
struct tl_url {
	char		 url[SMX_HOSTSZ + 16];	/* "ldap://host:port" */
	char		 host[SMX_HOSTSZ];
	uint16_t	 port;
	int		 ldaps;
};

/*
 * A TLS context with its CA certificates: read once, before the lookup
 * process is chrooted, and shared by every connection that uses that
 * CA file (a reload in the chroot cannot read a new one).
 */
struct tl_tls {
	TAILQ_ENTRY(tl_tls)	 entry;
	int			 refs;
	char			 ca[PATH_MAX];
	LDAP			*tmpl;		/* holds the context */
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

/* DNS answers for a connection that may be gone by then. */
struct tl_resolve {
	struct tl_conn		*conn;
};

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

struct tl_centry {
	TAILQ_ENTRY(tl_centry)	 lru;
	struct tl_centry	*next;		/* hash chain */
	uint32_t		 hash;
	time_t			 expires;
	int			 found;
	enum dir_kind		 kind;
	char			*key;		/* one allocation: key, */
	char			*target;	/* target and source */
	char			*source;
};

/* Answers of one question (base, filter, attribute), kept for ttl. */
struct tl_cache {
	int			 refs;
	char			 base[512];
	char			 filter[512];
	char			 target_attr[128];
	time_t			 ttl;
	size_t			 n;
	struct tl_centry	**buckets;
	TAILQ_HEAD(tl_centry_lru, tl_centry) lru;
};

struct table_ldap {
	char			 name[SMX_NAMESZ];
	char			 base[512];
	char			 filter[512];
	char			 target_attr[128];
	struct tl_conn		*conn;		/* NULL in the parent's check */
	struct tl_cache		*cache;		/* NULL without "cache" */
};

static int	 tl_parse_urls(struct tl_conn *, const char *, FILE *,
		    const char *);
static struct tl_tls *tl_tls_get(const char *, FILE *, const char *);
static void	 tl_tls_put(struct tl_tls *);
static struct tl_conn *tl_conn_new(struct smx_table *, FILE *);
static int	 tl_conn_same(const struct tl_conn *,
		    const struct smx_table *);
static void	 tl_conn_unref(struct tl_conn *);
static void	 tl_conn_release(struct tl_conn *);
static void	 tl_conn_free(struct tl_conn *);
static void	 tl_conn_start(struct tl_conn *);
static void	 tl_conn_try(struct tl_conn *);
static void	 tl_conn_resolved(void *, int, const struct sockaddr_storage *,
		    int);
static void	 tl_conn_connect_cb(int, short, void *);
static void	 tl_conn_connected(struct tl_conn *);
static void	 tl_conn_bind(struct tl_conn *);
static void	 tl_conn_ready(struct tl_conn *);
static void	 tl_conn_next(struct tl_conn *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
static void	 tl_conn_lost(struct tl_conn *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
static void	 tl_conn_round_failed(struct tl_conn *);
static void	 tl_conn_failback(struct tl_conn *);
static void	 tl_conn_teardown(struct tl_conn *);
static void	 tl_conn_timer(int, short, void *);
static void	 tl_conn_arm(struct tl_conn *, time_t);
static void	 tl_conn_read(int, short, void *);
static int	 tl_conn_control(struct tl_conn *, LDAPMessage *);
static const char *tl_ld_error(LDAP *);
static void	 tl_op_send(struct tl_op *);
static void	 tl_op_timeout(int, short, void *);
static void	 tl_op_message(struct tl_conn *, struct tl_op *,
		    LDAPMessage *);
static void	 tl_op_entry(struct tl_conn *, struct tl_op *,
		    LDAPMessage *);
static void	 tl_op_result(struct tl_conn *, struct tl_op *,
		    LDAPMessage *);
static void	 tl_op_unavailable(struct tl_op *, const char *);
static void	 tl_op_free(struct tl_op *);
static struct tl_cache *tl_cache_new(struct smx_table *);
static void	 tl_cache_unref(struct tl_cache *);
static uint32_t	 tl_hash(const char *);
static struct tl_centry *tl_cache_find(struct tl_cache *, const char *);
static void	 tl_cache_put(struct tl_cache *, const struct table_query *);
static void	 tl_cache_drop(struct tl_cache *, struct tl_centry *);
static void	 tl_cache_answer(struct table_query *,
		    const struct tl_centry *, const char *);
static void	 tl_source(struct table_query *, const char *, const char *,
		    const char *);
static void	 tl_fmt(char *, size_t, const char *, ...)
		    __attribute__((__format__ (printf, 3, 4)));

static TAILQ_HEAD(, tl_tls)	 tls_ctxs = TAILQ_HEAD_INITIALIZER(tls_ctxs);

/*
 * RFC 4515 section 3: the octets that may not stand for themselves in
 * an assertion value, and anything outside printable ASCII to be safe
 * (an escaped octet is the same octet to the server).
 */
int
table_ldap_escape(const char *s, size_t len, char *out, size_t outlen)
{
	static const char	 hex[] = "0123456789abcdef";
	unsigned char		 c;
	size_t			 i, o = 0;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '*' || c == '(' || c == ')' || c == '\\' ||
		    c < 0x20 || c >= 0x7f) {
			if (o + 3 >= outlen)
				return -1;
			out[o++] = '\\';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0x0f];
		} else {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)c;
		}
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return 0;
}

int
table_ldap_filter(const char *filter, const char *key, char *out,
    size_t outlen)
{
	const char	*p, *at, *part;
	size_t		 o = 0, len, partlen;

	at = strrchr(key, '@');
	for (p = filter; *p != '\0'; p++) {
		if (*p != '%') {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = *p;
			continue;
		}
		switch (p[1]) {
		case '%':
			if (o + 1 >= outlen)
				return -1;
			out[o++] = '%';
			p++;
			continue;
		case 's':
			part = key;
			partlen = strlen(key);
			break;
		case 'u':
			part = key;
			partlen = at != NULL ? (size_t)(at - key) : strlen(key);
			break;
		case 'd':
			part = at != NULL ? at + 1 : "";
			partlen = strlen(part);
			break;
		default:
			return -1;	/* parse.y refuses it */
		}
		p++;
		if (table_ldap_escape(part, partlen, out + o, outlen - o) == -1)
			return -1;
		len = strlen(out + o);
		o += len;
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return 0;
}

struct table_ldap *
table_ldap_open(struct smx_table *t, struct table_ldap *old, FILE *errfp)
{
	struct table_ldap	*tl;
	char			 test[1024];

	/* Our settings are the configuration's, not ldap.conf(5)'s. */
	if (setenv("LDAPNOINIT", "1", 1) == -1) {
		fprintf(errfp, "table %s: setenv: %s\n", t->name,
		    strerror(errno));
		return NULL;
	}
	if (table_ldap_filter(t->filter, "local@example.com", test,
	    sizeof(test)) == -1 || t->filter[0] != '(' ||
	    t->filter[strlen(t->filter) - 1] != ')') {
		fprintf(errfp, "table %s: filter \"%s\" is not an LDAP "
		    "filter in parentheses\n", t->name, t->filter);
		return NULL;
	}
	if ((tl = calloc(1, sizeof(*tl))) == NULL) {
		fprintf(errfp, "table %s: %s\n", t->name, strerror(errno));
		return NULL;
	}
	strlcpy(tl->name, t->name, sizeof(tl->name));
	strlcpy(tl->base, t->base, sizeof(tl->base));
	strlcpy(tl->filter, t->filter, sizeof(tl->filter));
	strlcpy(tl->target_attr, t->target_attr, sizeof(tl->target_attr));

	/* A reload keeps the connection, and the cache, that still fit. */
	if (old != NULL && old->conn != NULL && tl_conn_same(old->conn, t)) {
		tl->conn = old->conn;
		tl->conn->refs++;
	} else if ((tl->conn = tl_conn_new(t, errfp)) == NULL) {
		free(tl);
		return NULL;
	}
	if (t->cache > 0) {
		if (old != NULL && old->cache != NULL &&
		    old->cache->ttl == t->cache &&
		    strcmp(old->cache->base, t->base) == 0 &&
		    strcmp(old->cache->filter, t->filter) == 0 &&
		    strcmp(old->cache->target_attr, t->target_attr) == 0) {
			tl->cache = old->cache;
			tl->cache->refs++;
		} else if ((tl->cache = tl_cache_new(t)) == NULL) {
			fprintf(errfp, "table %s: %s\n", t->name,
			    strerror(errno));
			table_ldap_close(tl);
			return NULL;
		}
	}
	return tl;
}

size_t
table_ldap_count(const struct table_ldap *tl)
{
	/* Entries are the server's to count; a cache is not a table. */
	(void)tl;
	return 0;
}

void
table_ldap_close(struct table_ldap *tl)
{
	if (tl == NULL)
		return;
	if (tl->conn != NULL)
		tl_conn_unref(tl->conn);
	if (tl->cache != NULL)
		tl_cache_unref(tl->cache);
	free(tl);
}

void
table_ldap_lookup(struct table_ldap *tl, struct table_query *q)
{
	struct tl_conn		*c = tl->conn;
	struct tl_centry	*ce;
	struct tl_op		*op;
	struct timeval		 tv;

	if (tl->cache != NULL && (ce = tl_cache_find(tl->cache, q->key)) !=
	    NULL && ce->expires > time(NULL)) {
		TAILQ_REMOVE(&tl->cache->lru, ce, lru);
		TAILQ_INSERT_HEAD(&tl->cache->lru, ce, lru);
		tl_cache_answer(q, ce, "cache");
		q->done(q);
		return;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL) {
		log_warn("table %s: calloc", tl->name);
		q->status = TABLE_TEMPFAIL;
		q->done(q);
		return;
	}
	op->conn = c;
	op->tl = tl;
	op->q = q;
	op->msgid = -1;

	/*
	 * In an outage the answer is now, not after a timeout; mail that
	 * comes in tries the servers again sooner than the backoff would.
	 */
	c->busy++;
	if (c->down && c->state != TL_READY) {
		tl_op_unavailable(op, c->err);
		if (c->state == TL_DOWN && c->refs > 0 &&
		    time(NULL) - c->round >= TL_RETRY_ASKED)
			tl_conn_start(c);
		tl_conn_release(c);
		return;
	}
	evtimer_set(&op->timer, tl_op_timeout, op);
	tv.tv_sec = c->timeout;
	tv.tv_usec = 0;
	evtimer_add(&op->timer, &tv);
	if (c->state == TL_READY) {
		TAILQ_INSERT_TAIL(&c->sent, op, entry);
		tl_op_send(op);
	} else {
		TAILQ_INSERT_TAIL(&c->waiting, op, entry);
		if (c->state == TL_IDLE)
			tl_conn_start(c);
	}
	tl_conn_release(c);
}

/* "ldap://h:p ldaps://h" into the list, each checked. */
static int
tl_parse_urls(struct tl_conn *c, const char *s, FILE *errfp,
    const char *name)
{
	char		 buf[1024], url[sizeof(c->urls[0].url)], *p, *u;
	LDAPURLDesc	*lud;
	struct tl_url	*tu;
	int		 n, v6;

	if (strlcpy(buf, s, sizeof(buf)) >= sizeof(buf)) {
		fprintf(errfp, "table %s: url is too long\n", name);
		return -1;
	}
	p = buf;
	while ((u = strsep(&p, " \t")) != NULL) {
		if (*u == '\0')
			continue;
		if (c->nurls == TL_MAXURLS) {
			fprintf(errfp, "table %s: more than %d servers\n",
			    name, TL_MAXURLS);
			return -1;
		}
		if (ldap_url_parse(u, &lud) != LDAP_URL_SUCCESS) {
			fprintf(errfp, "table %s: invalid url \"%s\"\n", name,
			    u);
			return -1;
		}
		tu = &c->urls[c->nurls];
		tu->ldaps = strcasecmp(lud->lud_scheme, "ldaps") == 0;
		if ((!tu->ldaps && strcasecmp(lud->lud_scheme, "ldap") != 0) ||
		    lud->lud_host == NULL || lud->lud_host[0] == '\0' ||
		    (lud->lud_dn != NULL && lud->lud_dn[0] != '\0') ||
		    lud->lud_port < 0 || lud->lud_port > 65535 ||
		    strlcpy(tu->host, lud->lud_host, sizeof(tu->host)) >=
		    sizeof(tu->host)) {
			fprintf(errfp, "table %s: invalid url \"%s\": "
			    "ldap://host[:port] or ldaps://host[:port]\n",
			    name, u);
			ldap_free_urldesc(lud);
			return -1;
		}
		tu->port = lud->lud_port != 0 ? (uint16_t)lud->lud_port :
		    (tu->ldaps ? LDAPS_PORT : LDAP_PORT);
		ldap_free_urldesc(lud);
		v6 = strchr(tu->host, ':') != NULL;
		n = snprintf(url, sizeof(url), "%s://%s%s%s:%u",
		    tu->ldaps ? "ldaps" : "ldap", v6 ? "[" : "", tu->host,
		    v6 ? "]" : "", tu->port);
		if (n < 0 || (size_t)n >= sizeof(url) ||
		    strlcpy(tu->url, url, sizeof(tu->url)) >= sizeof(tu->url)) {
			fprintf(errfp, "table %s: url \"%s\" is too long\n",
			    name, u);
			return -1;
		}
		c->nurls++;
	}
	if (c->nurls == 0) {
		fprintf(errfp, "table %s: no url\n", name);
		return -1;
	}
	return 0;
}

/*
 * The CA file is read here, which must happen before the privilege
 * drop: libldap reads it when the context is made, and the chrooted
 * lookup process could not.  Every later connection shares it.
 */
static struct tl_tls *
tl_tls_get(const char *ca, FILE *errfp, const char *name)
{
	struct tl_tls	*tt;
	int		 v, rc;

	TAILQ_FOREACH(tt, &tls_ctxs, entry)
		if (strcmp(tt->ca, ca) == 0) {
			tt->refs++;
			return tt;
		}
	if ((tt = calloc(1, sizeof(*tt))) == NULL) {
		fprintf(errfp, "table %s: %s\n", name, strerror(errno));
		return NULL;
	}
	strlcpy(tt->ca, ca, sizeof(tt->ca));
	if ((rc = ldap_initialize(&tt->tmpl, NULL)) != LDAP_SUCCESS) {
		fprintf(errfp, "table %s: ldap_initialize: %s\n", name,
		    ldap_err2string(rc));
		free(tt);
		return NULL;
	}
	v = LDAP_OPT_X_TLS_DEMAND;
	if (access(ca, R_OK) == -1) {
		fprintf(errfp, "table %s: ca \"%s\": %s%s\n", name, ca,
		    strerror(errno), env->proc == PROC_LOOKUP ?
		    " (CA files are read before the lookup process is "
		    "chrooted: a new one needs a restart of splitmxd)" : "");
		goto fail;
	}
	if (ldap_set_option(tt->tmpl, LDAP_OPT_X_TLS_REQUIRE_CERT, &v) !=
	    LDAP_OPT_SUCCESS ||
	    ldap_set_option(tt->tmpl, LDAP_OPT_X_TLS_CACERTFILE, ca) !=
	    LDAP_OPT_SUCCESS) {
		fprintf(errfp, "table %s: cannot set the TLS options\n", name);
		goto fail;
	}
	v = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2;
	if (ldap_set_option(tt->tmpl, LDAP_OPT_X_TLS_PROTOCOL_MIN, &v) !=
	    LDAP_OPT_SUCCESS) {
		fprintf(errfp, "table %s: cannot set the TLS options\n", name);
		goto fail;
	}
	v = 0;	/* a client context */
	if (ldap_set_option(tt->tmpl, LDAP_OPT_X_TLS_NEWCTX, &v) !=
	    LDAP_OPT_SUCCESS) {
		fprintf(errfp, "table %s: ca \"%s\": cannot load the CA "
		    "certificates\n", name, ca);
		goto fail;
	}
	tt->refs = 1;
	TAILQ_INSERT_TAIL(&tls_ctxs, tt, entry);
	return tt;
 fail:
	ldap_unbind_ext(tt->tmpl, NULL, NULL);
	free(tt);
	return NULL;
}

static void
tl_tls_put(struct tl_tls *tt)
{
	if (tt == NULL || --tt->refs > 0)
		return;
	TAILQ_REMOVE(&tls_ctxs, tt, entry);
	ldap_unbind_ext(tt->tmpl, NULL, NULL);
	free(tt);
}

static struct tl_conn *
tl_conn_new(struct smx_table *t, FILE *errfp)
{
	struct tl_conn	*c;
	int		 i, tls = t->starttls;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		fprintf(errfp, "table %s: %s\n", t->name, strerror(errno));
		return NULL;
	}
	c->refs = 1;
	c->fd = -1;
	c->ctlmsgid = -1;
	TAILQ_INIT(&c->waiting);
	TAILQ_INIT(&c->sent);
	strlcpy(c->name, t->name, sizeof(c->name));
	strlcpy(c->urls_str, t->url, sizeof(c->urls_str));
	strlcpy(c->binddn, t->binddn, sizeof(c->binddn));
	strlcpy(c->bindpw, t->bindpw, sizeof(c->bindpw));
	strlcpy(c->ca, t->ca, sizeof(c->ca));
	c->starttls = t->starttls;
	c->timeout = t->timeout > 0 ? t->timeout : DEF_LDAP_TIMEOUT;
	c->failback = t->failback;
	if (tl_parse_urls(c, t->url, errfp, t->name) == -1) {
		tl_conn_free(c);
		return NULL;
	}
	for (i = 0; i < c->nurls; i++)
		if (c->urls[i].ldaps)
			tls = 1;
	if (tls && (c->tls = tl_tls_get(t->ca[0] != '\0' ? t->ca :
	    TL_DEF_CA, errfp, t->name)) == NULL) {
		tl_conn_free(c);
		return NULL;
	}
	return c;
}

static int
tl_conn_same(const struct tl_conn *c, const struct smx_table *t)
{
	time_t	 timeout = t->timeout > 0 ? t->timeout : DEF_LDAP_TIMEOUT;

	return strcmp(c->urls_str, t->url) == 0 &&
	    strcmp(c->binddn, t->binddn) == 0 &&
	    strcmp(c->bindpw, t->bindpw) == 0 &&
	    strcmp(c->ca, t->ca) == 0 && c->starttls == t->starttls &&
	    c->timeout == timeout && c->failback == t->failback;
}

static void
tl_conn_unref(struct tl_conn *c)
{
	if (--c->refs > 0)
		return;
	/* Inside one of its callbacks: freed when that returns. */
	if (c->busy == 0)
		tl_conn_free(c);
}

/* The end of a callback: the connection may have lost its last table. */
static void
tl_conn_release(struct tl_conn *c)
{
	if (--c->busy == 0 && c->refs == 0)
		tl_conn_free(c);
}

static void
tl_conn_free(struct tl_conn *c)
{
	struct tl_op	*op;

	tl_conn_teardown(c);
	if (event_initialized(&c->timer))
		evtimer_del(&c->timer);
	/* Every table is closed: nothing can wait on it any more. */
	while ((op = TAILQ_FIRST(&c->waiting)) != NULL) {
		TAILQ_REMOVE(&c->waiting, op, entry);
		tl_op_free(op);
	}
	while ((op = TAILQ_FIRST(&c->sent)) != NULL) {
		TAILQ_REMOVE(&c->sent, op, entry);
		tl_op_free(op);
	}
	tl_tls_put(c->tls);
	explicit_bzero(c->bindpw, sizeof(c->bindpw));
	free(c);
}

/* A round: every server in order, from the first. */
static void
tl_conn_start(struct tl_conn *c)
{
	c->round = time(NULL);
	c->cur = 0;
	c->err[0] = '\0';
	tl_conn_try(c);
}

static void
tl_conn_try(struct tl_conn *c)
{
	struct tl_resolve	*r;

	if (c->cur >= c->nurls) {
		tl_conn_round_failed(c);
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		tl_conn_next(c, "calloc: %s", strerror(errno));
		return;
	}
	r->conn = c;
	c->res = r;
	c->state = TL_RESOLVING;
	tl_conn_arm(c, c->timeout);
	/* Names are resolved by c-ares: the chroot has no resolv.conf. */
	dns_resolve(c->urls[c->cur].host, 0, tl_conn_resolved, r);
}

static void
tl_conn_resolved(void *arg, int status, const struct sockaddr_storage *ss,
    int n)
{
	struct tl_resolve	*r = arg;
	struct tl_conn		*c = r->conn;
	struct sockaddr_storage	 sa;
	socklen_t		 salen;
	int			 fd, one = 1;

	free(r);
	if (c == NULL)
		return;		/* the attempt was given up */
	c->res = NULL;
	c->busy++;
	if (status != DNS_OK || n < 1) {
		tl_conn_next(c, "cannot resolve %s", c->urls[c->cur].host);
		goto out;
	}
	sa = ss[0];
	if (sa.ss_family == AF_INET) {
		((struct sockaddr_in *)&sa)->sin_port =
		    htons(c->urls[c->cur].port);
		salen = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)&sa)->sin6_port =
		    htons(c->urls[c->cur].port);
		salen = sizeof(struct sockaddr_in6);
	}
	if ((fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		tl_conn_next(c, "socket: %s", strerror(errno));
		goto out;
	}
	c->fd = fd;
	/* Searches are small writes, several in flight: no Nagle delay. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ==
	    -1) {
		tl_conn_next(c, "setsockopt: %s", strerror(errno));
		goto out;
	}
	c->state = TL_CONNECTING;
	if (connect(fd, (struct sockaddr *)&sa, salen) == 0) {
		tl_conn_connected(c);
		goto out;
	}
	if (errno != EINPROGRESS) {
		tl_conn_next(c, "connect: %s", strerror(errno));
		goto out;
	}
	event_set(&c->ev, fd, EV_WRITE, tl_conn_connect_cb, c);
	event_add(&c->ev, NULL);
 out:
	tl_conn_release(c);
}

static void
tl_conn_connect_cb(int fd, short event, void *arg)
{
	struct tl_conn	*c = arg;
	socklen_t	 len = sizeof(int);
	int		 err = 0;

	(void)event;
	c->busy++;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0)
		tl_conn_next(c, "connect: %s", strerror(err));
	else
		tl_conn_connected(c);
	tl_conn_release(c);
}

/* TCP is up: libldap takes the socket, then TLS, then the bind. */
static void
tl_conn_connected(struct tl_conn *c)
{
	struct tl_url	*u = &c->urls[c->cur];
	struct timeval	 tv;
	void		*ctx = NULL;
	int		 rc, v;

	if ((rc = ldap_init_fd(c->fd, LDAP_PROTO_TCP, u->url, &c->ld)) !=
	    LDAP_SUCCESS) {
		c->ld = NULL;
		tl_conn_next(c, "ldap_init_fd: %s", ldap_err2string(rc));
		return;
	}
	v = LDAP_VERSION3;
	tv.tv_sec = c->timeout < TL_TLS_MAXWAIT ? c->timeout : TL_TLS_MAXWAIT;
	tv.tv_usec = 0;
	if (ldap_set_option(c->ld, LDAP_OPT_PROTOCOL_VERSION, &v) !=
	    LDAP_OPT_SUCCESS ||
	    ldap_set_option(c->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) !=
	    LDAP_OPT_SUCCESS ||
	    ldap_set_option(c->ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) !=
	    LDAP_OPT_SUCCESS) {
		tl_conn_next(c, "cannot set the connection's options");
		return;
	}
	if (c->tls != NULL && (u->ldaps || c->starttls)) {
		v = LDAP_OPT_X_TLS_DEMAND;
		if (ldap_get_option(c->tls->tmpl, LDAP_OPT_X_TLS_CTX, &ctx) !=
		    LDAP_OPT_SUCCESS || ctx == NULL) {
			tl_conn_next(c, "no TLS context");
			return;
		}
		rc = ldap_set_option(c->ld, LDAP_OPT_X_TLS_CTX, ctx);
		ldap_pvt_tls_ctx_free(ctx);
		if (rc != LDAP_OPT_SUCCESS || ldap_set_option(c->ld,
		    LDAP_OPT_X_TLS_REQUIRE_CERT, &v) != LDAP_OPT_SUCCESS) {
			tl_conn_next(c, "cannot set the TLS context");
			return;
		}
	}
	c->last_read = time(NULL);
	event_set(&c->ev, c->fd, EV_READ | EV_PERSIST, tl_conn_read, c);
	if (u->ldaps) {
		/*
		 * libldap's handshake polls the socket itself, for at most
		 * the network timeout: the one step that may wait.
		 */
		if ((rc = ldap_install_tls(c->ld)) != LDAP_SUCCESS) {
			tl_conn_next(c, "TLS: %s", tl_ld_error(c->ld));
			return;
		}
	}
	event_add(&c->ev, NULL);
	if (c->starttls && !u->ldaps) {
		if ((rc = ldap_extended_operation(c->ld, LDAP_EXOP_START_TLS,
		    NULL, NULL, NULL, &c->ctlmsgid)) != LDAP_SUCCESS) {
			tl_conn_next(c, "StartTLS: %s", ldap_err2string(rc));
			return;
		}
		c->state = TL_STARTTLS;
		tl_conn_arm(c, c->timeout);
		return;
	}
	tl_conn_bind(c);
}

/*
 * Always a bind, anonymous without "bind": its answer proves that the
 * server works, where a TCP connection to a hung one would not.
 */
static void
tl_conn_bind(struct tl_conn *c)
{
	struct berval	 cred;
	int		 rc;

	cred.bv_val = c->bindpw;
	cred.bv_len = strlen(c->bindpw);
	if ((rc = ldap_sasl_bind(c->ld, c->binddn[0] != '\0' ? c->binddn :
	    NULL, LDAP_SASL_SIMPLE, &cred, NULL, NULL, &c->ctlmsgid)) !=
	    LDAP_SUCCESS) {
		tl_conn_next(c, "bind: %s", ldap_err2string(rc));
		return;
	}
	c->state = TL_BINDING;
	tl_conn_arm(c, c->timeout);
}

static void
tl_conn_ready(struct tl_conn *c)
{
	struct tl_op	*op;
	time_t		 now = time(NULL);

	c->state = TL_READY;
	c->ctlmsgid = -1;
	c->backoff = 0;
	evtimer_del(&c->timer);
	if (c->cur > 0 && c->failback > 0)
		tl_conn_arm(c, c->failback);
	if (c->failingback) {
		if (c->cur == 0)
			log_info("table %s: back on %s", c->name,
			    c->urls[0].url);
		else
			log_info("table %s: staying on %s: %s", c->name,
			    c->urls[c->cur].url, c->err[0] != '\0' ? c->err :
			    "the servers before it failed");
	} else if (c->down)
		log_info("table %s: directory available again: %s answers "
		    "(after %lld s)", c->name, c->urls[c->cur].url,
		    (long long)(now - c->down_since));
	else if (c->cur > 0)
		log_warnx("table %s: using %s (%s)", c->name,
		    c->urls[c->cur].url, c->err[0] != '\0' ? c->err :
		    "the servers before it failed");
	else
		log_debug("table %s: connected to %s", c->name,
		    c->urls[c->cur].url);
	c->down = 0;
	c->failingback = 0;
	c->err[0] = '\0';
	while (c->state == TL_READY &&
	    (op = TAILQ_FIRST(&c->waiting)) != NULL) {
		TAILQ_REMOVE(&c->waiting, op, entry);
		TAILQ_INSERT_TAIL(&c->sent, op, entry);
		tl_op_send(op);
	}
}

/* This server failed while connecting: the next one. */
static void
tl_conn_next(struct tl_conn *c, const char *fmt, ...)
{
	va_list	 ap;
	char	 why[200];

	va_start(ap, fmt);
	(void)vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	(void)snprintf(c->err, sizeof(c->err), "%s: %s",
	    c->urls[c->cur].url, why);
	if (c->down)
		log_debug("table %s: %s", c->name, c->err);
	else
		log_info("table %s: %s", c->name, c->err);
	tl_conn_teardown(c);
	c->cur++;
	tl_conn_try(c);
}

/*
 * The server in use failed: the searches on it go back to waiting
 * (each keeps its own deadline) and a new round starts at the first;
 * an idle connection is only closed, and made again when needed.
 */
static void
tl_conn_lost(struct tl_conn *c, const char *fmt, ...)
{
	struct tl_op	*op;
	va_list		 ap;
	char		 why[200];

	va_start(ap, fmt);
	(void)vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	(void)snprintf(c->err, sizeof(c->err), "%s: %s",
	    c->urls[c->cur].url, why);
	if (TAILQ_EMPTY(&c->sent) && TAILQ_EMPTY(&c->waiting)) {
		/* Idle (servers close idle connections): reconnect later. */
		log_info("table %s: connection closed: %s", c->name, c->err);
		tl_conn_teardown(c);
		return;
	}
	log_warnx("table %s: connection lost: %s", c->name, c->err);
	while ((op = TAILQ_LAST(&c->sent, tl_oplist)) != NULL) {
		TAILQ_REMOVE(&c->sent, op, entry);
		op->msgid = -1;
		TAILQ_INSERT_HEAD(&c->waiting, op, entry);
	}
	tl_conn_teardown(c);
	tl_conn_start(c);
}

/* No server answers: an outage, logged once, retried with backoff. */
static void
tl_conn_round_failed(struct tl_conn *c)
{
	struct tl_op	*op;

	tl_conn_teardown(c);
	c->state = TL_DOWN;
	c->failingback = 0;
	if (!c->down) {
		c->down = 1;
		c->down_since = time(NULL);
		log_warnx("table %s: directory unavailable, recipients of its "
		    "domains get 451 until it answers again: %s", c->name,
		    c->err[0] != '\0' ? c->err : "no server answers");
	}
	c->backoff = c->backoff == 0 ? TL_BACKOFF_MIN :
	    c->backoff * 2 > TL_BACKOFF_MAX ? TL_BACKOFF_MAX : c->backoff * 2;
	tl_conn_arm(c, c->backoff);
	while (c->state == TL_DOWN &&
	    (op = TAILQ_FIRST(&c->waiting)) != NULL) {
		TAILQ_REMOVE(&c->waiting, op, entry);
		tl_op_unavailable(op, c->err);
	}
}

/*
 * On a later server for "failback" seconds: a new round from the first
 * server, once no search is out.  Searches that come meanwhile wait
 * for the round, as at start; if the first server still fails, the
 * round ends on the one in use before.
 */
static void
tl_conn_failback(struct tl_conn *c)
{
	if (c->cur == 0)
		return;
	if (!TAILQ_EMPTY(&c->sent)) {
		tl_conn_arm(c, 1);
		return;
	}
	log_debug("table %s: trying %s again", c->name, c->urls[0].url);
	tl_conn_teardown(c);
	c->failingback = 1;
	tl_conn_start(c);
}

/* Back to no connection; searches in flight are the caller's. */
static void
tl_conn_teardown(struct tl_conn *c)
{
	c->gen++;
	if (c->res != NULL) {
		c->res->conn = NULL;
		c->res = NULL;
	}
	if (c->fd != -1 && event_initialized(&c->ev))
		event_del(&c->ev);
	if (c->ld != NULL) {
		/* Closes the socket, which libldap owns now. */
		ldap_unbind_ext(c->ld, NULL, NULL);
		c->ld = NULL;
	} else if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->ctlmsgid = -1;
	c->state = TL_IDLE;
}

static void
tl_conn_arm(struct tl_conn *c, time_t secs)
{
	struct timeval	 tv;

	if (!event_initialized(&c->timer))
		evtimer_set(&c->timer, tl_conn_timer, c);
	tv.tv_sec = secs;
	tv.tv_usec = 0;
	evtimer_add(&c->timer, &tv);
}

static void
tl_conn_timer(int fd, short event, void *arg)
{
	struct tl_conn	*c = arg;

	(void)fd;
	(void)event;
	c->busy++;
	switch (c->state) {
	case TL_DOWN:
		tl_conn_start(c);
		break;
	case TL_RESOLVING:
	case TL_CONNECTING:
	case TL_STARTTLS:
	case TL_BINDING:
		tl_conn_next(c, "no answer within %lld s",
		    (long long)c->timeout);
		break;
	case TL_READY:
		tl_conn_failback(c);
		break;
	case TL_IDLE:
		break;
	}
	tl_conn_release(c);
}

/* The socket is readable: every message libldap has, without waiting. */
static void
tl_conn_read(int fd, short event, void *arg)
{
	struct tl_conn	*c = arg;
	struct tl_op	*op;
	LDAPMessage	*msg;
	struct timeval	 zero = { 0, 0 };
	uint32_t	 gen = c->gen;
	int		 rc, id;

	(void)fd;
	(void)event;
	c->busy++;
	while (c->gen == gen && c->ld != NULL) {
		msg = NULL;
		rc = ldap_result(c->ld, LDAP_RES_ANY, LDAP_MSG_ONE, &zero,
		    &msg);
		if (rc == 0)
			break;
		if (rc == -1) {
			if (c->state == TL_READY)
				tl_conn_lost(c, "%s", tl_ld_error(c->ld));
			else
				tl_conn_next(c, "%s", tl_ld_error(c->ld));
			break;
		}
		c->last_read = time(NULL);
		id = ldap_msgid(msg);
		if (id == c->ctlmsgid && c->state != TL_READY) {
			(void)tl_conn_control(c, msg);
			ldap_msgfree(msg);
			continue;
		}
		if (rc == LDAP_RES_EXTENDED && id == 0) {
			/* A notice of disconnection. */
			ldap_msgfree(msg);
			tl_conn_lost(c, "the server closes the connection");
			break;
		}
		TAILQ_FOREACH(op, &c->sent, entry)
			if (op->msgid == id)
				break;
		/* Or a search given up (abandoned) that answers anyway. */
		if (op != NULL)
			tl_op_message(c, op, msg);
		ldap_msgfree(msg);
	}
	tl_conn_release(c);
}

/* The answer to StartTLS or to the bind. */
static int
tl_conn_control(struct tl_conn *c, LDAPMessage *msg)
{
	char	*diag = NULL;
	int	 rc, err = LDAP_OTHER;

	rc = ldap_parse_result(c->ld, msg, &err, NULL, &diag, NULL, NULL, 0);
	if (rc != LDAP_SUCCESS)
		err = rc;
	if (c->state == TL_STARTTLS) {
		ldap_memfree(diag);
		if (err != LDAP_SUCCESS) {
			tl_conn_next(c, "StartTLS refused: %s",
			    ldap_err2string(err));
			return -1;
		}
		if (ldap_install_tls(c->ld) != LDAP_SUCCESS) {
			tl_conn_next(c, "TLS: %s", tl_ld_error(c->ld));
			return -1;
		}
		tl_conn_bind(c);
		return 0;
	}
	if (c->state != TL_BINDING) {
		ldap_memfree(diag);
		return 0;
	}
	/* Anonymous: any answer shows a live server. */
	if (err != LDAP_SUCCESS && c->binddn[0] != '\0') {
		log_warnx("table %s: %s: bind as \"%s\" failed: %s%s%s",
		    c->name, c->urls[c->cur].url, c->binddn,
		    ldap_err2string(err), diag != NULL && *diag ? ": " : "",
		    diag != NULL ? diag : "");
		ldap_memfree(diag);
		tl_conn_next(c, "bind as \"%s\" failed: %s", c->binddn,
		    ldap_err2string(err));
		return -1;
	}
	ldap_memfree(diag);
	tl_conn_ready(c);
	return 0;
}

/* libldap's last error on ld, with its detail (TLS verification). */
static const char *
tl_ld_error(LDAP *ld)
{
	static char	 buf[200];
	char		*diag = NULL;
	int		 err = LDAP_OTHER;

	if (ld == NULL ||
	    ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &err) !=
	    LDAP_OPT_SUCCESS)
		return "unknown error";
	if (ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag) !=
	    LDAP_OPT_SUCCESS || diag == NULL || *diag == '\0' ||
	    strcmp(diag, "(unknown error code)") == 0) {
		ldap_memfree(diag);
		return ldap_err2string(err);
	}
	tl_fmt(buf, sizeof(buf), "%s: %s", ldap_err2string(err), diag);
	ldap_memfree(diag);
	return buf;
}

static void
tl_op_send(struct tl_op *op)
{
	struct tl_conn	*c = op->conn;
	char		 filter[2048];
	char		*attrs[2];
	int		 rc;

	if (table_ldap_filter(op->tl->filter, op->q->key, filter,
	    sizeof(filter)) == -1) {
		TAILQ_REMOVE(&c->sent, op, entry);
		log_warnx("table %s: %s: the filter is too long", op->tl->name,
		    op->q->key);
		tl_op_unavailable(op, "filter too long");
		return;
	}
	attrs[0] = op->tl->target_attr;
	attrs[1] = NULL;
	/* Two entries are enough to know the answer is ambiguous. */
	rc = ldap_search_ext(c->ld, op->tl->base, LDAP_SCOPE_SUBTREE, filter,
	    attrs, 0, NULL, NULL, NULL, 2, &op->msgid);
	if (rc == LDAP_SUCCESS) {
		op->sent = time(NULL);
		return;
	}
	if (rc == LDAP_FILTER_ERROR || rc == LDAP_PARAM_ERROR) {
		TAILQ_REMOVE(&c->sent, op, entry);
		log_warnx("table %s: %s: filter %s: %s", op->tl->name,
		    op->q->key, filter, ldap_err2string(rc));
		tl_op_unavailable(op, ldap_err2string(rc));
		return;
	}
	/* The connection broke under it: it goes back to waiting. */
	op->msgid = -1;
	tl_conn_lost(c, "search: %s", ldap_err2string(rc));
}

static void
tl_op_timeout(int fd, short event, void *arg)
{
	struct tl_op	*op = arg;
	struct tl_conn	*c = op->conn;
	char		 why[128];
	int		 hung;

	(void)fd;
	(void)event;
	c->busy++;
	(void)snprintf(why, sizeof(why), "%s: no answer within %lld s",
	    c->state == TL_READY ? c->urls[c->cur].url : c->name,
	    (long long)c->timeout);
	if (op->msgid != -1) {
		TAILQ_REMOVE(&c->sent, op, entry);
		(void)ldap_abandon_ext(c->ld, op->msgid, NULL, NULL);
		log_info("table %s: %s: %s", op->tl->name, op->q->key, why);
	} else
		TAILQ_REMOVE(&c->waiting, op, entry);
	/* Nothing at all from the server since it was asked: hung. */
	hung = op->msgid != -1 && c->state == TL_READY &&
	    c->last_read < op->sent + 1;
	tl_op_unavailable(op, why);
	if (hung && c->state == TL_READY)
		tl_conn_lost(c, "the server does not answer");
	tl_conn_release(c);
}

static void
tl_op_message(struct tl_conn *c, struct tl_op *op, LDAPMessage *msg)
{
	switch (ldap_msgtype(msg)) {
	case LDAP_RES_SEARCH_ENTRY:
		tl_op_entry(c, op, msg);
		break;
	case LDAP_RES_SEARCH_RESULT:
		tl_op_result(c, op, msg);
		break;
	default:
		/* References: a directory of our own has none to follow. */
		break;
	}
}

/* The entry's DN and its target attribute, the first value. */
static void
tl_op_entry(struct tl_conn *c, struct tl_op *op, LDAPMessage *msg)
{
	struct berval	**vals;
	char		 *dn;
	const char	 *v;
	size_t		  len, i;
	int		  n = op->nentries++;

	if (n >= 2)
		return;
	if ((dn = ldap_get_dn(c->ld, msg)) != NULL) {
		strlcpy(op->dn[n], dn, sizeof(op->dn[n]));
		ldap_memfree(dn);
	}
	if (n > 0)
		return;
	if ((vals = ldap_get_values_len(c->ld, msg, op->tl->target_attr)) ==
	    NULL)
		return;
	if (ldap_count_values_len(vals) < 1) {
		ldap_value_free_len(vals);
		return;
	}
	op->has_target = 1;
	v = vals[0]->bv_val;
	len = vals[0]->bv_len;
	/* Exchange writes "SMTP:" (primary) or "smtp:" before it. */
	if (len > 5 && strncasecmp(v, "smtp:", 5) == 0) {
		v += 5;
		len -= 5;
	}
	if (len == 0 || len >= sizeof(op->target)) {
		tl_fmt(op->bad, sizeof(op->bad), "%s is empty or too long",
		    op->tl->target_attr);
		ldap_value_free_len(vals);
		return;
	}
	for (i = 0; i < len; i++)
		if ((unsigned char)v[i] <= 0x20 || v[i] == 0x7f ||
		    v[i] == '<' || v[i] == '>')
			break;
	memcpy(op->target, v, len);
	op->target[len] = '\0';
	ldap_value_free_len(vals);
	if (i < len || strrchr(op->target, '@') == NULL ||
	    strrchr(op->target, '@') == op->target ||
	    strrchr(op->target, '@')[1] == '\0') {
		tl_fmt(op->bad, sizeof(op->bad), "%s is not an SMTP address",
		    op->tl->target_attr);
		op->target[0] = '\0';
		return;
	}
	str_lower(op->target);
}

/* The end of a search: the mapping of SPEC §4. */
static void
tl_op_result(struct tl_conn *c, struct tl_op *op, LDAPMessage *msg)
{
	struct table_ldap	*tl = op->tl;
	struct table_query	*q = op->q;
	const char		*url = c->urls[c->cur].url;
	char			*diag = NULL;
	char			 why[256];
	int			 rc, err = LDAP_OTHER;

	TAILQ_REMOVE(&c->sent, op, entry);
	evtimer_del(&op->timer);
	rc = ldap_parse_result(c->ld, msg, &err, NULL, &diag, NULL, NULL, 0);
	if (rc != LDAP_SUCCESS)
		err = rc;
	if (op->nentries >= 2) {
		log_warnx("table %s: %s: ambiguous, %s entries match (%s; %s"
		    "): fix the directory; recipients get 451 4.3.0 until then",
		    tl->name, q->key, err == LDAP_SIZELIMIT_EXCEEDED ?
		    "more than one" : "several", op->dn[0], op->dn[1]);
		ldap_memfree(diag);
		q->status = TABLE_TEMPFAIL;
		strlcpy(q->reply, "4.3.0 ambiguous directory entry",
		    sizeof(q->reply));
		tl_source(q, url, op->dn[0], "ambiguous");
		tl_op_free(op);
		q->done(q);
		return;
	}
	if (err != LDAP_SUCCESS) {
		(void)snprintf(why, sizeof(why), "%s: search: %s%s%s", url,
		    ldap_err2string(err), diag != NULL && *diag ? ": " : "",
		    diag != NULL ? diag : "");
		ldap_memfree(diag);
		log_warnx("table %s: %s: %s", tl->name, q->key, why);
		tl_op_unavailable(op, why);
		return;
	}
	ldap_memfree(diag);
	if (op->bad[0] != '\0') {
		log_warnx("table %s: %s: entry %s: %s: recipients get 451 "
		    "until it is fixed", tl->name, q->key, op->dn[0], op->bad);
		tl_fmt(why, sizeof(why), "%s dn=%s: %s", url, op->dn[0],
		    op->bad);
		q->status = TABLE_TEMPFAIL;
		strlcpy(q->source, why, sizeof(q->source));
		tl_op_free(op);
		q->done(q);
		return;
	}
	if (op->nentries == 0) {
		q->status = TABLE_NOTFOUND;
		tl_source(q, url, NULL, NULL);
	} else {
		q->status = TABLE_FOUND;
		q->kind = op->has_target ? DIR_CUSTOM : DIR_LOCAL;
		strlcpy(q->target, op->target, sizeof(q->target));
		tl_source(q, url, op->dn[0], NULL);
	}
	log_debug("table %s: %s: %s", tl->name, q->key, q->source);
	if (tl->cache != NULL)
		tl_cache_put(tl->cache, q);
	tl_op_free(op);
	q->done(q);
}

/*
 * No answer from the directory: a found answer still in the cache is
 * served for a while past its time (a mailbox that existed an hour ago
 * most likely still does); a cached "unknown" is not, because a 550 is
 * final for the sender, and a new mailbox would be refused.
 */
static void
tl_op_unavailable(struct tl_op *op, const char *why)
{
	struct table_query	*q = op->q;
	struct tl_cache		*cache = op->tl->cache;
	struct tl_centry	*ce;

	tl_op_free(op);
	if (cache != NULL && (ce = tl_cache_find(cache, q->key)) != NULL &&
	    ce->found && ce->expires + TL_STALE_MAX > time(NULL)) {
		tl_cache_answer(q, ce, "cache, directory unavailable");
		q->done(q);
		return;
	}
	q->status = TABLE_TEMPFAIL;
	strlcpy(q->source, why != NULL && *why ? why : "directory unavailable",
	    sizeof(q->source));
	q->done(q);
}

static void
tl_op_free(struct tl_op *op)
{
	if (event_initialized(&op->timer))
		evtimer_del(&op->timer);
	free(op);
}

/* "ldap://h:389 dn=uid=a,dc=x (cache)" for splitmxctl lookup. */
static void
tl_source(struct table_query *q, const char *url, const char *dn,
    const char *note)
{
	int	 n;

	if (dn != NULL)
		n = snprintf(q->source, sizeof(q->source), "%s dn=%s%s%s%s",
		    url, dn, note != NULL ? " (" : "", note != NULL ? note : "",
		    note != NULL ? ")" : "");
	else
		n = snprintf(q->source, sizeof(q->source), "%s: no entry",
		    url);
	if (n < 0)
		strlcpy(q->source, url, sizeof(q->source));
}

static struct tl_cache *
tl_cache_new(struct smx_table *t)
{
	struct tl_cache	*cache;

	if ((cache = calloc(1, sizeof(*cache))) == NULL)
		return NULL;
	if ((cache->buckets = calloc(TL_HASH_SIZE,
	    sizeof(*cache->buckets))) == NULL) {
		free(cache);
		return NULL;
	}
	cache->refs = 1;
	cache->ttl = t->cache;
	strlcpy(cache->base, t->base, sizeof(cache->base));
	strlcpy(cache->filter, t->filter, sizeof(cache->filter));
	strlcpy(cache->target_attr, t->target_attr,
	    sizeof(cache->target_attr));
	TAILQ_INIT(&cache->lru);
	return cache;
}

static void
tl_cache_unref(struct tl_cache *cache)
{
	struct tl_centry	*ce;

	if (--cache->refs > 0)
		return;
	while ((ce = TAILQ_FIRST(&cache->lru)) != NULL)
		tl_cache_drop(cache, ce);
	free(cache->buckets);
	free(cache);
}

/* FNV-1a */
static uint32_t
tl_hash(const char *s)
{
	uint32_t	 h = 2166136261U;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619U;
	}
	return h;
}

static struct tl_centry *
tl_cache_find(struct tl_cache *cache, const char *key)
{
	struct tl_centry	*ce;
	uint32_t		 h = tl_hash(key);

	for (ce = cache->buckets[h & (TL_HASH_SIZE - 1)]; ce != NULL;
	    ce = ce->next)
		if (ce->hash == h && strcmp(ce->key, key) == 0)
			return ce;
	return NULL;
}

static void
tl_cache_put(struct tl_cache *cache, const struct table_query *q)
{
	struct tl_centry	*ce;
	size_t			 klen, tlen, slen;
	uint32_t		 h;

	if ((ce = tl_cache_find(cache, q->key)) != NULL)
		tl_cache_drop(cache, ce);
	if (cache->n >= TL_CACHE_MAX)
		tl_cache_drop(cache, TAILQ_LAST(&cache->lru, tl_centry_lru));
	klen = strlen(q->key) + 1;
	tlen = strlen(q->target) + 1;
	slen = strlen(q->source) + 1;
	if ((ce = calloc(1, sizeof(*ce) + klen + tlen + slen)) == NULL)
		return;		/* not cached: asked again next time */
	ce->key = (char *)(ce + 1);
	ce->target = ce->key + klen;
	ce->source = ce->target + tlen;
	memcpy(ce->key, q->key, klen);
	memcpy(ce->target, q->target, tlen);
	memcpy(ce->source, q->source, slen);
	ce->found = q->status == TABLE_FOUND;
	ce->kind = q->kind;
	ce->expires = time(NULL) + cache->ttl;
	h = ce->hash = tl_hash(q->key);
	ce->next = cache->buckets[h & (TL_HASH_SIZE - 1)];
	cache->buckets[h & (TL_HASH_SIZE - 1)] = ce;
	TAILQ_INSERT_HEAD(&cache->lru, ce, lru);
	cache->n++;
}

static void
tl_cache_drop(struct tl_cache *cache, struct tl_centry *ce)
{
	struct tl_centry	**pp;

	for (pp = &cache->buckets[ce->hash & (TL_HASH_SIZE - 1)]; *pp != NULL;
	    pp = &(*pp)->next)
		if (*pp == ce) {
			*pp = ce->next;
			break;
		}
	TAILQ_REMOVE(&cache->lru, ce, lru);
	cache->n--;
	free(ce);
}

static void
tl_cache_answer(struct table_query *q, const struct tl_centry *ce,
    const char *note)
{
	int	 n;

	q->status = ce->found ? TABLE_FOUND : TABLE_NOTFOUND;
	q->kind = ce->kind;
	strlcpy(q->target, ce->target, sizeof(q->target));
	n = snprintf(q->source, sizeof(q->source), "%s (%s)", ce->source,
	    note);
	if (n < 0)
		strlcpy(q->source, ce->source, sizeof(q->source));
}

/* Log and reply texts, cut short where they do not fit. */
static void
tl_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}
