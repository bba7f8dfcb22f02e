/*
 * Shared between the control process' files: the counters, JSON
 * output, and the metrics listener.
 */
#ifndef SMX_CONTROL_H
#define SMX_CONTROL_H

#include <stdarg.h>
#include <stdio.h>

struct ctl_client;

/*
 * control_counters.c: the counters every process reports in
 * IMSG_CTL_STATS, by name, in the order first seen.
 */
void		 control_counters_init(void);
void		 control_counters_stats(struct msg *);
int		 control_counters_n(void);
const char	*control_counters_at(int, int64_t *value, int *gauge);
int64_t		 control_counters_value(const char *);

void		 control_fail(struct ctl_client *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
void		 json_str(FILE *, const char *);

/* control_metrics.c: Prometheus text over HTTP, evhttp's server */
void		 control_metrics_listen(int fd);

#endif
