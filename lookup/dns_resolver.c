/*
 * The validating resolver under lookup/dns.c and the DNS lists: one
 * libunbound context per (resolver, trust anchors), driven by the
 * process' libevent loop, and one question at a time through it
 * (dns_query).  A reload that changes the resolver or the anchors
 * makes a new context; the old one answers what it owes and goes.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>
#include <unbound-event.h>

#include "splitmx.h"
#include "lookup.h"

#define DNS_MAX_SERVERS		3	/* nameservers of resolv.conf */
#define DNS_TIMEOUT		10	/* seconds for one question */
#define DNS_ERRSZ		256
#define DNS_RESOLV_CONF		"/etc/resolv.conf"

/*
 * One libunbound context: where questions go (the configured resolver
 * or the nameservers of resolv.conf) and what answers are validated
 * against (the trust anchors).  Neither can change once the context
 * has answered anything, so a reload that changes them makes a new
 * one; the old one answers what it was asked and goes.
 */
struct dns_ctx {
	TAILQ_ENTRY(dns_ctx)	 entry;
	struct ub_ctx		*ub;
	char			 resolver[128];	/* "" resolv.conf */
	char			*anchors;
	int			 nqueries;	/* libunbound still owes */
	int			 retired;
	int			 probed;
};

/*
 * One question.  libunbound calls back once, maybe from inside
 * ub_resolve_event() or ub_ctx_delete(): the answer is copied and
 * handed on from the event loop.  A question that times out is
 * answered as such at once and freed when libunbound lets go of it.
 */
struct dns_q {
	struct dns_ctx	*ctx;
	char		 name[SMX_HOSTSZ];
	uint16_t	 type;
	void		(*cb)(void *, const struct dns_answer *);
	void		*arg;
	struct event	 ev;		/* the timeout, then the delivery */
	int		 answered;	/* libunbound called back */
	int		 delivered;	/* cb called (answer or timeout) */
	int		 rcode;
	int		 sec;		/* libunbound's: 0, 1 bogus, 2 */
	char		 why[DNS_ERRSZ];
	uint8_t		*pkt;
	size_t		 len;
};

static void	dns_sysservers(void);
static struct dns_ctx *dns_ctx_new(const char *, const char *, char *,
		    size_t);
static int	dns_ctx_servers(struct ub_ctx *, const char *, char *, size_t);
static int	dns_ctx_anchors(struct ub_ctx *, const char *, char *, size_t);
static void	dns_ctx_retire(struct dns_ctx *);
static void	dns_ctx_gc(int, short, void *);
static void	dns_ctx_probe(struct dns_ctx *);
static void	dns_probe_answer(void *, const struct dns_answer *);
static void	dns_q_start(struct dns_ctx *, const char *, uint16_t,
		    void (*)(void *, const struct dns_answer *), void *);
static void	dns_q_answer(void *, int, void *, int, int, char *, int);
static void	dns_q_event(int, short, void *);
static void	dns_q_free(struct dns_q *);

static char			 sysservers[DNS_MAX_SERVERS][INET6_ADDRSTRLEN +
				    16];
static int			 nsysservers = -1;	/* not read yet */
static TAILQ_HEAD(, dns_ctx)	 ctxs = TAILQ_HEAD_INITIALIZER(ctxs);
static struct dns_ctx		*cur;		/* in force */
static struct dns_ctx		*next;		/* prepared by a reload */
static struct event		 ev_gc;
/*
 * Before the privilege drop: the nameservers of resolv.conf, which the
 * chroot does not have, for whenever no "resolver" is configured.
 */
void
dns_init(void)
{
	dns_sysservers();
	log_debug("event=dns-init libunbound=%s servers=%d", ub_version(),
	    nsysservers);
}

/*
 * The "nameserver" lines of resolv.conf (resolv.conf(5)); none, or no
 * file, means the local host, as the C library's resolver does.
 */
