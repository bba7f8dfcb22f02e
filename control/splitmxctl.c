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



#define SPLITMX_CONTROL	"/run/splitmx/control.sock"

static void	usage(void) __attribute__((__noreturn__));
static int	verb_ok(int, char **);

struct verb {
	const char	*words[2];
	int		 args;		/* extra arguments required */
};

/* SPEC §6: the request must be one of these, with its argument. */
static const struct verb	 verbs[] = {
	{ { "show", "status" },		0 },
	{ { "show", "stats" },		0 },
	{ { "show", "queue" },		0 },
	{ { "show", "message" },	1 },
	{ { "lookup", NULL },		1 },
	{ { "reload", NULL },		0 },
	{ { "pause", "smtp" },		0 },
	{ { "pause", "relay" },		0 },
	{ { "resume", "smtp" },		0 },
	{ { "resume", "relay" },	0 },
	{ { "schedule", NULL },		1 },
	{ { "remove", NULL },		1 },
	{ { "log", "verbose" },		0 },
	{ { "log", "brief" },		0 },
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: splitmxctl [-s socket] [--json] command [argument]\n"
	    "commands:\n"
	    "\tshow status | stats | queue | message ID\n"
	    "\tlookup ADDRESS\n"
	    "\treload\n"
	    "\tpause smtp | relay\n"
	    "\tresume smtp | relay\n"
	    "\tschedule ID | all\n"
	    "\tremove ID | all\n"
	    "\tlog verbose | brief\n");
	exit(2);
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

static int
verb_ok(int argc, char **argv)
{
	size_t	 i;
	int	 n;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		n = verbs[i].words[1] ? 2 : 1;
		if (argc != n + verbs[i].args)
			continue;
		if (strcmp(argv[0], verbs[i].words[0]) != 0)
			continue;
		if (n == 2 && strcmp(argv[1], verbs[i].words[1]) != 0)
			continue;
		return 1;
	}
	return 0;
}

int
main(int argc, char *argv[])
{
	struct sockaddr_un	 sun;
	const char		*sock = SPLITMX_CONTROL;
	char			 req[2048], buf[8192];
	size_t			 off, reqlen;
	ssize_t			 n;
	int			 fd, json = 0, i, status = -1, len, explain;
	char			*nl;
	size_t			 have = 0;
	char			 head[16];

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "-s") == 0) {
			if (++i == argc)
				usage();
			sock = argv[i];
		} else if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0)
			usage();
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			usage();
		else
			break;
	}
	argc -= i;
	argv += i;
	/* --json may also follow the verb. */
	for (i = 0; i < argc; i++)
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
			memmove(&argv[i], &argv[i + 1],
			    (size_t)(argc - i) * sizeof(*argv));
			argc--;
			i--;
		}
	if (argc < 1 || !verb_ok(argc, argv))
		usage();
	/* "lookup" explains a refusal too: that is its answer, not an error. */
	explain = strcmp(argv[0], "lookup") == 0;

	off = 0;
	len = snprintf(req, sizeof(req), "%s", json ? "json" : "text");
	if (len < 0)
		usage();
	off = (size_t)len;
	for (i = 0; i < argc; i++) {
		if (!word_ok(argv[i])) {
			fprintf(stderr, "splitmxctl: invalid argument\n");
			exit(2);
		}
		len = snprintf(req + off, sizeof(req) - off, " %s", argv[i]);
		if (len < 0 || (size_t)len >= sizeof(req) - off) {
			fprintf(stderr, "splitmxctl: request too long\n");
			exit(2);
		}
		off += (size_t)len;
	}
	if (off + 1 >= sizeof(req))
		exit(2);
	req[off++] = '\n';
	reqlen = off;

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
	for (off = 0; off < reqlen; off += (size_t)n)
		if ((n = write(fd, req + off, reqlen - off)) == -1) {
			if (errno == EINTR) {
				n = 0;
				continue;
			}
			fprintf(stderr, "splitmxctl: write: %s\n",
			    strerror(errno));
			exit(1);
		}

	/* The first line is the exit status, the rest is for the user. */
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
		if (status == -1) {
			size_t	 take = (size_t)n;

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
			fwrite(nl + 1, 1, (size_t)n - take - 1,
			    status && !json && !explain ? stderr : stdout);
		} else
			fwrite(buf, 1, (size_t)n, status && !json && !explain ? stderr : stdout);
	}
	close(fd);
	if (status == -1) {
		fprintf(stderr, "splitmxctl: no answer from splitmxd\n");
		exit(1);
	}
	return status;
}
