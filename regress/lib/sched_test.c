/*
 * Unit tests of the scheduler's arithmetic (queue/scheduler.c) and of
 * the delivery status notifications (queue/bounce.c): the backoff, the
 * status codes, NOTIFY, and the text of a DSN.  TAP output.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "splitmx.h"
#include "../../queue/queue.h"
#include "tap.h"

#define ORIGINAL	"Received: from x by y; 1 Jan 2026 00:00:00 +0000\r\n" \
			"Subject: the original\r\n" \
			"Message-ID: <orig@client.example>\r\n" \
			"\r\n" \
			"The body, which RET=HDRS leaves out.\r\n"

static char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL) {
		perror("strdup");
		exit(2);
	}
	return p;
}

static void
test_backoff(void)
{
	ok(sched_backoff(1, 300, 4 * 3600) == 300, "first retry after FIRST");
	ok(sched_backoff(2, 300, 4 * 3600) == 600, "then doubled");
	ok(sched_backoff(3, 300, 4 * 3600) == 1200, "and doubled again");
	ok(sched_backoff(7, 300, 4 * 3600) == 4 * 3600, "capped at CAP");
	ok(sched_backoff(1, 1, 4) == 1 && sched_backoff(2, 1, 4) == 2 &&
	    sched_backoff(3, 1, 4) == 4 && sched_backoff(4, 1, 4) == 4,
	    "1s to 4s: 1, 2, 4, 4");
	ok(sched_backoff(UINT32_MAX, 1, 30 * 86400) == 30 * 86400,
	    "no overflow after many tries");
	ok(sched_backoff(5, 60, 60) == 60, "FIRST equal to CAP");
}

static int
status_is(const char *reply, enum bounce_action a, int expired,
    const char *want)
{
	char	 buf[16];

	bounce_status(reply, a, expired, buf, sizeof(buf));
	if (strcmp(buf, want) != 0)
		diag("\"%s\" gave %s, not %s", reply, buf, want);
	return strcmp(buf, want) == 0;
}

static void
test_status(void)
{
	ok(status_is("550 5.1.1 no such user", BOUNCE_FAILED, 0, "5.1.1"),
	    "status from the remote's enhanced code");
	ok(status_is("550 no such user", BOUNCE_FAILED, 0, "5.0.0"),
	    "5.0.0 without an enhanced code");
	ok(status_is("554-5.7.1 first; second", BOUNCE_FAILED, 0, "5.7.1"),
	    "multi-line reply");
	ok(status_is("5.1.3 invalid recipient address", BOUNCE_FAILED, 0,
	    "5.1.3"), "our own text with a code");
	ok(status_is("451 4.3.0 try later", BOUNCE_FAILED, 1, "4.3.0"),
	    "expired: the last temporary code");
	ok(status_is("4.4.1 connection refused", BOUNCE_FAILED, 1, "4.4.1"),
	    "expired after local failures");
	ok(status_is("451 try later", BOUNCE_FAILED, 1, "4.4.7"),
	    "expired without a code: 4.4.7");
	ok(status_is("451 4.3.0 try later", BOUNCE_FAILED, 0, "5.0.0"),
	    "a permanent failure never gets a 4.x.x status");
	ok(status_is("452 4.2.2 mailbox full", BOUNCE_DELAYED, 0, "4.2.2"),
	    "delayed: the temporary code");
	ok(status_is("", BOUNCE_DELAYED, 0, "4.0.0"), "delayed: 4.0.0");
	ok(status_is("250 2.6.0 queued as 12", BOUNCE_RELAYED, 0, "2.6.0"),
	    "relayed: the success code");
	ok(status_is("250 ok", BOUNCE_RELAYED, 0, "2.0.0"),
	    "relayed without an enhanced code: 2.0.0");
	ok(status_is("550 5.1.1000 x", BOUNCE_FAILED, 0, "5.0.0") &&
	    status_is("550 5.1 x", BOUNCE_FAILED, 0, "5.0.0") &&
	    status_is("550 5.1.1x", BOUNCE_FAILED, 0, "5.0.0"),
	    "malformed enhanced codes are not copied");
}

static void
test_wanted(void)
{
	struct queue_envelope	 e;
	struct queue_rcpt	 r;

	memset(&e, 0, sizeof(e));
	memset(&r, 0, sizeof(r));
	e.sender = "alice@sender.example";
	r.notify = 0;
	ok(bounce_wanted(&e, &r, BOUNCE_FAILED) &&
	    bounce_wanted(&e, &r, BOUNCE_DELAYED),
	    "no NOTIFY: failure and delay");
	r.notify = F_NOTIFY_NEVER;
	ok(!bounce_wanted(&e, &r, BOUNCE_FAILED) &&
	    !bounce_wanted(&e, &r, BOUNCE_DELAYED), "NOTIFY=NEVER: none");
	r.notify = F_NOTIFY_FAILURE;
	ok(bounce_wanted(&e, &r, BOUNCE_FAILED) &&
	    !bounce_wanted(&e, &r, BOUNCE_DELAYED), "NOTIFY=FAILURE");
	ok(!bounce_wanted(&e, &r, BOUNCE_RELAYED), "NOTIFY=FAILURE: no "
	    "success report");
	r.notify = F_NOTIFY_DELAY | F_NOTIFY_SUCCESS;
	ok(!bounce_wanted(&e, &r, BOUNCE_FAILED) &&
	    bounce_wanted(&e, &r, BOUNCE_DELAYED) &&
	    bounce_wanted(&e, &r, BOUNCE_RELAYED), "NOTIFY=SUCCESS,DELAY");
	r.notify = 0;
	ok(!bounce_wanted(&e, &r, BOUNCE_RELAYED),
	    "no NOTIFY: no success report");
	e.sender = "";
	r.notify = 0;
	ok(!bounce_wanted(&e, &r, BOUNCE_FAILED) &&
	    !bounce_wanted(&e, &r, BOUNCE_DELAYED), "never to <>");
	r.notify = F_NOTIFY_SUCCESS;
	ok(!bounce_wanted(&e, &r, BOUNCE_RELAYED), "no success report to <>");
}

static void
env_sample(struct queue_envelope *e, uint32_t ret)
{
	static const char	*addrs[2] = {
		"bob@example.com", "carol@example.com"
	};
	uint32_t		 i;

	memset(e, 0, sizeof(e[0]));
	strlcpy(e->id, "0123456789abcdef01234567", sizeof(e->id));
	e->arrival = 1700000000;
	e->size = strlen(ORIGINAL);
	e->sender = xstrdup("alice@sender.example");
	e->helo = xstrdup("client.example");
	e->client = xstrdup("127.0.0.1");
	e->client_host = xstrdup("");
	e->envid = xstrdup("env+2B1");
	e->ret = ret;
	e->nrcpt = 2;
	if ((e->rcpts = calloc(2, sizeof(*e->rcpts))) == NULL)
		exit(2);
	for (i = 0; i < 2; i++) {
		e->rcpts[i].rcpt = xstrdup(addrs[i]);
		e->rcpts[i].rewritten = xstrdup(addrs[i]);
		e->rcpts[i].dest = xstrdup("[127.0.0.1]:2525");
		e->rcpts[i].orcpt = xstrdup(i == 0 ?
		    "rfc822;bob+2Bx@example.com" : "");
		e->rcpts[i].class = ROUTE_FORWARD;
		e->rcpts[i].state = STATE_DEFERRED;
		e->rcpts[i].tries = 3;
		e->rcpts[i].last_try = 1700000100;
	}
	e->rcpts[0].last_error = xstrdup("550 5.1.1 <bob@example.com>: "
	    "Recipient address rejected: User unknown in virtual mailbox "
	    "table; and a long explanation that goes on and on so that "
	    "the field must be folded somewhere");
	e->rcpts[1].last_error = xstrdup("4.4.1 connection refused");
	e->rcpts[1].fail = FAIL_EXPIRED;
}

static char	*dsn_text_of(const struct queue_envelope *, enum bounce_action,
		    const char *, int *);

/* The DSN bounce_write makes, as a string. */
static char *
dsn_text(const struct queue_envelope *e, enum bounce_action a)
{
	int	 body;

	return dsn_text_of(e, a, ORIGINAL, &body);
}

