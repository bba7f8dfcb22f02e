/*
 * Unit tests of control/import.c: the LDIF and CSV readers, the file
 * split into lines, the rules and the file they write.  TAP output.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "import.h"
#include "tap.h"

/* One run of the readers: the export, its messages, the verdict. */
struct run {
	struct imp_export	 ex;
	char			*msg;
	size_t			 len;
	int			 rc;
};

static const struct imp_attrs	 ldif_attrs = {
	{ "mail", "proxyAddresses" }, 2, "targetAddress", NULL
};
static const struct imp_attrs	 csv_attrs = {
	{ "address" }, 1, "target", "kind"
};

static void	 parse(struct run *, enum imp_format, const struct imp_attrs *,
		    const char *);
static void	 run_free(struct run *);
static int	 has(const struct run *, const char *);
static int	 value_is(const struct run *, size_t, size_t, const char *,
		    uint32_t);
static char	*merge_write(const char *, const char *, enum imp_format,
		    struct imp_result *, char **, int *);
static void	 test_ldif(void);
static void	 test_ldif_errors(void);
static void	 test_csv(void);
static void	 test_csv_errors(void);
static void	 test_table(void);
static void	 test_rules(void);
static void	 test_write(void);

static void
parse(struct run *r, enum imp_format fmt, const struct imp_attrs *at,
    const char *text)
{
	FILE	*fp;

	memset(r, 0, sizeof(*r));
	if ((fp = open_memstream(&r->msg, &r->len)) == NULL)
		abort();
	imp_export_init(&r->ex, "x", fp);
	r->rc = imp_parse(&r->ex, fmt, at, text, strlen(text));
	fclose(fp);
}

static void
run_free(struct run *r)
{
	imp_export_free(&r->ex);
	free(r->msg);
}

static int
has(const struct run *r, const char *s)
{
	if (strstr(r->msg, s) != NULL)
		return 1;
	diag("messages: %s", r->msg);
	return 0;
}

/* Value j of entry i is addr, from that line. */
static int
value_is(const struct run *r, size_t i, size_t j, const char *addr,
    uint32_t line)
{
	const struct imp_entry	*e;
	const struct imp_value	*v;

	if (i >= r->ex.nents)
		return 0;
	e = &r->ex.ents[i];
	if (j >= e->n)
		return 0;
	v = &r->ex.vals[e->first + j];
	if (strcmp(v->addr, addr) != 0 || v->line != line) {
		diag("value %zu.%zu is %s at line %u", i, j, v->addr, v->line);
		return 0;
	}
	return 1;
}

static void
test_ldif(void)
{
	struct run	 r;

	parse(&r, IMP_AUTO, &ldif_attrs,
	    "version: 1\n"
	    "# exported\n"
	    "#  and folded\n"
	    " comment\n"
	    "dn: cn=bob,ou=contacts,dc=exa\n"
	    " mple,dc=com\n"
	    "objectClass: contact\n"
	    "mail: Bob@Example.COM\n"
	    "proxyAddresses: SMTP:bob@example.com\n"
	    "proxyAddresses: X500:/o=Org/cn=bob\n"
	    "proxyAddresses;range=0-1499: smtp:bob@notes.exam\n"
	    " ple.com\n"
	    "targetAddress: SMTP:bob@example.com\n"
	    "\n\n"
	    "dn:: Y249em/DqyxvdT1jb250YWN0cw==\n"
	    "mail:: em/Dq0BleGFtcGxlLmNvbQ==\n"
	    "jpegPhoto:: /9j/4AAQ\n"
	    "\n"
	    "dn: ou=contacts\r\n"
	    "ou: contacts\r\n");
	ok(r.rc == 0 && r.ex.nents == 3, "LDIF: three records (rc %d, %zu)",
	    r.rc, r.ex.nents);
	ok(r.ex.nents > 0 && r.ex.ents[0].line == 5 && r.ex.ents[0].n == 4,
	    "LDIF: the first entry opens at its dn line with 4 values");
	ok(value_is(&r, 0, 0, "bob@example.com", 8),
	    "LDIF: mail lower-cased, with its line");
	ok(value_is(&r, 0, 1, "bob@example.com", 9) &&
	    r.ex.vals[1].primary, "LDIF: SMTP: is the primary proxy address");
	ok(value_is(&r, 0, 2, "bob@notes.example.com", 11) &&
	    !r.ex.vals[2].primary,
	    "LDIF: attribute options, folded value, X500: skipped");
	ok(value_is(&r, 0, 3, "bob@example.com", 13) && r.ex.vals[3].target,
	    "LDIF: targetAddress is the target");
	ok(value_is(&r, 1, 0, "zo\xc3\xab@example.com", 17),
	    "LDIF: base64 dn and mail, UTF-8 kept");
	ok(r.ex.nents > 2 && r.ex.ents[2].n == 0,
	    "LDIF: an entry without addresses, CRLF lines");
	run_free(&r);

	parse(&r, IMP_LDIF, &ldif_attrs, "");
	ok(r.rc == 0 && r.ex.nents == 0, "LDIF: an empty export");
	run_free(&r);

	parse(&r, IMP_LDIF, &ldif_attrs,
	    "dn: cn=x\nchangetype: add\nmail: x@example.com\n");
	ok(r.rc == 0 && value_is(&r, 0, 0, "x@example.com", 3),
	    "LDIF: changetype add is content");
	run_free(&r);
}

