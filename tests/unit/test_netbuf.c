/* Unit tests for the plug backend's epoch logic (netbuf/plug_epochs.c)
 * against a model of the kernel's sch_plug (net/sched/sch_plug.c): its
 * FIFO queue and the counters pkts_current_epoch, pkts_last_epoch,
 * pkts_to_release, unplug_indefinite and the throttle flag, changed
 * exactly as plug_enqueue, plug_dequeue and plug_change change them. The
 * model stands in for the kernel only: the commands come from
 * netbuf_plug_decide, the function netbuf/plug.c sends to the kernel.
 *
 * The driver plays the epoch loop's call orders (primary/protect.c):
 * postsuspend(N) when epoch N ends, commit(N) when ACK(N) arrives, ACKs in
 * order, at most `depth` closed epochs unacknowledged (--max-inflight).
 * The qdisc dequeues whatever it may after every event (the kernel's
 * transmit softirq at its most eager). Checked:
 *   safety    no packet of epoch N leaves before commit(N);
 *   liveness  once commit(M) is done, every packet enqueued while epoch
 *             N <= M - depth + 1 ran has left (the cost of merging epochs:
 *             docs/netbuf.md);
 *   teardown  RELEASE_INDEFINITE lets out the rest, in order. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netbuf/plug_epochs.h"

/* ---- the kernel: sch_plug ---------------------------------------------- */

#define KQ_MAX 65536

struct kpkt {
	uint64_t seq;
	uint64_t epoch;     /* the epoch that produced it */
	uint64_t enq_epoch; /* the epoch running when it reached the qdisc */
};

struct kq {
	/* struct plug_sched_data */
	bool unplug_indefinite;
	uint32_t pkts_current_epoch, pkts_last_epoch, pkts_to_release;
	bool throttled; /* qdisc_throttled() / q->throttled */
	/* the qdisc's packet list (qdisc_enqueue_tail, qdisc_dequeue_head) */
	struct kpkt q[KQ_MAX];
	unsigned head, len;
};

enum kq_action { /* TCQ_PLUG_* */
	KQ_BUFFER,
	KQ_RELEASE_ONE,
	KQ_RELEASE_INDEFINITE,
};

static void kq_init(struct kq *k) /* plug_init */
{
	memset(k, 0, sizeof(*k));
	k->throttled = true;
}

static void kq_enqueue(struct kq *k, struct kpkt p) /* plug_enqueue, below its limit */
{
	assert_true(k->len < KQ_MAX);
	if (!k->unplug_indefinite)
		k->pkts_current_epoch++;
	k->q[(k->head + k->len++) % KQ_MAX] = p;
}

static bool kq_dequeue(struct kq *k, struct kpkt *out) /* plug_dequeue */
{
	if (k->throttled)
		return false;
	if (!k->unplug_indefinite) {
		if (!k->pkts_to_release) {
			k->throttled = true;
			return false;
		}
		k->pkts_to_release--;
	}
	if (!k->len) /* qdisc_dequeue_head on an empty list */
		return false;
	*out = k->q[k->head];
	k->head = (k->head + 1) % KQ_MAX;
	k->len--;
	return true;
}

static void kq_change(struct kq *k, enum kq_action a) /* plug_change */
{
	switch (a) {
	case KQ_BUFFER:
		k->pkts_last_epoch = k->pkts_current_epoch;
		k->pkts_current_epoch = 0;
		if (k->unplug_indefinite)
			k->throttled = true;
		k->unplug_indefinite = false;
		break;
	case KQ_RELEASE_ONE:
		k->pkts_to_release += k->pkts_last_epoch;
		k->pkts_last_epoch = 0;
		k->throttled = false;
		break;
	case KQ_RELEASE_INDEFINITE:
		k->unplug_indefinite = true;
		k->pkts_to_release = 0;
		k->pkts_last_epoch = 0;
		k->pkts_current_epoch = 0;
		k->throttled = false;
		break;
	}
}

/* The model itself: two BUFFERs before a RELEASE_ONE lose the first
 * epoch's count, and the release takes the second epoch's count from the
 * head of the queue: the first epoch's packets and part of the second. */
