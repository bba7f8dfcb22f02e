/*
 * Unit tests of smtpd/names.c: every message type has its name (a new
 * type without one would log as a number), and route classes print as
 * the envelope files and splitmxctl spell them.  TAP output.
 */
#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include "splitmx.h"
#include "tap.h"

int
main(void)
{
	char		 want[32];
	uint32_t	 i;
	int		 named = 1;

	plan(0);
	ok(imsg_names_complete(), "every message type has a name");
	for (i = 0; i < IMSG_TYPE_COUNT; i++)
		if (strncmp(imsg_name(i), "IMSG_", 5) != 0 ||
		    (imsg_name(i)[5] >= '0' && imsg_name(i)[5] <= '9')) {
			diag("message type %u: %s", i, imsg_name(i));
			named = 0;
		}
	ok(named, "every name is an IMSG_ name, not a number");
	ok(strcmp(imsg_name(IMSG_CONF_DONE), "IMSG_CONF_DONE") == 0,
	    "IMSG_CONF_DONE is named for itself");
	ok(strcmp(imsg_name(IMSG_CTL_LOOKUP_RESULT),
	    "IMSG_CTL_LOOKUP_RESULT") == 0, "so is the last one");
	(void)snprintf(want, sizeof(want), "IMSG_%u", IMSG_TYPE_COUNT);
	ok(strcmp(imsg_name(IMSG_TYPE_COUNT), want) == 0,
	    "an unknown type prints as its number");

	ok(strcmp(route_class_name(ROUTE_LOCAL), "local") == 0 &&
	    strcmp(route_class_name(ROUTE_CUSTOM), "custom") == 0 &&
	    strcmp(route_class_name(ROUTE_FORWARD), "forward") == 0 &&
	    strcmp(route_class_name(ROUTE_BOUNCE), "bounce") == 0 &&
	    strcmp(route_class_name(ROUTE_OUTBOUND), "outbound") == 0 &&
	    strcmp(route_class_name(ROUTE_NONE), "none") == 0,
	    "route classes by name");
	ok(strcmp(route_class_name((enum route_class)(ROUTE_NONE + 1)),
	    "none") == 0, "a route class out of range is none");
	return done();
}
