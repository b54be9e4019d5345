/*
 * poller.c: what the loop waits on. Two backends behind one interface,
 * chosen at build time: epoll (make POLLER=epoll, the default on Linux)
 * and poll() (make POLLER=poll, any POSIX system). The core tells the
 * poller what a slot waits for only when that changes, and the timer
 * heap holds one due time per slot, so a loop pass costs what its ready
 * descriptors and due deadlines cost, not what the table holds.
 *
 * epoll is level-triggered, as poll() is: a descriptor the core did not
 * drain this pass (a capped read or write) is reported again next pass.
 * A slot that waits for nothing is removed from the set (not left with
 * no events), because epoll reports hang-ups even then, and a slot whose
 * input is stalled by backpressure must not spin the loop.
 *
 * A layer's own descriptors (hooks->poll_fds: the cluster's Redis link)
 * change from pass to pass and may be closed and reopened under the same
 * number, which an epoll set would keep stale. So they are never added
 * to it: in a pass that has some, one poll() waits on them and on the
 * epoll descriptor itself (readable while any event is ready), then
 * epoll_wait() with no timeout collects the connections. A pass without
 * them is one epoll_wait(). The poll() backend keeps a pollfd array that
 * lives from pass to pass (an entry is added, changed or swapped out
 * when its slot changes) and appends the layer's entries for each call.
 *
 * Never reads, writes, accepts or closes a socket; no allocation: every
 * array is static and sized in vkws.h.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "poller.h"

#ifdef VKWS_POLLER_EPOLL
#include <fcntl.h>
#include <sys/epoll.h>
#endif

/* ---- Timers: a binary min-heap of slots keyed by due time ------------ */

static uint16_t heap[VKWS_SLOTS];
static int64_t hdue[VKWS_SLOTS];	/* by slot */
static uint16_t hpos[VKWS_SLOTS];	/* heap index + 1; 0: not in it */
static size_t hn;

static void
hplace(size_t i, uint16_t s)
{
	heap[i] = s;
	hpos[s] = (uint16_t)(i + 1);
}

static void
hup(size_t i)
{
	uint16_t s = heap[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (hdue[heap[p]] <= hdue[s])
			break;
		hplace(i, heap[p]);
		i = p;
	}
	hplace(i, s);
}

static void
hdown(size_t i)
{
	uint16_t s = heap[i];

	for (;;) {
		size_t l = 2 * i + 1, m;
		if (l >= hn)
			break;
		m = l + 1 < hn && hdue[heap[l + 1]] < hdue[heap[l]] ? l + 1 : l;
		if (hdue[heap[m]] >= hdue[s])
			break;
		hplace(i, heap[m]);
		i = m;
	}
	hplace(i, s);
}

static void
hremove(size_t i)
{
	uint16_t last = heap[--hn];

	hpos[heap[i]] = 0;
	if (i == hn)
		return;
	hplace(i, last);
	if (i > 0 && hdue[heap[(i - 1) / 2]] > hdue[last])
		hup(i);
	else
		hdown(i);
}

void
vkws_timer_set(size_t s, int64_t due)
{
	if (due == INT64_MAX) {
		if (hpos[s] != 0)
			hremove((size_t)hpos[s] - 1);
		return;
	}
	if (hpos[s] == 0) {
		hdue[s] = due;
		hplace(hn, (uint16_t)s);
		hn++;
		hup(hn - 1);
	} else if (due < hdue[s]) {
		hdue[s] = due;
		hup((size_t)hpos[s] - 1);
	} else if (due > hdue[s]) {
		hdue[s] = due;
		hdown((size_t)hpos[s] - 1);
	}
}

void
vkws_timer_sooner(size_t s, int64_t due)
{
	if (hpos[s] == 0 || due < hdue[s])
		vkws_timer_set(s, due);
}

int64_t
vkws_timer_next(void)
{
	return hn > 0 ? hdue[heap[0]] : INT64_MAX;
}

