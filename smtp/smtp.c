/*
 * The smtp process: listeners, TLS contexts, session limits and the
 * messages from the parent, lookup and queue; one session's protocol
 * lives in smtp_session.c.
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/tree.h>

#include <netinet/in.h>

#include <errno.h>
#include <event.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "splitmx.h"
#include "smtp.h"

#define SMTP_ACCEPT_PAUSE	1	/* seconds, when out of descriptors */
#define SMTP_TRIM_THRESHOLD	(16 * 1024 * 1024)	/* bytes, heap kept */

/* Sessions per client address, for "limit sessions-per-ip". */
struct smtp_client {
	RB_ENTRY(smtp_client)	 entry;
	uint8_t			 key[17];	/* family, address */
	uint32_t		 n;
};

static int	smtp_client_cmp(struct smtp_client *, struct smtp_client *);
RB_HEAD(smtp_clients, smtp_client);
RB_PROTOTYPE_INTERNAL(smtp_clients, smtp_client, entry, smtp_client_cmp,
    SMX_RB_STATIC);

static struct smtp_gen	*smtp_gen_new(struct smx_conf *, int);
static struct tls	*smtp_gen_tls(struct smtp_gen *, const char *, int);
static void	smtp_gen_retire(struct smtp_gen *);
static void	smtp_gen_free(struct smtp_gen *);
static void	smtp_listen_update(void);
static void	smtp_accept(int, short, void *);
static void	smtp_accept_resume(int, short, void *);
static void	smtp_refuse(int, const char *, const char *, const char *);
static void	smtp_client_key(const struct sockaddr_storage *, uint8_t *);
static struct smtp_client *smtp_client_get(const struct sockaddr_storage *,
		    int);
static void	smtp_conf_apply(struct msg *);
static void	smtp_pause(struct msg *);
static void	smtp_nofile_check(const struct smx_conf *);
static void	smtp_lookup_rcpt_result(struct msg *);
static void	smtp_queue_create_result(struct msg *);
static void	smtp_queue_commit_result(struct msg *);
static void	smtp_stop_deadline(int, short, void *);
static void	smtp_stop_check(void);

static struct smtp_gen		*current;
static struct smtp_clients	 clients = RB_INITIALIZER(&clients);
static uint32_t			 nsessions;
static int			 paused;	/* splitmxctl pause smtp */
static int			 starved;	/* out of descriptors */
static struct event		 ev_resume;
/* splitmxctl stop: the sessions there were, those cut at the deadline. */
static struct {
	int			 active;
	uint32_t		 sessions;
	uint32_t		 cut;
	struct event		 ev;
} stopping;

void
smtp(void)
{
	/* Everything that needs key material happens before the drop. */
	if (tls_init() == -1)
		fatalx("tls_init failed");
	current = smtp_gen_new(env->conf, 1);
	proc_drop_privileges();
	/*
	 * Every session and every message takes its buffers from malloc
	 * and gives them back: without a high trim threshold the heap's
	 * top goes back to the kernel after each and is faulted in again
	 * for the next (ten page faults a 100 KB message).
	 */
	if (mallopt(M_TRIM_THRESHOLD, SMTP_TRIM_THRESHOLD) == 0)
		log_warnx("smtp: mallopt M_TRIM_THRESHOLD failed");
	smtp_nofile_check(env->conf);
	evtimer_set(&ev_resume, smtp_accept_resume, NULL);
	stat_set("sessions.active", 0);
	smtp_listen_update();
	event_dispatch();
	fatalx("event loop ended");
}

void
smtp_imsg(struct msgchan *ch, struct msg *m, void *arg)
{
	(void)arg;
	if (proc_imsg(ch, m))
		return;
	switch (m->type) {
	case IMSG_CONF_APPLY:
		proc_expect(ch, m, PROC_PARENT);
		smtp_conf_apply(m);
		break;
	case IMSG_CTL_SMTP_PAUSE:
		proc_expect(ch, m, PROC_CONTROL);
		smtp_pause(m);
		break;
	case IMSG_LOOKUP_RCPT_RESULT:
		proc_expect(ch, m, PROC_LOOKUP);
		smtp_lookup_rcpt_result(m);
		break;
	case IMSG_LOOKUP_CLIENT_RESULT:
		proc_expect(ch, m, PROC_LOOKUP);
		smtp_policy_result(m);
		break;
	case IMSG_QUEUE_MESSAGE_CREATE_RESULT:
		proc_expect(ch, m, PROC_QUEUE);
		smtp_queue_create_result(m);
		break;
	case IMSG_QUEUE_MESSAGE_COMMIT_RESULT:
		proc_expect(ch, m, PROC_QUEUE);
		smtp_queue_commit_result(m);
		break;
	case IMSG_FILTER_RESULT:
		proc_expect(ch, m, PROC_FILTER);
		smtp_filter_result(m);
		break;
	case IMSG_FILTER_MESSAGE_RESULT:
		proc_expect(ch, m, PROC_FILTER);
		smtp_filter_message_result(m);
		break;
	default:
		fatalx("unexpected %s from %s", imsg_name(m->type),
		    proc_name(ch->peer));
	}
}

