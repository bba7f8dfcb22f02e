/*
 * DNS block and allow lists (SPEC §10): a client's score at connect,
 * one A query per list, answers cached per list and address.
 *
 * A request (a connection, or splitmxctl check client) asks every list
 * at once and is answered when all have answered or DNSBL_TIMEOUT has
 * passed, whichever comes first; a list that is late counts as not
 * listing the client, but its answer, when it comes, is still cached.
 * The cache holds one entry per query name ("2.0.0.127.zone"): a
 * pending entry gathers every request that waits on the same name, so a
 * client that opens many connections costs one query per list.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/tree.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "splitmx.h"
#include "lookup.h"

#define DNSBL_CACHE_MAX		50000	/* entries */
/* Queries out at once: the rest of the resolver's room is the relay's. */
#define DNSBL_QUERIES_MAX	500
#define DNSBL_TTL_MAX		3600	/* SPEC §10: at most an hour */
#define DNSBL_TTL_NEGATIVE	300	/* not listed, the TTL unknown */
#define DNSBL_SWEEP		60	/* seconds between cache sweeps */
#define DNSBL_ADDRS		8	/* addresses kept from an answer */
#define DNSBL_ADDRSZ		(DNSBL_ADDRS * 16)
#define DNSBL_WARN_EVERY	3600	/* a list's error code, logged */
#define DNSBL_REPLYSZ		400	/* the list names in a 550 */

struct dnsbl_list;

/* One list's answer about one address, or the query waiting for it. */
struct dnsbl_entry {
	RB_ENTRY(dnsbl_entry)	 tree;
	TAILQ_ENTRY(dnsbl_entry) age;		/* oldest first */
	char			*qname;
	size_t			 zoneoff;	/* where the zone starts */
	int			 pending;	/* the query is out */
	enum dnsbl_answer	 answer;
	char			 addrs[DNSBL_ADDRSZ];
	time_t			 expires;	/* monotonic seconds */
	TAILQ_HEAD(, dnsbl_list) waits;		/* requests waiting */
};

struct dnsbl_req;

/* One list as a request sees it. */
struct dnsbl_list {
	struct dnsbl_req	*req;
	struct dnsbl_entry	*entry;		/* waited on, or NULL */
	TAILQ_ENTRY(dnsbl_list)	 wait;
	char			 zone[SMX_HOSTSZ];
	int			 allow;
	uint32_t		 weight;
	char			 qname[SMX_HOSTSZ];
	int			 done;
	enum dnsbl_answer	 answer;
	char			 addrs[DNSBL_ADDRSZ];
	int			 cached;
	time_t			 ttl;		/* seconds left in the cache */
};

/* A connection's question, or splitmxctl's (peer PROC_CONTROL). */
struct dnsbl_req {
	uint64_t		 reqid;
	int			 peer;
	char			 client[INET6_ADDRSTRLEN];
	int			 trusted;
	uint32_t		 threshold;
	struct dnsbl_list	*lists;
	int			 nlists;
	int			 pending;
	struct event		 tmo;
};

/* When a list's error code was last logged. */
struct dnsbl_warned {
	char			 zone[SMX_HOSTSZ];
	time_t			 when;
};

static int	dnsbl_cmp(struct dnsbl_entry *, struct dnsbl_entry *);
RB_HEAD(dnsbl_tree, dnsbl_entry);
RB_PROTOTYPE_INTERNAL(dnsbl_tree, dnsbl_entry, tree, dnsbl_cmp,
    SMX_RB_STATIC);

static time_t	dnsbl_now(void);
static int	dnsbl_reverse(const struct sockaddr_storage *, char *, size_t);
static void	dnsbl_start(uint64_t, int, const struct sockaddr_storage *);
static void	dnsbl_ask(struct dnsbl_list *, const char *, time_t);
static struct dnsbl_entry *dnsbl_entry_new(const char *, size_t);
static void	dnsbl_entry_free(struct dnsbl_entry *);
static int	dnsbl_cache_room(time_t);
static void	dnsbl_sweep(int, short, void *);
static void	dnsbl_answer(void *, int, const struct in_addr *, int,
		    uint32_t);
