/* The state of a VM outside its RAM, as one blob of sections: what a
 * checkpoint carries (HA_VMM_STATE) and what activation loads. */
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/log.h"
#include "vmm/vm.h"
#include "vmm/vm_int.h"

#define STATE_MAGIC UINT64_C(0x5441545354534d56) /* "VMSTSTAT" */
#define STATE_VERSION 1u

enum state_section {
	SEC_REGS = 1,
	SEC_SREGS,
	SEC_XSAVE,
	SEC_XCRS,
	SEC_MSRS,
	SEC_LAPIC,
	SEC_EVENTS,
	SEC_DEBUGREGS,
	SEC_MP_STATE,
	SEC_PIC_MASTER,
	SEC_PIC_SLAVE,
	SEC_IOAPIC,
	SEC_CLOCK,
	SEC_DEVICES,
};

/* ------------------------------------------------------------------ */
/* State. */

struct blob {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void put_section(struct blob *b, uint32_t id, const void *data, uint32_t len)
{
	size_t need = b->len + 8 + ((len + 7u) & ~7u);

	if (b->err)
		return;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16384;
		void *p;

		while (cap < need)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->err = -ENOMEM;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, &id, 4);
	memcpy(b->p + b->len + 4, &len, 4);
	memcpy(b->p + b->len + 8, data, len);
	memset(b->p + b->len + 8 + len, 0, need - b->len - 8 - len);
	b->len = need;
}

#define GET(req, sec, obj)                                                                   \
	do {                                                                                 \
		if (!b.err && ioctl(vm->vcpu, req, &(obj)) < 0)                              \
			b.err = -errno;                                                      \
		put_section(&b, sec, &(obj), sizeof(obj));                                   \
	} while (0)

int vm_save_state(struct vm *vm, void **blob, size_t *len)
{
	struct blob b = {0};
	uint64_t hdr[2] = {STATE_MAGIC, STATE_VERSION};
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_debugregs dbg;
	struct kvm_mp_state mp;
	struct kvm_clock_data clock = {0};
	struct kvm_irqchip chip[3];
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[MAX_MSRS];
	} msrs;

	if (!vm_paused(vm))
		return -EBUSY;
	put_section(&b, 0, hdr, sizeof(hdr));
	GET(KVM_GET_REGS, SEC_REGS, regs);
	GET(KVM_GET_SREGS, SEC_SREGS, sregs);
	GET(KVM_GET_XSAVE, SEC_XSAVE, xsave);
	GET(KVM_GET_XCRS, SEC_XCRS, xcrs);
	memset(&msrs, 0, sizeof(msrs));
	msrs.h.nmsrs = vm->nmsrs;
	for (uint32_t i = 0; i < vm->nmsrs; i++)
		msrs.e[i].index = vm->msr_index[i];
	if (!b.err && ioctl(vm->vcpu, KVM_GET_MSRS, &msrs) != (int)vm->nmsrs)
		b.err = -EIO;
	put_section(&b, SEC_MSRS, &msrs,
		    (uint32_t)(sizeof(msrs.h) + vm->nmsrs * sizeof(msrs.e[0])));
	GET(KVM_GET_LAPIC, SEC_LAPIC, lapic);
	GET(KVM_GET_VCPU_EVENTS, SEC_EVENTS, events);
	GET(KVM_GET_DEBUGREGS, SEC_DEBUGREGS, dbg);
	GET(KVM_GET_MP_STATE, SEC_MP_STATE, mp);
	for (int i = 0; i < 3; i++) {
		memset(&chip[i], 0, sizeof(chip[i]));
		chip[i].chip_id = (uint32_t)i;
		if (!b.err && ioctl(vm->fd, KVM_GET_IRQCHIP, &chip[i]) < 0)
			b.err = -errno;
		put_section(&b, SEC_PIC_MASTER + (uint32_t)i, &chip[i], sizeof(chip[i]));
	}
	if (!b.err && ioctl(vm->fd, KVM_GET_CLOCK, &clock) < 0)
		b.err = -errno;
	put_section(&b, SEC_CLOCK, &clock, sizeof(clock));
	pthread_mutex_lock(&vm->mu);
	struct dev_state dev = vm->dev;
	pthread_mutex_unlock(&vm->mu);
	put_section(&b, SEC_DEVICES, &dev, sizeof(dev));
	if (b.err) {
		free(b.p);
		return b.err;
	}
	*blob = b.p;
	*len = b.len;
	return 0;
}

