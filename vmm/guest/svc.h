/* The test guests' UDP services, as pure functions over state kept in guest
 * memory (so they are checkpointed with it). Freestanding, like gnet.h.
 * Protocols: docs/guests.md.
 */
#ifndef HA_VMM_GUEST_SVC_H
#define HA_VMM_GUEST_SVC_H

#include <stddef.h>
#include <stdint.h>

#define SVC_COUNTER_PORT 7000
#define SVC_KV_PORT 7001
#define SVC_REPLY_MAX 1400

#define SVC_COUNTER_CLIENTS 64
#define SVC_CLIENT_NAME_MAX 31

struct svc_counter_client {
	char name[SVC_CLIENT_NAME_MAX + 1];
	uint64_t last_req;   /* highest request id seen from this client */
	uint64_t last_value; /* the value that request was answered with */
	uint64_t used;       /* for LRU replacement */
};

struct svc_counter {
	uint64_t value;
	uint64_t requests;
	uint64_t clock;
	struct svc_counter_client clients[SVC_COUNTER_CLIENTS];
};

void svc_counter_init(struct svc_counter *c);
/* Handles one request datagram; writes the reply (not NUL-terminated) and
 * returns its length, or 0 when the request deserves no reply. */
size_t svc_counter_handle(struct svc_counter *c, const void *req, size_t len, char *reply,
			  size_t cap);

struct svc_kv_slot;

struct svc_kv {
	struct svc_kv_slot *slots; /* in guest memory, nslots of them */
	uint64_t nslots;
	uint64_t used;
	uint64_t gets, puts, misses;
};

/* Size in bytes of the table for nslots slots. */
size_t svc_kv_table_bytes(uint64_t nslots);
/* mem must hold svc_kv_table_bytes(nslots) bytes. */
void svc_kv_init(struct svc_kv *kv, void *mem, uint64_t nslots);
size_t svc_kv_handle(struct svc_kv *kv, const void *req, size_t len, char *reply, size_t cap);

#endif
