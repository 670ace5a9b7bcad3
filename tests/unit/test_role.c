/* The role record: written atomically and read back, bad files refused
 * with the file and line, and what each record lets ha-protect and
 * ha-receive do at their start. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "failover/role.h"

static char dir[64], path[128];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_role.%d", (int)getpid());
	/* role_store() makes the directory (and its parents). */
	snprintf(path, sizeof(path), "%s/state/web.role", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *text)
{
	FILE *f;
	char d[128];

	snprintf(d, sizeof(d), "%s/state", dir);
	mkdir(dir, 0755);
	mkdir(d, 0755);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_path(void **state)
{
	char buf[128], pair[32];

	unsetenv("HA_STATE_DIR");
	assert_int_equal(role_path("/etc/ha-protect/web.conf", buf, sizeof(buf), pair, sizeof(pair)), 0);
	assert_string_equal(buf, "/var/lib/ha-protect/web.role");
	assert_string_equal(pair, "web");
	setenv("HA_STATE_DIR", "/tmp/s", 1);
	assert_int_equal(role_path("pair.conf", buf, sizeof(buf), pair, sizeof(pair)), 0);
	assert_string_equal(buf, "/tmp/s/pair.role");
	assert_int_equal(role_path("/x/y/odd", buf, sizeof(buf), pair, sizeof(pair)), 0);
	assert_string_equal(buf, "/tmp/s/odd.role");
	assert_string_equal(pair, "odd");
	assert_int_equal(role_path("/x/web.conf", buf, 8, pair, sizeof(pair)), -ENAMETOOLONG);
	assert_int_equal(role_path("/x/web.conf", buf, sizeof(buf), pair, 3), -ENAMETOOLONG);
	unsetenv("HA_STATE_DIR");
}

static void test_none(void **state)
{
	struct role_rec r = {.role = ROLE_LOST};
	char err[256] = "";

	assert_int_equal(role_load(path, &r, err, sizeof(err)), -ENOENT);
	assert_int_equal(r.role, ROLE_NONE);
	assert_string_equal(err, "");
}

static void test_round_trip(void **state)
{
	struct role_rec r;
	char err[256] = "", d[400];
	time_t t0 = time(NULL);

	assert_int_equal(role_store(path, ROLE_PRIMARY, true, "protecting %s to %s", "xen:web",
				    "b; or not\nthis"),
			 0);
	assert_int_equal(role_load(path, &r, err, sizeof(err)), 0);
	assert_int_equal(r.role, ROLE_PRIMARY);
	assert_true(r.protecting);
	assert_true(r.since >= t0 && r.since <= time(NULL));
	/* One line, whole: no line break, and no ';' (inih's comment). */
	assert_string_equal(r.why, "protecting xen:web to b, or not this");
	role_describe(&r, d, sizeof(d));
	assert_non_null(strstr(d, "primary, protecting since "));
	assert_non_null(strstr(d, " UTC (protecting xen:web to b, or not this)"));

	/* Replaced whole, with no temporary file left behind. */
	assert_int_equal(role_store(path, ROLE_LOST, false, "superseded at the witness"), 0);
	assert_int_equal(role_load(path, &r, err, sizeof(err)), 0);
	assert_int_equal(r.role, ROLE_LOST);
	assert_false(r.protecting);
	assert_string_equal(r.why, "superseded at the witness");
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(access(tmp, F_OK), -1);

	/* A reason too long for a line is cut, and still reads back. */
	char big[600];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(role_store(path, ROLE_SECONDARY, false, "%s", big), 0);
	assert_int_equal(role_load(path, &r, err, sizeof(err)), 0);
	assert_int_equal(r.role, ROLE_SECONDARY);
	assert_int_equal(strlen(r.why), ROLE_WHY_MAX - 1);
}

static void expect_bad(const char *text, const char *msg)
{
	struct role_rec r;
	char err[256] = "";

	write_file(text);
	assert_int_equal(role_load(path, &r, err, sizeof(err)), -EINVAL);
	if (!strstr(err, msg))
		fail_msg("'%s' does not contain '%s'", err, msg);
	assert_int_equal(r.role, ROLE_NONE);
}

static void test_bad_files(void **state)
{
	expect_bad("[role]\nrole = boss\n", "web.role:2: role = boss: expected primary, secondary or lost");
	expect_bad("[role]\nrole = primary\nprotecting = maybe\n", ":3: protecting = maybe: expected yes or no");
	expect_bad("[role]\nsince = -4\nrole = lost\n", ":2: since = -4: expected seconds");
	expect_bad("[role]\nrole = lost\ncolour = red\n", ":3: unknown key 'colour'");
	expect_bad("[other]\nrole = lost\n", ":2: a section [other]");
	expect_bad("[role]\nprotecting = no\n", "web.role: no 'role =' line");
	expect_bad("[role]\nrole lost\n", "web.role:2: not a line of a role record");
	expect_bad("", "no 'role =' line");

	char big[400];
	snprintf(big, sizeof(big), "[role]\nrole = lost\nwhy = %0300d\n", 0);
	expect_bad(big, "web.role:3: line too long");
}

/* A daemon's start: no record is none; a bad one says how to mend it. */
static void test_open(void **state)
{
	char p[256], pair[64], why[600], state_dir[160];
	struct role_rec rec;

	(void)state;
	snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
	setenv("HA_STATE_DIR", state_dir, 1);
	unlink(path);
	assert_int_equal(role_open("/etc/ha-protect/web.conf", "primary", p, sizeof(p), pair,
				   sizeof(pair), &rec, why, sizeof(why)),
			 0);
	assert_string_equal(p, path);
	assert_string_equal(pair, "web");
	assert_int_equal(rec.role, ROLE_NONE);
	write_file("[role]\nrole = boss\n");
	assert_true(role_open("/etc/ha-protect/web.conf", "secondary", p, sizeof(p), pair,
			      sizeof(pair), &rec, why, sizeof(why)) < 0);
	assert_non_null(strstr(why, "web.role:2: role = boss"));
	assert_non_null(strstr(why, "ha-ctl role web secondary writes a new one"));
	unsetenv("HA_STATE_DIR");
}

static void test_unreadable(void **state)
{
	struct role_rec r;
	char err[256] = "";
	char d[160];

	/* A directory where the file should be. */
	snprintf(d, sizeof(d), "%s/state/web.role", dir);
	mkdir(dir, 0755);
	snprintf(d, sizeof(d), "%s/state", dir);
	mkdir(d, 0755);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_not_equal(role_load(path, &r, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "web.role"));
	assert_true(role_store(path, ROLE_PRIMARY, false, "x") < 0);
	rmdir(path);
}

static enum role_verdict verdict(enum role role, bool protecting, bool primary, char *why,
				 size_t len)
{
	struct role_rec r = {.role = role, .protecting = protecting, .since = 1764806400};

	snprintf(r.why, sizeof(r.why), "what wrote it");
	return role_verdict(&r, primary, "web", why, len);
}

static void test_verdicts(void **state)
{
	char why[700];

	/* ha-protect */
	assert_int_equal(verdict(ROLE_NONE, false, true, why, sizeof(why)), ROLE_GO);
	assert_int_equal(verdict(ROLE_PRIMARY, false, true, why, sizeof(why)), ROLE_GO);
	assert_int_equal(verdict(ROLE_PRIMARY, true, true, why, sizeof(why)), ROLE_CONFIRM);
	assert_non_null(strstr(why, "did not record its end"));
	assert_non_null(strstr(why, "since 2025-12-04 00:00:00 UTC (what wrote it)"));
	assert_int_equal(verdict(ROLE_SECONDARY, false, true, why, sizeof(why)), ROLE_REFUSE);
	assert_non_null(strstr(why, "this host is the secondary of pair web"));
	assert_non_null(strstr(why, "ha-ctl role web primary"));
	assert_int_equal(verdict(ROLE_LOST, false, true, why, sizeof(why)), ROLE_REFUSE);
	assert_non_null(strstr(why, "lost the primary role of pair web: lost since"));
	assert_non_null(strstr(why, "ha-ctl role web primary"));

	/* ha-receive */
	assert_int_equal(verdict(ROLE_NONE, false, false, why, sizeof(why)), ROLE_GO);
	assert_int_equal(verdict(ROLE_SECONDARY, false, false, why, sizeof(why)), ROLE_GO);
	assert_int_equal(verdict(ROLE_LOST, false, false, why, sizeof(why)), ROLE_GO);
	assert_int_equal(verdict(ROLE_PRIMARY, false, false, why, sizeof(why)), ROLE_REFUSE);
	assert_non_null(strstr(why, "stop it here first (ha-ctl role web secondary"));
	assert_int_equal(verdict(ROLE_PRIMARY, true, false, why, sizeof(why)), ROLE_REFUSE);
}

static void test_names(void **state)
{
	enum role r;

	assert_int_equal(role_parse("secondary", &r), 0);
	assert_int_equal(r, ROLE_SECONDARY);
	assert_int_equal(role_parse("none", &r), -EINVAL);
	assert_int_equal(role_parse("Primary", &r), -EINVAL);
	assert_string_equal(role_name(ROLE_LOST), "lost");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path),
		cmocka_unit_test_setup_teardown(test_none, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable, setup, teardown),
		cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
