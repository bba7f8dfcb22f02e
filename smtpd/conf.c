/*
 * A configuration in memory: its defaults, its lookups, and its
 * printout in the language of splitmx.conf(5) (splitmxd -nv).
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "splitmx.h"

static void	 conf_free_nets(struct smx_netlist *);
static void	 print_str(FILE *, const char *);
static void	 print_name(FILE *, const char *);
static void	 print_host(FILE *, const char *, const struct smx_host *);
static void	 print_net(FILE *, const struct smx_net *);
static void	 print_table(FILE *, const struct smx_table *);
static void	 print_domain(FILE *, const struct smx_domain *);
static void	 print_dnsbls(FILE *, const struct smx_conf *);
static void	 print_milter(FILE *, const struct smx_milter *);
static void	 print_globals(FILE *, const struct smx_conf *);
static void	 print_limits(FILE *, const struct smx_conf *);
static void	 print_listeners(FILE *, const struct smx_conf *);
static void	 print_outbound(FILE *, const struct smx_conf *);
static void	 conf_host_tls_match(const struct smx_host *, const char *,
		    enum smx_tls *, int *);

struct smx_conf *
conf_new(void)
{
	struct smx_conf	*c;
	char		 host[SMX_HOSTSZ];

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	TAILQ_INIT(&c->pkis);
	TAILQ_INIT(&c->listeners);
	TAILQ_INIT(&c->trusted);
	TAILQ_INIT(&c->tables);
	TAILQ_INIT(&c->domains);
	TAILQ_INIT(&c->dnsbls);
	TAILQ_INIT(&c->milters);

	/* The host name as the system knows it; no DNS at this point. */
	memset(host, 0, sizeof(host));
	if (gethostname(host, sizeof(host) - 1) == -1 || host[0] == '\0' ||
	    host[0] == '.' || host[strlen(host) - 1] == '.' ||
	    !valid_domain(host))
		strlcpy(host, "localhost", sizeof(host));
	strlcpy(c->hostname, host, sizeof(c->hostname));
	strlcpy(c->user, SPLITMX_USER, sizeof(c->user));
	strlcpy(c->queue_dir, SPLITMX_QUEUE, sizeof(c->queue_dir));
	strlcpy(c->control_sock, SPLITMX_CONTROL, sizeof(c->control_sock));
	strlcpy(c->status_sock, SPLITMX_STATUS, sizeof(c->status_sock));
	c->admin_gid = -1;

	c->max_message_size = DEF_MESSAGE_SIZE;
	c->max_recipients = DEF_RECIPIENTS;
	c->max_sessions = DEF_SESSIONS;
	c->max_sessions_per_ip = DEF_SESSIONS_PER_IP;
	c->max_errors = DEF_ERRORS;
	c->timeout_command = DEF_TIMEOUT_COMMAND;
	c->timeout_data = DEF_TIMEOUT_DATA;
	c->min_data_rate = DEF_DATA_RATE;

	/* outbound via mx tls opportunistic, not configured explicitly */
	c->outbound.port = 25;
	c->outbound.flags = F_HOST_MX;
	c->outbound.tls = TLSP_OPPORTUNISTIC;
	c->retry_first = DEF_RETRY_FIRST;
	c->retry_cap = DEF_RETRY_CAP;
	c->expire = DEF_EXPIRE;
	c->warn_after = DEF_WARN_AFTER;

	c->dnsbl_threshold = DEF_DNSBL_THRESHOLD;
	c->connection_rate = DEF_CONNECTION_RATE;

	c->control_fd = c->status_fd = c->metrics_fd = -1;

	strlcpy(c->trust_anchor, DEF_TRUST_ANCHOR, sizeof(c->trust_anchor));
	strlcpy(c->ca_file, DEF_CA_FILE, sizeof(c->ca_file));
	c->mta_sts = 1;
	c->ca_fd = -1;
	return c;
}

static void
conf_free_nets(struct smx_netlist *l)
{
	struct smx_net	*n;

	while ((n = TAILQ_FIRST(l)) != NULL) {
		TAILQ_REMOVE(l, n, entry);
		free(n);
	}
}

