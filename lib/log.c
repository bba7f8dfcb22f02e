/*
 * Logging for every splitmx process, prefixed with the process name:
 * stderr in the foreground; otherwise the parent writes to syslog (mail
 * facility) and the children send their records to the parent.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_SEND_TIMEOUT	2	/* seconds a record may wait */
#define LOG_PREFIX_MAX		48	/* "<7>" and a process name, ": " */
#define LOG_STALL_WAIT		1000	/* ms the parent waits for syslogd */
#define LOG_IDENT		"splitmxd"

enum log_mode {
	LOG_MODE_STDERR,	/* -d, tests, -n */
	LOG_MODE_SYSLOG,	/* the parent: to the syslog socket itself */
	LOG_MODE_PARENT		/* a child: records to the parent */
};

static void	logit(int, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
static void	log_errno(int, int, const char *, va_list)
		    __attribute__((__format__ (printf, 3, 0)));
static size_t	log_stderr_prefix(char *, int);
static void	log_send_parent(int, const char *);
static int	log_syslog_connect(void);
static int	log_syslog_write(const char *, size_t);
static int	log_syslog_send(const char *, size_t);
static size_t	log_syslog_format(char *, size_t, int, long, const char *,
		    const char *, size_t);

static enum log_mode	 log_mode = LOG_MODE_STDERR;
static int		 log_verbose;
static int		 log_journal;	/* stderr is journald's: "<N>" */
static char		 log_proc[32] = LOG_IDENT;

/* A child's channel to the parent, and what it could not send. */
static int		 log_parent_fd = -1;
static unsigned long	 log_parent_lost;

/*
 * The parent's syslog connection.  It is made again whenever a write
 * fails (syslogd restarted, or it was not there at first); what could
 * not be written is counted and reported with the next line that is.
 */
static struct {
	char		 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int		 fd;
	int		 type;		/* SOCK_DGRAM, or SOCK_STREAM */
	unsigned long	 lost;
	time_t		 stalled;	/* when syslogd last did not read */
} sl = { _PATH_LOG, -1, SOCK_DGRAM, 0, 0 };

void
log_init(int debug, int verbose)
{
	const char	*p;
	struct stat	 st;
	unsigned long	 dev, ino;

	log_mode = debug ? LOG_MODE_STDERR : LOG_MODE_SYSLOG;
	log_verbose = verbose;
	/*
	 * For the tests only: a syslog socket of their own instead of
	 * /dev/log (splitmxd(8), ENVIRONMENT).
	 */
	if ((p = getenv("SPLITMX_SYSLOG_SOCKET")) != NULL && *p != '\0')
		(void)strlcpy(sl.path, p, sizeof(sl.path));
	/* Under systemd, stderr may be the journal: keep the priorities. */
	log_journal = 0;
	if (debug && (p = getenv("JOURNAL_STREAM")) != NULL &&
	    sscanf(p, "%lu:%lu", &dev, &ino) == 2 &&
	    fstat(STDERR_FILENO, &st) == 0 &&
	    (unsigned long)st.st_dev == dev && (unsigned long)st.st_ino == ino)
		log_journal = 1;
	tzset();
}

void
log_procname(const char *name)
{
	strlcpy(log_proc, name, sizeof(log_proc));
}

void
log_setverbose(int verbose)
{
	log_verbose = verbose;
}

int
log_getverbose(void)
{
	return log_verbose;
}

/*
 * A child hands its records to the parent over fd, a datagram socket:
 * one record a datagram, so that even a signal handler can log.  A
 * parent that does not take a record within LOG_SEND_TIMEOUT seconds
 * loses it; the loss is reported with the next record that gets through.
 */
void
log_to_parent(int fd)
{
	struct timeval	 tv = { LOG_SEND_TIMEOUT, 0 };

	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
		return;		/* not a socket: stay where we are */
	log_parent_fd = fd;
	log_mode = LOG_MODE_PARENT;
}

void
vlog(int pri, const char *fmt, va_list ap)
{
	char	 buf[LOG_PREFIX_MAX + LOG_LINE_MAX + 1], *text;
	size_t	 pre = 0, len;
	int	 saved = errno, n;

	/* On stderr the text is formatted once, behind its prefix. */
	if (log_mode == LOG_MODE_STDERR)
		pre = log_stderr_prefix(buf, pri);
	text = buf + pre;
	if ((n = vsnprintf(text, LOG_LINE_MAX, fmt, ap)) < 0)
		n = (int)strlcpy(text, "(log format error)", LOG_LINE_MAX);
	len = (size_t)n < LOG_LINE_MAX ? (size_t)n : LOG_LINE_MAX - 1;
	switch (log_mode) {
	case LOG_MODE_STDERR:
		/* One write per line, so that processes do not interleave. */
		buf[pre + len] = '\n';
		if (write(STDERR_FILENO, buf, pre + len + 1) == -1) {
			/* nowhere to say so */
		}
		break;
	case LOG_MODE_PARENT:
		log_send_parent(pri, text);
		break;
	case LOG_MODE_SYSLOG:
		log_relay(pri, (long)getpid(), log_proc, text, len);
		break;
	}
	errno = saved;
}

/*
 * "<N>proc: " for journald, else "proc: ", at the start of buf (at most
 * LOG_PREFIX_MAX octets); its length.  Not dprintf(), which costs an
 * fstat and an lseek a line besides formatting the text again.
 */
static size_t
log_stderr_prefix(char *buf, int pri)
{
	int	 n;

	if (log_journal)
		n = snprintf(buf, LOG_PREFIX_MAX, "<%d>%s: ",
		    pri & LOG_PRIMASK, log_proc);
	else
		n = snprintf(buf, LOG_PREFIX_MAX, "%s: ", log_proc);
	return n > 0 && n < LOG_PREFIX_MAX ? (size_t)n : 0;
}

/* Byte 0 the priority, then the text: the parent adds who we are. */
static void
log_send_parent(int pri, const char *text)
{
	char	 rec[1 + LOG_LINE_MAX];
	size_t	 len;
	int	 n;

	if (log_parent_lost > 0) {
		n = snprintf(rec + 1, sizeof(rec) - 1, "log: %lu line%s lost "
		    "on the way to the parent", log_parent_lost,
		    log_parent_lost == 1 ? "" : "s");
		rec[0] = LOG_WARNING;
		if (n > 0 && send(log_parent_fd, rec, 1 + (size_t)n,
		    MSG_NOSIGNAL) != -1)
			log_parent_lost = 0;
	}
	len = strlen(text);
	if (len > sizeof(rec) - 1)
		len = sizeof(rec) - 1;
	rec[0] = (char)(pri & LOG_PRIMASK);
	memcpy(rec + 1, text, len);
	if (send(log_parent_fd, rec, 1 + len, MSG_NOSIGNAL) == -1)
		log_parent_lost++;
}

const char *
log_syslog_path(void)
{
	return sl.path;
}

/*
 * Whether a syslog daemon listens at the socket: 0, or -1 with errno
 * (ENOENT: no socket; ECONNREFUSED: a socket nobody reads).
 */
int
log_syslog_probe(void)
{
	if (sl.fd != -1)
		return 0;
	return log_syslog_connect();
}

static int
log_syslog_connect(void)
{
	struct sockaddr_un	 sun;
	struct timeval		 tv = { LOG_SEND_TIMEOUT, 0 };
	const int		 types[] = { SOCK_DGRAM, SOCK_STREAM };
	size_t			 i;
	int			 fd, err = 0;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	(void)strlcpy(sun.sun_path, sl.path, sizeof(sun.sun_path));
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if ((fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0)) == -1)
			return -1;
		/* A stalled syslogd must not stall the gateway. */
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			sl.fd = fd;
			sl.type = types[i];
			return 0;
		}
		err = errno;
		close(fd);
		if (err != EPROTOTYPE)	/* a stream socket: try that */
			break;
	}
	errno = err;
	return -1;
}

