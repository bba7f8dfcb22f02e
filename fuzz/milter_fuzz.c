/*
 * libFuzzer target over the milter reply decoder (filter/filter_parse.c):
 * the input is a byte stream as a milter would send it, cut into
 * packets and each decoded as the filter process does (OPTNEG, every
 * reply and modification, REPLYCODE's text into an SMTP reply), and
 * the same bytes as one string through the text checkers and the
 * splitting of a client's header section into fields.  Built by
 * make fuzz-build (fuzz/README); it links the decoder alone:
 * fuzz-link: filter/filter_parse.c
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../filter/filter_parse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char	*split_buf;
static size_t		 split_len;

/* Every field lies inside the section, its name a field name. */
static int
fuzz_field(void *arg, const char *name, size_t namelen, const char *value,
    size_t valuelen)
{
	size_t	 i;

	(void)arg;
	if (name < split_buf || value < name + namelen + 1 ||
	    value + valuelen > split_buf + split_len || namelen == 0 ||
	    value[-1] != ':')
		abort();
	for (i = 0; i < namelen; i++)
		if (name[i] == ':' || (unsigned char)name[i] < 0x21)
			abort();
	return 0;
}

static void
fuzz_packet(int cmd, const uint8_t *data, size_t len)
{
	struct milter_optneg	 o;
	struct milter_reply	 r;
	const char		*why;
	char			 out[2048], addr[512];
	int			 code, i;

	if (cmd == SMFIR_OPTNEG) {
		if (milter_parse_optneg(data, len, &o, &why) == 0)
			for (i = 0; i < MILTER_MACRO_STAGES; i++)
				if (o.have[i] && strlen(o.macros[i]) >=
				    MILTER_MACROS_MAX)
					abort();
		return;
	}
	if (milter_parse_reply(cmd, data, len, &r, &why) == -1)
		return;
	switch (cmd) {
	case SMFIR_REPLYCODE:
		if (milter_parse_replycode(r.text, out, sizeof(out),
		    &code) == 0) {
			/* What we send: a 4xx or 5xx, nothing bare. */
			if (code < 400 || code > 599 || strlen(out) < 3 ||
			    out[0] != r.text[0])
				abort();
			for (i = 0; out[i] != '\0'; i++)
				if ((out[i] == '\r' && out[i + 1] != '\n') ||
				    (out[i] == '\n' && (i == 0 ||
				    out[i - 1] != '\r')))
					abort();
		}
		break;
	case SMFIR_ADDRCPT:
	case SMFIR_ADDRCPT_PAR:
	case SMFIR_DELRCPT:
	case SMFIR_CHGFROM:
		if (milter_parse_address(r.addr, addr, sizeof(addr),
		    cmd == SMFIR_CHGFROM) == -1)
			abort();	/* parse_reply checked it */
		break;
	case SMFIR_ADDHEADER:
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		if (!milter_header_name_ok(r.name) ||
		    !milter_header_value_ok(r.value))
			abort();
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
	const uint8_t	*data;
	char		*s, out[600], addr[512];
	size_t		 dlen, off = 0;
	long		 r;
	int		 cmd, n, code, eof, sep;

	while (off < len && (n = milter_parse_packet(buf + off, len - off,
	    &cmd, &data, &dlen)) > 0) {
		fuzz_packet(cmd, data, dlen);
		off += (size_t)n;
	}
	/* The same bytes as text: a reply, a header, an address. */
	if ((s = malloc(len + 1)) == NULL)
		return 0;
	memcpy(s, buf, len);
	s[len] = '\0';
	(void)milter_parse_replycode(s, out, sizeof(out), &code);
	(void)milter_header_name_ok(s);
	(void)milter_header_value_ok(s);
	(void)milter_parse_address(s, addr, sizeof(addr), 1);
	(void)milter_macro_list_ok(s);
	/* And as a client's header section, cut or whole. */
	split_buf = s;
	split_len = len;
	for (eof = 0; eof < 2; eof++) {
		r = milter_header_split(s, len, eof, &sep, fuzz_field, NULL);
		if (r < -2 || r > (long)len || (r == -2 && eof) ||
		    (sep && (r < 2 || s[r - 2] != '\r' || s[r - 1] != '\n')))
			abort();
	}
	free(s);
	return 0;
}
