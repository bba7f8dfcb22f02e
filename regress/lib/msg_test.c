/*
 * Unit tests of lib/msg.c: typed fields, framing, descriptor passing and
 * the libevent glue, over real socketpairs in one process.  TAP output.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msg.h"
#include "tap.h"

#define NTESTS		117
#define WAIT_MS		5000	/* a test that waits longer has failed */
#define RT_COUNT	10000	/* messages each way in the event test */
#define RT_BIG		200000	/* every 1000th request is this large */
#define FD_COUNT	200	/* messages carrying a descriptor */
#define FD_BATCH	16	/* descriptors in flight at once */

struct evctx {
	int		 msgs;
	int		 nulls;
	int		 stop_after;	/* del the event after that many */
	int		 clear;		/* msgchan_clear on the first */
	int		 free_on_null;
};

struct rt {
	struct msgchan	 a;		/* sends requests, checks replies */
	struct msgchan	 b;		/* checks requests, replies */
	uint32_t	 next_req;
	uint32_t	 next_rep;
	int		 bad;
	int		 lost;
	char		 why[128];
};

static void	 nohandler(struct msgchan *, struct msg *, void *);
static void	 chan_pair(struct msgchan *, struct msgchan *);
static int	 pump(struct msgchan *, struct msgchan *, struct msg *);
static int	 capture(struct msg *, uint8_t *, size_t, size_t *);
static void	 put_hdr(uint8_t *, uint32_t, uint32_t, uint32_t, uint32_t);
static int	 write_all(int, const void *, size_t);
static int	 count_fds(void);
static int	 fd_open(int);
static int	 get_raw(const void *, size_t, struct msg *);
static void	 fill(uint8_t *, size_t, uint32_t);
static int	 check_fill(const uint8_t *, size_t, uint32_t);
static int	 bad_frame(const uint8_t *, size_t);
static int	 send_fds(int, int, int);
static size_t	 rt_size(uint32_t);

static void	 test_scalars(void);
static void	 test_data_and_strings(void);
static void	 test_sockaddr(void);
static void	 test_header_fields(void);
static void	 test_end_and_short(void);
static void	 test_bad_strings(void);
static void	 test_bad_sockaddr(void);
static void	 test_oversize(void);
static void	 test_fd_ownership(void);
static void	 test_fragmented(void);
static void	 test_many_in_one_read(void);
static void	 test_bad_frames(void);
static void	 test_truncated_eof(void);
static void	 test_fd_passing(void);
static void	 test_too_many_fds(void);
static void	 test_clear_closes(void);
static void	 test_closed_channel(void);
static void	 test_ev_peer_closes(void);
static void	 test_ev_write_error(void);
static void	 test_ev_buffered(void);
static void	 test_ev_clear_in_handler(void);
static void	 test_ev_pause_then_eof(void);
static void	 test_ev_full_buffer(void);
static void	 on_alarm(int);
static void	 rt_request(struct rt *, uint32_t);
static void	 rt_a(struct msgchan *, struct msg *, void *);
static void	 rt_b(struct msgchan *, struct msg *, void *);
static void	 ev_count(struct msgchan *, struct msg *, void *);
static void	 test_ev_round_trip(void);

static uint8_t	 big[MSG_MAXSIZE];

static void
nohandler(struct msgchan *ch, struct msg *m, void *arg)
{
	(void)ch;
	(void)m;
	(void)arg;
}

static void
chan_pair(struct msgchan *a, struct msgchan *b)
{
	int	 sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
		perror("socketpair");
		exit(2);
	}
	msgchan_init(a, sv[0], 0, nohandler, NULL);
	msgchan_init(b, sv[1], 0, nohandler, NULL);
}

/*
 * Moves what a has queued to b until one message can be taken from b:
 * 1 with the message, -1 on a bad frame, an error, EOF or a timeout.
 */
static int
pump(struct msgchan *a, struct msgchan *b, struct msg *m)
{
	struct pollfd	 pfd[2];
	ssize_t		 n;
	int		 r;

	for (;;) {
		if (a != NULL && msgchan_write(a) == -1)
			return -1;
		if ((r = msgchan_get(b, m)) != 0)
			return r;
		if ((n = msgchan_read(b)) == 0)
			return -1;
		if (n > 0)
			continue;
		if (errno != EAGAIN)
			return -1;
		pfd[0].fd = b->fd;
		pfd[0].events = POLLIN;
		pfd[1].fd = a != NULL ? a->fd : -1;
		pfd[1].events = a != NULL && a->outlen > 0 ? POLLOUT : 0;
		if (poll(pfd, 2, WAIT_MS) <= 0)
			return -1;
	}
}

/* The bytes a channel writes for m (m is cleared). */
static int
capture(struct msg *m, uint8_t *buf, size_t bufsz, size_t *lenp)
{
	struct msgchan	 a;
	int		 sv[2];
	size_t		 want = MSG_HDRSZ + m->len, got = 0;
	ssize_t		 n;

	if (want > bufsz ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
		msg_clear(m);
		return -1;
	}
	msgchan_init(&a, sv[0], 0, nohandler, NULL);
	if (msgchan_send(&a, m) == -1 || msgchan_flush(&a) == -1) {
		msgchan_clear(&a);
		close(sv[1]);
		return -1;
	}
	while (got < want) {
		if ((n = read(sv[1], buf + got, want - got)) <= 0)
			break;
		got += (size_t)n;
	}
	msgchan_clear(&a);
	close(sv[1]);
	*lenp = got;
	return got == want ? 0 : -1;
}

static void
put_hdr(uint8_t *p, uint32_t type, uint32_t flags, uint32_t len,
    uint32_t peerid)
{
	uint32_t	 h[5];

	h[0] = type;
	h[1] = flags;
	h[2] = len;
	h[3] = peerid;
	h[4] = (uint32_t)getpid();
	memcpy(p, h, sizeof(h));
}