static enum dnsbl_answer dnsbl_classify(int, const struct in_addr *, int,
		    char *, size_t);
static void	dnsbl_operator(const struct dnsbl_entry *);
static void	dnsbl_list_done(struct dnsbl_list *,
		    const struct dnsbl_entry *, int, time_t);
static void	dnsbl_timeout(int, short, void *);
static void	dnsbl_finish(struct dnsbl_req *);
static void	dnsbl_reply(struct dnsbl_req *, int64_t, int, const char *,
		    const char *);
static const char *dnsbl_answer_name(enum dnsbl_answer);

static struct dnsbl_tree		 cache = RB_INITIALIZER(&cache);
static TAILQ_HEAD(, dnsbl_entry)	 ages = TAILQ_HEAD_INITIALIZER(ages);
static size_t				 ncache;
static struct event			 ev_sweep;
static struct dnsbl_warned		 warned[DNSBL_MAX];
static int				 nqueries;
static time_t				 busy_logged;

static int
dnsbl_cmp(struct dnsbl_entry *a, struct dnsbl_entry *b)
{
	return strcmp(a->qname, b->qname);
}

RB_GENERATE_INTERNAL(dnsbl_tree, dnsbl_entry, tree, dnsbl_cmp,
    SMX_RB_STATIC);

static time_t
dnsbl_now(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		fatal("clock_gettime");
	return ts.tv_sec;
}

/*
 * The client's address as a list wants it: reversed IPv4 octets
 * ("2.0.0.127"), or reversed IPv6 nibbles; an IPv4-mapped IPv6
 * address is the IPv4 client it is.  0, or -1 for another family.
 */
