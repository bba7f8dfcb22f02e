/*
 * The syntax of what SMTP clients send: paths (RFC 5321 §4.1.2 with RFC
 * 6531's UTF-8), greetings and ESMTP parameters.  Every octet here came
 * from the network; every length is bounded.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "splitmx.h"
#include "smtp.h"

#define SMTP_LOCAL_MAX		64	/* RFC 5321 §4.5.3.1.1 */
#define SMTP_DOMAIN_MAX		255	/* RFC 5321 §4.5.3.1.2 */
#define SMTP_PATH_MAX		256	/* RFC 5321 §4.5.3.1.3, <> included */

static size_t	smtp_parse_utf8(const unsigned char *);

/*
 * A Reverse-path or Forward-path (RFC 5321 §4.1.2), with RFC 6531's
 * UTF-8 in local part and domain: *pp points at '<'.  On PATH_OK, buf
 * has the mailbox (no brackets, no source route; "" for "<>") and *pp
 * points past '>'; *utf8 says whether it has non-ASCII octets.
 */
int
smtp_parse_path(char **pp, char *buf, size_t bufsz, int *utf8)
{
	unsigned char	*p = (unsigned char *)*pp, *start, *mbox, *at;
	unsigned char	*dom, *end, *label;
	char		 lit[INET6_ADDRSTRLEN + 8];
	struct in6_addr	 in6;
	size_t		 n;
	int		 dot;

	*utf8 = 0;
	if (*p != '<')
		return PATH_SYNTAX;
	start = p++;
	if (*p == '@') {
		/* A source route: RFC 5321 §4.1.1.3 says ignore it. */
		while (*p != ':') {
			if (*p == '\0' || *p == '>' || *p == ' ')
				return PATH_SYNTAX;
			if (!isalnum(*p) && strchr("@,.-[]", *p) == NULL)
				return PATH_SYNTAX;
			p++;
		}
		p++;
	}
	mbox = p;
	if (*p == '>') {
		if (mbox != start + 1)
			return PATH_SYNTAX;
		buf[0] = '\0';
		*pp = (char *)p + 1;
		return PATH_OK;
	}
	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			if (*p == '\\') {
				p++;
				if (*p < 32 || *p > 126)
					return PATH_SYNTAX;
			} else if (*p >= 0x80) {
				if ((n = smtp_parse_utf8(p)) == 0)
					return PATH_SYNTAX;
				*utf8 = 1;
				p += n - 1;
			} else if (*p < 32 || *p > 126)
				return PATH_SYNTAX;	/* NUL included */
		}
		p++;
	} else {
		for (dot = 1; *p != '@'; p++) {
			if (*p == '.') {
				if (dot)
					return PATH_SYNTAX;
				dot = 1;
				continue;
			}
			dot = 0;
			if (*p >= 0x80) {
				if ((n = smtp_parse_utf8(p)) == 0)
					return PATH_SYNTAX;
				*utf8 = 1;
				p += n - 1;
			} else if (*p == '\0' || (!isalnum(*p) &&
			    strchr("!#$%&'*+-/=?^_`{|}~", *p) == NULL))
				return PATH_SYNTAX;
		}
		if (dot)
			return PATH_SYNTAX;
	}
	if (*p != '@')
		return PATH_SYNTAX;
	at = p;
	dom = ++p;
	if (*p == '[') {
		if ((end = (unsigned char *)strchr((char *)p, ']')) == NULL ||
		    (size_t)(end - p - 1) >= sizeof(lit))
			return PATH_SYNTAX;
		memcpy(lit, p + 1, (size_t)(end - p - 1));
		lit[end - p - 1] = '\0';
		if (strncasecmp(lit, "IPv6:", 5) == 0) {
			if (inet_pton(AF_INET6, lit + 5, &in6) != 1)
				return PATH_SYNTAX;
		} else if (inet_pton(AF_INET, lit, &in6) != 1)
			return PATH_SYNTAX;
		p = end + 1;
	} else {
		for (;;) {
			label = p;
			while (isalnum(*p) || *p == '-' || *p >= 0x80) {
				if (*p >= 0x80) {
					if ((n = smtp_parse_utf8(p)) == 0)
						return PATH_SYNTAX;
					*utf8 = 1;
					p += n;
				} else
					p++;
			}
			/* RFC 1035 §2.3.4 and 5321 sub-domain: LDH, 63 max. */
			if (p == label || *label == '-' || p[-1] == '-' ||
			    p - label > 63)
				return PATH_SYNTAX;
			if (*p != '.')
				break;
			p++;
		}
	}
	if (*p != '>')
		return PATH_SYNTAX;
	if ((size_t)(at - mbox) > SMTP_LOCAL_MAX ||
	    (size_t)(p - dom) > SMTP_DOMAIN_MAX ||
	    (size_t)(p + 1 - start) > SMTP_PATH_MAX)
		return PATH_TOOLONG;
	n = (size_t)(p - mbox);
	if (n >= bufsz)
		return PATH_TOOLONG;
	memcpy(buf, mbox, n);
	buf[n] = '\0';
	*pp = (char *)p + 1;
	return PATH_OK;
}

