/*
 * splitmxctl import (SPEC §12): the readers of the other system's export
 * (LDIF, CSV) and the rules that turn it into directory lines.
 */
#ifndef SMX_IMPORT_H
#define SMX_IMPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Bytes in, lines and a report out: this unit opens no file and no
 * socket, so the unit test and the fuzzer link it alone (with lib/ and
 * lookup/table_file.c, whose address check it shares).  Every message
 * is "NAME:LINE: text" on the FILE given.
 */

#define IMP_MAXATTRS	8		/* address attributes or columns */
#define IMP_MAXDOMAINS	32		/* shared or routing domains */
#define IMP_MAXSIZE	(1024UL * 1024 * 1024)	/* an export file */
#define IMP_MARKER	"import"	/* the comment of an imported line */

enum imp_format {
	IMP_AUTO,
	IMP_LDIF,
	IMP_CSV
};

enum imp_kind {
	IMP_CUSTOM,
	IMP_LOCAL
};

/* Which attributes (LDIF) or header columns (CSV) hold what. */
struct imp_attrs {
	const char	*addr[IMP_MAXATTRS];	/* the entry's addresses */
	size_t		 naddr;
	const char	*target;		/* its target address */
	const char	*kind;			/* CSV: optional column */
};

/* One address of an entry, lower-cased, without its "smtp:" prefix. */
struct imp_value {
	const char	*addr;
	uint32_t	 line;
	uint8_t		 primary;	/* "SMTP:": the entry's primary */
	uint8_t		 target;	/* from the target attribute */
};

#define IMPE_LOCAL	0x01	/* CSV kind "local" */
#define IMPE_FOREIGN	0x02	/* a target that is no SMTP address */

/* An LDIF entry or a CSV row: its values are vals[first .. first+n). */
struct imp_entry {
	uint32_t	 line;
	uint32_t	 first;
	uint32_t	 n;
	uint32_t	 flags;		/* IMPE_* */
	const char	*foreign;	/* IMPE_FOREIGN: the target as given */
	uint32_t	 fline;
};

struct imp_chunk;

/* Copies of values live in chunks freed together. */
struct imp_arena {
	struct imp_chunk	*head;
};

struct imp_export {
	const char	*name;
	struct imp_entry *ents;
	size_t		 nents, capents;
	struct imp_value *vals;
	size_t		 nvals, capvals;
	struct imp_arena arena;
	size_t		 errors;
	FILE		*errfp;
};

/* One line of the directory file as it is now. */
struct imp_line {
	const char	*text;		/* in the caller's buffer */
	size_t		 len;		/* without the newline */
	const char	*key;		/* lower-cased; NULL: no entry */
	const char	*target;	/* NULL: none, or the address itself */
	uint32_t	 lineno;
	uint8_t		 kind;		/* enum imp_kind */
	uint8_t		 imported;	/* ends in the marker */
	uint8_t		 state;		/* imp_merge's */
	uint32_t	 change;	/* imp_merge's: index + 1 in changed */
};

struct imp_table {
	const char	*name;
	struct imp_line	*lines;
	size_t		 n;
	size_t		 nimported;
	struct imp_arena arena;
};

/* Where the export's addresses go: the gateway's, and the other side's. */
struct imp_rules {
	const char	*domains[IMP_MAXDOMAINS];	/* ".x": x and below */
	size_t		 ndomains;
	const char	*routing[IMP_MAXDOMAINS];
	size_t		 nrouting;
};

/* One difference between the file and the export. */
struct imp_change {
	const char	*addr;
	const char	*target;	/* the export's; NULL: none */
	const char	*old_target;	/* the file's; NULL: none */
	uint32_t	 src;		/* export line, 0: none */
	uint32_t	 line;		/* file line, 0: none */
	uint8_t		 kind;
	uint8_t		 old_kind;
};

enum imp_what {
	IMP_ADDED,
	IMP_REMOVED,
	IMP_CHANGED,
	IMP_CONFLICT,
	IMP_NWHAT
};

struct imp_result {
	struct imp_change *ch[IMP_NWHAT];
	size_t		 n[IMP_NWHAT];
	size_t		 cap[IMP_NWHAT];
	size_t		 unchanged;	/* imported lines the export confirms */
	size_t		 leftout;	/* entries warned about and left out */
	size_t		 ignored;	/* entries without a shared address */
	size_t		 entries;	/* lines the export makes */
};

/* The readers.  -1 if the export had any error (all reported). */
enum imp_format	 imp_sniff(const char *buf, size_t len);
void		 imp_export_init(struct imp_export *, const char *name,
		    FILE *errfp);
int		 imp_parse(struct imp_export *, enum imp_format,
		    const struct imp_attrs *, const char *buf, size_t len);
void		 imp_export_free(struct imp_export *);
/*
 * An export rebuilt from what another reader found (splitmxctl's
 * unprivileged one): an entry, then its values, the strings copied.
 * The caller checks them; -1 if memory runs out (or no entry yet).
 */
int		 imp_export_entry(struct imp_export *, uint32_t line,
		    uint32_t flags, const char *foreign, uint32_t fline);
int		 imp_export_value(struct imp_export *, const char *addr,
		    uint32_t line, int primary, int target);

/* The directory file, split into lines: -1 if it cannot be read. */
int		 imp_table_read(struct imp_table *, const char *name,
		    const char *buf, size_t len, FILE *errfp);
void		 imp_table_free(struct imp_table *);

/*
 * The rules: the export against the file; the result points into both,
 * which must outlive it.  Warnings ("NAME:LINE:
 * warning: ...", an entry left out) to warnfp, errors to errfp; -1 on
 * an error (two entries claiming one address differently).
 */
int		 imp_merge(struct imp_result *, struct imp_table *,
		    const struct imp_export *, const struct imp_rules *,
		    FILE *warnfp, FILE *errfp);
/*
 * The new file: hand-written lines as they were, imported ones changed
 * in place or dropped, new ones at the end.  src[i] is the export line
 * of the file's line i + 1 (0: not from the export), for errors.
 */
int		 imp_write(const struct imp_result *, const struct imp_table *,
		    FILE *out, uint32_t **src, size_t *nsrc);
void		 imp_result_free(struct imp_result *);

/* Helpers the command shares. */
int		 imp_domain_match(const char *domain, const char *pattern);
int		 imp_check_domain(const char *);
const char	*imp_kind_name(int);

/* Shared by import.c and import_rules.c. */
char		*imp_arena_dup(struct imp_arena *, const char *, size_t);
void		 imp_arena_free(struct imp_arena *);
int		 imp_in_domains(const char *, const char *const *, size_t);

#endif
