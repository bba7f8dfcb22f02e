/*
 * Small parsers and string helpers shared by the configuration, the
 * control command and the processes.  Every function checks its bounds
 * and says why it fails.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* A unit suffix and what it multiplies by. */
struct unit {
	const char		*suffixes;
	unsigned long long	 mult;
};

static const struct unit size_units[] = {
	{ "",	1 },
	{ "kK",	1024ULL },
	{ "mM",	1024ULL * 1024 },
	{ "gG",	1024ULL * 1024 * 1024 },
	{ NULL,	0 }
};

static const struct unit duration_units[] = {
	{ "",	1 },
	{ "s",	1 },
	{ "m",	60 },
	{ "h",	3600 },
	{ "d",	86400 },
	{ NULL,	0 }
};

/*
 * Digits with at most one unit suffix, the value at most max: -1 with
 * *errstr (syntax, or "<what> is too large") if not.
 */
static int
parse_scaled(const char *s, const struct unit *units, unsigned long long max,
    unsigned long long *out, const char *syntax, const char *toobig,
    const char **errstr)
{
	const struct unit	*u;
	char			*end;
	unsigned long long	 v;

	if (!isdigit((unsigned char)*s)) {
		*errstr = syntax;
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE) {
		*errstr = toobig;
		return -1;
	}
	for (u = units; u->suffixes != NULL; u++)
		if ((*end == '\0' && *u->suffixes == '\0') ||
		    (*end != '\0' && strchr(u->suffixes, *end) != NULL &&
		    end[1] == '\0'))
			break;
	if (u->suffixes == NULL) {
		*errstr = syntax;
		return -1;
	}
	if (v > max / u->mult) {
		*errstr = toobig;
		return -1;
	}
	*out = v * u->mult;
	return 0;
}

int
parse_size(const char *s, size_t *out, const char **errstr)
{
	unsigned long long	 v;

	if (parse_scaled(s, size_units, (unsigned long long)SSIZE_MAX, &v,
	    "size must be a number with an optional K, M or G",
	    "size is too large", errstr) == -1)
		return -1;
	*out = (size_t)v;
	return 0;
}

int
parse_duration(const char *s, time_t *out, const char **errstr)
{
	unsigned long long	 v;

	/* Ten years is more than any mail timer needs. */
	if (parse_scaled(s, duration_units, 10ULL * 365 * 86400, &v,
	    "duration must be a number with s, m, h or d",
	    "duration is too large", errstr) == -1)
		return -1;
	*out = (time_t)v;
	return 0;
}

int
valid_domain(const char *s)
{
	size_t	 len = 0, label = 0;

	if (*s == '\0')
		return 0;
	for (; *s; s++, len++) {
		if (*s == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return 0;
		if (++label > 63)
			return 0;
	}
	return len < UTIL_DOMAINSZ;
}

int
parse_net(const char *s, struct sockaddr_storage *ss, int *prefixlen,
    const char **errstr)
{
	char		 buf[INET6_ADDRSTRLEN + 8], *slash;
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	int		 max;
	long long	 p;
	const char	*perr;

	memset(ss, 0, sizeof(*ss));
	if (strlcpy(buf, s, sizeof(buf)) >= sizeof(buf)) {
		*errstr = "invalid network address";
		return -1;
	}
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		max = 128;
	} else {
		*errstr = "invalid network address";
		return -1;
	}
	*prefixlen = max;
	if (slash != NULL) {
		p = strtonum(slash, 0, max, &perr);
		if (!isdigit((unsigned char)*slash) || perr != NULL) {
			*errstr = "invalid prefix length";
			return -1;
		}
		*prefixlen = (int)p;
	}
	return 0;
}

