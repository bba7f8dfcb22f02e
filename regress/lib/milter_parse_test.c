/*
 * Unit tests of filter/filter_parse.c: milter packets, the OPTNEG
 * reply, replies and modifications, REPLYCODE's text turned into the
 * SMTP reply we send (CR LF smuggling, codes, classes), and a client's
 * header section cut into fields.  TAP.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../../filter/filter_parse.h"
#include "tap.h"

struct code_case {
	const char	*in;
	const char	*out;		/* NULL: refused */
	int		 code;
};

static const struct code_case	 codes[] = {
	{ "550 5.7.1 Rejected by pymilter (custom text)",
	    "550 5.7.1 Rejected by pymilter (custom text)", 550 },
	{ "554 5.7.1 Gtube pattern", "554 5.7.1 Gtube pattern", 554 },
	{ "451 4.7.1 Try again later", "451 4.7.1 Try again later", 451 },
	/* No enhanced code: ours of the class goes in. */
	{ "550 go away", "550 5.7.1 go away", 550 },
	{ "421 closing", "421 4.7.1 closing", 421 },
	{ "550", "550 5.7.1", 550 },
	/* An enhanced code of the other class is text. */
	{ "550 4.7.1 odd", "550 5.7.1 4.7.1 odd", 550 },
	{ "550 5.7.1234 odd", "550 5.7.1 5.7.1234 odd", 550 },
	/* A well-formed multi-line reply stays whole. */
	{ "550-5.7.1 first line\r\n550 5.7.1 second line",
	    "550-5.7.1 first line\r\n550 5.7.1 second line", 550 },
	{ "550-first\r\n550-second\r\n550 third",
	    "550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third", 550 },
	/* Smuggling: the lines after the first that break the rules go. */
	{ "550 5.7.1 bad\r\n250 2.0.0 smuggled", "550 5.7.1 bad", 550 },
	{ "550-5.7.1 a\r\n551 5.7.1 b", "550 5.7.1 a", 550 },
	{ "550-5.7.1 a\r\n550 5.7.1 b\r\n550 5.7.1 c",
	    "550-5.7.1 a\r\n550 5.7.1 b", 550 },
	{ "550-5.7.1 a\r\n", "550 5.7.1 a", 550 },
	{ "550-5.7.1 a\r\nQUIT", "550 5.7.1 a", 550 },
	{ "550 5.7.1 a\nRCPT TO:<x@y>", NULL, 0 },
	{ "550 5.7.1 a\rb", NULL, 0 },
	/* Not a refusal, not a code, not printable: refused. */
	{ "250 2.0.0 fine", NULL, 0 },
	{ "350 go on", NULL, 0 },
	{ "600 what", NULL, 0 },
	{ "55 short", NULL, 0 },
	{ "5500 long", NULL, 0 },
	{ "550\t5.7.1 tab", NULL, 0 },
	{ "", NULL, 0 },
	{ "550 5.7.1 caf\xc3\xa9", NULL, 0 },
	/* Sendmail's "%%" is a percent sign. */
	{ "550 5.7.1 100%% spam", "550 5.7.1 100% spam", 550 },
	{ "550 5.7.1 50% spam", "550 5.7.1 50% spam", 550 },
};

static void
test_replycode(void)
{
	char	 out[2048], long_line[600];
	size_t	 i;
	int	 code, r;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		code = 0;
		r = milter_parse_replycode(codes[i].in, out, sizeof(out),
		    &code);
		if (codes[i].out == NULL)
			ok(r == -1, "reply code %zu refused", i);
		else
			ok(r == 0 && strcmp(out, codes[i].out) == 0 &&
			    code == codes[i].code, "reply code %zu (%.40s)",
			    i, strchr(out, '\r') == NULL ? out : "lines");
	}
	/* 510 octets is the longest line. */
	memset(long_line, 'x', sizeof(long_line));
	memcpy(long_line, "550 5.7.1 ", 10);
	long_line[510] = '\0';
	ok(milter_parse_replycode(long_line, out, sizeof(out), &code) == 0,
	    "a line of 510 octets");
	long_line[510] = 'x';
	long_line[511] = '\0';
	ok(milter_parse_replycode(long_line, out, sizeof(out), &code) == -1,
	    "a line of 511 octets");
	/* What does not fit the buffer ends the reply before it. */
	ok(milter_parse_replycode("550-5.7.1 aaaa\r\n550 5.7.1 bbbb", out, 20,
	    &code) == 0 && strcmp(out, "550 5.7.1 aaaa") == 0,
	    "a second line that does not fit is left out");
	ok(milter_parse_replycode("550 5.7.1 aaaa", out, 8, &code) == -1,
	    "a first line that does not fit is refused");
}

