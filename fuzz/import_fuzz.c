/*
 * libFuzzer target over splitmxctl import's readers (control/import.c):
 * the LDIF and CSV parsers, then the rules and the file they write
 * (control/import_rules.c).  It links those, lookup/table_file.c (the
 * address check) and lib/.
 * fuzz-link: control/import.c control/import_rules.c lookup/table_file.c
 * fuzz-link: lib/log.c lib/msg.c lib/tlsio.c lib/util.c
 * fuzz-libs: -lresolv
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/*
 * The first byte chooses the reader (0 auto, 1 LDIF, 2 CSV) and the
 * attributes; the rest is the export.  Every message goes to a sink.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char	 table[] =
	    "# hand-written\n"
	    "alice@example.com local\n"
	    "bob@example.com custom bob@notes.example.com # import\n"
	    "x@example.com custom # import\n";
	static const struct imp_rules rules = {
		{ "example.com", ".sub.example" }, 2,
		{ "notes.example.com" }, 1
	};
	struct imp_attrs	 at;
	struct imp_export	 ex;
	struct imp_table	 t;
	struct imp_result	 res;
	FILE			*sink, *out;
	char			*buf, *text = NULL;
	size_t			 tlen = 0, nsrc;
	uint32_t		*src;
	enum imp_format		 fmt;

	if (size < 1)
		return 0;
	fmt = data[0] % 3 == 0 ? IMP_AUTO : data[0] % 3 == 1 ? IMP_LDIF :
	    IMP_CSV;
	memset(&at, 0, sizeof(at));
	if (data[0] & 0x80) {
		at.addr[0] = "mail";
		at.addr[1] = "proxyAddresses";
		at.naddr = 2;
		at.target = "targetAddress";
	} else {
		at.addr[0] = "address";
		at.naddr = 1;
		at.target = "target";
		at.kind = "kind";
	}
	/* The readers take a buffer of known length, not a string. */
	if ((buf = malloc(size)) == NULL)
		return 0;
	memcpy(buf, data + 1, size - 1);
	if ((sink = fopen("/dev/null", "w")) == NULL) {
		free(buf);
		return 0;
	}
	imp_export_init(&ex, "fuzz", sink);
	if (imp_parse(&ex, fmt, &at, buf, size - 1) == 0 &&
	    imp_table_read(&t, "dir", table, sizeof(table) - 1, sink) == 0) {
		if (imp_merge(&res, &t, &ex, &rules, sink, sink) == 0 &&
		    (out = open_memstream(&text, &tlen)) != NULL) {
			if (imp_write(&res, &t, out, &src, &nsrc) == 0)
				free(src);
			fclose(out);
			free(text);
		}
		imp_result_free(&res);
		imp_table_free(&t);
	}
	imp_export_free(&ex);
	fclose(sink);
	free(buf);
	return 0;
}
