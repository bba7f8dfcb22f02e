/*
 * The directory tables of the lookup process: one interface (open,
 * lookup with an answer that may come later, reload, close) over the
 * backends, and the loading of a configuration's tables as one set.
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmx.h"
#include "lookup.h"

/*
 * A backend.  lookup() calls q->done exactly once, now or later;
 * lookup_now() and entry() may be NULL where the backend cannot answer
 * synchronously or cannot list its entries.
 */
struct table_backend {
	const char	*name;
	int		(*open)(struct table *, struct smx_table *,
			    struct table *old, FILE *errfp);
	void		(*lookup)(struct table *, struct table_query *);
	int		(*lookup_now)(struct table *, struct table_query *);
	int		(*entry)(struct table *, size_t, struct table_query *);
	size_t		(*count)(const struct table *);
	void		(*close)(struct table *);
};

struct table {
	char				 name[SMX_NAMESZ];
	enum smx_table_type		 type;
	char				 path[PATH_MAX];
	const struct table_backend	*be;
	void				*data;
};

static int	tb_file_open(struct table *, struct smx_table *,
		    struct table *, FILE *);
static void	tb_file_lookup(struct table *, struct table_query *);
static int	tb_file_lookup_now(struct table *, struct table_query *);
static int	tb_file_entry(struct table *, size_t, struct table_query *);
static size_t	tb_file_count(const struct table *);
static void	tb_file_close(struct table *);
static int	tb_ldap_open(struct table *, struct smx_table *,
		    struct table *, FILE *);
static void	tb_ldap_lookup(struct table *, struct table_query *);
static size_t	tb_ldap_count(const struct table *);
static void	tb_ldap_close(struct table *);
static const struct table_backend *table_backend(enum smx_table_type);
static struct table *table_new(struct smx_table *, struct table *,
		    FILE *);

static const struct table_backend	tb_file = {
	"file", tb_file_open, tb_file_lookup, tb_file_lookup_now,
	tb_file_entry, tb_file_count, tb_file_close
};

/* LDAP: table_ldap.c, answered later, never listed. */
static const struct table_backend	tb_ldap = {
	"ldap", tb_ldap_open, tb_ldap_lookup, NULL, NULL, tb_ldap_count,
	tb_ldap_close
};

/* A new table type without a case here does not compile (-Wswitch). */
static const struct table_backend *
table_backend(enum smx_table_type type)
{
	switch (type) {
	case TABLE_FILE:
		return &tb_file;
	case TABLE_LDAP:
		return &tb_ldap;
	case TABLE_COUNT:
		break;
	}
	return NULL;
}

static struct table *
table_new(struct smx_table *t, struct table *old, FILE *errfp)
{
	struct table	*tb;

	if ((tb = calloc(1, sizeof(*tb))) == NULL) {
		fprintf(errfp, "table %s: %s\n", t->name, strerror(errno));
		return NULL;
	}
	strlcpy(tb->name, t->name, sizeof(tb->name));
	strlcpy(tb->path, t->path, sizeof(tb->path));
	tb->type = t->type;
	if ((tb->be = table_backend(t->type)) == NULL) {
		fprintf(errfp, "table %s: unknown table type %d\n", t->name,
		    (int)t->type);
		free(tb);
		return NULL;
	}
	if (old != NULL && old->type != t->type)
		old = NULL;
	if (tb->be->open(tb, t, old, errfp) == -1) {
		free(tb);
		return NULL;
	}
	return tb;
}

/* A file table reads the descriptor in t->fd, and closes it. */
struct table *
table_open(struct smx_table *t, FILE *errfp)
{
	return table_new(t, NULL, errfp);
}

struct table *
table_reload(struct table *old, struct smx_table *t, FILE *errfp)
{
	return table_new(t, old, errfp);
}

void
table_close(struct table *tb)
{
	if (tb == NULL)
		return;
	tb->be->close(tb);
	free(tb);
}

void
table_lookup(struct table *tb, struct table_query *q)
{
	q->status = TABLE_NOTFOUND;
	q->kind = DIR_LOCAL;
	q->target[0] = '\0';
	q->source[0] = '\0';
	q->reply[0] = '\0';
	tb->be->lookup(tb, q);
}

int
table_lookup_now(struct table *tb, struct table_query *q)
{
	if (tb->be->lookup_now == NULL)
		return -1;
	q->status = TABLE_NOTFOUND;
	q->kind = DIR_LOCAL;
	q->target[0] = '\0';
	q->source[0] = '\0';
	q->reply[0] = '\0';
	return tb->be->lookup_now(tb, q);
}

int
table_entry(struct table *tb, size_t i, struct table_query *q)
{
	if (tb->be->entry == NULL)
		return -1;
	return tb->be->entry(tb, i, q);
}

const char *
table_name(const struct table *tb)
{
	return tb->name;
}

size_t
table_count(const struct table *tb)
{
	return tb->be->count(tb);
}