/* Descriptors are the owner's business; key material is wiped. */
void
conf_free(struct smx_conf *c)
{
	struct smx_pki		*pki;
	struct smx_listener	*l;
	struct smx_table	*t;
	struct smx_domain	*d;
	struct smx_dnsbl	*bl;
	struct smx_milter	*mi;

	if (c == NULL)
		return;
	while ((pki = TAILQ_FIRST(&c->pkis)) != NULL) {
		TAILQ_REMOVE(&c->pkis, pki, entry);
		if (pki->key != NULL) {
			explicit_bzero(pki->key, pki->key_len);
			free(pki->key);
		}
		if (pki->cert != NULL) {
			explicit_bzero(pki->cert, pki->cert_len);
			free(pki->cert);
		}
		explicit_bzero(pki, sizeof(*pki));
		free(pki);
	}
	while ((l = TAILQ_FIRST(&c->listeners)) != NULL) {
		TAILQ_REMOVE(&c->listeners, l, entry);
		free(l);
	}
	conf_free_nets(&c->trusted);
	while ((t = TAILQ_FIRST(&c->tables)) != NULL) {
		TAILQ_REMOVE(&c->tables, t, entry);
		explicit_bzero(t->bindpw, sizeof(t->bindpw));
		free(t);
	}
	while ((d = TAILQ_FIRST(&c->domains)) != NULL) {
		TAILQ_REMOVE(&c->domains, d, entry);
		conf_free_nets(&d->forward_from);
		free(d);
	}
	while ((bl = TAILQ_FIRST(&c->dnsbls)) != NULL) {
		TAILQ_REMOVE(&c->dnsbls, bl, entry);
		free(bl);
	}
	free(c->anchors);
	free(c->ca);
	while ((mi = TAILQ_FIRST(&c->milters)) != NULL) {
		TAILQ_REMOVE(&c->milters, mi, entry);
		free(mi);
	}
	free(c);
}

struct smx_pki *
conf_pki(const struct smx_conf *c, const char *name)
{
	struct smx_pki	*pki;

	TAILQ_FOREACH(pki, &c->pkis, entry)
		if (strcmp(pki->name, name) == 0)
			return pki;
	return NULL;
}

struct smx_table *
conf_table(const struct smx_conf *c, const char *name)
{
	struct smx_table	*t;

	TAILQ_FOREACH(t, &c->tables, entry)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

struct smx_milter *
conf_milter(const struct smx_conf *c, const char *name)
{
	struct smx_milter	*mi;

	TAILQ_FOREACH(mi, &c->milters, entry)
		if (strcmp(mi->name, name) == 0)
			return mi;
	return NULL;
}

const char *
milter_on_error_name(enum smx_milter_error e)
{
	switch (e) {
	case MILTER_ON_ERROR_ACCEPT:
		return "accept";
	case MILTER_ON_ERROR_REJECT:
		return "reject";
	case MILTER_ON_ERROR_TEMPFAIL:
	default:
		return "tempfail";
	}
}

/*
 * A milter's address.  Numeric addresses only: the filter process has
 * no resolver, and a name would change its meaning behind a reload.
 */
int
milter_address(const char *s, struct sockaddr_storage *ss, socklen_t *len,
    const char **errstr)
{
	struct sockaddr_un	*sun = (struct sockaddr_un *)ss;
	char			 buf[SMX_MILTER_ADDRSZ], *host, *port, *end;
	const char		*perr;
	long long		 p;

	memset(ss, 0, sizeof(*ss));
	if (strncmp(s, "unix:", 5) == 0) {
		s += 5;
		if (*s != '/') {
			*errstr = "unix: needs an absolute path";
			return -1;
		}
		if (strlcpy(sun->sun_path, s, sizeof(sun->sun_path)) >=
		    sizeof(sun->sun_path)) {
			*errstr = "unix: path too long for a socket";
			return -1;
		}
		sun->sun_family = AF_UNIX;
		*len = sizeof(*sun);
		return 0;
	}
	if (strncmp(s, "inet:", 5) != 0) {
		*errstr = "the address must be \"inet:ADDRESS:PORT\" or "
		    "\"unix:/PATH\"";
		return -1;
	}
	if (strlcpy(buf, s + 5, sizeof(buf)) >= sizeof(buf) ||
	    (port = strrchr(buf, ':')) == NULL) {
		*errstr = "inet: needs ADDRESS:PORT";
		return -1;
	}
	*port++ = '\0';
	host = buf;
	if (*host == '[') {
		host++;
		if ((end = strchr(host, ']')) == NULL || end[1] != '\0') {
			*errstr = "inet: missing ] after an IPv6 address";
			return -1;
		}
		*end = '\0';
	}
	p = strtonum(port, 1, 65535, &perr);
	if (!isdigit((unsigned char)*port) || perr != NULL) {
		*errstr = "inet: the port must be a number from 1 to 65535";
		return -1;
	}
	if (parse_sockaddr(host, (uint16_t)p, ss, len) == -1 ||
	    (ss->ss_family == AF_INET6 && host == buf)) {
		*errstr = "inet: the address must be a numeric IPv4 address "
		    "or an IPv6 address in brackets";
		return -1;
	}
	return 0;
}

/*
 * The domain of a recipient: an exact name wins, then the longest
 * ".suffix" that matches (".example.com" is example.com and every name
 * under it).
 */
struct smx_domain *
conf_domain(const struct smx_conf *c, const char *name)
{
	struct smx_domain	*d, *best = NULL;
	size_t			 len, dlen, bestlen = 0;

	len = strlen(name);
	/* "example.com." is example.com */
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0)
		return NULL;
	TAILQ_FOREACH(d, &c->domains, entry) {
		dlen = strlen(d->name);
		if (d->name[0] != '.') {
			if (dlen == len && strncasecmp(d->name, name, len) == 0)
				return d;
			continue;
		}
		/* ".example.com": "example.com" or "x.example.com" */
		if ((len == dlen - 1 &&
		    strncasecmp(d->name + 1, name, len) == 0) ||
		    (len > dlen &&
		    strncasecmp(d->name, name + len - dlen, dlen) == 0)) {
			if (best == NULL || dlen > bestlen) {
				best = d;
				bestlen = dlen;
			}
		}
	}
	return best;
}