/*
 * 0 written, -1 the connection is broken, -2 syslogd does not read.
 * A syslogd that does not read gets LOG_STALL_WAIT ms, and none again
 * for a second after that: the parent must go on reading its
 * children, and the mail must go on, while syslogd is stuck.
 */
static int
log_syslog_write(const char *buf, size_t len)
{
	struct pollfd	 pfd;
	size_t		 off = 0;
	ssize_t		 n;
	time_t		 now;

	if (sl.type == SOCK_DGRAM) {
		if (send(sl.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT) != -1)
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != ENOBUFS)
			return -1;
		if ((now = time(NULL)) - sl.stalled > 1) {
			pfd.fd = sl.fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, LOG_STALL_WAIT) == 1 &&
			    send(sl.fd, buf, len, MSG_NOSIGNAL |
			    MSG_DONTWAIT) != -1)
				return 0;
		}
		sl.stalled = now;
		return -2;
	}
	/* A stream: records end with their NUL, as syslog(3) sends them. */
	len++;
	while (off < len) {
		if ((n = send(sl.fd, buf + off, len - off, MSG_NOSIGNAL)) ==
		    -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}

/* Once more on a fresh connection if the old one broke. */
static int
log_syslog_send(const char *buf, size_t len)
{
	int	 tries, r;

	for (tries = 0; tries < 2; tries++) {
		if (sl.fd == -1 && log_syslog_connect() == -1)
			return -1;
		if ((r = log_syslog_write(buf, len)) == 0)
			return 0;
		if (r == -2)
			return -1;	/* alive but full: no new connection */
		close(sl.fd);
		sl.fd = -1;
	}
	return -1;
}

/*
 * "<PRI>Mmm dd hh:mm:ss splitmxd[PID]: PROC: TEXT" as syslog(3) writes
 * it (RFC 3164), mail facility.  Control octets in the text are
 * escaped (\n, \t, \xHH): one record is one line in every log file.
 */
static size_t
log_syslog_format(char *buf, size_t size, int pri, long pid,
    const char *proc, const char *text, size_t textlen)
{
	static const char	 hex[] = "0123456789abcdef";
	char			 stamp[32];
	struct tm		 tm;
	time_t			 now = time(NULL);
	unsigned char		 c;
	size_t			 off, i;
	int			 n;

	if (localtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm) == 0)
		(void)strlcpy(stamp, "Jan  1 00:00:00", sizeof(stamp));
	n = snprintf(buf, size, "<%d>%s %s[%ld]: %s: ",
	    LOG_MAIL | (pri & LOG_PRIMASK), stamp, LOG_IDENT, pid, proc);
	if (n < 0 || (size_t)n >= size)
		return 0;
	off = (size_t)n;
	while (textlen > 0 && (text[textlen - 1] == '\n' ||
	    text[textlen - 1] == '\r'))
		textlen--;
	for (i = 0; i < textlen && off + 5 < size; i++) {
		c = (unsigned char)text[i];
		if (c >= 0x20 && c != 0x7f) {
			buf[off++] = (char)c;
			continue;
		}
		buf[off++] = '\\';
		if (c == '\n')
			buf[off++] = 'n';
		else if (c == '\t')
			buf[off++] = 't';
		else if (c == '\r')
			buf[off++] = 'r';
		else {
			buf[off++] = 'x';
			buf[off++] = hex[c >> 4];
			buf[off++] = hex[c & 0xf];
		}
	}
	buf[off] = '\0';
	return off;
}

