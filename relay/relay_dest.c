/*
 * Destinations: where a delivery goes (SPEC §3 host syntax, or the MX of
 * the recipients' domain), its addresses from the lookup process, the
 * deliveries waiting for a session, and the session limits.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "splitmx.h"
#include "relay.h"

static int	relay_dest_host(struct relay_msg *, struct smx_host *,
		    char *, size_t);
static struct relay_dest *relay_dest_get(const struct smx_host *);
static void	relay_dest_dns(struct relay_dest *);
static int	relay_dest_loops(struct relay_dest *, struct relay_addr *,
		    int);
static void	relay_dest_fail(struct relay_dest *, uint32_t, const char *);
static void	relay_dest_fail_msg(struct relay_msg *, uint32_t,
		    const char *);
static int	relay_dest_hosts(struct msg *, struct relay_hostinfo **,
		    int *, enum sts_mode *, char *, size_t);
static void	relay_dest_hosts_free(struct relay_hostinfo *, int);
static int	relay_dest_room(struct relay_dest *, int);
static void	relay_dest_gc(void);
static void	relay_dest_later(int, short, void *);

static TAILQ_HEAD(, relay_dest)	 dests = TAILQ_HEAD_INITIALIZER(dests);
static uint64_t			 dns_reqid;
static int			 starved;	/* waiting for a global slot */
static struct event		 ev_later;
static int			 later_armed;

/* A delivery from the queue: find or make its destination, and wait. */
void
relay_dest_deliver(struct relay_msg *m)
{
	struct smx_host		 h;
	struct relay_dest	*d;
	char			 err[256];
	uint32_t		 i;

	if (relay_dest_host(m, &h, err, sizeof(err)) == -1) {
		for (i = 0; i < m->nrcpt; i++)
			if (!m->rcpts[i].done)
				relay_rcpt_set(m, &m->rcpts[i],
				    err[0] == '5' ? DELIVERY_PERMFAIL :
				    DELIVERY_TEMPFAIL, err, "-", "none",
				    "none");
		relay_result(m);
		return;
	}
	d = relay_dest_get(&h);
	m->dest = d;
	m->next_addr = 0;
	TAILQ_INSERT_TAIL(&d->waiting, m, entry);
	if (d->dns != DEST_DNS_PENDING && (d->naddrs == 0 ||
	    time(NULL) - d->dns_time > RELAY_DNS_REFRESH))
		relay_dest_dns(d);
	if (d->naddrs > 0)
		relay_dest_dispatch(d);
}

/*
 * The host a delivery goes to: its destination in host syntax, or for
 * "" the domain of its recipients (all share it), by MX.  -1 with a
 * text starting with an enhanced status code.
 */
static int
relay_dest_host(struct relay_msg *m, struct smx_host *h, char *err,
    size_t errsz)
{
	char		 buf[SMX_HOSTSZ + 16];
	struct in6_addr	 in6;
	const char	*errstr, *dom;
	size_t		 len;
	int		 toolong = 0;

	if (m->destination[0] != '\0') {
		if (parse_host(m->destination, h, &errstr) == -1) {
			/* Our own configuration's: fixable, no bounce. */
			(void)snprintf(err, errsz, "4.3.5 bad destination "
			    "\"%s\": %s", m->destination, errstr);
			return -1;
		}
	} else {
		if ((dom = strrchr(m->rcpts[0].addr, '@')) == NULL ||
		    *++dom == '\0') {
			(void)snprintf(err, errsz, "5.1.3 recipient address "
			    "has no domain");
			return -1;
		}
		len = strlen(dom);
		if (dom[0] == '[' && dom[len - 1] == ']') {
			/* A domain literal: "[192.0.2.1]", "[IPv6:...]". */
			dom++;
			len -= 2;
			if (len > 5 && strncasecmp(dom, "IPv6:", 5) == 0) {
				dom += 5;
				len -= 5;
			}
			if (snprintf(buf, sizeof(buf), "[%.*s]", (int)len,
			    dom) >= (int)sizeof(buf))
				toolong = 1;
		} else if (strlcpy(buf, dom, sizeof(buf)) >= sizeof(buf))
			toolong = 1;
		/* In brackets, only an address (RFC 5321 §4.1.3). */
		if (toolong || parse_host(buf, h, &errstr) == -1 ||
		    ((h->flags & F_HOST_MX) == 0 &&
		    inet_pton(AF_INET6, h->name, &in6) != 1 &&
		    inet_pton(AF_INET, h->name, &in6) != 1)) {
			(void)snprintf(err, errsz, "5.1.2 bad domain in "
			    "recipient address");
			return -1;
		}
	}
	str_lower(h->name);
	h->tls = (enum smx_tls)m->tls;
	h->set = 1;
	return 0;
}

