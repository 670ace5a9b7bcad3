/* Exact reads and writes on file descriptors, retrying EINTR and short I/O. */
#ifndef HA_COMMON_IO_H
#define HA_COMMON_IO_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Reads up to len bytes, stopping early only at end of file.
 * Returns the number of bytes read (less than len means EOF) or -errno. */
ssize_t io_read_full(int fd, void *buf, size_t len);

/* Writes all of buf. Returns 0 or -errno (-EPIPE if the peer went away). */
int io_write_full(int fd, const void *buf, size_t len);

/* Writes every byte of iov[0..cnt). The array is not modified.
 * Returns 0 or -errno. */
int io_writev_full(int fd, const struct iovec *iov, int cnt);

/* Exact positioned I/O: all of len octets at off. Returns 0, or -errno with
 * errno set (-EIO for a read past the end of the file). */
int io_pread_all(int fd, void *buf, size_t len, unsigned long long off);
int io_pwrite_all(int fd, const void *buf, size_t len, unsigned long long off);

/* fsyncs the directory holding path (after a rename or create in it). */
int io_fsync_parent(const char *path);

#endif
