/*
 * The optional metrics listener: the status counters in Prometheus
 * text format at GET /metrics, served by libevent's evhttp.
 */
#include <sys/types.h>

#include <errno.h>
#include <event.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"
#include "control.h"

static void	metrics_request(struct evhttp_request *, void *);
static void	metrics_any(struct evhttp_request *, void *);
static void	metrics_name(const char *, char *, size_t);
static void	metrics_accept_error(struct evconnlistener *, void *);

static struct evhttp		*http;
static struct evconnlistener	*listener;	/* evhttp's, on http_fd */
static int			 http_fd = -1;
static int			 paused;	/* out of descriptors */

void
control_metrics_listen(int fd)
{
	struct evhttp_bound_socket	*bound;

	if (fd == http_fd)
		return;
	if (http != NULL) {
		listener = NULL;
		evhttp_free(http);
		http = NULL;
		http_fd = -1;
	}
	if (fd == -1)
		return;
	if ((http = evhttp_new(env->evbase)) == NULL)
		fatalx("evhttp_new");
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_timeout(http, 10);
	evhttp_set_max_headers_size(http, 8192);
	evhttp_set_max_body_size(http, 0);
	if (evhttp_set_cb(http, "/metrics", metrics_request, NULL) != 0)
		fatalx("evhttp_set_cb");
	evhttp_set_gencb(http, metrics_any, NULL);
	if ((bound = evhttp_accept_socket_with_handle(http, fd)) == NULL)
		fatalx("evhttp_accept_socket");
	listener = evhttp_bound_socket_get_listener(bound);
	evconnlistener_set_error_cb(listener, metrics_accept_error);
	if (paused)
		evconnlistener_disable(listener);
	http_fd = fd;
}

/* control_starved(): no accepting on any socket for a moment. */
void
control_metrics_pause(int p)
{
	if (listener != NULL && p != paused) {
		if (p)
			evconnlistener_disable(listener);
		else
			evconnlistener_enable(listener);
	}
	paused = p;
}

/*
 * evhttp sets no error callback of its own: without this one, a listener
 * out of descriptors would log and try again at once, for ever.
 */
static void
metrics_accept_error(struct evconnlistener *lev, void *arg)
{
	static struct control_warn	 w;
	int				 err = EVUTIL_SOCKET_ERROR();

	(void)lev;
	(void)arg;
	if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
	    err == ENOMEM)
		control_starved("metrics", err);
	else
		control_warn(&w, "metrics accept: %s", strerror(err));
}

/* "messages.accepted" -> "splitmx_messages_accepted" */
static void
metrics_name(const char *key, char *buf, size_t len)
{
	size_t	 i;

	(void)snprintf(buf, len, "splitmx_%s", key);
	for (i = 0; buf[i]; i++)
		if (!((buf[i] >= 'a' && buf[i] <= 'z') ||
		    (buf[i] >= '0' && buf[i] <= '9')))
			buf[i] = '_';
}

static void
metrics_request(struct evhttp_request *req, void *arg)
{
	struct evbuffer	*body;
	const char	*key, *sfx;
	char		 name[96];
	size_t		 len;
	int64_t		 v;
	int		 i, gauge;

	(void)arg;
	if ((body = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	evbuffer_add_printf(body, "# HELP splitmx_uptime_seconds Seconds "
	    "since splitmxd started.\n# TYPE splitmx_uptime_seconds gauge\n"
	    "splitmx_uptime_seconds %lld\n",
	    (long long)(time(NULL) - env->started));
	evbuffer_add_printf(body, "# HELP splitmx_config_generation "
	    "Generation of the configuration in force.\n"
	    "# TYPE splitmx_config_generation gauge\n"
	    "splitmx_config_generation %u\n", env->conf->generation);
	for (i = 0; i < control_counters_n(); i++) {
		key = control_counters_at(i, &v, &gauge);
		metrics_name(key, name, sizeof(name));
		/* Counters end in _total, once ("sessions.total" too). */
		len = strlen(name);
		sfx = gauge || (len > 6 && strcmp(name + len - 6,
		    "_total") == 0) ? "" : "_total";
		evbuffer_add_printf(body, "# HELP %s%s splitmx %s.\n"
		    "# TYPE %s%s %s\n%s%s %lld\n",
		    name, sfx, key, name, sfx, gauge ? "gauge" : "counter",
		    name, sfx, (long long)v);
	}
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, HTTP_OK, "OK", body);
	evbuffer_free(body);
}

static void
metrics_any(struct evhttp_request *req, void *arg)
{
	(void)arg;
	evhttp_send_error(req, HTTP_NOTFOUND, "only /metrics is served here");
}
