/* The checkpoint device through which ha-protect replicates a disk served
 * by ha-diskrepl (see diskrepl/proto.h for the local protocol):
 *
 *   connect      ATTACH; a forwarder thread copies the disk's records
 *                (configuration, resynchronisation, guest writes, barriers)
 *                into the checkpoint stream as they come
 *   setup        waits for the resynchronisation to finish, with progress
 *   postsuspend  BARRIER(N): one local write, no round trip
 *   flush        the sender waits until HA_DISK_BARRIER(N) is in the stream
 *   commit       COMMIT(N): ha-diskrepl forgets epoch N's extents
 *   teardown     DETACH: ha-diskrepl tracks changes for the next resync
 */
#ifndef HA_DISKREPL_DEV_H
#define HA_DISKREPL_DEV_H

#include <stdint.h>

#include "checkpoint/ckpt_dev.h"

/* spec: the disk's name (its ha-diskrepl runs on this host) or the path of
 * its attach socket. index: the disk's number in the stream. */
int diskrepl_dev_create(const char *spec, uint32_t index, struct ckpt_dev **out);

#endif
