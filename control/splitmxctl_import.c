/*
 * splitmxctl import [-n] TABLE FILE (SPEC §12): the administrator's side.
 * The export is parsed here, never by the daemon, and without
 * privileges (splitmxctl_import_read.c); the daemon only reloads the
 * finished file.
 */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "splitmx.h"
#include "import.h"
#include "splitmxctl.h"

/* What the command was told, and what the daemon said. */
struct ctl_imp {
	const char	*sock;
	int		 json;
	int		 dry;
	enum imp_format	 format;
	struct imp_attrs attrs;
	struct imp_rules rules;
	int		 opt_domains, opt_routing;
	const char	*addr_opt;	/* --address-attr, split later */
	const char	*target_opt;	/* --target-attr */
	char		*table;
	const char	*export;	/* as given; "-" is stdin */
	const char	*exname;	/* in messages */
	char		 path[PATH_MAX];	/* the table's file */
	char		 tmp[PATH_MAX + 8];
	char		 prev[PATH_MAX + 8];
	char		*strs;		/* the daemon's answer, split */
	FILE		*err;		/* errors, for text or JSON */
	char		*errbuf;
	size_t		 errlen;
	FILE		*warn;
	char		*warnbuf;
	size_t		 warnlen;
};

static void	 imp_usage(void) __attribute__((__noreturn__));
static int	 imp_request(struct ctl_imp *, int, char **, char **,
		    size_t *);
static int	 imp_info(struct ctl_imp *);
static int	 imp_add_domain(const char **, size_t *, const char *, int);
static char	*imp_slurp(int, size_t, size_t *, const char *, FILE *);
static int	 imp_check(struct ctl_imp *, const struct imp_result *,
		    const char *, size_t);
static int	 imp_read_export(void *, struct imp_export *, int);
static int	 imp_src_cmp(const void *, const void *);
static int	 imp_replace(struct ctl_imp *, int, const struct stat *,
		    const char *, size_t);
