/*
 * Framed, typed messages and descriptor passing over the socketpairs
 * that join splitmx processes, and the libevent glue of a channel.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"

#define MSG_STR_NULL	0xffffffffU	/* length of a NULL string */
#define MSG_MINCAP	256		/* first allocation of a message */
#define MSG_IOVMAX	64		/* frames gathered in one sendmsg */

/* The header as it sits on the wire: five words, no padding. */
struct msg_wirehdr {
	uint32_t	 type;
	uint32_t	 flags;
	uint32_t	 len;
	uint32_t	 peerid;
	uint32_t	 pid;
};

_Static_assert(sizeof(struct msg_wirehdr) == MSG_HDRSZ,
    "wire header size");

static int	 msg_grow(struct msg *, size_t);
static void	 msg_add_raw(struct msg *, const void *, size_t);
static int	 msg_get_span(struct msg *, size_t, const uint8_t **);
static int	 msg_get_raw(struct msg *, void *, size_t);
static int	 msg_get_strn(struct msg *, const char **, size_t *);
static int	 msg_sockaddr_valid(const uint8_t *, size_t);
static void	 msgframe_free(struct msgframe *);
static void	 msgchan_compact(struct msgchan *);
static void	 msgchan_update(struct msgchan *);
static void	 msgchan_schedule(struct msgchan *);
static void	 msgchan_turn(int, short, void *);
static void	 msgchan_lost(struct msgchan *);
static void	 msgchan_dispatch(int, short, void *);

void
msg_init(struct msg *m, uint32_t type, uint32_t peerid)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->peerid = peerid;
	m->fd = -1;
}

void
msg_clear(struct msg *m)
{
	/* Keys travel in messages: leave nothing behind in the heap. */
	if (m->buf != NULL)
		freezero(m->buf, m->cap);
	m->buf = NULL;
	m->len = m->cap = m->rpos = 0;
	m->error = 0;
	if (m->fd != -1) {
		(void)close(m->fd);
		m->fd = -1;
	}
}

/* Room for n more bytes, within MSG_MAXPAYLOAD. */
static int
msg_grow(struct msg *m, size_t n)
{
	uint8_t	*p;
	size_t	 cap;

	if (m->error)
		return -1;
	if (n > MSG_MAXPAYLOAD - m->len) {
		m->error = 1;
		return -1;
	}
	if (m->len + n <= m->cap)
		return 0;
	cap = m->cap > 0 ? m->cap : MSG_MINCAP;
	while (cap < m->len + n)
		cap *= 2;
	if (cap > MSG_MAXPAYLOAD)
		cap = MSG_MAXPAYLOAD;
	if ((p = recallocarray(m->buf, m->cap, cap, 1)) == NULL) {
		m->error = 1;
		return -1;
	}
	m->buf = p;
	m->cap = cap;
	return 0;
}

static void
msg_add_raw(struct msg *m, const void *p, size_t n)
{
	if (msg_grow(m, n) == -1)
		return;
	if (n > 0) {
		memcpy(m->buf + m->len, p, n);
		m->len += n;
	}
}

void
msg_add_u8(struct msg *m, uint8_t v)
{
	msg_add_raw(m, &v, sizeof(v));
}

void
msg_add_u16(struct msg *m, uint16_t v)
{
	msg_add_raw(m, &v, sizeof(v));
}

void
msg_add_u32(struct msg *m, uint32_t v)
{
	msg_add_raw(m, &v, sizeof(v));
}

void
msg_add_u64(struct msg *m, uint64_t v)
{
	msg_add_raw(m, &v, sizeof(v));
}

void
msg_add_i64(struct msg *m, int64_t v)
{
	msg_add_raw(m, &v, sizeof(v));
}

void
msg_add_data(struct msg *m, const void *p, size_t len)
{
	/* All or nothing: the length never goes out without its bytes. */
	if (len > MSG_MAXPAYLOAD) {
		m->error = 1;
		return;
	}
	if (msg_grow(m, sizeof(uint32_t) + len) == -1)
		return;
	msg_add_u32(m, (uint32_t)len);
	msg_add_raw(m, p, len);
}

