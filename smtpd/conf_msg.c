/*
 * Shipping a configuration from the parent to a child over the message
 * library, field by field, and building it again on the other side.
 * Startup and reload use the same path.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmx.h"

static int	conf_sendmsg(struct msgchan *, struct msg *);
static int	conf_send_global(struct msgchan *, const struct smx_conf *);
static int	conf_send_pki(struct msgchan *, const struct smx_pki *, int);
static int	conf_send_listener(struct msgchan *,
		    const struct smx_listener *, int);
static int	conf_send_trusted(struct msgchan *, const struct smx_net *);
static int	conf_send_table(struct msgchan *, const struct smx_table *,
		    int);
static int	conf_send_domain(struct msgchan *, const struct smx_domain *);
static int	conf_send_sockets(struct msgchan *, const struct smx_conf *);
static int	conf_send_policy(struct msgchan *, const struct smx_conf *);
static int	conf_send_outbound_tls(struct msgchan *,
		    const struct smx_conf *, int);
static int	conf_send_milter(struct msgchan *, const struct smx_milter *);
static void	conf_add_host(struct msg *, const struct smx_host *);
static int	conf_get_host(struct msg *, struct smx_host *);
static void	conf_add_net(struct msg *, const struct smx_net *);
static int	conf_recv_global(struct msg *, struct smx_conf *);
static int	conf_recv_pki(struct msg *, struct smx_conf *);
static int	conf_recv_listener(struct msg *, struct smx_conf *);
static int	conf_recv_trusted(struct msg *, struct smx_conf *);
static int	conf_recv_table(struct msg *, struct smx_conf *);
static int	conf_recv_domain(struct msg *, struct smx_conf *);
static int	conf_recv_socket(struct msg *, struct smx_conf *);
static int	conf_recv_policy(struct msg *, struct smx_conf *);
static int	conf_recv_outbound_tls(struct msg *, struct smx_conf *);
static int	conf_read_fd(int, uint8_t **, size_t *);
static int	conf_recv_milter(struct msg *, struct smx_conf *);
static int	conf_get_net(struct msg *, struct smx_netlist *);
static int	conf_get_blob(struct msg *, uint8_t **, size_t *);

/*
 * Send the whole configuration, one message per item, tailored to what
 * the process table says proc is sent (F_PROC_*): key material only to
 * the TLS server, listeners to smtp, directories to lookup, the control
 * sockets to control.
 */
int
conf_send(struct msgchan *ch, const struct smx_conf *c, int proc)
{
	struct msg		 m;
	struct smx_pki		*pki;
	struct smx_listener	*l;
	struct smx_net		*n;
	struct smx_table	*t;
	struct smx_domain	*d;
	struct smx_milter	*mi;
	int			 flags = proc_ident(proc)->flags;

	msg_init(&m, IMSG_CONF_RESET, 0);
	msg_add_u32(&m, c->generation);
	if (conf_sendmsg(ch, &m) == -1 || conf_send_global(ch, c) == -1)
		return -1;
	TAILQ_FOREACH(pki, &c->pkis, entry)
		if (conf_send_pki(ch, pki, flags) == -1)
			return -1;
	TAILQ_FOREACH(mi, &c->milters, entry)
		if (conf_send_milter(ch, mi) == -1)
			return -1;
	TAILQ_FOREACH(l, &c->listeners, entry)
		if (conf_send_listener(ch, l, flags) == -1)
			return -1;
	TAILQ_FOREACH(n, &c->trusted, entry)
		if (conf_send_trusted(ch, n) == -1)
			return -1;
	TAILQ_FOREACH(t, &c->tables, entry)
		if (conf_send_table(ch, t, flags) == -1)
			return -1;
	TAILQ_FOREACH(d, &c->domains, entry)
		if (conf_send_domain(ch, d) == -1)
			return -1;
	if (conf_send_policy(ch, c) == -1)
		return -1;
	if ((flags & F_PROC_SOCKETS) && conf_send_sockets(ch, c) == -1)
		return -1;
	if (conf_send_outbound_tls(ch, c, flags) == -1)
		return -1;
	msg_init(&m, IMSG_CONF_DONE, 0);
	return conf_sendmsg(ch, &m);
}

