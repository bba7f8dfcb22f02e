/*
 * Asynchronous DNS for the relay's destinations: MX records in
 * preference order, then each exchanger's A and AAAA records (RFC 5321
 * §5.1), with c-ares driven by the process' libevent loop; and the A
 * records with their TTL of one name, for the DNS lists (dns_query_a).
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <ares.h>
#include <event.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"
#include "lookup.h"

#define DNS_MAX_MXRR		64	/* MX records looked at */
#define DNS_MAX_MX		10	/* exchangers resolved */
#define DNS_MAX_HOST_ADDRS	4	/* addresses per exchanger and family */
#define DNS_MAX_ADDRS		16	/* addresses in one answer */
#define DNS_MAX_REQS		1000	/* requests in flight */
#define DNS_TIMEOUT_MS		2000	/* first try; c-ares backs off */
#define DNS_TRIES		3
#define DNS_ERRSZ		256

enum {
	FAM_V4,
	FAM_V6
};

/*
 * One c-ares channel.  There are two, both made before the privilege
 * drop: c-ares 1.18 seeds its query ids from /dev/urandom when a channel
 * is made, and there is no /dev in the chroot.  A channel's servers can
 * only be changed while it has no query in flight, so a new "resolver"
 * goes to whichever channel is idle, and new requests follow it.
 */
struct dns_chan {
	ares_channel	 ares;
	int		 nqueries;	/* callbacks still to come */
	char		 servers[128];	/* as configured, "" resolv.conf */
	struct event	 tmo;
};

/* A socket c-ares wants watched. */
struct dns_sock {
	TAILQ_ENTRY(dns_sock)	 entry;
	struct dns_chan		*chan;
	int			 fd;
	short			 events;
	struct event		 ev;
};

struct dns_req;

/* An exchanger (or the name itself) and what its A/AAAA gave. */
struct dns_host {
	struct dns_req		*req;
	char			 name[SMX_HOSTSZ];
	uint32_t		 pref;
	int			 status[2];	/* DNS_* per family */
	int			 naddrs[2];
	struct sockaddr_storage	 addrs[2][DNS_MAX_HOST_ADDRS];
};

struct dns_req {
	uint64_t		 reqid;
	int			 peer;		/* the asker, or... */
	dns_cb			 cb;		/* ... for ourselves */
	void			*cbarg;
	char			 name[SMX_HOSTSZ];
	int			 mx;
	int			 implicit;	/* no MX: the name itself */
	struct dns_chan		*chan;
	int			 pending;	/* queries, +1 while sending */
	int			 status;	/* DNS_OK until it failed */
	char			 error[DNS_ERRSZ];
	struct dns_host		 hosts[DNS_MAX_MX];
	int			 nhosts;
};

/* An MX record while sorting. */
struct dns_mxrr {
	const char	*host;
	uint32_t	 pref;
	uint32_t	 rnd;
};

static void	dns_chan_init(struct dns_chan *);
static int	dns_chan_servers(struct dns_chan *, const char *);
static void	dns_resolver_check(void);
static void	dns_sock_state(void *, ares_socket_t, int, int);
static void	dns_sock_io(int, short, void *);
static void	dns_timeout(int, short, void *);
static void	dns_timer(struct dns_chan *);
static struct dns_req *dns_req_new(const char *, int);
static void	dns_start(struct dns_req *);
static void	dns_release_later(int, short, void *);
static int	dns_literal(struct dns_req *);
static void	dns_send(struct dns_req *, const char *, int, ares_callback,
		    void *);
static void	dns_mx_cb(void *, int, int, unsigned char *, int);
static int	dns_mx_cmp(const void *, const void *);
static void	dns_mx_hosts(struct dns_req *, struct ares_mx_reply *);
static struct dns_host *dns_host_add(struct dns_req *, const char *,
		    uint32_t);
