#include "hv/hv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int hv_state_add(struct hv_state *st, uint32_t type, const void *body, size_t len)
{
	size_t need = st->len + len;

	if (st->nrecs >= HV_STATE_RECS_MAX)
		return -E2BIG;
	if (need > st->cap) {
		size_t cap = st->cap ? st->cap : 4096;
		void *p;

		while (cap < need)
			cap *= 2;
		p = realloc(st->buf, cap);
		if (!p)
			return -ENOMEM;
		st->buf = p;
		st->cap = cap;
	}
	if (len)
		memcpy(st->buf + st->len, body, len);
	st->recs[st->nrecs].type = type;
	st->recs[st->nrecs].len = (uint32_t)len;
	st->recs[st->nrecs].off = st->len;
	st->nrecs++;
	st->len = need;
	return 0;
}

void hv_state_clear(struct hv_state *st)
{
	st->nrecs = 0;
	st->len = 0;
}

void hv_state_free(struct hv_state *st)
{
	free(st->buf);
	memset(st, 0, sizeof(*st));
}

int hv_state_copy(struct hv_state *dst, const struct hv_state *src)
{
	hv_state_clear(dst);
	for (uint32_t i = 0; i < src->nrecs; i++) {
		int rc = hv_state_add(dst, src->recs[i].type, src->buf + src->recs[i].off,
				      src->recs[i].len);
		if (rc < 0)
			return rc;
	}
	return 0;
}

const void *hv_state_find(const struct hv_state *st, uint32_t type, uint32_t *len)
{
	for (uint32_t i = 0; i < st->nrecs; i++) {
		if (st->recs[i].type == type) {
			*len = st->recs[i].len;
			return st->buf + st->recs[i].off;
		}
	}
	return NULL;
}