static void
test_packets(void)
{
	const uint8_t	*data;
	uint8_t		 buf[16];
	size_t		 dlen;
	int		 cmd;

	memcpy(buf, "\0\0\0\1c", 5);
	ok(milter_parse_packet(buf, 5, &cmd, &data, &dlen) == 5 &&
	    cmd == 'c' && dlen == 0, "CONTINUE");
	ok(milter_parse_packet(buf, 4, &cmd, &data, &dlen) == 0,
	    "a packet cut short needs more");
	ok(milter_parse_packet(buf, 3, &cmd, &data, &dlen) == 0,
	    "a length cut short needs more");
	memcpy(buf, "\0\0\0\0", 4);
	ok(milter_parse_packet(buf, 4, &cmd, &data, &dlen) == -1,
	    "length 0 is refused");
	memcpy(buf, "GARB", 4);
	ok(milter_parse_packet(buf, 4, &cmd, &data, &dlen) == -1,
	    "an absurd length is refused");
	buf[0] = 0;
	buf[1] = 0x10;
	buf[2] = 0;
	buf[3] = 1;
	ok(milter_parse_packet(buf, 4, &cmd, &data, &dlen) == 0,
	    "1 MiB of data is allowed");
	buf[3] = 2;
	ok(milter_parse_packet(buf, 4, &cmd, &data, &dlen) == -1,
	    "one octet more is not");
}

static void
test_optneg(void)
{
	struct milter_optneg	 o;
	const char		*why;
	uint8_t			 b[64];

	memcpy(b, "\0\0\0\6\0\0\1\x11\0\x10\7\2", 12);
	ok(milter_parse_optneg(b, 12, &o, &why) == 0 && o.version == 6 &&
	    o.actions == 0x111 && o.protocol == 0x100702 && !o.have[3],
	    "OpenDKIM's OPTNEG reply");
	memcpy(b + 12, "\0\0\0\3{rcpt_addr} {rcpt_mailer}\0", 30);
	ok(milter_parse_optneg(b, 42, &o, &why) == 0 && o.have[3] &&
	    strcmp(o.macros[3], "{rcpt_addr} {rcpt_mailer}") == 0,
	    "a macro list for RCPT");
	ok(milter_parse_optneg(b, 41, &o, &why) == -1,
	    "an unterminated macro list");
	ok(milter_parse_optneg(b, 14, &o, &why) == -1,
	    "octets after the lists");
	memcpy(b + 12, "\0\0\0\7x\0", 6);
	ok(milter_parse_optneg(b, 18, &o, &why) == -1, "stage 7 refused");
	memcpy(b + 12, "\0\0\0\5i\0\0\0\0\5j\0", 12);
	ok(milter_parse_optneg(b, 24, &o, &why) == -1, "a stage twice");
	memcpy(b + 12, "\0\0\0\5i\1\0", 7);
	ok(milter_parse_optneg(b, 19, &o, &why) == -1, "a control octet");
	ok(milter_parse_optneg(b, 8, &o, &why) == -1, "too short");
}

#define R(s)	((const uint8_t *)(s)), (sizeof(s) - 1)

