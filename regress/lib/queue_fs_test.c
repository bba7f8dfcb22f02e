/*
 * Unit tests of queue/queue_fs*.c: ids, the envelope text format (round
 * trip, every malformation refused, no crash on damage, tls= and the
 * envelopes from before it), the commit steps, recovery of every
 * leftover, the reuse of removed messages' files, and a kill -9 loop.
 * TAP output.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "splitmx.h"
#include "../../queue/queue.h"
#include "tap.h"

#define CRASH_ROUNDS	12
#define MAXIDS		4096

struct loaded {
	struct queue_envelope	*e[MAXIDS];
	int			 n;
};

static char	 tmpdir[PATH_MAX];

static void	rmtree(const char *);

static char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL) {
		perror("strdup");
		exit(2);
	}
	return p;
}

/* A two-recipient envelope with awkward strings everywhere. */
static void
env_sample(struct queue_envelope *e, const char *id, uint64_t size)
{
	memset(e, 0, sizeof(*e));
	strlcpy(e->id, id, sizeof(e->id));
	e->arrival = 1700000000;
	e->size = size;
	e->sender = xstrdup("\"john doe\"%x@example.org");
	e->helo = xstrdup("client.example\tX");
	e->client = xstrdup("2001:db8::1");
	e->client_host = xstrdup("");
	e->envid = xstrdup("env=id+2B\r\n");
	e->body = BODY_8BITMIME;
	e->flags = F_MSG_SMTPUTF8 | F_MSG_TLS;
	e->ret = RET_HDRS;
	e->warned = 0;
	e->nrcpt = 2;
	if ((e->rcpts = calloc(2, sizeof(*e->rcpts))) == NULL)
		exit(2);
	e->rcpts[0].rcpt = xstrdup("alice@example.com");
	e->rcpts[0].rewritten = xstrdup("alice@example.com");
	e->rcpts[0].dest = xstrdup("[10.0.0.5]:25");
	e->rcpts[0].orcpt = xstrdup("");
	e->rcpts[0].last_error = xstrdup("");
	e->rcpts[0].class = ROUTE_LOCAL;
	e->rcpts[0].tls = TLSP_VERIFY;
	e->rcpts[0].notify = 0;
	e->rcpts[0].state = STATE_QUEUED;
	e->rcpts[0].next_try = 1700000000;
	e->rcpts[1].rcpt = xstrdup("bøb@example.com");
	e->rcpts[1].rewritten = xstrdup("bob@notes.example.com");
	e->rcpts[1].dest = xstrdup("notes.example.com");
	e->rcpts[1].orcpt = xstrdup("rfc822;b%C3%B8b@example.com");
	e->rcpts[1].last_error = xstrdup("421 4.7.0 try later, 100% busy");
	e->rcpts[1].class = ROUTE_CUSTOM;
	e->rcpts[1].tls = TLSP_NONE;
	e->rcpts[1].notify = F_NOTIFY_FAILURE | F_NOTIFY_DELAY;
	e->rcpts[1].state = STATE_DEFERRED;
	e->rcpts[1].tries = 3;
	e->rcpts[1].next_try = 1700003600;
	e->rcpts[1].last_try = 1700001800;
	if (queue_fs_envelope_event(e, 1700000000, "received from x") == -1 ||
	    queue_fs_envelope_event(e, 1700001800, "attempt 1: 421 busy") ==
	    -1)
		exit(2);
}

static int
str_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static int
env_equal(const struct queue_envelope *a, const struct queue_envelope *b)
{
	uint32_t	 i;

	if (strcmp(a->id, b->id) != 0 || a->arrival != b->arrival ||
	    a->size != b->size || !str_eq(a->sender, b->sender) ||
	    !str_eq(a->helo, b->helo) || !str_eq(a->client, b->client) ||
	    !str_eq(a->client_host, b->client_host) ||
	    !str_eq(a->envid, b->envid) || a->body != b->body ||
	    a->flags != b->flags || a->ret != b->ret ||
	    a->warned != b->warned || a->nrcpt != b->nrcpt ||
	    a->nhist != b->nhist)
		return 0;
	for (i = 0; i < a->nhist; i++)
		if (a->hist[i].when != b->hist[i].when ||
		    !str_eq(a->hist[i].text, b->hist[i].text))
			return 0;
	for (i = 0; i < a->nrcpt; i++) {
		const struct queue_rcpt	*x = &a->rcpts[i], *y = &b->rcpts[i];

		if (!str_eq(x->rcpt, y->rcpt) ||
		    !str_eq(x->rewritten, y->rewritten) ||
		    !str_eq(x->dest, y->dest) || !str_eq(x->orcpt, y->orcpt) ||
		    !str_eq(x->last_error, y->last_error) ||
		    x->class != y->class || x->tls != y->tls ||
		    x->notify != y->notify ||
		    x->state != y->state || x->tries != y->tries ||
		    x->next_try != y->next_try || x->last_try != y->last_try)
			return 0;
	}
	return 1;
}

static void
test_ids(void)
{
	static char	 ids[1000][QUEUE_IDSZ];
	char		 prefix[9];
	time_t		 now = time(NULL);
	int		 i, j, valid = 1, unique = 1;

	for (i = 0; i < 1000; i++) {
		queue_fs_id_new(ids[i], sizeof(ids[i]), now);
		if (!queue_fs_id_valid(ids[i]))
			valid = 0;
	}
	for (i = 0; i < 1000 && unique; i++)
		for (j = i + 1; j < 1000; j++)
			if (strcmp(ids[i], ids[j]) == 0) {
				unique = 0;
				break;
			}
	ok(valid, "1000 new ids are valid");
	ok(unique, "1000 new ids are distinct");
	(void)snprintf(prefix, sizeof(prefix), "%08x", (unsigned)now);
	ok(strncmp(ids[0], prefix, 8) == 0, "id starts with the time: %s",
	    ids[0]);
	ok(!queue_fs_id_valid("") && !queue_fs_id_valid("../../etc/passwd") &&
	    !queue_fs_id_valid("0123456789ABCDEF01234567") &&
	    !queue_fs_id_valid("0123456789abcdef0123456") &&
	    !queue_fs_id_valid("0123456789abcdef012345678") &&
	    !queue_fs_id_valid("0123456789abcdef0123456/") &&
	    queue_fs_id_valid("0123456789abcdef01234567"),
	    "id_valid refuses every other shape");
}

