/*
 * The directory file (SPEC §4, splitmx.conf(5)): "address kind [target]"
 * lines read in one go and kept as a sorted array for binary search.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "splitmx.h"

#define TF_MAXSIZE	(1024UL * 1024 * 1024)	/* a directory file */
#define TF_MAXLOCAL	64			/* RFC 5321 4.5.3.1.1 */
#define TF_MAXSTEPS	8			/* custom -> custom hops */
#define TF_NONE		UINT32_MAX
#define TF_LOOP		255			/* depth: leads to a cycle */

/*
 * The file stays in memory as read: keys and targets are NUL-terminated
 * in place, so an entry is three words and no allocation of its own.
 * Sorting once beats a hash table here: glibc's hsearch hashes only the
 * first few characters well, and addresses share long prefixes.
 */
struct dir_entry {
	const char	*key;
	const char	*target;	/* NULL: the address itself */
	uint32_t	 line;
	uint32_t	 kind;		/* enum dir_kind */
};

struct table_file {
	char		*buf;
	size_t		 len;
	struct dir_entry *ents;
	size_t		 n;
};

/* A cycle or a too long chain, reported in line order. */
struct chain_err {
	uint32_t	 line;
	uint32_t	 start;		/* entry the printout starts at */
	int		 loop;
};

static char	*tf_read(int, size_t *, const char *, FILE *);
static int	 tf_parse_line(struct table_file *, char *, uint32_t,
		    const char *, FILE *);
static int	 tf_cmp(const void *, const void *);
static int	 tf_cmp_key(const void *, const void *);
static int	 tf_cmp_dup(const void *, const void *);
static int	 tf_cmp_chain(const void *, const void *);
static const struct dir_entry *tf_find(const struct table_file *,
		    const char *);
static void	 tf_print_chain(const struct table_file *, const uint32_t *,
		    const struct chain_err *, const char *, FILE *);

