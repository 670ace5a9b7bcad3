/* NBD client: the standard NBD protocol (fixed newstyle handshake, NBD_OPT_GO,
 * simple replies), synchronous, one request in flight.
 * Used by ha-vm's block device to reach a disk served over NBD (a replicated
 * disk from diskrepl, or any NBD server such as qemu-nbd).
 * All functions return 0 or -errno; protocol errors from the server map to
 * the errno it sent (EIO if none).
 */
#ifndef HA_NBD_NBD_H
#define HA_NBD_NBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nbd_client;

/* target: "unix:/path/to/socket" or "host:port"; export: "" for the default.
 * timeout_ms bounds the connect and the handshake (<= 0: no bound). */
int nbd_client_connect(const char *target, const char *export, int timeout_ms,
		       struct nbd_client **out);
/* The same over an already connected socket (taken over, closed on error). */
int nbd_client_connect_fd(int fd, const char *export, int timeout_ms, struct nbd_client **out);
void nbd_client_close(struct nbd_client *c);

uint64_t nbd_client_size(const struct nbd_client *c);
bool nbd_client_read_only(const struct nbd_client *c);
bool nbd_client_can_flush(const struct nbd_client *c);
bool nbd_client_can_fua(const struct nbd_client *c);
bool nbd_client_can_trim(const struct nbd_client *c);
/* True once a request failed in transport (a timeout, a hang-up) or got a
 * reply out of step: the connection is unusable (requests fail with
 * ENOTCONN) and must be replaced. */
bool nbd_client_broken(const struct nbd_client *c);

int nbd_client_pread(struct nbd_client *c, void *buf, size_t len, uint64_t off);
int nbd_client_pwrite(struct nbd_client *c, const void *buf, size_t len, uint64_t off, bool fua);
int nbd_client_flush(struct nbd_client *c);
int nbd_client_trim(struct nbd_client *c, uint64_t off, uint32_t len);

#endif