static void test_model_overwrites_last_epoch(void **state)
{
	static struct kq k;
	struct kpkt p;
	unsigned out[2] = {0, 0};

	kq_init(&k);
	for (unsigned i = 0; i < 3; i++)
		kq_enqueue(&k, (struct kpkt){.seq = i, .epoch = 0});
	kq_change(&k, KQ_BUFFER);
	for (unsigned i = 3; i < 8; i++)
		kq_enqueue(&k, (struct kpkt){.seq = i, .epoch = 1});
	kq_change(&k, KQ_BUFFER);
	assert_false(kq_dequeue(&k, &p));
	kq_change(&k, KQ_RELEASE_ONE); /* meant for epoch 0 */
	while (kq_dequeue(&k, &p))
		out[p.epoch]++;
	assert_int_equal(out[0], 3);
	assert_int_equal(out[1], 2); /* epoch 1, before its ACK */
	kq_change(&k, KQ_RELEASE_ONE);
	while (kq_dequeue(&k, &p))
		out[p.epoch]++;
	assert_int_equal(out[1], 2); /* the rest is lost to RELEASE_ONE */
	kq_change(&k, KQ_RELEASE_INDEFINITE);
	while (kq_dequeue(&k, &p))
		out[p.epoch]++;
	assert_int_equal(out[1], 5);
}

/* ---- the epoch loop, driving netbuf_plug_decide ------------------------- */

struct sim {
	struct kq k;
	struct netbuf_plug_epochs ep;
	unsigned depth;
	uint64_t running; /* the guest runs this epoch; 0..running-1 are closed */
	uint64_t acked;   /* epochs 0..acked-1 are committed */
	uint64_t seq, next_out;
	uint64_t sent, early, waits, wait_sum, wait_max, late_checks;
	char first[160];  /* the first early packet */
	char first_late[160]; /* the first packet held past the liveness bound */
	char trace[512];  /* the last events, for failure messages */
};

static void sim_init(struct sim *s, unsigned depth)
{
	memset(s, 0, sizeof(*s));
	kq_init(&s->k);
	s->depth = depth;
}

static void sim_trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sim_trace(struct sim *s, const char *fmt, ...)
{
	char ev[64];
	va_list ap;
	size_t n = strlen(s->trace);

	va_start(ap, fmt);
	vsnprintf(ev, sizeof(ev), fmt, ap);
	va_end(ap);
	if (n + strlen(ev) + 2 >= sizeof(s->trace)) { /* keep the tail */
		size_t cut = n + strlen(ev) + 2 - sizeof(s->trace) + 64;
		memmove(s->trace, s->trace + cut, n - cut + 1);
	}
	strcat(s->trace, " ");
	strcat(s->trace, ev);
}

/* Everything the qdisc lets out now: checked against the ACKs so far. */
static void sim_drain(struct sim *s)
{
	struct kpkt p;

	while (kq_dequeue(&s->k, &p)) {
		assert_int_equal(p.seq, s->next_out); /* FIFO, none lost */
		s->next_out++;
		if (p.epoch >= s->acked) {
			if (!s->early++)
				snprintf(s->first, sizeof(s->first),
					 "packet %llu of epoch %llu left with epochs < %llu acked",
					 (unsigned long long)p.seq, (unsigned long long)p.epoch,
					 (unsigned long long)s->acked);
		} else if (s->acked != UINT64_MAX) { /* not teardown */
			uint64_t w = s->acked - 1 - p.enq_epoch; /* ACKs waited beyond its own */

			s->waits++;
			s->wait_sum += w;
			if (w > s->wait_max)
				s->wait_max = w;
		}
	}
}

static void sim_emit(struct sim *s, unsigned n, uint64_t epoch, uint64_t enq_epoch)
{
	for (unsigned i = 0; i < n; i++) {
		kq_enqueue(&s->k, (struct kpkt){.seq = s->seq++, .epoch = epoch,
						.enq_epoch = enq_epoch});
		s->sent++;
	}
	sim_drain(s);
}

/* What netbuf/plug.c does for an event: one decision, its command sent. */
static void sim_send(struct sim *s, enum netbuf_plug_event ev, uint64_t epoch)
{
	struct netbuf_plug_epochs next;
	enum netbuf_plug_cmd cmd;

	assert_int_equal(netbuf_plug_decide(&s->ep, ev, epoch, &next, &cmd), 0);
	s->ep = next;
	if (cmd == NETBUF_PLUG_BUFFER)
		kq_change(&s->k, KQ_BUFFER);
	else if (cmd == NETBUF_PLUG_RELEASE_ONE)
		kq_change(&s->k, KQ_RELEASE_ONE);
	sim_trace(s, "%s", cmd == NETBUF_PLUG_BUFFER	  ? "B"
			   : cmd == NETBUF_PLUG_RELEASE_ONE ? "R"
							    : "-");
	sim_drain(s);
}

