/*
 * splitmxctl check client IP: the lookup process scores the client on
 * the DNS lists as it would at connect (IMSG_CTL_CHECK_CLIENT_RESULT),
 * and this prints the score list by list, in words or in JSON.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"
#include "control.h"

/* As splitmxctl check client prints them (text and JSON). */
static const char *const	 dnsbl_answer_names[DNSBL_ANS_COUNT] = {
	[DNSBL_ANS_CLEAN] = "not listed",
	[DNSBL_ANS_LISTED] = "listed",
	[DNSBL_ANS_OPERATOR] = "list error code",
	[DNSBL_ANS_ERROR] = "dns error",
	[DNSBL_ANS_TIMEOUT] = "timeout",
};

/* One list of the answer, in the order the lookup process sends it. */
struct check_list {
	const char	*zone, *qname, *addrs;
	uint32_t	 allow, weight, answer, cached;
	int64_t		 ttl;
};

static void	control_check_list_get(struct msg *, struct check_list *);
static void	control_check_list_text(FILE *, const struct check_list *);
static void	control_check_list_json(FILE *, const struct check_list *,
		    int);

/* check client IP: the address is checked here, scored in lookup. */
void
control_check_client(struct ctl_client *c, char **words)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	struct msg		 m;

	if (parse_sockaddr(words[2], 0, &ss, &sslen) == -1) {
		control_fail(c, "check client: \"%s\" is not an IPv4 or IPv6 "
		    "address", words[2]);
		return;
	}
	c->reqid = control_reqid();
	msg_init(&m, IMSG_CTL_CHECK_CLIENT, 0);
	msg_add_u64(&m, c->reqid);
	msg_add_sockaddr(&m, (struct sockaddr *)&ss, sslen);
	proc_send(PROC_LOOKUP, &m);
}

static void
control_check_list_get(struct msg *m, struct check_list *l)
{
	if (msg_get_strp(m, &l->zone) == -1 ||
	    msg_get_u32(m, &l->allow) == -1 ||
	    msg_get_u32(m, &l->weight) == -1 ||
	    msg_get_strp(m, &l->qname) == -1 ||
	    msg_get_u32(m, &l->answer) == -1 ||
	    msg_get_strp(m, &l->addrs) == -1 ||
	    msg_get_u32(m, &l->cached) == -1 ||
	    msg_get_i64(m, &l->ttl) == -1 ||
	    l->zone == NULL || l->qname == NULL || l->addrs == NULL ||
	    l->answer >= DNSBL_ANS_COUNT)
		fatalx("bad %s", imsg_name(m->type));
}

/* What a list's answer adds to the score. */
static int64_t
control_check_counted(const struct check_list *l)
{
	if (l->answer != DNSBL_ANS_LISTED)
		return 0;
	return l->allow ? -(int64_t)l->weight : (int64_t)l->weight;
}

static void
control_check_list_text(FILE *out, const struct check_list *l)
{
	fprintf(out, "list         %s ", l->allow ? "dnswl" : "dnsbl");
	control_put_safe(out, l->zone);
	fprintf(out, " weight %u: %s", l->weight,
	    dnsbl_answer_names[l->answer]);
	if (*l->addrs != '\0') {
		fputs(" (", out);
		control_put_safe(out, l->addrs);
		fputs(")", out);
	}
	if (l->answer >= DNSBL_ANS_OPERATOR)
		fputs(", counts as not listed", out);
	fprintf(out, ": %+lld\n             query ",
	    (long long)control_check_counted(l));
	control_put_safe(out, l->qname);
	if (l->cached)
		fprintf(out, ", from the cache, %lld s left\n",
		    (long long)l->ttl);
	else if (l->ttl > 0)
		fprintf(out, ", asked now, cached %lld s\n", (long long)l->ttl);
	else
		fputs(", asked now, not cached\n", out);
}

static void
control_check_list_json(FILE *out, const struct check_list *l, int first)
{
	char	*addrs, *p, *a;
	int	 n = 0;

	fputs(first ? "{\"zone\": " : ", {\"zone\": ", out);
	json_str(out, l->zone);
	fprintf(out, ", \"type\": \"%s\", \"weight\": %u, \"query\": ",
	    l->allow ? "dnswl" : "dnsbl", l->weight);
	json_str(out, l->qname);
	fprintf(out, ", \"answer\": \"%s\", \"addresses\": [",
	    dnsbl_answer_names[l->answer]);
	p = addrs = str_dup(l->addrs);
	while ((a = strsep(&p, " ")) != NULL) {
		if (*a == '\0')
			continue;
		fputs(n++ ? ", " : "", out);
		json_str(out, a);
	}
	free(addrs);
	fprintf(out, "], \"counted\": %lld, \"cached\": %s, \"ttl\": %lld}",
	    (long long)control_check_counted(l), l->cached ? "true" : "false",
	    (long long)l->ttl);
}

/* IMSG_CTL_CHECK_CLIENT_RESULT: read to the end even if the client left. */
void
control_check_client_result(struct msg *m)
{
	struct ctl_client	*c;
	struct check_list	 l;
	const char		*client, *reply;
	uint64_t		 reqid;
	uint32_t		 trusted, threshold, refused, n, i;
	int64_t			 score;
	char			 full[1024];
	FILE			*out = NULL;

	if (msg_get_u64(m, &reqid) == -1 ||
	    msg_get_strp(m, &client) == -1 ||
	    msg_get_u32(m, &trusted) == -1 ||
	    msg_get_i64(m, &score) == -1 ||
	    msg_get_u32(m, &threshold) == -1 ||
	    msg_get_u32(m, &refused) == -1 ||
	    msg_get_strp(m, &reply) == -1 ||
	    msg_get_u32(m, &n) == -1 || client == NULL || reply == NULL ||
	    n > DNSBL_MAX)
		fatalx("bad %s", imsg_name(m->type));
	/* The reply a session would get to a RCPT. */
	(void)snprintf(full, sizeof(full), "%s%s", refused ? "550 " : "",
	    reply);
	if ((c = control_client_find(reqid)) != NULL)
		out = control_out(c);
	if (out != NULL && c->json) {
		fputs("{\"client\": ", out);
		json_str(out, client);
		fprintf(out, ", \"trusted\": %s, \"score\": %lld, "
		    "\"threshold\": %u, \"refused\": %s, \"reply\": ",
		    trusted ? "true" : "false", (long long)score, threshold,
		    refused ? "true" : "false");
		json_str(out, full);
		fputs(", \"lists\": [", out);
	} else if (out != NULL) {
		fputs("client       ", out);
		control_put_safe(out, client);
		fprintf(out, "\ntrusted      %s\n", trusted ?
		    "yes: never checked" : "no");
		if (!trusted && n == 0)
			fputs("lists        none configured\n", out);
	}
	for (i = 0; i < n; i++) {
		control_check_list_get(m, &l);
		if (out == NULL)
			continue;
		if (c->json)
			control_check_list_json(out, &l, i == 0);
		else
			control_check_list_text(out, &l);
	}
	if (msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if (out == NULL)
		return;		/* the client went away */
	if (c->json)
		fputs("]}\n", out);
	else {
		fprintf(out, "score        %lld (threshold %u)\n",
		    (long long)score, threshold);
		fprintf(out, "verdict      %s", refused ? "refused: " :
		    "accepted");
		control_put_safe(out, full);
		fputs("\n", out);
	}
	control_reply(c, refused ? 1 : 0);
}