/*
 * A new configuration: sessions keep the generation they started with,
 * new connections are accepted on the new generation's sockets.
 */
static void
smtp_conf_apply(struct msg *m)
{
	struct smx_conf	*conf;
	struct smtp_gen	*old = current;

	conf = proc_conf_apply(m);
	if (old == NULL || old->conf != conf)
		fatalx("smtp: configuration out of step");
	current = smtp_gen_new(env->conf, 0);
	smtp_gen_retire(old);
	smtp_listen_update();
	smtp_nofile_check(env->conf);
}

/*
 * A session holds its socket and, in DATA, its message file.  Past the
 * descriptor limit accept() fails and the listeners pause (see
 * smtp_accept): say so at start rather than under load.
 */
#define SMTP_FDS_RESERVED	64	/* listeners, channels, logs */
static void
smtp_nofile_check(const struct smx_conf *c)
{
	struct rlimit	 rl;
	uint64_t	 need;

	if (c->max_sessions == 0 || getrlimit(RLIMIT_NOFILE, &rl) == -1 ||
	    rl.rlim_cur == RLIM_INFINITY)
		return;
	need = (uint64_t)c->max_sessions * 2 + SMTP_FDS_RESERVED;
	if (need > rl.rlim_cur)
		log_warnx("limit sessions %u needs up to %llu descriptors, "
		    "the smtp process may have %llu: past that, new "
		    "connections wait", c->max_sessions,
		    (unsigned long long)need, (unsigned long long)rl.rlim_cur);
}

/*
 * Before a new configuration is accepted: each pki a TLS listener names
 * must make a server context here as well (the parent has tried them
 * already), or the configuration is refused and the running listeners
 * keep their STARTTLS.
 */
int
smtp_conf_prepare(struct smx_conf *c, char *err, size_t len)
{
	struct smx_listener	*l;
	struct smx_pki		*pki;
	char			 why[512];

	TAILQ_FOREACH(l, &c->listeners, entry) {
		if (!(l->flags & F_LISTEN_TLS))
			continue;
		if ((pki = conf_pki(c, l->pki)) == NULL || pki->cert == NULL ||
		    pki->key == NULL) {
			(void)snprintf(err, len, "pki %s: no certificate or "
			    "key", l->pki);
			return -1;
		}
		if (pki_check(pki, why, sizeof(why)) == -1) {
			(void)snprintf(err, len, "pki %s: %s", l->pki, why);
			return -1;
		}
	}
	return 0;
}

