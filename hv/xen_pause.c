/* The suspend protocol of the Xen backend (xen.c's top comment: pause and
 * resume), and what a domain that does not suspend turned out to do. */
#include "hv/xen_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

int hv_xen_getinfo(struct hv_dom *d, xc_dominfo_t *info)
{
	if (xc_domain_getinfo(d->xch, d->domid, 1, info) != 1 || info->domid != d->domid)
		return -ESRCH;
	return 0;
}

/* What the domain is now, for hv_xen_classify / hv_xen_describe. */
struct hv_xen_info hv_xen_dom_state(struct hv_dom *d)
{
	xc_dominfo_t info;

	if (hv_xen_getinfo(d, &info) < 0)
		return (struct hv_xen_info){.exists = false};
	d->nr_pages_seen = info.nr_pages;
	return (struct hv_xen_info){.exists = true,
				    .dying = info.dying,
				    .crashed = info.crashed,
				    .shutdown = info.shutdown,
				    .reason = info.shutdown_reason};
}

/* Logs what a domain found not running did (and where); its error. */
int hv_xen_report_end(struct hv_dom *d, const struct hv_xen_info *i, bool requested)
{
	char msg[200];
	int rc = hv_xen_describe(i, d->domid, requested, msg, sizeof(msg));

	if (rc == -ESHUTDOWN)
		log_error("%s (%s): not a host failure; protection ends and the secondary "
			  "discards its copy rather than resurrect this guest",
			  msg, d->name);
	else if (rc < 0)
		log_error("%s (%s)", msg, d->name);
	return rc;
}

/* Resumes a suspended domain and tells xenstored, as libxl does. */
int hv_xen_resume_domain(struct hv_dom *d, bool fast)
{
	if (xc_domain_resume(d->xch, d->domid, fast ? 1 : 0) < 0)
		return -errno;
	/* Without this xenstored keeps the domain marked shut down and never
	 * fires @releaseDomain for it again: our next suspend would go
	 * unnoticed, a later xl save or migrate would time out. */
	if (!xs_resume_domain(d->xsh, d->domid)) {
		int e = errno;

		log_warn("xenstored refused to mark domain %u resumed: %s", d->domid, strerror(e));
	}
	return 0;
}

/* A suspend that came after its timeout: resume the guest. */
void hv_xen_catch_late(struct hv_dom *d)
{
	struct hv_xen_info i;

	if (!d->late || d->suspended)
		return;
	i = hv_xen_dom_state(d);
	if (hv_xen_classify(&i) == HV_XEN_RUNNING)
		return;
	d->late = false;
	if (hv_xen_classify(&i) != HV_XEN_SUSPENDED)
		return; /* the next pause reports it */
	int rc = hv_xen_resume_domain(d, hv_xen_resume_fast(d->via));

	if (rc < 0)
		log_error("domain %u suspended after its timeout and cannot be resumed: %s",
			  d->domid, strerror(-rc));
	else
		log_warn("domain %u suspended after its timeout: resumed it", d->domid);
}

/* Sleeps until xenstore or the suspend channel has news, at most until
 * deadline (and XEN_WAIT_POLL_MS). True when woken by news. */
bool hv_xen_wait_news(struct hv_dom *d, uint64_t deadline)
{
	struct pollfd pfd[2] = {{.fd = xs_fileno(d->xsh), .events = POLLIN}};
	uint64_t now = clk_now_ns();
	int n = 1, ms = XEN_WAIT_POLL_MS;
	bool news = false;
	char **w;

	if (d->suspend_port >= 0)
		pfd[n++] = (struct pollfd){.fd = xenevtchn_fd(d->xce), .events = POLLIN};
	if (deadline > now && (deadline - now) / NSEC_PER_MSEC < (uint64_t)ms)
		ms = (int)((deadline - now) / NSEC_PER_MSEC) + 1;
	if (poll(pfd, (nfds_t)n, ms) <= 0)
		return false;
	if (pfd[0].revents)
		while ((w = xs_check_watch(d->xsh)) != NULL) {
			free(w);
			news = true;
		}
	if (n > 1 && pfd[1].revents) {
		xenevtchn_port_or_error_t p = xenevtchn_pending(d->xce);

		if (p >= 0)
			xenevtchn_unmask(d->xce, (evtchn_port_t)p);
		news = true;
	}
	return news;
}

/* Phase 2: waits until Xen reports the domain shut down for suspend.
 * 0; -ETIMEDOUT; -ESRCH or -ESHUTDOWN (logged) when it ended otherwise. */
