/* The pair file: what each daemon's command line becomes, where each option
 * came from, and an error naming the file and line for each mistake. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/conf.h"

static const struct option opts[] = {
	CONF_OPTIONS,
	{"interval", required_argument, NULL, 'i'},
	{"timeout", required_argument, NULL, 1},
	{"tls-psk", required_argument, NULL, 2},
	{"insecure", no_argument, NULL, 3},
	{"disk", required_argument, NULL, 4},
	{"listen", required_argument, NULL, 5},
	{"backend", required_argument, NULL, 6},
	{"domain", required_argument, NULL, 7},
	{"help", no_argument, NULL, 'h'},
	{0},
};

static char path[64];

static const char *write_conf(const char *text)
{
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/test_conf.%d.conf", (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static const char PAIR[] = "# a pair\n"			  /* 1 */
			   "[pair]\n"			  /* 2 */
			   "domain = xen:web\n"		  /* 3 */
			   "port = 7000\n"		  /* 4 */
			   "[host alpha]\n"		  /* 5 */
			   "address = 10.0.0.1\n"	  /* 6 */
			   "[host beta]\n"		  /* 7 */
			   "address = 10.0.0.2\n"	  /* 8 */
			   "[common]\n"			  /* 9 */
			   "timeout = 300\n"		  /* 10 */
			   "tls-psk = /etc/ha.psk\n"	  /* 11 */
			   "insecure = no\n"		  /* 12 */
			   "[protect]\n"		  /* 13 */
			   "interval = 50 ; inline\n"	  /* 14 */
			   "disk = d0\n"		  /* 15 */
			   "disk = d1\n"		  /* 16 */
			   "[receive]\n"		  /* 17 */
			   "listen = 0.0.0.0:7000\n";	  /* 18 */

static void expand(char **argv, int argc, enum conf_role role, struct conf_args *a, int want)
{
	assert_int_equal(conf_expand("ha-x", role, opts, argc, argv, a), want);
}

/* ha-protect: [common], [protect], the command line, then DOMAIN PEER. */
static void protect_side(void **state)
{
	char prog[] = "ha-protect", o1[] = "--config", o3[] = "--host", o4[] = "alpha",
	     o5[] = "--timeout=900";
	char *argv[] = {prog, o1, (char *)write_conf(PAIR), o3, o4, o5, NULL};
	struct conf_args a;

	(void)state;
	expand(argv, 6, CONF_PROTECT, &a, 0);
	assert_string_equal(a.argv[1], "--timeout=300");
	assert_string_equal(a.argv[2], "--tls-psk=/etc/ha.psk");
	assert_string_equal(a.argv[3], "--interval=50");
	assert_string_equal(a.argv[4], "--disk=d0");
	assert_string_equal(a.argv[5], "--disk=d1");
	/* The command line follows, so that it overrides the file. */
	assert_string_equal(a.argv[10], "--timeout=900");
	assert_string_equal(a.argv[11], "xen:web");
	assert_string_equal(a.argv[12], "10.0.0.2:7000");
	assert_int_equal(a.argc, 13);
	conf_use(&a);
	{
		char want[96];

		snprintf(want, sizeof(want), "%s:10", path);
		assert_string_equal(conf_origin(1), want);
		snprintf(want, sizeof(want), "%s:16", path);
		assert_string_equal(conf_origin(5), want);
		snprintf(want, sizeof(want), "%s:8", path);
		assert_string_equal(conf_origin(12), want);
	}
	assert_null(conf_origin(10));
	assert_null(conf_origin(99));
	assert_string_equal(a.pair.self, "alpha");
	assert_string_equal(a.pair.peer_address, "10.0.0.2");
	conf_args_free(&a);
	assert_null(conf_origin(1));
	unlink(path);
}

/* ha-receive: --listen, --backend, --domain from [pair] and [host], which
 * the file's [receive] then overrides. */
static void receive_side(void **state)
{
	char prog[] = "ha-receive", o1[] = "--config", o3[] = "--host=beta";
	char *argv[] = {prog, o1, (char *)write_conf(PAIR), o3, NULL};
	struct conf_args a;

	(void)state;
	expand(argv, 4, CONF_RECEIVE, &a, 0);
	assert_string_equal(a.argv[1], "--listen=10.0.0.2:7000");
	assert_string_equal(a.argv[2], "--backend=xen");
	assert_string_equal(a.argv[3], "--domain=web");
	assert_string_equal(a.argv[4], "--timeout=300");
	assert_string_equal(a.argv[6], "--listen=0.0.0.0:7000");
	assert_int_equal(a.argc, 10);
	conf_args_free(&a);
	unlink(path);
}

