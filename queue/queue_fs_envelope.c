/*
 * The envelope file's text format: how queue_fs.c writes a message's
 * envelope and how recovery reads it back, strictly.
 *
 * The envelope: one text holding all the message's recipients, so that
 * a single rename commits or updates the whole message; a message has
 * at most a few hundred recipients, so the scheduler can afford to
 * rewrite it whenever a recipient's state changes.
 * Lines are "key=value"; values escape every byte below 0x21, 0x7f and
 * '%' as %XX, so a value never holds a space, a newline or a NUL.
 *
 *	version=2			first line, always
 *	id= arrival= size= sender= helo= client= client-host= envid=
 *	body=7bit|8bitmime|binarymime	flags=smtputf8,tls
 *	ret=unset|full|hdrs		warned=<time of the delay DSN, 0>
 *	history=<time> <text>		zero or more, oldest first
 *	rcpts=<n>
 *	then n blocks, each starting with rcpt=:
 *	rcpt= rewritten= class= destination= notify= orcpt=
 *	state=queued|deferred|delivered|failed tries= next-try= last-try=
 *	last-error=
 *	end=				last line
 * Every key appears exactly once in its section (history: any number);
 * the header, rcpts= included, comes whole before the first rcpt=, and
 * within a section the order is free.  Times are Unix seconds.  A
 * reader refuses anything else: unknown keys, a missing or repeated
 * key, a count that does not match, bytes after end=.
 */
#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "splitmx.h"
#include "queue.h"

struct name_flag {
	const char	*name;
	uint32_t	 flag;
};

static void	esc_put(FILE *, const char *);
static int	esc_get(const char *, size_t, char **);
static int	flags_parse(const char *, const struct name_flag *,
		    uint32_t *);
static void	flags_put(FILE *, const struct name_flag *, uint32_t);
static int	name_index(const char *, const char *const *, size_t);
static int	decode_line(struct queue_envelope *, const char *, size_t,
		    uint64_t *, int *, uint32_t *, char *, size_t);
static int	decode_error(char *, size_t, const char *, ...)
		    __attribute__((__format__ (printf, 3, 4)));

static const char *const	 body_names[] = {
	"7bit", "8bitmime", "binarymime"
};
static const char *const	 ret_names[] = {
	"unset", "full", "hdrs"
};
static const char *const	 class_names[] = {
	"local", "custom", "forward", "bounce", "outbound", "none"
};
static const char *const	 state_names[] = {
	"queued", "deferred", "delivered", "failed"
};
static const struct name_flag	 msg_flags[] = {
	{ "smtputf8",	F_MSG_SMTPUTF8 },
	{ "tls",	F_MSG_TLS },
	{ NULL,		0 }
};
static const struct name_flag	 notify_flags[] = {
	{ "never",	F_NOTIFY_NEVER },
	{ "success",	F_NOTIFY_SUCCESS },
	{ "failure",	F_NOTIFY_FAILURE },
	{ "delay",	F_NOTIFY_DELAY },
	{ NULL,		0 }
};

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* A value added to an enum of splitmx.h needs its name here. */
_Static_assert(NELEM(body_names) == BODY_COUNT, "body_names");
_Static_assert(NELEM(ret_names) == RET_COUNT, "ret_names");
_Static_assert(NELEM(class_names) == ROUTE_COUNT, "class_names");
_Static_assert(NELEM(state_names) == STATE_FAILED + 1, "state_names");

/*
 * Keys, by section.  The bit is the key's place in a "seen" mask: every
 * key but history must be seen exactly once.
 */
enum env_key {
	K_ID, K_ARRIVAL, K_SIZE, K_SENDER, K_HELO, K_CLIENT, K_CLIENT_HOST,
	K_ENVID, K_BODY, K_FLAGS, K_RET, K_WARNED, K_RCPTS,
	K_HEAD_END,		/* header keys above, all required */
	K_HISTORY = K_HEAD_END,
	K_RCPT, K_REWRITTEN, K_CLASS, K_DEST, K_NOTIFY, K_ORCPT, K_STATE,
	K_TRIES, K_NEXT_TRY, K_LAST_TRY, K_LAST_ERROR,
	K_END, K_VERSION, K_COUNT
};
#define HEAD_KEYS	((1U << K_HEAD_END) - 1)
#define RCPT_KEYS	(((1U << (K_LAST_ERROR + 1)) - 1) & \
			    ~((1U << K_RCPT) - 1))

