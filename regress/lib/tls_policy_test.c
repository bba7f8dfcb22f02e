/*
 * Unit tests of smtpd/tls_policy.c: the one order of outbound TLS
 * (DANE, then MTA-STS, then the configured policy) for every kind of
 * answer DNS and MTA-STS can give about an MX host.  TAP output.
 */
#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include "splitmx.h"
#include "tap.h"

struct policy_case {
	enum smx_tls	 tls;
	int		 secure;
	enum tlsa_state	 tlsa;
	int		 nusable;
	enum sts_mode	 sts;
	int		 match;
	enum tls_mode	 want;
	int		 testing;
	const char	*why;		/* a part of the reason */
	const char	*what;
};

static const struct policy_case cases[] = {
	{ TLSP_NONE, 1, TLSA_FOUND, 1, STS_ENFORCE, 1, TLSM_NONE, 0,
	    "tls none", "none is none, whatever is published" },
	{ TLSP_DANE, 1, TLSA_FOUND, 1, STS_NONE, 0, TLSM_DANE, 0,
	    "1 usable TLSA record", "dane with a usable record" },
	{ TLSP_DANE, 1, TLSA_FOUND, 2, STS_ENFORCE, 0, TLSM_DANE, 0,
	    "2 usable TLSA records", "DANE comes before MTA-STS" },
	{ TLSP_DANE, 1, TLSA_FAILED, 0, STS_ENFORCE, 1, TLSM_REFUSE, 0,
	    "TLSA lookup for mx.x.example failed (bogus)",
	    "a failed TLSA lookup rules the host out" },
	{ TLSP_DANE, 1, TLSA_FOUND, 0, STS_NONE, 0, TLSM_ENCRYPT, 0,
	    "TLSA records all unusable", "unusable records: encryption" },
	{ TLSP_DANE, 1, TLSA_FOUND, 0, STS_ENFORCE, 1, TLSM_STS, 0,
	    "TLSA records all unusable",
	    "unusable records, MTA-STS policy: MTA-STS" },
	{ TLSP_DANE, 1, TLSA_NONE, 0, STS_NONE, 0, TLSM_MAY, 0,
	    "no TLSA record", "dane without TLSA: opportunistic" },
	{ TLSP_DANE, 0, TLSA_UNASKED, 0, STS_NONE, 0, TLSM_MAY, 0,
	    "not DNSSEC-signed", "dane in an unsigned zone: opportunistic" },
	{ TLSP_DANE, 0, TLSA_UNASKED, 0, STS_ENFORCE, 1, TLSM_STS, 0,
	    "MTA-STS policy (enforce) lists mx.x.example",
	    "dane in an unsigned zone with MTA-STS: MTA-STS" },
	{ TLSP_DANE, 0, TLSA_UNASKED, 0, STS_ENFORCE, 0, TLSM_REFUSE, 0,
	    "does not list mx.x.example", "MTA-STS: an MX not listed" },
	{ TLSP_DANE, 0, TLSA_UNASKED, 0, STS_TESTING, 0, TLSM_MAY, 1,
	    "testing mode", "MTA-STS testing: opportunistic, reported" },
	{ TLSP_DANE_ONLY, 1, TLSA_FOUND, 1, STS_NONE, 0, TLSM_DANE, 0,
	    "usable TLSA", "dane-only with a usable record" },
	{ TLSP_DANE_ONLY, 1, TLSA_NONE, 0, STS_ENFORCE, 1, TLSM_REFUSE, 0,
	    "tls dane-only: no TLSA record", "dane-only without TLSA" },
	{ TLSP_DANE_ONLY, 0, TLSA_UNASKED, 0, STS_NONE, 0, TLSM_REFUSE, 0,
	    "not DNSSEC-signed", "dane-only in an unsigned zone" },
	{ TLSP_DANE_ONLY, 1, TLSA_FOUND, 0, STS_NONE, 0, TLSM_REFUSE, 0,
	    "no usable TLSA record", "dane-only with unusable records" },
	{ TLSP_DANE_ONLY, 1, TLSA_FAILED, 0, STS_NONE, 0, TLSM_REFUSE, 0,
	    "failed", "dane-only, TLSA lookup failed" },
	{ TLSP_OPPORTUNISTIC, 1, TLSA_UNASKED, 0, STS_NONE, 0, TLSM_MAY, 0,
	    "tls opportunistic", "opportunistic" },
	{ TLSP_OPPORTUNISTIC, 1, TLSA_UNASKED, 0, STS_ENFORCE, 1, TLSM_STS,
	    0, "enforce", "opportunistic with MTA-STS enforce" },
	{ TLSP_OPPORTUNISTIC, 1, TLSA_UNASKED, 0, STS_TESTING, 1, TLSM_MAY,
	    1, "testing", "opportunistic with MTA-STS testing" },
	{ TLSP_REQUIRE, 0, TLSA_UNASKED, 0, STS_NONE, 0, TLSM_ENCRYPT, 0,
	    "tls require", "require" },
	{ TLSP_REQUIRE, 0, TLSA_UNASKED, 0, STS_ENFORCE, 1, TLSM_STS, 0,
	    "enforce", "require with MTA-STS enforce: verified" },
	{ TLSP_VERIFY, 0, TLSA_UNASKED, 0, STS_NONE, 0, TLSM_PKIX, 0,
	    "tls verify", "verify" },
	{ TLSP_VERIFY, 0, TLSA_UNASKED, 0, STS_TESTING, 0, TLSM_PKIX, 1,
	    "testing", "verify with MTA-STS testing" },
};

