/*
 * libFuzzer target over queue/bounce.c: the delivery status notification
 * written for a message, from what is hostile in it: the envelope as
 * the spool keeps it (addresses, ORCPT, ENVID, a remote server's reply
 * of up to 1000 octets, flags), the original message's own bytes, and
 * the name of the server that answered.  Links what the unit tests link.
 *
 * Beyond memory, for the action the input picks (failed, delayed,
 * relayed):
 * - bounce_write() succeeds, and says 7bit, 8bit or binary;
 * - everything we write ourselves (up to the original's part) has
 *   lines that end in CRLF, at most 998 octets, no NUL, no bare CR or
 *   LF, no control octet but TAB; it is ASCII unless the mail is
 *   SMTPUTF8, and the message/delivery-status part is ASCII always;
 * - the DSN ends with the closing boundary, after the original;
 * - no negative time in it (an arrival after now: a clock set back).
 *
 * The input: one byte, the action (its value modulo 3); then the
 * envelope's text (queue_fs_envelope.c's format), a NUL, the message,
 * a NUL, the remote server's name.  An envelope that does not decode is
 * the envelope fuzzer's business, not ours.
 * FUZZ_SHOW=1 in the environment prints each DSN.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmx.h"
#include "queue.h"
#include "fuzz.h"

#define DSNID		"fedcba9876543210fedcba98"
#define HOST		"mx.fuzz.example"
#define NOW		1764756000

static const char *check_dsn(const char *, size_t, int, int);
static void	check_lines(const char *, size_t, int);
static const char *find(const char *, size_t, const char *);
static int	memfd_with(const void *, size_t);
int		LLVMFuzzerInitialize(int *, char ***);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("TZ", "UTC", 1);
	tzset();
	if ((env->conf = conf_new()) == NULL)
		fuzz_fail("conf_new");
	strlcpy(env->conf->hostname, HOST, sizeof(env->conf->hostname));
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_envelope	 e;
	const uint8_t		*msg, *rest, *end = data + size;
	uint32_t		*rcpts;
	char			 err[256], remote[256], *out;
	const char		*orig;
	size_t			 elen, mlen, n, i;
	struct stat		 st;
	int			 fd, mfd, body;
	enum bounce_action	 action;

	if (size < 1 || size > QUEUE_ENV_MAXSIZE + 65536)
		return 0;
	action = data[0] % 3;
	data++;
	if ((msg = memchr(data, '\0', (size_t)(end - data))) == NULL)
		return 0;
	elen = (size_t)(msg - data);
	msg++;
	if ((rest = memchr(msg, '\0', (size_t)(end - msg))) == NULL)
		rest = end;
	mlen = (size_t)(rest - msg);
	remote[0] = '\0';
	if (rest < end) {
		n = (size_t)(end - rest - 1);
		if (n >= sizeof(remote))
			n = sizeof(remote) - 1;
		memcpy(remote, rest + 1, n);
		remote[n] = '\0';
	}
	if (queue_fs_envelope_decode((const char *)data, elen, &e, err,
	    sizeof(err)) == -1)
		return 0;
	e.size = mlen;

	/* The recipients bounce_create() would report, else all of them. */
	if ((rcpts = calloc(e.nrcpt, sizeof(*rcpts))) == NULL)
		fuzz_fail("calloc");
	for (i = n = 0; i < e.nrcpt; i++)
		if (bounce_wanted(&e, &e.rcpts[i], action))
			rcpts[n++] = (uint32_t)i;
	if (n == 0)
		for (n = 0; n < e.nrcpt; n++)
			rcpts[n] = (uint32_t)n;

	fd = memfd_with(NULL, 0);
	mfd = memfd_with(msg, mlen);
	body = bounce_write(fd, mfd, &e, action, rcpts, n, remote, DSNID,
	    NOW);
	FUZZ_CHECK(body == BODY_7BIT || body == BODY_8BITMIME ||
	    body == BODY_BINARYMIME, "bounce_write: %d", body);
	if (fstat(fd, &st) == -1 || (out = malloc((size_t)st.st_size + 1)) ==
	    NULL || pread(fd, out, (size_t)st.st_size, 0) != st.st_size)
		fuzz_fail("reading the DSN back");
	out[st.st_size] = '\0';
	if (getenv("FUZZ_SHOW") != NULL)
		fwrite(out, 1, (size_t)st.st_size, stderr);
	orig = check_dsn(out, (size_t)st.st_size,
	    (e.flags & F_MSG_SMTPUTF8) != 0, body);
	if (action == BOUNCE_DELAYED && e.arrival > NOW)
		FUZZ_CHECK(find(out, (size_t)(orig - out),
		    "delivered for 0s") != NULL, "a negative time");
	free(out);
	close(fd);
	close(mfd);
	free(rcpts);
	queue_fs_envelope_free(&e);
	return 0;
}

