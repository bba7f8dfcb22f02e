/*
 * DANE for SMTP (RFC 6698, RFC 7671, RFC 7672): does the certificate
 * chain a server presented match one of its usable TLSA records?
 *
 * libtls (Debian's libretls) gives the peer's chain as PEM
 * (tls_peer_cert_chain_pem) and a SHA-256 of the leaf, but neither the
 * SubjectPublicKeyInfo nor a way to verify a chain up to a trust anchor
 * that is not in a CA file, nor to skip the name check for DANE-EE.
 * So the handshake is made without libtls' verification and the chain
 * is checked here with OpenSSL's libcrypto, which libretls is built on:
 * this file is the only one that uses it (also for what an MTA-STS
 * policy in testing mode would have refused).
 */
#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "splitmx.h"
#include "relay.h"

#define DANE_TA		2
#define DANE_EE		3
#define DANE_MAXCHAIN	16	/* certificates looked at */

static STACK_OF(X509) *relay_dane_chain(const uint8_t *, size_t);
static int	relay_dane_cert(const struct relay_tlsa *, X509 *);
static int	relay_dane_verify(X509 *, STACK_OF(X509) *, X509 *,
		    const char **, int, char *, size_t);
static int	relay_dane_bykey(const struct relay_tlsa *, X509 *,
		    STACK_OF(X509) *, const char **, int, char *, size_t);

