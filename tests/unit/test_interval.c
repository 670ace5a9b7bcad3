/* Unit tests for primary/interval.c, the adaptive epoch interval, on traces
 * recorded from a simulated checkpoint path: a guest dirtying pages of a
 * working set at a rate that follows a step, a ramp or noise, and a
 * checkpoint whose pause, send and ACK costs grow with the pages. Checked:
 * the bounds, convergence to an interval that meets the target, the
 * absence of oscillation, and what happens when the target is out of reach. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "primary/interval.h"

struct trace_row {
	struct ival_obs obs;
	unsigned live_ms; /* the live controller's interval when it arrived */
};

#include "tests/unit/data/interval_step_trace.h"

/* The simulated plant. */
struct plant {
	double rate;     /* pages dirtied per ms (first writes, before overlap) */
	double ws;       /* working set, pages */
	double rtt_us;   /* fixed part of the ACK latency */
	double noise;    /* relative, uniform +- on pages and the fixed part */
	uint64_t rng;
};

static double urand(struct plant *p) /* [0, 1) */
{
	p->rng ^= p->rng << 13;
	p->rng ^= p->rng >> 7;
	p->rng ^= p->rng << 17;
	return (double)(p->rng >> 11) / 9007199254740992.0;
}

static double jitter(struct plant *p)
{
	return 1.0 + p->noise * (2.0 * urand(p) - 1.0);
}

/* One epoch of interval_ms: what the primary would observe. Costs: pause
 * 50 us + 1 us/page, send 100 us + 3 us/page, secondary 4 us/page. Returns
 * the added p99 latency this epoch really gives its replies. */
static double epoch(struct plant *p, unsigned interval_ms, struct ival_obs *o)
{
	double pages = p->ws * (1.0 - exp(-p->rate * interval_ms / p->ws)) * jitter(p);
	double pause = 50 + 1 * pages, send = 100 + 3 * pages;
	double ack = pause + send + 4 * pages + p->rtt_us * jitter(p);

	*o = (struct ival_obs){
		.period_ns = (uint64_t)interval_ms * 1000000u,
		.pause_ns = (uint64_t)(pause * 1e3),
		.pages = (uint64_t)pages,
		.send_ns = (uint64_t)(send * 1e3),
		.ack_ns = (uint64_t)(ack * 1e3),
	};
	return 0.99 * interval_ms * 1000.0 + ack;
}

/* After its first decision the controller never keeps or picks an interval
 * it predicts to miss the target, unless even the minimum would. */
static void assert_keeps_target(const struct ival *c, unsigned next)
{
	struct ival_est e;

	ival_estimate(c, &e);
	if (e.observations >= 8 && !e.unreachable)
		assert_true(ival_predict_us(c, next) <= 0.95 * c->cfg.target_us + 1e-6);
}

static const struct ival_config cfg50 = {
	.target_us = 50000, .min_ms = 2, .max_ms = 500, .start_ms = 2};

/* Runs n epochs; counts direction reversals and epochs over the target. */
struct run {
	unsigned last, min_seen, max_seen;
	int dir;
	unsigned reversals, changes, over;
};

static void run(struct ival *c, struct plant *p, unsigned n, struct run *r)
{
	for (unsigned i = 0; i < n; i++) {
		struct ival_obs o;
		unsigned cur = c->cur_ms;
		double added = epoch(p, cur, &o);
		unsigned next = ival_update(c, &o);

		assert_in_range(next, c->cfg.min_ms, c->cfg.max_ms);
		assert_keeps_target(c, next);
		if (added > c->cfg.target_us)
			r->over++;
		if (next != cur) {
			int d = next > cur ? 1 : -1;

			if (r->dir && d != r->dir)
				r->reversals++;
			r->dir = d;
			r->changes++;
		}
		if (!r->min_seen || next < r->min_seen)
			r->min_seen = next;
		if (next > r->max_seen)
			r->max_seen = next;
		r->last = next;
		if (getenv("IVAL_TRACE"))
			printf("%u %.0f %u base %.0f dev %.0f pred %.0f\n", cur, added, next, c->base,
			       c->dev, ival_predict_us(c, next));
	}
}