static int
write_all(int fd, const void *p, size_t len)
{
	const uint8_t	*b = p;
	ssize_t		 n;

	while (len > 0) {
		if ((n = write(fd, b, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
count_fds(void)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own descriptor */
}

static int
fd_open(int fd)
{
	return fd >= 0 && fcntl(fd, F_GETFD) != -1;
}

/* A received-looking message over a copy of raw payload bytes. */
static int
get_raw(const void *p, size_t len, struct msg *m)
{
	msg_init(m, 1, 0);
	if (len > 0) {
		if ((m->buf = malloc(len)) == NULL)
			return -1;
		memcpy(m->buf, p, len);
	}
	m->len = m->cap = len;
	return 0;
}

static void
fill(uint8_t *p, size_t len, uint32_t seed)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 7 + i * 13 + (i >> 8));
}

static int
check_fill(const uint8_t *p, size_t len, uint32_t seed)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (p[i] != (uint8_t)(seed * 7 + i * 13 + (i >> 8)))
			return 0;
	return 1;
}

/* What msgchan_get says of these bytes, written in one go: 1, 0, -1. */
static int
bad_frame(const uint8_t *p, size_t len)
{
	struct msgchan	 a, b;
	struct msg	 m;
	int		 r;

	chan_pair(&a, &b);
	if (write_all(a.fd, p, len) == -1 || msgchan_read(&b) <= 0)
		r = -2;
	else if ((r = msgchan_get(&b, &m)) == 1)
		msg_clear(&m);
	msgchan_clear(&a);
	msgchan_clear(&b);
	return r;
}

static void
test_scalars(void)
{
	struct msgchan	 a, b;
	struct msg	 m;
	uint8_t		 u8;
	uint16_t	 u16;
	uint32_t	 u32;
	uint64_t	 u64;
	int64_t		 i64;
	int		 good = 1;

	chan_pair(&a, &b);
	msg_init(&m, 7, 3);
	msg_add_u8(&m, 0);
	msg_add_u8(&m, UINT8_MAX);
	msg_add_u16(&m, 0x1234);
	msg_add_u16(&m, UINT16_MAX);
	msg_add_u32(&m, 0xdeadbeef);
	msg_add_u32(&m, 0);
	msg_add_u64(&m, UINT64_MAX);
	msg_add_u64(&m, 0x0102030405060708ULL);
	msg_add_i64(&m, INT64_MIN);
	msg_add_i64(&m, -1);
	msg_add_i64(&m, INT64_MAX);
	ok(m.error == 0 && m.len == 2 + 4 + 8 + 16 + 24,
	    "scalars: composed, %zu bytes", m.len);
	ok(msgchan_send(&a, &m) == 0 && m.buf == NULL && m.len == 0,
	    "scalars: sent, message cleared");
	if (!ok(pump(&a, &b, &m) == 1, "scalars: received")) {
		msgchan_clear(&a);
		msgchan_clear(&b);
		return;
	}
	good &= msg_get_u8(&m, &u8) == 0 && u8 == 0;
	good &= msg_get_u8(&m, &u8) == 0 && u8 == UINT8_MAX;
	ok(good, "scalars: u8 round trip");
	good &= msg_get_u16(&m, &u16) == 0 && u16 == 0x1234;
	good &= msg_get_u16(&m, &u16) == 0 && u16 == UINT16_MAX;
	ok(good, "scalars: u16 round trip");
	good &= msg_get_u32(&m, &u32) == 0 && u32 == 0xdeadbeef;
	good &= msg_get_u32(&m, &u32) == 0 && u32 == 0;
	ok(good, "scalars: u32 round trip");
	good &= msg_get_u64(&m, &u64) == 0 && u64 == UINT64_MAX;
	good &= msg_get_u64(&m, &u64) == 0 && u64 == 0x0102030405060708ULL;
	ok(good, "scalars: u64 round trip");
	good &= msg_get_i64(&m, &i64) == 0 && i64 == INT64_MIN;
	good &= msg_get_i64(&m, &i64) == 0 && i64 == -1;
	good &= msg_get_i64(&m, &i64) == 0 && i64 == INT64_MAX;
	ok(good, "scalars: i64 round trip");
	ok(msg_end(&m) == 0, "scalars: msg_end after every field");
	msg_clear(&m);
	msgchan_clear(&a);
	msgchan_clear(&b);
}

static void
test_data_and_strings(void)
{
	struct msgchan	 a, b;
	struct msg	 m;
	uint8_t		 dst[64];
	char		 s[16];
	const void	*p;
	const char	*sp;
	size_t		 len = 99;

	chan_pair(&a, &b);
	msg_init(&m, 1, 0);
	msg_add_data(&m, "\x00\x01\x02\xff", 4);
	msg_add_data(&m, NULL, 0);
	msg_add_data(&m, "pointer", 7);
	msg_add_str(&m, "hello");
	msg_add_str(&m, "");
	msg_add_str(&m, NULL);
	msg_add_str(&m, "pointed");
	msg_add_str(&m, "");
	msg_add_str(&m, NULL);
	if (!ok(msgchan_send(&a, &m) == 0 && pump(&a, &b, &m) == 1,
	    "data/str: sent and received")) {
		msgchan_clear(&a);
		msgchan_clear(&b);
		return;
	}
	ok(msg_get_data(&m, dst, sizeof(dst), &len) == 0 && len == 4 &&
	    memcmp(dst, "\x00\x01\x02\xff", 4) == 0,
	    "data: bytes with NUL and 0xff round trip");
	len = 99;
	ok(msg_get_data(&m, dst, 0, &len) == 0 && len == 0,
	    "data: empty data into a zero-size buffer");
	ok(msg_get_datap(&m, &p, &len) == 0 && len == 7 &&
	    memcmp(p, "pointer", 7) == 0 &&
	    (const uint8_t *)p > m.buf && (const uint8_t *)p < m.buf + m.len,
	    "data: msg_get_datap points into the message");
	ok(msg_get_str(&m, s, sizeof(s)) == 0 && strcmp(s, "hello") == 0,
	    "str: \"hello\" round trip");
	s[0] = 'x';
	ok(msg_get_str(&m, s, sizeof(s)) == 0 && s[0] == '\0',
	    "str: empty string round trip");
	ok(msg_get_strp(&m, &sp) == 0 && sp == NULL,
	    "str: NULL round trip through msg_get_strp");
	ok(msg_get_strp(&m, &sp) == 0 && sp != NULL &&
	    strcmp(sp, "pointed") == 0 && (const uint8_t *)sp > m.buf,
	    "str: msg_get_strp points into the message");
	ok(msg_get_strp(&m, &sp) == 0 && sp != NULL && *sp == '\0',
	    "str: empty string through msg_get_strp is \"\", not NULL");
	ok(msg_get_str(&m, s, sizeof(s)) == -1 && m.error,
	    "str: a NULL string fails msg_get_str");
	msg_clear(&m);
	msgchan_clear(&a);
	msgchan_clear(&b);

	/* A string that exactly fits, and one byte more. */
	msg_init(&m, 1, 0);
	msg_add_str(&m, "fits15charsxxxx");
	msg_add_str(&m, "sixteen chars xx");
	ok(msg_get_str(&m, s, sizeof(s)) == 0 &&
	    strcmp(s, "fits15charsxxxx") == 0,
	    "str: 15 characters fit a 16-byte buffer");
	ok(msg_get_str(&m, s, sizeof(s)) == -1,
	    "str: 16 characters do not fit a 16-byte buffer");
	msg_clear(&m);

	msg_init(&m, 1, 0);
	msg_add_data(&m, "12345", 5);
	ok(msg_get_data(&m, dst, 4, &len) == -1 && m.error,
	    "data: larger than the destination fails");
	msg_clear(&m);
}

static void
test_sockaddr(void)
{
	struct msgchan		 a, b;
	struct msg		 m;
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	struct sockaddr_un	 sun, unnamed;
	struct sockaddr_storage	 ss;
	socklen_t		 len, unlen;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(2525);
	sin6.sin6_scope_id = 3;
	inet_pton(AF_INET6, "2001:db8::25", &sin6.sin6_addr);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, "/run/splitmx/control.sock",
	    sizeof(sun.sun_path));
	unlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(sun.sun_path) + 1);
	memset(&unnamed, 0, sizeof(unnamed));
	unnamed.sun_family = AF_UNIX;

	chan_pair(&a, &b);
	msg_init(&m, 1, 0);
	msg_add_sockaddr(&m, (struct sockaddr *)&sin, sizeof(sin));
	msg_add_sockaddr(&m, (struct sockaddr *)&sin6, sizeof(sin6));
	msg_add_sockaddr(&m, (struct sockaddr *)&sun, unlen);
	msg_add_sockaddr(&m, (struct sockaddr *)&unnamed,
	    offsetof(struct sockaddr_un, sun_path));
	if (!ok(m.error == 0 && msgchan_send(&a, &m) == 0 &&
	    pump(&a, &b, &m) == 1, "sockaddr: sent and received")) {
		msgchan_clear(&a);
		msgchan_clear(&b);
		return;
	}
	ok(msg_get_sockaddr(&m, &ss, &len) == 0 && len == sizeof(sin) &&
	    memcmp(&ss, &sin, sizeof(sin)) == 0,
	    "sockaddr: IPv4 round trip");
	ok(msg_get_sockaddr(&m, &ss, &len) == 0 && len == sizeof(sin6) &&
	    memcmp(&ss, &sin6, sizeof(sin6)) == 0,
	    "sockaddr: IPv6 round trip (port and scope kept)");
	ok(msg_get_sockaddr(&m, &ss, &len) == 0 && len == unlen &&
	    memcmp(&ss, &sun, unlen) == 0 &&
	    strcmp(((struct sockaddr_un *)&ss)->sun_path,
	    "/run/splitmx/control.sock") == 0,
	    "sockaddr: unix path round trip");
	ok(msg_get_sockaddr(&m, &ss, &len) == 0 &&
	    len == offsetof(struct sockaddr_un, sun_path) &&
	    ss.ss_family == AF_UNIX,
	    "sockaddr: unnamed unix socket round trip");
	ok(msg_end(&m) == 0, "sockaddr: msg_end");
	msg_clear(&m);
	msgchan_clear(&a);
	msgchan_clear(&b);
}