/* Returns where the original's part starts: before it, all is ours. */
static const char *
check_dsn(const char *out, size_t len, int utf8, int body)
{
	const char	 bnd[] = "--" DSNID "/" HOST "\r\n";
	const char	 last[] = "\r\n--" DSNID "/" HOST "--\r\n";
	const char	*p = out, *report = NULL, *orig;
	int		 i;

	/* Ours: up to the header of the third part, the original's. */
	for (i = 0; i < 3; i++) {
		FUZZ_CHECK((p = find(p, len - (size_t)(p - out), bnd)) != NULL,
		    "boundary %d missing", i + 1);
		if (i == 1)
			report = p;
		p += sizeof(bnd) - 1;
	}
	FUZZ_CHECK((orig = find(p, len - (size_t)(p - out), "\r\n\r\n")) !=
	    NULL, "the original's part has no header");
	orig += 4;
	check_lines(out, (size_t)(orig - out), !utf8);
	check_lines(report, (size_t)(p - report), 1);
	FUZZ_CHECK(len >= sizeof(last) - 1 && memcmp(out + len -
	    (sizeof(last) - 1), last, sizeof(last) - 1) == 0,
	    "the DSN does not end with its closing boundary");
	FUZZ_CHECK(utf8 ? body != BODY_7BIT : 1,
	    "SMTPUTF8 text sent as 7bit");
	return orig;
}

/* Lines of what we wrote: CRLF, <= 998 octets, no control but TAB. */
static void
check_lines(const char *s, size_t len, int ascii)
{
	const char	*end = s + len, *line = s;
	unsigned char	 c;

	for (; s < end; s++) {
		c = (unsigned char)*s;
		if (c == '\n') {
			FUZZ_CHECK(s > line && s[-1] == '\r', "a bare LF");
			FUZZ_CHECK(s - line - 1 <= 998, "a line of %zu octets",
			    (size_t)(s - line - 1));
			line = s + 1;
			continue;
		}
		if (c == '\r') {
			FUZZ_CHECK(s + 1 < end && s[1] == '\n', "a bare CR");
			continue;
		}
		FUZZ_CHECK(c >= 0x20 || c == '\t', "control octet 0x%02x", c);
		FUZZ_CHECK(c != 0x7f, "DEL");
		FUZZ_CHECK(!ascii || c < 0x80, "8-bit octet where ASCII is "
		    "declared");
	}
	FUZZ_CHECK(line == end, "a last line without CRLF");
}

static const char *
find(const char *s, size_t len, const char *what)
{
	return memmem(s, len, what, strlen(what));
}

/* A file in memory holding buf. */
static int
memfd_with(const void *buf, size_t len)
{
	int	 fd;

	if ((fd = memfd_create("bounce_fuzz", MFD_CLOEXEC)) == -1 ||
	    (len > 0 && write(fd, buf, len) != (ssize_t)len))
		fuzz_fail("memfd");
	return fd;
}
