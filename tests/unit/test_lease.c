/* Unit tests for primary/lease.c, the witness lease as the primary keeps
 * it, against the real lease table (failover/witness.c) served over TCP on
 * the loopback by a thread of this test, with the real client. The domain
 * is a pair of counters (pause, resume): what the lease does to it is what
 * is checked.
 *   - alone: a lost secondary; the claim "alone" is taken, the domain runs
 *     on; the witness goes silent: paused at the end of the lease; back:
 *     resumed under the same generation.
 *   - blind: the secondary is lost before any lease was held; a later
 *     grant does not resume the domain (superseded).
 *   - taken: the secondary held the lease meanwhile: superseded, never
 *     resumed.
 *   - resume_waits_for_teardown: secondary and witness lost, then the
 *     witness back first: resumed only after the held devices are torn
 *     down, and no session begins before (a device holds the teardown).
 * The lease asks for 2 s (renewed every 333 ms, counted valid 1 s): room
 * for a loaded host. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/io.h"
#include "common/log.h"
#include "common/sock.h"
#include "failover/witness.h"
#include "primary/devset.h"
#include "primary/lease.h"

#define TTL 2000
#define PAIR "dom"

/* ---- the witness: the real table behind a loopback listener ---- */

static struct {
	int lfd;
	char addr[32];
	pthread_t th;
	_Atomic bool up, stop;
	pthread_mutex_t mu;
	struct fo_lease_table *t;
} w;

static uint64_t now_ms(void)
{
	return clk_now_ns() / NSEC_PER_MSEC;
}

/* One request per connection, as ha-witness; while down, a connection is
 * closed unanswered (the client sees the witness unreachable). */
static void *witness_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&w.stop)) {
		struct pollfd p = {.fd = w.lfd, .events = POLLIN};
		char line[256], reply[256];
		size_t n = 0;
		int fd;

		if (poll(&p, 1, 20) <= 0)
			continue;
		fd = accept(w.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		if (atomic_load(&w.up)) {
			while (n < sizeof(line) - 1 && io_read_full(fd, line + n, 1) == 1 &&
			       line[n] != '\n')
				n++;
			line[n] = '\0';
			pthread_mutex_lock(&w.mu);
			fo_lease_handle(w.t, line, now_ms(), reply, sizeof(reply));
			pthread_mutex_unlock(&w.mu);
			io_write_full(fd, reply, strlen(reply));
		}
		close(fd);
	}
	return NULL;
}

/* What the secondary would get asking for the lease now. */
static bool secondary_granted(void)
{
	char line[64], reply[256];
	int what;

	snprintf(line, sizeof(line), "LEASE %s secondary %d", PAIR, TTL);
	pthread_mutex_lock(&w.mu);
	what = fo_lease_handle(w.t, line, now_ms(), reply, sizeof(reply));
	pthread_mutex_unlock(&w.mu);
	return what == FO_LEASE_NEW_HOLDER || what == FO_LEASE_RENEWED;
}

/* ---- the domain ---- */

static _Atomic int pauses, resumes;

static int d_pause(struct hv_dom *d)
{
	(void)d;
	atomic_fetch_add(&pauses, 1);
	return 0;
}

static int d_resume(struct hv_dom *d)
{
	(void)d;
	atomic_fetch_add(&resumes, 1);
	return 0;
}

static const struct hv_save_ops dom_ops = {.pause = d_pause, .resume = d_resume};

static struct devset *devs;

