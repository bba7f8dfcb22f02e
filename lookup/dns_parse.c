/*
 * The records of a DNS answer (RFC 1035 §4, RFC 3596, RFC 6698, RFC
 * 7208 §3.3 for TXT strings): the bytes come from the network, through
 * libunbound, and every length in them is checked against the packet.
 */
#include <sys/types.h>

#include <netinet/in.h>

#include <string.h>

#include "splitmx.h"
#include "lookup.h"

#define DNS_HDRSZ	12
#define DNS_RRHDRSZ	10	/* type, class, ttl, rdlength */
#define DNS_MAXPTRS	64	/* compression pointers in one name */
#define DNS_CLASS_IN	1

/* A cursor over the packet: never past len. */
struct dns_buf {
	const uint8_t	*p;
	size_t		 len;
	size_t		 off;
};

static int	dns_parse_u16(struct dns_buf *, uint16_t *);
static int	dns_parse_u32(struct dns_buf *, uint32_t *);
static int	dns_parse_name(const struct dns_buf *, size_t *off, char *,
		    size_t);
static int	dns_parse_rdata(const struct dns_buf *, size_t, uint16_t,
		    struct dns_rr *);
static int	dns_name_eq(const char *, const char *);

static int
dns_parse_u16(struct dns_buf *b, uint16_t *v)
{
	if (b->len - b->off < 2)
		return -1;
	*v = (uint16_t)(b->p[b->off] << 8 | b->p[b->off + 1]);
	b->off += 2;
	return 0;
}

static int
dns_parse_u32(struct dns_buf *b, uint32_t *v)
{
	if (b->len - b->off < 4)
		return -1;
	*v = (uint32_t)b->p[b->off] << 24 | (uint32_t)b->p[b->off + 1] << 16 |
	    (uint32_t)b->p[b->off + 2] << 8 | b->p[b->off + 3];
	b->off += 4;
	return 0;
}

/*
 * The name at *off, as text without the final dot ("" for the root),
 * lower-cased; *off moves past it.  -1 if the packet is malformed
 * (a label or pointer past the end, a loop, a name over 255 octets).
 * A name whose labels hold dots or bytes outside printable ASCII is
 * well-formed but not one we can use: it comes back as "?" with 0, so
 * that the caller skips the record and reads on.
 */
static int
dns_parse_name(const struct dns_buf *b, size_t *off, char *out, size_t outsz)
{
	size_t	 pos = *off, o = 0, wire = 0, next = 0, i;
	int	 ptrs = 0, odd = 0;
	uint8_t	 n, c;

	if (outsz < SMX_HOSTSZ)
		return -1;
	for (;;) {
		if (pos >= b->len)
			return -1;
		n = b->p[pos];
		if ((n & 0xc0) == 0xc0) {
			if (pos + 1 >= b->len || ++ptrs > DNS_MAXPTRS)
				return -1;
			if (next == 0)
				next = pos + 2;
			/* Backwards only: a pointer never makes a loop. */
			i = (size_t)(n & 0x3f) << 8 | b->p[pos + 1];
			if (i >= pos)
				return -1;
			pos = i;
			continue;
		}
		if ((n & 0xc0) != 0)
			return -1;	/* the reserved label types */
		pos++;
		wire += (size_t)n + 1;
		if (wire > 255)
			return -1;
		if (n == 0)
			break;
		if (b->len - pos < n)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (i = 0; i < n; i++) {
			c = b->p[pos + i];
			if (c <= 0x20 || c >= 0x7f || c == '.' || c == '\\')
				odd = 1;
			else
				out[o++] = (char)(c >= 'A' && c <= 'Z' ?
				    c + ('a' - 'A') : c);
		}
		pos += n;
	}
	out[o] = '\0';
	if (odd)
		strlcpy(out, "?", outsz);
	*off = next != 0 ? next : pos;
	return 0;
}

/* Names from dns_parse_name() and our own lower-cased ones. */
static int
dns_name_eq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

/*
 * The rdata of one record, at off with rdlen octets (inside the
 * packet): decoded into rr by type.  -1 if it does not have the shape
 * its type requires.
 */
static int
dns_parse_rdata(const struct dns_buf *b, size_t off, uint16_t rdlen,
    struct dns_rr *rr)
{
	struct dns_buf	 r;
	size_t		 end = off + rdlen, pos, o;
	uint8_t		 n;

