/*
 * The parent's own interfaces between splitmxd.c (start, supervision,
 * reload, stop), parent_log.c (the children's log channel) and
 * startup.c (accounts, directories, pid file, systemd).
 */
#ifndef SMX_PARENT_H
#define SMX_PARENT_H

#include <stdio.h>

#include "splitmx.h"

/* parent_log.c */
int	parent_log_channel(int proc);	/* before the fork: child's end */
void	parent_log_start(void);		/* once the event loop exists */
void	parent_log_drain(void);		/* what the children have sent */

/* startup.c: for -n and the start, errors as "FILE: message" */
int	startup_check(const struct smx_conf *, FILE *errfp);
void	startup_dirs(const struct smx_conf *);
int	startup_pidfile_lock(const struct smx_conf *, FILE *errfp);
void	startup_pidfile_write(pid_t);
void	startup_daemon(void);		/* daemon(3), with the pid file */
void	startup_pidfile_remove(void);
void	startup_notify(const char *, ...)
	    __attribute__((__format__ (printf, 1, 2)));

#endif
