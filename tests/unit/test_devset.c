/* Unit tests for primary/devset.c: each phase reaches the matching
 * callback of every device, in order, and only while the devices are up;
 * a failed setup undoes what was set up or connected; teardown and discard
 * run in reverse order and say so on the event hook. The devices are
 * recorders: each call appends "NAME:PHASE[:EPOCH]" to a log. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "primary/devset.h"

static char calls[1024];
static char events[256];

struct rec {
	int fail_setup, fail_commit; /* returned by those calls (0: success) */
};

static void note(struct ckpt_dev *d, const char *what, long long epoch)
{
	size_t n = strlen(calls);

	if (epoch < 0)
		snprintf(calls + n, sizeof(calls) - n, "%s:%s ", d->name, what);
	else
		snprintf(calls + n, sizeof(calls) - n, "%s:%s:%lld ", d->name, what, epoch);
}

static int r_connect(struct ckpt_dev *d, const struct ckpt_sink *sink)
{
	(void)sink;
	note(d, "connect", -1);
	return 0;
}

static int r_setup(struct ckpt_dev *d)
{
	struct rec *r = d->priv;

	note(d, "setup", -1);
	return r->fail_setup;
}

static int r_postsuspend(struct ckpt_dev *d, uint64_t e)
{
	note(d, "postsuspend", (long long)e);
	return 0;
}

static int r_preresume(struct ckpt_dev *d, uint64_t e)
{
	note(d, "preresume", (long long)e);
	return 0;
}

static int r_flush(struct ckpt_dev *d, uint64_t e)
{
	note(d, "flush", (long long)e);
	return 0;
}

static int r_commit(struct ckpt_dev *d, uint64_t e)
{
	struct rec *r = d->priv;

	note(d, "commit", (long long)e);
	return r->fail_commit;
}

static void r_teardown(struct ckpt_dev *d)
{
	note(d, "teardown", -1);
}

static void r_discard(struct ckpt_dev *d)
{
	note(d, "discard", -1);
}

static int r_status(struct ckpt_dev *d, char *buf, size_t len)
{
	snprintf(buf, len, "%s ok", d->name);
	return 0;
}

/* Every callback. */
static const struct ckpt_dev_ops full = {
	.kind = "full",
	.connect = r_connect,
	.setup = r_setup,
	.postsuspend = r_postsuspend,
	.preresume = r_preresume,
	.flush = r_flush,
	.commit = r_commit,
	.teardown = r_teardown,
	.discard = r_discard,
	.status = r_status,
};

/* Only what is required: the rest is skipped (discard: teardown). */
static const struct ckpt_dev_ops bare = {
	.kind = "bare",
	.setup = r_setup,
	.teardown = r_teardown,
};

static void on_event(void *ctx, const char *what)
{
	size_t n = strlen(events);

	assert_ptr_equal(ctx, events);
	snprintf(events + n, sizeof(events) - n, "%s ", what);
}

struct fixture {
	struct rec ra, rb;
	struct ckpt_dev a, b;
	struct devset *ds;
};

static int setup_fx(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct ckpt_dev *devs[2];

	if (!f)
		return -1;
	f->a = (struct ckpt_dev){.ops = &full, .name = "a", .priv = &f->ra};
	f->b = (struct ckpt_dev){.ops = &bare, .name = "b", .priv = &f->rb};
	devs[0] = &f->a;
	devs[1] = &f->b;
	if (devset_new(devs, 2, on_event, events, &f->ds) < 0)
		return -1;
	calls[0] = events[0] = '\0';
	*state = f;
	return 0;
}

static int teardown_fx(void **state)
{
	struct fixture *f = *state;

	devset_free(f->ds);
	free(f);
	return 0;
}

static void test_phases_reach_their_callbacks(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(devset_setup(f->ds), 0);
	assert_int_equal(devset_call(f->ds, DEVSET_POSTSUSPEND, 7), 0);
	assert_int_equal(devset_call(f->ds, DEVSET_PRERESUME, 7), 0);
	assert_int_equal(devset_call(f->ds, DEVSET_FLUSH, 7), 0);
	assert_int_equal(devset_call(f->ds, DEVSET_COMMIT, 7), 0);
	devset_teardown(f->ds);
	assert_string_equal(calls, "a:setup b:setup a:postsuspend:7 a:preresume:7 a:flush:7 "
				   "a:commit:7 b:teardown a:teardown ");
	assert_string_equal(events, "setup teardown ");
}

