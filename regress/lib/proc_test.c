/*
 * Unit tests of the process table (smtpd/proc.c): every child has all
 * that makes it a process, and its name finds it again ("-P name").
 * TAP output.
 */
#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include "splitmx.h"
#include "tap.h"

int
main(void)
{
	const struct proc_ident	*pi;
	int			 i, names = 1;

	plan(0);
	for (i = PROC_PARENT + 1; i < PROC_COUNT; i++) {
		pi = proc_ident(i);
		ok(pi->name != NULL && pi->main != NULL && pi->imsg != NULL &&
		    pi->syscalls != NULL && pi->root != ROOT_NONE &&
		    pi->nofile > 0, "%s: entry, handler, system calls, root "
		    "and descriptors", proc_name(i));
		if (proc_find(proc_name(i)) != i)
			names = 0;
	}
	ok(names, "each child is found by its name");
	pi = proc_ident(PROC_PARENT);
	ok(strcmp(pi->name, "parent") == 0 && pi->main == NULL &&
	    pi->root == ROOT_NONE, "the parent is no child");
	ok(proc_find("parent") == PROC_PARENT && proc_find("smtpd") == -1 &&
	    proc_find("") == -1, "unknown names are not found");
	ok(strcmp(proc_name(PROC_COUNT), "unknown") == 0 &&
	    strcmp(proc_name(-1), "unknown") == 0, "out of range: unknown");
	ok(proc_ident(PROC_LOOKUP)->prepare != NULL &&
	    (proc_ident(PROC_LOOKUP)->flags & F_PROC_TABLES) &&
	    (proc_ident(PROC_SMTP)->flags & F_PROC_PKI_KEYS) &&
	    !(proc_ident(PROC_RELAY)->flags & F_PROC_PKI_KEYS),
	    "keys to smtp only, tables to lookup, which prepares them");
	return done();
}
