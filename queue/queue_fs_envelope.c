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
 *	quarantine=<a milter's reason>	only while the message is held
 *	history=<time> <text>		zero or more, oldest first
 *	rcpts=<n>
 *	then n blocks, each starting with rcpt=:
 *	rcpt= rewritten= class= destination=
 *	tls=none|opportunistic|require|verify
 *	notify= orcpt=
 *	state=queued|deferred|delivered|failed tries= next-try= last-try=
 *	last-error=
 *	end=				last line
 * Every key appears exactly once in its section (history: any number),
 * but quarantine=, written only for a held message, and tls=, which
 * envelopes written before it was added do not have:
 * such a recipient's policy is "unknown", and the scheduler takes the
 * one the configuration gives its destination at each attempt, as it
 * always did (scheduler.c, sched_policy).  A writer never leaves it
 * out otherwise, and the version stays 2: a version 2 reader without
 * tls= refuses it as an unknown key (the envelope goes to corrupt/).
 * the header, rcpts= included, comes whole before the first rcpt=, and
 * within a section the order is free.  Times are Unix seconds.  A
 * reader refuses anything else: unknown keys, a missing or repeated
 * key, a count that does not match, bytes after end=.
 */
#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "splitmx.h"
#include "queue.h"
#include "queue_fs.h"

struct name_flag {
	const char	*name;
	uint32_t	 flag;
};

/*
 * The encoder's output: a buffer that grows, and remembers a failed
 * allocation (checked once at the end).  Not stdio: at every commit,
 * open_memstream() and a fputc() per octet were most of the queue
 * process' CPU per message.
 */
struct env_buf {
	char		*p;
	size_t		 len;
	size_t		 cap;
	int		 error;
};

static void	eb_grow(struct env_buf *, size_t);
static void	eb_put(struct env_buf *, const char *, size_t);
static void	eb_str(struct env_buf *, const char *);
static void	eb_u64(struct env_buf *, uint64_t);
static void	eb_i64(struct env_buf *, int64_t);
static void	esc_put(struct env_buf *, const char *);
static int	esc_get(const char *, size_t, char **);
static int	flags_parse(const char *, const struct name_flag *,
		    uint32_t *);
static void	flags_put(struct env_buf *, const struct name_flag *,
		    uint32_t);
static int	name_index(const char *, const char *const *, size_t);
static int	parse_time(const char *, time_t *);
struct env_field;
struct env_decoder;
static int	encode_check(const struct env_field *, const void *);
static void	encode_field(struct env_buf *, const struct env_field *,
		    const void *);
static int	decode_line(struct env_decoder *, const char *, size_t);
static int	decode_history(struct env_decoder *, const char *, size_t);
static int	decode_rcpt(struct env_decoder *);
static int	decode_value(struct env_decoder *, const struct env_field *,
		    char *);
