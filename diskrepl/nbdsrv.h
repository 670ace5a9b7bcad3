/* An NBD server for one export: the standard protocol, fixed newstyle
 * handshake (OPT_GO, OPT_INFO, OPT_EXPORT_NAME, OPT_LIST, OPT_ABORT; TLS
 * and structured replies are declined, so clients fall back to simple
 * replies), and the commands READ, WRITE (+FUA), FLUSH, TRIM,
 * WRITE_ZEROES, CACHE and DISC. Requests of one connection are served in
 * order; the backend decides what a write means (diskrepl mirrors it).
 */
#ifndef HA_DISKREPL_NBDSRV_H
#define HA_DISKREPL_NBDSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NBDSRV_MAX_REQUEST (32u << 20)

/* Backend callbacks: 0 or -errno (the client sees the matching NBD error). */
struct nbdsrv_ops {
	int (*read)(void *ctx, void *buf, uint32_t len, uint64_t off);
	int (*write)(void *ctx, const void *buf, uint32_t len, uint64_t off, bool fua);
	/* The range must read as zeros afterwards. */
	int (*zero)(void *ctx, uint32_t len, uint64_t off, bool fua);
	/* The client no longer needs the range: may do nothing. */
	int (*trim)(void *ctx, uint32_t len, uint64_t off);
	int (*flush)(void *ctx);
};

struct nbdsrv_export {
	const char *name; /* clients asking for "" get this export too */
	uint64_t size;
	bool multi_conn; /* a flush on one connection covers every connection */
	const struct nbdsrv_ops *ops;
	void *ctx;
};

/* Serves one client on fd (not closed) until it disconnects. Returns 0 for
 * a clean end (NBD_CMD_DISC or an abort), -errno otherwise with err set. */
int nbdsrv_serve(int fd, const struct nbdsrv_export *exp, char *err, size_t errlen);

#endif
