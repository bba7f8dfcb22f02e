/*
 * The connection policy of the smtp process (SPEC §10): the connection
 * rate per client address, checked at accept, and the verdict of the
 * DNS block and allow lists, asked of the lookup process when a session
 * starts and applied to its recipients.
 *
 * The lists are asked at once, while the banner delay runs: a clean
 * client whose lists answer within the 0.5 s costs nothing more.  A list
 * that is slower holds the banner until the lookup process answers,
 * which it does within DNSBL_TIMEOUT of the question (a silent list
 * counts as not listing); the session's own bound, 2 s beyond that,
 * only guards against an answer that never comes.  Trusted clients
 * are never asked about and get the banner at once.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/tree.h>

#include <netinet/in.h>

#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "splitmx.h"
#include "smtp.h"

#define RATE_MAX		100000	/* client addresses tracked */
#define RATE_SWEEP		60	/* seconds between sweeps */
#define NSEC			1000000000LL

/*
 * A client address under "limit connection-rate N": the generic cell
 * rate algorithm.  Each connection moves tat (the theoretical arrival
 * time) on by 60/N seconds; one that comes while tat is more than
 * N - 1 intervals ahead of now is over the rate.  So a client may open
 * N connections at once, then one every 60/N seconds, and is forgotten
 * once tat has passed.
 */
struct rate_client {
	RB_ENTRY(rate_client)	 entry;
	uint8_t			 key[17];	/* family, address */
	int64_t			 tat;		/* monotonic nanoseconds */
};

static int	rate_cmp(struct rate_client *, struct rate_client *);
RB_HEAD(rate_clients, rate_client);
RB_PROTOTYPE_INTERNAL(rate_clients, rate_client, entry, rate_cmp,
    SMX_RB_STATIC);

static int64_t	policy_now(void);
static int	policy_trusted(const struct smx_conf *,
		    const struct sockaddr_storage *);
static void	rate_key(const struct sockaddr_storage *, uint8_t *);
static void	rate_sweep(int, short, void *);
static void	rate_refuse(int, const char *, const char *);

static struct rate_clients	 rates = RB_INITIALIZER(&rates);
static size_t			 nrates;
static struct event		 ev_sweep;
static int64_t			 full_logged;

static int
rate_cmp(struct rate_client *a, struct rate_client *b)
{
	return memcmp(a->key, b->key, sizeof(a->key));
}

RB_GENERATE_INTERNAL(rate_clients, rate_client, entry, rate_cmp,
    SMX_RB_STATIC);

