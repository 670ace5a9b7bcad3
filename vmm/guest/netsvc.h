/* The main loop of the network guests: one UDP service on the NIC. */
#ifndef HA_VMM_GUEST_NETSVC_H
#define HA_VMM_GUEST_NETSVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Handles one request; writes the reply and returns its length (0: none). */
typedef size_t (*netsvc_fn)(void *ctx, const void *req, size_t len, char *reply, size_t cap);

/* Brings up the stack from the boot information, serves port with fn
 * forever, and announces the guest after boot and after every move.
 * report, if not NULL, is called about every 5 s for a console line;
 * tick, if not NULL, about every millisecond, and at once after a move
 * (MOVED: the guest runs on another host since the last tick). */
_Noreturn void netsvc_run(uint16_t port, netsvc_fn fn, void *ctx, void (*report)(void *ctx),
			  void (*tick)(void *ctx, bool moved));

#endif
