/*
 * The lookup process: the directory tables, recipient classification
 * and DNS.  It answers the smtp process' questions about recipients
 * and, at connect, about clients (the DNS lists, dnsbl.c).
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "splitmx.h"
#include "lookup.h"

/* Who asked: the smtp session or the splitmxctl request. */
struct lookup_ask {
	uint64_t	 reqid;
	char		 sender[SMX_ADDRSZ];
	char		 rcpt[SMX_ADDRSZ];
};

/*
 * splitmxctl lookup, once routed: the decision waits while the
 * destination's hosts are resolved and their TLS policy explained.
 */
#define LOOKUP_CTL_MAXHOSTS	16
struct lookup_ctl_tls {
	struct lookup_ask	*ask;
	struct route_result	 rr;
	struct route_explain	 ex;
	int			 tlsonly;	/* IMSG_CTL_LOOKUP_TLS */
	enum smx_tls		 tls;
	struct {
		char		*host, *addrs, *mode, *why;
		uint32_t	 pref;
	}			 h[LOOKUP_CTL_MAXHOSTS];
	int			 nh;
};

static struct table_set *lookup_tables_open(struct smx_conf *, int,
		    struct table_set *, FILE *, FILE *);
static void	lookup_conf_apply(struct msg *);
static void	lookup_conf_abort(void);
static void	lookup_rcpt(struct msgchan *, struct msg *);
static void	lookup_rcpt_done(const struct route_result *,
		    const struct route_explain *, void *);
static void	lookup_ctl(struct msgchan *, struct msg *);
static void	lookup_ctl_done(const struct route_result *,
		    const struct route_explain *, void *);
static struct lookup_ask *lookup_ask_new(uint64_t, const char *,
		    const char *);
static const char *lookup_verdict_name(enum lookup_verdict);
static int	lookup_ctl_dest(const struct route_result *, const char *,
		    struct smx_host *);
static void	lookup_ctl_tls(void *, const struct dns_explain_host *,
		    const char *);
static void	lookup_ctl_send(struct lookup_ask *,
		    const struct route_result *, const struct route_explain *,
		    struct lookup_ctl_tls *, const char *);
static void	lookup_ctl_tlsreq(struct msgchan *, struct msg *);
static void	lookup_ctl_tls_part(struct msg *, enum smx_tls,
		    const struct lookup_ctl_tls *, const char *);

/*
 * The configuration in force with its tables, and the one prepared by
 * a reload and waiting for IMSG_CONF_APPLY.
 */
static struct lookup_gen	*current;
static struct lookup_gen	*pending;

void
lookup(void)
{
	dns_init();
	mta_sts_init();
	proc_drop_privileges();
	/* The first configuration was prepared, and applied at once. */
	if (pending == NULL || pending->conf != env->conf)
		fatalx("lookup: first configuration out of step");
	current = pending;
	current->owns_conf = 1;
	pending = NULL;
	dns_conf_apply();
	route_fwd_update(current->conf);
	event_dispatch();
	fatalx("event loop ended");
}

void
lookup_imsg(struct msgchan *ch, struct msg *m, void *arg)
{
	(void)arg;
	/* proc_imsg() frees the pending configuration; its tables go here. */
	if (m != NULL && m->type == IMSG_CONF_ABORT)
		lookup_conf_abort();
	if (proc_imsg(ch, m))
		return;
	switch (m->type) {
	case IMSG_CONF_APPLY:
		lookup_conf_apply(m);
		break;
	case IMSG_LOOKUP_RCPT:
		lookup_rcpt(ch, m);
		break;
	case IMSG_LOOKUP_DNS_HOST:
		dns_host(ch, m);
		break;
	case IMSG_CTL_LOOKUP:
		lookup_ctl(ch, m);
		break;
	case IMSG_LOOKUP_CLIENT:
		dnsbl_client(ch, m);
		break;
	case IMSG_CTL_CHECK_CLIENT:
		dnsbl_ctl(ch, m);
		break;
	case IMSG_LOOKUP_STS_LOAD:
		mta_sts_load(ch, m);
		break;
	case IMSG_CTL_LOOKUP_TLS:
		lookup_ctl_tlsreq(ch, m);
		break;
	case IMSG_LOOKUP_STS_LOADED:
		mta_sts_loaded(ch, m);
		break;
	default:
		fatalx("unexpected %s from %s", imsg_name(m->type),
		    proc_name(ch->peer));
	}
}