/* Without --pair or --config the command line is left alone. */
static void no_file(void **state)
{
	char prog[] = "ha-x", o1[] = "--timeout", o2[] = "5";
	char *argv[] = {prog, o1, o2, NULL};
	struct conf_args a;

	(void)state;
	expand(argv, 3, CONF_PROTECT, &a, 0);
	assert_ptr_equal(a.argv, argv);
	assert_int_equal(a.argc, 3);
	assert_null(a.origin[1]);
	conf_args_free(&a);
}

/* --pair NAME is $HA_CONF_DIR/NAME.conf; a name with a slash is refused. */
static void pair_name(void **state)
{
	char buf[64];

	(void)state;
	setenv("HA_CONF_DIR", "/srv/conf", 1);
	assert_int_equal(conf_pair_path("web", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/srv/conf/web.conf");
	unsetenv("HA_CONF_DIR");
	assert_int_equal(conf_pair_path("web", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/etc/ha-protect/web.conf");
	assert_int_equal(conf_pair_path("../x", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(conf_pair_path("", buf, sizeof(buf)), -EINVAL);
}

/* Each mistake: an error that names the file and the line. */
static void mistakes(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{"[pair]\ndomain = web\n", ":2: domain wants xen:NAME or kvm:NAME, not 'web'"},
		{"[pair]\ndomain = xen:w\nport = 0\n", ":3: port wants a number in 1..65535"},
		{"[pair]\ndomian = xen:w\n", ":2: unknown key 'domian' in [pair]"},
		{"[pair]\ndomain = xen:w\n[hots a]\naddress = 1\n", ":4: unknown section [hots a]"},
		{"[pair]\ndomain = xen:w\n[host a]\naddress = 1\n", "1 [host NAME] section(s)"},
		{"[pair]\ndomain = xen:w\n[host a]\naddress = 1\n[host b]\naddress = 2\n"
		 "[host c]\naddress = 3\n",
		 ":8: a third [host] section ([host c])"},
		{"[pair]\ndomain = xen:w\n[host a]\naddr = 1\n", ":4: unknown key 'addr' in [host a]"},
		{"[host a]\naddress = 1\n[host b]\naddress = 2\n", "[pair] has no domain"},
		{"[pair]\ndomain = xen:w\njunk\n", ":3: not a [section], a 'key = value'"},
		{"[pair]\ndomain = xen:w\n[host a]\naddress = 1\n[host b]\naddress = 2\n"
		 "[protect]\ntimeot = 5\n",
		 ":8: unknown key 'timeot' in [protect]"},
		{"[pair]\ndomain = xen:w\n[host a]\naddress = 1\n[host b]\naddress = 2\n"
		 "[common]\ninsecure = maybe\n",
		 ":8: insecure wants yes or no, not 'maybe'"},
		{"[pair]\ndomain = xen:w\n[host a]\naddress = 1\n[host b]\naddress = 2\n"
		 "[common]\nhelp = yes\n",
		 ":8: unknown key 'help' in [common]"},
		{"[pair]\ndomain = xen:w\n[host x]\naddress = 1\n[host y]\naddress = 2\n",
		 "--host a: no [host a] (the pair is x and y)"},
	};
	char longline[400];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char prog[] = "ha-x", o1[] = "--config", o3[] = "--host", o4[] = "a";
		char *argv[] = {prog, o1, (char *)write_conf(cases[i].text), o3, o4, NULL};
		struct conf_args a;
		char err[1024] = "";
		FILE *saved = stderr;
		FILE *f = fmemopen(err, sizeof(err) - 1, "w");

		stderr = f;
		assert_true(conf_expand("ha-x", CONF_PROTECT, opts, 5, argv, &a) < 0);
		stderr = saved;
		fclose(f);
		if (!strstr(err, cases[i].want) || !strstr(err, path)) {
			print_error("case %zu: '%s' has no '%s'\n", i, err, cases[i].want);
			fail();
		}
		unlink(path);
	}
	memset(longline, 'x', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	{
		char text[512];
		struct conf_pair p;
		char err[256];

		snprintf(text, sizeof(text), "[pair]\n# %s\ndomain = xen:w\n", longline);
		write_conf(text);
		assert_int_equal(conf_read_pair(path, "a", &p, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, ":2: line too long"));
		unlink(path);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(protect_side), cmocka_unit_test(receive_side),
		cmocka_unit_test(no_file),	cmocka_unit_test(pair_name),
		cmocka_unit_test(mistakes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
