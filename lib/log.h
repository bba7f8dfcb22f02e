/*
 * Logging for every splitmx process: syslog (mail facility) or stderr
 * in the foreground, one line per event, fatal() for broken invariants.
 */
#ifndef SMX_LOG_H
#define SMX_LOG_H

#include <stdarg.h>

void	log_init(int debug, int verbose);
void	log_procname(const char *name);
void	log_setverbose(int verbose);
int	log_getverbose(void);
void	log_warn(const char *, ...)
	    __attribute__((__format__ (printf, 1, 2)));
void	log_warnx(const char *, ...)
	    __attribute__((__format__ (printf, 1, 2)));
void	log_info(const char *, ...)
	    __attribute__((__format__ (printf, 1, 2)));
void	log_debug(const char *, ...)
	    __attribute__((__format__ (printf, 1, 2)));
void	vlog(int, const char *, va_list)
	    __attribute__((__format__ (printf, 2, 0)));
void	fatal(const char *, ...)
	    __attribute__((__format__ (printf, 1, 2), __noreturn__));
void	fatalx(const char *, ...)
	    __attribute__((__format__ (printf, 1, 2), __noreturn__));

#endif