static int
conf_sendmsg(struct msgchan *ch, struct msg *m)
{
	if (m->error) {
		log_warnx("configuration item %s too large",
		    imsg_name(m->type));
		msg_clear(m);
		return -1;
	}
	return msgchan_send(ch, m);
}

static void
conf_add_host(struct msg *m, const struct smx_host *h)
{
	msg_add_str(m, h->name);
	msg_add_u16(m, h->port);
	msg_add_u32(m, (uint32_t)h->flags);
	msg_add_u32(m, (uint32_t)h->tls);
	msg_add_u32(m, (uint32_t)h->set);
}

static int
conf_get_host(struct msg *m, struct smx_host *h)
{
	uint32_t	 flags, tls, set;

	if (msg_get_str(m, h->name, sizeof(h->name)) == -1 ||
	    msg_get_u16(m, &h->port) == -1 ||
	    msg_get_u32(m, &flags) == -1 ||
	    msg_get_u32(m, &tls) == -1 ||
	    msg_get_u32(m, &set) == -1 || tls >= TLSP_COUNT)
		return -1;
	h->flags = (int)flags;
	h->tls = (enum smx_tls)tls;
	h->set = (int)set;
	return 0;
}

static void
conf_add_net(struct msg *m, const struct smx_net *n)
{
	msg_add_sockaddr(m, (const struct sockaddr *)&n->ss,
	    n->ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6));
	msg_add_u32(m, (uint32_t)n->prefixlen);
}

static int
conf_get_net(struct msg *m, struct smx_netlist *list)
{
	struct smx_net	*n;
	socklen_t	 len;
	uint32_t	 plen;

	if ((n = calloc(1, sizeof(*n))) == NULL)
		fatal("calloc");
	if (msg_get_sockaddr(m, &n->ss, &len) == -1 ||
	    msg_get_u32(m, &plen) == -1 || plen > 128) {
		free(n);
		return -1;
	}
	n->prefixlen = (int)plen;
	TAILQ_INSERT_TAIL(list, n, entry);
	return 0;
}

/*
 * The senders, one per item, in the order of conf_recv_*() below which
 * read them back field by field.
 */
static int
conf_send_global(struct msgchan *ch, const struct smx_conf *c)
{
	struct msg	 m;

	msg_init(&m, IMSG_CONF_GLOBAL, 0);
	msg_add_str(&m, c->file);
	msg_add_i64(&m, c->loaded);
	msg_add_str(&m, c->hostname);
	msg_add_str(&m, c->user);
	msg_add_str(&m, c->queue_dir);
	msg_add_str(&m, c->control_sock);
	msg_add_str(&m, c->control_group);
	msg_add_str(&m, c->admin_group);
	msg_add_str(&m, c->status_sock);
	msg_add_str(&m, c->status_group);
	msg_add_i64(&m, c->admin_gid);
	msg_add_str(&m, c->resolver);
	msg_add_u32(&m, (uint32_t)c->metrics);
	msg_add_u16(&m, c->metrics_port);
	if (c->metrics)
		msg_add_sockaddr(&m, (const struct sockaddr *)&c->metrics_ss,
		    c->metrics_sslen);
	msg_add_u64(&m, c->max_message_size);
	msg_add_u32(&m, c->max_recipients);
	msg_add_u32(&m, c->max_sessions);
	msg_add_u32(&m, c->max_sessions_per_ip);
	msg_add_u32(&m, c->max_errors);
	msg_add_i64(&m, c->timeout_command);
	msg_add_i64(&m, c->timeout_data);
	msg_add_u64(&m, c->min_data_rate);
	conf_add_host(&m, &c->outbound);
	msg_add_i64(&m, c->retry_first);
	msg_add_i64(&m, c->retry_cap);
	msg_add_i64(&m, c->expire);
	msg_add_i64(&m, c->warn_after);
	return conf_sendmsg(ch, &m);
}

static int
conf_send_pki(struct msgchan *ch, const struct smx_pki *pki, int flags)
{
	struct msg	 m;

	msg_init(&m, IMSG_CONF_PKI, 0);
	msg_add_str(&m, pki->name);
	msg_add_str(&m, pki->cert_file);
	msg_add_str(&m, pki->key_file);
	if (flags & F_PROC_PKI_KEYS) {
		msg_add_data(&m, pki->cert, pki->cert_len);
		msg_add_data(&m, pki->key, pki->key_len);
	} else {
		msg_add_data(&m, NULL, 0);
		msg_add_data(&m, NULL, 0);
	}
	return conf_sendmsg(ch, &m);
}

