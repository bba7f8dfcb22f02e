/*
 * Decoders of what a milter sends (protocol version 6): packets, the
 * OPTNEG reply, every reply and modification, and REPLYCODE's text
 * turned into an SMTP reply we can send; and the splitting of a
 * client's header section into the fields milters are shown.  Every
 * byte here is hostile: lengths are checked before use, strings must
 * end inside the packet, and anything that does not fit the protocol
 * is refused with a reason.
 */
#include <sys/types.h>

#include <stdint.h>
#include <string.h>

#include "filter_parse.h"

#define MILTER_ADDR_MAX		512	/* as SMX_ADDRSZ */
#define MILTER_LINE_MAX		510	/* an SMTP reply line, RFC 5321 */
#define MILTER_HDRNAME_MAX	998

static uint32_t	get32(const uint8_t *);
static int	take_str(const uint8_t **, size_t *, const char **);
static int	line_check(const char *, size_t, int *, int *, size_t *);
static int	put(char *, size_t, size_t *, const char *, size_t);

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* A NUL-terminated string at *p within *left: -1 if it does not end. */
static int
take_str(const uint8_t **p, size_t *left, const char **out)
{
	const uint8_t	*nul;

	if (*left == 0 || (nul = memchr(*p, '\0', *left)) == NULL)
		return -1;
	*out = (const char *)*p;
	*left -= (size_t)(nul - *p) + 1;
	*p = nul + 1;
	return 0;
}

int
milter_parse_packet(const uint8_t *buf, size_t len, int *cmd,
    const uint8_t **data, size_t *dlen)
{
	uint32_t	 n;

	if (len < 4)
		return 0;
	n = get32(buf);
	if (n == 0 || n - 1 > MILTER_PACKET_MAX)
		return -1;
	if (len - 4 < n)
		return 0;
	*cmd = buf[4];
	*data = buf + MILTER_HDRSZ;
	*dlen = n - 1;
	return (int)(n + 4);
}

int
milter_macro_list_ok(const char *s)
{
	size_t	 n = 0;

	for (; *s != '\0'; s++) {
		if (*s == ' ') {
			n = 0;
			continue;
		}
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e ||
		    ++n > 64)
			return 0;
	}
	return 1;
}

int
milter_parse_optneg(const uint8_t *p, size_t len, struct milter_optneg *o,
    const char **why)
{
	const char	*list;
	uint32_t	 stage;

	memset(o, 0, sizeof(*o));
	if (len < 12) {
		*why = "OPTNEG reply shorter than 12 octets";
		return -1;
	}
	o->version = get32(p);
	o->actions = get32(p + 4);
	o->protocol = get32(p + 8);
	p += 12;
	len -= 12;
	/* Then macro lists: u32 stage, "names" NUL. */
	while (len > 0) {
		if (len < 4) {
			*why = "OPTNEG reply: octets after the macro lists";
			return -1;
		}
		stage = get32(p);
		p += 4;
		len -= 4;
		if (stage >= MILTER_MACRO_STAGES || o->have[stage]) {
			*why = "OPTNEG reply: bad or repeated macro stage";
			return -1;
		}
		if (take_str(&p, &len, &list) == -1) {
			*why = "OPTNEG reply: unterminated macro list";
			return -1;
		}
		if (strlen(list) >= MILTER_MACROS_MAX ||
		    !milter_macro_list_ok(list)) {
			*why = "OPTNEG reply: bad macro list";
			return -1;
		}
		memcpy(o->macros[stage], list, strlen(list) + 1);
		o->have[stage] = 1;
	}
	return 0;
}

int
milter_header_name_ok(const char *s)
{
	size_t	 n = 0;

	for (; *s != '\0'; s++, n++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e ||
		    *s == ':')
			return 0;
	return n > 0 && n <= MILTER_HDRNAME_MAX;
}

int
milter_header_value_ok(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;

	for (; *p != '\0'; p++) {
		if (*p == '\r') {
			if (p[1] != '\n')
				return 0;
			continue;
		}
		if (*p == '\n') {
			if (p[1] != ' ' && p[1] != '\t')
				return 0;
			continue;
		}
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return 0;
	}
	return 1;
}

int
milter_parse_address(const char *s, char *out, size_t outsz, int empty_ok)
{
	size_t	 len = strlen(s), i;

	if (len > 0 && s[0] == '<') {
		if (len < 2 || s[len - 1] != '>')
			return -1;
		s++;
		len -= 2;
	}
	if ((len == 0 && !empty_ok) || len >= outsz || len >= MILTER_ADDR_MAX)
		return -1;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] == 0x7f ||
		    s[i] == '<' || s[i] == '>')
			return -1;
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

