/*
 * MTA-STS (RFC 8461) for the destinations the relay reaches by MX: the
 * _mta-sts TXT record, the policy fetched over HTTPS with libcurl on
 * the process' own event loop, and the policies kept for their max_age
 * (in memory, and on disk by the queue process, which owns the spool).
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/tree.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "splitmx.h"
#include "lookup.h"

#define STS_CACHE_MAX		10000	/* domains kept */
#define STS_FETCH_TIMEOUT_MS	15000	/* one fetch, connection to end */
#define STS_CONNECT_TIMEOUT_MS	10000
#define STS_LOAD_WAIT		10	/* seconds to wait for the queue */
#define STS_NOTESZ		256

/* A question waiting for a domain's answer. */
struct sts_wait {
	TAILQ_ENTRY(sts_wait)	 entry;
	void			(*cb)(void *, const struct sts_answer *);
	void			*arg;
	char			 domain[SMX_HOSTSZ];
};
TAILQ_HEAD(sts_waits, sts_wait);

/*
 * A domain: its policy when one is known (text, id, when fetched, until
 * when valid), and the questions waiting while its TXT record is asked
 * or its policy fetched (busy).
 */
struct sts_entry {
	RB_ENTRY(sts_entry)	 entry;
	char			 domain[SMX_HOSTSZ];
	char			 id[STS_IDSZ];
	char			*text;		/* the policy, or NULL */
	time_t			 fetched;
	time_t			 expires;
	int			 busy;
	struct sts_waits	 waits;
	/* The fetch under way. */
	CURL			*easy;
	struct curl_slist	*resolve;
	char			 newid[STS_IDSZ];
	char			*body;
	size_t			 len;
	int			 toobig;
	char			 errbuf[CURL_ERROR_SIZE];
};

/* A socket libcurl asked us to watch. */
struct sts_sock {
	struct event	 ev;
	curl_socket_t	 fd;
};

static int	sts_entry_cmp(struct sts_entry *, struct sts_entry *);
RB_HEAD(sts_entries, sts_entry);
RB_PROTOTYPE_INTERNAL(sts_entries, sts_entry, entry, sts_entry_cmp,
    SMX_RB_STATIC);

static void	sts_load_timeout(int, short, void *);
static void	sts_start(struct sts_wait *);
static struct sts_entry *sts_entry_get(const char *);
static void	sts_entry_drop(struct sts_entry *);
static int	sts_valid(const struct sts_entry *, time_t);
static void	sts_txt_answer(void *, const struct dns_answer *);
static int	sts_txt_rr(void *, const struct dns_rr *);
static void	sts_fetch(struct sts_entry *);
static void	sts_fetch_addrs(void *, int, const struct sockaddr_storage *,
		    int);
static void	sts_fetch_done(struct sts_entry *, CURLcode);
static size_t	sts_write(char *, size_t, size_t, void *);
static int	sts_sock_cb(CURL *, curl_socket_t, int, void *, void *);
static void	sts_sock_ev(int, short, void *);
static int	sts_timer_cb(CURLM *, long, void *);
static void	sts_timer_ev(int, short, void *);
static void	sts_check_done(void);
static void	sts_store(const struct sts_entry *);
static char	*sts_canonical(const struct sts_policy *);
static void	sts_answer(struct sts_entry *, int, const char *, ...)
		    __attribute__((__format__ (printf, 3, 4)));

static struct sts_entries	 entries = RB_INITIALIZER(&entries);
static int			 nentries;
static struct sts_waits		 before_load =
				    TAILQ_HEAD_INITIALIZER(before_load);
static int			 loaded;
static struct event		 ev_load;
static CURLM			*multi;
static struct event		 ev_timer;

/* What the TXT record said: how many STS records, the id of one. */
struct sts_txt {
	int	 n;
	int	 bad;
	char	 id[STS_IDSZ];
};

static int
sts_entry_cmp(struct sts_entry *a, struct sts_entry *b)
{
	return strcmp(a->domain, b->domain);
}

RB_GENERATE_INTERNAL(sts_entries, sts_entry, entry, sts_entry_cmp,
    SMX_RB_STATIC);