static int
conf_send_listener(struct msgchan *ch, const struct smx_listener *l,
    int flags)
{
	struct msg	 m;
	uint32_t	 i;
	int		 fd;

	msg_init(&m, IMSG_CONF_LISTENER, 0);
	msg_add_sockaddr(&m, (const struct sockaddr *)&l->ss, l->sslen);
	msg_add_u16(&m, l->port);
	msg_add_u32(&m, (uint32_t)l->flags);
	msg_add_str(&m, l->pki);
	msg_add_u32(&m, l->nmilters);
	for (i = 0; i < l->nmilters; i++)
		msg_add_str(&m, l->milters[i]);
	if ((flags & F_PROC_LISTENERS) && l->fd != -1) {
		if ((fd = dup(l->fd)) == -1) {
			log_warn("dup listener");
			msg_clear(&m);
			return -1;
		}
		msg_set_fd(&m, fd);
	}
	return conf_sendmsg(ch, &m);
}

static int
conf_send_trusted(struct msgchan *ch, const struct smx_net *n)
{
	struct msg	 m;

	msg_init(&m, IMSG_CONF_TRUSTED, 0);
	conf_add_net(&m, n);
	return conf_sendmsg(ch, &m);
}

static int
conf_send_table(struct msgchan *ch, const struct smx_table *t, int flags)
{
	struct msg	 m;
	int		 fd;

	msg_init(&m, IMSG_CONF_TABLE, 0);
	msg_add_str(&m, t->name);
	msg_add_u32(&m, (uint32_t)t->type);
	msg_add_str(&m, t->path);
	msg_add_str(&m, t->url);
	msg_add_str(&m, t->base);
	msg_add_str(&m, t->binddn);
	msg_add_str(&m, (flags & F_PROC_TABLES) ? t->bindpw : "");
	msg_add_str(&m, t->filter);
	msg_add_str(&m, t->target_attr);
	msg_add_i64(&m, t->cache);
	msg_add_i64(&m, t->timeout);
	msg_add_i64(&m, t->failback);
	msg_add_u32(&m, (uint32_t)t->starttls);
	msg_add_str(&m, t->ca);
	/* The lookup process reads file tables through the parent's fd. */
	if ((flags & F_PROC_TABLES) && t->type == TABLE_FILE) {
		if (t->fd == -1 || (fd = dup(t->fd)) == -1) {
			log_warn("table %s: no descriptor", t->name);
			msg_clear(&m);
			return -1;
		}
		msg_set_fd(&m, fd);
	}
	return conf_sendmsg(ch, &m);
}

static int
conf_send_domain(struct msgchan *ch, const struct smx_domain *d)
{
	struct msg	 m;
	struct smx_net	*n;
	uint32_t	 count = 0;

	msg_init(&m, IMSG_CONF_DOMAIN, 0);
	msg_add_str(&m, d->name);
	msg_add_u32(&m, (uint32_t)d->type);
	msg_add_str(&m, d->directory);
	conf_add_host(&m, &d->local);
	conf_add_host(&m, &d->forward);
	msg_add_u32(&m, (uint32_t)d->unknown);
	TAILQ_FOREACH(n, &d->forward_from, entry)
		count++;
	msg_add_u32(&m, count);
	TAILQ_FOREACH(n, &d->forward_from, entry)
		conf_add_net(&m, n);
	return conf_sendmsg(ch, &m);
}

/* The connection policy: see "client protocol" in splitmx.h. */
static int
conf_send_policy(struct msgchan *ch, const struct smx_conf *c)
{
	struct msg		 m;
	const struct smx_dnsbl	*bl;
	uint32_t		 n = 0;

	msg_init(&m, IMSG_CONF_POLICY, 0);
	msg_add_u32(&m, c->dnsbl_threshold);
	msg_add_u32(&m, c->connection_rate);
	TAILQ_FOREACH(bl, &c->dnsbls, entry)
		n++;
	msg_add_u32(&m, n);
	TAILQ_FOREACH(bl, &c->dnsbls, entry) {
		msg_add_str(&m, bl->zone);
		msg_add_u32(&m, (uint32_t)bl->allow);
		msg_add_u32(&m, bl->weight);
	}
	return conf_sendmsg(ch, &m);
}

