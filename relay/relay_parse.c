/*
 * What a next hop answers: SMTP replies (RFC 5321 §4.2) and the EHLO
 * keywords among them.  Every octet came from a server we do not trust;
 * nothing here grows.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "splitmx.h"
#include "relay.h"

/*
 * Take one reply off buf[*pos..len): 1 it is in r->code and r->text, 0
 * more input is needed, -1 the server does not speak SMTP (*why).  A
 * hostile server gets RELAY_REPLY_LINE_MAX octets per line and
 * RELAY_REPLY_LINES_MAX lines per reply, and we keep
 * RELAY_REPLY_TEXT_MAX of it: the input buffer is fixed and nothing
 * grows.  Lines are NUL-terminated in place as they are used.
 */
int
relay_parse_reply(struct relay_reply *r, char *buf, size_t len, size_t *pos,
    int *caps, uint64_t *size_max, const char **why)
{
	char	*line, *nl, *text;
	size_t	 avail, n;
	int	 code, w;

	for (;;) {
		avail = len - *pos;
		line = buf + *pos;
		nl = memchr(line, '\n', avail < RELAY_REPLY_LINE_MAX ? avail :
		    RELAY_REPLY_LINE_MAX);
		if (nl == NULL) {
			if (avail >= RELAY_REPLY_LINE_MAX) {
				*why = "reply line too long";
				return -1;
			}
			return 0;
		}
		n = (size_t)(nl - line);
		*pos += n + 1;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		line[n] = '\0';
		if (n < 3 || line[0] < '2' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9' ||
		    (n > 3 && line[3] != ' ' && line[3] != '-')) {
			*why = "malformed reply";
			return -1;
		}
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		    (line[2] - '0');
		if (r->lines == 0) {
			r->code = code;
			r->len = 0;
			r->text[0] = '\0';
		} else if (code != r->code) {
			*why = "reply codes differ between lines";
			return -1;
		}
		if (++r->lines > RELAY_REPLY_LINES_MAX) {
			*why = "too many lines in one reply";
			return -1;
		}
		text = n > 4 ? line + 4 : "";
		if (caps != NULL && r->lines > 1 && code == 250)
			relay_parse_ehlo(text, caps, size_max);
		if (r->len < sizeof(r->text) - 1) {
			if (r->lines == 1)
				w = snprintf(r->text, sizeof(r->text),
				    "%03d %s", code, text);
			else
				w = snprintf(r->text + r->len,
				    sizeof(r->text) - r->len, "; %s", text);
			if (w < 0 || (size_t)w >= sizeof(r->text) - r->len)
				r->len = sizeof(r->text) - 1;
			else
				r->len += (size_t)w;
		}
		if (n == 3 || line[3] == ' ') {
			r->lines = 0;
			str_printable(r->text, sizeof(r->text), r->text);
			return 1;
		}
	}
}

/*
 * One EHLO keyword line (RFC 5321 §4.1.1.1): what it offers is added to
 * *caps (CAP_*); SIZE sets *size_max.  The line is given back whole.
 */
void
relay_parse_ehlo(char *line, int *caps, uint64_t *size_max)
{
	const char	*errstr;
	char		*kw, *param;
	long long	 n;

	kw = line;
	if ((param = strchr(line, ' ')) != NULL)
		*param++ = '\0';
	if (strcasecmp(kw, "PIPELINING") == 0)
		*caps |= CAP_PIPELINING;
	else if (strcasecmp(kw, "8BITMIME") == 0)
		*caps |= CAP_8BITMIME;
	else if (strcasecmp(kw, "SMTPUTF8") == 0)
		*caps |= CAP_SMTPUTF8;
	else if (strcasecmp(kw, "STARTTLS") == 0)
		*caps |= CAP_STARTTLS;
	else if (strcasecmp(kw, "DSN") == 0)
		*caps |= CAP_DSN;
	else if (strcasecmp(kw, "SIZE") == 0) {
		*caps |= CAP_SIZE;
		*size_max = 0;
		if (param != NULL && *param != '\0') {
			/* RFC 1870: 0 or no number means no fixed limit. */
			n = strtonum(param, 0, LLONG_MAX, &errstr);
			if (errstr == NULL)
				*size_max = (uint64_t)n;
		}
	}
	if (param != NULL)
		param[-1] = ' ';	/* the reply text stays whole */
}