static int
dnsbl_reverse(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const struct sockaddr_in6	*sin6;
	const uint8_t			*a;
	size_t				 off = 0;
	int				 i, n;

	if (ss->ss_family == AF_INET) {
		a = (const uint8_t *)
		    &((const struct sockaddr_in *)ss)->sin_addr;
		n = snprintf(buf, len, "%u.%u.%u.%u", a[3], a[2], a[1], a[0]);
		return n < 0 || (size_t)n >= len ? -1 : 0;
	}
	if (ss->ss_family != AF_INET6)
		return -1;
	sin6 = (const struct sockaddr_in6 *)ss;
	a = sin6->sin6_addr.s6_addr;
	if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		n = snprintf(buf, len, "%u.%u.%u.%u", a[15], a[14], a[13],
		    a[12]);
		return n < 0 || (size_t)n >= len ? -1 : 0;
	}
	for (i = 15; i >= 0; i--) {
		n = snprintf(buf + off, len - off, "%s%x.%x", i == 15 ? "" :
		    ".", a[i] & 0x0f, a[i] >> 4);
		if (n < 0 || (size_t)n >= len - off)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* IMSG_LOOKUP_CLIENT: see "client protocol" in splitmx.h. */
void
dnsbl_client(struct msgchan *ch, struct msg *m)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	uint64_t		 reqid;

	proc_expect(ch, m, PROC_SMTP);
	if (msg_get_u64(m, &reqid) == -1 ||
	    msg_get_sockaddr(m, &ss, &sslen) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	dnsbl_start(reqid, PROC_SMTP, &ss);
}

/* IMSG_CTL_CHECK_CLIENT: splitmxctl check client IP. */
void
dnsbl_ctl(struct msgchan *ch, struct msg *m)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	uint64_t		 reqid;

	proc_expect(ch, m, PROC_CONTROL);
	if (msg_get_u64(m, &reqid) == -1 ||
	    msg_get_sockaddr(m, &ss, &sslen) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	dnsbl_start(reqid, PROC_CONTROL, &ss);
}

/*
 * Every list of the configuration in force is asked (a reload while
 * the answers come does not change the question), unless the client is
 * trusted.
 */
static void
dnsbl_start(uint64_t reqid, int peer, const struct sockaddr_storage *ss)
{
	struct smx_conf		*c = env->conf;
	struct smx_dnsbl	*bl;
	struct smx_net		*n;
	struct dnsbl_req	*req;
	struct dnsbl_list	*l;
	struct timeval		 tv = { DNSBL_TIMEOUT, 0 };
	char			 rev[80];
	time_t			 now = dnsbl_now();
	int			 i = 0;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		fatal("calloc");
	req->reqid = reqid;
	req->peer = peer;
	req->threshold = c->dnsbl_threshold;
	sa_str((const struct sockaddr *)ss, req->client, sizeof(req->client));
	evtimer_set(&req->tmo, dnsbl_timeout, req);
	TAILQ_FOREACH(n, &c->trusted, entry)
		if (net_match(&n->ss, n->prefixlen,
		    (const struct sockaddr *)ss)) {
			req->trusted = 1;
			break;
		}
	if (req->trusted || dnsbl_reverse(ss, rev, sizeof(rev)) == -1) {
		dnsbl_finish(req);
		return;
	}
	TAILQ_FOREACH(bl, &c->dnsbls, entry)
		req->nlists++;
	if (req->nlists > 0 &&
	    (req->lists = calloc(req->nlists, sizeof(*l))) == NULL)
		fatal("calloc");
	if (!event_initialized(&ev_sweep))
		evtimer_set(&ev_sweep, dnsbl_sweep, NULL);
	/* Counted first: an answer from the cache may finish it. */
	req->pending = req->nlists + 1;
	TAILQ_FOREACH(bl, &c->dnsbls, entry) {
		l = &req->lists[i++];
		l->req = req;
		strlcpy(l->zone, bl->zone, sizeof(l->zone));
		l->allow = bl->allow;
		l->weight = bl->weight;
		dnsbl_ask(l, rev, now);
	}
	if (--req->pending == 0) {
		dnsbl_finish(req);
		return;
	}
	evtimer_add(&req->tmo, &tv);
}

/* One list: from the cache, by joining a query out, or a new query. */
static void
dnsbl_ask(struct dnsbl_list *l, const char *rev, time_t now)
{
	struct dnsbl_entry	 find, *e;
	size_t			 zoneoff;
	int			 n;

	n = snprintf(l->qname, sizeof(l->qname), "%s.%s", rev, l->zone);
	if (n < 0 || (size_t)n >= sizeof(l->qname)) {
		/* The parser keeps zones short enough: not a DNS name. */
		dnsbl_list_done(l, NULL, 0, 0);
		return;
	}
	zoneoff = strlen(rev) + 1;
	find.qname = l->qname;
	if ((e = RB_FIND(dnsbl_tree, &cache, &find)) != NULL &&
	    !e->pending && e->expires <= now) {
		dnsbl_entry_free(e);
		e = NULL;
	}
	if (e != NULL && !e->pending) {
		stat_add("dnsbl.cached", 1);
		dnsbl_list_done(l, e, 1, e->expires - now);
		return;
	}
	if (e == NULL) {
		if (nqueries >= DNSBL_QUERIES_MAX || !dnsbl_cache_room(now)) {
			/* A flood of new clients: not listed, said once. */
			if (now - busy_logged >= 60) {
				log_warnx("dnsbl: %d queries out, %zu answers "
				    "cached: new clients are not looked up",
				    nqueries, ncache);
				busy_logged = now;
			}
			stat_add("dnsbl.errors", 1);
			dnsbl_list_done(l, NULL, 0, 0);
			return;
		}
		e = dnsbl_entry_new(l->qname, zoneoff);
		stat_add("dnsbl.queries", 1);
		nqueries++;
		dns_query_a(e->qname, dnsbl_answer, e);
	}
	l->entry = e;
	TAILQ_INSERT_TAIL(&e->waits, l, wait);
}

static struct dnsbl_entry *
dnsbl_entry_new(const char *qname, size_t zoneoff)
{
	struct dnsbl_entry	*e;
	struct timeval		 tv = { DNSBL_SWEEP, 0 };

	if ((e = calloc(1, sizeof(*e))) == NULL)
		fatal("calloc");
	e->qname = str_dup(qname);
	e->zoneoff = zoneoff;
	e->pending = 1;
	TAILQ_INIT(&e->waits);
	RB_INSERT(dnsbl_tree, &cache, e);
	TAILQ_INSERT_TAIL(&ages, e, age);
	ncache++;
	if (!evtimer_pending(&ev_sweep, NULL))
		evtimer_add(&ev_sweep, &tv);
	return e;
}

/* Never one with a query out: dnsbl_answer() holds a pointer to it. */
static void
dnsbl_entry_free(struct dnsbl_entry *e)
{
	if (e->pending || !TAILQ_EMPTY(&e->waits))
		fatalx("dnsbl: freeing an entry in use");
	RB_REMOVE(dnsbl_tree, &cache, e);
	TAILQ_REMOVE(&ages, e, age);
	ncache--;
	free(e->qname);
	free(e);
}

/*
 * Room for one more entry: the expired ones go, then the oldest
 * answers.  0 if every entry is a query still out.
 */
static int
dnsbl_cache_room(time_t now)
{
	struct dnsbl_entry	*e, *next;

	if (ncache < DNSBL_CACHE_MAX)
		return 1;
	TAILQ_FOREACH_SAFE(e, &ages, age, next)
		if (!e->pending && e->expires <= now)
			dnsbl_entry_free(e);
	TAILQ_FOREACH_SAFE(e, &ages, age, next) {
		if (ncache < DNSBL_CACHE_MAX)
			break;
		if (!e->pending)
			dnsbl_entry_free(e);
	}
	return ncache < DNSBL_CACHE_MAX;
}

/* Expired answers go every minute, while there are any. */
static void
dnsbl_sweep(int fd, short event, void *arg)
{
	struct dnsbl_entry	*e, *next;
	struct timeval		 tv = { DNSBL_SWEEP, 0 };
	time_t			 now = dnsbl_now();

	(void)fd;
	(void)event;
	(void)arg;
	TAILQ_FOREACH_SAFE(e, &ages, age, next)
		if (!e->pending && e->expires <= now)
			dnsbl_entry_free(e);
	if (ncache > 0)
		evtimer_add(&ev_sweep, &tv);
}

/*
 * The answer to a query: every request waiting gets it, and it stays
 * cached for its TTL (at most an hour); an error is not cached.
 */
static void
dnsbl_answer(void *arg, int status, const struct in_addr *addrs, int naddrs,
    uint32_t ttl)
{
	struct dnsbl_entry	*e = arg;
	struct dnsbl_list	*l;
	time_t			 now = dnsbl_now(), keep;

	nqueries--;
	e->answer = dnsbl_classify(status, addrs, naddrs, e->addrs,
	    sizeof(e->addrs));
	if (e->answer == DNSBL_ANS_ERROR)
		keep = 0;
	else if (ttl == 0 && status != DNS_OK)
		keep = DNSBL_TTL_NEGATIVE;
	else
		keep = ttl > DNSBL_TTL_MAX ? DNSBL_TTL_MAX : (time_t)ttl;
	e->expires = now + keep;
	e->pending = 0;
	log_debug("event=dnsbl-answer query=%s answer=\"%s\" addresses=\"%s\" "
	    "ttl=%u cached=%lld", e->qname, dnsbl_answer_name(e->answer),
	    e->addrs, ttl, (long long)keep);
	if (e->answer == DNSBL_ANS_ERROR || e->answer == DNSBL_ANS_OPERATOR)
		stat_add("dnsbl.errors", 1);
	if (e->answer == DNSBL_ANS_OPERATOR)
		dnsbl_operator(e);
	while ((l = TAILQ_FIRST(&e->waits)) != NULL)
		dnsbl_list_done(l, e, 0, keep);
	if (keep == 0)
		dnsbl_entry_free(e);
}

/*
 * SPEC §10: an address in 127.0.0.0/8 lists the client, except
 * 127.255.255.0/24, which list operators answer with when they refuse
 * the query; any other address (a list that has gone away and now
 * answers everything) lists nobody.  The addresses are kept as text.
 */
static enum dnsbl_answer
dnsbl_classify(int status, const struct in_addr *addrs, int naddrs,
    char *buf, size_t len)
{
	char		 a[INET_ADDRSTRLEN];
	uint32_t	 ip;
	int		 i, listed = 0, refused = 0;

	buf[0] = '\0';
	if (status == DNS_NXDOMAIN || status == DNS_NODATA)
		return DNSBL_ANS_CLEAN;
	if (status != DNS_OK)
		return DNSBL_ANS_ERROR;
	for (i = 0; i < naddrs; i++) {
		ip = ntohl(addrs[i].s_addr);
		if ((ip & 0xffffff00) == 0x7fffff00)
			refused = 1;
		else if ((ip & 0xff000000) == 0x7f000000)
			listed = 1;
		if (i < DNSBL_ADDRS &&
		    inet_ntop(AF_INET, &addrs[i], a, sizeof(a)) != NULL) {
			if (buf[0] != '\0')
				strlcat(buf, " ", len);
			strlcat(buf, a, len);
		}
	}
	if (refused)
		return DNSBL_ANS_OPERATOR;
	return listed ? DNSBL_ANS_LISTED : DNSBL_ANS_CLEAN;
}

/* A list that refuses our queries is logged once an hour. */
static void
dnsbl_operator(const struct dnsbl_entry *e)
{
	const char	*zone = e->qname + e->zoneoff;
	time_t		 now = dnsbl_now();
	size_t		 i, slot = 0;

	for (i = 0; i < DNSBL_MAX; i++) {
		if (strcmp(warned[i].zone, zone) == 0) {
			slot = i;
			break;
		}
		if (warned[i].when < warned[slot].when)
			slot = i;
	}
	if (strcmp(warned[slot].zone, zone) == 0 &&
	    now - warned[slot].when < DNSBL_WARN_EVERY)
		return;
	strlcpy(warned[slot].zone, zone, sizeof(warned[slot].zone));
	warned[slot].when = now;
	log_warnx("dnsbl %s answers %s: the list operator refuses our "
	    "queries (a public resolver, or over its free use?); its "
	    "answers count as not listed", zone, e->addrs);
}

/* One list of a request has its answer (e NULL: none to be had). */
static void
dnsbl_list_done(struct dnsbl_list *l, const struct dnsbl_entry *e,
    int cached, time_t ttl)
{
	struct dnsbl_req	*req = l->req;

	if (l->entry != NULL) {
		TAILQ_REMOVE(&l->entry->waits, l, wait);
		l->entry = NULL;
	}
	l->done = 1;
	l->answer = e != NULL ? e->answer : DNSBL_ANS_ERROR;
	if (e != NULL)
		strlcpy(l->addrs, e->addrs, sizeof(l->addrs));
	l->cached = cached;
	l->ttl = ttl;
	if (--req->pending == 0)
		dnsbl_finish(req);
}

/* The lists that have not answered by now count as not listing. */
static void
dnsbl_timeout(int fd, short event, void *arg)
{
	struct dnsbl_req	*req = arg;
	struct dnsbl_list	*l;
	int			 i;

	(void)fd;
	(void)event;
	for (i = 0; i < req->nlists; i++) {
		l = &req->lists[i];
		if (l->done)
			continue;
		if (l->entry != NULL) {
			TAILQ_REMOVE(&l->entry->waits, l, wait);
			l->entry = NULL;
		}
		l->done = 1;
		l->answer = DNSBL_ANS_TIMEOUT;
		stat_add("dnsbl.errors", 1);
		log_info("event=dnsbl-timeout client=%s zone=%s after=%ds",
		    req->client, l->zone, DNSBL_TIMEOUT);
	}
	dnsbl_finish(req);
}

/* The score: block lists add their weight, allow lists subtract it. */
static void
dnsbl_finish(struct dnsbl_req *req)
{
	struct dnsbl_list	*l;
	char			 lists[DNSBL_REPLYSZ];
	char			 reply[DNSBL_REPLYSZ + 96];
	int64_t			 score = 0;
	int			 i, refused, n;

	evtimer_del(&req->tmo);
	for (i = 0; i < req->nlists; i++) {
		l = &req->lists[i];
		if (l->entry != NULL) {
			TAILQ_REMOVE(&l->entry->waits, l, wait);
			l->entry = NULL;
		}
	}
	lists[0] = '\0';
	for (i = 0; i < req->nlists; i++) {
		l = &req->lists[i];
		if (l->answer != DNSBL_ANS_LISTED)
			continue;
		if (l->allow) {
			score -= l->weight;
			continue;
		}
		score += l->weight;
		if (strlen(lists) + strlen(l->zone) + 6 >= sizeof(lists)) {
			if (strcmp(lists + strlen(lists) - 3, "...") != 0)
				strlcat(lists, ", ...", sizeof(lists));
			continue;
		}
		if (lists[0] != '\0')
			strlcat(lists, ", ", sizeof(lists));
		strlcat(lists, l->zone, sizeof(lists));
	}
	refused = !req->trusted && req->nlists > 0 &&
	    score >= (int64_t)req->threshold;
	reply[0] = '\0';
	if (refused) {
		n = snprintf(reply, sizeof(reply), "5.7.1 Service "
		    "unavailable; client [%s] blocked using %s", req->client,
		    lists);
		if (n < 0 || (size_t)n >= sizeof(reply))
			fatalx("dnsbl reply too long");
	}
	if (req->peer == PROC_SMTP && req->nlists > 0)
		log_info("session=%016llx event=dnsbl client=%s score=%lld "
		    "threshold=%u listed=\"%s\" verdict=%s",
		    (unsigned long long)req->reqid, req->client,
		    (long long)score, req->threshold, lists,
		    refused ? "refused" : "accepted");
	dnsbl_reply(req, score, refused, lists, reply);
	free(req->lists);
	free(req);
}

static void
dnsbl_reply(struct dnsbl_req *req, int64_t score, int refused,
    const char *lists, const char *reply)
{
	struct dnsbl_list	*l;
	struct msg		 r;
	int			 i;

	if (req->peer == PROC_SMTP) {
		msg_init(&r, IMSG_LOOKUP_CLIENT_RESULT, 0);
		msg_add_u64(&r, req->reqid);
		msg_add_u32(&r, (uint32_t)refused);
		msg_add_i64(&r, score);
		msg_add_str(&r, lists);
		msg_add_str(&r, reply);
		proc_send(PROC_SMTP, &r);
		return;
	}
	msg_init(&r, IMSG_CTL_CHECK_CLIENT_RESULT, 0);
	msg_add_u64(&r, req->reqid);
	msg_add_str(&r, req->client);
	msg_add_u32(&r, (uint32_t)req->trusted);
	msg_add_i64(&r, score);
	msg_add_u32(&r, req->threshold);
	msg_add_u32(&r, (uint32_t)refused);
	msg_add_str(&r, reply);
	msg_add_u32(&r, req->trusted ? 0 : (uint32_t)req->nlists);
	for (i = 0; !req->trusted && i < req->nlists; i++) {
		l = &req->lists[i];
		msg_add_str(&r, l->zone);
		msg_add_u32(&r, (uint32_t)l->allow);
		msg_add_u32(&r, l->weight);
		msg_add_str(&r, l->qname);
		msg_add_u32(&r, l->answer);
		msg_add_str(&r, l->addrs);
		msg_add_u32(&r, (uint32_t)l->cached);
		msg_add_i64(&r, l->ttl);
	}
	proc_send(PROC_CONTROL, &r);
}

static const char *
dnsbl_answer_name(enum dnsbl_answer a)
{
	switch (a) {
	case DNSBL_ANS_CLEAN:
		return "not listed";
	case DNSBL_ANS_LISTED:
		return "listed";
	case DNSBL_ANS_OPERATOR:
		return "list error code";
	case DNSBL_ANS_ERROR:
		return "dns error";
	case DNSBL_ANS_TIMEOUT:
	case DNSBL_ANS_COUNT:
		break;
	}
	return "timeout";
}