/* ... of a message with that text; *body is what bounce_write said. */
static char *
dsn_text_of(const struct queue_envelope *e, enum bounce_action a,
    const char *original, int *body)
{
	static const uint32_t	 idx[2] = { 0, 1 };
	char			 path[] = "/tmp/sched_testXXXXXX";
	char			 mpath[] = "/tmp/sched_testXXXXXX";
	char			*buf;
	struct stat		 st;
	int			 fd, mfd;

	if ((fd = mkstemp(path)) == -1 || (mfd = mkstemp(mpath)) == -1)
		exit(2);
	unlink(path);
	unlink(mpath);
	if (write(mfd, original, strlen(original)) !=
	    (ssize_t)strlen(original))
		exit(2);
	if ((*body = bounce_write(fd, mfd, e, a, idx, 2,
	    "mx.example [192.0.2.1]", "fedcba9876543210fedcba98",
	    1700000200)) == -1) {
		diag("bounce_write failed");
		return xstrdup("");
	}
	if (fstat(fd, &st) == -1 || (buf = calloc(1, st.st_size + 1)) ==
	    NULL || pread(fd, buf, st.st_size, 0) != st.st_size)
		exit(2);
	close(fd);
	close(mfd);
	return buf;
}

/* Every line ends in CRLF, at most 998 octets before it (RFC 5322). */
static int
lines_ok(const char *s)
{
	const char	*nl;

	for (; *s != '\0'; s = nl + 1) {
		if ((nl = strchr(s, '\n')) == NULL || nl == s ||
		    nl[-1] != '\r' || nl - s - 1 > 998)
			return 0;
	}
	return 1;
}