void
lookup_gen_ref(struct lookup_gen *gen)
{
	gen->refs++;
}

void
lookup_gen_unref(struct lookup_gen *gen)
{
	if (--gen->refs > 0)
		return;
	table_set_close(gen->tables);
	if (gen->owns_conf)
		conf_free(gen->conf);
	free(gen);
}

/*
 * A configuration's tables, opened and checked: errors (the set is
 * refused) to errfp, the routing warnings of its entries to warnfp.
 * table.c only reads tables; what their entries mean for routing is
 * route.c's, asked here, above both.
 */
static struct table_set *
lookup_tables_open(struct smx_conf *c, int use_fds, struct table_set *old,
    FILE *errfp, FILE *warnfp)
{
	struct table_set	*set;

	if ((set = table_set_open(c, use_fds, old, errfp)) != NULL)
		route_check(c, set, warnfp);
	return set;
}

/*
 * splitmxd -n: every table read as the lookup process will read it,
 * with the same checks and warnings.  (Named for the parent, which
 * knows "tables", not the lookup process.)
 */
int
lookup_check_config(struct smx_conf *c, FILE *errfp)
{
	struct table_set	*set;

	if ((set = lookup_tables_open(c, 0, NULL, errfp, errfp)) == NULL)
		return -1;
	table_set_close(set);
	return 0;
}

/*
 * Before the acknowledgement of a new configuration: every table is
 * loaded and checked now, so that a bad directory refuses the reload
 * and the tables in force go on answering until APPLY.
 */
int
lookup_conf_prepare(struct smx_conf *c, char *err, size_t errlen)
{
	struct lookup_gen	*gen;
	struct table_set	*set;
	FILE			*errfp, *warnfp;
	struct timespec		 t0, t1;
	char			*ebuf = NULL, *wbuf = NULL, *line, *p;
	size_t			 elen = 0, wlen = 0, i, n = 0;
	long long		 ms;

	if (pending != NULL) {
		/* An earlier one that never came to APPLY. */
		lookup_gen_unref(pending);
		pending = NULL;
	}
	/* The resolver first: a bad trust anchor file refuses it all. */
	if (dns_conf_prepare(c, err, errlen) == -1)
		return -1;
	if ((errfp = open_memstream(&ebuf, &elen)) == NULL ||
	    (warnfp = open_memstream(&wbuf, &wlen)) == NULL)
		fatal("open_memstream");
	if (clock_gettime(CLOCK_MONOTONIC, &t0) == -1)
		fatal("clock_gettime");
	set = lookup_tables_open(c, 1, current != NULL ? current->tables :
	    NULL, errfp, warnfp);
	if (clock_gettime(CLOCK_MONOTONIC, &t1) == -1)
		fatal("clock_gettime");
	ms = (long long)(t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000;
	if (fclose(errfp) != 0 || fclose(warnfp) != 0)
		fatal("fclose");
	for (p = wbuf; p != NULL && (line = strsep(&p, "\n")) != NULL;)
		if (*line != '\0')
			log_warnx("%s", line);
	free(wbuf);
	if (set == NULL) {
		dns_conf_abort();
		elen = strlen(ebuf);
		while (elen > 0 && ebuf[elen - 1] == '\n')
			ebuf[--elen] = '\0';
		strlcpy(err, elen > 0 ? ebuf : "the directory could not be "
		    "loaded", errlen);
		free(ebuf);
		return -1;
	}
	free(ebuf);
	for (i = 0; i < set->n; i++) {
		log_info("table=%s entries=%zu loaded",
		    table_name(set->tables[i]), table_count(set->tables[i]));
		n += table_count(set->tables[i]);
	}
	log_info("event=directory-loaded generation=%u tables=%zu entries=%zu "
	    "ms=%lld", c->generation, set->n, n, ms);
	if ((gen = calloc(1, sizeof(*gen))) == NULL)
		fatal("calloc");
	gen->conf = c;
	gen->tables = set;
	gen->refs = 1;
	pending = gen;
	return 0;
}

/* Lookups under way keep the old tables until they have answered. */
static void
lookup_conf_apply(struct msg *m)
{
	struct smx_conf		*old;
	struct lookup_gen	*prev = current;

	old = proc_conf_apply(m);
	if (pending == NULL || pending->conf != env->conf ||
	    prev == NULL || prev->conf != old)
		fatalx("lookup: configuration out of step");
	current = pending;
	current->owns_conf = 1;
	pending = NULL;
	lookup_gen_unref(prev);
	dns_conf_apply();
	route_fwd_update(current->conf);
}

static void
lookup_conf_abort(void)
{
	dns_conf_abort();
	if (pending == NULL)
		return;
	/* The configuration itself is proc_imsg()'s to free. */
	pending->owns_conf = 0;
	lookup_gen_unref(pending);
	pending = NULL;
}

static struct lookup_ask *
lookup_ask_new(uint64_t reqid, const char *sender, const char *rcpt)
{
	struct lookup_ask	*a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		fatal("calloc");
	a->reqid = reqid;
	strlcpy(a->sender, sender, sizeof(a->sender));
	strlcpy(a->rcpt, rcpt, sizeof(a->rcpt));
	return a;
}

static const char *
lookup_verdict_name(enum lookup_verdict v)
{
	switch (v) {
	case LOOKUP_ACCEPT:
		return "accept";
	case LOOKUP_REJECT:
		return "reject";
	case LOOKUP_TEMPFAIL:
		break;
	}
	return "tempfail";
}

/* See "lookup protocol" in splitmx.h. */
static void
lookup_rcpt(struct msgchan *ch, struct msg *m)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	uint64_t		 reqid;
	const char		*sender, *rcpt;

	proc_expect(ch, m, PROC_SMTP);
	if (msg_get_u64(m, &reqid) == -1 ||
	    msg_get_sockaddr(m, &ss, &sslen) == -1 ||
	    msg_get_strp(m, &sender) == -1 ||
	    msg_get_strp(m, &rcpt) == -1 ||
	    msg_end(m) == -1 || sender == NULL || rcpt == NULL)
		fatalx("bad %s", imsg_name(m->type));

	route_start(current, (struct sockaddr *)&ss, rcpt, 0,
	    lookup_rcpt_done, lookup_ask_new(reqid, sender, rcpt));
}

