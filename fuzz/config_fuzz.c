/*
 * libFuzzer target over the configuration parser (smtpd/parse.y): the
 * input is a splitmx.conf; one that parses is printed as "splitmxd -nv"
 * prints it, and that printout must parse again and print the same.
 * It links smtpd/parse.y, smtpd/conf.c and lib/.
 * fuzz-link: smtpd/parse.y smtpd/conf.c smtpd/names.c smtpd/tls_policy.c
 * fuzz-link: lib/log.c lib/msg.c lib/tlsio.c lib/util.c
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <err.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmx.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void	config_fuzz_cleanup(void);
static void	config_fuzz_write(const char *, const void *, size_t);
static char	*config_fuzz_print(const struct smx_conf *, size_t *);

/*
 * The inputs are files in a directory of our own; relative names in
 * them (a pki's files, an include) are relative to the directory the
 * fuzzer runs in, the repository root, where the seeds find
 * regress/config/files/.  The parser's errors go nowhere: an input
 * that is refused is a normal outcome, a leak on its way out is not
 * (libFuzzer runs LeakSanitizer after inputs that allocated more than
 * they freed unless -detect_leaks=0 is given).
 */
static char	 dir[] = "/tmp/config_fuzz.XXXXXX";
static char	 input[64], again[64];
static FILE	*sink;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (mkdtemp(dir) == NULL)
		err(1, "mkdtemp");
	atexit(config_fuzz_cleanup);
	(void)snprintf(input, sizeof(input), "%s/input.conf", dir);
	(void)snprintf(again, sizeof(again), "%s/printout.conf", dir);
	if ((sink = fopen("/dev/null", "w")) == NULL)
		err(1, "/dev/null");
	log_init(1, 0);
	return 0;
}

/* The inputs' directory goes with the run (libFuzzer exits, or a -runs). */
static void
config_fuzz_cleanup(void)
{
	(void)unlink(input);
	(void)unlink(again);
	(void)rmdir(dir);
}

static void
config_fuzz_write(const char *path, const void *data, size_t len)
{
	int	 fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		err(1, "%s", path);
	if (len > 0 && write(fd, data, len) != (ssize_t)len)
		err(1, "write %s", path);
	close(fd);
}

static char *
config_fuzz_print(const struct smx_conf *c, size_t *len)
{
	char	*buf = NULL;
	FILE	*fp;

	if ((fp = open_memstream(&buf, len)) == NULL)
		err(1, "open_memstream");
	conf_print(fp, c);
	if (fclose(fp) != 0)
		err(1, "fclose");
	return buf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smx_conf	*c, *c2;
	char		*p1, *p2;
	size_t		 l1, l2;

	config_fuzz_write(input, data, size);
	if ((c = parse_config(input, sink)) == NULL)
		return 0;
	p1 = config_fuzz_print(c, &l1);
	config_fuzz_write(again, p1, l1);
	if ((c2 = parse_config(again, stderr)) == NULL) {
		fprintf(stderr, "the printout does not parse:\n%s", p1);
		abort();
	}
	p2 = config_fuzz_print(c2, &l2);
	if (l1 != l2 || memcmp(p1, p2, l1) != 0) {
		fprintf(stderr, "the printout parses to another printout:\n"
		    "--- first\n%s--- second\n%s", p1, p2);
		abort();
	}
	free(p1);
	free(p2);
	conf_free(c);
	conf_free(c2);
	return 0;
}
