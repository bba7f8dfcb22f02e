/*
 * libFuzzer target over lookup/table_file.c: a directory file as the
 * lookup process loads it (SPEC §4), then the cycle check of -n and
 * reload.
 * fuzz-link: lookup/table_file.c lib/util.c lib/log.c
 *
 * Beyond memory: a refused file says why in "FILE:LINE: message" lines
 * without control characters; a directory that loads has lower-case,
 * unique, sorted keys that lookups find, targets that are not their own
 * key, and printed back as a directory file it loads to the same
 * entries.
 */
#include <sys/types.h>
#include <sys/mman.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmx.h"
#include "fuzz.h"

#define NAME	"fuzz-dir"

static struct table_file *load(const char *, size_t, char **, size_t *);
static void	check_errors(const char *, size_t);
static void	check_loaded(const struct table_file *);
static void	check_reload(const struct table_file *);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct table_file	*tf;
	char			*err;
	size_t			 errlen;

	if (size > 256 * 1024)
		return 0;
	if ((tf = load((const char *)data, size, &err, &errlen)) == NULL) {
		FUZZ_CHECK(errlen > 0, "refused without a word");
		check_errors(err, errlen);
		free(err);
		return 0;
	}
	FUZZ_CHECK(errlen == 0, "loaded with errors: %s", err);
	free(err);
	check_loaded(tf);
	check_reload(tf);
	table_file_free(tf);
	return 0;
}

/* As the parent hands it over: a descriptor. */
static struct table_file *
load(const char *p, size_t n, char **err, size_t *errlen)
{
	struct table_file	*tf;
	FILE			*ef;
	int			 fd;

	*err = NULL;
	*errlen = 0;
	if ((fd = memfd_create("fuzz-dir", MFD_CLOEXEC)) == -1)
		fuzz_fail("memfd_create");
	if (write(fd, p, n) != (ssize_t)n || lseek(fd, 0, SEEK_SET) == -1)
		fuzz_fail("memfd write");
	if ((ef = open_memstream(err, errlen)) == NULL)
		fuzz_fail("open_memstream");
	tf = table_file_load(fd, NAME, ef);
	fclose(ef);
	close(fd);
	return tf;
}

/* What splitmxd -n and splitmxctl reload print: for people, safely. */
static void
check_errors(const char *err, size_t len)
{
	const char	*p, *nl, *end = err + len;

	for (p = err; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		FUZZ_CHECK(nl != NULL, "error without its newline");
		FUZZ_CHECK((size_t)(nl - p) > sizeof(NAME) &&
		    strncmp(p, NAME ":", sizeof(NAME)) == 0,
		    "error does not name the file: %.*s", (int)(nl - p), p);
		for (; p < nl; p++)
			FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f,
			    "control octet 0x%02x in an error",
			    (unsigned char)*p);
	}
}

static void
check_loaded(const struct table_file *tf)
{
	const char	*key, *target, *prev = NULL, *t2, *p;
	enum dir_kind	 kind, k2;
	uint32_t	 line;
	size_t		 i, n = table_file_count(tf);
	FILE		*ef;
	char		*err = NULL;
	size_t		 errlen = 0;

	for (i = 0; i < n; i++) {
		FUZZ_CHECK(table_file_entry(tf, i, &key, &kind, &target,
		    &line) == 0, "entry %zu of %zu missing", i, n);
		FUZZ_CHECK(strchr(key, '@') != NULL && strlen(key) <
		    SMX_ADDRSZ, "key %s", key);
		for (p = key; *p != '\0'; p++)
			FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z') &&
			    (unsigned char)*p > 0x20 && *p != 0x7f,
			    "key %s not lower-case or with a control", key);
		FUZZ_CHECK(prev == NULL || strcmp(prev, key) < 0,
		    "keys not sorted or not unique: %s, %s", prev, key);
		prev = key;
		FUZZ_CHECK(kind == DIR_LOCAL || kind == DIR_CUSTOM, "kind");
		if (target != NULL) {
			FUZZ_CHECK(kind == DIR_CUSTOM, "local with a target");
			FUZZ_CHECK(strcmp(target, key) != 0,
			    "target is its own key");
			FUZZ_CHECK(target[0] != '@' && strchr(target, '@') !=
			    NULL, "target %s", target);
			for (p = target; *p != '\0'; p++)
				FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'),
				    "target %s not lower-case", target);
		}
		FUZZ_CHECK(table_file_get(tf, key, &k2, &t2) == 0 &&
		    k2 == kind && t2 == target, "lookup of %s", key);
		FUZZ_CHECK(table_file_find(tf, key, NULL, NULL, NULL) ==
		    (ssize_t)i, "find of %s", key);
	}
	FUZZ_CHECK(table_file_entry(tf, n, &key, &kind, &target, &line) ==
	    -1, "an entry past the end");

	if ((ef = open_memstream(&err, &errlen)) == NULL)
		fuzz_fail("open_memstream");
	if (table_file_check_cycles(tf, NAME, ef) == -1) {
		fclose(ef);
		FUZZ_CHECK(errlen > 0, "a cycle without a word");
		check_errors(err, errlen);
	} else {
		fclose(ef);
		FUZZ_CHECK(errlen == 0, "no cycle, but: %s", err);
	}
	free(err);
}

/* Printed back ("address kind [target]"), it loads the same. */
static void
check_reload(const struct table_file *tf)
{
	struct table_file	*again;
	const char		*key, *target, *k2, *t2;
	enum dir_kind		 kind, kind2;
	uint32_t		 line;
	size_t			 i, len = 0, errlen;
	char			*buf = NULL, *err;
	FILE			*f;

	if ((f = open_memstream(&buf, &len)) == NULL)
		fuzz_fail("open_memstream");
	for (i = 0; table_file_entry(tf, i, &key, &kind, &target,
	    &line) == 0; i++)
		fprintf(f, "%s %s%s%s\n", key, kind == DIR_LOCAL ? "local" :
		    "custom", target ? " " : "", target ? target : "");
	fclose(f);
	again = load(buf, len, &err, &errlen);
	FUZZ_CHECK(again != NULL, "printout refused: %s", err);
	free(err);
	FUZZ_CHECK(table_file_count(again) == table_file_count(tf),
	    "printout has %zu entries, not %zu", table_file_count(again),
	    table_file_count(tf));
	for (i = 0; table_file_entry(tf, i, &key, &kind, &target,
	    &line) == 0; i++) {
		FUZZ_CHECK(table_file_entry(again, i, &k2, &kind2, &t2,
		    &line) == 0 && strcmp(key, k2) == 0 && kind == kind2 &&
		    ((target == NULL && t2 == NULL) || (target != NULL &&
		    t2 != NULL && strcmp(target, t2) == 0)),
		    "entry %s differs in the printout", key);
	}
	table_file_free(again);
	free(buf);
}
