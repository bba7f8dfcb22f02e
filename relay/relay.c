/*
 * The relay process: outbound SMTP client sessions.
 */
#include <sys/types.h>

#include <event.h>
#include <stdlib.h>

#include "splitmx.h"

static void	relay_conf_apply(struct msg *);

void
relay(void)
{
	proc_drop_privileges(PROC_RELAY, SPLITMX_EMPTY);
	event_dispatch();
	fatalx("event loop ended");
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
	default:
		fatalx("unexpected %s from %s", imsg_name(m->type),
		    proc_name(ch->peer));
	}
}

static void
relay_conf_apply(struct msg *m)
{
	conf_free(proc_conf_apply(m));
}
