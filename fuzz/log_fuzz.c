/*
 * libFuzzer target over the parent's end of the children's log channel
 * (lib/log.c, log_relay()): a record as a child that an attacker took
 * over could send it (priority byte, then any bytes).  Whatever it
 * holds, what reaches syslog must be one well-formed line: the mail
 * facility, the child's name as the parent knows it, no control octet.
 * It links lib/.
 * fuzz-link: lib/log.c lib/msg.c lib/tlsio.c lib/util.c
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int	 syslogd = -1;
static char	 dir[] = "/tmp/smxlogfuzzXXXXXX";
static char	 path[sizeof(dir) + 8];

static void
cleanup(void)
{
	(void)unlink(path);
	(void)rmdir(dir);
}

/* A syslog daemon of our own: a datagram socket under /tmp. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_un	 sun;

	(void)argc;
	(void)argv;
	if (mkdtemp(dir) == NULL)
		abort();
	(void)snprintf(path, sizeof(path), "%s/log", dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	(void)strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	if ((syslogd = socket(AF_UNIX, SOCK_DGRAM, 0)) == -1 ||
	    bind(syslogd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		abort();
	atexit(cleanup);
	setenv("SPLITMX_SYSLOG_SOCKET", path, 1);
	log_init(0, 0);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char	 line[65536];
	char		*end;
	ssize_t		 n, i;

	if (size < 1 || size > 1 + LOG_LINE_MAX)
		return 0;		/* the parent reads no more */
	log_relay(data[0] & LOG_PRIMASK, 4242, "smtp",
	    (const char *)data + 1, size - 1);
	if ((n = recv(syslogd, line, sizeof(line) - 1, MSG_DONTWAIT)) <= 0)
		abort();		/* a line always comes */
	line[n] = '\0';
	if (line[0] != '<' || strtol(line + 1, &end, 10) >> 3 != 2 ||
	    *end != '>' || strstr(line, " splitmxd[4242]: smtp: ") == NULL)
		abort();
	for (i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 ||
		    (unsigned char)line[i] == 0x7f)
			abort();
	if (recv(syslogd, line, sizeof(line), MSG_DONTWAIT) != -1)
		abort();		/* and only one */
	return 0;
}
