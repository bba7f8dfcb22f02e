/*
 * The queue as splitmxctl shows it (show queue, show message) and the
 * requests that act on it (schedule, remove): the queue process
 * answers in several messages, formatted here as they come.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "splitmx.h"
#include "control.h"

static void	control_age(char *, size_t, long long);
static void	control_put_opt(FILE *, const char *, const char *, int);
static void	control_queue_request(struct ctl_client *, int, uint32_t,
		    const char *);
static void	control_time(char *, size_t, int64_t);
static struct ctl_client *control_queue_client(uint64_t, int);
static void	control_queue_history(struct ctl_client *, FILE *);
static void	control_queue_tlsdest(struct ctl_client *, const char *,
		    const char *, const char *);

/*
 * show queue: the queue process streams one IMSG_CTL_QUEUE_ITEM per
 * recipient and an IMSG_CTL_QUEUE_END; each is formatted as it comes.
 * A client that went away meanwhile is simply not found.
 */
void
control_show_queue(struct ctl_client *c, char **words)
{
	struct msg	 m;

	(void)words;
	c->reqid = control_reqid();
	c->nitems = 0;
	if (c->json)
		fputs("{\"queue\": [", control_out(c));
	msg_init(&m, IMSG_CTL_QUEUE_LIST, 0);
	msg_add_u64(&m, c->reqid);
	proc_send(PROC_QUEUE, &m);
}

/* "3d4h", "2h5m", "5m7s", "9s": short, and exact enough to read. */
static void
control_age(char *buf, size_t len, long long t)
{
	int	 n;

	if (t < 0)
		t = 0;
	if (t >= 86400)
		n = snprintf(buf, len, "%lldd%lldh", t / 86400,
		    (t % 86400) / 3600);
	else if (t >= 3600)
		n = snprintf(buf, len, "%lldh%lldm", t / 3600, (t % 3600) / 60);
	else if (t >= 60)
		n = snprintf(buf, len, "%lldm%llds", t / 60, t % 60);
	else
		n = snprintf(buf, len, "%llds", t);
	if (n < 0 || (size_t)n >= len)
		strlcpy(buf, "?", len);
}

/* " key=value" when value is set, quoted if asked; nothing otherwise. */
static void
control_put_opt(FILE *out, const char *key, const char *val, int quote)
{
	if (*val == '\0')
		return;
	fprintf(out, " %s=%s", key, quote ? "\"" : "");
	control_put_safe(out, val);
	if (quote)
		fputc('"', out);
}

/*
 * IMSG_CTL_QUEUE_ITEM: u64 reqid, str id, str state, i64 arrival,
 * u64 size, str sender, str rcpt, str rewritten, str route,
 * str destination, u32 tries, i64 next try, i64 last try,
 * str last error, str quarantine.
 */
