/*
 * Unit tests of relay/relay_dane.c, the TLSA matcher: certificates and
 * chains are made here with libcrypto (a root, an intermediate, leaves,
 * a stranger), the records from them, and each case is checked against
 * what RFC 7671 and RFC 7672 say.  TAP output.
 */
#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "splitmx.h"
#include "../../relay/relay.h"
#include "tap.h"

#define NTESTS	33

struct pair {
	EVP_PKEY	*key;
	X509		*cert;
};

static struct pair	 mkpair(const char *, const char *, struct pair *,
			    int, long);
static void		 freepair(struct pair *);
static char		*pem(size_t *, ...);
static struct relay_tlsa rec(uint8_t, uint8_t, uint8_t, X509 *);
static void		 freerec(struct relay_tlsa *);
static enum relay_dane	 check(const char *, size_t, struct relay_tlsa *,
			    int, const char *, const char *, char *, size_t);

/*
 * A key and a certificate for cn: san (a DNS name, or NULL), signed by
 * issuer (NULL: itself), a CA or not, valid from now + from seconds for
 * a day (from < 0 makes it expired).
 */
static struct pair
mkpair(const char *cn, const char *san, struct pair *issuer, int ca,
    long from)
{
	static long	 serial = 1;
	struct pair	 p;
	X509_NAME	*name;
	X509_EXTENSION	*ext;
	X509V3_CTX	 v3;
	char		 buf[300];

	if ((p.key = EVP_EC_gen("P-256")) == NULL || (p.cert = X509_new()) ==
	    NULL)
		abort();
	X509_set_version(p.cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(p.cert), serial++);
	X509_gmtime_adj(X509_getm_notBefore(p.cert), from);
	X509_gmtime_adj(X509_getm_notAfter(p.cert), from + 86400);
	X509_set_pubkey(p.cert, p.key);
	name = X509_get_subject_name(p.cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(p.cert, issuer != NULL ?
	    X509_get_subject_name(issuer->cert) : name);
	X509V3_set_ctx(&v3, issuer != NULL ? issuer->cert : p.cert, p.cert,
	    NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
	    ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(p.cert, ext, -1);
	X509_EXTENSION_free(ext);
	if (ca) {
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage,
		    "critical,keyCertSign,cRLSign");
		X509_add_ext(p.cert, ext, -1);
		X509_EXTENSION_free(ext);
	}
	if (san != NULL) {
		(void)snprintf(buf, sizeof(buf), "DNS:%s", san);
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, buf);
		X509_add_ext(p.cert, ext, -1);
		X509_EXTENSION_free(ext);
	}
	if (X509_sign(p.cert, issuer != NULL ? issuer->key : p.key,
	    EVP_sha256()) == 0)
		abort();
	return p;
}

static void
freepair(struct pair *p)
{
	X509_free(p->cert);
	EVP_PKEY_free(p->key);
}

/* The certificates, NULL-terminated, as one PEM chain (malloc'd). */
static char *
pem(size_t *len, ...)
{
	va_list	 ap;
	BIO	*bio;
	X509	*x;
	char	*data, *out;
	long	 n;

	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		abort();
	va_start(ap, len);
	while ((x = va_arg(ap, X509 *)) != NULL)
		PEM_write_bio_X509(bio, x);
	va_end(ap);
	n = BIO_get_mem_data(bio, &data);
	if ((out = malloc((size_t)n + 1)) == NULL)
		abort();
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	*len = (size_t)n;
	BIO_free(bio);
	return out;
}

/* The record "usage selector mtype" for a certificate. */
static struct relay_tlsa
rec(uint8_t usage, uint8_t selector, uint8_t mtype, X509 *x)
{
	struct relay_tlsa	 t;
	unsigned char		*der = NULL;
	unsigned int		 mdlen;
	int			 len;

	t.usage = usage;
	t.selector = selector;
	t.mtype = mtype;
	len = selector == 0 ? i2d_X509(x, &der) :
	    i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	if (len <= 0 || (t.data = malloc(EVP_MAX_MD_SIZE + (size_t)len)) ==
	    NULL)
		abort();
	if (mtype == 0) {
		memcpy(t.data, der, (size_t)len);
		t.len = (size_t)len;
	} else {
		EVP_Digest(der, (size_t)len, t.data, &mdlen, mtype == 1 ?
		    EVP_sha256() : EVP_sha512(), NULL);
		t.len = mdlen;
	}
	OPENSSL_free(der);
	return t;
}