static void
test_ldif_errors(void)
{
	static const struct {
		const char	*text;
		const char	*msg;
	} bad[] = {
		{ "dn: cn=a\nmail:: Ym9i@@@\n", "x:2: mail: invalid base64" },
		{ "dn: cn=a\nmail:: Ym9iQGV4YW1wbGUuY29t=\n",
		    "x:2: mail: invalid base64" },
		{ "dn: cn=a\n\ndn: cn=b\nmail: bob\n",
		    "x:4: mail: \"bob\": missing @domain" },
		{ "dn: cn=a\nmail: b\xe9@example.com\n", "x:2: not UTF-8" },
		{ "dn: cn=a\nmail: bob@exa\n mple.com\xff\n",
		    "x:2: not UTF-8" },
		{ "dn: cn=a\nmail:: YsOpQGV4YW1wbGUuY29t\nmail:: YulAZXhhbXBsZS5jb20=\n",
		    "x:3: mail: the base64 value is not UTF-8" },
		{ "dn: cn=a\ntargetAddress:< file:///etc/passwd\n",
		    "x:2: targetAddress: values by URL" },
		{ "mail: a@example.com\n", "x:1: a record begins with \"dn:\"" },
		{ " folded\n", "x:1: a continued line" },
		{ "dn: cn=a\nchangetype: modify\nreplace: mail\n",
		    "x:2: a change record" },
		{ "dn: cn=a\ntargetAddress: a@n.example\n"
		    "targetAddress: b@n.example\n",
		    "x:3: targetAddress: more than one value" },
		{ "dn: cn=a\nmail: a@@example.com\n", "more than one @" },
		{ "dn: cn=a\nmail: a b@example.com\n", "invalid character" },
		{ "dn: cn=a\nmail: a@exa_mple..com\n", "invalid domain" },
		{ "dn: cn=a\nmail:\n", "x:2: mail: \"\": empty value" },
		{ "dn: cn=a\nno colon here\n", "x:2: not \"attribute: value\"" },
		{ "dn: cn=a\nma il: a@example.com\n", "invalid attribute name" },
		{ "dn: cn=a\nmail:: AGFAZXhhbXBsZS5jb20=\n", "NUL byte" },
		{ "version: 2\n", "x:1: LDIF version \"2\"" },
	};
	static const char	 nul[] = "dn: a\nmail: a\0@example.com\n";
	struct run		 r;
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		parse(&r, IMP_LDIF, &ldif_attrs, bad[i].text);
		ok(r.rc == -1 && r.ex.errors > 0 && has(&r, bad[i].msg),
		    "LDIF refused: %s", bad[i].msg);
		run_free(&r);
	}

	/* Every error is reported, each with its line. */
	parse(&r, IMP_LDIF, &ldif_attrs, "dn: a\nmail: x\n\ndn: b\nmail: y\n");
	ok(r.rc == -1 && r.ex.errors == 2 && has(&r, "x:2:") &&
	    has(&r, "x:5:"), "LDIF: all errors, not the first only");
	run_free(&r);

	memset(&r, 0, sizeof(r));
	imp_export_init(&r.ex, "x", NULL);
	ok(imp_parse(&r.ex, IMP_LDIF, &ldif_attrs, nul, sizeof(nul) - 1) ==
	    -1 && r.ex.errors == 1, "LDIF: a NUL byte in a line");
	run_free(&r);
}

