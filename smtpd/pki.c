/*
 * Certificates and keys: the parent reads them with privilege and tries
 * each pair with libtls the way the smtp process will use it, so that a
 * pair that cannot serve STARTTLS is a "FILE:LINE:" error of -n, of the
 * start and of a reload, never a listener that has lost STARTTLS.
 */
#include <sys/types.h>
#include <sys/queue.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>

#include "splitmx.h"

static int	pki_has(const uint8_t *, size_t, const char *);
static void	pki_say(char *, size_t, const char *, ...)
		    __attribute__((__format__ (printf, 3, 4)));

/* Whether the file's text holds s: how PEM labels are told apart. */
static int
pki_has(const uint8_t *buf, size_t len, const char *s)
{
	return buf != NULL && memmem(buf, len, s, strlen(s)) != NULL;
}

static void
pki_say(char *why, size_t len, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	if (vsnprintf(why, len, fmt, ap) < 0)
		strlcpy(why, "cannot be used", len);
	va_end(ap);
}

/*
 * Whether the pair in memory makes a server context, as smtp_gen_tls()
 * makes it: the certificate must be PEM, the key PEM and unencrypted,
 * and the key the certificate's (tls_configure() checks that).  On
 * failure why says which of these is wrong, in words that name the
 * files; libtls' own text is kept for the case we cannot tell.
 */
int
pki_check(const struct smx_pki *pki, char *why, size_t len)
{
	struct tls_config	*cfg;
	struct tls		*ctx = NULL;
	const char		*err;
	char			*p;
	int			 rv = -1;

	if (tls_init() == -1) {
		pki_say(why, len, "tls_init failed");
		return -1;
	}
	if ((cfg = tls_config_new()) == NULL) {
		pki_say(why, len, "tls_config_new failed");
		return -1;
	}
	if (tls_config_set_cert_mem(cfg, pki->cert, pki->cert_len) == -1) {
		pki_say(why, len, "cert \"%s\" holds no PEM certificate%s",
		    pki->cert_file, pki_has(pki->cert, pki->cert_len,
		    "PRIVATE KEY-----") ? " but a private key: are cert and "
		    "key swapped?" : "");
		goto done;
	}
	if (tls_config_set_key_mem(cfg, pki->key, pki->key_len) == -1) {
		pki_say(why, len, "key \"%s\": %s", pki->key_file,
		    tls_config_error(cfg));
		goto done;
	}
	if ((ctx = tls_server()) == NULL) {
		pki_say(why, len, "tls_server failed");
		goto done;
	}
	errno = 0;
	if (tls_configure(ctx, cfg) == 0) {
		rv = 0;
		goto done;
	}
	if (!pki_has(pki->key, pki->key_len, "PRIVATE KEY-----"))
		pki_say(why, len, "key \"%s\" holds no PEM private key%s",
		    pki->key_file, pki_has(pki->key, pki->key_len,
		    "BEGIN CERTIFICATE") ? " but a certificate: are cert "
		    "and key swapped?" : "");
	else if (pki_has(pki->key, pki->key_len, "ENCRYPTED"))
		pki_say(why, len, "key \"%s\" is encrypted; it must be "
		    "readable without a passphrase", pki->key_file);
	else {
		/* A stale errno is not part of the story ("Success"). */
		err = tls_error(ctx) != NULL ? tls_error(ctx) : "failed";
		pki_say(why, len, "key \"%s\" does not match cert \"%s\" "
		    "(libtls: %s)", pki->key_file, pki->cert_file, err);
		if ((p = strstr(why, ": Success)")) != NULL)
			strlcpy(p, ")", len - (size_t)(p - why));
	}
 done:
	if (ctx != NULL)
		tls_free(ctx);
	tls_config_clear_keys(cfg);
	tls_config_free(cfg);
	return rv;
}

/*
 * Read every certificate and key into memory and check each pair.
 * Errors go to errfp as "FILE:LINE: pki NAME: ..." at the pki line.
 */
int
pki_load(struct smx_conf *c, FILE *errfp)
{
	struct smx_pki	*pki;
	char		 why[512];
	int		 rv = 0;

	TAILQ_FOREACH(pki, &c->pkis, entry) {
		if ((pki->cert = tls_load_file(pki->cert_file, &pki->cert_len,
		    NULL)) == NULL) {
			fprintf(errfp, "%s:%d: pki \"%s\": cannot read cert "
			    "\"%s\": %s\n", pki->def_file, pki->def_line,
			    pki->name, pki->cert_file, strerror(errno));
			rv = -1;
			continue;
		}
		if ((pki->key = tls_load_file(pki->key_file, &pki->key_len,
		    NULL)) == NULL) {
			fprintf(errfp, "%s:%d: pki \"%s\": cannot read key "
			    "\"%s\": %s\n", pki->def_file, pki->def_line,
			    pki->name, pki->key_file, strerror(errno));
			rv = -1;
			continue;
		}
		if (pki_check(pki, why, sizeof(why)) == -1) {
			fprintf(errfp, "%s:%d: pki \"%s\": %s\n", pki->def_file,
			    pki->def_line, pki->name, why);
			rv = -1;
		}
	}
	return rv;
}