static void
test_header_fields(void)
{
	struct msgchan	 a, b;
	struct msg	 m;
	uint8_t		 raw[64];
	uint32_t	 h[5];
	size_t		 len;

	msg_init(&m, 0xabcdef01, 0x12345678);
	msg_add_u32(&m, 5);
	ok(capture(&m, raw, sizeof(raw), &len) == 0 && len == MSG_HDRSZ + 4,
	    "header: a 4-byte payload makes a 24-byte frame");
	memcpy(h, raw, sizeof(h));
	ok(h[0] == 0xabcdef01 && h[1] == 0 && h[2] == MSG_HDRSZ + 4 &&
	    h[3] == 0x12345678 && h[4] == (uint32_t)getpid(),
	    "header: type, flags, length, peerid, pid in host order");

	chan_pair(&a, &b);
	ok(msgchan_compose(&a, 42, 9, -1, "flat", 4) == 0 &&
	    pump(&a, &b, &m) == 1 && m.type == 42 && m.peerid == 9 &&
	    m.pid == (uint32_t)getpid() && m.fd == -1 && m.len == 4 &&
	    memcmp(m.buf, "flat", 4) == 0,
	    "compose: flat payload and header fields arrive");
	msg_clear(&m);
	ok(msgchan_compose(&a, 43, 0, -1, NULL, 0) == 0 &&
	    pump(&a, &b, &m) == 1 && m.type == 43 && m.len == 0 &&
	    msg_end(&m) == 0,
	    "compose: empty message is a bare header");
	msg_clear(&m);
	msgchan_clear(&a);
	msgchan_clear(&b);
}

static void
test_end_and_short(void)
{
	struct msg	 m;
	uint32_t	 u32;
	uint16_t	 u16;
	uint8_t		 u8;
	const void	*p;
	char		 s[8];

	msg_init(&m, 1, 0);
	msg_add_u32(&m, 1);
	msg_add_u8(&m, 2);
	ok(msg_get_u32(&m, &u32) == 0 && msg_end(&m) == -1,
	    "end: an unconsumed byte fails msg_end");
	msg_clear(&m);

	msg_init(&m, 1, 0);
	msg_add_u16(&m, 1);
	ok(msg_get_u32(&m, &u32) == -1 && m.error,
	    "short: u32 from a 2-byte message fails");
	ok(msg_get_u16(&m, &u16) == -1,
	    "short: the error is sticky (a fitting get fails after it)");
	ok(msg_end(&m) == -1, "short: msg_end fails after a failed get");
	msg_clear(&m);

	msg_init(&m, 1, 0);
	ok(msg_end(&m) == 0 && msg_get_u8(&m, &u8) == -1,
	    "short: an empty message ends at once and has no u8");
	msg_clear(&m);

	msg_init(&m, 1, 0);
	msg_add_u32(&m, 10);		/* says 10 bytes follow */
	msg_add_u32(&m, 0);
	ok(msg_get_datap(&m, &p, NULL) == -1,
	    "short: data length beyond the message fails");
	msg_clear(&m);

	msg_init(&m, 1, 0);
	msg_add_u32(&m, 3);		/* a string cut before its NUL */
	msg_add_u8(&m, 'a');
	msg_add_u8(&m, 'b');
	msg_add_u8(&m, 'c');
	ok(msg_get_str(&m, s, sizeof(s)) == -1,
	    "short: string without room for its NUL fails");
	msg_clear(&m);
}