/* The length of the well-formed UTF-8 sequence at p (RFC 3629), or 0. */
static size_t
smtp_parse_utf8(const unsigned char *p)
{
	unsigned char	 lo = 0x80, hi = 0xbf;
	size_t		 n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;
		else if (p[0] == 0xed)
			hi = 0x9f;	/* no surrogates */
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		if (p[0] == 0xf0)
			lo = 0x90;
		else if (p[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* A HELO/EHLO argument: a domain or an address literal, loosely. */
int
smtp_parse_helo(const char *s)
{
	size_t	 n = strlen(s);

	if (n == 0 || n >= SMX_HOSTSZ)
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) &&
		    strchr("-._:[]", *s) == NULL)
			return 0;
	return 1;
}

/* The next "KEY[=VALUE]" of a parameter list, split in place. */
char *
smtp_parse_param(char **pp, char **val)
{
	char	*p = *pp, *key, *eq;

	while (*p == ' ')
		p++;
	if (*p == '\0')
		return NULL;
	key = p;
	while (*p != '\0' && *p != ' ')
		p++;
	if (*p == ' ')
		*p++ = '\0';
	*pp = p;
	if ((eq = strchr(key, '=')) != NULL) {
		*eq = '\0';
		*val = eq + 1;
	} else
		*val = NULL;
	return key;
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
int
smtp_parse_keyword(const char *k)
{
	size_t	 n = strlen(k);

	if (n == 0 || n > 32 || !isalnum((unsigned char)k[0]))
		return 0;
	return strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-") == n;
}

/* xtext (RFC 3461 §4): printable ASCII, "+" and "=" only as +HH. */
int
smtp_parse_xtext(const char *s, size_t max)
{
	size_t	 n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (; *s != '\0'; s++) {
		if (*s == '+') {
			if (!isxdigit((unsigned char)s[1]) ||
			    !isxdigit((unsigned char)s[2]))
				return 0;
			s += 2;
		} else if (*s < 33 || *s > 126 || *s == '=')
			return 0;
	}
	return 1;
}

/*
 * The value of ORCPT (RFC 3461 §4.2), whole: addr-type ";" xtext.  The
 * type is an atom (RFC 5322 atext: no control, space or 8-bit octet);
 * the address is well-formed xtext that decodes to printable US-ASCII
 * (a space included, for quoted local parts): no control or 8-bit
 * octet for a DSN, the envelope file or a log line to make safe later.
 * An RFC 6533 "utf-8" address is ASCII too, its characters written as
 * \x{HEX}.
 */
int
smtp_parse_orcpt(const char *s, size_t max)
{
	const char	*semi, *p;
	int		 c;

	if (strlen(s) > max || (semi = strchr(s, ';')) == NULL || semi == s)
		return 0;
	for (p = s; p < semi; p++)
		if (!isalnum((unsigned char)*p) &&
		    strchr("!#$%&'*+-/=?^_`{|}~", *p) == NULL)
			return 0;
	if (!smtp_parse_xtext(semi + 1, max))
		return 0;
	for (p = semi + 1; *p != '\0'; p++) {
		if (*p != '+')
			continue;
		c = hex_value(p[1]) << 4 | hex_value(p[2]);
		if (c < 0x20 || c > 0x7e)
			return 0;
		p += 2;
	}
	return 1;
}

/*
 * MAIL parameters (RFC 1870, 6152, 6531, 3461) into the transaction;
 * max is the message size limit (0: none).  PARAM_OK, or what is wrong
 * (*badkey: the parameter, for PARAM_UNKNOWN and PARAM_TWICE).
 */
int
smtp_parse_mail_params(char *p, size_t max, struct smtp_tx *tx,
    const char **badkey)
{
	const char	*errstr;
	char		*key, *val;
	long long	 size;
	int		 seen = 0, bit;

	while ((key = smtp_parse_param(&p, &val)) != NULL) {
		if (!smtp_parse_keyword(key))
			goto syntax;
		if (strcasecmp(key, "SIZE") == 0)
			bit = 0x01;
		else if (strcasecmp(key, "BODY") == 0)
			bit = 0x02;
		else if (strcasecmp(key, "SMTPUTF8") == 0)
			bit = 0x04;
		else if (strcasecmp(key, "RET") == 0)
			bit = 0x08;
		else if (strcasecmp(key, "ENVID") == 0)
			bit = 0x10;
		else {
			*badkey = key;
			return PARAM_UNKNOWN;
		}
		if (seen & bit) {
			*badkey = key;
			return PARAM_TWICE;
		}
		seen |= bit;
		switch (bit) {
		case 0x01:
			if (val == NULL || strspn(val, "0123456789") !=
			    strlen(val) || strlen(val) > 18)
				goto syntax;
			size = strtonum(val, 0, LLONG_MAX, &errstr);
			if (errstr != NULL)
				goto syntax;
			if (max != 0 && (unsigned long long)size > max)
				return PARAM_SIZE;
			break;
		case 0x02:
			if (val != NULL && strcasecmp(val, "7BIT") == 0)
				tx->body = BODY_7BIT;
			else if (val != NULL &&
			    strcasecmp(val, "8BITMIME") == 0)
				tx->body = BODY_8BITMIME;
			else
				return PARAM_BODY;
			break;
		case 0x04:
			if (val != NULL)
				goto syntax;
			tx->mflags |= F_MSG_SMTPUTF8;
			break;
		case 0x08:
			if (val != NULL && strcasecmp(val, "FULL") == 0)
				tx->ret = RET_FULL;
			else if (val != NULL && strcasecmp(val, "HDRS") == 0)
				tx->ret = RET_HDRS;
			else
				goto syntax;
			break;
		case 0x10:
			if (val == NULL || !smtp_parse_xtext(val,
			    SMTP_ENVID_MAX))
				goto syntax;
			strlcpy(tx->envid, val, sizeof(tx->envid));
			break;
		}
	}
	return PARAM_OK;
 syntax:
	return PARAM_SYNTAX;
}

/*
 * RCPT parameters (RFC 3461 NOTIFY and ORCPT): *notify gets the
 * F_NOTIFY_* flags, orcpt the ORCPT value ("" if none).  PARAM_OK or
 * what is wrong, as smtp_parse_mail_params().
 */
int
smtp_parse_rcpt_params(char *p, uint32_t *notify, char *orcpt,
    size_t orcptsz, const char **badkey)
{
	char		*key, *val, *w, *next;
	int		 seen = 0;

	while ((key = smtp_parse_param(&p, &val)) != NULL) {
		if (!smtp_parse_keyword(key))
			goto syntax;
		if (strcasecmp(key, "NOTIFY") == 0) {
			if ((seen & 0x01) || val == NULL)
				goto syntax;
			seen |= 0x01;
			for (w = val; w != NULL; w = next) {
				if ((next = strchr(w, ',')) != NULL)
					*next++ = '\0';
				if (strcasecmp(w, "NEVER") == 0)
					*notify |= F_NOTIFY_NEVER;
				else if (strcasecmp(w, "SUCCESS") == 0)
					*notify |= F_NOTIFY_SUCCESS;
				else if (strcasecmp(w, "FAILURE") == 0)
					*notify |= F_NOTIFY_FAILURE;
				else if (strcasecmp(w, "DELAY") == 0)
					*notify |= F_NOTIFY_DELAY;
				else
					goto syntax;
			}
			/* NEVER stands alone (RFC 3461 §4.1). */
			if ((*notify & F_NOTIFY_NEVER) &&
			    *notify != F_NOTIFY_NEVER)
				goto syntax;
		} else if (strcasecmp(key, "ORCPT") == 0) {
			if ((seen & 0x02) || val == NULL ||
			    !smtp_parse_orcpt(val, SMTP_ORCPT_MAX))
				goto syntax;
			seen |= 0x02;
			strlcpy(orcpt, val, orcptsz);
		} else {
			*badkey = key;
			return PARAM_UNKNOWN;
		}
	}
	return PARAM_OK;
 syntax:
	return PARAM_SYNTAX;
}
