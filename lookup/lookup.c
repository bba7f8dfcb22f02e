/*
 * The lookup process: the directory tables, recipient classification
 * and DNS.  It answers the smtp process' questions about recipients.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <event.h>
#include <stdlib.h>

#include "splitmx.h"

static void	lookup_conf_apply(struct msg *);
static void	lookup_rcpt(struct msgchan *, struct msg *);

void
lookup(void)
{
	proc_drop_privileges(PROC_LOOKUP, SPLITMX_EMPTY);
	event_dispatch();
	fatalx("event loop ended");
}

void
lookup_imsg(struct msgchan *ch, struct msg *m, void *arg)
{
	(void)arg;
	if (proc_imsg(ch, m))
		return;
	switch (m->type) {
	case IMSG_CONF_APPLY:
		lookup_conf_apply(m);
		break;
	case IMSG_LOOKUP_RCPT:
		lookup_rcpt(ch, m);
		break;
	default:
		fatalx("unexpected %s from %s", imsg_name(m->type),
		    proc_name(ch->peer));
	}
}

static void
lookup_conf_apply(struct msg *m)
{
	conf_free(proc_conf_apply(m));
}

/* See "lookup protocol" in splitmx.h. */
static void
lookup_rcpt(struct msgchan *ch, struct msg *m)
{
	struct sockaddr_storage	 ss;
	struct route_result	 rr;
	struct msg		 r;
	socklen_t		 sslen;
	uint64_t		 reqid;
	const char		*sender, *rcpt;

	if (ch->peer != PROC_SMTP)
		fatalx("%s from %s", imsg_name(m->type), proc_name(ch->peer));
	if (msg_get_u64(m, &reqid) == -1 ||
	    msg_get_sockaddr(m, &ss, &sslen) == -1 ||
	    msg_get_strp(m, &sender) == -1 ||
	    msg_get_strp(m, &rcpt) == -1 ||
	    msg_end(m) == -1 || sender == NULL || rcpt == NULL)
		fatalx("bad %s", imsg_name(m->type));

	route_rcpt(env->conf, (struct sockaddr *)&ss, sender, rcpt, &rr);
	log_info("session=%016llx event=route rcpt=<%s> verdict=%s class=%s "
	    "destination=%s reply=\"%u %s\"", (unsigned long long)reqid, rcpt,
	    rr.verdict == LOOKUP_ACCEPT ? "accept" :
	    rr.verdict == LOOKUP_REJECT ? "reject" : "tempfail",
	    route_class_name(rr.rclass),
	    rr.dest[0] ? rr.dest : "-", rr.code, rr.text);

	msg_init(&r, IMSG_LOOKUP_RCPT_RESULT, 0);
	msg_add_u64(&r, reqid);
	msg_add_u32(&r, rr.verdict);
	msg_add_u32(&r, rr.code);
	msg_add_str(&r, rr.text);
	msg_add_u32(&r, rr.rclass);
	msg_add_str(&r, rr.rewritten);
	msg_add_str(&r, rr.dest);
	proc_send(PROC_SMTP, &r);
}
