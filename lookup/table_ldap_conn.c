/*
 * The LDAP tables' connections: one per server list, to the first
 * server that answers (resolved by dns.c, StartTLS or ldaps, always a
 * bind), failover to the next, fail-back to the first, and the outage
 * state in which searches are answered at once.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <event.h>
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
#include "table_ldap.h"

#define TL_BACKOFF_MIN	1		/* seconds between reconnections */
#define TL_BACKOFF_MAX	15
#define TL_TLS_MAXWAIT	5		/* the TLS handshake blocks: bound */
#define TL_DEF_CA	"/etc/ssl/certs/ca-certificates.crt"

/*
 * libldap gives a context back with a reference held for the caller;
 * this (exported, but not in its public headers) drops that reference.
 */
void	ldap_pvt_tls_ctx_free(void *);

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

/* DNS answers for a connection that may be gone by then. */
struct tl_resolve {
	struct tl_conn		*conn;
};

static int	 tl_parse_urls(struct tl_conn *, const char *, FILE *,
		    const char *);
static struct tl_tls *tl_tls_get(const char *, FILE *, const char *);
static void	 tl_tls_put(struct tl_tls *);
static void	 tl_conn_free(struct tl_conn *);
static void	 tl_conn_try(struct tl_conn *);
static void	 tl_conn_resolved(void *, int, const struct sockaddr_storage *,
		    int);
static void	 tl_conn_connect_cb(int, short, void *);
static void	 tl_conn_connected(struct tl_conn *);
static void	 tl_conn_bind(struct tl_conn *);
static void	 tl_conn_ready(struct tl_conn *);
static void	 tl_conn_next(struct tl_conn *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
static void	 tl_conn_round_failed(struct tl_conn *);
static void	 tl_conn_failback(struct tl_conn *);
static void	 tl_conn_teardown(struct tl_conn *);
static void	 tl_conn_timer(int, short, void *);
static void	 tl_conn_arm(struct tl_conn *, time_t);
static void	 tl_conn_read(int, short, void *);
static int	 tl_conn_control(struct tl_conn *, LDAPMessage *);
static const char *tl_ld_error(LDAP *);

static TAILQ_HEAD(, tl_tls)	 tls_ctxs = TAILQ_HEAD_INITIALIZER(tls_ctxs);

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

struct tl_conn *
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

int
tl_conn_same(const struct tl_conn *c, const struct smx_table *t)
{
	time_t	 timeout = t->timeout > 0 ? t->timeout : DEF_LDAP_TIMEOUT;

	return strcmp(c->urls_str, t->url) == 0 &&
	    strcmp(c->binddn, t->binddn) == 0 &&
	    strcmp(c->bindpw, t->bindpw) == 0 &&
	    strcmp(c->ca, t->ca) == 0 && c->starttls == t->starttls &&
	    c->timeout == timeout && c->failback == t->failback;
}

void
tl_conn_unref(struct tl_conn *c)
{
	if (--c->refs > 0)
		return;
	/* Inside one of its callbacks: freed when that returns. */
	if (c->busy == 0)
		tl_conn_free(c);
}

/* The end of a callback: the connection may have lost its last table. */
void
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
void
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
	/* Names are resolved by dns.c: the chroot has no resolv.conf. */
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
void
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
