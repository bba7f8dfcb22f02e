/*
 * Unit tests of lookup/route.c with file tables (lookup/table.c): the
 * order of the directory lookups, custom chains and their limits, the
 * domain types and unknown policies, the loop check, the destination's
 * TLS policy in the result.  TAP output.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmx.h"
#include "../../lookup/lookup.h"
#include "tap.h"

#define NTESTS	31

struct answer {
	int			 done;
	struct route_result	 rr;
	char			 decision[SMX_ADDRSZ + 64];
	int			 nsteps;
};

struct rcase {
	const char	*rcpt;
	const char	*client;	/* NULL: none (splitmxctl) */
	uint32_t	 code;
	enum route_class rclass;
	const char	*rewritten;
	const char	*dest;
	const char	*decision;
};

static const char	*directory =
	"alice@example.com local\n"
	"alice+x@example.com custom x@notes.example.com\n"
	"bob@example.com custom bob@notes.example.com\n"
	"carol@example.com custom\n"
	"@sales.example.com local\n"
	"loopa@example.com custom loopb+x@example.com\n"
	"loopb@example.com custom loopa@example.com\n"
	"c0@example.com custom c1+d@example.com\n"
	"c1@example.com custom c2+d@example.com\n"
	"c2@example.com custom c3+d@example.com\n"
	"c3@example.com custom c4+d@example.com\n"
	"c4@example.com custom c5+d@example.com\n"
	"c5@example.com custom c6+d@example.com\n"
	"c6@example.com custom c7+d@example.com\n"
	"c7@example.com custom c8+d@example.com\n"
	"c8@example.com custom c9+d@example.com\n"
	"c9@example.com local\n"
	"amy@auth.example local\n"
	"al@auth.example custom\n"
	"ann@auth.example custom ann@outside.example\n"
	"abe@auth.example custom ghost@example.com\n"
	"ax@auth.example custom nobody@auth.example\n";

static const char	*config =
	"hostname \"mx.test.example\"\n"
	"listen on 127.0.0.1 port 2525\n"
	"trusted 192.0.2.0/24\n"
	"table people file \"%s\"\n"
	"domain \"example.com\" {\n type shared\n directory people\n"
	" local to \"[10.0.0.1]\" tls verify\n"
	" forward to \"[10.0.0.2]:2525\" tls require\n"
	" unknown forward\n forward from 10.9.0.0/16\n}\n"
	"domain \".sales.example.com\" {\n type shared\n directory people\n"
	" local to \"[10.0.0.1]\"\n forward to \"[10.0.0.2]\"\n}\n"
	"domain \"auth.example\" {\n type authoritative\n directory people\n"
	" local to \"[10.0.0.3]\"\n unknown bounce\n}\n"
	"domain \"notes.example.com\" {\n type relay\n"
	" forward to \"[10.0.0.4]\"\n}\n"
	"outbound via \"[10.0.0.5]:587\" tls none\n";