void
msg_add_str(struct msg *m, const char *s)
{
	size_t	 len;

	if (s == NULL) {
		msg_add_u32(m, MSG_STR_NULL);
		return;
	}
	len = strlen(s);
	if (len > MSG_MAXPAYLOAD) {
		m->error = 1;
		return;
	}
	if (msg_grow(m, sizeof(uint32_t) + len + 1) == -1)
		return;
	msg_add_u32(m, (uint32_t)len);
	msg_add_raw(m, s, len + 1);
}

void
msg_add_sockaddr(struct msg *m, const struct sockaddr *sa, socklen_t len)
{
	/* Refused here too, so that a bad address fails at its sender. */
	if (!msg_sockaddr_valid((const uint8_t *)sa, len)) {
		m->error = 1;
		return;
	}
	if (msg_grow(m, sizeof(uint32_t) + len) == -1)
		return;
	msg_add_u32(m, (uint32_t)len);
	msg_add_raw(m, sa, len);
}

void
msg_set_fd(struct msg *m, int fd)
{
	if (m->fd != -1 && m->fd != fd)
		(void)close(m->fd);
	m->fd = fd;
}

/* n bytes at the read position; *pp may be NULL for an empty message. */
static int
msg_get_span(struct msg *m, size_t n, const uint8_t **pp)
{
	if (m->error)
		return -1;
	if (m->rpos > m->len || n > m->len - m->rpos) {
		m->error = 1;
		return -1;
	}
	*pp = m->buf != NULL ? m->buf + m->rpos : NULL;
	m->rpos += n;
	return 0;
}

static int
msg_get_raw(struct msg *m, void *dst, size_t n)
{
	const uint8_t	*p;

	if (msg_get_span(m, n, &p) == -1)
		return -1;
	if (n > 0)
		memcpy(dst, p, n);
	return 0;
}

int
msg_get_u8(struct msg *m, uint8_t *v)
{
	return msg_get_raw(m, v, sizeof(*v));
}

int
msg_get_u16(struct msg *m, uint16_t *v)
{
	return msg_get_raw(m, v, sizeof(*v));
}

int
msg_get_u32(struct msg *m, uint32_t *v)
{
	return msg_get_raw(m, v, sizeof(*v));
}

int
msg_get_u64(struct msg *m, uint64_t *v)
{
	return msg_get_raw(m, v, sizeof(*v));
}

int
msg_get_i64(struct msg *m, int64_t *v)
{
	return msg_get_raw(m, v, sizeof(*v));
}

int
msg_get_data(struct msg *m, void *dst, size_t dstsz, size_t *lenp)
{
	const uint8_t	*p;
	uint32_t	 len;

	if (msg_get_u32(m, &len) == -1)
		return -1;
	if (len > dstsz) {
		m->error = 1;
		return -1;
	}
	if (msg_get_span(m, len, &p) == -1)
		return -1;
	if (len > 0)
		memcpy(dst, p, len);
	if (lenp != NULL)
		*lenp = len;
	return 0;
}

int
msg_get_datap(struct msg *m, const void **pp, size_t *lenp)
{
	const uint8_t	*p;
	uint32_t	 len;

	if (msg_get_u32(m, &len) == -1 || msg_get_span(m, len, &p) == -1)
		return -1;
	*pp = p;
	if (lenp != NULL)
		*lenp = len;
	return 0;
}

/* A string in place and its length; NULL for a NULL string. */
static int
msg_get_strn(struct msg *m, const char **sp, size_t *lenp)
{
	const uint8_t	*p;
	uint32_t	 len;

	if (msg_get_u32(m, &len) == -1)
		return -1;
	if (len == MSG_STR_NULL) {
		*sp = NULL;
		*lenp = 0;
		return 0;
	}
	if (msg_get_span(m, (size_t)len + 1, &p) == -1)
		return -1;
	if (p[len] != '\0' || memchr(p, '\0', len) != NULL) {
		m->error = 1;
		return -1;
	}
	*sp = (const char *)p;
	*lenp = len;
	return 0;
}

