/*
 * Non-blocking reads and writes on a session's socket, in the clear or
 * through libtls, for the SMTP server and client sessions.  Each says
 * which event to wait for when it cannot go on now (libtls may need to
 * write in order to read, and the other way round).
 */
#ifndef SMX_TLSIO_H
#define SMX_TLSIO_H

#include <sys/types.h>

struct event;
struct tls;

/*
 * Watch fd for want (EV_READ, EV_WRITE, both, or 0: nothing) with the
 * persistent event ev; *cur is what ev watches now, 0 at first.  The
 * registration changes only when want does.
 */
void	 tlsio_watch(struct event *ev, short *cur, int fd, short want,
	    void (*cb)(int, short, void *), void *arg);

/*
 * Read at most len bytes: the count, 0 at the end of the stream, -1 on
 * an error (with tls, tls_error() says which), -2 to try again once
 * *want (EV_READ or EV_WRITE) is ready.  After a read, *want is
 * EV_READ.
 */
ssize_t	 tlsio_read(int fd, struct tls *, void *buf, size_t len,
	    short *want);
/*
 * Write at most len bytes: the count (0: nothing could go, wait for
 * *want), or -1 on an error.  A socket write never raises SIGPIPE.
 */
ssize_t	 tlsio_write(int fd, struct tls *, const void *buf, size_t len,
	    short *want);

#endif
