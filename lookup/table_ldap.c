/*
 * LDAP directory tables (SPEC §3 "table NAME ldap", §4): searches on one
 * asynchronous connection per server list (table_ldap_conn.c), a
 * bounded cache that also covers outages, and 451 rather than a guess
 * when in doubt.
 */
#include <sys/types.h>

#include <errno.h>
#include <event.h>
#include <lber.h>
#include <ldap.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "splitmx.h"
#include "lookup.h"
#include "table_ldap.h"

#define TL_CACHE_MAX	100000		/* entries per table */
#define TL_HASH_SIZE	65536		/* buckets, a power of two */
#define TL_STALE_MAX	86400		/* found answers served in outages */
#define TL_RETRY_ASKED	2		/* a lookup in an outage retries */

struct tl_centry {
	TAILQ_ENTRY(tl_centry)	 lru;
	struct tl_centry	*next;		/* hash chain */
	uint32_t		 hash;
	time_t			 expires;
	int			 found;
	enum dir_kind		 kind;
	char			*key;		/* one allocation: key, */
	char			*target;	/* target and source */
	char			*source;
};

/* Answers of one question (base, filter, attribute), kept for ttl. */
struct tl_cache {
	int			 refs;
	char			 base[512];
	char			 filter[512];
	char			 target_attr[128];
	time_t			 ttl;
	size_t			 n;
	struct tl_centry	**buckets;
	TAILQ_HEAD(tl_centry_lru, tl_centry) lru;
};

struct table_ldap {
	char			 name[SMX_NAMESZ];
	char			 base[512];
	char			 filter[512];
	char			 target_attr[128];
	struct tl_conn		*conn;		/* NULL in the parent's check */
	struct tl_cache		*cache;		/* NULL without "cache" */
};

static void	 tl_op_timeout(int, short, void *);
static void	 tl_op_entry(struct tl_conn *, struct tl_op *,
		    LDAPMessage *);
static void	 tl_op_result(struct tl_conn *, struct tl_op *,
		    LDAPMessage *);
static struct tl_cache *tl_cache_new(struct smx_table *);
static void	 tl_cache_unref(struct tl_cache *);
static uint32_t	 tl_hash(const char *);
static struct tl_centry *tl_cache_find(struct tl_cache *, const char *);
static void	 tl_cache_put(struct tl_cache *, const struct table_query *);
static void	 tl_cache_drop(struct tl_cache *, struct tl_centry *);
static void	 tl_cache_answer(struct table_query *,
		    const struct tl_centry *, const char *);
static void	 tl_source(struct table_query *, const char *, const char *,
		    const char *);

/*
 * RFC 4515 section 3: the octets that may not stand for themselves in
 * an assertion value, and anything outside printable ASCII to be safe
 * (an escaped octet is the same octet to the server).
 */
int
table_ldap_escape(const char *s, size_t len, char *out, size_t outlen)
{
	static const char	 hex[] = "0123456789abcdef";
	unsigned char		 c;
	size_t			 i, o = 0;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '*' || c == '(' || c == ')' || c == '\\' ||
		    c < 0x20 || c >= 0x7f) {
			if (o + 3 >= outlen)
				return -1;
			out[o++] = '\\';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0x0f];
		} else {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)c;
		}
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return 0;
}

