/*
 * A session's milters, as the smtp process sees them: at every stage it
 * asks the filter process (which holds the milter connections) and
 * waits for the verdict before it answers the client.  At the end of
 * the message the filter may have replaced the message file with the
 * modified copy; the envelope changes (sender, recipients, quarantine)
 * are applied here, an added recipient routed like any RCPT, and only
 * then is the message committed.  The protocol: "filter protocol" in
 * splitmx.h.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <tls.h>

#include "splitmx.h"
#include "smtp.h"

static void	smtp_filter_send(struct smtp_session *, struct msg *,
		    enum filter_stage);
static struct smtp_session *smtp_filter_session(struct msg *);
static void	smtp_filter_reply(struct smtp_session *, const char *);
static void	smtp_filter_first_line(const char *, char *, size_t);
static void	smtp_filter_refused(struct smtp_session *, int,
		    const char *);
static void	smtp_filter_ops(struct smtp_session *);
static void	smtp_filter_delrcpt(struct smtp_session *, const char *);
static uint32_t	smtp_filter_notify(const char *);
static void	smtp_filter_drop(struct smtp_session *, const char *);
static const char *smtp_filter_mailer(uint32_t);

/* The session began: its milters and where the client is. */
void
smtp_filter_connect(struct smtp_session *s)
{
	struct smx_listener	*l = s->listen->l;
	struct smx_milter	*mi;
	struct sockaddr_storage	 local;
	socklen_t		 locallen = sizeof(local);
	struct msg		 m;
	uint32_t		 i, n = 0;

	for (i = 0; i < l->nmilters; i++)
		if (conf_milter(s->gen->conf, l->milters[i]) != NULL)
			n++;
	if (n == 0)
		return;
	if (getsockname(s->fd, (struct sockaddr *)&local, &locallen) == -1) {
		local = l->ss;
		locallen = l->sslen;
	}
	msg_init(&m, IMSG_FILTER_CONNECT, 0);
	msg_add_u64(&m, s->id);
	msg_add_str(&m, s->gen->conf->hostname);
	msg_add_sockaddr(&m, (struct sockaddr *)&local, locallen);
	msg_add_sockaddr(&m, (struct sockaddr *)&s->ss, s->sslen);
	msg_add_u32(&m, n);
	for (i = 0; i < l->nmilters; i++) {
		if ((mi = conf_milter(s->gen->conf, l->milters[i])) == NULL)
			continue;
		msg_add_str(&m, mi->name);
		msg_add_str(&m, mi->address);
		msg_add_u32(&m, (uint32_t)mi->on_error);
		msg_add_i64(&m, mi->timeout);
	}
	proc_send(PROC_FILTER, &m);
	s->flags |= F_FILTER | F_FILTER_CONNECT;
}

/*
 * The banner delay is over (and the DNS lists have answered): 1 if the
 * milters' verdict on the connection is not in yet; it fires the
 * banner timer again when it comes.
 */
int
smtp_filter_banner(struct smtp_session *s)
{
	if (!(s->flags & F_FILTER_CONNECT))
		return 0;
	s->flags |= F_BANNER_DUE;
	return 1;
}

static void
smtp_filter_send(struct smtp_session *s, struct msg *m,
    enum filter_stage stage)
{
	proc_send(PROC_FILTER, m);
	s->wait = WAIT_FILTER;
	s->fstage = stage;
}

int
smtp_filter_helo(struct smtp_session *s)
{
	struct msg	 m;
	int		 bits = 0;

	if (!(s->flags & F_FILTER))
		return 0;
	if (s->tls != NULL && (s->flags & F_TLS))
		bits = tls_conn_cipher_strength(s->tls);
	msg_init(&m, IMSG_FILTER_HELO, 0);
	msg_add_u64(&m, s->id);
	msg_add_str(&m, s->helo);
	msg_add_str(&m, (s->flags & F_TLS) ? s->tls_version : "");
	msg_add_str(&m, (s->flags & F_TLS) ? s->tls_cipher : "");
	msg_add_u32(&m, bits > 0 ? (uint32_t)bits : 0);
	smtp_filter_send(s, &m, FILTER_STAGE_HELO);
	return 1;
}