void
control_queue_item(struct msg *m)
{
	struct ctl_client	*c;
	const char		*id, *state, *sender, *rcpt, *rewritten;
	const char		*route, *dest, *error, *held;
	uint64_t		 reqid, size;
	uint32_t		 tries;
	int64_t			 arrival, next_try, last_try;
	time_t			 now = time(NULL);
	char			 age[32], next[40];
	FILE			*out;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_strp(m, &id) == -1 ||
	    msg_get_strp(m, &state) == -1 || msg_get_i64(m, &arrival) == -1 ||
	    msg_get_u64(m, &size) == -1 || msg_get_strp(m, &sender) == -1 ||
	    msg_get_strp(m, &rcpt) == -1 ||
	    msg_get_strp(m, &rewritten) == -1 ||
	    msg_get_strp(m, &route) == -1 || msg_get_strp(m, &dest) == -1 ||
	    msg_get_u32(m, &tries) == -1 || msg_get_i64(m, &next_try) == -1 ||
	    msg_get_i64(m, &last_try) == -1 ||
	    msg_get_strp(m, &error) == -1 || msg_get_strp(m, &held) == -1 ||
	    msg_end(m) == -1 ||
	    id == NULL || state == NULL || sender == NULL || rcpt == NULL ||
	    rewritten == NULL || route == NULL || dest == NULL ||
	    error == NULL || held == NULL)
		fatalx("bad %s", imsg_name(m->type));
	if ((c = control_client_find(reqid)) == NULL)
		return;
	out = control_out(c);
	if (c->json) {
		fprintf(out, "%s{\"id\": ", c->nitems ? ", " : "");
		json_str(out, id);
		fputs(", \"state\": ", out);
		json_str(out, state);
		fprintf(out, ", \"arrival\": %lld, \"age\": %lld, "
		    "\"size\": %llu, \"tries\": %u, \"next_try\": %lld, "
		    "\"last_try\": %lld, \"sender\": ", (long long)arrival,
		    (long long)(now - arrival), (unsigned long long)size,
		    tries, (long long)next_try, (long long)last_try);
		json_str(out, sender);
		fputs(", \"recipient\": ", out);
		json_str(out, rcpt);
		fputs(", \"rewritten\": ", out);
		json_str(out, rewritten);
		fputs(", \"route\": ", out);
		json_str(out, route);
		fputs(", \"destination\": ", out);
		json_str(out, dest);
		fputs(", \"last_error\": ", out);
		json_str(out, error);
		fputs(", \"quarantine\": ", out);
		json_str(out, held);
		fputs("}", out);
	} else {
		control_age(age, sizeof(age), (long long)(now - arrival));
		if (strcmp(state, "queued") != 0 &&
		    strcmp(state, "deferred") != 0)
			strlcpy(next, "-", sizeof(next));
		else if (next_try <= now)
			strlcpy(next, "now", sizeof(next));
		else {
			strlcpy(next, "in", sizeof(next));
			control_age(next + 2, sizeof(next) - 2,
			    (long long)(next_try - now));
		}
		fprintf(out, "%s ", id);
		control_put_safe(out, state);
		fprintf(out, " age=%s tries=%u next=%s size=%llu from=<", age,
		    tries, next, (unsigned long long)size);
		control_put_safe(out, sender);
		fputs("> to=<", out);
		control_put_safe(out, rcpt);
		fputs("> route=", out);
		control_put_safe(out, route);
		if (strcmp(rewritten, rcpt) != 0) {
			fputs(" via=<", out);
			control_put_safe(out, rewritten);
			fputs(">", out);
		}
		control_put_opt(out, "dest", dest, 0);
		control_put_opt(out, "error", error, 1);
		control_put_opt(out, "reason", held, 1);
		fputs("\n", out);
	}
	c->nitems++;
}

/* IMSG_CTL_QUEUE_END: u64 reqid. */
void
control_queue_end(struct msg *m)
{
	struct ctl_client	*c;
	uint64_t		 reqid;

	if (msg_get_u64(m, &reqid) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((c = control_client_find(reqid)) == NULL)
		return;
	if (c->json)
		fputs("]}\n", control_out(c));
	else if (c->nitems == 0)
		fputs("queue is empty\n", control_out(c));
	control_reply(c, 0);
}

/*
 * show message ID, schedule ID|all, remove ID|all, release ID|all: the
 * queue answers
 * (see "queue protocol" in splitmx.h); an unknown id is an error.
 */
static void
control_queue_request(struct ctl_client *c, int kind, uint32_t type,
    const char *id)
{
	struct msg	 m;

	c->reqid = control_reqid();
	c->kind = kind;
	c->nitems = c->nevents = 0;
	c->ntlsdests = c->tlsnext = 0;
	strlcpy(c->arg, id, sizeof(c->arg));
	msg_init(&m, type, 0);
	msg_add_u64(&m, c->reqid);
	msg_add_str(&m, id);
	proc_send(PROC_QUEUE, &m);
}

void
control_show_message(struct ctl_client *c, char **words)
{
	control_queue_request(c, CTL_Q_SHOW, IMSG_CTL_QUEUE_SHOW, words[2]);
}

void
control_queue_act(struct ctl_client *c, char **words)
{
	int	 kind = CTL_Q_SCHEDULE, valid;
	uint32_t type = IMSG_CTL_QUEUE_SCHEDULE;

	if (strcmp(words[0], "remove") == 0) {
		kind = CTL_Q_REMOVE;
		type = IMSG_CTL_QUEUE_REMOVE;
	} else if (strcmp(words[0], "release") == 0) {
		kind = CTL_Q_RELEASE;
		type = IMSG_CTL_QUEUE_RELEASE;
	}
	/* Only an id or "all" goes into the log as it is. */
	valid = strcmp(words[1], "all") == 0 || (strlen(words[1]) == 24 &&
	    strspn(words[1], "0123456789abcdef") == 24);
	log_info("control uid=%u %s %s", (unsigned)c->uid, words[0],
	    valid ? words[1] : "(not an id)");
	control_queue_request(c, kind, type, words[1]);
}

/* "2026-11-25T18:42:14Z", or "-" for never. */
static void
control_time(char *buf, size_t len, int64_t t)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		strlcpy(buf, "-", len);
}