static void
test_bad_strings(void)
{
	struct msg	 m;
	const char	*sp;
	char		 s[16];
	uint8_t		 raw[16];
	uint32_t	 n;

	n = 3;
	memcpy(raw, &n, 4);
	memcpy(raw + 4, "a\0b", 4);	/* embedded NUL, then the NUL */
	get_raw(raw, 8, &m);
	ok(msg_get_str(&m, s, sizeof(s)) == -1,
	    "str: embedded NUL rejected by msg_get_str");
	msg_clear(&m);
	get_raw(raw, 8, &m);
	ok(msg_get_strp(&m, &sp) == -1,
	    "str: embedded NUL rejected by msg_get_strp");
	msg_clear(&m);

	memcpy(raw + 4, "abcX", 4);	/* no terminating NUL */
	get_raw(raw, 8, &m);
	ok(msg_get_strp(&m, &sp) == -1 && m.error,
	    "str: missing terminating NUL rejected");
	msg_clear(&m);

	n = 0xfffffffe;			/* huge, not the NULL marker */
	memcpy(raw, &n, 4);
	get_raw(raw, 8, &m);
	ok(msg_get_strp(&m, &sp) == -1, "str: huge length rejected");
	msg_clear(&m);
}

static void
test_bad_sockaddr(void)
{
	struct msg		 m;
	struct sockaddr_in	 sin;
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	uint8_t			 raw[4 + sizeof(struct sockaddr_storage) + 4];
	uint32_t		 n;
	sa_family_t		 af;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	msg_init(&m, 1, 0);
	msg_add_sockaddr(&m, (struct sockaddr *)&sin, 8);
	ok(m.error && m.len == 0, "sockaddr: short IPv4 refused by add");
	msg_clear(&m);
	msg_init(&m, 1, 0);
	msg_add_sockaddr(&m, (struct sockaddr *)&sin,
	    sizeof(struct sockaddr_in6));
	ok(m.error, "sockaddr: IPv4 with the IPv6 length refused by add");
	msg_clear(&m);

	memset(raw, 0, sizeof(raw));
	n = 16;
	memcpy(raw, &n, 4);
	af = AF_APPLETALK;
	memcpy(raw + 4, &af, sizeof(af));
	get_raw(raw, 4 + 16, &m);
	ok(msg_get_sockaddr(&m, &ss, &len) == -1,
	    "sockaddr: unknown family rejected");
	msg_clear(&m);

	n = 12;
	memcpy(raw, &n, 4);
	af = AF_INET6;
	memcpy(raw + 4, &af, sizeof(af));
	get_raw(raw, 4 + 12, &m);
	ok(msg_get_sockaddr(&m, &ss, &len) == -1,
	    "sockaddr: IPv6 with a short length rejected");
	msg_clear(&m);

	n = sizeof(struct sockaddr_storage) + 4;
	memcpy(raw, &n, 4);
	af = AF_UNIX;
	memcpy(raw + 4, &af, sizeof(af));
	get_raw(raw, sizeof(raw), &m);
	ok(msg_get_sockaddr(&m, &ss, &len) == -1,
	    "sockaddr: longer than sockaddr_storage rejected");
	msg_clear(&m);
}

static void
test_oversize(void)
{
	struct msgchan	 a, b;
	struct msg	 m;
	const void	*p;
	size_t		 len;
	char		*s;
	int		 fds[2];

	fill(big, MSG_MAXPAYLOAD, 5);

	chan_pair(&a, &b);
	msg_init(&m, 1, 0);
	msg_add_data(&m, big, MSG_MAXPAYLOAD - 4);
	ok(m.error == 0 && m.len == MSG_MAXPAYLOAD,
	    "oversize: data filling MSG_MAXPAYLOAD exactly is fine");
	if (ok(msgchan_send(&a, &m) == 0 && pump(&a, &b, &m) == 1 &&
	    m.len == MSG_MAXPAYLOAD,
	    "oversize: a MSG_MAXSIZE frame goes through")) {
		ok(msg_get_datap(&m, &p, &len) == 0 &&
		    len == MSG_MAXPAYLOAD - 4 && check_fill(p, len, 5) &&
		    msg_end(&m) == 0,
		    "oversize: max-size data arrives intact");
		msg_add_u8(&m, 1);
		ok(m.error && m.len == MSG_MAXPAYLOAD,
		    "oversize: one byte more sets the error, adds nothing");
	} else {
		ok(0, "oversize: max-size data arrives intact");
		ok(0, "oversize: one byte more sets the error");
	}
	msg_clear(&m);

	if (pipe(fds) == -1)
		exit(2);
	msg_init(&m, 1, 0);
	msg_add_data(&m, big, MSG_MAXPAYLOAD - 3);
	msg_set_fd(&m, fds[1]);
	ok(m.error && m.len == 0, "oversize: data one byte too large");
	ok(msgchan_send(&a, &m) == -1 && m.buf == NULL && m.fd == -1 &&
	    a.outlen == 0 && TAILQ_EMPTY(&a.outq),
	    "oversize: msgchan_send refuses it, queues nothing");
	ok(!fd_open(fds[1]), "oversize: the refused message's fd is closed");
	close(fds[0]);

	msg_init(&m, 1, 0);
	msg_add_u8(&m, 1);
	msg_add_data(&m, big, MSG_MAXPAYLOAD);
	msg_add_u8(&m, 2);
	ok(m.error && m.len == 1, "oversize: sticky, later adds do nothing");
	msg_clear(&m);

	if ((s = malloc(MSG_MAXPAYLOAD)) == NULL)
		exit(2);
	memset(s, 'x', MSG_MAXPAYLOAD - 1);
	s[MSG_MAXPAYLOAD - 1] = '\0';
	msg_init(&m, 1, 0);
	msg_add_str(&m, s);
	ok(m.error, "oversize: a string longer than a message");
	msg_clear(&m);
	free(s);

	ok(msgchan_compose(&a, 1, 0, -1, big, MSG_MAXPAYLOAD + 1) == -1,
	    "oversize: msgchan_compose refuses MSG_MAXPAYLOAD + 1");
	ok(msgchan_compose(&a, 1, 0, -1, big, MSG_MAXPAYLOAD) == 0 &&
	    pump(&a, &b, &m) == 1 && m.len == MSG_MAXPAYLOAD &&
	    check_fill(m.buf, m.len, 5),
	    "oversize: msgchan_compose takes MSG_MAXPAYLOAD");
	msg_clear(&m);
	msgchan_clear(&a);
	msgchan_clear(&b);
}