static int
conf_send_milter(struct msgchan *ch, const struct smx_milter *mi)
{
	struct msg	 m;

	msg_init(&m, IMSG_CONF_MILTER, 0);
	msg_add_str(&m, mi->name);
	msg_add_str(&m, mi->address);
	msg_add_u32(&m, (uint32_t)mi->on_error);
	msg_add_i64(&m, mi->timeout);
	return conf_sendmsg(ch, &m);
}

/* One IMSG_CONF_SOCKET per socket the parent bound for control. */
static int
conf_send_sockets(struct msgchan *ch, const struct smx_conf *c)
{
	struct msg	 m;
	const int	 socks[] = {
		[SOCK_CONTROL] = c->control_fd,
		[SOCK_STATUS] = c->status_fd,
		[SOCK_METRICS] = c->metrics_fd,
	};
	int		 fd;
	size_t		 i;

	for (i = 0; i < sizeof(socks) / sizeof(socks[0]); i++) {
		if (socks[i] == -1)
			continue;
		if ((fd = dup(socks[i])) == -1) {
			log_warn("dup control socket");
			return -1;
		}
		msg_init(&m, IMSG_CONF_SOCKET, 0);
		msg_add_u32(&m, (uint32_t)i);
		msg_set_fd(&m, fd);
		if (conf_sendmsg(ch, &m) == -1)
			return -1;
	}
	return 0;
}

/*
 * The outbound TLS settings; the trust anchors' text and the CA file's
 * descriptor only to the processes that authenticate servers.
 */
static int
conf_send_outbound_tls(struct msgchan *ch, const struct smx_conf *c,
    int flags)
{
	struct msg	 m;
	int		 trust = flags & F_PROC_TLS_TRUST, fd;

	msg_init(&m, IMSG_CONF_OUTBOUND_TLS, 0);
	msg_add_u32(&m, (uint32_t)c->mta_sts);
	msg_add_str(&m, c->trust_anchor);
	msg_add_str(&m, trust && c->anchors != NULL ? c->anchors : "");
	msg_add_str(&m, c->ca_file);
	msg_add_u32(&m, (uint32_t)c->ca_set);
	if (trust && c->ca_fd != -1) {
		if ((fd = dup(c->ca_fd)) == -1) {
			log_warn("dup ca");
			msg_clear(&m);
			return -1;
		}
		msg_set_fd(&m, fd);
	}
	return conf_sendmsg(ch, &m);
}

static int
conf_get_blob(struct msg *m, uint8_t **p, size_t *len)
{
	const void	*d;

	if (msg_get_datap(m, &d, len) == -1)
		return -1;
	*p = NULL;
	if (*len == 0)
		return 0;
	if ((*p = malloc(*len)) == NULL)
		fatal("malloc");
	memcpy(*p, d, *len);
	return 0;
}

