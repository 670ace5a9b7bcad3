/* The xen backend, primary side: a domain is "xen:NAME" or "xen:DOMID" on
 * the Xen host this runs on (dom0).
 *
 *   log-dirty      xc_shadow_control(ENABLE_LOGDIRTY), harvest with
 *                  xc_logdirty_control(CLEAN) into a hypercall buffer
 *   pause          suspend, as libxl does (hv/xen.h has the choice): the
 *                  guest's suspend event channel, or control/shutdown =
 *                  "suspend" in xenstore, or (HVM without PV drivers, or
 *                  asleep) xc_domain_shutdown(SHUTDOWN_suspend). In two
 *                  phases, each with its own timeout: the guest takes the
 *                  xenstore request (clears the node; on timeout the
 *                  request is withdrawn inside a transaction, so that a
 *                  last-moment acknowledgement is seen), then Xen reports
 *                  the domain shut down for suspend (@releaseDomain, the
 *                  event channel)
 *   state          X86_TSC_INFO, HVM_CONTEXT, HVM_PARAMS (the records libxc
 *                  writes at the end of an HVM checkpoint) and the domain's
 *                  libxl configuration (HA_XEN_CONFIG) for the secondary
 *   resume         xc_domain_resume(fast): the guest's suspend hypercall
 *                  returns "cancelled" and it runs on without reconnecting
 *                  (a forced guest: not fast, its registers untouched);
 *                  then xs_resume_domain, so that xenstored reports the
 *                  domain's next shutdown (@releaseDomain) again, to us and
 *                  to a later xl save / migrate / remus
 *   pages          the present pages (Xen's page types tell holes apart)
 *                  are mapped once, in runs, with xenforeignmemory_map
 *
 * PVH and HVM only: PV domains are refused, saying why (log-dirty for PV
 * needs shadow paging, which Xen built without CONFIG_SHADOW_PAGING lacks;
 * and PV page-table normalisation is not implemented here).
 */
#include "hv/xen_int.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xen/hvm/params.h>

#include "checkpoint/stream_format.h"
#include "common/clock.h"
#include "common/log.h"

/* The HVM parameters a restore needs (the set libxc's HVM save sends). */
static const uint32_t hvm_params[] = {
	HVM_PARAM_STORE_PFN,
	HVM_PARAM_IOREQ_PFN,
	HVM_PARAM_BUFIOREQ_PFN,
	HVM_PARAM_PAGING_RING_PFN,
	HVM_PARAM_MONITOR_RING_PFN,
	HVM_PARAM_SHARING_RING_PFN,
	HVM_PARAM_VM86_TSS_SIZED,
	HVM_PARAM_CONSOLE_PFN,
	HVM_PARAM_ACPI_IOPORTS_LOCATION,
	HVM_PARAM_VIRIDIAN,
	HVM_PARAM_IDENT_PT,
	HVM_PARAM_VM_GENERATION_ID_ADDR,
	HVM_PARAM_IOREQ_SERVER_PFN,
	HVM_PARAM_NR_IOREQ_SERVER_PAGES,
	HVM_PARAM_X87_FIP_WIDTH,
	HVM_PARAM_MCA_CAP,
};
#define NR_HVM_PARAMS (sizeof(hvm_params) / sizeof(hvm_params[0]))


static const char *const privcmd_paths[] = {"/dev/xen/privcmd", "/proc/xen/privcmd"};

bool hv_xen_present(const char *action)
{
	for (size_t i = 0; i < sizeof(privcmd_paths) / sizeof(privcmd_paths[0]); i++)
		if (access(privcmd_paths[i], R_OK | W_OK) == 0)
			return true;
	log_error("%s: no Xen hypervisor here (/proc/xen / privcmd missing): run this in dom0 "
		  "of a Xen host, with xenfs mounted on /proc/xen and the xen-privcmd module "
		  "loaded",
		  action);
	return false;
}

/* "NAME" or "DOMID" -> domid, through xenstore like the toolstack does. */
static int resolve(struct hv_dom *d, const char *name)
{
	char *end, path[64], **ids;
	unsigned long v = strtoul(name, &end, 10);
	unsigned int n = 0;
	int rc = -ENOENT;

	if (*name && !*end && v < DOMID_FIRST_RESERVED) {
		d->domid = (uint32_t)v;
		return 0;
	}
	ids = xs_directory(d->xsh, XBT_NULL, "/local/domain", &n);
	for (unsigned int i = 0; ids && i < n && rc < 0; i++) {
		unsigned int len;
		char *nm;

		snprintf(path, sizeof(path), "/local/domain/%s/name", ids[i]);
		nm = xs_read(d->xsh, XBT_NULL, path, &len);
		if (nm && !strcmp(nm, name)) {
			d->domid = (uint32_t)strtoul(ids[i], NULL, 10);
			rc = 0;
		}
		free(nm);
	}
	free(ids);
	return rc;
}