static void
test_csv(void)
{
	struct run	 r;

	parse(&r, IMP_AUTO, &csv_attrs,
	    "\xef\xbb\xbf" "Address , TARGET,kind,comment\r\n"
	    "a@example.com,a@notes.example.com,,\"x, \"\"y\"\"\"\r\n"
	    "\"b@example.com\",,local,\"two\nlines\"\r\n"
	    "\r\n"
	    "c@example.com,\"SMTP:c@notes.example.com\",custom,\n"
	    "d@example.com,d@notes.example.com,,last");
	ok(r.rc == 0 && r.ex.nents == 4, "CSV: four rows (rc %d, %zu)", r.rc,
	    r.ex.nents);
	ok(value_is(&r, 0, 0, "a@example.com", 2) &&
	    value_is(&r, 0, 1, "a@notes.example.com", 2) &&
	    r.ex.vals[1].target, "CSV: BOM, header in any case, quotes");
	ok(r.ex.nents > 1 && (r.ex.ents[1].flags & IMPE_LOCAL) &&
	    r.ex.ents[1].n == 1, "CSV: kind local, no target");
	ok(value_is(&r, 2, 0, "c@example.com", 6) &&
	    value_is(&r, 2, 1, "c@notes.example.com", 6),
	    "CSV: a line break inside quotes counts; smtp: prefix");
	ok(value_is(&r, 3, 0, "d@example.com", 7),
	    "CSV: the last record without a line end");
	run_free(&r);

	/* csvde: several values in one cell, separated by ";". */
	parse(&r, IMP_CSV, &(struct imp_attrs){
	    { "mail", "proxyAddresses" }, 2, "targetAddress", NULL },
	    "DN,mail,proxyAddresses,targetAddress\n"
	    "\"cn=b,dc=x\",b@example.com,"
	    "SMTP:b@example.com;smtp:b@notes.example.com;X500:/o=x,"
	    "SMTP:b@example.com\n"
	    "\"cn=r,dc=x\",,X500:/o=room,\n");
	ok(r.rc == 0 && r.ex.nents == 2 && r.ex.ents[0].n == 4 &&
	    value_is(&r, 0, 2, "b@notes.example.com", 2),
	    "CSV: csvde multi-valued cells, X500 skipped");
	ok(r.ex.nents == 2 && r.ex.ents[1].n == 0,
	    "CSV: a row with only an X500 proxy has no address");
	run_free(&r);

	ok(imp_sniff("# c\n\ndn: x\n", 12) == IMP_LDIF &&
	    imp_sniff("version: 1\n", 11) == IMP_LDIF &&
	    imp_sniff("dn,mail\n", 8) == IMP_CSV &&
	    imp_sniff("address,target\n", 15) == IMP_CSV,
	    "the format from the first line that is not a comment");
}

static void
test_csv_errors(void)
{
	static const struct {
		const char	*text;
		const char	*msg;
	} bad[] = {
		{ "mail,target\nx@example.com,y@n.example\n",
		    "x:1: the header has no \"address\" column" },
		{ "address\nx@example.com\n",
		    "x:1: the header has no \"target\" column" },
		{ "", "x:1: no header line" },
		{ "address,target\na@example.com\n",
		    "x:2: 1 fields, the header has 2" },
		{ "address,target\n\"a@example.com,x\n",
		    "x:2: a quoted field is not closed" },
		{ "address,target\n\"a@example.com\"x,y\n",
		    "x:2: text after the closing quote" },
		{ "address,target\na\"b@example.com,y@n.example\n",
		    "x:2: a quote inside a field" },
		{ "address,target\nbob,x@n.example\n",
		    "x:2: address: \"bob\": missing @domain" },
		{ "address,target\n,x@n.example\n", "x:2: no address in the row" },
		{ "address,target\na@example.com,x@n.example;y@n.example\n",
		    "x:2: target: more than one value" },
		{ "address,target,kind\na@example.com,x@n.example,local\n",
		    "x:2: a local mailbox has no target" },
		{ "address,target,kind\na@example.com,x@n.example,remote\n",
		    "x:2: kind \"remote\"" },
		{ "address,target\na@example.com,x@n.example\nb\xc0\xaf@example.com,y\n",
		    "x:3: not UTF-8" },
		{ "address,target\n\"a\nb\xed\xa0\x80@example.com\",y\n",
		    "x:3: not UTF-8" },
	};
	struct run	 r;
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		parse(&r, IMP_CSV, &csv_attrs, bad[i].text);
		ok(r.rc == -1 && has(&r, bad[i].msg), "CSV refused: %s",
		    bad[i].msg);
		run_free(&r);
	}
}

