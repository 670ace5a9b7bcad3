#include "common/io.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

ssize_t io_read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = read(fd, (char *)buf + done, len - done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int io_write_full(int fd, const void *buf, size_t len)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	return io_writev_full(fd, &iov, 1);
}

int io_writev_full(int fd, const struct iovec *iov, int cnt)
{
	struct iovec local[64];
	int i = 0;
	size_t skip = 0; /* bytes of iov[i] already written */

	while (i < cnt) {
		int n = 0;

		/* Copy a window of the caller's vector so it stays untouched. */
		while (n < (int)(sizeof(local) / sizeof(local[0])) && i + n < cnt && n < IOV_MAX) {
			local[n] = iov[i + n];
			if (n == 0) {
				local[0].iov_base = (char *)local[0].iov_base + skip;
				local[0].iov_len -= skip;
			}
			n++;
		}
		ssize_t w = writev(fd, local, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		size_t left = (size_t)w;
		while (i < cnt && left >= iov[i].iov_len - skip) {
			left -= iov[i].iov_len - skip;
			skip = 0;
			i++;
		}
		skip += left;
	}
	return 0;
}

int io_pread_all(int fd, void *buf, size_t len, unsigned long long off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -errno;
		}
		done += (size_t)r;
	}
	return 0;
}

int io_pwrite_all(int fd, const void *buf, size_t len, unsigned long long off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = ENOSPC;
			return -errno;
		}
		done += (size_t)r;
	}
	return 0;
}

int io_fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rc = 0;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}
