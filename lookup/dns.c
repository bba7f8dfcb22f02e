/*
 * Asynchronous, validating DNS for the relay's destinations: MX records
 * in preference order, each exchanger's A and AAAA records (RFC 5321
 * §5.1), and for the dane policies the TLSA records of each exchanger
 * (RFC 7672), asked through the validating resolver of dns_resolver.c;
 * and the A records with their TTL of one name, for the DNS lists
 * (dns_query_a).
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "splitmx.h"
#include "lookup.h"

#define DNS_MAX_MXRR		64	/* MX records looked at */
#define DNS_MAX_MX		10	/* exchangers resolved */
#define DNS_MAX_HOST_ADDRS	4	/* addresses per exchanger and family */
#define DNS_MAX_ADDRS		16	/* addresses in one answer */
#define DNS_MAX_TLSA		8	/* TLSA records kept per exchanger */
#define DNS_TLSA_DATA_MAX	2048	/* octets of one record's data */
#define DNS_MAX_REQS		1000	/* requests in flight */
#define DNS_ERRSZ		256

enum {
	FAM_V4,
	FAM_V6
};

struct dns_req;

/* A TLSA record of an exchanger (RFC 6698 §2.1). */
struct dns_tlsa {
	uint8_t		 usage, selector, mtype;
	uint8_t		*data;
	size_t		 len;
};

/* An exchanger (or the name itself) and what DNS said of it. */
struct dns_host {
	struct dns_req		*req;
	char			 name[SMX_HOSTSZ];
	uint32_t		 pref;
	int			 status[2];	/* DNS_* per family */
	enum dns_sec		 sec[2];
	int			 naddrs[2];
	struct sockaddr_storage	 addrs[2][DNS_MAX_HOST_ADDRS];
	int			 nanswers;	/* families answered */
	enum tlsa_state		 tlsa;
	struct dns_tlsa		 tlsas[DNS_MAX_TLSA];
	int			 ntlsa;
	char			 tlsa_error[DNS_ERRSZ];
};

/* Who asked, and what is done with the answer. */
enum dns_asker {
	ASK_RELAY,		/* IMSG_LOOKUP_DNS_HOST_RESULT */
	ASK_RESOLVE,		/* dns_resolve(): addresses only */
	ASK_EXPLAIN		/* dns_explain(): every host, in words */
};

struct dns_req {
	enum dns_asker		 asker;
	uint64_t		 reqid;
	int			 peer;
	dns_cb			 cb;
	void			(*xcb)(void *, const struct dns_explain_host *,
				    const char *);
	void			*cbarg;
	char			 name[SMX_HOSTSZ];
	int			 mx;
	uint16_t		 port;
	enum smx_tls		 tls;
	int			 implicit;	/* no MX: the name itself */
	int			 mx_secure;	/* MX RRset (or its denial) */
	int			 pending;	/* questions, +1 while asking */
	int			 status;	/* DNS_OK until it failed */
	char			 error[DNS_ERRSZ];
	struct dns_host		 hosts[DNS_MAX_MX];
	int			 nhosts;
	/* The domain's MTA-STS policy (RFC 8461), when one applies. */
	int			 sts_asked;
	int			 sts_have;
	struct sts_policy	 sts;
	char			 sts_note[DNS_ERRSZ];
};

/* An MX record while sorting. */
struct dns_mxrr {
	char		 host[SMX_HOSTSZ];
	uint32_t	 pref;
	uint32_t	 rnd;
};

/* What dns_parse() hands back for the MX, address and TLSA answers. */
struct dns_collect {
	struct dns_mxrr	*mx;
	size_t		 nmx, maxmx;
	int		 null;		/* "0 ." seen */
	struct dns_host	*host;
	int		 fam;
	int		 toobig;	/* a TLSA record over the limit */
};

static struct dns_req *dns_req_new(const char *, int);
static void	dns_start(struct dns_req *);
static void	dns_start_local(struct dns_req *);
static void	dns_release_later(int, short, void *);
static int	dns_literal(struct dns_req *);
static void	dns_ask(struct dns_req *, const char *, uint16_t,
		    void (*)(void *, const struct dns_answer *), void *);
static const char *dns_type_name(uint16_t);
static int	dns_failed(const struct dns_answer *, const char *, uint16_t,
		    char *, size_t);
static void	dns_mx_answer(void *, const struct dns_answer *);
static int	dns_mx_rr(void *, const struct dns_rr *);
static int	dns_mx_cmp(const void *, const void *);
static void	dns_mx_hosts(struct dns_req *, struct dns_mxrr *, size_t,
		    int);
static struct dns_host *dns_host_add(struct dns_req *, const char *,
		    uint32_t);
static void	dns_addrs(struct dns_host *);
static void	dns_a_answer(void *, const struct dns_answer *);
static void	dns_aaaa_answer(void *, const struct dns_answer *);
static void	dns_addr_answer(struct dns_host *, int, uint16_t,
		    const struct dns_answer *);