static void
test_fd_ownership(void)
{
	struct msg	 m;
	int		 p1[2], p2[2], fd;

	if (pipe(p1) == -1 || pipe(p2) == -1)
		exit(2);
	msg_init(&m, 1, 0);
	msg_set_fd(&m, p1[0]);
	msg_set_fd(&m, p2[0]);
	ok(!fd_open(p1[0]) && m.fd == p2[0],
	    "fd: msg_set_fd closes the descriptor it replaces");
	msg_clear(&m);
	ok(!fd_open(p2[0]) && m.fd == -1,
	    "fd: msg_clear closes the descriptor");

	msg_init(&m, 1, 0);
	msg_set_fd(&m, p1[1]);
	fd = msg_take_fd(&m);
	msg_clear(&m);
	ok(fd == p1[1] && fd_open(fd) && m.fd == -1 && msg_take_fd(&m) == -1,
	    "fd: msg_take_fd transfers ownership");
	close(p1[1]);
	close(p2[1]);
}

static void
test_fragmented(void)
{
	struct msgchan	 a, b;
	struct msg	 m;
	uint8_t		 raw[256];
	size_t		 len, i;
	uint32_t	 u32;
	char		 s[64];
	int		 early = 0, readerr = 0, r = 0;

	msg_init(&m, 77, 1);
	msg_add_u32(&m, 0xfeedface);
	msg_add_str(&m, "one byte at a time");
	msg_add_data(&m, "0123456789abcdef", 16);
	if (capture(&m, raw, sizeof(raw), &len) == -1) {
		ok(0, "fragmented: capture a frame");
		return;
	}
	chan_pair(&a, &b);
	for (i = 0; i < len; i++) {
		if (write_all(a.fd, raw + i, 1) == -1 ||
		    msgchan_read(&b) != 1)
			readerr++;
		r = msgchan_get(&b, &m);
		if (i + 1 < len && r != 0)
			early++;
	}
	ok(readerr == 0, "fragmented: %zu reads of one byte each", len);
	ok(early == 0, "fragmented: no message before the last byte");
	ok(r == 1 && m.type == 77 && msg_get_u32(&m, &u32) == 0 &&
	    u32 == 0xfeedface && msg_get_str(&m, s, sizeof(s)) == 0 &&
	    strcmp(s, "one byte at a time") == 0,
	    "fragmented: the message is complete after the last byte");
	if (r == 1)
		msg_clear(&m);
	ok(msgchan_get(&b, &m) == 0, "fragmented: nothing more");
	msgchan_clear(&a);
	msgchan_clear(&b);
}

static void
test_many_in_one_read(void)
{
	struct msgchan	 a, b;
	struct msg	 m;
	uint32_t	 i, v;
	ssize_t		 n;
	int		 good = 1;

	chan_pair(&a, &b);
	for (i = 0; i < 5; i++) {
		msg_init(&m, 100 + i, i);
		msg_add_u32(&m, i * 1000);
		msgchan_send(&a, &m);
	}
	ok(msgchan_flush(&a) == 0 && a.outlen == 0,
	    "batch: five frames flushed");
	n = msgchan_read(&b);
	ok(n == 5 * (MSG_HDRSZ + 4), "batch: one read takes all (%zd)", n);
	for (i = 0; i < 5; i++) {
		if (msgchan_get(&b, &m) != 1) {
			good = 0;
			break;
		}
		if (m.type != 100 + i || m.peerid != i ||
		    msg_get_u32(&m, &v) == -1 || v != i * 1000 ||
		    msg_end(&m) == -1)
			good = 0;
		msg_clear(&m);
	}
	ok(good, "batch: five messages in order from one read");
	ok(msgchan_get(&b, &m) == 0 && b.rpos == b.rlen,
	    "batch: then nothing left");
	msgchan_clear(&a);
	msgchan_clear(&b);
}

static void
test_bad_frames(void)
{
	uint8_t	 raw[64];
	char	 junk[] = "EHLO example.com\r\nMAIL FROM:<a@example.com>\r\n";

	memset(raw, 0, sizeof(raw));
	put_hdr(raw, 1, 0, MSG_HDRSZ - 1, 0);
	ok(bad_frame(raw, MSG_HDRSZ) == -1, "bad frame: length < header");
	put_hdr(raw, 1, 0, MSG_MAXSIZE + 1, 0);
	ok(bad_frame(raw, MSG_HDRSZ) == -1,
	    "bad frame: length > MSG_MAXSIZE, seen from the header alone");
	put_hdr(raw, 1, 0x2, MSG_HDRSZ, 0);
	ok(bad_frame(raw, MSG_HDRSZ) == -1, "bad frame: unknown flag bit");
	put_hdr(raw, 1, 0x80000000 | MSG_F_FD, MSG_HDRSZ, 0);
	ok(bad_frame(raw, MSG_HDRSZ) == -1, "bad frame: high flag bit");
	put_hdr(raw, 1, MSG_F_FD, MSG_HDRSZ + 4, 0);
	ok(bad_frame(raw, MSG_HDRSZ + 4) == -1,
	    "bad frame: MSG_F_FD without a descriptor");
	ok(bad_frame((uint8_t *)junk, strlen(junk)) == -1,
	    "bad frame: SMTP text instead of a frame");
	put_hdr(raw, 1, 0, MSG_HDRSZ + 8, 0);
	ok(bad_frame(raw, MSG_HDRSZ + 4) == 0,
	    "bad frame: a frame short of its length just waits");
	put_hdr(raw, 1, 0, MSG_HDRSZ, 0);
	ok(bad_frame(raw, MSG_HDRSZ - 1) == 0,
	    "bad frame: a partial header just waits");
	put_hdr(raw, 1, 0, MSG_HDRSZ, 0);
	ok(bad_frame(raw, MSG_HDRSZ) == 1, "bad frame: control, a good one");
}

static void
test_truncated_eof(void)
{
	struct msgchan	 a, b;
	struct msg	 m;
	uint8_t		 raw[100];

	memset(raw, 'z', sizeof(raw));
	put_hdr(raw, 1, 0, sizeof(raw), 0);
	chan_pair(&a, &b);
	write_all(a.fd, raw, 50);
	msgchan_clear(&a);
	ok(msgchan_read(&b) == 50 && msgchan_get(&b, &m) == 0,
	    "truncated: half a frame gives nothing");
	ok(msgchan_read(&b) == 0, "truncated: then EOF");
	msgchan_clear(&b);
}

