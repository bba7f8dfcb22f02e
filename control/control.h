/*
 * Shared between the control process' files: the counters, JSON
 * output, and the metrics listener.
 */
#ifndef SMX_CONTROL_H
#define SMX_CONTROL_H

#include <stdarg.h>
#include <stdio.h>

struct counter;
struct ctl_client;

struct counter	*counter_get(const char *, int gauge);
int		 counter_count(void);
const char	*counter_at(int, int64_t *value, int *gauge);
void		 control_fail(struct ctl_client *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
void		 json_str(FILE *, const char *);

/* control_metrics.c: Prometheus text over HTTP, evhttp's server */
void		 control_metrics_listen(int fd);

#endif