static void
test_roundtrip(void)
{
	struct queue_envelope	 e, d;
	char			*buf, *buf2, err[256];
	size_t			 len, len2;

	env_sample(&e, "0123456789abcdef01234567", 1234);
	ok(queue_fs_envelope_encode(&e, &buf, &len) == 0, "encode");
	ok(memchr(buf, '\t', len) == NULL && memchr(buf, '\r', len) == NULL,
	    "no raw control bytes in the file");
	ok(strncmp(buf, "version=2\n", 10) == 0, "version line first");
	ok(len > 5 && memcmp(buf + len - 5, "end=\n", 5) == 0,
	    "end line last");
	ok(queue_fs_envelope_decode(buf, len, &d, err, sizeof(err)) == 0,
	    "decode what was encoded %s", err);
	ok(env_equal(&e, &d), "round trip keeps every field");
	ok(queue_fs_envelope_encode(&d, &buf2, &len2) == 0 && len == len2 &&
	    memcmp(buf, buf2, len) == 0, "re-encoding is byte-identical");
	free(buf2);
	queue_fs_envelope_free(&d);
	free(buf);

	/* the null sender and no history */
	free(e.sender);
	e.sender = xstrdup("");
	while (e.nhist > 0)
		free(e.hist[--e.nhist].text);
	ok(queue_fs_envelope_encode(&e, &buf, &len) == 0 &&
	    queue_fs_envelope_decode(buf, len, &d, err, sizeof(err)) == 0 &&
	    env_equal(&e, &d) && d.sender[0] == '\0',
	    "null sender, no history");
	queue_fs_envelope_free(&d);
	free(buf);

	e.nrcpt = 0;
	ok(queue_fs_envelope_encode(&e, &buf, &len) == -1,
	    "no recipients: refused");
	e.nrcpt = 2;
	queue_fs_envelope_free(&e);
}

/* Replaces the first occurrence of old by new in a copy of buf. */
static char *
mutate(const char *buf, const char *old, const char *new)
{
	const char	*p;
	char		*out;
	size_t		 n;

	if ((p = strstr(buf, old)) == NULL)
		return NULL;
	n = strlen(buf) - strlen(old) + strlen(new) + 1;
	if ((out = malloc(n)) == NULL)
		exit(2);
	snprintf(out, n, "%.*s%s%s", (int)(p - buf), buf, new,
	    p + strlen(old));
	return out;
}

static void
test_malformed(void)
{
	static const struct {
		const char	*old, *new, *what;
	} cases[] = {
		{ "version=2\n", "version=1\n", "another version" },
		{ "version=2\n", "", "no version line" },
		{ "end=\n", "", "no end (truncated)" },
		{ "end=\n", "end=\nid=x\n", "data after end" },
		{ "end=\n", "end=x\n", "end with a value" },
		{ "helo=", "hello=", "unknown key" },
		{ "\nhelo=", "\nhelo=a\nhelo=", "key twice" },
		{ "helo=client.example%09X\n", "", "header key missing" },
		{ "tries=3\n", "", "recipient key missing" },
		{ "rcpts=2", "rcpts=3", "fewer recipients than announced" },
		{ "rcpts=2", "rcpts=1", "more recipients than announced" },
		{ "rcpts=2", "rcpts=0", "zero recipients" },
		{ "rcpts=2", "rcpts=99999999", "absurd recipient count" },
		{ "arrival=1700000000", "arrival=17e8", "bad number" },
		{ "size=1234", "size=-1", "negative size" },
		{ "tries=3", "tries=4294967296", "tries out of range" },
		{ "alice@", "al%G1ice@", "bad escape" },
		{ "alice@example.com\n", "al%0\n", "short escape" },
		{ "alice@", "al%00ice@", "escaped NUL" },
		{ "alice@", "al\tice@", "raw tab" },
		{ "alice@", "al ice@", "raw space" },
		{ "state=queued", "state=lost", "unknown state" },
		{ "class=local", "class=elsewhere", "unknown class" },
		{ "tls=verify", "tls=secure", "unknown tls policy" },
		{ "tls=verify\n", "tls=verify\ntls=none\n", "tls twice" },
		{ "rcpt=alice", "tls=none\nrcpt=alice", "tls before rcpt" },
		{ "body=8bitmime", "body=9bit", "unknown body" },
		{ "notify=failure,delay", "notify=failure,failure",
		    "flag twice" },
		{ "notify=failure,delay", "notify=failure,", "empty flag" },
		{ "flags=smtputf8,tls", "flags=bogus", "unknown flag" },
		{ "ret=hdrs", "ret", "line without =" },
		{ "id=0123456789abcdef01234567", "id=../../../etc/passwd",
		    "bad id" },
		{ "history=1700000000 received", "history=x received",
		    "bad history time" },
		{ "history=1700000000 received", "history=1700000000",
		    "history without text separator" },
		{ "rcpt=alice@example.com\n",
		    "rcpt=alice@example.com\nhistory=1 late\n",
		    "history among recipients" },
		{ "rcpts=2\n", "", "rcpt before rcpts" },
		{ "\nrcpt=alice", "\nsender=x\nrcpt=alice",
		    "header key among recipients" },
		{ "rcpt=alice", "rewritten=x\nrcpt=alice",
		    "recipient key before rcpt" },
		{ "end=\n", "end=", "no final newline" },
	};
	struct queue_envelope	 e, d;
	char			*buf, *bad, err[256];
	size_t			 len, i, n, prefixes = 0;
	size_t			 flips = 0, ok_flips = 0;
	uint32_t		 seed = 12345;

	env_sample(&e, "0123456789abcdef01234567", 1234);
	if (queue_fs_envelope_encode(&e, &buf, &len) == -1)
		exit(2);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if ((bad = mutate(buf, cases[i].old, cases[i].new)) == NULL) {
			ok(0, "mutation %s: pattern not found", cases[i].what);
			continue;
		}
		err[0] = '\0';
		ok(queue_fs_envelope_decode(bad, strlen(bad), &d, err,
		    sizeof(err)) == -1 && err[0] != '\0' && d.rcpts == NULL &&
		    d.sender == NULL, "refused: %s (%s)", cases[i].what, err);
		free(bad);
	}
	ok(queue_fs_envelope_decode("", 0, &d, err, sizeof(err)) == -1,
	    "refused: empty file");

	/* Every strict prefix is a torn write: refused. */
	for (n = 0; n < len; n++)
		if (queue_fs_envelope_decode(buf, n, &d, err,
		    sizeof(err)) == 0) {
			queue_fs_envelope_free(&d);
			prefixes++;
		}
	ok(prefixes == 0, "all %zu strict prefixes refused", len);

	/* Random damage: refused or decoded, never a crash or a leak. */
	if ((bad = malloc(len)) == NULL)
		exit(2);
	for (n = 0; n < 20000; n++) {
		memcpy(bad, buf, len);
		for (i = 0; i < 1 + n % 3; i++) {
			seed = seed * 1103515245 + 12345;
			bad[(seed >> 8) % len] = (char)(seed >> 20);
		}
		if (queue_fs_envelope_decode(bad, len, &d, err,
		    sizeof(err)) == 0) {
			char	*re;
			size_t	 relen;

			if (queue_fs_envelope_encode(&d, &re, &relen) == 0) {
				ok_flips++;
				free(re);
			}
			queue_fs_envelope_free(&d);
		} else
			flips++;
	}
	free(bad);
	ok(flips + ok_flips == 20000, "20000 damaged envelopes: %zu "
	    "refused, %zu still valid and re-encodable", flips, ok_flips);
	free(buf);
	queue_fs_envelope_free(&e);
}