static void
test_replies(void)
{
	struct milter_reply	 r;
	const char		*why;

	ok(milter_parse_reply('c', R(""), &r, &why) == 0, "CONTINUE");
	ok(milter_parse_reply('c', R("x"), &r, &why) == -1,
	    "CONTINUE with data");
	ok(milter_parse_reply('Z', R(""), &r, &why) == -1, "unknown reply");
	ok(milter_parse_reply('h', R("X-A\0b\0"), &r, &why) == 0 &&
	    strcmp(r.name, "X-A") == 0 && strcmp(r.value, "b") == 0,
	    "ADDHEADER");
	ok(milter_parse_reply('h', R("X-A\0b\0c\0"), &r, &why) == -1,
	    "ADDHEADER with a third string");
	ok(milter_parse_reply('h', R("X-A\0b"), &r, &why) == -1,
	    "ADDHEADER unterminated");
	ok(milter_parse_reply('h', R("X A\0b\0"), &r, &why) == -1,
	    "a header name with a space");
	ok(milter_parse_reply('h', R("X:A\0b\0"), &r, &why) == -1,
	    "a header name with a colon");
	ok(milter_parse_reply('h', R("X-A\0a\nb\0"), &r, &why) == -1,
	    "a value that starts a new line (header injection)");
	ok(milter_parse_reply('h', R("X-A\0a\n\n\0"), &r, &why) == -1,
	    "a value that ends the header");
	ok(milter_parse_reply('h', R("X-A\0a\n\tb\0"), &r, &why) == 0,
	    "a folded value");
	ok(milter_parse_reply('h', R("X-A\0a\r\n b\0"), &r, &why) == 0,
	    "a value folded with CR LF");
	ok(milter_parse_reply('h', R("X-A\0a\rb\0"), &r, &why) == -1,
	    "a bare CR");
	ok(milter_parse_reply('i', R("\0\0\0\1X-A\0b\0"), &r, &why) == 0 &&
	    r.index == 1, "INSHEADER");
	ok(milter_parse_reply('m', R("\0\0\0"), &r, &why) == -1,
	    "CHGHEADER without its index");
	ok(milter_parse_reply('m', R("\0\0\0\2X-A\0\0"), &r, &why) == 0 &&
	    r.index == 2 && r.value[0] == '\0', "CHGHEADER deleting");
	ok(milter_parse_reply('+', R("<a@b.example>\0"), &r, &why) == 0,
	    "ADDRCPT");
	ok(milter_parse_reply('+', R("<>\0"), &r, &why) == -1,
	    "ADDRCPT of nobody");
	ok(milter_parse_reply('+', R("<a b@c>\0"), &r, &why) == -1,
	    "ADDRCPT with a space");
	ok(milter_parse_reply('2', R("<a@b>\0NOTIFY=NEVER\0"), &r, &why) ==
	    0 && strcmp(r.args, "NOTIFY=NEVER") == 0, "ADDRCPT_PAR");
	ok(milter_parse_reply('2', R("<a@b>\0"), &r, &why) == -1,
	    "ADDRCPT_PAR without arguments");
	ok(milter_parse_reply('e', R("<>\0"), &r, &why) == 0 &&
	    r.args == NULL, "CHGFROM to the null sender");
	ok(milter_parse_reply('e', R("<x@y>\0BODY=8BITMIME\0"), &r, &why) ==
	    0, "CHGFROM with arguments");
	ok(milter_parse_reply('q', R("held\0"), &r, &why) == 0 &&
	    strcmp(r.text, "held") == 0, "QUARANTINE");
	ok(milter_parse_reply('q', R("\0"), &r, &why) == -1,
	    "QUARANTINE without a reason");
	ok(milter_parse_reply('q', R("a\nb\0"), &r, &why) == -1,
	    "QUARANTINE with a line break");
	ok(milter_parse_reply('b', R("body\r\n"), &r, &why) == 0 &&
	    r.bodylen == 6, "REPLBODY");
	ok(milter_parse_reply('b', R("a\0b"), &r, &why) == -1,
	    "REPLBODY with a NUL");
	ok(milter_parse_reply('y', R("550 5.7.1 x\0"), &r, &why) == 0,
	    "REPLYCODE");
	ok(milter_parse_reply('y', R("550 5.7.1 x"), &r, &why) == -1,
	    "REPLYCODE unterminated");
}

