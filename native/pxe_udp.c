/*
 * Optional native UDP I/O for TFTP transfer sockets (Linux). No protocol logic lives here: it
 * opens connected IPv4 UDP sockets, sends datagrams, and receives from all of them in batches.
 *
 * Why: with windowsize 1 every block costs one ACK received and one DATA sent. Through Node's
 * dgram each of those crosses into JavaScript on its own (a callback, a Buffer, an address
 * object, a send request), several microseconds of CPU per packet, which is what limits many
 * concurrent transfers on a small CPU. Here one epoll set holds every transfer socket of the
 * thread; libuv watches that set's fd, and when it is readable one call drains every ready
 * socket and hands JavaScript all the datagrams at once (one callback per batch). Sends are a
 * plain send(2) from a synchronous call. JavaScript keeps the whole TFTP state machine.
 *
 * Also one file call, preadNowait: a positional read that copies only what the page cache holds
 * and never waits on the disk (RWF_NOWAIT). A lone windowsize-1 transfer otherwise pays a libuv
 * thread-pool wake-up (two context switches) for every read-ahead chunk of a file that is almost
 * always cached (issue 19).
 *
 * State is per Node environment (main thread and each worker thread have their own).
 */
#define NAPI_VERSION 8
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Datagrams delivered per callback, and the bytes kept of each (a read transfer only expects
 * ACKs of 4 bytes and ERRORs of a few hundred; anything longer is cut, which is harmless). */
#define BATCH 256
#define SLOT 1024

typedef struct {
  napi_env env;
  int epfd;
  uv_poll_t *poll;
  int polling;
  int sockets;
  /* The open sockets, closed at teardown if JavaScript did not (a worker that just exits). */
  int *fds;
  int fds_cap;
  napi_ref callback;
  napi_ref buffer_ref;
  napi_ref records_ref;
  unsigned char *buffer; /* BATCH * SLOT bytes */
  int32_t *records;      /* BATCH * 3: fd, offset, length (or -errno) */
  napi_async_context context;
  napi_async_cleanup_hook_handle cleanup;
} Instance;

static const char *errno_name(int e) {
  switch (e) {
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOBUFS: return "ENOBUFS";
    case ENOMEM: return "ENOMEM";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    default: return "EIO";
  }
}

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  napi_throw_error(env, errno_name(e), msg);
  return NULL;
}

static Instance *instance(napi_env env) {
  Instance *inst = NULL;
  napi_get_instance_data(env, (void **)&inst);
  return inst;
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  Instance *inst = handle->data;
  if (status < 0 || inst->callback == NULL) return;
  struct epoll_event ready[BATCH];
  int n;
  if (inst->sockets == 1) {
    /* One socket (a lone transfer, the common PXE boot): it is the one that is readable, so
     * asking the set which one is a syscall per ACK for nothing. */
    ready[0].data.fd = inst->fds[0];
    n = 1;
  } else {
    n = epoll_wait(inst->epfd, ready, BATCH, 0);
  }
  int k = 0;
  for (int i = 0; i < n; i++) {
    int fd = ready[i].data.fd;
    /* One datagram per ready socket and turn: a transfer waits for one ACK at a time, and a
     * second recv would mostly cost a syscall to learn EAGAIN. The set is level-triggered, so a
     * socket with more queued is simply reported again on the next turn. */
    ssize_t got = recv(fd, inst->buffer + (size_t)k * SLOT, SLOT, MSG_DONTWAIT);
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      /* On a connected socket an ICMP error (port unreachable: the client is gone) shows here. */
      got = -errno;
    }
    inst->records[k * 3] = fd;
    inst->records[k * 3 + 1] = k * SLOT;
    inst->records[k * 3 + 2] = (int32_t)got;
    k++;
  }
  if (k == 0) return;
  napi_env env = inst->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv_this, count, result;
  if (napi_get_reference_value(env, inst->callback, &cb) == napi_ok && napi_get_global(env, &recv_this) == napi_ok &&
      napi_create_int32(env, k, &count) == napi_ok) {
    /* make_callback runs the microtasks and nextTicks the callback queued, like any libuv event.
     * An exception it leaves pending would surface at the next unrelated addon call: hand it to
     * Node as uncaught instead, as it does for its own event handlers. */
    if (napi_make_callback(env, inst->context, recv_this, cb, 1, &count, &result) == napi_pending_exception) {
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

/* init(callback) → { buffer, records, batch, slot }: callback(count) gets each batch. */
static napi_value js_init(napi_env env, napi_callback_info info) {
  Instance *inst = instance(env);
  if (inst->callback != NULL) {
    napi_throw_error(env, "EINVAL", "already initialised in this thread");
    return NULL;
  }
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype t;
  if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "init(callback) needs a function");
    return NULL;
  }
  napi_value buffer, arraybuffer, records, name, out, num;
  void *data;
  if (napi_create_buffer(env, (size_t)BATCH * SLOT, (void **)&inst->buffer, &buffer) != napi_ok) return NULL;
  if (napi_create_arraybuffer(env, (size_t)BATCH * 3 * sizeof(int32_t), &data, &arraybuffer) != napi_ok) return NULL;
  inst->records = data;
  if (napi_create_typedarray(env, napi_int32_array, (size_t)BATCH * 3, arraybuffer, 0, &records) != napi_ok) return NULL;
  napi_create_string_utf8(env, "pxe-udp", NAPI_AUTO_LENGTH, &name);
  if (napi_async_init(env, NULL, name, &inst->context) != napi_ok) return NULL;
  napi_create_reference(env, buffer, 1, &inst->buffer_ref);
  napi_create_reference(env, records, 1, &inst->records_ref);
  napi_create_reference(env, argv[0], 1, &inst->callback);
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "buffer", buffer);
  napi_set_named_property(env, out, "records", records);
  napi_create_int32(env, BATCH, &num);
  napi_set_named_property(env, out, "batch", num);
  napi_create_int32(env, SLOT, &num);
  napi_set_named_property(env, out, "slot", num);
  return out;
}