static void
test_dsn(void)
{
	struct queue_envelope	 e;
	char			*t;

	env_sample(&e, RET_UNSET);
	t = dsn_text(&e, BOUNCE_FAILED);
	ok(strstr(t, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\""
	    "fedcba9876543210fedcba98/mx.test.example\"") != NULL,
	    "multipart/report with the new id in the boundary");
	ok(strstr(t, "To: <alice@sender.example>\r\n") != NULL &&
	    strstr(t, "From: Mail Delivery System "
	    "<MAILER-DAEMON@mx.test.example>\r\n") != NULL &&
	    strstr(t, "Auto-Submitted: auto-replied\r\n") != NULL,
	    "addressed to the sender, from MAILER-DAEMON");
	ok(strstr(t, "Content-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; mx.test.example\r\n") != NULL,
	    "Reporting-MTA first in the report");
	ok(strstr(t, "Original-Envelope-Id: env+1\r\n") != NULL,
	    "ENVID decoded from xtext");
	ok(strstr(t, "Final-Recipient: rfc822; bob@example.com\r\n"
	    "Original-Recipient: rfc822; bob+x@example.com\r\n"
	    "Action: failed\r\nStatus: 5.1.1\r\n"
	    "Remote-MTA: dns; mx.example\r\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>:") != NULL,
	    "per-recipient fields of a 5xx");
	ok(strstr(t, "Final-Recipient: rfc822; carol@example.com\r\n"
	    "Action: failed\r\nStatus: 4.4.1\r\n"
	    "Diagnostic-Code: X-Splitmx; 4.4.1 connection refused\r\n") !=
	    NULL, "expiry after local failures: our own diagnostic");
	ok(strstr(t, "delivery time expired after 3 attempts") != NULL,
	    "the explanation says it expired");
	ok(strstr(t, "Content-Type: message/rfc822\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n" ORIGINAL) != NULL,
	    "the whole original without RET");
	ok(lines_ok(t), "CRLF everywhere, no line over 998 octets");
	ok(strstr(t, "Recipient address\r\n rejected: User") != NULL,
	    "a long diagnostic is folded at a space");
	free(t);
	queue_fs_envelope_free(&e);

	env_sample(&e, RET_HDRS);
	t = dsn_text(&e, BOUNCE_FAILED);
	ok(strstr(t, "Content-Type: text/rfc822-headers\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n"
	    "Received: from x") != NULL &&
	    strstr(t, "Subject: the original\r\n") != NULL &&
	    strstr(t, "The body") == NULL, "RET=HDRS: the header only");
	free(t);

	t = dsn_text(&e, BOUNCE_DELAYED);
	ok(strstr(t, "Action: delayed\r\nStatus: 4.0.0\r\n") != NULL &&
	    strstr(t, "Will-Retry-Until: ") != NULL &&
	    strstr(t, "Subject: Delayed Mail") != NULL,
	    "a delay warning");
	ok(strstr(t, "text/rfc822-headers") != NULL &&
	    strstr(t, "The body") == NULL, "a delay warning has no body");
	ok(lines_ok(t), "delay warning: CRLF everywhere");
	free(t);
	queue_fs_envelope_free(&e);
}

