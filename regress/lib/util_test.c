/*
 * Unit tests of lib/util.c: sizes, durations, host specifications,
 * networks and their matching, and printing them back.  TAP output.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"
#include "tap.h"

#define NTESTS	152

struct size_case {
	const char	*in;
	size_t		 out;
};

struct dur_case {
	const char	*in;
	time_t		 out;
};

struct host_case {
	const char	*in;
	const char	*name;
	uint16_t	 port;
	int		 flags;
};

struct match_case {
	const char	*net;
	const char	*addr;
	int		 match;
};

static void	 test_size(void);
static void	 test_duration(void);
static void	 test_host(void);
static void	 test_net(void);
static void	 test_match(void);
static void	 test_print(void);
static void	 test_misc(void);
static void	 test_json(void);
static int	 mkaddr(const char *, struct sockaddr_storage *);

static int
mkaddr(const char *s, struct sockaddr_storage *ss)
{
	socklen_t	 len;

	return parse_sockaddr(s, 25, ss, &len);
}

static void
test_size(void)
{
	static const struct size_case	 good[] = {
		{ "0",		0 },
		{ "123",	123 },
		{ "1k",		1024 },
		{ "1K",		1024 },
		{ "35M",	35 * 1024 * 1024 },
		{ "2g",		2ULL * 1024 * 1024 * 1024 },
		{ "9223372036854775807", SSIZE_MAX },
		{ "8589934591G", 8589934591ULL * 1024 * 1024 * 1024 },
	};
	static const char		*bad[] = {
		"", "M", "-1", "+1", " 1", "1 ", "1MB", "1.5M", "0x10", "1T",
		"99999999999999999999", "9223372036854775808", "8589934592G",
		"9007199254740992K",
	};
	const char	*errstr;
	size_t		 i, v;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 1;
		errstr = NULL;
		ok(parse_size(good[i].in, &v, &errstr) == 0 &&
		    v == good[i].out && errstr == NULL,
		    "parse_size \"%s\" = %zu", good[i].in, good[i].out);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 7;
		errstr = NULL;
		ok(parse_size(bad[i], &v, &errstr) == -1 && errstr != NULL &&
		    v == 7, "parse_size \"%s\" refused (%s)", bad[i],
		    errstr ? errstr : "no reason");
	}
}

static void
test_duration(void)
{
	static const struct dur_case	 good[] = {
		{ "0",		0 },
		{ "30",		30 },
		{ "30s",	30 },
		{ "5m",		300 },
		{ "4h",		4 * 3600 },
		{ "4d",		4 * 86400 },
		{ "3650d",	3650 * 86400 },
		{ "315360000",	315360000 },
	};
	static const char		*bad[] = {
		"", "m", "5M", "5H", "5 m", "-5s", "5ms", "1.5h", "5w",
		"3651d", "315360001", "87601h", "99999999999999999999s",
	};
	const char	*errstr;
	time_t		 t;
	size_t		 i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		t = 1;
		errstr = NULL;
		ok(parse_duration(good[i].in, &t, &errstr) == 0 &&
		    t == good[i].out && errstr == NULL,
		    "parse_duration \"%s\" = %lld", good[i].in,
		    (long long)good[i].out);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t = 7;
		errstr = NULL;
		ok(parse_duration(bad[i], &t, &errstr) == -1 &&
		    errstr != NULL && t == 7,
		    "parse_duration \"%s\" refused (%s)", bad[i],
		    errstr ? errstr : "no reason");
	}
}

static void
test_host(void)
{
	static const struct host_case	 good[] = {
		{ "mx.example.com",	"mx.example.com", 25, F_HOST_MX },
		{ "name:25",		"name", 25, F_HOST_MX },
		{ "name:2525",		"name", 2525, F_HOST_MX },
		{ "relay.example.com:65535", "relay.example.com", 65535,
		    F_HOST_MX },
		{ "[::1]:2525",		"::1", 2525, 0 },
		{ "[::1]",		"::1", 25, 0 },
		{ "[192.0.2.1]",	"192.0.2.1", 25, 0 },
		{ "[192.0.2.1]:1",	"192.0.2.1", 1, 0 },
		{ "[mail.example.com]:587", "mail.example.com", 587, 0 },
		{ "[2001:db8::25]",	"2001:db8::25", 25, 0 },
	};
	static const char		*bad[] = {
		"", "[x", "[::1", "[]", "[]:25", "[::1]x", "[::1]:", "::1",
		"2001:db8::1:25", "name:", "name:0", "name:65536",
		"name:99999999999", "name:-1", "name:+25", "name: 25",
		"name:25 ", "name:abc", "name:25:26", ":25", "bad_host!",
		"a..b", ".example.com", "[a b]", "[fe80::1%eth0]",
	};
	struct smx_host	 h;
	const char	*errstr;
	char		 label[64], name[512];
	size_t		 i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		memset(&h, 0xff, sizeof(h));
		errstr = NULL;
		ok(parse_host(good[i].in, &h, &errstr) == 0 &&
		    strcmp(h.name, good[i].name) == 0 &&
		    h.port == good[i].port && h.flags == good[i].flags &&
		    h.set == 1,
		    "parse_host \"%s\" = %s port %u%s", good[i].in,
		    good[i].name, good[i].port,
		    good[i].flags & F_HOST_MX ? " (MX)" : " (direct)");
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errstr = NULL;
		ok(parse_host(bad[i], &h, &errstr) == -1 && errstr != NULL,
		    "parse_host \"%s\" refused (%s)", bad[i],
		    errstr ? errstr : "no reason");
	}

	/* Label and name limits. */
	memset(label, 'a', 63);
	label[63] = '\0';
	(void)snprintf(name, sizeof(name), "%s.example", label);
	ok(parse_host(name, &h, &errstr) == 0, "parse_host: 63-char label");
	(void)snprintf(name, sizeof(name), "a%s.example", label);
	ok(parse_host(name, &h, &errstr) == -1, "parse_host: 64-char label");
	(void)snprintf(name, sizeof(name), "%s.%s.%s.%s", label, label,
	    label, label);	/* 255 characters */
	ok(parse_host(name, &h, &errstr) == 0 && strlen(h.name) == 255,
	    "parse_host: 255-character name");
	(void)snprintf(name, sizeof(name), "%s.%s.%s.%s.a", label, label,
	    label, label);
	ok(parse_host(name, &h, &errstr) == -1,
	    "parse_host: 257-character name refused");
}