static const char *const	 key_names[K_COUNT] = {
	"id", "arrival", "size", "sender", "helo", "client", "client-host",
	"envid", "body", "flags", "ret", "warned", "rcpts",
	"history",
	"rcpt", "rewritten", "class", "destination", "notify", "orcpt",
	"state", "tries", "next-try", "last-try", "last-error",
	"end", "version"
};

const char *
queue_fs_state_name(enum queue_state s)
{
	if ((size_t)s >= NELEM(state_names))
		return "unknown";
	return state_names[s];
}

const char *
queue_fs_class_name(uint32_t c)
{
	if (c >= NELEM(class_names))
		return "unknown";
	return class_names[c];
}

static void
esc_put(FILE *f, const char *s)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)s; *p; p++) {
		if (*p <= 0x20 || *p == 0x7f || *p == '%')
			fprintf(f, "%%%02X", *p);
		else
			fputc(*p, f);
	}
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes an escaped value; a raw control byte or %00 is an error. */
static int
esc_get(const char *s, size_t len, char **out)
{
	char		*buf, *q;
	size_t		 i;
	int		 hi, lo;
	unsigned char	 c;

	if (len > QUEUE_STRMAX * 3)
		return -1;
	if ((buf = malloc(len + 1)) == NULL)
		return -1;
	for (i = 0, q = buf; i < len; i++) {
		c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f)
			goto bad;
		if (c == '%') {
			if (i + 2 >= len)
				goto bad;
			if ((hi = hexval(s[i + 1])) == -1 ||
			    (lo = hexval(s[i + 2])) == -1)
				goto bad;
			c = (unsigned char)(hi << 4 | lo);
			if (c == 0)
				goto bad;
			i += 2;
		}
		*q++ = (char)c;
	}
	*q = '\0';
	if ((size_t)(q - buf) > QUEUE_STRMAX)
		goto bad;
	*out = buf;
	return 0;
 bad:
	free(buf);
	return -1;
}

static void
flags_put(FILE *f, const struct name_flag *t, uint32_t v)
{
	int	 first = 1;

	for (; t->name != NULL; t++)
		if (v & t->flag) {
			fprintf(f, "%s%s", first ? "" : ",", t->name);
			first = 0;
		}
}

static int
flags_parse(const char *s, const struct name_flag *table, uint32_t *v)
{
	const struct name_flag	*t;
	const char		*end;
	size_t			 len;

	*v = 0;
	while (*s != '\0') {
		end = strchr(s, ',');
		len = end ? (size_t)(end - s) : strlen(s);
		for (t = table; t->name != NULL; t++)
			if (strlen(t->name) == len &&
			    strncmp(t->name, s, len) == 0)
				break;
		if (t->name == NULL || (*v & t->flag))
			return -1;
		*v |= t->flag;
		if (end == NULL)
			break;
		s = end + 1;
		if (*s == '\0')
			return -1;
	}
	return 0;
}

static int
name_index(const char *s, const char *const *names, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return (int)i;
	return -1;
}