static void
test_fd_passing(void)
{
	struct msgchan	 a, b;
	struct msg	 m;
	int		 rd[FD_COUNT], wr[FD_COUNT], fds[2];
	int		 i, j, base, sent, nbad = 0, nfdbad = 0, nwork = 0;
	int		 maxheld = 0, before;
	uint32_t	 idx;
	char		 c;
	const void	*p;
	size_t		 len;

	before = count_fds();
	chan_pair(&a, &b);
	for (base = 0; base < FD_COUNT; base += FD_BATCH) {
		sent = 0;
		for (i = base; i < FD_COUNT && i < base + FD_BATCH; i++) {
			if (pipe(fds) == -1)
				exit(2);
			rd[i] = fds[0];
			wr[i] = fds[1];
			msg_init(&m, 5, (uint32_t)i);
			msg_add_u32(&m, (uint32_t)i);
			/* Some large, so the fd rides on a partial write. */
			msg_add_data(&m, big, i % 10 == 3 ? 150000 : i);
			msg_set_fd(&m, wr[i]);
			if (msgchan_send(&a, &m) == -1)
				nbad++;
			sent++;
		}
		for (j = 0; j < sent; j++) {
			i = base + j;
			if (pump(&a, &b, &m) != 1) {
				nbad++;
				break;
			}
			if (b.nfds + 1 > maxheld)
				maxheld = b.nfds + 1;
			if (msg_get_u32(&m, &idx) == -1 || idx != (uint32_t)i ||
			    m.peerid != (uint32_t)i ||
			    msg_get_datap(&m, &p, &len) == -1 ||
			    len != (i % 10 == 3 ? 150000U : (size_t)i) ||
			    !check_fill(p, len, 5) || msg_end(&m) == -1)
				nbad++;
			if (m.fd == -1)
				nfdbad++;
			else {
				c = (char)i;
				if (write(m.fd, &c, 1) == 1 &&
				    read(rd[i], &c, 1) == 1 && c == (char)i)
					nwork++;
			}
			msg_clear(&m);
			close(rd[i]);
		}
	}
	ok(nbad == 0, "fd passing: %d messages in order and intact",
	    FD_COUNT);
	ok(nfdbad == 0, "fd passing: every message came with its fd");
	ok(nwork == FD_COUNT, "fd passing: %d of %d fds lead to their pipe",
	    nwork, FD_COUNT);
	ok(maxheld <= MSG_MAXFDS && b.nfds == 0,
	    "fd passing: at most %d held (%d), none left", MSG_MAXFDS,
	    maxheld);
	msgchan_clear(&a);
	msgchan_clear(&b);
	ok(count_fds() == before, "fd passing: no descriptor leaked");
}

/* Sends n copies of fd with one byte, in one sendmsg. */
static int
send_fds(int sock, int fd, int n)
{
	union {
		struct cmsghdr	hdr;
		uint8_t		buf[CMSG_SPACE(sizeof(int) * 100)];
	}		 cbuf;
	struct msghdr	 mh;
	struct cmsghdr	*cmsg;
	struct iovec	 iov;
	int		 i;
	char		 c = 0;

	if (n > 100)
		return -1;
	memset(&mh, 0, sizeof(mh));
	memset(&cbuf, 0, sizeof(cbuf));
	iov.iov_base = &c;
	iov.iov_len = 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf.buf;
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
	cmsg = CMSG_FIRSTHDR(&mh);
	cmsg->cmsg_len = CMSG_LEN(sizeof(int) * n);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	for (i = 0; i < n; i++)
		memcpy(CMSG_DATA(cmsg) + i * sizeof(int), &fd, sizeof(int));
	return sendmsg(sock, &mh, 0) == 1 ? 0 : -1;
}

static void
test_too_many_fds(void)
{
	struct msgchan	 a, b;
	int		 before, devnull, held;
	ssize_t		 n;

	if ((devnull = open("/dev/null", O_RDONLY)) == -1)
		exit(2);
	chan_pair(&a, &b);
	before = count_fds();
	ok(send_fds(a.fd, devnull, 40) == 0 && msgchan_read(&b) == 1 &&
	    b.nfds == 40, "too many fds: 40 received are held");
	held = count_fds();
	ok(send_fds(a.fd, devnull, 40) == 0 &&
	    (n = msgchan_read(&b)) == -1 && errno == EBADMSG,
	    "too many fds: 80 held would be an error");
	ok(b.nfds == MSG_MAXFDS && count_fds() == held + MSG_MAXFDS - 40,
	    "too many fds: %d kept, the extra ones closed", MSG_MAXFDS);
	msgchan_clear(&b);
	ok(count_fds() == before - 1, "too many fds: clear closes them all");
	msgchan_clear(&a);

	chan_pair(&a, &b);
	before = count_fds();
	ok(send_fds(a.fd, devnull, MSG_MAXFDS + 6) == 0 &&
	    msgchan_read(&b) == -1,
	    "too many fds: %d in one message (truncated) is an error",
	    MSG_MAXFDS + 6);
	msgchan_clear(&b);
	ok(count_fds() == before - 1,
	    "too many fds: none leaked after a truncated read");
	msgchan_clear(&a);
	close(devnull);
}

static void
test_clear_closes(void)
{
	struct msgchan	 a, b;
	int		 p1[2], p2[2];
	char		 c;

	if (pipe(p1) == -1 || pipe(p2) == -1)
		exit(2);
	chan_pair(&a, &b);
	/* p1's write end goes out and is held unclaimed by b. */
	ok(msgchan_compose(&a, 1, 0, p1[1], "x", 1) == 0 &&
	    msgchan_flush(&a) == 0 && msgchan_read(&b) > 0 && b.nfds == 1,
	    "clear: a received fd is held");
	/* p2's write end stays queued on a. */
	msgchan_compose(&a, 1, 0, p2[1], NULL, 0);
	ok(!TAILQ_EMPTY(&a.outq) && fd_open(p2[1]),
	    "clear: a queued frame holds its fd");
	msgchan_clear(&a);
	msgchan_clear(&b);
	ok(read(p1[0], &c, 1) == 0, "clear: received fd closed (EOF)");
	ok(read(p2[0], &c, 1) == 0, "clear: queued fd closed (EOF)");
	ok(a.fd == -1 && a.closed && b.rbuf == NULL && b.nfds == 0,
	    "clear: channel emptied");
	close(p1[0]);
	close(p2[0]);
}

static void
test_closed_channel(void)
{
	struct msgchan	 a, b;
	struct msg	 m;
	int		 p[2], flags;

	chan_pair(&a, &b);
	flags = fcntl(a.fd, F_GETFL);
	ok(flags != -1 && (flags & O_NONBLOCK),
	    "init: msgchan_init sets O_NONBLOCK");
	msgchan_clear(&a);
	if (pipe(p) == -1)
		exit(2);
	msg_init(&m, 1, 0);
	msg_add_u8(&m, 1);
	msg_set_fd(&m, p[1]);
	ok(msgchan_send(&a, &m) == -1 && !fd_open(p[1]) && m.buf == NULL,
	    "closed: send on a cleared channel fails and closes the fd");
	close(p[0]);

	msg_init(&m, 1, 0);
	msgchan_send(&b, &m);
	ok(msgchan_flush(&b) == -1, "closed: flush to a gone peer fails");
	msgchan_clear(&b);
}

