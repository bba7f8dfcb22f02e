/*
 * splitmxctl lookup ADDRESS: the lookup process decides and explains
 * (IMSG_CTL_LOOKUP_RESULT), and this prints the explanation, in words
 * or in JSON.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"
#include "control.h"

/*
 * The names of the step kinds, as splitmxctl lookup prints them (text
 * and JSON): the one place they are spelled.
 */
static const char *const	 lookup_step_names[LOOKUP_STEP_COUNT] = {
	[LOOKUP_STEP_NONE] = "",
	[LOOKUP_STEP_LOCAL] = "local",
	[LOOKUP_STEP_CUSTOM] = "custom",
	[LOOKUP_STEP_UNKNOWN] = "unknown",
	[LOOKUP_STEP_RELAY] = "relay",
	[LOOKUP_STEP_OUTSIDE] = "outside",
	[LOOKUP_STEP_LOOP] = "loop",
	[LOOKUP_STEP_TOO_LONG] = "too long",
	[LOOKUP_STEP_TEMPFAIL] = "tempfail",
};

/* A step's fields, in the order the lookup process sends them. */
enum { ST_ADDR, ST_DOMAIN, ST_DTYPE, ST_TABLE, ST_ENTRY, ST_SOURCE,
    ST_KIND, ST_TARGET, ST_NFIELDS };
static const char *const	 lookup_step_keys[ST_NFIELDS] = {
	"address", "domain", "type", "table", "entry", "source", "kind",
	"target"
};

/* The head of IMSG_CTL_LOOKUP_RESULT, up to the steps. */
struct lookup_answer {
	const char	*addr, *text, *rewritten, *dest, *decision, *policy;
	uint32_t	 verdict, code, rclass, nsteps;
	int		 routable;
	const char	*route;		/* its class, by name */
	const char	*shown;		/* the address it goes to */
	char		 where[SMX_HOSTSZ + 64];
};

static void	control_lookup_step_get(struct msg *, const char *[ST_NFIELDS],
		    uint32_t *);
static void	control_lookup_step_text(FILE *, const char *[ST_NFIELDS],
		    uint32_t);
static void	control_lookup_step_json(FILE *, const char *[ST_NFIELDS],
		    int);
static void	control_lookup_head(struct msg *, uint64_t *,
		    struct lookup_answer *);
static void	control_lookup_head_out(FILE *, int,
		    const struct lookup_answer *);
static void	control_lookup_tail_out(FILE *, int,
		    const struct lookup_answer *);
static void	control_lookup_tls(struct msg *, FILE *, int);

/*
 * lookup ADDRESS: the lookup process decides as it would for a RCPT
 * from a client that is neither trusted nor the forward host, and
 * explains; see "Lookup protocol" in splitmx.h.
 */
void
control_lookup(struct ctl_client *c, char **words)
{
	struct msg	 m;

	c->reqid = control_reqid();
	msg_init(&m, IMSG_CTL_LOOKUP, 0);
	msg_add_u64(&m, c->reqid);
	msg_add_str(&m, words[1]);
	proc_send(PROC_LOOKUP, &m);
}

/* One step, its kind by name in s[ST_KIND]. */
static void
control_lookup_step_get(struct msg *m, const char *s[ST_NFIELDS],
    uint32_t *kind)
{
	int	 j;

	for (j = 0; j < ST_NFIELDS; j++) {
		if (j == ST_KIND) {
			if (msg_get_u32(m, kind) == -1 ||
			    *kind >= LOOKUP_STEP_COUNT ||
			    lookup_step_names[*kind] == NULL)
				fatalx("bad %s", imsg_name(m->type));
			s[j] = lookup_step_names[*kind];
		} else if (msg_get_strp(m, &s[j]) == -1 || s[j] == NULL)
			fatalx("bad %s", imsg_name(m->type));
	}
}