static char *xs_readf(struct hv_dom *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *xs_readf(struct hv_dom *d, const char *fmt, ...)
{
	char path[256];
	unsigned int len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return xs_read(d->xsh, XBT_NULL, path, &len);
}

/* A guest that ends itself must be seen doing so (ha-protect then tells
 * the secondary to discard its copy). The toolstack destroys or restarts
 * it at once unless its action is "preserve": then it may look destroyed,
 * and the secondary activates a copy (beside the restarted guest, after a
 * reboot). */
static void check_actions(struct hv_dom *d)
{
	static const char *const keys[] = {"on_poweroff", "on_reboot", "on_crash"};
	/* libxl leaves defaults out of its JSON. */
	static const char *const defaults[] = {"destroy", "restart", "destroy"};
	char v[48], bad[240] = "", err[320];
	struct hv_xen_config *c;

	if (!d->config)
		return;
	if (hv_xen_config_parse(d->config, d->config_len, &c, err, sizeof(err)) < 0) {
		log_warn("domain %s: %s", d->name, err);
		return;
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *val = hv_xen_config_str(c, keys[i]);
		size_t n = strlen(bad);

		if (val)
			snprintf(v, sizeof(v), "%s", val);
		else
			snprintf(v, sizeof(v), "%s (default)", defaults[i]);
		if (!strstr(v, "preserve"))
			snprintf(bad + n, sizeof(bad) - n, "%s%s = %s", n ? ", " : "", keys[i], v);
	}
	if (bad[0])
		log_warn("domain %s: %s. A guest that powers off, reboots or crashes may be "
			 "destroyed (or restarted) before ha-protect sees why; it then looks "
			 "destroyed and the secondary activates its copy. Give protected domains "
			 "on_poweroff/on_reboot/on_crash = \"preserve\"",
			 d->name, bad);
	hv_xen_config_free(c);
}

/* libxl keeps each domain's configuration as JSON under /var/lib/xen;
 * the secondary restores the domain with it (as `xl save` does). */
/* The file at config_path, whole and NUL-terminated (*len with the NUL),
 * and its time and size; NULL when unreadable. */
static char *read_file(const char *path, size_t *len, struct stat *st)
{
	char *buf = NULL;
	FILE *f = fopen(path, "re");

	if (!f)
		return NULL;
	if (fstat(fileno(f), st) == 0 && st->st_size > 0 && st->st_size < (1l << 20)) {
		buf = malloc((size_t)st->st_size + 1);
		if (buf && fread(buf, 1, (size_t)st->st_size, f) == (size_t)st->st_size) {
			buf[st->st_size] = '\0';
			*len = (size_t)st->st_size + 1;
		} else {
			free(buf);
			buf = NULL;
		}
	}
	fclose(f);
	return buf;
}

static void read_config(struct hv_dom *d, const xc_dominfo_t *info)
{
	const uint8_t *u = info->handle;
	struct stat st;

	snprintf(d->config_path, sizeof(d->config_path),
		 "/var/lib/xen/userdata-d.%u.%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x.libxl-json",
		 d->domid, u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
		 u[11], u[12], u[13], u[14], u[15]);
	d->config = read_file(d->config_path, &d->config_len, &st);
	if (!d->config) {
		log_warn("no libxl configuration for domain %u (%s: %s): the secondary will "
			 "need HA_XEN_CONFIG=FILE (an xl config) to restore it",
			 d->domid, d->config_path, errno ? strerror(errno) : "empty or too large");
		return;
	}
	d->config_mtime = st.st_mtim;
	d->config_size = st.st_size;
}

/* G6: libxl rewrites the configuration when a device is attached or
 * detached: the secondary's copy, built from the old one, would lack it.
 * Cheap while nothing changed (a stat); true when the content did. */
static bool config_changed(struct hv_dom *d)
{
	struct stat st;
	size_t len = 0;
	char *now;
	bool changed;

	if (!d->config || stat(d->config_path, &st) < 0)
		return false;
	if (st.st_size == d->config_size && st.st_mtim.tv_sec == d->config_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == d->config_mtime.tv_nsec)
		return false;
	now = read_file(d->config_path, &len, &st);
	if (!now)
		return false;
	changed = len != d->config_len || memcmp(now, d->config, len);
	free(d->config);
	d->config = now;
	d->config_len = len;
	d->config_mtime = st.st_mtim;
	d->config_size = st.st_size;
	return changed;
}

static int map_run(struct hv_dom *d, xen_pfn_t *pfns, int *err, uint64_t first, uint32_t n)
{
	struct mapping *m;
	void *addr;

	for (uint32_t i = 0; i < n; i++)
		pfns[i] = first + i;
	addr = xenforeignmemory_map(d->fmem, d->domid, PROT_READ, n, pfns, err);
	if (!addr) {
		int e = errno;

		log_error("cannot map the memory of domain %u (pfns %llu..%llu): %s; ha-protect "
			  "must run in dom0 as root, and the domain must not be dying",
			  d->domid, (unsigned long long)first, (unsigned long long)(first + n - 1),
			  strerror(e));
		return -e;
	}
	m = realloc(d->maps, (d->nmaps + 1) * sizeof(*d->maps));
	if (!m) {
		xenforeignmemory_unmap(d->fmem, addr, n);
		return -ENOMEM;
	}
	d->maps = m;
	d->maps[d->nmaps++] = (struct mapping){addr, n};
	for (uint32_t i = 0; i < n; i++) {
		if (err[i]) /* became a hole between the type query and now */
			continue;
		d->pages[first + i] = (uint8_t *)addr + (size_t)i * CKPT_PAGE_SIZE;
		d->populated++;
	}
	return 0;
}

/* Its balloon target (memory/target, KiB; 0 when unknown). */
static uint64_t read_target(struct hv_dom *d)
{
	char *s = xs_readf(d, "/local/domain/%u/memory/target", d->domid);
	uint64_t kib = s ? strtoull(s, NULL, 10) : 0;

	free(s);
	return kib;
}

/* G6: the configuration the secondary gets carries the live balloon
 * target, as `xl save` retrieves it (libxl keeps memory/target at
 * target_memkb less the video memory), so that a copy built from it keeps
 * the size the guest was given. */
static void adapt_config(struct hv_dom *d)
{
	struct hv_xen_config *c;
	int64_t cur, video = 0;
	char err[320];

	free(d->config_out);
	d->config_out = NULL;
	if (!d->config || !d->target_kib ||
	    hv_xen_config_parse(d->config, d->config_len, &c, err, sizeof(err)) < 0)
		return;
	if (hv_xen_config_int(c, "b_info.video_memkb", &video) < 0 || video < 0)
		video = 0;
	if (hv_xen_config_int(c, "b_info.target_memkb", &cur) == 0 &&
	    cur != (int64_t)d->target_kib + video &&
	    hv_xen_config_set_int(c, "b_info.target_memkb", (int64_t)d->target_kib + video) == 0 &&
	    hv_xen_config_dump(c, &d->config_out, &d->config_out_len) == 0)
		log_info("domain %u: its configuration goes to the secondary with its balloon "
			 "target of %llu KiB (target_memkb %lld in %s)",
			 d->domid, (unsigned long long)d->target_kib, (long long)cur, d->config_path);
	hv_xen_config_free(c);
}

static void unmap_memory(struct hv_dom *d)
{
	for (size_t i = 0; i < d->nmaps; i++)
		xenforeignmemory_unmap(d->fmem, d->maps[i].addr, d->maps[i].n);
	free(d->maps);
	free(d->pages);
	d->maps = NULL;
	d->pages = NULL;
	d->nmaps = 0;
	d->populated = 0;
	bitmap_destroy(&d->not_ram);
}

/* Maps the guest's present pages once, for the whole session: Xen reports
 * each pfn's type (1024 per call, as libxc's save asks), and every run of
 * present pfns is mapped in one call. Holes (XTAB: nothing there or a
 * special page; BROKEN; XALLOC) stay unmapped. */
static int map_memory(struct hv_dom *d)
{
	xen_pfn_t *pfns = malloc(XEN_MAP_CHUNK * sizeof(*pfns));
	int *err = malloc(XEN_MAP_CHUNK * sizeof(*err));
	uint64_t t0 = clk_now_ns(), run = 0;
	uint32_t nrun = 0;
	int rc = 0;

	xc_dominfo_t info;

	if (hv_xen_getinfo(d, &info) < 0) {
		rc = -ESRCH;
		goto out;
	}
	d->tot_pages = d->nr_pages_seen = info.nr_pages;
	d->target_kib = read_target(d);
	adapt_config(d);
	bitmap_destroy(&d->not_ram);
	rc = bitmap_init(&d->not_ram, d->nr_pfns);
	if (rc < 0)
		goto out;
	d->pages = calloc(d->nr_pfns, sizeof(*d->pages));
	if (!pfns || !err || !d->pages) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint64_t base = 0; base < d->nr_pfns && rc == 0; base += 1024) {
		xen_pfn_t types[1024];
		uint32_t n = d->nr_pfns - base < 1024 ? (uint32_t)(d->nr_pfns - base) : 1024;

		for (uint32_t i = 0; i < n; i++)
			types[i] = base + i;
		if (xc_get_pfn_type_batch(d->xch, d->domid, n, types) < 0) {
			rc = -errno;
			log_error("Xen refused the page types of domain %u (pfns %llu..): %s",
				  d->domid, (unsigned long long)base, strerror(errno));
			break;
		}
		for (uint32_t i = 0; i < n && rc == 0; i++) {
			uint32_t t = (uint32_t)types[i] & XEN_DOMCTL_PFINFO_LTAB_MASK;
			bool present = t != XEN_DOMCTL_PFINFO_XTAB && t != XEN_DOMCTL_PFINFO_BROKEN &&
				       t != XEN_DOMCTL_PFINFO_XALLOC;

			if (present && nrun == 0)
				run = base + i;
			if (present)
				nrun++;
			if (nrun && (!present || nrun == XEN_MAP_CHUNK)) {
				rc = map_run(d, pfns, err, run, nrun);
				nrun = 0;
			}
		}
	}
	if (rc == 0 && nrun)
		rc = map_run(d, pfns, err, run, nrun);
	if (rc == 0)
		log_info("mapped domain %u: %llu pages present in a map of %llu pfns, %zu runs "
			 "(%llu ms)",
			 d->domid, (unsigned long long)d->populated, (unsigned long long)d->nr_pfns,
			 d->nmaps, (unsigned long long)((clk_now_ns() - t0) / NSEC_PER_MSEC));
out:
	free(pfns);
	free(err);
	return rc;
}