static struct relay_dest *
relay_dest_get(const struct smx_host *h)
{
	struct relay_dest	*d;
	char			 key[sizeof(d->key)], hs[SMX_HOSTSZ + 16];

	host_str(h, hs, sizeof(hs));
	if (snprintf(key, sizeof(key), "%s/%d", hs, (int)h->tls) >=
	    (int)sizeof(key))
		fatalx("destination key too long");
	TAILQ_FOREACH(d, &dests, entry)
		if (strcmp(d->key, key) == 0)
			return d;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		fatal("calloc");
	strlcpy(d->key, key, sizeof(d->key));
	d->host = *h;
	d->tls = h->tls;
	d->dns = DEST_DNS_NONE;
	TAILQ_INIT(&d->waiting);
	TAILQ_INIT(&d->sessions);
	TAILQ_INSERT_TAIL(&dests, d, entry);
	return d;
}

static void
relay_dest_dns(struct relay_dest *d)
{
	struct msg	 m;

	d->dns = DEST_DNS_PENDING;
	d->dns_reqid = ++dns_reqid;
	msg_init(&m, IMSG_LOOKUP_DNS_HOST, 0);
	msg_add_u64(&m, d->dns_reqid);
	msg_add_str(&m, d->host.name);
	msg_add_u32(&m, (d->host.flags & F_HOST_MX) ? 1 : 0);
	msg_add_u16(&m, d->host.port);
	msg_add_u32(&m, (uint32_t)d->tls);
	proc_send(PROC_LOOKUP, &m);
}

/* IMSG_LOOKUP_DNS_HOST_RESULT: see "relay protocol" in splitmx.h. */
void
relay_dest_dns_result(struct msg *m)
{
	struct relay_dest	*d;
	struct relay_addr	*addrs = NULL, *a;
	struct relay_hostinfo	*hosts = NULL;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	uint64_t		 reqid;
	uint32_t		 status, n, i;
	const char		*error, *host;
	char			 text[300], sts_note[256];
	enum sts_mode		 sts;
	int			 nhosts;

	if (msg_get_u64(m, &reqid) == -1 ||
	    msg_get_u32(m, &status) == -1 || status >= DNS_COUNT ||
	    msg_get_strp(m, &error) == -1 || error == NULL ||
	    msg_get_u32(m, &n) == -1 || n > 64)
		fatalx("bad %s", imsg_name(m->type));
	if (n > 0 && (addrs = calloc(n, sizeof(*addrs))) == NULL)
		fatal("calloc");
	for (i = 0; i < n; i++) {
		a = &addrs[i];
		if (msg_get_strp(m, &host) == -1 || host == NULL ||
		    strlcpy(a->host, host, sizeof(a->host)) >=
		    sizeof(a->host) || msg_get_u32(m, &a->pref) == -1 ||
		    msg_get_sockaddr(m, &a->ss, &a->sslen) == -1 ||
		    (a->ss.ss_family != AF_INET && a->ss.ss_family != AF_INET6))
			fatalx("bad %s", imsg_name(m->type));
	}
	if (relay_dest_hosts(m, &hosts, &nhosts, &sts, sts_note,
	    sizeof(sts_note)) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));

	TAILQ_FOREACH(d, &dests, entry)
		if (d->dns == DEST_DNS_PENDING && d->dns_reqid == reqid)
			break;
	if (d == NULL)
		fatalx("%s for no destination", imsg_name(m->type));
	d->dns = DEST_DNS_DONE;
	d->dns_time = time(NULL);

	if (status == DNS_OK && n > 0) {
		for (i = 0; i < n; i++) {
			a = &addrs[i];
			if (a->ss.ss_family == AF_INET) {
				sin = (struct sockaddr_in *)&a->ss;
				sin->sin_port = htons(d->host.port);
				a->sslen = sizeof(*sin);
			} else {
				sin6 = (struct sockaddr_in6 *)&a->ss;
				sin6->sin6_port = htons(d->host.port);
				a->sslen = sizeof(*sin6);
			}
		}
		if ((d->host.flags & F_HOST_MX) &&
		    (n = (uint32_t)relay_dest_loops(d, addrs, (int)n)) == 0) {
			free(addrs);
			relay_dest_hosts_free(hosts, nhosts);
			(void)snprintf(text, sizeof(text), "5.4.6 mail for %s "
			    "loops back to myself", d->host.name);
			relay_dest_fail(d, DELIVERY_PERMFAIL, text);
			return;
		}
		/* Sessions look their host up again when they need it. */
		free(d->addrs);
		d->addrs = addrs;
		d->naddrs = (int)n;
		relay_dest_hosts_free(d->hosts, d->nhosts);
		d->hosts = hosts;
		d->nhosts = nhosts;
		d->sts = sts;
		strlcpy(d->sts_note, sts_note, sizeof(d->sts_note));
		log_debug("destination=%s event=resolved addresses=%d "
		    "hosts=%d mta-sts=%s", log_value(d->key), d->naddrs,
		    d->nhosts, log_text(sts_note));
		relay_dest_dispatch(d);
		return;
	}
	free(addrs);
	relay_dest_hosts_free(hosts, nhosts);
	if (d->naddrs > 0) {
		/* A failed refresh: the addresses we had still do. */
		log_info("destination=%s event=dns-refresh-failed "
		    "error=%s", log_value(d->key), log_text(error));
		relay_dest_dispatch(d);
		return;
	}
	relay_dest_fail(d, status == DNS_TEMPFAIL ? DELIVERY_TEMPFAIL :
	    DELIVERY_PERMFAIL, *error ? error : "4.4.3 DNS lookup failed");
}

