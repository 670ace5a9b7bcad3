#include "netbuf/plug_epochs.h"

#include <errno.h>
#include <string.h>

int netbuf_plug_decide(const struct netbuf_plug_epochs *s, enum netbuf_plug_event ev,
		       uint64_t epoch, struct netbuf_plug_epochs *next, enum netbuf_plug_cmd *cmd)
{
	*next = *s;
	*cmd = NETBUF_PLUG_NONE;
	if (ev == NETBUF_PLUG_POSTSUSPEND) {
		if (next->npending == NETBUF_PLUG_PENDING_MAX)
			return -ENOSPC;
		next->pending[next->npending++] = epoch;
		*cmd = NETBUF_PLUG_BUFFER;
		return 0;
	}
	/* Each release_one lets out exactly one closed epoch, oldest first. */
	if (next->npending && next->pending[0] <= epoch) {
		memmove(next->pending, next->pending + 1,
			--next->npending * sizeof(next->pending[0]));
		*cmd = NETBUF_PLUG_RELEASE_ONE;
	}
	return 0;
}