int
queue_fs_envelope_encode(const struct queue_envelope *e, char **bufp,
    size_t *lenp)
{
	const struct queue_rcpt	*r;
	FILE			*f;
	char			*buf = NULL;
	size_t			 len = 0;
	uint32_t		 i;

	if (!queue_fs_id_valid(e->id) || e->nrcpt == 0 ||
	    e->nrcpt > QUEUE_MAXRCPT || e->nhist > QUEUE_MAXHIST ||
	    e->body >= NELEM(body_names) || e->ret >= NELEM(ret_names)) {
		errno = EINVAL;
		return -1;
	}
	if ((f = open_memstream(&buf, &len)) == NULL)
		return -1;
	fprintf(f, "version=%d\nid=%s\narrival=%lld\nsize=%llu\nsender=",
	    QUEUE_ENV_VERSION, e->id, (long long)e->arrival,
	    (unsigned long long)e->size);
	esc_put(f, e->sender);
	fputs("\nhelo=", f);
	esc_put(f, e->helo);
	fputs("\nclient=", f);
	esc_put(f, e->client);
	fputs("\nclient-host=", f);
	esc_put(f, e->client_host);
	fputs("\nenvid=", f);
	esc_put(f, e->envid);
	fprintf(f, "\nbody=%s\nflags=", body_names[e->body]);
	flags_put(f, msg_flags, e->flags);
	fprintf(f, "\nret=%s\nwarned=%lld\n", ret_names[e->ret],
	    (long long)e->warned);
	for (i = 0; i < e->nhist; i++) {
		fprintf(f, "history=%lld ", (long long)e->hist[i].when);
		esc_put(f, e->hist[i].text);
		fputc('\n', f);
	}
	fprintf(f, "rcpts=%u\n", e->nrcpt);
	for (i = 0; i < e->nrcpt; i++) {
		r = &e->rcpts[i];
		if (r->class >= NELEM(class_names) ||
		    (size_t)r->state >= NELEM(state_names)) {
			fclose(f);
			free(buf);
			errno = EINVAL;
			return -1;
		}
		fputs("rcpt=", f);
		esc_put(f, r->rcpt);
		fputs("\nrewritten=", f);
		esc_put(f, r->rewritten);
		fprintf(f, "\nclass=%s\ndestination=", class_names[r->class]);
		esc_put(f, r->dest);
		fputs("\nnotify=", f);
		flags_put(f, notify_flags, r->notify);
		fputs("\norcpt=", f);
		esc_put(f, r->orcpt);
		fprintf(f, "\nstate=%s\ntries=%u\nnext-try=%lld\n"
		    "last-try=%lld\nlast-error=", state_names[r->state],
		    r->tries, (long long)r->next_try, (long long)r->last_try);
		esc_put(f, r->last_error);
		fputc('\n', f);
	}
	fputs("end=\n", f);
	if (ferror(f)) {
		fclose(f);
		free(buf);
		errno = ENOMEM;
		return -1;
	}
	if (fclose(f) != 0) {
		free(buf);
		return -1;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

static int
decode_error(char *err, size_t errsz, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	if (vsnprintf(err, errsz, fmt, ap) < 0)
		strlcpy(err, "error", errsz);
	va_end(ap);
	return -1;
}

static int
parse_time(const char *s, time_t *t)
{
	const char	*errstr;
	long long	 v;

	v = strtonum(s, 0, LLONG_MAX, &errstr);
	if (errstr != NULL)
		return -1;
	*t = (time_t)v;
	return 0;
}

/*
 * One "key=value" line (without its newline).  *seen tracks the keys
 * of the current section; *cur is the recipient being filled, or -1.
 */
static int
decode_line(struct queue_envelope *e, const char *line, size_t len,
    uint64_t *seen, int *cur, uint32_t *nrcpt_seen, char *err, size_t errsz)
{
	struct queue_rcpt	*r = NULL;
	struct queue_event	*h;
	const char		*eq, *errstr, *sp;
	char			 key[16], *v = NULL, **dst = NULL;
	size_t			 klen;
	long long		 num;
	time_t			 when;
	int			 k, i;
	uint32_t		 u;

	if ((eq = memchr(line, '=', len)) == NULL)
		return decode_error(err, errsz, "no '='");
	klen = (size_t)(eq - line);
	if (klen == 0 || klen >= sizeof(key))
		return decode_error(err, errsz, "bad key");
	memcpy(key, line, klen);
	key[klen] = '\0';
	/* The key goes into the log: only print what could be a key. */
	if (strspn(key, "abcdefghijklmnopqrstuvwxyz-") != klen)
		return decode_error(err, errsz, "bad key");
	if ((k = name_index(key, key_names, K_COUNT)) == -1)
		return decode_error(err, errsz, "unknown key %s", key);
	line = eq + 1;
	len -= klen + 1;

	if (k == K_VERSION)
		return decode_error(err, errsz, "version not first");
	if (k == K_HISTORY) {
		if (*cur != -1)
			return decode_error(err, errsz, "history after rcpt");
		if (e->nhist == QUEUE_MAXHIST)
			return decode_error(err, errsz, "too much history");
		if ((sp = memchr(line, ' ', len)) == NULL)
			return decode_error(err, errsz, "bad history");
		if ((h = reallocarray(e->hist, e->nhist + 1,
		    sizeof(*e->hist))) == NULL)
			return decode_error(err, errsz, "out of memory");
		e->hist = h;
		if ((v = strndup(line, (size_t)(sp - line))) == NULL)
			return decode_error(err, errsz, "out of memory");
		i = parse_time(v, &when);
		free(v);
		v = NULL;
		if (i == -1 || esc_get(sp + 1, len - (size_t)(sp + 1 - line),
		    &v) == -1)
			return decode_error(err, errsz, "bad history");
		e->hist[e->nhist].when = when;
		e->hist[e->nhist].text = v;
		e->nhist++;
		return 0;
	}
	if (k == K_RCPT) {
		if ((*seen & HEAD_KEYS) != HEAD_KEYS)
			return decode_error(err, errsz, "header incomplete");
		if (*cur != -1 && (*seen & RCPT_KEYS) != RCPT_KEYS)
			return decode_error(err, errsz, "recipient %d "
			    "incomplete", *cur + 1);
		if (*nrcpt_seen == e->nrcpt)
			return decode_error(err, errsz, "more than %u "
			    "recipients", e->nrcpt);
		*cur = (int)(*nrcpt_seen)++;
		*seen &= ~(uint64_t)RCPT_KEYS;
	}
	if (k >= K_RCPT && k <= K_LAST_ERROR) {
		if (*cur == -1)
			return decode_error(err, errsz, "%s before rcpt", key);
		r = &e->rcpts[*cur];
	} else if (k < K_HEAD_END && *cur != -1)
		return decode_error(err, errsz, "%s after rcpt", key);
	if (k != K_END) {
		if (*seen & (1ULL << k))
			return decode_error(err, errsz, "%s twice", key);
		*seen |= 1ULL << k;
	}

	if (esc_get(line, len, &v) == -1)
		return decode_error(err, errsz, "bad value for %s", key);

	switch (k) {
	case K_ID:
		if (!queue_fs_id_valid(v))
			goto bad;
		strlcpy(e->id, v, sizeof(e->id));
		break;
	case K_ARRIVAL:
		if (parse_time(v, &e->arrival) == -1)
			goto bad;
		break;
	case K_WARNED:
		if (parse_time(v, &e->warned) == -1)
			goto bad;
		break;
	case K_SIZE:
		num = strtonum(v, 0, LLONG_MAX, &errstr);
		if (errstr != NULL)
			goto bad;
		e->size = (uint64_t)num;
		break;
	case K_SENDER:
		dst = &e->sender;
		break;
	case K_HELO:
		dst = &e->helo;
		break;
	case K_CLIENT:
		dst = &e->client;
		break;
	case K_CLIENT_HOST:
		dst = &e->client_host;
		break;
	case K_ENVID:
		dst = &e->envid;
		break;
	case K_BODY:
		if ((i = name_index(v, body_names, NELEM(body_names))) == -1)
			goto bad;
		e->body = (uint32_t)i;
		break;
	case K_RET:
		if ((i = name_index(v, ret_names, NELEM(ret_names))) == -1)
			goto bad;
		e->ret = (uint32_t)i;
		break;
	case K_FLAGS:
		if (flags_parse(v, msg_flags, &e->flags) == -1)
			goto bad;
		break;
	case K_RCPTS:
		num = strtonum(v, 1, QUEUE_MAXRCPT, &errstr);
		if (errstr != NULL)
			goto bad;
		if ((e->rcpts = calloc((size_t)num, sizeof(*e->rcpts))) ==
		    NULL) {
			free(v);
			return decode_error(err, errsz, "out of memory");
		}
		e->nrcpt = (uint32_t)num;
		break;
	case K_RCPT:
		dst = &r->rcpt;
		break;
	case K_REWRITTEN:
		dst = &r->rewritten;
		break;
	case K_DEST:
		dst = &r->dest;
		break;
	case K_ORCPT:
		dst = &r->orcpt;
		break;
	case K_LAST_ERROR:
		dst = &r->last_error;
		break;
	case K_CLASS:
		if ((i = name_index(v, class_names, NELEM(class_names))) == -1)
			goto bad;
		r->class = (uint32_t)i;
		break;
	case K_NOTIFY:
		if (flags_parse(v, notify_flags, &u) == -1)
			goto bad;
		r->notify = u;
		break;
	case K_STATE:
		if ((i = name_index(v, state_names, NELEM(state_names))) == -1)
			goto bad;
		r->state = (enum queue_state)i;
		break;
	case K_TRIES:
		num = strtonum(v, 0, UINT32_MAX, &errstr);
		if (errstr != NULL)
			goto bad;
		r->tries = (uint32_t)num;
		break;
	case K_NEXT_TRY:
		if (parse_time(v, &r->next_try) == -1)
			goto bad;
		break;
	case K_LAST_TRY:
		if (parse_time(v, &r->last_try) == -1)
			goto bad;
		break;
	case K_END:
		if (*v != '\0')
			goto bad;
		free(v);
		if ((*seen & HEAD_KEYS) != HEAD_KEYS)
			return decode_error(err, errsz, "header incomplete");
		if (*nrcpt_seen != e->nrcpt)
			return decode_error(err, errsz, "%u of %u recipients",
			    *nrcpt_seen, e->nrcpt);
		if (*cur != -1 && (*seen & RCPT_KEYS) != RCPT_KEYS)
			return decode_error(err, errsz, "recipient %d "
			    "incomplete", *cur + 1);
		*seen |= 1ULL << K_END;
		return 0;
	}
	if (dst != NULL) {
		*dst = v;
		return 0;
	}
	free(v);
	return 0;
 bad:
	free(v);
	return decode_error(err, errsz, "bad value for %s", key);
}

/*
 * Reads an envelope back.  Strict: anything unexpected is an error with
 * a reason in err ("line 7: unknown key foo"), and e is left empty.
 */
int
queue_fs_envelope_decode(const char *buf, size_t len,
    struct queue_envelope *e, char *err, size_t errsz)
{
	const char	*p, *nl, *end = buf + len;
	char		 why[200];
	uint64_t	 seen = 0;
	uint32_t	 nrcpt_seen = 0;
	int		 cur = -1, lineno = 1;
	char		 version[32];

	memset(e, 0, sizeof(*e));
	if (snprintf(version, sizeof(version), "version=%d\n",
	    QUEUE_ENV_VERSION) < 0 || len < strlen(version) ||
	    memcmp(buf, version, strlen(version)) != 0) {
		queue_fs_envelope_free(e);
		return decode_error(err, errsz, "line 1: not a version %d "
		    "envelope", QUEUE_ENV_VERSION);
	}
	for (p = buf + strlen(version); p < end; p = nl + 1) {
		lineno++;
		if (seen & (1ULL << K_END)) {
			decode_error(why, sizeof(why), "data after end");
			goto fail;
		}
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			decode_error(why, sizeof(why), "no newline");
			goto fail;
		}
		if (decode_line(e, p, (size_t)(nl - p), &seen, &cur,
		    &nrcpt_seen, why, sizeof(why)) == -1)
			goto fail;
	}
	if (!(seen & (1ULL << K_END))) {
		decode_error(why, sizeof(why), "truncated (no end)");
		goto fail;
	}
	return 0;
 fail:
	queue_fs_envelope_free(e);
	return decode_error(err, errsz, "line %d: %s", lineno, why);
}

/* Appends to the history, dropping the oldest past the limit. */
int
queue_fs_envelope_event(struct queue_envelope *e, time_t when,
    const char *text)
{
	struct queue_event	*h;
	char			*s;

	if ((s = strdup(text)) == NULL)
		return -1;
	if (strlen(s) > QUEUE_STRMAX)
		s[QUEUE_STRMAX] = '\0';
	if (e->nhist == QUEUE_MAXHIST) {
		free(e->hist[0].text);
		memmove(&e->hist[0], &e->hist[1],
		    (QUEUE_MAXHIST - 1) * sizeof(*e->hist));
		e->nhist--;
	} else {
		if ((h = reallocarray(e->hist, e->nhist + 1,
		    sizeof(*e->hist))) == NULL) {
			free(s);
			return -1;
		}
		e->hist = h;
	}
	h = &e->hist[e->nhist++];
	h->when = when;
	h->text = s;
	return 0;
}

void
queue_fs_envelope_free(struct queue_envelope *e)
{
	uint32_t	 i;

	free(e->sender);
	free(e->helo);
	free(e->client);
	free(e->client_host);
	free(e->envid);
	if (e->rcpts != NULL)
		for (i = 0; i < e->nrcpt; i++) {
			free(e->rcpts[i].rcpt);
			free(e->rcpts[i].rewritten);
			free(e->rcpts[i].dest);
			free(e->rcpts[i].orcpt);
			free(e->rcpts[i].last_error);
		}
	free(e->rcpts);
	if (e->hist != NULL)
		for (i = 0; i < e->nhist; i++)
			free(e->hist[i].text);
	free(e->hist);
	memset(e, 0, sizeof(*e));
}
