/*
 * libFuzzer target for GitHub's webhook (changes/github.c): whatever body and
 * event a client posts to /change_hook/github must end in a list of changes
 * that changes_check accepts or refuses, or in an error, within bounds and
 * without leaks.  The first byte picks the event and the content type.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "changes/changes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *whitelist[] = {"github.*"};
    static char *skips[] = {"\\[ *skip *ci *\\]", "\\[ *ci *skip *\\]"};
    static struct cfg_github gh = {.pullrequest_ref = "merge",
                                   .property_whitelist = whitelist,
                                   .n_property_whitelist = 1,
                                   .skips = skips,
                                   .n_skips = 2,
                                   .api_url = "http://127.0.0.1:1"};
    static const char *const events[] = {"push", "pull_request", "ping", "issue_comment"};
    if (size < 1)
        return 0;
    struct chg_request req = {
        .event = events[data[0] % 4],
        .content_type = data[0] & 0x80 ? "application/x-www-form-urlencoded" : "application/json",
        .body = (const char *)data + 1,
        .len = size - 1,
    };
    json_t *changes = NULL, *payload = NULL;
    char *cause = NULL;
    size_t cost;
    if (changes_github(&gh, &req, CHG_HOOK_PARSE_MAX, &changes, &payload, &cost, &cause) == 0) {
        size_t i;
        json_t *c;
        json_array_foreach(changes, i, c)
        {
            if (changes_check(c, &cause) < 0) {
                free(cause);
                cause = NULL;
            }
        }
    }
    free(cause);
    json_decref(changes);
    json_decref(payload);
    return 0;
}
