/*
 * libFuzzer target over lib/msg.c: bytes (and maybe a descriptor) as a
 * peer process would write them on a channel, read, framed and decoded
 * with the typed readers, the way every process reads its messages.
 * fuzz-link: lib/msg.c lib/log.c lib/util.c
 *
 * Beyond memory: what decodes encodes back to the same payload bytes,
 * and the frame sent again is the same frame (type, flags, length,
 * peer id, payload); a string read has its NUL and no other; a
 * descriptor goes with its frame only.
 *
 * The input: one byte of options (bit 0: a descriptor travels with the
 * bytes), then the channel's bytes.  A frame's peer id is the layout
 * its payload is read with: ten 3-bit field kinds, low bits first.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "fuzz.h"

enum field {
	F_U8, F_U16, F_U32, F_U64, F_DATA, F_STR, F_STRP, F_SOCKADDR
};
#define NFIELDS		10

static void	handler(struct msgchan *, struct msg *, void *);
static void	check_message(struct msg *);
static void	check_frame(const struct msg *, struct msg *);
static int	send_bytes(int, const uint8_t *, size_t, int);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msgchan	 ch;
	struct msg	 m;
	int		 sv[2], r;

	/* More than a socket buffer holds is not what this is about. */
	if (size < 1 || size > 64 * 1024)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return 0;
	if (send_bytes(sv[0], data + 1, size - 1, data[0] & 1) == -1) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	close(sv[0]);
	msgchan_init(&ch, sv[1], 0, handler, NULL);
	while (msgchan_read(&ch) > 0)
		;
	while ((r = msgchan_get(&ch, &m)) == 1) {
		check_message(&m);
		msg_clear(&m);
	}
	FUZZ_CHECK(r == 0 || (r == -1 && errno == EBADMSG),
	    "msgchan_get: %d", r);
	msgchan_clear(&ch);
	return 0;
}

static void
handler(struct msgchan *ch, struct msg *m, void *arg)
{
	(void)ch;
	(void)m;
	(void)arg;
}

/* The bytes in one sendmsg, with /dev/null's descriptor if fd is set. */
static int
send_bytes(int s, const uint8_t *p, size_t n, int fd)
{
	union {
		struct cmsghdr	hdr;
		uint8_t		buf[CMSG_SPACE(sizeof(int))];
	}		 cbuf;
	struct msghdr	 mh;
	struct iovec	 iov;
	struct cmsghdr	*cmsg;
	int		 nfd = -1, r;

	if (n == 0)
		return 0;
	memset(&mh, 0, sizeof(mh));
	iov.iov_base = (void *)(uintptr_t)p;
	iov.iov_len = n;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (fd && (nfd = open("/dev/null", O_RDONLY | O_CLOEXEC)) != -1) {
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = sizeof(cbuf.buf);
		cmsg = CMSG_FIRSTHDR(&mh);
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(cmsg), &nfd, sizeof(nfd));
	}
	r = sendmsg(s, &mh, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
	if (nfd != -1)
		close(nfd);
	return r;
}

