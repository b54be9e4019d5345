/*
 * poller.h: what the loop waits on (poller.c): descriptors by readiness,
 * through poll() or epoll, and connection deadlines in a timer heap.
 * The core (vkws.c) says what each slot waits for when that changes;
 * the poller never reads, writes or closes a socket.
 */
#ifndef VKWS_POLLER_H
#define VKWS_POLLER_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "vkws.h"

/* Wake-up sources other than connection slots (vkws_ev.slot). */
enum { VKWS_P_SIGNAL = 0xFFFF, VKWS_P_LISTEN = 0xFFFE,
    VKWS_P_LISTEN_TLS = 0xFFFD };
_Static_assert(VKWS_SLOTS < 0xFFFD, "slot numbers stay below the markers");

/* One ready descriptor: its slot (or a marker) and what poll() would
 * have put in revents (POLLIN, POLLOUT, POLLHUP, POLLERR). */
struct vkws_ev {
	uint16_t slot;
	short revents;
};

/* The backend's name ("epoll" or "poll"), for --budget and logs. */
const char *vkws_poller_name(void);
/* Open the backend and watch the self-pipe sig_fd. 0, or -1 (errno). */
int vkws_poller_init(int sig_fd);
/* Slot s (descriptor fd) waits for events (POLLIN | POLLOUT, 0: none).
 * Cheap when nothing changed. 0, or -1 if the kernel refused (the
 * connection cannot be watched and must be closed). */
int vkws_poller_set(size_t s, int fd, short events);
/* Slot s is freed: forget it before its descriptor is closed. */
void vkws_poller_gone(size_t s, int fd);
/* A listener (VKWS_P_LISTEN or VKWS_P_LISTEN_TLS) is watched or not. */
void vkws_poller_listen(int fd, uint16_t which, int on);
/*
 * Wait at most timeout ms (-1: no limit) for the watched descriptors
 * and for extra[0..nextra), a layer's own descriptors, whose revents
 * are filled in. Returns the ready ones in *out (at most
 * VKWS_POLL_EVENTS), their count, or -1 (EINTR).
 */
int vkws_poller_wait(struct pollfd *extra, size_t nextra, int timeout,
    const struct vkws_ev **out);

/* ---- Timers: one due time per slot, a binary min-heap ---------------- */

/* Slot s must be looked at by due (monotonic ms); INT64_MAX: never. */
void vkws_timer_set(size_t s, int64_t due);
/* Make slot s due by `due` at the latest (an earlier due time stays). */
void vkws_timer_sooner(size_t s, int64_t due);
/* The earliest due time, INT64_MAX if none. */
int64_t vkws_timer_next(void);
/* Take the slot due first if its time is <= now: its number, or -1. */
int vkws_timer_pop(int64_t now);
/* Slots in the heap (for the tests). */
size_t vkws_timer_count(void);

/* Static bytes of the poller and the heap, for --budget. */
size_t vkws_poller_static_size(void);

#endif