static void test_config(void **state)
{
	struct ival c;
	struct ival_config bad = cfg50;

	bad.min_ms = 0;
	assert_int_equal(ival_init(&c, &bad), -EINVAL);
	bad = cfg50;
	bad.min_ms = 600;
	assert_int_equal(ival_init(&c, &bad), -EINVAL);
	bad = cfg50;
	bad.target_us = 0;
	assert_int_equal(ival_init(&c, &bad), -EINVAL);
	bad = cfg50;
	bad.start_ms = 100000;
	assert_int_equal(ival_init(&c, &bad), 0);
	assert_int_equal(c.cur_ms, 500);
}

/* Nonsense observations never push the interval out of its bounds. */
static void test_bounds(void **state)
{
	struct ival c;
	struct plant p = {.rng = 42};

	assert_int_equal(ival_init(&c, &cfg50), 0);
	for (unsigned i = 0; i < 5000; i++) {
		struct ival_obs o = {
			.period_ns = (uint64_t)(urand(&p) * 1e10),
			.pause_ns = (uint64_t)(urand(&p) * 1e9),
			.pages = i % 7 ? (uint64_t)(urand(&p) * 1e6) : 0,
			.send_ns = (uint64_t)(urand(&p) * 1e9),
			.ack_ns = i % 11 ? (uint64_t)(urand(&p) * 2e8) : 0,
		};
		unsigned v = ival_update(&c, &o);

		assert_in_range(v, 2, 500);
	}
}

/* Idle, then heavy writes, then idle again. */
static void test_step(void **state)
{
	struct ival c;
	struct plant p = {.rate = 0.05, .ws = 20000, .rtt_us = 2000, .noise = 0.1, .rng = 7};
	struct run r = {0};
	unsigned idle_ms, heavy_ms;

	assert_int_equal(ival_init(&c, &cfg50), 0);
	run(&c, &p, 400, &r);
	idle_ms = r.last;
	/* Idle: the target, less headroom and the fixed part, is all interval. */
	assert_in_range(idle_ms, 35, 45);
	assert_int_equal(r.reversals, 0);

	/* Heavy writes: must come down within a few epochs. */
	p.rate = 150;
	memset(&r, 0, sizeof(r));
	run(&c, &p, 4, &r);
	assert_true(r.last < idle_ms);
	run(&c, &p, 400, &r);
	heavy_ms = r.last;
	assert_true(heavy_ms < idle_ms * 0.8);
	assert_true(heavy_ms >= 10);
	/* Beyond the first epochs of the step, the target holds. */
	assert_true(r.over <= 4);
	assert_true(r.reversals <= 1);

	/* Idle again: lengthens back, step by step, without overshooting. */
	p.rate = 0.05;
	memset(&r, 0, sizeof(r));
	run(&c, &p, 600, &r);
	assert_in_range(r.last, idle_ms * 9 / 10, idle_ms * 11 / 10);
	assert_int_equal(r.over, 0);
	assert_int_equal(r.reversals, 0);
	assert_true(r.max_seen <= idle_ms * 11 / 10);
}

/* A load that grows steadily: the interval only ever shortens. */
static void test_ramp(void **state)
{
	struct ival c;
	struct plant p = {.rate = 0.1, .ws = 50000, .rtt_us = 1000, .noise = 0, .rng = 3};
	struct run r = {0};
	struct ival_obs o;

	assert_int_equal(ival_init(&c, &cfg50), 0);
	for (unsigned i = 0; i < 200; i++)
		ival_update(&c, (epoch(&p, c.cur_ms, &o), &o));
	unsigned before = c.cur_ms;

	for (unsigned i = 0; i < 100; i++) {
		p.rate = 0.1 + i * 3.0; /* to 300 pages/ms */
		run(&c, &p, 10, &r);
	}
	assert_true(r.last < before);
	assert_true(r.changes >= 2);
	assert_true(r.dir <= 0);
	assert_int_equal(r.reversals, 0);
	assert_true(r.over <= 2);
	/* At 300 pages/ms the model's aim: (45000 - base_hi) / (990 + ~8 * 300). */
	assert_in_range(r.last, 8, 16);
}

