/*
 * Framed, typed messages between splitmx processes over socketpairs,
 * with descriptor passing.  Our own take on OpenBSD's imsg.
 */
#ifndef SMX_MSG_H
#define SMX_MSG_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Wire header, five 32-bit words in host order (both ends are the same
 * machine): type, flags, total length (header included), peer id, pid.
 * A frame carrying a descriptor has MSG_F_FD set; the descriptor travels
 * with the frame's first byte.
 */
#define MSG_HDRSZ	20
#define MSG_MAXSIZE	(256 * 1024)	/* whole frame, header included */
#define MSG_MAXPAYLOAD	(MSG_MAXSIZE - MSG_HDRSZ)
#define MSG_MAXFDS	64		/* descriptors queued on one channel */
#define MSG_F_FD	0x1

/* One message: composed for sending, or received and being read. */
struct msg {
	uint32_t	 type;
	uint32_t	 peerid;
	uint32_t	 pid;
	int		 fd;		/* -1, or a descriptor that travels */
	uint8_t		*buf;
	size_t		 len;		/* payload bytes */
	size_t		 cap;
	size_t		 rpos;		/* read position */
	int		 error;		/* sticky: an add or get failed */
};

struct msgframe {
	TAILQ_ENTRY(msgframe)	 entry;
	uint8_t			*buf;
	size_t			 len;
	size_t			 off;	/* bytes already written */
	int			 fd;	/* sent (then closed) with byte 0 */
};

struct msgchan;
/*
 * m == NULL means the peer closed the channel or sent garbage; that call
 * comes once and is the last one.  m is cleared after the handler
 * returns (take its fd to keep it).  While called with a message the
 * handler may send, call msgchan_event_del() or msgchan_clear() on the
 * channel, but must not free it; when called with NULL it may free it.
 */
typedef void	(*msg_handler)(struct msgchan *, struct msg *, void *);

struct msgchan {
	int			 fd;
	int			 peer;		/* the peer's PROC_* */
	TAILQ_HEAD(, msgframe)	 outq;
	size_t			 outlen;	/* bytes queued */
	uint8_t			*rbuf;		/* MSG_MAXSIZE bytes */
	size_t			 rlen;
	size_t			 rpos;		/* rbuf[rpos..rlen): unparsed */
	int			 fds[MSG_MAXFDS]; /* received, unclaimed */
	int			 nfds;
	struct event		 ev;
	short			 events;	/* registered with libevent */
	int			 evset;
	struct event		 evflush;	/* end of this loop turn */
	int			 flushing;	/* evflush is active */
	uint32_t		 pid;		/* ours, for the headers */
	msg_handler		 handler;
	void			*arg;
	int			 closed;
};

/*
 * Composing. An add that would exceed MSG_MAXPAYLOAD sets m->error.
 * msg_clear() is only for a message set up by msg_init() or
 * msgchan_get(): it frees the buffer and closes a held fd.
 */
void	 msg_init(struct msg *, uint32_t type, uint32_t peerid);
void	 msg_clear(struct msg *);	/* frees the buffer and a held fd */
void	 msg_add_u8(struct msg *, uint8_t);
void	 msg_add_u16(struct msg *, uint16_t);
void	 msg_add_u32(struct msg *, uint32_t);
void	 msg_add_u64(struct msg *, uint64_t);
void	 msg_add_i64(struct msg *, int64_t);
void	 msg_add_data(struct msg *, const void *, size_t); /* length-prefixed */
void	 msg_add_str(struct msg *, const char *);	/* NULL allowed */
void	 msg_add_sockaddr(struct msg *, const struct sockaddr *, socklen_t);
void	 msg_set_fd(struct msg *, int);	/* the message now owns fd */

/*
 * Reading.  Every get returns 0 or -1 (and sets m->error) on a short or
 * malformed field; msg_end() returns -1 unless every get succeeded and
 * every byte was consumed.
 */
int	 msg_get_u8(struct msg *, uint8_t *);
int	 msg_get_u16(struct msg *, uint16_t *);
int	 msg_get_u32(struct msg *, uint32_t *);
int	 msg_get_u64(struct msg *, uint64_t *);
int	 msg_get_i64(struct msg *, int64_t *);
/* Copies into dst (at most dstsz, fails if larger); *lenp gets the size. */
int	 msg_get_data(struct msg *, void *dst, size_t dstsz, size_t *lenp);
/* Points into the message; valid until msg_clear. */
int	 msg_get_datap(struct msg *, const void **, size_t *);
/*
 * A string that fits dst (NUL included) and has no embedded NUL.
 * A NULL string fails here: read optional strings with msg_get_strp.
 */
int	 msg_get_str(struct msg *, char *dst, size_t dstsz);
/* Points into the message, NUL-terminated; NULL if a NULL was added. */
int	 msg_get_strp(struct msg *, const char **);
int	 msg_get_sockaddr(struct msg *, struct sockaddr_storage *, socklen_t *);
int	 msg_take_fd(struct msg *);	/* caller owns it now; -1 if none */
int	 msg_end(struct msg *);

/*
 * Channels, over a SOCK_STREAM socketpair.  msgchan_init() sets the
 * socket O_NONBLOCK itself (fatal if it cannot).
 */
void	 msgchan_init(struct msgchan *, int fd, int peer, msg_handler, void *);
void	 msgchan_clear(struct msgchan *);	/* closes fd and queued fds */
/*
 * Queue m for sending; m's buffer and fd are taken over (m is cleared,
 * also when it fails: -1 if m->error is set or the channel is closed).
 */
int	 msgchan_send(struct msgchan *, struct msg *);
/* Shorthand: send a message with a flat payload; fd (or -1) as above. */
int	 msgchan_compose(struct msgchan *, uint32_t type, uint32_t peerid,
	    int fd, const void *, size_t);
/* Write what can be written now: 1 done, 0 more pending, -1 error. */
int	 msgchan_write(struct msgchan *);
/* Block until everything queued is written (startup, shutdown, tests). */
int	 msgchan_flush(struct msgchan *);	/* 0, or -1 on error */
/* Read what is available: bytes read, 0 on EOF, -1 on error (EAGAIN too). */
ssize_t	 msgchan_read(struct msgchan *);
/* Take one complete message: 1 got one, 0 need more, -1 bad frame. */
int	 msgchan_get(struct msgchan *, struct msg *);
/*
 * Hook the channel into libevent; the handler is called per message,
 * also for complete frames already buffered by msgchan_read().
 */
void	 msgchan_event_add(struct msgchan *);
void	 msgchan_event_del(struct msgchan *);

#endif