static int	dns_addr_rr(void *, const struct dns_rr *);
static int	dns_host_secure(const struct dns_host *);
static void	dns_tlsa(struct dns_host *);
static void	dns_tlsa_answer(void *, const struct dns_answer *);
static int	dns_tlsa_rr(void *, const struct dns_rr *);
static void	dns_fail(struct dns_req *, int, const char *, ...)
		    __attribute__((__format__ (printf, 3, 4)));
static void	dns_release(struct dns_req *);
static void	dns_finish(struct dns_req *);
static int	dns_order(struct dns_req *, struct dns_host **,
		    struct sockaddr_storage **);
static void	dns_tls_host(const struct dns_host *, struct tls_host *);
static void	dns_send_result(struct dns_req *, struct dns_host **,
		    struct sockaddr_storage **, int);
static void	dns_explain_result(struct dns_req *);
static void	dns_req_free(struct dns_req *);
static void	dns_sts_answer(void *, const struct sts_answer *);
static const char *dns_sts_mode(enum sts_mode);
static const char *dns_status_name(int);
static void	dns_qa_answer(void *, const struct dns_answer *);
static int	dns_qa_rr(void *, const struct dns_rr *);
static void	dns_qa_deliver(int, short, void *);

static int			 nreqs;

/* One question of dns_query_a(), and its answer. */
struct dns_areq {
	dns_query_cb	 cb;
	void		*arg;
	char		 name[SMX_HOSTSZ];
	int		 status;	/* DNS_* */
	struct in_addr	 addrs[DNS_MAX_A];
	int		 naddrs;
	uint32_t	 ttl;
};

/*
 * See lookup.h.  The name is asked as it is (libunbound has no search
 * list); a bogus answer is a temporary failure, as a timeout is.  The
 * negative TTL of NXDOMAIN and NODATA is not read: 0, unknown.
 */
void
dns_query_a(const char *name, dns_query_cb cb, void *arg)
{
	struct dns_areq	*q;
	struct timeval	 now = { 0, 0 };

	if ((q = calloc(1, sizeof(*q))) == NULL)
		fatal("calloc");
	nreqs++;
	q->cb = cb;
	q->arg = arg;
	q->status = DNS_TEMPFAIL;
	if (!dns_ready() || nreqs > DNS_MAX_REQS)
		log_debug("event=dns name=%s type=A status=tempfail "
		    "error=\"resolver busy\"", log_value(name));
	else if (!valid_domain(name) || strlen(name) > 253)
		q->status = DNS_NXDOMAIN;
	else {
		strlcpy(q->name, name, sizeof(q->name));
		str_lower(q->name);
		dns_query(q->name, DNS_T_A, dns_qa_answer, q);
		return;
	}
	if (event_base_once(env->evbase, -1, EV_TIMEOUT, dns_qa_deliver, q,
	    &now) == -1)
		fatalx("event_base_once failed");
}

static void
dns_qa_answer(void *arg, const struct dns_answer *a)
{
	struct dns_areq	*q = arg;
	char		 why[DNS_ERRSZ];
	int		 rcode;

	if (dns_failed(a, q->name, DNS_T_A, why, sizeof(why)))
		q->status = DNS_TEMPFAIL;
	else if (a->status == DNS_NXDOMAIN)
		q->status = DNS_NXDOMAIN;
	else if (dns_parse(a->pkt, a->len, q->name, DNS_T_A, &rcode,
	    dns_qa_rr, q) == -1)
		q->status = DNS_TEMPFAIL;
	else
		q->status = q->naddrs > 0 ? DNS_OK : DNS_NODATA;
	dns_qa_deliver(-1, 0, q);
}

static int
dns_qa_rr(void *arg, const struct dns_rr *rr)
{
	struct dns_areq	*q = arg;

	if (q->naddrs == DNS_MAX_A)
		return -1;
	if (q->naddrs == 0 || rr->ttl < q->ttl)
		q->ttl = rr->ttl;
	q->addrs[q->naddrs++] = rr->a;
	return 0;
}

static void
dns_qa_deliver(int fd, short event, void *arg)
{
	struct dns_areq	*q = arg;

	(void)fd;
	(void)event;
	q->cb(q->arg, q->status, q->addrs, q->naddrs,
	    q->status == DNS_OK ? q->ttl : 0);
	nreqs--;
	free(q);
}

