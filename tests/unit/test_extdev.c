/* External devices (checkpoint/extdev.h) with real scripts: three devices,
 * each failing in turn at each phase, rollback order read back from the
 * log the scripts append to; a hanging device killed at its timeout;
 * protection's per-epoch opt-in; bad paths. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "checkpoint/extdev.h"
#include "common/clock.h"

static const char *const names[3] = {"a", "b", "c"};

struct fix {
	char dir[64], log[96], fail[96];
	char paths[3][96];
	const char *argv[3];
};

/* Device NAME appends "NAME PHASE OP DOMAIN PEER EPOCH $HA_DEVICE_PHASE
 * $HA_DEVICE_PASSED" to the log, then fails (exit 1) or hangs when the
 * file `fail` says "NAME PHASE" or "NAME PHASE hang". Device a asks for
 * per-epoch calls. */
static void write_script(struct fix *f, unsigned i)
{
	FILE *s;

	snprintf(f->paths[i], sizeof(f->paths[i]), "%s/dev-%s", f->dir, names[i]);
	s = fopen(f->paths[i], "w");
	assert_non_null(s);
	fprintf(s,
		"#!/bin/sh\n"
		"echo \"%s $1 $2 $3 $4 $5 $HA_DEVICE_PHASE $HA_DEVICE_PASSED\" >> %s\n"
		"echo \"output of %s $1\"\n"
		"case \"$(cat %s 2>/dev/null)\" in\n"
		"\"%s $1\") echo refusing >&2; exit 1;;\n"
		"\"%s $1 hang\") echo $$ > %s/pids; sleep 1000 & echo $! >> %s/pids; wait;;\n"
		"esac\n"
		"%s"
		"exit 0\n",
		names[i], f->log, names[i], f->fail, names[i], names[i], f->dir, f->dir,
		i == 0 ? "[ \"$1\" = check ] && echo per-epoch\n" : "");
	fclose(s);
	assert_int_equal(chmod(f->paths[i], 0755), 0);
	f->argv[i] = f->paths[i];
}

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_extdev.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->log, sizeof(f->log), "%s/log", f->dir);
	snprintf(f->fail, sizeof(f->fail), "%s/fail", f->dir);
	for (unsigned i = 0; i < 3; i++)
		write_script(f, i);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void set_fail(struct fix *f, const char *what)
{
	FILE *s = fopen(f->fail, "w");

	assert_non_null(s);
	fprintf(s, "%s\n", what);
	fclose(s);
}

/* The log's lines, read and then emptied, as one string. */
static char *take_log(struct fix *f)
{
	static char buf[8192];
	FILE *s = fopen(f->log, "r");
	size_t n = 0;

	buf[0] = '\0';
	if (s) {
		n = fread(buf, 1, sizeof(buf) - 1, s);
		fclose(s);
	}
	buf[n] = '\0';
	unlink(f->log);
	return buf;
}