static void
ev_count(struct msgchan *ch, struct msg *m, void *arg)
{
	struct evctx	*c = arg;

	if (m == NULL) {
		c->nulls++;
		if (c->free_on_null) {
			msgchan_clear(ch);
			free(ch);
		}
		return;
	}
	c->msgs++;
	if (c->clear)
		msgchan_clear(ch);
	else if (c->stop_after > 0 && c->msgs == c->stop_after)
		msgchan_event_del(ch);
}

static void
test_ev_peer_closes(void)
{
	struct msgchan	*ch;
	struct evctx	 c;
	uint8_t		 raw[64];
	int		 sv[2], before;

	memset(&c, 0, sizeof(c));
	memset(raw, 0, sizeof(raw));
	c.free_on_null = 1;
	before = count_fds();
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1 ||
	    (ch = calloc(1, sizeof(*ch))) == NULL)
		exit(2);
	msgchan_init(ch, sv[0], 0, ev_count, &c);
	msgchan_event_add(ch);
	/* A whole frame, then half of the next, then gone. */
	put_hdr(raw, 1, 0, MSG_HDRSZ + 4, 0);
	memcpy(raw + MSG_HDRSZ, "abcd", 4);
	put_hdr(raw + MSG_HDRSZ + 4, 2, 0, 40, 0);
	write_all(sv[1], raw, MSG_HDRSZ + 4 + 30);
	close(sv[1]);
	alarm(20);
	event_dispatch();
	alarm(0);
	ok(c.msgs == 1, "event: the whole frame before the close delivered");
	ok(c.nulls == 1, "event: peer closing mid-message gives NULL once");
	ok(count_fds() == before, "event: handler freed the channel");
}

static void
test_ev_write_error(void)
{
	struct msgchan	 ch;
	struct evctx	 c;
	struct msg	 m;
	int		 sv[2];

	memset(&c, 0, sizeof(c));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		exit(2);
	msgchan_init(&ch, sv[0], 0, ev_count, &c);
	/* The peer still writes nothing, but takes nothing either. */
	shutdown(sv[1], SHUT_RD);
	msgchan_event_add(&ch);
	msg_init(&m, 1, 0);
	msg_add_str(&m, "into the void");
	ok(msgchan_send(&ch, &m) == 0 && ch.flushing &&
	    !(ch.events & EV_WRITE),
	    "event: a queued frame waits for the turn's end, not EV_WRITE");
	alarm(20);
	event_dispatch();
	alarm(0);
	ok(c.nulls == 1 && c.msgs == 0 && ch.closed && !ch.evset,
	    "event: write error (EPIPE) gives NULL once");
	ok(msgchan_compose(&ch, 1, 0, -1, NULL, 0) == -1,
	    "event: a lost channel refuses to send");
	msgchan_clear(&ch);
	close(sv[1]);
}

static void
test_ev_buffered(void)
{
	struct msgchan	 a, b;
	struct msg	 m;
	struct evctx	 c;
	int		 i;

	memset(&c, 0, sizeof(c));
	c.stop_after = 3;
	chan_pair(&a, &b);
	b.handler = ev_count;
	b.arg = &c;
	for (i = 0; i < 4; i++)
		msgchan_compose(&a, 1, (uint32_t)i, -1, NULL, 0);
	msgchan_flush(&a);
	/* Read them all, take one: the way a child starts up. */
	if (msgchan_read(&b) <= 0 || msgchan_get(&b, &m) != 1)
		ok(0, "event: frames buffered before the loop");
	else {
		msg_clear(&m);
		msgchan_event_add(&b);
		alarm(20);
		event_dispatch();
		alarm(0);
		ok(c.msgs == 3 && c.nulls == 0,
		    "event: frames buffered before the loop delivered (%d)",
		    c.msgs);
	}
	msgchan_clear(&a);
	msgchan_clear(&b);
}

static void
test_ev_clear_in_handler(void)
{
	struct msgchan	 a, b;
	struct evctx	 c;
	int		 i;

	memset(&c, 0, sizeof(c));
	c.clear = 1;
	chan_pair(&a, &b);
	b.handler = ev_count;
	b.arg = &c;
	for (i = 0; i < 3; i++)
		msgchan_compose(&a, 1, 0, -1, "abc", 3);
	msgchan_flush(&a);
	msgchan_event_add(&b);
	alarm(20);
	event_dispatch();
	alarm(0);
	ok(c.msgs == 1 && c.nulls == 0 && b.fd == -1,
	    "event: handler may clear the channel while handling a message");
	msgchan_clear(&a);
}

/* Frames read before a pause are still delivered when the peer is gone. */
static void
test_ev_pause_then_eof(void)
{
	struct msgchan	 a, b;
	struct evctx	 c;
	int		 i;

	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	chan_pair(&a, &b);
	b.handler = ev_count;
	b.arg = &c;
	for (i = 0; i < 4; i++)
		msgchan_compose(&a, 1, (uint32_t)i, -1, "abc", 3);
	msgchan_flush(&a);
	msgchan_clear(&a);
	msgchan_event_add(&b);
	alarm(20);
	event_dispatch();
	ok(c.msgs == 2 && c.nulls == 0 && !b.evset,
	    "event: the handler can pause the channel");
	c.stop_after = 0;
	msgchan_event_add(&b);
	event_dispatch();
	alarm(0);
	ok(c.msgs == 4 && c.nulls == 1,
	    "event: after the pause, the rest comes before NULL");
	msgchan_clear(&b);
}

/* A buffer filled before the loop is emptied by it, not taken as an error. */
static void
test_ev_full_buffer(void)
{
	struct msgchan	 a, b;
	struct evctx	 c;
	struct pollfd	 pfd;
	ssize_t		 n = 0;
	int		 i, w = 0, tries;

	memset(&c, 0, sizeof(c));
	c.stop_after = 5;
	chan_pair(&a, &b);
	b.handler = ev_count;
	b.arg = &c;
	for (i = 0; i < 5; i++)
		msgchan_compose(&a, 1, (uint32_t)i, -1, big, 65536);
	for (tries = 0; tries < 1000; tries++) {
		if ((w = msgchan_write(&a)) == -1)
			break;
		n = msgchan_read(&b);
		if (n == -1 && errno == ENOBUFS && w == 1)
			break;
		if (n == -1 && errno == EAGAIN) {
			pfd.fd = b.fd;
			pfd.events = POLLIN;
			(void)poll(&pfd, 1, 10);
		} else if (n <= 0)
			break;
	}
	ok(w == 1 && n == -1 && errno == ENOBUFS && b.rlen == MSG_MAXSIZE,
	    "event: a full read buffer refuses more (ENOBUFS)");
	msgchan_event_add(&b);
	alarm(20);
	event_dispatch();
	alarm(0);
	ok(c.msgs == 5 && c.nulls == 0,
	    "event: the loop empties a full buffer (%d of 5)", c.msgs);
	msgchan_clear(&a);
	msgchan_clear(&b);
}

