/*
 * The relay process: takes deliveries from the queue, carries them to
 * their destination over SMTP (relay_dest.c, relay_session.c) and
 * reports each recipient's fate back to the queue.
 */
#include <sys/types.h>

#include <event.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "splitmx.h"
#include "relay.h"

static void	relay_tls_init(void);
static void	relay_tls_ca(const struct smx_conf *);
static void	relay_conf_apply(struct msg *);
static void	relay_deliver(struct msgchan *, struct msg *);
static void	relay_dns_result(struct msgchan *, struct msg *);
static int	relay_addr_ok(const char *);
static int	relay_xtext_ok(const char *);

struct tls_config	*relay_tls_verify;
struct tls_config	*relay_tls_noverify;
struct x509_store_st	*relay_ca_store;
static uint32_t		 ndeliveries;

void
relay(void)
{
	relay_tls_init();
	proc_drop_privileges();
	event_dispatch();
	fatalx("event loop ended");
}

/*
 * Two client configurations.  "verify" checks the chain against the CA
 * store (the configuration's "ca", or the system's, which the parent
 * opened for us: there is no /etc in the chroot) and the name; MTA-STS
 * uses it too.  The other is for "opportunistic", "require" and DANE
 * (relay_dane.c checks the chain itself): encryption without libtls'
 * authentication, which must not be stricter about old protocol
 * versions than sending in the clear would be.
 */
static void
relay_tls_init(void)
{
	uint32_t	 protos;

	if (tls_init() == -1)
		fatalx("tls_init failed");
	if ((relay_tls_noverify = tls_config_new()) == NULL)
		fatalx("tls_config_new failed");
	tls_config_insecure_noverifycert(relay_tls_noverify);
	tls_config_insecure_noverifyname(relay_tls_noverify);
	if (tls_config_parse_protocols(&protos, "all") == -1 ||
	    tls_config_set_protocols(relay_tls_noverify, protos) == -1 ||
	    tls_config_set_ciphers(relay_tls_noverify, "compat") == -1)
		fatalx("tls configuration: %s",
		    tls_config_error(relay_tls_noverify));
	relay_tls_ca(env->conf);
}

/* The "verify" configuration for a configuration's CA store. */
static void
relay_tls_ca(const struct smx_conf *c)
{
	struct tls_config	*cfg;

	if (c->ca == NULL || c->ca_len == 0) {
		log_warnx("no CA store (%s): destinations that need a verified "
		    "certificate (tls verify, MTA-STS) will fail", c->ca_file);
		cfg = NULL;
	} else {
		if ((cfg = tls_config_new()) == NULL)
			fatalx("tls_config_new failed");
		if (tls_config_set_ca_mem(cfg, c->ca, c->ca_len) == -1) {
			log_warnx("CA store %s: %s", c->ca_file,
			    tls_config_error(cfg));
			tls_config_free(cfg);
			cfg = NULL;
		}
	}
	/* Sessions under way hold a reference of their own (libtls). */
	if (relay_tls_verify != NULL)
		tls_config_free(relay_tls_verify);
	relay_tls_verify = cfg;
	relay_dane_store_free(relay_ca_store);
	relay_ca_store = relay_dane_store(c->ca, c->ca_len);
}

void
relay_imsg(struct msgchan *ch, struct msg *m, void *arg)
{
	(void)arg;
	if (proc_imsg(ch, m))
		return;
	switch (m->type) {
	case IMSG_CONF_APPLY:
		relay_conf_apply(m);
		break;
	case IMSG_RELAY_DELIVER:
		relay_deliver(ch, m);
		break;
	case IMSG_LOOKUP_DNS_HOST_RESULT:
		relay_dns_result(ch, m);
		break;
	default:
		fatalx("unexpected %s from %s", imsg_name(m->type),
		    proc_name(ch->peer));
	}
}

/*
 * Sessions read the configuration when they need it: nothing to move
 * but a new CA store.
 */
static void
relay_conf_apply(struct msg *m)
{
	struct smx_conf	*old;

	old = proc_conf_apply(m);
	if (old->ca_len != env->conf->ca_len || (old->ca_len > 0 &&
	    memcmp(old->ca, env->conf->ca, old->ca_len) != 0))
		relay_tls_ca(env->conf);
	conf_free(old);
}