int
milter_parse_reply(int cmd, const uint8_t *p, size_t len,
    struct milter_reply *r, const char **why)
{
	char		 addr[MILTER_ADDR_MAX];
	const char	*s;

	memset(r, 0, sizeof(*r));
	r->cmd = cmd;
	switch (cmd) {
	case SMFIR_ACCEPT:
	case SMFIR_CONTINUE:
	case SMFIR_DISCARD:
	case SMFIR_PROGRESS:
	case SMFIR_REJECT:
	case SMFIR_SKIP:
	case SMFIR_TEMPFAIL:
		if (len != 0) {
			*why = "data after a reply that has none";
			return -1;
		}
		return 0;
	case SMFIR_REPLYCODE:
	case SMFIR_QUARANTINE:
		if (take_str(&p, &len, &r->text) == -1 || len != 0) {
			*why = "reply text not one string";
			return -1;
		}
		if (cmd == SMFIR_QUARANTINE) {
			for (s = r->text; *s != '\0'; s++)
				if ((unsigned char)*s < 0x20 ||
				    (unsigned char)*s > 0x7e)
					break;
			if (*s != '\0' || r->text[0] == '\0' ||
			    strlen(r->text) > 256) {
				*why = "quarantine reason empty, too long or "
				    "not printable";
				return -1;
			}
		}
		return 0;
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		if (len < 4) {
			*why = "header change without its index";
			return -1;
		}
		r->index = get32(p);
		p += 4;
		len -= 4;
		/* FALLTHROUGH */
	case SMFIR_ADDHEADER:
		if (take_str(&p, &len, &r->name) == -1 ||
		    take_str(&p, &len, &r->value) == -1 || len != 0) {
			*why = "header change not two strings";
			return -1;
		}
		if (!milter_header_name_ok(r->name)) {
			*why = "bad header name";
			return -1;
		}
		if (!milter_header_value_ok(r->value)) {
			*why = "bad header value (a bare CR, a control "
			    "octet or a line that is not folded)";
			return -1;
		}
		return 0;
	case SMFIR_REPLBODY:
		r->body = p;
		r->bodylen = len;
		if (memchr(p, '\0', len) != NULL) {
			*why = "NUL in a replaced body";
			return -1;
		}
		return 0;
	case SMFIR_ADDRCPT:
	case SMFIR_DELRCPT:
	case SMFIR_ADDRCPT_PAR:
	case SMFIR_CHGFROM:
		if (take_str(&p, &len, &r->addr) == -1) {
			*why = "address not a string";
			return -1;
		}
		if ((cmd == SMFIR_ADDRCPT_PAR ||
		    (cmd == SMFIR_CHGFROM && len > 0)) &&
		    take_str(&p, &len, &r->args) == -1) {
			*why = "arguments not a string";
			return -1;
		}
		if (len != 0) {
			*why = "octets after the address";
			return -1;
		}
		if (milter_parse_address(r->addr, addr, sizeof(addr),
		    cmd == SMFIR_CHGFROM) == -1) {
			*why = "bad address";
			return -1;
		}
		if (r->args != NULL) {
			for (s = r->args; *s != '\0'; s++)
				if ((unsigned char)*s < 0x20 ||
				    (unsigned char)*s > 0x7e)
					break;
			if (*s != '\0' || strlen(r->args) > 512) {
				*why = "bad ESMTP arguments";
				return -1;
			}
		}
		return 0;
	default:
		*why = "unknown reply";
		return -1;
	}
}

/*
 * One line of a reply: 1 well formed, 0 not; its code, its separator
 * (' ' or '-'), and where its enhanced status code ends (0: it has
 * none; the code's class must be the reply's).
 */