/*
 * The second part of IMSG_LOOKUP_DNS_HOST_RESULT: per exchanger what
 * its TLS policy is decided from (see "relay protocol" in splitmx.h),
 * then the domain's MTA-STS policy.  -1 if malformed.
 */
static int
relay_dest_hosts(struct msg *m, struct relay_hostinfo **out, int *nout,
    enum sts_mode *sts, char *note, size_t notelen)
{
	struct relay_hostinfo	*hosts = NULL, *h;
	struct relay_tlsa	*t;
	const void		*data;
	uint32_t		 n, i, j, secure, tlsa, ntlsa, u, sl, mt, match;
	uint32_t		 mode;

	*out = NULL;
	*nout = 0;
	if (msg_get_u32(m, &n) == -1 || n > 64)
		return -1;
	if (n > 0 && (hosts = calloc(n, sizeof(*hosts))) == NULL)
		fatal("calloc");
	*out = hosts;
	for (i = 0; i < n; i++) {
		h = &hosts[i];
		*nout = (int)i + 1;
		if (msg_get_str(m, h->host, sizeof(h->host)) == -1 ||
		    msg_get_u32(m, &secure) == -1 ||
		    msg_get_u32(m, &tlsa) == -1 || tlsa >= TLSA_STATE_COUNT ||
		    msg_get_str(m, h->tlsa_error,
		    sizeof(h->tlsa_error)) == -1 ||
		    msg_get_u32(m, &ntlsa) == -1 || ntlsa > 64)
			return -1;
		if (ntlsa > 0 && (h->tlsa = calloc(ntlsa,
		    sizeof(*h->tlsa))) == NULL)
			fatal("calloc");
		for (j = 0; j < ntlsa; j++) {
			t = &h->tlsa[j];
			h->ntlsa = (int)j + 1;
			if (msg_get_u32(m, &u) == -1 || u > 255 ||
			    msg_get_u32(m, &sl) == -1 || sl > 255 ||
			    msg_get_u32(m, &mt) == -1 || mt > 255 ||
			    msg_get_datap(m, &data, &t->len) == -1)
				return -1;
			t->usage = (uint8_t)u;
			t->selector = (uint8_t)sl;
			t->mtype = (uint8_t)mt;
			if (t->len > 0) {
				if ((t->data = malloc(t->len)) == NULL)
					fatal("malloc");
				memcpy(t->data, data, t->len);
			}
			if (tls_tlsa_usable(t->usage, t->selector, t->mtype,
			    t->len))
				h->th.nusable++;
		}
		if (msg_get_u32(m, &match) == -1)
			return -1;
		h->th.secure = secure != 0;
		h->th.tlsa = (enum tlsa_state)tlsa;
		h->th.ntlsa = h->ntlsa;
		h->th.tlsa_error = h->tlsa_error;
		h->th.sts_match = match != 0;
	}
	if (msg_get_u32(m, &mode) == -1 || mode >= STS_MODE_COUNT ||
	    msg_get_str(m, note, notelen) == -1)
		return -1;
	*sts = (enum sts_mode)mode;
	for (i = 0; i < n; i++)
		hosts[i].th.sts = *sts;
	return 0;
}