/* The whole file in one buffer, NUL-terminated. */
static char *
tf_read(int fd, size_t *lenp, const char *name, FILE *errfp)
{
	struct stat	 st;
	char		*buf, *nbuf;
	size_t		 cap, len = 0;
	ssize_t		 r;

	cap = 64 * 1024;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
		cap = (size_t)st.st_size + 1;
	if (cap > TF_MAXSIZE + 1)
		cap = TF_MAXSIZE + 1;
	if ((buf = malloc(cap)) == NULL)
		goto fail;
	for (;;) {
		if (len + 1 >= cap) {
			if (cap > TF_MAXSIZE) {
				if (errfp != NULL)
					fprintf(errfp, "%s: larger than %lu "
					    "bytes\n", name, TF_MAXSIZE);
				free(buf);
				return NULL;
			}
			if ((nbuf = realloc(buf, cap * 2)) == NULL)
				goto fail;
			buf = nbuf;
			cap *= 2;
		}
		r = read(fd, buf + len, cap - len - 1);
		if (r == -1) {
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
	if (errfp != NULL)
		fprintf(errfp, "%s: %s\n", name, strerror(errno));
	free(buf);
	return NULL;
}

/*
 * An address in the directory, lower-cased already: one @, a local
 * part (empty only for a whole-domain "@domain" entry) and a domain.
 * NULL if good, else why not.  splitmxctl import checks what it
 * writes with it.
 */
const char *
table_file_check_addr(const char *s, int whole_domain_ok)
{
	const char	*at, *p;
	size_t		 len;

	if ((len = strlen(s)) >= SMX_ADDRSZ)
		return "address is too long";
	if ((at = strchr(s, '@')) == NULL)
		return "missing @domain";
	if (strchr(at + 1, '@') != NULL)
		return "more than one @";
	if (at == s && !whole_domain_ok)
		return "empty local part";
	if ((size_t)(at - s) > TF_MAXLOCAL)
		return "local part is longer than 64 characters";
	for (p = s; p < at; p++) {
		/* UTF-8 (SMTPUTF8) passes; controls and specials do not. */
		if ((unsigned char)*p < 0x21 || *p == 0x7f ||
		    strchr("()<>[]\\,;:\"", *p) != NULL)
			return "invalid character in local part";
	}
	if (at[1] == '\0')
		return "empty domain";
	len = strlen(at + 1);
	if (at[1] == '.' || at[len] == '.' || !valid_domain(at + 1))
		return "invalid domain";
	return NULL;
}

/* One line, split in place; 0 if it was good (or empty). */
static int
tf_parse_line(struct table_file *tf, char *line, uint32_t lineno,
    const char *name, FILE *errfp)
{
	char		*f[4], *p = line, shown[SMX_ADDRSZ];
	const char	*errstr;
	struct dir_entry *e;
	int		 nf = 0;
	enum dir_kind	 kind;

	while (nf < 4) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			break;
		f[nf++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
	if (nf == 0)
		return 0;
#define TF_ERR(...) do {						\
	if (errfp != NULL) {						\
		fprintf(errfp, "%s:%u: ", name, lineno);		\
		fprintf(errfp, __VA_ARGS__);				\
		fputc('\n', errfp);					\
	}								\
	return -1;							\
} while (0)
	if (nf == 4)
		TF_ERR("too many fields (address kind [target])");
	str_lower(f[0]);
	/* What is echoed before it is checked goes to a terminal. */
	if ((errstr = table_file_check_addr(f[0], 1)) != NULL)
		TF_ERR("invalid address \"%s\": %s",
		    str_printable(shown, sizeof(shown), f[0]), errstr);
	if (nf == 1)
		TF_ERR("\"%s\": missing kind (local or custom)", f[0]);
	if (strcasecmp(f[1], "local") == 0)
		kind = DIR_LOCAL;
	else if (strcasecmp(f[1], "custom") == 0)
		kind = DIR_CUSTOM;
	else
		TF_ERR("\"%s\": unknown kind \"%s\" (local or custom)", f[0],
		    str_printable(shown, sizeof(shown), f[1]));
	if (nf == 3) {
		if (kind == DIR_LOCAL)
			TF_ERR("\"%s\": a local entry has no target", f[0]);
		str_lower(f[2]);
		if ((errstr = table_file_check_addr(f[2], 0)) != NULL)
			TF_ERR("\"%s\": invalid target \"%s\": %s", f[0],
			    str_printable(shown, sizeof(shown), f[2]), errstr);
	}
#undef TF_ERR
	e = &tf->ents[tf->n++];
	e->key = f[0];
	e->kind = kind;
	e->line = lineno;
	/* A target that is the address itself is no target at all. */
	e->target = (nf == 3 && strcmp(f[0], f[2]) != 0) ? f[2] : NULL;
	return 0;
}

static int
tf_cmp(const void *a, const void *b)
{
	const struct dir_entry	*x = a, *y = b;
	int			 r;

	if ((r = strcmp(x->key, y->key)) != 0)
		return r;
	return x->line < y->line ? -1 : x->line > y->line;
}

static int
tf_cmp_key(const void *k, const void *e)
{
	return strcmp(k, ((const struct dir_entry *)e)->key);
}

static int
tf_cmp_dup(const void *a, const void *b)
{
	const struct dir_entry *const *x = a, *const *y = b;

	return (*x)->line < (*y)->line ? -1 : (*x)->line > (*y)->line;
}

struct table_file *
table_file_load(int fd, const char *name, FILE *errfp)
{
	struct table_file	*tf;
	const struct dir_entry	**dups = NULL;
	char			*p, *end, *nl;
	size_t			 lines, i, j, ndups = 0;
	uint32_t		 lineno = 0;
	int			 errors = 0;

	if ((tf = calloc(1, sizeof(*tf))) == NULL) {
		if (errfp != NULL)
			fprintf(errfp, "%s: %s\n", name, strerror(errno));
		return NULL;
	}
	if ((tf->buf = tf_read(fd, &tf->len, name, errfp)) == NULL) {
		free(tf);
		return NULL;
	}
	end = tf->buf + tf->len;
	lines = 1;
	for (p = tf->buf; (p = memchr(p, '\n', (size_t)(end - p))) != NULL;
	    p++)
		lines++;
	if ((tf->ents = reallocarray(NULL, lines, sizeof(*tf->ents))) ==
	    NULL) {
		if (errfp != NULL)
			fprintf(errfp, "%s: %s\n", name, strerror(errno));
		table_file_free(tf);
		return NULL;
	}

	for (p = tf->buf; p < end; p = nl + 1) {
		lineno++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if (memchr(p, '\0', (size_t)(nl - p)) != NULL) {
			if (errfp != NULL)
				fprintf(errfp, "%s:%u: NUL byte in line\n",
				    name, lineno);
			errors++;
			continue;
		}
		*nl = '\0';
		if (nl > p && nl[-1] == '\r')
			nl[-1] = '\0';
		if (tf_parse_line(tf, p, lineno, name, errfp) == -1)
			errors++;
	}

	qsort(tf->ents, tf->n, sizeof(*tf->ents), tf_cmp);

	/* Every later occurrence of an address is an error. */
	for (i = 0; i < tf->n; i = j) {
		for (j = i + 1; j < tf->n &&
		    strcmp(tf->ents[i].key, tf->ents[j].key) == 0; j++) {
			if (ndups % 64 == 0) {
				const struct dir_entry	**nd;

				if ((nd = reallocarray(dups, ndups + 64,
				    sizeof(*dups))) == NULL) {
					if (errfp != NULL)
						fprintf(errfp, "%s: %s\n",
						    name, strerror(errno));
					free(dups);
					table_file_free(tf);
					return NULL;
				}
				dups = nd;
			}
			dups[ndups++] = &tf->ents[j];
		}
	}
	if (ndups > 0) {
		qsort(dups, ndups, sizeof(*dups), tf_cmp_dup);
		for (i = 0; i < ndups; i++) {
			const struct dir_entry	*first;

			first = bsearch(dups[i]->key, tf->ents, tf->n,
			    sizeof(*tf->ents), tf_cmp_key);
			/* bsearch may land on any of the equal keys. */
			while (first > tf->ents &&
			    strcmp(first[-1].key, first->key) == 0)
				first--;
			if (errfp != NULL)
				fprintf(errfp, "%s:%u: duplicate address "
				    "\"%s\" (first at line %u)\n", name,
				    dups[i]->line, dups[i]->key, first->line);
		}
		errors++;
		free(dups);
	}

	if (errors) {
		table_file_free(tf);
		return NULL;
	}
	return tf;
}

void
table_file_free(struct table_file *tf)
{
	if (tf == NULL)
		return;
	free(tf->ents);
	free(tf->buf);
	free(tf);
}

size_t
table_file_count(const struct table_file *tf)
{
	return tf->n;
}

static const struct dir_entry *
tf_find(const struct table_file *tf, const char *key)
{
	return bsearch(key, tf->ents, tf->n, sizeof(*tf->ents), tf_cmp_key);
}

int
table_file_get(const struct table_file *tf, const char *key,
    enum dir_kind *kind, const char **target)
{
	const struct dir_entry	*e;

	if ((e = tf_find(tf, key)) == NULL)
		return -1;
	if (kind != NULL)
		*kind = (enum dir_kind)e->kind;
	if (target != NULL)
		*target = e->target;
	return 0;
}

/* As table_file_get, and the entry's line: its index, or -1. */
ssize_t
table_file_find(const struct table_file *tf, const char *key,
    enum dir_kind *kind, const char **target, uint32_t *line)
{
	const struct dir_entry	*e;

	if ((e = tf_find(tf, key)) == NULL)
		return -1;
	if (kind != NULL)
		*kind = (enum dir_kind)e->kind;
	if (target != NULL)
		*target = e->target;
	if (line != NULL)
		*line = e->line;
	return e - tf->ents;
}

/* The i-th entry in key order, for a walk over the whole directory. */
int
table_file_entry(const struct table_file *tf, size_t i, const char **key,
    enum dir_kind *kind, const char **target, uint32_t *line)
{
	const struct dir_entry	*e;

	if (i >= tf->n)
		return -1;
	e = &tf->ents[i];
	*key = e->key;
	*kind = (enum dir_kind)e->kind;
	*target = e->target;
	*line = e->line;
	return 0;
}

static int
tf_cmp_chain(const void *a, const void *b)
{
	const struct chain_err	*x = a, *y = b;

	return x->line < y->line ? -1 : x->line > y->line;
}

static void
tf_print_chain(const struct table_file *tf, const uint32_t *succ,
    const struct chain_err *ce, const char *name, FILE *errfp)
{
	uint32_t	 x = ce->start;

	fprintf(errfp, "%s:%u: custom recipient chain %s: %s", name,
	    ce->line, ce->loop ? "loops" : "is longer than 8 steps",
	    tf->ents[x].key);
	/* Around the cycle, or to the end of the chain. */
	do {
		x = succ[x];
		fprintf(errfp, " -> %s", tf->ents[x].key);
	} while (x != ce->start && succ[x] != TF_NONE);
	fputc('\n', errfp);
}

/*
 * Each custom entry whose target is itself an address of the directory
 * points at that entry: every entry has at most one successor.  A walk
 * from each unvisited entry finds the cycles (reported once each, from
 * their earliest line) and the depth of every entry; a chain of more
 * than TF_MAXSTEPS hops is reported from the entry where it gets too
 * long.
 */
int
table_file_check_cycles(const struct table_file *tf, const char *name,
    FILE *errfp)
{
	const struct dir_entry	*e;
	struct chain_err	*errs = NULL, *ne;
	uint32_t		*succ = NULL, *path = NULL, x, k;
	uint8_t			*state = NULL, *depth = NULL;
	size_t			 i, np, nerrs = 0, c;
	int			 ret = -1;

	if (tf->n == 0)
		return 0;
	if ((succ = reallocarray(NULL, tf->n, sizeof(*succ))) == NULL ||
	    (path = reallocarray(NULL, tf->n, sizeof(*path))) == NULL ||
	    (state = calloc(tf->n, 1)) == NULL ||
	    (depth = calloc(tf->n, 1)) == NULL) {
		if (errfp != NULL)
			fprintf(errfp, "%s: %s\n", name, strerror(errno));
		goto done;
	}
	for (i = 0; i < tf->n; i++) {
		succ[i] = TF_NONE;
		if (tf->ents[i].kind == DIR_CUSTOM &&
		    tf->ents[i].target != NULL &&
		    (e = tf_find(tf, tf->ents[i].target)) != NULL)
			succ[i] = (uint32_t)(e - tf->ents);
	}

	for (i = 0; i < tf->n; i++) {
		if (state[i] != 0)
			continue;
		np = 0;
		for (x = (uint32_t)i; x != TF_NONE && state[x] == 0;
		    x = succ[x]) {
			state[x] = 1;
			path[np++] = x;
		}
		if (x != TF_NONE && state[x] == 1) {
			/* A new cycle: from x to the end of the path. */
			for (c = np; path[c - 1] != x; c--)
				;
			c--;
			if (nerrs % 16 == 0) {
				if ((ne = reallocarray(errs, nerrs + 16,
				    sizeof(*errs))) == NULL) {
					if (errfp != NULL)
						fprintf(errfp, "%s: %s\n",
						    name, strerror(errno));
					goto done;
				}
				errs = ne;
			}
			ne = &errs[nerrs++];
			ne->loop = 1;
			ne->start = path[c];
			for (k = (uint32_t)c; k < np; k++)
				if (tf->ents[path[k]].line <
				    tf->ents[ne->start].line)
					ne->start = path[k];
			ne->line = tf->ents[ne->start].line;
			/* The cycle and everything leading to it. */
			for (k = 0; k < np; k++) {
				state[path[k]] = 2;
				depth[path[k]] = TF_LOOP;
			}
			continue;
		}
		while (np > 0) {
			x = path[--np];
			state[x] = 2;
			if (succ[x] == TF_NONE)
				depth[x] = 0;
			else if (depth[succ[x]] == TF_LOOP)
				depth[x] = TF_LOOP;
			else if (depth[succ[x]] >= TF_LOOP - 2)
				depth[x] = TF_LOOP - 1;	/* saturated */
			else
				depth[x] = depth[succ[x]] + 1;
			if (depth[x] != TF_MAXSTEPS + 1)
				continue;
			if (nerrs % 16 == 0) {
				if ((ne = reallocarray(errs, nerrs + 16,
				    sizeof(*errs))) == NULL) {
					if (errfp != NULL)
						fprintf(errfp, "%s: %s\n",
						    name, strerror(errno));
					goto done;
				}
				errs = ne;
			}
			ne = &errs[nerrs++];
			ne->loop = 0;
			ne->start = x;
			ne->line = tf->ents[x].line;
		}
	}

	if (nerrs == 0) {
		ret = 0;
		goto done;
	}
	qsort(errs, nerrs, sizeof(*errs), tf_cmp_chain);
	if (errfp != NULL)
		for (i = 0; i < nerrs; i++)
			tf_print_chain(tf, succ, &errs[i], name, errfp);
done:
	free(errs);
	free(depth);
	free(state);
	free(path);
	free(succ);
	return ret;
}