/* A client waiting for this answer to this kind of request, or NULL. */
static struct ctl_client *
control_queue_client(uint64_t reqid, int kind)
{
	struct ctl_client	*c;

	if ((c = control_client_find(reqid)) == NULL || c->kind != kind)
		return NULL;
	return c;
}

/* IMSG_CTL_QUEUE_MESSAGE: the envelope of show message. */
void
control_queue_message(struct msg *m)
{
	struct ctl_client	*c;
	static const char *const keys[9] = {
		"id", "sender", "helo", "client", "client_host", "envid",
		"body", "ret", "flags"
	};
	const char		*s[9], *held;
	uint64_t		 reqid, size;
	int64_t			 arrival, warned;
	uint32_t		 nrcpt, inflight, removing;
	char			 when[32], age[32], warn[32];
	FILE			*out;
	int			 i;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_strp(m, &s[0]) == -1 ||
	    msg_get_i64(m, &arrival) == -1 || msg_get_u64(m, &size) == -1)
		fatalx("bad %s", imsg_name(m->type));
	/* s[]: id, sender, helo, client, host, envid, body, ret, flags */
	for (i = 1; i < 9; i++)
		if (msg_get_strp(m, &s[i]) == -1 || s[i] == NULL)
			fatalx("bad %s", imsg_name(m->type));
	if (s[0] == NULL || msg_get_i64(m, &warned) == -1 ||
	    msg_get_u32(m, &nrcpt) == -1 || msg_get_u32(m, &inflight) == -1 ||
	    msg_get_u32(m, &removing) == -1 || msg_get_strp(m, &held) == -1 ||
	    held == NULL || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((c = control_queue_client(reqid, CTL_Q_SHOW)) == NULL)
		return;
	out = control_out(c);
	control_time(when, sizeof(when), arrival);
	control_age(age, sizeof(age), (long long)(time(NULL) - arrival));
	control_time(warn, sizeof(warn), warned);
	if (c->json) {
		fputs("{", out);
		for (i = 0; i < 9; i++) {
			fprintf(out, "%s\"%s\": ", i ? ", " : "", keys[i]);
			json_str(out, s[i]);
		}
		fprintf(out, ", \"arrival\": %lld, \"age\": %lld, "
		    "\"size\": %llu, \"warned\": %lld, \"recipients_total\": "
		    "%u, \"deliveries_out\": %u, \"removing\": %s, "
		    "\"quarantine\": ", (long long)arrival,
		    (long long)(time(NULL) - arrival),
		    (unsigned long long)size, (long long)warned, nrcpt,
		    inflight, removing ? "true" : "false");
		json_str(out, held);
		fputs(", \"recipients\": [", out);
		return;
	}
	fprintf(out, "message %s\n  arrival=%s age=%s size=%llu from=<",
	    s[0], when, age, (unsigned long long)size);
	control_put_safe(out, s[1]);
	fputs(">\n  client=", out);
	control_put_safe(out, *s[3] ? s[3] : "-");
	fputs(" client-host=", out);
	control_put_safe(out, *s[4] ? s[4] : "-");
	fputs(" helo=", out);
	control_put_safe(out, *s[2] ? s[2] : "-");
	fputs("\n  body=", out);
	control_put_safe(out, s[6]);
	fputs(" ret=", out);
	control_put_safe(out, s[7]);
	fputs(" envid=", out);
	control_put_safe(out, *s[5] ? s[5] : "-");
	fputs(" flags=", out);
	control_put_safe(out, *s[8] ? s[8] : "-");
	fprintf(out, " warned=%s deliveries-out=%u%s\n", warn, inflight,
	    removing ? " removing=yes" : "");
	if (*held != '\0') {
		fputs("  quarantined: ", out);
		control_put_safe(out, held);
		fputs(" (splitmxctl release delivers it)\n", out);
	}
}