static int
conf_recv_global(struct msg *m, struct smx_conf *c)
{
	uint32_t	 metrics;
	uint64_t	 size, rate;
	int64_t		 loaded, tc, td, rf, rc, ex, wa;

	if (msg_get_str(m, c->file, sizeof(c->file)) == -1 ||
	    msg_get_i64(m, &loaded) == -1 ||
	    msg_get_str(m, c->hostname, sizeof(c->hostname)) == -1 ||
	    msg_get_str(m, c->user, sizeof(c->user)) == -1 ||
	    msg_get_str(m, c->queue_dir, sizeof(c->queue_dir)) == -1 ||
	    msg_get_str(m, c->control_sock, sizeof(c->control_sock)) == -1 ||
	    msg_get_str(m, c->control_group, sizeof(c->control_group)) == -1 ||
	    msg_get_str(m, c->admin_group, sizeof(c->admin_group)) == -1 ||
	    msg_get_str(m, c->status_sock, sizeof(c->status_sock)) == -1 ||
	    msg_get_str(m, c->status_group, sizeof(c->status_group)) == -1 ||
	    msg_get_i64(m, &c->admin_gid) == -1 ||
	    msg_get_str(m, c->resolver, sizeof(c->resolver)) == -1 ||
	    msg_get_u32(m, &metrics) == -1 ||
	    msg_get_u16(m, &c->metrics_port) == -1)
		return -1;
	c->metrics = (int)metrics;
	if (c->metrics && msg_get_sockaddr(m, &c->metrics_ss,
	    &c->metrics_sslen) == -1)
		return -1;
	if (msg_get_u64(m, &size) == -1 ||
	    msg_get_u32(m, &c->max_recipients) == -1 ||
	    msg_get_u32(m, &c->max_sessions) == -1 ||
	    msg_get_u32(m, &c->max_sessions_per_ip) == -1 ||
	    msg_get_u32(m, &c->max_errors) == -1 ||
	    msg_get_i64(m, &tc) == -1 ||
	    msg_get_i64(m, &td) == -1 ||
	    msg_get_u64(m, &rate) == -1 ||
	    conf_get_host(m, &c->outbound) == -1 ||
	    msg_get_i64(m, &rf) == -1 ||
	    msg_get_i64(m, &rc) == -1 ||
	    msg_get_i64(m, &ex) == -1 ||
	    msg_get_i64(m, &wa) == -1 ||
	    msg_end(m) == -1)
		return -1;
	c->loaded = (time_t)loaded;
	c->max_message_size = (size_t)size;
	c->timeout_command = (time_t)tc;
	c->timeout_data = (time_t)td;
	c->min_data_rate = (size_t)rate;
	c->retry_first = (time_t)rf;
	c->retry_cap = (time_t)rc;
	c->expire = (time_t)ex;
	c->warn_after = (time_t)wa;
	return 0;
}

static int
conf_recv_pki(struct msg *m, struct smx_conf *c)
{
	struct smx_pki	*pki;

	if ((pki = calloc(1, sizeof(*pki))) == NULL)
		fatal("calloc");
	TAILQ_INSERT_TAIL(&c->pkis, pki, entry);
	if (msg_get_str(m, pki->name, sizeof(pki->name)) == -1 ||
	    msg_get_str(m, pki->cert_file, sizeof(pki->cert_file)) == -1 ||
	    msg_get_str(m, pki->key_file, sizeof(pki->key_file)) == -1 ||
	    conf_get_blob(m, &pki->cert, &pki->cert_len) == -1 ||
	    conf_get_blob(m, &pki->key, &pki->key_len) == -1 ||
	    msg_end(m) == -1)
		return -1;
	return 0;
}

static int
conf_recv_listener(struct msg *m, struct smx_conf *c)
{
	struct smx_listener	*l;
	uint32_t		 flags, i;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		fatal("calloc");
	l->fd = msg_take_fd(m);
	TAILQ_INSERT_TAIL(&c->listeners, l, entry);
	if (msg_get_sockaddr(m, &l->ss, &l->sslen) == -1 ||
	    msg_get_u16(m, &l->port) == -1 ||
	    msg_get_u32(m, &flags) == -1 ||
	    msg_get_str(m, l->pki, sizeof(l->pki)) == -1 ||
	    msg_get_u32(m, &l->nmilters) == -1 ||
	    l->nmilters > SMX_LISTEN_MILTERS)
		return -1;
	for (i = 0; i < l->nmilters; i++)
		if (msg_get_str(m, l->milters[i], sizeof(l->milters[i])) == -1)
			return -1;
	if (msg_end(m) == -1)
		return -1;
	l->flags = (int)flags;
	return 0;
}

static int
conf_recv_trusted(struct msg *m, struct smx_conf *c)
{
	if (conf_get_net(m, &c->trusted) == -1 || msg_end(m) == -1)
		return -1;
	return 0;
}

