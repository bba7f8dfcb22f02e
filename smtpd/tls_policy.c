/*
 * The one order of authenticated outbound TLS (SPEC §11): which check a
 * connection to one MX host gets, and why, from what DNS and MTA-STS
 * said of it.  The relay applies it, splitmxctl lookup shows it.
 */
#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include "splitmx.h"

#define DANE_TA		2	/* RFC 7218 names of the usable usages */
#define DANE_EE		3

static const char *const	 tls_mode_names[TLSM_COUNT] = {
	[TLSM_NONE] =		"none",
	[TLSM_MAY] =		"opportunistic",
	[TLSM_ENCRYPT] =	"encrypt",
	[TLSM_PKIX] =		"pkix",
	[TLSM_STS] =		"mta-sts",
	[TLSM_DANE] =		"dane",
	[TLSM_REFUSE] =		"refuse",
};

const char *
tls_mode_name(enum tls_mode m)
{
	if ((unsigned int)m < TLSM_COUNT)
		return tls_mode_names[m];
	return "none";
}

const char *
tls_mode_verified(enum tls_mode m)
{
	switch (m) {
	case TLSM_DANE:
		return "dane";
	case TLSM_STS:
		return "mta-sts";
	case TLSM_PKIX:
		return "pkix";
	default:
		return "none";
	}
}

/*
 * RFC 7672 §3.1: only DANE-TA(2) and DANE-EE(3) are for SMTP; PKIX-TA
 * and PKIX-EE (0, 1) and unknown selectors or matching types are
 * unusable, and so is a digest of the wrong length (it can never match:
 * counting it usable would defer mail that its other records let go).
 */
int
tls_tlsa_usable(uint8_t usage, uint8_t selector, uint8_t mtype, size_t len)
{
	if (usage != DANE_TA && usage != DANE_EE)
		return 0;
	if (selector > 1)
		return 0;
	switch (mtype) {
	case 0:
		return len > 0;
	case 1:
		return len == 32;
	case 2:
		return len == 64;
	}
	return 0;
}

/*
 * DANE first (only the dane policies ask for TLSA records, and only
 * when the MX host's records are DNSSEC-secure), then an MTA-STS policy
 * (any policy but none), then the configured policy.  A host the order
 * rules out is TLSM_REFUSE: the delivery goes on to the next MX host,
 * and is deferred when none is left, never sent in clear.
 */
enum tls_mode
tls_policy_decide(enum smx_tls tls, const char *host,
    const struct tls_host *h, int *testing, char *why, size_t whylen)
{
	int	 dane = tls == TLSP_DANE || tls == TLSP_DANE_ONLY;
	int	 unusable_tlsa = 0;

	*testing = 0;
	if (tls == TLSP_NONE) {
		(void)snprintf(why, whylen, "tls none: no STARTTLS");
		return TLSM_NONE;
	}
	if (dane) {
		switch (h->tlsa) {
		case TLSA_FAILED:
			(void)snprintf(why, whylen, "TLSA lookup for %s "
			    "failed (%s): the host is not used", host,
			    h->tlsa_error != NULL && *h->tlsa_error ?
			    h->tlsa_error : "no answer");
			return TLSM_REFUSE;
		case TLSA_FOUND:
			if (h->nusable > 0) {
				(void)snprintf(why, whylen, "%d usable TLSA "
				    "record%s of %d, DNSSEC-validated",
				    h->nusable, h->nusable == 1 ? "" : "s",
				    h->ntlsa);
				return TLSM_DANE;
			}
			unusable_tlsa = 1;
			break;
		case TLSA_NONE:
		case TLSA_UNASKED:
		case TLSA_STATE_COUNT:
			break;
		}
		if (tls == TLSP_DANE_ONLY) {
			(void)snprintf(why, whylen, "tls dane-only: %s",
			    unusable_tlsa ? "no usable TLSA record (usages "
			    "0 and 1 are not for SMTP)" : h->secure ?
			    "no TLSA record" : "MX or address records not "
			    "DNSSEC-signed, no TLSA lookup");
			return TLSM_REFUSE;
		}
	}
	if (h->sts == STS_ENFORCE) {
		if (!h->sts_match) {
			(void)snprintf(why, whylen, "MTA-STS policy (enforce) "
			    "does not list %s as an MX host", host);
			return TLSM_REFUSE;
		}
		(void)snprintf(why, whylen, "MTA-STS policy (enforce) lists "
		    "%s%s", host, dane ? unusable_tlsa ? "; TLSA records "
		    "all unusable" : "; no DANE (no validated TLSA record)" :
		    "");
		return TLSM_STS;
	}
	*testing = h->sts == STS_TESTING;
	if (unusable_tlsa) {
		(void)snprintf(why, whylen, "TLSA records all unusable: "
		    "encryption required, not authenticated%s",
		    *testing ? "; MTA-STS policy in testing mode" : "");
		return TLSM_ENCRYPT;
	}
	switch (tls) {
	case TLSP_REQUIRE:
		(void)snprintf(why, whylen, "tls require%s", *testing ?
		    "; MTA-STS policy in testing mode" : "");
		return TLSM_ENCRYPT;
	case TLSP_VERIFY:
		(void)snprintf(why, whylen, "tls verify%s", *testing ?
		    "; MTA-STS policy in testing mode" : "");
		return TLSM_PKIX;
	case TLSP_DANE:
		(void)snprintf(why, whylen, "tls dane: %s, %s",
		    !h->secure ? "MX or address records not DNSSEC-signed" :
		    "no TLSA record", *testing ? "MTA-STS policy in testing "
		    "mode: opportunistic" : "no MTA-STS policy: "
		    "opportunistic");
		return TLSM_MAY;
	default:
		(void)snprintf(why, whylen, "tls opportunistic%s", *testing ?
		    "; MTA-STS policy in testing mode" : "");
		return TLSM_MAY;
	}
}