/*
 * Before the privilege drop: libcurl reads OpenSSL's configuration when
 * it starts, and its multi handle makes a socketpair, which the sandbox
 * does not allow later.
 */
void
mta_sts_init(void)
{
	struct timeval	 tv = { STS_LOAD_WAIT, 0 };

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		fatalx("curl_global_init failed");
	if ((multi = curl_multi_init()) == NULL)
		fatalx("curl_multi_init failed");
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, sts_sock_cb);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, sts_timer_cb);
	evtimer_set(&ev_timer, sts_timer_ev, NULL);
	/* The queue hands the policies on disk over at its start. */
	evtimer_set(&ev_load, sts_load_timeout, NULL);
	evtimer_add(&ev_load, &tv);
}

/*
 * The policy of domain, to cb (from the event loop, never before this
 * returns): the one in memory if the domain's TXT record still has its
 * id, else one fetched now.  Only the questions for this domain wait.
 */
void
mta_sts_get(const char *domain, void (*cb)(void *, const struct sts_answer *),
    void *arg)
{
	struct sts_wait	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		fatal("calloc");
	w->cb = cb;
	w->arg = arg;
	strlcpy(w->domain, domain, sizeof(w->domain));
	if (!loaded) {
		TAILQ_INSERT_TAIL(&before_load, w, entry);
		return;
	}
	sts_start(w);
}

static void
sts_start(struct sts_wait *w)
{
	struct sts_entry	*e;
	char			 name[SMX_HOSTSZ + 16];

	e = sts_entry_get(w->domain);
	TAILQ_INSERT_TAIL(&e->waits, w, entry);
	if (e->busy)
		return;		/* the answer under way is this one's too */
	e->busy = 1;
	(void)snprintf(name, sizeof(name), "_mta-sts.%s", e->domain);
	dns_query(name, DNS_T_TXT, sts_txt_answer, e);
}

