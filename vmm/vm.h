/* ha-vm's virtual machine: KVM, guest RAM in a memfd, one vCPU running a
 * guest program at CPL3 in 64-bit mode, and the devices of
 * vmm/guest/abi.h (console, idle, events, NIC on a TAP device).
 *
 * KVM ioctls stay in this module. Functions return 0 or -errno.
 */
#ifndef HA_VMM_VM_H
#define HA_VMM_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;

struct vm_config {
	const char *name;
	uint64_t mem_bytes;     /* multiple of 2 MiB, 4 MiB .. 4 GiB */
	const void *image;      /* guest program (flat, loaded at 0x100000); NULL if incoming */
	size_t image_len;
	const char *tap;        /* TAP interface name, NULL: no NIC */
	const char *disk;       /* file or nbd:TARGET[#EXPORT], NULL: no disk */
	uint8_t mac[6];
	uint32_t ip, netmask, gateway;
	uint64_t arg[4];
	bool incoming;          /* paused and empty until activated with a state */
};

int vm_create(const struct vm_config *cfg, struct vm **out);
void vm_destroy(struct vm *vm);
/* Runs the vCPU on its own thread (not for incoming VMs: see vm_activate). */
int vm_start(struct vm *vm);
/* Blocks until the guest exits or vm_stop(); returns the guest's exit code
 * (>= 0) or -errno if the VM failed. */
int vm_wait(struct vm *vm);
void vm_stop(struct vm *vm);
/* True once the vCPU thread has ended (guest exit or failure). */
bool vm_wait_done(struct vm *vm);

/* Stops the vCPU at an instruction boundary with any pending port I/O
 * completed, so the state read afterwards is exact. */
int vm_pause(struct vm *vm);
int vm_resume(struct vm *vm);
bool vm_paused(struct vm *vm);
bool vm_incoming(struct vm *vm);

/* Dirty tracking is always on (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2): reset
 * forgets everything dirtied so far; harvest ORs into bitmap (nr_pages bits,
 * 64-bit words) every page written since the last harvest or reset, by the
 * guest or by the VMM's devices. */
int vm_dirty_reset(struct vm *vm);
int vm_harvest(struct vm *vm, uint64_t *bitmap);

/* The complete state (vCPU, irqchip, clock, devices) of a paused VM as a
 * versioned blob (docs/vmm.md). *blob is malloc'ed. */
int vm_save_state(struct vm *vm, void **blob, size_t *len);
/* Loads a state into an incoming VM and runs it; the guest is told it moved. */
int vm_activate(struct vm *vm, const void *blob, size_t len);

int vm_memfd(struct vm *vm);
/* Postcopy, on an incoming VM before its activation: the pages set in
 * NEED (nr_pages bits) are not here yet. Drops what the memfd holds of
 * them and registers guest memory with a new userfaultfd (missing pages),
 * returned in *uffd (the VM keeps it: it stays open until
 * vm_postcopy_end) with the memory's address in this process in *base:
 * whoever holds it places each page (UFFDIO_COPY) before the guest or a
 * device reads it. */
int vm_postcopy_start(struct vm *vm, const uint64_t *need, size_t nwords, int *uffd,
		      uint64_t *base);
/* Every page is in: the registration is dropped. */
int vm_postcopy_end(struct vm *vm);
bool vm_postcopy_active(struct vm *vm);
uint64_t vm_mem_bytes(struct vm *vm);
const char *vm_tap(struct vm *vm);
/* The disk as given (file or nbd:...), "" if none. */
const char *vm_disk(struct vm *vm);
/* The guest's MAC as its boot page says: also right for a copy activated
 * after a failover, whose ha-vm was started without --mac. */
const uint8_t *vm_mac(struct vm *vm);
const char *vm_name(struct vm *vm);
/* Pause latency statistics for the benchmark (ns). */
uint64_t vm_exits(struct vm *vm);

#endif