static void
test_net(void)
{
	struct sockaddr_storage	 ss;
	const char		*errstr;
	int			 plen;
	size_t			 i;
	static const char	*bad[] = {
		"", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8",
		"10.0.0.0/ 8", "10.0.0.0/8/8", "10.0.0/8", "::/129",
		"garbage", "10.0.0.0/8x", "2001:db8::/abc",
	};

	ok(parse_net("10.0.0.0/8", &ss, &plen, &errstr) == 0 &&
	    ss.ss_family == AF_INET && plen == 8,
	    "parse_net \"10.0.0.0/8\"");
	ok(parse_net("127.0.0.1", &ss, &plen, &errstr) == 0 &&
	    ss.ss_family == AF_INET && plen == 32,
	    "parse_net \"127.0.0.1\" is a /32");
	ok(parse_net("::1", &ss, &plen, &errstr) == 0 &&
	    ss.ss_family == AF_INET6 && plen == 128,
	    "parse_net \"::1\" is a /128");
	ok(parse_net("2001:db8::/32", &ss, &plen, &errstr) == 0 &&
	    ss.ss_family == AF_INET6 && plen == 32,
	    "parse_net \"2001:db8::/32\"");
	ok(parse_net("0.0.0.0/0", &ss, &plen, &errstr) == 0 && plen == 0,
	    "parse_net \"0.0.0.0/0\"");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errstr = NULL;
		ok(parse_net(bad[i], &ss, &plen, &errstr) == -1 &&
		    errstr != NULL, "parse_net \"%s\" refused (%s)", bad[i],
		    errstr ? errstr : "no reason");
	}
}