/* The file backend: table_file.c, answered at once. */
static int
tb_file_open(struct table *tb, struct smx_table *t, struct table *old,
    FILE *errfp)
{
	struct table_file	*tf;
	int			 fd = t->fd;

	(void)old;	/* a file is read anew: it is the point of a reload */
	if (fd == -1) {
		fprintf(errfp, "%s: not opened\n", t->path);
		return -1;
	}
	tf = table_file_load(fd, t->path, errfp);
	close(fd);
	t->fd = -1;
	if (tf == NULL)
		return -1;
	if (table_file_check_cycles(tf, t->path, errfp) == -1) {
		table_file_free(tf);
		return -1;
	}
	tb->data = tf;
	return 0;
}

static int
tb_file_lookup_now(struct table *tb, struct table_query *q)
{
	enum dir_kind	 kind;
	const char	*target;
	uint32_t	 line;
	int		 n;

	if (table_file_find(tb->data, q->key, &kind, &target, &line) == -1) {
		q->status = TABLE_NOTFOUND;
		return 0;
	}
	q->status = TABLE_FOUND;
	q->kind = kind;
	if (target != NULL)
		strlcpy(q->target, target, sizeof(q->target));
	n = snprintf(q->source, sizeof(q->source), "%s:%u", tb->path, line);
	if (n < 0 || (size_t)n >= sizeof(q->source))
		strlcpy(q->source, tb->name, sizeof(q->source));
	return 0;
}

static void
tb_file_lookup(struct table *tb, struct table_query *q)
{
	(void)tb_file_lookup_now(tb, q);
	q->done(q);
}

static int
tb_file_entry(struct table *tb, size_t i, struct table_query *q)
{
	enum dir_kind	 kind;
	const char	*key, *target;
	uint32_t	 line;
	int		 n;

	if (table_file_entry(tb->data, i, &key, &kind, &target, &line) == -1)
		return -1;
	q->status = TABLE_FOUND;
	q->kind = kind;
	/* A million of them at every reload: the checks want customs only. */
	if (kind != DIR_CUSTOM) {
		q->key[0] = q->target[0] = q->source[0] = '\0';
		return 0;
	}
	strlcpy(q->key, key, sizeof(q->key));
	strlcpy(q->target, target != NULL ? target : "", sizeof(q->target));
	n = snprintf(q->source, sizeof(q->source), "%s:%u", tb->path, line);
	if (n < 0 || (size_t)n >= sizeof(q->source))
		strlcpy(q->source, tb->name, sizeof(q->source));
	return 0;
}

static size_t
tb_file_count(const struct table *tb)
{
	return table_file_count(tb->data);
}

static void
tb_file_close(struct table *tb)
{
	table_file_free(tb->data);
	tb->data = NULL;
}

static int
tb_ldap_open(struct table *tb, struct smx_table *t, struct table *old,
    FILE *errfp)
{
	tb->data = table_ldap_open(t, old != NULL ? old->data : NULL, errfp);
	return tb->data != NULL ? 0 : -1;
}

static void
tb_ldap_lookup(struct table *tb, struct table_query *q)
{
	table_ldap_lookup(tb->data, q);
}

static size_t
tb_ldap_count(const struct table *tb)
{
	return table_ldap_count(tb->data);
}

static void
tb_ldap_close(struct table *tb)
{
	table_ldap_close(tb->data);
	tb->data = NULL;
}

struct table_set *
table_set_open(struct smx_conf *c, int use_fds, struct table_set *old,
    FILE *errfp)
{
	struct table_set	*set;
	struct smx_table	*t;
	struct table		*tb, *prev;
	size_t			 n = 0;
	int			 errors = 0;

	TAILQ_FOREACH(t, &c->tables, entry)
		n++;
	if ((set = calloc(1, sizeof(*set))) == NULL ||
	    (n > 0 && (set->tables = calloc(n, sizeof(*set->tables))) ==
	    NULL)) {
		fprintf(errfp, "tables: %s\n", strerror(errno));
		free(set);
		errors++;
		set = NULL;
		goto done;
	}
	TAILQ_FOREACH(t, &c->tables, entry) {
		if (!use_fds && t->type == TABLE_FILE) {
			if ((t->fd = open(t->path, O_RDONLY | O_CLOEXEC)) ==
			    -1) {
				fprintf(errfp, "%s: %s\n", t->path,
				    strerror(errno));
				errors++;
				continue;
			}
		}
		prev = old != NULL ? table_set_find(old, t->name) : NULL;
		if (prev != NULL)
			tb = table_reload(prev, t, errfp);
		else
			tb = table_open(t, errfp);
		if (tb == NULL) {
			errors++;
			continue;
		}
		t->entries = table_count(tb);
		set->tables[set->n++] = tb;
	}
 done:
	/* Descriptors of tables not reached: ours to close all the same. */
	TAILQ_FOREACH(t, &c->tables, entry)
		if (t->fd != -1) {
			close(t->fd);
			t->fd = -1;
		}
	if (errors) {
		table_set_close(set);
		return NULL;
	}
	return set;
}

struct table *
table_set_find(const struct table_set *set, const char *name)
{
	size_t	 i;

	for (i = 0; i < set->n; i++)
		if (strcmp(set->tables[i]->name, name) == 0)
			return set->tables[i];
	return NULL;
}

void
table_set_close(struct table_set *set)
{
	size_t	 i;

	if (set == NULL)
		return;
	for (i = 0; i < set->n; i++)
		table_close(set->tables[i]);
	free(set->tables);
	free(set);
}
