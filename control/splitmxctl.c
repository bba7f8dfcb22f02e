/*
 * splitmxctl: sends one request to splitmxd's control socket and prints
 * the answer.  Exit 0 on success, 1 refused or failed, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control_verbs.h"
#include "splitmxctl.h"

#define SPLITMX_CONTROL	"/run/splitmx/control.sock"

static void	usage(void) __attribute__((__noreturn__));
static char	**options(int *, char **, const char **, int *);

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
	int			 json = 0, status;

	argv = options(&argc, argv, &sock, &json);
	if (argc < 1 || (v = control_verb_find(argc, argv)) == NULL)
		usage();
	/* import runs here; it sends import-info and reload itself. */
	if (v->handler == CTL_IMPORT)
		return ctl_import(argc, argv, sock, json);
	reqlen = ctl_request_line(req, sizeof(req), json, argc, argv);
	/* "lookup" explains a refusal too: that is its answer, not an error. */
	status = ctl_request(sock, req, reqlen, stdout,
	    json || (v->flags & F_CTL_ANSWER) ? stdout : stderr, stderr);
	return status < 0 ? 1 : status;
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
