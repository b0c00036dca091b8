/*
 * Preloaded into the testbed's OpenDKIM instances (LD_PRELOAD): lets one thread at a time read a
 * libunbound configuration file.
 *
 * OpenDKIM 2.11 (Debian 12) makes a new libunbound context for each milter connection and reads
 * its ResolverConfiguration into it with ub_ctx_config(), from the connection's own thread.
 * libunbound parses that file with a flex scanner whose state is global: two connections at
 * once corrupt it ("fatal flex scanner internal error--end of buffer missed", then exit(2)), and
 * the milter is gone: every later mail is refused with 451 (milter_default_action = tempfail).
 * 40 submissions or MX deliveries at once killed a signer or the verifier almost every time.
 * One process-wide lock around the parse makes it safe; the parse takes well under a
 * millisecond.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>

struct ub_ctx;

static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;

int ub_ctx_config(struct ub_ctx *ctx, const char *fname)
{
	static int (*real)(struct ub_ctx *, const char *);
	int status;

	pthread_mutex_lock(&config_lock);
	if (real == NULL)
		real = (int (*)(struct ub_ctx *, const char *)) dlsym(RTLD_NEXT, "ub_ctx_config");
	/* libunbound's own answer when the file cannot be read: UB_READFILE (-4). */
	status = real != NULL ? real(ctx, fname) : -4;
	pthread_mutex_unlock(&config_lock);
	return status;
}