#define NCASES	(sizeof(cases) / sizeof(cases[0]))

int
main(void)
{
	const struct policy_case	*c;
	struct tls_host			 h;
	enum tls_mode			 m;
	char				 why[512];
	size_t				 i;
	int				 testing;

	plan((int)NCASES + 4);
	for (i = 0; i < NCASES; i++) {
		c = &cases[i];
		memset(&h, 0, sizeof(h));
		h.secure = c->secure;
		h.tlsa = c->tlsa;
		h.ntlsa = c->tlsa == TLSA_FOUND ? (c->nusable ? c->nusable : 1) :
		    0;
		h.nusable = c->nusable;
		h.tlsa_error = "bogus";
		h.sts = c->sts;
		h.sts_match = c->match;
		m = tls_policy_decide(c->tls, "mx.x.example", &h, &testing, why,
		    sizeof(why));
		ok(m == c->want && testing == c->testing &&
		    strstr(why, c->why) != NULL, "%s: %s (%s)", c->what,
		    tls_mode_name(m), why);
	}
	ok(strcmp(tls_mode_verified(TLSM_DANE), "dane") == 0 &&
	    strcmp(tls_mode_verified(TLSM_STS), "mta-sts") == 0 &&
	    strcmp(tls_mode_verified(TLSM_PKIX), "pkix") == 0 &&
	    strcmp(tls_mode_verified(TLSM_ENCRYPT), "none") == 0,
	    "what each mode verifies");
	ok(strcmp(tls_policy_name(TLSP_DANE_ONLY), "dane-only") == 0 &&
	    strcmp(tls_policy_name(TLSP_DANE), "dane") == 0,
	    "the policies' names");
	/* The order of strictness the queue uses (splitmx.h). */
	ok(TLSP_NONE < TLSP_OPPORTUNISTIC && TLSP_OPPORTUNISTIC < TLSP_DANE &&
	    TLSP_DANE < TLSP_REQUIRE && TLSP_REQUIRE < TLSP_VERIFY &&
	    TLSP_VERIFY < TLSP_DANE_ONLY, "the order of the policies");
	ok(strcmp(tls_mode_name(TLSM_REFUSE), "refuse") == 0 &&
	    strcmp(tls_mode_name((enum tls_mode)99), "none") == 0,
	    "mode names, and one out of range");
	return done();
}
