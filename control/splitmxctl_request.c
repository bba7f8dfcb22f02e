/*
 * splitmxctl's side of the control socket (SPEC §6): a request line on
 * its own connection, then the answer's status line and its text.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmxctl.h"

static int	word_ok(const char *);
static int	ctl_connect(const char *, FILE *);
static int	ctl_send(int, const char *, size_t, FILE *);
static int	ctl_answer(int, FILE *, FILE *, FILE *);

/* Arguments travel space-separated: they must be plain words. */
static int
word_ok(const char *w)
{
	if (*w == '\0' || strlen(w) > 512)
		return 0;
	for (; *w; w++)
		if (*w <= ' ' || *w == 0x7f)
			return 0;
	return 1;
}

size_t
ctl_request_line(char *req, size_t size, int json, int argc, char **argv)
{
	size_t	 off;
	int	 i, len;

	len = snprintf(req, size, "%s", json ? "json" : "text");
	if (len < 0 || (size_t)len >= size)
		exit(2);
	off = (size_t)len;
	for (i = 0; i < argc; i++) {
		if (!word_ok(argv[i])) {
			fprintf(stderr, "splitmxctl: invalid argument\n");
			exit(2);
		}
		len = snprintf(req + off, size - off, " %s", argv[i]);
		if (len < 0 || (size_t)len >= size - off) {
			fprintf(stderr, "splitmxctl: request too long\n");
			exit(2);
		}
		off += (size_t)len;
	}
	if (off + 1 >= size)
		exit(2);
	req[off++] = '\n';
	return off;
}

int
ctl_request(const char *sock, const char *req, size_t len, FILE *ok,
    FILE *fail, FILE *err)
{
	int	 fd, status;

	if ((fd = ctl_connect(sock, err)) == -1)
		return -1;
	if (ctl_send(fd, req, len, err) == -1)
		status = -2;
	else
		status = ctl_answer(fd, ok, fail, err);
	close(fd);
	return status;
}

static int
ctl_connect(const char *sock, FILE *err)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, sock, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		fprintf(err, "splitmxctl: %s: path too long\n", sock);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		fprintf(err, "splitmxctl: socket: %s\n", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(err, "splitmxctl: %s: %s (is splitmxd running?)\n",
		    sock, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int
ctl_send(int fd, const char *req, size_t len, FILE *err)
{
	size_t	 off;
	ssize_t	 n;

	for (off = 0; off < len; off += (size_t)n)
		if ((n = send(fd, req + off, len - off, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR) {
				n = 0;
				continue;
			}
			/*
			 * Closed before our request was read, perhaps with
			 * a reason (too many connections): ctl_answer()
			 * reads it.
			 */
			if (errno == EPIPE || errno == ECONNRESET)
				return 0;
			fprintf(err, "splitmxctl: write: %s\n",
			    strerror(errno));
			return -1;
		}
	return 0;
}

/*
 * The first line is the status, "0" or "1"; the rest is the text, and
 * goes where the status says as it arrives (show queue can be long).
 */
static int
ctl_answer(int fd, FILE *ok, FILE *fail, FILE *err)
{
	char	 buf[8192], head[16], *nl;
	size_t	 have = 0, take;
	ssize_t	 n;
	int	 status = -1;
	FILE	*out = ok;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		/* A refusal closed before our request was read: it ended. */
		if (n == -1 && errno == ECONNRESET && status != -1)
			break;
		if (n == -1) {
			fprintf(err, "splitmxctl: read: %s\n",
			    strerror(errno));
			return -2;
		}
		if (n == 0)
			break;
		if (status != -1) {
			fwrite(buf, 1, (size_t)n, out);
			continue;
		}
		take = (size_t)n;
		if ((nl = memchr(buf, '\n', (size_t)n)) != NULL)
			take = (size_t)(nl - buf);
		if (have + take >= sizeof(head)) {
			fprintf(err, "splitmxctl: bad answer\n");
			return -2;
		}
		memcpy(head + have, buf, take);
		have += take;
		if (nl == NULL)
			continue;
		head[have] = '\0';
		if (strcmp(head, "0") == 0)
			status = 0;
		else if (strcmp(head, "1") == 0)
			status = 1;
		else {
			fprintf(err, "splitmxctl: bad answer\n");
			return -2;
		}
		out = status ? fail : ok;
		fwrite(nl + 1, 1, (size_t)n - take - 1, out);
	}
	if (status == -1) {
		fprintf(err, "splitmxctl: no answer from splitmxd\n");
		return -2;
	}
	return status;
}
