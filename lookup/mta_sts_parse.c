/*
 * MTA-STS texts (RFC 8461): the _mta-sts TXT record (§3.1), the policy
 * a domain serves over HTTPS (§3.2), and its MX patterns (§4.1).  Both
 * texts come from the network: every field is checked against the
 * grammar, and a text that does not follow it is no policy at all.
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "splitmx.h"
#include "lookup.h"

#define STS_MAX_AGE_MAX	31557600	/* a year, RFC 8461 §3.2 */

static int	sts_wsp(int);
static int	sts_ext_name(const char *, size_t);
static int	sts_vchars(const char *, size_t);
static int	sts_field(struct sts_policy *, const char *, size_t,
		    const char *, size_t, int *, char *, size_t);

static int
sts_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
static int
sts_ext_name(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0 || len > 32 || !isalnum((unsigned char)s[0]))
		return 0;
	for (i = 1; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

/* Printable ASCII and spaces, neither first nor last a space. */
static int
sts_vchars(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0 || sts_wsp(s[0]) || sts_wsp(s[len - 1]))
		return 0;
	for (i = 0; i < len; i++)
		if ((s[i] < 0x21 || s[i] > 0x7e) && s[i] != ' ')
			return 0;
	return 1;
}

/*
 * The TXT record: "v=STSv1" first, then ";"-separated fields, of which
 * "id=" (1 to 32 letters and digits) must be one; others are skipped
 * if well-formed.  1 and the id for an MTA-STS record, 0 for a record
 * that is not one (another TXT at the name), -1 for one that begins
 * like one but is malformed.
 */
int
sts_parse_txt(const char *s, size_t len, char *id, size_t idlen)
{
	const char	*p = s, *end = s + len, *f, *eq;
	size_t		 n;
	int		 have_id = 0;

	if (len < 7 || strncmp(s, "v=STSv1", 7) != 0 ||
	    (len > 7 && !sts_wsp(s[7]) && s[7] != ';'))
		return 0;
	if (memchr(s, '\0', len) != NULL)
		return -1;
	p += 7;
	for (;;) {
		while (p < end && sts_wsp(*p))
			p++;
		if (p == end)
			break;
		if (*p++ != ';')
			return -1;
		while (p < end && sts_wsp(*p))
			p++;
		if (p == end)
			break;		/* a ";" may end the record */
		f = p;
		while (p < end && *p != ';' && !sts_wsp(*p))
			p++;
		n = (size_t)(p - f);
		if ((eq = memchr(f, '=', n)) == NULL)
			return -1;
		if (eq - f == 2 && strncmp(f, "id", 2) == 0) {
			if (have_id++ || n - 3 < 1 || n - 3 > 32 ||
			    n - 3 >= idlen)
				return -1;
			for (f = eq + 1; f < p; f++)
				if (!isalnum((unsigned char)*f))
					return -1;
			memcpy(id, eq + 1, n - 3);
			id[n - 3] = '\0';
			continue;
		}
		/* Extension: name=value, value without "=" and ";". */
		if (!sts_ext_name(f, (size_t)(eq - f)) || eq + 1 == p ||
		    memchr(eq + 1, '=', (size_t)(p - eq - 1)) != NULL)
			return -1;
		for (f = eq + 1; f < p; f++)
			if (*f < 0x21 || *f > 0x7e)
				return -1;
	}
	return have_id ? 1 : -1;
}

