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
 * splitmxctl_import.c: the command, argv[0] "import"; -s and --json
 * are the global options.  Returns the exit status.
 */
int	 ctl_import(int argc, char **argv, const char *sock, int json);

#endif