/* IMSG_LOOKUP_DNS_HOST: see "relay protocol" in splitmx.h. */
void
dns_host(struct msgchan *ch, struct msg *m)
{
	struct dns_req	*req;
	uint64_t	 reqid;
	uint32_t	 mx, tls;
	uint16_t	 port;
	char		 name[SMX_HOSTSZ];

	proc_expect(ch, m, PROC_RELAY);
	if (msg_get_u64(m, &reqid) == -1 ||
	    msg_get_str(m, name, sizeof(name)) == -1 ||
	    msg_get_u32(m, &mx) == -1 || msg_get_u16(m, &port) == -1 ||
	    msg_get_u32(m, &tls) == -1 || msg_end(m) == -1 || mx > 1 ||
	    tls >= TLSP_COUNT)
		fatalx("bad %s", imsg_name(m->type));
	req = dns_req_new(name, (int)mx);
	req->asker = ASK_RELAY;
	req->reqid = reqid;
	req->peer = ch->peer;
	req->port = port;
	req->tls = (enum smx_tls)tls;
	dns_start(req);
	dns_release(req);
}

/* The same for the lookup process itself: cb is called from the loop. */
void
dns_resolve(const char *name, int mx, dns_cb cb, void *arg)
{
	struct dns_req	*req;

	req = dns_req_new(name, mx);
	req->asker = ASK_RESOLVE;
	req->cb = cb;
	req->cbarg = arg;
	req->tls = TLSP_OPPORTUNISTIC;
	dns_start_local(req);
}

void
dns_explain(const char *name, int mx, uint16_t port, enum smx_tls tls,
    void (*cb)(void *, const struct dns_explain_host *, const char *),
    void *arg)
{
	struct dns_req	*req;

	req = dns_req_new(name, mx);
	req->asker = ASK_EXPLAIN;
	req->xcb = cb;
	req->cbarg = arg;
	req->port = port;
	req->tls = tls;
	dns_start_local(req);
}

/*
 * A request of this process: started, and released when its answer is
 * given; one answered already (an address, a bad name) is released from
 * the loop, not on the asker's stack.
 */
static void
dns_start_local(struct dns_req *req)
{
	struct timeval	 now = { 0, 0 };

	dns_start(req);
	if (req->pending == 1) {
		if (event_base_once(env->evbase, -1, EV_TIMEOUT,
		    dns_release_later, req, &now) == -1)
			fatalx("event_base_once failed");
		return;
	}
	dns_release(req);
}

static void
dns_release_later(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	dns_release(arg);
}

static struct dns_req *
dns_req_new(const char *name, int mx)
{
	struct dns_req	*req;
	size_t		 len;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		fatal("calloc");
	nreqs++;
	req->mx = mx;
	req->port = 25;
	req->status = DNS_OK;
	req->pending = 1;	/* until every question is asked */
	/* Without MX there is no MX RRset to validate: the host's count. */
	req->mx_secure = !mx;
	strlcpy(req->name, name, sizeof(req->name));
	/* The root's dot is implied: "example.com." is "example.com". */
	len = strlen(req->name);
	if (len > 1 && req->name[len - 1] == '.')
		req->name[len - 1] = '\0';
	str_lower(req->name);
	return req;
}

static void
dns_start(struct dns_req *req)
{
	struct dns_host	*h;

	/* An address is its own answer. */
	if (dns_literal(req) == 0)
		return;
	if (!dns_ready())
		dns_fail(req, DNS_TEMPFAIL, "4.4.3 resolver not ready");
	else if (nreqs > DNS_MAX_REQS)
		dns_fail(req, DNS_TEMPFAIL, "4.4.3 resolver busy, %d requests "
		    "in flight", nreqs - 1);
	else if (!valid_domain(req->name))
		dns_fail(req, DNS_NXDOMAIN, "5.1.2 invalid domain name %s",
		    req->name);
	else {
		/*
		 * RFC 8461 is for destinations reached by MX, and "tls
		 * none" wants no TLS at all.  Its answer comes with the
		 * MX records', only this destination waiting for it.
		 */
		if (req->mx && req->asker != ASK_RESOLVE &&
		    env->conf->mta_sts && req->tls != TLSP_NONE) {
			req->sts_asked = 1;
			req->pending++;
			mta_sts_get(req->name, dns_sts_answer, req);
		}
		if (req->mx)
			dns_ask(req, req->name, DNS_T_MX, dns_mx_answer, req);
		else if ((h = dns_host_add(req, req->name, 0)) != NULL)
			dns_addrs(h);
	}
}

/* The domain's MTA-STS policy; "none" is no policy. */
static void
dns_sts_answer(void *arg, const struct sts_answer *a)
{
	struct dns_req	*req = arg;
	char		 until[32];
	struct tm	 tm;
	time_t		 t;

	if (a->policy != NULL && a->policy->mode != STS_NONE) {
		req->sts_have = 1;
		req->sts = *a->policy;
		t = a->expires;
		if (gmtime_r(&t, &tm) == NULL ||
		    strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ",
		    &tm) == 0)
			strlcpy(until, "?", sizeof(until));
		(void)snprintf(req->sts_note, sizeof(req->sts_note),
		    "%s, valid until %s: %s", dns_sts_mode(req->sts.mode),
		    until, a->note);
	} else if (a->policy != NULL)
		(void)snprintf(req->sts_note, sizeof(req->sts_note), "mode "
		    "none: %s", a->note);
	else
		strlcpy(req->sts_note, a->note, sizeof(req->sts_note));
	log_debug("event=mta-sts domain=%s policy=%s", log_value(req->name),
	    log_text(req->sts_note));
	dns_release(req);
}

