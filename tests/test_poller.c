/*
 * test_poller.c: poller.c, the loop's wait and its timer heap. The heap
 * against a plain array after every one of thousands of seeded random
 * inserts, moves (earlier, later), removals and pops, so every sift path
 * and the order of equal times are hit; and the backend this build has
 * (epoll or poll) on real pipes: a slot is reported only while it waits
 * for something that is ready, a change of interest takes effect, a
 * slot that is gone or waits for nothing is never reported (not even
 * for a hang-up), listeners come and go, and a layer's descriptors are
 * waited on beside the set.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "poller.h"

/* ---- The heap against a model ---------------------------------------- */

/* Slots used here: 512, or the whole table of a smaller profile. */
#define N (VKWS_SLOTS < 512 ? VKWS_SLOTS : 512)

static int64_t model[N];	/* due time, INT64_MAX: not filed */
static uint64_t rng_s = 0x9E3779B97F4A7C15ULL;

static uint32_t
rnd(void)
{
	rng_s ^= rng_s >> 12;
	rng_s ^= rng_s << 25;
	rng_s ^= rng_s >> 27;
	return (uint32_t)((rng_s * 2685821657736338717ULL) >> 32);
}

static int64_t
model_min(void)
{
	int64_t m = INT64_MAX;
	size_t i;

	for (i = 0; i < N; i++)
		if (model[i] < m)
			m = model[i];
	return m;
}

static size_t
model_count(void)
{
	size_t i, n = 0;

	for (i = 0; i < N; i++)
		n += model[i] != INT64_MAX;
	return n;
}

static void
test_heap_random(void)
{
	int bad = 0, step;
	size_t i;

	for (i = 0; i < N; i++)
		model[i] = INT64_MAX;
	for (step = 0; step < 200000; step++) {
		size_t s = rnd() % N;
		uint32_t op = rnd() % 10;
		/* Few distinct times, so equal keys are common. */
		int64_t t = (int64_t)(rnd() % 64);

		if (op < 4) {
			vkws_timer_set(s, t);
			model[s] = t;
		} else if (op < 6) {
			vkws_timer_sooner(s, t);
			if (t < model[s])
				model[s] = t;
		} else if (op < 7) {
			vkws_timer_set(s, INT64_MAX);
			model[s] = INT64_MAX;
		} else {
			/* Pop everything due by t: in time order, each a
			 * slot the model has due then. */
			int p;
			int64_t last = INT64_MIN;
			while ((p = vkws_timer_pop(t)) >= 0) {
				if (model[p] > t || model[p] < last)
					bad++;
				last = model[p];
				model[p] = INT64_MAX;
			}
			if (model_min() <= t)
				bad++;
		}
		if (vkws_timer_next() != model_min() ||
		    vkws_timer_count() != model_count())
			bad++;
	}
	CHECK_EQ(bad, 0);
	/* Drain: every filed slot comes out once, in order. */
	{
		int p;
		int64_t last = INT64_MIN;
		size_t n = 0;
		while ((p = vkws_timer_pop(INT64_MAX - 1)) >= 0) {
			CHECK(model[p] != INT64_MAX && model[p] >= last);
			last = model[p];
			model[p] = INT64_MAX;
			n++;
		}
		CHECK_EQ(model_count(), 0);
		CHECK_EQ(vkws_timer_count(), 0);
		CHECK_EQ(vkws_timer_next(), INT64_MAX);
		CHECK(n > 0);
	}
}

/* A deadline that moves earlier is popped at the new time; one that
 * moves later is not popped at the old one; sooner() never delays. */
static void
test_heap_moves(void)
{
	vkws_timer_set(3, 1000);
	vkws_timer_set(4, 2000);
	vkws_timer_set(4, 500);
	CHECK_EQ(vkws_timer_next(), 500);
	CHECK_EQ(vkws_timer_pop(600), 4);
	CHECK_EQ(vkws_timer_pop(600), -1);
	vkws_timer_set(3, 5000);
	CHECK_EQ(vkws_timer_pop(1000), -1);
	vkws_timer_sooner(3, 9000);
	CHECK_EQ(vkws_timer_next(), 5000);
	vkws_timer_sooner(3, 10);
	CHECK_EQ(vkws_timer_pop(10), 3);
	CHECK_EQ(vkws_timer_count(), 0);
	vkws_timer_sooner(7, 42);	/* not filed: sooner() files it */
	CHECK_EQ(vkws_timer_pop(42), 7);
	vkws_timer_set(8, INT64_MAX);	/* not filed: nothing happens */
	CHECK_EQ(vkws_timer_count(), 0);
}

/* ---- The backend on pipes -------------------------------------------- */

static int sigp[2];

/* The events the wait reports for slot s (0: not reported); -1 if the
 * wait failed. */
static int
ready_of(size_t s, struct pollfd *x, size_t nx)
{
	const struct vkws_ev *ev;
	int i, n = vkws_poller_wait(x, nx, 0, &ev), got = 0;

	if (n < 0)
		return -1;
	for (i = 0; i < n; i++)
		if (ev[i].slot == s)
			got |= ev[i].revents;
	return got;
}