/* A steady load with +-40% noise on pages and round trip: few changes,
 * no back-and-forth, the target held. */
static void test_noise(void **state)
{
	struct ival c;
	struct plant p = {.rate = 60, .ws = 30000, .rtt_us = 3000, .noise = 0.4, .rng = 11};
	struct run r = {0};

	assert_int_equal(ival_init(&c, &cfg50), 0);
	run(&c, &p, 300, &r);
	memset(&r, 0, sizeof(r));
	run(&c, &p, 3000, &r);
	assert_true(r.changes <= 3);
	assert_true(r.reversals <= 1);
	assert_true(r.over <= 30); /* 1% of epochs */
	assert_true(r.max_seen - r.min_seen <= r.max_seen / 4);
}

/* A lone stalled ACK (10x the usual round trip) now and then neither
 * throws the interval to its minimum nor makes it hunt; a lasting rise of
 * the round trip is followed within a few epochs. */
static void test_spikes(void **state)
{
	struct ival c;
	struct plant p = {.rate = 20, .ws = 30000, .rtt_us = 2000, .noise = 0.1, .rng = 13};
	struct run r = {0};
	unsigned steady;

	assert_int_equal(ival_init(&c, &cfg50), 0);
	run(&c, &p, 300, &r);
	steady = r.last;
	memset(&r, 0, sizeof(r));
	for (unsigned i = 0; i < 20; i++) {
		p.rtt_us = 20000;
		run(&c, &p, 1, &r);
		p.rtt_us = 2000;
		run(&c, &p, 199, &r);
	}
	assert_true(r.min_seen >= steady * 7 / 10);
	assert_true(r.changes <= 4);
	assert_true(r.reversals <= 3);

	/* The link really slows down: 2 ms -> 15 ms of round trip. */
	p.rtt_us = 15000;
	memset(&r, 0, sizeof(r));
	run(&c, &p, 10, &r);
	assert_true(r.last <= steady - 10);
	run(&c, &p, 200, &r);
	assert_true(r.over <= 10);
}

/* A trace recorded from a real run (ha-sla --step: idle, heavy writes,
 * idle, target 50 ms, on a machine shared with other builds), replayed open
 * loop (the observations were made at the intervals the live controller
 * chose then): the decisions stay in bounds, never knowingly miss the
 * target, and do not hunt: few changes, and a reversal at most every other
 * change. The ACK stalls of the busy machine pull the interval down in the
 * heavy phase (the fixed part's tail rises); it comes back once they stop. */
static void test_recorded_step(void **state)
{
	const size_t n = sizeof(step_trace) / sizeof(step_trace[0]);
	const struct ival_config cf = {.target_us = 50000, .min_ms = 2, .max_ms = 1000, .start_ms = 2};
	struct ival c;
	double heavy_min = 1e9, end_ms = 0;
	unsigned reversals = 0, changes = 0;
	int dir = 0;
	double t = 0; /* s since protection began; the light client starts ~1 s later */

	assert_true(n > 100);
	assert_int_equal(ival_init(&c, &cf), 0);
	for (size_t i = 0; i < n; i++) {
		const struct ival_obs *o = &step_trace[i].obs;
		unsigned cur = c.cur_ms, next;

		t += (double)o->period_ns / 1e9;

		assert_in_range(step_trace[i].live_ms, cf.min_ms, cf.max_ms);
		next = ival_update(&c, o);
		assert_in_range(next, cf.min_ms, cf.max_ms);
		assert_keeps_target(&c, next);
		if (next != cur) {
			int d = next > cur ? 1 : -1;

			reversals += dir && d != dir;
			dir = d;
			changes++;
		}
		/* Phases: idle 15 s, heavy writes 20 s, idle 15 s. */
		if (t > 16 && t < 36 && next < heavy_min)
			heavy_min = next;
		end_ms = next;
	}
	assert_true(t > 40);
	assert_true(heavy_min < 20);
	assert_true(end_ms > 30);
	assert_true(changes <= t / 2);
	assert_true(reversals <= changes / 2 + 1);
}