/* Finds section id of exactly len octets in a state blob. */
static const void *section(const uint8_t *p, size_t len, uint32_t id, uint32_t want)
{
	size_t off = 0;

	while (off + 8 <= len) {
		uint32_t sid, slen;

		memcpy(&sid, p + off, 4);
		memcpy(&slen, p + off + 4, 4);
		if (slen > len - off - 8)
			return NULL;
		if (sid == id)
			return slen == want || want == 0 ? p + off + 8 : NULL;
		off += 8 + ((slen + 7u) & ~7u);
	}
	return NULL;
}

int vm_load_state(struct vm *vm, const uint8_t *p, size_t len)
{
	uint64_t hdr[2];
	const void *s;
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[MAX_MSRS];
	} msrs;
	struct kvm_clock_data clock;
	static const struct {
		uint32_t sec;
		unsigned long req;
		uint32_t size;
		const char *name;
	} vcpu_secs[] = {
		{SEC_SREGS, KVM_SET_SREGS, sizeof(struct kvm_sregs), "SREGS"},
		{SEC_REGS, KVM_SET_REGS, sizeof(struct kvm_regs), "REGS"},
		{SEC_XSAVE, KVM_SET_XSAVE, sizeof(struct kvm_xsave), "XSAVE"},
		{SEC_XCRS, KVM_SET_XCRS, sizeof(struct kvm_xcrs), "XCRS"},
		{SEC_LAPIC, KVM_SET_LAPIC, sizeof(struct kvm_lapic_state), "LAPIC"},
		{SEC_EVENTS, KVM_SET_VCPU_EVENTS, sizeof(struct kvm_vcpu_events), "VCPU_EVENTS"},
		{SEC_DEBUGREGS, KVM_SET_DEBUGREGS, sizeof(struct kvm_debugregs), "DEBUGREGS"},
		{SEC_MP_STATE, KVM_SET_MP_STATE, sizeof(struct kvm_mp_state), "MP_STATE"},
	};

	s = section(p, len, 0, sizeof(hdr));
	if (!s)
		return -EBADMSG;
	memcpy(hdr, s, sizeof(hdr));
	if (hdr[0] != STATE_MAGIC || hdr[1] != STATE_VERSION) {
		log_error("state blob: not an ha-vm state of version %u", STATE_VERSION);
		return -EBADMSG;
	}
	for (int i = 0; i < 3; i++) {
		s = section(p, len, SEC_PIC_MASTER + (uint32_t)i, sizeof(struct kvm_irqchip));
		if (!s || ioctl(vm->fd, KVM_SET_IRQCHIP, s) < 0) {
			log_error("state: irqchip %d %s", i, s ? strerror(errno) : "missing");
			return s ? -errno : -EBADMSG;
		}
	}
	for (size_t i = 0; i < sizeof(vcpu_secs) / sizeof(vcpu_secs[0]); i++) {
		s = section(p, len, vcpu_secs[i].sec, vcpu_secs[i].size);
		if (!s || ioctl(vm->vcpu, vcpu_secs[i].req, s) < 0) {
			log_error("state: %s %s", vcpu_secs[i].name, s ? strerror(errno) : "missing");
			return s ? -errno : -EBADMSG;
		}
	}
	s = section(p, len, SEC_MSRS, 0);
	if (!s)
		return -EBADMSG;
	memcpy(&msrs.h, s, sizeof(msrs.h));
	if (msrs.h.nmsrs > MAX_MSRS ||
	    !section(p, len, SEC_MSRS,
		     (uint32_t)(sizeof(msrs.h) + msrs.h.nmsrs * sizeof(msrs.e[0]))))
		return -EBADMSG;
	memcpy(&msrs, s, sizeof(msrs.h) + msrs.h.nmsrs * sizeof(msrs.e[0]));
	int n = ioctl(vm->vcpu, KVM_SET_MSRS, &msrs);
	if (n != (int)msrs.h.nmsrs) {
		/* KVM_SET_MSRS stops at the first MSR it refuses: name it. */
		log_error("state: MSR 0x%x refused (%d of %u set)",
			  n >= 0 && (uint32_t)n < msrs.h.nmsrs ? msrs.e[n].index : 0, n,
			  msrs.h.nmsrs);
		return -EINVAL;
	}
	s = section(p, len, SEC_CLOCK, sizeof(clock));
	if (!s)
		return -EBADMSG;
	memcpy(&clock, s, sizeof(clock));
	clock.flags = 0;
	if (ioctl(vm->fd, KVM_SET_CLOCK, &clock) < 0)
		return -errno;
	s = section(p, len, SEC_DEVICES, sizeof(struct dev_state));
	if (!s)
		return -EBADMSG;
	memcpy(&vm->dev, s, sizeof(vm->dev));
	return 0;
}