static int wait_suspended(struct hv_dom *d, uint64_t deadline)
{
	/* Found at the first look, or after a wake-up by news: notified;
	 * after the poll timer ran out: polled. */
	bool notified = true;

	for (;;) {
		struct hv_xen_info i = hv_xen_dom_state(d);

		switch (hv_xen_classify(&i)) {
		case HV_XEN_SUSPENDED:
			if (notified)
				d->t.woke_notified++;
			else
				d->t.woke_timer++;
			return 0;
		case HV_XEN_RUNNING:
			break;
		case HV_XEN_ENDED:
		case HV_XEN_GONE:
			return hv_xen_report_end(d, &i, true);
		}
		if (clk_now_ns() >= deadline)
			return -ETIMEDOUT;
		notified = hv_xen_wait_news(d, deadline);
	}
}

/* control/shutdown inside transaction t, NULL when absent. */
char *hv_xen_read_ctl(struct hv_dom *d, xs_transaction_t t)
{
	unsigned int len;

	return xs_read(d->xsh, t, d->ctl_path, &len);
}

/* Starts a transaction and reads control/shutdown inside it into *val
 * (NULL when absent; the caller frees it). 0 or -errno. */
static int ctl_begin(struct hv_dom *d, xs_transaction_t *t, char **val)
{
	*t = xs_transaction_start(d->xsh);
	if (*t == XBT_NULL)
		return -errno;
	*val = hv_xen_read_ctl(d, *t);
	return 0;
}

/* Writes VAL to control/shutdown and ends transaction t: 0 committed,
 * -EAGAIN the transaction must be retried, -errno. */
static int write_ctl(struct hv_dom *d, xs_transaction_t t, const char *val)
{
	if (!xs_write(d->xsh, t, d->ctl_path, val, (unsigned int)strlen(val))) {
		int e = errno;

		xs_transaction_end(d->xsh, t, true);
		return -e;
	}
	if (xs_transaction_end(d->xsh, t, false))
		return 0;
	return -errno;
}

/* Writes "suspend" unless a request is there already: a stale "suspend"
 * stays (the guest takes it), another request (an operator's "poweroff"
 * or "reboot") is never overwritten. 0 written or already asked; -EBUSY
 * another request is pending (logged); -errno. */
static int request_suspend(struct hv_dom *d)
{
	for (;;) {
		xs_transaction_t t;
		char *v = NULL;
		int rc = ctl_begin(d, &t, &v);

		if (rc < 0)
			return rc;
		if (v && *v) {
			rc = strcmp(v, "suspend") ? -EBUSY : 0;

			xs_transaction_end(d->xsh, t, true);
			if (rc)
				log_warn("domain %u has a '%s' request pending in %s: not overwriting "
					 "it with a suspend request",
					 d->domid, v, d->ctl_path);
			else
				log_warn("a suspend request was already pending in %s (left by "
					 "another tool?): waiting for the guest to take it",
					 d->ctl_path);
			free(v);
			return rc;
		}
		free(v);
		rc = write_ctl(d, t, "suspend");
		if (rc != -EAGAIN)
			return rc;
	}
}

/* Withdraws the request the guest did not take, inside a transaction so
 * that an acknowledgement at the last moment is seen. 1 when the guest
 * took it after all, 0 withdrawn, -errno. */
int hv_xen_cancel_request(struct hv_dom *d)
{
	for (;;) {
		xs_transaction_t t;
		char *v = NULL;
		int rc = ctl_begin(d, &t, &v);

		if (rc < 0)
			return rc;
		if (hv_xen_request_taken(v)) {
			free(v);
			xs_transaction_end(d->xsh, t, true);
			return 1;
		}
		free(v);
		rc = write_ctl(d, t, "");
		if (rc != -EAGAIN)
			return rc;
	}
}

/* Phase 1 (xenstore): waits until the guest takes the request, or stops
 * running. 0 taken; -ETIMEDOUT withdrawn (logged); -errno. */
static int wait_taken(struct hv_dom *d, uint64_t deadline)
{
	for (;;) {
		struct hv_xen_info i = hv_xen_dom_state(d);
		char *v;
		bool taken;
		int rc;

		if (hv_xen_classify(&i) != HV_XEN_RUNNING)
			return 0; /* phase 2 tells what it did */
		v = hv_xen_read_ctl(d, XBT_NULL);
		taken = hv_xen_request_taken(v);
		free(v);
		if (taken)
			return 0;
		if (clk_now_ns() < deadline) {
			hv_xen_wait_news(d, deadline);
			continue;
		}
		rc = hv_xen_cancel_request(d);
		if (rc == 1) {
			log_warn("domain %u took the suspend request at the last moment", d->domid);
			return 0;
		}
		if (rc < 0) {
			log_error("cannot withdraw the suspend request of domain %u (%s): %s; the "
				  "guest may still suspend, and is resumed if it does",
				  d->domid, d->ctl_path, strerror(-rc));
			d->late = true;
			return -ETIMEDOUT;
		}
		log_error("domain %u did not take the suspend request within %u ms: request "
			  "withdrawn, the guest runs on. Its kernel needs Xen suspend support "
			  "(Linux: CONFIG_XEN_PVHVM / PVH with xenbus); a slow guest can be given "
			  "longer with HA_XEN_ACK_TIMEOUT_MS",
			  d->domid, d->ack_timeout_ms);
		return -ETIMEDOUT;
	}
}

