/*
 * linger.c - a graceful close for connections answered before their body
 * was read (401, 413, 429 on the first call; 413 or 408 in mid-body).
 *
 * Closing a socket whose peer is still sending makes the kernel answer
 * with a reset, and a reset can destroy the answer before the client reads
 * it (the unsent part on our side; on some systems what the client had
 * received but not yet read): the client, still busy writing its body,
 * reports a connection error instead of our 413. So the connection's
 * socket is handed over here (a dup of libmicrohttpd's descriptor, which
 * libmicrohttpd then closes on its side), its write side is shut down
 * after the answer (FIN), and whatever the client still sends is read and
 * dropped until it closes or linger_ms pass. At most max_fds sockets
 * linger at once; beyond that a socket is closed at once, as before.
 *
 * One thread polls them all; a pipe wakes it when one is added.
 */
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api_int.h"

struct lfd {
	int fd;
	uint64_t deadline_ms;
};

struct api_linger {
	pthread_mutex_t mu;
	pthread_t thread;
	bool started, stop;
	int wake[2]; /* pipe: [0] polled by the thread */
	unsigned linger_ms;
	int max, n;
	struct lfd *fds;
};

static void drop(struct api_linger *l, int i)
{
	close(l->fds[i].fd);
	l->fds[i] = l->fds[--l->n];
}

static void *linger_main(void *arg)
{
	struct api_linger *l = arg;
	struct pollfd *pfd = ft_xcalloc((size_t)l->max + 1, sizeof(*pfd));
	char sink[65536];
	for (;;) {
		pthread_mutex_lock(&l->mu);
		if (l->stop) {
			pthread_mutex_unlock(&l->mu);
			break;
		}
		uint64_t now = ft_time_mono_ms();
		for (int i = 0; i < l->n;) {
			if (now >= l->fds[i].deadline_ms) {
				drop(l, i);
				continue;
			}
			i++;
		}
		int n = l->n, timeout = 1000;
		pfd[0] = (struct pollfd){ .fd = l->wake[0], .events = POLLIN };
		for (int i = 0; i < n; i++) {
			pfd[i + 1] = (struct pollfd){ .fd = l->fds[i].fd, .events = POLLIN };
			int left = (int)(l->fds[i].deadline_ms - now);
			if (left < timeout)
				timeout = left;
		}
		pthread_mutex_unlock(&l->mu);
		if (poll(pfd, (nfds_t)n + 1, timeout) <= 0)
			continue;
		if (pfd[0].revents) {
			char b[64];
			while (read(l->wake[0], b, sizeof(b)) > 0) {
			}
		}
		/* Entries 0..n-1 are where they were: only this thread removes,
		 * and additions go to the end. */
		pthread_mutex_lock(&l->mu);
		for (int i = n; i-- > 0;) {
			if (!pfd[i + 1].revents)
				continue;
			ssize_t got;
			while ((got = read(l->fds[i].fd, sink, sizeof(sink))) > 0) {
			}
			if (got == 0 || (errno != EAGAIN && errno != EINTR))
				drop(l, i); /* the client closed, or the socket failed */
		}
		pthread_mutex_unlock(&l->mu);
	}
	free(pfd);
	return NULL;
}

struct api_linger *api_linger_new(int max_fds, unsigned linger_ms)
{
	struct api_linger *l = ft_xcalloc(1, sizeof(*l));
	pthread_mutex_init(&l->mu, NULL);
	l->max = max_fds;
	l->linger_ms = linger_ms;
	l->fds = ft_xcalloc((size_t)max_fds, sizeof(*l->fds));
	if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) == 0 &&
	    pthread_create(&l->thread, NULL, linger_main, l) == 0)
		l->started = true;
	return l;
}

void api_linger_free(struct api_linger *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = true;
	pthread_mutex_unlock(&l->mu);
	if (l->started) {
		ssize_t w = write(l->wake[1], "x", 1);
		FT_UNUSED(w);
		pthread_join(l->thread, NULL);
		close(l->wake[0]);
		close(l->wake[1]);
	}
	while (l->n)
		drop(l, 0);
	free(l->fds);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

void api_linger_add(struct api_linger *l, int fd)
{
	if (fd < 0)
		return;
	(void)shutdown(fd, SHUT_WR); /* FIN after the answer already written */
	int flags = fcntl(fd, F_GETFL);
	if (flags >= 0)
		(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	pthread_mutex_lock(&l->mu);
	if (!l->started || l->stop || l->n == l->max) {
		pthread_mutex_unlock(&l->mu);
		close(fd);
		return;
	}
	l->fds[l->n++] = (struct lfd){ fd, ft_time_mono_ms() + l->linger_ms };
	pthread_mutex_unlock(&l->mu);
	ssize_t w = write(l->wake[1], "x", 1); /* a full pipe already wakes it */
	FT_UNUSED(w);
}
