/*
 * Unit tests of smtp/smtp_parse.c: SMTP paths with their bounds and
 * UTF-8, greetings, ESMTP keywords, parameters and xtext, the MAIL and
 * RCPT parameters.  TAP output.
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

/* MAIL parameters into a transaction; the verdict and what was set. */
static int
mail_params(const char *in, size_t max, struct smtp_tx *tx,
    const char **key)
{
	char	 buf[1024];

	memset(tx, 0, sizeof(*tx));
	tx->body = BODY_7BIT;
	tx->ret = RET_UNSET;
	*key = NULL;
	strlcpy(buf, in, sizeof(buf));
	return smtp_parse_mail_params(buf, max, tx, key);
}

static void
test_mail_params(void)
{
	struct smtp_tx	 tx;
	const char	*key;
	char		 envid[200];

	ok(mail_params("", 100, &tx, &key) == PARAM_OK, "no MAIL parameters");
	ok(mail_params("SIZE=100 BODY=8BITMIME SMTPUTF8 RET=HDRS "
	    "ENVID=a+2Bb", 100, &tx, &key) == PARAM_OK &&
	    tx.body == BODY_8BITMIME && tx.mflags == F_MSG_SMTPUTF8 &&
	    tx.ret == RET_HDRS && strcmp(tx.envid, "a+2Bb") == 0,
	    "every MAIL parameter");
	ok(mail_params("size=1 body=7bit ret=full", 0, &tx, &key) ==
	    PARAM_OK && tx.body == BODY_7BIT && tx.ret == RET_FULL,
	    "keywords and values in lower case");
	ok(mail_params("SIZE=101", 100, &tx, &key) == PARAM_SIZE,
	    "SIZE over the limit");
	ok(mail_params("SIZE=999999999999999999", 0, &tx, &key) == PARAM_OK,
	    "SIZE without a limit");
	ok(mail_params("SIZE=1000000000000000000", 0, &tx, &key) ==
	    PARAM_SYNTAX, "SIZE of 19 digits");
	ok(mail_params("SIZE=-1", 0, &tx, &key) == PARAM_SYNTAX &&
	    mail_params("SIZE", 0, &tx, &key) == PARAM_SYNTAX &&
	    mail_params("SIZE=", 0, &tx, &key) == PARAM_SYNTAX,
	    "SIZE without a number");
	ok(mail_params("BODY=BINARYMIME", 0, &tx, &key) == PARAM_BODY &&
	    mail_params("BODY", 0, &tx, &key) == PARAM_BODY,
	    "BODY we do not take");
	ok(mail_params("SMTPUTF8=yes", 0, &tx, &key) == PARAM_SYNTAX,
	    "SMTPUTF8 with a value");
	ok(mail_params("RET=ALL", 0, &tx, &key) == PARAM_SYNTAX,
	    "RET neither FULL nor HDRS");
	ok(mail_params("ENVID=a=b", 0, &tx, &key) == PARAM_SYNTAX &&
	    mail_params("ENVID", 0, &tx, &key) == PARAM_SYNTAX,
	    "ENVID not xtext");
	memset(envid, 'e', 101);
	envid[101] = '\0';
	ok(mail_params(envid, 0, &tx, &key) == PARAM_SYNTAX, "100 octets of "
	    "ENVID at most");
	ok(mail_params("AUTH=<> SIZE=1", 0, &tx, &key) == PARAM_UNKNOWN &&
	    key != NULL && strcmp(key, "AUTH") == 0, "unknown parameter named");
	ok(mail_params("BODY=7BIT body=8BITMIME", 0, &tx, &key) ==
	    PARAM_TWICE && key != NULL && strcmp(key, "body") == 0,
	    "duplicate parameter named");
	ok(mail_params("X_Y=1", 0, &tx, &key) == PARAM_SYNTAX,
	    "keyword with an underscore");
}

