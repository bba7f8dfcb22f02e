/*
 * Logging for every splitmx process: syslog (mail facility) or stderr
 * in the foreground, one line per event, fatal() for broken invariants.
 */
#ifndef SMX_LOG_H
#define SMX_LOG_H

#include <stdarg.h>
#include <stddef.h>

#define LOG_LINE_MAX	4096	/* one record, its text */

/* debug: to stderr; otherwise to syslog (the parent) */
void	log_init(int debug, int verbose);
void	log_procname(const char *name);
/* A child: records go to the parent over this datagram socket. */
void	log_to_parent(int fd);
/* The parent's syslog socket, and whether a syslogd listens: 0 or -1. */
const char *log_syslog_path(void);
int	log_syslog_probe(void);
/* The parent: one line to syslog as process proc, pid pid wrote it. */
void	log_relay(int pri, long pid, const char *proc, const char *text,
	    size_t len);
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

/*
 * A value for a key=value field, quoted and escaped where it must be
 * (log.c, splitmxd(8) LOGGING); valid until LOG_VALUE_SLOTS more calls.
 * log_text() always quotes (free text: replies, errors); log_addr()
 * writes an address in angle brackets, "<a@example.com>".
 */
const char	*log_value(const char *);
const char	*log_text(const char *);
const char	*log_textn(const char *, size_t);
const char	*log_addr(const char *);

#endif
