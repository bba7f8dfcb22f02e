/*
 * What a reload changes, in words an administrator reads: both
 * configurations are printed in canonical form, cut into statements,
 * and compared statement by statement.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"

struct stmt {
	char	 key[512];	/* what identifies it: "domain \"x\"" */
	char	*text;		/* the whole statement, block included */
};

static int	conf_stmts(const struct smx_conf *, struct stmt **, size_t *);
static void	stmt_key(const char *, char *, size_t);
static struct stmt *stmt_find(struct stmt *, size_t, const char *);
static void	stmts_free(struct stmt *, size_t);
static void	stmt_head(FILE *, const char *);
static void	stmt_delta(FILE *, const char *, const char *);
static int	stmt_has_line(const char *, const char *, size_t, int);
static size_t	stmt_opt_key(const char *, size_t);

/*
 * The key of a statement: blocks and named things by their first two
 * words, listeners by address and port, the rest by the directive.
 */
static void
stmt_key(const char *line, char *key, size_t len)
{
	const char	*p;
	size_t		 n;
	int		 words = 1;

	if (strncmp(line, "listen on ", 10) == 0) {
		if ((p = strstr(line, " port ")) != NULL) {
			p += 6;
			p += strcspn(p, " \n");
		} else
			p = line + strcspn(line, "\n");
		n = (size_t)(p - line);
	} else {
		if (strncmp(line, "domain ", 7) == 0 ||
		    strncmp(line, "table ", 6) == 0 ||
		    strncmp(line, "pki ", 4) == 0 ||
		    strncmp(line, "milter ", 7) == 0 ||
		    strncmp(line, "limit ", 6) == 0 ||
		    strncmp(line, "timeout ", 8) == 0 ||
		    strncmp(line, "control ", 8) == 0 ||
		    strncmp(line, "status ", 7) == 0 ||
		    strncmp(line, "metrics ", 8) == 0 ||
		    strncmp(line, "dnsbl ", 6) == 0 ||
		    strncmp(line, "dnswl ", 6) == 0)
			words = 2;
		if (strncmp(line, "control admin", 13) == 0)
			words = 3;
		for (p = line; *p && *p != '\n'; p++)
			if (*p == ' ' && --words == 0)
				break;
		n = (size_t)(p - line);
	}
	if (n >= len)
		n = len - 1;
	memcpy(key, line, n);
	key[n] = '\0';
}

static int
conf_stmts(const struct smx_conf *c, struct stmt **out, size_t *nout)
{
	char		*buf = NULL, *line, *p, *next;
	size_t		 len = 0, n = 0, cap = 0;
	struct stmt	*s = NULL, *tmp;
	FILE		*fp;

	if ((fp = open_memstream(&buf, &len)) == NULL)
		return -1;
	conf_print(fp, c);
	if (fclose(fp) != 0) {
		free(buf);
		return -1;
	}
	for (p = buf; p != NULL && *p; p = next) {
		/* A statement: its line, plus an indented block and "}". */
		line = p;
		next = strchr(p, '\n');
		if (next != NULL && next > p && next[-1] == '{') {
			while ((next = strchr(next + 1, '\n')) != NULL &&
			    next[1] != '}')
				;
			if (next != NULL)
				next = strchr(next + 1, '\n');
		}
		if (next != NULL)
			*next++ = '\0';
		if (*line == '\0')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			if ((tmp = reallocarray(s, cap, sizeof(*s))) == NULL)
				fatal("reallocarray");
			s = tmp;
		}
		stmt_key(line, s[n].key, sizeof(s[n].key));
		s[n].text = str_dup(line);
		n++;
	}
	free(buf);
	*out = s;
	*nout = n;
	return 0;
}

static struct stmt *
stmt_find(struct stmt *s, size_t n, const char *key)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (strcmp(s[i].key, key) == 0)
			return &s[i];
	return NULL;
}

static void
stmts_free(struct stmt *s, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		free(s[i].text);
	free(s);
}