static void
test_table(void)
{
	static const char	 text[] =
	    "# hand-written\n"
	    "Alice@Example.com local\n"
	    "bob@example.com custom bob@notes.example.com # import\n"
	    "carol@example.com\tcustom\tcarol@example.com\t#import\r\n"
	    "dan@example.com custom dan@n.example # imported by hand\n"
	    "# import\n"
	    "\n"
	    "@sales.example.com local";
	struct imp_table	 t;
	int			 rc;

	rc = imp_table_read(&t, "dir", text, strlen(text), NULL);
	ok(rc == 0 && t.n == 8 && t.nimported == 2,
	    "file: 8 lines, 2 imported (%zu, %zu)", t.n, t.nimported);
	ok(t.n == 8 && t.lines[1].key && strcmp(t.lines[1].key,
	    "alice@example.com") == 0 && t.lines[1].kind == IMP_LOCAL &&
	    !t.lines[1].imported, "file: a hand-written local entry");
	ok(t.n == 8 && t.lines[2].imported && t.lines[2].target &&
	    strcmp(t.lines[2].target, "bob@notes.example.com") == 0,
	    "file: the marker \"# import\"");
	ok(t.n == 8 && t.lines[3].imported && t.lines[3].target == NULL &&
	    t.lines[3].len == strlen("carol@example.com\tcustom\t"
	    "carol@example.com\t#import\r"),
	    "file: \"#import\" after a tab, CRLF kept, target = itself");
	ok(t.n == 8 && !t.lines[4].imported && !t.lines[5].imported &&
	    t.lines[5].key == NULL,
	    "file: another comment, or a comment alone, is no marker");
	ok(t.n == 8 && t.lines[7].key && t.lines[7].lineno == 8,
	    "file: a last line without a newline");
	imp_table_free(&t);
}

/* The result points into them: kept until the next merge_write(). */
static struct imp_export	 mw_ex;
static struct imp_table		 mw_t;

/*
 * The file, the export, the rules for example.com with notes.example.com
 * as the other side: the new file text, *msgs the warnings and errors.
 */
static char *
merge_write(const char *file, const char *export, enum imp_format fmt,
    struct imp_result *res, char **msgs, int *rc)
{
	static const struct imp_rules	 rules = {
		{ "example.com", ".sub.example" }, 2,
		{ "notes.example.com" }, 1
	};
	FILE			*mf, *of;
	char			*out = NULL;
	size_t			 mlen, olen, nsrc;
	uint32_t		*src = NULL;

	if ((mf = open_memstream(msgs, &mlen)) == NULL ||
	    (of = open_memstream(&out, &olen)) == NULL)
		abort();
	imp_export_free(&mw_ex);
	imp_table_free(&mw_t);
	imp_export_init(&mw_ex, "exp", mf);
	*rc = -2;
	if (imp_parse(&mw_ex, fmt, fmt == IMP_CSV ? &csv_attrs : &ldif_attrs,
	    export, strlen(export)) == 0 &&
	    imp_table_read(&mw_t, "dir", file, strlen(file), mf) == 0) {
		*rc = imp_merge(res, &mw_t, &mw_ex, &rules, mf, mf);
		if (*rc == 0 && imp_write(res, &mw_t, of, &src, &nsrc) == -1)
			*rc = -3;
	}
	fclose(mf);
	fclose(of);
	free(src);
	return out;
}

