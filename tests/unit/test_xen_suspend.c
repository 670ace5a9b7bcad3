/* The Xen backend's suspend decisions (hv/xen_suspend.c), as libxl and
 * libxc make them: how a guest is asked to suspend given what it reports
 * at that moment, how it is resumed, when a xenstore request counts as
 * taken, and what a domain found not running did and where. The calls to
 * Xen around them are tested in the lab (tests/lab/tests/40-*, 41-*). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "hv/xen.h"

static void test_via(void **state)
{
	(void)state;
	/* PVH: asked, never forced, whatever its parameters say. */
	struct hv_xen_guest g = {.pvh = true};

	assert_int_equal(hv_xen_suspend_via(&g), HV_XEN_VIA_XENSTORE);
	g.callback_irq = 0x0200000000000000ull | 0xf3; /* vector callback */
	assert_int_equal(hv_xen_suspend_via(&g), HV_XEN_VIA_XENSTORE);
	g.evtchn = true;
	assert_int_equal(hv_xen_suspend_via(&g), HV_XEN_VIA_EVTCHN);
	g.acpi_s_state = 3;
	assert_int_equal(hv_xen_suspend_via(&g), HV_XEN_VIA_XENSTORE);

	/* HVM without PV drivers (callback 0): forced. */
	g = (struct hv_xen_guest){.pvh = false};
	assert_int_equal(hv_xen_suspend_via(&g), HV_XEN_VIA_FORCE);
	/* ... once its drivers set the callback (read again at each suspend),
	 * asked through xenstore. */
	g.callback_irq = 5;
	assert_int_equal(hv_xen_suspend_via(&g), HV_XEN_VIA_XENSTORE);
	/* Asleep in S3: forced, even with drivers and a channel. */
	g.acpi_s_state = 3;
	assert_int_equal(hv_xen_suspend_via(&g), HV_XEN_VIA_FORCE);
	g.evtchn = true;
	assert_int_equal(hv_xen_suspend_via(&g), HV_XEN_VIA_FORCE);
	/* Awake with a channel: the channel. */
	g.acpi_s_state = 0;
	assert_int_equal(hv_xen_suspend_via(&g), HV_XEN_VIA_EVTCHN);
	/* A channel but no callback: libxl notifies the channel. */
	g.callback_irq = 0;
	assert_int_equal(hv_xen_suspend_via(&g), HV_XEN_VIA_EVTCHN);
}

static void test_resume(void **state)
{
	(void)state;
	/* A forced guest was stopped mid-instruction: its RAX is not ours. */
	assert_false(hv_xen_resume_fast(HV_XEN_VIA_FORCE));
	assert_true(hv_xen_resume_fast(HV_XEN_VIA_XENSTORE));
	assert_true(hv_xen_resume_fast(HV_XEN_VIA_EVTCHN));
	assert_non_null(strstr(hv_xen_via_name(HV_XEN_VIA_FORCE), "SHUTDOWN_suspend"));
}

static void test_taken(void **state)
{
	(void)state;
	assert_false(hv_xen_request_taken("suspend"));
	assert_true(hv_xen_request_taken(""));
	assert_true(hv_xen_request_taken(NULL));
	assert_true(hv_xen_request_taken("poweroff"));
	assert_true(hv_xen_request_taken("suspended"));
}

static void test_classify(void **state)
{
	char buf[200];

	(void)state;
	struct hv_xen_info i = {.exists = true};

	assert_int_equal(hv_xen_classify(&i), HV_XEN_RUNNING);
	assert_int_equal(hv_xen_describe(&i, 3, true, buf, sizeof(buf)), 0);
	i.shutdown = true;
	i.reason = 2;
	assert_int_equal(hv_xen_classify(&i), HV_XEN_SUSPENDED);
	assert_int_equal(hv_xen_describe(&i, 3, true, buf, sizeof(buf)), 0);

	/* The guest's own end, told apart by reason and by where. */
	i.reason = 0;
	assert_int_equal(hv_xen_classify(&i), HV_XEN_ENDED);
	assert_int_equal(hv_xen_describe(&i, 3, false, buf, sizeof(buf)), -ESHUTDOWN);
	assert_string_equal(buf, "the guest of domain 3 shut itself down (poweroff) while it ran "
				 "between checkpoints");
	i.reason = 1;
	assert_int_equal(hv_xen_describe(&i, 3, true, buf, sizeof(buf)), -ESHUTDOWN);
	assert_string_equal(buf, "the guest of domain 3 rebooted during a suspend ha-protect "
				 "requested");
	i.reason = 4;
	assert_int_equal(hv_xen_describe(&i, 3, false, buf, sizeof(buf)), -ESHUTDOWN);
	assert_non_null(strstr(buf, "(watchdog)"));
	i.reason = 3;
	i.crashed = true;
	assert_int_equal(hv_xen_classify(&i), HV_XEN_ENDED);
	assert_int_equal(hv_xen_describe(&i, 3, true, buf, sizeof(buf)), -ESHUTDOWN);
	assert_string_equal(buf,
			    "the guest of domain 3 crashed during a suspend ha-protect requested");
	assert_string_equal(hv_xen_reason_name(77), "unknown reason");

	/* Destroyed: gone, whatever it was doing (the secondary may take over). */
	i.dying = true;
	assert_int_equal(hv_xen_classify(&i), HV_XEN_GONE);
	assert_int_equal(hv_xen_describe(&i, 3, false, buf, sizeof(buf)), -ESRCH);
	i = (struct hv_xen_info){.exists = false};
	assert_int_equal(hv_xen_classify(&i), HV_XEN_GONE);
	assert_int_equal(hv_xen_describe(&i, 3, true, buf, sizeof(buf)), -ESRCH);
	assert_string_equal(buf, "domain 3 was destroyed during a suspend ha-protect requested");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_via),
		cmocka_unit_test(test_resume),
		cmocka_unit_test(test_taken),
		cmocka_unit_test(test_classify),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
