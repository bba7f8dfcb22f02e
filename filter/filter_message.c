/*
 * The message at its end, as the milters see it and as they change it:
 * the file the smtp process wrote (read-only here), its header section
 * split into fields, and the modified copy written into the file that
 * the queue has put in the message's place.  Our Received: header is
 * before the client's text: no milter sees it and it stays first.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "splitmx.h"
#include "filter.h"

#define FILTER_READ_STEP	16384
#define FILTER_WBUF		65536

/* A field of the message being written: the original or a change. */
struct out_hdr {
	const char	*line;		/* the original field, or NULL */
	size_t		 linelen;
	const char	*name;
	size_t		 namelen;
	const char	*raw;		/* a new value, after the colon */
	int		 deleted;
};

/* A buffered writer that remembers the first error. */
struct wbuf {
	int		 fd;
	char		*buf;
	size_t		 len;
	uint64_t	 total;
	int		 error;		/* errno */
};

static int	message_parse(struct filter_message *, size_t);
static int	message_field(void *, const char *, size_t, const char *,
		    size_t);
static void	w_put(struct wbuf *, const void *, size_t);
static void	w_flush(struct wbuf *);
static void	w_copy(struct wbuf *, int, uint64_t, uint64_t);
static void	w_body(struct wbuf *, const uint8_t *, size_t);
static size_t	out_pos(struct out_hdr *, size_t, uint32_t);
static ssize_t	out_find(struct out_hdr *, size_t, const char *, uint32_t);

struct filter_message *
filter_message_new(const char *id, uint64_t size, uint64_t offset)
{
	struct filter_message	*msg;

	if ((msg = calloc(1, sizeof(*msg))) == NULL)
		fatal("calloc");
	strlcpy(msg->id, id, sizeof(msg->id));
	msg->size = size;
	msg->offset = offset;
	msg->body = size;
	msg->fd = -1;
	filter_changes_init(&msg->ch);
	return msg;
}

void
filter_message_free(struct filter_message *msg)
{
	if (msg == NULL)
		return;
	if (msg->fd != -1)
		close(msg->fd);
	free(msg->section);
	free(msg->hdrs);
	filter_changes_clear(&msg->ch);
	free(msg);
}

/*
 * The header section: read until its end is in the buffer (a blank line,
 * or the end of the file), at most FILTER_HEADER_MAX octets, then split.
 */
int
filter_message_load(struct filter_message *msg, int fd, char *why,
    size_t whylen)
{
	uint64_t	 left = msg->size - msg->offset;
	size_t		 have = 0, want, cap = 0;
	ssize_t		 n;
	char		*p;

	msg->fd = fd;
	for (;;) {
		want = left - have > FILTER_READ_STEP ? FILTER_READ_STEP :
		    (size_t)(left - have);
		if (have + want > FILTER_HEADER_MAX)
			want = FILTER_HEADER_MAX - have;
		if (have + want + 1 > cap) {
			cap = have + want + 1;
			if ((p = realloc(msg->section, cap)) == NULL)
				fatal("realloc");
			msg->section = p;
		}
		if (want > 0) {
			if ((n = pread(fd, msg->section + have, want,
			    (off_t)(msg->offset + have))) <= 0) {
				(void)snprintf(why, whylen, "read: %s",
				    n == 0 ? "short file" : strerror(errno));
				return -1;
			}
			have += (size_t)n;
		}
		msg->section[have] = '\0';
		if (memmem(msg->section, have, "\r\n\r\n", 4) != NULL ||
		    (have >= 2 && msg->section[0] == '\r' &&
		    msg->section[1] == '\n') || have == left ||
		    have >= FILTER_HEADER_MAX)
			break;
	}
	if (message_parse(msg, have) == -1) {
		(void)snprintf(why, whylen, "header section over %d octets or "
		    "%d fields", FILTER_HEADER_MAX, FILTER_HEADERS_MAX);
		return -1;
	}
	return 0;
}