/*
 * The lookup process' report on a reload it accepted: each directory
 * file with the entries its load counted (t->entries).
 */
void
conf_tables_report(const struct smx_conf *c, char *buf, size_t len)
{
	struct smx_table	*t;
	size_t			 off = 0;
	int			 n;

	if (len == 0)
		return;
	buf[0] = '\0';
	TAILQ_FOREACH(t, &c->tables, entry) {
		if (t->type != TABLE_FILE)
			continue;
		n = snprintf(buf + off, len - off, "directory %s: %zu entries "
		    "from %s\n", t->name, t->entries, t->path);
		if (n < 0 || (size_t)n >= len - off) {
			buf[off] = '\0';	/* whole lines only */
			return;
		}
		off += (size_t)n;
	}
}


/* A quoted string the lexer reads back the same. */
static void
print_str(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', fp);
		fputc(*s, fp);
	}
	fputc('"', fp);
}

/* A pki or table name: bare, unless the lexer would take it for a keyword. */
static void
print_name(FILE *fp, const char *s)
{
	if (parse_keyword(s))
		print_str(fp, s);
	else
		fputs(s, fp);
}

static void
print_host(FILE *fp, const char *what, const struct smx_host *h)
{
	char	 buf[SMX_HOSTSZ + 16];

	host_str(h, buf, sizeof(buf));
	fprintf(fp, "%s ", what);
	print_str(fp, buf);
	fprintf(fp, " tls %s\n", tls_policy_name(h->tls));
}

static void
print_net(FILE *fp, const struct smx_net *n)
{
	char	 buf[INET6_ADDRSTRLEN];

	sa_str((const struct sockaddr *)&n->ss, buf, sizeof(buf));
	fprintf(fp, " %s/%d", buf, n->prefixlen);
}

static void
print_table(FILE *fp, const struct smx_table *t)
{
	char	 buf[32];

	fprintf(fp, "table ");
	print_name(fp, t->name);
	if (t->type == TABLE_FILE) {
		fprintf(fp, " file ");
		print_str(fp, t->path);
		fputc('\n', fp);
		return;
	}
	fprintf(fp, " ldap {\n");
	fprintf(fp, "\turl ");
	print_str(fp, t->url);
	fprintf(fp, "\n\tbase ");
	print_str(fp, t->base);
	fputc('\n', fp);
	if (t->binddn[0] != '\0') {
		/* The password stays out of printouts and logs. */
		fprintf(fp, "\tbind ");
		print_str(fp, t->binddn);
		fprintf(fp, " password \"********\"\n");
	}
	fprintf(fp, "\tfilter ");
	print_str(fp, t->filter);
	fprintf(fp, "\n\ttarget-attribute ");
	print_str(fp, t->target_attr);
	duration_str(t->cache, buf, sizeof(buf));
	fprintf(fp, "\n\tcache %s\n", buf);
	duration_str(t->timeout, buf, sizeof(buf));
	fprintf(fp, "\ttimeout %s\n", buf);
	duration_str(t->failback, buf, sizeof(buf));
	fprintf(fp, "\tfailback %s\n", buf);
	if (t->starttls)
		fprintf(fp, "\ttls require\n");
	if (t->ca[0] != '\0') {
		fprintf(fp, "\tca ");
		print_str(fp, t->ca);
		fputc('\n', fp);
	}
	fprintf(fp, "}\n");
}

