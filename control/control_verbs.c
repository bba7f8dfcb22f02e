/*
 * The table of splitmxctl's requests, linked into splitmxctl and into
 * the control process: a new request is one row here and its handler
 * in the control process.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "control_verbs.h"

/* In the order of the usage text; rows of one verb stay together. */
static const struct ctl_verb	 ctl_verbs[] = {
	{ { "show", "status" }, NULL, 0, 0, CTL_SHOW_STATUS, 0 },
	{ { "show", "stats" }, NULL, 0, 0, CTL_SHOW_STATS, 0 },
	{ { "show", "queue" }, NULL, 0, 0, CTL_SHOW_QUEUE, 0 },
	{ { "show", "message" }, "ID", 1, 1, CTL_SHOW_MESSAGE, 0 },
	{ { "lookup", NULL }, "ADDRESS", 1, 1, CTL_LOOKUP, F_CTL_ANSWER },
	{ { "check", "client" }, "IP", 1, 1, CTL_CHECK_CLIENT, F_CTL_ANSWER },
	{ { "reload", NULL }, NULL, 0, 0, CTL_RELOAD, F_CTL_ADMIN },
	{ { "pause", "smtp" }, NULL, 0, 0, CTL_PAUSE, F_CTL_ADMIN },
	{ { "pause", "relay" }, NULL, 0, 0, CTL_PAUSE, F_CTL_ADMIN },
	{ { "resume", "smtp" }, NULL, 0, 0, CTL_PAUSE, F_CTL_ADMIN },
	{ { "resume", "relay" }, NULL, 0, 0, CTL_PAUSE, F_CTL_ADMIN },
	{ { "schedule", NULL }, "ID | all", 1, 1, CTL_SCHEDULE, F_CTL_ADMIN },
	{ { "remove", NULL }, "ID | all", 1, 1, CTL_REMOVE, F_CTL_ADMIN },
	{ { "release", NULL }, "ID | all", 1, 1, CTL_RELEASE, F_CTL_ADMIN },
	{ { "log", "verbose" }, NULL, 0, 0, CTL_LOG, F_CTL_ADMIN },
	{ { "log", "brief" }, NULL, 0, 0, CTL_LOG, F_CTL_ADMIN },
	{ { "import-info", NULL }, "TABLE", 1, 1, CTL_IMPORT_INFO,
	    F_CTL_ADMIN },
	/* Its options and their number are splitmxctl_import.c's. */
	{ { "import", NULL }, "[-n] [options] TABLE FILE", 2, INT_MAX,
	    CTL_IMPORT, F_CTL_LOCAL },
	{ { "stop", NULL }, NULL, 0, 0, CTL_STOP, F_CTL_ADMIN },
};
#define NVERBS	(sizeof(ctl_verbs) / sizeof(ctl_verbs[0]))

const struct ctl_verb *
control_verb_find(int n, char **words)
{
	const struct ctl_verb	*v;
	size_t			 i;
	int			 nargs;

	for (i = 0; i < NVERBS; i++) {
		v = &ctl_verbs[i];
		if (n < 1 || strcmp(words[0], v->words[0]) != 0)
			continue;
		if (v->words[1] != NULL &&
		    (n < 2 || strcmp(words[1], v->words[1]) != 0))
			continue;
		nargs = n - (v->words[1] != NULL ? 2 : 1);
		if (nargs >= v->minargs && nargs <= v->maxargs)
			return v;
	}
	return NULL;
}

void
control_verb_usage(FILE *fp)
{
	const struct ctl_verb	*v;
	size_t			 i;
	int			 first, last;

	for (i = 0; i < NVERBS; i++) {
		v = &ctl_verbs[i];
		first = i == 0 ||
		    strcmp(v->words[0], ctl_verbs[i - 1].words[0]) != 0;
		last = i + 1 == NVERBS ||
		    strcmp(v->words[0], ctl_verbs[i + 1].words[0]) != 0;
		if (first)
			fprintf(fp, "\t%s", v->words[0]);
		if (v->words[1] != NULL || v->args != NULL)
			fputs(first ? " " : " | ", fp);
		if (v->words[1] != NULL)
			fprintf(fp, "%s%s", v->words[1], v->args ? " " : "");
		if (v->args != NULL)
			fputs(v->args, fp);
		if (last)
			fputs("\n", fp);
	}
}