static void
lookup_rcpt_done(const struct route_result *rr,
    const struct route_explain *ex, void *arg)
{
	struct lookup_ask	*a = arg;
	struct msg		 r;
	char			 reply[512];

	(void)ex;
	(void)snprintf(reply, sizeof(reply), "%u %s", rr->code, rr->text);
	if (rr->verdict == LOOKUP_ACCEPT)
		log_info("session=%016llx event=route from=%s rcpt=%s "
		    "verdict=accept class=%s rewritten=%s destination=%s "
		    "reply=%s", (unsigned long long)a->reqid,
		    log_addr(a->sender), log_addr(a->rcpt),
		    route_class_name(rr->rclass),
		    log_addr(rr->rewritten[0] ? rr->rewritten : a->rcpt),
		    log_value(rr->dest[0] ? rr->dest : "mx"), log_text(reply));
	else
		log_info("session=%016llx event=route from=%s rcpt=%s "
		    "verdict=%s reply=%s", (unsigned long long)a->reqid,
		    log_addr(a->sender), log_addr(a->rcpt),
		    lookup_verdict_name(rr->verdict), log_text(reply));
	/* Rejections are counted by the smtp process, which sends them. */
	if (rr->verdict == LOOKUP_ACCEPT) {
		switch (rr->rclass) {
		case ROUTE_LOCAL:
			stat_add("recipients.local", 1);
			break;
		case ROUTE_CUSTOM:
			stat_add("recipients.custom", 1);
			break;
		case ROUTE_FORWARD:
			stat_add("recipients.forwarded", 1);
			break;
		case ROUTE_BOUNCE:
		case ROUTE_OUTBOUND:
		case ROUTE_NONE:
		case ROUTE_COUNT:
			break;
		}
	}

	msg_init(&r, IMSG_LOOKUP_RCPT_RESULT, 0);
	msg_add_u64(&r, a->reqid);
	msg_add_u32(&r, rr->verdict);
	msg_add_u32(&r, rr->code);
	msg_add_str(&r, rr->text);
	msg_add_u32(&r, rr->rclass);
	msg_add_str(&r, rr->rewritten);
	msg_add_str(&r, rr->dest);
	msg_add_u32(&r, rr->tls);
	proc_send(PROC_SMTP, &r);
	free(a);
}