/* The text without its "tls=" lines: as written before they existed. */
static char *
without_tls(const char *buf)
{
	const char	*p, *nl;
	char		*out, *q;

	if ((out = malloc(strlen(buf) + 1)) == NULL)
		exit(2);
	for (p = buf, q = out; *p != '\0'; p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL)
			exit(2);
		if (strncmp(p, "tls=", 4) != 0) {
			memcpy(q, p, (size_t)(nl + 1 - p));
			q += nl + 1 - p;
		}
	}
	*q = '\0';
	return out;
}

static void
write_file(int dirfd, const char *name, const char *data)
{
	int	 fd;

	if ((fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC,
	    0600)) == -1 || write(fd, data, strlen(data)) !=
	    (ssize_t)strlen(data) || close(fd) == -1) {
		perror(name);
		exit(2);
	}
}

static int
exists(int dirfd, const char *name)
{
	struct stat	 st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int
count_dir(int dirfd)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0, fd;

	if ((fd = dup(dirfd)) == -1 || (d = fdopendir(fd)) == NULL)
		exit(2);
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
collect(struct queue_envelope *e, void *arg)
{
	struct loaded	*l = arg;

	if (l->n == MAXIDS)
		exit(2);
	l->e[l->n++] = e;
}

static void
loaded_free(struct loaded *l)
{
	int	 i;

	for (i = 0; i < l->n; i++) {
		queue_fs_envelope_free(l->e[i]);
		free(l->e[i]);
	}
	l->n = 0;
}

static struct queue_envelope *
loaded_find(struct loaded *l, const char *id)
{
	int	 i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->e[i]->id, id) == 0)
			return l->e[i];
	return NULL;
}

/* Creates, writes and commits a message the way the daemon does. */
static int
commit_one(struct queue_fs *fs, const char *id, const char *data)
{
	struct queue_envelope	 e;
	struct queue_fs_commit	 c;
	int			 fd, r = -1;

	if ((fd = queue_fs_incoming_create(fs, id, 0)) == -1)
		return -1;
	if (write(fd, data, strlen(data)) != (ssize_t)strlen(data)) {
		close(fd);
		return -1;
	}
	close(fd);
	env_sample(&e, id, strlen(data));
	if (queue_fs_commit_prepare(fs, &e, &c) == 0 &&
	    queue_fs_commit_sync(fs, &c) == 0 &&
	    queue_fs_commit_publish(fs, &c) == 0 && queue_fs_sync(fs) == 0) {
		queue_fs_commit_done(&c);
		r = 0;
	}
	queue_fs_envelope_free(&e);
	return r;
}

/*
 * tls= (the policy a recipient was routed with) round-trips by name;
 * an envelope from before it loads with the policy unknown, stays so
 * when rewritten, and recovery reads it.
 */