static void
smtp_pause(struct msg *m)
{
	uint32_t	 p;

	if (msg_get_u32(m, &p) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	paused = p != 0;
	log_info("smtp %s", paused ? "paused" : "resumed");
	smtp_listen_update();
}

static struct smtp_gen *
smtp_gen_new(struct smx_conf *c, int startup)
{
	struct smtp_gen		*gen;
	struct smtp_listen	*ls;
	struct smx_listener	*l;
	struct smx_pki		*pki;
	size_t			 n = 0;

	if ((gen = calloc(1, sizeof(*gen))) == NULL)
		fatal("calloc");
	gen->conf = c;
	gen->refs = 1;		/* the process' own reference */
	TAILQ_INIT(&gen->pkis);
	TAILQ_FOREACH(l, &c->listeners, entry)
		n++;
	if (n > 0 && (gen->listens = calloc(n, sizeof(*ls))) == NULL)
		fatal("calloc");
	gen->nlistens = n;
	n = 0;
	TAILQ_FOREACH(l, &c->listeners, entry) {
		ls = &gen->listens[n++];
		ls->gen = gen;
		ls->l = l;
		if (l->fd == -1)
			fatalx("smtp: listener without a socket");
		if (l->flags & (F_LISTEN_TLS | F_LISTEN_TLS_REQUIRE))
			ls->tls = smtp_gen_tls(gen, l->pki, startup);
		event_set(&ls->ev, l->fd, EV_READ | EV_PERSIST, smtp_accept,
		    ls);
	}
	/* The TLS contexts hold the keys now; no other copy stays here. */
	TAILQ_FOREACH(pki, &c->pkis, entry) {
		if (pki->key != NULL)
			freezero(pki->key, pki->key_len);
		pki->key = NULL;
		pki->key_len = 0;
	}
	return gen;
}

/*
 * The server context of a pki, shared by the listeners that name it.
 * The parent and smtp_conf_prepare() have tried every pair, so this
 * fails only when memory runs out: at startup that is fatal; on reload
 * the listener goes on without STARTTLS (and a tls-require listener
 * refuses mail) rather than taking the gateway down.
 */
static struct tls *
smtp_gen_tls(struct smtp_gen *gen, const char *name, int startup)
{
	struct smtp_pki	*sp;
	struct smx_pki	*pki;
	const char	*why = NULL;

	TAILQ_FOREACH(sp, &gen->pkis, entry)
		if (strcmp(sp->name, name) == 0)
			return sp->ctx;
	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		fatal("calloc");
	strlcpy(sp->name, name, sizeof(sp->name));
	TAILQ_INSERT_TAIL(&gen->pkis, sp, entry);

	if ((pki = conf_pki(gen->conf, name)) == NULL ||
	    pki->cert == NULL || pki->key == NULL) {
		why = "no certificate or key";
		goto fail;
	}
	if ((sp->cfg = tls_config_new()) == NULL) {
		why = "tls_config_new failed";
		goto fail;
	}
	if (tls_config_set_keypair_mem(sp->cfg, pki->cert, pki->cert_len,
	    pki->key, pki->key_len) == -1) {
		why = tls_config_error(sp->cfg);
		goto fail;
	}
	if ((sp->ctx = tls_server()) == NULL) {
		why = "tls_server failed";
		goto fail;
	}
	if (tls_configure(sp->ctx, sp->cfg) == -1) {
		why = tls_error(sp->ctx);
		goto fail;
	}
	tls_config_clear_keys(sp->cfg);
	return sp->ctx;

 fail:
	if (why == NULL)
		why = "unknown error";
	if (startup)
		fatalx("pki %s: %s", name, why);
	log_warnx("pki %s: %s; STARTTLS is off for its listeners", name, why);
	if (sp->ctx != NULL)
		tls_free(sp->ctx);
	sp->ctx = NULL;
	return NULL;
}

/* The generation is no longer the current one: stop accepting on it. */
static void
smtp_gen_retire(struct smtp_gen *gen)
{
	struct smtp_listen	*ls;
	size_t			 i;

	for (i = 0; i < gen->nlistens; i++) {
		ls = &gen->listens[i];
		if (ls->active)
			event_del(&ls->ev);
		ls->active = 0;
		if (ls->l->fd != -1)
			close(ls->l->fd);
		ls->l->fd = -1;
	}
	smtp_gen_unref(gen);
}

void
smtp_gen_ref(struct smtp_gen *gen)
{
	gen->refs++;
}

void
smtp_gen_unref(struct smtp_gen *gen)
{
	if (--gen->refs > 0)
		return;
	if (gen == current)
		fatalx("smtp: current configuration released");
	smtp_gen_free(gen);
}

static void
smtp_gen_free(struct smtp_gen *gen)
{
	struct smtp_pki	*sp;

	while ((sp = TAILQ_FIRST(&gen->pkis)) != NULL) {
		TAILQ_REMOVE(&gen->pkis, sp, entry);
		if (sp->ctx != NULL)
			tls_free(sp->ctx);
		if (sp->cfg != NULL)
			tls_config_free(sp->cfg);
		free(sp);
	}
	free(gen->listens);
	conf_free(gen->conf);
	free(gen);
}

/* Accept on the current listeners unless paused or out of descriptors. */
static void
smtp_listen_update(void)
{
	struct smtp_listen	*ls;
	size_t			 i;
	int			 on = !paused && !starved && !stopping.active;

	for (i = 0; i < current->nlistens; i++) {
		ls = &current->listens[i];
		if (on && !ls->active) {
			if (event_add(&ls->ev, NULL) == -1)
				fatal("event_add listener");
			ls->active = 1;
		} else if (!on && ls->active) {
			event_del(&ls->ev);
			ls->active = 0;
		}
	}
}

static void
smtp_accept_resume(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	starved = 0;
	smtp_listen_update();
}

static void
smtp_accept(int fd, short event, void *arg)
{
	struct smtp_listen	*ls = arg;
	struct smx_conf		*c = ls->gen->conf;
	struct sockaddr_storage	 ss;
	struct smtp_client	*cl;
	struct timeval		 tv = { SMTP_ACCEPT_PAUSE, 0 };
	socklen_t		 len = sizeof(ss);
	char			 addr[INET6_ADDRSTRLEN];
	int			 sock;

	(void)event;
	if ((sock = accept4(fd, (struct sockaddr *)&ss, &len,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
		switch (errno) {
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			log_warn("accept, pausing for %d s", SMTP_ACCEPT_PAUSE);
			starved = 1;
			smtp_listen_update();
			evtimer_add(&ev_resume, &tv);
			return;
		case EAGAIN:
		case EINTR:
		case ECONNABORTED:
			return;
		default:
			log_warn("accept");
			return;
		}
	}
	sa_str((struct sockaddr *)&ss, addr, sizeof(addr));
	if (c->max_sessions != 0 && nsessions >= c->max_sessions) {
		smtp_refuse(sock, addr, "sessions", c->hostname);
		return;
	}
	if (smtp_policy_rate(sock, &ss, addr, c) == -1)
		return;
	cl = smtp_client_get(&ss, 1);
	if (c->max_sessions_per_ip != 0 && cl->n >= c->max_sessions_per_ip) {
		if (cl->n == 0) {
			RB_REMOVE(smtp_clients, &clients, cl);
			free(cl);
		}
		smtp_refuse(sock, addr, "sessions-per-ip", c->hostname);
		return;
	}
	cl->n++;
	nsessions++;
	stat_set("sessions.active", nsessions);
	stat_add("sessions.total", 1);
	smtp_session_new(sock, &ss, len, ls);
}

/* Over a session limit: one line, then the door (RFC 5321 §3.1). */
static void
smtp_refuse(int sock, const char *addr, const char *limit,
    const char *hostname)
{
	char	 buf[SMX_HOSTSZ + 96];
	int	 n;

	log_info("event=refused client=%s limit=%s", addr, limit);
	n = snprintf(buf, sizeof(buf), "421 4.7.0 %s Too many sessions, "
	    "try again later\r\n", hostname);
	if (n > 0 && (size_t)n < sizeof(buf))
		(void)send(sock, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(sock);
}

void
smtp_session_gone(const struct sockaddr_storage *ss)
{
	struct smtp_client	*cl;

	if ((cl = smtp_client_get(ss, 0)) != NULL && --cl->n == 0) {
		RB_REMOVE(smtp_clients, &clients, cl);
		free(cl);
	}
	if (nsessions == 0)
		fatalx("smtp: session count underflow");
	nsessions--;
	stat_set("sessions.active", nsessions);
	smtp_stop_check();
}

/*
 * splitmxctl stop: no new sessions; each one finishes the command it is
 * in and gets 421 (smtp_session_stop_all()).  Those still there after
 * grace seconds are closed, their message not acknowledged.
 */
void
smtp_stop(unsigned int grace)
{
	struct timeval	 tv = { grace, 0 };

	stopping.active = 1;
	stopping.sessions = nsessions;
	smtp_listen_update();
	log_info("event=stopping sessions=%u", nsessions);
	evtimer_set(&stopping.ev, smtp_stop_deadline, NULL);
	evtimer_add(&stopping.ev, &tv);
	smtp_session_stop_all(0);
	smtp_stop_check();
}

static void
smtp_stop_deadline(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	stopping.cut = nsessions;
	if (nsessions > 0)
		log_warnx("event=stopping closing=%u sessions still busy",
		    nsessions);
	smtp_session_stop_all(1);
	smtp_stop_check();
}

static void
smtp_stop_check(void)
{
	char	 report[128];

	if (!stopping.active || nsessions > 0)
		return;
	evtimer_del(&stopping.ev);
	(void)snprintf(report, sizeof(report), "smtp: %u session%s closed "
	    "(%u after finishing a command, %u at the deadline)",
	    stopping.sessions, stopping.sessions == 1 ? "" : "s",
	    stopping.sessions - stopping.cut, stopping.cut);
	proc_stopped(report);
}

static void
smtp_client_key(const struct sockaddr_storage *ss, uint8_t *key)
{
	memset(key, 0, 17);
	key[0] = (uint8_t)ss->ss_family;
	if (ss->ss_family == AF_INET)
		memcpy(key + 1, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	else if (ss->ss_family == AF_INET6)
		memcpy(key + 1, &((const struct sockaddr_in6 *)ss)->sin6_addr,
		    16);
}

static struct smtp_client *
smtp_client_get(const struct sockaddr_storage *ss, int create)
{
	struct smtp_client	 find, *cl;

	smtp_client_key(ss, find.key);
	if ((cl = RB_FIND(smtp_clients, &clients, &find)) != NULL ||
	    !create)
		return cl;
	if ((cl = calloc(1, sizeof(*cl))) == NULL)
		fatal("calloc");
	memcpy(cl->key, find.key, sizeof(cl->key));
	RB_INSERT(smtp_clients, &clients, cl);
	return cl;
}

static int
smtp_client_cmp(struct smtp_client *a, struct smtp_client *b)
{
	return memcmp(a->key, b->key, sizeof(a->key));
}

RB_GENERATE_INTERNAL(smtp_clients, smtp_client, entry, smtp_client_cmp,
    SMX_RB_STATIC);

/*
 * The answers below are routed by request id, which is the session id:
 * a session has at most one lookup or commit outstanding, and message
 * files it asked for (smtp_message_prepare) besides.  A session that
 * ended in the meantime is no longer found.
 */
static void
smtp_lookup_rcpt_result(struct msg *m)
{
	struct smtp_session	*s;
	uint64_t		 reqid;
	uint32_t		 verdict, code, rclass, tls;
	const char		*text, *rewritten, *dest;

	if (msg_get_u64(m, &reqid) == -1 ||
	    msg_get_u32(m, &verdict) == -1 ||
	    msg_get_u32(m, &code) == -1 ||
	    msg_get_strp(m, &text) == -1 ||
	    msg_get_u32(m, &rclass) == -1 ||
	    msg_get_strp(m, &rewritten) == -1 ||
	    msg_get_strp(m, &dest) == -1 ||
	    msg_get_u32(m, &tls) == -1 || tls >= TLSP_COUNT ||
	    msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((s = smtp_session_find(reqid)) == NULL)
		return;
	if (s->wait == WAIT_FILTER_LOOKUP) {
		/* A recipient a milter added. */
		smtp_filter_lookup_result(s, verdict, code, text ? text : "",
		    rclass, rewritten ? rewritten : "", dest ? dest : "", tls);
		return;
	}
	smtp_session_rcpt_result(s, verdict, code, text ? text : "", rclass,
	    rewritten ? rewritten : "", dest ? dest : "", tls);
}

static void
smtp_queue_create_result(struct msg *m)
{
	struct smtp_session	*s;
	uint64_t		 reqid;
	uint32_t		 ok;
	const char		*id;
	int			 fd;

	fd = msg_take_fd(m);
	if (msg_get_u64(m, &reqid) == -1 ||
	    msg_get_u32(m, &ok) == -1 ||
	    msg_get_strp(m, &id) == -1 ||
	    msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if (id == NULL)
		id = "";
	if ((s = smtp_session_find(reqid)) != NULL) {
		smtp_message_create_result(s, ok != 0, id, fd);
		return;
	}
	/* Nobody wants this file any more. */
	if (fd != -1)
		close(fd);
	if (ok && id[0] != '\0')
		smtp_queue_rollback(id);
}

static void
smtp_queue_commit_result(struct msg *m)
{
	struct smtp_session	*s;
	uint64_t		 reqid;
	uint32_t		 ok;
	const char		*reply;

	if (msg_get_u64(m, &reqid) == -1 ||
	    msg_get_u32(m, &ok) == -1 ||
	    msg_get_strp(m, &reply) == -1 ||
	    msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if (reply == NULL)
		reply = "";
	if ((s = smtp_session_find(reqid)) != NULL) {
		smtp_message_commit_result(s, ok != 0, reply);
		return;
	}
	/* The client left before hearing the answer; RFC 5321 §4.1.1.4. */
	log_info("session=%016llx event=commit-orphan ok=%u reply=%s",
	    (unsigned long long)reqid, ok, log_text(reply));
}

void
smtp_queue_rollback(const char *id)
{
	struct msg	 m;

	msg_init(&m, IMSG_QUEUE_MESSAGE_ROLLBACK, 0);
	msg_add_str(&m, id);
	proc_send(PROC_QUEUE, &m);
}