static int64_t
policy_now(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		fatal("clock_gettime");
	return (int64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

static int
policy_trusted(const struct smx_conf *c, const struct sockaddr_storage *ss)
{
	struct smx_net	*n;

	TAILQ_FOREACH(n, &c->trusted, entry)
		if (net_match(&n->ss, n->prefixlen,
		    (const struct sockaddr *)ss))
			return 1;
	return 0;
}

static void
rate_key(const struct sockaddr_storage *ss, uint8_t *key)
{
	memset(key, 0, 17);
	key[0] = (uint8_t)ss->ss_family;
	if (ss->ss_family == AF_INET)
		memcpy(key + 1, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	else if (ss->ss_family == AF_INET6)
		memcpy(key + 1, &((const struct sockaddr_in6 *)ss)->sin6_addr,
		    16);
}

/*
 * "limit connection-rate N" for a new connection: 0 go on, -1 refused
 * and closed.  Trusted clients (our own systems, which may send one
 * message per connection) are not limited.
 */
int
smtp_policy_rate(int sock, const struct sockaddr_storage *ss,
    const char *addr, const struct smx_conf *c)
{
	struct rate_client	 find, *rc;
	struct timeval		 tv = { RATE_SWEEP, 0 };
	int64_t			 now, interval, tat;

	if (c->connection_rate == 0 || policy_trusted(c, ss))
		return 0;
	now = policy_now();
	interval = 60 * NSEC / c->connection_rate;
	rate_key(ss, find.key);
	if ((rc = RB_FIND(rate_clients, &rates, &find)) == NULL) {
		if (nrates >= RATE_MAX)
			rate_sweep(-1, 0, NULL);
		if (nrates >= RATE_MAX) {
			/* Never a refusal for want of memory: let it in. */
			if (now - full_logged > 60 * NSEC) {
				log_warnx("limit connection-rate: %d client "
				    "addresses tracked, new ones are not "
				    "limited", RATE_MAX);
				full_logged = now;
			}
			return 0;
		}
		if ((rc = calloc(1, sizeof(*rc))) == NULL)
			fatal("calloc");
		memcpy(rc->key, find.key, sizeof(rc->key));
		rc->tat = now;
		RB_INSERT(rate_clients, &rates, rc);
		nrates++;
		if (!event_initialized(&ev_sweep))
			evtimer_set(&ev_sweep, rate_sweep, NULL);
		if (!evtimer_pending(&ev_sweep, NULL))
			evtimer_add(&ev_sweep, &tv);
	}
	tat = rc->tat > now ? rc->tat : now;
	if (tat - now > interval * (int64_t)(c->connection_rate - 1)) {
		rate_refuse(sock, addr, c->hostname);
		return -1;
	}
	rc->tat = tat + interval;
	return 0;
}

/* Addresses whose connections are all in the past are forgotten. */
static void
rate_sweep(int fd, short event, void *arg)
{
	struct rate_client	*rc, *next;
	struct timeval		 tv = { RATE_SWEEP, 0 };
	int64_t			 now = policy_now();

	(void)fd;
	(void)event;
	(void)arg;
	RB_FOREACH_SAFE(rc, rate_clients, &rates, next)
		if (rc->tat <= now) {
			RB_REMOVE(rate_clients, &rates, rc);
			free(rc);
			nrates--;
		}
	if (nrates > 0 && event_initialized(&ev_sweep) &&
	    !evtimer_pending(&ev_sweep, NULL))
		evtimer_add(&ev_sweep, &tv);
}

/* RFC 5321 §3.1: one 421 line, then the door. */
static void
rate_refuse(int sock, const char *addr, const char *hostname)
{
	char	 buf[SMX_HOSTSZ + 96];
	int	 n;

	log_info("event=refused client=%s limit=connection-rate", addr);
	stat_add("connections.rate_limited", 1);
	n = snprintf(buf, sizeof(buf), "421 4.7.0 %s Too many connections "
	    "from your address, try again later\r\n", hostname);
	if (n > 0 && (size_t)n < sizeof(buf))
		(void)send(sock, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(sock);
}

/* A new session: ask about the client unless trusted or no lists. */
void
smtp_policy_connect(struct smtp_session *s)
{
	const struct smx_conf	*c = s->gen->conf;
	struct msg		 m;

	s->policy = POLICY_NONE;
	if (TAILQ_EMPTY(&c->dnsbls) || policy_trusted(c, &s->ss))
		return;
	msg_init(&m, IMSG_LOOKUP_CLIENT, 0);
	msg_add_u64(&m, s->id);
	msg_add_sockaddr(&m, (struct sockaddr *)&s->ss, s->sslen);
	proc_send(PROC_LOOKUP, &m);
	s->policy = POLICY_PENDING;
}

/*
 * The banner delay is over.  Without the verdict the banner waits: the
 * timer is armed once more, and when the answer comes it fires at once.
 */
int
smtp_policy_banner_wait(struct smtp_session *s)
{
	/* Beyond the lookup process' own bound, with room for a busy host. */
	struct timeval	 tv = { DNSBL_TIMEOUT + 2, 0 };

	switch (s->policy) {
	case POLICY_PENDING:
		s->policy = POLICY_LATE;
		evtimer_add(&s->tmo, &tv);
		return 1;
	case POLICY_LATE:
		log_warnx("session=%016llx event=dnsbl client=%s: no answer "
		    "from the lookup process, taken as not listed",
		    (unsigned long long)s->id, s->addr);
		s->policy = POLICY_NONE;
		return 0;
	default:
		return 0;
	}
}

/* IMSG_LOOKUP_CLIENT_RESULT: see "client protocol" in splitmx.h. */
void
smtp_policy_result(struct msg *m)
{
	struct smtp_session	*s;
	struct timeval		 now = { 0, 0 };
	uint64_t		 reqid;
	uint32_t		 refused;
	int64_t			 score;
	const char		*lists, *reply;
	char			 clean[512];
	int			 late;

	if (msg_get_u64(m, &reqid) == -1 ||
	    msg_get_u32(m, &refused) == -1 ||
	    msg_get_i64(m, &score) == -1 ||
	    msg_get_strp(m, &lists) == -1 ||
	    msg_get_strp(m, &reply) == -1 || msg_end(m) == -1 || refused > 1)
		fatalx("bad %s", imsg_name(m->type));
	if ((s = smtp_session_find(reqid)) == NULL ||
	    (s->policy != POLICY_PENDING && s->policy != POLICY_LATE))
		return;		/* gone, or given up on */
	late = s->policy == POLICY_LATE;
	s->policy = refused ? POLICY_REFUSED : POLICY_CLEAN;
	if (refused) {
		/* The lookup process is trusted, but the reply is ours. */
		str_printable(clean, sizeof(clean), reply ? reply : "");
		if (strncmp(clean, "5.7.1 ", 6) != 0)
			strlcpy(clean, "5.7.1 Service unavailable; client "
			    "blocked by a DNS list", sizeof(clean));
		s->policy_reply = str_dup(clean);
		stat_add("connections.dnsbl_refused", 1);
	}
	/* The banner waits for this: now (an early talker is closing). */
	if (late && s->state == STATE_BANNER && !(s->flags & F_CLOSE))
		evtimer_add(&s->tmo, &now);
}

/*
 * RCPT from a client the lists refused: 550 for everyone but the
 * postmaster (RFC 5321 §4.5.1: a listed sender must still be able to
 * reach a person), who is routed as usual.  1 if refused here.
 */
int
smtp_policy_rcpt(struct smtp_session *s, const char *addr)
{
	const char	*at;
	char		 reply[512];
	size_t		 len;

	if (s->policy != POLICY_REFUSED)
		return 0;
	len = (at = strrchr(addr, '@')) != NULL ? (size_t)(at - addr) :
	    strlen(addr);
	if (len == 10 && strncasecmp(addr, "postmaster", 10) == 0)
		return 0;
	smtp_session_reply(s, "550 %s", s->policy_reply);
	stat_add("recipients.rejected", 1);
	stat_add("recipients.dnsbl_rejected", 1);
	(void)snprintf(reply, sizeof(reply), "550 %s", s->policy_reply);
	log_info("session=%016llx event=rcpt-rejected from=%s to=%s "
	    "reason=dnsbl reply=%s", (unsigned long long)s->id,
	    log_addr(s->tx != NULL ? s->tx->sender : ""), log_addr(addr),
	    log_text(reply));
	return 1;
}

void
smtp_policy_free(struct smtp_session *s)
{
	free(s->policy_reply);
	s->policy_reply = NULL;
}
