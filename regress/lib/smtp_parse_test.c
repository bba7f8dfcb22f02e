/*
 * Unit tests of smtp/smtp_parse.c: SMTP paths with their bounds and
 * UTF-8, greetings, ESMTP keywords, parameters and xtext.  TAP output.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"
#include "../../smtp/smtp.h"
#include "tap.h"

struct path_case {
	const char	*in;
	int		 result;
	const char	*mailbox;	/* PATH_OK: what is left */
	const char	*rest;		/* PATH_OK: after the '>' */
	int		 utf8;
};

static const struct path_case	 paths[] = {
	{ "<a@example.com>", PATH_OK, "a@example.com", "", 0 },
	{ "<a@example.com> SIZE=10", PATH_OK, "a@example.com", " SIZE=10", 0 },
	{ "<>", PATH_OK, "", "", 0 },
	{ "<@r1.example,@r2.example:a@example.com>", PATH_OK,
	    "a@example.com", "", 0 },
	{ "<\"a b\\\"c\"@example.com>", PATH_OK, "\"a b\\\"c\"@example.com",
	    "", 0 },
	{ "<a.b+c@[192.0.2.1]>", PATH_OK, "a.b+c@[192.0.2.1]", "", 0 },
	{ "<a@[IPv6:2001:db8::1]>", PATH_OK, "a@[IPv6:2001:db8::1]", "", 0 },
	{ "<j\xc3\xb6rg@ex\xc3\xa4mple.com>", PATH_OK,
	    "j\xc3\xb6rg@ex\xc3\xa4mple.com", "", 1 },
	{ "<a-b@x-y.example.com>", PATH_OK, "a-b@x-y.example.com", "", 0 },
	{ "a@example.com", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a@example.com", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a@@example.com>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a b@example.com>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<.a@example.com>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a.@example.com>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a..b@example.com>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a@example..com>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a@example.com.>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a@-x.example.com>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a@x-.example.com>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a@ex_ample.com>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a@>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<@example.com>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<@r.example:>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a@[192.0.2]>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a@[IPv6:zz::1]>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a@[192.0.2.1>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<\"unterminated@example.com>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<\"a\x01\"@example.com>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a\x7f@example.com>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<\xc3\x28@example.com>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<\xc0\xaf@example.com>", PATH_SYNTAX, NULL, NULL, 0 },	/* overlong */
	{ "<\xed\xa0\x80@example.com>", PATH_SYNTAX, NULL, NULL, 0 }, /* surrogate */
	{ "<\xf4\x90\x80\x80@example.com>", PATH_SYNTAX, NULL, NULL, 0 },
	{ "<a@example.com\xe2\x82>", PATH_SYNTAX, NULL, NULL, 0 },
};

static void
test_paths(void)
{
	char		 in[1024], buf[SMX_ADDRSZ], *p;
	size_t		 i;
	int		 r, utf8;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		strlcpy(in, paths[i].in, sizeof(in));
		p = in;
		r = smtp_parse_path(&p, buf, sizeof(buf), &utf8);
		if (paths[i].result != PATH_OK) {
			ok(r == paths[i].result, "path %zu refused (%d)", i, r);
			continue;
		}
		ok(r == PATH_OK && strcmp(buf, paths[i].mailbox) == 0 &&
		    strcmp(p, paths[i].rest) == 0 && utf8 == paths[i].utf8,
		    "path %zu: %s", i, r == PATH_OK ? buf : "refused");
	}
}

/* The RFC 5321 §4.5.3.1 bounds, right at the edge and one past it. */
static void
test_bounds(void)
{
	char	 in[1024], buf[SMX_ADDRSZ], *p, local[80], label[80];
	char	 domain[300];
	int	 utf8, n;

	memset(local, 'l', 64);
	local[64] = '\0';
	(void)snprintf(in, sizeof(in), "<%s@example.com>", local);
	p = in;
	ok(smtp_parse_path(&p, buf, sizeof(buf), &utf8) == PATH_OK,
	    "local part of 64 octets");
	local[64] = 'l';
	local[65] = '\0';
	(void)snprintf(in, sizeof(in), "<%s@example.com>", local);
	p = in;
	ok(smtp_parse_path(&p, buf, sizeof(buf), &utf8) == PATH_TOOLONG,
	    "local part of 65 octets");

	memset(label, 'd', 63);
	label[63] = '\0';
	(void)snprintf(in, sizeof(in), "<a@%s.example>", label);
	p = in;
	ok(smtp_parse_path(&p, buf, sizeof(buf), &utf8) == PATH_OK,
	    "label of 63 octets");
	label[63] = 'd';
	label[64] = '\0';
	(void)snprintf(in, sizeof(in), "<a@%s.example>", label);
	p = in;
	ok(smtp_parse_path(&p, buf, sizeof(buf), &utf8) == PATH_SYNTAX,
	    "label of 64 octets");

	/* 4 labels of 63 and dots: 255 octets; a path of 259 > 256. */
	label[63] = '\0';
	n = snprintf(domain, sizeof(domain), "%s.%s.%s.%s", label, label,
	    label, label);
	ok(n == 255, "domain of 255 octets built");
	(void)snprintf(in, sizeof(in), "<a@%s>", domain);
	p = in;
	ok(smtp_parse_path(&p, buf, sizeof(buf), &utf8) == PATH_TOOLONG,
	    "path over 256 octets");
	(void)snprintf(in, sizeof(in), "<a@%s>", domain + 4);
	p = in;
	ok(smtp_parse_path(&p, buf, sizeof(buf), &utf8) == PATH_OK,
	    "path of 255 octets");
	(void)snprintf(in, sizeof(in), "<a@x%s>", domain);
	p = in;
	ok(smtp_parse_path(&p, buf, sizeof(buf), &utf8) != PATH_OK,
	    "domain over 255 octets");
}