static void test_nothing_before_setup_or_after_teardown(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(devset_call(f->ds, DEVSET_COMMIT, 1), 0);
	assert_int_equal(devset_setup(f->ds), 0);
	devset_teardown(f->ds);
	calls[0] = '\0';
	assert_int_equal(devset_call(f->ds, DEVSET_POSTSUSPEND, 2), 0);
	assert_int_equal(devset_call(f->ds, DEVSET_COMMIT, 2), 0);
	devset_teardown(f->ds); /* twice: nothing more */
	assert_string_equal(calls, "");
	assert_string_equal(events, "setup teardown ");
}

static void test_first_failure_stops_the_phase(void **state)
{
	struct fixture *f = *state;

	f->ra.fail_commit = -EIO;
	assert_int_equal(devset_setup(f->ds), 0);
	calls[0] = '\0';
	assert_int_equal(devset_call(f->ds, DEVSET_COMMIT, 3), -EIO);
	assert_string_equal(calls, "a:commit:3 ");
}

static void test_failed_setup_undoes_setup_and_connect(void **state)
{
	struct fixture *f = *state;
	struct ckpt_sink sink = {0};

	f->rb.fail_setup = -ENODEV;
	assert_int_equal(devset_connect(f->ds, &sink), 0);
	assert_int_equal(devset_setup(f->ds), -ENODEV);
	/* a was set up (undone) and connected (undone again: teardown may
	 * be called twice); the devices are not up, no event. */
	assert_string_equal(calls, "a:connect a:setup b:setup a:teardown a:teardown ");
	assert_string_equal(events, "");
	calls[0] = '\0';
	assert_int_equal(devset_call(f->ds, DEVSET_COMMIT, 0), 0);
	devset_teardown(f->ds);
	assert_string_equal(calls, "");
}

static void test_connected_but_never_set_up_is_torn_down(void **state)
{
	struct fixture *f = *state;
	struct ckpt_sink sink = {0};

	assert_int_equal(devset_connect(f->ds, &sink), 0);
	devset_discard(f->ds);
	assert_string_equal(calls, "a:connect a:discard ");
	assert_string_equal(events, "");
}

static void test_discard_drops_in_reverse(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(devset_setup(f->ds), 0);
	calls[0] = '\0';
	devset_discard(f->ds);
	/* b has no discard: it is torn down. */
	assert_string_equal(calls, "b:teardown a:discard ");
	assert_string_equal(events, "setup discard ");
}

static void test_status(void **state)
{
	struct fixture *f = *state;
	char buf[256] = "";
	FILE *out = fmemopen(buf, sizeof(buf), "w");

	assert_non_null(out);
	devset_status(f->ds, out);
	assert_int_equal(devset_setup(f->ds), 0);
	devset_status(f->ds, out);
	fclose(out);
	assert_string_equal(buf, "device a (full): not active\ndevice b (bare): not active\n"
				 "device a (full): a ok\ndevice b (bare): not active\n");
}

/* ---- who waits for whom (invariant 4: nothing slow holds a pause) ---- */

#define SLOW_MS 300

static int slow(struct ckpt_dev *d, uint64_t e)
{
	(void)d;
	(void)e;
	clk_sleep_until_ns(clk_now_ns() + SLOW_MS * NSEC_PER_MSEC);
	return 0;
}

static int quick(struct ckpt_dev *d, uint64_t e)
{
	(void)d;
	(void)e;
	return 0;
}

static void nothing(struct ckpt_dev *d)
{
	(void)d;
}

static int ok_setup(struct ckpt_dev *d)
{
	(void)d;
	return 0;
}

/* DRBD-like: a slow flush only. */
static const struct ckpt_dev_ops slow_flush = {
	.kind = "slow-flush", .setup = ok_setup, .flush = slow, .teardown = nothing};
