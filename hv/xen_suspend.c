/* The Xen backend's suspend decisions: see hv/xen.h. Pure functions, so
 * that they are tested without a hypervisor (tests/unit/test_xen_suspend.c);
 * hv/xen.c feeds them what Xen reports. */
#include "hv/xen.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Xen's SHUTDOWN_* codes (public/sched.h): a stable ABI; hv/xen.c asserts
 * that they match. */
static const char *const reasons[] = {"poweroff", "reboot", "suspend",
				      "crash",    "watchdog", "soft_reset"};
#define REASON_SUSPEND 2u

enum hv_xen_via hv_xen_suspend_via(const struct hv_xen_guest *g)
{
	/* A sleeping guest answers no channel and reads no xenstore. */
	if (g->acpi_s_state == 0 && g->evtchn)
		return HV_XEN_VIA_EVTCHN;
	/* PVH has no firmware path to sleep and always runs PV drivers: it
	 * is asked, never forced. */
	if (!g->pvh && (g->callback_irq == 0 || g->acpi_s_state != 0))
		return HV_XEN_VIA_FORCE;
	return HV_XEN_VIA_XENSTORE;
}

const char *hv_xen_via_name(enum hv_xen_via via)
{
	switch (via) {
	case HV_XEN_VIA_EVTCHN:
		return "suspend event channel";
	case HV_XEN_VIA_XENSTORE:
		return "xenstore control/shutdown";
	case HV_XEN_VIA_FORCE:
		break;
	}
	return "SHUTDOWN_suspend (HVM without PV drivers, or asleep)";
}

bool hv_xen_resume_fast(enum hv_xen_via via)
{
	return via != HV_XEN_VIA_FORCE;
}

bool hv_xen_request_taken(const char *control_shutdown)
{
	return !control_shutdown || strcmp(control_shutdown, "suspend") != 0;
}

enum hv_xen_dom hv_xen_classify(const struct hv_xen_info *i)
{
	if (!i->exists || i->dying)
		return HV_XEN_GONE;
	if (i->crashed)
		return HV_XEN_ENDED;
	if (i->shutdown)
		return i->reason == REASON_SUSPEND ? HV_XEN_SUSPENDED : HV_XEN_ENDED;
	return HV_XEN_RUNNING;
}

const char *hv_xen_reason_name(unsigned reason)
{
	return reason < sizeof(reasons) / sizeof(reasons[0]) ? reasons[reason] : "unknown reason";
}

int hv_xen_describe(const struct hv_xen_info *i, unsigned domid, bool requested, char *buf,
		    size_t len)
{
	const char *where = requested ? "during a suspend ha-protect requested"
				      : "while it ran between checkpoints";

	switch (hv_xen_classify(i)) {
	case HV_XEN_GONE:
		snprintf(buf, len, "domain %u was destroyed %s%s", domid, where,
			 i->exists ? " (it is dying)" : "");
		return -ESRCH;
	case HV_XEN_ENDED:
		if (i->crashed || (i->shutdown && i->reason == 3u))
			snprintf(buf, len, "the guest of domain %u crashed %s", domid, where);
		else if (i->reason == 1u)
			snprintf(buf, len, "the guest of domain %u rebooted %s", domid, where);
		else
			snprintf(buf, len, "the guest of domain %u shut itself down (%s) %s", domid,
				 hv_xen_reason_name(i->reason), where);
		return -ESHUTDOWN;
	case HV_XEN_SUSPENDED:
		snprintf(buf, len, "domain %u is suspended", domid);
		return 0;
	case HV_XEN_RUNNING:
		break;
	}
	snprintf(buf, len, "domain %u runs", domid);
	return 0;
}