/* splitmxctl lookup: see "Lookup protocol" in splitmx.h. */
static void
lookup_ctl(struct msgchan *ch, struct msg *m)
{
	uint64_t	 reqid;
	const char	*addr;

	proc_expect(ch, m, PROC_CONTROL);
	if (msg_get_u64(m, &reqid) == -1 || msg_get_strp(m, &addr) == -1 ||
	    msg_end(m) == -1 || addr == NULL)
		fatalx("bad %s", imsg_name(m->type));
	route_start(current, NULL, addr, 1, lookup_ctl_done,
	    lookup_ask_new(reqid, "", addr));
}

static void
lookup_ctl_done(const struct route_result *rr, const struct route_explain *ex,
    void *arg)
{
	struct lookup_ask	*a = arg;
	struct lookup_ctl_tls	*t;
	struct smx_host		 h;

	if (lookup_ctl_dest(rr, a->rcpt, &h) == -1) {
		lookup_ctl_send(a, rr, ex, NULL, "");
		return;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		fatal("calloc");
	t->ask = a;
	t->rr = *rr;
	t->ex = *ex;
	dns_explain(h.name, (h.flags & F_HOST_MX) != 0, h.port, rr->tls,
	    lookup_ctl_tls, t);
}

/*
 * Where an accepted recipient's mail goes, as the relay will see it:
 * the route's destination, or the MX of the address' domain.  -1 for a
 * recipient that goes nowhere (refused, a bounce).
 */
static int
lookup_ctl_dest(const struct route_result *rr, const char *rcpt,
    struct smx_host *h)
{
	const char	*addr, *dom, *errstr;

	if (rr->verdict != LOOKUP_ACCEPT || rr->rclass == ROUTE_BOUNCE)
		return -1;
	if (rr->dest[0] != '\0')
		return parse_host(rr->dest, h, &errstr);
	addr = rr->rewritten[0] != '\0' ? rr->rewritten : rcpt;
	if ((dom = strrchr(addr, '@')) == NULL || *++dom == '\0' ||
	    *dom == '[')
		return -1;
	memset(h, 0, sizeof(*h));
	if (strlcpy(h->name, dom, sizeof(h->name)) >= sizeof(h->name))
		return -1;
	h->port = 25;
	h->flags = F_HOST_MX;
	return 0;
}

/* One host of the destination, or (x NULL) the end with its summary. */
static void
lookup_ctl_tls(void *arg, const struct dns_explain_host *x,
    const char *summary)
{
	struct lookup_ctl_tls	*t = arg;
	struct msg		 r;
	int			 i;

	if (x != NULL) {
		if (t->nh == LOOKUP_CTL_MAXHOSTS)
			return;
		i = t->nh++;
		t->h[i].host = str_dup(x->host);
		t->h[i].addrs = str_dup(x->addrs);
		t->h[i].mode = str_dup(x->mode);
		t->h[i].why = str_dup(x->why);
		t->h[i].pref = x->pref;
		return;
	}
	if (t->tlsonly) {
		msg_init(&r, IMSG_CTL_LOOKUP_TLS_RESULT, 0);
		msg_add_u64(&r, t->ask->reqid);
		lookup_ctl_tls_part(&r, t->tls, t, summary);
		proc_send(PROC_CONTROL, &r);
		free(t->ask);
	} else
		lookup_ctl_send(t->ask, &t->rr, &t->ex, t, summary);
	for (i = 0; i < t->nh; i++) {
		free(t->h[i].host);
		free(t->h[i].addrs);
		free(t->h[i].mode);
		free(t->h[i].why);
	}
	free(t);
}

/* IMSG_CTL_LOOKUP_RESULT: see "Lookup protocol" in splitmx.h. */
static void
lookup_ctl_send(struct lookup_ask *a, const struct route_result *rr,
    const struct route_explain *ex, struct lookup_ctl_tls *t,
    const char *summary)
{
	const struct route_step	*st;
	struct msg		 r;
	int			 i;

	msg_init(&r, IMSG_CTL_LOOKUP_RESULT, 0);
	msg_add_u64(&r, a->reqid);
	msg_add_str(&r, a->rcpt);
	msg_add_u32(&r, rr->verdict);
	msg_add_u32(&r, rr->code);
	msg_add_str(&r, rr->text);
	msg_add_u32(&r, rr->rclass);
	msg_add_str(&r, rr->rewritten);
	msg_add_str(&r, rr->dest);
	msg_add_str(&r, ex->decision);
	msg_add_str(&r, ex->policy);
	msg_add_u32(&r, (uint32_t)ex->nsteps);
	for (i = 0; i < ex->nsteps; i++) {
		st = &ex->steps[i];
		msg_add_str(&r, st->addr);
		msg_add_str(&r, st->domain);
		msg_add_str(&r, st->dtype);
		msg_add_str(&r, st->table);
		msg_add_str(&r, st->entry);
		msg_add_str(&r, st->source);
		msg_add_u32(&r, st->kind);
		msg_add_str(&r, st->target);
	}
	lookup_ctl_tls_part(&r, rr->tls, t, summary);
	proc_send(PROC_CONTROL, &r);
	free(a);
}

/* The TLS part of IMSG_CTL_LOOKUP_RESULT, and of _TLS_RESULT. */
static void
lookup_ctl_tls_part(struct msg *r, enum smx_tls tls,
    const struct lookup_ctl_tls *t, const char *summary)
{
	int	 i;

	msg_add_str(r, t != NULL ? tls_policy_name(tls) : "");
	msg_add_u32(r, t != NULL ? (uint32_t)t->nh : 0);
	for (i = 0; t != NULL && i < t->nh; i++) {
		msg_add_str(r, t->h[i].host);
		msg_add_u32(r, t->h[i].pref);
		msg_add_str(r, t->h[i].addrs);
		msg_add_str(r, t->h[i].mode);
		msg_add_str(r, t->h[i].why);
	}
	msg_add_str(r, summary);
}

/*
 * show message: the TLS policy of a queued recipient's destination,
 * resolved and explained now; see "Lookup protocol" in splitmx.h.
 */
static void
lookup_ctl_tlsreq(struct msgchan *ch, struct msg *m)
{
	struct lookup_ctl_tls	*t;
	struct smx_host		 h;
	const char		*dest, *domain, *tls, *errstr;
	uint64_t		 reqid;
	int			 i;

	proc_expect(ch, m, PROC_CONTROL);
	if (msg_get_u64(m, &reqid) == -1 || msg_get_strp(m, &dest) == -1 ||
	    msg_get_strp(m, &domain) == -1 || msg_get_strp(m, &tls) == -1 ||
	    msg_end(m) == -1 || dest == NULL || domain == NULL || tls == NULL)
		fatalx("bad %s", imsg_name(m->type));
	if ((t = calloc(1, sizeof(*t))) == NULL)
		fatal("calloc");
	t->ask = lookup_ask_new(reqid, "", "");
	t->tlsonly = 1;
	t->tls = TLSP_OPPORTUNISTIC;
	for (i = 0; i < TLSP_COUNT; i++)
		if (strcmp(tls, tls_policy_name((enum smx_tls)i)) == 0)
			t->tls = (enum smx_tls)i;
	memset(&h, 0, sizeof(h));
	if (*dest != '\0' ? parse_host(dest, &h, &errstr) == -1 :
	    strlcpy(h.name, domain, sizeof(h.name)) >= sizeof(h.name)) {
		lookup_ctl_tls(t, NULL, "not a destination");
		return;
	}
	if (*dest == '\0') {
		h.port = 25;
		h.flags = F_HOST_MX;
	}
	dns_explain(h.name, (h.flags & F_HOST_MX) != 0, h.port, t->tls,
	    lookup_ctl_tls, t);
}