int
smtp_filter_mail(struct smtp_session *s, const char *args)
{
	struct msg	 m;

	if (!(s->flags & F_FILTER))
		return 0;
	msg_init(&m, IMSG_FILTER_MAIL, 0);
	msg_add_u64(&m, s->id);
	msg_add_str(&m, s->tx->sender);
	msg_add_str(&m, args);
	smtp_filter_send(s, &m, FILTER_STAGE_MAIL);
	s->tx->filtered = 1;
	return 1;
}

/* r waits in tx->pending for the verdict. */
int
smtp_filter_rcpt(struct smtp_session *s, struct smtp_rcpt *r)
{
	struct msg	 m;

	if (!(s->flags & F_FILTER) || !s->tx->filtered || s->tx->discard)
		return 0;
	msg_init(&m, IMSG_FILTER_RCPT, 0);
	msg_add_u64(&m, s->id);
	msg_add_str(&m, r->addr);
	msg_add_str(&m, r->args != NULL ? r->args : "");
	msg_add_str(&m, smtp_filter_mailer(r->rclass));
	smtp_filter_send(s, &m, FILTER_STAGE_RCPT);
	s->tx->pending = r;
	return 1;
}

/* {rcpt_mailer}: the routing decision, in the words of SPEC §9. */
static const char *
smtp_filter_mailer(uint32_t rclass)
{
	switch (rclass) {
	case ROUTE_LOCAL:
		return "local";
	case ROUTE_CUSTOM:
		return "custom";
	case ROUTE_BOUNCE:
		return "bounce";
	default:
		return "relay";
	}
}

/* After CREATE: the queue id is known (macro i) before the 354. */
int
smtp_filter_data(struct smtp_session *s)
{
	struct msg	 m;

	if (!(s->flags & F_FILTER) || !s->tx->filtered || s->tx->discard)
		return 0;
	msg_init(&m, IMSG_FILTER_DATA, 0);
	msg_add_u64(&m, s->id);
	msg_add_str(&m, s->tx->id);
	smtp_filter_send(s, &m, FILTER_STAGE_DATA);
	return 1;
}

/*
 * The end of the message, on disk and flushed: the milters see it
 * before the commit.  A message a milter discarded earlier ends here.
 */
int
smtp_filter_message(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;
	struct msg	 m;

	if (!(s->flags & F_FILTER) || !tx->filtered)
		return 0;
	if (tx->discard) {
		smtp_filter_drop(s, "discarded");
		return 1;
	}
	msg_init(&m, IMSG_FILTER_MESSAGE, 0);
	msg_add_u64(&m, s->id);
	msg_add_str(&m, tx->id);
	msg_add_u64(&m, tx->written);
	msg_add_u64(&m, tx->received);
	smtp_filter_send(s, &m, FILTER_STAGE_MESSAGE);
	return 1;
}

/* The transaction ends before its end of message. */
void
smtp_filter_abort(struct smtp_session *s)
{
	struct msg	 m;

	if (!(s->flags & F_FILTER) || s->tx == NULL || !s->tx->filtered)
		return;
	s->tx->filtered = 0;
	msg_init(&m, IMSG_FILTER_ABORT, 0);
	msg_add_u64(&m, s->id);
	proc_send(PROC_FILTER, &m);
}

void
smtp_filter_close(struct smtp_session *s)
{
	struct msg	 m;

	if (!(s->flags & F_FILTER))
		return;
	s->flags &= ~F_FILTER;
	msg_init(&m, IMSG_FILTER_CLOSE, 0);
	msg_add_u64(&m, s->id);
	proc_send(PROC_FILTER, &m);
}

