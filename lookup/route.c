/*
 * Where a recipient goes (SPEC §3 domain types, §4 directory): local
 * mailbox, custom recipient rewritten to its target, unknown, relay or
 * outbound, decided by as many directory lookups as it takes, and the
 * checks that keep mail from looping between the two systems.
 */
#include <sys/types.h>
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

#define ROUTE_FWD_REFRESH	300	/* seconds between resolutions */
#define ROUTE_FWD_MAXADDRS	32

/* The lookups of one address, in order (SPEC §4). */
enum route_phase {
	PHASE_EXACT,		/* alice+x@example.com */
	PHASE_NODETAIL,		/* alice@example.com */
	PHASE_DOMAIN,		/* @example.com */
	PHASE_COUNT
};

struct route_req {
	struct lookup_gen	*gen;
	struct sockaddr_storage	 client;
	int			 has_client;
	char			 rcpt[SMX_ADDRSZ];	/* as given */
	char			 cur[SMX_ADDRSZ];	/* lower case */
	char			 seen[ROUTE_MAXSTEPS + 1][SMX_ADDRSZ];
	int			 hops;			/* custom targets */
	enum route_phase	 phase;
	const struct smx_domain	*dom;			/* of cur */
	/* A custom entry of a shared domain: where its target goes. */
	const struct smx_domain	*fwd;
	struct table_query	 q;
	struct route_result	 rr;
	struct route_explain	*ex;
	route_cb		 cb;
	void			*arg;
};

/* A forward host's addresses, for the loop check of unknown forward. */
struct route_fwd {
	TAILQ_ENTRY(route_fwd)	 entry;
	char			 name[SMX_HOSTSZ];
	int			 mx;
	int			 literal;
	int			 used;		/* by the configuration */
	int			 known;		/* addrs answered once */
	int			 pending;	/* queries out */
	int			 ok;		/* one of them answered */
	time_t			 resolved;
	struct sockaddr_storage	 addrs[ROUTE_FWD_MAXADDRS];
	int			 naddrs;
	struct sockaddr_storage	 next[ROUTE_FWD_MAXADDRS];
	int			 nnext;
};

static void	route_next(struct route_req *);
static void	route_outside(struct route_req *, const char *);
static void	route_relay(struct route_req *);
static void	route_custom_fwd(struct route_req *);
static const struct smx_host *route_outbound(const struct smx_conf *);
static enum smx_tls route_outbound_tls(const struct smx_conf *);
static void	route_query(struct route_req *);
static void	route_answer(struct table_query *);
static void	route_found(struct route_req *);
static void	route_follow(struct route_req *, const char *);
static void	route_unknown(struct route_req *);
static void	route_finish(struct route_req *, enum lookup_verdict,
		    uint32_t, const char *, enum route_class, const char *,
		    const struct smx_host *);