static const struct rcase	 cases[] = {
	{ "alice@example.com", NULL, 250, ROUTE_LOCAL, "", "[10.0.0.1]",
	    "local" },
	/* The exact address before the one without the detail. */
	{ "alice+x@example.com", NULL, 250, ROUTE_CUSTOM,
	    "x@notes.example.com", "[10.0.0.2]:2525",
	    "custom -> x@notes.example.com" },
	{ "Alice+Y@Example.COM.", NULL, 250, ROUTE_LOCAL, "", "[10.0.0.1]",
	    "local" },
	{ "bob+z@example.com", NULL, 250, ROUTE_CUSTOM,
	    "bob@notes.example.com", "[10.0.0.2]:2525",
	    "custom -> bob@notes.example.com" },
	{ "carol@example.com", NULL, 250, ROUTE_CUSTOM, "", "[10.0.0.2]:2525",
	    "custom (keeps its address)" },
	{ "x@sales.example.com", NULL, 250, ROUTE_LOCAL, "", "[10.0.0.1]",
	    "local" },
	{ "x@a.sales.example.com", NULL, 550, ROUTE_NONE, "", "",
	    "unknown -> reject" },
	{ "loopa@example.com", NULL, 550, ROUTE_NONE, "", "",
	    "custom chain loops" },
	{ "c1@example.com", NULL, 250, ROUTE_LOCAL, "c9+d@example.com",
	    "[10.0.0.1]", "custom -> c9+d@example.com (local mailbox)" },
	{ "c0@example.com", NULL, 550, ROUTE_NONE, "", "",
	    "custom chain too long" },
	{ "nobody@example.com", "198.51.100.7", 250, ROUTE_FORWARD, "",
	    "[10.0.0.2]:2525", "unknown -> forward" },
	{ "nobody@example.com", "10.0.0.2", 550, ROUTE_NONE, "", "",
	    "unknown -> forward refused (loop)" },
	{ "nobody@example.com", "10.9.3.4", 550, ROUTE_NONE, "", "",
	    "unknown -> forward refused (loop)" },
	{ "alice@example.com", "10.0.0.2", 250, ROUTE_LOCAL, "",
	    "[10.0.0.1]", "local" },
	{ "amy@auth.example", NULL, 250, ROUTE_LOCAL, "", "[10.0.0.3]",
	    "local" },
	{ "al@auth.example", NULL, 550, ROUTE_NONE, "", "",
	    "custom without a target -> loop" },
	{ "ann@auth.example", NULL, 250, ROUTE_CUSTOM, "ann@outside.example",
	    "[10.0.0.5]:587", "custom -> ann@outside.example" },
	/* Routed by the target's domain: unknown there, its policy. */
	{ "abe@auth.example", "198.51.100.7", 250, ROUTE_FORWARD,
	    "ghost@example.com", "[10.0.0.2]:2525", "unknown -> forward" },
	{ "ax@auth.example", NULL, 250, ROUTE_BOUNCE, "nobody@auth.example",
	    "", "unknown -> bounce" },
	{ "y@notes.example.com", NULL, 250, ROUTE_FORWARD, "", "[10.0.0.4]",
	    "relay -> forward" },
	{ "x@outside.example", "198.51.100.7", 550, ROUTE_NONE, "", "",
	    "not ours -> relaying denied" },
	{ "x@outside.example", "192.0.2.9", 250, ROUTE_OUTBOUND, "",
	    "[10.0.0.5]:587", "outbound" },
	{ "no-domain", NULL, 501, ROUTE_NONE, "", "", "invalid address" },
};

static const struct {
	const char	*rcpt;
	enum smx_tls	 tls;
} tlscases[] = {
	{ "alice@example.com", TLSP_VERIFY },		/* local to */
	{ "bob+z@example.com", TLSP_REQUIRE },		/* forward to */
	{ "x@sales.example.com", TLSP_OPPORTUNISTIC },	/* same host */
	{ "ann@auth.example", TLSP_NONE },		/* outbound via */
	{ "x@notes.example.com", TLSP_OPPORTUNISTIC }	/* relay */
};

static void	answer_cb(const struct route_result *,
		    const struct route_explain *, void *);
static int	write_file(const char *, const char *);

static void
answer_cb(const struct route_result *rr, const struct route_explain *ex,
    void *arg)
{
	struct answer	*a = arg;

	a->done++;
	a->rr = *rr;
	strlcpy(a->decision, ex->decision, sizeof(a->decision));
	a->nsteps = ex->nsteps;
}

static int
write_file(const char *path, const char *text)
{
	FILE	*f;

	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -1;
}