static int parse_ipv4(napi_env env, napi_value v, struct in_addr *out) {
  char text[64];
  size_t len;
  if (napi_get_value_string_utf8(env, v, text, sizeof text, &len) != napi_ok) return 0;
  return inet_pton(AF_INET, text, out) == 1;
}

/* open(localAddress, peerAddress, peerPort) → fd: bound to localAddress on a free port, connected. */
static napi_value js_open(napi_env env, napi_callback_info info) {
  Instance *inst = instance(env);
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct sockaddr_in local = {.sin_family = AF_INET}, peer = {.sin_family = AF_INET};
  int32_t port = -1;
  if (argc < 3 || !parse_ipv4(env, argv[0], &local.sin_addr) || !parse_ipv4(env, argv[1], &peer.sin_addr) ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok || port <= 0 || port > 65535) {
    napi_throw_type_error(env, "EINVAL", "open(localIPv4, peerIPv4, peerPort) needs two IPv4 addresses and a port");
    return NULL;
  }
  if (inst->callback == NULL) {
    napi_throw_error(env, "EINVAL", "init() first");
    return NULL;
  }
  peer.sin_port = htons((uint16_t)port);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "bind", e);
  }
  if (connect(fd, (struct sockaddr *)&peer, sizeof peer) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "connect", e);
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  if (epoll_ctl(inst->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "epoll_ctl", e);
  }
  if (inst->sockets == inst->fds_cap) {
    int cap = inst->fds_cap ? inst->fds_cap * 2 : 64;
    int *grown = realloc(inst->fds, (size_t)cap * sizeof(int));
    if (grown == NULL) {
      epoll_ctl(inst->epfd, EPOLL_CTL_DEL, fd, NULL);
      close(fd);
      return throw_errno(env, "open", ENOMEM);
    }
    inst->fds = grown;
    inst->fds_cap = cap;
  }
  inst->fds[inst->sockets] = fd;
  /* The watcher only runs (and keeps the event loop alive) while sockets are open. */
  if (inst->sockets++ == 0 && !inst->polling) {
    int rc = uv_poll_start(inst->poll, UV_READABLE, on_readable);
    if (rc != 0) {
      inst->fds[--inst->sockets] = -1;
      epoll_ctl(inst->epfd, EPOLL_CTL_DEL, fd, NULL);
      close(fd);
      napi_throw_error(env, "EIO", uv_strerror(rc));
      return NULL;
    }
    inst->polling = 1;
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

/* send(fd, buffer) → 0, or -errno (EAGAIN: the socket buffer is full; the packet counts as lost). */
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  void *data = NULL;
  size_t len = 0;
  bool is_buffer = false;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_is_buffer(env, argv[1], &is_buffer) != napi_ok ||
      !is_buffer || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "send(fd, buffer)");
    return NULL;
  }
  ssize_t sent = send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  napi_value out;
  napi_create_int32(env, sent < 0 ? -errno : 0, &out);
  return out;
}