int hv_xen_pause(struct hv_dom *d)
{
	uint64_t t0 = clk_now_ns();
	struct hv_xen_info i;
	struct hv_xen_guest g = {.pvh = d->pvh, .evtchn = d->suspend_port >= 0};
	const char *how;
	int rc;

	if (d->suspended)
		return 0;
	hv_xen_catch_late(d);
	/* Read at every suspend: PV drivers load after boot, S3 comes and goes. */
	xc_hvm_param_get(d->xch, d->domid, HVM_PARAM_CALLBACK_IRQ, &g.callback_irq);
	xc_hvm_param_get(d->xch, d->domid, HVM_PARAM_ACPI_S_STATE, &g.acpi_s_state);
	d->via = hv_xen_suspend_via(&g);
	how = hv_xen_via_name(d->via);
	/* Where the domain is before we ask anything: a fault found here
	 * happened while it ran, not in a suspend. */
	i = hv_xen_dom_state(d);
	switch (hv_xen_classify(&i)) {
	case HV_XEN_GONE:
	case HV_XEN_ENDED:
		return hv_xen_report_end(d, &i, false);
	case HV_XEN_SUSPENDED:
		/* Nobody here asked: a stale request, or another tool. It is
		 * consistent as it is; checkpoint it and resume it. */
		log_warn("domain %u was already suspended before ha-protect asked (a request "
			 "left in xenstore, or another tool suspending it): checkpointing it as "
			 "it is",
			 d->domid);
		how = "already suspended";
		rc = 0;
		goto suspended;
	case HV_XEN_RUNNING:
		break;
	}
	switch (d->via) {
	case HV_XEN_VIA_EVTCHN:
		rc = xenevtchn_notify(d->xce, (evtchn_port_t)d->suspend_port) < 0 ? -errno : 0;
		break;
	case HV_XEN_VIA_FORCE:
		rc = xc_domain_shutdown(d->xch, d->domid, SHUTDOWN_suspend) < 0 ? -errno : 0;
		break;
	case HV_XEN_VIA_XENSTORE:
	default:
		rc = request_suspend(d);
		if (rc == -EBUSY) {
			/* An operator's shutdown is under way: see it through. */
			rc = wait_suspended(d, t0 + (uint64_t)d->ack_timeout_ms * NSEC_PER_MSEC);
			if (rc == 0)
				goto suspended;
			if (rc == -ETIMEDOUT)
				log_error("domain %u has a shutdown request pending and did not act "
					  "on it within %u ms: no checkpoint possible",
					  d->domid, d->ack_timeout_ms);
			return rc == -ETIMEDOUT ? -EBUSY : rc;
		}
		if (rc == 0)
			rc = wait_taken(d, t0 + (uint64_t)d->ack_timeout_ms * NSEC_PER_MSEC);
		if (rc == -ETIMEDOUT)
			return rc;
		break;
	}
	if (rc < 0) {
		log_error("cannot ask domain %u to suspend (%s): %s", d->domid, how, strerror(-rc));
		return rc;
	}
	rc = wait_suspended(d, clk_now_ns() + (uint64_t)d->suspend_timeout_ms * NSEC_PER_MSEC);
	if (rc == -ETIMEDOUT) {
		/* It took the request: it may suspend yet, and must not stay so. */
		d->late = true;
		log_error("domain %u did not suspend within %u ms of taking the request (%s): "
			  "it runs on unsuspended, and is resumed if it suspends later; a slow "
			  "guest can be given longer with HA_XEN_SUSPEND_TIMEOUT_MS",
			  d->domid, d->suspend_timeout_ms, how);
	}
	if (rc < 0)
		return rc;
suspended:;
	uint64_t now = clk_now_ns(), t = now - t0;

	d->suspended = true;
	d->t_pause = now;
	d->t.n++;
	d->t.suspend_ns += t;
	if (t > d->t.suspend_max_ns)
		d->t.suspend_max_ns = t;
	log_debug("suspended in %.1f ms (%s)", MS(t), how);
	return 0;
}

int hv_xen_resume(struct hv_dom *d)
{
	uint64_t t0 = clk_now_ns();
	int rc;

	if (!d->suspended) {
		hv_xen_catch_late(d);
		return 0;
	}
	rc = hv_xen_resume_domain(d, hv_xen_resume_fast(d->via));
	if (rc < 0) {
		log_error("cannot resume domain %u after its checkpoint: %s; it stays suspended "
			  "(`xl destroy` it and let the secondary take over)",
			  d->domid, strerror(-rc));
		return rc;
	}
	d->suspended = false;
	d->t.resume_ns += clk_now_ns() - t0;
	log_debug("resumed in %.1f ms; suspended for %.1f ms", MS(clk_now_ns() - t0),
		  MS(clk_now_ns() - d->t_pause));
	return 0;
}