int
vkws_timer_pop(int64_t now)
{
	uint16_t s;

	if (hn == 0 || hdue[heap[0]] > now)
		return -1;
	s = heap[0];
	hremove(0);
	return (int)s;
}

size_t
vkws_timer_count(void)
{
	return hn;
}

#ifdef VKWS_POLLER_EPOLL
/* ---- epoll ----------------------------------------------------------- */

static int epfd = -1;
static uint8_t pev[VKWS_SLOTS];		/* events in the set; 0: not in it */
static uint8_t lis_on[3];		/* by 0xFFFF - marker */
static struct epoll_event eev[VKWS_POLL_EVENTS];
static struct vkws_ev evs[VKWS_POLL_EVENTS];
/* The epoll descriptor, then the layer's descriptors. */
static struct pollfd xfd[1 + VKWS_EXTRA_FDS];

const char *
vkws_poller_name(void)
{
	return "epoll";
}

static uint32_t
to_epoll(short ev)
{
	return ((ev & POLLIN) ? (uint32_t)EPOLLIN : 0) |
	    ((ev & POLLOUT) ? (uint32_t)EPOLLOUT : 0);
}

static int
ctl(int op, int fd, uint32_t events, uint32_t data)
{
	struct epoll_event e;

	memset(&e, 0, sizeof(e));
	e.events = events;
	e.data.u32 = data;
	return epoll_ctl(epfd, op, fd, &e);
}

int
vkws_poller_init(int sig_fd)
{
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		return -1;
	return ctl(EPOLL_CTL_ADD, sig_fd, EPOLLIN, VKWS_P_SIGNAL);
}

int
vkws_poller_set(size_t s, int fd, short events)
{
	uint8_t want = (uint8_t)(events & (POLLIN | POLLOUT));
	int r;

	if (want == pev[s])
		return 0;
	if (want == 0)
		r = ctl(EPOLL_CTL_DEL, fd, 0, 0);
	else
		r = ctl(pev[s] == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd,
		    to_epoll(want), (uint32_t)s);
	if (r < 0)
		return -1;
	pev[s] = want;
	return 0;
}

void
vkws_poller_gone(size_t s, int fd)
{
	if (pev[s] != 0)
		(void)ctl(EPOLL_CTL_DEL, fd, 0, 0);
	pev[s] = 0;
}

void
vkws_poller_listen(int fd, uint16_t which, int on)
{
	uint8_t *st = &lis_on[0xFFFF - which];

	if (on == *st)
		return;
	if (ctl(on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, EPOLLIN, which) == 0)
		*st = (uint8_t)on;
}

int
vkws_poller_wait(struct pollfd *extra, size_t nextra, int timeout,
    const struct vkws_ev **out)
{
	int i, n;

	*out = evs;
	if (nextra > 0) {
		/* The layer's descriptors and the epoll set, in one wait. */
		xfd[0].fd = epfd;
		xfd[0].events = POLLIN;
		xfd[0].revents = 0;
		memcpy(xfd + 1, extra, nextra * sizeof(*extra));
		if (poll(xfd, (nfds_t)nextra + 1, timeout) < 0)
			return -1;
		memcpy(extra, xfd + 1, nextra * sizeof(*extra));
		if (xfd[0].revents == 0)
			return 0;
		timeout = 0;
	}
	n = epoll_wait(epfd, eev, VKWS_POLL_EVENTS, timeout);
	for (i = 0; i < n; i++) {
		uint32_t e = eev[i].events;
		evs[i].slot = (uint16_t)eev[i].data.u32;
		evs[i].revents = (short)(((e & EPOLLIN) ? POLLIN : 0) |
		    ((e & EPOLLOUT) ? POLLOUT : 0) |
		    ((e & EPOLLHUP) ? POLLHUP : 0) |
		    ((e & EPOLLERR) ? POLLERR : 0));
	}
	return n;
}

