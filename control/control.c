/*
 * The control process: the control socket (splitmxctl, control_ctl.c),
 * the status socket and show status/stats (control_status.c), the
 * counters every other process reports (control_counters.c) and the
 * metrics listener (control_metrics.c).
 */
#include <sys/types.h>

#include <errno.h>
#include <event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmx.h"
#include "control.h"

static void	control_listen(void);
static void	control_accept_update(void);
static void	control_accept_resume(int, short, void *);
static void	control_conf_apply(struct msg *);

static struct event		 ev_control, ev_status, ev_resume;
static int			 listening;	/* events set on the sockets */
static int			 accepting;	/* ... and added */
static int			 starved;	/* out of descriptors */

void
control(void)
{
	control_ctl_init();
	control_counters_init();
	proc_drop_privileges();
	evtimer_set(&ev_resume, control_accept_resume, NULL);
	control_listen();
	event_dispatch();
	fatalx("event loop ended");
}

static void
control_listen(void)
{
	if (accepting) {
		event_del(&ev_control);
		event_del(&ev_status);
		accepting = 0;
	}
	if (env->conf->control_fd == -1 || env->conf->status_fd == -1)
		fatalx("control: sockets missing from the configuration");
	event_set(&ev_control, env->conf->control_fd, EV_READ | EV_PERSIST,
	    control_ctl_accept, NULL);
	event_set(&ev_status, env->conf->status_fd, EV_READ | EV_PERSIST,
	    control_status_accept, NULL);
	listening = 1;
	control_metrics_listen(env->conf->metrics_fd);
	control_accept_update();
}

/* Accept on every socket unless out of descriptors. */
static void
control_accept_update(void)
{
	int	 on = listening && !starved;

	if (on && !accepting) {
		event_add(&ev_control, NULL);
		event_add(&ev_status, NULL);
	} else if (!on && accepting) {
		event_del(&ev_control);
		event_del(&ev_status);
	}
	accepting = on;
	control_metrics_pause(!on);
}

/*
 * accept(2) failed for want of a descriptor (EMFILE, ENFILE; err).  The
 * listening socket stays readable, so accepting again at once would
 * spin: every socket of the process rests for CTL_ACCEPT_PAUSE, the
 * connections waiting keep their place in the backlog, and the
 * condition is logged once per CTL_WARN_INTERVAL, whichever socket
 * (what) met it.
 */
void
control_starved(const char *what, int err)
{
	static struct control_warn	 w;
	struct timeval			 tv = { CTL_ACCEPT_PAUSE, 0 };

	control_warn(&w, "control: out of descriptors accepting on the %s "
	    "socket (%s): accepting paused for %ds", what, strerror(err),
	    CTL_ACCEPT_PAUSE);
	if (starved)
		return;
	starved = 1;
	control_accept_update();
	evtimer_add(&ev_resume, &tv);
}

static void
control_accept_resume(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	starved = 0;
	control_accept_update();
}

/*
 * A warning that a flood could repeat thousands of times a second goes
 * to the log once per CTL_WARN_INTERVAL, with the count of the times it
 * was held back.
 */
void
control_warn(struct control_warn *w, const char *fmt, ...)
{
	char	 buf[512];
	time_t	 now = time(NULL);
	va_list	 ap;

	if (w->last != 0 && now - w->last < CTL_WARN_INTERVAL) {
		w->more++;
		return;
	}
	va_start(ap, fmt);
	if (vsnprintf(buf, sizeof(buf), fmt, ap) < 0)
		strlcpy(buf, fmt, sizeof(buf));
	va_end(ap);
	if (w->more > 0)
		log_warnx("%s (%lu more times since the last report)", buf,
		    w->more);
	else
		log_warnx("%s", buf);
	w->last = now;
	w->more = 0;
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
