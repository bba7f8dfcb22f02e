/*
 * splitmxctl: sends one request to splitmxd's control socket and prints
 * the answer.  Exit 0 on success, 1 refused or failed, 2 usage.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control_verbs.h"
#include "import.h"

#define SPLITMX_CONTROL	"/run/splitmx/control.sock"

static void	usage(void) __attribute__((__noreturn__));
static char	**options(int *, char **, const char **, int *);
static int	word_ok(const char *);
static size_t	request(char *, size_t, int, int, char **);
static int	ctl_connect(const char *);
static void	ctl_send(int, const char *, size_t);
static int	ctl_answer(int, int);

static void
usage(void)
{
	fprintf(stderr, "usage: splitmxctl [-s socket] [--json] command "
	    "[argument]\ncommands:\n");
	control_verb_usage(stderr);
	exit(2);
}

int
main(int argc, char *argv[])
{
	const struct ctl_verb	*v;
	const char		*sock = SPLITMX_CONTROL;
	char			 req[2048];
	size_t			 reqlen;
	int			 fd, json = 0, status;

	argv = options(&argc, argv, &sock, &json);
	if (argc < 1 || (v = control_verb_find(argc, argv)) == NULL)
		usage();
	/* import runs here; it sends import-info and reload itself. */
	if (v->handler == CTL_IMPORT)
		return ctl_import(argc, argv, sock, json);
	reqlen = request(req, sizeof(req), json, argc, argv);
	fd = ctl_connect(sock);
	ctl_send(fd, req, reqlen);
	/* "lookup" explains a refusal too: that is its answer, not an error. */
	status = ctl_answer(fd, json || (v->flags & F_CTL_ANSWER));
	close(fd);
	return status;
}

/*
 * -s SOCKET, --json and -h before the request; --json may also follow
 * it.  Returns the request's words, their number in *argc.
 */
static char **
options(int *argc, char **argv, const char **sock, int *json)
{
	int	 i, j, n = *argc;

	for (i = 1; i < n; i++) {
		if (strcmp(argv[i], "--json") == 0)
			*json = 1;
		else if (strcmp(argv[i], "-s") == 0) {
			if (++i == n)
				usage();
			*sock = argv[i];
		} else if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0)
			usage();
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			usage();
		else
			break;
	}
	for (j = i; j < n; j++)
		if (strcmp(argv[j], "--json") == 0) {
			*json = 1;
			memmove(&argv[j], &argv[j + 1],
			    (size_t)(n - j) * sizeof(*argv));
			n--;
			j--;
		}
	*argc = n - i;
	return argv + i;
}

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

/* "text|json VERB [OBJECT] [ARGS]\n" into req; its length. */
static size_t
request(char *req, size_t size, int json, int argc, char **argv)
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

static int
ctl_connect(const char *sock)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, sock, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		fprintf(stderr, "splitmxctl: %s: path too long\n", sock);
		exit(1);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		fprintf(stderr, "splitmxctl: socket: %s\n", strerror(errno));
		exit(1);
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "splitmxctl: %s: %s (is splitmxd running?)\n",
		    sock, strerror(errno));
		exit(1);
	}
	return fd;
}

static void
ctl_send(int fd, const char *req, size_t len)
{
	size_t	 off;
	ssize_t	 n;

	for (off = 0; off < len; off += (size_t)n)
		if ((n = write(fd, req + off, len - off)) == -1) {
			if (errno == EINTR) {
				n = 0;
				continue;
			}
			fprintf(stderr, "splitmxctl: write: %s\n",
			    strerror(errno));
			exit(1);
		}
}

/*
 * The first line is the exit status, the rest is for the user: on
 * standard output, or on standard error for a refusal in text unless
 * the refusal is the answer (stdout_always).  Returns the status.
 */
static int
ctl_answer(int fd, int stdout_always)
{
	char	 buf[8192], head[16], *nl;
	size_t	 have = 0, take;
	ssize_t	 n;
	int	 status = -1;
	FILE	*out = stdout;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			fprintf(stderr, "splitmxctl: read: %s\n",
			    strerror(errno));
			exit(1);
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
			fprintf(stderr, "splitmxctl: bad answer\n");
			exit(1);
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
			fprintf(stderr, "splitmxctl: bad answer\n");
			exit(1);
		}
		out = status && !stdout_always ? stderr : stdout;
		fwrite(nl + 1, 1, (size_t)n - take - 1, out);
	}
	if (status == -1) {
		fprintf(stderr, "splitmxctl: no answer from splitmxd\n");
		exit(1);
	}
	return status;
}
