/*
 * Non-blocking session I/O, in the clear or with libtls: see tlsio.h.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <event.h>
#include <tls.h>
#include <unistd.h>

#include "tlsio.h"
#include "log.h"

void
tlsio_watch(struct event *ev, short *cur, int fd, short want,
    void (*cb)(int, short, void *), void *arg)
{
	if (want == *cur)
		return;
	if (*cur)
		event_del(ev);
	*cur = want;
	if (want == 0)
		return;
	event_set(ev, fd, want | EV_PERSIST, cb, arg);
	if (event_add(ev, NULL) == -1)
		fatal("event_add");
}

ssize_t
tlsio_read(int fd, struct tls *tls, void *buf, size_t len, short *want)
{
	ssize_t	 n;

	for (;;) {
		if (tls != NULL) {
			n = tls_read(tls, buf, len);
			if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
				*want = n == TLS_WANT_POLLIN ? EV_READ :
				    EV_WRITE;
				return -2;
			}
			if (n == -1)
				return -1;
		} else if ((n = read(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				*want = EV_READ;
				return -2;
			}
			return -1;
		}
		*want = EV_READ;
		return n;
	}
}

ssize_t
tlsio_write(int fd, struct tls *tls, const void *buf, size_t len,
    short *want)
{
	ssize_t	 n;

	for (;;) {
		if (tls != NULL) {
			n = tls_write(tls, buf, len);
			if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
				*want = n == TLS_WANT_POLLIN ? EV_READ :
				    EV_WRITE;
				return 0;
			}
			if (n == -1)
				return -1;
		} else if ((n = send(fd, buf, len, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				*want = EV_WRITE;
				return 0;
			}
			return -1;
		}
		*want = EV_WRITE;
		return n;
	}
}
