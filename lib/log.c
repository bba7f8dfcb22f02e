/*
 * Logging for every splitmx process: syslog (mail facility) or stderr
 * in the foreground, prefixed with the process name.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static void	logit(int, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
static void	log_errno(int, int, const char *, va_list)
		    __attribute__((__format__ (printf, 3, 0)));

static int	 log_debug_mode;
static int	 log_verbose;
static char	 log_proc[32] = "splitmxd";

void
log_init(int debug, int verbose)
{
	log_debug_mode = debug;
	log_verbose = verbose;
	if (!debug)
		openlog("splitmxd", LOG_PID | LOG_NDELAY, LOG_MAIL);
	tzset();
}

void
log_procname(const char *name)
{
	strlcpy(log_proc, name, sizeof(log_proc));
}

void
log_setverbose(int verbose)
{
	log_verbose = verbose;
}

int
log_getverbose(void)
{
	return log_verbose;
}

void
vlog(int pri, const char *fmt, va_list ap)
{
	char	 buf[4096];
	int	 saved = errno;

	if (vsnprintf(buf, sizeof(buf), fmt, ap) < 0)
		strlcpy(buf, "(log format error)", sizeof(buf));
	if (log_debug_mode) {
		/* One write per line, so that processes do not interleave. */
		dprintf(STDERR_FILENO, "%s: %s\n", log_proc, buf);
	} else
		syslog(pri, "%s: %s", log_proc, buf);
	errno = saved;
}

static void
logit(int pri, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(pri, fmt, ap);
	va_end(ap);
}

static void
log_errno(int pri, int err, const char *fmt, va_list ap)
{
	char	 msg[3072];

	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	if (err)
		logit(pri, "%s: %s", msg, strerror(err));
	else
		logit(pri, "%s", msg);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 err = errno;

	va_start(ap, fmt);
	log_errno(LOG_WARNING, err, fmt, ap);
	va_end(ap);
	errno = err;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_WARNING, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 err = errno;

	va_start(ap, fmt);
	log_errno(LOG_CRIT, err, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}
