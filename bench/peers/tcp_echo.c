/*
 * tcp_echo.c: the ceiling for bench/wsload's tcp mode. A raw TCP echo
 * server on the same loop shape as vkws: one thread, one poll() loop
 * whose pollfd array is rebuilt each pass from static slot state, read
 * only while the slot's buffer has room, write only while output is
 * queued, accept only while a slot is free. No HTTP, no WebSocket
 * framing: bytes come back as they came (wsload's length prefixes ride
 * along untouched), so this is what the kernel and the loop cost alone.
 *
 *   tcp_echo [--listen 127.0.0.1:0]
 *
 * prints "listening on ADDR:PORT" once the socket listens. No allocation.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SLOTS 8192		/* connections at once */
#define BUF_SIZE 32768		/* bytes buffered per connection */
#define READS_CAP 65536		/* bytes read per slot per pass */

struct slot {
	int fd;			/* -1 when free */
	size_t off, len;	/* pending output is buf[off..len) */
	unsigned char *buf;	/* bufs[] entry: the scan of slots stays small */
};

static struct slot slots[MAX_SLOTS];
static unsigned char bufs[MAX_SLOTS][BUF_SIZE];
static int hi;			/* slots[0..hi) holds every open slot */
static struct pollfd pfd[MAX_SLOTS + 1];
static int pidx[MAX_SLOTS + 1];
static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int
nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void
slot_close(struct slot *s)
{
	close(s->fd);
	s->fd = -1;
	s->off = s->len = 0;
}

/* Write what is queued; compact so reads can refill the buffer. */
static void
slot_flush(struct slot *s)
{
	while (s->off < s->len) {
		ssize_t n = write(s->fd, s->buf + s->off, s->len - s->off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				slot_close(s);
			return;
		}
		s->off += (size_t)n;
	}
	s->off = s->len = 0;
}

static void
slot_read(struct slot *s)
{
	size_t got = 0;

	while (s->fd >= 0 && got < READS_CAP) {
		ssize_t n;

		if (s->off > 0) {
			memmove(s->buf, s->buf + s->off, s->len - s->off);
			s->len -= s->off;
			s->off = 0;
		}
		if (s->len == BUF_SIZE)
			break;
		n = read(s->fd, s->buf + s->len, BUF_SIZE - s->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			slot_close(s);
			return;
		}
		s->len += (size_t)n;
		got += (size_t)n;
		slot_flush(s);
	}
}

static int
listen_on(const char *spec)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	int fd, one = 1;

	if (colon == NULL || (size_t)(colon - spec) >= sizeof host)
		return -1;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(fd, 4096) < 0 || nonblock(fd) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		close(fd);
		return -1;
	}
	printf("listening on %s:%u\n", host, (unsigned)ntohs(sa.sin_port));
	fflush(stdout);
	return fd;
}

int
main(int argc, char **argv)
{
	const char *spec = "127.0.0.1:0";
	int lfd, i, nfree = MAX_SLOTS;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
			spec = argv[++i];
		} else {
			fprintf(stderr, "usage: tcp_echo [--listen ADDR:PORT]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	if ((lfd = listen_on(spec)) < 0) {
		perror("tcp_echo: listen");
		return 1;
	}
	for (i = 0; i < MAX_SLOTS; i++) {
		slots[i].fd = -1;
		slots[i].buf = bufs[i];
	}
	while (!stop) {
		int n = 0, r;

		/* Rebuild the poll set from slot state. */
		if (nfree > 0) {
			pfd[n].fd = lfd;
			pfd[n].events = POLLIN;
			pidx[n++] = -1;
		}
		while (hi > 0 && slots[hi - 1].fd < 0)
			hi--;
		for (i = 0; i < hi; i++) {
			struct slot *s = &slots[i];

			if (s->fd < 0)
				continue;
			pfd[n].fd = s->fd;
			pfd[n].events = (short)((s->len < BUF_SIZE ? POLLIN : 0) |
			    (s->off < s->len ? POLLOUT : 0));
			pidx[n++] = i;
		}
		r = poll(pfd, (nfds_t)n, 1000);
		if (r < 0 && errno != EINTR)
			break;
		for (i = 0; r > 0 && i < n; i++) {
			struct slot *s;

			if (pfd[i].revents == 0)
				continue;
			if (pidx[i] < 0) {
				int k, c, one = 1;

				for (k = 0; k < 64 && nfree > 0; k++) {
					int j;

					if ((c = accept(lfd, NULL, NULL)) < 0)
						break;
					nonblock(c);
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY,
					    &one, sizeof one);
					for (j = 0; slots[j].fd >= 0; j++)
						;
					slots[j].fd = c;
					if (j >= hi)
						hi = j + 1;
					nfree--;
				}
				continue;
			}
			s = &slots[pidx[i]];
			if (pfd[i].revents & POLLOUT)
				slot_flush(s);
			if (s->fd >= 0 &&
			    pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
				slot_read(s);
			if (s->fd < 0)
				nfree++;
		}
	}
	return 0;
}