/* The certificates of a PEM chain, leaf first; NULL if none. */
static STACK_OF(X509) *
relay_dane_chain(const uint8_t *pem, size_t len)
{
	STACK_OF(X509)	*chain;
	BIO		*bio;
	X509		*x;

	if (len > INT32_MAX || (bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return NULL;
	if ((chain = sk_X509_new_null()) == NULL) {
		BIO_free(bio);
		return NULL;
	}
	while (sk_X509_num(chain) < DANE_MAXCHAIN &&
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		if (sk_X509_push(chain, x) == 0) {
			X509_free(x);
			break;
		}
	ERR_clear_error();	/* the end of the data is an "error" */
	BIO_free(bio);
	if (sk_X509_num(chain) == 0) {
		sk_X509_free(chain);
		return NULL;
	}
	return chain;
}

/*
 * Does one certificate match the record: selector 0 is the whole
 * certificate, 1 its SubjectPublicKeyInfo (DER); matching type 0 the
 * data itself, 1 its SHA-256, 2 its SHA-512.
 */
static int
relay_dane_cert(const struct relay_tlsa *t, X509 *x)
{
	unsigned char	*der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen;
	int		 len, ok = 0;

	if (t->selector == 0)
		len = i2d_X509(x, &der);
	else
		len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	if (len <= 0)
		return 0;
	switch (t->mtype) {
	case 0:
		ok = (size_t)len == t->len && memcmp(der, t->data, t->len) == 0;
		break;
	case 1:
	case 2:
		if (EVP_Digest(der, (size_t)len, md, &mdlen, t->mtype == 1 ?
		    EVP_sha256() : EVP_sha512(), NULL) == 1)
			ok = mdlen == t->len && memcmp(md, t->data, mdlen) == 0;
		break;
	}
	OPENSSL_free(der);
	return ok;
}

/*
 * DANE-TA: the chain from the leaf to ta, with ta as the only trust
 * anchor (it need not be self-signed: X509_V_FLAG_PARTIAL_CHAIN), dates
 * checked, and the leaf's name one of the reference identifiers (RFC
 * 7672 §3.2.2: a wildcard only as the whole left-most label).
 */
static int
relay_dane_verify(X509 *leaf, STACK_OF(X509) *chain, X509 *ta,
    const char **names, int nnames, char *why, size_t whylen)
{
	X509_STORE		*store;
	X509_STORE_CTX		*vc = NULL;
	X509_VERIFY_PARAM	*param;
	int			 i, ok = 0;

	if (nnames == 0)
		return 0;
	if ((store = X509_STORE_new()) == NULL ||
	    (vc = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_add_cert(store, ta) != 1 ||
	    X509_STORE_CTX_init(vc, store, leaf, chain) != 1)
		goto done;
	param = X509_STORE_CTX_get0_param(vc);
	X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
	X509_VERIFY_PARAM_set_hostflags(param,
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	X509_STORE_CTX_set_purpose(vc, X509_PURPOSE_SSL_SERVER);
	for (i = 0; i < nnames; i++)
		if ((i == 0 ? X509_VERIFY_PARAM_set1_host(param, names[i], 0) :
		    X509_VERIFY_PARAM_add1_host(param, names[i], 0)) != 1)
			goto done;
	if (X509_verify_cert(vc) == 1)
		ok = 1;
	else
		(void)snprintf(why, whylen, "DANE-TA: %s at depth %d",
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(vc)),
		    X509_STORE_CTX_get_error_depth(vc));
 done:
	X509_STORE_CTX_free(vc);
	X509_STORE_free(store);
	ERR_clear_error();
	return ok;
}

/*
 * "2 1 0": the trust anchor's public key itself, for a server that does
 * not send the TA certificate (RFC 7671 §5.2.2).  Any certificate of the
 * chain that key signed stands for the anchor.
 */
static int
relay_dane_bykey(const struct relay_tlsa *t, X509 *leaf,
    STACK_OF(X509) *chain, const char **names, int nnames, char *why,
    size_t whylen)
{
	const unsigned char	*p = t->data;
	EVP_PKEY		*key;
	X509			*x;
	int			 i, ok = 0;

	if (t->selector != 1 || t->mtype != 0 || t->len > INT32_MAX)
		return 0;
	if ((key = d2i_PUBKEY(NULL, &p, (long)t->len)) == NULL) {
		ERR_clear_error();
		return 0;
	}
	for (i = sk_X509_num(chain) - 1; i >= 0 && !ok; i--) {
		x = sk_X509_value(chain, i);
		if (X509_verify(x, key) == 1)
			ok = relay_dane_verify(leaf, chain, x, names, nnames,
			    why, whylen);
	}
	ERR_clear_error();
	EVP_PKEY_free(key);
	return ok;
}

/*
 * The CA store of a configuration ("ca", or the system's), for the
 * checks libtls does not make itself: an MTA-STS policy in testing
 * mode is reported on, not enforced, so the handshake cannot verify.
 */
X509_STORE *
relay_dane_store(const uint8_t *ca, size_t len)
{
	X509_STORE		*store;
	STACK_OF(X509_INFO)	*infos;
	X509_INFO		*xi;
	BIO			*bio;
	int			 i, n = 0;

	if (ca == NULL || len == 0 || len > INT32_MAX ||
	    (bio = BIO_new_mem_buf(ca, (int)len)) == NULL)
		return NULL;
	infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (infos == NULL || (store = X509_STORE_new()) == NULL) {
		sk_X509_INFO_pop_free(infos, X509_INFO_free);
		ERR_clear_error();
		return NULL;
	}
	for (i = 0; i < sk_X509_INFO_num(infos); i++) {
		xi = sk_X509_INFO_value(infos, i);
		if (xi->x509 != NULL && X509_STORE_add_cert(store,
		    xi->x509) == 1)
			n++;
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	ERR_clear_error();
	if (n == 0) {
		X509_STORE_free(store);
		return NULL;
	}
	return store;
}

void
relay_dane_store_free(X509_STORE *store)
{
	X509_STORE_free(store);
}

/*
 * What a verifying handshake would have said (RFC 8461 §4.2): the chain
 * to the store, the dates, and the name of the MX host.  0 or -1 with
 * why.
 */
int
relay_dane_pkix(const uint8_t *pem, size_t pemlen, X509_STORE *store,
    const char *name, char *why, size_t whylen)
{
	STACK_OF(X509)		*chain;
	X509_STORE_CTX		*vc;
	X509_VERIFY_PARAM	*param;
	int			 ok = -1;

	if (store == NULL) {
		(void)snprintf(why, whylen, "no CA store");
		return -1;
	}
	if ((chain = relay_dane_chain(pem, pemlen)) == NULL) {
		(void)snprintf(why, whylen, "no certificate from the server");
		return -1;
	}
	if ((vc = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(vc, store, sk_X509_value(chain, 0),
	    chain) != 1) {
		(void)snprintf(why, whylen, "cannot verify");
		goto done;
	}
	param = X509_STORE_CTX_get0_param(vc);
	X509_STORE_CTX_set_purpose(vc, X509_PURPOSE_SSL_SERVER);
	if (X509_VERIFY_PARAM_set1_host(param, name, 0) != 1) {
		(void)snprintf(why, whylen, "cannot verify");
		goto done;
	}
	if (X509_verify_cert(vc) == 1)
		ok = 0;
	else
		(void)snprintf(why, whylen, "%s at depth %d",
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(vc)),
		    X509_STORE_CTX_get_error_depth(vc));
 done:
	X509_STORE_CTX_free(vc);
	sk_X509_pop_free(chain, X509_free);
	ERR_clear_error();
	return ok;
}

/*
 * The check: pem is the chain as the server sent it (leaf first), recs
 * its TLSA records, names the reference identifiers for DANE-TA (the
 * MX host name, the next-hop domain).  DANE-EE (RFC 7672 §3.1.1) looks
 * at the leaf alone, without names or dates; DANE-TA (§3.1.2) at a
 * certificate the server sent above the leaf, or one signed by the key
 * of a "2 1 0" record, and checks the chain and the name.  why says
 * which record matched, or the last reason none did.
 */
enum relay_dane
relay_dane_match(const uint8_t *pem, size_t pemlen,
    const struct relay_tlsa *recs, int nrecs, const char **names,
    int nnames, char *why, size_t whylen)
{
	STACK_OF(X509)		*chain;
	const struct relay_tlsa	*t;
	X509			*leaf;
	enum relay_dane		 res = DANE_NOMATCH;
	int			 i, j, usable = 0;

	(void)snprintf(why, whylen, "no TLSA record matched the "
	    "certificate");
	if ((chain = relay_dane_chain(pem, pemlen)) == NULL) {
		(void)snprintf(why, whylen, "no certificate from the server");
		return DANE_ERROR;
	}
	leaf = sk_X509_value(chain, 0);
	for (i = 0; i < nrecs && res != DANE_MATCH; i++) {
		t = &recs[i];
		if (!tls_tlsa_usable(t->usage, t->selector, t->mtype, t->len))
			continue;
		usable++;
		if (t->usage == DANE_EE) {
			if (relay_dane_cert(t, leaf)) {
				(void)snprintf(why, whylen, "DANE-EE %u %u %u "
				    "matched", t->usage, t->selector, t->mtype);
				res = DANE_MATCH;
			}
			continue;
		}
		for (j = 1; j < sk_X509_num(chain) && res != DANE_MATCH; j++) {
			if (!relay_dane_cert(t, sk_X509_value(chain, j)))
				continue;
			if (relay_dane_verify(leaf, chain,
			    sk_X509_value(chain, j), names, nnames, why,
			    whylen)) {
				(void)snprintf(why, whylen, "DANE-TA %u %u %u "
				    "matched at depth %d", t->usage,
				    t->selector, t->mtype, j);
				res = DANE_MATCH;
			}
		}
		if (res != DANE_MATCH && relay_dane_bykey(t, leaf, chain,
		    names, nnames, why, whylen)) {
			(void)snprintf(why, whylen, "DANE-TA 2 1 0 matched by "
			    "its key");
			res = DANE_MATCH;
		}
	}
	sk_X509_pop_free(chain, X509_free);
	if (usable == 0) {
		(void)snprintf(why, whylen, "no usable TLSA record");
		return DANE_NOUSABLE;
	}
	return res;
}
