/*
 * What the fuzz targets share: the libFuzzer entry point and a failed
 * check, which aborts so that libFuzzer keeps the input and the stack.
 */
#ifndef SMX_FUZZ_H
#define SMX_FUZZ_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void	fuzz_fail(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2), __noreturn__,
		    __unused__));

/* A behaviour check failed: say which, and crash. */
static void
fuzz_fail(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	fputs("fuzz check failed: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

#define FUZZ_CHECK(cond, ...) do {					\
	if (!(cond))							\
		fuzz_fail(__VA_ARGS__);					\
} while (0)

#endif