/* diskrepl-like: a slow flush and a quick barrier, locking for itself. */
static const struct ckpt_dev_ops slow_flush_concurrent = {
	.kind = "slow-flush-concurrent", .concurrent = true, .setup = ok_setup,
	.postsuspend = quick, .flush = slow, .teardown = nothing};
/* A device that does not lock for itself: its calls wait for each other. */
static const struct ckpt_dev_ops slow_commit = {
	.kind = "slow-commit", .setup = ok_setup, .postsuspend = quick, .commit = slow,
	.teardown = nothing};
/* netbuf-like: a quick barrier and release. */
static const struct ckpt_dev_ops barrier = {
	.kind = "barrier", .setup = ok_setup, .postsuspend = quick, .commit = quick,
	.teardown = nothing};

struct slow_call {
	struct devset *ds;
	enum devset_phase phase;
};

static void *call_main(void *arg)
{
	struct slow_call *c = arg;

	devset_call(c->ds, c->phase, 1);
	return NULL;
}

/* How long POSTSUSPEND takes on a set of A then B while PHASE (slow on
 * A) runs on another thread, in ms. */
static uint64_t postsuspend_ms_during(const struct ckpt_dev_ops *a, const struct ckpt_dev_ops *b,
				      enum devset_phase phase)
{
	struct ckpt_dev da = {.ops = a, .name = "a"}, db = {.ops = b, .name = "b"};
	struct ckpt_dev *devs[2] = {&da, &db};
	struct slow_call c = {.phase = phase};
	pthread_t th;
	uint64_t t0;

	assert_int_equal(devset_new(devs, 2, NULL, NULL, &c.ds), 0);
	assert_int_equal(devset_setup(c.ds), 0);
	assert_int_equal(pthread_create(&th, NULL, call_main, &c), 0);
	clk_sleep_until_ns(clk_now_ns() + 50 * NSEC_PER_MSEC); /* inside the slow call */
	t0 = clk_now_ns();
	assert_int_equal(devset_call(c.ds, DEVSET_POSTSUSPEND, 2), 0);
	t0 = (clk_now_ns() - t0) / NSEC_PER_MSEC;
	pthread_join(th, NULL);
	devset_teardown(c.ds);
	devset_free(c.ds);
	return t0;
}

static void test_slow_flush_holds_no_pause(void **state)
{
	(void)state;
	/* Another device's flush: not waited for. */
	assert_true(postsuspend_ms_during(&slow_flush, &barrier, DEVSET_FLUSH) < SLOW_MS / 3);
	/* The same device's, when it locks for itself: not waited for. */
	assert_true(postsuspend_ms_during(&slow_flush_concurrent, &barrier, DEVSET_FLUSH) <
		    SLOW_MS / 3);
}

static void test_device_calls_serialized(void **state)
{
	(void)state;
	/* A device that does not lock for itself gets one call at a time. */
	assert_true(postsuspend_ms_during(&slow_commit, &barrier, DEVSET_COMMIT) >= SLOW_MS / 2);
}

static void test_too_many(void **state)
{
	struct ckpt_dev *devs[DEVSET_MAX + 1] = {0};
	struct devset *ds = NULL;

	(void)state;
	assert_int_equal(devset_new(devs, DEVSET_MAX + 1, NULL, NULL, &ds), -E2BIG);
	assert_null(ds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_phases_reach_their_callbacks, setup_fx,
						teardown_fx),
		cmocka_unit_test_setup_teardown(test_nothing_before_setup_or_after_teardown,
						setup_fx, teardown_fx),
		cmocka_unit_test_setup_teardown(test_first_failure_stops_the_phase, setup_fx,
						teardown_fx),
		cmocka_unit_test_setup_teardown(test_failed_setup_undoes_setup_and_connect,
						setup_fx, teardown_fx),
		cmocka_unit_test_setup_teardown(test_connected_but_never_set_up_is_torn_down,
						setup_fx, teardown_fx),
		cmocka_unit_test_setup_teardown(test_discard_drops_in_reverse, setup_fx,
						teardown_fx),
		cmocka_unit_test_setup_teardown(test_status, setup_fx, teardown_fx),
		cmocka_unit_test(test_slow_flush_holds_no_pause),
		cmocka_unit_test(test_device_calls_serialized),
		cmocka_unit_test(test_too_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
