/* ha-vm's control socket server: serves the protocol of ctl_proto.h for one
 * VM until the guest exits or a STOP arrives. */
#ifndef HA_VMM_SERVER_H
#define HA_VMM_SERVER_H

#include "vmm/vm.h"

/* Serves on path (created; removed at the end). Returns the VM's result. */
int vmm_serve(struct vm *vm, const char *path);

#endif