size_t
vkws_poller_static_size(void)
{
	return sizeof(heap) + sizeof(hdue) + sizeof(hpos) + sizeof(pev) +
	    sizeof(eev) + sizeof(evs) + sizeof(xfd);
}

#else
/* ---- poll() ---------------------------------------------------------- */

/* Watched entries first (slots, the self-pipe, listeners: np of them,
 * in no order), then each call's layer entries. */
#define PFD_MAX (VKWS_SLOTS + 3 + VKWS_EXTRA_FDS)
static struct pollfd pfd[PFD_MAX];
static uint16_t pmark[PFD_MAX];		/* slot or marker of each entry */
static uint16_t pidx[VKWS_SLOTS];	/* entry + 1 of a slot; 0: none */
static uint16_t lidx[3];		/* the same, of the three markers */
static size_t np;
static struct vkws_ev evs[VKWS_SLOTS + 3];

_Static_assert(PFD_MAX < 0xFFFF, "an entry index fits 16 bits");

const char *
vkws_poller_name(void)
{
	return "poll";
}

static uint16_t *
idx_of(uint16_t mark)
{
	switch (mark) {
	case VKWS_P_SIGNAL:
		return &lidx[0];
	case VKWS_P_LISTEN:
		return &lidx[1];
	case VKWS_P_LISTEN_TLS:
		return &lidx[2];
	default:
		return &pidx[mark];
	}
}

static void
entry_add(uint16_t mark, int fd, short events)
{
	pfd[np].fd = fd;
	pfd[np].events = events;
	pfd[np].revents = 0;
	pmark[np] = mark;
	*idx_of(mark) = (uint16_t)(np + 1);
	np++;
}

/* Swap the last watched entry into the place of mark's. */
static void
entry_del(uint16_t mark)
{
	uint16_t *ix = idx_of(mark);
	size_t i;

	if (*ix == 0)
		return;
	i = (size_t)*ix - 1;
	*ix = 0;
	np--;
	if (i == np)
		return;
	pfd[i] = pfd[np];
	pmark[i] = pmark[np];
	*idx_of(pmark[i]) = (uint16_t)(i + 1);
}

int
vkws_poller_init(int sig_fd)
{
	entry_add(VKWS_P_SIGNAL, sig_fd, POLLIN);
	return 0;
}

int
vkws_poller_set(size_t s, int fd, short events)
{
	events &= POLLIN | POLLOUT;
	if (events == 0)
		entry_del((uint16_t)s);
	else if (pidx[s] == 0)
		entry_add((uint16_t)s, fd, events);
	else {
		pfd[pidx[s] - 1].fd = fd;
		pfd[pidx[s] - 1].events = events;
	}
	return 0;
}

void
vkws_poller_gone(size_t s, int fd)
{
	(void)fd;
	entry_del((uint16_t)s);
}

void
vkws_poller_listen(int fd, uint16_t which, int on)
{
	if (!on)
		entry_del(which);
	else if (*idx_of(which) == 0)
		entry_add(which, fd, POLLIN);
}

int
vkws_poller_wait(struct pollfd *extra, size_t nextra, int timeout,
    const struct vkws_ev **out)
{
	size_t i;
	int n = 0;

	*out = evs;
	if (nextra > 0)
		memcpy(pfd + np, extra, nextra * sizeof(*extra));
	if (poll(pfd, (nfds_t)(np + nextra), timeout) < 0)
		return -1;
	if (nextra > 0)
		memcpy(extra, pfd + np, nextra * sizeof(*extra));
	for (i = 0; i < np; i++) {
		if (pfd[i].revents == 0)
			continue;
		evs[n].slot = pmark[i];
		evs[n].revents = pfd[i].revents;
		n++;
	}
	return n;
}

size_t
vkws_poller_static_size(void)
{
	return sizeof(heap) + sizeof(hdue) + sizeof(hpos) + sizeof(pfd) +
	    sizeof(pmark) + sizeof(pidx) + sizeof(evs);
}
#endif