/* postsuspend(running); late: packets of that epoch still on their way,
 * reaching the qdisc after the barrier. */
static void sim_postsuspend(struct sim *s, unsigned late)
{
	assert_true(s->running - s->acked < s->depth);
	sim_trace(s, "ps%llu", (unsigned long long)s->running);
	sim_send(s, NETBUF_PLUG_POSTSUSPEND, s->running);
	s->running++;
	sim_emit(s, late, s->running - 1, s->running);
}

/* commit(oldest unacknowledged), then the liveness bound. */
static void sim_commit(struct sim *s)
{
	uint64_t m = s->acked;

	assert_true(m < s->running);
	sim_trace(s, "c%llu", (unsigned long long)m);
	s->acked++;
	sim_send(s, NETBUF_PLUG_COMMIT, m);
	if (m + 1 >= s->depth && s->k.len) {
		const struct kpkt *h = &s->k.q[s->k.head];

		if (h->enq_epoch <= m + 1 - s->depth && !s->late_checks++)
			snprintf(s->first_late, sizeof(s->first_late),
				 "packet %llu of epoch %llu still held after commit(%llu)",
				 (unsigned long long)h->seq, (unsigned long long)h->epoch,
				 (unsigned long long)m);
	}
}

/* Teardown: everything left goes, in order; then the verdict. */
static void sim_finish(struct sim *s, const char *what)
{
	kq_change(&s->k, KQ_RELEASE_INDEFINITE);
	s->acked = UINT64_MAX;
	sim_drain(s);
	assert_int_equal(s->next_out, s->sent);
	if (s->early)
		fail_msg("%s: %llu of %llu packets left before their epoch's ACK; first: %s;"
			 " last events:%s",
			 what, (unsigned long long)s->early, (unsigned long long)s->sent, s->first,
			 s->trace);
	if (s->late_checks)
		fail_msg("%s: after %llu commits, output older than depth %u epochs was still"
			 " held; first: %s; last events:%s",
			 what, (unsigned long long)s->late_checks, s->depth, s->first_late, s->trace);
}

static uint64_t rng_next(uint64_t *r)
{
	*r ^= *r << 13;
	*r ^= *r >> 7;
	*r ^= *r << 17;
	return *r;
}

/* The steady pipeline of --max-inflight depth with an ACK slower than the
 * interval: postsuspend(0..depth-1), then commit(N), postsuspend(N+depth)
 * (depth 2: ps0 ps1 c0 ps2 c1 ps3 c2 ...). Epoch sizes vary so that a
 * count released for the wrong epoch shows. */
static void run_pipeline(unsigned depth, unsigned epochs, struct sim *s)
{
	uint64_t r = 0x9e3779b97f4a7c15ull ^ depth;
	char what[64];

	sim_init(s, depth);
	for (unsigned e = 0; e < epochs; e++) {
		sim_emit(s, (unsigned)(rng_next(&r) % 40), s->running, s->running);
		if (s->running - s->acked == depth)
			sim_commit(s);
		sim_postsuspend(s, 0);
	}
	while (s->acked < s->running)
		sim_commit(s);
	snprintf(what, sizeof(what), "pipeline depth %u", depth);
	sim_finish(s, what);
}

static void report_waits(const struct sim *s)
{
	print_message("depth %u: %llu packets, waited on average %.2f ACKs beyond their own"
		      " (max %llu)\n",
		      s->depth, (unsigned long long)s->waits,
		      s->waits ? (double)s->wait_sum / (double)s->waits : 0.0,
		      (unsigned long long)s->wait_max);
}

static void test_pipeline_depth1(void **state)
{
	static struct sim s;

	run_pipeline(1, 300, &s);
	assert_int_equal(s.wait_max, 0); /* in order: nothing waits for a later ACK */
	report_waits(&s);
}

static void test_pipeline_depth2(void **state)
{
	static struct sim s;

	run_pipeline(2, 300, &s);
	report_waits(&s);
}

static void test_pipeline_depth3(void **state)
{
	static struct sim s;

	run_pipeline(3, 300, &s);
	report_waits(&s);
}