/* A statement by its first line, a block without its " {". */
static void
stmt_head(FILE *out, const char *text)
{
	size_t	 n = strcspn(text, "\n");

	if (n >= 2 && text[n - 1] == '{' && text[n - 2] == ' ')
		n -= 2;
	fprintf(out, "%.*s", (int)n, text);
}

/*
 * Whether the block text has the line (len bytes, tab-indented), or
 * with word set, a line that begins with those bytes and a space.
 */
static int
stmt_has_line(const char *text, const char *line, size_t len, int word)
{
	const char	*p = text;

	while ((p = strchr(p, '\n')) != NULL) {
		p++;
		if (strncmp(p, line, len) != 0)
			continue;
		if (word ? p[len] == ' ' : (p[len] == '\n' || p[len] == '\0'))
			return 1;
	}
	return 0;
}

/*
 * The length of what names an option line of a block: its first word,
 * with the second for "local to", "forward to", "forward from".
 */
static size_t
stmt_opt_key(const char *line, size_t len)
{
	size_t	 n = strcspn(line, " \n");

	if (n < len && (strncmp(line + n, " to ", 4) == 0 ||
	    strncmp(line + n, " from ", 6) == 0))
		n += strcspn(line + n + 1, " \n") + 1;
	return n;
}

/*
 * What changed inside a block, in parentheses: its lines that are new,
 * and "without" those that went and have no new value ("(unknown
 * bounce, without forward from 192.0.2.0/24)").
 */
static void
stmt_delta(FILE *out, const char *old, const char *new)
{
	const char	*texts[2] = { new, old };
	const char	*p, *line;
	size_t		 len;
	int		 i, n = 0;

	if (strchr(old, '\n') == NULL || strchr(new, '\n') == NULL)
		return;		/* not two blocks: the head says it all */
	for (i = 0; i < 2; i++) {
		for (p = strchr(texts[i], '\n'); p != NULL;
		    p = strchr(p, '\n')) {
			line = ++p;
			len = strcspn(line, "\n");
			if (*line != '\t' || stmt_has_line(texts[1 - i], line,
			    len, 0))
				continue;
			/* An option given a new value is shown once. */
			if (i == 1 && stmt_has_line(new, line,
			    stmt_opt_key(line, len), 1))
				continue;
			fprintf(out, "%s%s%.*s", n++ ? ", " : " (",
			    i ? "without " : "", (int)len - 1, line + 1);
		}
	}
	if (n)
		fputc(')', out);
}

/*
 * "changed: limit recipients 50", "added: domain "x.example"", one per
 * line, a changed block with what changed in it ("changed: domain
 * "x.example" (unknown bounce)"); "no change to the configuration" when
 * there is none.  Directory contents are reported by the caller
 * (entries per table).
 */
void
conf_changes(FILE *out, const struct smx_conf *old,
    const struct smx_conf *new)
{
	struct stmt	*a, *b, *o;
	size_t		 na, nb, i;
	int		 any = 0;

	if (conf_stmts(old, &a, &na) == -1 || conf_stmts(new, &b, &nb) == -1)
		fatal("conf_changes");
	for (i = 0; i < nb; i++) {
		o = stmt_find(a, na, b[i].key);
		if (o != NULL && strcmp(o->text, b[i].text) == 0)
			continue;
		fprintf(out, "%s: ", o ? "changed" : "added");
		stmt_head(out, b[i].text);
		if (o != NULL)
			stmt_delta(out, o->text, b[i].text);
		fputc('\n', out);
		any = 1;
	}
	for (i = 0; i < na; i++) {
		if (stmt_find(b, nb, a[i].key) != NULL)
			continue;
		fprintf(out, "removed: ");
		stmt_head(out, a[i].text);
		fputc('\n', out);
		any = 1;
	}
	if (!any)
		fprintf(out, "no change to the configuration file\n");
	stmts_free(a, na);
	stmts_free(b, nb);
}
