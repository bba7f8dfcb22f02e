/*
 * libFuzzer target over lookup/dns_parse.c, the reader of DNS answers
 * (the bytes libunbound hands on come from the network).  The first
 * byte picks the question's type, the rest is the answer to a question
 * for "x.example" of that type (the seed corpus has such answers).
 * It links lookup/dns_parse.c and lib/.
 * fuzz-link: lookup/dns_parse.c
 * fuzz-link: lib/log.c lib/msg.c lib/tlsio.c lib/util.c
 */
#include <sys/types.h>

#include <stdint.h>
#include <string.h>

#include "splitmx.h"
#include "../lookup/lookup.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
fuzz_rr(void *arg, const struct dns_rr *rr)
{
	size_t	*sum = arg, i;

	/* Touch what the callers touch, so that a bad bound shows. */
	*sum += strlen(rr->name) + rr->textlen + rr->rdlen;
	for (i = 0; i < rr->datalen; i++)
		*sum += rr->data[i];
	for (i = 0; i < rr->rdlen; i++)
		*sum += rr->rdata[i];
	if (rr->type == DNS_T_TXT && strlen(rr->text) > rr->textlen)
		__builtin_trap();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t	 types[] = {
		DNS_T_A, DNS_T_AAAA, DNS_T_MX, DNS_T_TXT, DNS_T_TLSA,
		DNS_T_CNAME
	};
	size_t			 sum = 0;
	int			 rcode;

	if (size < 1)
		return 0;
	(void)dns_parse(data + 1, size - 1, "x.example",
	    types[data[0] % (sizeof(types) / sizeof(types[0]))], &rcode,
	    fuzz_rr, &sum);
	return 0;
}
