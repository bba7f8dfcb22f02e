/*
 * Unit tests of lib/log.c's syslog side: the record format, escaping of
 * control octets, lines lost while no syslog daemon listens and their
 * count, reconnection to a new socket, and the child's datagrams to the
 * parent.  TAP output.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "tap.h"

static char	 dir[] = "/tmp/smxlogtestXXXXXX";
static char	 path[128];

static int
server(void)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	(void)unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		perror("server");
		exit(1);
	}
	return fd;
}

/* The next record, NUL-terminated, or "" if none is waiting. */
static const char *
record(int fd)
{
	static char	 buf[65536];
	ssize_t		 n;

	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static int
matches(const char *s, const char *re)
{
	regex_t	 rx;
	int	 r;

	if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0)
		return 0;
	r = regexec(&rx, s, 0, NULL, 0) == 0;
	regfree(&rx);
	return r;
}

int
main(void)
{
	char		 big[LOG_LINE_MAX * 2], want[64];
	const char	*r;
	int		 fd, sp[2];

	plan(14);
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/log.sock", dir);
	setenv("SPLITMX_SYSLOG_SOCKET", path, 1);
	log_init(0, 0);
	ok(strcmp(log_syslog_path(), path) == 0, "SPLITMX_SYSLOG_SOCKET");

	/* No syslog daemon yet: probed, and two lines are lost. */
	ok(log_syslog_probe() == -1 && errno == ENOENT, "probe: no socket");
	log_info("lost one");
	log_relay(LOG_WARNING, 42, "smtp", "lost two", 8);

	fd = server();
	ok(log_syslog_probe() == 0, "probe: a daemon listens");
	log_procname("parent");
	log_info("event=hello key=\"v\"");
	snprintf(want, sizeof(want), "splitmxd\\[%ld\\]: parent: ",
	    (long)getpid());
	r = record(fd);
	ok(matches(r, "^<20>[A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} ") &&
	    matches(r, want) && matches(r, "log: 2 lines lost: no syslog "
	    "daemon at /tmp/smxlogtest"), "the loss comes first: %s", r);
	r = record(fd);
	ok(matches(r, "^<22>") && matches(r, want) &&
	    matches(r, "parent: event=hello key=\"v\"$"), "the line: %s", r);
	ok(*record(fd) == '\0', "nothing else");

	/* A child's line, as the parent relays it: its pid, its name. */
	log_relay(LOG_DEBUG, 4711, "relay", "a\nb\tc\x01\x7f\n", 8);
	r = record(fd);
	ok(matches(r, "^<23>.* splitmxd\\[4711\\]: relay: "),
	    "priority and pid of the child: %s", r);
	ok(matches(r, "relay: a\\\\nb\\\\tc\\\\x01\\\\x7f$") &&
	    strchr(r, '\n') == NULL, "control octets escaped, the last "
	    "newline gone: %s", r);

	/* Long: still one datagram (rsyslog takes 8 KB by default). */
	memset(big, 'x', sizeof(big));
	log_relay(LOG_INFO, 1, "smtp", big, sizeof(big));
	r = record(fd);
	ok(strlen(r) > LOG_LINE_MAX && strlen(r) < LOG_LINE_MAX * 5,
	    "a long line is one datagram of %zu bytes", strlen(r));

	/* syslogd restarted: the next line goes to the new socket. */
	close(fd);
	fd = server();
	log_info("after the restart");
	r = record(fd);
	ok(strstr(r, "parent: after the restart") != NULL,
	    "reconnected: %s", r);
	ok(*record(fd) == '\0', "nothing lost, nothing twice");

	/* A child: one datagram a record, priority first. */
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sp) == -1)
		return 1;
	log_to_parent(sp[1]);
	log_warnx("to the parent %d", 7);
	r = record(sp[0]);
	ok(r[0] == LOG_WARNING && strcmp(r + 1, "to the parent 7") == 0,
	    "child record");
	close(sp[0]);
	log_warnx("nobody reads this");
	log_warnx("nor this");
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sp) == -1)
		return 1;
	log_to_parent(sp[1]);
	log_info("again");
	r = record(sp[0]);
	ok(r[0] == LOG_WARNING && strcmp(r + 1, "log: 2 lines lost on the "
	    "way to the parent") == 0, "the child's loss is said: %s", r + 1);
	r = record(sp[0]);
	ok(r[0] == LOG_INFO && strcmp(r + 1, "again") == 0, "then the line");

	close(fd);
	unlink(path);
	rmdir(dir);
	return done();
}