static const char *
dns_sts_mode(enum sts_mode mode)
{
	switch (mode) {
	case STS_ENFORCE:
		return "enforce";
	case STS_TESTING:
		return "testing";
	default:
		return "none";
	}
}

/* A name that is an address: 0 and the answer is there, else -1. */
static int
dns_literal(struct dns_req *req)
{
	struct dns_host		*h;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	struct in_addr		 in;
	struct in6_addr		 in6;

	if (inet_pton(AF_INET, req->name, &in) == 1) {
		h = dns_host_add(req, req->name, 0);
		sin = (struct sockaddr_in *)&h->addrs[FAM_V4][0];
		sin->sin_family = AF_INET;
		sin->sin_addr = in;
		h->naddrs[FAM_V4] = 1;
		h->status[FAM_V4] = DNS_OK;
		return 0;
	}
	if (inet_pton(AF_INET6, req->name, &in6) == 1) {
		h = dns_host_add(req, req->name, 0);
		sin6 = (struct sockaddr_in6 *)&h->addrs[FAM_V6][0];
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6;
		h->naddrs[FAM_V6] = 1;
		h->status[FAM_V6] = DNS_OK;
		return 0;
	}
	return -1;
}

static void
dns_ask(struct dns_req *req, const char *name, uint16_t type,
    void (*cb)(void *, const struct dns_answer *), void *arg)
{
	req->pending++;
	dns_query(name, type, cb, arg);
}

static const char *
dns_type_name(uint16_t type)
{
	switch (type) {
	case DNS_T_A:
		return "A";
	case DNS_T_AAAA:
		return "AAAA";
	case DNS_T_MX:
		return "MX";
	case DNS_T_TLSA:
		return "TLSA";
	case DNS_T_TXT:
		return "TXT";
	}
	return "?";
}

/*
 * A temporary failure of one answer, in words, into buf: 1, and bogus
 * answers logged (RFC 7672 §2.1.1: they are never "no record").
 */
static int
dns_failed(const struct dns_answer *a, const char *name, uint16_t type,
    char *buf, size_t len)
{
	if (a->status != DNS_TEMPFAIL)
		return 0;
	if (a->sec == DNS_SEC_BOGUS) {
		log_warnx("event=dnssec-bogus name=%s type=%s why=%s",
		    log_value(name), dns_type_name(type), log_text(a->why));
		stat_add("dns.bogus", 1);
		(void)snprintf(buf, len, "DNSSEC validation failed for the "
		    "%s records of %s: %s", dns_type_name(type), name, a->why);
	} else
		(void)snprintf(buf, len, "%s", a->why);
	return 1;
}

static void
dns_mx_answer(void *arg, const struct dns_answer *a)
{
	struct dns_req		*req = arg;
	struct dns_mxrr		 rr[DNS_MAX_MXRR];
	struct dns_collect	 col;
	struct dns_host		*h;
	char			 why[DNS_ERRSZ];
	int			 n, rcode;

	if (dns_failed(a, req->name, DNS_T_MX, why, sizeof(why))) {
		dns_fail(req, DNS_TEMPFAIL, "4.4.3 temporary DNS failure "
		    "looking up MX of %s: %s", req->name, why);
		goto done;
	}
	if (a->status == DNS_NXDOMAIN) {
		dns_fail(req, DNS_NXDOMAIN, "5.1.2 domain %s not found",
		    req->name);
		goto done;
	}
	req->mx_secure = a->sec == DNS_SEC_SECURE;
	memset(&col, 0, sizeof(col));
	col.mx = rr;
	col.maxmx = DNS_MAX_MXRR;
	if ((n = dns_parse(a->pkt, a->len, req->name, DNS_T_MX, &rcode,
	    dns_mx_rr, &col)) == -1) {
		dns_fail(req, DNS_TEMPFAIL, "4.4.3 temporary DNS failure "
		    "looking up MX of %s: malformed answer", req->name);
		goto done;
	}
	if (n == 0) {
		/* RFC 5321 §5.1: no MX, the name is its own exchanger. */
		req->implicit = 1;
		if ((h = dns_host_add(req, req->name, 0)) != NULL)
			dns_addrs(h);
		goto done;
	}
	dns_mx_hosts(req, rr, col.nmx, col.null);
 done:
	dns_release(req);
}