/* IMSG_LOOKUP_STS_LOAD: a policy the queue kept on disk. */
void
mta_sts_load(struct msgchan *ch, struct msg *m)
{
	struct sts_entry	*e;
	struct sts_policy	 pol;
	const char		*domain, *id, *text;
	int64_t			 fetched, expires;
	char			 err[128];

	proc_expect(ch, m, PROC_QUEUE);
	if (msg_get_strp(m, &domain) == -1 || domain == NULL ||
	    msg_get_strp(m, &id) == -1 || id == NULL ||
	    msg_get_i64(m, &fetched) == -1 || msg_get_i64(m, &expires) == -1 ||
	    msg_get_strp(m, &text) == -1 || text == NULL || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	/* What was written may have been changed since: read it again. */
	if (!valid_domain(domain) || strlen(domain) >= SMX_HOSTSZ ||
	    strlen(id) == 0 || strlen(id) >= STS_IDSZ ||
	    expires <= time(NULL) || sts_parse_policy(text, strlen(text),
	    &pol, err, sizeof(err)) == -1) {
		log_warnx("mta-sts: cached policy of %s not used",
		    log_value(domain));
		return;
	}
	e = sts_entry_get(domain);
	free(e->text);
	e->text = str_dup(text);
	strlcpy(e->id, id, sizeof(e->id));
	e->fetched = (time_t)fetched;
	e->expires = (time_t)expires;
}

/* IMSG_LOOKUP_STS_LOADED: all there is; the questions may go on. */
void
mta_sts_loaded(struct msgchan *ch, struct msg *m)
{
	uint32_t	 n;

	proc_expect(ch, m, PROC_QUEUE);
	if (msg_get_u32(m, &n) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	log_info("event=mta-sts-loaded policies=%u", n);
	sts_load_timeout(-1, 0, NULL);
}

static void
sts_load_timeout(int fd, short event, void *arg)
{
	struct sts_wait	*w;

	(void)event;
	(void)arg;
	if (loaded)
		return;
	if (fd != -1)
		log_warnx("mta-sts: no cached policies from the queue after "
		    "%d seconds; going on without", STS_LOAD_WAIT);
	loaded = 1;
	evtimer_del(&ev_load);
	while ((w = TAILQ_FIRST(&before_load)) != NULL) {
		TAILQ_REMOVE(&before_load, w, entry);
		sts_start(w);
	}
}

/*
 * The entry of a domain, made if needed.  When there are too many, one
 * that has expired, or else the one that expires first, makes room.
 */
static struct sts_entry *
sts_entry_get(const char *domain)
{
	struct sts_entry	 key, *e, *victim = NULL;

	strlcpy(key.domain, domain, sizeof(key.domain));
	if ((e = RB_FIND(sts_entries, &entries, &key)) != NULL)
		return e;
	if (nentries >= STS_CACHE_MAX) {
		RB_FOREACH(e, sts_entries, &entries)
			if (!e->busy && (victim == NULL ||
			    e->expires < victim->expires))
				victim = e;
		if (victim != NULL)
			sts_entry_drop(victim);
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		fatal("calloc");
	strlcpy(e->domain, domain, sizeof(e->domain));
	TAILQ_INIT(&e->waits);
	RB_INSERT(sts_entries, &entries, e);
	nentries++;
	return e;
}

static void
sts_entry_drop(struct sts_entry *e)
{
	RB_REMOVE(sts_entries, &entries, e);
	nentries--;
	free(e->text);
	free(e);
}

static int
sts_valid(const struct sts_entry *e, time_t now)
{
	return e->text != NULL && e->expires > now;
}

/*
 * RFC 8461 §3.1, §5.1: one v=STSv1 record with the id of the policy in
 * memory keeps it; another id fetches the policy again; no record, or
 * a DNS failure, keeps the one in memory until it expires.
 */
static void
sts_txt_answer(void *arg, const struct dns_answer *a)
{
	struct sts_entry	*e = arg;
	struct sts_txt		 t;
	char			 name[SMX_HOSTSZ + 16];
	int			 rcode;
	time_t			 now = time(NULL);

	memset(&t, 0, sizeof(t));
	(void)snprintf(name, sizeof(name), "_mta-sts.%s", e->domain);
	if (a->status == DNS_OK && dns_parse(a->pkt, a->len, name, DNS_T_TXT,
	    &rcode, sts_txt_rr, &t) == -1)
		t.bad = 1;
	if (a->status == DNS_TEMPFAIL || t.bad || t.n != 1) {
		if (sts_valid(e, now)) {
			sts_answer(e, 1, "policy id %s in memory (%s)", e->id,
			    a->status == DNS_TEMPFAIL ? "the TXT lookup "
			    "failed" : t.n == 0 && !t.bad ? "no TXT record" :
			    "no single valid TXT record");
			return;
		}
		if (a->status == DNS_TEMPFAIL)
			sts_answer(e, 0, "no MTA-STS policy: the TXT lookup "
			    "failed (%s)", a->why);
		else
			sts_answer(e, 0, "no MTA-STS policy%s",
			    t.n > 1 ? " (several TXT records)" : t.bad ?
			    " (a malformed TXT record)" : "");
		return;
	}
	if (sts_valid(e, now) && strcmp(e->id, t.id) == 0) {
		sts_answer(e, 1, "policy id %s in memory", e->id);
		return;
	}
	strlcpy(e->newid, t.id, sizeof(e->newid));
	sts_fetch(e);
}

static int
sts_txt_rr(void *arg, const struct dns_rr *rr)
{
	struct sts_txt	*t = arg;
	char		 id[STS_IDSZ];
	int		 r;

	if (rr->toolong) {
		if (strncmp(rr->text, "v=STSv1", 7) == 0)
			t->bad = 1;
		return 0;
	}
	if ((r = sts_parse_txt(rr->text, rr->textlen, id, sizeof(id))) == 0)
		return 0;	/* another TXT record at the name */
	t->n++;
	if (r == -1)
		t->bad = 1;
	else
		strlcpy(t->id, id, sizeof(t->id));
	return 0;
}

/* The policy host's addresses by our own resolver: curl asks nothing. */
static void
sts_fetch(struct sts_entry *e)
{
	char	 host[SMX_HOSTSZ + 16];

	(void)snprintf(host, sizeof(host), "mta-sts.%s", e->domain);
	dns_resolve(host, 0, sts_fetch_addrs, e);
}

/*
 * RFC 8461 §3.3: https://mta-sts.DOMAIN/.well-known/mta-sts.txt, HTTPS
 * only, the certificate verified (the CA store: "ca" or the system's),
 * no redirect, text/plain, at most STS_POLICY_MAX octets, in bounded
 * time.  No proxy, no netrc, nothing from the environment.
 */
static void
sts_fetch_addrs(void *arg, int status, const struct sockaddr_storage *ss,
    int n)
{
	struct sts_entry	*e = arg;
	struct curl_blob	 blob;
	char			 url[SMX_HOSTSZ + 64], res[1024], a[64];
	char			 ip[INET6_ADDRSTRLEN];
	int			 i;

	if (status != DNS_OK || n == 0) {
		sts_fetch_done(e, CURLE_COULDNT_RESOLVE_HOST);
		return;
	}
	(void)snprintf(res, sizeof(res), "mta-sts.%s:443:", e->domain);
	for (i = 0; i < n; i++) {
		sa_str((const struct sockaddr *)&ss[i], ip, sizeof(ip));
		(void)snprintf(a, sizeof(a), ss[i].ss_family == AF_INET6 ?
		    "%s[%s]" : "%s%s", i ? "," : "", ip);
		strlcat(res, a, sizeof(res));
	}
	(void)snprintf(url, sizeof(url),
	    "https://mta-sts.%s/.well-known/mta-sts.txt", e->domain);
	if ((e->easy = curl_easy_init()) == NULL)
		fatalx("curl_easy_init failed");
	e->resolve = curl_slist_append(NULL, res);
	e->body = NULL;
	e->len = 0;
	e->toobig = 0;
	e->errbuf[0] = '\0';
	curl_easy_setopt(e->easy, CURLOPT_URL, url);
	curl_easy_setopt(e->easy, CURLOPT_RESOLVE, e->resolve);
	curl_easy_setopt(e->easy, CURLOPT_PRIVATE, e);
	curl_easy_setopt(e->easy, CURLOPT_WRITEFUNCTION, sts_write);
	curl_easy_setopt(e->easy, CURLOPT_WRITEDATA, e);
	curl_easy_setopt(e->easy, CURLOPT_ERRORBUFFER, e->errbuf);
	curl_easy_setopt(e->easy, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e->easy, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(e->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e->easy, CURLOPT_SSLVERSION,
	    (long)CURL_SSLVERSION_TLSv1_2);
	/* The CA store from memory: there is no file in the chroot. */
	curl_easy_setopt(e->easy, CURLOPT_CAINFO, NULL);
	curl_easy_setopt(e->easy, CURLOPT_CAPATH, NULL);
	blob.data = env->conf->ca;
	blob.len = env->conf->ca_len;
	blob.flags = CURL_BLOB_COPY;
	if (env->conf->ca != NULL)
		curl_easy_setopt(e->easy, CURLOPT_CAINFO_BLOB, &blob);
	curl_easy_setopt(e->easy, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)STS_POLICY_MAX);
	curl_easy_setopt(e->easy, CURLOPT_TIMEOUT_MS,
	    (long)STS_FETCH_TIMEOUT_MS);
	curl_easy_setopt(e->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)STS_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(e->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(e->easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e->easy, CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
	curl_easy_setopt(e->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e->easy, CURLOPT_USERAGENT, "splitmx/"
	    SPLITMX_VERSION);
	log_debug("event=mta-sts-fetch domain=%s id=%s url=%s",
	    log_value(e->domain), log_value(e->newid), log_value(url));
	if (curl_multi_add_handle(multi, e->easy) != CURLM_OK)
		sts_fetch_done(e, CURLE_FAILED_INIT);
}

/* The body, at most STS_POLICY_MAX octets: more ends the transfer. */
static size_t
sts_write(char *p, size_t size, size_t n, void *arg)
{
	struct sts_entry	*e = arg;
	size_t			 len = size * n;
	char			*nb;

	if (len > STS_POLICY_MAX - e->len) {
		e->toobig = 1;
		return 0;
	}
	if ((nb = realloc(e->body, e->len + len + 1)) == NULL)
		fatal("realloc");
	e->body = nb;
	memcpy(e->body + e->len, p, len);
	e->len += len;
	e->body[e->len] = '\0';
	return len;
}

/*
 * A fetch ended: a good policy replaces the one in memory and goes to
 * the queue to be kept; a failure keeps the one in memory (RFC 8461
 * §5.1) until it expires.
 */
static void
sts_fetch_done(struct sts_entry *e, CURLcode rc)
{
	struct sts_policy	 pol;
	char			 err[STS_NOTESZ];
	char			*ctype = NULL;
	long			 code = 0;
	time_t			 now = time(NULL);

	err[0] = '\0';
	if (e->easy != NULL) {
		curl_easy_getinfo(e->easy, CURLINFO_RESPONSE_CODE, &code);
		curl_easy_getinfo(e->easy, CURLINFO_CONTENT_TYPE, &ctype);
	}
	if (rc == CURLE_COULDNT_RESOLVE_HOST && e->easy == NULL)
		strlcpy(err, "cannot resolve the policy host", sizeof(err));
	else if (rc != CURLE_OK)
		(void)snprintf(err, sizeof(err), "%s", e->toobig ||
		    rc == CURLE_FILESIZE_EXCEEDED ? "policy larger than 64 KB" :
		    e->errbuf[0] ? e->errbuf :
		    curl_easy_strerror(rc));
	else if (code != 200)
		(void)snprintf(err, sizeof(err), "HTTP status %ld", code);
	else if (ctype == NULL || strncasecmp(ctype, "text/plain", 10) != 0 ||
	    (ctype[10] != '\0' && ctype[10] != ';' && ctype[10] != ' '))
		(void)snprintf(err, sizeof(err), "content type %s, not "
		    "text/plain", ctype != NULL ? ctype : "missing");
	else
		(void)sts_parse_policy(e->body != NULL ? e->body : "", e->len,
		    &pol, err, sizeof(err));
	str_printable(err, sizeof(err), err);
	if (e->easy != NULL) {
		curl_multi_remove_handle(multi, e->easy);
		curl_easy_cleanup(e->easy);
		e->easy = NULL;
	}
	curl_slist_free_all(e->resolve);
	e->resolve = NULL;
	if (*err != '\0') {
		log_warnx("event=mta-sts-fetch-failed domain=%s id=%s "
		    "error=%s", log_value(e->domain), log_value(e->newid),
		    log_text(err));
		stat_add("mta_sts.fetch_failed", 1);
		free(e->body);
		e->body = NULL;
		if (sts_valid(e, now))
			sts_answer(e, 1, "policy id %s in memory (the fetch of "
			    "id %s failed: %s)", e->id, e->newid, err);
		else
			sts_answer(e, 0, "no MTA-STS policy: the fetch of id "
			    "%s failed: %s", e->newid, err);
		return;
	}
	/* What it says, not what it was: extensions need no memory. */
	free(e->text);
	e->text = sts_canonical(&pol);
	free(e->body);
	e->body = NULL;
	strlcpy(e->id, e->newid, sizeof(e->id));
	e->fetched = now;
	e->expires = now + (time_t)pol.max_age;
	log_info("event=mta-sts-fetched domain=%s id=%s mode=%s max_age=%u "
	    "mx=%d", log_value(e->domain), log_value(e->id),
	    pol.mode == STS_ENFORCE ? "enforce" :
	    pol.mode == STS_TESTING ? "testing" : "none", pol.max_age,
	    pol.nmx);
	stat_add("mta_sts.fetched", 1);
	sts_store(e);
	sts_answer(e, 1, "policy id %s fetched", e->id);
}

/* A policy in the grammar of RFC 8461 §3.2, without its extensions. */
static char *
sts_canonical(const struct sts_policy *pol)
{
	char	*text = NULL;
	size_t	 len = 0;
	FILE	*fp;
	int	 i;

	if ((fp = open_memstream(&text, &len)) == NULL)
		fatal("open_memstream");
	fprintf(fp, "version: STSv1\nmode: %s\n", pol->mode == STS_ENFORCE ?
	    "enforce" : pol->mode == STS_TESTING ? "testing" : "none");
	for (i = 0; i < pol->nmx; i++)
		fprintf(fp, "mx: %s\n", pol->mx[i]);
	fprintf(fp, "max_age: %u\n", pol->max_age);
	if (fclose(fp) != 0)
		fatal("fclose");
	return text;
}

/* IMSG_QUEUE_STS_STORE: the queue keeps it in the spool. */
static void
sts_store(const struct sts_entry *e)
{
	struct msg	 m;

	msg_init(&m, IMSG_QUEUE_STS_STORE, 0);
	msg_add_str(&m, e->domain);
	msg_add_str(&m, e->id);
	msg_add_i64(&m, e->fetched);
	msg_add_i64(&m, e->expires);
	msg_add_str(&m, e->text);
	proc_send(PROC_QUEUE, &m);
}

/*
 * Every question waiting for the domain gets the policy in memory (if
 * use, and one is there) and the note, in words, for the logs.
 */
static void
sts_answer(struct sts_entry *e, int use, const char *fmt, ...)
{
	struct sts_answer	 ans;
	struct sts_policy	 pol;
	struct sts_wait		*w;
	struct sts_waits	 waits;
	char			 note[STS_NOTESZ], err[128];
	va_list			 ap;

	va_start(ap, fmt);
	(void)vsnprintf(note, sizeof(note), fmt, ap);
	va_end(ap);
	memset(&ans, 0, sizeof(ans));
	ans.note = note;
	if (use && e->text != NULL && sts_parse_policy(e->text,
	    strlen(e->text), &pol, err, sizeof(err)) == 0) {
		ans.policy = &pol;
		ans.id = e->id;
		ans.expires = e->expires;
	}
	TAILQ_INIT(&waits);
	TAILQ_CONCAT(&waits, &e->waits, entry);
	e->busy = 0;
	while ((w = TAILQ_FIRST(&waits)) != NULL) {
		TAILQ_REMOVE(&waits, w, entry);
		w->cb(w->arg, &ans);
		free(w);
	}
}

/* libcurl's sockets and timer on our event loop. */
static int
sts_sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
    void *sockp)
{
	struct sts_sock	*s = sockp;
	short		 events = EV_PERSIST;

	(void)easy;
	(void)userp;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			event_del(&s->ev);
			free(s);
			curl_multi_assign(multi, fd, NULL);
		}
		return 0;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			fatal("calloc");
		s->fd = fd;
		curl_multi_assign(multi, fd, s);
	} else
		event_del(&s->ev);
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	event_set(&s->ev, fd, events, sts_sock_ev, s);
	if (event_add(&s->ev, NULL) == -1)
		fatal("event_add mta-sts");
	return 0;
}

static void
sts_sock_ev(int fd, short events, void *arg)
{
	int	 running, flags = 0;

	(void)arg;
	if (events & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (events & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(multi, fd, flags, &running);
	sts_check_done();
}

/* libcurl's one timer: -1 removes it, 0 is at once (from the loop). */
static int
sts_timer_cb(CURLM *m, long ms, void *userp)
{
	struct timeval	 tv;

	(void)m;
	(void)userp;
	evtimer_del(&ev_timer);
	if (ms < 0)
		return 0;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(&ev_timer, &tv);
	return 0;
}

static void
sts_timer_ev(int fd, short events, void *arg)
{
	int	 running;

	(void)fd;
	(void)events;
	(void)arg;
	curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	sts_check_done();
}

static void
sts_check_done(void)
{
	CURLMsg			*msg;
	struct sts_entry	*e;
	char			*priv;
	int			 left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		e = (struct sts_entry *)(void *)priv;
		sts_fetch_done(e, msg->data.result);
	}
}
