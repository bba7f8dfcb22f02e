/*
 * import-info TABLE, asked by splitmxctl import (splitmxctl(8)): the
 * table's file and the domains it is the directory of.
 */
#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include "splitmx.h"
#include "control.h"

/*
 * From the configuration in force, so that the command rewrites the
 * file the daemon reloads.  Admin only (F_CTL_ADMIN), as the reload
 * that follows.  Text: "table NAME file PATH", the path being the rest
 * of the line, then "domain NAME TYPE forward HOST" per domain.
 */
void
control_import_info(struct ctl_client *c, char **words)
{
	const struct smx_table	*t;
	const struct smx_domain	*d;
	FILE			*out;
	char			 host[SMX_HOSTSZ + 16];
	const char		*type;
	int			 n = 0;

	if ((t = conf_table(env->conf, words[1])) == NULL) {
		control_fail(c, "no table %s", words[1]);
		return;
	}
	if (t->type != TABLE_FILE) {
		control_fail(c, "table %s is not a file table", t->name);
		return;
	}
	out = control_out(c);
	if (c->json) {
		fputs("{\"table\": ", out);
		json_str(out, t->name);
		fputs(", \"path\": ", out);
		json_str(out, t->path);
		fputs(", \"domains\": [", out);
	} else
		fprintf(out, "table %s file %s\n", t->name, t->path);
	TAILQ_FOREACH(d, &env->conf->domains, entry) {
		if (d->type == DOMAIN_RELAY || strcmp(d->directory, t->name))
			continue;
		if (d->forward.set)
			host_str(&d->forward, host, sizeof(host));
		else
			strlcpy(host, "-", sizeof(host));
		type = d->type == DOMAIN_SHARED ? "shared" : "authoritative";
		if (c->json)
			fprintf(out, "%s{\"domain\": \"%s\", \"type\": \"%s\", "
			    "\"forward\": \"%s\"}", n++ ? ", " : "", d->name,
			    type, host);
		else
			fprintf(out, "domain %s %s forward %s\n", d->name, type,
			    host);
	}
	if (c->json)
		fputs("]}\n", out);
	control_reply(c, 0);
}