static void
test_tls(void)
{
	struct queue_envelope	 e, d;
	struct queue_fs		 fs;
	struct queue_fs_counts	 counts;
	struct loaded		 l = { .n = 0 };
	char			*buf, *old, *re, err[256], dir[PATH_MAX];
	char			 id[QUEUE_IDSZ];
	size_t			 len, relen;

	env_sample(&e, "0123456789abcdef01234567", 1234);
	if (queue_fs_envelope_encode(&e, &buf, &len) == -1)
		exit(2);
	ok(strstr(buf, "\ndestination=[10.0.0.5]:25\ntls=verify\n") !=
	    NULL && strstr(buf, "\ndestination=notes.example.com\n"
	    "tls=none\n") != NULL, "tls= written by name, once a recipient");
	ok(queue_fs_envelope_decode(buf, len, &d, err, sizeof(err)) == 0 &&
	    d.rcpts[0].tls == TLSP_VERIFY && d.rcpts[1].tls == TLSP_NONE,
	    "tls= read back %s", err);
	queue_fs_envelope_free(&d);

	old = without_tls(buf);
	ok(queue_fs_envelope_decode(old, strlen(old), &d, err,
	    sizeof(err)) == 0 && d.rcpts[0].tls == QUEUE_TLS_UNKNOWN &&
	    d.rcpts[1].tls == QUEUE_TLS_UNKNOWN,
	    "an envelope without tls= loads, its policy unknown %s", err);
	ok(strcmp(queue_fs_tls_name(d.rcpts[0].tls), "unknown") == 0 &&
	    strcmp(queue_fs_tls_name(TLSP_REQUIRE), "require") == 0,
	    "names: unknown, require");
	ok(queue_fs_envelope_encode(&d, &re, &relen) == 0 &&
	    relen == strlen(old) && memcmp(re, old, relen) == 0,
	    "rewritten, it stays without tls=");
	free(re);
	queue_fs_envelope_free(&d);
	free(old);
	free(buf);

	e.rcpts[0].tls = TLSP_COUNT;
	ok(queue_fs_envelope_encode(&e, &buf, &len) == -1 && errno == EINVAL,
	    "a policy out of range is not written");
	queue_fs_envelope_free(&e);

	/* Through the spool: an updated envelope without tls=, recovered. */
	if (snprintf(dir, sizeof(dir), "%s/tls", tmpdir) >= (int)sizeof(dir) ||
	    mkdir(dir, 0700) == -1 || queue_fs_open(&fs, dir) == -1)
		exit(2);
	queue_fs_id_new(id, sizeof(id), time(NULL));
	if (commit_one(&fs, id, "x\r\n") == -1)
		exit(2);
	env_sample(&e, id, 3);
	e.rcpts[0].tls = e.rcpts[1].tls = QUEUE_TLS_UNKNOWN;
	ok(queue_fs_envelope_update(&fs, &e) == 0 &&
	    queue_fs_recover(&fs, collect, &l, &counts) == 0 &&
	    counts.loaded == 1 && counts.corrupt == 0 && l.n == 1 &&
	    env_equal(l.e[0], &e), "recovery loads an envelope without tls=");
	loaded_free(&l);
	queue_fs_envelope_free(&e);
	queue_fs_close(&fs);
}

static void
test_commit(void)
{
	struct queue_fs		 fs;
	struct queue_fs_commit	 c;
	struct queue_envelope	 e;
	struct queue_fs_counts	 counts;
	struct loaded		 l = { .n = 0 };
	char			 id[QUEUE_IDSZ], name[64], buf[64];
	uint64_t		 before;
	ssize_t			 n;
	int			 fd;

	ok(queue_fs_open(&fs, tmpdir) == 0, "open a fresh spool");
	ok(fs.incoming != -1 && fs.queue != -1 && fs.corrupt != -1,
	    "incoming/, queue/ and corrupt/ created");

	queue_fs_id_new(id, sizeof(id), time(NULL));
	ok((fd = queue_fs_incoming_create(&fs, id, 0)) != -1,
	    "incoming file created");
	ok(queue_fs_incoming_create(&fs, id, 0) == -1 && errno == EEXIST,
	    "the same id twice: EEXIST");
	ok(fcntl(fd, F_GETFL) != -1 && (fcntl(fd, F_GETFL) & O_ACCMODE) ==
	    O_WRONLY, "the smtp process' descriptor is write-only");
	ok(write(fd, "Subject: x\r\n\r\nhi\r\n", 18) == 18, "write");
	close(fd);

	env_sample(&e, id, 17);
	ok(queue_fs_commit_prepare(&fs, &e, &c) == -1 && errno == EBADMSG,
	    "size mismatch refused");
	e.size = 18;
	before = fs.fsyncs;
	ok(queue_fs_commit_prepare(&fs, &e, &c) == 0, "prepare");
	ok(queue_fs_commit_sync(&fs, &c) == 0, "sync");
	snprintf(name, sizeof(name), "%s.msg", id);
	ok(exists(fs.incoming, name) && !exists(fs.queue, name),
	    "not visible before publish");
	ok(queue_fs_commit_publish(&fs, &c) == 0 && queue_fs_sync(&fs) == 0,
	    "publish, directory sync");
	queue_fs_commit_done(&c);
	ok(fs.fsyncs - before == 2, "2 fsyncs for one message alone "
	    "(file, queue/): %llu",
	    (unsigned long long)(fs.fsyncs - before));
	ok(!exists(fs.incoming, name) && exists(fs.queue, name) &&
	    count_dir(fs.incoming) == 0 && count_dir(fs.queue) == 1,
	    "one file in queue/, incoming/ empty");

	fd = queue_fs_message_open(&fs, id);
	n = fd == -1 ? -1 : read(fd, buf, 18);
	ok(n == 18 && memcmp(buf, "Subject: x\r\n\r\nhi\r\n", 18) == 0,
	    "message_open reads the bytes back");
	n = fd == -1 ? -1 : read(fd, buf, 10);
	ok(n == 10 && memcmp(buf, "version=2\n", 10) == 0,
	    "the envelope follows the message");
	if (fd != -1)
		close(fd);
	ok(queue_fs_message_open(&fs, "../queue/x") == -1 && errno == EINVAL,
	    "message_open refuses a bad id");

	/* the scheduler's rewrite */
	e.rcpts[0].state = STATE_DELIVERED;
	e.rcpts[0].tries = 1;
	ok(queue_fs_envelope_update(&fs, &e) == 0, "envelope update");
	ok(queue_fs_recover(&fs, collect, &l, &counts) == 0 &&
	    counts.loaded == 1 && l.n == 1 && env_equal(l.e[0], &e),
	    "recovery reads the updated envelope");
	loaded_free(&l);

	/* abort after publish leaves nothing */
	queue_fs_envelope_free(&e);
	queue_fs_id_new(id, sizeof(id), time(NULL));
	fd = queue_fs_incoming_create(&fs, id, 0);
	ok(fd != -1 && write(fd, "x", 1) == 1, "second message");
	close(fd);
	env_sample(&e, id, 1);
	ok(queue_fs_commit_prepare(&fs, &e, &c) == 0 &&
	    queue_fs_commit_sync(&fs, &c) == 0 &&
	    queue_fs_commit_publish(&fs, &c) == 0, "second commit published");
	queue_fs_commit_abort(&fs, &c);
	ok(count_dir(fs.queue) == 2 && count_dir(fs.incoming) == 0,
	    "abort after publish removes the file everywhere");
	queue_fs_envelope_free(&e);

	/* rollback */
	queue_fs_id_new(id, sizeof(id), time(NULL));
	fd = queue_fs_incoming_create(&fs, id, 0);
	close(fd);
	ok(queue_fs_incoming_remove(&fs, id) == 0 &&
	    count_dir(fs.incoming) == 0, "rollback empties incoming/");

	/* removal: the message file first */
	ok(queue_fs_recover(&fs, collect, &l, &counts) == 0 && l.n == 1,
	    "one message queued");
	strlcpy(id, l.e[0]->id, sizeof(id));
	loaded_free(&l);
	ok(queue_fs_message_remove(&fs, id, 1) == 0 &&
	    count_dir(fs.queue) == 0, "message_remove removes both files");
	queue_fs_close(&fs);
}

