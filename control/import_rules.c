/*
 * splitmxctl import: the directory file split into lines, and the rules
 * between it and the export that import.c read (SPEC §12): which lines
 * are added, changed, removed or conflict, and the new file.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "splitmx.h"
#include "import.h"

/* The first lines written above the first imported line of a file. */
#define IMP_HEADER \
	"# Lines that end in \"# " IMP_MARKER "\" are kept by splitmxctl " \
	"import: it adds,\n# changes and removes only those.  Other lines " \
	"are never touched.\n"

/* An address the export gives a line for, before the file is asked. */
struct imp_cand {
	const char	*key;
	const char	*target;
	uint32_t	 src;
	uint8_t		 kind;
	uint8_t		 keep;	/* left out: an earlier import's line stays */
};

static int	 cand_cmp(const void *, const void *);
static int	 line_cmp(const void *, const void *);
static int	 same(int, const char *, int, const char *);
static int	 change_add(struct imp_result *, int,
		    const struct imp_change *);
static void	 write_entry(FILE *, const char *, int, const char *);
static void	 leftout_warn(FILE *, const struct imp_export *,
		    const struct imp_entry *, const struct imp_rules *,
		    const char *, const char *);
static const char *entry_target(const struct imp_export *,
		    const struct imp_entry *, const struct imp_rules *,
		    const char **);
static int	 merge_cands(struct imp_result *, const struct imp_export *,
		    const struct imp_rules *, FILE *, struct imp_cand **,
		    size_t *);
static struct imp_line **merge_index(struct imp_table *, size_t *);
static size_t	 merge_group(const struct imp_export *,
		    const struct imp_cand *, size_t, size_t, FILE *, int *);
static int	 merge_cand(struct imp_result *, struct imp_line **, size_t,
		    const struct imp_cand *);
static int	 merge_removed(struct imp_result *, const struct imp_table *);

/* ----------------------------------------------------------- the file */