/* One step of the decision, in words. */
static void
control_lookup_step_text(FILE *out, const char *s[ST_NFIELDS],
    uint32_t kind)
{
	control_put_safe(out, s[ST_ADDR]);
	fputs(": ", out);
	switch (kind) {
	case LOOKUP_STEP_OUTSIDE:
		fputs("not a configured domain\n", out);
		return;
	case LOOKUP_STEP_LOOP:
		fputs("seen before in this chain: a loop\n", out);
		return;
	case LOOKUP_STEP_TOO_LONG:
		fputs("one step too many\n", out);
		return;
	}
	fprintf(out, "domain ");
	control_put_safe(out, s[ST_DOMAIN]);
	fputs(" (", out);
	control_put_safe(out, s[ST_DTYPE]);
	if (*s[ST_TABLE] != '\0') {
		fputs(", table ", out);
		control_put_safe(out, s[ST_TABLE]);
	}
	fputs(")", out);
	if (kind == LOOKUP_STEP_RELAY)
		fputs(": no directory, everything to its forward host", out);
	else if (kind == LOOKUP_STEP_UNKNOWN)
		fputs(": not in the directory (tried the address, without "
		    "+detail, @domain)", out);
	else if (kind == LOOKUP_STEP_TEMPFAIL) {
		fputs(": directory unavailable", out);
		if (*s[ST_SOURCE] != '\0') {
			fputs(" (", out);
			control_put_safe(out, s[ST_SOURCE]);
			fputs(")", out);
		}
	} else if (*s[ST_ENTRY] != '\0') {
		fputs(": entry ", out);
		control_put_safe(out, s[ST_ENTRY]);
		if (*s[ST_SOURCE] != '\0') {
			fputs(" at ", out);
			control_put_safe(out, s[ST_SOURCE]);
		}
		fputs(": ", out);
		control_put_safe(out, s[ST_KIND]);
		if (kind == LOOKUP_STEP_CUSTOM) {
			if (*s[ST_TARGET] != '\0') {
				fputs(" -> ", out);
				control_put_safe(out, s[ST_TARGET]);
			} else
				fputs(" without a target", out);
		}
	}
	fputs("\n", out);
}

static void
control_lookup_step_json(FILE *out, const char *s[ST_NFIELDS], int first)
{
	int	 j;

	fputs(first ? "{" : ", {", out);
	for (j = 0; j < ST_NFIELDS; j++) {
		fprintf(out, "%s\"%s\": ", j ? ", " : "", lookup_step_keys[j]);
		json_str(out, s[j]);
	}
	fputs("}", out);
}

/* The head of the answer, and what it means for the output. */
static void
control_lookup_head(struct msg *m, uint64_t *reqid, struct lookup_answer *a)
{
	const char	*domain;

	if (msg_get_u64(m, reqid) == -1 || msg_get_strp(m, &a->addr) == -1 ||
	    msg_get_u32(m, &a->verdict) == -1 ||
	    msg_get_u32(m, &a->code) == -1 ||
	    msg_get_strp(m, &a->text) == -1 ||
	    msg_get_u32(m, &a->rclass) == -1 ||
	    msg_get_strp(m, &a->rewritten) == -1 ||
	    msg_get_strp(m, &a->dest) == -1 ||
	    msg_get_strp(m, &a->decision) == -1 ||
	    msg_get_strp(m, &a->policy) == -1 ||
	    msg_get_u32(m, &a->nsteps) == -1 || a->addr == NULL ||
	    a->text == NULL || a->rewritten == NULL || a->dest == NULL ||
	    a->decision == NULL || a->policy == NULL || a->nsteps > 64)
		fatalx("bad %s", imsg_name(m->type));
	/* A bounce is accepted, but goes nowhere: not routable. */
	a->routable = a->verdict == LOOKUP_ACCEPT && a->rclass != ROUTE_BOUNCE;
	a->route = a->rclass < ROUTE_NONE ? route_class_name(a->rclass) :
	    "none";
	a->shown = *a->rewritten != '\0' ? a->rewritten : a->addr;
	domain = strrchr(a->shown, '@') != NULL ? strrchr(a->shown, '@') + 1 :
	    a->shown;
	if (a->verdict != LOOKUP_ACCEPT)
		strlcpy(a->where, "-", sizeof(a->where));
	else if (a->rclass == ROUTE_BOUNCE)
		strlcpy(a->where, "none (a non-delivery report goes to the "
		    "sender)", sizeof(a->where));
	else if (*a->dest != '\0')
		strlcpy(a->where, a->dest, sizeof(a->where));
	else if (snprintf(a->where, sizeof(a->where), "MX of %s", domain) >=
	    (int)sizeof(a->where))
		strlcpy(a->where, "MX", sizeof(a->where));
}