static void
test_words(void)
{
	char	 in[256], *p, *key, *val;

	ok(smtp_parse_helo("mail.example.com"), "helo name");
	ok(smtp_parse_helo("[192.0.2.1]"), "helo literal");
	ok(!smtp_parse_helo(""), "empty helo");
	ok(!smtp_parse_helo("bad name"), "helo with a space");
	ok(!smtp_parse_helo("x(y)"), "helo with parentheses");
	ok(!smtp_parse_helo("caf\xc3\xa9"), "helo with UTF-8");

	ok(smtp_parse_keyword("SIZE") && smtp_parse_keyword("X-1"),
	    "keywords");
	ok(!smtp_parse_keyword("-X") && !smtp_parse_keyword("A_B") &&
	    !smtp_parse_keyword(""), "bad keywords");

	ok(smtp_parse_xtext("abc+2Bdef", 100), "xtext with +HH");
	ok(!smtp_parse_xtext("a=b", 100), "xtext with =");
	ok(!smtp_parse_xtext("a+2", 100), "xtext with a short +H");
	ok(!smtp_parse_xtext("a b", 100), "xtext with a space");
	ok(!smtp_parse_xtext("abcd", 3), "xtext over its bound");
	ok(!smtp_parse_xtext("", 3), "empty xtext");

	strlcpy(in, "  SIZE=100 SMTPUTF8  BODY=8BITMIME", sizeof(in));
	p = in;
	key = smtp_parse_param(&p, &val);
	ok(key && strcmp(key, "SIZE") == 0 && val && strcmp(val, "100") == 0,
	    "first parameter");
	key = smtp_parse_param(&p, &val);
	ok(key && strcmp(key, "SMTPUTF8") == 0 && val == NULL,
	    "parameter without value");
	key = smtp_parse_param(&p, &val);
	ok(key && strcmp(key, "BODY") == 0 && strcmp(val, "8BITMIME") == 0,
	    "last parameter");
	ok(smtp_parse_param(&p, &val) == NULL, "no more parameters");
}

/* ORCPT checked whole (issue 18): type, xtext, what it decodes to. */
static void
test_orcpt(void)
{
	static const char *good[] = {
		"rfc822;a@example.com", "RFC822;Bob+2B1@Example.COM",
		"rfc822;+22john+20doe+22@example.com", "rfc822;a+2bb@x",
		"utf-8;j\\x{E9}rome@example.com", "x-type!#$%&'*/=?^_`{|}~;a",
	};
	static const char *bad[] = {
		"rfc\x1b" "822;a@example.com", "rfc\xff" "822;a@example.com",
		"rfc822:;a@example.com", "(rfc822);a", ";a@example.com",
		"rfc822;", "rfc822", "rfc822;a+1B@example.com",
		"rfc822;a+FF@example.com", "rfc822;a+7F@x", "rfc822;a+00@x",
		"rfc822;a+0@x", "rfc822;a+G1@x", "rfc822;a=b@x",
		"rfc822;\xc3\xa5se@example.com", "rfc822;a\x7f@x",
	};
	char	 big[600];
	size_t	 i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ok(smtp_parse_orcpt(good[i], 500), "orcpt %s", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(!smtp_parse_orcpt(bad[i], 500), "orcpt %zu refused", i);
	memset(big, 'a', sizeof(big));
	memcpy(big, "rfc822;", 7);
	big[500] = '\0';
	ok(smtp_parse_orcpt(big, 500), "orcpt of 500 octets");
	big[500] = 'a';
	big[501] = '\0';
	ok(!smtp_parse_orcpt(big, 500), "orcpt of 501 octets");
}

int
main(void)
{
	plan(0);
	test_paths();
	test_bounds();
	test_words();
	test_orcpt();
	return done();
}
