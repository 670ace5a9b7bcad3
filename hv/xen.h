/* The Xen backend's two halves: hv/xen.c drives a running domain on the
 * primary (libxenctrl, libxenforeignmemory, libxenevtchn, libxenstore);
 * hv/xen_image.c keeps the committed image on the secondary and turns it
 * into a running domain on failover (a Xen v2 stream restored by xl).
 * Only hv/ includes this header; the rest of the tree sees struct hv_ops.
 */
#ifndef HA_HV_XEN_H
#define HA_HV_XEN_H

#include <stdbool.h>
#include <stdint.h>

#include "hv/hv.h"

/* True when this host runs on Xen with a privcmd device (dom0). When not,
 * logs "no Xen hypervisor here" and what to check, naming the action that
 * needed it. */
bool hv_xen_present(const char *action);

/* The secondary's committed image of a Xen domain: its pages (a sparse
 * buffer over the guest-physical map) and, at activation, the state records
 * of the last committed checkpoint. */
struct hv_xen_image;

int hv_xen_image_new(const struct hv_info *info, struct hv_xen_image **out);
void hv_xen_image_free(struct hv_xen_image *im);
/* Writable page pfn (marked present), NULL if out of range. */
uint8_t *hv_xen_image_page(struct hv_xen_image *im, uint64_t pfn);
/* Writes the image and st as an xl save file (xl header, libxl stream,
 * libxc stream) and restores it with `xl restore`, which leaves the domain
 * running. Logs the time of each step. */
int hv_xen_image_restore(struct hv_xen_image *im, const struct hv_state *st);
/* The same file without restoring it (for tests and tools). */
int hv_xen_image_write(struct hv_xen_image *im, const struct hv_state *st, int fd);

/* The first disk's device ("pdev_path") in a libxl JSON configuration,
 * into out. 0; -ENOENT when it names no disk (out is ""); -ENAMETOOLONG. */
int hv_xen_config_disk(const char *json, size_t len, char *out, size_t outlen);

#endif