static void	dns_addrs(struct dns_host *);
static void	dns_a_cb(void *, int, int, unsigned char *, int);
static void	dns_aaaa_cb(void *, int, int, unsigned char *, int);
static int	dns_status(int);
static void	dns_fail(struct dns_req *, int, const char *, ...)
		    __attribute__((__format__ (printf, 3, 4)));
static void	dns_release(struct dns_req *);
static void	dns_finish(struct dns_req *);
static const char *dns_status_name(int);
static void	dns_a_answer(void *, int, int, unsigned char *, int);
static void	dns_a_deliver(int, short, void *);

static struct dns_chan		 chans[2];
static struct dns_chan		*cur;
static struct ares_addr_port_node *sysservers;	/* from resolv.conf */
static TAILQ_HEAD(, dns_sock)	 socks = TAILQ_HEAD_INITIALIZER(socks);
static int			 nreqs;
static char			 badresolver[128];	/* logged once */

void
dns_init(void)
{
	int	 r;

	if ((r = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS)
		fatalx("ares_library_init: %s", ares_strerror(r));
	dns_chan_init(&chans[0]);
	dns_chan_init(&chans[1]);
	/* Kept to go back to once a "resolver" line is removed. */
	if ((r = ares_get_servers_ports(chans[0].ares, &sysservers)) !=
	    ARES_SUCCESS)
		fatalx("ares_get_servers_ports: %s", ares_strerror(r));
	cur = &chans[0];
	if (env->conf->resolver[0] != '\0' &&
	    dns_chan_servers(cur, env->conf->resolver) == -1)
		fatalx("cannot use resolver %s", env->conf->resolver);
	log_debug("event=dns-init c-ares=%s resolver=%s", ares_version(NULL),
	    env->conf->resolver[0] ? env->conf->resolver : "resolv.conf");
}

static void
dns_chan_init(struct dns_chan *c)
{
	struct ares_options	 opts;
	int			 r, mask;

	memset(&opts, 0, sizeof(opts));
	opts.timeout = DNS_TIMEOUT_MS;
	opts.tries = DNS_TRIES;
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = c;
	mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
	if ((r = ares_init_options(&c->ares, &opts, mask)) != ARES_SUCCESS)
		fatalx("ares_init_options: %s", ares_strerror(r));
	c->servers[0] = '\0';
	evtimer_set(&c->tmo, dns_timeout, c);
}

/* Point an idle channel at the servers of a "resolver" line, or back. */
static int
dns_chan_servers(struct dns_chan *c, const char *servers)
{
	int	 r;

	if (*servers == '\0')
		r = ares_set_servers_ports(c->ares, sysservers);
	else
		r = ares_set_servers_ports_csv(c->ares, servers);
	if (r == ARES_ENOTIMP)
		return -1;	/* a query in flight after all: later */
	if (r != ARES_SUCCESS) {
		if (strcmp(badresolver, servers) != 0)
			log_warnx("cannot use resolver \"%s\": %s",
			    servers, ares_strerror(r));
		strlcpy(badresolver, servers, sizeof(badresolver));
		return -1;
	}
	if (strlcpy(c->servers, servers, sizeof(c->servers)) >=
	    sizeof(c->servers))
		fatalx("resolver too long");
	return 0;
}

/*
 * A reload may have changed the "resolver" line; the new servers are
 * taken at the first request after it that finds a channel idle (the
 * other channel drains within one query timeout).
 */
static void
dns_resolver_check(void)
{
	const char	*want = env->conf->resolver;
	struct dns_chan	*c, *other;

	if (strcmp(cur->servers, want) == 0)
		return;
	other = cur == &chans[0] ? &chans[1] : &chans[0];
	if (strcmp(other->servers, want) == 0)
		c = other;
	else if (cur->nqueries == 0)
		c = cur;
	else if (other->nqueries == 0)
		c = other;
	else
		return;
	if (strcmp(c->servers, want) != 0 && dns_chan_servers(c, want) == -1)
		return;
	cur = c;
	log_info("event=dns-resolver resolver=%s",
	    *want ? want : "resolv.conf");
}

/* c-ares tells which of its sockets to watch for what; 0, 0: forget. */
static void
dns_sock_state(void *arg, ares_socket_t fd, int readable, int writable)
{
	struct dns_chan	*c = arg;
	struct dns_sock	*s;
	short		 events = 0;

	TAILQ_FOREACH(s, &socks, entry)
		if (s->fd == fd)
			break;
	if (readable)
		events |= EV_READ;
	if (writable)
		events |= EV_WRITE;
	if (events == 0) {
		if (s != NULL) {
			event_del(&s->ev);
			TAILQ_REMOVE(&socks, s, entry);
			free(s);
		}
		return;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			fatal("calloc");
		s->fd = fd;
		TAILQ_INSERT_TAIL(&socks, s, entry);
	} else if (s->events == events && s->chan == c)
		return;
	else
		event_del(&s->ev);
	s->chan = c;
	s->events = events;
	event_set(&s->ev, fd, events | EV_PERSIST, dns_sock_io, s);
	if (event_add(&s->ev, NULL) == -1)
		fatal("event_add dns");
}

static void
dns_sock_io(int fd, short events, void *arg)
{
	struct dns_sock	*s = arg;
	struct dns_chan	*c = s->chan;

	/* s may be gone once c-ares has closed the socket. */
	ares_process_fd(c->ares, (events & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (events & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_timer(c);
}

static void
dns_timeout(int fd, short events, void *arg)
{
	struct dns_chan	*c = arg;

	(void)fd;
	(void)events;
	ares_process_fd(c->ares, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_timer(c);
}

/* Arm the timer for the channel's next retransmission or timeout. */
static void
dns_timer(struct dns_chan *c)
{
	struct timeval	 tv, *tvp;

	if ((tvp = ares_timeout(c->ares, NULL, &tv)) == NULL) {
		evtimer_del(&c->tmo);
		return;
	}
	evtimer_add(&c->tmo, tvp);
}

/* IMSG_LOOKUP_DNS_HOST: see "relay protocol" in splitmx.h. */
void
dns_host(struct msgchan *ch, struct msg *m)
{
	struct dns_req	*req;
	uint64_t	 reqid;
	uint32_t	 mx;
	char		 name[SMX_HOSTSZ];

	proc_expect(ch, m, PROC_RELAY);
	if (msg_get_u64(m, &reqid) == -1 ||
	    msg_get_str(m, name, sizeof(name)) == -1 ||
	    msg_get_u32(m, &mx) == -1 || msg_end(m) == -1 || mx > 1)
		fatalx("bad %s", imsg_name(m->type));
	req = dns_req_new(name, (int)mx);
	req->reqid = reqid;
	req->peer = ch->peer;
	dns_start(req);
	dns_release(req);
}

/* The same for the lookup process itself: cb is called from the loop. */
void
dns_resolve(const char *name, int mx, dns_cb cb, void *arg)
{
	struct dns_req	*req;
	struct timeval	 now = { 0, 0 };

	req = dns_req_new(name, mx);
	req->peer = -1;
	req->cb = cb;
	req->cbarg = arg;
	dns_start(req);
	/* Answered already (an address, a bad name): not on cb's stack. */
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

	dns_resolver_check();
	if ((req = calloc(1, sizeof(*req))) == NULL)
		fatal("calloc");
	nreqs++;
	req->mx = mx;
	req->chan = cur;
	req->status = DNS_OK;
	req->pending = 1;	/* until every query is sent */
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
	if (nreqs > DNS_MAX_REQS)
		dns_fail(req, DNS_TEMPFAIL, "4.4.3 resolver busy, %d requests "
		    "in flight", nreqs - 1);
	else if (!valid_domain(req->name))
		dns_fail(req, DNS_NXDOMAIN, "5.1.2 invalid domain name %s",
		    req->name);
	else if (req->mx)
		dns_send(req, req->name, ns_t_mx, dns_mx_cb, req);
	else if ((h = dns_host_add(req, req->name, 0)) != NULL)
		dns_addrs(h);
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
dns_send(struct dns_req *req, const char *name, int type, ares_callback cb,
    void *arg)
{
	req->pending++;
	req->chan->nqueries++;
	/* May call back at once (a bad name, no memory). */
	ares_query(req->chan->ares, name, ns_c_in, type, cb, arg);
	dns_timer(req->chan);
}

static void
dns_mx_cb(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_req		*req = arg;
	struct ares_mx_reply	*mxs = NULL;
	struct dns_host		*h;

	(void)timeouts;
	req->chan->nqueries--;
	if (status == ARES_SUCCESS)
		status = ares_parse_mx_reply(abuf, alen, &mxs);
	switch (status) {
	case ARES_SUCCESS:
		dns_mx_hosts(req, mxs);
		break;
	case ARES_ENODATA:
		/* RFC 5321 §5.1: no MX, the name is its own exchanger. */
		req->implicit = 1;
		if ((h = dns_host_add(req, req->name, 0)) != NULL)
			dns_addrs(h);
		break;
	case ARES_ENOTFOUND:
		dns_fail(req, DNS_NXDOMAIN, "5.1.2 domain %s not found",
		    req->name);
		break;
	default:
		dns_fail(req, DNS_TEMPFAIL, "4.4.3 temporary DNS failure "
		    "looking up MX of %s: %s", req->name,
		    ares_strerror(status));
		break;
	}
	if (mxs != NULL)
		ares_free_data(mxs);
	dns_release(req);
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
dns_mx_hosts(struct dns_req *req, struct ares_mx_reply *list)
{
	struct dns_mxrr		 rr[DNS_MAX_MXRR];
	struct ares_mx_reply	*mx;
	char			 name[SMX_HOSTSZ];
	size_t			 n = 0, i, len;
	int			 null = 0, j;

	for (mx = list; mx != NULL && n < DNS_MAX_MXRR; mx = mx->next) {
		if (mx->host == NULL || mx->host[0] == '\0' ||
		    strcmp(mx->host, ".") == 0) {
			null++;
			continue;
		}
		rr[n].host = mx->host;
		rr[n].pref = mx->priority;
		rr[n].rnd = arc4random();
		n++;
	}
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
		if (strlcpy(name, rr[i].host, sizeof(name)) >= sizeof(name))
			continue;
		len = strlen(name);
		if (len > 1 && name[len - 1] == '.')
			name[len - 1] = '\0';
		str_lower(name);
		if (!valid_domain(name)) {
			log_debug("event=dns name=%s ignored-mx=%s",
			    log_value(req->name), log_text(name));
			continue;
		}
		for (j = 0; j < req->nhosts; j++)
			if (strcmp(req->hosts[j].name, name) == 0)
				break;
		if (j < req->nhosts)
			continue;	/* the better preference stays */
		(void)dns_host_add(req, name, rr[i].pref);
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
	return h;
}

static void
dns_addrs(struct dns_host *h)
{
	dns_send(h->req, h->name, ns_t_a, dns_a_cb, h);
	dns_send(h->req, h->name, ns_t_aaaa, dns_aaaa_cb, h);
}

static void
dns_a_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_host		*h = arg;
	struct ares_addrttl	 ttls[DNS_MAX_HOST_ADDRS];
	struct sockaddr_in	*sin;
	int			 n = DNS_MAX_HOST_ADDRS, i;

	(void)timeouts;
	h->req->chan->nqueries--;
	if (status == ARES_SUCCESS)
		status = ares_parse_a_reply(abuf, alen, NULL, ttls, &n);
	if (status == ARES_SUCCESS && n == 0)
		status = ARES_ENODATA;
	h->status[FAM_V4] = dns_status(status);
	if (status == ARES_SUCCESS) {
		for (i = 0; i < n && i < DNS_MAX_HOST_ADDRS; i++) {
			sin = (struct sockaddr_in *)&h->addrs[FAM_V4][i];
			sin->sin_family = AF_INET;
			sin->sin_addr = ttls[i].ipaddr;
		}
		h->naddrs[FAM_V4] = i;
	}
	dns_release(h->req);
}

static void
dns_aaaa_cb(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_host		*h = arg;
	struct ares_addr6ttl	 ttls[DNS_MAX_HOST_ADDRS];
	struct sockaddr_in6	*sin6;
	int			 n = DNS_MAX_HOST_ADDRS, i;

	(void)timeouts;
	h->req->chan->nqueries--;
	if (status == ARES_SUCCESS)
		status = ares_parse_aaaa_reply(abuf, alen, NULL, ttls, &n);
	if (status == ARES_SUCCESS && n == 0)
		status = ARES_ENODATA;
	h->status[FAM_V6] = dns_status(status);
	if (status == ARES_SUCCESS) {
		for (i = 0; i < n && i < DNS_MAX_HOST_ADDRS; i++) {
			sin6 = (struct sockaddr_in6 *)&h->addrs[FAM_V6][i];
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, &ttls[i].ip6addr,
			    sizeof(sin6->sin6_addr));
		}
		h->naddrs[FAM_V6] = i;
	}
	dns_release(h->req);
}

/* What a c-ares status means for delivery. */
static int
dns_status(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENODATA:
		return DNS_NODATA;
	case ARES_ENOTFOUND:
	case ARES_EBADNAME:
		return DNS_NXDOMAIN;
	default:
		/* SERVFAIL, REFUSED, timeouts, garbage: try later. */
		return DNS_TEMPFAIL;
	}
}

static void
dns_fail(struct dns_req *req, int status, const char *fmt, ...)
{
	va_list	 ap;

	if (req->status != DNS_OK)
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
 * The answer: exchangers in order, each with its addresses, IPv4 and
 * IPv6 alternating (IPv4 first, so that a host without an IPv6 route
 * loses no time), at most DNS_MAX_HOST_ADDRS of each family per
 * exchanger and DNS_MAX_ADDRS in all.
 */
static void
dns_finish(struct dns_req *req)
{
	struct {
		struct dns_host		*h;
		struct sockaddr_storage	*ss;
	}			 out[DNS_MAX_ADDRS];
	struct sockaddr_storage	 addrs[DNS_MAX_ADDRS];
	struct msg		 r;
	struct dns_host		*h;
	int			 n = 0, i, j, f, temp = 0, nx = 0, status;
	const char		*error;

	for (i = 0; i < req->nhosts && req->status == DNS_OK; i++) {
		h = &req->hosts[i];
		for (j = 0; j < DNS_MAX_HOST_ADDRS; j++)
			for (f = FAM_V4; f <= FAM_V6; f++)
				if (j < h->naddrs[f] && n < DNS_MAX_ADDRS) {
					out[n].h = h;
					out[n].ss = &h->addrs[f][j];
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
		if (temp)
			dns_fail(req, DNS_TEMPFAIL, "4.4.3 temporary DNS "
			    "failure looking up the address of %s%s",
			    req->mx && !req->implicit ? "the MX hosts of " :
			    "", req->name);
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
	status = req->status;
	error = status == DNS_OK ? "" : req->error;
	if (status != DNS_OK)
		n = 0;
	log_debug("event=dns name=%s mx=%d status=%s hosts=%d addresses=%d"
	    "%s%s%s", log_value(req->name), req->mx, dns_status_name(status),
	    req->nhosts, n, *error ? " error=\"" : "", error,
	    *error ? "\"" : "");

	if (req->cb != NULL) {
		for (i = 0; i < n; i++)
			addrs[i] = *out[i].ss;
		req->cb(req->cbarg, status, addrs, n);
		nreqs--;
		free(req);
		return;
	}
	msg_init(&r, IMSG_LOOKUP_DNS_HOST_RESULT, 0);
	msg_add_u64(&r, req->reqid);
	msg_add_u32(&r, (uint32_t)status);
	msg_add_str(&r, error);
	msg_add_u32(&r, (uint32_t)n);
	for (i = 0; i < n; i++) {
		msg_add_str(&r, out[i].h->name);
		msg_add_u32(&r, out[i].h->pref);
		msg_add_sockaddr(&r, (struct sockaddr *)out[i].ss,
		    out[i].ss->ss_family == AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	}
	proc_send(req->peer, &r);
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

/*
 * One A query of dns_query_a(): what it will answer, kept until it can
 * be delivered from the event loop.
 */
struct dns_areq {
	dns_query_cb	 cb;
	void		*arg;
	struct dns_chan	*chan;
	int		 sending;	/* inside ares_query() */
	int		 status;	/* DNS_* */
	struct in_addr	 addrs[DNS_MAX_A];
	int		 naddrs;
	uint32_t	 ttl;
};

/* See lookup.h.  The name is asked as it is: no search list. */
void
dns_query_a(const char *name, dns_query_cb cb, void *arg)
{
	struct dns_areq	*q;
	struct timeval	 now = { 0, 0 };

	dns_resolver_check();
	if ((q = calloc(1, sizeof(*q))) == NULL)
		fatal("calloc");
	nreqs++;
	q->cb = cb;
	q->arg = arg;
	q->chan = cur;
	q->status = DNS_TEMPFAIL;
	if (nreqs > DNS_MAX_REQS)
		log_debug("event=dns name=%s type=A status=tempfail "
		    "error=\"resolver busy\"", name);
	else if (!valid_domain(name) || strlen(name) > 253)
		q->status = DNS_NXDOMAIN;
	else {
		q->sending = 1;
		q->chan->nqueries++;
		/* Calls back at once for a bad name or no memory. */
		ares_query(q->chan->ares, name, ns_c_in, ns_t_a,
		    dns_a_answer, q);
		dns_timer(q->chan);
		if (q->sending == 1) {
			q->sending = 0;
			return;		/* the answer comes later */
		}
	}
	if (event_base_once(env->evbase, -1, EV_TIMEOUT, dns_a_deliver, q,
	    &now) == -1)
		fatalx("event_base_once failed");
}

static void
dns_a_answer(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_areq		*q = arg;
	struct ares_addrttl	 ttls[DNS_MAX_A];
	uint32_t		 ttl;
	int			 n = DNS_MAX_A, i;

	(void)timeouts;
	q->chan->nqueries--;
	if (status == ARES_SUCCESS)
		status = ares_parse_a_reply(abuf, alen, NULL, ttls, &n);
	if (status == ARES_SUCCESS && n == 0)
		status = ARES_ENODATA;
	q->status = dns_status(status);
	if (status == ARES_SUCCESS) {
		for (i = 0; i < n && i < DNS_MAX_A; i++) {
			q->addrs[i] = ttls[i].ipaddr;
			ttl = ttls[i].ttl < 0 ? 0 : (uint32_t)ttls[i].ttl;
			if (i == 0 || ttl < q->ttl)
				q->ttl = ttl;
		}
		q->naddrs = i;
	}
	/*
	 * c-ares does not give the negative TTL of an NXDOMAIN or NODATA
	 * answer (its SOA is in the authority section): 0, unknown.
	 */
	if (q->sending) {
		q->sending = 2;		/* dns_query_a() delivers it */
		return;
	}
	dns_a_deliver(-1, 0, q);
}

static void
dns_a_deliver(int fd, short event, void *arg)
{
	struct dns_areq	*q = arg;

	(void)fd;
	(void)event;
	q->cb(q->arg, q->status, q->addrs, q->naddrs, q->ttl);
	nreqs--;
	free(q);
}
