/*
 * libFuzzer target over lookup/mta_sts_parse.c, the readers of what a
 * domain publishes for MTA-STS (RFC 8461): the first byte picks the
 * _mta-sts TXT record's reader or the policy's (then its MX patterns
 * are matched against a few names); the rest is the text.  It links
 * lookup/mta_sts_parse.c and lib/.
 * fuzz-link: lookup/mta_sts_parse.c
 * fuzz-link: lib/log.c lib/msg.c lib/tlsio.c lib/util.c
 */
#include <sys/types.h>

#include <stdint.h>
#include <string.h>

#include "splitmx.h"
#include "../lookup/lookup.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const	 hosts[] = {
		"mx.example.com", "a.b.example.com", "example.com", "x"
	};
	struct sts_policy		 pol;
	char				 id[STS_IDSZ], err[128];
	size_t				 i;
	int				 r;

	if (size < 1)
		return 0;
	if (data[0] & 1) {
		r = sts_parse_txt((const char *)data + 1, size - 1, id,
		    sizeof(id));
		if (r == 1 && (strlen(id) == 0 || strlen(id) > 32))
			__builtin_trap();
		return 0;
	}
	if (sts_parse_policy((const char *)data + 1, size - 1, &pol, err,
	    sizeof(err)) == -1) {
		if (strlen(err) >= sizeof(err))
			__builtin_trap();
		return 0;
	}
	if (pol.nmx < 0 || pol.nmx > STS_MAX_MX)
		__builtin_trap();
	for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
		(void)sts_mx_match(&pol, hosts[i]);
	return 0;
}