/* IMSG_CTL_QUEUE_RCPT: one recipient of show message. */
void
control_queue_rcpt(struct msg *m)
{
	struct ctl_client	*c;
	const char		*rcpt, *rewritten, *route, *dest, *tls;
	const char		*notify, *orcpt, *state, *error;
	uint64_t		 reqid;
	uint32_t		 index, tries, sending;
	int64_t			 next_try, last_try;
	time_t			 now = time(NULL);
	char			 next[40], last[32];
	FILE			*out;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_u32(m, &index) == -1 ||
	    msg_get_strp(m, &rcpt) == -1 || msg_get_strp(m, &rewritten) == -1 ||
	    msg_get_strp(m, &route) == -1 || msg_get_strp(m, &dest) == -1 ||
	    msg_get_strp(m, &tls) == -1 ||
	    msg_get_strp(m, &notify) == -1 || msg_get_strp(m, &orcpt) == -1 ||
	    msg_get_strp(m, &state) == -1 || msg_get_u32(m, &tries) == -1 ||
	    msg_get_i64(m, &next_try) == -1 ||
	    msg_get_i64(m, &last_try) == -1 ||
	    msg_get_strp(m, &error) == -1 || msg_get_u32(m, &sending) == -1 ||
	    msg_end(m) == -1 || rcpt == NULL || rewritten == NULL ||
	    route == NULL || dest == NULL || tls == NULL || notify == NULL ||
	    orcpt == NULL || state == NULL || error == NULL)
		fatalx("bad %s", imsg_name(m->type));
	if ((c = control_queue_client(reqid, CTL_Q_SHOW)) == NULL)
		return;
	if (strcmp(state, "queued") == 0 || strcmp(state, "deferred") == 0)
		control_queue_tlsdest(c, dest, rewritten, tls);
	out = control_out(c);
	control_time(last, sizeof(last), last_try);
	if (c->json) {
		fprintf(out, "%s{\"index\": %u, \"recipient\": ",
		    c->nitems ? ", " : "", index);
		json_str(out, rcpt);
		fputs(", \"rewritten\": ", out);
		json_str(out, rewritten);
		fputs(", \"route\": ", out);
		json_str(out, route);
		fputs(", \"destination\": ", out);
		json_str(out, dest);
		fputs(", \"tls\": ", out);
		json_str(out, tls);
		fputs(", \"notify\": ", out);
		json_str(out, notify);
		fputs(", \"orcpt\": ", out);
		json_str(out, orcpt);
		fputs(", \"state\": ", out);
		json_str(out, state);
		fprintf(out, ", \"sending\": %s, \"tries\": %u, "
		    "\"next_try\": %lld, \"last_try\": %lld, "
		    "\"last_error\": ", sending ? "true" : "false", tries,
		    (long long)next_try, (long long)last_try);
		json_str(out, error);
		fputs("}", out);
		c->nitems++;
		return;
	}
	if (sending)
		strlcpy(next, "sending", sizeof(next));
	else if (strcmp(state, "queued") != 0 &&
	    strcmp(state, "deferred") != 0)
		strlcpy(next, "-", sizeof(next));
	else if (next_try <= now)
		strlcpy(next, "now", sizeof(next));
	else {
		strlcpy(next, "in", sizeof(next));
		control_age(next + 2, sizeof(next) - 2,
		    (long long)(next_try - now));
	}
	fprintf(out, "recipient %u <", index + 1);
	control_put_safe(out, rcpt);
	fputs("> state=", out);
	control_put_safe(out, state);
	fprintf(out, " tries=%u next=%s last=%s route=", tries, next, last);
	control_put_safe(out, route);
	if (strcmp(rewritten, rcpt) != 0) {
		fputs(" via=<", out);
		control_put_safe(out, rewritten);
		fputs(">", out);
	}
	fputs(" dest=", out);
	control_put_safe(out, *dest ? dest : "mx");
	/*
	 * Shown where it asks more than opportunistic encryption, like
	 * orcpt where there is one.
	 */
	if (strcmp(tls, "none") != 0 && strcmp(tls, "opportunistic") != 0 &&
	    strcmp(tls, "unknown") != 0) {
		fputs(" tls=", out);
		control_put_safe(out, tls);
	}
	fputs(" notify=", out);
	control_put_safe(out, *notify ? notify : "default");
	control_put_opt(out, "orcpt", orcpt, 0);
	control_put_opt(out, "error", error, 1);
	fputs("\n", out);
	c->nitems++;
}

