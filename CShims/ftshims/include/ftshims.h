#ifndef FTSHIMS_H
#define FTSHIMS_H
#include <stddef.h>
#include <stdint.h>

/// Opens /dev/net/tun and attaches a TAP interface (IFF_TAP | IFF_NO_PI,
/// plus IFF_VNET_HDR when `vnet_hdr`: a 10-byte virtio_net_hdr before each
/// frame) named `name` (created if absent). The fd is non-blocking and
/// close-on-exec. Returns the fd, or -errno on failure. `actual` receives
/// the kernel's name (IFNAMSIZ bytes).
int ftap_tap_open(const char *name, char *actual, size_t actual_len, int vnet_hdr);
/// ioctl(TUNSETOFFLOAD, flags). Returns 0 or -errno (EINVAL: a flag unknown here).
int ftap_tap_set_offload(int fd, unsigned int flags);
unsigned int ftap_tun_f_csum(void);
unsigned int ftap_tun_f_tso4(void);
unsigned int ftap_tun_f_tso6(void);
/// writev of two buffers (a vnet header and a frame). Returns bytes or -errno.
long ftap_writev2(int fd, const void *a, size_t alen, const void *b, size_t blen);

/// Sets O_NONBLOCK on fd. Returns 0 or -errno.
int ftap_set_nonblocking(int fd);

/// Installs handlers for SIGTERM, SIGINT and SIGHUP that write the signal
/// number to `wake_fd` (a pipe) and record it; ignores SIGPIPE.
void ftap_install_signal_pipe(int wake_fd);
/// The last termination signal received, or 0.
int ftap_last_signal(void);

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC).
uint64_t ftap_monotonic_ns(void);
/// pipe2(O_NONBLOCK|O_CLOEXEC). Returns 0 or -errno.
int ftap_pipe_nonblock(int fds[2]);
/// accept4(SOCK_NONBLOCK|SOCK_CLOEXEC). Returns the fd or -errno.
int ftap_accept_nonblock(int listen_fd);
#endif