int
msg_get_str(struct msg *m, char *dst, size_t dstsz)
{
	const char	*s;
	size_t		 len;

	if (msg_get_strn(m, &s, &len) == -1)
		return -1;
	if (s == NULL || len >= dstsz) {
		m->error = 1;
		return -1;
	}
	memcpy(dst, s, len + 1);
	return 0;
}

int
msg_get_strp(struct msg *m, const char **sp)
{
	size_t	 len;

	return msg_get_strn(m, sp, &len);
}

int
msg_get_sockaddr(struct msg *m, struct sockaddr_storage *ss, socklen_t *lenp)
{
	const uint8_t	*p;
	uint32_t	 len;

	if (msg_get_u32(m, &len) == -1)
		return -1;
	if (len > sizeof(*ss)) {
		m->error = 1;
		return -1;
	}
	if (msg_get_span(m, len, &p) == -1)
		return -1;
	if (!msg_sockaddr_valid(p, len)) {
		m->error = 1;
		return -1;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, p, len);
	*lenp = (socklen_t)len;
	return 0;
}

/* A family we speak, with the length that family has. */
static int
msg_sockaddr_valid(const uint8_t *p, size_t len)
{
	sa_family_t	 af;
	size_t		 off = offsetof(struct sockaddr, sa_family);

	if (p == NULL || len > sizeof(struct sockaddr_storage) ||
	    len < off + sizeof(af))
		return 0;
	memcpy(&af, p + off, sizeof(af));
	switch (af) {
	case AF_INET:
		return len == sizeof(struct sockaddr_in);
	case AF_INET6:
		return len == sizeof(struct sockaddr_in6);
	case AF_UNIX:
		/* An unnamed socket has no path at all. */
		return len >= offsetof(struct sockaddr_un, sun_path) &&
		    len <= sizeof(struct sockaddr_un);
	}
	return 0;
}

int
msg_take_fd(struct msg *m)
{
	int	 fd = m->fd;

	m->fd = -1;
	return fd;
}

int
msg_end(struct msg *m)
{
	if (m->error || m->rpos != m->len) {
		m->error = 1;
		return -1;
	}
	return 0;
}

