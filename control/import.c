/*
 * splitmxctl import: the LDIF and CSV readers of the other system's
 * export; the directory file and the rules are import_rules.c's.
 */
#include <sys/types.h>

#include <netinet/in.h>
#include <arpa/nameser.h>

#include <ctype.h>
#include <errno.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "splitmx.h"
#include "import.h"

#define IMP_MAXLINE	(16UL * 1024 * 1024)	/* an unfolded LDIF line */
#define IMP_MAXERRORS	100		/* reported before giving up */
#define IMP_CHUNK	(256 * 1024)

struct imp_chunk {
	struct imp_chunk	*next;
	size_t			 used, cap;
	char			 data[];
};

/* The LDIF reader's state. */
struct ldif {
	struct imp_export	*ex;
	const struct imp_attrs	*at;
	char			*line;		/* the unfolded line */
	size_t			 len, cap;
	uint32_t		 start;		/* its first physical line */
	int			 comment;	/* it is a comment */
	int			 have;		/* a line is pending */
	int			 nlines;	/* the record's logical lines */
	int			 skip;		/* the record is refused */
	int			 first;		/* no record seen yet */
	int			 entry;		/* the record's entry is open */
	int			 ntargets;
	unsigned char		*dec;		/* base64 decoded */
	size_t			 deccap;
};

static void	*arena_alloc(struct imp_arena *, size_t);
static int	 utf8_ok(const unsigned char *, size_t);
static int	 value_addr(char *, char **, int *, const char **);
static void	 imp_err(struct imp_export *, uint32_t, const char *, ...)
		    __attribute__((__format__ (printf, 3, 4)));
static int	 too_many(struct imp_export *);
static int	 entry_open(struct imp_export *, uint32_t);
static int	 value_add(struct imp_export *, const char *, uint32_t, int,
		    int);
static int	 attr_is(const char *, size_t, const char *);
static int	 take_value(struct imp_export *, const struct imp_attrs *,
		    const char *, size_t, char *, size_t, uint32_t, int *);
static int	 ldif_logical(struct ldif *);
static void	 ldif_record_end(struct ldif *);
static int	 ldif_parse(struct imp_export *, const struct imp_attrs *,
		    const char *, size_t);
static int	 csv_parse(struct imp_export *, const struct imp_attrs *,
		    const char *, size_t);

static void *
arena_alloc(struct imp_arena *a, size_t len)
{
	struct imp_chunk	*c = a->head;
	size_t			 cap;
	void			*p;

	len = (len + 7) & ~(size_t)7;
	if (c == NULL || c->cap - c->used < len) {
		cap = len > IMP_CHUNK ? len : IMP_CHUNK;
		if ((c = malloc(sizeof(*c) + cap)) == NULL)
			return NULL;
		c->used = 0;
		c->cap = cap;
		c->next = a->head;
		a->head = c;
	}
	p = c->data + c->used;
	c->used += len;
	return p;
}

