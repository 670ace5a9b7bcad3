/* Unit tests for diskrepl/drbd.c: reading DRBD 8.4's /proc/drbd (samples
 * captured from the lab's dom0 by test 45, tests/unit/data/drbd/), the primary's
 * safety rule, resource resolution and the secondary's refusals. The
 * checkpoint device itself runs against real DRBD in the lab
 * (tests/lab/tests/45-ha-protect-drbd.sh). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diskrepl/drbd.h"

#define DATA "tests/unit/data/drbd/"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);

	assert_non_null(f);
	assert_non_null(buf);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_parse_connected(void **state)
{
	char *text = slurp(DATA "connected.txt");
	struct drbd_state st;

	(void)state;
	assert_int_equal(drbd_parse_proc(text, 0, &st), 0);
	assert_string_equal(st.cs, "Connected");
	assert_string_equal(st.role, "Primary");
	assert_string_equal(st.peer_role, "Secondary");
	assert_string_equal(st.disk, "UpToDate");
	assert_string_equal(st.peer_disk, "UpToDate");
	assert_int_equal(st.protocol, 'C');
	assert_int_equal(st.oos_kib, 0);
	assert_int_equal(st.sync_permille, -1);
	assert_null(drbd_primary_unsafe(&st));

	assert_int_equal(drbd_parse_proc(text, 1, &st), 0);
	assert_string_equal(st.role, "Secondary");
	assert_string_equal(st.peer_role, "Primary");
	assert_non_null(drbd_primary_unsafe(&st));
	assert_int_equal(drbd_parse_proc(text, 2, &st), -ENODEV);
	/* "1" must not match minor 11's line, nor 11 minor 1's. */
	assert_int_equal(drbd_parse_proc(text, 11, &st), -ENODEV);
	free(text);
}

static void test_parse_states(void **state)
{
	char *wf = slurp(DATA "wfconnection.txt");
	char *sync = slurp(DATA "syncsource.txt");
	struct drbd_state st;
	char line[160];

	(void)state;
	assert_int_equal(drbd_parse_proc(wf, 0, &st), 0);
	assert_string_equal(st.cs, "WFConnection");
	assert_string_equal(st.peer_role, "Unknown");
	assert_string_equal(st.peer_disk, "DUnknown");
	assert_true(st.oos_kib > 0);
	assert_string_equal(drbd_primary_unsafe(&st),
			    "the resource is not connected to its peer");
	drbd_state_str(&st, line, sizeof(line));
	assert_non_null(strstr(line, "cs:WFConnection ro:Primary/Unknown ds:UpToDate/DUnknown C"));
	/* StandAlone (no network configuration) shows no protocol letter. */
	assert_int_equal(drbd_parse_proc(wf, 1, &st), 0);
	assert_string_equal(st.cs, "StandAlone");
	assert_int_equal(st.protocol, 0);
	assert_string_equal(st.role, "Secondary");
	assert_string_equal(st.disk, "UpToDate");

	assert_int_equal(drbd_parse_proc(sync, 0, &st), 0);
	assert_string_equal(st.cs, "SyncSource");
	assert_string_equal(st.peer_disk, "Inconsistent");
	assert_int_equal(st.sync_permille, 1000);
	assert_int_equal(st.oos_kib, 8);
	assert_non_null(strstr(drbd_primary_unsafe(&st), "resync"));
	free(wf);
	free(sync);

	/* A paused resync (drbdsetup pause-sync): still a resync to wait for. */
	char *paused = slurp(DATA "pausedsync.txt");
	assert_int_equal(drbd_parse_proc(paused, 0, &st), 0);
	assert_string_equal(st.cs, "PausedSyncS");
	assert_int_equal(st.oos_kib, 1028);
	assert_non_null(strstr(drbd_primary_unsafe(&st), "resync"));
	free(paused);
}

static void test_unsafe_rules(void **state)
{
	struct drbd_state ok = {.cs = "Connected", .role = "Primary", .peer_role = "Secondary",
				.disk = "UpToDate", .peer_disk = "UpToDate", .protocol = 'C',
				.sync_permille = -1};
	struct drbd_state st;

	(void)state;
	assert_null(drbd_primary_unsafe(&ok));
	st = ok;
	st.protocol = 'A';
	assert_non_null(strstr(drbd_primary_unsafe(&st), "protocol C"));
	st = ok;
	st.oos_kib = 4;
	assert_non_null(strstr(drbd_primary_unsafe(&st), "out of sync"));
	st = ok;
	snprintf(st.peer_disk, sizeof(st.peer_disk), "Outdated");
	assert_non_null(strstr(drbd_primary_unsafe(&st), "peer's disk"));
	st = ok;
	snprintf(st.disk, sizeof(st.disk), "Diskless");
	assert_non_null(strstr(drbd_primary_unsafe(&st), "local disk"));
}