/* One field of the section, as milter_header_split() found it. */
static int
message_field(void *arg, const char *name, size_t namelen, const char *raw,
    size_t rawlen)
{
	struct filter_message	*msg = arg;
	struct filter_header	*h;
	size_t			 cap;
	void			*tmp;

	if (msg->nhdrs == FILTER_HEADERS_MAX)
		return -1;
	if (msg->nhdrs == msg->caphdrs) {
		cap = msg->caphdrs ? msg->caphdrs * 2 : 32;
		if ((tmp = reallocarray(msg->hdrs, cap,
		    sizeof(*msg->hdrs))) == NULL)
			fatal("reallocarray");
		msg->hdrs = tmp;
		msg->caphdrs = cap;
	}
	h = &msg->hdrs[msg->nhdrs++];
	h->name = name;
	h->namelen = namelen;
	h->raw = raw;
	h->rawlen = rawlen;
	return 0;
}

/*
 * The section into fields (filter_parse.c, which the fuzzer covers).
 * The smtp process has checked that every line ends with CR LF.  -1:
 * more fields than we show, or a section that goes on past what we
 * read (our limit).
 */
static int
message_parse(struct filter_message *msg, size_t have)
{
	long	 r;

	msg->nhdrs = 0;
	r = milter_header_split(msg->section, have,
	    msg->offset + have == msg->size, &msg->sep, message_field, msg);
	if (r < 0)
		return -1;
	msg->body = msg->offset + (uint64_t)r;
	return 0;
}

/*
 * A value as a milter gets it: its line breaks as LF (with the folding
 * white space after them), and without the one space after the colon
 * unless it negotiated HDR_LEADSPC.
 */
char *
filter_message_hvalue(const struct filter_header *h, int leadspc)
{
	const char	*s = h->raw, *e = h->raw + h->rawlen;
	char		*out, *o;

	if (!leadspc && s < e && *s == ' ')
		s++;
	if ((out = malloc((size_t)(e - s) + 1)) == NULL)
		fatal("malloc");
	for (o = out; s < e; s++)
		if (!(*s == '\r' && s + 1 < e && s[1] == '\n'))
			*o++ = *s;
	*o = '\0';
	return out;
}

ssize_t
filter_message_body(struct filter_message *msg, uint64_t off, uint8_t *buf,
    size_t len)
{
	ssize_t	 n;

	if (off >= msg->size)
		return 0;
	if (len > msg->size - off)
		len = (size_t)(msg->size - off);
	while ((n = pread(msg->fd, buf, len, (off_t)off)) == -1 &&
	    errno == EINTR)
		;
	return n;
}

int
filter_message_rewrites(const struct filter_message *msg)
{
	return !TAILQ_EMPTY(&msg->ch.mods) || msg->ch.replbody;
}

static void
w_flush(struct wbuf *w)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (off < w->len && w->error == 0) {
		if ((n = write(w->fd, w->buf + off, w->len - off)) == -1) {
			if (errno != EINTR)
				w->error = errno;
			continue;
		}
		off += (size_t)n;
	}
	w->len = 0;
}

static void
w_put(struct wbuf *w, const void *p, size_t len)
{
	const char	*s = p;
	size_t		 k;

	w->total += len;
	while (len > 0 && w->error == 0) {
		if (w->len == FILTER_WBUF)
			w_flush(w);
		k = FILTER_WBUF - w->len;
		if (k > len)
			k = len;
		memcpy(w->buf + w->len, s, k);
		w->len += k;
		s += k;
		len -= k;
	}
}

/* [from, to) of the original file. */
static void
w_copy(struct wbuf *w, int fd, uint64_t from, uint64_t to)
{
	char	 buf[FILTER_READ_STEP];
	ssize_t	 n;
	size_t	 want;

	while (from < to && w->error == 0) {
		want = to - from > sizeof(buf) ? sizeof(buf) :
		    (size_t)(to - from);
		if ((n = pread(fd, buf, want, (off_t)from)) <= 0) {
			if (n == -1 && errno == EINTR)
				continue;
			w->error = n == 0 ? EIO : errno;
			return;
		}
		w_put(w, buf, (size_t)n);
		from += (uint64_t)n;
	}
}

/*
 * A replaced body, with CR LF line ends whatever the milter used (a bare
 * LF or CR becomes CR LF): the rest of the gateway relies on them.
 */
static void
w_body(struct wbuf *w, const uint8_t *b, size_t len)
{
	size_t	 i, run = 0;

	for (i = 0; i < len; i++) {
		if (b[i] == '\r' && i + 1 < len && b[i + 1] == '\n') {
			i++;
			continue;
		}
		if (b[i] != '\r' && b[i] != '\n')
			continue;
		w_put(w, b + run, i - run);
		w_put(w, "\r\n", 2);
		run = i + 1;
	}
	w_put(w, b + run, len - run);
	if (len > 0 && b[len - 1] != '\n' && b[len - 1] != '\r')
		w_put(w, "\r\n", 2);
}