static void
test_addresses(void)
{
	char	 out[512];

	ok(milter_parse_address("<a@b>", out, sizeof(out), 0) == 0 &&
	    strcmp(out, "a@b") == 0, "an address in brackets");
	ok(milter_parse_address("a@b", out, sizeof(out), 0) == 0 &&
	    strcmp(out, "a@b") == 0, "an address without");
	ok(milter_parse_address("<a@b", out, sizeof(out), 0) == -1,
	    "a bracket not closed");
	ok(milter_parse_address("<>", out, sizeof(out), 1) == 0 &&
	    out[0] == '\0', "the null sender where allowed");
	ok(milter_parse_address("<a<b>", out, sizeof(out), 0) == -1,
	    "a bracket inside");
	ok(milter_parse_address("<a@b>", out, 3, 0) == -1, "too long");
}

struct fields {
	char	 got[512];
	int	 n;
	int	 stop;		/* refuse the field after this many */
};

static int
collect(void *arg, const char *name, size_t namelen, const char *value,
    size_t valuelen)
{
	struct fields	*f = arg;
	size_t		 len = strlen(f->got);

	if (f->stop > 0 && f->n == f->stop)
		return -1;
	f->n++;
	(void)snprintf(f->got + len, sizeof(f->got) - len, "[%.*s|%.*s]",
	    (int)namelen, name, (int)valuelen, value);
	return 0;
}

static long
split(const char *s, int at_eof, int *sep, struct fields *f)
{
	memset(f, 0, sizeof(*f));
	return milter_header_split(s, strlen(s), at_eof, sep, collect, f);
}

static void
test_header_split(void)
{
	struct fields	 f;
	const char	*s;
	long		 r;
	int		 sep;

	s = "From: a\r\nTo: b\r\n\tc\r\n\r\nbody\r\n";
	r = split(s, 0, &sep, &f);
	ok(r == (long)(strstr(s, "body") - s) && sep == 1 &&
	    strcmp(f.got, "[From| a][To| b\r\n\tc]") == 0,
	    "fields, a folded one, the blank line");
	s = "Subject : x\r\nX-A:\r\n\r\n";
	r = split(s, 0, &sep, &f);
	ok(r == (long)strlen(s) && strcmp(f.got, "[Subject| x][X-A|]") == 0,
	    "space before the colon, an empty value");
	s = "From: a\r\nnot a field\r\nTo: b\r\n";
	r = split(s, 0, &sep, &f);
	ok(r == (long)(strstr(s, "not") - s) && sep == 0 &&
	    strcmp(f.got, "[From| a]") == 0, "a line that is no field: body");
	s = " folded first\r\nFrom: a\r\n\r\n";
	ok(split(s, 0, &sep, &f) == 0 && f.n == 0,
	    "a continuation before any field: body");
	s = "From: a\r\nTo: b\r\n";
	ok(split(s, 0, &sep, &f) == -2, "no end yet: more needed");
	r = split(s, 1, &sep, &f);
	ok(r == (long)strlen(s) && f.n == 2 && sep == 0,
	    "no blank line at the end of the file");
	s = "From: a\r\nTo: b";
	ok(split(s, 0, &sep, &f) == -2, "a line cut short");
	s = "\r\nbody";
	ok(split(s, 0, &sep, &f) == 2 && sep == 1 && f.n == 0,
	    "an empty header section");
	s = "A: 1\r\nB: 2\r\nC: 3\r\n\r\n";
	memset(&f, 0, sizeof(f));
	f.stop = 2;
	ok(milter_header_split(s, strlen(s), 0, &sep, collect, &f) == -1,
	    "the callback refuses: -1");
}

int
main(void)
{
	plan(0);
	test_replycode();
	test_packets();
	test_optneg();
	test_replies();
	test_addresses();
	test_header_split();
	return done();
}