static int
conf_recv_table(struct msg *m, struct smx_conf *c)
{
	struct smx_table	*t;
	uint32_t		 type, starttls;
	int64_t			 cache, timeout, failback;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		fatal("calloc");
	t->fd = msg_take_fd(m);
	TAILQ_INSERT_TAIL(&c->tables, t, entry);
	if (msg_get_str(m, t->name, sizeof(t->name)) == -1 ||
	    msg_get_u32(m, &type) == -1 || type >= TABLE_COUNT ||
	    msg_get_str(m, t->path, sizeof(t->path)) == -1 ||
	    msg_get_str(m, t->url, sizeof(t->url)) == -1 ||
	    msg_get_str(m, t->base, sizeof(t->base)) == -1 ||
	    msg_get_str(m, t->binddn, sizeof(t->binddn)) == -1 ||
	    msg_get_str(m, t->bindpw, sizeof(t->bindpw)) == -1 ||
	    msg_get_str(m, t->filter, sizeof(t->filter)) == -1 ||
	    msg_get_str(m, t->target_attr, sizeof(t->target_attr)) == -1 ||
	    msg_get_i64(m, &cache) == -1 ||
	    msg_get_i64(m, &timeout) == -1 ||
	    msg_get_i64(m, &failback) == -1 ||
	    msg_get_u32(m, &starttls) == -1 ||
	    msg_get_str(m, t->ca, sizeof(t->ca)) == -1 ||
	    msg_end(m) == -1)
		return -1;
	t->type = (enum smx_table_type)type;
	t->starttls = starttls != 0;
	t->cache = (time_t)cache;
	t->timeout = (time_t)timeout;
	t->failback = (time_t)failback;
	return 0;
}

static int
conf_recv_domain(struct msg *m, struct smx_conf *c)
{
	struct smx_domain	*d;
	uint32_t		 type, unknown, count, i;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		fatal("calloc");
	TAILQ_INIT(&d->forward_from);
	TAILQ_INSERT_TAIL(&c->domains, d, entry);
	if (msg_get_str(m, d->name, sizeof(d->name)) == -1 ||
	    msg_get_u32(m, &type) == -1 || type >= DOMAIN_TYPE_COUNT ||
	    msg_get_str(m, d->directory, sizeof(d->directory)) == -1 ||
	    conf_get_host(m, &d->local) == -1 ||
	    conf_get_host(m, &d->forward) == -1 ||
	    msg_get_u32(m, &unknown) == -1 || unknown >= UNKNOWN_COUNT ||
	    msg_get_u32(m, &count) == -1 || count > 1024)
		return -1;
	d->type = (enum smx_domain_type)type;
	d->unknown = (enum smx_unknown)unknown;
	for (i = 0; i < count; i++)
		if (conf_get_net(m, &d->forward_from) == -1)
			return -1;
	return msg_end(m);
}

static int
conf_recv_milter(struct msg *m, struct smx_conf *c)
{
	struct smx_milter	*mi;
	uint32_t		 on_error;
	int64_t			 timeout;

	if ((mi = calloc(1, sizeof(*mi))) == NULL)
		fatal("calloc");
	TAILQ_INSERT_TAIL(&c->milters, mi, entry);
	if (msg_get_str(m, mi->name, sizeof(mi->name)) == -1 ||
	    msg_get_str(m, mi->address, sizeof(mi->address)) == -1 ||
	    msg_get_u32(m, &on_error) == -1 ||
	    on_error >= MILTER_ON_ERROR_COUNT ||
	    msg_get_i64(m, &timeout) == -1 || timeout < 1 ||
	    msg_end(m) == -1)
		return -1;
	mi->on_error = (enum smx_milter_error)on_error;
	mi->timeout = (time_t)timeout;
	return 0;
}

static int
conf_recv_socket(struct msg *m, struct smx_conf *c)
{
	uint32_t	 which;
	int		 fd;

	if (msg_get_u32(m, &which) == -1 || msg_end(m) == -1 ||
	    (fd = msg_take_fd(m)) == -1)
		return -1;
	switch (which) {
	case SOCK_CONTROL:
		c->control_fd = fd;
		break;
	case SOCK_STATUS:
		c->status_fd = fd;
		break;
	case SOCK_METRICS:
		c->metrics_fd = fd;
		break;
	default:
		close(fd);
		return -1;
	}
	return 0;
}