static int
dns_mx_rr(void *arg, const struct dns_rr *rr)
{
	struct dns_collect	*col = arg;

	if (rr->name[0] == '\0') {
		col->null = 1;	/* "0 ." */
		return 0;
	}
	if (col->nmx == col->maxmx)
		return 0;
	strlcpy(col->mx[col->nmx].host, rr->name, sizeof(col->mx[0].host));
	col->mx[col->nmx].pref = rr->pref;
	col->mx[col->nmx].rnd = arc4random();
	col->nmx++;
	return 0;
}

/* By preference; equal preferences in random order (RFC 5321 §5.1). */
static int
dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mxrr	*x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	if (x->rnd != y->rnd)
		return x->rnd < y->rnd ? -1 : 1;
	return 0;
}

static void
dns_mx_hosts(struct dns_req *req, struct dns_mxrr *rr, size_t n, int null)
{
	size_t	 i;
	int	 j;

	/*
	 * RFC 7505: "0 ." alone says the domain takes no mail.  Next to
	 * real exchangers (which it must not be) it is ignored.
	 */
	if (n == 0 && null) {
		dns_fail(req, DNS_NODATA, "5.1.10 %s does not accept mail "
		    "(null MX)", req->name);
		return;
	}
	qsort(rr, n, sizeof(rr[0]), dns_mx_cmp);
	for (i = 0; i < n && req->nhosts < DNS_MAX_MX; i++) {
		if (!valid_domain(rr[i].host)) {
			log_debug("event=dns name=%s ignored-mx=%s",
			    log_value(req->name), log_text(rr[i].host));
			continue;
		}
		for (j = 0; j < req->nhosts; j++)
			if (strcmp(req->hosts[j].name, rr[i].host) == 0)
				break;
		if (j < req->nhosts)
			continue;	/* the better preference stays */
		(void)dns_host_add(req, rr[i].host, rr[i].pref);
	}
	if (req->nhosts == 0) {
		dns_fail(req, DNS_NODATA, "5.1.2 no valid MX host name for "
		    "%s", req->name);
		return;
	}
	for (j = 0; j < req->nhosts; j++)
		dns_addrs(&req->hosts[j]);
}

static struct dns_host *
dns_host_add(struct dns_req *req, const char *name, uint32_t pref)
{
	struct dns_host	*h;

	if (req->nhosts == DNS_MAX_MX)
		return NULL;
	h = &req->hosts[req->nhosts++];
	memset(h, 0, sizeof(*h));
	h->req = req;
	strlcpy(h->name, name, sizeof(h->name));
	h->pref = pref;
	h->status[FAM_V4] = h->status[FAM_V6] = DNS_NODATA;
	h->tlsa = TLSA_UNASKED;
	return h;
}

static void
dns_addrs(struct dns_host *h)
{
	dns_ask(h->req, h->name, DNS_T_A, dns_a_answer, h);
	dns_ask(h->req, h->name, DNS_T_AAAA, dns_aaaa_answer, h);
}

static void
dns_a_answer(void *arg, const struct dns_answer *a)
{
	dns_addr_answer(arg, FAM_V4, DNS_T_A, a);
}

static void
dns_aaaa_answer(void *arg, const struct dns_answer *a)
{
	dns_addr_answer(arg, FAM_V6, DNS_T_AAAA, a);
}

static void
dns_addr_answer(struct dns_host *h, int fam, uint16_t type,
    const struct dns_answer *a)
{
	struct dns_req		*req = h->req;
	struct dns_collect	 col;
	char			 why[DNS_ERRSZ];
	int			 rcode;

	h->sec[fam] = a->sec;
	if (dns_failed(a, h->name, type, why, sizeof(why))) {
		h->status[fam] = DNS_TEMPFAIL;
		if (a->sec == DNS_SEC_BOGUS)
			dns_fail(req, DNS_OK, "%s", why);	/* noted */
	} else if (a->status == DNS_NXDOMAIN)
		h->status[fam] = DNS_NXDOMAIN;
	else {
		memset(&col, 0, sizeof(col));
		col.host = h;
		col.fam = fam;
		if (dns_parse(a->pkt, a->len, h->name, type, &rcode,
		    dns_addr_rr, &col) == -1)
			h->status[fam] = DNS_TEMPFAIL;
		else
			h->status[fam] = h->naddrs[fam] > 0 ? DNS_OK :
			    DNS_NODATA;
	}
	if (++h->nanswers == 2 && (req->tls == TLSP_DANE ||
	    req->tls == TLSP_DANE_ONLY) && req->mx_secure) {
		/*
		 * Under a validated MX, an address lookup that failed
		 * leaves the host unusable for DANE rather than "not
		 * signed": dropping the answer must not drop DANE.
		 */
		if (h->status[FAM_V4] == DNS_TEMPFAIL ||
		    h->status[FAM_V6] == DNS_TEMPFAIL) {
			h->tlsa = TLSA_FAILED;
			strlcpy(h->tlsa_error, "its address lookup failed",
			    sizeof(h->tlsa_error));
		} else if (dns_host_secure(h))
			dns_tlsa(h);
	}
	dns_release(req);
}