static void
on_alarm(int sig)
{
	static const char	 s[] = "Bail out! a test timed out\n";
	ssize_t			 n;

	(void)sig;
	n = write(STDOUT_FILENO, s, sizeof(s) - 1);
	_exit(n == -1 ? 2 : 1);
}

static size_t
rt_size(uint32_t i)
{
	return i % 1000 == 999 ? RT_BIG : (i * 37) % 3000;
}

static void
rt_request(struct rt *rt, uint32_t i)
{
	struct msg	 m;
	char		 s[32];

	(void)snprintf(s, sizeof(s), "request %u", i);
	msg_init(&m, 1, i);
	msg_add_u32(&m, i);
	msg_add_str(&m, s);
	msg_add_data(&m, big, rt_size(i));
	if (msgchan_send(&rt->a, &m) == -1)
		rt->bad++;
}

static void
rt_b(struct msgchan *ch, struct msg *m, void *arg)
{
	struct rt	*rt = arg;
	struct msg	 r;
	const char	*sp;
	const void	*p;
	char		 s[32];
	size_t		 len;
	uint32_t	 i;

	if (m == NULL) {
		rt->lost++;
		return;
	}
	(void)snprintf(s, sizeof(s), "request %u", rt->next_req);
	if (m->type != 1 || m->peerid != rt->next_req ||
	    msg_get_u32(m, &i) == -1 || i != rt->next_req ||
	    msg_get_strp(m, &sp) == -1 || sp == NULL || strcmp(sp, s) != 0 ||
	    msg_get_datap(m, &p, &len) == -1 || len != rt_size(i) ||
	    memcmp(p, big, len) != 0 || msg_end(m) == -1) {
		if (rt->bad++ == 0)
			(void)snprintf(rt->why, sizeof(rt->why),
			    "request %u wrong", rt->next_req);
	}
	rt->next_req++;
	(void)snprintf(s, sizeof(s), "reply %u", m->peerid);
	msg_init(&r, 2, m->peerid);
	msg_add_u32(&r, m->peerid);
	msg_add_u64(&r, (uint64_t)m->peerid * 3);
	msg_add_str(&r, s);
	msg_add_data(&r, big + 1, (m->peerid * 13) % 500);
	if (msgchan_send(ch, &r) == -1)
		rt->bad++;
}

static void
rt_a(struct msgchan *ch, struct msg *m, void *arg)
{
	struct rt	*rt = arg;
	const void	*p;
	char		 s[32], got[32];
	size_t		 len;
	uint64_t	 u64;
	uint32_t	 i;

	(void)ch;
	if (m == NULL) {
		rt->lost++;
		return;
	}
	(void)snprintf(s, sizeof(s), "reply %u", rt->next_rep);
	if (m->type != 2 || m->peerid != rt->next_rep ||
	    msg_get_u32(m, &i) == -1 || i != rt->next_rep ||
	    msg_get_u64(m, &u64) == -1 || u64 != (uint64_t)i * 3 ||
	    msg_get_str(m, got, sizeof(got)) == -1 || strcmp(got, s) != 0 ||
	    msg_get_datap(m, &p, &len) == -1 || len != (i * 13) % 500 ||
	    memcmp(p, big + 1, len) != 0 || msg_end(m) == -1) {
		if (rt->bad++ == 0)
			(void)snprintf(rt->why, sizeof(rt->why),
			    "reply %u wrong", rt->next_rep);
	}
	if (++rt->next_rep == RT_COUNT) {
		msgchan_event_del(&rt->a);
		msgchan_event_del(&rt->b);
	}
}

static void
test_ev_round_trip(void)
{
	struct rt	*rt;
	uint32_t	 i;

	if ((rt = calloc(1, sizeof(*rt))) == NULL)
		exit(2);
	fill(big, MSG_MAXSIZE, 11);
	chan_pair(&rt->a, &rt->b);
	rt->a.handler = rt_a;
	rt->a.arg = rt;
	rt->b.handler = rt_b;
	rt->b.arg = rt;
	msgchan_event_add(&rt->a);
	msgchan_event_add(&rt->b);
	for (i = 0; i < RT_COUNT; i++)
		rt_request(rt, i);
	ok(rt->a.events == EV_READ && rt->a.flushing &&
	    rt->b.events == EV_READ && !rt->b.flushing,
	    "round trip: output waits for the end of the turn, not EV_WRITE");
	alarm(60);
	event_dispatch();
	alarm(0);
	ok(rt->next_req == RT_COUNT, "round trip: %u of %u requests",
	    rt->next_req, RT_COUNT);
	ok(rt->next_rep == RT_COUNT, "round trip: %u of %u replies",
	    rt->next_rep, RT_COUNT);
	if (!ok(rt->bad == 0, "round trip: order and content checked"))
		diag("%d bad, first: %s", rt->bad, rt->why);
	ok(rt->lost == 0 && rt->a.outlen == 0 && rt->b.outlen == 0,
	    "round trip: nothing lost, nothing left queued");
	msgchan_clear(&rt->a);
	msgchan_clear(&rt->b);
	free(rt);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	if (event_init() == NULL) {
		fprintf(stderr, "event_init failed\n");
		return 2;
	}
	plan(NTESTS);
	test_scalars();
	test_data_and_strings();
	test_sockaddr();
	test_header_fields();
	test_end_and_short();
	test_bad_strings();
	test_bad_sockaddr();
	test_oversize();
	test_fd_ownership();
	test_fragmented();
	test_many_in_one_read();
	test_bad_frames();
	test_truncated_eof();
	test_fd_passing();
	test_too_many_fds();
	test_clear_closes();
	test_closed_channel();
	test_ev_peer_closes();
	test_ev_write_error();
	test_ev_buffered();
	test_ev_clear_in_handler();
	test_ev_pause_then_eof();
	test_ev_full_buffer();
	test_ev_round_trip();
	return done();
}