static int
conf_recv_policy(struct msg *m, struct smx_conf *c)
{
	struct smx_dnsbl	*bl;
	uint32_t		 n, i, allow;

	if (msg_get_u32(m, &c->dnsbl_threshold) == -1 ||
	    msg_get_u32(m, &c->connection_rate) == -1 ||
	    msg_get_u32(m, &n) == -1 || n > DNSBL_MAX)
		return -1;
	for (i = 0; i < n; i++) {
		if ((bl = calloc(1, sizeof(*bl))) == NULL)
			fatal("calloc");
		TAILQ_INSERT_TAIL(&c->dnsbls, bl, entry);
		if (msg_get_str(m, bl->zone, sizeof(bl->zone)) == -1 ||
		    msg_get_u32(m, &allow) == -1 || allow > 1 ||
		    msg_get_u32(m, &bl->weight) == -1)
			return -1;
		bl->allow = (int)allow;
	}
	return msg_end(m);
}

/*
 * The CA file, from the parent's descriptor (shared with a sibling: read
 * by offset, never moved).  Bounded: a CA store is a few hundred KB.
 */
#define CONF_CA_MAX	(16 * 1024 * 1024)
static int
conf_read_fd(int fd, uint8_t **out, size_t *outlen)
{
	uint8_t	*buf = NULL, *nb;
	size_t	 len = 0, cap = 0;
	ssize_t	 n;

	for (;;) {
		if (len == cap) {
			if (cap >= CONF_CA_MAX)
				goto fail;
			cap = cap ? cap * 2 : 256 * 1024;
			if ((nb = realloc(buf, cap + 1)) == NULL)
				fatal("realloc");
			buf = nb;
		}
		if ((n = pread(fd, buf + len, cap - len, (off_t)len)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
 fail:
	free(buf);
	return -1;
}

static int
conf_recv_outbound_tls(struct msg *m, struct smx_conf *c)
{
	uint32_t	 sts, set;
	const char	*anchors;
	int		 fd, r;

	fd = msg_take_fd(m);
	if (msg_get_u32(m, &sts) == -1 ||
	    msg_get_str(m, c->trust_anchor, sizeof(c->trust_anchor)) == -1 ||
	    msg_get_strp(m, &anchors) == -1 || anchors == NULL ||
	    msg_get_str(m, c->ca_file, sizeof(c->ca_file)) == -1 ||
	    msg_get_u32(m, &set) == -1 || msg_end(m) == -1) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	c->mta_sts = sts != 0;
	c->ca_set = set != 0;
	free(c->anchors);
	c->anchors = *anchors != '\0' ? str_dup(anchors) : NULL;
	free(c->ca);
	c->ca = NULL;
	c->ca_len = 0;
	if (fd == -1)
		return 0;
	r = conf_read_fd(fd, &c->ca, &c->ca_len);
	if (r == -1)
		log_warn("cannot read the CA file %s", c->ca_file);
	close(fd);
	return 0;
}

/*
 * Feed one IMSG_CONF_* message: 0 item taken, 1 the configuration is
 * complete (DONE), -1 malformed or out of order.
 */
int
conf_recv(struct msg *m, struct smx_conf **building)
{
	struct smx_conf	*c = *building;
	uint32_t	 gen;

	if (m->type == IMSG_CONF_RESET) {
		if (msg_get_u32(m, &gen) == -1 || msg_end(m) == -1)
			return -1;
		conf_free(c);
		c = *building = conf_new();
		c->generation = gen;
		return 0;
	}
	if (c == NULL)
		return -1;
	switch (m->type) {
	case IMSG_CONF_GLOBAL:
		return conf_recv_global(m, c);
	case IMSG_CONF_PKI:
		return conf_recv_pki(m, c);
	case IMSG_CONF_LISTENER:
		return conf_recv_listener(m, c);
	case IMSG_CONF_TRUSTED:
		return conf_recv_trusted(m, c);
	case IMSG_CONF_TABLE:
		return conf_recv_table(m, c);
	case IMSG_CONF_DOMAIN:
		return conf_recv_domain(m, c);
	case IMSG_CONF_SOCKET:
		return conf_recv_socket(m, c);
	case IMSG_CONF_POLICY:
		return conf_recv_policy(m, c);
	case IMSG_CONF_OUTBOUND_TLS:
		return conf_recv_outbound_tls(m, c);
	case IMSG_CONF_MILTER:
		return conf_recv_milter(m, c);
	case IMSG_CONF_DONE:
		if (msg_end(m) == -1)
			return -1;
		return 1;
	}
	return -1;
}