static void
test_rules(void)
{
	struct imp_result	 res;
	char			*out, *msg;
	int			 rc;

	out = merge_write(
	    "alice@example.com local\n"
	    "hand@example.com custom hand@elsewhere.example\n"
	    "same@example.com custom same@notes.example.com\n",
	    /* an ordinary contact */
	    "dn: cn=bob\nmail: bob@example.com\n"
	    "proxyAddresses: smtp:robert@example.com\n"
	    "proxyAddresses: smtp:bob@partner.example\n"
	    "targetAddress: SMTP:bob@notes.example.com\n\n"
	    /* the looping proxy address, and two in notes: SMTP: wins */
	    "dn: cn=lou\nmail: lou@example.com\n"
	    "proxyAddresses: smtp:lou.x@notes.example.com\n"
	    "proxyAddresses: SMTP:lou@notes.example.com\n"
	    "targetAddress: SMTP:lou@example.com\n\n"
	    /* no target: the address itself, which loops as well */
	    "dn: cn=nat\nmail: nat@example.com\n"
	    "proxyAddresses: smtp:nat@notes.example.com\n\n"
	    /* loops, and nothing in notes to put instead */
	    "dn: cn=lost\nmail: lost@example.com\n"
	    "targetAddress: lost@example.com\n\n"
	    /* a local mailbox here: a conflict */
	    "dn: cn=alice\nmail: alice@example.com\n"
	    "targetAddress: alice@notes.example.com\n\n"
	    "dn: cn=hand\nmail: hand@example.com\n"
	    "targetAddress: hand@notes.example.com\n\n"
	    "dn: cn=same\nmail: same@example.com\n"
	    "targetAddress: same@notes.example.com\n\n"
	    /* not ours */
	    "dn: cn=other\nmail: other@notes.example.com\n\n"
	    "dn: cn=room\nproxyAddresses: X400:c=us\n\n"
	    /* a sub-domain of a ".domain" */
	    "dn: cn=sue\nmail: sue@x.sub.example\n"
	    "targetAddress: sue@notes.example.com\n\n"
	    "dn: cn=x500\nmail: x5@example.com\n"
	    "targetAddress: X500:/o=x\n", IMP_LDIF, &res, &msg, &rc);
	ok(rc == 0, "rules: merged (%d)", rc);
	ok(res.n[IMP_ADDED] == 5 && res.n[IMP_CONFLICT] == 2 &&
	    res.n[IMP_REMOVED] == 0 && res.n[IMP_CHANGED] == 0 &&
	    res.leftout == 2 && res.ignored == 2,
	    "rules: 5 added, 2 conflicts, 2 left out, 2 ignored "
	    "(%zu %zu %zu %zu)", res.n[IMP_ADDED], res.n[IMP_CONFLICT],
	    res.leftout, res.ignored);
	ok(out && strstr(out, "bob@example.com                 custom "
	    "bob@notes.example.com           # import\n") &&
	    strstr(out, "robert@example.com              custom "
	    "bob@notes.example.com"), "rules: every shared address of an "
	    "entry gets its line; partner.example is not ours");
	ok(out && strstr(out, "lou@example.com                 custom "
	    "lou@notes.example.com "), "rules: the looping proxy target "
	    "becomes the primary address in the routing domain");
	ok(out && strstr(out, "nat@example.com                 custom "
	    "nat@notes.example.com "), "rules: no target, the routing "
	    "domain address");
	ok(out && strstr(out, "sue@x.sub.example "),
	    "rules: \".sub.example\" holds its sub-domains");
	ok(out && !strstr(out, "lost@") && !strstr(out, "x5@") &&
	    strstr(msg, "exp:17: warning: lost@example.com: target "
	    "lost@example.com is in the shared domain example.com and the "
	    "entry has no address in notes.example.com: left out") &&
	    strstr(msg, "exp:43: warning: x5@example.com: target "
	    "\"X500:/o=x\" is not an SMTP address: left out"),
	    "rules: left out with a warning naming the line");
	ok(res.n[IMP_CONFLICT] == 2 &&
	    strcmp(res.ch[IMP_CONFLICT][0].addr, "alice@example.com") == 0 &&
	    res.ch[IMP_CONFLICT][0].old_kind == IMP_LOCAL &&
	    res.ch[IMP_CONFLICT][0].line == 1 &&
	    res.ch[IMP_CONFLICT][0].src == 22 &&
	    strcmp(res.ch[IMP_CONFLICT][1].addr, "hand@example.com") == 0,
	    "rules: a local mailbox stays local, a hand-written entry stays");
	ok(out && strncmp(out, "alice@example.com local\n"
	    "hand@example.com custom hand@elsewhere.example\n"
	    "same@example.com custom same@notes.example.com\n# Lines", 120) ==
	    0, "rules: hand-written lines first and untouched, then the "
	    "header");
	imp_result_free(&res);
	free(out);
	free(msg);

	/* Two entries, one address, two targets: refused. */
	out = merge_write("",
	    "dn: a\nmail: a@example.com\ntargetAddress: a@notes.example.com\n"
	    "\ndn: b\nproxyAddresses: smtp:a@example.com\n"
	    "targetAddress: b@notes.example.com\n\n"
	    "dn: c\nmail: c@example.com\ntargetAddress: c@notes.example.com\n"
	    "\ndn: d\nmail: c@example.com\ntargetAddress: c@notes.example.com\n",
	    IMP_LDIF, &res, &msg, &rc);
	ok(rc == -1 && strstr(msg, "exp:6: a@example.com: custom "
	    "b@notes.example.com here, custom a@notes.example.com at line 2"),
	    "rules: one address, two targets is an error");
	ok(msg && !strstr(msg, "c@example.com"),
	    "rules: one address twice with one target is no error");
	imp_result_free(&res);
	free(out);
	free(msg);
}

