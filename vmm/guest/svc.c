/* The test guests' UDP services (see svc.h, protocols in docs/guests.md). */
#include "vmm/guest/svc.h"

#include <stdbool.h>

#define KV_KEY_MAX 32
#define KV_VAL_MAX 256

struct svc_kv_slot {
	uint8_t used;
	uint8_t klen;
	uint16_t vlen;
	char key[KV_KEY_MAX];
	char val[KV_VAL_MAX];
};

/* A cursor over a request's space-separated words. */
struct words {
	const char *p, *end;
};

static bool next_word(struct words *w, const char **s, size_t *len)
{
	while (w->p < w->end && (*w->p == ' ' || *w->p == '\n' || *w->p == '\r'))
		w->p++;
	if (w->p >= w->end)
		return false;
	*s = w->p;
	while (w->p < w->end && *w->p != ' ' && *w->p != '\n' && *w->p != '\r')
		w->p++;
	*len = (size_t)(w->p - *s);
	return true;
}

static bool word_is(const char *s, size_t len, const char *lit)
{
	size_t n = 0;

	while (lit[n])
		n++;
	return len == n && __builtin_memcmp(s, lit, n) == 0;
}

static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 19)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* A tiny bounded writer for replies. */
struct out {
	char *p;
	size_t len, cap;
};

static void put_str(struct out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n && o->len < o->cap; i++)
		o->p[o->len++] = s[i];
}

static void put_lit(struct out *o, const char *s)
{
	while (*s && o->len < o->cap)
		o->p[o->len++] = *s++;
}

static void put_u64(struct out *o, uint64_t v)
{
	char buf[20];
	int i = 0;

	do {
		buf[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (i-- && o->len < o->cap)
		o->p[o->len++] = buf[i];
}

void svc_counter_init(struct svc_counter *c)
{
	__builtin_memset(c, 0, sizeof(*c));
}

static struct svc_counter_client *client_slot(struct svc_counter *c, const char *name,
					      size_t len, bool *fresh)
{
	struct svc_counter_client *victim = NULL;

	for (int i = 0; i < SVC_COUNTER_CLIENTS; i++) {
		struct svc_counter_client *cl = &c->clients[i];

		if (cl->name[0] && __builtin_memcmp(cl->name, name, len) == 0 &&
		    cl->name[len] == '\0') {
			*fresh = false;
			return cl;
		}
	}
	/* A free slot, else the least recently used client is forgotten. */
	for (int i = 0; i < SVC_COUNTER_CLIENTS; i++) {
		struct svc_counter_client *cl = &c->clients[i];

		if (!cl->name[0]) {
			victim = cl;
			break;
		}
		if (!victim || cl->used < victim->used)
			victim = cl;
	}
	__builtin_memset(victim, 0, sizeof(*victim));
	__builtin_memcpy(victim->name, name, len);
	*fresh = true;
	return victim;
}

size_t svc_counter_handle(struct svc_counter *c, const void *req, size_t len, char *reply,
			  size_t cap)
{
	struct words w = {req, (const char *)req + len};
	struct out o = {reply, 0, cap};
	const char *cmd, *name, *id_s;
	size_t cmd_len, name_len, id_len;
	uint64_t id;

	c->requests++;
	c->clock++;
	if (!next_word(&w, &cmd, &cmd_len)) {
		put_lit(&o, "ERR empty request");
		return o.len;
	}
	if (word_is(cmd, cmd_len, "GET")) {
		put_lit(&o, "VAL ");
		put_u64(&o, c->value);
		return o.len;
	}
	if (!word_is(cmd, cmd_len, "INC")) {
		put_lit(&o, "ERR unknown command (INC <client> <id> | GET)");
		return o.len;
	}
	if (!next_word(&w, &name, &name_len) || name_len > SVC_CLIENT_NAME_MAX ||
	    !next_word(&w, &id_s, &id_len) || !parse_u64(id_s, id_len, &id) || id == 0) {
		put_lit(&o, "ERR usage: INC <client> <id>, id 1..");
		return o.len;
	}
	bool fresh;
	struct svc_counter_client *cl = client_slot(c, name, name_len, &fresh);

	cl->used = c->clock;
	if (!fresh && id == cl->last_req) {
		/* A retry: answered from memory, not executed again. */
		put_lit(&o, "OK ");
		put_u64(&o, id);
		put_lit(&o, " ");
		put_u64(&o, cl->last_value);
		return o.len;
	}
	if (!fresh && id < cl->last_req) {
		put_lit(&o, "ERR stale ");
		put_u64(&o, id);
		put_lit(&o, " last ");
		put_u64(&o, cl->last_req);
		return o.len;
	}
	c->value++;
	cl->last_req = id;
	cl->last_value = c->value;
	put_lit(&o, "OK ");
	put_u64(&o, id);
	put_lit(&o, " ");
	put_u64(&o, c->value);
	return o.len;
}

size_t svc_kv_table_bytes(uint64_t nslots)
{
	return (size_t)nslots * sizeof(struct svc_kv_slot);
}

void svc_kv_init(struct svc_kv *kv, void *mem, uint64_t nslots)
{
	__builtin_memset(kv, 0, sizeof(*kv));
	kv->slots = mem;
	kv->nslots = nslots;
	__builtin_memset(mem, 0, svc_kv_table_bytes(nslots));
}

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
	return h;
}

/* The slot holding key, or the free slot where it would go, or NULL. */
static struct svc_kv_slot *kv_find(struct svc_kv *kv, const char *key, size_t klen)
{
	uint64_t i = fnv1a(key, klen) % kv->nslots;

	for (uint64_t probes = 0; probes < kv->nslots; probes++, i = (i + 1) % kv->nslots) {
		struct svc_kv_slot *s = &kv->slots[i];

		if (!s->used || (s->klen == klen && __builtin_memcmp(s->key, key, klen) == 0))
			return s;
	}
	return NULL;
}

size_t svc_kv_handle(struct svc_kv *kv, const void *req, size_t len, char *reply, size_t cap)
{
	struct words w = {req, (const char *)req + len};
	struct out o = {reply, 0, cap};
	const char *cmd, *key, *val;
	size_t cmd_len, klen, vlen;
	struct svc_kv_slot *s;

	if (!kv->nslots || !next_word(&w, &cmd, &cmd_len) || !next_word(&w, &key, &klen) ||
	    klen > KV_KEY_MAX) {
		put_lit(&o, "ERR usage: PUT <key> <value> | GET <key>, key up to 32 octets");
		return o.len;
	}
	if (word_is(cmd, cmd_len, "GET")) {
		kv->gets++;
		s = kv_find(kv, key, klen);
		if (!s || !s->used) {
			kv->misses++;
			put_lit(&o, "MISS");
			return o.len;
		}
		put_lit(&o, "VAL ");
		put_str(&o, s->val, s->vlen);
		return o.len;
	}
	if (!word_is(cmd, cmd_len, "PUT") || !next_word(&w, &val, &vlen) || vlen > KV_VAL_MAX) {
		put_lit(&o, "ERR usage: PUT <key> <value>, value up to 256 octets");
		return o.len;
	}
	s = kv_find(kv, key, klen);
	if (!s) {
		put_lit(&o, "ERR full");
		return o.len;
	}
	if (!s->used) {
		s->used = 1;
		s->klen = (uint8_t)klen;
		__builtin_memcpy(s->key, key, klen);
		kv->used++;
	}
	s->vlen = (uint16_t)vlen;
	__builtin_memcpy(s->val, val, vlen);
	kv->puts++;
	put_lit(&o, "OK");
	return o.len;
}
