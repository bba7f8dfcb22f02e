/*
 * Unit tests of lookup/mta_sts_parse.c: the _mta-sts TXT record and the
 * policy of RFC 8461 §3, good and bad, and the MX patterns (§4.1).
 * TAP output.
 */
#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include "splitmx.h"
#include "../../lookup/lookup.h"
#include "tap.h"

struct txt_case {
	const char	*in;
	int		 want;
	const char	*id;
};

static const struct txt_case txts[] = {
	{ "v=STSv1; id=20160831085700Z;", 1, "20160831085700Z" },
	{ "v=STSv1;id=abc", 1, "abc" },
	{ "v=STSv1; id=abc ;  ", 1, "abc" },
	{ "v=STSv1; ext=value; id=42", 1, "42" },
	{ "v=STSv1; id=123456789012345678901234567890AB", 1,
	    "123456789012345678901234567890AB" },
	{ "v=spf1 -all", 0, NULL },
	{ "v=STSv10; id=1", 0, NULL },
	{ "x v=STSv1; id=1", 0, NULL },
	{ "v=STSv1", -1, NULL },
	{ "v=STSv1;", -1, NULL },
	{ "v=STSv1; id=", -1, NULL },
	{ "v=STSv1; id=1; id=2", -1, NULL },
	{ "v=STSv1; id=a-b", -1, NULL },
	{ "v=STSv1; id=123456789012345678901234567890ABC", -1, NULL },
	{ "v=STSv1; id=1; bad", -1, NULL },
	{ "v=STSv1; id=1; e=a=b", -1, NULL },
	{ "v=STSv1 id=1", -1, NULL },
	{ "v=STSv1; id=1;; ", -1, NULL },
};

struct policy_case {
	const char	*in;
	int		 ok;
	enum sts_mode	 mode;
	uint32_t	 max_age;
	int		 nmx;
	const char	*what;
};

static const struct policy_case policies[] = {
	{ "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
	    "max_age: 86400\r\n", 1, STS_ENFORCE, 86400, 1, "CRLF" },
	{ "version: STSv1\nmode: testing\nmx: a.example\nmx: *.b.example\n"
	    "max_age: 604800", 1, STS_TESTING, 604800, 2,
	    "LF, no final line end, two mx" },
	{ "mode: none\nmax_age: 0\nversion: STSv1\n", 1, STS_NONE, 0, 0,
	    "none needs no mx; any order" },
	{ "version:STSv1\nmode:\tenforce \nmx: MX.Example.COM\nmax_age: 1\n"
	    "x_ext.1: some value\n", 1, STS_ENFORCE, 1, 1,
	    "spaces optional, an extension skipped" },
	{ "version: STSv1\nmode: enforce\nmx: a.example\n"
	    "max_age: 99999999999\n", 0, 0, 0, 0, "max_age over 10 digits" },
	{ "version: STSv1\nmode: enforce\nmx: a.example\n"
	    "max_age: 9999999999\n", 1, STS_ENFORCE, 31557600, 1,
	    "max_age capped at a year" },
	{ "version: STSv1\nmode: enforce\nmax_age: 86400\n", 0, 0, 0, 0,
	    "enforce without mx" },
	{ "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", 0,
	    0, 0, 0, "another version" },
	{ "mode: enforce\nmx: a.example\nmax_age: 1\n", 0, 0, 0, 0,
	    "no version" },
	{ "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", 0, 0,
	    0, 0, "an unknown mode" },
	{ "version: STSv1\nmode: enforce\nmode: testing\nmx: a.example\n"
	    "max_age: 1\n", 0, 0, 0, 0, "mode twice" },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", 0,
	    0, 0, 0, "a negative max_age" },
	{ "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n", 0,
	    0, 0, 0, "two wildcards" },
	{ "version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n", 0, 0, 0, 0,
	    "a bare wildcard" },
	{ "version: STSv1\nmode: enforce\nmx: mail\nmax_age: 1\n", 0, 0, 0,
	    0, "a single label" },
	{ "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n", 0,
	    0, 0, 0, "an empty label" },
	{ "version: STSv1\n\nmode: enforce\nmx: a.example\nmax_age: 1\n", 0,
	    0, 0, 0, "an empty line" },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n"
	    "garbage\n", 0, 0, 0, 0, "a line without a colon" },
	{ "version: STSv1\nmode: enforce\rmx: a.example\nmax_age: 1\n", 0,
	    0, 0, 0, "a bare CR" },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n"
	    "-bad: x\n", 0, 0, 0, 0, "an extension name with a dash first" },
	{ "", 0, 0, 0, 0, "nothing" },
};

int
main(void)
{
	struct sts_policy	 pol;
	char			 id[STS_IDSZ], err[128], big[STS_POLICY_MAX + 64];
	const char		*txt;
	size_t			 i, n;
	int			 r;

	plan((int)(sizeof(txts) / sizeof(txts[0]) +
	    sizeof(policies) / sizeof(policies[0])) + 9);
	for (i = 0; i < sizeof(txts) / sizeof(txts[0]); i++) {
		id[0] = '\0';
		r = sts_parse_txt(txts[i].in, strlen(txts[i].in), id,
		    sizeof(id));
		ok(r == txts[i].want && (r != 1 || strcmp(id, txts[i].id) == 0),
		    "TXT \"%s\": %d", txts[i].in, r);
	}
	for (i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
		err[0] = '\0';
		r = sts_parse_policy(policies[i].in, strlen(policies[i].in),
		    &pol, err, sizeof(err));
		ok(policies[i].ok ? r == 0 && pol.mode == policies[i].mode &&
		    pol.max_age == policies[i].max_age &&
		    pol.nmx == policies[i].nmx : r == -1 && *err != '\0',
		    "policy: %s%s%s", policies[i].what, r == -1 ? ": " : "",
		    r == -1 ? err : "");
	}

	/* Lower case, and the patterns (RFC 8461 §4.1). */
	txt = "version: STSv1\nmode: enforce\nmx: MX1.Example.com\n"
	    "mx: *.mail.example.net\nmax_age: 5\n";
	r = sts_parse_policy(txt, strlen(txt), &pol, err, sizeof(err));
	ok(r == 0 && strcmp(pol.mx[0], "mx1.example.com") == 0,
	    "mx patterns are kept in lower case");
	ok(sts_mx_match(&pol, "mx1.example.com"), "an exact name matches");
	ok(!sts_mx_match(&pol, "mx2.example.com"), "another name does not");
	ok(sts_mx_match(&pol, "a.mail.example.net"),
	    "*.mail.example.net matches one label more");
	ok(!sts_mx_match(&pol, "mail.example.net") &&
	    !sts_mx_match(&pol, "a.b.mail.example.net"),
	    "... not the name itself, nor two labels more");
	ok(!sts_mx_match(&pol, ".mail.example.net"),
	    "... nor an empty label");

	/* Size and bytes. */
	memset(big, 'x', sizeof(big));
	n = sizeof(big);
	ok(sts_parse_policy(big, n, &pol, err, sizeof(err)) == -1,
	    "a policy over 64 KB is refused");
	ok(sts_parse_policy("version: STSv1\0mode: none", 26, &pol, err,
	    sizeof(err)) == -1, "a NUL is refused");
	ok(sts_parse_txt("v=STSv1; id=1\0", 14, id, sizeof(id)) == -1,
	    "a NUL in a TXT record is refused");
	return done();
}
