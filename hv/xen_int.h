/* The Xen backend's primary side, inside hv/ only: xen.c (open, the
 * mappings, log-dirty, state, the ops) and xen_pause.c (the suspend
 * protocol: pause and resume, and what the domain turned out to be doing).
 * Include it before any system header: Xen's public headers need GNU C
 * (anonymous unions, aligned attributes) and refuse strict ISO mode; the
 * rest of the tree stays -std=c11. */
#ifndef HA_HV_XEN_INT_H
#define HA_HV_XEN_INT_H

#undef __STRICT_ANSI__
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <xenctrl.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xenguest.h>
#include <xenstore.h>

#include "common/bitmap.h"
#include "hv/xen.h"

/* Most pfns mapped by one xenforeignmemory_map call (64 MiB). */
#define XEN_MAP_CHUNK 16384u
/* How long a guest may take to take a suspend request, then to suspend
 * (libxl allows 60 s for each; HA_XEN_ACK_TIMEOUT_MS and
 * HA_XEN_SUSPEND_TIMEOUT_MS override, 100..600000). */
#define XEN_ACK_TIMEOUT_MS 60000u
#define XEN_SUSPEND_TIMEOUT_MS 60000u
/* The longest sleep while waiting for the guest: a wake-up Xen or
 * xenstored failed to deliver costs at most this. */
#define XEN_WAIT_POLL_MS 100

_Static_assert(SHUTDOWN_poweroff == 0 && SHUTDOWN_reboot == 1 && SHUTDOWN_suspend == 2 &&
		       SHUTDOWN_crash == 3 && SHUTDOWN_watchdog == 4,
	       "hv/xen_suspend.c names Xen's shutdown reasons by number");

/* One xenforeignmemory mapping: a run of present pfns. */
struct mapping {
	uint8_t *addr;
	uint32_t n;
};

/* libxenctrl 4.17 exports this (VERS_4.17.0) without declaring it in its
 * public header; libxc's own save uses it. It replaces each of num (at
 * most 1024) pfns in arr by its XEN_DOMCTL_PFINFO_* type. */
int xc_get_pfn_type_batch(xc_interface *xch, uint32_t dom, unsigned int num, xen_pfn_t *arr);

struct hv_dom {
	xc_interface *xch;
	xenforeignmemory_handle *fmem;
	struct xs_handle *xsh;
	xenevtchn_handle *xce;
	int suspend_port; /* local port bound to the guest's suspend channel, -1 */

	uint32_t domid;
	char name[64];
	bool pvh;
	char ctl_path[64]; /* its control/shutdown node */
	uint32_t vcpus;
	uint32_t xen_major, xen_minor;
	uint8_t mac[6];
	char iface[16];
	uint64_t nr_pfns;
	uint64_t populated;

	uint8_t **pages;   /* per pfn: its mapping, NULL for a hole */
	struct mapping *maps;
	size_t nmaps;
	/* The domain's page count when it was mapped (xc_dominfo nr_pages);
	 * a change means its memory map changed under the mappings.
	 * nr_pages_seen: the count at the last look at the domain (in a
	 * pause: the suspended domain's). */
	uint64_t tot_pages, nr_pages_seen;
	/* Its balloon target (memory/target, KiB) when it was mapped, and a
	 * change of it found (check_changes): the next session waits for the
	 * guest to reach the new one. */
	uint64_t target_kib;
	bool balloon;
	bool mapped_fresh; /* mapped at open: the first session maps nothing again */
	bool changed;      /* its memory map or configuration changed (check_changes) */
	/* Unmapped pfns the guest wrote that hold no page this side can map
	 * (Xen's own pages in its physmap), checked once per mapping. */
	struct bitmap not_ram;

	bool logdirty;
	xc_hypercall_buffer_t dirty_hbuf;
	void *dirty_buf;
	int dirty_buf_pages;

	uint8_t *hvm_ctx;
	size_t hvm_ctx_cap;
	char *config;      /* libxl's JSON configuration of the domain, NUL-terminated */
	size_t config_len; /* with the NUL */
	/* What the secondary gets: config with the live balloon target (as
	 * `xl save` retrieves it), or NULL when that is config itself. */
	char *config_out;
	uint32_t config_out_len;
	char config_path[160]; /* where libxl keeps it ("" when unknown) */
	struct timespec config_mtime; /* ... and its time and size when read */
	off_t config_size;
	bool suspended;
	enum hv_xen_via via; /* how the current (or last) suspend was asked */
	/* A suspend the guest took but did not finish in time: when it does,
	 * it is resumed (checked at each call into this backend). */
	bool late;
	unsigned ack_timeout_ms, suspend_timeout_ms;

	/* Where a checkpoint's pause goes, summed over the session (logged
	 * at close; per epoch at debug level). */
	struct {
		uint64_t n, suspend_ns, suspend_max_ns, harvest_ns, state_ns, resume_ns;
		/* What ended each wait for a suspend: a notification (watch or
		 * event channel) or the poll timer. */
		uint64_t woke_notified, woke_timer;
	} t;
	uint64_t t_pause;
};

#define MS(ns) ((double)(ns) / 1e6)

/* xen_pause.c */
int hv_xen_getinfo(struct hv_dom *d, xc_dominfo_t *info);
/* What the domain is now, for hv_xen_classify / hv_xen_describe. */
struct hv_xen_info hv_xen_dom_state(struct hv_dom *d);
/* Logs what a domain found not running did (and where); its error. */
int hv_xen_report_end(struct hv_dom *d, const struct hv_xen_info *i, bool requested);
/* Resumes a suspended domain and tells xenstored, as libxl does. */
int hv_xen_resume_domain(struct hv_dom *d, bool fast);
/* A suspend that came after its timeout: resume the guest. */
void hv_xen_catch_late(struct hv_dom *d);
/* Sleeps until xenstore or the suspend channel has news, at most until
 * deadline (and XEN_WAIT_POLL_MS). True when woken by news. */
bool hv_xen_wait_news(struct hv_dom *d, uint64_t deadline);
/* The control/shutdown node (malloc'd; NULL when absent). */
char *hv_xen_read_ctl(struct hv_dom *d, xs_transaction_t t);
/* Withdraws a suspend request the guest has not taken. */
int hv_xen_cancel_request(struct hv_dom *d);
int hv_xen_pause(struct hv_dom *d);
int hv_xen_resume(struct hv_dom *d);

#endif
