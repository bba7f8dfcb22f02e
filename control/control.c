/*
 * The control process: the control socket (splitmxctl, control_ctl.c),
 * the status socket and show status/stats (control_status.c), the
 * counters every other process reports (control_counters.c) and the
 * metrics listener (control_metrics.c).
 */
#include <sys/types.h>

#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "splitmx.h"
#include "control.h"

static void	control_listen(void);
static void	control_conf_apply(struct msg *);

static struct event		 ev_control, ev_status;
static int			 listening;

void
control(void)
{
	control_ctl_init();
	control_counters_init();
	proc_drop_privileges();
	control_listen();
	event_dispatch();
	fatalx("event loop ended");
}

static void
control_listen(void)
{
	if (listening) {
		event_del(&ev_control);
		event_del(&ev_status);
		listening = 0;
	}
	if (env->conf->control_fd == -1 || env->conf->status_fd == -1)
		fatalx("control: sockets missing from the configuration");
	event_set(&ev_control, env->conf->control_fd, EV_READ | EV_PERSIST,
	    control_ctl_accept, NULL);
	event_add(&ev_control, NULL);
	event_set(&ev_status, env->conf->status_fd, EV_READ | EV_PERSIST,
	    control_status_accept, NULL);
	event_add(&ev_status, NULL);
	listening = 1;
	control_metrics_listen(env->conf->metrics_fd);
}

void
control_imsg(struct msgchan *ch, struct msg *m, void *arg)
{
	(void)arg;
	if (proc_imsg(ch, m))
		return;
	switch (m->type) {
	case IMSG_CONF_APPLY:
		control_conf_apply(m);
		break;
	case IMSG_CTL_PROCS:
		control_status_procs(m);
		break;
	case IMSG_CTL_STATS:
		control_counters_stats(m);
		break;
	case IMSG_CTL_RELOAD_RESULT:
		control_reload_result(m);
		break;
	case IMSG_CTL_STOP_RESULT:
		control_stop_result(m);
		break;
	case IMSG_CTL_QUEUE_ITEM:
		control_queue_item(m);
		break;
	case IMSG_CTL_QUEUE_END:
		control_queue_end(m);
		break;
	case IMSG_CTL_QUEUE_MESSAGE:
		control_queue_message(m);
		break;
	case IMSG_CTL_QUEUE_RCPT:
		control_queue_rcpt(m);
		break;
	case IMSG_CTL_QUEUE_EVENT:
		control_queue_event(m);
		break;
	case IMSG_CTL_QUEUE_RESULT:
		control_queue_result(m);
		break;
	case IMSG_CTL_LOOKUP_RESULT:
		control_lookup_result(m);
		break;
	case IMSG_CTL_CHECK_CLIENT_RESULT:
		control_check_client_result(m);
		break;
	case IMSG_CTL_LOOKUP_TLS_RESULT:
		control_lookup_tls_result(m);
		break;
	default:
		fatalx("unexpected %s from %s", imsg_name(m->type),
		    proc_name(ch->peer));
	}
}

static void
control_conf_apply(struct msg *m)
{
	struct smx_conf	*old = proc_conf_apply(m);

	control_listen();
	/* The metrics socket is closed by evhttp when it lets go of it. */
	if (old->control_fd != -1)
		close(old->control_fd);
	if (old->status_fd != -1)
		close(old->status_fd);
	conf_free(old);
}
