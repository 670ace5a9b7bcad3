/* The Xen backend's two halves: hv/xen.c and hv/xen_pause.c drive a
 * running domain on the primary (libxenctrl, libxenforeignmemory,
 * libxenevtchn, libxenstore); hv/xen_copy.c and hv/xen_image.c keep the
 * committed image on the secondary and turn it into a running domain on
 * failover (a Xen v2 stream restored by xl). Only hv/ includes this
 * header; the rest of the tree sees struct hv_ops.
 */
#ifndef HA_HV_XEN_H
#define HA_HV_XEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hv/hv.h"

/* True when this host runs on Xen with a privcmd device (dom0). When not,
 * logs "no Xen hypervisor here" and what to check, naming the action that
 * needed it. */
bool hv_xen_present(const char *action);

/* The id of the domain named NAME on this host: 0, -ENOENT when there is
 * none, -errno when xenstore cannot tell. */
int hv_xen_domain_named(const char *name, uint32_t *domid);

/* hv_restore_ops.needs (xen_needs.c): the domain's xl configuration on
 * this host (HA_XEN_CONFIG, /etc/xen/NAME.cfg, /etc/xen/NAME) and Xen's
 * free memory. */
int hv_xen_needs(const char *name, struct hv_needs *out, char *err, size_t errlen);
/* The memory and the vifs' bridges of the xl configuration file at PATH,
 * read with libxlutil: 0, or -errno with xl's own message in ERR. */
int hv_xen_config_needs(const char *path, struct hv_needs *out, char *err, size_t errlen);

/* The secondary's side of the Xen backend (xen_copy.c). */
extern const struct hv_restore_ops hv_xen_restore_ops;

/* The secondary's committed image of a Xen domain: its pages (a sparse
 * buffer over the guest-physical map) and, at activation, the state records
 * of the last committed checkpoint. */
struct hv_xen_image;

int hv_xen_image_new(const struct hv_info *info, struct hv_xen_image **out);
void hv_xen_image_free(struct hv_xen_image *im);
/* Keeps the stream's start records (the CPU policy, written before
 * STATIC_DATA_END in every image). */
int hv_xen_image_set_start(struct hv_xen_image *im, const struct hv_state *st);
/* Writable page pfn (marked present), NULL if out of range. */
uint8_t *hv_xen_image_page(struct hv_xen_image *im, uint64_t pfn);
/* Writes the image and st as an xl save file (xl header, libxl stream,
 * libxc stream) and restores it with `xl restore`, which leaves the domain
 * running. Logs the time of each step. */
int hv_xen_image_restore(struct hv_xen_image *im, const struct hv_state *st);
/* The same file, kept in HA_XEN_SAVE_DIR (default /tmp) for the operator
 * to restore by hand; its name into path. */
int hv_xen_image_keep(struct hv_xen_image *im, const struct hv_state *st, char *path,
		      size_t len);
/* The same file without restoring it (for tests and tools). */
int hv_xen_image_write(struct hv_xen_image *im, const struct hv_state *st, int fd);

/* Builds the standby from the image's page list (allocated, not written)
 * and st: an xl save file whose configuration is named NAME, restored
 * paused with `xl restore -p`. */
int hv_xen_image_standby(struct hv_xen_image *im, const struct hv_state *st, const char *name);
/* Page pfn if the image holds it, else NULL. */
const uint8_t *hv_xen_image_peek(const struct hv_xen_image *im, uint64_t pfn);
/* What the image is of. */
const struct hv_info *hv_xen_image_info(const struct hv_xen_image *im);
/* Runs ARGV (NULL-terminated; argv[0] found in PATH) and waits: 0 when it
 * exits 0, else -errno, with the command logged. */
int hv_xen_run(const char *const argv[]);
/* The pfns the image holds. */
const struct bitmap *hv_xen_image_present(const struct hv_xen_image *im);

/* An xl save file's framing around its libxc stream (for ha-stream): the
 * xl header with the domain's configuration, the libxl stream's header
 * and records, the LIBXC_CONTEXT record that the libxc stream follows,
 * then libxl records up to libxl's END, which ends the file. */
struct hv_xl_head {
	uint32_t flags;	    /* the xl header's mandatory flags */
	const char *config; /* the libxl configuration (JSON with flags' bit 0) */
	uint32_t config_len;
	size_t libxc_off; /* where the libxc stream starts */
};
/* LEN octets start like an xl save file. */
bool hv_xl_is(const void *buf, size_t len);
/* Checks the framing up to the libxc stream: 0 with *h set, or -EBADMSG
 * with ERR saying what is wrong and where. */
int hv_xl_head(const uint8_t *buf, size_t len, struct hv_xl_head *h, char *err, size_t errlen);
/* Checks what follows the libxc stream, from file offset OFF (BUF holds
 * the whole file of LEN octets): libxl records, then END at the file's
 * end. 0, or -EBADMSG with ERR. *nrecs: the libxl records seen there. */
int hv_xl_tail(const uint8_t *buf, size_t len, size_t off, unsigned *nrecs, char *err,
	       size_t errlen);

/* libxl's JSON configuration of a domain (xen_config.c, yajl). Paths are
 * dotted: "c_info.name", "on_reboot", "disks.0.pdev_path". */
struct hv_xen_config;
/* 0, or -EBADMSG with what is wrong in ERR; -ENOMEM. */
int hv_xen_config_parse(const char *json, size_t len, struct hv_xen_config **out, char *err,
			size_t errlen);
