/*
 * The queue's side of splitmxctl: the listing, one message shown whole,
 * schedule and remove, pausing deliveries (see splitmx.h for the
 * messages).
 */
#include <sys/types.h>
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "splitmx.h"
#include "queue.h"

static void	queue_ctl_result(uint64_t, uint32_t, uint32_t, uint32_t);
static void	queue_notify_str(char *, size_t, uint32_t);

/*
 * IMSG_CTL_QUEUE_LIST: one IMSG_CTL_QUEUE_ITEM per recipient, oldest
 * message first, then IMSG_CTL_QUEUE_END.
 */
void
queue_ctl_list(struct msgchan *ch, struct msg *m)
{
	struct queue_msg	*qm;
	struct queue_envelope	*e;
	struct queue_rcpt	*r;
	struct msg		 item;
	uint64_t		 reqid;
	uint32_t		 i;

	proc_expect(ch, m, PROC_CONTROL);
	if (msg_get_u64(m, &reqid) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	for (qm = queue_msg_oldest(); qm != NULL;
	    qm = TAILQ_NEXT(qm, age)) {
		e = qm->env;
		for (i = 0; i < e->nrcpt; i++) {
			r = &e->rcpts[i];
			msg_init(&item, IMSG_CTL_QUEUE_ITEM, 0);
			msg_add_u64(&item, reqid);
			msg_add_str(&item, e->id);
			msg_add_str(&item, QUEUE_HELD(e) && r->state <
			    STATE_DELIVERED ? "quarantined" :
			    queue_fs_state_name(r->state));
			msg_add_i64(&item, (int64_t)e->arrival);
			msg_add_u64(&item, e->size);
			msg_add_str(&item, e->sender);
			msg_add_str(&item, r->rcpt);
			msg_add_str(&item, r->rewritten);
			msg_add_str(&item, queue_fs_class_name(r->class));
			msg_add_str(&item, r->dest);
			msg_add_u32(&item, r->tries);
			msg_add_i64(&item, (int64_t)r->next_try);
			msg_add_i64(&item, (int64_t)r->last_try);
			msg_add_str(&item, r->last_error);
			msg_add_str(&item, QUEUE_HELD(e) ? e->quarantine : "");
			proc_send(PROC_CONTROL, &item);
		}
	}
	msg_init(&item, IMSG_CTL_QUEUE_END, 0);
	msg_add_u64(&item, reqid);
	proc_send(PROC_CONTROL, &item);
}

/* IMSG_CTL_RELAY_PAUSE: u32 paused. */
void
queue_ctl_pause(struct msgchan *ch, struct msg *m)
{
	uint32_t	 paused;

	proc_expect(ch, m, PROC_CONTROL);
	if (msg_get_u32(m, &paused) == -1 || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	sched_pause(paused != 0);
}

static void
queue_ctl_result(uint64_t reqid, uint32_t found, uint32_t done,
    uint32_t later)
{
	struct msg	 r;

	msg_init(&r, IMSG_CTL_QUEUE_RESULT, 0);
	msg_add_u64(&r, reqid);
	msg_add_u32(&r, found);
	msg_add_u32(&r, done);
	msg_add_u32(&r, later);
	proc_send(PROC_CONTROL, &r);
}

/* F_NOTIFY_* as the envelope file writes them; "" is the default. */
static void
queue_notify_str(char *buf, size_t len, uint32_t notify)
{
	buf[0] = '\0';
	if (notify & F_NOTIFY_NEVER)
		strlcat(buf, "never,", len);
	if (notify & F_NOTIFY_SUCCESS)
		strlcat(buf, "success,", len);
	if (notify & F_NOTIFY_FAILURE)
		strlcat(buf, "failure,", len);
	if (notify & F_NOTIFY_DELAY)
		strlcat(buf, "delay,", len);
	if (buf[0] != '\0')
		buf[strlen(buf) - 1] = '\0';
}

/*
 * IMSG_CTL_QUEUE_SHOW: the message's envelope, its recipients and its
 * history (see splitmx.h), or a RESULT that found nothing.
 */
void
queue_ctl_show(struct msgchan *ch, struct msg *m)
{
	static const char *const	 bodies[] = {
		"7bit", "8bitmime", "binarymime"
	};
	static const char *const	 rets[] = { "unset", "full", "hdrs" };
	struct queue_msg		*qm;
	struct queue_envelope		*e;
	struct queue_rcpt		*r;
	struct msg			 out;
	const char			*id;
	char				 flags[32], notify[40];
	uint64_t			 reqid;
	uint32_t			 i;

	proc_expect(ch, m, PROC_CONTROL);
	if (msg_get_u64(m, &reqid) == -1 || msg_get_strp(m, &id) == -1 ||
	    id == NULL || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	if (!queue_fs_id_valid(id) || (qm = queue_msg_find(id)) == NULL) {
		queue_ctl_result(reqid, 0, 0, 0);
		return;
	}
	e = qm->env;
	flags[0] = '\0';
	if (e->flags & F_MSG_SMTPUTF8)
		strlcat(flags, "smtputf8", sizeof(flags));
	if (e->flags & F_MSG_TLS)
		strlcat(flags, flags[0] ? ",tls" : "tls", sizeof(flags));
	msg_init(&out, IMSG_CTL_QUEUE_MESSAGE, 0);
	msg_add_u64(&out, reqid);
	msg_add_str(&out, e->id);
	msg_add_i64(&out, (int64_t)e->arrival);
	msg_add_u64(&out, e->size);
	msg_add_str(&out, e->sender);
	msg_add_str(&out, e->helo);
	msg_add_str(&out, e->client);
	msg_add_str(&out, e->client_host);
	msg_add_str(&out, e->envid);
	msg_add_str(&out, e->body < BODY_COUNT ? bodies[e->body] : "?");
	msg_add_str(&out, e->ret < RET_COUNT ? rets[e->ret] : "?");
	msg_add_str(&out, flags);
	msg_add_i64(&out, (int64_t)e->warned);
	msg_add_u32(&out, e->nrcpt);
	msg_add_u32(&out, qm->inflight);
	msg_add_u32(&out, (qm->sflags & F_QM_REMOVE) ? 1 : 0);
	msg_add_str(&out, QUEUE_HELD(e) ? e->quarantine : "");
	proc_send(PROC_CONTROL, &out);
	for (i = 0; i < e->nrcpt; i++) {
		r = &e->rcpts[i];
		queue_notify_str(notify, sizeof(notify), r->notify);
		msg_init(&out, IMSG_CTL_QUEUE_RCPT, 0);
		msg_add_u64(&out, reqid);
		msg_add_u32(&out, i);
		msg_add_str(&out, r->rcpt);
		msg_add_str(&out, r->rewritten);
		msg_add_str(&out, queue_fs_class_name(r->class));
		msg_add_str(&out, r->dest);
		msg_add_str(&out, queue_fs_tls_name(r->tls));
		msg_add_str(&out, notify);
		msg_add_str(&out, r->orcpt);
		msg_add_str(&out, QUEUE_HELD(e) && r->state <
		    STATE_DELIVERED ? "quarantined" :
		    queue_fs_state_name(r->state));
		msg_add_u32(&out, r->tries);
		msg_add_i64(&out, (int64_t)r->next_try);
		msg_add_i64(&out, (int64_t)r->last_try);
		msg_add_str(&out, r->last_error);
		msg_add_u32(&out, r->sched ? 1 : 0);
		proc_send(PROC_CONTROL, &out);
	}
	for (i = 0; i < e->nhist; i++) {
		msg_init(&out, IMSG_CTL_QUEUE_EVENT, 0);
		msg_add_u64(&out, reqid);
		msg_add_i64(&out, (int64_t)e->hist[i].when);
		msg_add_str(&out, e->hist[i].text);
		proc_send(PROC_CONTROL, &out);
	}
	queue_ctl_result(reqid, 1, 0, 0);
}

/*
 * IMSG_CTL_QUEUE_SCHEDULE and IMSG_CTL_QUEUE_REMOVE: u64 reqid, str id
 * or "all".  A message being delivered is removed when its delivery
 * is back (the scheduler holds on to it until then).
 */
void
queue_ctl_act(struct msgchan *ch, struct msg *m)
{
	struct queue_msg	*qm, *next;
	const char		*id;
	uint64_t		 reqid;
	uint32_t		 found = 0, done = 0, later = 0;
	int			 all, remove = m->type == IMSG_CTL_QUEUE_REMOVE;

	proc_expect(ch, m, PROC_CONTROL);
	if (msg_get_u64(m, &reqid) == -1 || msg_get_strp(m, &id) == -1 ||
	    id == NULL || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	all = strcmp(id, "all") == 0;
	if (!all && (!queue_fs_id_valid(id) ||
	    (qm = queue_msg_find(id)) == NULL)) {
		queue_ctl_result(reqid, 0, 0, 0);
		return;
	}
	qm = all ? queue_msg_oldest() : queue_msg_find(id);
	for (; qm != NULL; qm = all ? next : NULL) {
		next = TAILQ_NEXT(qm, age);
		found++;
		if (!remove) {
			sched_schedule(qm);
			done++;
		} else if (sched_remove(qm))
			done++;
		else
			later++;
	}
	log_info("event=%s target=%s messages=%u pending=%u",
	    remove ? "remove" : "schedule", id, found, later);
	queue_ctl_result(reqid, found, done, later);
}

/*
 * IMSG_CTL_QUEUE_RELEASE: u64 reqid, str id or "all"; answered like
 * schedule, done being the messages released (held ones only).
 */
void
queue_ctl_release(struct msgchan *ch, struct msg *m)
{
	struct queue_msg	*qm, *next;
	const char		*id;
	uint64_t		 reqid;
	uint32_t		 found = 0, done = 0;
	int			 all;

	proc_expect(ch, m, PROC_CONTROL);
	if (msg_get_u64(m, &reqid) == -1 || msg_get_strp(m, &id) == -1 ||
	    id == NULL || msg_end(m) == -1)
		fatalx("bad %s", imsg_name(m->type));
	all = strcmp(id, "all") == 0;
	if (!all && (!queue_fs_id_valid(id) ||
	    queue_msg_find(id) == NULL)) {
		queue_ctl_result(reqid, 0, 0, 0);
		return;
	}
	qm = all ? queue_msg_oldest() : queue_msg_find(id);
	for (; qm != NULL; qm = all ? next : NULL) {
		next = TAILQ_NEXT(qm, age);
		if (all && !QUEUE_HELD(qm->env))
			continue;
		found++;
		done += (uint32_t)sched_release(qm);
	}
	log_info("event=release target=%s messages=%u released=%u", id,
	    found, done);
	queue_ctl_result(reqid, found, done, 0);
}
