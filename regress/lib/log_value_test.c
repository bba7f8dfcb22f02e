/*
 * Unit tests of the log value helpers of lib/log.c (issue 18): what a
 * client chose can neither add a field to a log line nor put a control
 * octet in it.  TAP output.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tap.h"

static void
is(const char *got, const char *want, const char *what)
{
	ok(strcmp(got, want) == 0, "%s: %s", what, got);
}

int
main(void)
{
	char		 big[9000], want[40];
	const char	*v[8];
	size_t		 n;
	int		 i, distinct;

	plan(20);
	is(log_value("alice@example.com"), "alice@example.com", "bare");
	is(log_value("a=b<c>"), "a=b<c>", "= and brackets stay bare");
	is(log_value(""), "\"\"", "empty is quoted");
	is(log_value("two words"), "\"two words\"", "space quotes");
	is(log_value("say \"hi\""), "\"say \\\"hi\\\"\"", "quotes escaped");
	is(log_value("back\\slash"), "\"back\\\\slash\"", "backslash");
	is(log_value("\x1b[2J\x07\t\r\n"), "\"\\x1b[2J\\x07\\x09\\x0d\\x0a\"",
	    "control octets");
	is(log_value("caf\xc3\xa9\x7f"), "\"caf\\xc3\\xa9\\x7f\"",
	    "8-bit octets and DEL");
	is(log_text("250"), "\"250\"", "text is always quoted");
	is(log_textn("abc\0def", 7), "\"abc\\x00def\"", "a NUL by length");
	is(log_addr(""), "<>", "the null address");
	is(log_addr("bob@example.com"), "<bob@example.com>", "an address");
	is(log_addr("\"x event=message id=FORGED\"@evil.test"),
	    "\"<\\\"x event=message id=FORGED\\\"@evil.test>\"",
	    "a forged field stays inside its value");
	is(log_addr("a b@c"), "\"<a b@c>\"", "quoted with its brackets");

	/* A long value is cut, its quotes still balanced. */
	memset(big, '\x01', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	v[0] = log_value(big);
	n = strlen(v[0]);
	ok(n < 4100 && v[0][0] == '"' && v[0][n - 1] == '"' &&
	    strcmp(v[0] + n - 4, "...\"") == 0, "long value cut (%zu)", n);
	memset(big, 'a', sizeof(big) - 1);
	v[0] = log_addr(big);
	n = strlen(v[0]);
	ok(n < 4100 && strcmp(v[0] + n - 4, "...>") == 0,
	    "long address cut, bracket kept");

	/* Eight values live at once, as one log call may need. */
	for (i = 0; i < 8; i++) {
		(void)snprintf(want, sizeof(want), "v%d", i);
		v[i] = log_value(want);
	}
	distinct = 1;
	for (i = 0; i < 8; i++) {
		(void)snprintf(want, sizeof(want), "v%d", i);
		if (strcmp(v[i], want) != 0)
			distinct = 0;
	}
	ok(distinct, "eight values at once");
	is(log_value("x y"), "\"x y\"", "the ring goes round");
	is(log_text("a \"b\" \\ c"), "\"a \\\"b\\\" \\\\ c\"", "text escapes");
	is(log_value("-"), "-", "a dash");
	return done();
}