static void
print_domain(FILE *fp, const struct smx_domain *d)
{
	const struct smx_net	*n;
	const char		*type, *unknown;

	switch (d->type) {
	case DOMAIN_SHARED:
		type = "shared";
		break;
	case DOMAIN_RELAY:
		type = "relay";
		break;
	case DOMAIN_AUTHORITATIVE:
	default:
		type = "authoritative";
		break;
	}
	switch (d->unknown) {
	case UNKNOWN_BOUNCE:
		unknown = "bounce";
		break;
	case UNKNOWN_FORWARD:
		unknown = "forward";
		break;
	case UNKNOWN_REJECT:
	default:
		unknown = "reject";
		break;
	}
	fprintf(fp, "domain ");
	print_str(fp, d->name);
	fprintf(fp, " {\n\ttype %s\n", type);
	if (d->directory[0] != '\0') {
		fprintf(fp, "\tdirectory ");
		print_name(fp, d->directory);
		fputc('\n', fp);
	}
	if (d->local.set)
		print_host(fp, "\tlocal to", &d->local);
	if (d->forward.set)
		print_host(fp, "\tforward to", &d->forward);
	if (!TAILQ_EMPTY(&d->forward_from)) {
		fprintf(fp, "\tforward from");
		TAILQ_FOREACH(n, &d->forward_from, entry)
			print_net(fp, n);
		fputc('\n', fp);
	}
	fprintf(fp, "\tunknown %s\n}\n", unknown);
}

/* The connection policy: the lists in their order, then the threshold. */
static void
print_dnsbls(FILE *fp, const struct smx_conf *c)
{
	const struct smx_dnsbl	*bl;

	fputc('\n', fp);
	TAILQ_FOREACH(bl, &c->dnsbls, entry) {
		fprintf(fp, "%s ", bl->allow ? "dnswl" : "dnsbl");
		print_str(fp, bl->zone);
		fprintf(fp, " weight %u\n", bl->weight);
	}
	fprintf(fp, "dnsbl threshold %u\n", c->dnsbl_threshold);
}

static void
print_milter(FILE *fp, const struct smx_milter *mi)
{
	char	 buf[32];

	duration_str(mi->timeout, buf, sizeof(buf));
	fprintf(fp, "milter ");
	print_name(fp, mi->name);
	fputc(' ', fp);
	print_str(fp, mi->address);
	fprintf(fp, " on-error %s timeout %s\n",
	    milter_on_error_name(mi->on_error), buf);
}

/* The process-wide settings: names, the spool, the sockets. */
static void
print_globals(FILE *fp, const struct smx_conf *c)
{
	char	 buf[64];

	fprintf(fp, "hostname ");
	print_str(fp, c->hostname);
	fprintf(fp, "\nuser ");
	print_str(fp, c->user);
	fprintf(fp, "\nqueue ");
	print_str(fp, c->queue_dir);
	fprintf(fp, "\ncontrol socket ");
	print_str(fp, c->control_sock);
	if (c->control_group[0] != '\0') {
		fprintf(fp, " group ");
		print_str(fp, c->control_group);
	}
	fputc('\n', fp);
	if (c->admin_group[0] != '\0') {
		fprintf(fp, "control admin group ");
		print_str(fp, c->admin_group);
		fputc('\n', fp);
	}
	fprintf(fp, "status socket ");
	print_str(fp, c->status_sock);
	if (c->status_group[0] != '\0') {
		fprintf(fp, " group ");
		print_str(fp, c->status_group);
	}
	fputc('\n', fp);
	if (c->resolver[0] != '\0') {
		fprintf(fp, "resolver ");
		print_str(fp, c->resolver);
		fputc('\n', fp);
	}
	if (c->metrics)
		fprintf(fp, "metrics listen on %s port %u\n",
		    sa_str((const struct sockaddr *)&c->metrics_ss, buf,
		    sizeof(buf)), c->metrics_port);
}