/* The session a verdict is for, if it still waits for it. */
static struct smtp_session *
smtp_filter_session(struct msg *m)
{
	struct smtp_session	*s;
	uint64_t		 id;

	if (msg_get_u64(m, &id) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((s = smtp_session_find(id)) == NULL || (s->flags & F_CLOSE))
		return NULL;
	return s;
}

/* A reply the filter checked, one line at a time (lines joined by CR LF). */
static void
smtp_filter_reply(struct smtp_session *s, const char *reply)
{
	const char	*p = reply, *e;

	while (*p != '\0') {
		e = strstr(p, "\r\n");
		smtp_session_reply(s, "%.*s", (int)(e != NULL ?
		    (size_t)(e - p) : strlen(p)), p);
		if (e == NULL)
			break;
		p = e + 2;
	}
}

/* The first line alone, as a last line ("550 " not "550-"). */
static void
smtp_filter_first_line(const char *reply, char *buf, size_t len)
{
	size_t	 n;

	n = strcspn(reply, "\r");
	if (n >= len)
		n = len - 1;
	memcpy(buf, reply, n);
	buf[n] = '\0';
	if (n > 3)
		buf[3] = ' ';
}

/*
 * IMSG_FILTER_RESULT: the verdict on the stage the session waits for;
 * the reply it was holding back, or the milter's.
 */
void
smtp_filter_result(struct msg *m)
{
	struct smtp_session	*s;
	struct smtp_rcpt	*r;
	struct timeval		 now = { 0, 0 };
	const char		*reply;
	uint32_t		 stage, verdict;

	s = smtp_filter_session(m);
	if (msg_get_u32(m, &stage) == -1 || msg_get_u32(m, &verdict) == -1 ||
	    msg_get_strp(m, &reply) == -1 || msg_end(m) == -1 ||
	    stage >= FILTER_STAGE_COUNT || verdict >= FILTER_VERDICT_COUNT ||
	    ((verdict == FILTER_REJECT || verdict == FILTER_TEMPFAIL) &&
	    (reply == NULL || strlen(reply) < 3)))
		fatalx("bad %s", imsg_name(m->type));
	if (s == NULL)
		return;
	if (stage == FILTER_STAGE_CONNECT) {
		if (!(s->flags & F_FILTER_CONNECT))
			fatalx("smtp: unexpected connect verdict");
		s->flags &= ~F_FILTER_CONNECT;
		if (verdict == FILTER_REJECT || verdict == FILTER_TEMPFAIL) {
			/* Refused: its reply instead of the banner, and out. */
			log_info("session=%016llx event=milter-refused "
			    "stage=connect client=%s", (unsigned long long)
			    s->id, s->addr);
			smtp_filter_reply(s, reply);
			smtp_session_close(s, "milter");
		} else if ((s->flags & F_BANNER_DUE) &&
		    s->state == STATE_BANNER) {
			/* The banner timer again, at once: it sends it. */
			s->flags &= ~F_BANNER_DUE;
			evtimer_add(&s->tmo, &now);
		}
		smtp_session_run(s);
		return;
	}
	if (s->wait != WAIT_FILTER || s->fstage != stage)
		fatalx("smtp: unexpected %s verdict for session %016llx",
		    imsg_name(m->type), (unsigned long long)s->id);
	s->wait = WAIT_NONE;
	switch (stage) {
	case FILTER_STAGE_HELO:
		if (verdict == FILTER_REJECT || verdict == FILTER_TEMPFAIL) {
			smtp_filter_reply(s, reply);
			s->state = STATE_CONNECTED;
			s->helo[0] = '\0';
			s->flags &= ~F_EHLO;
		} else
			smtp_session_greeted(s);
		break;
	case FILTER_STAGE_MAIL:
		if (verdict == FILTER_REJECT || verdict == FILTER_TEMPFAIL) {
			smtp_filter_refused(s, 0, reply);
			break;
		}
		if (verdict == FILTER_DISCARD)
			s->tx->discard = 1;
		smtp_session_reply(s, "250 2.1.0 Ok");
		break;
	case FILTER_STAGE_RCPT:
		r = s->tx->pending;
		s->tx->pending = NULL;
		if (r == NULL)
			fatalx("smtp: rcpt verdict without a recipient");
		if (verdict == FILTER_REJECT || verdict == FILTER_TEMPFAIL) {
			log_info("session=%016llx event=rcpt-rejected "
			    "from=%s to=%s by=milter",
			    (unsigned long long)s->id,
			    log_addr(s->tx->sender), log_addr(r->addr));
			smtp_filter_reply(s, reply);
			smtp_message_free_rcpt(r);
			break;
		}
		if (verdict == FILTER_DISCARD)
			s->tx->discard = 1;
		smtp_session_rcpt_accept(s, r);
		break;
	case FILTER_STAGE_DATA:
		if (verdict == FILTER_REJECT || verdict == FILTER_TEMPFAIL) {
			smtp_filter_refused(s, 1, reply);
			break;
		}
		if (verdict == FILTER_DISCARD)
			s->tx->discard = 1;
		smtp_message_start(s);
		break;
	default:
		fatalx("smtp: %s for stage %u", imsg_name(m->type), stage);
	}
	smtp_session_timer(s);
	smtp_session_run(s);
}

/*
 * The milters refused the transaction (at MAIL, DATA): it is over; a
 * BDAT chunk on its way is read and answered with the refusal.
 */
static void
smtp_filter_refused(struct smtp_session *s, int data, const char *reply)
{
	char	 line[sizeof(s->chunk_reply)];
	int	 bdat = s->tx != NULL && s->tx->bdat;

	log_info("session=%016llx event=milter-refused stage=%s from=%s",
	    (unsigned long long)s->id, data ? "data" : "mail",
	    log_addr(s->tx != NULL ? s->tx->sender : ""));
	s->tx->filtered = 0;	/* the filter has let go of it */
	smtp_message_abort(s);
	s->state = STATE_HELO;
	if (data && bdat) {
		smtp_filter_first_line(reply, line, sizeof(line));
		smtp_message_chunk_skip(s, 0, line);
	} else
		smtp_filter_reply(s, reply);
}

/*
 * Nothing to deliver (discarded, every recipient deleted): the client
 * hears what it hears for an accepted message, nothing is queued.
 */
static void
smtp_filter_drop(struct smtp_session *s, const char *why)
{
	struct smtp_tx	*tx = s->tx;

	log_info("session=%016llx event=message-%s id=%s from=%s "
	    "size=%zu by=milter", (unsigned long long)s->id, why, tx->id,
	    log_addr(tx->sender), tx->datalen);
	smtp_session_reply(s, "250 2.0.0 Ok: queued as %s", tx->id);
	tx->filtered = 0;
	smtp_message_abort(s);
	s->state = STATE_HELO;
	s->nmsgs++;
}

/*
 * IMSG_FILTER_MESSAGE_RESULT: refused, discarded, or on its way to the
 * queue with the milters' envelope changes (see splitmx.h).
 */
void
smtp_filter_message_result(struct msg *m)
{
	struct smtp_session	*s;
	struct smtp_tx		*tx;
	const char		*reply, *quarantine, *sender, *addr, *args;
	uint64_t		 size;
	uint32_t		 verdict, nops, i, op;

	s = smtp_filter_session(m);
	if (msg_get_u32(m, &verdict) == -1 || msg_get_strp(m, &reply) == -1 ||
	    msg_get_strp(m, &quarantine) == -1 ||
	    msg_get_u64(m, &size) == -1 || msg_get_strp(m, &sender) == -1 ||
	    msg_get_u32(m, &nops) == -1 || verdict >= FILTER_VERDICT_COUNT ||
	    nops > FILTER_RCPT_OPS_MAX || reply == NULL || quarantine == NULL)
		fatalx("bad %s", imsg_name(m->type));
	if (s != NULL && (s->wait != WAIT_FILTER ||
	    s->fstage != FILTER_STAGE_MESSAGE || s->tx == NULL))
		fatalx("smtp: unexpected %s", imsg_name(m->type));
	tx = s != NULL ? s->tx : NULL;
	if (tx != NULL && nops > 0) {
		if ((tx->fops = calloc(nops, sizeof(*tx->fops))) == NULL)
			fatal("calloc");
	}
	for (i = 0; i < nops; i++) {
		if (msg_get_u32(m, &op) == -1 || msg_get_strp(m, &addr) == -1 ||
		    msg_get_strp(m, &args) == -1 || addr == NULL ||
		    (op != FILTER_RCPT_ADD && op != FILTER_RCPT_DEL))
			fatalx("bad %s", imsg_name(m->type));
		if (tx == NULL)
			continue;
		tx->fops[i].op = op;
		tx->fops[i].addr = str_dup(addr);
		tx->fops[i].args = str_dup(args);
		tx->nfops++;
	}
	if (msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if (s == NULL)
		return;
	s->wait = WAIT_NONE;
	tx->filtered = 0;
	switch (verdict) {
	case FILTER_REJECT:
	case FILTER_TEMPFAIL:
		log_info("session=%016llx event=message-refused id=%s "
		    "from=%s size=%zu reason=milter", (unsigned long long)
		    s->id, tx->id, log_addr(tx->sender), tx->datalen);
		smtp_filter_reply(s, reply);
		smtp_message_abort(s);
		s->state = STATE_HELO;
		break;
	case FILTER_DISCARD:
		smtp_filter_drop(s, "discarded");
		break;
	default:
		/* The file may be the filter's modified copy now. */
		tx->written = (size_t)size;
		if (*quarantine != '\0')
			tx->quarantine = str_dup(quarantine);
		if (sender != NULL) {
			if (strlen(sender) >= sizeof(tx->sender))
				log_warnx("session=%016llx id=%s event=milter-"
				    "chgfrom-too-long", (unsigned long long)
				    s->id, tx->id);
			else {
				log_info("session=%016llx id=%s "
				    "event=milter-chgfrom from=%s to=%s",
				    (unsigned long long)s->id, tx->id,
				    log_addr(tx->sender), log_addr(sender));
				strlcpy(tx->sender, sender,
				    sizeof(tx->sender));
			}
		}
		tx->fop = 0;
		smtp_filter_ops(s);
		return;
	}
	smtp_session_timer(s);
	smtp_session_run(s);
}

/*
 * The milters' recipient changes, in their order: a deleted one goes
 * (every recipient given as that address), an added one is routed by
 * the lookup process like any RCPT.  Then the commit.
 */
static void
smtp_filter_ops(struct smtp_session *s)
{
	struct smtp_tx		*tx = s->tx;
	struct smtp_fop		*op;
	struct smtp_rcpt	*r;
	struct msg		 m;

	while (tx->fop < tx->nfops) {
		op = &tx->fops[tx->fop++];
		if (op->op == FILTER_RCPT_DEL) {
			smtp_filter_delrcpt(s, op->addr);
			continue;
		}
		if ((r = calloc(1, sizeof(*r))) == NULL)
			fatal("calloc");
		r->addr = str_dup(op->addr);
		r->orcpt = str_dup("");
		r->args = str_dup(op->args);
		r->notify = smtp_filter_notify(op->args);
		r->rclass = ROUTE_NONE;
		tx->pending = r;
		msg_init(&m, IMSG_LOOKUP_RCPT, 0);
		msg_add_u64(&m, s->id);
		msg_add_sockaddr(&m, (struct sockaddr *)&s->ss, s->sslen);
		msg_add_str(&m, tx->sender);
		msg_add_str(&m, r->addr);
		proc_send(PROC_LOOKUP, &m);
		s->wait = WAIT_FILTER_LOOKUP;
		return;
	}
	if (tx->nrcpt == 0) {
		smtp_filter_drop(s, "without-recipients");
		smtp_session_timer(s);
		smtp_session_run(s);
		return;
	}
	smtp_message_commit(s);
}

static void
smtp_filter_delrcpt(struct smtp_session *s, const char *addr)
{
	struct smtp_tx		*tx = s->tx;
	struct smtp_rcpt	*r, *next;
	int			 n = 0;

	for (r = TAILQ_FIRST(&tx->rcpts); r != NULL; r = next) {
		next = TAILQ_NEXT(r, entry);
		if (strcasecmp(r->addr, addr) != 0)
			continue;
		TAILQ_REMOVE(&tx->rcpts, r, entry);
		tx->nrcpt--;
		smtp_message_free_rcpt(r);
		n++;
	}
	log_info("session=%016llx id=%s event=milter-delrcpt to=%s "
	    "removed=%d", (unsigned long long)s->id, tx->id, log_addr(addr),
	    n);
}

/* NOTIFY= of ADDRCPT_PAR's arguments; anything else is not ours. */
static uint32_t
smtp_filter_notify(const char *args)
{
	const char	*p;
	uint32_t	 n = 0;
	size_t		 len;

	if (args == NULL || (p = strcasestr(args, "NOTIFY=")) == NULL ||
	    (p != args && p[-1] != ' '))
		return 0;
	for (p += 7; *p != '\0' && *p != ' '; p += len + (p[len] == ',')) {
		len = strcspn(p, ", ");
		if (len == 5 && strncasecmp(p, "NEVER", 5) == 0)
			n |= F_NOTIFY_NEVER;
		else if (len == 7 && strncasecmp(p, "SUCCESS", 7) == 0)
			n |= F_NOTIFY_SUCCESS;
		else if (len == 7 && strncasecmp(p, "FAILURE", 7) == 0)
			n |= F_NOTIFY_FAILURE;
		else if (len == 5 && strncasecmp(p, "DELAY", 5) == 0)
			n |= F_NOTIFY_DELAY;
		else
			return 0;
	}
	return (n & F_NOTIFY_NEVER) && n != F_NOTIFY_NEVER ? 0 : n;
}

/*
 * An added recipient's route.  One that cannot be routed for good is
 * kept as a bounce with the lookup's reply: the sender hears of it, it
 * is never dropped in silence.  A directory that cannot answer now
 * refuses the message for now.
 */
void
smtp_filter_lookup_result(struct smtp_session *s, uint32_t verdict,
    uint32_t code, const char *text, uint32_t rclass, const char *rewritten,
    const char *dest, uint32_t tls)
{
	struct smtp_tx		*tx = s->tx;
	struct smtp_rcpt	*r;
	char			 clean[256], err[300];

	if (tx == NULL || (r = tx->pending) == NULL)
		fatalx("smtp: lookup result without a recipient");
	tx->pending = NULL;
	s->wait = WAIT_NONE;
	str_printable(clean, sizeof(clean), text);
	if (verdict == LOOKUP_ACCEPT && rclass < ROUTE_NONE) {
		r->rewritten = str_dup(rewritten[0] ? rewritten : r->addr);
		r->dest = str_dup(dest);
		r->rclass = rclass;
		r->tls = tls;
		log_info("session=%016llx id=%s event=milter-addrcpt to=%s "
		    "route=%s", (unsigned long long)s->id, tx->id,
		    log_addr(r->addr), route_class_name(rclass));
	} else if (verdict == LOOKUP_TEMPFAIL || code / 100 == 4) {
		(void)snprintf(err, sizeof(err), "%u %s", code, clean);
		log_info("session=%016llx id=%s event=milter-addrcpt to=%s "
		    "error=%s", (unsigned long long)s->id, tx->id,
		    log_addr(r->addr), log_text(err));
		smtp_message_free_rcpt(r);
		smtp_session_reply(s, "451 4.3.0 Error: a recipient added by "
		    "a content filter cannot be routed now, try again later");
		smtp_message_abort(s);
		s->state = STATE_HELO;
		smtp_session_timer(s);
		smtp_session_run(s);
		return;
	} else {
		(void)snprintf(err, sizeof(err), "%u %s", code,
		    clean[0] ? clean : "5.1.1 Recipient rejected");
		log_warnx("session=%016llx id=%s event=milter-addrcpt "
		    "to=%s error=%s action=bounce", (unsigned long long)s->id,
		    tx->id, log_addr(r->addr), log_text(err));
		r->rewritten = str_dup(r->addr);
		r->dest = str_dup("");
		r->rclass = ROUTE_BOUNCE;
		r->tls = TLSP_NONE;
		r->error = str_dup(err);
	}
	TAILQ_INSERT_TAIL(&tx->rcpts, r, entry);
	tx->nrcpt++;
	smtp_filter_ops(s);
}
