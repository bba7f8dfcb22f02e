/*
 * libFuzzer target over relay/relay_parse.c: what a next hop sends back
 * to our SMTP client, read in the pieces the network delivers, as the
 * replies to EHLO or to any other command.
 * fuzz-link: relay/relay_parse.c lib/util.c lib/log.c
 *
 * Beyond memory: every reply taken has a code of 200-599 that its text
 * starts with, printable and bounded (it goes into logs, DSNs and
 * splitmxctl); input is taken in order and never twice; a parse error
 * says why; EHLO keywords leave the line whole and count only in EHLO
 * replies.
 *
 * The input: one byte of options (bit 0: the replies answer EHLO; the
 * other bits: how many octets each read brings, 1 to 128), then the
 * server's bytes.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"
#include "relay.h"
#include "fuzz.h"

static void	check_reply(const struct relay_reply *);
static void	check_ehlo(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relay_reply	 r;
	const char		*why;
	char			 ibuf[RELAY_IBUF_SIZE];
	size_t			 ipos = 0, ilen = 0, off, step, before;
	uint64_t		 size_max = 0;
	int			 caps = 0, ehlo, v;

	if (size < 1)
		return 0;
	ehlo = data[0] & 1;
	step = (size_t)(data[0] >> 1) + 1;
	off = 1;
	memset(&r, 0, sizeof(r));
	check_ehlo(data + 1, size - 1);
	for (;;) {
		/* A read: what relay_session_read() does with the buffer. */
		if (ipos > 0) {
			memmove(ibuf, ibuf + ipos, ilen - ipos);
			ilen -= ipos;
			ipos = 0;
		}
		if (off == size || ilen == sizeof(ibuf))
			break;
		step = step < size - off ? step : size - off;
		if (step > sizeof(ibuf) - ilen)
			step = sizeof(ibuf) - ilen;
		memcpy(ibuf + ilen, data + off, step);
		ilen += step;
		off += step;
		for (;;) {
			before = ipos;
			why = NULL;
			v = relay_parse_reply(&r, ibuf, ilen, &ipos,
			    ehlo ? &caps : NULL, &size_max, &why);
			FUZZ_CHECK(ipos >= before && ipos <= ilen,
			    "input position %zu of %zu", ipos, ilen);
			if (v == 1) {
				FUZZ_CHECK(ipos > before,
				    "a reply from nothing");
				check_reply(&r);
				continue;
			}
			if (v == -1) {
				FUZZ_CHECK(why != NULL && *why != '\0',
				    "refused without a reason");
				return 0;
			}
			FUZZ_CHECK(v == 0, "verdict %d", v);
			FUZZ_CHECK(ilen - ipos < RELAY_REPLY_LINE_MAX,
			    "waiting on a full line");
			break;
		}
	}
	FUZZ_CHECK(ehlo || caps == 0, "keywords outside EHLO");
	FUZZ_CHECK((caps & CAP_SIZE) || size_max == 0, "SIZE without SIZE");
	return 0;
}

static void
check_reply(const struct relay_reply *r)
{
	const char	*p;
	char		 code[8];

	FUZZ_CHECK(r->code >= 200 && r->code <= 599, "code %d", r->code);
	FUZZ_CHECK(r->lines == 0, "a complete reply with lines pending");
	FUZZ_CHECK(strlen(r->text) <= RELAY_REPLY_TEXT_MAX, "text length");
	(void)snprintf(code, sizeof(code), "%03d", r->code);
	FUZZ_CHECK(strncmp(r->text, code, 3) == 0 && (r->text[3] == ' ' ||
	    r->text[3] == '\0'), "text %s does not start with %s", r->text,
	    code);
	for (p = r->text; *p != '\0'; p++)
		FUZZ_CHECK(*p >= 0x20 && *p < 0x7f, "octet 0x%02x in a reply",
		    (unsigned char)*p);
}

/* The keyword parser alone, over the first line of the input. */
static void
check_ehlo(const uint8_t *data, size_t size)
{
	char		 line[RELAY_REPLY_LINE_MAX], copy[RELAY_REPLY_LINE_MAX];
	const uint8_t	*nl;
	uint64_t	 size_max = 0;
	size_t		 n;
	int		 caps = 0;

	nl = memchr(data, '\n', size);
	n = nl != NULL ? (size_t)(nl - data) : size;
	if (n >= sizeof(line))
		return;
	memcpy(line, data, n);
	line[n] = '\0';
	memcpy(copy, line, n + 1);
	relay_parse_ehlo(line, &caps, &size_max);
	FUZZ_CHECK(memcmp(line, copy, n + 1) == 0, "the line is not whole");
	FUZZ_CHECK((caps & ~(CAP_PIPELINING | CAP_SIZE | CAP_8BITMIME |
	    CAP_SMTPUTF8 | CAP_STARTTLS | CAP_DSN)) == 0 &&
	    (caps & (caps - 1)) == 0, "one line, caps %x", caps);
}
