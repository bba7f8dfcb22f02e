/*
 * Between splitmxctl's files: splitmxctl.c (main, the options),
 * splitmxctl_request.c (a request to the control socket and its
 * answer) and splitmxctl_import.c (the import command).
 */
#ifndef SMX_SPLITMXCTL_H
#define SMX_SPLITMXCTL_H

#include <stddef.h>
#include <stdio.h>

/*
 * splitmxctl_request.c.  ctl_request_line() puts "text|json WORDS\n"
 * into req and returns its length; a word that cannot travel exits 2.
 * ctl_request() sends req on its own connection to sock, and copies
 * the answer's text, as it comes, to ok if its status is 0 or to fail
 * if it is 1.  Returns that status; -1 if splitmxd could not be
 * reached (nothing was sent), -2 if the request may have gone but no
 * whole answer came back.  Why, on err.
 */
size_t	 ctl_request_line(char *req, size_t size, int json, int argc,
	    char **argv);
int	 ctl_request(const char *sock, const char *req, size_t len,
	    FILE *ok, FILE *fail, FILE *err);

/*
 * splitmxctl_import_read.c: reader(arg, ex, fd) reads the export on fd
 * into ex in a child process, as nobody in SPLITMX_EMPTY if we are
 * root, and what it found comes back into ex, checked.  Its messages
 * go to ex->errfp, splitmxctl's own to err.  Returns IMP_READ_*, as
 * the reader did, or IMP_READ_FAILED if the child failed.
 */
#define IMP_READ_OK	0	/* the export parsed, ex has it */
#define IMP_READ_ERRORS	1	/* it has errors: ex->errors of them */
#define IMP_READ_FAILED	2	/* not read (why is on errfp or err) */
struct imp_export;
int	 ctl_import_read(struct imp_export *ex, int fd,
	    int (*reader)(void *, struct imp_export *, int), void *arg,
	    FILE *err);
/*
 * Its receiving end, alone for fuzz/import_read_fuzz.c: the reader's
 * messages on socket s (closed here) into ex; IMP_READ_*.
 */
int	 ctl_import_receive(struct imp_export *ex, int s, FILE *err);

/*
 * splitmxctl_import.c: the command, argv[0] "import"; -s and --json
 * are the global options.  Returns the exit status.
 */
int	 ctl_import(int argc, char **argv, const char *sock, int json);

#endif