static void
test_write(void)
{
	static const char	 file[] =
	    "# mine\r\n"
	    "alice@example.com local\n"
	    "gone@example.com custom gone@notes.example.com # import\n"
	    "moved@example.com custom old@notes.example.com # import\n"
	    "kept@example.com custom kept@notes.example.com # import\n"
	    "lost@example.com custom lost@notes.example.com # import\n"
	    "tail@example.com custom # end";
	struct imp_result	 res;
	char			*out, *msg;
	int			 rc;

	out = merge_write(file,
	    "address,target\n"
	    "moved@example.com,new@notes.example.com\n"
	    "kept@example.com,kept@notes.example.com\n"
	    "lost@example.com,lost@example.com\n"
	    "new@example.com,new@notes.example.com\n", IMP_CSV, &res, &msg,
	    &rc);
	ok(rc == 0 && res.n[IMP_ADDED] == 1 && res.n[IMP_REMOVED] == 1 &&
	    res.n[IMP_CHANGED] == 1 && res.unchanged == 2 &&
	    res.leftout == 1, "write: 1 added, 1 removed, 1 changed, 2 kept");
	ok(out && strcmp(out,
	    "# mine\r\n"
	    "alice@example.com local\n"
	    "moved@example.com               custom new@notes.example.com"
	    "           # import\n"
	    "kept@example.com custom kept@notes.example.com # import\n"
	    "lost@example.com custom lost@notes.example.com # import\n"
	    "tail@example.com custom # end\n"
	    "new@example.com                 custom new@notes.example.com"
	    "           # import\n") == 0,
	    "write: removed dropped, changed in place, the rest as it was, "
	    "new at the end, no second header");
	ok(res.n[IMP_REMOVED] == 1 && res.ch[IMP_REMOVED][0].line == 3 &&
	    res.n[IMP_CHANGED] == 1 && res.ch[IMP_CHANGED][0].line == 4 &&
	    res.ch[IMP_CHANGED][0].src == 2 &&
	    strcmp(res.ch[IMP_CHANGED][0].old_target, "old@notes.example.com")
	    == 0, "write: each change names its file and export lines");
	imp_result_free(&res);
	free(out);
	free(msg);

	/* Kind local in the export: an imported local entry. */
	out = merge_write("", "address,target,kind\nl@example.com,,local\n",
	    IMP_CSV, &res, &msg, &rc);
	ok(rc == 0 && out && strstr(out, "l@example.com                   "
	    "local  # import\n") && strstr(out, "# Lines that end in"),
	    "write: a local entry, under the header");
	imp_result_free(&res);
	free(out);
	free(msg);

	ok(imp_domain_match("Example.COM", "example.com") &&
	    imp_domain_match("example.com", ".example.com") &&
	    imp_domain_match("a.b.example.com", ".example.com") &&
	    !imp_domain_match("badexample.com", ".example.com") &&
	    !imp_domain_match("a.example.com", "example.com"),
	    "domains: \"x\" and \".x\"");
}

int
main(void)
{
	plan(0);
	test_ldif();
	test_ldif_errors();
	test_csv();
	test_csv_errors();
	test_table();
	test_rules();
	test_write();
	imp_export_free(&mw_ex);
	imp_table_free(&mw_t);
	return done();
}