void
msgchan_init(struct msgchan *ch, int fd, int peer, msg_handler handler,
    void *arg)
{
	int	 flags, i;

	memset(ch, 0, sizeof(*ch));
	ch->fd = fd;
	ch->peer = peer;
	TAILQ_INIT(&ch->outq);
	for (i = 0; i < MSG_MAXFDS; i++)
		ch->fds[i] = -1;
	ch->handler = handler;
	ch->arg = arg;
	ch->pid = (uint32_t)getpid();

	if ((flags = fcntl(fd, F_GETFL)) == -1)
		fatal("%s: fcntl F_GETFL", __func__);
	if ((flags & O_NONBLOCK) == 0 &&
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
		fatal("%s: fcntl F_SETFL", __func__);
}

static void
msgframe_free(struct msgframe *f)
{
	if (f->fd != -1)
		(void)close(f->fd);
	freezero(f->buf, f->len);
	free(f);
}

void
msgchan_clear(struct msgchan *ch)
{
	struct msgframe	*f;
	int		 i;

	msgchan_event_del(ch);
	if (ch->fd != -1)
		(void)close(ch->fd);
	ch->fd = -1;
	while ((f = TAILQ_FIRST(&ch->outq)) != NULL) {
		TAILQ_REMOVE(&ch->outq, f, entry);
		msgframe_free(f);
	}
	ch->outlen = 0;
	for (i = 0; i < ch->nfds; i++) {
		(void)close(ch->fds[i]);
		ch->fds[i] = -1;
	}
	ch->nfds = 0;
	if (ch->rbuf != NULL)
		freezero(ch->rbuf, MSG_MAXSIZE);
	ch->rbuf = NULL;
	ch->rlen = ch->rpos = 0;
	ch->closed = 1;
}

int
msgchan_send(struct msgchan *ch, struct msg *m)
{
	struct msg_wirehdr	 hdr;
	struct msgframe		*f;
	int			 saved;

	if (m->error || m->len > MSG_MAXPAYLOAD) {
		errno = EINVAL;
		goto fail;
	}
	if (ch->closed || ch->fd == -1) {
		errno = EPIPE;
		goto fail;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL)
		goto fail;
	f->len = MSG_HDRSZ + m->len;
	if ((f->buf = malloc(f->len)) == NULL) {
		free(f);
		goto fail;
	}
	hdr.type = m->type;
	hdr.flags = m->fd != -1 ? MSG_F_FD : 0;
	hdr.len = (uint32_t)f->len;
	hdr.peerid = m->peerid;
	hdr.pid = ch->pid;
	memcpy(f->buf, &hdr, sizeof(hdr));
	if (m->len > 0)
		memcpy(f->buf + MSG_HDRSZ, m->buf, m->len);
	f->fd = msg_take_fd(m);
	TAILQ_INSERT_TAIL(&ch->outq, f, entry);
	ch->outlen += f->len;
	msg_clear(m);
	msgchan_schedule(ch);
	return 0;

 fail:
	saved = errno;
	msg_clear(m);
	errno = saved;
	return -1;
}

int
msgchan_compose(struct msgchan *ch, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t len)
{
	struct msg	 m;

	msg_init(&m, type, peerid);
	msg_set_fd(&m, fd);
	if (len > MSG_MAXPAYLOAD)
		m.error = 1;
	else
		msg_add_raw(&m, data, len);
	return msgchan_send(ch, &m);
}

int
msgchan_write(struct msgchan *ch)
{
	struct iovec	 iov[MSG_IOVMAX];
	union {
		struct cmsghdr	hdr;
		uint8_t		buf[CMSG_SPACE(sizeof(int))];
	}		 cbuf;
	struct msghdr	 mh;
	struct cmsghdr	*cmsg;
	struct msgframe	*f;
	ssize_t		 n;
	size_t		 left, rest;
	int		 i, fd;

	if (ch->fd == -1) {
		errno = EBADF;
		return -1;
	}
	while ((f = TAILQ_FIRST(&ch->outq)) != NULL) {
		/* The fd goes with its frame's first byte, alone in front. */
		fd = f->off == 0 ? f->fd : -1;
		for (i = 0; f != NULL && i < MSG_IOVMAX;
		    f = TAILQ_NEXT(f, entry), i++) {
			if (i > 0 && f->fd != -1)
				break;
			iov[i].iov_base = f->buf + f->off;
			iov[i].iov_len = f->len - f->off;
		}
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)i;
		if (fd != -1) {
			memset(&cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf.buf;
			mh.msg_controllen = sizeof(cbuf.buf);
			cmsg = CMSG_FIRSTHDR(&mh);
			cmsg->cmsg_len = CMSG_LEN(sizeof(int));
			cmsg->cmsg_level = SOL_SOCKET;
			cmsg->cmsg_type = SCM_RIGHTS;
			memcpy(CMSG_DATA(cmsg), &fd, sizeof(fd));
		}
		n = sendmsg(ch->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == ENOBUFS)
				return 0;
			return -1;
		}
		if (n == 0)
			return 0;
		if (fd != -1) {
			f = TAILQ_FIRST(&ch->outq);
			(void)close(f->fd);
			f->fd = -1;
		}
		ch->outlen -= (size_t)n;
		for (left = (size_t)n; left > 0; left -= rest) {
			f = TAILQ_FIRST(&ch->outq);
			rest = f->len - f->off;
			if (left < rest) {
				f->off += left;
				break;
			}
			TAILQ_REMOVE(&ch->outq, f, entry);
			msgframe_free(f);
		}
	}
	return 1;
}

int
msgchan_flush(struct msgchan *ch)
{
	struct pollfd	 pfd;
	int		 r;

	while ((r = msgchan_write(ch)) == 0) {
		pfd.fd = ch->fd;
		pfd.events = POLLOUT;
		pfd.revents = 0;
		if (poll(&pfd, 1, -1) == -1 && errno != EINTR)
			return -1;
	}
	msgchan_update(ch);
	return r == 1 ? 0 : -1;
}