static int
dns_addr_rr(void *arg, const struct dns_rr *rr)
{
	struct dns_collect	*col = arg;
	struct dns_host		*h = col->host;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	int			 i = h->naddrs[col->fam];

	if (i == DNS_MAX_HOST_ADDRS)
		return -1;
	if (col->fam == FAM_V4) {
		sin = (struct sockaddr_in *)&h->addrs[FAM_V4][i];
		sin->sin_family = AF_INET;
		sin->sin_addr = rr->a;
	} else {
		sin6 = (struct sockaddr_in6 *)&h->addrs[FAM_V6][i];
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = rr->aaaa;
	}
	h->naddrs[col->fam]++;
	return 0;
}

/*
 * RFC 7672 §2.2: TLSA records count only when the MX RRset (or the
 * absence of one) and the host's address records are all validated.
 */
static int
dns_host_secure(const struct dns_host *h)
{
	int	 f;

	if (!h->req->mx_secure || h->naddrs[FAM_V4] + h->naddrs[FAM_V6] == 0)
		return 0;
	for (f = FAM_V4; f <= FAM_V6; f++)
		if (h->status[f] == DNS_TEMPFAIL || h->sec[f] != DNS_SEC_SECURE)
			return 0;
	return 1;
}

/* _PORT._tcp.HOST (RFC 6698 §3, RFC 7672 §2.2.3). */
static void
dns_tlsa(struct dns_host *h)
{
	char	 name[SMX_HOSTSZ + 16];

	if ((size_t)snprintf(name, sizeof(name), "_%u._tcp.%s",
	    (unsigned)h->req->port, h->name) >= SMX_HOSTSZ) {
		h->tlsa = TLSA_FAILED;
		strlcpy(h->tlsa_error, "name too long", sizeof(h->tlsa_error));
		return;
	}
	dns_ask(h->req, name, DNS_T_TLSA, dns_tlsa_answer, h);
}

/*
 * RFC 7672 §2.2: a validated denial is "no TLSA"; an answer that is not
 * validated is ignored (as none); anything else leaves the host unusable.
 */
static void
dns_tlsa_answer(void *arg, const struct dns_answer *a)
{
	struct dns_host		*h = arg;
	struct dns_collect	 col;
	char			 name[SMX_HOSTSZ + 16], why[DNS_ERRSZ];
	int			 rcode, n;

	(void)snprintf(name, sizeof(name), "_%u._tcp.%s",
	    (unsigned)h->req->port, h->name);
	if (dns_failed(a, name, DNS_T_TLSA, why, sizeof(why))) {
		h->tlsa = TLSA_FAILED;
		strlcpy(h->tlsa_error, why, sizeof(h->tlsa_error));
	} else if (a->sec != DNS_SEC_SECURE || a->status == DNS_NXDOMAIN)
		h->tlsa = TLSA_NONE;
	else {
		memset(&col, 0, sizeof(col));
		col.host = h;
		if ((n = dns_parse(a->pkt, a->len, name, DNS_T_TLSA, &rcode,
		    dns_tlsa_rr, &col)) == -1 || col.toobig) {
			h->tlsa = TLSA_FAILED;
			strlcpy(h->tlsa_error, n == -1 ? "malformed answer" :
			    "a TLSA record too large or too many",
			    sizeof(h->tlsa_error));
		} else
			h->tlsa = n > 0 ? TLSA_FOUND : TLSA_NONE;
	}
	log_debug("event=dns-tlsa name=%s dnssec=%s tlsa=%s records=%d "
	    "error=%s", log_value(name), dns_sec_name(a->sec),
	    h->tlsa == TLSA_FOUND ? "found" : h->tlsa == TLSA_FAILED ?
	    "failed" : "none", h->ntlsa, log_text(h->tlsa_error));
	dns_release(h->req);
}

static int
dns_tlsa_rr(void *arg, const struct dns_rr *rr)
{
	struct dns_collect	*col = arg;
	struct dns_host		*h = col->host;
	struct dns_tlsa		*t;

	if (h->ntlsa == DNS_MAX_TLSA || rr->datalen > DNS_TLSA_DATA_MAX ||
	    rr->datalen == 0) {
		col->toobig = 1;
		return -1;
	}
	t = &h->tlsas[h->ntlsa++];
	t->usage = rr->usage;
	t->selector = rr->selector;
	t->mtype = rr->mtype;
	t->len = rr->datalen;
	if ((t->data = malloc(t->len)) == NULL)
		fatal("malloc");
	memcpy(t->data, rr->data, t->len);
	return 0;
}

/*
 * The request's failure (the first one counts).  DNS_OK with a text
 * only notes what went wrong on the way, for the answer's error should
 * no address come of it.
 */