static void
control_lookup_head_out(FILE *out, int json, const struct lookup_answer *a)
{
	int	 accepted = a->verdict == LOOKUP_ACCEPT;

	if (json) {
		fputs("{\"address\": ", out);
		json_str(out, a->addr);
		fprintf(out, ", \"routable\": %s, \"decision\": ",
		    a->routable ? "true" : "false");
		json_str(out, a->decision);
		fputs(", \"route\": ", out);
		json_str(out, a->route);
		fputs(", \"rewritten\": ", out);
		json_str(out, accepted ? a->shown : "");
		fputs(", \"destination\": ", out);
		json_str(out, accepted ? a->dest : "");
		fputs(", \"policy\": ", out);
		json_str(out, a->policy);
		fprintf(out, ", \"code\": %u, \"reply\": ", a->code);
		json_str(out, a->text);
		fputs(", \"steps\": [", out);
		return;
	}
	fputs("address      ", out);
	control_put_safe(out, a->addr);
	fputs("\ndecision     ", out);
	control_put_safe(out, a->decision);
	fputs("\n", out);
}

static void
control_lookup_tail_out(FILE *out, int json, const struct lookup_answer *a)
{
	if (json) {
		fputs("}\n", out);
		return;
	}
	if (a->verdict == LOOKUP_ACCEPT) {
		fputs("rewritten    ", out);
		control_put_safe(out, a->shown);
		fputs("\ndestination  ", out);
		control_put_safe(out, a->where);
		fprintf(out, "\nroute        %s\n", a->route);
	}
	fputs("policy       ", out);
	control_put_safe(out, a->policy);
	fprintf(out, "\nreply        %u ", a->code);
	control_put_safe(out, a->text);
	fputs("\n", out);
}

/*
 * The destination's hosts and the TLS policy each gets (SPEC §11): the
 * route's policy by name, then per host its preference, name,
 * addresses, mode (tls_mode_name()) and why, then a summary (DNSSEC,
 * MTA-STS, or why nothing was resolved).  Printed to out unless NULL.
 */