int
imp_table_read(struct imp_table *t, const char *name, const char *buf,
    size_t len, FILE *errfp)
{
	const char	*p, *end = buf + len, *nl;
	char		*s, *f[3], *w, *cm;
	struct imp_line	*l;
	size_t		 n = 1, llen;
	uint32_t	 lineno = 0;
	int		 nf;

	memset(t, 0, sizeof(*t));
	t->name = name;
	for (p = buf; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
		n++;
	if ((t->lines = calloc(n, sizeof(*t->lines))) == NULL)
		goto fail;
	for (p = buf; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		l = &t->lines[t->n++];
		l->text = p;
		l->len = (size_t)(nl - p);
		l->lineno = ++lineno;
		llen = l->len;
		if (llen > 0 && p[llen - 1] == '\r')
			llen--;
		if ((s = imp_arena_dup(&t->arena, p, llen)) == NULL)
			goto fail;
		if (memchr(p, '\0', llen) != NULL)
			continue;
		/* As table_file.c splits it: "#" at a field's start. */
		nf = 0;
		cm = NULL;
		while ((w = strsep(&s, " \t")) != NULL) {
			if (*w == '\0')
				continue;
			if (*w == '#') {
				cm = w + 1;
				if (s != NULL)
					cm[strlen(cm)] = ' ';
				break;
			}
			if (nf < 3)
				f[nf] = w;
			nf++;
		}
		if (nf < 2 || nf > 3)
			continue;
		if (strcasecmp(f[1], "local") == 0)
			l->kind = IMP_LOCAL;
		else if (strcasecmp(f[1], "custom") == 0)
			l->kind = IMP_CUSTOM;
		else
			continue;
		str_lower(f[0]);
		l->key = f[0];
		if (nf == 3) {
			str_lower(f[2]);
			if (strcmp(f[2], f[0]) != 0)
				l->target = f[2];
		}
		if (cm != NULL) {
			while (*cm == ' ' || *cm == '\t')
				cm++;
			for (w = cm + strlen(cm); w > cm &&
			    (w[-1] == ' ' || w[-1] == '\t'); w--)
				w[-1] = '\0';
			if (strcmp(cm, IMP_MARKER) == 0) {
				l->imported = 1;
				t->nimported++;
			}
		}
	}
	/* A last line ended by the file's final newline is no line. */
	if (t->n > 0 && t->lines[t->n - 1].len == 0 && len > 0 &&
	    buf[len - 1] == '\n')
		t->n--;
	return 0;
fail:
	if (errfp != NULL)
		fprintf(errfp, "%s: %s\n", name, strerror(errno));
	imp_table_free(t);
	return -1;
}

void
imp_table_free(struct imp_table *t)
{
	free(t->lines);
	t->lines = NULL;
	t->n = 0;
	imp_arena_free(&t->arena);
}

/* ---------------------------------------------------------- the rules */

static int
cand_cmp(const void *a, const void *b)
{
	const struct imp_cand	*x = a, *y = b;
	int			 r;

	if ((r = strcmp(x->key, y->key)) != 0)
		return r;
	if (x->keep != y->keep)
		return x->keep - y->keep;
	return x->src < y->src ? -1 : x->src > y->src;
}

static int
line_cmp(const void *a, const void *b)
{
	const struct imp_line *const *x = a, *const *y = b;

	return strcmp((*x)->key, (*y)->key);
}

static int
same(int k1, const char *t1, int k2, const char *t2)
{
	if (k1 != k2)
		return 0;
	if (t1 == NULL || t2 == NULL)
		return t1 == t2;
	return strcmp(t1, t2) == 0;
}

static int
change_add(struct imp_result *r, int what, const struct imp_change *c)
{
	struct imp_change	*n;
	size_t			 cap;

	if (r->n[what] == r->cap[what]) {
		cap = r->cap[what] ? r->cap[what] * 2 : 16;
		if ((n = reallocarray(r->ch[what], cap, sizeof(*n))) == NULL)
			return -1;
		r->ch[what] = n;
		r->cap[what] = cap;
	}
	r->ch[what][r->n[what]++] = *c;
	return 0;
}

/*
 * An entry's target, and in *why why it is left out (NULL: it is not).
 * A target in a shared domain becomes the entry's address in a routing
 * domain, its primary one first.
 */
static const char *
entry_target(const struct imp_export *ex, const struct imp_entry *e,
    const struct imp_rules *ru, const char **why)
{
	const struct imp_value	*v, *route = NULL;
	const char		*target = NULL;
	size_t			 j;

	*why = NULL;
	for (j = e->first; j < e->first + e->n; j++)
		if (ex->vals[j].target)
			target = ex->vals[j].addr;
	if (e->flags & IMPE_LOCAL)
		return NULL;
	if (e->flags & IMPE_FOREIGN) {
		*why = "is not an SMTP address";
		return e->foreign;
	}
	if (target != NULL &&
	    !imp_in_domains(target, ru->domains, ru->ndomains))
		return target;
	for (j = e->first; j < e->first + e->n; j++) {
		v = &ex->vals[j];
		if (!imp_in_domains(v->addr, ru->routing, ru->nrouting))
			continue;
		if (route == NULL || (v->primary && !route->primary))
			route = v;
	}
	if (route != NULL)
		return route->addr;
	*why = "";
	return target;
}

/*
 * The export's entries as candidates in *cp, one per address in a
 * shared domain, unsorted; entries without one are counted as ignored,
 * entries left out are counted and warned of.
 */
static int
merge_cands(struct imp_result *r, const struct imp_export *ex,
    const struct imp_rules *ru, FILE *warnfp, struct imp_cand **cp,
    size_t *np)
{
	const struct imp_entry	*e;
	const struct imp_value	*v;
	struct imp_cand		*nc;
	const char		*target, *why;
	size_t			 cap = 0, i, j, k;
	int			 keep;

	for (i = 0; i < ex->nents; i++) {
		e = &ex->ents[i];
		for (k = 0, j = e->first; j < e->first + e->n; j++)
			if (!ex->vals[j].target &&
			    imp_in_domains(ex->vals[j].addr, ru->domains,
			    ru->ndomains))
				k++;
		if (k == 0) {
			r->ignored++;
			continue;
		}
		target = entry_target(ex, e, ru, &why);
		keep = 0;
		if (why != NULL) {
			keep = 1;
			r->leftout++;
			if (warnfp != NULL)
				leftout_warn(warnfp, ex, e, ru, target, why);
		}
		for (j = e->first; j < e->first + e->n; j++) {
			v = &ex->vals[j];
			if (v->target || !imp_in_domains(v->addr, ru->domains,
			    ru->ndomains))
				continue;
			if (*np == cap) {
				cap = cap ? cap * 2 : 4096;
				if ((nc = reallocarray(*cp, cap,
				    sizeof(*nc))) == NULL)
					return -1;
				*cp = nc;
			}
			nc = &(*cp)[(*np)++];
			nc->key = v->addr;
			nc->src = v->line;
			nc->keep = (uint8_t)keep;
			nc->kind = (e->flags & IMPE_LOCAL) ? IMP_LOCAL :
			    IMP_CUSTOM;
			nc->target = keep ? NULL : target;
		}
	}
	return 0;
}

/* The file's lines with an entry, sorted by address; their marks reset. */
static struct imp_line **
merge_index(struct imp_table *t, size_t *np)
{
	struct imp_line	**idx;
	size_t		  i;

	if ((idx = reallocarray(NULL, t->n + 1, sizeof(*idx))) == NULL)
		return NULL;
	for (i = 0; i < t->n; i++) {
		t->lines[i].state = 0;
		t->lines[i].change = 0;
		if (t->lines[i].key != NULL)
			idx[(*np)++] = &t->lines[i];
	}
	qsort(idx, *np, sizeof(*idx), line_cmp);
	return idx;
}

/*
 * The candidates from c[i] on that have its address: entries that agree
 * are one, entries that differ an error (counted in *errs).  The index
 * of the next address.
 */
static size_t
merge_group(const struct imp_export *ex, const struct imp_cand *c,
    size_t i, size_t n, FILE *errfp, int *errs)
{
	const struct imp_cand	*g = &c[i];
	size_t			 j;

	for (j = i + 1; j < n && strcmp(c[j].key, g->key) == 0; j++) {
		if (c[j].keep || g->keep || same(g->kind, g->target,
		    c[j].kind, c[j].target))
			continue;
		if (errfp != NULL)
			fprintf(errfp, "%s:%u: %s: %s %s here, %s %s "
			    "at line %u\n", ex->name, c[j].src, g->key,
			    imp_kind_name(c[j].kind), c[j].target ?
			    c[j].target : "", imp_kind_name(g->kind),
			    g->target ? g->target : "", g->src);
		(*errs)++;
	}
	return j;
}

/*
 * One address of the export against the file's line for it: added,
 * changed, unchanged, or a conflict with a hand-written line.
 */
static int
merge_cand(struct imp_result *r, struct imp_line **idx, size_t nidx,
    const struct imp_cand *g)
{
	struct imp_line		**found, key, *kp = &key, *l;
	struct imp_change	 ch;

	key.key = g->key;
	found = nidx ? bsearch(&kp, idx, nidx, sizeof(*idx),
	    line_cmp) : NULL;
	l = found ? *found : NULL;
	memset(&ch, 0, sizeof(ch));
	ch.addr = g->key;
	ch.kind = g->kind;
	ch.target = g->target;
	ch.src = g->src;
	if (l != NULL) {
		ch.line = l->lineno;
		ch.old_kind = l->kind;
		ch.old_target = l->target;
	}
	if (g->keep) {
		if (l != NULL && l->imported) {
			l->state = 1;
			r->unchanged++;
		}
		return 0;
	}
	if (l == NULL) {
		if (change_add(r, IMP_ADDED, &ch) == -1)
			return -1;
	} else if (!l->imported) {
		/* Hand-written: kept as it is, said when it differs. */
		if (!same(l->kind, l->target, g->kind, g->target) &&
		    change_add(r, IMP_CONFLICT, &ch) == -1)
			return -1;
	} else {
		l->state = 1;
		if (same(l->kind, l->target, g->kind, g->target))
			r->unchanged++;
		else {
			if (change_add(r, IMP_CHANGED, &ch) == -1)
				return -1;
			l->change = (uint32_t)r->n[IMP_CHANGED];
		}
	}
	return 0;
}

/* The file's imported lines that no address of the export kept. */
static int
merge_removed(struct imp_result *r, const struct imp_table *t)
{
	const struct imp_line	*l;
	struct imp_change	 ch;
	size_t			 i;

	for (i = 0; i < t->n; i++) {
		l = &t->lines[i];
		if (!l->imported || l->key == NULL || l->state)
			continue;
		memset(&ch, 0, sizeof(ch));
		ch.addr = l->key;
		ch.line = l->lineno;
		ch.old_kind = l->kind;
		ch.old_target = l->target;
		if (change_add(r, IMP_REMOVED, &ch) == -1)
			return -1;
	}
	return 0;
}

/*
 * Each entry gives a line to every address it has in a shared domain.
 * Its target is the target attribute, or the address itself; a target
 * in a shared domain would come back to the gateway (the loop of the
 * original deployment), so it becomes the entry's address in a routing
 * domain of the other system (its primary one first), or the entry is
 * left out with a warning: its line from an earlier import then stays.
 */
int
imp_merge(struct imp_result *r, struct imp_table *t,
    const struct imp_export *ex, const struct imp_rules *ru,
    FILE *warnfp, FILE *errfp)
{
	struct imp_cand		*c = NULL;
	struct imp_line		**idx = NULL;
	size_t			 ncand = 0, i, j, nidx = 0;
	int			 ret = -1, errs = 0;

	memset(r, 0, sizeof(*r));
	if (merge_cands(r, ex, ru, warnfp, &c, &ncand) == -1)
		goto fail;
	if (ncand > 0)
		qsort(c, ncand, sizeof(*c), cand_cmp);
	if ((idx = merge_index(t, &nidx)) == NULL)
		goto fail;
	for (i = 0; i < ncand; i = j) {
		j = merge_group(ex, c, i, ncand, errfp, &errs);
		if (merge_cand(r, idx, nidx, &c[i]) == -1)
			goto fail;
	}
	if (merge_removed(r, t) == -1)
		goto fail;
	r->entries = r->unchanged + r->n[IMP_ADDED] + r->n[IMP_CHANGED];
	ret = errs ? -1 : 0;
	free(idx);
	free(c);
	return ret;
fail:
	if (errfp != NULL)
		fprintf(errfp, "%s: %s\n", ex->name, strerror(errno));
	free(idx);
	free(c);
	return -1;
}

/*
 * "FILE:LINE: warning: bob@example.com: target bob@example.com is in
 * the shared domain example.com and the entry has no address in
 * notes.example.com: left out".
 */
static void
leftout_warn(FILE *fp, const struct imp_export *ex,
    const struct imp_entry *e, const struct imp_rules *ru,
    const char *target, const char *why)
{
	const char	*at;
	size_t		 i;

	fprintf(fp, "%s:%u: warning: ", ex->name, e->line);
	for (i = e->first; i < e->first + e->n; i++)
		if (!ex->vals[i].target && imp_in_domains(ex->vals[i].addr,
		    ru->domains, ru->ndomains)) {
			fprintf(fp, "%s: ", ex->vals[i].addr);
			break;
		}
	if (*why != '\0') {
		fprintf(fp, "target \"%s\" %s: left out\n", target, why);
		return;
	}
	if (target == NULL)
		fputs("no target, and the address itself", fp);
	else
		fprintf(fp, "target %s", target);
	at = strrchr(target ? target : ex->vals[i].addr, '@');
	fprintf(fp, " is in the shared domain %s", at ? at + 1 : "");
	if (ru->nrouting == 0) {
		fputs(" and no routing domain of the other system is known "
		    "(--routing-domain): left out\n", fp);
		return;
	}
	fputs(" and the entry has no address in ", fp);
	for (i = 0; i < ru->nrouting; i++)
		fprintf(fp, "%s%s", i == 0 ? "" : i + 1 == ru->nrouting ?
		    " or " : ", ", ru->routing[i]);
	fputs(": left out\n", fp);
}

void
imp_result_free(struct imp_result *r)
{
	int	 i;

	for (i = 0; i < IMP_NWHAT; i++) {
		free(r->ch[i]);
		r->ch[i] = NULL;
		r->n[i] = r->cap[i] = 0;
	}
}

static void
write_entry(FILE *out, const char *addr, int kind, const char *target)
{
	if (kind == IMP_LOCAL)
		fprintf(out, "%-31s local  # %s\n", addr, IMP_MARKER);
	else
		fprintf(out, "%-31s custom %-31s # %s\n", addr,
		    target ? target : addr, IMP_MARKER);
}

int
imp_write(const struct imp_result *r, const struct imp_table *t, FILE *out,
    uint32_t **srcp, size_t *nsrcp)
{
	const struct imp_change	*c;
	const struct imp_line	*l;
	uint32_t		*src;
	size_t			 i, n = 0, cap, hdr = 0;

	cap = t->n + r->n[IMP_ADDED] + 3;
	if ((src = calloc(cap, sizeof(*src))) == NULL)
		return -1;
	for (i = 0; i < t->n; i++) {
		l = &t->lines[i];
		if (l->imported && l->key != NULL && !l->state)
			continue;		/* removed */
		if (l->change) {
			c = &r->ch[IMP_CHANGED][l->change - 1];
			write_entry(out, c->addr, c->kind, c->target);
			src[n++] = c->src;
			continue;
		}
		fwrite(l->text, 1, l->len, out);
		fputc('\n', out);
		n++;
		if (l->len >= 30 && strncmp(l->text, IMP_HEADER, 30) == 0)
			hdr = 1;
	}
	if (r->n[IMP_ADDED] > 0 && t->nimported == 0 && !hdr) {
		fputs(IMP_HEADER, out);
		n += 2;
	}
	for (i = 0; i < r->n[IMP_ADDED]; i++) {
		c = &r->ch[IMP_ADDED][i];
		write_entry(out, c->addr, c->kind, c->target);
		src[n++] = c->src;
	}
	if (ferror(out)) {
		free(src);
		return -1;
	}
	*srcp = src;
	*nsrcp = n;
	return 0;
}
