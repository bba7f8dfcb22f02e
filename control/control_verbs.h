/*
 * The requests of splitmxctl (SPEC §6), one table shared by splitmxctl
 * (which checks the usage and prints it) and the control process
 * (which checks every word again, and the permission, and runs it).
 */
#ifndef SMX_CONTROL_VERBS_H
#define SMX_CONTROL_VERBS_H

#include <stdio.h>

/* What runs a request in the control process (control_ctl.c's table). */
enum ctl_handler {
	CTL_SHOW_STATUS,
	CTL_SHOW_STATS,
	CTL_SHOW_QUEUE,
	CTL_SHOW_MESSAGE,
	CTL_LOOKUP,
	CTL_RELOAD,
	CTL_PAUSE,		/* pause|resume smtp|relay */
	CTL_SCHEDULE,
	CTL_REMOVE,
	CTL_LOG,		/* log verbose|brief */
	CTL_IMPORT_INFO,
	CTL_CHECK_CLIENT,	/* check client IP: the DNS lists */
	CTL_STOP,
	CTL_RELEASE,		/* release ID|all (milter quarantine) */
	CTL_HANDLER_COUNT,
	/* Past the count: splitmxctl's own, never sent (F_CTL_LOCAL). */
	CTL_IMPORT
};

#define F_CTL_ADMIN	0x01	/* changes something: root or admin group */
#define F_CTL_ANSWER	0x02	/* a refusal is the answer (stdout, exit 1) */
#define F_CTL_LOCAL	0x04	/* splitmxctl runs it: no such request */

struct ctl_verb {
	const char		*words[2];	/* verb, object or NULL */
	const char		*args;		/* usage of the arguments */
	int			 minargs;	/* after the words */
	int			 maxargs;
	enum ctl_handler	 handler;
	int			 flags;		/* F_CTL_* */
};

/* The request in words (verb, object, arguments), or NULL: unknown. */
const struct ctl_verb	*control_verb_find(int nwords, char **words);
/* "\tshow status | stats | queue | message ID\n", one line a verb. */
void			 control_verb_usage(FILE *);

#endif