static int
bits_match(const uint8_t *a, const uint8_t *b, int bits)
{
	int	 bytes = bits / 8, rest = bits % 8;
	uint8_t	 mask;

	if (memcmp(a, b, bytes) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

int
net_match(const struct sockaddr_storage *net, int prefixlen,
    const struct sockaddr *addr)
{
	const struct sockaddr_in	*n4 = (const struct sockaddr_in *)net;
	const struct sockaddr_in6	*n6 = (const struct sockaddr_in6 *)net;
	const struct sockaddr_in	*a4 = (const struct sockaddr_in *)addr;
	const struct sockaddr_in6	*a6 = (const struct sockaddr_in6 *)addr;
	struct in_addr			 v4;

	if (net->ss_family == AF_INET && addr->sa_family == AF_INET)
		return bits_match((const uint8_t *)&n4->sin_addr,
		    (const uint8_t *)&a4->sin_addr, prefixlen);
	if (net->ss_family == AF_INET6 && addr->sa_family == AF_INET6)
		return bits_match((const uint8_t *)&n6->sin6_addr,
		    (const uint8_t *)&a6->sin6_addr, prefixlen);
	/* An IPv4 client seen through an IPv6 socket (::ffff:a.b.c.d). */
	if (net->ss_family == AF_INET && addr->sa_family == AF_INET6) {
		if (!IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr))
			return 0;
		memcpy(&v4, a6->sin6_addr.s6_addr + 12, sizeof(v4));
		return bits_match((const uint8_t *)&n4->sin_addr,
		    (const uint8_t *)&v4, prefixlen);
	}
	return 0;
}

int
parse_sockaddr(const char *s, uint16_t port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

const char *
sa_str(const struct sockaddr *sa, char *buf, size_t len)
{
	const void	*a;

	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	else if (sa->sa_family == AF_UNIX) {
		strlcpy(buf, "local", len);
		return buf;
	} else {
		strlcpy(buf, "unknown", len);
		return buf;
	}
	if (inet_ntop(sa->sa_family, a, buf, len) == NULL)
		strlcpy(buf, "unknown", len);
	return buf;
}

/* A hex digit's value, either case; -1 for anything else. */
int
hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

void
str_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

char *
str_printable(char *dst, size_t dstsz, const char *src)
{
	unsigned char	 c;
	size_t		 i;

	if (dstsz == 0)
		return dst;
	for (i = 0; src[i] != '\0' && i + 1 < dstsz; i++) {
		c = (unsigned char)src[i];
		dst[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	dst[i] = '\0';
	return dst;
}

void
json_str(FILE *out, const char *s)
{
	const unsigned char	*p;

	fputc('"', out);
	for (p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		default:
			if (*p < 0x20)
				fprintf(out, "\\u%04x", *p);
			else
				fputc(*p, out);
		}
	}
	fputc('"', out);
}

char *
str_dup(const char *s)
{
	char	*p;

	if ((p = strdup(s == NULL ? "" : s)) == NULL)
		fatal("strdup");
	return p;
}

void
duration_str(time_t t, char *buf, size_t len)
{
	int	 n;

	if (t != 0 && t % 86400 == 0)
		n = snprintf(buf, len, "%lldd", (long long)(t / 86400));
	else if (t != 0 && t % 3600 == 0)
		n = snprintf(buf, len, "%lldh", (long long)(t / 3600));
	else if (t != 0 && t % 60 == 0)
		n = snprintf(buf, len, "%lldm", (long long)(t / 60));
	else
		n = snprintf(buf, len, "%llds", (long long)t);
	if (n < 0 || (size_t)n >= len)
		strlcpy(buf, "?", len);
}

void
size_str(size_t s, char *buf, size_t len)
{
	int	 n;

	if (s != 0 && s % (1024 * 1024 * 1024) == 0)
		n = snprintf(buf, len, "%zuG", s / (1024 * 1024 * 1024));
	else if (s != 0 && s % (1024 * 1024) == 0)
		n = snprintf(buf, len, "%zuM", s / (1024 * 1024));
	else if (s != 0 && s % 1024 == 0)
		n = snprintf(buf, len, "%zuK", s / 1024);
	else
		n = snprintf(buf, len, "%zu", s);
	if (n < 0 || (size_t)n >= len)
		strlcpy(buf, "?", len);
}