static int setup(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);

	(void)state;
	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&w.mu, NULL);
	/* Started long enough ago that its quiet time is over. */
	if (fo_lease_table_new(now_ms() > 2 * TTL ? now_ms() - 2 * TTL : 0, TTL, 1000, &w.t) < 0)
		return -1;
	w.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (w.lfd < 0 || bind(w.lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(w.lfd, 16) < 0 || getsockname(w.lfd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	snprintf(w.addr, sizeof(w.addr), "127.0.0.1:%u", ntohs(a.sin_port));
	atomic_store(&w.up, true);
	if (pthread_create(&w.th, NULL, witness_main, NULL))
		return -1;
	atomic_store(&pauses, 0);
	atomic_store(&resumes, 0);
	return devset_new(NULL, 0, NULL, NULL, &devs);
}

static int teardown(void **state)
{
	(void)state;
	atomic_store(&w.stop, true);
	pthread_join(w.th, NULL);
	close(w.lfd);
	fo_lease_table_free(w.t);
	pthread_mutex_destroy(&w.mu);
	devset_free(devs);
	return 0;
}

static struct lease *start(void)
{
	struct lease_config c = {
		.witness = w.addr,
		.pair = PAIR,
		.domain = "test:" PAIR,
		.ttl_ms = TTL,
		.ops = &dom_ops,
		.devs = devs,
	};
	struct lease *l = NULL;

	assert_int_equal(lease_start(&c, &l), 0);
	return l;
}

/* Waits up to 10 s for the lease's status line to start with PREFIX. */
static void wait_status(struct lease *l, const char *prefix)
{
	char line[400] = "";

	for (int i = 0; i < 1000; i++) {
		lease_status(l, line, sizeof(line));
		if (!strncmp(line, prefix, strlen(prefix)))
			return;
		clk_sleep_until_ns(clk_now_ns() + 10 * NSEC_PER_MSEC);
	}
	fail_msg("status '%s', not '%s...'", line, prefix);
}

static void wait_count(_Atomic int *c, int want)
{
	for (int i = 0; i < 1000 && atomic_load(c) < want; i++)
		clk_sleep_until_ns(clk_now_ns() + 10 * NSEC_PER_MSEC);
	assert_int_equal(atomic_load(c), want);
}

static void test_alone(void **state)
{
	struct lease *l = start();

	(void)state;
	wait_status(l, "lease held");
	assert_int_equal(lease_session_begins(l), 0);
	lease_secondary_lost(l);
	assert_true(lease_may_release(l)); /* the claim "alone" is the witness's */
	assert_false(lease_blocks(l));
	assert_false(secondary_granted()); /* the copy is stale now */

	atomic_store(&w.up, false);
	wait_count(&pauses, 1); /* at the end of our view of the lease */
	assert_true(lease_blocks(l));
	assert_int_equal(lease_session_begins(l), -EAGAIN);
	assert_int_equal(atomic_load(&resumes), 0);

	atomic_store(&w.up, true);
	wait_count(&resumes, 1); /* the same generation came back */
	assert_false(lease_blocks(l));
	assert_int_equal(atomic_load(&pauses), 1);
	lease_free(l);
}

static void test_blind(void **state)
{
	struct lease *l;

	(void)state;
	atomic_store(&w.up, false);
	l = start();
	assert_int_equal(lease_session_begins(l), 0);
	lease_secondary_lost(l);
	assert_false(lease_may_release(l)); /* no lease, no claim: paused, held */
	assert_int_equal(atomic_load(&pauses), 1);
	assert_true(lease_output_held(l));
	assert_true(lease_blocks(l));

	atomic_store(&w.up, true);
	wait_status(l, "SUPERSEDED: the secondary was lost while no lease was held");
	clk_sleep_until_ns(clk_now_ns() + (TTL / 2) * NSEC_PER_MSEC);
	assert_int_equal(atomic_load(&resumes), 0);
	assert_true(lease_blocks(l));
	lease_free(l);
}

static void test_taken(void **state)
{
	struct lease *l = start();

	(void)state;
	wait_status(l, "lease held");
	assert_int_equal(lease_session_begins(l), 0);
	/* Protected, the witness goes silent: nothing pauses (output is held
	 * until ACKs anyway); the secondary gets the lease once it expired. */
	atomic_store(&w.up, false);
	clk_sleep_until_ns(clk_now_ns() + (TTL + 100) * NSEC_PER_MSEC);
	assert_int_equal(atomic_load(&pauses), 0);
	assert_true(secondary_granted());
	lease_secondary_lost(l);
	assert_false(lease_may_release(l));
	assert_int_equal(atomic_load(&pauses), 1);

	atomic_store(&w.up, true);
	wait_status(l, "SUPERSEDED: the secondary took the lease");
	clk_sleep_until_ns(clk_now_ns() + (TTL + 100) * NSEC_PER_MSEC);
	assert_int_equal(atomic_load(&resumes), 0);
	assert_true(lease_blocks(l));
	lease_free(l);
}

/* ---- a device whose teardown the test holds ---- */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool in_teardown, release;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};

static int g_setup(struct ckpt_dev *d)
{
	(void)d;
	return 0;
}

static void g_teardown(struct ckpt_dev *d)
{
	(void)d;
	pthread_mutex_lock(&gate.mu);
	gate.in_teardown = true;
	pthread_cond_broadcast(&gate.cv);
	while (!gate.release)
		pthread_cond_wait(&gate.cv, &gate.mu);
	pthread_mutex_unlock(&gate.mu);
}

static const struct ckpt_dev_ops gate_ops = {
	.kind = "gate", .setup = g_setup, .teardown = g_teardown};

/* The secondary and the witness are lost (output held, the domain paused),
 * then the witness comes back before the secondary took the lease: the
 * domain resumes, but only after the held devices are torn down. Until
 * then no new session may begin (it would connect devices the teardown is
 * still releasing: the wedge of a paused domain for good). Deterministic:
 * the teardown waits for the test. */
static void test_resume_waits_for_teardown(void **state)
{
	struct ckpt_dev dev = {.ops = &gate_ops, .name = "held"};
	struct ckpt_dev *list[] = {&dev};
	struct lease *l;

	(void)state;
	devset_free(devs);
	assert_int_equal(devset_new(list, 1, NULL, NULL, &devs), 0);
	assert_int_equal(devset_setup(devs), 0);
	l = start();
	wait_status(l, "lease held");
	assert_int_equal(lease_session_begins(l), 0);

	atomic_store(&w.up, false);
	lease_secondary_lost(l);
	assert_false(lease_may_release(l)); /* the lease ran out: held, paused */
	assert_int_equal(atomic_load(&pauses), 1);
	assert_true(lease_blocks(l));

	atomic_store(&w.up, true);
	pthread_mutex_lock(&gate.mu);
	while (!gate.in_teardown)
		pthread_cond_wait(&gate.cv, &gate.mu);
	pthread_mutex_unlock(&gate.mu);
	/* The lease is back and the teardown runs: still no new session. */
	assert_int_equal(lease_session_begins(l), -EAGAIN);
	assert_true(lease_blocks(l));
	assert_int_equal(atomic_load(&resumes), 0);

	pthread_mutex_lock(&gate.mu);
	gate.release = true;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
	wait_count(&resumes, 1);
	for (int i = 0; i < 1000 && lease_blocks(l); i++)
		clk_sleep_until_ns(clk_now_ns() + 10 * NSEC_PER_MSEC);
	assert_int_equal(lease_session_begins(l), 0);
	lease_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_taken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume_waits_for_teardown, setup, teardown),
	};

	log_set_level(LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
