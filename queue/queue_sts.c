/*
 * The MTA-STS policies the lookup process fetched, kept in the spool
 * (sts/DOMAIN) so that a restart neither fetches them again nor forgets
 * them before their max_age (RFC 8461 §5.1).  The lookup process, in
 * /var/empty, sends them here; the queue, which owns the spool, hands
 * them back at its start.
 *
 * A file is "id=ID", "fetched=T", "expires=T", an empty line, then the
 * policy as it was served.  It is written aside and renamed, without
 * fsync: losing one to a crash only costs a fetch.  Whatever is found
 * at the start is checked again by the lookup process before use.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "splitmx.h"
#include "queue.h"

#define STS_DIR		"sts"
#define STS_FILE_MAX	(80 * 1024)	/* a 64 KB policy and its head */
#define STS_TMP		".tmp."

static int	queue_sts_name_ok(const char *);
static int	queue_sts_read(int, const char *, char *, size_t);
static int	queue_sts_parse(char *, const char **, int64_t *, int64_t *,
		    const char **);

static int	stsdir = -1;

/* Only a host name becomes a file name: no "/", no leading ".". */
static int
queue_sts_name_ok(const char *domain)
{
	return valid_domain(domain) && domain[0] != '.' &&
	    strlen(domain) < SMX_HOSTSZ && strchr(domain, '/') == NULL;
}

/*
 * At the start (after the privilege drop, the spool is "."): every
 * policy still valid goes to the lookup process, the others go away,
 * and IMSG_LOOKUP_STS_LOADED tells it that is all.
 */
void
queue_sts_init(void)
{
	struct dirent	*de;
	struct msg	 m;
	DIR		*dir;
	const char	*id, *text;
	int64_t		 fetched, expires;
	uint32_t	 n = 0;
	char		*buf;
	int		 fd;

	if (mkdir(STS_DIR, 0700) == -1 && errno != EEXIST)
		fatal("mkdir %s", STS_DIR);
	if ((stsdir = open(STS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1)
		fatal("open %s", STS_DIR);
	if ((fd = dup(stsdir)) == -1 || (dir = fdopendir(fd)) == NULL)
		fatal("fdopendir %s", STS_DIR);
	if ((buf = malloc(STS_FILE_MAX + 1)) == NULL)
		fatal("malloc");
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.') {
			if (strncmp(de->d_name, STS_TMP, strlen(STS_TMP)) == 0)
				(void)unlinkat(stsdir, de->d_name, 0);
			continue;
		}
		if (!queue_sts_name_ok(de->d_name) ||
		    queue_sts_read(stsdir, de->d_name, buf,
		    STS_FILE_MAX + 1) == -1 ||
		    queue_sts_parse(buf, &id, &fetched, &expires,
		    &text) == -1 ||
		    expires <= time(NULL)) {
			(void)unlinkat(stsdir, de->d_name, 0);
			continue;
		}
		msg_init(&m, IMSG_LOOKUP_STS_LOAD, 0);
		msg_add_str(&m, de->d_name);
		msg_add_str(&m, id);
		msg_add_i64(&m, fetched);
		msg_add_i64(&m, expires);
		msg_add_str(&m, text);
		proc_send(PROC_LOOKUP, &m);
		n++;
	}
	closedir(dir);
	free(buf);
	msg_init(&m, IMSG_LOOKUP_STS_LOADED, 0);
	msg_add_u32(&m, n);
	proc_send(PROC_LOOKUP, &m);
	log_debug("event=mta-sts-policies sent=%u", n);
}

/* A file into buf, NUL-terminated: -1 if unreadable or too large. */
static int
queue_sts_read(int dirfd, const char *name, char *buf, size_t bufsz)
{
	ssize_t	 n;
	size_t	 len = 0;
	int	 fd;

	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) ==
	    -1)
		return -1;
	while (len < bufsz - 1 && (n = read(fd, buf + len,
	    bufsz - 1 - len)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		len += (size_t)n;
	}
	close(fd);
	if (len == bufsz - 1 || memchr(buf, '\0', len) != NULL)
		return -1;
	buf[len] = '\0';
	return 0;
}

/* The head's three lines, the empty line, the policy: in place. */
static int
queue_sts_parse(char *buf, const char **id, int64_t *fetched,
    int64_t *expires, const char **text)
{
	const char	*errstr;
	char		*line, *rest = buf;

	if ((line = strsep(&rest, "\n")) == NULL ||
	    strncmp(line, "id=", 3) != 0)
		return -1;
	*id = line + 3;
	if ((line = strsep(&rest, "\n")) == NULL ||
	    strncmp(line, "fetched=", 8) != 0)
		return -1;
	*fetched = strtonum(line + 8, 0, INT64_MAX, &errstr);
	if (errstr != NULL || (line = strsep(&rest, "\n")) == NULL ||
	    strncmp(line, "expires=", 8) != 0)
		return -1;
	*expires = strtonum(line + 8, 0, INT64_MAX, &errstr);
	if (errstr != NULL || (line = strsep(&rest, "\n")) == NULL ||
	    *line != '\0' || rest == NULL || **id == '\0')
		return -1;
	*text = rest;
	return 0;
}

/* IMSG_QUEUE_STS_STORE: see "outbound TLS" in splitmx.h. */
void
queue_sts_store(struct msgchan *ch, struct msg *m)
{
	const char	*domain, *id, *text;
	int64_t		 fetched, expires;
	char		 tmp[SMX_HOSTSZ + 16];
	FILE		*fp;
	int		 fd;

	proc_expect(ch, m, PROC_LOOKUP);
	if (msg_get_strp(m, &domain) == -1 || domain == NULL ||
	    msg_get_strp(m, &id) == -1 || id == NULL ||
	    msg_get_i64(m, &fetched) == -1 || msg_get_i64(m, &expires) == -1 ||
	    msg_get_strp(m, &text) == -1 || text == NULL || msg_end(m) == -1 ||
	    !queue_sts_name_ok(domain) || strchr(id, '\n') != NULL)
		fatalx("bad %s", imsg_name(m->type));
	if (stsdir == -1)
		return;
	if (*text == '\0') {
		if (unlinkat(stsdir, domain, 0) == -1 && errno != ENOENT)
			log_warn("mta-sts: unlink %s/%s", STS_DIR, domain);
		return;
	}
	(void)snprintf(tmp, sizeof(tmp), "%s%s", STS_TMP, domain);
	if ((fd = openat(stsdir, tmp, O_WRONLY | O_CREAT | O_TRUNC |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) == -1 ||
	    (fp = fdopen(fd, "w")) == NULL) {
		log_warn("mta-sts: cannot keep the policy of %s", domain);
		if (fd != -1)
			close(fd);
		return;
	}
	fprintf(fp, "id=%s\nfetched=%lld\nexpires=%lld\n\n%s", id,
	    (long long)fetched, (long long)expires, text);
	if (fclose(fp) != 0 || renameat(stsdir, tmp, stsdir, domain) == -1) {
		log_warn("mta-sts: cannot keep the policy of %s", domain);
		(void)unlinkat(stsdir, tmp, 0);
		return;
	}
	log_debug("event=mta-sts-kept domain=%s id=%s", log_value(domain),
	    log_value(id));
}
