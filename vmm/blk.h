/* ha-vm's disk backends: a local file or an NBD export. */
#ifndef HA_VMM_BLK_H
#define HA_VMM_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct blk;

/* spec: a file path, or nbd:unix:/path[#export], or nbd:host:port[#export]. */
int blk_open(const char *spec, struct blk **out);
void blk_close(struct blk *b);
uint64_t blk_size(const struct blk *b);
int blk_read(struct blk *b, void *buf, size_t len, uint64_t off);
int blk_write(struct blk *b, const void *buf, size_t len, uint64_t off, bool fua);
int blk_flush(struct blk *b);

#endif