/* One "name: value" line of a policy. */
static int
sts_field(struct sts_policy *pol, const char *name, size_t nlen,
    const char *val, size_t vlen, int *seen, char *err, size_t errlen)
{
	char		 buf[SMX_HOSTSZ];
	const char	*host;
	size_t		 i;
	uint64_t	 age;

	if (nlen == 7 && strncmp(name, "version", 7) == 0) {
		if ((*seen & 1) || vlen != 5 || strncmp(val, "STSv1", 5) != 0) {
			(void)snprintf(err, errlen, "version: not STSv1, or "
			    "given twice");
			return -1;
		}
		*seen |= 1;
	} else if (nlen == 4 && strncmp(name, "mode", 4) == 0) {
		if (*seen & 2) {
			(void)snprintf(err, errlen, "mode given twice");
			return -1;
		}
		*seen |= 2;
		if (vlen == 7 && strncmp(val, "enforce", 7) == 0)
			pol->mode = STS_ENFORCE;
		else if (vlen == 7 && strncmp(val, "testing", 7) == 0)
			pol->mode = STS_TESTING;
		else if (vlen == 4 && strncmp(val, "none", 4) == 0)
			pol->mode = STS_NONE;
		else {
			(void)snprintf(err, errlen, "mode: not enforce, "
			    "testing or none");
			return -1;
		}
	} else if (nlen == 7 && strncmp(name, "max_age", 7) == 0) {
		if ((*seen & 4) || vlen == 0 || vlen > 10) {
			(void)snprintf(err, errlen, "max_age: not 1 to 10 "
			    "digits, or given twice");
			return -1;
		}
		for (age = 0, i = 0; i < vlen; i++) {
			if (!isdigit((unsigned char)val[i])) {
				(void)snprintf(err, errlen, "max_age: not a "
				    "number");
				return -1;
			}
			age = age * 10 + (uint64_t)(val[i] - '0');
		}
		*seen |= 4;
		pol->max_age = age > STS_MAX_AGE_MAX ? STS_MAX_AGE_MAX :
		    (uint32_t)age;
	} else if (nlen == 2 && strncmp(name, "mx", 2) == 0) {
		/* ["*."] Domain: a host name, or one label of wildcard. */
		if (vlen >= sizeof(buf) || pol->nmx == STS_MAX_MX) {
			(void)snprintf(err, errlen, "mx: too long, or too "
			    "many");
			return -1;
		}
		memcpy(buf, val, vlen);
		buf[vlen] = '\0';
		str_lower(buf);
		host = vlen > 2 && strncmp(buf, "*.", 2) == 0 ? buf + 2 : buf;
		if (*host == '\0' || !valid_domain(host) ||
		    strchr(host, '*') != NULL ||
		    host[strlen(host) - 1] == '.' ||
		    strchr(host, '.') == NULL) {
			(void)snprintf(err, errlen, "mx: not a host name or "
			    "*.domain: \"%.64s\"", buf);
			return -1;
		}
		strlcpy(pol->mx[pol->nmx++], buf, sizeof(pol->mx[0]));
	} else if (!sts_ext_name(name, nlen) || !sts_vchars(val, vlen)) {
		(void)snprintf(err, errlen, "a line that is no field");
		return -1;
	}
	return 0;
}

/*
 * The policy (RFC 8461 §3.2): "name: value" lines ending in LF or
 * CRLF; version, mode and max_age exactly once, at least one mx unless
 * the mode is none, other fields well-formed and skipped.  0, or -1
 * with err saying what is wrong.
 */
int
sts_parse_policy(const char *text, size_t len, struct sts_policy *pol,
    char *err, size_t errlen)
{
	const char	*p = text, *end = text + len, *line, *eol, *colon;
	const char	*val;
	size_t		 llen, nlen, vlen;
	int		 seen = 0;

	memset(pol, 0, sizeof(*pol));
	if (len > STS_POLICY_MAX || memchr(text, '\0', len) != NULL) {
		(void)snprintf(err, errlen, "not a text of at most %d octets",
		    STS_POLICY_MAX);
		return -1;
	}
	while (p < end) {
		line = p;
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end;
		p = eol < end ? eol + 1 : end;
		llen = (size_t)(eol - line);
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		if (memchr(line, '\r', llen) != NULL) {
			(void)snprintf(err, errlen, "a bare CR");
			return -1;
		}
		if (llen == 0) {
			if (p == end)
				break;	/* the last line's terminator */
			(void)snprintf(err, errlen, "an empty line");
			return -1;
		}
		if ((colon = memchr(line, ':', llen)) == NULL) {
			(void)snprintf(err, errlen, "a line without \":\"");
			return -1;
		}
		nlen = (size_t)(colon - line);
		val = colon + 1;
		vlen = llen - nlen - 1;
		while (vlen > 0 && sts_wsp(*val)) {
			val++;
			vlen--;
		}
		while (vlen > 0 && sts_wsp(val[vlen - 1]))
			vlen--;
		if (sts_field(pol, line, nlen, val, vlen, &seen, err,
		    errlen) == -1)
			return -1;
	}
	if (seen != 7) {
		(void)snprintf(err, errlen, "%s missing", !(seen & 1) ?
		    "version" : !(seen & 2) ? "mode" : "max_age");
		return -1;
	}
	if (pol->mode != STS_NONE && pol->nmx == 0) {
		(void)snprintf(err, errlen, "no mx");
		return -1;
	}
	return 0;
}

/*
 * Is host one of the policy's MX patterns (RFC 8461 §4.1)?  A pattern
 * is a name, or "*." and a name that stands for one more label on the
 * left.  host is lower case, without the final dot.
 */
int
sts_mx_match(const struct sts_policy *pol, const char *host)
{
	const char	*dot;
	int		 i;

	for (i = 0; i < pol->nmx; i++) {
		if (strncmp(pol->mx[i], "*.", 2) != 0) {
			if (strcmp(pol->mx[i], host) == 0)
				return 1;
			continue;
		}
		if ((dot = strchr(host, '.')) != NULL && dot != host &&
		    strcmp(dot + 1, pol->mx[i] + 2) == 0)
			return 1;
	}
	return 0;
}