/* Reads a whole small file by name; its length, or -1. */
static ssize_t
slurp(int dir, const char *name, char *buf, size_t sz)
{
	ssize_t	 n;
	int	 fd;

	if ((fd = openat(dir, name, O_RDONLY)) == -1)
		return -1;
	n = read(fd, buf, sz);
	close(fd);
	return n;
}

/*
 * A removed message's file is reused only once its removal is durable
 * and nobody else has it open, and reads as zeros when it is.
 */
static void
test_reuse(void)
{
	struct queue_fs		 fs;
	struct queue_fs_counts	 counts;
	struct loaded		 l = { .n = 0 };
	struct stat		 st, st2;
	char			 dir[PATH_MAX], a[QUEUE_IDSZ], b[QUEUE_IDSZ];
	char			 c[QUEUE_IDSZ], name[64], data[6000];
	char			 buf[8192];
	size_t			 i;
	ssize_t			 n;
	int			 fd, held, zero;

	if (strlcpy(dir, tmpdir, sizeof(dir)) >= sizeof(dir) ||
	    strlcat(dir, "/reuse", sizeof(dir)) >= sizeof(dir))
		exit(2);
	ok(mkdir(dir, 0700) == 0 && queue_fs_open(&fs, dir) == 0 &&
	    fs.free != -1, "spool with free/");
	memset(data, 'S', sizeof(data) - 1);
	data[sizeof(data) - 1] = '\0';

	queue_fs_id_new(a, sizeof(a), time(NULL));
	ok(commit_one(&fs, a, data) == 0, "message a committed");
	snprintf(name, sizeof(name), "%s.msg", a);
	ok(fstatat(fs.queue, name, &st, 0) == 0, "a in queue/");
	ok(queue_fs_message_remove(&fs, a, strlen(data)) == 0 &&
	    count_dir(fs.queue) == 0 && count_dir(fs.free) == 1 &&
	    fstatat(fs.free, a, &st2, 0) == 0 && st2.st_ino == st.st_ino,
	    "removal keeps the file in free/");

	/* Its removal not yet durable: a new file. */
	queue_fs_id_new(b, sizeof(b), time(NULL));
	ok((fd = queue_fs_incoming_create(&fs, b, 1)) != -1 &&
	    fstat(fd, &st2) == 0 && st2.st_ino != st.st_ino &&
	    st2.st_size == 0 && count_dir(fs.free) == 1 && fs.reused == 0,
	    "not reused before an fsync of queue/");
	close(fd);
	ok(queue_fs_incoming_remove(&fs, b) == 0, "b rolled back");

	/* Not for a bounce (reuse 0), even when durable. */
	ok(queue_fs_sync(&fs) == 0, "fsync of queue/");
	ok((fd = queue_fs_incoming_create(&fs, b, 0)) != -1 &&
	    fstat(fd, &st2) == 0 && st2.st_ino != st.st_ino &&
	    count_dir(fs.free) == 1, "a new file when reuse is not asked");
	close(fd);
	ok(queue_fs_incoming_remove(&fs, b) == 0, "b rolled back again");

	/* Durable: reused, write-only, every old byte reads as zero. */
	queue_fs_id_new(c, sizeof(c), time(NULL));
	ok((fd = queue_fs_incoming_create(&fs, c, 1)) != -1 &&
	    fstat(fd, &st2) == 0 && st2.st_ino == st.st_ino &&
	    count_dir(fs.free) == 0 && fs.reused == 1,
	    "reused once its removal is durable");
	ok((fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY,
	    "the reused descriptor is write-only");
	snprintf(name, sizeof(name), "%s.msg", c);
	n = slurp(fs.incoming, name, buf, sizeof(buf));
	zero = n == st.st_size;
	for (i = 0; zero && i < (size_t)n; i++)
		if (buf[i] != '\0')
			zero = 0;
	ok(zero, "the old message and envelope read as zeros (%zd bytes)",
	    n);
	ok(write(fd, "hello\r\n", 7) == 7 && ftruncate(fd, 7) == 0,
	    "the writer truncates to what it wrote");
	close(fd);
	ok(slurp(fs.incoming, name, buf, sizeof(buf)) == 7 &&
	    memcmp(buf, "hello\r\n", 7) == 0, "the file is the new message");
	ok(queue_fs_incoming_remove(&fs, c) == 0, "c rolled back");

	/* Somebody kept a descriptor: never given to anyone again. */
	queue_fs_id_new(a, sizeof(a), time(NULL));
	ok(commit_one(&fs, a, data) == 0, "message a2 committed");
	snprintf(name, sizeof(name), "%s.msg", a);
	held = openat(fs.queue, name, O_RDONLY);
	ok(held != -1 && fstat(held, &st) == 0, "a reader holds a2 open");
	ok(queue_fs_message_remove(&fs, a, strlen(data)) == 0 &&
	    count_dir(fs.free) == 1 && queue_fs_sync(&fs) == 0,
	    "a2 removed to free/, durably");
	queue_fs_id_new(c, sizeof(c), time(NULL));
	ok((fd = queue_fs_incoming_create(&fs, c, 1)) != -1 &&
	    fstat(fd, &st2) == 0 && st2.st_ino != st.st_ino &&
	    count_dir(fs.free) == 0 && fs.reused == 1,
	    "a file open elsewhere is unlinked, not reused");
	ok(write(fd, "other\r\n", 7) == 7, "the new message written");
	close(fd);
	n = pread(held, buf, 8, 0);
	ok(n == 8 && memcmp(buf, "SSSSSSSS", 8) == 0,
	    "the reader still reads a2");
	close(held);
	ok(queue_fs_incoming_remove(&fs, c) == 0, "c rolled back");

	/* Too large, or free/ full: unlinked. */
	queue_fs_id_new(a, sizeof(a), time(NULL));
	ok(commit_one(&fs, a, data) == 0 &&
	    queue_fs_message_remove(&fs, a, QUEUE_FS_FREE_MAXSIZE + 1) == 0 &&
	    count_dir(fs.free) == 0 && count_dir(fs.queue) == 0,
	    "a message over QUEUE_FS_FREE_MAXSIZE is unlinked");
	for (i = 0; i <= QUEUE_FS_FREE; i++) {
		queue_fs_id_new(a, sizeof(a), time(NULL));
		if (commit_one(&fs, a, "x\r\n") == -1 ||
		    queue_fs_message_remove(&fs, a, 3) == -1)
			break;
	}
	ok(i == QUEUE_FS_FREE + 1 && count_dir(fs.free) == QUEUE_FS_FREE &&
	    count_dir(fs.queue) == 0, "free/ holds at most %d files",
	    QUEUE_FS_FREE);
	queue_fs_close(&fs);

	/* A start empties free/. */
	ok(queue_fs_open(&fs, dir) == 0, "reopened");
	ok(queue_fs_recover(&fs, collect, &l, &counts) == 0 && l.n == 0 &&
	    counts.incoming == 0 && count_dir(fs.free) == 0,
	    "recovery empties free/, not counted as incoming");
	loaded_free(&l);
	queue_fs_close(&fs);
}

/*
 * Where the file system cannot zero a range (tmpfs), reuse stops: the
 * files waiting are unlinked, new files are created, removal unlinks.
 */
static void
test_reuse_unsupported(void)
{
	struct queue_fs		 fs;
	struct statfs		 sfs;
	char			 dir[] = "/dev/shm/queue_fs_test.XXXXXX";
	char			 a[QUEUE_IDSZ], c[QUEUE_IDSZ];
	int			 fd;

	if (statfs("/dev/shm", &sfs) == -1 || sfs.f_type != TMPFS_MAGIC ||
	    mkdtemp(dir) == NULL) {
		diag("no tmpfs at /dev/shm: reuse without zeroing not tested");
		return;
	}
	ok(queue_fs_open(&fs, dir) == 0, "spool on tmpfs");
	queue_fs_id_new(a, sizeof(a), time(NULL));
	ok(commit_one(&fs, a, "x\r\n") == 0 &&
	    queue_fs_message_remove(&fs, a, 3) == 0 &&
	    count_dir(fs.free) == 1 && queue_fs_sync(&fs) == 0,
	    "removed to free/");
	queue_fs_id_new(c, sizeof(c), time(NULL));
	ok((fd = queue_fs_incoming_create(&fs, c, 1)) != -1 &&
	    fs.noreuse && fs.reused == 0 && count_dir(fs.free) == 0,
	    "no zeroing on tmpfs: a new file, free/ emptied");
	if (fd != -1)
		close(fd);
	ok(queue_fs_incoming_remove(&fs, c) == 0, "rolled back");
	queue_fs_id_new(a, sizeof(a), time(NULL));
	ok(commit_one(&fs, a, "x\r\n") == 0 &&
	    queue_fs_message_remove(&fs, a, 3) == 0 &&
	    count_dir(fs.free) == 0 && count_dir(fs.queue) == 0,
	    "then removal unlinks");
	queue_fs_close(&fs);
	rmtree(dir);
}

static void
test_recovery(void)
{
	struct queue_fs		 fs;
	struct queue_fs_counts	 counts;
	struct queue_envelope	 e;
	struct loaded		 l = { .n = 0 };
	char			 a[QUEUE_IDSZ], b[QUEUE_IDSZ], c[QUEUE_IDSZ];
	char			 d[QUEUE_IDSZ], x[QUEUE_IDSZ], f[QUEUE_IDSZ];
	char			 name[64], *buf;
	size_t			 len;

	if (queue_fs_open(&fs, tmpdir) == -1)
		exit(2);
	queue_fs_id_new(a, sizeof(a), 1000);
	queue_fs_id_new(b, sizeof(b), 2000);
	queue_fs_id_new(c, sizeof(c), 3000);
	queue_fs_id_new(d, sizeof(d), 4000);
	queue_fs_id_new(x, sizeof(x), 5000);
	queue_fs_id_new(f, sizeof(f), 6000);
	ok(commit_one(&fs, a, "message a\r\n") == 0 &&
	    commit_one(&fs, b, "message b\r\n") == 0 &&
	    commit_one(&fs, d, "message d\r\n") == 0 &&
	    commit_one(&fs, x, "message x\r\n") == 0 &&
	    commit_one(&fs, f, "message f\r\n") == 0, "five commits");

	/* c: an envelope left by a removal that crashed between unlinks */
	snprintf(name, sizeof(name), "%s.env", c);
	write_file(fs.queue, name, "version=2\nid=whatever\n");
	/* d: a message file without its envelope (damage) */
	snprintf(name, sizeof(name), "%s.msg", d);
	write_file(fs.queue, name, "message d\r\n");
	/* x: a damaged envelope */
	snprintf(name, sizeof(name), "%s.env", x);
	write_file(fs.queue, name, "version=1\nid=garbage\n");
	/* f: an envelope whose size is not the message's */
	snprintf(name, sizeof(name), "%s.msg", f);
	write_file(fs.queue, name, "message f, longer now\r\n");
	/* b: an envelope that claims another id */
	env_sample(&e, a, 11);
	queue_fs_envelope_encode(&e, &buf, &len);
	queue_fs_envelope_free(&e);
	/* (kept for the next step; b itself stays good) */
	write_file(fs.queue, "README", "an operator's note");
	write_file(fs.incoming, "0123456789abcdef01234567.msg", "half");
	write_file(fs.incoming, "0123456789abcdef01234567.env", "half");
	write_file(fs.incoming, "whatever", "junk");

	ok(queue_fs_recover(&fs, collect, &l, &counts) == 0,
	    "recovery runs");
	ok(counts.loaded == 2 && l.n == 2 && loaded_find(&l, a) &&
	    loaded_find(&l, b), "the two good messages are loaded");
	ok(counts.partial == 1, "the partial message is counted: %zu",
	    counts.partial);
	snprintf(name, sizeof(name), "%s.env", c);
	ok(!exists(fs.queue, name) && !exists(fs.corrupt, name),
	    "the envelope of a removed message is removed");
	ok(counts.corrupt == 4, "no trailer, damaged, wrong size and a "
	    "stray file set aside: %zu", counts.corrupt);
	snprintf(name, sizeof(name), "%s.msg", d);
	ok(exists(fs.corrupt, name), "message without trailer in corrupt/");
	snprintf(name, sizeof(name), "%s.env", x);
	ok(exists(fs.corrupt, name), "damaged envelope in corrupt/");
	snprintf(name, sizeof(name), "%s.msg", x);
	ok(exists(fs.corrupt, name), "its message in corrupt/ too");
	snprintf(name, sizeof(name), "%s.msg", f);
	ok(exists(fs.corrupt, name), "wrong-size message in corrupt/");
	ok(exists(fs.corrupt, "README"), "stray file in corrupt/");
	ok(counts.incoming == 3 && count_dir(fs.incoming) == 0,
	    "incoming/ emptied (%zu files)", counts.incoming);
	ok(count_dir(fs.queue) == 2, "queue/ holds exactly a and b");
	loaded_free(&l);

	/* an envelope under the wrong name */
	snprintf(name, sizeof(name), "%s.env", b);
	{
		int	 fd = openat(fs.queue, name, O_WRONLY | O_CREAT |
		    O_TRUNC, 0600);

		if (fd == -1 || write(fd, buf, len) != (ssize_t)len)
			exit(2);
		close(fd);
	}
	free(buf);
	ok(queue_fs_recover(&fs, collect, &l, &counts) == 0 &&
	    counts.loaded == 1 && counts.corrupt == 1 &&
	    loaded_find(&l, a) != NULL, "an envelope of another id is "
	    "set aside");
	loaded_free(&l);
	ok(queue_fs_recover(&fs, collect, &l, &counts) == 0 &&
	    counts.loaded == 1 && counts.corrupt == 0 && counts.partial == 0,
	    "a second recovery finds nothing more to do");
	loaded_free(&l);

	/* A rename whose old name survived: two links to committed files. */
	snprintf(name, sizeof(name), "%s.msg", a);
	ok(linkat(fs.queue, name, fs.incoming, name, 0) == 0, "link msg");
	ok(queue_fs_recover(&fs, collect, &l, &counts) == 0 &&
	    counts.loaded == 1 && counts.incoming == 1 &&
	    count_dir(fs.incoming) == 0 && l.n == 1 &&
	    strcmp(l.e[0]->id, a) == 0,
	    "old names in incoming/ are dropped, the message stays");
	loaded_free(&l);
	queue_fs_close(&fs);
}

/* What the crash child writes for an id: deterministic, varied size. */
static size_t
crash_body(const char *id, char *buf, size_t bufsz)
{
	size_t	 n = 0, lines = 1 + (size_t)(id[20] - '0') % 16 * 40, i;
	int	 k;

	for (i = 0; i < lines; i++) {
		k = snprintf(buf + n, bufsz - n, "%s line %zu\r\n", id, i);
		if (k < 0 || (size_t)k >= bufsz - n)
			break;
		n += (size_t)k;
	}
	return n;
}

/*
 * A child commits messages as fast as it can and reports each id on a
 * pipe before it starts ("B id") and once committed ("A id"); it is
 * killed with SIGKILL at a random moment.  Then: every acknowledged id
 * is loaded, byte-exact; nothing else is, except an id that had begun;
 * incoming/ is empty.
 */
static void
test_crash(void)
{
	static char	 body[64 * 1024], got[64 * 1024];
	static char	 begun[MAXIDS][QUEUE_IDSZ], acked[MAXIDS][QUEUE_IDSZ];
	struct queue_fs	 fs;
	struct queue_fs_counts counts;
	struct loaded	 l = { .n = 0 };
	char		 line[64];
	int		 round, p[2], nb = 0, na = 0, i, j, bad = 0, lost = 0;
	int		 extra = 0, fd;
	size_t		 len;
	ssize_t		 n;
	pid_t		 pid;
	FILE		*in;
	struct queue_envelope	*e;
	char		 dir[PATH_MAX];

	/* A spool of its own: what earlier tests left is not ours. */
	if (snprintf(dir, sizeof(dir), "%s/crash", tmpdir) >=
	    (int)sizeof(dir) || mkdir(dir, 0700) == -1)
		exit(2);
	for (round = 0; round < CRASH_ROUNDS; round++) {
		if (pipe(p) == -1)
			exit(2);
		if ((pid = fork()) == -1)
			exit(2);
		if (pid == 0) {
			char	 id[QUEUE_IDSZ];

			close(p[0]);
			if (queue_fs_open(&fs, dir) == -1)
				_exit(1);
			for (;;) {
				queue_fs_id_new(id, sizeof(id), time(NULL));
				dprintf(p[1], "B %s\n", id);
				len = crash_body(id, body, sizeof(body));
				body[len] = '\0';
				if (commit_one(&fs, id, body) == -1)
					_exit(1);
				dprintf(p[1], "A %s\n", id);
			}
		}
		close(p[1]);
		usleep(20000 + arc4random_uniform(150000));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if ((in = fdopen(p[0], "r")) == NULL)
			exit(2);
		while (fgets(line, sizeof(line), in) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			if (strlen(line) != 2 + QUEUE_IDLEN)
				continue;	/* torn by the kill */
			if (line[0] == 'B' && nb < MAXIDS)
				strlcpy(begun[nb++], line + 2, QUEUE_IDSZ);
			else if (line[0] == 'A' && na < MAXIDS)
				strlcpy(acked[na++], line + 2, QUEUE_IDSZ);
		}
		fclose(in);

		/* restart */
		if (queue_fs_open(&fs, dir) == -1 ||
		    queue_fs_recover(&fs, collect, &l, &counts) == -1)
			exit(2);
		if (count_dir(fs.incoming) != 0 || counts.corrupt != 0) {
			diag("round %d: incoming %d, corrupt %zu", round,
			    count_dir(fs.incoming), counts.corrupt);
			bad++;
		}
		queue_fs_close(&fs);
		loaded_free(&l);
	}

	if (queue_fs_open(&fs, dir) == -1 ||
	    queue_fs_recover(&fs, collect, &l, &counts) == -1)
		exit(2);
	for (i = 0; i < na; i++) {
		if ((e = loaded_find(&l, acked[i])) == NULL) {
			lost++;
			continue;
		}
		len = crash_body(acked[i], body, sizeof(body));
		fd = queue_fs_message_open(&fs, acked[i]);
		n = fd == -1 ? -1 : read(fd, got, len);
		if (fd != -1)
			close(fd);
		if (n != (ssize_t)len || memcmp(got, body, len) != 0 ||
		    e->size != len) {
			diag("%s: not byte-exact", acked[i]);
			bad++;
		}
	}
	for (i = 0; i < l.n; i++) {
		for (j = 0; j < na; j++)
			if (strcmp(l.e[i]->id, acked[j]) == 0)
				break;
		if (j < na)
			continue;
		for (j = 0; j < nb; j++)
			if (strcmp(l.e[i]->id, begun[j]) == 0)
				break;
		if (j == nb) {
			diag("%s: from nowhere", l.e[i]->id);
			bad++;
		}
		else
			extra++;	/* committed, killed before "A" */
	}
	diag("crash: %d rounds, %d acknowledged, %d loaded, %d committed "
	    "but not yet acknowledged", CRASH_ROUNDS, na, l.n, extra);
	ok(na > 0, "the child committed messages before it was killed");
	ok(lost == 0, "every acknowledged message survived kill -9 (%d lost)",
	    lost);
	ok(bad == 0, "byte-exact, nothing from nowhere, incoming/ always "
	    "empty after recovery, nothing corrupt (%d bad)", bad);
	ok(extra <= CRASH_ROUNDS, "at most one unacknowledged commit per "
	    "kill: %d", extra);
	loaded_free(&l);
	queue_fs_close(&fs);
}

static void
rmtree(const char *path)
{
	char	 cmd[PATH_MAX + 16];

	if (snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path) <
	    (int)sizeof(cmd))
		(void)system(cmd);
}

int
main(void)
{
	char	 tmpl[] = "/tmp/queue_fs_test.XXXXXX";

	if (mkdtemp(tmpl) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	strlcpy(tmpdir, tmpl, sizeof(tmpdir));
	log_init(1, 0);
	plan(0);
	test_ids();
	test_roundtrip();
	test_malformed();
	test_tls();
	test_commit();
	test_reuse();
	test_reuse_unsupported();
	test_recovery();
	test_crash();
	rmtree(tmpdir);
	return done();
}