int
table_ldap_filter(const char *filter, const char *key, char *out,
    size_t outlen)
{
	const char	*p, *at, *part;
	size_t		 o = 0, len, partlen;

	at = strrchr(key, '@');
	for (p = filter; *p != '\0'; p++) {
		if (*p != '%') {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = *p;
			continue;
		}
		switch (p[1]) {
		case '%':
			if (o + 1 >= outlen)
				return -1;
			out[o++] = '%';
			p++;
			continue;
		case 's':
			part = key;
			partlen = strlen(key);
			break;
		case 'u':
			part = key;
			partlen = at != NULL ? (size_t)(at - key) : strlen(key);
			break;
		case 'd':
			part = at != NULL ? at + 1 : "";
			partlen = strlen(part);
			break;
		default:
			return -1;	/* parse.y refuses it */
		}
		p++;
		if (table_ldap_escape(part, partlen, out + o, outlen - o) == -1)
			return -1;
		len = strlen(out + o);
		o += len;
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return 0;
}

struct table_ldap *
table_ldap_open(struct smx_table *t, struct table_ldap *old, FILE *errfp)
{
	struct table_ldap	*tl;
	char			 test[1024];

	/* Our settings are the configuration's, not ldap.conf(5)'s. */
	if (setenv("LDAPNOINIT", "1", 1) == -1) {
		fprintf(errfp, "table %s: setenv: %s\n", t->name,
		    strerror(errno));
		return NULL;
	}
	if (table_ldap_filter(t->filter, "local@example.com", test,
	    sizeof(test)) == -1 || t->filter[0] != '(' ||
	    t->filter[strlen(t->filter) - 1] != ')') {
		fprintf(errfp, "table %s: filter \"%s\" is not an LDAP "
		    "filter in parentheses\n", t->name, t->filter);
		return NULL;
	}
	if ((tl = calloc(1, sizeof(*tl))) == NULL) {
		fprintf(errfp, "table %s: %s\n", t->name, strerror(errno));
		return NULL;
	}
	strlcpy(tl->name, t->name, sizeof(tl->name));
	strlcpy(tl->base, t->base, sizeof(tl->base));
	strlcpy(tl->filter, t->filter, sizeof(tl->filter));
	strlcpy(tl->target_attr, t->target_attr, sizeof(tl->target_attr));

	/* A reload keeps the connection, and the cache, that still fit. */
	if (old != NULL && old->conn != NULL && tl_conn_same(old->conn, t)) {
		tl->conn = old->conn;
		tl->conn->refs++;
	} else if ((tl->conn = tl_conn_new(t, errfp)) == NULL) {
		free(tl);
		return NULL;
	}
	if (t->cache > 0) {
		if (old != NULL && old->cache != NULL &&
		    old->cache->ttl == t->cache &&
		    strcmp(old->cache->base, t->base) == 0 &&
		    strcmp(old->cache->filter, t->filter) == 0 &&
		    strcmp(old->cache->target_attr, t->target_attr) == 0) {
			tl->cache = old->cache;
			tl->cache->refs++;
		} else if ((tl->cache = tl_cache_new(t)) == NULL) {
			fprintf(errfp, "table %s: %s\n", t->name,
			    strerror(errno));
			table_ldap_close(tl);
			return NULL;
		}
	}
	return tl;
}

size_t
table_ldap_count(const struct table_ldap *tl)
{
	/* Entries are the server's to count; a cache is not a table. */
	(void)tl;
	return 0;
}

void
table_ldap_close(struct table_ldap *tl)
{
	if (tl == NULL)
		return;
	if (tl->conn != NULL)
		tl_conn_unref(tl->conn);
	if (tl->cache != NULL)
		tl_cache_unref(tl->cache);
	free(tl);
}

void
table_ldap_lookup(struct table_ldap *tl, struct table_query *q)
{
	struct tl_conn		*c = tl->conn;
	struct tl_centry	*ce;
	struct tl_op		*op;
	struct timeval		 tv;

	if (tl->cache != NULL && (ce = tl_cache_find(tl->cache, q->key)) !=
	    NULL && ce->expires > time(NULL)) {
		TAILQ_REMOVE(&tl->cache->lru, ce, lru);
		TAILQ_INSERT_HEAD(&tl->cache->lru, ce, lru);
		tl_cache_answer(q, ce, "cache");
		q->done(q);
		return;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL) {
		log_warn("table %s: calloc", tl->name);
		q->status = TABLE_TEMPFAIL;
		q->done(q);
		return;
	}
	op->conn = c;
	op->tl = tl;
	op->q = q;
	op->msgid = -1;

	/*
	 * In an outage the answer is now, not after a timeout; mail that
	 * comes in tries the servers again sooner than the backoff would.
	 */
	c->busy++;
	if (c->down && c->state != TL_READY) {
		tl_op_unavailable(op, c->err);
		if (c->state == TL_DOWN && c->refs > 0 &&
		    time(NULL) - c->round >= TL_RETRY_ASKED)
			tl_conn_start(c);
		tl_conn_release(c);
		return;
	}
	evtimer_set(&op->timer, tl_op_timeout, op);
	tv.tv_sec = c->timeout;
	tv.tv_usec = 0;
	evtimer_add(&op->timer, &tv);
	if (c->state == TL_READY) {
		TAILQ_INSERT_TAIL(&c->sent, op, entry);
		tl_op_send(op);
	} else {
		TAILQ_INSERT_TAIL(&c->waiting, op, entry);
		if (c->state == TL_IDLE)
			tl_conn_start(c);
	}
	tl_conn_release(c);
}

void
tl_op_send(struct tl_op *op)
{
	struct tl_conn	*c = op->conn;
	char		 filter[2048];
	char		*attrs[2];
	int		 rc;

	if (table_ldap_filter(op->tl->filter, op->q->key, filter,
	    sizeof(filter)) == -1) {
		TAILQ_REMOVE(&c->sent, op, entry);
		log_warnx("table %s: %s: the filter is too long", op->tl->name,
		    log_value(op->q->key));
		tl_op_unavailable(op, "filter too long");
		return;
	}
	attrs[0] = op->tl->target_attr;
	attrs[1] = NULL;
	/* Two entries are enough to know the answer is ambiguous. */
	rc = ldap_search_ext(c->ld, op->tl->base, LDAP_SCOPE_SUBTREE, filter,
	    attrs, 0, NULL, NULL, NULL, 2, &op->msgid);
	if (rc == LDAP_SUCCESS) {
		op->sent = time(NULL);
		return;
	}
	if (rc == LDAP_FILTER_ERROR || rc == LDAP_PARAM_ERROR) {
		TAILQ_REMOVE(&c->sent, op, entry);
		log_warnx("table %s: %s: filter %s: %s", op->tl->name,
		    log_value(op->q->key), log_text(filter),
		    ldap_err2string(rc));
		tl_op_unavailable(op, ldap_err2string(rc));
		return;
	}
	/* The connection broke under it: it goes back to waiting. */
	op->msgid = -1;
	tl_conn_lost(c, "search: %s", ldap_err2string(rc));
}

static void
tl_op_timeout(int fd, short event, void *arg)
{
	struct tl_op	*op = arg;
	struct tl_conn	*c = op->conn;
	char		 why[128];
	int		 hung;

	(void)fd;
	(void)event;
	c->busy++;
	(void)snprintf(why, sizeof(why), "%s: no answer within %lld s",
	    c->state == TL_READY ? c->urls[c->cur].url : c->name,
	    (long long)c->timeout);
	if (op->msgid != -1) {
		TAILQ_REMOVE(&c->sent, op, entry);
		(void)ldap_abandon_ext(c->ld, op->msgid, NULL, NULL);
		log_info("table %s: %s: %s", op->tl->name,
		    log_value(op->q->key), why);
	} else
		TAILQ_REMOVE(&c->waiting, op, entry);
	/* Nothing at all from the server since it was asked: hung. */
	hung = op->msgid != -1 && c->state == TL_READY &&
	    c->last_read < op->sent + 1;
	tl_op_unavailable(op, why);
	if (hung && c->state == TL_READY)
		tl_conn_lost(c, "the server does not answer");
	tl_conn_release(c);
}

void
tl_op_message(struct tl_conn *c, struct tl_op *op, LDAPMessage *msg)
{
	switch (ldap_msgtype(msg)) {
	case LDAP_RES_SEARCH_ENTRY:
		tl_op_entry(c, op, msg);
		break;
	case LDAP_RES_SEARCH_RESULT:
		tl_op_result(c, op, msg);
		break;
	default:
		/* References: a directory of our own has none to follow. */
		break;
	}
}

/* The entry's DN and its target attribute, the first value. */
static void
tl_op_entry(struct tl_conn *c, struct tl_op *op, LDAPMessage *msg)
{
	struct berval	**vals;
	char		 *dn;
	const char	 *v;
	size_t		  len, i;
	int		  n = op->nentries++;

	if (n >= 2)
		return;
	if ((dn = ldap_get_dn(c->ld, msg)) != NULL) {
		strlcpy(op->dn[n], dn, sizeof(op->dn[n]));
		ldap_memfree(dn);
	}
	if (n > 0)
		return;
	if ((vals = ldap_get_values_len(c->ld, msg, op->tl->target_attr)) ==
	    NULL)
		return;
	if (ldap_count_values_len(vals) < 1) {
		ldap_value_free_len(vals);
		return;
	}
	op->has_target = 1;
	v = vals[0]->bv_val;
	len = vals[0]->bv_len;
	/* Exchange writes "SMTP:" (primary) or "smtp:" before it. */
	if (len > 5 && strncasecmp(v, "smtp:", 5) == 0) {
		v += 5;
		len -= 5;
	}
	if (len == 0 || len >= sizeof(op->target)) {
		tl_fmt(op->bad, sizeof(op->bad), "%s is empty or too long",
		    op->tl->target_attr);
		ldap_value_free_len(vals);
		return;
	}
	for (i = 0; i < len; i++)
		if ((unsigned char)v[i] <= 0x20 || v[i] == 0x7f ||
		    v[i] == '<' || v[i] == '>')
			break;
	memcpy(op->target, v, len);
	op->target[len] = '\0';
	ldap_value_free_len(vals);
	if (i < len || strrchr(op->target, '@') == NULL ||
	    strrchr(op->target, '@') == op->target ||
	    strrchr(op->target, '@')[1] == '\0') {
		tl_fmt(op->bad, sizeof(op->bad), "%s is not an SMTP address",
		    op->tl->target_attr);
		op->target[0] = '\0';
		return;
	}
	str_lower(op->target);
}

/* The end of a search: the mapping of SPEC §4. */
static void
tl_op_result(struct tl_conn *c, struct tl_op *op, LDAPMessage *msg)
{
	struct table_ldap	*tl = op->tl;
	struct table_query	*q = op->q;
	const char		*url = c->urls[c->cur].url;
	char			*diag = NULL;
	char			 why[256];
	int			 rc, err = LDAP_OTHER;

	TAILQ_REMOVE(&c->sent, op, entry);
	evtimer_del(&op->timer);
	rc = ldap_parse_result(c->ld, msg, &err, NULL, &diag, NULL, NULL, 0);
	if (rc != LDAP_SUCCESS)
		err = rc;
	if (op->nentries >= 2) {
		log_warnx("table %s: %s: ambiguous, %s entries match (%s; %s"
		    "): fix the directory; recipients get 451 4.3.0 until then",
		    tl->name, log_value(q->key),
		    err == LDAP_SIZELIMIT_EXCEEDED ? "more than one" :
		    "several", op->dn[0], op->dn[1]);
		ldap_memfree(diag);
		q->status = TABLE_TEMPFAIL;
		strlcpy(q->reply, "4.3.0 ambiguous directory entry",
		    sizeof(q->reply));
		tl_source(q, url, op->dn[0], "ambiguous");
		tl_op_free(op);
		q->done(q);
		return;
	}
	if (err != LDAP_SUCCESS) {
		(void)snprintf(why, sizeof(why), "%s: search: %s%s%s", url,
		    ldap_err2string(err), diag != NULL && *diag ? ": " : "",
		    diag != NULL ? diag : "");
		ldap_memfree(diag);
		log_warnx("table %s: %s: %s", tl->name, log_value(q->key),
		    why);
		tl_op_unavailable(op, why);
		return;
	}
	ldap_memfree(diag);
	if (op->bad[0] != '\0') {
		log_warnx("table %s: %s: entry %s: %s: recipients get 451 "
		    "until it is fixed", tl->name, log_value(q->key),
		    op->dn[0], op->bad);
		tl_fmt(why, sizeof(why), "%s dn=%s: %s", url, op->dn[0],
		    op->bad);
		q->status = TABLE_TEMPFAIL;
		strlcpy(q->source, why, sizeof(q->source));
		tl_op_free(op);
		q->done(q);
		return;
	}
	if (op->nentries == 0) {
		q->status = TABLE_NOTFOUND;
		tl_source(q, url, NULL, NULL);
	} else {
		q->status = TABLE_FOUND;
		q->kind = op->has_target ? DIR_CUSTOM : DIR_LOCAL;
		strlcpy(q->target, op->target, sizeof(q->target));
		tl_source(q, url, op->dn[0], NULL);
	}
	log_debug("table %s: %s: %s", tl->name, log_value(q->key),
	    q->source);
	if (tl->cache != NULL)
		tl_cache_put(tl->cache, q);
	tl_op_free(op);
	q->done(q);
}

/*
 * No answer from the directory: a found answer still in the cache is
 * served for a while past its time (a mailbox that existed an hour ago
 * most likely still does); a cached "unknown" is not, because a 550 is
 * final for the sender, and a new mailbox would be refused.
 */
void
tl_op_unavailable(struct tl_op *op, const char *why)
{
	struct table_query	*q = op->q;
	struct tl_cache		*cache = op->tl->cache;
	struct tl_centry	*ce;

	tl_op_free(op);
	if (cache != NULL && (ce = tl_cache_find(cache, q->key)) != NULL &&
	    ce->found && ce->expires + TL_STALE_MAX > time(NULL)) {
		tl_cache_answer(q, ce, "cache, directory unavailable");
		q->done(q);
		return;
	}
	q->status = TABLE_TEMPFAIL;
	strlcpy(q->source, why != NULL && *why ? why : "directory unavailable",
	    sizeof(q->source));
	q->done(q);
}

void
tl_op_free(struct tl_op *op)
{
	if (event_initialized(&op->timer))
		evtimer_del(&op->timer);
	free(op);
}

/* "ldap://h:389 dn=uid=a,dc=x (cache)" for splitmxctl lookup. */
static void
tl_source(struct table_query *q, const char *url, const char *dn,
    const char *note)
{
	int	 n;

	if (dn != NULL)
		n = snprintf(q->source, sizeof(q->source), "%s dn=%s%s%s%s",
		    url, dn, note != NULL ? " (" : "", note != NULL ? note : "",
		    note != NULL ? ")" : "");
	else
		n = snprintf(q->source, sizeof(q->source), "%s: no entry",
		    url);
	if (n < 0)
		strlcpy(q->source, url, sizeof(q->source));
}

static struct tl_cache *
tl_cache_new(struct smx_table *t)
{
	struct tl_cache	*cache;

	if ((cache = calloc(1, sizeof(*cache))) == NULL)
		return NULL;
	if ((cache->buckets = calloc(TL_HASH_SIZE,
	    sizeof(*cache->buckets))) == NULL) {
		free(cache);
		return NULL;
	}
	cache->refs = 1;
	cache->ttl = t->cache;
	strlcpy(cache->base, t->base, sizeof(cache->base));
	strlcpy(cache->filter, t->filter, sizeof(cache->filter));
	strlcpy(cache->target_attr, t->target_attr,
	    sizeof(cache->target_attr));
	TAILQ_INIT(&cache->lru);
	return cache;
}

static void
tl_cache_unref(struct tl_cache *cache)
{
	struct tl_centry	*ce;

	if (--cache->refs > 0)
		return;
	while ((ce = TAILQ_FIRST(&cache->lru)) != NULL)
		tl_cache_drop(cache, ce);
	free(cache->buckets);
	free(cache);
}

/* FNV-1a */
static uint32_t
tl_hash(const char *s)
{
	uint32_t	 h = 2166136261U;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619U;
	}
	return h;
}