/* The guest's suspend event channel, if it advertises one. */
static void bind_suspend_channel(struct hv_dom *d)
{
	char *port = xs_readf(d, "/local/domain/%u/device/suspend/event-channel", d->domid);
	xenevtchn_port_or_error_t local;

	d->suspend_port = -1;
	if (!port || !*port) {
		free(port);
		return;
	}
	d->xce = xenevtchn_open(NULL, 0);
	if (!d->xce) {
		log_warn("cannot open the event channel device (%s): suspending through xenstore",
			 strerror(errno));
		free(port);
		return;
	}
	local = xenevtchn_bind_interdomain(d->xce, d->domid, (uint32_t)strtoul(port, NULL, 10));
	if (local < 0 || xc_domain_subscribe_for_suspend(d->xch, d->domid, (evtchn_port_t)local)) {
		log_warn("cannot bind the guest's suspend event channel %s (%s): suspending "
			 "through xenstore",
			 port, strerror(errno));
		if (local >= 0)
			xenevtchn_unbind(d->xce, (evtchn_port_t)local);
	} else {
		d->suspend_port = local;
		log_info("the guest advertises suspend event channel %s", port);
	}
	free(port);
}

static void xen_close(struct hv_dom *d)
{
	if (!d)
		return;
	/* A guest that took a request and has not suspended yet gets a last
	 * chance to be seen (and resumed) before nobody watches it. */
	for (uint64_t end = clk_now_ns() + 2 * NSEC_PER_SEC; d->late && clk_now_ns() < end;) {
		hv_xen_catch_late(d);
		if (d->late)
			hv_xen_wait_news(d, end);
	}
	if (d->late)
		log_warn("domain %u took a suspend request and has not suspended: should it "
			 "still do so, nothing resumes it (`xl save` / `xl restore` it)",
			 d->domid);
	if (d->t.n)
		log_info("domain %u, %llu checkpoints: suspend avg %.1f ms (max %.1f), "
			 "dirty harvest avg %.1f ms, state capture avg %.1f ms, resume avg %.1f ms; "
			 "suspends noticed by notification %llu, by polling %llu",
			 d->domid, (unsigned long long)d->t.n, MS(d->t.suspend_ns / d->t.n),
			 MS(d->t.suspend_max_ns), MS(d->t.harvest_ns / d->t.n),
			 MS(d->t.state_ns / d->t.n), MS(d->t.resume_ns / d->t.n),
			 (unsigned long long)d->t.woke_notified, (unsigned long long)d->t.woke_timer);
	unmap_memory(d);
	if (d->logdirty)
		xc_shadow_control(d->xch, d->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0);
	if (d->dirty_buf)
		xc__hypercall_buffer_free_pages(d->xch, &d->dirty_hbuf, d->dirty_buf_pages);
	if (d->xce) {
		if (d->suspend_port >= 0)
			xenevtchn_unbind(d->xce, (evtchn_port_t)d->suspend_port);
		xenevtchn_close(d->xce);
	}
	if (d->xsh)
		xs_close(d->xsh);
	if (d->fmem)
		xenforeignmemory_close(d->fmem);
	if (d->xch)
		xc_interface_close(d->xch);
	free(d->hvm_ctx);
	free(d->config);
	free(d->config_out);
	free(d);
}