static void	route_explain(struct route_req *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
static void	route_policy(struct route_req *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
static struct route_step *route_step_new(struct route_req *);
static int	route_key(const char *, enum route_phase, char *, size_t);
static const char *route_domain_type(enum smx_domain_type);
static int	route_trusted(const struct smx_conf *,
		    const struct sockaddr *);
static int	route_from_forward(const struct smx_domain *,
		    const struct sockaddr *);
static int	route_check_final(const struct smx_conf *,
		    const struct table_set *, const char *, char *, size_t);
static struct route_fwd *route_fwd_find(const struct smx_host *);
static void	route_fwd_resolve(struct route_fwd *);
static void	route_fwd_answer(void *, int, const struct sockaddr_storage *,
		    int);
static void	route_fwd_timer(int, short, void *);

static TAILQ_HEAD(, route_fwd)	 fwds = TAILQ_HEAD_INITIALIZER(fwds);
static struct event		 fwd_ev;

static const char *
route_domain_type(enum smx_domain_type t)
{
	switch (t) {
	case DOMAIN_AUTHORITATIVE:
		return "authoritative";
	case DOMAIN_SHARED:
		return "shared";
	case DOMAIN_RELAY:
		return "relay";
	case DOMAIN_TYPE_COUNT:
		break;
	}
	return "?";
}

void
route_start(struct lookup_gen *gen, const struct sockaddr *client,
    const char *rcpt, int explain, route_cb cb, void *arg)
{
	struct route_req	*req;
	char			*at;
	size_t			 len;

	if ((req = calloc(1, sizeof(*req))) == NULL ||
	    (explain && (req->ex = calloc(1, sizeof(*req->ex))) == NULL))
		fatal("calloc");
	lookup_gen_ref(gen);
	req->gen = gen;
	req->cb = cb;
	req->arg = arg;
	req->rr.rclass = ROUTE_NONE;
	if (client != NULL) {
		memcpy(&req->client, client, client->sa_family == AF_INET6 ?
		    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
		req->has_client = 1;
	}
	if (strlcpy(req->rcpt, rcpt, sizeof(req->rcpt)) >= sizeof(req->rcpt))
		req->rcpt[0] = '\0';
	strlcpy(req->cur, req->rcpt, sizeof(req->cur));
	str_lower(req->cur);
	/* "bob@example.com." is bob@example.com */
	len = strlen(req->cur);
	if (len > 0 && req->cur[len - 1] == '.')
		req->cur[--len] = '\0';
	if ((at = strrchr(req->cur, '@')) == NULL || at == req->cur ||
	    at[1] == '\0') {
		route_explain(req, "invalid address");
		route_finish(req, LOOKUP_REJECT, 501, "5.1.3 Bad recipient "
		    "address syntax", ROUTE_NONE, NULL, NULL);
		return;
	}
	route_next(req);
}

/*
 * One address of the decision: the recipient itself, then each custom
 * target followed.  Its domain says whether the directory is asked.
 */
static void
route_next(struct route_req *req)
{
	const struct smx_conf	*c = req->gen->conf;
	const struct smx_domain	*d;
	struct route_step	*st;
	const char		*domain;
	int			 i;

	domain = strrchr(req->cur, '@') + 1;
	d = req->dom = conf_domain(c, domain);
	if ((st = route_step_new(req)) != NULL) {
		strlcpy(st->addr, req->cur, sizeof(st->addr));
		if (d != NULL) {
			strlcpy(st->domain, d->name, sizeof(st->domain));
			strlcpy(st->dtype, route_domain_type(d->type),
			    sizeof(st->dtype));
			if (d->type != DOMAIN_RELAY)
				strlcpy(st->table, d->directory,
				    sizeof(st->table));
		}
	}

	for (i = 0; i < req->hops; i++)
		if (strcmp(req->seen[i], req->cur) == 0) {
			if (st != NULL)
				st->kind = LOOKUP_STEP_LOOP;
			route_explain(req, "custom chain loops");
			route_policy(req, "%s comes back to itself: a loop in "
			    "the directory", req->cur);
			route_finish(req, LOOKUP_REJECT, 550, "5.4.6 Routing "
			    "loop in the directory", ROUTE_NONE, NULL, NULL);
			return;
		}
	if (req->hops > ROUTE_MAXSTEPS) {
		if (st != NULL)
			st->kind = LOOKUP_STEP_TOO_LONG;
		route_explain(req, "custom chain too long");
		route_policy(req, "more than %d custom steps", ROUTE_MAXSTEPS);
		route_finish(req, LOOKUP_REJECT, 550, "5.4.6 Custom recipient "
		    "chain too long", ROUTE_NONE, NULL, NULL);
		return;
	}
	strlcpy(req->seen[req->hops], req->cur, sizeof(req->seen[0]));

	if (d == NULL) {
		if (st != NULL)
			st->kind = LOOKUP_STEP_OUTSIDE;
		route_outside(req, domain);
		return;
	}
	if (d->type == DOMAIN_RELAY) {
		if (st != NULL)
			st->kind = LOOKUP_STEP_RELAY;
		route_relay(req);
		return;
	}

	req->phase = PHASE_EXACT;
	route_query(req);
}

/* A domain that is not ours. */
static void
route_outside(struct route_req *req, const char *domain)
{
	const struct smx_conf	*c = req->gen->conf;

	if (req->hops > 0 && req->fwd != NULL)
		route_custom_fwd(req);
	else if (req->hops > 0) {
		route_explain(req, "custom -> %s", req->cur);
		route_policy(req, "authoritative domain: a custom recipient is "
		    "rewritten and routed by its target's domain, %s, which "
		    "is not ours: outbound", domain);
		route_finish(req, LOOKUP_ACCEPT, 250, "2.1.5 Ok", ROUTE_CUSTOM,
		    req->cur, route_outbound(c));
	} else if (req->has_client &&
	    route_trusted(c, (struct sockaddr *)&req->client)) {
		route_explain(req, "outbound");
		route_policy(req, "%s is not a configured domain; the client "
		    "is trusted: outbound", domain);
		route_finish(req, LOOKUP_ACCEPT, 250, "2.1.5 Ok",
		    ROUTE_OUTBOUND, "", route_outbound(c));
	} else {
		route_explain(req, "not ours -> relaying denied");
		route_policy(req, "%s is not a configured domain: only trusted "
		    "clients may send there", domain);
		route_finish(req, LOOKUP_REJECT, 550, "5.7.1 Relaying denied",
		    ROUTE_NONE, NULL, NULL);
	}
}

/* A relay domain of ours: no directory, its forward host. */
static void
route_relay(struct route_req *req)
{
	const struct smx_domain	*d = req->dom;

	if (req->hops > 0 && req->fwd != NULL)
		route_custom_fwd(req);
	else if (req->hops > 0) {
		route_explain(req, "custom -> %s", req->cur);
		route_policy(req, "authoritative domain: a custom recipient is "
		    "rewritten and routed by its target's domain, the relay "
		    "domain %s", d->name);
		route_finish(req, LOOKUP_ACCEPT, 250, "2.1.5 Ok", ROUTE_CUSTOM,
		    req->cur, &d->forward);
	} else {
		route_explain(req, "relay -> forward");
		route_policy(req, "relay domain %s: everything goes to its "
		    "forward host", d->name);
		route_finish(req, LOOKUP_ACCEPT, 250, "2.1.5 Ok", ROUTE_FORWARD,
		    "", &d->forward);
	}
}

/* The end of a shared domain's custom chain: its forward host. */
static void
route_custom_fwd(struct route_req *req)
{
	route_explain(req, "custom -> %s", req->cur);
	route_policy(req, "shared domain %s: a custom recipient is rewritten "
	    "to its target and sent to the forward host", req->fwd->name);
	route_finish(req, LOOKUP_ACCEPT, 250, "2.1.5 Ok", ROUTE_CUSTOM,
	    req->cur, &req->fwd->forward);
}

/* Outbound by MX: "outbound via mx" says how, else opportunistic. */
static enum smx_tls
route_outbound_tls(const struct smx_conf *c)
{
	return c->outbound.set ? c->outbound.tls : TLSP_OPPORTUNISTIC;
}

/* "outbound via": a smarthost, or NULL for the MX of the domain. */
static const struct smx_host *
route_outbound(const struct smx_conf *c)
{
	return c->outbound.set && c->outbound.name[0] != '\0' ?
	    &c->outbound : NULL;
}

/* "alice+x@example.com", then "alice@example.com", then "@example.com". */
static int
route_key(const char *addr, enum route_phase phase, char *key, size_t len)
{
	const char	*at = strrchr(addr, '@'), *plus;
	int		 n;

	switch (phase) {
	case PHASE_EXACT:
		if (strlcpy(key, addr, len) >= len)
			return -1;
		return 0;
	case PHASE_NODETAIL:
		if ((plus = memchr(addr, '+', (size_t)(at - addr))) == NULL ||
		    plus == addr)
			return -1;
		n = snprintf(key, len, "%.*s%s", (int)(plus - addr), addr, at);
		break;
	case PHASE_DOMAIN:
		n = snprintf(key, len, "%s", at);
		break;
	default:
		return -1;
	}
	if (n < 0 || (size_t)n >= len)
		return -1;
	return 0;
}

static void
route_query(struct route_req *req)
{
	struct table	*tb;

	while (req->phase < PHASE_COUNT &&
	    route_key(req->cur, req->phase, req->q.key,
	    sizeof(req->q.key)) == -1)
		req->phase++;
	if (req->phase == PHASE_COUNT) {
		route_unknown(req);
		return;
	}
	if ((tb = table_set_find(req->gen->tables, req->dom->directory)) ==
	    NULL) {
		/* parse.y refuses this; a table that failed never applies. */
		log_warnx("domain %s: no table %s", req->dom->name,
		    req->dom->directory);
		route_explain(req, "no directory");
		route_finish(req, LOOKUP_TEMPFAIL, 451, "4.3.5 Directory not "
		    "configured", ROUTE_NONE, NULL, NULL);
		return;
	}
	req->q.done = route_answer;
	req->q.arg = req;
	table_lookup(tb, &req->q);
}

static void
route_answer(struct table_query *q)
{
	struct route_req	*req = q->arg;
	struct route_step	*st;

	switch (q->status) {
	case TABLE_FOUND:
		route_found(req);
		return;
	case TABLE_NOTFOUND:
		req->phase++;
		route_query(req);
		return;
	case TABLE_TEMPFAIL:
		break;
	}
	if (req->ex != NULL && req->ex->nsteps > 0) {
		st = &req->ex->steps[req->ex->nsteps - 1];
		st->kind = LOOKUP_STEP_TEMPFAIL;
		strlcpy(st->source, q->source, sizeof(st->source));
	}
	/* A reply of the table's own: an answer it refuses to guess. */
	route_explain(req, q->reply[0] != '\0' ? "directory cannot decide" :
	    "directory unavailable");
	route_policy(req, "the directory %s cannot answer now: the client "
	    "tries again later", req->dom->directory);
	route_finish(req, LOOKUP_TEMPFAIL, 451, q->reply[0] != '\0' ?
	    q->reply : "4.4.3 Directory unavailable, try again later",
	    ROUTE_NONE, NULL, NULL);
}

static void
route_found(struct route_req *req)
{
	const struct smx_domain	*d = req->dom;
	struct route_step	*st = NULL;
	const char		*target = req->q.target;

	if (req->ex != NULL && req->ex->nsteps > 0) {
		st = &req->ex->steps[req->ex->nsteps - 1];
		strlcpy(st->entry, req->q.key, sizeof(st->entry));
		strlcpy(st->source, req->q.source, sizeof(st->source));
		st->kind = req->q.kind == DIR_LOCAL ? LOOKUP_STEP_LOCAL :
		    LOOKUP_STEP_CUSTOM;
		strlcpy(st->target, target, sizeof(st->target));
	}

	if (req->q.kind == DIR_LOCAL) {
		if (req->hops == 0)
			route_explain(req, "local");
		else
			route_explain(req, "custom -> %s (local mailbox)",
			    req->cur);
		route_policy(req, "%s domain %s: a local mailbox goes to "
		    "\"local to\"", route_domain_type(d->type), d->name);
		route_finish(req, LOOKUP_ACCEPT, 250, "2.1.5 Ok", ROUTE_LOCAL,
		    req->hops > 0 ? req->cur : "", &d->local);
		return;
	}

	/* A custom recipient without a target keeps its address. */
	if (target[0] == '\0' || strcmp(target, req->cur) == 0) {
		if (d->type == DOMAIN_SHARED || d->forward.set) {
			if (req->hops == 0)
				route_explain(req, "custom (keeps its "
				    "address)");
			else
				route_explain(req, "custom -> %s", req->cur);
			route_policy(req, "%s domain %s: a custom recipient "
			    "without a target keeps its address and goes to "
			    "the forward host", route_domain_type(d->type),
			    d->name);
			route_finish(req, LOOKUP_ACCEPT, 250, "2.1.5 Ok",
			    ROUTE_CUSTOM, req->hops > 0 ? req->cur : "",
			    &d->forward);
			return;
		}
		/* Routed by its own domain, which is this one. */
		route_explain(req, "custom without a target -> loop");
		route_policy(req, "authoritative domain %s has no \"forward "
		    "to\": a custom recipient without a target would come "
		    "back here", d->name);
		route_finish(req, LOOKUP_REJECT, 550, "5.4.6 Routing loop: "
		    "custom recipient without a target", ROUTE_NONE, NULL,
		    NULL);
		return;
	}

	/* Shared: to this domain's forward host unless followed further. */
	req->fwd = d->type == DOMAIN_SHARED ? d : NULL;
	route_follow(req, target);
}

static void
route_follow(struct route_req *req, const char *target)
{
	const char	*at;

	/* A file's targets are checked when it is read; not every table's. */
	if ((at = strrchr(target, '@')) == NULL || at == target ||
	    at[1] == '\0' || strlcpy(req->cur, target, sizeof(req->cur)) >=
	    sizeof(req->cur)) {
		log_warnx("table %s: custom recipient %s has an invalid target "
		    "%s", req->dom->directory, log_value(req->q.key),
		    log_text(target));
		route_explain(req, "invalid target in the directory");
		route_policy(req, "the directory %s gives %s an invalid target",
		    req->dom->directory, req->q.key);
		route_finish(req, LOOKUP_TEMPFAIL, 451, "4.3.0 Directory "
		    "error, try again later", ROUTE_NONE, NULL, NULL);
		return;
	}
	str_lower(req->cur);
	req->hops++;
	route_next(req);
}

static void
route_unknown(struct route_req *req)
{
	const struct smx_domain	*d = req->dom;
	struct route_step	*st;
	struct route_fwd	*f;
	const char		*rw = req->hops > 0 ? req->cur : "";

	if (req->ex != NULL && req->ex->nsteps > 0) {
		st = &req->ex->steps[req->ex->nsteps - 1];
		st->kind = LOOKUP_STEP_UNKNOWN;
	}

	/* A followed target that is no directory address: the other side. */
	if (req->hops > 0 && req->fwd != NULL) {
		route_custom_fwd(req);
		return;
	}

	switch (d->unknown) {
	case UNKNOWN_REJECT:
	case UNKNOWN_COUNT:	/* never: conf_recv checks the range */
		route_explain(req, "unknown -> reject");
		route_policy(req, "%s domain %s: unknown reject",
		    route_domain_type(d->type), d->name);
		route_finish(req, LOOKUP_REJECT, 550, "5.1.1 Recipient address "
		    "unknown", ROUTE_NONE, NULL, NULL);
		return;
	case UNKNOWN_BOUNCE:
		route_explain(req, "unknown -> bounce");
		route_policy(req, "%s domain %s: unknown bounce: accepted, "
		    "then a non-delivery report to the sender",
		    route_domain_type(d->type), d->name);
		route_finish(req, LOOKUP_ACCEPT, 250, "2.1.5 Ok", ROUTE_BOUNCE,
		    rw, NULL);
		return;
	case UNKNOWN_FORWARD:
		break;
	}

	if (req->has_client &&
	    route_from_forward(d, (struct sockaddr *)&req->client)) {
		route_explain(req, "unknown -> forward refused (loop)");
		route_policy(req, "%s domain %s: unknown forward, but the "
		    "client is the forward host", route_domain_type(d->type),
		    d->name);
		route_finish(req, LOOKUP_REJECT, 550, "5.4.6 Routing loop: "
		    "unknown recipient from the forward host", ROUTE_NONE,
		    NULL, NULL);
		return;
	}
	f = route_fwd_find(&d->forward);
	if (req->has_client && (f == NULL || !f->known)) {
		/* Cannot tell a loop from a stranger yet. */
		route_explain(req, "unknown -> forward (host not resolved)");
		route_policy(req, "%s domain %s: unknown forward; the forward "
		    "host's addresses are not known yet",
		    route_domain_type(d->type), d->name);
		route_finish(req, LOOKUP_TEMPFAIL, 451, "4.4.3 Forward host "
		    "not resolved yet, try again later", ROUTE_NONE, NULL,
		    NULL);
		return;
	}
	route_explain(req, "unknown -> forward");
	route_policy(req, "%s domain %s: unknown forward: to the forward host "
	    "(refused with 550 5.4.6 when the client is the forward host)",
	    route_domain_type(d->type), d->name);
	route_finish(req, LOOKUP_ACCEPT, 250, "2.1.5 Ok", ROUTE_FORWARD, rw,
	    &d->forward);
}

static void
route_finish(struct route_req *req, enum lookup_verdict v, uint32_t code,
    const char *text, enum route_class rc, const char *rewritten,
    const struct smx_host *dest)
{
	struct route_result	*rr = &req->rr;

	rr->verdict = v;
	rr->code = code;
	strlcpy(rr->text, text, sizeof(rr->text));
	rr->rclass = rc;
	strlcpy(rr->rewritten, rewritten != NULL ? rewritten : "",
	    sizeof(rr->rewritten));
	/* The destination's policy goes with it (see "lookup protocol"). */
	rr->tls = route_outbound_tls(req->gen->conf);
	if (dest != NULL) {
		host_str(dest, rr->dest, sizeof(rr->dest));
		rr->tls = dest->tls;
	}
	req->cb(rr, req->ex, req->arg);
	lookup_gen_unref(req->gen);
	free(req->ex);
	free(req);
}

static struct route_step *
route_step_new(struct route_req *req)
{
	struct route_step	*st;

	if (req->ex == NULL ||
	    req->ex->nsteps == (int)(sizeof(req->ex->steps) /
	    sizeof(req->ex->steps[0])))
		return NULL;
	st = &req->ex->steps[req->ex->nsteps++];
	memset(st, 0, sizeof(*st));
	return st;
}

static void
route_explain(struct route_req *req, const char *fmt, ...)
{
	va_list	 ap;

	if (req->ex == NULL)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(req->ex->decision, sizeof(req->ex->decision), fmt,
	    ap);
	va_end(ap);
}

static void
route_policy(struct route_req *req, const char *fmt, ...)
{
	va_list	 ap;

	if (req->ex == NULL)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(req->ex->policy, sizeof(req->ex->policy), fmt, ap);
	va_end(ap);
}

static int
route_trusted(const struct smx_conf *c, const struct sockaddr *client)
{
	const struct smx_net	*n;

	TAILQ_FOREACH(n, &c->trusted, entry)
		if (net_match(&n->ss, n->prefixlen, client))
			return 1;
	return 0;
}

/* The client is the forward host: "forward from", or its addresses. */
static int
route_from_forward(const struct smx_domain *d, const struct sockaddr *client)
{
	const struct smx_net	*n;
	struct route_fwd	*f;
	int			 i;

	TAILQ_FOREACH(n, &d->forward_from, entry)
		if (net_match(&n->ss, n->prefixlen, client))
			return 1;
	if ((f = route_fwd_find(&d->forward)) == NULL)
		return 0;
	for (i = 0; i < f->naddrs; i++)
		if (net_match(&f->addrs[i], f->addrs[i].ss_family == AF_INET ?
		    32 : 128, client))
			return 1;
	return 0;
}

static struct route_fwd *
route_fwd_find(const struct smx_host *h)
{
	struct route_fwd	*f;
	int			 mx = (h->flags & F_HOST_MX) != 0;

	TAILQ_FOREACH(f, &fwds, entry)
		if (f->mx == mx && strcasecmp(f->name, h->name) == 0)
			return f;
	return NULL;
}

/*
 * The forward hosts of the domains that forward unknown recipients:
 * a literal address is its own answer, a name is resolved now and
 * every ROUTE_FWD_REFRESH seconds (its MX hosts and its own address).
 * Hosts no longer configured are dropped once no query is out.
 */
void
route_fwd_update(const struct smx_conf *c)
{
	const struct smx_domain	*d;
	struct route_fwd	*f, *nf;
	struct timeval		 tv = { ROUTE_FWD_REFRESH, 0 };
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;

	TAILQ_FOREACH(f, &fwds, entry)
		f->used = 0;
	TAILQ_FOREACH(d, &c->domains, entry) {
		if (d->unknown != UNKNOWN_FORWARD || !d->forward.set ||
		    d->forward.name[0] == '\0')
			continue;
		if ((f = route_fwd_find(&d->forward)) != NULL) {
			f->used = 1;
			continue;
		}
		if ((f = calloc(1, sizeof(*f))) == NULL)
			fatal("calloc");
		strlcpy(f->name, d->forward.name, sizeof(f->name));
		f->mx = (d->forward.flags & F_HOST_MX) != 0;
		f->used = 1;
		sin = (struct sockaddr_in *)&f->addrs[0];
		sin6 = (struct sockaddr_in6 *)&f->addrs[0];
		if (inet_pton(AF_INET, f->name, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			f->literal = f->known = 1;
			f->naddrs = 1;
		} else if (inet_pton(AF_INET6, f->name,
		    &sin6->sin6_addr) == 1) {
			sin6->sin6_family = AF_INET6;
			f->literal = f->known = 1;
			f->naddrs = 1;
		}
		TAILQ_INSERT_TAIL(&fwds, f, entry);
		if (!f->literal)
			route_fwd_resolve(f);
	}
	TAILQ_FOREACH_SAFE(f, &fwds, entry, nf)
		if (!f->used && f->pending == 0) {
			TAILQ_REMOVE(&fwds, f, entry);
			free(f);
		}
	if (!event_initialized(&fwd_ev))
		evtimer_set(&fwd_ev, route_fwd_timer, NULL);
	evtimer_add(&fwd_ev, &tv);
}

static void
route_fwd_timer(int fd, short event, void *arg)
{
	struct route_fwd	*f;
	struct timeval		 tv = { ROUTE_FWD_REFRESH, 0 };

	(void)fd;
	(void)event;
	(void)arg;
	TAILQ_FOREACH(f, &fwds, entry)
		if (f->used && !f->literal && f->pending == 0)
			route_fwd_resolve(f);
	evtimer_add(&fwd_ev, &tv);
}

static void
route_fwd_resolve(struct route_fwd *f)
{
	f->nnext = 0;
	f->ok = 0;
	/* Mail from it may come from its MX hosts or from the name. */
	f->pending = f->mx ? 2 : 1;
	if (f->mx)
		dns_resolve(f->name, 1, route_fwd_answer, f);
	dns_resolve(f->name, 0, route_fwd_answer, f);
}

static void
route_fwd_answer(void *arg, int status, const struct sockaddr_storage *ss,
    int n)
{
	struct route_fwd	*f = arg;
	int			 i, j;

	if (status == DNS_OK) {
		f->ok = 1;
		for (i = 0; i < n && f->nnext < ROUTE_FWD_MAXADDRS; i++) {
			for (j = 0; j < f->nnext; j++)
				if (ss[i].ss_family == f->next[j].ss_family &&
				    net_match(&f->next[j],
				    ss[i].ss_family == AF_INET ? 32 : 128,
				    (const struct sockaddr *)&ss[i]))
					break;
			if (j == f->nnext)
				f->next[f->nnext++] = ss[i];
		}
	}
	if (--f->pending > 0)
		return;
	if (!f->used) {
		TAILQ_REMOVE(&fwds, f, entry);
		free(f);
		return;
	}
	if (!f->ok) {
		/* Keep what was known: a failed refresh proves nothing. */
		log_warnx("forward host %s: cannot resolve its addresses for "
		    "the loop check%s", f->name, f->known ?
		    ", keeping the previous ones" : "");
		return;
	}
	memcpy(f->addrs, f->next, sizeof(f->addrs[0]) * (size_t)f->nnext);
	f->naddrs = f->nnext;
	f->known = 1;
	f->resolved = time(NULL);
	log_debug("forward host %s: %d addresses for the loop check",
	    f->name, f->naddrs);
}

/*
 * Where a custom target's chain ends up, read from the tables at once:
 * 1 somewhere the directory vouches for (a local mailbox, a custom
 * entry of its own, outside the shared domains), 0 at an address of a
 * shared domain that its directory does not know (the forward host
 * would get it and may send it back), -1 if a table cannot tell now.
 * The address it ends at goes to last.
 */
static int
route_check_final(const struct smx_conf *c, const struct table_set *set,
    const char *target, char *last, size_t lastlen)
{
	const struct smx_domain	*d;
	struct table		*tb;
	struct table_query	 q;
	char			 addr[SMX_ADDRSZ];
	int			 hops, phase;

	strlcpy(addr, target, sizeof(addr));
	for (hops = 0; hops <= ROUTE_MAXSTEPS; hops++) {
		strlcpy(last, addr, lastlen);
		d = conf_domain(c, strrchr(addr, '@') + 1);
		if (d == NULL || d->type == DOMAIN_RELAY)
			return 1;
		if ((tb = table_set_find(set, d->directory)) == NULL)
			return -1;
		memset(&q, 0, sizeof(q));
		for (phase = PHASE_EXACT; phase < PHASE_COUNT; phase++) {
			if (route_key(addr, (enum route_phase)phase, q.key,
			    sizeof(q.key)) == -1)
				continue;
			if (table_lookup_now(tb, &q) == -1)
				return -1;
			if (q.status == TABLE_FOUND)
				break;
		}
		if (phase == PHASE_COUNT)
			return d->type == DOMAIN_SHARED ? 0 : 1;
		if (q.kind == DIR_LOCAL || q.target[0] == '\0' ||
		    strcmp(q.target, addr) == 0)
			return 1;
		strlcpy(addr, q.target, sizeof(addr));
	}
	return 1;	/* too long: table_file_check_cycles said so */
}

/*
 * The warnings of splitmxd -n and of a reload (never errors: the
 * directory is synchronised from elsewhere and may be right):
 * - a custom target in a shared domain that the directory does not know
 *   goes to the forward host, which may well send it back to us;
 * - a custom entry without a target in an authoritative domain without
 *   "forward to" has nowhere to go (550 5.4.6 at RCPT).
 */
void
route_check(const struct smx_conf *c, const struct table_set *set,
    FILE *warnfp)
{
	const struct smx_domain	*d, *td;
	struct table_query	 q;
	struct table		*tb;
	char			 last[SMX_ADDRSZ];
	size_t			 i, j;

	if (warnfp == NULL)
		return;
	for (i = 0; i < set->n; i++) {
		tb = set->tables[i];
		for (j = 0; table_entry(tb, j, &q) == 0; j++) {
			if (q.kind != DIR_CUSTOM)
				continue;
			/* Only entries of a domain that uses this table. */
			d = conf_domain(c, strrchr(q.key, '@') + 1);
			if (d == NULL || d->type == DOMAIN_RELAY ||
			    strcmp(d->directory, table_name(tb)) != 0)
				continue;
			if (q.target[0] == '\0') {
				if (d->type == DOMAIN_AUTHORITATIVE &&
				    !d->forward.set)
					fprintf(warnfp, "%s: warning: custom "
					    "recipient %s has no target and "
					    "the authoritative domain %s has "
					    "no \"forward to\": it is refused "
					    "with 550 5.4.6\n", q.source,
					    q.key, d->name);
				continue;
			}
			td = conf_domain(c, strrchr(q.target, '@') + 1);
			if (td == NULL || td->type != DOMAIN_SHARED)
				continue;
			if (route_check_final(c, set, q.target, last,
			    sizeof(last)) != 0)
				continue;
			if ((td = conf_domain(c, strrchr(last, '@') + 1)) ==
			    NULL)
				continue;
			fprintf(warnfp, "%s: warning: custom recipient %s: "
			    "target %s%s%s is in the shared domain %s but not "
			    "in its directory: the forward host gets it and "
			    "may send it back\n", q.source, q.key, q.target,
			    strcmp(last, q.target) != 0 ? " -> " : "",
			    strcmp(last, q.target) != 0 ? last : "",
			    td->name);
		}
	}
}