int
main(void)
{
	char			 dir[] = "/tmp/route_test.XXXXXX";
	char			 dpath[PATH_MAX], cpath[PATH_MAX], buf[4096];
	char			*wbuf = NULL;
	size_t			 wlen = 0, i;
	struct smx_conf		*c;
	struct lookup_gen	*gen;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	struct answer		 a;
	const struct rcase	*rc;
	FILE			*warnfp;

	plan(NTESTS);
	log_init(1, 0);
	if ((env->evbase = event_init()) == NULL)
		return 1;
	if (mkdtemp(dir) == NULL ||
	    snprintf(dpath, sizeof(dpath), "%s/directory", dir) < 0 ||
	    snprintf(cpath, sizeof(cpath), "%s/splitmx.conf", dir) < 0 ||
	    snprintf(buf, sizeof(buf), config, dpath) >= (int)sizeof(buf) ||
	    write_file(dpath, directory) == -1 ||
	    write_file(cpath, buf) == -1)
		return 1;

	c = parse_config(cpath, stderr);
	ok(c != NULL, "configuration parsed");
	if (c == NULL)
		return 1;
	if ((warnfp = open_memstream(&wbuf, &wlen)) == NULL ||
	    (gen = calloc(1, sizeof(*gen))) == NULL)
		return 1;
	gen->conf = c;
	gen->refs = 1;
	gen->owns_conf = 1;
	if ((gen->tables = table_set_open(c, 0, NULL, stderr)) != NULL)
		route_check(c, gen->tables, warnfp);
	fclose(warnfp);
	ok(gen->tables != NULL && table_count(gen->tables->tables[0]) == 22,
	    "directory loaded");
	if (gen->tables == NULL)
		return 1;
	/* Two warnings: al (authoritative, no target), abe (ghost). */
	ok(wbuf != NULL && strstr(wbuf, "al@auth.example has no target") &&
	    strstr(wbuf, "abe@auth.example: target ghost@example.com") &&
	    strstr(wbuf + strlen(wbuf) - 1, "\n"), "the two warnings");
	free(wbuf);
	route_fwd_update(c);

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = &cases[i];
		memset(&a, 0, sizeof(a));
		if (rc->client != NULL &&
		    parse_sockaddr(rc->client, 25, &ss, &sslen) == -1)
			return 1;
		route_start(gen, rc->client ? (struct sockaddr *)&ss : NULL,
		    rc->rcpt, 1, answer_cb, &a);
		ok(a.done == 1 && a.rr.code == rc->code &&
		    a.rr.rclass == rc->rclass &&
		    strcmp(a.rr.rewritten, rc->rewritten) == 0 &&
		    strcmp(a.rr.dest, rc->dest) == 0 &&
		    strcmp(a.decision, rc->decision) == 0,
		    "%s from %s: %u %s rewritten=<%s> dest=%s \"%s\"",
		    rc->rcpt, rc->client ? rc->client : "splitmxctl",
		    a.rr.code, a.rr.text, a.rr.rewritten, a.rr.dest,
		    a.decision);
	}
	/* The route carries its destination's policy, per domain. */
	for (i = 0; i < sizeof(tlscases) / sizeof(tlscases[0]); i++) {
		memset(&a, 0, sizeof(a));
		route_start(gen, NULL, tlscases[i].rcpt, 1, answer_cb, &a);
		if (a.done != 1 || a.rr.tls != tlscases[i].tls)
			break;
	}
	ok(i == sizeof(tlscases) / sizeof(tlscases[0]),
	    "TLS policy of the destination in the result (%zu)", i);
	ok(gen->refs == 1, "every lookup let go of the configuration");

	/* A chain of 8 exact steps loads, one of 9 does not. */
	if (write_file(dpath, "u0@example.com custom u1@example.com\n"
	    "u1@example.com custom u2@example.com\n"
	    "u2@example.com custom u3@example.com\n"
	    "u3@example.com custom u4@example.com\n"
	    "u4@example.com custom u5@example.com\n"
	    "u5@example.com custom u6@example.com\n"
	    "u6@example.com custom u7@example.com\n"
	    "u7@example.com custom u8@example.com\n"
	    "u8@example.com local\n") == -1)
		return 1;
	ok(lookup_check_config(c, stderr) == 0, "a chain of 8 steps is fine");
	if (write_file(dpath, "v@example.com custom u0@example.com\n"
	    "u0@example.com custom u1@example.com\n"
	    "u1@example.com custom u2@example.com\n"
	    "u2@example.com custom u3@example.com\n"
	    "u3@example.com custom u4@example.com\n"
	    "u4@example.com custom u5@example.com\n"
	    "u5@example.com custom u6@example.com\n"
	    "u6@example.com custom u7@example.com\n"
	    "u7@example.com custom u8@example.com\n"
	    "u8@example.com local\n") == -1)
		return 1;
	ok(lookup_check_config(c, stderr) == -1, "one of 9 is refused");
	ok(TAILQ_FIRST(&c->tables)->fd == -1, "descriptors closed");

	lookup_gen_unref(gen);
	unlink(dpath);
	unlink(cpath);
	rmdir(dir);
	return tap.failed != 0;
}
