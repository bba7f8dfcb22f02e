/*
 * libFuzzer target over queue/queue_fs_envelope.c: an envelope file as
 * recovery reads it from the spool after a crash or an operator's edit.
 * fuzz-link: queue/queue_fs_envelope.c queue/queue_fs.c lib/util.c
 * fuzz-link: lib/log.c
 *
 * Beyond memory: an envelope that decodes can be written again (the
 * scheduler rewrites it on every change); what it writes decodes to
 * the same envelope and writes the same bytes again (decode -> encode
 * is a fixed point after one step); a refusal says why, on a line.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "splitmx.h"
#include "queue.h"
#include "fuzz.h"

static void	same_envelope(const struct queue_envelope *,
		    const struct queue_envelope *);
static void	same_str(const char *, const char *, const char *);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_envelope	 e, e2;
	char			 err[256], *buf = NULL, *buf2 = NULL;
	size_t			 len, len2;

	if (size > QUEUE_ENV_MAXSIZE)
		return 0;
	err[0] = '\0';
	if (queue_fs_envelope_decode((const char *)data, size, &e, err,
	    sizeof(err)) == -1) {
		FUZZ_CHECK(strncmp(err, "line ", 5) == 0,
		    "a refusal without its line: %s", err);
		FUZZ_CHECK(e.rcpts == NULL && e.sender == NULL &&
		    e.hist == NULL, "a refused envelope is not left empty");
		return 0;
	}
	FUZZ_CHECK(queue_fs_id_valid(e.id) && e.nrcpt > 0 &&
	    e.nrcpt <= QUEUE_MAXRCPT && e.nhist <= QUEUE_MAXHIST,
	    "decoded envelope out of bounds");
	FUZZ_CHECK(queue_fs_envelope_encode(&e, &buf, &len) == 0,
	    "a decoded envelope cannot be written");
	FUZZ_CHECK(queue_fs_envelope_decode(buf, len, &e2, err,
	    sizeof(err)) == 0, "what we wrote is refused: %s", err);
	same_envelope(&e, &e2);
	FUZZ_CHECK(queue_fs_envelope_encode(&e2, &buf2, &len2) == 0,
	    "the envelope read back cannot be written");
	FUZZ_CHECK(len == len2 && memcmp(buf, buf2, len) == 0,
	    "writing is not a fixed point");
	free(buf);
	free(buf2);
	queue_fs_envelope_free(&e);
	queue_fs_envelope_free(&e2);
	return 0;
}

static void
same_str(const char *what, const char *a, const char *b)
{
	FUZZ_CHECK(a != NULL && b != NULL, "%s is NULL", what);
	FUZZ_CHECK(strcmp(a, b) == 0, "%s: \"%s\" became \"%s\"", what, a,
	    b);
}

static void
same_envelope(const struct queue_envelope *a, const struct queue_envelope *b)
{
	const struct queue_rcpt	*r, *s;
	uint32_t		 i;

	FUZZ_CHECK(strcmp(a->id, b->id) == 0 && a->arrival == b->arrival &&
	    a->size == b->size && a->body == b->body &&
	    a->flags == b->flags && a->ret == b->ret &&
	    a->warned == b->warned && a->nrcpt == b->nrcpt &&
	    a->nhist == b->nhist, "envelope fields differ");
	same_str("sender", a->sender, b->sender);
	same_str("helo", a->helo, b->helo);
	same_str("client", a->client, b->client);
	same_str("client-host", a->client_host, b->client_host);
	same_str("envid", a->envid, b->envid);
	for (i = 0; i < a->nhist; i++) {
		FUZZ_CHECK(a->hist[i].when == b->hist[i].when,
		    "history time differs");
		same_str("history", a->hist[i].text, b->hist[i].text);
	}
	for (i = 0; i < a->nrcpt; i++) {
		r = &a->rcpts[i];
		s = &b->rcpts[i];
		same_str("rcpt", r->rcpt, s->rcpt);
		same_str("rewritten", r->rewritten, s->rewritten);
		same_str("destination", r->dest, s->dest);
		same_str("orcpt", r->orcpt, s->orcpt);
		same_str("last-error", r->last_error, s->last_error);
		FUZZ_CHECK(r->class == s->class && r->tls == s->tls &&
		    r->notify == s->notify && r->state == s->state &&
		    r->tries == s->tries && r->next_try == s->next_try &&
		    r->last_try == s->last_try,
		    "recipient %u fields differ", i);
		FUZZ_CHECK(r->class < ROUTE_COUNT && (r->tls < TLSP_COUNT ||
		    r->tls == QUEUE_TLS_UNKNOWN), "recipient %u out of range",
		    i);
	}
}