	rr->rdata = b->p + off;
	rr->rdlen = rdlen;
	switch (rr->type) {
	case DNS_T_A:
		if (rdlen != 4)
			return -1;
		memcpy(&rr->a, b->p + off, 4);
		return 0;
	case DNS_T_AAAA:
		if (rdlen != 16)
			return -1;
		memcpy(&rr->aaaa, b->p + off, 16);
		return 0;
	case DNS_T_MX:
	case DNS_T_CNAME:
		r = *b;
		r.off = off;
		r.len = end;	/* the name may point before, never past */
		if (rr->type == DNS_T_MX && dns_parse_u16(&r, &rr->pref) == -1)
			return -1;
		pos = r.off;
		/* Compressed names may point anywhere before: whole packet. */
		r.len = b->len;
		if (dns_parse_name(&r, &pos, rr->name,
		    sizeof(rr->name)) == -1 || pos != end)
			return -1;
		return 0;
	case DNS_T_TLSA:
		if (rdlen < 3)
			return -1;
		rr->usage = b->p[off];
		rr->selector = b->p[off + 1];
		rr->mtype = b->p[off + 2];
		rr->data = b->p + off + 3;
		rr->datalen = (size_t)rdlen - 3;
		return 0;
	case DNS_T_TXT:
		/* One or more <length><octets> strings, joined (RFC 7208). */
		if (rdlen == 0)
			return -1;
		for (pos = off, o = 0; pos < end; pos += n) {
			n = b->p[pos++];
			if (end - pos < n)
				return -1;
			if (o + n > DNS_TXT_MAX)
				rr->toolong = 1;
			else {
				memcpy(rr->text + o, b->p + pos, n);
				o += n;
			}
		}
		rr->text[o] = '\0';
		rr->textlen = o;
		return 0;
	}
	return 0;
}

/*
 * Walks the answer to a question for qname and qtype: every record of
 * that type whose owner is qname or a name the CNAMEs before it lead
 * to goes to cb (which returns -1 to stop).  The rcode is the header's
 * (libunbound's event callback does not say NXDOMAIN).  Returns the
 * number of records given to cb, or -1 if the packet is malformed, is
 * not an answer to that question, or has a chain of CNAMEs too long.
 */
int
dns_parse(const uint8_t *pkt, size_t len, const char *qname, uint16_t qtype,
    int *rcode, int (*cb)(void *, const struct dns_rr *), void *arg)
{
	struct dns_buf	 b = { pkt, len, 0 };
	struct dns_rr	 rr;
	char		 chain[DNS_MAXCNAME + 1][SMX_HOSTSZ];
	char		 name[SMX_HOSTSZ];
	uint16_t	 qd, an, type, class, rdlen;
	uint32_t	 ttl;
	size_t		 off;
	int		 nchain = 1, i, n = 0, j;

	if (len < DNS_HDRSZ)
		return -1;
	/* QR set, a standard query, and no truncation left to us. */
	if ((pkt[2] & 0x80) == 0 || (pkt[2] & 0x78) != 0)
		return -1;
	*rcode = pkt[3] & 0x0f;
	qd = (uint16_t)(pkt[4] << 8 | pkt[5]);
	an = (uint16_t)(pkt[6] << 8 | pkt[7]);
	b.off = DNS_HDRSZ;
	if (qd != 1)
		return -1;
	off = b.off;
	if (dns_parse_name(&b, &off, name, sizeof(name)) == -1)
		return -1;
	b.off = off;
	if (dns_parse_u16(&b, &type) == -1 || dns_parse_u16(&b, &class) == -1 ||
	    type != qtype || class != DNS_CLASS_IN)
		return -1;
	if (strlcpy(chain[0], qname, sizeof(chain[0])) >= sizeof(chain[0]))
		return -1;
	if (!dns_name_eq(name, chain[0]))
		return -1;

	for (i = 0; i < an; i++) {
		off = b.off;
		if (dns_parse_name(&b, &off, name, sizeof(name)) == -1)
			return -1;
		b.off = off;
		if (dns_parse_u16(&b, &type) == -1 ||
		    dns_parse_u16(&b, &class) == -1 ||
		    dns_parse_u32(&b, &ttl) == -1 ||
		    dns_parse_u16(&b, &rdlen) == -1 || b.len - b.off < rdlen)
			return -1;
		memset(&rr, 0, sizeof(rr));
		rr.type = type;
		rr.ttl = ttl;
		off = b.off;
		b.off += rdlen;
		if (class != DNS_CLASS_IN)
			continue;
		for (j = 0; j < nchain; j++)
			if (dns_name_eq(name, chain[j]))
				break;
		if (j == nchain)
			continue;	/* not on the way to the answer */
		if (type != qtype && type != DNS_T_CNAME)
			continue;	/* RRSIG and the like */
		if (dns_parse_rdata(&b, off, rdlen, &rr) == -1)
			return -1;
		if (type == DNS_T_CNAME && qtype != DNS_T_CNAME) {
			if (nchain > DNS_MAXCNAME)
				return -1;
			strlcpy(chain[nchain++], rr.name, sizeof(chain[0]));
			continue;
		}
		n++;
		if (cb(arg, &rr) == -1)
			break;
	}
	return n;
}
