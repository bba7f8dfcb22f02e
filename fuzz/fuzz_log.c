/*
 * lib/log.c for the fuzz targets that log on every input: each line is
 * formatted (its arguments are used) and dropped, and fatal()/fatalx()
 * abort, so that libFuzzer keeps the input and the stack.  A target
 * names this file instead of lib/log.c in its fuzz-link line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

static int	 fuzz_verbose;

void
log_init(int debug, int verbose)
{
	(void)debug;
	fuzz_verbose = verbose;
}

void
log_procname(const char *name)
{
	(void)name;
}

void
log_setverbose(int verbose)
{
	fuzz_verbose = verbose;
}

int
log_getverbose(void)
{
	return fuzz_verbose;
}

void
vlog(int pri, const char *fmt, va_list ap)
{
	char	 buf[4096];

	(void)pri;
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(0, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	fputs("fatal: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	fputs("fatalx: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}