/* What one SMTP client may use: sizes, counts, rates and timeouts. */
static void
print_limits(FILE *fp, const struct smx_conf *c)
{
	char	 a[32];

	size_str(c->max_message_size, a, sizeof(a));
	fprintf(fp, "\nlimit message-size %s\n", a);
	fprintf(fp, "limit recipients %u\n", c->max_recipients);
	fprintf(fp, "limit sessions %u\n", c->max_sessions);
	fprintf(fp, "limit sessions-per-ip %u\n", c->max_sessions_per_ip);
	fprintf(fp, "limit connection-rate %u\n", c->connection_rate);
	fprintf(fp, "limit errors %u\n", c->max_errors);
	duration_str(c->timeout_command, a, sizeof(a));
	fprintf(fp, "timeout command %s\n", a);
	duration_str(c->timeout_data, a, sizeof(a));
	fprintf(fp, "timeout data %s\n", a);
	size_str(c->min_data_rate, a, sizeof(a));
	fprintf(fp, "limit data-rate %s\n", a);
}

/* The listeners, after the keys and milters they name. */
static void
print_listeners(FILE *fp, const struct smx_conf *c)
{
	const struct smx_pki		*pki;
	const struct smx_listener	*l;
	const struct smx_milter		*mi;
	char				 buf[64];
	uint32_t			 i;

	if (!TAILQ_EMPTY(&c->pkis))
		fputc('\n', fp);
	TAILQ_FOREACH(pki, &c->pkis, entry) {
		fprintf(fp, "pki ");
		print_name(fp, pki->name);
		fprintf(fp, " cert ");
		print_str(fp, pki->cert_file);
		fprintf(fp, " key ");
		print_str(fp, pki->key_file);
		fputc('\n', fp);
	}

	if (!TAILQ_EMPTY(&c->milters))
		fputc('\n', fp);
	TAILQ_FOREACH(mi, &c->milters, entry)
		print_milter(fp, mi);

	if (!TAILQ_EMPTY(&c->listeners))
		fputc('\n', fp);
	TAILQ_FOREACH(l, &c->listeners, entry) {
		fprintf(fp, "listen on %s port %u",
		    sa_str((const struct sockaddr *)&l->ss, buf, sizeof(buf)),
		    l->port);
		if (l->flags & F_LISTEN_TLS_REQUIRE)
			fprintf(fp, " tls-require");
		else if (l->flags & F_LISTEN_TLS)
			fprintf(fp, " tls");
		if (l->pki[0] != '\0') {
			fprintf(fp, " pki ");
			print_name(fp, l->pki);
		}
		for (i = 0; i < l->nmilters; i++) {
			fprintf(fp, " milter ");
			print_name(fp, l->milters[i]);
		}
		fputc('\n', fp);
	}
}

/* Delivery out: the next hop, retries, and how TLS to it is checked. */
static void
print_outbound(FILE *fp, const struct smx_conf *c)
{
	char	 buf[64], a[32], b[32];

	fputc('\n', fp);
	if (c->outbound.name[0] == '\0')
		fprintf(fp, "outbound via mx tls %s\n",
		    tls_policy_name(c->outbound.tls));
	else
		print_host(fp, "outbound via", &c->outbound);
	duration_str(c->retry_first, a, sizeof(a));
	duration_str(c->retry_cap, b, sizeof(b));
	duration_str(c->expire, buf, sizeof(buf));
	fprintf(fp, "retry %s to %s expire %s\n", a, b, buf);
	duration_str(c->warn_after, a, sizeof(a));
	fprintf(fp, "warn after %s\n", a);

	fprintf(fp, "\nmta-sts %s\n", c->mta_sts ? "on" : "off");
	fprintf(fp, "trust-anchor ");
	print_str(fp, c->trust_anchor);
	fprintf(fp, "\nca ");
	print_str(fp, c->ca_file);
	fputc('\n', fp);
}

/*
 * Every setting, defaults included, in a fixed order.  The printout
 * parses back to the same configuration (the LDAP bind password
 * excepted, which is masked).
 */