static void test_garbled(void **state)
{
	struct drbd_state st;

	(void)state;
	assert_int_equal(drbd_parse_proc("", 0, &st), -EPROTONOSUPPORT);
	assert_int_equal(drbd_parse_proc("version: 9.2.4 (api:2/proto:86-122)\n", 0, &st),
			 -EPROTONOSUPPORT);
	assert_int_equal(drbd_parse_proc("version: 8.4.11 (api:1/proto:86-101)\n"
					 " 0: cs:Unconfigured\n",
					 0, &st),
			 -ENODEV);
	assert_int_equal(drbd_parse_proc("version: 8.4.11 (api:1/proto:86-101)\n"
					 " 0: cs:Connected ro:Primary\n",
					 0, &st),
			 -EBADMSG);
	assert_int_equal(drbd_parse_proc("version: 8.4.11 (api:1/proto:86-101)\n"
					 " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate"
					 " r-----\n",
					 0, &st),
			 -EBADMSG);
	/* A resync share that is not a number counts as none done. */
	assert_int_equal(drbd_parse_proc("version: 8.4.11 (api:1/proto:86-101)\n"
					 " 0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent"
					 " C r-----\n"
					 "    ns:0 oos:8\n"
					 "\t[>...] sync'ed:nan%\n",
					 0, &st),
			 0);
	assert_int_equal(st.sync_permille, 0);
	/* No counters after the minor's line: still parsed. */
	assert_int_equal(drbd_parse_proc("version: 8.4.11 (api:1/proto:86-101)\n"
					 " 0: cs:StandAlone ro:Primary/Unknown ds:UpToDate/DUnknown"
					 " C r-----\n",
					 0, &st),
			 0);
	assert_string_equal(st.cs, "StandAlone");
}

static void test_resolve(void **state)
{
	struct drbd_res r;
	char err[256];

	(void)state;
	assert_int_equal(drbd_resolve("/dev/drbd7", &r, err, sizeof(err)), 0);
	assert_int_equal(r.minor, 7);
	assert_string_equal(r.dev, "/dev/drbd7");
	assert_int_equal(drbd_resolve("/dev/drbdx", &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a DRBD device"));
	assert_int_equal(drbd_resolve("", &r, err, sizeof(err)), -EINVAL);
	setenv("HA_DRBDSETUP", "/nonexistent/drbdsetup", 1);
	assert_int_equal(drbd_resolve("r0", &r, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "drbd-utils"));
	/* A drbdsetup that fails: its last line is the reason. */
	setenv("HA_DRBDSETUP", "false", 1);
	assert_int_equal(drbd_resolve("r0", &r, err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "no DRBD resource r0"));
	unsetenv("HA_DRBDSETUP");
}

/* The secondary's checks read the state through HA_DRBD_PROC. */
static void test_secondary(void **state)
{
	struct drbd_res r0 = {.name = "haA", .minor = 0, .dev = "/dev/drbd0"};
	struct drbd_res r1 = {.name = "haB", .minor = 1, .dev = "/dev/drbd1"};
	char err[512];

	(void)state;
	setenv("HA_DRBD_PROC", DATA "connected.txt", 1);
	assert_int_equal(drbd_check_secondary(&r1, err, sizeof(err)), 0);
	assert_int_equal(drbd_check_secondary(&r0, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "must be Secondary"));
	/* Still connected to a Primary peer: its host is alive. */
	assert_int_equal(drbd_promote(&r1, 1000, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "still Primary"));
	/* Mid-resync the replica's disk holds no usable data. */
	setenv("HA_DRBD_PROC", DATA "syncsource.txt", 1);
	struct drbd_res target = {.name = "haB", .minor = 1, .dev = "/dev/drbd1"};
	int rc = drbd_promote(&target, 1000, err, sizeof(err));
	assert_int_equal(rc, -EIO);
	assert_non_null(strstr(err, "Inconsistent"));
	/* Cut off from its peer (StandAlone): still a valid Secondary. */
	setenv("HA_DRBD_PROC", DATA "wfconnection.txt", 1);
	assert_int_equal(drbd_check_secondary(&r1, err, sizeof(err)), 0);
	setenv("HA_DRBD_PROC", "/nonexistent/drbd", 1);
	assert_int_equal(drbd_check_secondary(&r1, err, sizeof(err)), -ENOPKG);
	assert_non_null(strstr(err, "modprobe drbd"));
	unsetenv("HA_DRBD_PROC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_connected), cmocka_unit_test(test_parse_states),
		cmocka_unit_test(test_unsafe_rules),    cmocka_unit_test(test_garbled),
		cmocka_unit_test(test_resolve),         cmocka_unit_test(test_secondary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