static void
dns_sysservers(void)
{
	FILE		*fp;
	char		 line[512], *p, *addr;
	struct in6_addr	 in6;

	if (nsysservers != -1)
		return;
	nsysservers = 0;
	if ((fp = fopen(DNS_RESOLV_CONF, "re")) != NULL) {
		while (fgets(line, sizeof(line), fp) != NULL &&
		    nsysservers < DNS_MAX_SERVERS) {
			p = line;
			if (strncmp(p, "nameserver", 10) != 0 ||
			    !isspace((unsigned char)p[10]))
				continue;
			p += 10;
			p += strspn(p, " \t");
			addr = p;
			p += strcspn(p, " \t\r\n#;");
			*p = '\0';
			/* An IPv6 address may carry a scope: "fe80::1%eth0". */
			if (inet_pton(AF_INET, addr, &in6) != 1 &&
			    inet_pton(AF_INET6, addr, &in6) != 1 &&
			    strchr(addr, '%') == NULL)
				continue;
			(void)snprintf(sysservers[nsysservers++],
			    sizeof(sysservers[0]), "%s", addr);
		}
		fclose(fp);
	}
	if (nsysservers == 0)
		strlcpy(sysservers[nsysservers++], "127.0.0.1",
		    sizeof(sysservers[0]));
}

/*
 * A new configuration: the context in force serves it if it asks the
 * same servers with the same anchors; else a new context is made now,
 * so that a bad anchor file refuses the reload with the reason.
 */
int
dns_conf_prepare(const struct smx_conf *c, char *err, size_t errlen)
{
	const char	*anchors = c->anchors != NULL ? c->anchors : "";

	dns_sysservers();
	dns_conf_abort();
	if (cur != NULL && strcmp(cur->resolver, c->resolver) == 0 &&
	    strcmp(cur->anchors, anchors) == 0)
		return 0;
	if ((next = dns_ctx_new(c->resolver, anchors, err, errlen)) == NULL)
		return -1;
	return 0;
}

void
dns_conf_apply(void)
{
	if (next == NULL)
		return;
	if (cur != NULL) {
		log_info("event=dns-resolver resolver=%s", *next->resolver ?
		    next->resolver : "resolv.conf");
		dns_ctx_retire(cur);
	}
	cur = next;
	next = NULL;
	dns_ctx_probe(cur);
}

void
dns_conf_abort(void)
{
	if (next != NULL)
		dns_ctx_retire(next);
	next = NULL;
}

