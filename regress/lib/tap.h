/*
 * A very small TAP producer for the unit tests: plan, ok, diag, done.
 * Output goes to stdout, one line per test, flushed as it goes.
 */
#ifndef SMX_TAP_H
#define SMX_TAP_H

#include <stdarg.h>
#include <stdio.h>

struct tap_state {
	int	 planned;
	int	 run;
	int	 failed;
};

static struct tap_state	 tap;

/* n == 0: no plan up front, done() prints it at the end. */
static inline void
plan(int n)
{
	tap.planned = n;
	if (n > 0)
		printf("1..%d\n", n);
	fflush(stdout);
}

static inline int	ok(int, const char *, ...)
			    __attribute__((__format__ (printf, 2, 3)));

static inline int
ok(int cond, const char *fmt, ...)
{
	va_list	 ap;

	tap.run++;
	if (!cond)
		tap.failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap.run);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

static inline void	diag(const char *, ...)
			    __attribute__((__format__ (printf, 1, 2)));

static inline void
diag(const char *fmt, ...)
{
	va_list	 ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* The exit code: 1 if a test failed or the plan was not kept. */
static inline int
done(void)
{
	if (tap.planned == 0)
		printf("1..%d\n", tap.run);
	else if (tap.run != tap.planned) {
		diag("planned %d tests but ran %d", tap.planned, tap.run);
		return 1;
	}
	if (tap.failed > 0)
		diag("failed %d of %d tests", tap.failed, tap.run);
	fflush(stdout);
	return tap.failed > 0 ? 1 : 0;
}

#endif