/*
 * One line to syslog on behalf of process proc (the parent's own lines
 * and the records it relays for its children).
 */
void
log_relay(int pri, long pid, const char *proc, const char *text,
    size_t len)
{
	char	 buf[LOG_LINE_MAX * 4 + 128], note[256];
	size_t	 n;
	int	 saved = errno;

	if (sl.lost > 0) {
		(void)snprintf(note, sizeof(note), "log: %lu line%s lost: "
		    "%s at %s", sl.lost, sl.lost == 1 ? "" : "s", sl.stalled ?
		    "the syslog daemon did not keep up" : "no syslog daemon",
		    sl.path);
		n = log_syslog_format(buf, sizeof(buf), LOG_WARNING,
		    (long)getpid(), "parent", note, strlen(note));
		if (log_syslog_send(buf, n) == 0)
			sl.lost = sl.stalled = 0;
	}
	n = log_syslog_format(buf, sizeof(buf), pri, pid, proc, text, len);
	if (n == 0 || log_syslog_send(buf, n) == -1)
		sl.lost++;
	errno = saved;
}

static void
logit(int pri, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(pri, fmt, ap);
	va_end(ap);
}

static void
log_errno(int pri, int err, const char *fmt, va_list ap)
{
	char	 msg[3072];

	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	if (err)
		logit(pri, "%s: %s", msg, strerror(err));
	else
		logit(pri, "%s", msg);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 err = errno;

	va_start(ap, fmt);
	log_errno(LOG_WARNING, err, fmt, ap);
	va_end(ap);
	errno = err;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_WARNING, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 err = errno;

	va_start(ap, fmt);
	log_errno(LOG_CRIT, err, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}

/*
 * Values for key=value log lines, so that nothing a client, a peer or
 * a directory chose can forge a field (splitmxd(8), LOGGING): a value is
 * written bare when it is printable ASCII without space, '"' or '\',
 * else in double quotes with \" and \\, and \xHH for a control or
 * 8-bit octet.  The results live in a ring of LOG_VALUE_SLOTS buffers,
 * for the log call at hand: at most that many in one call.
 */
#define LOG_VALUE_SLOTS	8
#define LOG_VALUE_SIZE	4100

static const char	*log_escape(const char *, size_t, const char *,
			    const char *, int);

static const char *
log_escape(const char *s, size_t len, const char *pre, const char *post,
    int quote)
{
	static char	 ring[LOG_VALUE_SLOTS][LOG_VALUE_SIZE];
	static int	 next;
	char		*buf = ring[next], *p;
	unsigned char	 c;
	size_t		 i, room;

	next = (next + 1) % LOG_VALUE_SLOTS;
	if (!quote) {
		for (i = 0; i < len; i++) {
			c = (unsigned char)s[i];
			if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\')
				break;
		}
		/* An empty value is written "" (a bare one would vanish). */
		quote = i < len || (len == 0 && *pre == '\0');
	}
	p = buf;
	if (quote)
		*p++ = '"';
	p += strlcpy(p, pre, 8);
	/* Room for the longest escape, the suffix and the closing quote. */
	room = LOG_VALUE_SIZE - 16;
	for (i = 0; i < len && (size_t)(p - buf) < room; i++) {
		c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			*p++ = '\\';
			*p++ = (char)c;
		} else if (c < ' ' || c >= 0x7f)
			p += snprintf(p, 5, "\\x%02x", c);
		else
			*p++ = (char)c;
	}
	if (i < len)
		p += strlcpy(p, "...", 4);
	p += strlcpy(p, post, 8);
	if (quote)
		*p++ = '"';
	*p = '\0';
	return buf;
}

const char *
log_value(const char *s)
{
	return log_escape(s, strlen(s), "", "", 0);
}

const char *
log_text(const char *s)
{
	return log_escape(s, strlen(s), "", "", 1);
}

const char *
log_textn(const char *s, size_t len)
{
	return log_escape(s, len, "", "", 1);
}

const char *
log_addr(const char *s)
{
	return log_escape(s, strlen(s), "<", ">", 0);
}