static void
test_match(void)
{
	static const struct match_case	 cases[] = {
		{ "10.0.0.0/8",		"10.1.2.3",		1 },
		{ "10.0.0.0/8",		"11.0.0.1",		0 },
		{ "10.0.0.0/8",		"::ffff:10.1.2.3",	1 },
		{ "10.0.0.0/8",		"::ffff:11.1.2.3",	0 },
		{ "10.0.0.0/8",		"2001:db8::1",		0 },
		{ "10.0.0.0/8",		"::a01:203",		0 },
		{ "127.0.0.1",		"127.0.0.1",		1 },
		{ "127.0.0.1",		"127.0.0.2",		0 },
		{ "127.0.0.1",		"::ffff:127.0.0.1",	1 },
		{ "192.168.1.128/25",	"192.168.1.200",	1 },
		{ "192.168.1.128/25",	"192.168.1.100",	0 },
		{ "192.168.1.128/25",	"::ffff:192.168.1.255",	1 },
		{ "192.168.1.128/25",	"::ffff:192.168.1.127",	0 },
		{ "0.0.0.0/0",		"203.0.113.9",		1 },
		{ "0.0.0.0/0",		"::ffff:203.0.113.9",	1 },
		{ "0.0.0.0/0",		"2001:db8::1",		0 },
		{ "2001:db8::/32",	"2001:db8:1::1",	1 },
		{ "2001:db8::/32",	"2001:db9::1",		0 },
		{ "2001:db8::/32",	"10.0.0.1",		0 },
		{ "2001:db8::/33",	"2001:db8:8000::1",	0 },
		{ "::1",		"::1",			1 },
		{ "::1",		"::2",			0 },
		{ "::/0",		"2001:db8::1",		1 },
		{ "::/0",		"10.0.0.1",		0 },
		{ "::ffff:0:0/96",	"::ffff:10.0.0.1",	1 },
	};
	struct sockaddr_storage	 net, addr;
	const char		*errstr;
	int			 plen;
	size_t			 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (parse_net(cases[i].net, &net, &plen, &errstr) == -1 ||
		    mkaddr(cases[i].addr, &addr) == -1) {
			ok(0, "net_match %s: cannot parse", cases[i].net);
			continue;
		}
		ok(net_match(&net, plen, (struct sockaddr *)&addr) ==
		    cases[i].match, "net_match %s %s %s", cases[i].addr,
		    cases[i].match ? "in" : "not in", cases[i].net);
	}
}

static void
test_print(void)
{
	static const time_t	 durs[] = {
		0, 1, 59, 60, 90, 300, 3599, 3600, 5400, 7200, 86399, 86400,
		4 * 86400, 90061, 315360000,
	};
	static const size_t	 sizes[] = {
		0, 1, 1023, 1024, 1536, 2048, 1024 * 1024, 35 * 1024 * 1024,
		35 * 1024 * 1024 + 1, 1024 * 1024 * 1024,
		3ULL * 1024 * 1024 * 1024, 1024ULL * 1024 * 1024 * 1024,
		SSIZE_MAX,
	};
	static const char	*hosts[] = {
		"mx.example.com", "name:2525", "[::1]:2525", "[::1]",
		"[192.0.2.1]", "[mail.example.com]:587",
	};
	struct smx_host		 h, h2;
	const char		*errstr;
	char			 buf[128];
	time_t			 t;
	size_t			 i, s;
	int			 bad;

	duration_str(300, buf, sizeof(buf));
	ok(strcmp(buf, "5m") == 0, "duration_str 300 = \"%s\"", buf);
	duration_str(0, buf, sizeof(buf));
	ok(strcmp(buf, "0s") == 0, "duration_str 0 = \"%s\"", buf);
	duration_str(90, buf, sizeof(buf));
	ok(strcmp(buf, "90s") == 0, "duration_str 90 = \"%s\"", buf);
	duration_str(4 * 86400, buf, sizeof(buf));
	ok(strcmp(buf, "4d") == 0, "duration_str 4 days = \"%s\"", buf);
	duration_str(7200, buf, sizeof(buf));
	ok(strcmp(buf, "2h") == 0, "duration_str 7200 = \"%s\"", buf);
	duration_str(86400, buf, 2);
	ok(strcmp(buf, "?") == 0, "duration_str into a short buffer");
	for (bad = 0, i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
		duration_str(durs[i], buf, sizeof(buf));
		if (parse_duration(buf, &t, &errstr) == -1 || t != durs[i]) {
			diag("duration %lld -> \"%s\"", (long long)durs[i],
			    buf);
			bad++;
		}
	}
	ok(bad == 0, "duration_str/parse_duration round trips");

	size_str(35 * 1024 * 1024, buf, sizeof(buf));
	ok(strcmp(buf, "35M") == 0, "size_str 35M = \"%s\"", buf);
	size_str(1536, buf, sizeof(buf));
	ok(strcmp(buf, "1536") == 0, "size_str 1536 = \"%s\"", buf);
	size_str(2048, buf, sizeof(buf));
	ok(strcmp(buf, "2K") == 0, "size_str 2048 = \"%s\"", buf);
	size_str(1024 * 1024 * 1024, buf, sizeof(buf));
	ok(strcmp(buf, "1G") == 0, "size_str 1G = \"%s\"", buf);
	size_str(0, buf, sizeof(buf));
	ok(strcmp(buf, "0") == 0, "size_str 0 = \"%s\"", buf);
	for (bad = 0, i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_str(sizes[i], buf, sizeof(buf));
		if (parse_size(buf, &s, &errstr) == -1 || s != sizes[i]) {
			diag("size %zu -> \"%s\"", sizes[i], buf);
			bad++;
		}
	}
	ok(bad == 0, "size_str/parse_size round trips");

	for (bad = 0, i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		if (parse_host(hosts[i], &h, &errstr) == -1) {
			bad++;
			continue;
		}
		host_str(&h, buf, sizeof(buf));
		if (strcmp(buf, hosts[i]) != 0 ||
		    parse_host(buf, &h2, &errstr) == -1 ||
		    strcmp(h.name, h2.name) != 0 || h.port != h2.port ||
		    h.flags != h2.flags) {
			diag("host \"%s\" -> \"%s\"", hosts[i], buf);
			bad++;
		}
	}
	ok(bad == 0, "host_str/parse_host round trips");
	parse_host("name:25", &h, &errstr);
	host_str(&h, buf, sizeof(buf));
	ok(strcmp(buf, "name") == 0, "host_str leaves out port 25");
}