/* The fixed part alone exceeds the target: the minimum, flagged. */
static void test_unreachable(void **state)
{
	struct ival c;
	struct plant p = {.rate = 10, .ws = 30000, .rtt_us = 60000, .noise = 0.05, .rng = 5};
	struct run r = {0};
	struct ival_est e;
	struct ival_config cf = cfg50;

	cf.start_ms = 100;
	assert_int_equal(ival_init(&c, &cf), 0);
	run(&c, &p, 50, &r);
	ival_estimate(&c, &e);
	assert_int_equal(r.last, 2);
	assert_true(e.unreachable);
	assert_true(e.predicted_us > 50000);
	assert_int_equal(e.interval_ms, 2);
	assert_int_equal(e.observations, 50);
}

/* The estimates track what the plant does. */
static void test_estimates(void **state)
{
	struct ival c;
	struct plant p = {.rate = 100, .ws = 1e9, .rtt_us = 1500, .noise = 0, .rng = 9};
	struct run r = {0};
	struct ival_est e;

	assert_int_equal(ival_init(&c, &cfg50), 0);
	run(&c, &p, 500, &r);
	ival_estimate(&c, &e);
	assert_true(fabs(e.rate_ppms - 100) < 2);
	/* 2 x (1 + 3) us/page, plus the fixed 150 us spread over the pages. */
	assert_true(e.cost_us > 8.0 && e.cost_us < 10.0);
	assert_true(e.predicted_us <= 0.9 * 50000 + 1);
	assert_false(e.unreachable);
	assert_int_equal(e.interval_ms, c.cur_ms);
}

/* The pause schedule: with the suspend times measured under emulation in
 * the lab (0.1 s to 3.6 s at a 100 ms interval), the guest still runs at
 * least as long as each pause and at least half of each interval; short
 * pauses keep the period at the interval exactly. */
static void test_next_pause(void **state)
{
	const uint64_t ms = 1000000;
	static const uint64_t pauses_ms[] = {1, 2, 49, 50, 51, 100, 150, 3600, 700, 0, 3};
	uint64_t t = 5 * ms; /* where the first pause starts */

	(void)state;
	/* Short pause: the period is the interval. */
	assert_int_equal(ival_next_pause_ns(0, 2 * ms, 100), 100 * ms);
	/* Exactly half: both rules agree. */
	assert_int_equal(ival_next_pause_ns(0, 50 * ms, 100), 100 * ms);
	/* A 3.6 s suspend at 100 ms: the guest runs 3.6 s before the next. */
	assert_int_equal(ival_next_pause_ns(10 * ms, 3610 * ms, 100), 7210 * ms);
	/* A clock that went nowhere (resumed_at == paused_at). */
	assert_int_equal(ival_next_pause_ns(7, 7, 1), 7 + ms);

	for (unsigned interval = 1; interval <= 1000; interval = interval * 3 + 1) {
		t = 5 * ms;
		for (size_t i = 0; i < sizeof(pauses_ms) / sizeof(pauses_ms[0]); i++) {
			uint64_t p = pauses_ms[i] * ms, resumed = t + p;
			uint64_t next = ival_next_pause_ns(t, resumed, interval);
			uint64_t run = next - resumed, iv = (uint64_t)interval * ms;

			assert_true(run >= p);               /* at least as long as paused */
			assert_true(2 * run >= iv);          /* at least half the interval */
			assert_true(next - t >= iv);         /* never sooner than the period */
			if (2 * p <= iv)
				assert_int_equal(next - t, iv); /* short pause: period kept */
			else
				assert_int_equal(next - t, 2 * p); /* long: twice the pause */
			t = next;
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config),     cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_step),       cmocka_unit_test(test_ramp),
		cmocka_unit_test(test_noise),      cmocka_unit_test(test_spikes),
		cmocka_unit_test(test_unreachable), cmocka_unit_test(test_recorded_step),
		cmocka_unit_test(test_estimates),  cmocka_unit_test(test_next_pause),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