/* Moves the unparsed bytes to the front and wipes what was parsed. */
static void
msgchan_compact(struct msgchan *ch)
{
	size_t	 left;

	if (ch->rpos == 0)
		return;
	left = ch->rlen - ch->rpos;
	if (left > 0)
		memmove(ch->rbuf, ch->rbuf + ch->rpos, left);
	explicit_bzero(ch->rbuf + left, ch->rpos);
	ch->rlen = left;
	ch->rpos = 0;
}

ssize_t
msgchan_read(struct msgchan *ch)
{
	union {
		struct cmsghdr	hdr;
		uint8_t		buf[CMSG_SPACE(sizeof(int) * MSG_MAXFDS)];
	}		 cbuf;
	struct msghdr	 mh;
	struct iovec	 iov;
	struct cmsghdr	*cmsg;
	ssize_t		 n;
	size_t		 i, nfd;
	int		 fd, bad = 0;

	if (ch->fd == -1) {
		errno = EBADF;
		return -1;
	}
	if (ch->rbuf == NULL && (ch->rbuf = malloc(MSG_MAXSIZE)) == NULL)
		return -1;
	msgchan_compact(ch);
	if (ch->rlen >= MSG_MAXSIZE) {
		/* Only if nobody took the complete frames out. */
		errno = ENOBUFS;
		return -1;
	}

	memset(&mh, 0, sizeof(mh));
	memset(&cbuf, 0, sizeof(cbuf));
	iov.iov_base = ch->rbuf + ch->rlen;
	iov.iov_len = MSG_MAXSIZE - ch->rlen;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf.buf;
	mh.msg_controllen = sizeof(cbuf.buf);
	do {
		n = recvmsg(ch->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;

	for (cmsg = CMSG_FIRSTHDR(&mh); cmsg != NULL;
	    cmsg = CMSG_NXTHDR(&mh, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < nfd; i++) {
			memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int),
			    sizeof(fd));
			if (ch->nfds < MSG_MAXFDS)
				ch->fds[ch->nfds++] = fd;
			else {
				(void)close(fd);
				bad = 1;
			}
		}
	}
	ch->rlen += (size_t)n;
	/* Descriptors were lost: frames and fds no longer pair up. */
	if (bad || (mh.msg_flags & MSG_CTRUNC)) {
		errno = EBADMSG;
		return -1;
	}
	return n;
}

int
msgchan_get(struct msgchan *ch, struct msg *m)
{
	struct msg_wirehdr	 hdr;
	uint8_t			*buf = NULL;
	size_t			 avail, plen;
	int			 fd = -1;

	avail = ch->rlen - ch->rpos;
	if (avail < MSG_HDRSZ)
		return 0;
	memcpy(&hdr, ch->rbuf + ch->rpos, sizeof(hdr));
	if (hdr.len < MSG_HDRSZ || hdr.len > MSG_MAXSIZE ||
	    (hdr.flags & ~(uint32_t)MSG_F_FD) != 0) {
		errno = EBADMSG;
		return -1;
	}
	if (avail < hdr.len)
		return 0;
	if ((hdr.flags & MSG_F_FD) && ch->nfds == 0) {
		errno = EBADMSG;
		return -1;
	}
	plen = hdr.len - MSG_HDRSZ;
	if (plen > 0) {
		if ((buf = malloc(plen)) == NULL)
			return -1;
		memcpy(buf, ch->rbuf + ch->rpos + MSG_HDRSZ, plen);
	}
	if (hdr.flags & MSG_F_FD) {
		fd = ch->fds[0];
		ch->nfds--;
		memmove(ch->fds, ch->fds + 1,
		    (size_t)ch->nfds * sizeof(ch->fds[0]));
		ch->fds[ch->nfds] = -1;
	}
	ch->rpos += hdr.len;

	m->type = hdr.type;
	m->peerid = hdr.peerid;
	m->pid = hdr.pid;
	m->fd = fd;
	m->buf = buf;
	m->len = m->cap = plen;
	m->rpos = 0;
	m->error = 0;
	return 1;
}

/*
 * Registers the events we want now: write only while output waits for
 * room in the socket, not while it waits for the end of the turn.
 */
