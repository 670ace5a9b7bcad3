/* Client of an ha-vm's control socket: what hv/havm.c (and the tests) use to
 * pause, harvest, checkpoint and activate a VM in another process. The
 * guest memory is shared through its memfd. All return 0 or -errno.
 */
#ifndef HA_VMM_VMM_CTL_H
#define HA_VMM_VMM_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/ctl_proto.h"

struct vmm_ctl;

/* The socket path of VM name (honours HA_RUN_DIR). */
void vmm_ctl_path(char *buf, size_t len, const char *name);
int vmm_ctl_connect(const char *name, struct vmm_ctl **out);
void vmm_ctl_close(struct vmm_ctl *c);

/* -EPROTO for an answer of the wrong size or with an unterminated string. */
int vmm_ctl_info(struct vmm_ctl *c, struct vmm_ctl_info *info);
/* Maps the guest memory (shared, read-write) */
int vmm_ctl_map(struct vmm_ctl *c, uint8_t **mem, uint64_t *len);
int vmm_ctl_pause(struct vmm_ctl *c);
int vmm_ctl_resume(struct vmm_ctl *c);
int vmm_ctl_dirty_reset(struct vmm_ctl *c);
/* ORs the pages dirtied since the last harvest into bitmap (words of 64). */
int vmm_ctl_harvest(struct vmm_ctl *c, uint64_t *bitmap, size_t nwords);
int vmm_ctl_get_state(struct vmm_ctl *c, void **blob, size_t *len);
int vmm_ctl_activate(struct vmm_ctl *c, const void *blob, size_t len);
int vmm_ctl_stop(struct vmm_ctl *c);
/* Postcopy (VMM_OP_POSTCOPY): the incoming VM drops the pages set in need
 * and returns the userfaultfd that reports its first touch of one (*uffd,
 * the caller's to close) and its memory's address there (*base). This
 * connection must stay open until vmm_ctl_postcopy_end. */
int vmm_ctl_postcopy(struct vmm_ctl *c, const uint64_t *need, size_t nwords, int *uffd,
		     uint64_t *base);
int vmm_ctl_postcopy_end(struct vmm_ctl *c);

#endif