static void
freerec(struct relay_tlsa *t)
{
	free(t->data);
}

static enum relay_dane
check(const char *chain, size_t len, struct relay_tlsa *recs, int n,
    const char *name1, const char *name2, char *why, size_t whylen)
{
	const char	*names[2];
	int		 nn = 0;

	if (name1 != NULL)
		names[nn++] = name1;
	if (name2 != NULL)
		names[nn++] = name2;
	return relay_dane_match((const uint8_t *)chain, len, recs, n, names,
	    nn, why, whylen);
}

int
main(void)
{
	struct pair		 root, inter, leaf, ileaf, stranger, old, wild;
	struct relay_tlsa	 r[4];
	char			*c_leaf, *c_root, *c_noroot, *c_inter, *c_old;
	char			*c_wild, *c_stranger;
	char			 why[256];
	size_t			 l_leaf, l_root, l_noroot, l_inter, l_old;
	size_t			 l_wild, l_stranger;
	enum relay_dane		 res;

	plan(NTESTS);
	root = mkpair("Test Root", NULL, NULL, 1, -60);
	inter = mkpair("Test Intermediate", NULL, &root, 1, -60);
	leaf = mkpair("mx.dane.example", "mx.dane.example", &root, 0, -60);
	ileaf = mkpair("mx.dane.example", "mx.dane.example", &inter, 0, -60);
	stranger = mkpair("stranger.example", "stranger.example", NULL, 0,
	    -60);
	old = mkpair("mx.dane.example", "mx.dane.example", &root, 0,
	    -3 * 86400);
	wild = mkpair("wildcard", "*.dane.example", &root, 0, -60);
	c_leaf = pem(&l_leaf, leaf.cert, NULL);
	c_root = pem(&l_root, leaf.cert, root.cert, NULL);
	c_noroot = pem(&l_noroot, ileaf.cert, inter.cert, NULL);
	c_inter = pem(&l_inter, ileaf.cert, inter.cert, root.cert, NULL);
	c_old = pem(&l_old, old.cert, root.cert, NULL);
	c_wild = pem(&l_wild, wild.cert, root.cert, NULL);
	c_stranger = pem(&l_stranger, stranger.cert, NULL);

	/* DANE-EE: the leaf alone, every selector and matching type. */
	r[0] = rec(3, 1, 1, leaf.cert);
	ok(check(c_leaf, l_leaf, r, 1, NULL, NULL, why, sizeof(why)) ==
	    DANE_MATCH && strcmp(why, "DANE-EE 3 1 1 matched") == 0,
	    "3 1 1 matches the leaf (%s)", why);
	freerec(&r[0]);
	r[0] = rec(3, 0, 1, leaf.cert);
	ok(check(c_leaf, l_leaf, r, 1, NULL, NULL, why, sizeof(why)) ==
	    DANE_MATCH, "3 0 1 matches the leaf");
	freerec(&r[0]);
	r[0] = rec(3, 1, 2, leaf.cert);
	ok(check(c_leaf, l_leaf, r, 1, NULL, NULL, why, sizeof(why)) ==
	    DANE_MATCH, "3 1 2 (SHA-512) matches the leaf");
	freerec(&r[0]);
	r[0] = rec(3, 1, 0, leaf.cert);
	ok(check(c_leaf, l_leaf, r, 1, NULL, NULL, why, sizeof(why)) ==
	    DANE_MATCH, "3 1 0 (the key itself) matches the leaf");
	freerec(&r[0]);
	r[0] = rec(3, 0, 0, leaf.cert);
	ok(check(c_leaf, l_leaf, r, 1, NULL, NULL, why, sizeof(why)) ==
	    DANE_MATCH, "3 0 0 (the certificate itself) matches the leaf");
	freerec(&r[0]);

	/* DANE-EE: no name, no dates (RFC 7672 §3.1.1). */
	r[0] = rec(3, 1, 1, stranger.cert);
	ok(check(c_stranger, l_stranger, r, 1, "mx.dane.example", NULL, why,
	    sizeof(why)) == DANE_MATCH, "3 1 1 ignores the certificate's name");
	freerec(&r[0]);
	r[0] = rec(3, 1, 1, old.cert);
	ok(check(c_old, l_old, r, 1, NULL, NULL, why, sizeof(why)) ==
	    DANE_MATCH, "3 1 1 ignores an expired certificate's dates");
	freerec(&r[0]);

	/* Mismatches. */
	r[0] = rec(3, 1, 1, stranger.cert);
	res = check(c_leaf, l_leaf, r, 1, NULL, NULL, why, sizeof(why));
	ok(res == DANE_NOMATCH && strcmp(why, "no TLSA record matched the "
	    "certificate") == 0, "3 1 1 of another certificate: no match");
	r[1] = rec(3, 1, 1, leaf.cert);
	ok(check(c_leaf, l_leaf, r, 2, NULL, NULL, why, sizeof(why)) ==
	    DANE_MATCH, "a record set with one matching record matches");
	freerec(&r[0]);
	freerec(&r[1]);
	r[0] = rec(3, 1, 1, root.cert);
	ok(check(c_root, l_root, r, 1, NULL, NULL, why, sizeof(why)) ==
	    DANE_NOMATCH, "DANE-EE looks at the leaf only, not the chain");
	freerec(&r[0]);

	/* DANE-TA: a certificate the server sent, chain and name. */
	r[0] = rec(2, 0, 1, root.cert);
	ok(check(c_root, l_root, r, 1, "mx.dane.example", NULL, why,
	    sizeof(why)) == DANE_MATCH && strcmp(why, "DANE-TA 2 0 1 matched "
	    "at depth 1") == 0, "2 0 1 of the root the server sent (%s)", why);
	ok(check(c_root, l_root, r, 1, "other.example", NULL, why,
	    sizeof(why)) == DANE_NOMATCH && strstr(why, "hostname mismatch") !=
	    NULL, "2 0 1 with another name: no match (%s)", why);
	ok(check(c_root, l_root, r, 1, "other.example", "mx.dane.example",
	    why, sizeof(why)) == DANE_MATCH,
	    "the second reference identifier (the next-hop domain) counts");
	ok(check(c_root, l_root, r, 1, NULL, NULL, why, sizeof(why)) ==
	    DANE_NOMATCH, "DANE-TA without a reference name: no match");
	ok(check(c_leaf, l_leaf, r, 1, "mx.dane.example", NULL, why,
	    sizeof(why)) == DANE_NOMATCH,
	    "2 0 1 of a root the server did not send: no match");
	freerec(&r[0]);
	r[0] = rec(2, 1, 1, root.cert);
	ok(check(c_root, l_root, r, 1, "mx.dane.example", NULL, why,
	    sizeof(why)) == DANE_MATCH, "2 1 1 of the root's key");
	freerec(&r[0]);
	r[0] = rec(2, 1, 0, root.cert);
	ok(check(c_leaf, l_leaf, r, 1, "mx.dane.example", NULL, why,
	    sizeof(why)) == DANE_MATCH && strcmp(why, "DANE-TA 2 1 0 matched "
	    "by its key") == 0, "2 1 0: the root's key, the root not sent");
	ok(check(c_stranger, l_stranger, r, 1, "stranger.example", NULL, why,
	    sizeof(why)) == DANE_NOMATCH,
	    "2 1 0 of a key that signed nothing sent: no match");
	freerec(&r[0]);
	r[0] = rec(2, 0, 1, inter.cert);
	ok(check(c_noroot, l_noroot, r, 1, "mx.dane.example", NULL, why,
	    sizeof(why)) == DANE_MATCH,
	    "2 0 1 of an intermediate: the chain stops there");
	ok(check(c_inter, l_inter, r, 1, "mx.dane.example", NULL, why,
	    sizeof(why)) == DANE_MATCH,
	    "2 0 1 of an intermediate with the root sent too");
	freerec(&r[0]);
	r[0] = rec(2, 0, 1, leaf.cert);
	ok(check(c_root, l_root, r, 1, "mx.dane.example", NULL, why,
	    sizeof(why)) == DANE_NOMATCH,
	    "2 0 1 of the leaf itself is not a trust anchor");
	freerec(&r[0]);
	r[0] = rec(2, 0, 1, root.cert);
	ok(check(c_old, l_old, r, 1, "mx.dane.example", NULL, why,
	    sizeof(why)) == DANE_NOMATCH && strstr(why, "expired") != NULL,
	    "DANE-TA checks the dates (%s)", why);
	ok(check(c_wild, l_wild, r, 1, "mx.dane.example", NULL, why,
	    sizeof(why)) == DANE_MATCH,
	    "*.dane.example is valid for mx.dane.example");
	ok(check(c_wild, l_wild, r, 1, "a.mx.dane.example", NULL, why,
	    sizeof(why)) == DANE_NOMATCH,
	    "*.dane.example is not valid for a.mx.dane.example");
	ok(check(c_wild, l_wild, r, 1, "dane.example", NULL, why,
	    sizeof(why)) == DANE_NOMATCH,
	    "*.dane.example is not valid for dane.example");
	freerec(&r[0]);

	/* Unusable records (RFC 7672 §3.1), and what is not a chain. */
	r[0] = rec(1, 1, 1, leaf.cert);
	r[1] = rec(0, 0, 1, root.cert);
	ok(check(c_root, l_root, r, 2, "mx.dane.example", NULL, why,
	    sizeof(why)) == DANE_NOUSABLE, "usages 0 and 1 are unusable");
	freerec(&r[0]);
	freerec(&r[1]);
	r[0] = rec(3, 1, 1, leaf.cert);
	r[0].len = 31;
	ok(check(c_leaf, l_leaf, r, 1, NULL, NULL, why, sizeof(why)) ==
	    DANE_NOUSABLE, "a SHA-256 of 31 octets is unusable");
	r[0].len = 32;
	r[0].selector = 2;
	ok(check(c_leaf, l_leaf, r, 1, NULL, NULL, why, sizeof(why)) ==
	    DANE_NOUSABLE, "selector 2 is unusable");
	r[0].selector = 1;
	r[0].mtype = 3;
	ok(check(c_leaf, l_leaf, r, 1, NULL, NULL, why, sizeof(why)) ==
	    DANE_NOUSABLE, "matching type 3 is unusable");
	r[0].mtype = 1;
	ok(check("garbage", 7, r, 1, NULL, NULL, why, sizeof(why)) ==
	    DANE_ERROR, "no certificate in the chain: an error");
	ok(check(c_leaf, l_leaf / 2, r, 1, NULL, NULL, why, sizeof(why)) ==
	    DANE_ERROR, "half a certificate: an error");
	ok(check(c_leaf, l_leaf, r, 0, NULL, NULL, why, sizeof(why)) ==
	    DANE_NOUSABLE, "no record at all: nothing usable");
	freerec(&r[0]);
	ok(tls_tlsa_usable(3, 0, 2, 64) && tls_tlsa_usable(2, 1, 0, 91) &&
	    !tls_tlsa_usable(2, 1, 0, 0) && !tls_tlsa_usable(4, 1, 1, 32),
	    "tls_tlsa_usable: lengths, usages");

	free(c_leaf);
	free(c_root);
	free(c_noroot);
	free(c_inter);
	free(c_old);
	free(c_wild);
	free(c_stranger);
	freepair(&root);
	freepair(&inter);
	freepair(&leaf);
	freepair(&ileaf);
	freepair(&stranger);
	freepair(&old);
	freepair(&wild);
	return done();
}
