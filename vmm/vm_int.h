/* The state of one ha-vm virtual machine, inside vmm/ only: vm.c (setup,
 * the vCPU loop, devices, dirty logging) and vm_state.c (the state saved
 * at each checkpoint and loaded on activation). */
#ifndef HA_VMM_VM_INT_H
#define HA_VMM_VM_INT_H

#include <linux/if.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/blk.h"

#define PAGE 4096u
#define MAX_MSRS 256

/* Device state kept outside guest RAM. */
struct dev_state {
	uint32_t events;
	uint32_t has_nic;
	uint64_t reserved;
};

struct vm {
	char name[64];
	char disk_spec[256];
	int kvm, fd, vcpu, memfd;
	uint8_t *mem;
	uint64_t mem_bytes;
	struct kvm_run *run;
	size_t run_size;
	bool incoming;

	int tap;
	char tap_name[IFNAMSIZ];
	struct blk *disk;
	int wake; /* eventfd: breaks an idle wait */
	int uffd; /* postcopy: the userfaultfd on mem, -1 none (vm_postcopy.c) */
	uint8_t pc_mac[6]; /* the guest's MAC, read before the postcopy began */

	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool started, pause_req, paused, stop, done;
	int result;
	struct dev_state dev;
	char con[256];
	size_t conlen;

	uint64_t *kvm_bitmap; /* scratch for KVM_GET_DIRTY_LOG */
	uint64_t *vmm_dirty;  /* pages the VMM itself wrote */
	uint64_t exits;
	uint32_t msr_index[MAX_MSRS];
	uint32_t nmsrs;
};

/* Loads a vm_save_state blob into an incoming VM's vCPU, irqchip, clock and
 * devices. 0 or -errno (-EBADMSG: not such a blob). */
int vm_load_state(struct vm *vm, const uint8_t *p, size_t len);

#endif
