/*
 * Unit tests of lookup/dns_parse.c: answers built here byte by byte,
 * well-formed and hostile (pointer loops, lengths past the end, names
 * too long, answers to another question).  TAP output.
 */
#include <sys/types.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"
#include "../../lookup/lookup.h"
#include "tap.h"

#define NTESTS	27

/* A packet being built. */
struct pkt {
	uint8_t	 b[4096];
	size_t	 len;
};

/* What the callback saw. */
struct seen {
	int	 n;
	char	 names[8][SMX_HOSTSZ];
	uint16_t prefs[8];
	char	 text[DNS_TXT_MAX + 1];
	int	 toolong;
	char	 addr[INET6_ADDRSTRLEN];
	uint8_t	 tlsa[3];
	size_t	 datalen;
};

static void	put(struct pkt *, const void *, size_t);
static void	put16(struct pkt *, uint16_t);
static void	put32(struct pkt *, uint32_t);
static void	name(struct pkt *, const char *);
static void	head(struct pkt *, uint8_t, uint8_t, uint16_t, const char *,
		    uint16_t);
static void	rr(struct pkt *, const char *, uint16_t, const void *,
		    uint16_t);
static int	collect(void *, const struct dns_rr *);
static int	parse(struct pkt *, const char *, uint16_t, struct seen *,
		    int *);

static void
put(struct pkt *p, const void *d, size_t n)
{
	if (p->len + n > sizeof(p->b))
		abort();
	memcpy(p->b + p->len, d, n);
	p->len += n;
}

static void
put16(struct pkt *p, uint16_t v)
{
	uint8_t	 b[2] = { v >> 8, v & 0xff };

	put(p, b, 2);
}

static void
put32(struct pkt *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p, v & 0xffff);
}

/* A name in labels; "@" is a pointer to the question's name (12). */
static void
name(struct pkt *p, const char *s)
{
	const char	*dot;
	uint8_t		 n;

	if (strcmp(s, "@") == 0) {
		put16(p, 0xc00c);
		return;
	}
	while (*s != '\0') {
		dot = strchr(s, '.');
		n = (uint8_t)(dot ? (size_t)(dot - s) : strlen(s));
		put(p, &n, 1);
		put(p, s, n);
		s += n + (dot ? 1 : 0);
	}
	put(p, "", 1);
}

static void
head(struct pkt *p, uint8_t flags, uint8_t rcode, uint16_t an,
    const char *qname, uint16_t qtype)
{
	uint8_t	 h[12] = { 0x12, 0x34, flags, 0x80 | rcode, 0, 1 };

	h[6] = an >> 8;
	h[7] = an & 0xff;
	p->len = 0;
	put(p, h, sizeof(h));
	name(p, qname);
	put16(p, qtype);
	put16(p, 1);
}

static void
rr(struct pkt *p, const char *owner, uint16_t type, const void *rdata,
    uint16_t rdlen)
{
	name(p, owner);
	put16(p, type);
	put16(p, 1);
	put32(p, 300);
	put16(p, rdlen);
	put(p, rdata, rdlen);
}

static int
collect(void *arg, const struct dns_rr *r)
{
	struct seen	*s = arg;

	if (s->n < 8) {
		strlcpy(s->names[s->n], r->name, sizeof(s->names[0]));
		s->prefs[s->n] = r->pref;
	}
	s->n++;
	if (r->type == DNS_T_TXT) {
		memcpy(s->text, r->text, r->textlen + 1);
		s->toolong = r->toolong;
	}
	if (r->type == DNS_T_A)
		inet_ntop(AF_INET, &r->a, s->addr, sizeof(s->addr));
	if (r->type == DNS_T_AAAA)
		inet_ntop(AF_INET6, &r->aaaa, s->addr, sizeof(s->addr));
	if (r->type == DNS_T_TLSA) {
		s->tlsa[0] = r->usage;
		s->tlsa[1] = r->selector;
		s->tlsa[2] = r->mtype;
		s->datalen = r->datalen;
	}
	return 0;
}

static int
parse(struct pkt *p, const char *qname, uint16_t qtype, struct seen *s,
    int *rcode)
{
	memset(s, 0, sizeof(*s));
	return dns_parse(p->b, p->len, qname, qtype, rcode, collect, s);
}