/* Between the recipients and the history of show message. */
static void
control_queue_history(struct ctl_client *c, FILE *out)
{
	if (c->nevents > 0)
		return;
	if (c->json)
		fputs("], \"history\": [", out);
	else
		fputs("history\n", out);
}

/* IMSG_CTL_QUEUE_EVENT: one line of the history of show message. */
void
control_queue_event(struct msg *m)
{
	struct ctl_client	*c;
	const char		*text;
	uint64_t		 reqid;
	int64_t			 when;
	char			 ts[32];
	FILE			*out;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_i64(m, &when) == -1 ||
	    msg_get_strp(m, &text) == -1 || text == NULL || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((c = control_queue_client(reqid, CTL_Q_SHOW)) == NULL)
		return;
	out = control_out(c);
	control_queue_history(c, out);
	control_time(ts, sizeof(ts), when);
	if (c->json) {
		fprintf(out, "%s{\"time\": %lld, \"text\": ",
		    c->nevents ? ", " : "", (long long)when);
		json_str(out, text);
		fputs("}", out);
	} else {
		fprintf(out, "  %s ", ts);
		control_put_safe(out, text);
		fputs("\n", out);
	}
	c->nevents++;
}

/*
 * IMSG_CTL_QUEUE_RESULT: u64 reqid, u32 found, u32 done, u32 pending;
 * the answer to schedule and remove, and the end of show message.
 */