/*
 * The longest line of more than one word over 78 columns in the part
 * after marker (0: none).
 */
static size_t
part_overlong(const char *s, const char *marker)
{
	const char	*p, *end, *nl;
	size_t		 longest = 0, n;

	if ((p = strstr(s, marker)) == NULL ||
	    (p = strstr(p, "\r\n\r\n")) == NULL ||
	    (end = strstr(p, "\r\n--fedcba98")) == NULL)
		return (size_t)-1;
	for (p += 4; p < end && (nl = strstr(p, "\r\n")) != NULL;
	    p = nl + 2) {
		n = (size_t)(nl - p);
		if (n > 78 && memchr(p, ' ', n) != NULL && n > longest)
			longest = n;
	}
	return longest;
}

/* Issue 18: lines of a long reply, and encodings that say the truth. */
static void
test_dsn_hardening(void)
{
	static const char	 eight[] = "Received: from x by y; 1 Jan "
	    "2026 00:00:00 +0000\r\nSubject: caf\xc3\xa9\r\n\r\n"
	    "Gr\xc3\xbc\xc3\x9f" "e.\r\n";
	struct queue_envelope	 e;
	char			 reply[1001], *t, *p, *q, *diag;
	size_t			 i, n, longest;
	int			 body, ascii;

	/* 9 reply lines joined as the relay keeps them, 1000 octets. */
	n = (size_t)snprintf(reply, sizeof(reply), "550 5.1.1 <bob@example."
	    "com>: no such user");
	for (i = 0; n < sizeof(reply) - 1; i++)
		n += (size_t)snprintf(reply + n, sizeof(reply) - n, "; 5.1.1 "
		    "line %zu of a long explanation from a server that says "
		    "a lot", i + 2);
	env_sample(&e, RET_UNSET);
	free(e.rcpts[0].last_error);
	e.rcpts[0].last_error = xstrdup(reply);
	t = dsn_text_of(&e, BOUNCE_FAILED, ORIGINAL, &body);
	ok(lines_ok(t), "a 1000-octet reply: no line over 998 octets");
	longest = part_overlong(t, "Content-Description: Notification");
	ok(longest == 0, "the text for people within 78 columns (%zu)",
	    longest);
	/* Unfolded, the Diagnostic-Code holds the reply whole. */
	diag = NULL;
	if ((p = strstr(t, "Diagnostic-Code: smtp; 550")) != NULL &&
	    (q = strstr(p, "\r\nLast-Attempt-Date")) != NULL &&
	    (diag = calloc(1, (size_t)(q - p) + 1)) != NULL) {
		for (n = 0; p < q; p++)
			if (!(p[0] == '\r' && p[1] == '\n')) {
				if (*p != '\n')
					diag[n++] = *p;
			}
	}
	ok(diag != NULL && strcmp(diag + strlen("Diagnostic-Code: smtp; "),
	    reply) == 0, "the Diagnostic-Code unfolds to the whole reply");
	ok(body == BODY_7BIT && strstr(t, "Content-Transfer-Encoding: "
	    "7bit\r\n\r\nThis is a MIME") != NULL, "7bit all through");
	free(diag);
	free(t);
	queue_fs_envelope_free(&e);

	/* 8-bit octets in the original, whatever its BODY said. */
	env_sample(&e, RET_UNSET);
	e.size = strlen(eight);
	e.body = BODY_7BIT;
	t = dsn_text_of(&e, BOUNCE_FAILED, eight, &body);
	ok(strstr(t, "Content-Type: message/rfc822\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n") != NULL,
	    "an 8-bit original is declared 8bit");
	ok(strstr(t, "Content-Transfer-Encoding: 8bit\r\n\r\nThis is a MIME")
	    != NULL && body == BODY_8BITMIME,
	    "and so is the DSN, sent with BODY=8BITMIME");
	free(t);
	queue_fs_envelope_free(&e);

	/* SMTPUTF8: the text is utf-8 and 8bit, the report stays ASCII. */
	env_sample(&e, RET_HDRS);
	e.flags |= F_MSG_SMTPUTF8;
	free(e.rcpts[0].rewritten);
	e.rcpts[0].rewritten = xstrdup("j\xc3\xb6rg+x@ex\xc3\xa4mple.com");
	free(e.rcpts[0].orcpt);
	e.rcpts[0].orcpt = xstrdup("rfc822;a+FF@example.com");
	t = dsn_text_of(&e, BOUNCE_FAILED, ORIGINAL, &body);
	ok(strstr(t, "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n") != NULL &&
	    strstr(t, "<j\xc3\xb6rg+x@ex\xc3\xa4mple.com>") != NULL,
	    "SMTPUTF8: the text for people is utf-8, 8bit");
	ok(strstr(t, "Final-Recipient: utf-8; j\\x{F6}rg\\x{2B}x@ex"
	    "\\x{E4}mple.com\r\n") != NULL,
	    "SMTPUTF8: Final-Recipient in RFC 6533's utf-8 type");
	ascii = 1;
	if ((p = strstr(t, "message/delivery-status")) != NULL &&
	    (q = strstr(p, "\r\n--fedcba98")) != NULL)
		for (; p < q; p++)
			if ((unsigned char)*p > 0x7f)
				ascii = 0;
	ok(p != NULL && ascii, "the report is US-ASCII (an ORCPT with +FF "
	    "too)");
	ok(body == BODY_8BITMIME, "an SMTPUTF8 DSN goes as 8BITMIME");
	free(t);
	queue_fs_envelope_free(&e);

	/* 6533's escapes: 64 '+' and 180 'ä' pass 998 octets unfolded. */
	env_sample(&e, RET_HDRS);
	e.flags |= F_MSG_SMTPUTF8;
	memset(reply, '+', 64);
	for (i = 0, n = 64; i < 180; i++) {
		reply[n++] = (char)0xc3;
		reply[n++] = (char)0xa4;
	}
	memcpy(reply + n, "@example.com", sizeof("@example.com"));
	free(e.rcpts[0].rewritten);
	e.rcpts[0].rewritten = xstrdup(reply);
	t = dsn_text_of(&e, BOUNCE_FAILED, ORIGINAL, &body);
	ok(lines_ok(t) && strstr(t, "Final-Recipient: utf-8;\r\n \\x{2B}") !=
	    NULL, "a long SMTPUTF8 address: Final-Recipient folded, no line "
	    "over 998 octets");
	free(t);
	queue_fs_envelope_free(&e);

	/* A clock set back: the message arrived "after" now. */
	env_sample(&e, RET_UNSET);
	e.arrival = 1700000300;
	t = dsn_text(&e, BOUNCE_DELAYED);
	ok(strstr(t, "could not be delivered for 0s ") != NULL,
	    "arrival after now: delayed for 0s, not a negative time");
	free(t);
	queue_fs_envelope_free(&e);
}

int
main(void)
{
	plan(54);
	setenv("TZ", "UTC", 1);
	tzset();
	if ((env->conf = conf_new()) == NULL)
		exit(2);
	strlcpy(env->conf->hostname, "mx.test.example",
	    sizeof(env->conf->hostname));
	test_backoff();
	test_status();
	test_wanted();
	test_dsn();
	test_dsn_hardening();
	return done();
}