static unsigned env_ms(const char *var, unsigned def)
{
	const char *v = getenv(var);
	unsigned long ms = v ? strtoul(v, NULL, 10) : 0;

	return ms >= 100 && ms <= 600000 ? (unsigned)ms : def;
}

/* A domain that is suspended, or has a suspend request pending, when
 * protection starts: another tool is saving it, or an earlier run died
 * mid-suspend. Refused, unless HA_XEN_RESUME_SUSPENDED=1 says that
 * nothing else holds it (then a suspended domain is resumed). */
static int check_not_suspending(struct hv_dom *d, const char *name, const struct hv_xen_info *st)
{
	bool take = getenv("HA_XEN_RESUME_SUSPENDED") &&
		    !strcmp(getenv("HA_XEN_RESUME_SUSPENDED"), "1");
	char *v;
	bool pending;

	if (hv_xen_classify(st) == HV_XEN_SUSPENDED) {
		if (!take) {
			log_error("domain %s (id %u) is suspended: an xl save, migrate or remus "
				  "holds it, or a checkpointer died while it was suspended. If "
				  "nothing else holds it, HA_XEN_RESUME_SUSPENDED=1 makes "
				  "ha-protect resume it first",
				  name, d->domid);
			return -EBUSY;
		}
		struct hv_xen_guest g = {.pvh = d->pvh};
		int rc;

		xc_hvm_param_get(d->xch, d->domid, HVM_PARAM_CALLBACK_IRQ, &g.callback_irq);
		xc_hvm_param_get(d->xch, d->domid, HVM_PARAM_ACPI_S_STATE, &g.acpi_s_state);
		rc = hv_xen_resume_domain(d, hv_xen_resume_fast(hv_xen_suspend_via(&g)));

		if (rc < 0) {
			log_error("cannot resume the suspended domain %s (id %u): %s", name,
				  d->domid, strerror(-rc));
			return -EBUSY;
		}
		log_warn("domain %s (id %u) was suspended: resumed it", name, d->domid);
	}
	v = hv_xen_read_ctl(d, XBT_NULL);
	pending = v && !strcmp(v, "suspend");
	free(v);
	if (!pending)
		return 0;
	if (!take) {
		log_error("domain %s (id %u) has a suspend request pending (%s = \"suspend\"): "
			  "an xl save, migrate or remus is under way, or an earlier run left it "
			  "behind for a guest that is paused or hung. If nothing else holds it, "
			  "HA_XEN_RESUME_SUSPENDED=1 makes ha-protect withdraw it",
			  name, d->domid, d->ctl_path);
		return -EBUSY;
	}
	if (hv_xen_cancel_request(d) == 0)
		log_warn("withdrew the stale suspend request of domain %s (id %u)", name, d->domid);
	return 0;
}

