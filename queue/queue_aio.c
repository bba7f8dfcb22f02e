/*
 * fsync without waiting for it: the commits of a batch are synced side
 * by side, with Linux AIO (IOCB_CMD_FSYNC), and the event loop goes on
 * meanwhile.  Why side by side: a disk with a write cache needs a cache
 * flush per fsync(2); fsyncs that are in flight together share their
 * flushes in the block layer, one after another each pays its own.
 *
 * An AIO fsync is vfs_fsync() run by a kernel worker: the same call
 * with the same guarantee as fsync(2), only not on our stack.  Where
 * AIO is missing (ENOSYS, or fs.aio-max-nr used up) the same interface
 * calls fsync(2) at once; either way a request's done() is called from
 * the event loop, never from inside queue_aio_fsync().  A caller with
 * nothing else to do meanwhile asks for fsync(2) itself (now): a kernel
 * worker and a wakeup less.
 */
#include <sys/types.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <sys/syscall.h>

#include <linux/aio_abi.h>

#include <errno.h>
#include <event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "splitmx.h"
#include "queue.h"

#define QUEUE_AIO_EVENTS	1024	/* in flight at most (commit.c's cap) */
#define QUEUE_AIO_SUBMIT	64	/* iocbs per io_submit() */

static void	queue_aio_ready(int, short, void *);
static void	queue_aio_finish(int, short, void *);
static void	queue_aio_complete(struct queue_aio *, int);

static aio_context_t			 ctx;
static int				 efd = -1;
static struct event			 ev_ready, ev_finish;
static uint32_t				 inflight;
static TAILQ_HEAD(, queue_aio)		 waiting =
					    TAILQ_HEAD_INITIALIZER(waiting);
static TAILQ_HEAD(, queue_aio)		 finished =
					    TAILQ_HEAD_INITIALIZER(finished);

/*
 * Before the privilege drop: the context and its eventfd are made
 * here, so that the sandbox only has to allow io_submit and
 * io_getevents.  0 with AIO, -1 (and a log line) without it.
 */
int
queue_aio_init(void)
{
	aio_context_t	 c = 0;

	if (syscall(SYS_io_setup, QUEUE_AIO_EVENTS, &c) == -1) {
		log_warn("queue: no asynchronous fsync (io_setup), "
		    "commits sync one file after another");
		return -1;
	}
	if ((efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		fatal("eventfd");
	ctx = c;
	return 0;
}

/* After event_init() (in the process' main, after the drop). */
void
queue_aio_start(void)
{
	evtimer_set(&ev_finish, queue_aio_finish, NULL);
	if (efd == -1)
		return;
	event_set(&ev_ready, efd, EV_READ | EV_PERSIST, queue_aio_ready,
	    NULL);
	if (event_add(&ev_ready, NULL) == -1)
		fatalx("queue_aio_start: event_add");
}

int
queue_aio_enabled(void)
{
	return efd != -1;
}

/*
 * Queues an fsync of fd; requests queued during one turn of the loop go
 * to the kernel together at its end (queue_aio_finish).  With now, or
 * without AIO, fsync(2) is called here.  done() gets 0 or an errno,
 * later.
 */
void
queue_aio_fsync(struct queue_aio *a, int fd, int now)
{
	a->fd = fd;
	a->error = 0;
	queue_spool.fsyncs++;
	if (now || efd == -1) {
		a->error = fsync(fd) == -1 ? errno : 0;
		TAILQ_INSERT_TAIL(&finished, a, entry);
	} else
		TAILQ_INSERT_TAIL(&waiting, a, entry);
	event_active(&ev_finish, EV_TIMEOUT, 1);
}

/*
 * The end of the turn: what is waiting goes to the kernel, and what
 * was done synchronously is reported.  A submission the kernel refuses
 * is done with fsync(2) instead: slower, never less durable.
 */
static void
queue_aio_finish(int fd, short event, void *arg)
{
	struct iocb	 cbs[QUEUE_AIO_SUBMIT], *cbp[QUEUE_AIO_SUBMIT];
	struct queue_aio *a, *next;
	long		 r, i, n;

	(void)fd;
	(void)event;
	(void)arg;
	while ((a = TAILQ_FIRST(&waiting)) != NULL) {
		n = 0;
		for (; a != NULL && n < QUEUE_AIO_SUBMIT &&
		    (efd != -1 && inflight + n < QUEUE_AIO_EVENTS); a = next) {
			next = TAILQ_NEXT(a, entry);
			memset(&cbs[n], 0, sizeof(cbs[n]));
			cbs[n].aio_data = (uint64_t)(uintptr_t)a;
			cbs[n].aio_lio_opcode = IOCB_CMD_FSYNC;
			cbs[n].aio_fildes = (uint32_t)a->fd;
			cbs[n].aio_flags = IOCB_FLAG_RESFD;
			cbs[n].aio_resfd = (uint32_t)efd;
			cbp[n] = &cbs[n];
			n++;
		}
		r = n > 0 ? syscall(SYS_io_submit, ctx, n, cbp) : -1;
		if (r == -1)
			r = 0;
		/* The first r are the kernel's; the rest are ours to do. */
		for (i = 0; i < n; i++) {
			a = TAILQ_FIRST(&waiting);
			TAILQ_REMOVE(&waiting, a, entry);
			if (i < r) {
				inflight++;
				continue;
			}
			a->error = fsync(a->fd) == -1 ? errno : 0;
			TAILQ_INSERT_TAIL(&finished, a, entry);
		}
		if (n == 0) {
			/* No AIO, or the context is full. */
			TAILQ_REMOVE(&waiting, a, entry);
			a->error = fsync(a->fd) == -1 ? errno : 0;
			TAILQ_INSERT_TAIL(&finished, a, entry);
		}
	}
	while ((a = TAILQ_FIRST(&finished)) != NULL) {
		TAILQ_REMOVE(&finished, a, entry);
		queue_aio_complete(a, a->error);
	}
}

/* The eventfd counts completions; io_getevents() says which. */
static void
queue_aio_ready(int fd, short event, void *arg)
{
	struct io_event	 evs[QUEUE_AIO_SUBMIT];
	struct timespec	 zero = { 0, 0 };
	uint64_t	 count;
	long		 n, i;

	(void)event;
	(void)arg;
	if (read(fd, &count, sizeof(count)) == -1 && errno != EAGAIN)
		fatal("queue_aio_ready: read");
	for (;;) {
		n = syscall(SYS_io_getevents, ctx, 0, QUEUE_AIO_SUBMIT, evs,
		    &zero);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fatal("io_getevents");
		}
		for (i = 0; i < n; i++) {
			inflight--;
			queue_aio_complete(
			    (struct queue_aio *)(uintptr_t)evs[i].data,
			    evs[i].res < 0 ? (int)-evs[i].res : 0);
		}
		if (n < QUEUE_AIO_SUBMIT)
			break;
	}
}

static void
queue_aio_complete(struct queue_aio *a, int error)
{
	a->error = error;
	a->done(a, error);
}