static void
dns_fail(struct dns_req *req, int status, const char *fmt, ...)
{
	va_list	 ap;

	if (req->status != DNS_OK || (status == DNS_OK && *req->error))
		return;
	req->status = status;
	va_start(ap, fmt);
	(void)vsnprintf(req->error, sizeof(req->error), fmt, ap);
	va_end(ap);
}

static void
dns_release(struct dns_req *req)
{
	if (--req->pending > 0)
		return;
	dns_finish(req);
}

/*
 * The addresses in the order to try: exchangers in order, each with its
 * addresses, IPv4 and IPv6 alternating (IPv4 first, so that a host
 * without an IPv6 route loses no time), at most DNS_MAX_HOST_ADDRS of
 * each family per exchanger and DNS_MAX_ADDRS in all.  Sets the
 * request's failure when there is none.
 */
static int
dns_order(struct dns_req *req, struct dns_host **hosts,
    struct sockaddr_storage **addrs)
{
	struct dns_host	*h;
	int		 n = 0, i, j, f, temp = 0, nx = 0;
	char		 noted[DNS_ERRSZ];

	for (i = 0; i < req->nhosts && req->status == DNS_OK; i++) {
		h = &req->hosts[i];
		for (j = 0; j < DNS_MAX_HOST_ADDRS; j++)
			for (f = FAM_V4; f <= FAM_V6; f++)
				if (j < h->naddrs[f] && n < DNS_MAX_ADDRS) {
					hosts[n] = h;
					addrs[n] = &h->addrs[f][j];
					n++;
				}
		for (f = FAM_V4; f <= FAM_V6; f++) {
			if (h->status[f] == DNS_TEMPFAIL)
				temp++;
			if (h->status[f] == DNS_NXDOMAIN)
				nx++;
		}
	}
	if (req->status == DNS_OK && n == 0) {
		/* A bogus answer on the way is the reason worth giving. */
		strlcpy(noted, req->error, sizeof(noted));
		req->error[0] = '\0';
		if (temp)
			dns_fail(req, DNS_TEMPFAIL, "4.4.3 temporary DNS "
			    "failure looking up the address of %s%s%s%s",
			    req->mx && !req->implicit ? "the MX hosts of " :
			    "", req->name, *noted ? ": " : "", noted);
		else if (req->mx && !req->implicit)
			dns_fail(req, DNS_NODATA, "5.4.4 no address for the "
			    "MX hosts of %s", req->name);
		else if (nx == 2 && !req->implicit)
			dns_fail(req, DNS_NXDOMAIN, "5.1.2 host %s not found",
			    req->name);
		else
			dns_fail(req, DNS_NODATA, "5.1.2 %s has no %sA or AAAA "
			    "record", req->name, req->implicit ? "MX, " : "");
	}
	if (req->status != DNS_OK)
		return 0;
	return n;
}

/* What tls_policy_decide() needs to know of a host. */
static void
dns_tls_host(const struct dns_host *h, struct tls_host *th)
{
	int	 i;

	memset(th, 0, sizeof(*th));
	th->secure = dns_host_secure(h);
	th->tlsa = h->tlsa;
	th->ntlsa = h->ntlsa;
	for (i = 0; i < h->ntlsa; i++)
		if (tls_tlsa_usable(h->tlsas[i].usage, h->tlsas[i].selector,
		    h->tlsas[i].mtype, h->tlsas[i].len))
			th->nusable++;
	th->tlsa_error = h->tlsa_error;
	th->sts = h->req->sts_have ? h->req->sts.mode : STS_NONE;
	th->sts_match = h->req->sts_have && sts_mx_match(&h->req->sts,
	    h->name);
}

static void
dns_finish(struct dns_req *req)
{
	struct dns_host		*hosts[DNS_MAX_ADDRS];
	struct sockaddr_storage	*addrs[DNS_MAX_ADDRS];
	struct sockaddr_storage	 out[DNS_MAX_ADDRS];
	int			 n, i;

	n = dns_order(req, hosts, addrs);
	log_debug("event=dns name=%s mx=%d status=%s hosts=%d addresses=%d "
	    "dnssec=%s error=%s", log_value(req->name), req->mx,
	    dns_status_name(req->status), req->nhosts, n,
	    req->mx_secure ? "secure" : "insecure",
	    log_text(req->status != DNS_OK ? req->error : ""));
	switch (req->asker) {
	case ASK_RESOLVE:
		for (i = 0; i < n; i++)
			out[i] = *addrs[i];
		req->cb(req->cbarg, req->status, out, n);
		break;
	case ASK_EXPLAIN:
		dns_explain_result(req);
		break;
	case ASK_RELAY:
		dns_send_result(req, hosts, addrs, n);
		break;
	}
	dns_req_free(req);
}

/*
 * IMSG_LOOKUP_DNS_HOST_RESULT (see "relay protocol" in splitmx.h): the
 * addresses, then what the relay needs to know of each host for its
 * TLS policy.  TLSA data is bounded (DNS_MAX_TLSA, DNS_TLSA_DATA_MAX):
 * the message stays within MSG_MAXPAYLOAD.
 */