static int xen_open(const char *name, struct hv_dom **out)
{
	struct hv_dom *d;
	xc_dominfo_t info;
	xc_physinfo_t phys = {0};
	xen_pfn_t nr = 0;
	struct hv_xen_info st;
	char *s;
	int ver, rc;

	if (!hv_xen_present("cannot protect a Xen domain"))
		return -ENODEV;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->suspend_port = -1;
	d->dirty_hbuf.ubuf = (void *)-1;
	d->ack_timeout_ms = env_ms("HA_XEN_ACK_TIMEOUT_MS", XEN_ACK_TIMEOUT_MS);
	d->suspend_timeout_ms = env_ms("HA_XEN_SUSPEND_TIMEOUT_MS", XEN_SUSPEND_TIMEOUT_MS);
	d->xch = xc_interface_open(NULL, NULL, 0);
	d->fmem = xenforeignmemory_open(NULL, 0);
	d->xsh = xs_open(0);
	if (!d->xch || !d->fmem || !d->xsh) {
		rc = -errno ? -errno : -EACCES;
		log_error("cannot open the Xen control interfaces (%s%s%s): %s; run as root in "
			  "dom0 with xenstored running",
			  d->xch ? "" : "libxenctrl ", d->fmem ? "" : "foreign memory ",
			  d->xsh ? "" : "xenstore", strerror(-rc));
		goto fail;
	}
	rc = resolve(d, name);
	if (rc == 0)
		rc = hv_xen_getinfo(d, &info);
	if (rc < 0) {
		log_error("no Xen domain named %s: `xl list` shows the running ones", name);
		rc = -ENOENT;
		goto fail;
	}
	if (d->domid == 0) {
		log_error("domain 0 cannot be protected: it runs this program");
		rc = -EINVAL;
		goto fail;
	}
	if (info.dying || info.crashed || (info.shutdown && info.shutdown_reason != SHUTDOWN_suspend)) {
		log_error("domain %s (id %u) is %s: nothing to protect", name, d->domid,
			  info.dying     ? "dying"
			  : info.crashed ? "crashed"
					 : hv_xen_reason_name(info.shutdown_reason));
		rc = -ESRCH;
		goto fail;
	}
	if (!info.hvm) {
		bool shadow = xc_physinfo(d->xch, &phys) == 0 &&
			      (phys.capabilities & XEN_SYSCTL_PHYSCAP_shadow);

		if (!shadow)
			log_error("domain %s (id %u) is a PV guest: checkpointing needs log-dirty "
				  "tracking, which for PV guests needs shadow paging, and this Xen "
				  "is built without it (CONFIG_SHADOW_PAGING, as Debian's is). "
				  "Run the guest as type = \"pvh\" (or \"hvm\")",
				  name, d->domid);
		else
			log_error("domain %s (id %u) is a PV guest: ha-protect checkpoints PVH and "
				  "HVM guests only (PV page tables would need normalising into the "
				  "stream). Run the guest as type = \"pvh\" (or \"hvm\")",
				  name, d->domid);
		rc = -EOPNOTSUPP;
		goto fail;
	}
	s = xs_readf(d, "/local/domain/%u/name", d->domid);
	snprintf(d->name, sizeof(d->name), "%s", s ? s : name);
	free(s);
	d->vcpus = info.max_vcpu_id + 1;
	ver = xc_version(d->xch, XENVER_version, NULL);
	d->xen_major = (uint32_t)ver >> 16;
	d->xen_minor = (uint32_t)ver & 0xffff;
	if (xc_domain_nr_gpfns(d->xch, d->domid, &nr) < 0 || nr == 0) {
		rc = errno ? -errno : -EINVAL;
		log_error("cannot read the physical map size of domain %u: %s", d->domid,
			  strerror(-rc));
		goto fail;
	}
	d->nr_pfns = nr;
	/* PVH: HVM without emulated PIC, IO-APIC or PIT (libxl gives PVH the
	 * local APIC at most). */
	d->pvh = !(info.arch_config.emulation_flags &
		   (XEN_X86_EMU_PIC | XEN_X86_EMU_IOAPIC | XEN_X86_EMU_PIT));
	/* An HVM guest with a device model: QEMU's device state is neither
	 * paused nor saved, and its DMA writes into the guest do not show in
	 * the log-dirty bitmap, so a copy could resume with devices and
	 * memory that disagree. */
	s = d->pvh ? NULL : xs_readf(d, "/local/domain/0/device-model/%u/state", d->domid);
	if (s) {
		log_error("domain %s (id %u) is an HVM guest with a device model (QEMU, %s): its "
			  "emulated devices' state is not checkpointed and their DMA writes are not "
			  "tracked, so its copy could be wrong. ha-protect protects PVH guests "
			  "(type = \"pvh\") and HVM guests without a device model",
			  name, d->domid, s);
		free(s);
		rc = -EOPNOTSUPP;
		goto fail;
	}
	snprintf(d->ctl_path, sizeof(d->ctl_path), "/local/domain/%u/control/shutdown", d->domid);
	st = (struct hv_xen_info){.exists = true, .shutdown = info.shutdown,
				  .reason = info.shutdown_reason};
	rc = check_not_suspending(d, name, &st);
	if (rc < 0)
		goto fail;

	/* Its first network interface: the backend in dom0 (libxl's vifD.0). */
	s = xs_readf(d, "/local/domain/0/backend/vif/%u/0/mac", d->domid);
	if (s) {
		unsigned m[6];

		if (sscanf(s, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6)
			for (int i = 0; i < 6; i++)
				d->mac[i] = (uint8_t)m[i];
		free(s);
		s = xs_readf(d, "/local/domain/0/backend/vif/%u/0/vifname", d->domid);
		if (s && *s)
			snprintf(d->iface, sizeof(d->iface), "%s", s);
		else
			snprintf(d->iface, sizeof(d->iface), "vif%u.0", d->domid);
		free(s);
	}
	read_config(d, &info);
	check_actions(d);
	bind_suspend_channel(d);
	if (!xs_watch(d->xsh, "@releaseDomain", "ha-protect") ||
	    !xs_watch(d->xsh, d->ctl_path, "ha-protect-ctl")) {
		rc = -errno;
		log_error("cannot watch @releaseDomain and %s in xenstore: %s", d->ctl_path,
			  strerror(errno));
		goto fail;
	}
	rc = map_memory(d);
	if (rc < 0)
		goto fail;
	d->mapped_fresh = true;
	log_info("Xen %u.%u: domain %s (id %u), %s%s, %u vCPUs, %llu MiB present", d->xen_major,
		 d->xen_minor, d->name, d->domid, info.hap ? "HAP " : "", d->pvh ? "PVH" : "HVM",
		 d->vcpus,
		 (unsigned long long)(d->populated >> 8));
	*out = d;
	return 0;
fail:
	xen_close(d);
	return rc;
}

static int xen_info(struct hv_dom *d, struct hv_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", d->name);
	out->nr_pages = d->nr_pfns;
	out->vcpus = d->vcpus;
	memcpy(out->mac, d->mac, 6);
	snprintf(out->iface, sizeof(out->iface), "%s", d->iface);
	/* PVH is an HVM container: libxc streams it as x86 HVM. */
	out->domain_type = CKPT_DHDR_X86_HVM;
	out->xen_major = d->xen_major;
	out->xen_minor = d->xen_minor;
	/* Its disk, so that ha-protect can refuse one that nothing replicates. */
	if (d->config) {
		struct hv_xen_config *c;
		char err[320];
		const char *disk;

		if (hv_xen_config_parse(d->config, d->config_len, &c, err, sizeof(err)) == 0) {
			disk = hv_xen_config_str(c, "disks.0.pdev_path");
			snprintf(out->disk, sizeof(out->disk), "%s", disk ? disk : "");
			hv_xen_config_free(c);
		}
	}
	return 0;
}

/* Reads and clears the log-dirty bitmap (into DIRTY unless NULL). FINAL:
 * the domain is suspended and this is the checkpoint's last harvest: Xen
 * then also marks the frames it keeps mapped for the guest dirty (nested
 * virtualisation's structures), as libxc asks on its last pass. */
static int logdirty_clean(struct hv_dom *d, uint64_t *dirty, bool final)
{
	xc_shadow_op_stats_t stats;
	long long rc = xc_logdirty_control(d->xch, d->domid, XEN_DOMCTL_SHADOW_OP_CLEAN,
					   &d->dirty_hbuf, d->nr_pfns,
					   final ? XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL : 0, &stats);

	if (rc < 0) {
		int e = errno;

		log_error("Xen refused the log-dirty bitmap of domain %u: %s", d->domid, strerror(e));
		return -e;
	}
	if (dirty)
		memcpy(dirty, d->dirty_buf, (d->nr_pfns + 7) / 8);
	return 0;
}

/* After the guest's memory changed (a new balloon target, pages added):
 * the session that ended released this side's mappings, which kept the
 * pages it gave back allocated to it. Waits until its page count has
 * stood still for a second (at most 30 s), so that the next session maps
 * what it settled on rather than a balloon half way. */
static void wait_balloon(struct hv_dom *d)
{
	uint64_t t0 = clk_now_ns(), still = t0, last = UINT64_MAX, now = t0;
	xc_dominfo_t info;

	d->balloon = false;
	while (hv_xen_getinfo(d, &info) == 0) {
		now = clk_now_ns();
		if (info.nr_pages != last) {
			last = info.nr_pages;
			still = now;
		} else if (now - still >= NSEC_PER_SEC) {
			break;
		}
		if (now - t0 >= 30 * NSEC_PER_SEC) {
			log_warn("domain %u's page count still changes after 30 s (its balloon): "
				 "mapping it as it is; a later change ends the next session too",
				 d->domid);
			break;
		}
		clk_sleep_until_ns(now + 100 * NSEC_PER_MSEC);
	}
	if (last != UINT64_MAX)
		log_info("domain %u holds %llu MiB after its memory changed (balloon target %llu "
			 "KiB); waited %llu ms for it to settle",
			 d->domid, (unsigned long long)(last >> 8), (unsigned long long)read_target(d),
			 (unsigned long long)((now - t0) / NSEC_PER_MSEC));
}

/* The guest's page count is more than 4 MiB from its balloon target: a
 * balloon may be under way (a target changed before protection started,
 * or while it was degraded). */
static bool balloon_unsettled(struct hv_dom *d)
{
	uint64_t target = read_target(d);
	xc_dominfo_t info;

	if (!target || hv_xen_getinfo(d, &info) < 0)
		return false;
	uint64_t want = target / 4, have = info.nr_pages;

	return (have > want ? have - want : want - have) > 1024;
}

static int xen_dirty_start(struct hv_dom *d)
{
	size_t bytes = (d->nr_pfns + 63) / 64 * 8;
	int rc;

	hv_xen_catch_late(d);
	if (!d->dirty_buf) {
		d->dirty_buf_pages = (int)((bytes + 4095) / 4096);
		d->dirty_buf = xc__hypercall_buffer_alloc_pages(d->xch, &d->dirty_hbuf,
								d->dirty_buf_pages);
		if (!d->dirty_buf)
			return -ENOMEM;
	}
	if (!d->logdirty &&
	    xc_shadow_control(d->xch, d->domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0) < 0) {
		int e = errno;

		/* Left on by an earlier run that died: switch off and on again. */
		if (xc_shadow_control(d->xch, d->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0) < 0 ||
		    xc_shadow_control(d->xch, d->domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL,
				      0) < 0) {
			log_error("Xen refused log-dirty mode for domain %u (%s): a domain with "
				  "passed-through PCI devices cannot be tracked (the devices write "
				  "its memory behind Xen's back), nor one that needs shadow paging "
				  "on a Xen without it; remove the passthrough devices or protect "
				  "another domain",
				  d->domid, strerror(e));
			return -e;
		}
	}
	d->logdirty = true;
	/* Start from a clean bitmap: the next harvest reports writes from now. */
	rc = logdirty_clean(d, NULL, false);
	if (rc < 0)
		return rc;
	/* Every later session maps the domain again, after log-dirty is on:
	 * what changed in its memory map since (a balloon, a page moved) is
	 * in the new mappings, and the pre-copy sends all of it. */
	if (d->mapped_fresh && balloon_unsettled(d))
		d->mapped_fresh = false; /* mapped at open: again once it settled */
	if (!d->mapped_fresh) {
		unmap_memory(d);
		if (d->balloon || balloon_unsettled(d))
			wait_balloon(d);
		rc = map_memory(d);
	}
	d->mapped_fresh = false;
	d->changed = false;
	return rc;
}

/* Whether pfn, unmapped, holds a page now that can be mapped: Xen
 * reports writes to pfns that are no RAM of the guest's (Xen's own pages
 * mapped into its physmap, which cannot be mapped from here; holes), and
 * those are not pages the copy misses. */
static bool new_page(struct hv_dom *d, uint64_t pfn)
{
	xen_pfn_t t = pfn;
	uint32_t type;
	int err = 0;
	void *addr;

	if (xc_get_pfn_type_batch(d->xch, d->domid, 1, &t) < 0)
		return false;
	type = (uint32_t)t & XEN_DOMCTL_PFINFO_LTAB_MASK;
	if (type == XEN_DOMCTL_PFINFO_XTAB || type == XEN_DOMCTL_PFINFO_BROKEN ||
	    type == XEN_DOMCTL_PFINFO_XALLOC)
		return false;
	t = pfn;
	addr = xenforeignmemory_map(d->fmem, d->domid, PROT_READ, 1, &t, &err);
	if (!addr)
		return false;
	xenforeignmemory_unmap(d->fmem, addr, 1);
	return err == 0;
}

/* A page written that was not there when the domain was mapped (G2:
 * populated since, e.g. ballooned back): the copy would miss it. The
 * session ends (the secondary discards its copy) and the next one maps the
 * domain anew. */
static int check_unmapped(struct hv_dom *d, const struct bitmap *dirty)
{
	uint64_t n = 0, first = 0;

	for (size_t b = bitmap_next_set(dirty, 0); b < dirty->nbits;
	     b = bitmap_next_set(dirty, b + 1)) {
		if (d->pages[b] || bitmap_test(&d->not_ram, b))
			continue;
		if (!new_page(d, b)) {
			bitmap_set(&d->not_ram, b);
			continue;
		}
		if (!n++)
			first = b;
	}
	if (!n)
		return 0;
	log_error("domain %u wrote %llu pages that were not in its memory when it was mapped "
		  "(the first at pfn %llu): its memory map changed (ballooning, memory hot-plug). "
		  "This session ends and the secondary discards its copy; the next session maps "
		  "the domain again and copies it whole. A protected domain should have fixed "
		  "memory (memory = maxmem, no balloon target changes)",
		  d->domid, (unsigned long long)n, (unsigned long long)first);
	return -EXDEV;
}

static int xen_dirty_stop(struct hv_dom *d)
{
	/* The mappings hold a reference on every page: pages the guest gives
	 * back between sessions would stay allocated to it. */
	unmap_memory(d);
	d->mapped_fresh = false;
	if (!d->logdirty)
		return 0;
	d->logdirty = false;
	if (xc_shadow_control(d->xch, d->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0) < 0)
		return -errno;
	return 0;
}

static int xen_harvest(struct hv_dom *d, struct bitmap *dirty)
{
	uint64_t t0 = clk_now_ns();
	int rc;

	if (dirty->nbits != d->nr_pfns)
		return -EINVAL;
	hv_xen_catch_late(d);
	rc = logdirty_clean(d, dirty->words, d->suspended);
	if (rc == 0)
		rc = check_unmapped(d, dirty);
	if (d->suspended)
		d->t.harvest_ns += clk_now_ns() - t0;
	return rc;
}

static int save_hvm_params(struct hv_dom *d, struct hv_state *st)
{
	struct {
		struct ckpt_hvm_params_hdr h;
		struct {
			uint64_t index, value;
		} e[NR_HVM_PARAMS];
	} rec;

	memset(&rec, 0, sizeof(rec));
	for (size_t i = 0; i < NR_HVM_PARAMS; i++) {
		uint64_t v;

		if (xc_hvm_param_get(d->xch, d->domid, hvm_params[i], &v) < 0) {
			int e = errno;

			log_error("cannot read HVM parameter %u of domain %u: %s", hvm_params[i],
				  d->domid, strerror(e));
			return -e;
		}
		if (!v)
			continue;
		rec.e[rec.h.count].index = hvm_params[i];
		rec.e[rec.h.count].value = v;
		rec.h.count++;
	}
	return hv_state_add(st, CKPT_REC_HVM_PARAMS, &rec,
			    sizeof(rec.h) + rec.h.count * sizeof(rec.e[0]));
}

static int save_state(struct hv_dom *d, struct hv_state *st);

/* G2, G3, G6, checked once the guest runs again, not in its pause: a new
 * balloon target (`xl mem-set`; first, as libxl may rewrite the
 * configuration for it too), or a configuration libxl rewrote.
 * The next checkpoint then ends the session (save_state), and the next
 * session maps the domain again. A page count that grew is checked in
 * the pause (save_state). */
static void check_changes(struct hv_dom *d)
{
	uint64_t target;

	if (d->changed)
		return;
	target = read_target(d);
	if (target && d->target_kib && target != d->target_kib) {
		/* The guest gives pages back or takes more: the pages it gives
		 * back stay allocated while this side maps them, and the copy
		 * would keep them. */
		log_error("domain %u's balloon target changed from %llu to %llu KiB (xl mem-set): "
			  "this session ends and the secondary discards its copy; the next session "
			  "starts once the guest has reached its new size, and copies it whole",
			  d->domid, (unsigned long long)d->target_kib, (unsigned long long)target);
		d->changed = true;
		d->balloon = true;
		/* libxl may rewrite the configuration for it: read it now, so
		 * that the next session does not take that for a change. */
		config_changed(d);
		return;
	}
	if (config_changed(d)) {
		log_error("domain %u's libxl configuration changed (a device attached or detached, "
			  "%s): this session ends and the secondary discards its copy; the next "
			  "session gives the secondary the new configuration",
			  d->domid, d->config_path);
		d->changed = true;
	}
}

static int xen_resume(struct hv_dom *d)
{
	int rc = hv_xen_resume(d);

	if (rc == 0)
		check_changes(d);
	return rc;
}

static int xen_save_state(struct hv_dom *d, struct hv_state *st)
{
	uint64_t t0 = clk_now_ns();
	int rc = save_state(d, st);

	d->t.state_ns += clk_now_ns() - t0;
	return rc;
}

static int save_state(struct hv_dom *d, struct hv_state *st)
{
	struct ckpt_tsc_info tsc = {0};
	int n, rc;

	/* Pages added since the domain was mapped (populated, ballooned
	 * back): a pfn may now be backed by a frame other than the one
	 * mapped here. Checked on the suspended domain (the count of its last
	 * look, in the pause), so no checkpoint goes out with them. Pages it
	 * gave back keep this side's reference and do not lower the count. */
	if (!d->changed && d->nr_pages_seen != d->tot_pages) {
		log_error("domain %u has %llu pages now and had %llu when it was mapped: its "
			  "memory changed (ballooning, memory hot-plug). This session ends and the "
			  "secondary discards its copy; the next session maps the domain again and "
			  "copies it whole",
			  d->domid, (unsigned long long)d->nr_pages_seen,
			  (unsigned long long)d->tot_pages);
		d->changed = true;
		d->balloon = true;
	}
	if (d->changed) /* found after the last resume (xen_resume), or above */
		return -EXDEV;
	if (xc_domain_get_tsc_info(d->xch, d->domid, &tsc.mode, &tsc.nsec, &tsc.khz,
				   &tsc.incarnation) < 0) {
		rc = -errno;
		log_error("cannot read the TSC of domain %u: %s", d->domid, strerror(-rc));
		return rc;
	}
	rc = hv_state_add(st, CKPT_REC_X86_TSC_INFO, &tsc, sizeof(tsc));
	if (rc < 0)
		return rc;
	/* HVM context: vCPU registers, LAPIC, timers, MTRRs, ... as Xen saves them. */
	for (int tries = 0; tries < 2; tries++) {
		n = xc_domain_hvm_getcontext(d->xch, d->domid, d->hvm_ctx, (uint32_t)d->hvm_ctx_cap);
		if (n > 0 && d->hvm_ctx)
			break;
		n = xc_domain_hvm_getcontext(d->xch, d->domid, NULL, 0);
		if (n <= 0)
			break;
		free(d->hvm_ctx);
		d->hvm_ctx_cap = (size_t)n + 4096;
		d->hvm_ctx = malloc(d->hvm_ctx_cap);
		if (!d->hvm_ctx) {
			d->hvm_ctx_cap = 0;
			return -ENOMEM;
		}
		n = -1;
	}
	if (n <= 0) {
		rc = errno ? -errno : -EIO;
		log_error("cannot read the HVM context of domain %u: %s", d->domid, strerror(-rc));
		return rc;
	}
	rc = hv_state_add(st, CKPT_REC_HVM_CONTEXT, d->hvm_ctx, (size_t)n);
	if (rc == 0)
		rc = save_hvm_params(d, st);
	if (rc == 0 && d->config_out)
		rc = hv_state_add(st, CKPT_REC_HA_XEN_CONFIG, d->config_out, d->config_out_len);
	else if (rc == 0 && d->config)
		rc = hv_state_add(st, CKPT_REC_HA_XEN_CONFIG, d->config, d->config_len);
	return rc;
}

/* The domain's CPUID and MSR policy, as libxc's save writes them before
 * STATIC_DATA_END: without them a restore rebuilds a legacy policy for the
 * domain (it re-enables features the primary's domain lacks and clamps
 * leaves), then checks the guest's registers against it. */
static int cpu_policy_records(struct hv_dom *d, struct hv_state *st)
{
	xc_cpu_policy_t *p = xc_cpu_policy_init();
	xen_cpuid_leaf_t *leaves = NULL;
	xen_msr_entry_t *msrs = NULL;
	uint32_t nl = 0, nm = 0;
	int rc = 0;

	if (!p)
		return -ENOMEM;
	if (xc_cpu_policy_get_size(d->xch, &nl, &nm) < 0 ||
	    xc_cpu_policy_get_domain(d->xch, d->domid, p) < 0) {
		rc = -errno;
		log_error("cannot read the CPU policy of domain %u: %s", d->domid, strerror(-rc));
		goto out;
	}
	leaves = calloc(nl ? nl : 1, sizeof(*leaves));
	msrs = calloc(nm ? nm : 1, sizeof(*msrs));
	if (!leaves || !msrs) {
		rc = -ENOMEM;
		goto out;
	}
	if (xc_cpu_policy_serialise(d->xch, p, leaves, &nl, msrs, &nm) < 0) {
		rc = -errno;
		log_error("cannot serialise the CPU policy of domain %u: %s", d->domid,
			  strerror(-rc));
		goto out;
	}
	rc = hv_state_add(st, CKPT_REC_X86_CPUID_POLICY, leaves, nl * sizeof(*leaves));
	if (rc == 0)
		rc = hv_state_add(st, CKPT_REC_X86_MSR_POLICY, msrs, nm * sizeof(*msrs));
	if (rc == 0)
		log_info("domain %u: CPU policy of %u CPUID leaves and %u MSRs sent", d->domid, nl,
			 nm);
out:
	free(leaves);
	free(msrs);
	xc_cpu_policy_destroy(p);
	return rc;
}

static int xen_stream_start(struct hv_dom *d, struct hv_state *st)
{
	int rc = cpu_policy_records(d, st);

	return rc < 0 ? rc : hv_state_add(st, CKPT_REC_STATIC_DATA_END, NULL, 0);
}

/* A switchover handed the domain over: `xl destroy`, so that libxl takes
 * its devices down as for any domain it destroys. The mappings go first:
 * they would keep its memory allocated. */
static int xen_stop(struct hv_dom *d)
{
	const char *bin = getenv("HA_XEN_XL") ? getenv("HA_XEN_XL") : "xl";
	char id[16];
	const char *argv[] = {bin, "destroy", id, NULL};
	uint64_t t0 = clk_now_ns();

	snprintf(id, sizeof(id), "%u", d->domid);
	unmap_memory(d);
	d->mapped_fresh = false;
	if (hv_xen_run(argv) < 0) {
		log_error("`xl destroy %u` failed (its messages are above): domain %s is still "
			  "here, suspended",
			  d->domid, d->name);
		return -EIO;
	}
	d->suspended = false;
	d->logdirty = false; /* gone with the domain */
	log_info("domain %s (id %u) destroyed here in %llu ms: it runs on the secondary now",
		 d->name, d->domid, (unsigned long long)((clk_now_ns() - t0) / NSEC_PER_MSEC));
	return 0;
}

static int xen_release(struct hv_dom *d, bool give)
{
	const char *bin = getenv("HA_XEN_XL") ? getenv("HA_XEN_XL") : "xl";
	char id[16], name[96];
	const char *argv[] = {bin, "rename", id, name, NULL};

	snprintf(id, sizeof(id), "%u", d->domid);
	if (give)
		snprintf(name, sizeof(name), "%.60s--handedover", d->name);
	else
		snprintf(name, sizeof(name), "%s", d->name);
	if (hv_xen_run(argv) < 0) {
		log_error("`xl rename %u %s` failed (its messages are above)", d->domid, name);
		return -EIO;
	}
	return 0;
}

static uint8_t *xen_page(struct hv_dom *d, uint64_t pfn)
{
	return d->pages && pfn < d->nr_pfns ? d->pages[pfn] : NULL;
}

/* The id of a domain named name on this host, -ENOENT when none, -errno
 * when xenstore cannot tell. */
int hv_xen_domain_named(const char *name, uint32_t *domid)
{
	struct hv_dom q = {0};
	int rc;

	q.xsh = xs_open(0);
	if (!q.xsh)
		return -errno;
	rc = resolve(&q, name);
	xs_close(q.xsh);
	if (rc == 0)
		*domid = q.domid;
	return rc;
}

static const struct hv_save_ops save_ops = {
	.open = xen_open,
	.close = xen_close,
	.info = xen_info,
	.dirty_start = xen_dirty_start,
	.dirty_stop = xen_dirty_stop,
	.harvest = xen_harvest,
	.pause = hv_xen_pause,
	.resume = xen_resume,
	.save_state = xen_save_state,
	.stream_start = xen_stream_start,
	.page = xen_page,
	.stop = xen_stop,
	.release = xen_release,
};

const struct hv_ops hv_xen_ops = {
	.prefix = "xen",
	.save = &save_ops,
	.restore = &hv_xen_restore_ops,
};