static void
relay_dest_hosts_free(struct relay_hostinfo *hosts, int n)
{
	int	 i, j;

	for (i = 0; i < n; i++) {
		for (j = 0; j < hosts[i].ntlsa; j++)
			free(hosts[i].tlsa[j].data);
		free(hosts[i].tlsa);
	}
	free(hosts);
}

const struct relay_hostinfo *
relay_dest_hostinfo(const struct relay_dest *d, const char *host)
{
	int	 i;

	for (i = 0; i < d->nhosts; i++)
		if (strcmp(d->hosts[i].host, host) == 0)
			return &d->hosts[i];
	return NULL;
}

/*
 * RFC 5321 §5.1: if we are one of the exchangers, only those preferred
 * to us may be used.  "We" is the configured host name.
 */
static int
relay_dest_loops(struct relay_dest *d, struct relay_addr *addrs, int n)
{
	const char	*me = env->conf->hostname;
	uint32_t	 mypref = UINT32_MAX;
	int		 i, j;

	for (i = 0; i < n; i++)
		if (strcasecmp(addrs[i].host, me) == 0 &&
		    addrs[i].pref < mypref)
			mypref = addrs[i].pref;
	if (mypref == UINT32_MAX)
		return n;
	for (i = j = 0; i < n; i++)
		if (addrs[i].pref < mypref)
			addrs[j++] = addrs[i];
	log_info("destination=%s event=mx-self host=%s preferred=%d",
	    d->key, me, j);
	return j;
}

/* Every waiting delivery fails (DNS): the destination is done. */
static void
relay_dest_fail(struct relay_dest *d, uint32_t status, const char *text)
{
	struct relay_msg	*m;

	while ((m = TAILQ_FIRST(&d->waiting)) != NULL) {
		TAILQ_REMOVE(&d->waiting, m, entry);
		relay_dest_fail_msg(m, status, text);
	}
	relay_dest_gc();
}

static void
relay_dest_fail_msg(struct relay_msg *m, uint32_t status, const char *text)
{
	uint32_t	 i;

	for (i = 0; i < m->nrcpt; i++)
		if (!m->rcpts[i].done)
			relay_rcpt_set(m, &m->rcpts[i], status, text,
			    m->relay[0] ? m->relay : "-", "none", "none");
	relay_result(m);
}

/*
 * Give the waiting deliveries to idle sessions that may take them, or
 * to new sessions as far as the limits allow.  A delivery may use a
 * session whose address is not before its next_addr.
 */
void
relay_dest_dispatch(struct relay_dest *d)
{
	struct relay_msg	*m, *next;
	struct relay_session	*s, *spare;

	for (m = TAILQ_FIRST(&d->waiting); m != NULL && d->naddrs > 0;
	    m = next) {
		next = TAILQ_NEXT(m, entry);
		if (m->next_addr >= d->naddrs) {
			/* The addresses changed under it: it had its turn. */
			TAILQ_REMOVE(&d->waiting, m, entry);
			relay_dest_fail_msg(m, DELIVERY_TEMPFAIL, m->error[0] ?
			    m->error : "4.4.1 no more addresses to try");
			continue;
		}
		spare = NULL;
		TAILQ_FOREACH(s, &d->sessions, entry) {
			if (!relay_session_idle(s))
				continue;
			if (relay_session_addr(s) >= m->next_addr)
				break;
			spare = s;
		}
		if (s != NULL) {
			TAILQ_REMOVE(&d->waiting, m, entry);
			relay_session_assign(s, m);
			continue;
		}
		/* An idle session to an address it may not use: replace. */
		if (spare != NULL && d->nsessions >= RELAY_MAX_DEST_SESSIONS)
			relay_session_close(spare);
		if (!relay_dest_room(d, 1))
			continue;
		TAILQ_REMOVE(&d->waiting, m, entry);
		(void)relay_session_new(d, m->next_addr, m);
	}
	relay_dest_gc();
}

/*
 * May d have another session?  The global limit may be made room for by
 * closing an idle session elsewhere; if not, d is starved and is served
 * first when a session ends.
 */