void
control_queue_result(struct msg *m)
{
	struct ctl_client	*c;
	uint64_t		 reqid;
	uint32_t		 found, done, later;
	FILE			*out;

	if (msg_get_u64(m, &reqid) == -1 || msg_get_u32(m, &found) == -1 ||
	    msg_get_u32(m, &done) == -1 || msg_get_u32(m, &later) == -1 ||
	    msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if ((c = control_client_find(reqid)) == NULL || c->kind == 0)
		return;
	if (found == 0 && strcmp(c->arg, "all") != 0) {
		control_fail(c, "no such message: %s", c->arg);
		return;
	}
	out = control_out(c);
	if (c->kind == CTL_Q_SCHEDULE) {
		if (c->json)
			fprintf(out, "{\"scheduled\": %u}\n", done);
		else
			fprintf(out, "scheduled %u message%s\n", done,
			    done == 1 ? "" : "s");
	} else if (c->kind == CTL_Q_RELEASE) {
		if (done == 0 && strcmp(c->arg, "all") != 0) {
			control_fail(c, "message %s is not quarantined",
			    c->arg);
			return;
		}
		if (c->json)
			fprintf(out, "{\"released\": %u}\n", done);
		else
			fprintf(out, "released %u message%s\n", done,
			    done == 1 ? "" : "s");
	} else if (c->kind == CTL_Q_REMOVE) {
		if (c->json)
			fprintf(out, "{\"removed\": %u, \"pending\": %u}\n",
			    done, later);
		else {
			fprintf(out, "removed %u message%s", done,
			    done == 1 ? "" : "s");
			if (later > 0)
				fprintf(out, "; %u being delivered, removed "
				    "when the attempt ends", later);
			fputs("\n", out);
		}
	} else {
		/* show message: the history ends, the TLS policies follow. */
		control_queue_history(c, out);
		if (c->json)
			fputs("], \"tls\": [", out);
		c->tlsnext = 0;
		control_queue_tls_next(c);
		return;
	}
	control_reply(c, 0);
}

/*
 * A queued recipient's destination (host syntax, "" for the MX of the
 * rewritten address' domain) and its policy, once per destination.
 */
static void
control_queue_tlsdest(struct ctl_client *c, const char *dest,
    const char *rewritten, const char *tls)
{
	const char	*domain = "";
	int		 i;

	if (*dest == '\0' && (domain = strrchr(rewritten, '@')) != NULL)
		domain++;
	if (domain == NULL || (*dest == '\0' && *domain == '\0'))
		return;
	for (i = 0; i < c->ntlsdests; i++)
		if (strcmp(c->tlsdests[i].dest, dest) == 0 &&
		    strcasecmp(c->tlsdests[i].domain, domain) == 0 &&
		    strcmp(c->tlsdests[i].tls, tls) == 0)
			return;
	if (c->ntlsdests == CTL_TLSDESTS)
		return;
	strlcpy(c->tlsdests[i].dest, dest, sizeof(c->tlsdests[i].dest));
	strlcpy(c->tlsdests[i].domain, domain, sizeof(c->tlsdests[i].domain));
	strlcpy(c->tlsdests[i].tls, tls, sizeof(c->tlsdests[i].tls));
	c->ntlsdests++;
}

/*
 * show message, after the history: for each destination of a queued
 * recipient, the TLS check each of its hosts gets now and why (the
 * lookup process resolves and explains it, IMSG_CTL_LOOKUP_TLS), one
 * after the other; then the answer is complete.
 */
void
control_queue_tls_next(struct ctl_client *c)
{
	struct msg	 m;
	FILE		*out = control_out(c);
	int		 i = c->tlsnext;

	if (i >= c->ntlsdests) {
		fputs(c->json ? "]}\n" : "", out);
		control_reply(c, 0);
		return;
	}
	if (c->json) {
		fprintf(out, "%s{\"destination\": ", i ? ", " : "");
		json_str(out, c->tlsdests[i].dest);
		fputs(", \"domain\": ", out);
		json_str(out, c->tlsdests[i].domain);
	} else {
		fputs("tls for ", out);
		if (*c->tlsdests[i].dest != '\0')
			control_put_safe(out, c->tlsdests[i].dest);
		else {
			fputs("the MX of ", out);
			control_put_safe(out, c->tlsdests[i].domain);
		}
		fputs(" (now)\n", out);
	}
	msg_init(&m, IMSG_CTL_LOOKUP_TLS, 0);
	msg_add_u64(&m, c->reqid);
	msg_add_str(&m, c->tlsdests[i].dest);
	msg_add_str(&m, c->tlsdests[i].domain);
	msg_add_str(&m, c->tlsdests[i].tls);
	proc_send(PROC_LOOKUP, &m);
}