static struct dns_ctx *
dns_ctx_new(const char *resolver, const char *anchors, char *err,
    size_t errlen)
{
	struct dns_ctx	*c;
	struct ub_ctx	*ub;
	int		 r;

	if ((ub = ub_ctx_create_event(env->evbase)) == NULL) {
		(void)snprintf(err, errlen, "cannot create a libunbound "
		    "context");
		return NULL;
	}
	/* Its own log would go to stderr, past ours. */
	(void)ub_ctx_debugout(ub, NULL);
	(void)ub_ctx_debuglevel(ub, 0);
	/* No queries about which anchors we trust (RFC 8145). */
	(void)ub_ctx_set_option(ub, "trust-anchor-signaling:", "no");
	/* Records in the order the server gave them: it rotates them. */
	(void)ub_ctx_set_option(ub, "rrset-roundrobin:", "no");
	if (dns_ctx_servers(ub, resolver, err, errlen) == -1 ||
	    dns_ctx_anchors(ub, anchors, err, errlen) == -1)
		goto fail;
	/*
	 * RFC 6761 §6.2 lets a resolver answer "test." itself, and
	 * libunbound does (NXDOMAIN).  The configured resolver answers
	 * it here, as the C library would; invalid., localhost. and onion.
	 * stay libunbound's.  This also finalizes the context: the
	 * anchors are read now, and refused now.
	 */
	if ((r = ub_ctx_zone_remove(ub, "test.")) != 0) {
		(void)snprintf(err, errlen, "DNSSEC trust anchors: %s",
		    ub_strerror(r));
		goto fail;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("calloc");
	c->ub = ub;
	strlcpy(c->resolver, resolver, sizeof(c->resolver));
	c->anchors = str_dup(anchors);
	TAILQ_INSERT_TAIL(&ctxs, c, entry);
	return c;
 fail:
	ub_ctx_delete(ub);
	return NULL;
}

/*
 * Forwarding to the configured resolver ("ADDR", "ADDR:PORT",
 * "[IPv6]:PORT"; libunbound says "ADDR@PORT") or to resolv.conf's.
 */
static int
dns_ctx_servers(struct ub_ctx *ub, const char *resolver, char *err,
    size_t errlen)
{
	char	 buf[128], fwd[160], *addr, *port = NULL, *end;
	int	 i, r;

	if (*resolver == '\0') {
		for (i = 0; i < nsysservers; i++)
			if ((r = ub_ctx_set_fwd(ub, sysservers[i])) != 0) {
				(void)snprintf(err, errlen, "nameserver %s "
				    "of %s: %s", sysservers[i],
				    DNS_RESOLV_CONF, ub_strerror(r));
				return -1;
			}
		return 0;
	}
	strlcpy(buf, resolver, sizeof(buf));
	addr = buf;
	if (buf[0] == '[') {
		addr = buf + 1;
		if ((end = strchr(addr, ']')) != NULL) {
			*end++ = '\0';
			if (*end == ':')
				port = end + 1;
		}
	} else if ((end = strchr(buf, ':')) != NULL &&
	    strchr(end + 1, ':') == NULL) {
		*end = '\0';
		port = end + 1;
	}
	(void)snprintf(fwd, sizeof(fwd), "%s%s%s", addr, port ? "@" : "",
	    port ? port : "");
	if ((r = ub_ctx_set_fwd(ub, fwd)) != 0) {
		(void)snprintf(err, errlen, "resolver \"%s\": %s", resolver,
		    ub_strerror(r));
		return -1;
	}
	return 0;
}

/*
 * The anchors' text, as the parent read it (DS or DNSKEY records, one
 * a line, ";" comments), one ub_ctx_add_ta() per record: libunbound
 * could not open the file from the chroot.
 */
static int
dns_ctx_anchors(struct ub_ctx *ub, const char *anchors, char *err,
    size_t errlen)
{
	char	*copy, *line, *p, *rest;
	int	 r, n = 0;

	copy = str_dup(anchors);
	for (rest = copy; (line = strsep(&rest, "\n")) != NULL;) {
		line[strcspn(line, "\r")] = '\0';
		p = line + strspn(line, " \t");
		if (*p == '\0' || *p == ';' || *p == '$')
			continue;
		if ((r = ub_ctx_add_ta(ub, p)) != 0) {
			(void)snprintf(err, errlen, "DNSSEC trust anchor "
			    "\"%.60s\": %s", p, ub_strerror(r));
			free(copy);
			return -1;
		}
		n++;
	}
	free(copy);
	if (n == 0) {
		(void)snprintf(err, errlen, "no DNSSEC trust anchor in the "
		    "trust-anchor file");
		return -1;
	}
	return 0;
}

int
dns_check_anchors(const char *anchors, char *err, size_t errlen)
{
	struct ub_ctx	*ub;
	int		 r = -1, e;

	/* Made and finalized, never asked: no thread, no socket. */
	if ((ub = ub_ctx_create()) == NULL) {
		(void)snprintf(err, errlen, "cannot create a libunbound "
		    "context");
		return -1;
	}
	(void)ub_ctx_debugout(ub, NULL);
	(void)ub_ctx_debuglevel(ub, 0);
	if (dns_ctx_anchors(ub, anchors, err, errlen) == 0) {
		if ((e = ub_ctx_zone_remove(ub, "test.")) != 0)
			(void)snprintf(err, errlen, "DNSSEC trust anchors "
			    "refused by libunbound (%s): DS or DNSKEY records "
			    "in zone file syntax expected", ub_strerror(e));
		else
			r = 0;
	}
	ub_ctx_delete(ub);
	return r;
}

/* Replaced: deleted once libunbound owes it nothing, from the loop. */
static void
dns_ctx_retire(struct dns_ctx *c)
{
	struct timeval	 now = { 0, 0 };

	c->retired = 1;
	if (!event_initialized(&ev_gc))
		evtimer_set(&ev_gc, dns_ctx_gc, NULL);
	evtimer_add(&ev_gc, &now);
}

static void
dns_ctx_gc(int fd, short event, void *arg)
{
	struct dns_ctx	*c, *nc;

	(void)fd;
	(void)event;
	(void)arg;
	TAILQ_FOREACH_SAFE(c, &ctxs, entry, nc) {
		if (!c->retired || c->nqueries > 0)
			continue;
		TAILQ_REMOVE(&ctxs, c, entry);
		ub_ctx_delete(c->ub);
		free(c->anchors);
		free(c);
	}
}

/*
 * A resolver that strips DNSSEC records (or a middlebox that does) makes
 * every signed answer bogus: every delivery by MX would be deferred.
 * One question at the start says so, naming the resolver, rather than
 * a bogus answer per delivery.
 */
static void
dns_ctx_probe(struct dns_ctx *c)
{
	char	 owner[SMX_HOSTSZ], *p;
	size_t	 len;

	if (c->probed)
		return;
	c->probed = 1;
	/* The owner of the first anchor: its DNSKEY must validate. */
	p = c->anchors + strspn(c->anchors, " \t\r\n");
	while (*p == ';' || *p == '$') {
		p += strcspn(p, "\n");
		p += strspn(p, " \t\r\n");
	}
	len = strcspn(p, " \t\r\n");
	if (len == 0 || len >= sizeof(owner))
		return;
	memcpy(owner, p, len);
	owner[len] = '\0';
	dns_q_start(c, owner, 48 /* DNSKEY */, dns_probe_answer, c);
}

static void
dns_probe_answer(void *arg, const struct dns_answer *a)
{
	struct dns_ctx	*c = arg;

	if (a->sec == DNS_SEC_BOGUS)
		log_warnx("DNSSEC: resolver %s gives answers that do not "
		    "validate (%s): every signed answer is bogus, and mail "
		    "to signed domains is deferred; use a resolver that "
		    "passes DNSSEC records", *c->resolver ? c->resolver :
		    "of " DNS_RESOLV_CONF, log_text(a->why));
	else
		log_debug("event=dns-probe resolver=%s dnssec=%s error=%s",
		    *c->resolver ? c->resolver : "resolv.conf",
		    dns_sec_name(a->sec), log_text(a->why));
}

static void
dns_q_start(struct dns_ctx *c, const char *name, uint16_t type,
    void (*cb)(void *, const struct dns_answer *), void *arg)
{
	struct dns_q	*q;
	struct timeval	 tv = { DNS_TIMEOUT, 0 };
	int		 r, id;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		fatal("calloc");
	q->ctx = c;
	strlcpy(q->name, name, sizeof(q->name));
	q->type = type;
	q->cb = cb;
	q->arg = arg;
	evtimer_set(&q->ev, dns_q_event, q);
	evtimer_add(&q->ev, &tv);
	c->nqueries++;
	if ((r = ub_resolve_event(c->ub, name, type, 1, q, dns_q_answer,
	    &id)) != 0) {
		/* Not asked: answered as a failure, from the loop. */
		q->answered = 1;
		q->rcode = 2;
		(void)snprintf(q->why, sizeof(q->why), "%s", ub_strerror(r));
		c->nqueries--;
		tv.tv_sec = 0;
		evtimer_add(&q->ev, &tv);
	}
}

/* libunbound's callback: keep the answer, hand it on from the loop. */
static void
dns_q_answer(void *arg, int rcode, void *pkt, int len, int sec, char *why,
    int ratelimited)
{
	struct dns_q	*q = arg;
	struct timeval	 now = { 0, 0 };

	(void)ratelimited;
	q->answered = 1;
	q->ctx->nqueries--;
	if (q->ctx->retired && q->ctx->nqueries == 0)
		dns_ctx_retire(q->ctx);
	if (q->delivered) {
		dns_q_free(q);	/* timed out long ago */
		return;
	}
	q->rcode = rcode;
	q->sec = sec;
	if (why != NULL)
		str_printable(q->why, sizeof(q->why), why);
	if (rcode == 0 && pkt != NULL && len > 0) {
		if ((q->pkt = malloc((size_t)len)) == NULL)
			fatal("malloc");
		memcpy(q->pkt, pkt, (size_t)len);
		q->len = (size_t)len;
	}
	evtimer_del(&q->ev);
	evtimer_add(&q->ev, &now);
}

/* The answer, or the timeout, goes to the asker. */
static void
dns_q_event(int fd, short event, void *arg)
{
	struct dns_q		*q = arg;
	struct dns_answer	 a;

	(void)fd;
	(void)event;
	memset(&a, 0, sizeof(a));
	a.why = q->why;
	if (q->answered && q->sec == 1)
		a.sec = DNS_SEC_BOGUS;
	if (!q->answered) {
		a.status = DNS_TEMPFAIL;
		a.why = "timeout";
	} else if (q->rcode != 0) {
		a.status = DNS_TEMPFAIL;
		if (*q->why == '\0')
			(void)snprintf(q->why, sizeof(q->why), "%s",
			    q->rcode == 2 ? "SERVFAIL" : q->rcode == 5 ?
			    "REFUSED" : "error");
	} else if (q->sec == 1) {
		a.status = DNS_TEMPFAIL;
		a.sec = DNS_SEC_BOGUS;
		if (*q->why == '\0')
			strlcpy(q->why, "DNSSEC validation failed",
			    sizeof(q->why));
	} else if (q->pkt == NULL || q->len < 12) {
		a.status = DNS_TEMPFAIL;
		strlcpy(q->why, "no answer", sizeof(q->why));
	} else {
		/* Event mode reports NXDOMAIN as rcode 0: the header says. */
		a.status = (q->pkt[3] & 0x0f) == 3 ? DNS_NXDOMAIN :
		    (q->pkt[3] & 0x0f) == 0 ? DNS_OK : DNS_TEMPFAIL;
		a.sec = q->sec == 2 ? DNS_SEC_SECURE : DNS_SEC_INSECURE;
		a.pkt = q->pkt;
		a.len = q->len;
		if (a.status == DNS_TEMPFAIL)
			strlcpy(q->why, "error in the answer", sizeof(q->why));
	}
	q->delivered = 1;
	q->cb(q->arg, &a);
	if (q->answered)
		dns_q_free(q);
}

static void
dns_q_free(struct dns_q *q)
{
	evtimer_del(&q->ev);
	free(q->pkt);
	free(q);
}

void
dns_query(const char *name, uint16_t type,
    void (*cb)(void *, const struct dns_answer *), void *arg)
{
	if (cur == NULL)
		fatalx("dns_query before the first configuration");
	dns_q_start(cur, name, type, cb, arg);
}

/* A context is in force: the first configuration has come. */
int
dns_ready(void)
{
	return cur != NULL;
}
const char *
dns_sec_name(enum dns_sec sec)
{
	switch (sec) {
	case DNS_SEC_SECURE:
		return "secure";
	case DNS_SEC_BOGUS:
		return "bogus";
	case DNS_SEC_INSECURE:
		break;
	}
	return "insecure";
}
