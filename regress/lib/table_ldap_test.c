/*
 * Unit tests of lookup/table_ldap.c's filter building: RFC 4515
 * escaping (NUL included, which no address can bring over SMTP or the
 * control socket), %s %u %d %%, and output that does not fit.  TAP.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"
#include "../../lookup/lookup.h"
#include "tap.h"

struct esc_case {
	const char	*in;
	size_t		 len;
	const char	*out;
};

static const struct esc_case	 escs[] = {
	{ "alice@example.com", 17, "alice@example.com" },
	{ "*", 1, "\\2a" },
	{ "(", 1, "\\28" },
	{ ")", 1, "\\29" },
	{ "\\", 1, "\\5c" },
	{ "a\0b", 3, "a\\00b" },
	{ "x)(mail=*", 9, "x\\29\\28mail=\\2a" },
	{ "\\2a", 3, "\\5c2a" },
	{ "j\xc3\xb6rg", 5, "j\\c3\\b6rg" },
	{ "tab\there", 8, "tab\\09here" },
	{ "", 0, "" },
};

struct filter_case {
	const char	*filter;
	const char	*key;
	const char	*out;
};

static const struct filter_case	 filters[] = {
	{ "(|(mail=%s)(proxyAddresses=smtp:%s))", "bob@example.com",
	    "(|(mail=bob@example.com)(proxyAddresses=smtp:bob@example.com))" },
	{ "(&(uid=%u)(dc=%d))", "alice@example.com",
	    "(&(uid=alice)(dc=example.com))" },
	{ "(mail=%s)", "*)(uid=*@example.com",
	    "(mail=\\2a\\29\\28uid=\\2a@example.com)" },
	{ "(&(uid=%u)(x=100%%))", "a*@b", "(&(uid=a\\2a)(x=100%))" },
	{ "(uid=%u)(dom=%d)", "@example.com", "(uid=)(dom=example.com)" },
	{ "(cn=%u)", "a@b@c", "(cn=a@b)" },
};

static void
test_escape(void)
{
	char	 out[64];
	size_t	 i;
	int	 r;

	for (i = 0; i < sizeof(escs) / sizeof(escs[0]); i++) {
		r = table_ldap_escape(escs[i].in, escs[i].len, out,
		    sizeof(out));
		ok(r == 0 && strcmp(out, escs[i].out) == 0,
		    "escape %zu: %s", i, r == 0 ? out : "(failed)");
	}
	/* Exactly full, and one short. */
	ok(table_ldap_escape("*", 1, out, 4) == 0 &&
	    strcmp(out, "\\2a") == 0, "escape fits in 4");
	ok(table_ldap_escape("*", 1, out, 3) == -1, "escape short by one");
	ok(table_ldap_escape("abc", 3, out, 3) == -1, "plain short by one");
	ok(table_ldap_escape("abc", 3, out, 4) == 0, "plain fits");
}

static void
test_filter(void)
{
	char	 out[256];
	size_t	 i;
	int	 r;

	for (i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
		r = table_ldap_filter(filters[i].filter, filters[i].key, out,
		    sizeof(out));
		ok(r == 0 && strcmp(out, filters[i].out) == 0,
		    "filter %zu: %s", i, r == 0 ? out : "(failed)");
	}
	ok(table_ldap_filter("(mail=%s)", "a@b", out, 10) == -1,
	    "filter too long for its buffer");
	ok(table_ldap_filter("(mail=%s)", "a@b", out, 11) == 0 &&
	    strcmp(out, "(mail=a@b)") == 0, "filter exactly fits");
	ok(table_ldap_filter("(mail=%x)", "a@b", out, sizeof(out)) == -1,
	    "unknown conversion refused");
}

int
main(void)
{
	plan(0);
	test_escape();
	test_filter();
	return done();
}