int
main(void)
{
	struct pkt	 p;
	struct seen	 s;
	uint8_t		 buf[600], a4[4] = { 192, 0, 2, 7 };
	uint8_t		 a6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	int		 rcode, n;
	size_t		 i;

	plan(NTESTS);

	/* MX: two exchangers, one by a pointer into the question. */
	head(&p, 0x81, 0, 3, "x.example", DNS_T_MX);
	memcpy(buf, "\x00\x0a\x03mx1\x01x\x07" "example", 16);
	buf[16] = 0;
	rr(&p, "@", DNS_T_MX, buf, 17);
	memcpy(buf, "\x00\x14\x03mx2\xc0\x0c", 8);
	rr(&p, "@", DNS_T_MX, buf, 8);
	/* An RRSIG in the answer is skipped. */
	rr(&p, "@", 46, "\x00\x0f\x0d\x02", 4);
	n = parse(&p, "x.example", DNS_T_MX, &s, &rcode);
	ok(n == 2 && rcode == 0 && strcmp(s.names[0], "mx1.x.example") == 0 &&
	    s.prefs[0] == 10 && strcmp(s.names[1], "mx2.x.example") == 0 &&
	    s.prefs[1] == 20, "MX records, compressed, RRSIG skipped");
	ok(parse(&p, "y.example", DNS_T_MX, &s, &rcode) == -1,
	    "an answer to another name is refused");
	ok(parse(&p, "x.example", DNS_T_A, &s, &rcode) == -1,
	    "an answer to another type is refused");
	p.b[2] = 0x01;
	ok(parse(&p, "x.example", DNS_T_MX, &s, &rcode) == -1,
	    "a query (QR clear) is refused");
	p.b[2] = 0x81;
	for (i = 0; i < p.len; i++) {
		size_t	 keep = p.len;

		p.len = i;
		if (parse(&p, "x.example", DNS_T_MX, &s, &rcode) == 2)
			break;
		p.len = keep;
	}
	ok(i == p.len, "every truncation is refused, or reads less");

	/* "0 ." is the root: an empty name. */
	head(&p, 0x81, 0, 1, "x.example", DNS_T_MX);
	rr(&p, "@", DNS_T_MX, "\x00\x00\x00", 3);
	ok(parse(&p, "x.example", DNS_T_MX, &s, &rcode) == 1 &&
	    s.names[0][0] == '\0', "null MX: the root");

	/* Addresses, through a CNAME. */
	head(&p, 0x81, 0, 2, "x.example", DNS_T_A);
	rr(&p, "@", DNS_T_CNAME, "\x01y\x07" "example\x00", 11);
	rr(&p, "y.example", DNS_T_A, a4, 4);
	ok(parse(&p, "x.example", DNS_T_A, &s, &rcode) == 1 &&
	    strcmp(s.addr, "192.0.2.7") == 0, "A through a CNAME");
	head(&p, 0x81, 0, 1, "x.example", DNS_T_A);
	rr(&p, "other.example", DNS_T_A, a4, 4);
	ok(parse(&p, "x.example", DNS_T_A, &s, &rcode) == 0,
	    "a record of another owner is not the answer");
	head(&p, 0x81, 0, 1, "x.example", DNS_T_A);
	rr(&p, "@", DNS_T_A, a4, 3);
	ok(parse(&p, "x.example", DNS_T_A, &s, &rcode) == -1,
	    "an A record of 3 octets is refused");
	head(&p, 0x81, 0, 1, "x.example", DNS_T_AAAA);
	rr(&p, "@", DNS_T_AAAA, a6, 16);
	ok(parse(&p, "x.example", DNS_T_AAAA, &s, &rcode) == 1 &&
	    strcmp(s.addr, "2001:db8::1") == 0, "AAAA");
	head(&p, 0x81, 3, 0, "x.example", DNS_T_AAAA);
	ok(parse(&p, "x.example", DNS_T_AAAA, &s, &rcode) == 0 && rcode == 3,
	    "NXDOMAIN: its rcode, no record");

	/* Names: case, loops, pointers forward, reserved labels. */
	head(&p, 0x81, 0, 1, "X.Example", DNS_T_A);
	rr(&p, "@", DNS_T_A, a4, 4);
	ok(parse(&p, "x.example", DNS_T_A, &s, &rcode) == 1,
	    "names compare without case");
	head(&p, 0x81, 0, 1, "x.example", DNS_T_A);
	put16(&p, 0xc000 | (uint16_t)p.len);	/* points at itself */
	put16(&p, DNS_T_A);
	ok(parse(&p, "x.example", DNS_T_A, &s, &rcode) == -1,
	    "a pointer to itself is refused");
	head(&p, 0x81, 0, 1, "x.example", DNS_T_A);
	put16(&p, 0xc000 | (uint16_t)(p.len + 2));	/* forwards */
	name(&p, "x.example");
	ok(parse(&p, "x.example", DNS_T_A, &s, &rcode) == -1,
	    "a pointer forwards is refused");
	head(&p, 0x81, 0, 1, "x.example", DNS_T_A);
	put(&p, "\x41x", 2);	/* label type 01: reserved */
	ok(parse(&p, "x.example", DNS_T_A, &s, &rcode) == -1,
	    "a reserved label type is refused");
	head(&p, 0x81, 0, 0, "x.example", DNS_T_A);
	p.len = 12;	/* the question again: 5 labels of 56, 286 octets */
	memset(buf, 'a', 56);
	for (i = 0; i < 5; i++) {
		put(&p, "\x38", 1);
		put(&p, buf, 56);
	}
	put(&p, "", 1);
	put16(&p, DNS_T_A);
	put16(&p, 1);
	ok(parse(&p, "x.example", DNS_T_A, &s, &rcode) == -1,
	    "a name over 255 octets is refused");
	head(&p, 0x81, 0, 1, "x.example", DNS_T_MX);
	rr(&p, "@", DNS_T_MX, "\x00\x0a\x04m.x1\x00", 8);
	ok(parse(&p, "x.example", DNS_T_MX, &s, &rcode) == 1 &&
	    strcmp(s.names[0], "?") == 0, "a dot inside a label: unusable");
	head(&p, 0x81, 0, 1, "x.example", DNS_T_MX);
	rr(&p, "@", DNS_T_MX, "\x00\x0a\x03m\nx\x00", 7);
	ok(parse(&p, "x.example", DNS_T_MX, &s, &rcode) == 1 &&
	    strcmp(s.names[0], "?") == 0, "a control byte in a label: unusable");
	head(&p, 0x81, 0, 1, "x.example", DNS_T_MX);
	rr(&p, "@", DNS_T_MX, "\x00\x0a\x03mx1\x00\x00", 8);
	ok(parse(&p, "x.example", DNS_T_MX, &s, &rcode) == -1,
	    "an MX with bytes after its name is refused");

	/* TXT: strings joined, too long cut. */
	head(&p, 0x81, 0, 1, "x.example", DNS_T_TXT);
	rr(&p, "@", DNS_T_TXT, "\x08v=STSv1;\x06 id=42", 16);
	ok(parse(&p, "x.example", DNS_T_TXT, &s, &rcode) == 1 &&
	    strcmp(s.text, "v=STSv1; id=42") == 0 && !s.toolong,
	    "TXT strings are joined");
	head(&p, 0x81, 0, 1, "x.example", DNS_T_TXT);
	rr(&p, "@", DNS_T_TXT, "\x08v=STS", 6);
	ok(parse(&p, "x.example", DNS_T_TXT, &s, &rcode) == -1,
	    "a TXT string past its record is refused");
	head(&p, 0x81, 0, 1, "x.example", DNS_T_TXT);
	{
		uint8_t	big[5 * 256];

		for (i = 0; i < 5; i++) {
			big[i * 256] = 255;
			memset(big + i * 256 + 1, 'a', 255);
		}
		rr(&p, "@", DNS_T_TXT, big, sizeof(big));
	}
	ok(parse(&p, "x.example", DNS_T_TXT, &s, &rcode) == 1 && s.toolong &&
	    strlen(s.text) <= DNS_TXT_MAX, "a TXT over the limit: toolong");
	head(&p, 0x81, 0, 1, "x.example", DNS_T_TXT);
	rr(&p, "@", DNS_T_TXT, "", 0);
	ok(parse(&p, "x.example", DNS_T_TXT, &s, &rcode) == -1,
	    "an empty TXT record is refused");

	/* TLSA. */
	head(&p, 0x81, 0, 1, "_25._tcp.mx.x.example", DNS_T_TLSA);
	memcpy(buf, "\x03\x01\x01", 3);
	memset(buf + 3, 0xab, 32);
	rr(&p, "@", DNS_T_TLSA, buf, 35);
	ok(parse(&p, "_25._tcp.mx.x.example", DNS_T_TLSA, &s, &rcode) == 1 &&
	    s.tlsa[0] == 3 && s.tlsa[1] == 1 && s.tlsa[2] == 1 &&
	    s.datalen == 32, "TLSA 3 1 1 with its digest");
	head(&p, 0x81, 0, 1, "_25._tcp.mx.x.example", DNS_T_TLSA);
	rr(&p, "@", DNS_T_TLSA, "\x03\x01", 2);
	ok(parse(&p, "_25._tcp.mx.x.example", DNS_T_TLSA, &s, &rcode) == -1,
	    "a TLSA record of 2 octets is refused");

	/* A record whose length runs past the packet. */
	head(&p, 0x81, 0, 1, "x.example", DNS_T_A);
	rr(&p, "@", DNS_T_A, a4, 4);
	p.b[p.len - 5] = 0x10;
	ok(parse(&p, "x.example", DNS_T_A, &s, &rcode) == -1,
	    "an rdlength past the end is refused");
	ok(dns_parse(p.b, 11, "x.example", DNS_T_A, &rcode, collect, &s) == -1,
	    "a packet shorter than a header is refused");
	return done();
}