static struct tl_centry *
tl_cache_find(struct tl_cache *cache, const char *key)
{
	struct tl_centry	*ce;
	uint32_t		 h = tl_hash(key);

	for (ce = cache->buckets[h & (TL_HASH_SIZE - 1)]; ce != NULL;
	    ce = ce->next)
		if (ce->hash == h && strcmp(ce->key, key) == 0)
			return ce;
	return NULL;
}

static void
tl_cache_put(struct tl_cache *cache, const struct table_query *q)
{
	struct tl_centry	*ce;
	size_t			 klen, tlen, slen;
	uint32_t		 h;

	if ((ce = tl_cache_find(cache, q->key)) != NULL)
		tl_cache_drop(cache, ce);
	if (cache->n >= TL_CACHE_MAX)
		tl_cache_drop(cache, TAILQ_LAST(&cache->lru, tl_centry_lru));
	klen = strlen(q->key) + 1;
	tlen = strlen(q->target) + 1;
	slen = strlen(q->source) + 1;
	if ((ce = calloc(1, sizeof(*ce) + klen + tlen + slen)) == NULL)
		return;		/* not cached: asked again next time */
	ce->key = (char *)(ce + 1);
	ce->target = ce->key + klen;
	ce->source = ce->target + tlen;
	memcpy(ce->key, q->key, klen);
	memcpy(ce->target, q->target, tlen);
	memcpy(ce->source, q->source, slen);
	ce->found = q->status == TABLE_FOUND;
	ce->kind = q->kind;
	ce->expires = time(NULL) + cache->ttl;
	h = ce->hash = tl_hash(q->key);
	ce->next = cache->buckets[h & (TL_HASH_SIZE - 1)];
	cache->buckets[h & (TL_HASH_SIZE - 1)] = ce;
	TAILQ_INSERT_HEAD(&cache->lru, ce, lru);
	cache->n++;
}

static void
tl_cache_drop(struct tl_cache *cache, struct tl_centry *ce)
{
	struct tl_centry	**pp;

	for (pp = &cache->buckets[ce->hash & (TL_HASH_SIZE - 1)]; *pp != NULL;
	    pp = &(*pp)->next)
		if (*pp == ce) {
			*pp = ce->next;
			break;
		}
	TAILQ_REMOVE(&cache->lru, ce, lru);
	cache->n--;
	free(ce);
}

static void
tl_cache_answer(struct table_query *q, const struct tl_centry *ce,
    const char *note)
{
	int	 n;

	q->status = ce->found ? TABLE_FOUND : TABLE_NOTFOUND;
	q->kind = ce->kind;
	strlcpy(q->target, ce->target, sizeof(q->target));
	n = snprintf(q->source, sizeof(q->source), "%s (%s)", ce->source,
	    note);
	if (n < 0)
		strlcpy(q->source, ce->source, sizeof(q->source));
}

/* Log and reply texts, cut short where they do not fit. */
void
tl_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}
