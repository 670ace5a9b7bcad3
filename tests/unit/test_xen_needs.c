/* What the secondary's preflight reads from a domain's xl configuration
 * (libxlutil): its memory and the bridge of every vif, xl's default bridge
 * where a vif names none, and xl's own message for a file that does not
 * parse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv/xen.h"

static char path[64];

static void write_cfg(const char *text)
{
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/test_xen_needs.%d.cfg", (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_vifs_and_memory(void **state)
{
	struct hv_needs n = {0};
	char err[300] = "";

	write_cfg("name = \"web\"\ntype = \"pvh\"\nmemory = 96\nmaxmem = 384\n"
		  "vif = [ 'mac=00:16:3e:00:00:01, bridge=xenbr1 ,script=vif-bridge',\n"
		  "        'mac=00:16:3e:00:00:02' ]\n");
	assert_int_equal(hv_xen_config_needs(path, &n, err, sizeof(err)), 0);
	assert_string_equal(n.source, path);
	assert_int_equal(n.mem_mib, 384); /* maxmem, the larger */
	assert_int_equal(n.nnets, 2);
	assert_string_equal(n.nets[0].name, "xenbr1");
	assert_true(n.nets[0].bridge);
	assert_string_equal(n.nets[0].what, "vif 0");
	assert_string_equal(n.nets[1].name, "xenbr0"); /* xl's default */
	unlink(path);
}

static void test_no_vif(void **state)
{
	struct hv_needs n = {0};
	char err[300] = "";

	write_cfg("name = \"db\"\nmemory = 2048\n");
	assert_int_equal(hv_xen_config_needs(path, &n, err, sizeof(err)), 0);
	assert_int_equal(n.mem_mib, 2048);
	assert_int_equal(n.nnets, 0);
	unlink(path);
}

static void test_bad_file(void **state)
{
	struct hv_needs n = {0};
	char err[300] = "";

	write_cfg("name = \"web\"\nmemory = = 3\n");
	assert_true(hv_xen_config_needs(path, &n, err, sizeof(err)) < 0);
	/* xl's own words, naming the file. */
	if (!strstr(err, path) || !strstr(err, "config parsing error"))
		fail_msg("unexpected message: %s", err);
	unlink(path);
	memset(&n, 0, sizeof(n));
	assert_true(hv_xen_config_needs("/nonexistent/web.cfg", &n, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent/web.cfg"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vifs_and_memory),
		cmocka_unit_test(test_no_vif),
		cmocka_unit_test(test_bad_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