static int
rcpt_params(const char *in, uint32_t *notify, char *orcpt, size_t sz,
    const char **key)
{
	char	 buf[1024];

	*notify = 0;
	orcpt[0] = '\0';
	*key = NULL;
	strlcpy(buf, in, sizeof(buf));
	return smtp_parse_rcpt_params(buf, notify, orcpt, sz, key);
}

static void
test_rcpt_params(void)
{
	const char	*key;
	char		 orcpt[SMTP_ORCPT_MAX + 1], in[700];
	uint32_t	 notify;

	ok(rcpt_params("", &notify, orcpt, sizeof(orcpt), &key) == PARAM_OK &&
	    notify == 0 && orcpt[0] == '\0', "no RCPT parameters");
	ok(rcpt_params("NOTIFY=SUCCESS,failure,Delay "
	    "ORCPT=rfc822;a+2Bb@example.com", &notify, orcpt, sizeof(orcpt),
	    &key) == PARAM_OK && notify == (F_NOTIFY_SUCCESS |
	    F_NOTIFY_FAILURE | F_NOTIFY_DELAY) &&
	    strcmp(orcpt, "rfc822;a+2Bb@example.com") == 0,
	    "NOTIFY and ORCPT");
	ok(rcpt_params("NOTIFY=NEVER", &notify, orcpt, sizeof(orcpt), &key) ==
	    PARAM_OK && notify == F_NOTIFY_NEVER, "NOTIFY=NEVER");
	ok(rcpt_params("NOTIFY=NEVER,DELAY", &notify, orcpt, sizeof(orcpt),
	    &key) == PARAM_SYNTAX, "NEVER with another");
	ok(rcpt_params("NOTIFY=SUCCESS,", &notify, orcpt, sizeof(orcpt),
	    &key) == PARAM_SYNTAX && rcpt_params("NOTIFY=SOMETIMES", &notify,
	    orcpt, sizeof(orcpt), &key) == PARAM_SYNTAX &&
	    rcpt_params("NOTIFY", &notify, orcpt, sizeof(orcpt), &key) ==
	    PARAM_SYNTAX, "bad NOTIFY lists");
	ok(rcpt_params("NOTIFY=DELAY NOTIFY=DELAY", &notify, orcpt,
	    sizeof(orcpt), &key) == PARAM_SYNTAX, "NOTIFY twice");
	ok(rcpt_params("ORCPT=a@example.com", &notify, orcpt, sizeof(orcpt),
	    &key) == PARAM_SYNTAX && rcpt_params("ORCPT=;a@example.com",
	    &notify, orcpt, sizeof(orcpt), &key) == PARAM_SYNTAX &&
	    rcpt_params("ORCPT=rfc822;a=b", &notify, orcpt, sizeof(orcpt),
	    &key) == PARAM_SYNTAX, "ORCPT without a type or not xtext");
	ok(rcpt_params("ORCPT=rfc822;a ORCPT=rfc822;b", &notify, orcpt,
	    sizeof(orcpt), &key) == PARAM_SYNTAX, "ORCPT twice");
	memset(in, 'o', sizeof(in));
	memcpy(in, "ORCPT=rfc822;", 13);
	in[6 + SMTP_ORCPT_MAX] = '\0';
	ok(rcpt_params(in, &notify, orcpt, sizeof(orcpt), &key) == PARAM_OK &&
	    strlen(orcpt) == SMTP_ORCPT_MAX, "ORCPT of 500 octets");
	in[6 + SMTP_ORCPT_MAX] = 'o';
	in[7 + SMTP_ORCPT_MAX] = '\0';
	ok(rcpt_params(in, &notify, orcpt, sizeof(orcpt), &key) ==
	    PARAM_SYNTAX, "ORCPT of 501 octets");
	ok(rcpt_params("SIZE=10", &notify, orcpt, sizeof(orcpt), &key) ==
	    PARAM_UNKNOWN && key != NULL && strcmp(key, "SIZE") == 0,
	    "a MAIL parameter at RCPT");
}

int
main(void)
{
	plan(0);
	test_paths();
	test_bounds();
	test_words();
	test_orcpt();
	test_mail_params();
	test_rcpt_params();
	return done();
}
