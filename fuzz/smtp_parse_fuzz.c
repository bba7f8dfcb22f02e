/*
 * libFuzzer target over smtp/smtp_parse.c: a MAIL or RCPT argument (a
 * path and its ESMTP parameters) and a greeting, as clients send them.
 * fuzz-link: smtp/smtp_parse.c lib/util.c lib/log.c
 *
 * Beyond memory: a path taken is a bounded mailbox without controls,
 * found again when parsed a second time, with its UTF-8 flag right; a
 * parameter named in a reply is a keyword; what the parameters set is
 * in range (an ORCPT kept is printable ASCII, its type included); a
 * greeting taken is a bounded host name.
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"
#include "smtp.h"
#include "fuzz.h"

static void	check_path(const char *, char *);
static void	check_mailbox(const char *, int);
static void	check_mail_params(const char *, size_t);
static void	check_rcpt_params(const char *);
static void	check_helo(const char *);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*s, *p;

	/* What the session hands over: a line without NUL, cut at 1012. */
	if (size > 1100 || (s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if ((p = strchr(s, '<')) != NULL)
		check_path(s, p);
	check_mail_params(s, size % 3 == 0 ? 0 : 1000);
	check_rcpt_params(s);
	check_helo(s);
	free(s);
	return 0;
}

/* A path at p (the '<'), and the parameters after it. */
static void
check_path(const char *in, char *p)
{
	char	 buf[SMX_ADDRSZ], again[SMX_ADDRSZ], line[SMX_ADDRSZ + 2];
	char	*q = p, *q2;
	int	 r, utf8, utf8b;

	r = smtp_parse_path(&q, buf, sizeof(buf), &utf8);
	if (r != PATH_OK) {
		FUZZ_CHECK(r == PATH_SYNTAX || r == PATH_TOOLONG,
		    "path verdict %d", r);
		FUZZ_CHECK(q == p, "a refused path moved the pointer");
		return;
	}
	FUZZ_CHECK(q > p && q[-1] == '>', "path does not end at '>'");
	FUZZ_CHECK(strlen(buf) < sizeof(buf), "mailbox overflows");
	FUZZ_CHECK(buf[0] == '\0' || strstr(in, buf) != NULL,
	    "mailbox is not from the input");
	check_mailbox(buf, utf8);

	/* The mailbox, given again, is the same mailbox. */
	(void)snprintf(line, sizeof(line), "<%s>", buf);
	q2 = line;
	r = smtp_parse_path(&q2, again, sizeof(again), &utf8b);
	FUZZ_CHECK(r == PATH_OK && strcmp(buf, again) == 0 &&
	    utf8 == utf8b && *q2 == '\0', "mailbox <%s> not taken again", buf);

	if (*q == ' ' || *q == '\0') {
		check_mail_params(q, 35 * 1024 * 1024);
		check_rcpt_params(q);
	}
}

/* What goes into lookups, logs and envelopes. */
static void
check_mailbox(const char *buf, int utf8)
{
	const unsigned char	*u;
	const char		*at = NULL, *p;
	int			 quoted = 0, high = 0;

	if (buf[0] == '\0')
		return;
	for (p = buf; *p != '\0'; p++) {
		u = (const unsigned char *)p;
		FUZZ_CHECK(*u >= 0x20 && *u != 0x7f,
		    "control octet 0x%02x in a mailbox", *u);
		if (*u >= 0x80)
			high = 1;
		if (quoted && *p == '\\' && p[1] != '\0') {
			p++;	/* a quoted pair */
			FUZZ_CHECK(*p >= 0x20 && *p != 0x7f,
			    "control octet in a quoted pair");
		} else if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == ' ')
			fuzz_fail("space outside quotes in %s", buf);
		else if (!quoted && *p == '@')
			at = p;
	}
	FUZZ_CHECK(at != NULL && at > buf && at[1] != '\0',
	    "mailbox %s without local part and domain", buf);
	FUZZ_CHECK(at - buf <= 64 && strlen(at + 1) <= 255,
	    "mailbox %s over the RFC 5321 bounds", buf);
	FUZZ_CHECK(utf8 == high, "UTF-8 flag %d for %s", utf8, buf);
}

