/*
 * The parent's own interfaces between splitmxd.c (start, supervision,
 * reload, stop) and parent_log.c (the children's log channel).
 */
#ifndef SMX_PARENT_H
#define SMX_PARENT_H

#include <stdio.h>

#include "splitmx.h"

/* parent_log.c */
int	parent_log_channel(int proc);	/* before the fork: child's end */
void	parent_log_start(void);		/* once the event loop exists */
void	parent_log_drain(void);		/* what the children have sent */

#endif
