/*
 * cyclefetch: when www.release_cycle is an http(s) URL, the master fetches
 * the release cycle in the background on its loop (src/http) and keeps the
 * last good copy in a file of the master's directory, which /release_status
 * reads like any release-cycle file.  A failed or bad answer is logged and
 * leaves that copy as it was.
 */
#ifndef BBM_CYCLEFETCH_H
#define BBM_CYCLEFETCH_H

#include <uv.h>

/* The last good copy of a fetched release cycle, in the master's directory. */
#define CYCLEFETCH_FILE "release-cycle.json.cache"
/* Seconds between fetches, and before the next try after a failed one. */
#define CYCLEFETCH_REFRESH_S (15 * 60)
#define CYCLEFETCH_RETRY_S 60
/* The largest release cycle taken (the real one is a few KiB). */
#define CYCLEFETCH_BODY_MAX (1024 * 1024)

struct cyclefetch;

/*
 * Fetches `url` (copied) on `loop` at once, then every CYCLEFETCH_REFRESH_S (or
 * CYCLEFETCH_RETRY_S after a failure), writing each good answer to CYCLEFETCH_FILE in the
 * current directory.  For tests only, BBM_RELEASE_CYCLE_REFRESH_MS sets both intervals in
 * milliseconds.
 */
struct cyclefetch *cyclefetch_new(uv_loop_t *loop, const char *url);
/* The URL it fetches. */
const char *cyclefetch_url(const struct cyclefetch *f);
/* Stops fetching (a fetch in flight is dropped); accepts NULL.  Freed once its handles close. */
void cyclefetch_free(struct cyclefetch *f);

#endif