/* The order seen with the real epoch loop and a secondary that ACKs after
 * 35 ms: postsuspend(0) postsuspend(1) commit(0) postsuspend(2) commit(1),
 * then an ACK that catches up (commit(2) before postsuspend(3)), and
 * again. */
static void test_observed_order(void **state)
{
	static struct sim s;

	sim_init(&s, 2);
	sim_emit(&s, 10, 0, 0);
	sim_postsuspend(&s, 0);
	sim_emit(&s, 25, 1, 1);
	sim_postsuspend(&s, 0);
	sim_emit(&s, 5, 2, 2);
	sim_commit(&s);
	sim_emit(&s, 5, 2, 2);
	sim_postsuspend(&s, 0);
	sim_emit(&s, 7, 3, 3);
	sim_commit(&s);
	sim_commit(&s);
	sim_emit(&s, 7, 3, 3);
	sim_postsuspend(&s, 0);
	sim_emit(&s, 30, 4, 4);
	sim_postsuspend(&s, 0);
	sim_commit(&s);
	sim_commit(&s);
	sim_finish(&s, "observed order");
}

/* Random orders that respect the protocol: ACKs in order, at most depth
 * closed epochs unacknowledged, empty epochs, packets that reach the
 * qdisc after their epoch's barrier. */
static void test_random_orders(void **state)
{
	static struct sim s;
	char what[96];

	for (uint64_t seed = 1; seed <= 400; seed++) {
		uint64_t r = seed * 0x2545f4914f6cdd1dull;
		unsigned depth = 1 + (unsigned)(seed % 4);

		sim_init(&s, depth);
		for (unsigned step = 0; step < 400; step++) {
			unsigned pick = (unsigned)(rng_next(&r) % 3);
			bool can_close = s.running - s.acked < depth, can_ack = s.acked < s.running;

			if (pick == 0 || (!can_close && !can_ack))
				sim_emit(&s, (unsigned)(rng_next(&r) % 12), s.running, s.running);
			else if (pick == 1 && can_close)
				sim_postsuspend(&s, (unsigned)(rng_next(&r) % 4 == 0 ? rng_next(&r) % 3 : 0));
			else if (can_ack)
				sim_commit(&s);
			else
				sim_postsuspend(&s, 0);
		}
		while (s.acked < s.running)
			sim_commit(&s);
		snprintf(what, sizeof(what), "random order, seed %llu, depth %u",
			 (unsigned long long)seed, depth);
		sim_finish(&s, what);
	}
}

/* Events out of the epoch contract's order are refused, the state kept. */
static void test_out_of_order_refused(void **state)
{
	struct netbuf_plug_epochs s = {0}, next;
	enum netbuf_plug_cmd cmd;

	assert_int_equal(netbuf_plug_decide(&s, NETBUF_PLUG_COMMIT, 0, &next, &cmd), -EINVAL);
	assert_int_equal(netbuf_plug_decide(&s, NETBUF_PLUG_POSTSUSPEND, 4, &next, &cmd), 0);
	assert_int_equal(cmd, NETBUF_PLUG_BUFFER);
	s = next;
	assert_int_equal(netbuf_plug_decide(&s, NETBUF_PLUG_POSTSUSPEND, 4, &next, &cmd), -EINVAL);
	assert_int_equal(netbuf_plug_decide(&s, NETBUF_PLUG_POSTSUSPEND, 3, &next, &cmd), -EINVAL);
	assert_int_equal(netbuf_plug_decide(&s, NETBUF_PLUG_COMMIT, 5, &next, &cmd), -EINVAL);
	assert_int_equal(netbuf_plug_decide(&s, NETBUF_PLUG_COMMIT, 4, &next, &cmd), 0);
	assert_int_equal(cmd, NETBUF_PLUG_RELEASE_ONE);
	s = next;
	/* A repeated commit has nothing left to release. */
	assert_int_equal(netbuf_plug_decide(&s, NETBUF_PLUG_COMMIT, 4, &next, &cmd), 0);
	assert_int_equal(cmd, NETBUF_PLUG_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_overwrites_last_epoch),
		cmocka_unit_test(test_pipeline_depth1),
		cmocka_unit_test(test_pipeline_depth2),
		cmocka_unit_test(test_pipeline_depth3),
		cmocka_unit_test(test_observed_order),
		cmocka_unit_test(test_random_orders),
		cmocka_unit_test(test_out_of_order_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