void hv_xen_config_free(struct hv_xen_config *c);
/* The string at path; NULL when absent or not a string. */
const char *hv_xen_config_str(const struct hv_xen_config *c, const char *path);
/* The length of the array at path; 0 when absent. */
size_t hv_xen_config_count(const struct hv_xen_config *c, const char *path);
/* Replaces the string at path: 0, -ENOENT (no string there), -ENOMEM. */
int hv_xen_config_set(struct hv_xen_config *c, const char *path, const char *value);
/* Empties the array at path: 0, or -ENOENT (no array there). */
int hv_xen_config_clear(struct hv_xen_config *c, const char *path);
/* The integer at path: 0, or -ENOENT (no integer there). */
int hv_xen_config_int(const struct hv_xen_config *c, const char *path, int64_t *out);
/* Replaces the integer at path: 0, -ENOENT (no integer there), -ENOMEM. */
int hv_xen_config_set_int(struct hv_xen_config *c, const char *path, int64_t value);
/* The configuration as JSON text, NUL-terminated as libxl stores it;
 * *len counts the NUL. */
int hv_xen_config_dump(const struct hv_xen_config *c, char **out, uint32_t *len);

/* The secondary's hot standby (xen_standby.c): the domain itself, built
 * paused at the first committed checkpoint and kept at the last one. */
struct hv_xen_standby;
/* Builds it from the committed image and state: named NAME--standby until
 * activated, every page of the image copied into it. */
int hv_xen_standby_new(struct hv_xen_image *im, const struct hv_state *st,
		       struct hv_xen_standby **out);
/* Writable page pfn of the standby; NULL out of range or when Xen cannot
 * give it a page. */
uint8_t *hv_xen_standby_page(struct hv_xen_standby *sb, uint64_t pfn);
/* Page pfn for reading; NULL where the standby has none, and for the
 * pages it shares with this host's daemons (never written). */
const uint8_t *hv_xen_standby_peek(const struct hv_xen_standby *sb, uint64_t pfn);
/* Failover: loads st (TSC, HVM params and context), renames it to the
 * domain's name and unpauses it. */
int hv_xen_standby_activate(struct hv_xen_standby *sb, const struct hv_state *st);
/* Copies its memory into IM (a refused activation keeps it as a file). */
int hv_xen_standby_copy_out(struct hv_xen_standby *sb, struct hv_xen_image *im);
/* Destroys the domain (a copy that will never run). */
void hv_xen_standby_destroy(struct hv_xen_standby *sb);
void hv_xen_standby_free(struct hv_xen_standby *sb);

/* ---- The suspend decisions (hv/xen_suspend.c): pure, no Xen calls ----
 *
 * They mirror libxl (libxl_dom_suspend.c) and libxc (xg_resume.c):
 *
 *   ask through     when
 *   event channel   a suspend channel is bound and the guest is not in an
 *                   ACPI sleep state
 *   force           an HVM guest (never PVH) without PV drivers now
 *                   (HVM_PARAM_CALLBACK_IRQ is 0) or asleep in S3
 *                   (HVM_PARAM_ACPI_S_STATE): xc_domain_shutdown(suspend)
 *   xenstore        otherwise: control/shutdown = "suspend"
 *
 * Both parameters are read at every suspend: a guest loads its PV drivers
 * (and sets the callback) after boot, and goes to sleep when it likes.
 * A forced guest stopped at an arbitrary instruction: it is resumed
 * without touching its registers (xc_domain_resume, not fast), whereas a
 * guest that made the suspend hypercall itself is told "cancelled" (fast:
 * vCPU0's RAX = 1). */
enum hv_xen_via { HV_XEN_VIA_EVTCHN, HV_XEN_VIA_XENSTORE, HV_XEN_VIA_FORCE };

struct hv_xen_guest {
	bool pvh;              /* an HVM container without emulated devices */
	uint64_t callback_irq; /* HVM_PARAM_CALLBACK_IRQ now; 0: no PV drivers */
	uint64_t acpi_s_state; /* HVM_PARAM_ACPI_S_STATE now; 3: asleep in S3 */
	bool evtchn;           /* the guest's suspend event channel is bound */
};

enum hv_xen_via hv_xen_suspend_via(const struct hv_xen_guest *g);
const char *hv_xen_via_name(enum hv_xen_via via);
/* May the resume tell the guest its suspend was cancelled (fast resume)?
 * Only when the guest suspended itself: not when it was forced. */
bool hv_xen_resume_fast(enum hv_xen_via via);
/* Has the guest taken a xenstore request (control/shutdown, NULL when
 * absent)? Any value but "suspend" counts, as for libxl. */
bool hv_xen_request_taken(const char *control_shutdown);

/* What a domain is, from xc_domain_getinfo. */
enum hv_xen_dom {
	HV_XEN_RUNNING,   /* running, blocked or paused */
	HV_XEN_SUSPENDED, /* shut down for suspend */
	HV_XEN_ENDED,     /* the guest shut itself down, rebooted or crashed */
	HV_XEN_GONE,      /* no such domain, or dying (destroyed) */
};
struct hv_xen_info {
	bool exists, dying, crashed, shutdown;
	unsigned reason; /* SHUTDOWN_*, when shutdown */
};
enum hv_xen_dom hv_xen_classify(const struct hv_xen_info *i);
/* "poweroff", "reboot", "suspend", "crash", "watchdog", "soft_reset". */
const char *hv_xen_reason_name(unsigned reason);
/* One sentence for a domain found not running: what it did and where,
 * during a suspend this program requested (requested) or while it ran
 * between checkpoints. Returns the error the epoch loop acts on: -ESRCH
 * (gone: the secondary may take over), -ESHUTDOWN (the guest ended
 * itself: the secondary must not resurrect it), 0 (suspended). */
int hv_xen_describe(const struct hv_xen_info *i, unsigned domid, bool requested, char *buf,
		    size_t len);

#endif