static int
relay_dest_room(struct relay_dest *d, int reap)
{
	struct relay_dest	*o;
	struct relay_session	*s;

	if (d->nsessions >= RELAY_MAX_DEST_SESSIONS)
		return 0;
	if (relay_nsessions < RELAY_MAX_SESSIONS)
		return 1;
	if (reap)
		TAILQ_FOREACH(o, &dests, entry)
			TAILQ_FOREACH(s, &o->sessions, entry)
				if (relay_session_idle(s)) {
					relay_session_close(s);
					return relay_nsessions <
					    RELAY_MAX_SESSIONS;
				}
	starved = 1;
	return 0;
}

/* Is any destination waiting for a global session slot? */
int
relay_dest_starved(void)
{
	return starved;
}

/*
 * A session ended: its destination may start another, and if some
 * destination waits for a global slot, all get their turn (starting
 * with the ones that waited, round robin).
 */
void
relay_dest_session_gone(struct relay_dest *d)
{
	struct relay_dest	*o, *next;
	int			 n;

	relay_dest_dispatch(d);
	if (!starved)
		return;
	starved = 0;
	n = 0;
	TAILQ_FOREACH(o, &dests, entry)
		n++;
	for (o = TAILQ_FIRST(&dests); o != NULL && n-- > 0; o = next) {
		next = TAILQ_NEXT(o, entry);
		if (TAILQ_EMPTY(&o->waiting))
			continue;
		/* Served: to the end of the line. */
		TAILQ_REMOVE(&dests, o, entry);
		TAILQ_INSERT_TAIL(&dests, o, entry);
		relay_dest_dispatch(o);
		if (starved)
			break;
	}
}

/*
 * A session is done with a delivery.  It is reported if every
 * recipient has its verdict, if it has been through as many sessions
 * as it may, or if no address is left; else it waits again for an
 * address from next_addr on.
 */
void
relay_dest_msg_done(struct relay_msg *m, int next_addr)
{
	struct relay_dest	*d = m->dest;
	uint32_t		 i;

	m->session = NULL;
	for (i = 0; i < m->nrcpt; i++) {
		m->rcpts[i].here = 0;
		m->rcpts[i].tx = 0;
		m->rcpts[i].accepted = 0;
	}
	for (i = 0; i < m->nrcpt; i++)
		if (!m->rcpts[i].done)
			break;
	if (i == m->nrcpt || m->ntx >= RELAY_MAX_TX_SESSIONS ||
	    next_addr >= d->naddrs) {
		relay_result(m);
		relay_dest_gc();
		return;
	}
	m->next_addr = next_addr;
	TAILQ_INSERT_HEAD(&d->waiting, m, entry);
	relay_dest_gc();
}

/*
 * No session could get through at addr (connection, greeting, EHLO,
 * TLS).  Unless another session is talking to that address right now,
 * the deliveries waiting for it would only fail the same way: they move
 * on to the next address, or are reported.
 */
void
relay_dest_addr_failed(struct relay_dest *d, int addr, const char *error)
{
	struct relay_msg	*m, *next;
	struct relay_session	*s;

	TAILQ_FOREACH(s, &d->sessions, entry)
		if (relay_session_addr(s) == addr && relay_session_up(s))
			return;
	for (m = TAILQ_FIRST(&d->waiting); m != NULL; m = next) {
		next = TAILQ_NEXT(m, entry);
		if (m->next_addr > addr)
			continue;
		strlcpy(m->error, error, sizeof(m->error));
		m->next_addr = addr + 1;
		if (m->next_addr >= d->naddrs) {
			TAILQ_REMOVE(&d->waiting, m, entry);
			relay_dest_fail_msg(m, DELIVERY_TEMPFAIL, error);
		}
	}
}

/*
 * Destinations left empty are freed from the event loop, never under a
 * caller that may still hold one.
 */
static void
relay_dest_gc(void)
{
	struct timeval	 tv = { 0, 0 };

	if (later_armed)
		return;
	if (!event_initialized(&ev_later))
		evtimer_set(&ev_later, relay_dest_later, NULL);
	evtimer_add(&ev_later, &tv);
	later_armed = 1;
}

static void
relay_dest_later(int fd, short event, void *arg)
{
	struct relay_dest	*d, *next;

	(void)fd;
	(void)event;
	(void)arg;
	later_armed = 0;
	for (d = TAILQ_FIRST(&dests); d != NULL; d = next) {
		next = TAILQ_NEXT(d, entry);
		if (!TAILQ_EMPTY(&d->waiting) || d->nsessions > 0 ||
		    d->dns == DEST_DNS_PENDING)
			continue;
		TAILQ_REMOVE(&dests, d, entry);
		free(d->addrs);
		relay_dest_hosts_free(d->hosts, d->nhosts);
		free(d);
	}
}