/* IMSG_RELAY_DELIVER: see "relay protocol" in splitmx.h. */
static void
relay_deliver(struct msgchan *ch, struct msg *m)
{
	struct relay_msg	*rm;
	struct relay_rcpt	*r;
	const char		*msgid, *sender, *envid, *dest, *addr, *orcpt;
	uint32_t		 i;
	int			 bad = 0;

	proc_expect(ch, m, PROC_QUEUE);
	if ((rm = calloc(1, sizeof(*rm))) == NULL)
		fatal("calloc");
	if (msg_get_u64(m, &rm->reqid) == -1 ||
	    msg_get_strp(m, &msgid) == -1 || msgid == NULL ||
	    msg_get_strp(m, &sender) == -1 || sender == NULL ||
	    msg_get_u32(m, &rm->body) == -1 || rm->body >= BODY_COUNT ||
	    msg_get_u32(m, &rm->flags) == -1 ||
	    msg_get_strp(m, &envid) == -1 || envid == NULL ||
	    msg_get_u32(m, &rm->ret) == -1 || rm->ret >= RET_COUNT ||
	    msg_get_u64(m, &rm->size) == -1 ||
	    msg_get_strp(m, &dest) == -1 || dest == NULL ||
	    msg_get_u32(m, &rm->tls) == -1 || rm->tls >= TLSP_COUNT ||
	    msg_get_u32(m, &rm->nrcpt) == -1 || rm->nrcpt == 0 ||
	    rm->nrcpt > MSG_MAXPAYLOAD / 16)
		fatalx("bad %s", imsg_name(m->type));
	if ((rm->rcpts = calloc(rm->nrcpt, sizeof(*rm->rcpts))) == NULL)
		fatal("calloc");
	for (i = 0; i < rm->nrcpt; i++) {
		r = &rm->rcpts[i];
		if (msg_get_u32(m, &r->index) == -1 ||
		    msg_get_strp(m, &addr) == -1 || addr == NULL ||
		    msg_get_u32(m, &r->notify) == -1 ||
		    msg_get_strp(m, &orcpt) == -1 || orcpt == NULL)
			fatalx("bad %s", imsg_name(m->type));
		r->addr = str_dup(addr);
		r->orcpt = str_dup(orcpt);
		r->status = DELIVERY_TEMPFAIL;
	}
	if (msg_end(m) == -1 || (rm->fd = msg_take_fd(m)) == -1)
		fatalx("bad %s", imsg_name(m->type));
	rm->msgid = str_dup(msgid);
	rm->sender = str_dup(sender);
	rm->envid = str_dup(envid);
	rm->destination = str_dup(dest);
	rm->next_addr = 0;
	ndeliveries++;
	stat_add("relay.deliveries", 1);

	/*
	 * The queue's strings came from the network once: what would
	 * break the command line they go into fails here, not there.
	 */
	if (ndeliveries > RELAY_MAX_DELIVERIES)
		bad = DELIVERY_TEMPFAIL;
	else if (!relay_addr_ok(rm->sender) || !relay_xtext_ok(rm->envid) ||
	    !relay_addr_ok(rm->msgid))
		bad = DELIVERY_PERMFAIL;
	for (i = 0; i < rm->nrcpt; i++) {
		r = &rm->rcpts[i];
		if (bad)
			relay_rcpt_set(rm, r, (uint32_t)bad,
			    bad == DELIVERY_TEMPFAIL ? "4.3.2 relay busy, "
			    "too many deliveries at once" :
			    "5.1.7 invalid sender or envelope id", "-", "none",
			    "none");
		else if (!relay_addr_ok(r->addr) || *r->addr == '\0' ||
		    !relay_xtext_ok(r->orcpt))
			relay_rcpt_set(rm, r, DELIVERY_PERMFAIL,
			    "5.1.3 invalid recipient address", "-", "none",
			    "none");
	}
	for (i = 0; i < rm->nrcpt && !bad; i++)
		if (!rm->rcpts[i].done)
			break;
	if (bad || i == rm->nrcpt) {
		relay_result(rm);
		return;
	}
	relay_dest_deliver(rm);
}