static int
line_check(const char *s, size_t len, int *code, int *sep, size_t *esc)
{
	size_t	 i, d;

	*esc = 0;
	if (len < 3 || len > MILTER_LINE_MAX || (s[0] != '4' && s[0] != '5') ||
	    s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9')
		return 0;
	*code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	*sep = ' ';
	if (len == 3)
		return 1;
	if (s[3] != ' ' && s[3] != '-')
		return 0;
	*sep = s[3];
	for (i = 4; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return 0;
	i = 4;
	if (len < i + 5 || s[i] != s[0] || s[i + 1] != '.')
		return 1;
	i += 2;
	for (d = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		d++;
	if (d < 1 || d > 3 || i >= len || s[i] != '.')
		return 1;
	i++;
	for (d = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		d++;
	if (d < 1 || d > 3 || (i < len && s[i] != ' '))
		return 1;
	*esc = i;
	return 1;
}

static int
put(char *out, size_t outsz, size_t *n, const char *s, size_t len)
{
	if (*n + len >= outsz)
		return -1;
	memcpy(out + *n, s, len);
	*n += len;
	out[*n] = '\0';
	return 0;
}

#define REPLY_LINES_MAX	16

int
milter_parse_replycode(const char *text, char *out, size_t outsz, int *code)
{
	const char	*start[REPLY_LINES_MAX], *crlf, *t, *te, *e;
	size_t		 len[REPLY_LINES_MAX], esc[REPLY_LINES_MAX];
	char		 defesc[6] = "x.7.1";
	size_t		 n, mark, el;
	int		 c, sep[REPLY_LINES_MAX], k, j;

	if (outsz == 0)
		return -1;
	out[0] = '\0';
	/* The lines kept: the first, then those that continue it. */
	for (k = 0, t = text; k < REPLY_LINES_MAX; k++) {
		crlf = strstr(t, "\r\n");
		start[k] = t;
		len[k] = crlf != NULL ? (size_t)(crlf - t) : strlen(t);
		if (!line_check(t, len[k], &c, &sep[k], &esc[k]) ||
		    (k > 0 && (c != *code || sep[k - 1] != '-')))
			break;
		if (k == 0)
			*code = c;
		if (crlf == NULL) {
			k++;
			break;
		}
		t = crlf + 2;
	}
	if (k == 0)
		return -1;
	defesc[0] = start[0][0];
	for (;;) {
		n = 0;
		for (j = 0; j < k; j++) {
			mark = n;
			if (esc[j] > 0) {
				e = start[j] + 4;
				el = esc[j] - 4;
				t = start[j] + esc[j];
			} else {
				e = esc[0] > 0 ? start[0] + 4 : defesc;
				el = esc[0] > 0 ? esc[0] - 4 : 5;
				t = start[j] + (len[j] > 4 ? 4 : len[j]);
			}
			te = start[j] + len[j];
			if (t < te && *t == ' ')
				t++;
			if ((j > 0 && put(out, outsz, &n, "\r\n", 2) == -1) ||
			    put(out, outsz, &n, start[j], 3) == -1 ||
			    put(out, outsz, &n, j + 1 < k ? "-" : " ", 1) ==
			    -1 || put(out, outsz, &n, e, el) == -1 ||
			    (t < te && put(out, outsz, &n, " ", 1) == -1))
				break;
			/* Sendmail's "%%" (its text is a format) is "%". */
			for (; t < te; t++) {
				if (*t == '%' && t + 1 < te && t[1] == '%')
					t++;
				if (put(out, outsz, &n, t, 1) == -1)
					break;
			}
			if (t < te || n - mark - (j > 0 ? 2 : 0) >
			    MILTER_LINE_MAX)
				break;
		}
		if (j == k)
			return 0;
		/* Line j does not fit: the reply ends before it. */
		if (j == 0)
			return -1;
		k = j;
	}
}

/* A field name: printable, no colon (obsolete spaces before it cut). */
static int
field_name_ok(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0 || len > MILTER_HDRNAME_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

long
milter_header_split(const char *buf, size_t len, int at_eof, int *sep,
    milter_field_cb cb, void *arg)
{
	const char	*p = buf, *end = buf + len, *crlf, *colon, *ne;
	const char	*name = NULL, *value = NULL, *vend = NULL;
	size_t		 namelen = 0, linelen;

	*sep = 0;
	while (p < end) {
		if ((crlf = memmem(p, (size_t)(end - p), "\r\n", 2)) == NULL)
			break;
		linelen = (size_t)(crlf - p);
		if (linelen == 0) {
			*sep = 1;
			if (name != NULL && cb(arg, name, namelen, value,
			    (size_t)(vend - value)) == -1)
				return -1;
			return (long)(p + 2 - buf);
		}
		if (*p == ' ' || *p == '\t') {
			if (name == NULL)
				return (long)(p - buf);
			vend = crlf;	/* folded: the field goes on */
			p = crlf + 2;
			continue;
		}
		if ((colon = memchr(p, ':', linelen)) == NULL)
			break;
		for (ne = colon; ne > p && (ne[-1] == ' ' || ne[-1] == '\t');
		    ne--)
			;
		if (!field_name_ok(p, (size_t)(ne - p)))
			break;
		if (name != NULL && cb(arg, name, namelen, value,
		    (size_t)(vend - value)) == -1)
			return -1;
		name = p;
		namelen = (size_t)(ne - p);
		value = colon + 1;
		vend = crlf;
		p = crlf + 2;
	}
	if (p == end && !at_eof)
		return -2;
	if (p < end && memmem(p, (size_t)(end - p), "\r\n", 2) == NULL &&
	    !at_eof)
		return -2;	/* a line cut short: maybe a field */
	if (name != NULL && cb(arg, name, namelen, value,
	    (size_t)(vend - value)) == -1)
		return -1;
	return (long)(p - buf);
}
