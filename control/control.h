/*
 * Between the control process' files: control.c (the process),
 * control_ctl.c (the control socket, its clients and requests),
 * control_status.c, control_counters.c, control_queue.c,
 * control_lookup.c, control_import.c and control_metrics.c.
 */
#ifndef SMX_CONTROL_H
#define SMX_CONTROL_H

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#define CTL_ARGSZ	64
#define CTL_TLSDESTS	8	/* show message: destinations explained */

/*
 * Limits on the control socket (an extension, splitmxctl(8)): the
 * connections of one user (root too) and of all users but root, so
 * that one user cannot lock the others out and root always gets in.
 * The status socket answers and closes at once; evhttp closes a
 * metrics connection idle for 10 seconds.
 */
#define CTL_CLIENTS_PER_UID	16
#define CTL_CLIENTS_MAX		64
#define CTL_ACCEPT_PAUSE	1	/* s: out of descriptors, no accept */
#define CTL_WARN_INTERVAL	60	/* s: a flood is logged once in it */

/* A condition logged at most once per CTL_WARN_INTERVAL. */
struct control_warn {
	time_t		 last;
	unsigned long	 more;		/* times since it was logged */
};

/* Requests to the queue that take an id: a client's kind. */
#define CTL_Q_SHOW	1	/* show message */
#define CTL_Q_SCHEDULE	2
#define CTL_Q_REMOVE	3
#define CTL_Q_RELEASE	4

/* A connected splitmxctl. */
struct ctl_client {
	TAILQ_ENTRY(ctl_client)	 entry;
	struct bufferevent	*bev;
	uint64_t		 reqid;		/* outstanding request, or 0 */
	uid_t			 uid;
	int			 admin;		/* may change things */
	int			 json;
	int			 closing;
	FILE			*out;		/* response being built */
	char			*outbuf;
	size_t			 outlen;
	size_t			 nitems;	/* show queue: lines so far */
	int			 kind;		/* CTL_Q_*: the queue request */
	size_t			 nevents;	/* show message: history */
	char			 arg[CTL_ARGSZ]; /* its id, for errors */
	/* show message: where its queued recipients go, and with what. */
	struct {
		char		 dest[SMX_HOSTSZ + 16];
		char		 domain[SMX_HOSTSZ];
		char		 tls[16];
	}			 tlsdests[CTL_TLSDESTS];
	int			 ntlsdests;
	int			 tlsnext;	/* the one being asked */
};

/*
 * control.c: the process; accepting is paused on every socket for
 * CTL_ACCEPT_PAUSE when the process is out of descriptors.
 */
void		 control_warn(struct control_warn *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
void		 control_starved(const char *, int);

/*
 * control_ctl.c: the control socket.  A request's handler (the table
 * there, by enum ctl_handler) gets the words from the verb on; it
 * writes its answer to control_out() and ends with control_reply() or
 * control_fail(), now or when the process it asked has answered
 * (c->reqid: control_reqid(), found again with control_client_find()).
 */
void		 control_ctl_init(void);
void		 control_ctl_accept(int, short, void *);
uint64_t	 control_reqid(void);
struct ctl_client *control_client_find(uint64_t);
FILE		*control_out(struct ctl_client *);
void		 control_reply(struct ctl_client *, int status);
void		 control_fail(struct ctl_client *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
void		 control_reload(struct ctl_client *, char **);
void		 control_reload_result(struct msg *);
void		 control_log(struct ctl_client *, char **);
void		 control_pause(struct ctl_client *, char **);
void		 control_stop(struct ctl_client *, char **);
void		 control_stop_result(struct msg *);
/* Text without control bytes (json_str() is lib/util.c's). */
void		 control_put_safe(FILE *, const char *);

/* control_status.c: show status, show stats, the status socket */
void		 control_status_procs(struct msg *);
void		 control_status_accept(int, short, void *);
void		 control_show_status(struct ctl_client *, char **);
void		 control_show_stats(struct ctl_client *, char **);

/*
 * control_counters.c: the counters every process reports in
 * IMSG_CTL_STATS, by name, in the order first seen.
 */
void		 control_counters_init(void);
void		 control_counters_stats(struct msg *);
int		 control_counters_n(void);
const char	*control_counters_at(int, int64_t *value, int *gauge);
int64_t		 control_counters_value(const char *);

/* control_queue.c: show queue, show message, schedule, remove */
void		 control_show_queue(struct ctl_client *, char **);
void		 control_show_message(struct ctl_client *, char **);
void		 control_queue_act(struct ctl_client *, char **);
void		 control_queue_item(struct msg *);
void		 control_queue_end(struct msg *);
void		 control_queue_message(struct msg *);
void		 control_queue_rcpt(struct msg *);
void		 control_queue_event(struct msg *);
void		 control_queue_result(struct msg *);
/* The next destination's TLS policy, or the end of show message. */
void		 control_queue_tls_next(struct ctl_client *);

/* control_lookup.c: lookup ADDRESS, explained */
void		 control_lookup(struct ctl_client *, char **);
void		 control_lookup_result(struct msg *);
void		 control_lookup_tls_result(struct msg *);

/* control_import.c: import-info TABLE, for splitmxctl import */
void		 control_import_info(struct ctl_client *, char **);

/* control_check.c: check client IP, the DNS lists explained */
void		 control_check_client(struct ctl_client *, char **);
void		 control_check_client_result(struct msg *);

/* control_metrics.c: Prometheus text over HTTP, evhttp's server */
void		 control_metrics_listen(int fd);
void		 control_metrics_pause(int);

#endif