/* close(fd): leaves the epoll set and closes; fds that open() did not return are left alone. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  Instance *inst = instance(env);
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "EINVAL", "close(fd)");
    return NULL;
  }
  int i = 0;
  while (i < inst->sockets && inst->fds[i] != fd) i++;
  if (i == inst->sockets) return NULL; /* not ours (or closed already): never close a stranger's fd */
  inst->fds[i] = inst->fds[--inst->sockets];
  epoll_ctl(inst->epfd, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  if (inst->sockets == 0 && inst->polling) {
    uv_poll_stop(inst->poll);
    inst->polling = 0;
  }
  return NULL;
}

/* preadNowait(fd, buffer, offset, length, position) → bytes copied (maybe fewer than asked, 0 at
 * the end of the file), or -errno: EAGAIN when the first bytes are not in the page cache (the
 * caller then reads through libuv's thread pool), EOPNOTSUPP where the file system cannot. Never
 * blocks on I/O, so it may run on the event loop; the caller bounds `length` (one read-ahead
 * chunk: a copy of tens of microseconds). */
static napi_value js_pread_nowait(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  int64_t offset = -1, length = -1, position = -1;
  void *data = NULL;
  size_t len = 0;
  bool is_buffer = false;
  if (argc < 5 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_is_buffer(env, argv[1], &is_buffer) != napi_ok ||
      !is_buffer || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok || napi_get_value_int64(env, argv[2], &offset) != napi_ok ||
      napi_get_value_int64(env, argv[3], &length) != napi_ok || napi_get_value_int64(env, argv[4], &position) != napi_ok || fd < 0 ||
      offset < 0 || length < 0 || position < 0 || (uint64_t)offset + (uint64_t)length > len) {
    napi_throw_type_error(env, "EINVAL", "preadNowait(fd, buffer, offset, length, position)");
    return NULL;
  }
  struct iovec iov = {.iov_base = (char *)data + offset, .iov_len = (size_t)length};
  ssize_t got = preadv2(fd, &iov, 1, (off_t)position, RWF_NOWAIT);
  napi_value out;
  napi_create_int64(env, got < 0 ? -errno : (int64_t)got, &out);
  return out;
}

static void on_poll_closed(uv_handle_t *handle) {
  Instance *inst = handle->data;
  napi_async_cleanup_hook_handle cleanup = inst->cleanup;
  free(handle);
  /* Freed here, not in an instance-data finalizer: that may run before this close callback. */
  free(inst);
  napi_remove_async_cleanup_hook(cleanup);
}

/* The environment (a worker thread, or the process) is going away: close the watcher and the set. */
static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  Instance *inst = arg;
  inst->cleanup = handle;
  for (int i = 0; i < inst->sockets; i++) close(inst->fds[i]);
  inst->sockets = 0;
  free(inst->fds);
  inst->fds = NULL;
  /* Stop watching before the watched fd goes (libuv must not poll a closed fd). */
  if (inst->polling) uv_poll_stop(inst->poll);
  inst->polling = 0;
  uv_close((uv_handle_t *)inst->poll, on_poll_closed);
  if (inst->epfd >= 0) close(inst->epfd);
  inst->epfd = -1;
}

NAPI_MODULE_INIT() {
  Instance *inst = calloc(1, sizeof(Instance));
  if (inst == NULL) return NULL;
  inst->env = env;
  inst->epfd = epoll_create1(EPOLL_CLOEXEC);
  inst->poll = calloc(1, sizeof(uv_poll_t));
  uv_loop_t *loop = NULL;
  if (inst->epfd < 0 || inst->poll == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok ||
      uv_poll_init(loop, inst->poll, inst->epfd) != 0) {
    if (inst->epfd >= 0) close(inst->epfd);
    free(inst->poll);
    free(inst);
    napi_throw_error(env, "EIO", "cannot set up the epoll watcher");
    return NULL;
  }
  inst->poll->data = inst;
  napi_set_instance_data(env, inst, NULL, NULL);
  napi_add_async_cleanup_hook(env, on_env_cleanup, inst, NULL);
  napi_property_descriptor props[] = {
      {"init", NULL, js_init, NULL, NULL, NULL, napi_default, NULL},
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"preadNowait", NULL, js_pread_nowait, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