static int	 imp_restore(struct ctl_imp *);
static int	 imp_fail(struct ctl_imp *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
static void	 imp_json_lines(FILE *, const char *, size_t);
static void	 imp_report(struct ctl_imp *, const struct imp_result *,
		    FILE *);
static void	 imp_split_attrs(struct ctl_imp *, char *);
static const char *imp_optval(int, char **, int *, const char *);
static void	 imp_entry_text(FILE *, const char *, int, const char *);
static void	 imp_entry_json(FILE *, const char *, int, const char *);
static void	 imp_args(struct ctl_imp *, int, char **);
static int	 imp_lock(struct ctl_imp *, int *);
static int	 imp_table_load(struct ctl_imp *, int, struct stat *, char **,
		    size_t *);
static int	 imp_export_load(struct ctl_imp *, struct imp_export *);
static int	 imp_plan(struct ctl_imp *, const struct imp_result *);
static int	 imp_write_table(struct ctl_imp *, const struct stat *,
		    const char *, size_t);
static int	 imp_reload(struct ctl_imp *);

static void
imp_usage(void)
{
	fprintf(stderr, "usage: splitmxctl [-s socket] [--json] import [-n] "
	    "[--format ldif|csv]\n"
	    "\t[--address-attr LIST] [--target-attr NAME] [--domain DOMAIN]"
	    "\n\t[--routing-domain DOMAIN] TABLE FILE\n");
	exit(2);
}

/*
 * Everything the user should read before exit 1: "FILE:LINE: message"
 * lines on stderr, or with --json one object on stdout.
 */
static int
imp_fail(struct ctl_imp *ci, const char *fmt, ...)
{
	char	 msg[1024];
	va_list	 ap;

	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		strlcpy(msg, "error", sizeof(msg));
	va_end(ap);
	fflush(ci->err);
	fflush(ci->warn);
	if (ci->json) {
		fputs("{\"error\": ", stdout);
		json_str(stdout, msg);
		fputs(", \"errors\": ", stdout);
		imp_json_lines(stdout, ci->errbuf, ci->errlen);
		fputs(", \"warnings\": ", stdout);
		imp_json_lines(stdout, ci->warnbuf, ci->warnlen);
		fputs("}\n", stdout);
	} else {
		fwrite(ci->warnbuf, 1, ci->warnlen, stderr);
		fwrite(ci->errbuf, 1, ci->errlen, stderr);
		fprintf(stderr, "splitmxctl: %s\n", msg);
	}
	return 1;
}

/* A buffer of lines as a JSON array of strings. */
static void
imp_json_lines(FILE *out, const char *buf, size_t len)
{
	const char	*p = buf, *end = buf + len, *nl;
	char		*s;
	int		 n = 0;

	fputc('[', out);
	for (; p != NULL && p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if ((s = strndup(p, (size_t)(nl - p))) == NULL)
			break;
		fputs(n++ ? ", " : "", out);
		json_str(out, s);
		free(s);
	}
	fputc(']', out);
}

/*
 * One request (its words) as splitmxctl sends every verb, the answer's
 * text in *body (NUL-terminated): the status, or -1 splitmxd not
 * reached, -2 no whole answer to what was sent (ctl_request(); why on
 * ci->err, *body NULL then).
 */
static int
imp_request(struct ctl_imp *ci, int argc, char **argv, char **body,
    size_t *lenp)
{
	char	 req[1100];
	size_t	 reqlen;
	FILE	*fp;
	int	 st;

	*body = NULL;
	*lenp = 0;
	reqlen = ctl_request_line(req, sizeof(req), 0, argc, argv);
	if ((fp = open_memstream(body, lenp)) == NULL) {
		fprintf(ci->err, "splitmxctl: %s\n", strerror(errno));
		return -1;
	}
	st = ctl_request(ci->sock, req, reqlen, fp, fp, ci->err);
	if (fclose(fp) == EOF) {
		fprintf(ci->err, "splitmxctl: %s\n", strerror(errno));
		st = st == -1 ? -1 : -2;
	}
	if (st < 0) {
		free(*body);
		*body = NULL;
		*lenp = 0;
	}
	return st;
}

/* A shared or routing domain, "x" or ".x" (x and its sub-domains). */
static int
imp_add_domain(const char **list, size_t *n, const char *d, int dot_ok)
{
	size_t	 i;

	if (!imp_check_domain(d[0] == '.' && dot_ok ? d + 1 : d))
		return -1;
	for (i = 0; i < *n; i++)
		if (strcasecmp(list[i], d) == 0)
			return 0;
	if (*n == IMP_MAXDOMAINS)
		return -1;
	list[(*n)++] = d;
	return 0;
}

/*
 * Where the table's file is, and the domains it serves, from the
 * running daemon: the domains whose "directory" is TABLE are the
 * shared domains, and the host of their "forward to", when it is an
 * MX name (not "[host]" nor an address), is the other system's
 * routing domain.  --domain and --routing-domain replace either.
 */
static int
imp_info(struct ctl_imp *ci)
{
	char		*req[2] = { "import-info", ci->table };
	char		*body, *line, *next, *w[5], *p;
	size_t		 len, i, n;
	int		 st, got = 0;

	if ((st = imp_request(ci, 2, req, &body, &len)) < 0)
		return imp_fail(ci, "cannot ask splitmxd about table %s",
		    ci->table);
	if (st != 0) {
		fprintf(ci->err, "%s", body);
		free(body);
		return imp_fail(ci, "import refused");
	}
	ci->strs = body;
	for (line = body; line != NULL && *line; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		/* "table NAME file PATH": the path is the rest of the line. */
		if (strncmp(line, "table ", 6) == 0) {
			if ((p = strchr(line + 6, ' ')) == NULL ||
			    strncmp(p, " file ", 6) != 0)
				return imp_fail(ci, "bad answer: %s", line);
			if (strlcpy(ci->path, p + 6, sizeof(ci->path)) >=
			    sizeof(ci->path))
				return imp_fail(ci, "path too long");
			got = 1;
			continue;
		}
		for (n = 0, p = line; n < 5 && p != NULL; n++)
			w[n] = strsep(&p, " ");
		if (n == 5 && strcmp(w[0], "domain") == 0) {
			if (!ci->opt_domains && imp_add_domain(
			    ci->rules.domains, &ci->rules.ndomains, w[1], 1))
				return imp_fail(ci, "bad domain %s", w[1]);
			/* "name" or "name:port" is an MX name: a domain. */
			if (ci->opt_routing || w[4][0] == '[' ||
			    strcmp(w[4], "-") == 0)
				continue;
			if ((p = strchr(w[4], ':')) != NULL)
				*p = '\0';
			if (imp_add_domain(ci->rules.routing,
			    &ci->rules.nrouting, w[4], 0) == -1)
				return imp_fail(ci, "bad forward host %s",
				    w[4]);
		}
	}
	if (!got)
		return imp_fail(ci, "splitmxd did not say where table %s is",
		    ci->table);
	if (ci->path[0] != '/')
		return imp_fail(ci, "table %s: \"%s\" is not an absolute path",
		    ci->table, ci->path);
	if (ci->rules.ndomains == 0)
		return imp_fail(ci, "table %s is the directory of no domain: "
		    "name the shared domain with --domain", ci->table);
	for (i = 0; i < ci->rules.nrouting; i++)
		for (n = 0; n < ci->rules.ndomains; n++)
			if (imp_domain_match(ci->rules.routing[i],
			    ci->rules.domains[n]))
				return imp_fail(ci, "the routing domain %s is "
				    "in the shared domain %s: name the other "
				    "system's own domain with --routing-domain",
				    ci->rules.routing[i], ci->rules.domains[n]);
	return 0;
}

/* A whole file in memory, NUL-terminated. */
static char *
imp_slurp(int fd, size_t max, size_t *lenp, const char *name, FILE *err)
{
	struct stat	 st;
	char		*buf, *nbuf;
	size_t		 cap = 65536, len = 0;
	ssize_t		 r;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    (size_t)st.st_size <= max)
		cap = (size_t)st.st_size + 1;
	if ((buf = malloc(cap)) == NULL)
		goto fail;
	for (;;) {
		if (len + 1 >= cap) {
			if (cap > max) {
				fprintf(err, "%s: larger than %zu bytes\n",
				    name, max);
				free(buf);
				return NULL;
			}
			if ((nbuf = realloc(buf, cap * 2)) == NULL)
				goto fail;
			buf = nbuf;
			cap *= 2;
		}
		if ((r = read(fd, buf + len, cap - len - 1)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	*lenp = len;
	return buf;
fail:
	fprintf(err, "%s: %s\n", name, strerror(errno));
	free(buf);
	return NULL;
}

/*
 * ctl_import_read()'s reader, in the child without privileges: the
 * export's bytes, its format and the attributes that go with it (the
 * defaults of an Exchange/AD export or of our CSV), parsed.
 */
static int
imp_read_export(void *arg, struct imp_export *ex, int fd)
{
	struct ctl_imp	*ci = arg;
	char		*buf;
	size_t		 len;
	int		 r;

	if ((buf = imp_slurp(fd, IMP_MAXSIZE, &len, ci->exname,
	    ex->errfp)) == NULL)
		return IMP_READ_FAILED;
	if (ci->format == IMP_AUTO)
		ci->format = imp_sniff(buf, len);
	if (ci->attrs.naddr == 0 && ci->format == IMP_LDIF) {
		ci->attrs.addr[0] = "mail";
		ci->attrs.addr[1] = "proxyAddresses";
		ci->attrs.naddr = 2;
	} else if (ci->attrs.naddr == 0) {
		ci->attrs.addr[0] = "address";
		ci->attrs.naddr = 1;
	}
	if (ci->attrs.target == NULL)
		ci->attrs.target = ci->format == IMP_LDIF ? "targetAddress" :
		    "target";
	ci->attrs.kind = ci->format == IMP_CSV ? "kind" : NULL;
	r = imp_parse(ex, ci->format, &ci->attrs, buf, len);
	free(buf);
	return r == -1 ? IMP_READ_ERRORS : IMP_READ_OK;
}

static int
imp_src_cmp(const void *a, const void *b)
{
	const struct imp_change *const *x = a, *const *y = b;

	return strcmp((*x)->addr, (*y)->addr);
}

/*
 * The new file through the daemon's own loader and cycle check, from
 * memory: what the reload will check, before anything is written.  An
 * error that names an address this import adds or changes also names
 * the export's line of it.
 */
static int
imp_check(struct ctl_imp *ci, const struct imp_result *r, const char *buf,
    size_t len)
{
	struct table_file	*tf;
	const struct imp_change	**idx = NULL, **hit, *kp;
	struct imp_change	 key;
	FILE			*em;
	char			*ebuf = NULL, *p, *nl, *end, *line, *w, *s;
	size_t			 elen = 0, off, n = 0, i;
	ssize_t			 wr;
	int			 fd, ret = -1, k;

	if ((fd = memfd_create("splitmx-import", MFD_CLOEXEC)) == -1) {
		fprintf(ci->err, "memfd_create: %s\n", strerror(errno));
		return -1;
	}
	for (off = 0; off < len; off += (size_t)wr)
		if ((wr = write(fd, buf + off, len - off)) == -1) {
			fprintf(ci->err, "memfd: %s\n", strerror(errno));
			close(fd);
			return -1;
		}
	if (lseek(fd, 0, SEEK_SET) == -1 ||
	    (em = open_memstream(&ebuf, &elen)) == NULL) {
		fprintf(ci->err, "%s\n", strerror(errno));
		close(fd);
		return -1;
	}
	if ((tf = table_file_load(fd, ci->path, em)) != NULL) {
		if (table_file_check_cycles(tf, ci->path, em) == 0)
			ret = 0;
		table_file_free(tf);
	}
	close(fd);
	fclose(em);
	if (ret == 0 || (idx = reallocarray(NULL, r->n[IMP_ADDED] +
	    r->n[IMP_CHANGED] + 1, sizeof(*idx))) == NULL) {
		fwrite(ebuf, 1, elen, ci->err);
		free(ebuf);
		return ret;
	}
	kp = &key;
	for (k = IMP_ADDED; k <= IMP_CHANGED; k += IMP_CHANGED - IMP_ADDED)
		for (i = 0; i < r->n[k]; i++)
			idx[n++] = &r->ch[k][i];
	qsort(idx, n, sizeof(*idx), imp_src_cmp);
	for (p = ebuf, end = ebuf + elen; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		fprintf(ci->err, "%.*s", (int)(nl - p), p);
		if ((line = strndup(p, (size_t)(nl - p))) != NULL) {
			for (s = line; (w = strsep(&s, " \"")) != NULL;) {
				w[strcspn(w, ":,")] = '\0';
				key.addr = w;
				if (*w == '\0' || (hit = bsearch(&kp, idx, n,
				    sizeof(*idx), imp_src_cmp)) == NULL)
					continue;
				fprintf(ci->err, " (%s from %s:%u)", w,
				    ci->exname, (*hit)->src);
				break;
			}
			free(line);
		}
		fputc('\n', ci->err);
	}
	free(idx);
	free(ebuf);
	return ret;
}

/*
 * FILE.tmp in the same directory, fsync'd, then FILE.prev a hard link
 * of the file in force and FILE.tmp renamed over FILE, and the
 * directory fsync'd: at every instant FILE is the old or the new
 * file, complete, and the daemon (or a SIGHUP) reads one of them.
 */
static int
imp_replace(struct ctl_imp *ci, int dfd, const struct stat *st,
    const char *buf, size_t len)
{
	size_t		 off;
	ssize_t		 w;
	int		 fd;

	/* A crashed run's: we hold the lock. */
	(void)unlink(ci->tmp);
	if ((fd = open(ci->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, st->st_mode & 0777)) == -1) {
		fprintf(ci->err, "%s: %s\n", ci->tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, st->st_mode & 07777) == -1 ||
	    (geteuid() == 0 && fchown(fd, st->st_uid, st->st_gid) == -1)) {
		fprintf(ci->err, "%s: %s\n", ci->tmp, strerror(errno));
		goto fail;
	}
	for (off = 0; off < len; off += (size_t)w)
		if ((w = write(fd, buf + off, len - off)) == -1) {
			if (errno == EINTR) {
				w = 0;
				continue;
			}
			fprintf(ci->err, "%s: %s\n", ci->tmp, strerror(errno));
			goto fail;
		}
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		fprintf(ci->err, "%s: %s\n", ci->tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if ((unlink(ci->prev) == -1 && errno != ENOENT) ||
	    link(ci->path, ci->prev) == -1) {
		fprintf(ci->err, "%s: %s\n", ci->prev, strerror(errno));
		goto fail;
	}
	if (rename(ci->tmp, ci->path) == -1) {
		fprintf(ci->err, "%s: %s\n", ci->path, strerror(errno));
		goto fail;
	}
	/* Renamed: from here on the new file is the one in force. */
	if (fsync(dfd) == -1)
		fprintf(stderr, "splitmxctl: warning: fsync of the directory "
		    "of %s: %s\n", ci->path, strerror(errno));
	return 0;
fail:
	if (fd != -1)
		close(fd);
	(void)unlink(ci->tmp);
	return -1;
}

/* The reload was refused: FILE.prev goes back, and stays as well. */
static int
imp_restore(struct ctl_imp *ci)
{
	char	 dir[PATH_MAX], *slash;
	int	 dfd;

	if (rename(ci->prev, ci->path) == -1 ||
	    link(ci->path, ci->prev) == -1) {
		fprintf(ci->err, "%s: cannot put %s back: %s\n", ci->path,
		    ci->prev, strerror(errno));
		return -1;
	}
	strlcpy(dir, ci->path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) != NULL)
		slash[slash == dir] = '\0';
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

static void
imp_entry_text(FILE *out, const char *addr, int kind, const char *target)
{
	fprintf(out, "%s %s%s%s", addr, imp_kind_name(kind),
	    target ? " " : "", target ? target : "");
}

static void
imp_entry_json(FILE *out, const char *pfx, int kind, const char *target)
{
	fprintf(out, ", \"%skind\": \"%s\", \"%starget\": ", pfx,
	    imp_kind_name(kind), pfx);
	if (target)
		json_str(out, target);
	else
		fputs("null", out);
}

/* Counts, then the entries: added, removed, changed, conflicts. */
static void
imp_report(struct ctl_imp *ci, const struct imp_result *r, FILE *out)
{
	static const char *const names[IMP_NWHAT] = {
		"added", "removed", "changed", "conflicts"
	};
	const struct imp_change	*c;
	const char		*tname;
	char			 src[PATH_MAX + 16];
	size_t			 i;
	int			 w;

	tname = strrchr(ci->path, '/') ? strrchr(ci->path, '/') + 1 :
	    ci->path;
	if (ci->json) {
		fprintf(out, "{\"table\": \"%s\", \"file\": ", ci->table);
		json_str(out, ci->path);
		fputs(", \"export\": ", out);
		json_str(out, ci->exname);
		fprintf(out, ", \"dry_run\": %s, \"counts\": {\"added\": %zu, "
		    "\"removed\": %zu, \"changed\": %zu, \"conflicts\": %zu, "
		    "\"unchanged\": %zu, \"left_out\": %zu, \"ignored\": %zu, "
		    "\"entries\": %zu}", ci->dry ? "true" : "false",
		    r->n[IMP_ADDED], r->n[IMP_REMOVED], r->n[IMP_CHANGED],
		    r->n[IMP_CONFLICT], r->unchanged, r->leftout, r->ignored,
		    r->entries);
		for (w = 0; w < IMP_NWHAT; w++) {
			fprintf(out, ", \"%s\": [", names[w]);
			for (i = 0; i < r->n[w]; i++) {
				c = &r->ch[w][i];
				fputs(i ? ", {\"address\": " : "{\"address\": ",
				    out);
				json_str(out, c->addr);
				if (w == IMP_REMOVED || w == IMP_CONFLICT)
					imp_entry_json(out, "", c->old_kind,
					    c->old_target);
				else
					imp_entry_json(out, "", c->kind,
					    c->target);
				if (w == IMP_CHANGED)
					imp_entry_json(out, "old_",
					    c->old_kind, c->old_target);
				if (w == IMP_CONFLICT)
					imp_entry_json(out, "export_",
					    c->kind, c->target);
				if (c->line)
					fprintf(out, ", \"line\": %u", c->line);
				if (c->src) {
					snprintf(src, sizeof(src), "%s:%u",
					    ci->exname, c->src);
					fputs(", \"source\": ", out);
					json_str(out, src);
				}
				fputc('}', out);
			}
			fputc(']', out);
		}
		return;
	}
	fprintf(out, "table %s (%s) from %s: %zu added, %zu removed, %zu "
	    "changed, %zu conflict%s; %zu imported entr%s, %zu left out, "
	    "%zu without an address in the shared domain\n", ci->table,
	    ci->path, ci->exname, r->n[IMP_ADDED], r->n[IMP_REMOVED],
	    r->n[IMP_CHANGED], r->n[IMP_CONFLICT],
	    r->n[IMP_CONFLICT] == 1 ? "" : "s", r->entries,
	    r->entries == 1 ? "y" : "ies", r->leftout, r->ignored);
	for (i = 0; i < r->n[IMP_ADDED]; i++) {
		c = &r->ch[IMP_ADDED][i];
		fputs("added     ", out);
		imp_entry_text(out, c->addr, c->kind, c->target);
		fprintf(out, " (%s:%u)\n", ci->exname, c->src);
	}
	for (i = 0; i < r->n[IMP_REMOVED]; i++) {
		c = &r->ch[IMP_REMOVED][i];
		fputs("removed   ", out);
		imp_entry_text(out, c->addr, c->old_kind, c->old_target);
		fprintf(out, " (%s:%u)\n", tname, c->line);
	}
	for (i = 0; i < r->n[IMP_CHANGED]; i++) {
		c = &r->ch[IMP_CHANGED][i];
		fputs("changed   ", out);
		imp_entry_text(out, c->addr, c->kind, c->target);
		fputs(", was ", out);
		imp_entry_text(out, c->addr, c->old_kind, c->old_target);
		fprintf(out, " (%s:%u, %s:%u)\n", ci->exname, c->src, tname,
		    c->line);
	}
	for (i = 0; i < r->n[IMP_CONFLICT]; i++) {
		c = &r->ch[IMP_CONFLICT][i];
		fprintf(out, "conflict  %s stays ", c->addr);
		if (c->old_kind == IMP_LOCAL)
			fputs("local", out);
		else
			fprintf(out, "custom%s%s", c->old_target ? " " : "",
			    c->old_target ? c->old_target : "");
		fprintf(out, " (%s:%u); %s:%u has %s%s%s\n", tname, c->line,
		    ci->exname, c->src, imp_kind_name(c->kind),
		    c->target ? " " : "",
		    c->target ? c->target : "");
	}
}

/* "--name VALUE" or "--name=VALUE" at argv[*i]: the value, or NULL. */
static const char *
imp_optval(int argc, char **argv, int *i, const char *name)
{
	size_t	 len = strlen(name);

	if (strncmp(argv[*i], name, len) != 0)
		return NULL;
	if (argv[*i][len] == '=')
		return argv[*i] + len + 1;
	if (argv[*i][len] != '\0')
		return NULL;
	if (*i + 1 == argc)
		imp_usage();
	return argv[++*i];
}

/* "mail,proxyAddresses": the address attributes, in place. */
static void
imp_split_attrs(struct ctl_imp *ci, char *list)
{
	char	*a;

	ci->attrs.naddr = 0;
	while ((a = strsep(&list, ",")) != NULL) {
		if (*a == '\0')
			continue;
		if (ci->attrs.naddr == IMP_MAXATTRS) {
			fprintf(stderr, "splitmxctl: at most %d address "
			    "attributes\n", IMP_MAXATTRS);
			exit(2);
		}
		ci->attrs.addr[ci->attrs.naddr++] = a;
	}
	if (ci->attrs.naddr == 0)
		imp_usage();
}

/* The options of import into ci; a wrong one is a usage error (exit 2). */
static void
imp_args(struct ctl_imp *ci, int argc, char **argv)
{
	const char	*v;
	int		 i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-n") == 0)
			ci->dry = 1;
		else if ((v = imp_optval(argc, argv, &i, "--format")) != NULL) {
			if (strcasecmp(v, "ldif") == 0)
				ci->format = IMP_LDIF;
			else if (strcasecmp(v, "csv") == 0)
				ci->format = IMP_CSV;
			else
				imp_usage();
		} else if ((v = imp_optval(argc, argv, &i, "--address-attr")) !=
		    NULL)
			ci->addr_opt = v;
		else if ((v = imp_optval(argc, argv, &i, "--target-attr")) !=
		    NULL)
			ci->target_opt = v;
		else if ((v = imp_optval(argc, argv, &i, "--domain")) != NULL) {
			ci->opt_domains = 1;
			if (imp_add_domain(ci->rules.domains,
			    &ci->rules.ndomains, v, 1) == -1) {
				fprintf(stderr, "splitmxctl: --domain %s: "
				    "invalid domain\n", v);
				exit(2);
			}
		} else if ((v = imp_optval(argc, argv, &i,
		    "--routing-domain")) != NULL) {
			ci->opt_routing = 1;
			if (imp_add_domain(ci->rules.routing,
			    &ci->rules.nrouting, v, 1) == -1) {
				fprintf(stderr, "splitmxctl: --routing-domain "
				    "%s: invalid domain\n", v);
				exit(2);
			}
		} else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0')
			imp_usage();
		else
			break;
	}
	if (argc - i != 2)
		imp_usage();
	ci->table = argv[i];
	ci->export = argv[i + 1];
	ci->exname = strcmp(ci->export, "-") == 0 ? "stdin" : ci->export;
	for (v = ci->table; *v; v++)
		if (*v <= ' ' || *v == 0x7f)
			imp_usage();
	if (*ci->table == '\0' || strlen(ci->table) >= SMX_NAMESZ)
		imp_usage();
}

/*
 * One import at a time: a lock on the file in force, taken again if
 * another import replaced the file while we waited for it.  The file
 * stays open in *fdp (with the lock) for the caller to close.
 */
static int
imp_lock(struct ctl_imp *ci, int *fdp)
{
	struct stat	 st, st2;
	int		 tries;

	for (tries = 0;; tries++) {
		if ((*fdp = open(ci->path, O_RDONLY | O_CLOEXEC)) == -1) {
			fprintf(ci->err, "%s: %s\n", ci->path, strerror(errno));
			imp_fail(ci, "cannot read table %s", ci->table);
			return -1;
		}
		if (ci->dry)
			return 0;
		if (flock(*fdp, LOCK_EX | LOCK_NB) == -1) {
			imp_fail(ci, "%s: %s", ci->path, errno ==
			    EWOULDBLOCK ? "another import is running" :
			    strerror(errno));
			return -1;
		}
		if (fstat(*fdp, &st) == 0 && stat(ci->path, &st2) == 0 &&
		    st.st_dev == st2.st_dev && st.st_ino == st2.st_ino)
			return 0;
		close(*fdp);
		*fdp = -1;
		if (tries == 5) {
			imp_fail(ci, "%s keeps changing", ci->path);
			return -1;
		}
	}
}

/*
 * The table in force, from the locked fd: its bytes and mode into
 * *bufp and *st, and refused unless the daemon's loader takes it now.
 */
static int
imp_table_load(struct ctl_imp *ci, int fd, struct stat *st, char **bufp,
    size_t *lenp)
{
	struct table_file	*tf;

	if (fstat(fd, st) == -1 ||
	    (*bufp = imp_slurp(fd, IMP_MAXSIZE, lenp, ci->path, ci->err)) ==
	    NULL || lseek(fd, 0, SEEK_SET) == -1) {
		imp_fail(ci, "cannot read table %s", ci->table);
		return -1;
	}
	if ((tf = table_file_load(fd, ci->path, ci->err)) == NULL ||
	    table_file_check_cycles(tf, ci->path, ci->err) == -1) {
		table_file_free(tf);
		imp_fail(ci, "table %s has errors now: fix them first; "
		    "nothing changed", ci->table);
		return -1;
	}
	table_file_free(tf);
	return 0;
}

/*
 * The export: untrusted bytes, opened as the user we run as, read
 * and parsed by a child without privileges.
 */
static int
imp_export_load(struct ctl_imp *ci, struct imp_export *ex)
{
	char	*list;
	int	 efd, r;

	if (strcmp(ci->export, "-") == 0)
		efd = STDIN_FILENO;
	else if ((efd = open(ci->export, O_RDONLY | O_CLOEXEC)) == -1) {
		imp_fail(ci, "%s: %s", ci->export, strerror(errno));
		return -1;
	}
	if (ci->addr_opt != NULL) {
		if ((list = strdup(ci->addr_opt)) == NULL) {
			imp_fail(ci, "%s", strerror(errno));
			return -1;
		}
		imp_split_attrs(ci, list);	/* kept until exit */
	}
	ci->attrs.target = ci->target_opt;
	imp_export_init(ex, ci->exname, ci->err);
	r = ctl_import_read(ex, efd, imp_read_export, ci, ci->err);
	if (efd != STDIN_FILENO)
		close(efd);
	if (r == IMP_READ_FAILED) {
		imp_fail(ci, "cannot read %s; nothing changed", ci->exname);
		return -1;
	}
	if (r == IMP_READ_ERRORS) {
		imp_fail(ci, "%s: %zu error%s, nothing changed", ci->exname,
		    ex->errors, ex->errors == 1 ? "" : "s");
		return -1;
	}
	return 0;
}

/*
 * The plan on stdout (-n, --json or not) after the warnings; 1 when
 * that is all there is to do: -n, or nothing added, removed or changed.
 */
static int
imp_plan(struct ctl_imp *ci, const struct imp_result *res)
{
	fflush(ci->warn);
	if (!ci->json)
		fwrite(ci->warnbuf, 1, ci->warnlen, stderr);
	imp_report(ci, res, stdout);
	if (ci->json) {
		fputs(", \"warnings\": ", stdout);
		imp_json_lines(stdout, ci->warnbuf, ci->warnlen);
	}
	if (ci->dry || res->n[IMP_ADDED] + res->n[IMP_REMOVED] +
	    res->n[IMP_CHANGED] == 0) {
		if (ci->json)
			printf(", \"written\": false}\n");
		else if (ci->dry)
			printf("-n: nothing written\n");
		else
			printf("no change: %s not written, splitmxd not "
			    "reloaded\n", ci->path);
		return 1;
	}
	return 0;
}

/*
 * The new table written over the old one (imp_replace); when it
 * cannot be, why, and that nothing changed.
 */
static int
imp_write_table(struct ctl_imp *ci, const struct stat *st, const char *buf,
    size_t len)
{
	char	 dir[PATH_MAX], *slash;
	int	 dfd = -1, r = -1;

	strlcpy(dir, ci->path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) != NULL)
		slash[slash == dir] = '\0';
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		fprintf(ci->err, "%s: %s\n", dir, strerror(errno));
	else
		r = imp_replace(ci, dfd, st, buf, len);
	if (r == -1) {
		fflush(ci->err);
		if (ci->json)
			printf(", \"written\": false, \"error\": "
			    "\"not written\"}\n");
		else {
			fwrite(ci->errbuf, 1, ci->errlen, stderr);
			fprintf(stderr, "splitmxctl: %s not written; nothing "
			    "changed\n", ci->path);
		}
	}
	if (dfd != -1)
		close(dfd);
	return r;
}

/*
 * The new file is in force: the daemon takes it as any reload,
 * checked again.  Refused, the previous file is put back; unanswered,
 * both stay, and the user is told which is which.  The exit status.
 */
static int
imp_reload(struct ctl_imp *ci)
{
	char	*reload[1] = { "reload" };
	char	*body = NULL;
	size_t	 blen;
	int	 r;

	r = imp_request(ci, 1, reload, &body, &blen);
	fflush(ci->err);
	if (r == 0) {
		if (ci->json) {
			printf(", \"written\": true, \"reload\": {\"status\": "
			    "\"applied\", \"message\": ");
			json_str(stdout, body);
			printf("}}\n");
		} else
			printf("%s%s", body, blen && body[blen - 1] == '\n' ?
			    "" : "\n");
		free(body);
		return 0;
	}
	if (r == -2) {
		/* Sent, unanswered: the daemon may have the new file. */
		if (ci->json)
			printf(", \"written\": true, \"reload\": {\"status\": "
			    "\"unknown\"}}\n");
		fwrite(ci->errbuf, 1, ci->errlen, stderr);
		fprintf(stderr, "splitmxctl: no answer to the reload: %s is "
		    "the new directory, %s the previous one\n", ci->path,
		    ci->prev);
		free(body);
		return 1;
	}
	r = imp_restore(ci);
	fflush(ci->err);	/* (restore's complaint after the reload's) */
	if (ci->json) {
		printf(", \"written\": false, \"reload\": {\"status\": "
		    "\"refused\", \"message\": ");
		json_str(stdout, body ? body : "splitmxd not reached");
		printf(", \"restored\": %s}}\n", r == 0 ? "true" : "false");
	} else {
		fwrite(ci->errbuf, 1, ci->errlen, stderr);
		fprintf(stderr, "reload refused, %s:\n%s%s", r == 0 ?
		    "the previous directory is back" :
		    "AND THE PREVIOUS DIRECTORY COULD NOT BE PUT BACK",
		    body ? body : "splitmxd not reached",
		    body && blen && body[blen - 1] == '\n' ? "" : "\n");
	}
	free(body);
	return 1;
}

/* argv[0] is "import"; the global -s and --json are already taken. */
int
ctl_import(int argc, char **argv, const char *sock, int json)
{
	struct ctl_imp		 ci;
	struct imp_export	 ex;
	struct imp_table	 tab;
	struct imp_result	 res;
	struct stat		 st;
	char			*tbuf = NULL, *nbuf = NULL;
	size_t			 tlen = 0, nlen = 0, nsrc = 0;
	uint32_t		*src = NULL;
	FILE			*nf;
	int			 fd = -1, rc = 1;

	memset(&ci, 0, sizeof(ci));
	memset(&ex, 0, sizeof(ex));
	memset(&tab, 0, sizeof(tab));
	memset(&res, 0, sizeof(res));
	ci.sock = sock;
	ci.json = json;
	if ((ci.err = open_memstream(&ci.errbuf, &ci.errlen)) == NULL ||
	    (ci.warn = open_memstream(&ci.warnbuf, &ci.warnlen)) == NULL) {
		fprintf(stderr, "splitmxctl: %s\n", strerror(errno));
		return 1;
	}
	imp_args(&ci, argc, argv);

	if (imp_info(&ci) != 0)
		goto out;
	if ((size_t)snprintf(ci.tmp, sizeof(ci.tmp), "%s.tmp", ci.path) >=
	    sizeof(ci.tmp) || (size_t)snprintf(ci.prev, sizeof(ci.prev),
	    "%s.prev", ci.path) >= sizeof(ci.prev)) {
		rc = imp_fail(&ci, "%s: path too long", ci.path);
		goto out;
	}
	if (imp_lock(&ci, &fd) == -1 ||
	    imp_table_load(&ci, fd, &st, &tbuf, &tlen) == -1 ||
	    imp_export_load(&ci, &ex) == -1)
		goto out;
	if (imp_table_read(&tab, ci.path, tbuf, tlen, ci.err) == -1 ||
	    imp_merge(&res, &tab, &ex, &ci.rules, ci.warn, ci.err) == -1) {
		rc = imp_fail(&ci, "%s: nothing changed", ci.exname);
		goto out;
	}
	if ((nf = open_memstream(&nbuf, &nlen)) == NULL ||
	    imp_write(&res, &tab, nf, &src, &nsrc) == -1 ||
	    fclose(nf) == EOF) {
		rc = imp_fail(&ci, "%s", strerror(errno));
		goto out;
	}
	if (imp_check(&ci, &res, nbuf, nlen) == -1) {
		rc = imp_fail(&ci, "table %s would be refused after this "
		    "import; nothing changed", ci.table);
		goto out;
	}

	if (imp_plan(&ci, &res))
		rc = 0;
	else if (imp_write_table(&ci, &st, nbuf, nlen) == 0)
		rc = imp_reload(&ci);
out:
	if (fd != -1)
		close(fd);	/* and the lock with it */
	imp_result_free(&res);
	imp_table_free(&tab);
	imp_export_free(&ex);
	free(src);
	free(nbuf);
	free(tbuf);
	free(ci.strs);
	fclose(ci.err);
	fclose(ci.warn);
	free(ci.errbuf);
	free(ci.warnbuf);
	return rc;
}