static void
msgchan_update(struct msgchan *ch)
{
	short	 want;

	if (!ch->evset)
		return;
	want = EV_READ;
	if (!TAILQ_EMPTY(&ch->outq) && !ch->flushing)
		want |= EV_WRITE;
	if (want == ch->events)
		return;
	event_del(&ch->ev);
	event_set(&ch->ev, ch->fd, want | EV_PERSIST, msgchan_dispatch, ch);
	if (event_add(&ch->ev, NULL) == -1)
		fatalx("%s: event_add", __func__);
	ch->events = want;
}

void
msgchan_event_add(struct msgchan *ch)
{
	if (ch->closed || ch->fd == -1)
		return;
	if (ch->evset) {
		msgchan_update(ch);
		return;
	}
	ch->evset = 1;
	ch->flushing = 0;
	event_set(&ch->evflush, -1, 0, msgchan_turn, ch);
	ch->events = EV_READ;
	if (!TAILQ_EMPTY(&ch->outq))
		ch->events |= EV_WRITE;
	event_set(&ch->ev, ch->fd, ch->events | EV_PERSIST, msgchan_dispatch,
	    ch);
	if (event_add(&ch->ev, NULL) == -1)
		fatalx("%s: event_add", __func__);
	/* Frames read before the loop ran would wait for more input. */
	if (ch->rlen - ch->rpos >= MSG_HDRSZ)
		event_active(&ch->ev, EV_READ, 1);
}

void
msgchan_event_del(struct msgchan *ch)
{
	if (!ch->evset)
		return;
	event_del(&ch->ev);
	if (ch->flushing)
		event_del(&ch->evflush);
	ch->flushing = 0;
	ch->evset = 0;
	ch->events = 0;
}

/*
 * What is sent during one turn of the event loop goes out at the end of
 * that turn, together: one sendmsg() for every frame queued meanwhile
 * by any session, and nothing to register with the kernel unless the
 * socket is full.  (Writing at once would cost a system call per frame;
 * waiting for EV_WRITE, two epoll_ctl() and a wakeup per frame.)  An
 * active event runs in the turn that activated it, after the callbacks
 * already due.
 */
static void
msgchan_schedule(struct msgchan *ch)
{
	if (!ch->evset || ch->flushing || (ch->events & EV_WRITE))
		return;
	ch->flushing = 1;
	event_active(&ch->evflush, EV_TIMEOUT, 1);
}

static void
msgchan_turn(int fd, short events, void *arg)
{
	struct msgchan	*ch = arg;
	int		 r;

	(void)fd;
	(void)events;
	ch->flushing = 0;
	if (!ch->evset)
		return;
	if ((r = msgchan_write(ch)) == -1) {
		msgchan_lost(ch);
		return;
	}
	if (r == 0)
		msgchan_update(ch);	/* full: wait for EV_WRITE */
}

/* Tells the handler, once; it may free the channel, so touch it no more. */
static void
msgchan_lost(struct msgchan *ch)
{
	msgchan_event_del(ch);
	if (ch->closed)
		return;
	ch->closed = 1;
	ch->handler(ch, NULL, ch->arg);
}

static void
msgchan_dispatch(int fd, short events, void *arg)
{
	struct msgchan	*ch = arg;
	struct msg	 m;
	ssize_t		 n;
	int		 r, eof = 0;

	(void)fd;
	if ((events & EV_WRITE) && msgchan_write(ch) == -1) {
		msgchan_lost(ch);
		return;
	}
	if (events & EV_READ) {
		/* ENOBUFS: full of frames left by a pause; taken below. */
		if ((n = msgchan_read(ch)) == 0)
			eof = 1;
		else if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR && errno != ENOBUFS) {
			msgchan_lost(ch);
			return;
		}
		/* What came before an EOF is delivered before the NULL. */
		while ((r = msgchan_get(ch, &m)) == 1) {
			ch->handler(ch, &m, ch->arg);
			msg_clear(&m);
			/* The handler cleared the channel or paused it. */
			if (!ch->evset)
				return;
		}
		if (r == -1 || eof) {
			msgchan_lost(ch);
			return;
		}
	}
	msgchan_update(ch);
}