static void
relay_dns_result(struct msgchan *ch, struct msg *m)
{
	proc_expect(ch, m, PROC_LOOKUP);
	relay_dest_dns_result(m);
}

/* Nothing that ends or splits a command line, nothing too long. */
static int
relay_addr_ok(const char *s)
{
	if (strlen(s) >= SMX_ADDRSZ)
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* xtext (RFC 3461 §4) as the smtp process checked it: no spaces. */
static int
relay_xtext_ok(const char *s)
{
	if (strlen(s) > 600)
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

/*
 * A verdict on a recipient.  Final verdicts (sent, bounced) are the
 * delivery's; a temporary one may still be followed by another address.
 * Every verdict is logged: one line per recipient and attempt.
 */
void
relay_rcpt_set(struct relay_msg *m, struct relay_rcpt *r, uint32_t status,
    const char *reply, const char *relay, const char *tls,
    const char *verified)
{
	char	 text[RELAY_REPLY_TEXT_MAX + 1];

	str_printable(text, sizeof(text), reply);
	free(r->reply);
	r->reply = str_dup(text);
	r->status = status;
	strlcpy(r->tls, tls, sizeof(r->tls));
	strlcpy(r->verified, verified, sizeof(r->verified));
	if (status != DELIVERY_TEMPFAIL)
		r->done = 1;
	log_info("msgid=%s event=delivery to=%s relay=%s status=%s "
	    "reply=%s tls=%s verified=%s", m->msgid, log_addr(r->addr),
	    log_value(relay), status == DELIVERY_OK ||
	    status == DELIVERY_RELAYED ? "sent" :
	    status == DELIVERY_PERMFAIL ? "bounced" : "deferred",
	    log_text(text), log_value(tls), log_value(verified));
	if (status == DELIVERY_OK || status == DELIVERY_RELAYED)
		stat_add("relay.recipients.sent", 1);
	else if (status == DELIVERY_PERMFAIL)
		stat_add("relay.recipients.bounced", 1);
}

/*
 * IMSG_RELAY_RESULT.  A recipient without a final verdict is deferred
 * with the last thing that happened to it.  The replies share the
 * message's size limit: with many recipients each gets less room.
 */
void
relay_result(struct relay_msg *m)
{
	struct relay_rcpt	*r;
	struct msg		 res;
	char			 text[RELAY_REPLY_TEXT_MAX + 1];
	size_t			 room;
	uint32_t		 i;

	room = (MSG_MAXPAYLOAD - 2048) / m->nrcpt;
	/* Index, status, the strings' lengths, tls and verified. */
	room = room > 80 ? room - 80 : 1;
	if (room > sizeof(text))
		room = sizeof(text);

	msg_init(&res, IMSG_RELAY_RESULT, 0);
	msg_add_u64(&res, m->reqid);
	msg_add_str(&res, m->remote);
	msg_add_u32(&res, m->nrcpt);
	for (i = 0; i < m->nrcpt; i++) {
		r = &m->rcpts[i];
		if (!r->done && r->reply == NULL)
			relay_rcpt_set(m, r, DELIVERY_TEMPFAIL, m->error[0] ?
			    m->error : "4.4.1 no delivery attempt was made",
			    m->relay[0] ? m->relay : "-", "none", "none");
		strlcpy(text, r->reply, room);
		msg_add_u32(&res, r->index);
		msg_add_u32(&res, r->status);
		msg_add_str(&res, text);
		msg_add_str(&res, r->tls);
		msg_add_str(&res, r->verified);
	}
	proc_send(PROC_QUEUE, &res);
	relay_msg_free(m);
}

void
relay_msg_free(struct relay_msg *m)
{
	uint32_t	 i;

	for (i = 0; i < m->nrcpt; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].orcpt);
		free(m->rcpts[i].reply);
	}
	free(m->rcpts);
	free(m->msgid);
	free(m->sender);
	free(m->envid);
	free(m->destination);
	if (m->fd != -1)
		close(m->fd);
	free(m);
	ndeliveries--;
}

/* An RFC 5321 timeout, capped by "timeout command" or "timeout data". */
time_t
relay_timeout(time_t rfc, int data)
{
	time_t	 cap;

	cap = data ? env->conf->timeout_data : env->conf->timeout_command;
	return cap > 0 && cap < rfc ? cap : rfc;
}
