/*
 * Unit tests of relay/relay_parse.c: replies of a next hop, read in
 * pieces, multi-line, hostile; the EHLO keywords.  TAP output.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"
#include "../../relay/relay.h"
#include "tap.h"

/* Every reply in in, fed as one buffer; the last verdict. */
static int
parse_all(const char *in, struct relay_reply *r, int *caps,
    uint64_t *size_max, int *nreplies, const char **why)
{
	char	 buf[RELAY_IBUF_SIZE];
	size_t	 len = strlen(in), pos = 0;
	int	 v;

	memset(r, 0, sizeof(*r));
	memcpy(buf, in, len);
	*nreplies = 0;
	*why = NULL;
	while ((v = relay_parse_reply(r, buf, len, &pos, caps, size_max,
	    why)) == 1)
		(*nreplies)++;
	return v;
}

static void
test_replies(void)
{
	struct relay_reply	 r;
	const char		*why;
	char			 buf[RELAY_IBUF_SIZE], *big;
	size_t			 pos, len;
	int			 n, i;

	ok(parse_all("250 2.0.0 Ok\r\n", &r, NULL, NULL, &n, &why) == 0 &&
	    n == 1 && r.code == 250 && strcmp(r.text, "250 2.0.0 Ok") == 0,
	    "one reply");
	ok(parse_all("550-5.1.1 no\r\n550-such\r\n550 user\r\n", &r, NULL,
	    NULL, &n, &why) == 0 && n == 1 && r.code == 550 &&
	    strcmp(r.text, "550 5.1.1 no; such; user") == 0,
	    "multi-line reply joined");
	ok(parse_all("220\r\n", &r, NULL, NULL, &n, &why) == 0 && n == 1 &&
	    strcmp(r.text, "220 ") == 0, "code alone");
	ok(parse_all("250 a\n250 b\n", &r, NULL, NULL, &n, &why) == 0 &&
	    n == 2, "bare LF ends a line too");
	ok(parse_all("250 x\xff\x01y\r\n", &r, NULL, NULL, &n, &why) == 0 &&
	    strcmp(r.text, "250 x??y") == 0, "text made printable");
	ok(parse_all("25 ok\r\n", &r, NULL, NULL, &n, &why) == -1 &&
	    strcmp(why, "malformed reply") == 0, "short code");
	ok(parse_all("650 ok\r\n", &r, NULL, NULL, &n, &why) == -1 &&
	    parse_all("2a0 ok\r\n", &r, NULL, NULL, &n, &why) == -1 &&
	    parse_all("250_ok\r\n", &r, NULL, NULL, &n, &why) == -1,
	    "bad codes and separators");
	ok(parse_all("250-a\r\n251 b\r\n", &r, NULL, NULL, &n, &why) == -1 &&
	    strcmp(why, "reply codes differ between lines") == 0,
	    "codes differ");

	/* In pieces: a line is taken once whole. */
	memset(&r, 0, sizeof(r));
	strlcpy(buf, "354-go\r\n354 ahe", sizeof(buf));
	len = strlen(buf);
	pos = 0;
	ok(relay_parse_reply(&r, buf, len, &pos, NULL, NULL, &why) == 0 &&
	    pos == 8 && r.lines == 1, "first line of a reply");
	memcpy(buf + len, "ad\r\n", 4);
	len += 4;
	ok(relay_parse_reply(&r, buf, len, &pos, NULL, NULL, &why) == 1 &&
	    pos == len && strcmp(r.text, "354 go; ahead") == 0,
	    "the rest of it");

	/* A hostile server's limits. */
	if ((big = malloc(RELAY_IBUF_SIZE)) == NULL)
		exit(1);
	memset(big, 'x', RELAY_REPLY_LINE_MAX + 10);
	memcpy(big, "250 ", 4);
	big[RELAY_REPLY_LINE_MAX + 10] = '\0';
	ok(parse_all(big, &r, NULL, NULL, &n, &why) == -1 &&
	    strcmp(why, "reply line too long") == 0, "line too long");
	len = 0;
	for (i = 0; i <= RELAY_REPLY_LINES_MAX; i++)
		len += (size_t)snprintf(big + len, RELAY_IBUF_SIZE - len,
		    "250-x\r\n");
	ok(parse_all(big, &r, NULL, NULL, &n, &why) == -1 &&
	    strcmp(why, "too many lines in one reply") == 0,
	    "too many lines");
	len = 0;
	for (i = 0; i < 20; i++)
		len += (size_t)snprintf(big + len, RELAY_IBUF_SIZE - len,
		    "550-%0100d\r\n", i);
	snprintf(big + len, RELAY_IBUF_SIZE - len, "550 end\r\n");
	ok(parse_all(big, &r, NULL, NULL, &n, &why) == 0 && n == 1 &&
	    strlen(r.text) == RELAY_REPLY_TEXT_MAX, "text kept within bounds");
	free(big);
}

static void
test_ehlo(void)
{
	struct relay_reply	 r;
	const char		*why;
	uint64_t		 size_max = 1;
	char			 line[64];
	int			 caps = 0, n;

	ok(parse_all("250-mx.example Hello\r\n250-PIPELINING\r\n"
	    "250-size 1000\r\n250-8BITMIME\r\n250-STARTTLS\r\n250-DSN\r\n"
	    "250 SMTPUTF8\r\n", &r, &caps, &size_max, &n, &why) == 0 &&
	    n == 1 && caps == (CAP_PIPELINING | CAP_SIZE | CAP_8BITMIME |
	    CAP_STARTTLS | CAP_DSN | CAP_SMTPUTF8) && size_max == 1000 &&
	    strstr(r.text, "size 1000; 8BITMIME") != NULL,
	    "EHLO keywords, text whole");
	caps = 0;
	ok(parse_all("250 PIPELINING\r\n", &r, &caps, &size_max, &n, &why) ==
	    0 && caps == 0, "the first line is the greeting");
	ok(parse_all("250-x\r\n250 STARTTLS\r\n", &r, NULL, &size_max, &n,
	    &why) == 0 && caps == 0, "no keywords outside EHLO");
	strlcpy(line, "SIZE x", sizeof(line));
	size_max = 5;
	relay_parse_ehlo(line, &caps, &size_max);
	ok(caps == CAP_SIZE && size_max == 0 && strcmp(line, "SIZE x") == 0,
	    "SIZE without a number: no limit");
}

int
main(void)
{
	plan(0);
	test_replies();
	test_ehlo();
	return done();
}
