/*
 * libFuzzer target over what splitmxctl import believes of its reader
 * child (control/splitmxctl_import_read.c): IMSG_IMPORT_* messages as
 * a child that the export took over could send them.  It links
 * control/splitmxctl_import_read.c, control/import.c,
 * lookup/table_file.c and lib/.
 * fuzz-link: control/splitmxctl_import_read.c control/import.c
 * fuzz-link: lookup/table_file.c lib/log.c lib/msg.c lib/tlsio.c
 * fuzz-link: lib/util.c
 * fuzz-libs: -lresolv
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmx.h"
#include "import.h"
#include "splitmxctl.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/*
 * The input is messages, each a type byte (0 ENTRIES, 1 ERRORS, 2
 * DONE, any other a type of that number), a 16-bit length (host
 * order) and the payload; they go framed as msg.c frames them, the
 * socket is closed, and the receiver reads to the end.  Nothing reads
 * while they are written: at most FUZZ_MSGS messages, written in one
 * flush, so that they fit in the socket's buffer (each write of a
 * small frame costs the buffer far more than its length; a flush per
 * frame once filled it and hung).
 */
#define FUZZ_MSGS	64
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t	 types[] = {
		IMSG_IMPORT_ENTRIES, IMSG_IMPORT_ERRORS, IMSG_IMPORT_DONE
	};
	struct imp_export	 ex;
	struct msgchan		 ch;
	struct msg		 m;
	FILE			*sink;
	size_t			 off = 0, n = 0;
	uint16_t		 len, i;
	int			 sp[2];

	/* What fits in the socket's buffer without a reader. */
	if (size > 64 * 1024)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		return 0;
	msgchan_init(&ch, sp[1], -1, NULL, NULL);
	while (size - off >= 3 && n++ < FUZZ_MSGS) {
		memcpy(&len, data + off + 1, sizeof(len));
		if (len > size - off - 3)
			len = (uint16_t)(size - off - 3);
		msg_init(&m, data[off] < 3 ? types[data[off]] : data[off], 0);
		/* The payload byte by byte: msg_add_data would frame it. */
		for (i = 0; i < len; i++)
			msg_add_u8(&m, data[off + 3 + i]);
		off += 3 + (size_t)len;
		if (msgchan_send(&ch, &m) == -1)
			break;
	}
	(void)msgchan_flush(&ch);
	msgchan_clear(&ch);
	if ((sink = fopen("/dev/null", "w")) == NULL) {
		close(sp[0]);
		return 0;
	}
	imp_export_init(&ex, "fuzz", sink);
	(void)ctl_import_receive(&ex, sp[0], sink);
	imp_export_free(&ex);
	fclose(sink);
	return 0;
}