static void
control_lookup_tls(struct msg *m, FILE *out, int json)
{
	const char	*policy, *host, *addrs, *mode, *why, *summary;
	uint32_t	 n, i, pref;

	if (msg_get_strp(m, &policy) == -1 || policy == NULL ||
	    msg_get_u32(m, &n) == -1 || n > 64)
		fatalx("bad %s", imsg_name(m->type));
	if (out != NULL && json) {
		fputs(", \"tls\": {\"policy\": ", out);
		json_str(out, policy);
		fputs(", \"hosts\": [", out);
	} else if (out != NULL && *policy != '\0') {
		fputs("tls          ", out);
		control_put_safe(out, policy);
		fputs(" (the route's policy)\n", out);
	}
	for (i = 0; i < n; i++) {
		if (msg_get_strp(m, &host) == -1 || host == NULL ||
		    msg_get_u32(m, &pref) == -1 ||
		    msg_get_strp(m, &addrs) == -1 || addrs == NULL ||
		    msg_get_strp(m, &mode) == -1 || mode == NULL ||
		    msg_get_strp(m, &why) == -1 || why == NULL)
			fatalx("bad %s", imsg_name(m->type));
		if (out == NULL)
			continue;
		if (json) {
			fprintf(out, "%s{\"host\": ", i ? ", " : "");
			json_str(out, host);
			fprintf(out, ", \"preference\": %u, \"addresses\": ",
			    pref);
			json_str(out, addrs);
			fputs(", \"check\": ", out);
			json_str(out, mode);
			fputs(", \"why\": ", out);
			json_str(out, why);
			fputs("}", out);
			continue;
		}
		fprintf(out, "host %-7u %u ", i + 1, pref);
		control_put_safe(out, host);
		fputs(" [", out);
		control_put_safe(out, addrs);
		fputs("]: ", out);
		control_put_safe(out, mode);
		fputs(" (", out);
		control_put_safe(out, why);
		fputs(")\n", out);
	}
	if (msg_get_strp(m, &summary) == -1 || summary == NULL)
		fatalx("bad %s", imsg_name(m->type));
	if (out == NULL)
		return;
	if (json) {
		fputs("], \"summary\": ", out);
		json_str(out, summary);
		fputs("}", out);
	} else if (*summary != '\0') {
		fputs("dns          ", out);
		control_put_safe(out, summary);
		fputs("\n", out);
	}
}

/*
 * IMSG_CTL_LOOKUP_TLS_RESULT: one destination of show message (see
 * control_queue_tls_next()), printed as lookup prints its own.
 */
void
control_lookup_tls_result(struct msg *m)
{
	struct ctl_client	*c;
	uint64_t		 reqid;
	FILE			*out = NULL;

	if (msg_get_u64(m, &reqid) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((c = control_client_find(reqid)) != NULL && c->kind == CTL_Q_SHOW)
		out = control_out(c);
	control_lookup_tls(m, out, out != NULL && c->json);
	if (msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if (out == NULL)
		return;
	if (c->json)
		fputs("}", out);
	c->tlsnext++;
	control_queue_tls_next(c);
}

/* IMSG_CTL_LOOKUP_RESULT: read to the end even if the client is gone. */
void
control_lookup_result(struct msg *m)
{
	struct lookup_answer	 a;
	struct ctl_client	*c;
	const char		*s[ST_NFIELDS];
	uint64_t		 reqid;
	uint32_t		 i, kind;
	FILE			*out, *tls;
	char			*tlsbuf = NULL;
	size_t			 tlslen = 0;

	memset(&a, 0, sizeof(a));
	control_lookup_head(m, &reqid, &a);
	c = control_client_find(reqid);
	out = c != NULL ? control_out(c) : NULL;
	if (out != NULL)
		control_lookup_head_out(out, c->json, &a);
	for (i = 0; i < a.nsteps; i++) {
		control_lookup_step_get(m, s, &kind);
		if (out == NULL)
			continue;
		if (c->json)
			control_lookup_step_json(out, s, i == 0);
		else {
			fprintf(out, "step %-7u ", i + 1);
			control_lookup_step_text(out, s, kind);
		}
	}
	/* Text: the hosts after the route's summary lines. */
	tls = NULL;
	if (out != NULL && c->json) {
		fputs("]", out);
		control_lookup_tls(m, out, 1);
	} else if (out != NULL) {
		if ((tls = open_memstream(&tlsbuf, &tlslen)) == NULL)
			fatal("open_memstream");
		control_lookup_tls(m, tls, 0);
		if (fclose(tls) != 0)
			fatal("fclose");
	} else
		control_lookup_tls(m, NULL, 0);
	if (msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if (out == NULL)
		return;		/* the client went away */
	control_lookup_tail_out(out, c->json, &a);
	if (tls != NULL) {
		fwrite(tlsbuf, 1, tlslen, out);
		free(tlsbuf);
	}
	control_reply(c, a.routable ? 0 : 1);
}
