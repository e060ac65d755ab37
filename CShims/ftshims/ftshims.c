#define _GNU_SOURCE
#include "ftshims.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

int ftap_tap_open(const char *name, char *actual, size_t actual_len, int vnet_hdr) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);
    if (name) strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, (void *)&ifr) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (actual && actual_len > 0) {
        strncpy(actual, ifr.ifr_name, actual_len - 1);
        actual[actual_len - 1] = 0;
    }
    return fd;
}

int ftap_tap_set_offload(int fd, unsigned int flags) {
    if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0) return -errno;
    return 0;
}

unsigned int ftap_tun_f_csum(void) { return TUN_F_CSUM; }
unsigned int ftap_tun_f_tso4(void) { return TUN_F_TSO4; }
unsigned int ftap_tun_f_tso6(void) { return TUN_F_TSO6; }

long ftap_writev2(int fd, const void *a, size_t alen, const void *b, size_t blen) {
    struct iovec iov[2] = { { (void *)a, alen }, { (void *)b, blen } };
    long n = writev(fd, iov, 2);
    return n < 0 ? -errno : n;
}

int ftap_set_nonblocking(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -errno;
    if (fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
    return 0;
}

static volatile sig_atomic_t g_wake_fd = -1;
static volatile sig_atomic_t g_last_signal = 0;

static void on_signal(int sig) {
    int saved = errno;
    g_last_signal = sig;
    if (g_wake_fd >= 0) {
        unsigned char b = (unsigned char)sig;
        ssize_t r = write(g_wake_fd, &b, 1);
        (void)r;
    }
    errno = saved;
}

void ftap_install_signal_pipe(int wake_fd) {
    g_wake_fd = wake_fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int ftap_last_signal(void) { return g_last_signal; }

uint64_t ftap_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#include <sys/socket.h>

int ftap_pipe_nonblock(int fds[2]) {
    return pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0 ? 0 : -errno;
}

int ftap_accept_nonblock(int listen_fd) {
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}
