/*
 * escape-probe: the workload of the agent's escape tests (crates/cli/tests/escape.rs). Run
 * inside an environment, it tries what a hostile tenant would and prints one line per attempt:
 *
 *     PROBE <name> allowed
 *     PROBE <name> denied <errno name>
 *
 * The test reads these lines from the environment's log and also checks the host side.
 *
 *     escape-probe syscalls <host pid>     mount, remount, mknod, raw and packet sockets,
 *                                          kernel modules, ptrace/kill of a host process,
 *                                          setuid(0), writes to / and to its own cgroup limits
 *     escape-probe connect <ip:port>…      a TCP connection to each (2 s at most)
 *     escape-probe fill <path>             writes until the disk is full, prints the bytes
 *     escape-probe flood <bytes>           writes that many bytes to standard output
 *
 * Built static by scripts/images (--test) into the escape-probe image.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/module.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static void report(const char *name, int result) {
  if (result >= 0) {
    printf("PROBE %s allowed\n", name);
  } else {
    printf("PROBE %s denied %s\n", name, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
  }
  fflush(stdout);
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return -1;
  ssize_t written = write(fd, text, strlen(text));
  int saved = errno;
  close(fd);
  errno = saved;
  return written < 0 ? -1 : 0;
}

static int syscalls(pid_t host_pid) {
  mkdir("/tmp/probe-mount", 0755);
  report("mount_tmpfs", mount("tmpfs", "/tmp/probe-mount", "tmpfs", 0, NULL));
  report("remount_root_rw", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL));
  report("mount_proc", mount("proc", "/tmp/probe-mount", "proc", 0, NULL));
  report("mknod_char_device", mknod("/tmp/probe-dev", S_IFCHR | 0600, makedev(1, 3)));
  report("raw_socket", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
  report("packet_socket", socket(AF_PACKET, SOCK_RAW, htons(3)));
  report("init_module", (int)syscall(SYS_init_module, "", 0, ""));
  report("finit_module", (int)syscall(SYS_finit_module, 0, "", 0));
  report("ptrace_host_process", (int)ptrace(PTRACE_ATTACH, host_pid, NULL, NULL));
  report("kill_host_process", kill(host_pid, 0));
  report("setuid_root", setuid(0));
  report("write_root_filesystem", write_file("/probe-was-here", "x"));
  report("write_usr", write_file("/usr/local/bin/probe-was-here", "x"));
  report("write_cgroup_v1_memory_limit",
         write_file("/sys/fs/cgroup/memory/memory.limit_in_bytes", "-1"));
  report("write_cgroup_v1_pids_limit", write_file("/sys/fs/cgroup/pids/pids.max", "max"));
  report("write_cgroup_v2_memory_limit", write_file("/sys/fs/cgroup/memory.max", "max"));
  report("write_proc_sysrq", write_file("/proc/sysrq-trigger", "h"));
  report("write_proc_sys", write_file("/proc/sys/kernel/hostname", "escaped"));
  report("unshare_user_namespace", unshare(CLONE_NEWUSER));
  report("unshare_network_namespace", unshare(CLONE_NEWNET));
  report("clone_user_namespace", (int)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
  report("keyctl", (int)syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
  report("chroot", chroot("/tmp"));
  /* What is allowed still works: a plain fork. */
  pid_t child = fork();
  if (child == 0) _exit(0);
  report("fork", child > 0 ? 0 : -1);
  return 0;
}

/* PROBE connect_<ip:port> allowed | denied <errno>: a non-blocking connect waited on for 2 s. */
static void connect_to(const char *target) {
  char name[128];
  snprintf(name, sizeof name, "connect_%s", target);
  char host[64];
  const char *colon = strrchr(target, ':');
  if (!colon || (size_t)(colon - target) >= sizeof host) {
    errno = EINVAL;
    report(name, -1);
    return;
  }
  memcpy(host, target, (size_t)(colon - target));
  host[colon - target] = 0;
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
  if (inet_pton(AF_INET, host, &address.sin_addr) != 1) {
    errno = EINVAL;
    report(name, -1);
    return;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    report(name, -1);
    return;
  }
  int result = connect(fd, (struct sockaddr *)&address, sizeof address);
  if (result < 0 && errno == EINPROGRESS) {
    struct pollfd waiting = {.fd = fd, .events = POLLOUT};
    if (poll(&waiting, 1, 2000) == 1) {
      int error = 0;
      socklen_t length = sizeof error;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
      errno = error;
      result = error ? -1 : 0;
    } else {
      errno = ETIMEDOUT;
      result = -1;
    }
  }
  report(name, result);
  close(fd);
}

static int fill(const char *path) {
  static char block[1 << 20];
  memset(block, 'x', sizeof block);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    report("fill_open", -1);
    return 1;
  }
  unsigned long long total = 0;
  for (;;) {
    ssize_t written = write(fd, block, sizeof block);
    if (written <= 0) break;
    total += (unsigned long long)written;
  }
  int saved = errno;
  fsync(fd);
  close(fd);
  errno = saved;
  printf("PROBE fill_bytes %llu\n", total);
  report("fill_past_quota", -1);
  return 0;
}

static int flood(unsigned long long bytes) {
  static char line[1024];
  memset(line, 'f', sizeof line - 1);
  line[sizeof line - 1] = '\n';
  for (unsigned long long written = 0; written < bytes; written += sizeof line) {
    if (write(1, line, sizeof line) < 0) return 1;
  }
  printf("PROBE flood_done %llu\n", bytes);
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "syscalls") == 0) return syscalls((pid_t)atoi(argv[2]));
  if (argc >= 3 && strcmp(argv[1], "connect") == 0) {
    for (int i = 2; i < argc; i++) connect_to(argv[i]);
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "fill") == 0) return fill(argv[2]);
  if (argc >= 3 && strcmp(argv[1], "flood") == 0) return flood(strtoull(argv[2], NULL, 10));
  fprintf(stderr, "usage: escape-probe syscalls <host pid> | connect <ip:port>... | fill <path> | flood <bytes>\n");
  return 2;
}