static void
test_printable(void)
{
	char	 out[8], in[32];
	char	*p;

	str_printable(out, sizeof(out), "a\r\nb\x1b[c\xc3");
	ok(strcmp(out, "a??b?[c") == 0, "printable: %s", out);
	ok(strcmp(str_printable(out, sizeof(out), "x y\x7f~"), "x y?~") == 0,
	    "printable: space and ~ stay, DEL goes");
	out[0] = 'z';
	ok(str_printable(out, 0, "abc") == out && out[0] == 'z',
	    "printable: nothing written into no room");
	strlcpy(in, "in\tplace\xe9", sizeof(in));
	ok(strcmp(str_printable(in, sizeof(in), in), "in?place?") == 0,
	    "printable: in place");
	p = str_dup("copy");
	ok(p != NULL && strcmp(p, "copy") == 0, "str_dup");
	free(p);
}

static void
test_misc(void)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_un	 sun;
	socklen_t		 len;
	char			 buf[INET6_ADDRSTRLEN], s[32];

	ok(parse_sockaddr("192.0.2.1", 2525, &ss, &len) == 0 &&
	    len == sizeof(struct sockaddr_in) &&
	    ((struct sockaddr_in *)&ss)->sin_port == htons(2525) &&
	    strcmp(sa_str((struct sockaddr *)&ss, buf, sizeof(buf)),
	    "192.0.2.1") == 0, "parse_sockaddr/sa_str IPv4");
	ok(parse_sockaddr("2001:db8::1", 25, &ss, &len) == 0 &&
	    len == sizeof(struct sockaddr_in6) &&
	    strcmp(sa_str((struct sockaddr *)&ss, buf, sizeof(buf)),
	    "2001:db8::1") == 0, "parse_sockaddr/sa_str IPv6");
	ok(parse_sockaddr("mx.example.com", 25, &ss, &len) == -1,
	    "parse_sockaddr refuses a name");
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ok(strcmp(sa_str((struct sockaddr *)&sun, buf, sizeof(buf)),
	    "local") == 0, "sa_str of a unix socket");
	ok(valid_domain("example.com") && valid_domain("a-b_c.example") &&
	    !valid_domain("") && !valid_domain(".") &&
	    !valid_domain("a..b") && !valid_domain("a b"),
	    "valid_domain");
	strlcpy(s, "MiXeD.Example.COM\xc3\x89", sizeof(s));
	str_lower(s);
	ok(strcmp(s, "mixed.example.com\xc3\x89") == 0,
	    "str_lower: ASCII only");
	ok(hex_value('0') == 0 && hex_value('9') == 9 &&
	    hex_value('a') == 10 && hex_value('F') == 15 &&
	    hex_value('g') == -1 && hex_value('G') == -1 &&
	    hex_value('/') == -1 && hex_value(':') == -1 &&
	    hex_value('@') == -1 && hex_value('`') == -1 &&
	    hex_value(0xc3) == -1 && hex_value(-61) == -1,
	    "hex_value: digits of either case, -1 otherwise");
	test_printable();
	test_json();
}

static void
test_json(void)
{
	char	*buf = NULL;
	size_t	 len = 0;
	FILE	*fp;

	if ((fp = open_memstream(&buf, &len)) == NULL) {
		ok(0, "json_str: open_memstream");
		return;
	}
	json_str(fp, "a\"b\\c\n\r\t\x01\x7f\xc3\xa9");
	fclose(fp);
	ok(strcmp(buf, "\"a\\\"b\\\\c\\n\\r\\t\\u0001\x7f\xc3\xa9\"") ==
	    0, "json_str escapes quotes, backslashes and controls");
	free(buf);
}

int
main(void)
{
	plan(NTESTS);
	test_size();
	test_duration();
	test_host();
	test_net();
	test_match();
	test_print();
	test_misc();
	return done();
}