static void
check_mail_params(const char *in, size_t max)
{
	struct smtp_tx	 tx;
	const char	*key = NULL;
	char		*s;
	int		 r;

	if ((s = strdup(in)) == NULL)
		return;
	memset(&tx, 0, sizeof(tx));
	tx.body = BODY_7BIT;
	tx.ret = RET_UNSET;
	r = smtp_parse_mail_params(s, max, &tx, &key);
	switch (r) {
	case PARAM_OK:
		FUZZ_CHECK(tx.body == BODY_7BIT || tx.body == BODY_8BITMIME,
		    "body %u", tx.body);
		FUZZ_CHECK(tx.ret < RET_COUNT, "ret %u", tx.ret);
		FUZZ_CHECK((tx.mflags & ~(uint32_t)F_MSG_SMTPUTF8) == 0,
		    "mflags %x", tx.mflags);
		FUZZ_CHECK(tx.envid[0] == '\0' ||
		    smtp_parse_xtext(tx.envid, SMTP_ENVID_MAX),
		    "ENVID %s is not xtext", tx.envid);
		break;
	case PARAM_UNKNOWN:
	case PARAM_TWICE:
		/* It goes into the reply. */
		FUZZ_CHECK(key != NULL && smtp_parse_keyword(key),
		    "reply names a parameter that is no keyword");
		break;
	case PARAM_SIZE:
		FUZZ_CHECK(max != 0, "SIZE refused without a limit");
		break;
	case PARAM_SYNTAX:
	case PARAM_BODY:
		break;
	default:
		fuzz_fail("MAIL parameters verdict %d", r);
	}
	free(s);
}

static void
check_rcpt_params(const char *in)
{
	const char	*key = NULL, *semi, *p;
	char		 orcpt[SMTP_ORCPT_MAX + 1], *s;
	uint32_t	 notify = 0;
	int		 r;

	if ((s = strdup(in)) == NULL)
		return;
	orcpt[0] = '\0';
	r = smtp_parse_rcpt_params(s, &notify, orcpt, sizeof(orcpt), &key);
	switch (r) {
	case PARAM_OK:
		FUZZ_CHECK(notify == 0 || notify == F_NOTIFY_NEVER ||
		    (notify & ~(uint32_t)(F_NOTIFY_SUCCESS | F_NOTIFY_FAILURE |
		    F_NOTIFY_DELAY)) == 0, "NOTIFY %x", notify);
		if (orcpt[0] == '\0')
			break;
		semi = strchr(orcpt, ';');
		FUZZ_CHECK(semi != NULL && semi > orcpt &&
		    strlen(orcpt) <= SMTP_ORCPT_MAX, "ORCPT %s", orcpt);
		/* An atom, ';', xtext: printable ASCII without a space. */
		for (p = orcpt; *p != '\0'; p++)
			FUZZ_CHECK(*p > 0x20 && *p < 0x7f,
			    "ORCPT octet 0x%02x", (unsigned char)*p);
		break;
	case PARAM_UNKNOWN:
		FUZZ_CHECK(key != NULL && smtp_parse_keyword(key),
		    "reply names a parameter that is no keyword");
		break;
	case PARAM_SYNTAX:
		break;
	default:
		fuzz_fail("RCPT parameters verdict %d", r);
	}
	free(s);
}

/* A greeting goes into replies and the Received: header. */
static void
check_helo(const char *s)
{
	const char	*p;

	if (!smtp_parse_helo(s))
		return;
	FUZZ_CHECK(s[0] != '\0' && strlen(s) < SMX_HOSTSZ, "helo length");
	for (p = s; *p != '\0'; p++)
		FUZZ_CHECK(isalnum((unsigned char)*p) ||
		    strchr("-._:[]", *p) != NULL, "helo octet 0x%02x",
		    (unsigned char)*p);
}