/* The index in o of the idx-th field still there (0: the first). */
static size_t
out_pos(struct out_hdr *o, size_t n, uint32_t idx)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (!o[i].deleted && idx-- == 0)
			return i;
	return n;
}

/* The idx-th (1-based) field named name still there, or -1. */
static ssize_t
out_find(struct out_hdr *o, size_t n, const char *name, uint32_t idx)
{
	size_t	 i, len = strlen(name);

	if (idx == 0)
		idx = 1;
	for (i = 0; i < n; i++)
		if (!o[i].deleted && o[i].namelen == len &&
		    strncasecmp(o[i].name, name, len) == 0 && --idx == 0)
			return (ssize_t)i;
	return -1;
}

/*
 * The modified message into fd: our Received: header as it was, the
 * header fields with the changes applied in the order the milters asked
 * (INSHEADER counts from the first field after ours; CHGHEADER's index
 * is among the fields of that name, and a missing one is added), the
 * blank line, and the body, replaced or copied.  Unchanged fields are
 * copied byte for byte.
 */
int
filter_message_write(struct filter_message *msg, int fd, uint64_t *size)
{
	struct filter_mod	*mod;
	struct out_hdr		*o;
	struct wbuf		 w;
	size_t			 n = msg->nhdrs, cap, i, pos;
	ssize_t			 at;
	uint64_t		 bodylen;

	cap = n + 16;
	TAILQ_FOREACH(mod, &msg->ch.mods, entry)
		cap++;
	if ((o = calloc(cap, sizeof(*o))) == NULL)
		fatal("calloc");
	for (i = 0; i < n; i++) {
		o[i].line = msg->hdrs[i].name;
		o[i].linelen = (size_t)(msg->hdrs[i].raw +
		    msg->hdrs[i].rawlen - msg->hdrs[i].name);
		o[i].name = msg->hdrs[i].name;
		o[i].namelen = msg->hdrs[i].namelen;
	}
	TAILQ_FOREACH(mod, &msg->ch.mods, entry) {
		at = -1;
		pos = n;
		if (mod->cmd == SMFIR_CHGHEADER &&
		    (at = out_find(o, n, mod->name, mod->index)) != -1) {
			if (mod->value == NULL)
				o[at].deleted = 1;
			else {
				o[at].line = NULL;
				o[at].raw = mod->value;
			}
			continue;
		}
		if (mod->value == NULL)
			continue;	/* deleting what is not there */
		if (mod->cmd == SMFIR_INSHEADER) {
			pos = out_pos(o, n, mod->index);
			memmove(&o[pos + 1], &o[pos], (n - pos) * sizeof(*o));
		}
		memset(&o[pos], 0, sizeof(*o));
		o[pos].name = mod->name;
		o[pos].namelen = strlen(mod->name);
		o[pos].raw = mod->value;
		n++;
	}

	memset(&w, 0, sizeof(w));
	w.fd = fd;
	if ((w.buf = malloc(FILTER_WBUF)) == NULL)
		fatal("malloc");
	w_copy(&w, msg->fd, 0, msg->offset);
	for (i = 0; i < n; i++) {
		if (o[i].deleted)
			continue;
		if (o[i].line != NULL)
			w_put(&w, o[i].line, o[i].linelen);
		else {
			w_put(&w, o[i].name, o[i].namelen);
			w_put(&w, ":", 1);
			w_put(&w, o[i].raw, strlen(o[i].raw));
		}
		w_put(&w, "\r\n", 2);
	}
	bodylen = msg->ch.replbody ? msg->ch.bodylen : msg->size - msg->body;
	if (msg->sep || bodylen > 0)
		w_put(&w, "\r\n", 2);
	if (msg->ch.replbody)
		w_body(&w, msg->ch.body, msg->ch.bodylen);
	else
		w_copy(&w, msg->fd, msg->body, msg->size);
	w_flush(&w);
	free(w.buf);
	free(o);
	if (w.error != 0) {
		errno = w.error;
		return -1;
	}
	*size = w.total;
	return 0;
}