static void
test_backend(void)
{
	int a[2], b[2], l[2];
	struct pollfd x[1];
	const struct vkws_ev *ev;
	int n, i, sig = 0;

	CHECK(pipe(sigp) == 0 && pipe(a) == 0 && pipe(b) == 0 &&
	    pipe(l) == 0);
	CHECK_EQ(vkws_poller_init(sigp[0]), 0);
	/* Nothing watched is ready. */
	CHECK_EQ(vkws_poller_wait(NULL, 0, 0, &ev), 0);

	/* Slot 5 reads a[0]: reported once a byte is there, again while it
	 * stays unread (level-triggered), and no longer once drained. */
	CHECK_EQ(vkws_poller_set(5, a[0], POLLIN), 0);
	CHECK_EQ(ready_of(5, NULL, 0), 0);
	CHECK_EQ(write(a[1], "x", 1), 1);
	CHECK_EQ(ready_of(5, NULL, 0), POLLIN);
	CHECK_EQ(ready_of(5, NULL, 0), POLLIN);
	/* The same interest again changes nothing. */
	CHECK_EQ(vkws_poller_set(5, a[0], POLLIN), 0);
	CHECK_EQ(ready_of(5, NULL, 0), POLLIN);
	/* Waiting for nothing: not reported, though readable. */
	CHECK_EQ(vkws_poller_set(5, a[0], 0), 0);
	CHECK_EQ(ready_of(5, NULL, 0), 0);
	CHECK_EQ(vkws_poller_set(5, a[0], POLLIN), 0);
	CHECK_EQ(ready_of(5, NULL, 0), POLLIN);

	/* Slot 9 writes b[1]: POLLOUT only while asked for. */
	CHECK_EQ(vkws_poller_set(9, b[1], POLLOUT), 0);
	CHECK_EQ(ready_of(9, NULL, 0), POLLOUT);
	CHECK_EQ(vkws_poller_set(9, b[1], 0), 0);
	CHECK_EQ(ready_of(9, NULL, 0), 0);

	/* A hang-up on a slot that waits for nothing is not reported
	 * (epoll would report it to an entry left in the set). */
	CHECK_EQ(vkws_poller_set(9, b[0], POLLIN), 0);
	CHECK_EQ(ready_of(9, NULL, 0), 0);
	CHECK_EQ(vkws_poller_set(9, b[0], 0), 0);
	close(b[1]);
	CHECK_EQ(ready_of(9, NULL, 0), 0);
	CHECK_EQ(vkws_poller_set(9, b[0], POLLIN), 0);
	CHECK(ready_of(9, NULL, 0) & (POLLIN | POLLHUP));

	/* Gone: not reported, and the descriptor may close. */
	vkws_poller_gone(9, b[0]);
	close(b[0]);
	CHECK_EQ(ready_of(9, NULL, 0), 0);
	CHECK_EQ(ready_of(5, NULL, 0), POLLIN);

	/* A listener comes and goes. */
	CHECK_EQ(write(l[1], "y", 1), 1);
	vkws_poller_listen(l[0], VKWS_P_LISTEN, 1);
	CHECK_EQ(ready_of(VKWS_P_LISTEN, NULL, 0), POLLIN);
	vkws_poller_listen(l[0], VKWS_P_LISTEN, 1);	/* no change */
	CHECK_EQ(ready_of(VKWS_P_LISTEN, NULL, 0), POLLIN);
	vkws_poller_listen(l[0], VKWS_P_LISTEN, 0);
	CHECK_EQ(ready_of(VKWS_P_LISTEN, NULL, 0), 0);

	/* The self-pipe. */
	CHECK_EQ(write(sigp[1], "", 1), 1);
	n = vkws_poller_wait(NULL, 0, 0, &ev);
	for (i = 0; i < n; i++)
		sig |= ev[i].slot == VKWS_P_SIGNAL;
	CHECK(sig);

	/* A layer's descriptor beside the set: its revents come back in
	 * x, and the set's events still come. */
	x[0].fd = l[0];
	x[0].events = POLLIN;
	x[0].revents = 0;
	CHECK_EQ(ready_of(5, x, 1), POLLIN);
	CHECK_EQ(x[0].revents, POLLIN);
	/* The layer's descriptor ready alone. */
	CHECK_EQ(vkws_poller_set(5, a[0], 0), 0);
	{
		char d[8];
		CHECK(read(sigp[0], d, sizeof(d)) > 0);
	}
	x[0].revents = 0;
	n = vkws_poller_wait(x, 1, 1000, &ev);
	CHECK_EQ(n, 0);
	CHECK_EQ(x[0].revents, POLLIN);
	/* Nothing ready: the wait times out. */
	x[0].fd = a[1];
	x[0].events = POLLIN;
	x[0].revents = 0;
	CHECK_EQ(vkws_poller_wait(x, 1, 10, &ev), 0);
	CHECK_EQ(x[0].revents, 0);

	vkws_poller_gone(5, a[0]);
	close(a[0]);
	close(a[1]);
	close(l[0]);
	close(l[1]);
}

int
main(void)
{
	test_heap_moves();
	test_heap_random();
	test_backend();
	printf("poller backend: %s\n", vkws_poller_name());
	CHECK_MAIN();
}
