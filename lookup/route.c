/*
 * Where a recipient goes: a configured domain is ours to accept, any
 * other domain only for trusted clients (no open relay).  The directory
 * classification of local and custom recipients builds on this.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <stdio.h>
#include <string.h>

#include "splitmx.h"

static void	route_set(struct route_result *, enum lookup_verdict,
		    uint32_t, const char *);
static int	route_trusted(const struct smx_conf *, const struct sockaddr *);

void
route_rcpt(const struct smx_conf *c, const struct sockaddr *client,
    const char *sender, const char *rcpt, struct route_result *rr)
{
	const struct smx_domain	*d;
	const struct smx_host	*h;
	const char		*at;

	(void)sender;
	memset(rr, 0, sizeof(*rr));
	rr->rclass = ROUTE_NONE;
	if ((at = strrchr(rcpt, '@')) == NULL || at[1] == '\0' ||
	    strlcpy(rr->rewritten, rcpt, sizeof(rr->rewritten)) >=
	    sizeof(rr->rewritten)) {
		route_set(rr, LOOKUP_REJECT, 501, "5.1.3 Bad recipient address "
		    "syntax");
		return;
	}

	if ((d = conf_domain(c, at + 1)) != NULL) {
		/* A relay domain has no mailboxes here: all to its host. */
		h = d->type == DOMAIN_RELAY ? &d->forward : &d->local;
		if (!h->set || h->name[0] == '\0') {
			route_set(rr, LOOKUP_TEMPFAIL, 451, "4.3.5 No route "
			    "configured for this domain");
			return;
		}
		rr->rclass = d->type == DOMAIN_RELAY ? ROUTE_FORWARD :
		    ROUTE_LOCAL;
		host_str(h, rr->dest, sizeof(rr->dest));
		route_set(rr, LOOKUP_ACCEPT, 250, "2.1.5 Ok");
		return;
	}

	if (route_trusted(c, client)) {
		rr->rclass = ROUTE_OUTBOUND;
		if (c->outbound.set && c->outbound.name[0] != '\0')
			host_str(&c->outbound, rr->dest, sizeof(rr->dest));
		route_set(rr, LOOKUP_ACCEPT, 250, "2.1.5 Ok");
		return;
	}
	route_set(rr, LOOKUP_REJECT, 550, "5.7.1 Relaying denied");
}

static void
route_set(struct route_result *rr, enum lookup_verdict v, uint32_t code,
    const char *text)
{
	rr->verdict = v;
	rr->code = code;
	strlcpy(rr->text, text, sizeof(rr->text));
}

static int
route_trusted(const struct smx_conf *c, const struct sockaddr *client)
{
	const struct smx_net	*n;

	TAILQ_FOREACH(n, &c->trusted, entry)
		if (net_match(&n->ss, n->prefixlen, client))
			return 1;
	return 0;
}

const char *
route_class_name(enum route_class rc)
{
	switch (rc) {
	case ROUTE_LOCAL:
		return "local";
	case ROUTE_CUSTOM:
		return "custom";
	case ROUTE_FORWARD:
		return "forward";
	case ROUTE_BOUNCE:
		return "bounce";
	case ROUTE_OUTBOUND:
		return "outbound";
	case ROUTE_NONE:
		break;
	}
	return "none";
}