char *
imp_arena_dup(struct imp_arena *a, const char *s, size_t len)
{
	char	*p;

	if ((p = arena_alloc(a, len + 1)) == NULL)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

void
imp_arena_free(struct imp_arena *a)
{
	struct imp_chunk	*c, *next;

	for (c = a->head; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	a->head = NULL;
}

/*
 * Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates,
 * nothing above U+10FFFF.  An export in Latin-1 fails here instead of
 * putting bytes in the directory that no SMTP client will send.
 */
static int
utf8_ok(const unsigned char *p, size_t len)
{
	const unsigned char	*end = p + len;
	unsigned int		 c, n, min;

	while (p < end) {
		c = *p++;
		if (c < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			min = 0x80;
			c &= 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			min = 0x800;
			c &= 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			min = 0x10000;
			c &= 0x07;
		} else
			return 0;
		if ((size_t)(end - p) < n)
			return 0;
		for (; n > 0; n--, p++) {
			if ((*p & 0xc0) != 0x80)
				return 0;
			c = (c << 6) | (*p & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return 0;
	}
	return 1;
}

int
imp_check_domain(const char *d)
{
	size_t	 len = strlen(d);

	return len > 0 && d[0] != '.' && d[len - 1] != '.' &&
	    valid_domain(d);
}

/* "example.com" is itself; ".example.com" is it and every sub-domain. */
int
imp_domain_match(const char *d, const char *pat)
{
	size_t	 dl = strlen(d), pl = strlen(pat);

	if (pat[0] != '.')
		return strcasecmp(d, pat) == 0;
	if (dl == pl - 1 && strcasecmp(d, pat + 1) == 0)
		return 1;
	return dl > pl && strcasecmp(d + dl - pl, pat) == 0;
}

int
imp_in_domains(const char *addr, const char *const *list, size_t n)
{
	const char	*at;
	size_t		 i;

	if ((at = strrchr(addr, '@')) == NULL)
		return 0;
	for (i = 0; i < n; i++)
		if (imp_domain_match(at + 1, list[i]))
			return 1;
	return 0;
}

const char *
imp_kind_name(int kind)
{
	return kind == IMP_LOCAL ? "local" : "custom";
}

/*
 * A value of an address attribute, trimmed in place.  "smtp:" in any
 * case, or no prefix, is an address ("SMTP:" marks the primary one);
 * another type ("X500:", "SIP:", "x400:") is none of ours: 0, skipped.
 * 1 with *addr, or -1 with *why.
 */
static int
value_addr(char *v, char **addr, int *primary, const char **why)
{
	char		*colon, *at, *end, *p;
	const char	*err;

	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (*v == '\0') {
		*why = "empty value";
		return -1;
	}
	*primary = 0;
	colon = strchr(v, ':');
	at = strchr(v, '@');
	if (colon != NULL && (at == NULL || colon < at)) {
		for (p = v; p < colon; p++)
			if (!isalnum((unsigned char)*p) && *p != '-')
				break;
		if (p == colon && p > v) {
			if (colon - v != 4 || strncasecmp(v, "smtp", 4) != 0)
				return 0;
			*primary = strncmp(v, "SMTP", 4) == 0;
			v = colon + 1;
		}
	}
	str_lower(v);
	/* The directory's own rules: what is written here loads there. */
	if ((err = table_file_check_addr(v, 0)) != NULL) {
		*why = err;
		return -1;
	}
	*addr = v;
	return 1;
}

void
imp_export_init(struct imp_export *ex, const char *name, FILE *errfp)
{
	memset(ex, 0, sizeof(*ex));
	ex->name = name;
	ex->errfp = errfp;
}

void
imp_export_free(struct imp_export *ex)
{
	free(ex->ents);
	free(ex->vals);
	imp_arena_free(&ex->arena);
	ex->ents = NULL;
	ex->vals = NULL;
	ex->nents = ex->nvals = ex->capents = ex->capvals = 0;
}

static void
imp_err(struct imp_export *ex, uint32_t line, const char *fmt, ...)
{
	va_list	 ap;

	ex->errors++;
	if (ex->errfp == NULL || ex->errors > IMP_MAXERRORS)
		return;
	if (line > 0)
		fprintf(ex->errfp, "%s:%u: ", ex->name, line);
	else
		fprintf(ex->errfp, "%s: ", ex->name);
	va_start(ap, fmt);
	vfprintf(ex->errfp, fmt, ap);
	va_end(ap);
	fputc('\n', ex->errfp);
}

/* Past IMP_MAXERRORS the reader stops: the file is refused anyway. */
static int
too_many(struct imp_export *ex)
{
	if (ex->errors <= IMP_MAXERRORS)
		return 0;
	if (ex->errfp != NULL && ex->errors == IMP_MAXERRORS + 1)
		fprintf(ex->errfp, "%s: too many errors, stopped reading\n",
		    ex->name);
	ex->errors++;
	return 1;
}

static int
entry_open(struct imp_export *ex, uint32_t line)
{
	struct imp_entry	*e;
	size_t			 cap;

	if (ex->nents == ex->capents) {
		cap = ex->capents ? ex->capents * 2 : 1024;
		if ((e = reallocarray(ex->ents, cap, sizeof(*e))) == NULL)
			return -1;
		ex->ents = e;
		ex->capents = cap;
	}
	e = &ex->ents[ex->nents++];
	memset(e, 0, sizeof(*e));
	e->line = line;
	e->first = (uint32_t)ex->nvals;
	return 0;
}

static int
value_add(struct imp_export *ex, const char *addr, uint32_t line,
    int primary, int target)
{
	struct imp_value	*v;
	size_t			 cap;

	if (ex->nvals == ex->capvals) {
		cap = ex->capvals ? ex->capvals * 2 : 4096;
		if ((v = reallocarray(ex->vals, cap, sizeof(*v))) == NULL)
			return -1;
		ex->vals = v;
		ex->capvals = cap;
	}
	v = &ex->vals[ex->nvals];
	if ((v->addr = imp_arena_dup(&ex->arena, addr, strlen(addr))) == NULL)
		return -1;
	v->line = line;
	v->primary = (uint8_t)primary;
	v->target = (uint8_t)target;
	ex->nvals++;
	ex->ents[ex->nents - 1].n++;
	return 0;
}

int
imp_export_entry(struct imp_export *ex, uint32_t line, uint32_t flags,
    const char *foreign, uint32_t fline)
{
	struct imp_entry	*e;

	if (entry_open(ex, line) == -1)
		return -1;
	e = &ex->ents[ex->nents - 1];
	e->flags = flags;
	e->fline = fline;
	if (foreign != NULL && (e->foreign = imp_arena_dup(&ex->arena, foreign,
	    strlen(foreign))) == NULL)
		return -1;
	return 0;
}

int
imp_export_value(struct imp_export *ex, const char *addr, uint32_t line,
    int primary, int target)
{
	if (ex->nents == 0)
		return -1;
	return value_add(ex, addr, line, primary, target);
}

/* An attribute description "name;options" is name, in any case. */
static int
attr_is(const char *desc, size_t len, const char *name)
{
	const char	*semi;

	if ((semi = memchr(desc, ';', len)) != NULL)
		len = (size_t)(semi - desc);
	return strlen(name) == len && strncasecmp(desc, name, len) == 0;
}

/*
 * One value of an attribute or column of the open entry: an address,
 * a target, or nothing of ours.  *ntargets counts the entry's targets.
 * -1 only when memory runs out; a bad value is an error reported here.
 */
static int
take_value(struct imp_export *ex, const struct imp_attrs *at,
    const char *desc, size_t dlen, char *val, size_t vlen, uint32_t line,
    int *ntargets)
{
	struct imp_entry	*e = &ex->ents[ex->nents - 1];
	const char		*why;
	char			*addr;
	size_t			 i;
	int			 primary, r, target;

	target = at->target != NULL && attr_is(desc, dlen, at->target);
	for (i = 0; !target && i < at->naddr; i++)
		if (attr_is(desc, dlen, at->addr[i]))
			break;
	if (!target && i == at->naddr)
		return 0;
	if (memchr(val, '\0', vlen) != NULL) {
		imp_err(ex, line, "%.*s: NUL byte in the value", (int)dlen,
		    desc);
		return 0;
	}
	if (target && ++*ntargets > 1) {
		imp_err(ex, line, "%.*s: more than one value", (int)dlen,
		    desc);
		return 0;
	}
	if ((r = value_addr(val, &addr, &primary, &why)) == -1) {
		imp_err(ex, line, "%.*s: \"%s\": %s", (int)dlen, desc, val,
		    why);
		return 0;
	}
	if (r == 0) {
		/* X500:, SIP:...: an address of ours only as a target. */
		if (target && (e->foreign = imp_arena_dup(&ex->arena, val,
		    strlen(val))) == NULL)
			return -1;
		if (target) {
			e->flags |= IMPE_FOREIGN;
			e->fline = line;
		}
		return 0;
	}
	return value_add(ex, addr, line, primary, target);
}

enum imp_format
imp_sniff(const char *buf, size_t len)
{
	const char	*p = buf, *end = buf + len, *nl;

	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if (nl == p || (nl == p + 1 && *p == '\r') || *p == '#' ||
		    *p == ' ')
			continue;
		if ((size_t)(nl - p) >= 3 && strncasecmp(p, "dn:", 3) == 0)
			return IMP_LDIF;
		if ((size_t)(nl - p) >= 8 && strncasecmp(p, "version:", 8) == 0)
			return IMP_LDIF;
		return IMP_CSV;
	}
	return IMP_CSV;
}

int
imp_parse(struct imp_export *ex, enum imp_format fmt,
    const struct imp_attrs *at, const char *buf, size_t len)
{
	if (len > IMP_MAXSIZE) {
		imp_err(ex, 0, "larger than %lu bytes", IMP_MAXSIZE);
		return -1;
	}
	if (fmt == IMP_AUTO)
		fmt = imp_sniff(buf, len);
	if ((fmt == IMP_LDIF ? ldif_parse(ex, at, buf, len) :
	    csv_parse(ex, at, buf, len)) == -1) {
		imp_err(ex, 0, "%s", strerror(errno));
		return -1;
	}
	return ex->errors > 0 ? -1 : 0;
}

/* ----------------------------------------------------------------- LDIF */

/*
 * RFC 2849 as ldapsearch -LLL, slapcat and Domino write it: records
 * separated by empty lines, each opened by "dn:"; a line that begins
 * with one space continues the one before (folding); "#" lines are
 * comments (and fold too); "name: value", "name:: base64".  Values by
 * URL ("name:< file:///...") are refused: an export names no files.
 */
static int
ldif_parse(struct imp_export *ex, const struct imp_attrs *at,
    const char *buf, size_t len)
{
	struct ldif	 l;
	const char	*p = buf, *end = buf + len, *nl;
	size_t		 plen, ncap;
	uint32_t	 lineno = 0;
	char		*n;
	int		 ret = -1;

	memset(&l, 0, sizeof(l));
	l.ex = ex;
	l.at = at;
	l.first = 1;
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	for (; p < end && !too_many(ex); p = nl + 1) {
		lineno++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		plen = (size_t)(nl - p);
		if (plen > 0 && p[plen - 1] == '\r')
			plen--;
		if (plen > 0 && p[0] == ' ') {
			if (!l.have) {
				imp_err(ex, lineno, "a continued line (it "
				    "begins with a space) with no line before");
				continue;
			}
			if (l.comment || l.skip)
				continue;
			p++;
			plen--;
		} else {
			if (l.have && ldif_logical(&l) == -1)
				goto done;
			l.have = 0;
			if (plen == 0) {
				ldif_record_end(&l);
				continue;
			}
			l.have = 1;
			l.comment = p[0] == '#';
			l.start = lineno;
			l.len = 0;
			if (l.comment)
				continue;
		}
		if (l.len + plen + 1 > IMP_MAXLINE) {
			imp_err(ex, l.start, "line longer than %lu bytes",
			    IMP_MAXLINE);
			l.skip = 1;
			continue;
		}
		if (l.len + plen + 1 > l.cap) {
			ncap = l.cap ? l.cap : 1024;
			while (ncap < l.len + plen + 1)
				ncap *= 2;
			if ((n = realloc(l.line, ncap)) == NULL)
				goto done;
			l.line = n;
			l.cap = ncap;
		}
		memcpy(l.line + l.len, p, plen);
		l.len += plen;
		l.line[l.len] = '\0';
	}
	if (l.have && !too_many(ex) && ldif_logical(&l) == -1)
		goto done;
	ldif_record_end(&l);
	ret = 0;
done:
	free(l.line);
	free(l.dec);
	return ret;
}

static void
ldif_record_end(struct ldif *l)
{
	l->nlines = 0;
	l->skip = 0;
	l->entry = 0;
	l->ntargets = 0;
}

/* One unfolded line of a record.  -1 only when memory runs out. */
static int
ldif_logical(struct ldif *l)
{
	struct imp_export	*ex = l->ex;
	char			*s = l->line, *colon, *val, *p;
	size_t			 dlen, vlen, need;
	unsigned char		*nd;
	int			 n, b64;

	if (l->comment || l->skip)
		return 0;
	if (memchr(s, '\0', l->len) != NULL) {
		imp_err(ex, l->start, "NUL byte in the line");
		l->skip = 1;
		return 0;
	}
	if (!utf8_ok((unsigned char *)s, l->len)) {
		imp_err(ex, l->start, "not UTF-8 (8-bit bytes of another "
		    "character set?)");
		l->skip = 1;
		return 0;
	}
	if ((colon = strchr(s, ':')) == NULL) {
		imp_err(ex, l->start, "not \"attribute: value\"");
		l->skip = 1;
		return 0;
	}
	dlen = (size_t)(colon - s);
	for (p = s; p < colon; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != ';' &&
		    *p != '.' && *p != '=')	/* AD: "x;range=0-1499" */
			break;
	if (dlen == 0 || p != colon) {
		imp_err(ex, l->start, "invalid attribute name \"%.*s\"",
		    (int)dlen, s);
		l->skip = 1;
		return 0;
	}
	val = colon + 1;
	b64 = *val == ':';
	if (*val == '<') {
		imp_err(ex, l->start, "%.*s: values by URL (\":<\") are not "
		    "read", (int)dlen, s);
		l->skip = 1;
		return 0;
	}
	if (b64)
		val++;
	while (*val == ' ')
		val++;
	vlen = l->len - (size_t)(val - s);
	if (b64) {
		need = vlen / 4 * 3 + 3;
		if (need > l->deccap) {
			if ((nd = realloc(l->dec, need)) == NULL)
				return -1;
			l->dec = nd;
			l->deccap = need;
		}
		if ((n = b64_pton(val, l->dec, need)) == -1) {
			imp_err(ex, l->start, "%.*s: invalid base64 value",
			    (int)dlen, s);
			l->skip = 1;
			return 0;
		}
		/* The decoded value replaces the text, in place. */
		memcpy(val, l->dec, (size_t)n);
		vlen = (size_t)n;
		val[vlen] = '\0';
	}

	if (l->nlines++ == 0) {
		if (l->first && attr_is(s, dlen, "version")) {
			if (strcmp(val, "1") != 0) {
				imp_err(ex, l->start, "LDIF version \"%s\" "
				    "(only 1 is known)", val);
				l->skip = 1;
			}
			l->nlines = 0;
			l->first = 0;
			return 0;
		}
		l->first = 0;
		if (!attr_is(s, dlen, "dn")) {
			imp_err(ex, l->start, "a record begins with \"dn:\", "
			    "not \"%.*s:\"", (int)dlen, s);
			l->skip = 1;
			return 0;
		}
		if (entry_open(ex, l->start) == -1)
			return -1;
		l->entry = 1;
		return 0;
	}
	if (attr_is(s, dlen, "changetype")) {
		if (strcasecmp(val, "add") != 0) {
			imp_err(ex, l->start, "a change record (changetype: "
			    "%s) is not an export", val);
			ex->ents[ex->nents - 1].n = 0;
			l->skip = 1;
		}
		return 0;
	}
	if (b64 && !utf8_ok((unsigned char *)val, vlen)) {
		size_t	 i;
		int	 ours = l->at->target && attr_is(s, dlen,
			    l->at->target);

		for (i = 0; !ours && i < l->at->naddr; i++)
			ours = attr_is(s, dlen, l->at->addr[i]);
		if (ours)
			imp_err(ex, l->start, "%.*s: the base64 value is "
			    "not UTF-8", (int)dlen, s);
		return 0;
	}
	return take_value(ex, l->at, s, dlen, val, vlen, l->start,
	    &l->ntargets);
}

/* ------------------------------------------------------------------ CSV */

/* A field of a CSV record: where its text is in the scratch buffer. */
struct csv_field {
	size_t		 off, len;
	uint32_t	 line;
};

struct csv {
	struct csv_field *f;
	size_t		 nf, capf;
	char		*text;
	size_t		 tlen, tcap;
};

static int	 csv_put(struct csv *, char);
static int	 csv_field(struct csv *, uint32_t);
static int	 csv_record(struct imp_export *, const struct imp_attrs *,
		    struct csv *, int *, int *, int *, uint32_t);

static int
csv_put(struct csv *c, char ch)
{
	char	*n;
	size_t	 cap;

	if (c->tlen + 1 >= c->tcap) {
		cap = c->tcap ? c->tcap * 2 : 4096;
		if ((n = realloc(c->text, cap)) == NULL)
			return -1;
		c->text = n;
		c->tcap = cap;
	}
	c->text[c->tlen++] = ch;
	return 0;
}

/* Ends the field being read (its text is NUL-terminated). */
static int
csv_field(struct csv *c, uint32_t line)
{
	struct csv_field	*f;
	size_t			 cap, off;

	off = c->nf == 0 ? 0 : c->f[c->nf - 1].off + c->f[c->nf - 1].len + 1;
	if (csv_put(c, '\0') == -1)
		return -1;
	if (c->nf == c->capf) {
		cap = c->capf ? c->capf * 2 : 16;
		if ((f = reallocarray(c->f, cap, sizeof(*f))) == NULL)
			return -1;
		c->f = f;
		c->capf = cap;
	}
	f = &c->f[c->nf++];
	f->off = off;
	f->len = c->tlen - off - 1;
	f->line = line;
	return 0;
}

/*
 * RFC 4180: fields separated by commas, records by CRLF (or LF); a
 * field in double quotes may hold commas, line breaks and "" for a
 * quote.  The first record names the columns.  A cell of an address
 * column may hold several addresses separated by ";" (as csvde writes
 * multi-valued attributes such as proxyAddresses).
 */
static int
csv_parse(struct imp_export *ex, const struct imp_attrs *at,
    const char *buf, size_t len)
{
	struct csv	 c;
	const char	*p = buf, *end = buf + len, *q, *nl;
	uint32_t	 lineno = 1, rline, qline;
	int		 col[IMP_MAXATTRS + 2], ncols = -1, ret = -1;
	int		 bad = 0;
	size_t		 i;

	memset(&c, 0, sizeof(c));
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	/* Every line UTF-8 and free of NUL before any field is read. */
	for (q = p; q < end; q = nl + 1, lineno++) {
		if ((nl = memchr(q, '\n', (size_t)(end - q))) == NULL)
			nl = end;
		if (memchr(q, '\0', (size_t)(nl - q)) != NULL) {
			imp_err(ex, lineno, "NUL byte in the line");
			bad = 1;
		} else if (!utf8_ok((const unsigned char *)q,
		    (size_t)(nl - q))) {
			imp_err(ex, lineno, "not UTF-8 (8-bit bytes of another "
			    "character set?)");
			bad = 1;
		}
		if (too_many(ex))
			return 0;
	}
	if (bad)
		return 0;
	for (i = 0; i < IMP_MAXATTRS + 2; i++)
		col[i] = -1;

	lineno = 1;
	while (p < end && !too_many(ex)) {
		c.nf = 0;
		c.tlen = 0;
		rline = lineno;
		for (;;) {
			if (p < end && *p == '"') {
				qline = lineno;
				for (p++;; p++) {
					if (p == end) {
						imp_err(ex, qline, "a quoted "
						    "field is not closed");
						ret = 0;
						goto done;
					}
					if (*p == '"' && p + 1 < end &&
					    p[1] == '"') {
						p++;
					} else if (*p == '"')
						break;
					if (*p == '\n')
						lineno++;
					if (csv_put(&c, *p) == -1)
						goto done;
				}
				p++;
				if (p < end && *p != ',' && *p != '\n' &&
				    !(*p == '\r' && p + 1 < end && p[1] == '\n')
				    && !(*p == '\r' && p + 1 == end)) {
					imp_err(ex, lineno, "text after the "
					    "closing quote of a field");
					while (p < end && *p != '\n')
						p++;
					c.nf = 0;
					rline = 0;
				}
			} else {
				while (p < end && *p != ',' && *p != '\n' &&
				    !(*p == '\r' && (p + 1 == end ||
				    p[1] == '\n'))) {
					if (*p == '"' && rline != 0) {
						imp_err(ex, lineno, "a quote "
						    "inside a field that does "
						    "not begin with one");
						rline = 0;
					}
					if (csv_put(&c, *p++) == -1)
						goto done;
				}
			}
			if (csv_field(&c, lineno) == -1)
				goto done;
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			if (p < end && *p == '\r')
				p++;
			if (p < end && *p == '\n')
				p++;
			lineno++;
			break;
		}
		if (rline == 0)
			continue;	/* reported */
		if (c.nf == 1 && c.f[0].len == 0)
			continue;	/* an empty line */
		if (csv_record(ex, at, &c, col, &ncols, &bad, rline) == -1)
			goto done;
		if (bad) {
			/* Without the header nothing else makes sense. */
			ret = 0;
			goto done;
		}
	}
	if (ncols == -1 && ex->errors == 0)
		imp_err(ex, 1, "no header line (address,target[,kind])");
	ret = 0;
done:
	free(c.f);
	free(c.text);
	return ret;
}

/*
 * The header, or a row.  col[0 .. naddr) are the address columns,
 * col[naddr] the target, col[naddr + 1] the kind (or -1).
 */
static int
csv_record(struct imp_export *ex, const struct imp_attrs *at,
    struct csv *c, int *col, int *ncols, int *fatal, uint32_t line)
{
	struct imp_entry	*e;
	char			*name, *v, *next, *kind;
	size_t			 i, j;
	int			 ntargets = 0, k, nseen = 0;
	const char		*want;

	if (*ncols == -1) {
		for (i = 0; i < c->nf; i++) {
			name = c->text + c->f[i].off;
			while (*name == ' ')
				name++;
			for (v = name + strlen(name); v > name &&
			    v[-1] == ' '; v--)
				*(v - 1) = '\0';
			for (j = 0; j < at->naddr + 2; j++) {
				want = j < at->naddr ? at->addr[j] :
				    j == at->naddr ? at->target : at->kind;
				if (want != NULL && col[j] == -1 &&
				    strcasecmp(name, want) == 0)
					col[j] = (int)i;
			}
		}
		for (j = 0; j < at->naddr + 1; j++) {
			want = j < at->naddr ? at->addr[j] : at->target;
			if (want != NULL && col[j] == -1) {
				imp_err(ex, line, "the header has no \"%s\" "
				    "column", want);
				*fatal = 1;
			}
		}
		*ncols = (int)c->nf;
		return 0;
	}
	if (c->nf != (size_t)*ncols) {
		imp_err(ex, line, "%zu fields, the header has %d", c->nf,
		    *ncols);
		return 0;
	}
	if (entry_open(ex, line) == -1)
		return -1;
	e = &ex->ents[ex->nents - 1];
	for (j = 0; j < at->naddr + 1; j++) {
		if (col[j] == -1)
			continue;
		want = j < at->naddr ? at->addr[j] : at->target;
		for (v = c->text + c->f[col[j]].off; v != NULL; v = next) {
			if ((next = strchr(v, ';')) != NULL)
				*next++ = '\0';
			while (*v == ' ' || *v == '\t')
				v++;
			if (*v == '\0')
				continue;
			nseen += j < at->naddr;
			if (take_value(ex, &(struct imp_attrs){
			    .addr = { j < at->naddr ? want : NULL },
			    .naddr = j < at->naddr,
			    .target = j < at->naddr ? NULL : want }, want,
			    strlen(want), v, strlen(v), c->f[col[j]].line,
			    &ntargets) == -1)
				return -1;
		}
	}
	/* A row of X500: proxies only is no error, an empty one is. */
	if (nseen == 0 && at->naddr > 0)
		imp_err(ex, line, "no address in the row");
	if ((k = col[at->naddr + 1]) != -1) {
		kind = c->text + c->f[k].off;
		while (*kind == ' ')
			kind++;
		for (v = kind + strlen(kind); v > kind && v[-1] == ' '; v--)
			*(v - 1) = '\0';
		if (strcasecmp(kind, "local") == 0) {
			e->flags |= IMPE_LOCAL;
			if (ntargets > 0 || (e->flags & IMPE_FOREIGN))
				imp_err(ex, line, "a local mailbox has no "
				    "target");
		} else if (*kind != '\0' && strcasecmp(kind, "custom") != 0)
			imp_err(ex, line, "kind \"%s\" (local or custom)",
			    kind);
	}
	return 0;
}