__attribute__((format(printf, 3, 4))) static void add(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/* The line device I logs for PHASE of a migration at EPOCH. */
static void line(char *buf, size_t len, unsigned i, const char *phase, const char *epoch,
		 const char *passed)
{
	add(buf, len, "%s %s migrate kvm:web 10.0.0.2:7788 %s %s %s\n", names[i], phase, epoch,
	    phase, passed);
}

static const char *const phases[4] = {"check", "prepare", "transfer", "commit"};
static const char *const epochs[4] = {"-", "-", "7", "7"};

static uint64_t epoch_of(unsigned p)
{
	return p < 2 ? EXTDEV_NO_EPOCH : 7;
}

/* Each device in turn fails at each phase: the others that passed a phase
 * (and the failing one, if it passed an earlier one) are rolled back, last
 * device first; nothing else runs. */
static void test_each_fails_each_phase(void **state)
{
	struct fix *f = *state;
	struct extdev *xd;
	char err[200];

	assert_int_equal(extdev_new(f->argv, 3, 5000, "kvm:web", "10.0.0.2:7788", &xd, err,
				    sizeof(err)),
			 0);
	for (unsigned k = 0; k < 3; k++) {
		for (unsigned fp = 0; fp < 4; fp++) {
			char want[4096] = "", what[64], why[300] = "";
			int rc = 0;

			snprintf(what, sizeof(what), "%s %s", names[k], phases[fp]);
			set_fail(f, what);
			take_log(f);
			extdev_begin(xd, EXTDEV_MIGRATE);
			for (unsigned p = 0; p < 4 && rc == 0; p++)
				rc = extdev_phase(xd, EXTDEV_MIGRATE, p, epoch_of(p), why,
						  sizeof(why));
			assert_int_equal(rc, -EIO);
			assert_non_null(strstr(why, what));
			/* What ran: every phase before fp on all three, fp up to k. */
			for (unsigned p = 0; p < fp; p++)
				for (unsigned i = 0; i < 3; i++)
					line(want, sizeof(want), i, phases[p], epochs[p],
					     p ? phases[p - 1] : "none");
			for (unsigned i = 0; i <= k; i++)
				line(want, sizeof(want), i, phases[fp], epochs[fp],
				     fp ? phases[fp - 1] : "none");
			/* Rollback, last device first, of those that passed a phase. */
			for (unsigned i = 3; i-- > 0;) {
				const char *passed = i < k ? phases[fp]
						     : fp   ? phases[fp - 1]
							    : NULL;

				if (passed)
					line(want, sizeof(want), i, "rollback", epochs[fp], passed);
			}
			assert_string_equal(take_log(f), want);
			assert_false(extdev_active(xd, EXTDEV_MIGRATE));
			/* Nothing left to roll back. */
			extdev_rollback(xd, EXTDEV_MIGRATE, 7);
			assert_string_equal(take_log(f), "");
		}
	}
	extdev_free(xd);
}

/* All pass: every phase on every device, in order; abandoned after that
 * (the secondary refused), all three are rolled back, last first. */
static void test_all_pass_then_abandon(void **state)
{
	struct fix *f = *state;
	struct extdev *xd;
	char err[200], want[2048] = "";

	set_fail(f, "none");
	take_log(f);
	assert_int_equal(extdev_new(f->argv, 3, 5000, "kvm:web", "10.0.0.2:7788", &xd, err,
				    sizeof(err)),
			 0);
	extdev_begin(xd, EXTDEV_MIGRATE);
	for (unsigned p = 0; p < 4; p++) {
		assert_int_equal(extdev_phase(xd, EXTDEV_MIGRATE, p, epoch_of(p), NULL, 0), 0);
		for (unsigned i = 0; i < 3; i++)
			line(want, sizeof(want), i, phases[p], epochs[p], p ? phases[p - 1] : "none");
	}
	assert_string_equal(take_log(f), want);
	assert_true(extdev_active(xd, EXTDEV_MIGRATE));
	extdev_rollback(xd, EXTDEV_MIGRATE, 7);
	want[0] = '\0';
	for (unsigned i = 3; i-- > 0;)
		line(want, sizeof(want), i, "rollback", "7", "commit");
	assert_string_equal(take_log(f), want);
	assert_false(extdev_active(xd, EXTDEV_MIGRATE));
	extdev_free(xd);
}

/* /proc/PID/stat's state: gone (or a zombie not yet reaped) counts as dead. */
static bool dead(pid_t pid)
{
	char path[64], buf[256];
	FILE *s;
	char *rp;
	bool d = true;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	s = fopen(path, "r");
	if (!s)
		return true;
	if (fgets(buf, sizeof(buf), s) && (rp = strrchr(buf, ')')))
		d = rp[2] == 'Z' || rp[2] == 'X';
	fclose(s);
	return d;
}

/* A device that hangs is killed at its timeout, with what it started: a
 * failure, and the devices that passed a phase are rolled back. */
static void test_hang_killed(void **state)
{
	struct fix *f = *state;
	struct extdev *xd;
	char err[200], why[300], want[2048] = "", pidpath[128];
	uint64_t t0;
	int rc = 0, pids[2] = {0, 0};
	FILE *s;

	set_fail(f, "b transfer hang");
	take_log(f);
	assert_int_equal(extdev_new(f->argv, 3, 400, "kvm:web", "10.0.0.2:7788", &xd, err,
				    sizeof(err)),
			 0);
	extdev_begin(xd, EXTDEV_MIGRATE);
	t0 = clk_now_ns();
	for (unsigned p = 0; p < 4 && rc == 0; p++)
		rc = extdev_phase(xd, EXTDEV_MIGRATE, p, epoch_of(p), why, sizeof(why));
	assert_int_equal(rc, -ETIMEDOUT);
	assert_non_null(strstr(why, "b failed at transfer"));
	/* The timeout, not the sleep, ended it. */
	assert_true(clk_now_ns() - t0 < 5 * NSEC_PER_SEC);
	snprintf(pidpath, sizeof(pidpath), "%s/pids", f->dir);
	s = fopen(pidpath, "r");
	assert_non_null(s);
	assert_int_equal(fscanf(s, "%d %d", &pids[0], &pids[1]), 2);
	fclose(s);
	for (int i = 0; i < 2; i++) {
		for (int w = 0; w < 200 && !dead(pids[i]); w++)
			usleep(10000);
		assert_true(dead(pids[i]));
	}
	for (unsigned p = 0; p < 2; p++)
		for (unsigned i = 0; i < 3; i++)
			line(want, sizeof(want), i, phases[p], epochs[p], p ? phases[p - 1] : "none");
	line(want, sizeof(want), 0, "transfer", "7", "prepare");
	line(want, sizeof(want), 1, "transfer", "7", "prepare");
	line(want, sizeof(want), 2, "rollback", "7", "prepare");
	line(want, sizeof(want), 1, "rollback", "7", "prepare");
	line(want, sizeof(want), 0, "rollback", "7", "transfer");
	assert_string_equal(take_log(f), want);
	extdev_free(xd);
}

/* Protection as a checkpoint device: check and prepare at setup, commit
 * per epoch only for the device whose check printed "per-epoch", release
 * at teardown; a failed setup rolls back. */
static void test_protect_dev(void **state)
{
	struct fix *f = *state;
	struct extdev *xd;
	struct ckpt_dev *dev;
	char err[200];

	set_fail(f, "none");
	take_log(f);
	assert_int_equal(extdev_new(f->argv, 3, 5000, "kvm:web", "peer:1", &xd, err, sizeof(err)),
			 0);
	assert_int_equal(extdev_ckpt_dev_create(xd, &dev), 0);
	assert_int_equal(dev->ops->setup(dev), 0);
	assert_int_equal(dev->ops->commit(dev, 3), 0);
	assert_int_equal(dev->ops->commit(dev, 4), 0);
	dev->ops->teardown(dev);
	assert_string_equal(take_log(f), "a check protect kvm:web peer:1 - check none\n"
					 "b check protect kvm:web peer:1 - check none\n"
					 "c check protect kvm:web peer:1 - check none\n"
					 "a prepare protect kvm:web peer:1 - prepare check\n"
					 "b prepare protect kvm:web peer:1 - prepare check\n"
					 "c prepare protect kvm:web peer:1 - prepare check\n"
					 "a commit protect kvm:web peer:1 3 commit prepare\n"
					 "a commit protect kvm:web peer:1 4 commit prepare\n"
					 "c release protect kvm:web peer:1 4 release prepare\n"
					 "b release protect kvm:web peer:1 4 release prepare\n"
					 "a release protect kvm:web peer:1 4 release prepare\n");
	/* A per-epoch failure fails the commit (the session degrades). */
	set_fail(f, "a commit");
	assert_int_equal(dev->ops->setup(dev), 0);
	take_log(f);
	assert_int_equal(dev->ops->commit(dev, 0), -EIO);
	/* A failed setup rolls back; teardown then releases nothing. */
	dev->ops->teardown(dev);
	take_log(f);
	set_fail(f, "c prepare");
	assert_int_equal(dev->ops->setup(dev), -EIO);
	dev->ops->teardown(dev);
	assert_string_equal(take_log(f), "a check protect kvm:web peer:1 - check none\n"
					 "b check protect kvm:web peer:1 - check none\n"
					 "c check protect kvm:web peer:1 - check none\n"
					 "a prepare protect kvm:web peer:1 - prepare check\n"
					 "b prepare protect kvm:web peer:1 - prepare check\n"
					 "c prepare protect kvm:web peer:1 - prepare check\n"
					 "c rollback protect kvm:web peer:1 - rollback check\n"
					 "b rollback protect kvm:web peer:1 - rollback prepare\n"
					 "a rollback protect kvm:web peer:1 - rollback prepare\n");
	dev->ops->destroy(dev);
	extdev_free(xd);
}

static void test_bad_paths(void **state)
{
	struct fix *f = *state;
	struct extdev *xd = NULL;
	char err[300], path[128];
	const char *one[1];

	one[0] = "relative/dev";
	assert_int_equal(extdev_new(one, 1, 0, "d", "p", &xd, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "absolute"));
	snprintf(path, sizeof(path), "%s/missing", f->dir);
	one[0] = path;
	assert_int_equal(extdev_new(one, 1, 0, "d", "p", &xd, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
	assert_int_equal(chmod(f->paths[1], 0644), 0);
	assert_int_equal(extdev_new(f->argv, 3, 0, "d", "p", &xd, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "not executable"));
	assert_int_equal(chmod(f->paths[1], 0755), 0);
	one[0] = f->dir;
	assert_int_equal(extdev_new(one, 1, 0, "d", "p", &xd, err, sizeof(err)), -EINVAL);
	assert_null(xd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_each_fails_each_phase, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_pass_then_abandon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hang_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_protect_dev, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