static void
dns_send_result(struct dns_req *req, struct dns_host **hosts,
    struct sockaddr_storage **addrs, int n)
{
	struct msg	 r;
	struct dns_host	*h;
	int		 i, j, nh = 0;

	msg_init(&r, IMSG_LOOKUP_DNS_HOST_RESULT, 0);
	msg_add_u64(&r, req->reqid);
	msg_add_u32(&r, (uint32_t)req->status);
	msg_add_str(&r, req->status == DNS_OK ? "" : req->error);
	msg_add_u32(&r, (uint32_t)n);
	for (i = 0; i < n; i++) {
		msg_add_str(&r, hosts[i]->name);
		msg_add_u32(&r, hosts[i]->pref);
		msg_add_sockaddr(&r, (struct sockaddr *)addrs[i],
		    addrs[i]->ss_family == AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	}
	if (n > 0)
		nh = req->nhosts;
	msg_add_u32(&r, (uint32_t)nh);
	for (i = 0; i < nh; i++) {
		h = &req->hosts[i];
		msg_add_str(&r, h->name);
		msg_add_u32(&r, (uint32_t)dns_host_secure(h));
		msg_add_u32(&r, (uint32_t)h->tlsa);
		msg_add_str(&r, h->tlsa_error);
		msg_add_u32(&r, (uint32_t)h->ntlsa);
		for (j = 0; j < h->ntlsa; j++) {
			msg_add_u32(&r, h->tlsas[j].usage);
			msg_add_u32(&r, h->tlsas[j].selector);
			msg_add_u32(&r, h->tlsas[j].mtype);
			msg_add_data(&r, h->tlsas[j].data, h->tlsas[j].len);
		}
		msg_add_u32(&r, req->sts_have && sts_mx_match(&req->sts,
		    h->name));
	}
	msg_add_u32(&r, req->sts_have ? req->sts.mode : STS_NONE);
	msg_add_str(&r, req->sts_note);
	if (r.error)
		fatalx("%s too large", imsg_name(r.type));
	proc_send(req->peer, &r);
}

/* splitmxctl lookup: one line per host, then the summary. */
static void
dns_explain_result(struct dns_req *req)
{
	struct dns_explain_host	 x;
	struct tls_host		 th;
	struct dns_host		*h;
	char			 addrs[512], a[INET6_ADDRSTRLEN], why[512];
	int			 i, j, f, testing;
	enum tls_mode		 mode;

	for (i = 0; i < req->nhosts && req->status == DNS_OK; i++) {
		h = &req->hosts[i];
		addrs[0] = '\0';
		for (f = FAM_V4; f <= FAM_V6; f++)
			for (j = 0; j < h->naddrs[f]; j++) {
				if (*addrs)
					strlcat(addrs, ", ", sizeof(addrs));
				strlcat(addrs, sa_str((struct sockaddr *)
				    &h->addrs[f][j], a, sizeof(a)),
				    sizeof(addrs));
			}
		memset(&x, 0, sizeof(x));
		x.host = h->name;
		x.pref = h->pref;
		x.addrs = *addrs ? addrs : "none";
		dns_tls_host(h, &th);
		mode = tls_policy_decide(req->tls, h->name, &th, &testing, why,
		    sizeof(why));
		if (h->naddrs[FAM_V4] + h->naddrs[FAM_V6] == 0) {
			x.mode = "unusable";
			x.why = "no address";
		} else {
			x.mode = tls_mode_name(mode);
			x.why = why;
		}
		req->xcb(req->cbarg, &x, NULL);
	}
	(void)snprintf(why, sizeof(why), "DNSSEC: %s%s%s",
	    !req->mx ? "no MX lookup" : req->mx_secure ?
	    "MX records validated" : "not validated (insecure)",
	    req->sts_asked ? "; MTA-STS: " : "",
	    req->sts_asked ? req->sts_note : "");
	if (req->sts_have) {
		strlcat(why, " (mx:", sizeof(why));
		for (i = 0; i < req->sts.nmx; i++) {
			strlcat(why, " ", sizeof(why));
			strlcat(why, req->sts.mx[i], sizeof(why));
		}
		strlcat(why, ")", sizeof(why));
	}
	req->xcb(req->cbarg, NULL, req->status == DNS_OK ? why : req->error);
}

static void
dns_req_free(struct dns_req *req)
{
	int	 i, j;

	for (i = 0; i < req->nhosts; i++)
		for (j = 0; j < req->hosts[i].ntlsa; j++)
			free(req->hosts[i].tlsas[j].data);
	nreqs--;
	free(req);
}

static const char *
dns_status_name(int status)
{
	switch (status) {
	case DNS_OK:
		return "ok";
	case DNS_TEMPFAIL:
		return "tempfail";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_NODATA:
		return "nodata";
	}
	return "?";
}