/* Read the payload as its peer id says, write it back, compare. */
static void
check_message(struct msg *m)
{
	struct sockaddr_storage	 ss;
	struct msg		 out;
	const void		*dp;
	const char		*sp;
	socklen_t		 sslen;
	uint64_t		 u64;
	uint32_t		 u32;
	uint16_t		 u16;
	uint8_t			 u8, dbuf[64];
	char			 str[64];
	size_t			 len, good = 0;
	int			 i, ok = 1;

	msg_init(&out, m->type, m->peerid);
	for (i = 0; i < NFIELDS && ok; i++) {
		switch ((enum field)((m->peerid >> (3 * i)) & 7)) {
		case F_U8:
			if ((ok = msg_get_u8(m, &u8) == 0))
				msg_add_u8(&out, u8);
			break;
		case F_U16:
			if ((ok = msg_get_u16(m, &u16) == 0))
				msg_add_u16(&out, u16);
			break;
		case F_U32:
			if ((ok = msg_get_u32(m, &u32) == 0))
				msg_add_u32(&out, u32);
			break;
		case F_U64:
			if ((ok = msg_get_u64(m, &u64) == 0))
				msg_add_u64(&out, u64);
			break;
		case F_DATA:
			/* The copying and the in-place reader agree. */
			len = 0;
			if (i % 2 == 0 && (ok = msg_get_data(m, dbuf,
			    sizeof(dbuf), &len) == 0)) {
				FUZZ_CHECK(len <= sizeof(dbuf), "data length");
				msg_add_data(&out, dbuf, len);
			} else if (i % 2 == 1 && (ok = msg_get_datap(m, &dp,
			    &len) == 0)) {
				FUZZ_CHECK(len <= m->len, "datap length");
				msg_add_data(&out, dp, len);
			}
			break;
		case F_STR:
			if ((ok = msg_get_str(m, str, sizeof(str)) == 0)) {
				FUZZ_CHECK(strlen(str) < sizeof(str),
				    "string overflows");
				msg_add_str(&out, str);
			}
			break;
		case F_STRP:
			if ((ok = msg_get_strp(m, &sp) == 0)) {
				FUZZ_CHECK(sp == NULL ||
				    (sp >= (const char *)m->buf &&
				    sp + strlen(sp) < (const char *)m->buf +
				    m->len), "string outside the message");
				msg_add_str(&out, sp);
			}
			break;
		case F_SOCKADDR:
			if ((ok = msg_get_sockaddr(m, &ss, &sslen) == 0)) {
				FUZZ_CHECK(sslen <= sizeof(ss),
				    "sockaddr length");
				msg_add_sockaddr(&out, (struct sockaddr *)&ss,
				    sslen);
			}
			break;
		}
		if (ok)
			good = m->rpos;
	}
	FUZZ_CHECK(ok == !m->error, "error flag %d after ok %d", m->error,
	    ok);
	FUZZ_CHECK(!out.error, "a decoded field does not encode");
	/* Whatever was read encodes back to the bytes it was read from. */
	FUZZ_CHECK(out.len == good && (good == 0 ||
	    memcmp(out.buf, m->buf, good) == 0),
	    "round trip differs (%zu bytes read, %zu written)", good, out.len);
	if (msg_end(m) == 0) {
		FUZZ_CHECK(ok && good == m->len, "msg_end with bytes left");
		msg_set_fd(&out, msg_take_fd(m));
		check_frame(m, &out);
	} else
		FUZZ_CHECK(m->error, "msg_end failed without error");
	msg_clear(&out);
}

/* The message sent again (out is cleared) frames as the one received. */
static void
check_frame(const struct msg *m, struct msg *out)
{
	struct msgchan	 a, b;
	struct msg	 again;
	int		 sv[2], hadfd = out->fd != -1, r;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return;
	msgchan_init(&a, sv[0], 0, handler, NULL);
	msgchan_init(&b, sv[1], 0, handler, NULL);
	FUZZ_CHECK(msgchan_send(&a, out) == 0, "send: %s", strerror(errno));
	FUZZ_CHECK(msgchan_flush(&a) == 0, "flush");
	FUZZ_CHECK(msgchan_read(&b) > 0, "read");
	r = msgchan_get(&b, &again);
	FUZZ_CHECK(r == 1, "frame not read back: %d", r);
	FUZZ_CHECK(again.type == m->type && again.peerid == m->peerid &&
	    again.len == m->len && (again.fd != -1) == hadfd &&
	    (m->len == 0 || memcmp(again.buf, m->buf, m->len) == 0),
	    "frame differs when sent again");
	msg_clear(&again);
	FUZZ_CHECK(msgchan_get(&b, &again) == 0, "a second frame");
	msgchan_clear(&a);
	msgchan_clear(&b);
}