static int	decode_end(struct env_decoder *, const char *);
static int	decode_fail(struct env_decoder *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));

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
static const char *const	 tls_names[] = {
	"none", "opportunistic", "dane", "require", "verify", "dane-only"
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
_Static_assert(NELEM(tls_names) == TLSP_COUNT, "tls_names");

/*
 * The fields, in the order they are written.  A field lives at off in
 * the envelope (SECT_HEAD) or in a recipient (SECT_RCPT); its kind says
 * how its value is written and read.  Every field is there exactly
 * once in its section but those marked FF_MANY (any number) and
 * FF_OPTIONAL (at most once; when absent the field holds unset, which
 * is never written); FF_START begins a recipient.  A new field is one
 * line here.
 */
enum field_sect {
	SECT_HEAD,
	SECT_RCPT,
	SECT_END
};
enum field_kind {
	FK_STR,		/* char *, escaped */
	FK_TIME,	/* time_t, Unix seconds */
	FK_SIZE,	/* uint64_t, at most LLONG_MAX */
	FK_U32,		/* uint32_t */
	FK_NAME,	/* uint32_t, an index into names */
	FK_FLAGS,	/* uint32_t, a set of flags */
	FK_STATE,	/* enum queue_state, by name */
	FK_ID,		/* char[QUEUE_IDSZ], a valid id */
	FK_HISTORY,	/* "<time> <text>" */
	FK_RCPTS,	/* the recipient count: allocates them */
	FK_END		/* empty: the last line */
};
#define FF_MANY		0x01
#define FF_START	0x02
#define FF_OPTIONAL	0x04	/* FK_NAME, FK_STR (absent: NULL or "") */
struct env_field {
	const char		*key;
	enum field_sect		 sect;
	enum field_kind		 kind;
	size_t			 off;
	int			 fflags;
	const char *const	*names;		/* FK_NAME */
	size_t			 nnames;
	const struct name_flag	*flags;		/* FK_FLAGS */
	uint32_t		 unset;		/* FF_OPTIONAL: absent */
};
#define HEAD(k, t, m)	.key = (k), .sect = SECT_HEAD, .kind = (t), \
			    .off = offsetof(struct queue_envelope, m)
#define RCPT(k, t, m)	.key = (k), .sect = SECT_RCPT, .kind = (t), \
			    .off = offsetof(struct queue_rcpt, m)
#define NAMES(a)	.names = (a), .nnames = NELEM(a)

static const struct env_field	 fields[] = {
	{ HEAD("id",		FK_ID,		id) },
	{ HEAD("arrival",	FK_TIME,	arrival) },
	{ HEAD("size",		FK_SIZE,	size) },
	{ HEAD("sender",	FK_STR,		sender) },
	{ HEAD("helo",		FK_STR,		helo) },
	{ HEAD("client",	FK_STR,		client) },
	{ HEAD("client-host",	FK_STR,		client_host) },
	{ HEAD("envid",		FK_STR,		envid) },
	{ HEAD("body",		FK_NAME,	body), NAMES(body_names) },
	{ HEAD("flags",		FK_FLAGS,	flags), .flags = msg_flags },
	{ HEAD("ret",		FK_NAME,	ret), NAMES(ret_names) },
	{ HEAD("warned",	FK_TIME,	warned) },
	{ HEAD("quarantine",	FK_STR,		quarantine),
	    .fflags = FF_OPTIONAL },
	{ HEAD("history",	FK_HISTORY,	hist), .fflags = FF_MANY },
	{ HEAD("rcpts",		FK_RCPTS,	nrcpt) },
	{ RCPT("rcpt",		FK_STR,		rcpt), .fflags = FF_START },
	{ RCPT("rewritten",	FK_STR,		rewritten) },
	{ RCPT("class",		FK_NAME,	class), NAMES(class_names) },
	{ RCPT("destination",	FK_STR,		dest) },
	{ RCPT("tls",		FK_NAME,	tls), NAMES(tls_names),
	    .fflags = FF_OPTIONAL, .unset = QUEUE_TLS_UNKNOWN },
	{ RCPT("notify",	FK_FLAGS,	notify),
	    .flags = notify_flags },
	{ RCPT("orcpt",		FK_STR,		orcpt) },
	{ RCPT("state",		FK_STATE,	state) },
	{ RCPT("tries",		FK_U32,		tries) },
	{ RCPT("next-try",	FK_TIME,	next_try) },
	{ RCPT("last-try",	FK_TIME,	last_try) },
	{ RCPT("last-error",	FK_STR,		last_error) },
	{ .key = "end", .sect = SECT_END, .kind = FK_END }
};
/* A field's bit in the masks of seen and required fields. */
_Static_assert(NELEM(fields) <= 64, "fields");
#define FIELD_BIT(i)	(1ULL << (i))

/* The state of one decode: the recipient being read, what was seen. */
struct env_decoder {
	struct queue_envelope	*e;
	struct queue_rcpt	*r;		/* being read, or NULL */
	uint32_t		 nrcpt;		/* rcpt= seen */
	uint64_t		 seen;		/* fields, this section */
	uint64_t		 head;		/* required in the header */
	uint64_t		 rcpt;		/* required in a recipient */
	int			 done;		/* end= seen */
	char			 why[200];
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

const char *
queue_fs_tls_name(uint32_t tls)
{
	if (tls >= NELEM(tls_names))
		return "unknown";
	return tls_names[tls];
}

/* Room for n more octets, or eb->error. */
static void
eb_grow(struct env_buf *eb, size_t n)
{
	size_t	 cap;
	char	*p;

	if (eb->error || n <= eb->cap - eb->len)
		return;
	if (n > SIZE_MAX / 4 - eb->len) {
		eb->error = 1;
		return;
	}
	cap = eb->cap ? eb->cap : 1024;
	while (cap - eb->len < n)
		cap *= 2;
	if ((p = realloc(eb->p, cap)) == NULL) {
		eb->error = 1;
		return;
	}
	eb->p = p;
	eb->cap = cap;
}

static void
eb_put(struct env_buf *eb, const char *s, size_t n)
{
	eb_grow(eb, n);
	if (eb->error)
		return;
	memcpy(eb->p + eb->len, s, n);
	eb->len += n;
}

static void
eb_str(struct env_buf *eb, const char *s)
{
	eb_put(eb, s, strlen(s));
}

static void
eb_u64(struct env_buf *eb, uint64_t v)
{
	char	 d[20], *q = d + sizeof(d);

	do {
		*--q = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	eb_put(eb, q, (size_t)(d + sizeof(d) - q));
}

static void
eb_i64(struct env_buf *eb, int64_t v)
{
	if (v < 0) {
		eb_put(eb, "-", 1);
		eb_u64(eb, -(uint64_t)v);
	} else
		eb_u64(eb, (uint64_t)v);
}

/* Runs of plain octets are copied whole; the rest becomes %XX. */
static void
esc_put(struct env_buf *eb, const char *s)
{
	static const char	 hex[] = "0123456789ABCDEF";
	const unsigned char	*p = (const unsigned char *)s, *q;
	char			 x[3];

	while (*p != '\0') {
		for (q = p; *q > 0x20 && *q != 0x7f && *q != '%'; q++)
			;
		if (q > p)
			eb_put(eb, (const char *)p, (size_t)(q - p));
		if (*q == '\0')
			break;
		x[0] = '%';
		x[1] = hex[*q >> 4];
		x[2] = hex[*q & 0xf];
		eb_put(eb, x, 3);
		p = q + 1;
	}
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
			if ((hi = hex_value(s[i + 1])) == -1 ||
			    (lo = hex_value(s[i + 2])) == -1)
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
flags_put(struct env_buf *eb, const struct name_flag *t, uint32_t v)
{
	int	 first = 1;

	for (; t->name != NULL; t++)
		if (v & t->flag) {
			if (!first)
				eb_put(eb, ",", 1);
			eb_str(eb, t->name);
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

/* 0 if the field's value can be written, else -1. */
static int
encode_check(const struct env_field *fd, const void *base)
{
	const char	*p = (const char *)base + fd->off;

	switch (fd->kind) {
	case FK_NAME:
		if ((fd->fflags & FF_OPTIONAL) &&
		    *(const uint32_t *)(const void *)p == fd->unset)
			return 0;
		return *(const uint32_t *)(const void *)p < fd->nnames ?
		    0 : -1;
	case FK_STATE:
		return (size_t)*(const enum queue_state *)(const void *)p <
		    NELEM(state_names) ? 0 : -1;
	default:
		return 0;
	}
}

/* "key=value\n" for a field of the envelope or of a recipient. */
static void
encode_field(struct env_buf *eb, const struct env_field *fd,
    const void *base)
{
	const void	*p = (const char *)base + fd->off;

	if ((fd->fflags & FF_OPTIONAL) && fd->kind == FK_STR &&
	    (*(char *const *)p == NULL || **(char *const *)p == '\0'))
		return;
	if ((fd->fflags & FF_OPTIONAL) && fd->kind != FK_STR &&
	    *(const uint32_t *)p == fd->unset)
		return;
	eb_str(eb, fd->key);
	eb_put(eb, "=", 1);
	switch (fd->kind) {
	case FK_STR:
		esc_put(eb, *(char *const *)p);
		break;
	case FK_TIME:
		eb_i64(eb, (int64_t)*(const time_t *)p);
		break;
	case FK_SIZE:
		eb_u64(eb, *(const uint64_t *)p);
		break;
	case FK_U32:
	case FK_RCPTS:
		eb_u64(eb, *(const uint32_t *)p);
		break;
	case FK_NAME:
		eb_str(eb, fd->names[*(const uint32_t *)p]);
		break;
	case FK_FLAGS:
		flags_put(eb, fd->flags, *(const uint32_t *)p);
		break;
	case FK_STATE:
		eb_str(eb, state_names[*(const enum queue_state *)p]);
		break;
	case FK_ID:
		eb_str(eb, (const char *)p);
		break;
	case FK_HISTORY:
	case FK_END:
		break;
	}
	eb_put(eb, "\n", 1);
}

/* The envelope's text, in the order of fields[]. */
int
queue_fs_envelope_encode(const struct queue_envelope *e, char **bufp,
    size_t *lenp)
{
	const struct env_field	*fd;
	struct env_buf		 eb;
	size_t			 i;
	uint32_t		 j;

	if (!queue_fs_id_valid(e->id) || e->nrcpt == 0 ||
	    e->nrcpt > QUEUE_MAXRCPT || e->nhist > QUEUE_MAXHIST) {
		errno = EINVAL;
		return -1;
	}
	for (i = 0; i < NELEM(fields); i++) {
		fd = &fields[i];
		for (j = 0; j < (fd->sect == SECT_RCPT ? e->nrcpt : 1); j++)
			if (encode_check(fd, fd->sect == SECT_RCPT ?
			    (const void *)&e->rcpts[j] : (const void *)e) ==
			    -1) {
				errno = EINVAL;
				return -1;
			}
	}
	memset(&eb, 0, sizeof(eb));
	eb_str(&eb, "version=");
	eb_u64(&eb, QUEUE_ENV_VERSION);
	eb_put(&eb, "\n", 1);
	for (i = 0; i < NELEM(fields); i++) {
		fd = &fields[i];
		if (fd->sect != SECT_HEAD)
			continue;
		if (fd->kind != FK_HISTORY) {
			encode_field(&eb, fd, e);
			continue;
		}
		for (j = 0; j < e->nhist; j++) {
			eb_str(&eb, fd->key);
			eb_put(&eb, "=", 1);
			eb_i64(&eb, (int64_t)e->hist[j].when);
			eb_put(&eb, " ", 1);
			esc_put(&eb, e->hist[j].text);
			eb_put(&eb, "\n", 1);
		}
	}
	for (j = 0; j < e->nrcpt; j++)
		for (i = 0; i < NELEM(fields); i++)
			if (fields[i].sect == SECT_RCPT)
				encode_field(&eb, &fields[i], &e->rcpts[j]);
	eb_str(&eb, "end=\n");
	/* A NUL after the text, not counted, as open_memstream() left. */
	eb_grow(&eb, 1);
	if (!eb.error)
		eb.p[eb.len] = '\0';
	if (eb.error) {
		free(eb.p);
		errno = ENOMEM;
		return -1;
	}
	*bufp = eb.p;
	*lenp = eb.len;
	return 0;
}

/* A reason for the log (the decoder's, recovery's): -1. */
int
queue_fs_error(char *err, size_t errsz, const char *fmt, ...)
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

static int
decode_fail(struct env_decoder *d, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	if (vsnprintf(d->why, sizeof(d->why), fmt, ap) < 0)
		strlcpy(d->why, "error", sizeof(d->why));
	va_end(ap);
	return -1;
}

/* "history=<time> <text>": header only, at most QUEUE_MAXHIST. */
static int
decode_history(struct env_decoder *d, const char *line, size_t len)
{
	struct queue_envelope	*e = d->e;
	struct queue_event	*h;
	const char		*sp;
	char			*v;
	time_t			 when;
	int			 r;

	if (d->r != NULL)
		return decode_fail(d, "history after rcpt");
	if (e->nhist == QUEUE_MAXHIST)
		return decode_fail(d, "too much history");
	if ((sp = memchr(line, ' ', len)) == NULL)
		return decode_fail(d, "bad history");
	if ((h = reallocarray(e->hist, e->nhist + 1,
	    sizeof(*e->hist))) == NULL)
		return decode_fail(d, "out of memory");
	e->hist = h;
	if ((v = strndup(line, (size_t)(sp - line))) == NULL)
		return decode_fail(d, "out of memory");
	r = parse_time(v, &when);
	free(v);
	if (r == -1 || esc_get(sp + 1, len - (size_t)(sp + 1 - line),
	    &v) == -1)
		return decode_fail(d, "bad history");
	e->hist[e->nhist].when = when;
	e->hist[e->nhist].text = v;
	e->nhist++;
	return 0;
}

/* "rcpt=": the header and the previous recipient are complete. */
static int
decode_rcpt(struct env_decoder *d)
{
	size_t	 i;

	if ((d->seen & d->head) != d->head)
		return decode_fail(d, "header incomplete");
	if (d->r != NULL && (d->seen & d->rcpt) != d->rcpt)
		return decode_fail(d, "recipient %u incomplete", d->nrcpt);
	if (d->nrcpt == d->e->nrcpt)
		return decode_fail(d, "more than %u recipients", d->e->nrcpt);
	d->r = &d->e->rcpts[d->nrcpt++];
	d->seen &= ~d->rcpt;
	for (i = 0; i < NELEM(fields); i++)
		if (fields[i].sect == SECT_RCPT &&
		    (fields[i].fflags & FF_OPTIONAL)) {
			d->seen &= ~FIELD_BIT(i);
			*(uint32_t *)(void *)((char *)d->r + fields[i].off) =
			    fields[i].unset;
		}
	return 0;
}

/* "end=": empty, and everything announced is there. */
static int
decode_end(struct env_decoder *d, const char *v)
{
	if (*v != '\0')
		return decode_fail(d, "bad value for end");
	if ((d->seen & d->head) != d->head)
		return decode_fail(d, "header incomplete");
	if (d->nrcpt != d->e->nrcpt)
		return decode_fail(d, "%u of %u recipients", d->nrcpt,
		    d->e->nrcpt);
	if (d->r != NULL && (d->seen & d->rcpt) != d->rcpt)
		return decode_fail(d, "recipient %u incomplete", d->nrcpt);
	d->done = 1;
	return 0;
}

/*
 * A decoded value into its field; v is the field's (a string) or freed
 * here.
 */
static int
decode_value(struct env_decoder *d, const struct env_field *fd, char *v)
{
	const char	*errstr;
	void		*p;
	long long	 num;
	int		 i;

	p = (fd->sect == SECT_RCPT ? (char *)d->r : (char *)d->e) + fd->off;
	switch (fd->kind) {
	case FK_STR:
		*(char **)p = v;
		return 0;
	case FK_ID:
		if (!queue_fs_id_valid(v))
			goto bad;
		strlcpy(p, v, QUEUE_IDSZ);
		break;
	case FK_TIME:
		if (parse_time(v, p) == -1)
			goto bad;
		break;
	case FK_SIZE:
		num = strtonum(v, 0, LLONG_MAX, &errstr);
		if (errstr != NULL)
			goto bad;
		*(uint64_t *)p = (uint64_t)num;
		break;
	case FK_U32:
		num = strtonum(v, 0, UINT32_MAX, &errstr);
		if (errstr != NULL)
			goto bad;
		*(uint32_t *)p = (uint32_t)num;
		break;
	case FK_NAME:
		if ((i = name_index(v, fd->names, fd->nnames)) == -1)
			goto bad;
		*(uint32_t *)p = (uint32_t)i;
		break;
	case FK_STATE:
		if ((i = name_index(v, state_names, NELEM(state_names))) ==
		    -1)
			goto bad;
		*(enum queue_state *)p = (enum queue_state)i;
		break;
	case FK_FLAGS:
		if (flags_parse(v, fd->flags, p) == -1)
			goto bad;
		break;
	case FK_RCPTS:
		num = strtonum(v, 1, QUEUE_MAXRCPT, &errstr);
		if (errstr != NULL)
			goto bad;
		if ((d->e->rcpts = calloc((size_t)num,
		    sizeof(*d->e->rcpts))) == NULL) {
			free(v);
			return decode_fail(d, "out of memory");
		}
		d->e->nrcpt = (uint32_t)num;
		break;
	case FK_END:
		i = decode_end(d, v);
		free(v);
		return i;
	case FK_HISTORY:
		goto bad;	/* decode_history()'s */
	}
	free(v);
	return 0;
 bad:
	free(v);
	return decode_fail(d, "bad value for %s", fd->key);
}

/*
 * One "key=value" line (without its newline): the key known and in its
 * section, at most once there, its value well formed.
 */
static int
decode_line(struct env_decoder *d, const char *line, size_t len)
{
	const struct env_field	*fd = NULL;
	const char		*eq;
	char			 key[16], *v;
	size_t			 klen, i;

	if ((eq = memchr(line, '=', len)) == NULL)
		return decode_fail(d, "no '='");
	klen = (size_t)(eq - line);
	if (klen == 0 || klen >= sizeof(key))
		return decode_fail(d, "bad key");
	memcpy(key, line, klen);
	key[klen] = '\0';
	/* The key goes into the log: only print what could be a key. */
	if (strspn(key, "abcdefghijklmnopqrstuvwxyz-") != klen)
		return decode_fail(d, "bad key");
	if (strcmp(key, "version") == 0)
		return decode_fail(d, "version not first");
	for (i = 0; i < NELEM(fields) && fd == NULL; i++)
		if (strcmp(key, fields[i].key) == 0)
			fd = &fields[i];
	if (fd == NULL)
		return decode_fail(d, "unknown key %s", key);
	i = (size_t)(fd - fields);
	line = eq + 1;
	len -= klen + 1;

	if (fd->kind == FK_HISTORY)
		return decode_history(d, line, len);
	if ((fd->fflags & FF_START) && decode_rcpt(d) == -1)
		return -1;
	if (fd->sect == SECT_RCPT && d->r == NULL)
		return decode_fail(d, "%s before rcpt", key);
	if (fd->sect == SECT_HEAD && d->r != NULL)
		return decode_fail(d, "%s after rcpt", key);
	if (fd->sect != SECT_END) {
		if (d->seen & FIELD_BIT(i))
			return decode_fail(d, "%s twice", key);
		d->seen |= FIELD_BIT(i);
	}
	if (esc_get(line, len, &v) == -1)
		return decode_fail(d, "bad value for %s", key);
	return decode_value(d, fd, v);
}

/*
 * Reads an envelope back.  Strict: anything unexpected is an error with
 * a reason in err ("line 7: unknown key foo"), and e is left empty.
 */
int
queue_fs_envelope_decode(const char *buf, size_t len,
    struct queue_envelope *e, char *err, size_t errsz)
{
	struct env_decoder	 d;
	const char		*p, *nl, *end = buf + len;
	char			 version[32];
	size_t			 i;
	int			 lineno = 1;

	memset(e, 0, sizeof(*e));
	memset(&d, 0, sizeof(d));
	d.e = e;
	for (i = 0; i < NELEM(fields); i++) {
		if (fields[i].fflags & (FF_MANY | FF_OPTIONAL))
			continue;
		if (fields[i].sect == SECT_HEAD)
			d.head |= FIELD_BIT(i);
		else if (fields[i].sect == SECT_RCPT)
			d.rcpt |= FIELD_BIT(i);
	}
	if (snprintf(version, sizeof(version), "version=%d\n",
	    QUEUE_ENV_VERSION) < 0 || len < strlen(version) ||
	    memcmp(buf, version, strlen(version)) != 0) {
		queue_fs_envelope_free(e);
		return queue_fs_error(err, errsz, "line 1: not a version %d "
		    "envelope", QUEUE_ENV_VERSION);
	}
	for (p = buf + strlen(version); p < end; p = nl + 1) {
		lineno++;
		if (d.done) {
			decode_fail(&d, "data after end");
			goto fail;
		}
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			decode_fail(&d, "no newline");
			goto fail;
		}
		if (decode_line(&d, p, (size_t)(nl - p)) == -1)
			goto fail;
	}
	if (!d.done) {
		decode_fail(&d, "truncated (no end)");
		goto fail;
	}
	return 0;
 fail:
	queue_fs_envelope_free(e);
	return queue_fs_error(err, errsz, "line %d: %s", lineno, d.why);
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
	free(e->quarantine);
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