void
conf_print(FILE *fp, const struct smx_conf *c)
{
	const struct smx_net		*n;
	const struct smx_table		*t;
	const struct smx_domain		*d;

	print_globals(fp, c);
	print_limits(fp, c);
	print_listeners(fp, c);

	if (!TAILQ_EMPTY(&c->trusted)) {
		fprintf(fp, "\ntrusted");
		TAILQ_FOREACH(n, &c->trusted, entry)
			print_net(fp, n);
		fputc('\n', fp);
	}
	print_dnsbls(fp, c);

	TAILQ_FOREACH(t, &c->tables, entry) {
		fputc('\n', fp);
		print_table(fp, t);
	}
	TAILQ_FOREACH(d, &c->domains, entry) {
		fputc('\n', fp);
		print_domain(fp, d);
	}
	print_outbound(fp, c);
}

int
parse_host(const char *s, struct smx_host *h, const char **errstr)
{
	char		 buf[SMX_HOSTSZ + 16], *name, *port = NULL, *end;
	const char	*perr;
	struct in6_addr	 in6;
	long long	 p;

	memset(h->name, 0, sizeof(h->name));
	h->port = 25;
	h->flags = 0;
	if (strlcpy(buf, s, sizeof(buf)) >= sizeof(buf)) {
		*errstr = "host name is too long";
		return -1;
	}
	if (buf[0] == '[') {
		name = buf + 1;
		if ((end = strchr(name, ']')) == NULL) {
			*errstr = "missing ] in host";
			return -1;
		}
		*end++ = '\0';
		if (*end == ':')
			port = end + 1;
		else if (*end != '\0') {
			*errstr = "unexpected text after ] in host";
			return -1;
		}
	} else {
		name = buf;
		h->flags |= F_HOST_MX;
		if ((end = strchr(name, ':')) != NULL) {
			if (strchr(end + 1, ':') != NULL) {
				*errstr = "an IPv6 address must be in brackets";
				return -1;
			}
			*end = '\0';
			port = end + 1;
		}
	}
	if (*name == '\0') {
		*errstr = "empty host name";
		return -1;
	}
	if (port != NULL) {
		/* strtonum() alone would take " 25" and "+25". */
		p = strtonum(port, 1, 65535, &perr);
		if (!isdigit((unsigned char)*port) || perr != NULL) {
			*errstr = "port must be a number from 1 to 65535";
			return -1;
		}
		h->port = (uint16_t)p;
	}
	if (inet_pton(AF_INET6, name, &in6) != 1 && !valid_domain(name)) {
		*errstr = "invalid host name";
		return -1;
	}
	if (strchr(name, ':') != NULL && (h->flags & F_HOST_MX)) {
		*errstr = "an IPv6 address must be in brackets";
		return -1;
	}
	strlcpy(h->name, name, sizeof(h->name));
	h->set = 1;
	return 0;
}

void
host_str(const struct smx_host *h, char *buf, size_t len)
{
	int	 n;

	if (h->flags & F_HOST_MX) {
		if (h->port == 25)
			n = snprintf(buf, len, "%s", h->name);
		else
			n = snprintf(buf, len, "%s:%u", h->name, h->port);
	} else {
		if (h->port == 25)
			n = snprintf(buf, len, "[%s]", h->name);
		else
			n = snprintf(buf, len, "[%s]:%u", h->name, h->port);
	}
	if (n < 0 || (size_t)n >= len)
		strlcpy(buf, "(host too long)", len);
}

/*
 * What the configuration says of a destination now, for mail routed
 * to it under an earlier one (the queue delivers with the stricter of
 * the two).  Two domains may name one host with two policies: the
 * strictest counts.
 */
int
conf_host_tls(const struct smx_conf *c, const char *dest, enum smx_tls *tls)
{
	const struct smx_domain	*d;
	int			 found = 0;

	TAILQ_FOREACH(d, &c->domains, entry) {
		conf_host_tls_match(&d->local, dest, tls, &found);
		conf_host_tls_match(&d->forward, dest, tls, &found);
	}
	conf_host_tls_match(&c->outbound, dest, tls, &found);
	return found ? 0 : -1;
}

static void
conf_host_tls_match(const struct smx_host *h, const char *dest,
    enum smx_tls *tls, int *found)
{
	char	 hs[SMX_HOSTSZ + 16];

	if (!h->set)
		return;
	host_str(h, hs, sizeof(hs));
	if (strcmp(hs, dest) != 0 || (*found && h->tls <= *tls))
		return;
	*tls = h->tls;
	*found = 1;
}
