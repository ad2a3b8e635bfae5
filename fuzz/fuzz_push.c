/*
 * libFuzzer target for what the peers of the message reporters answer
 * (reporters/push.c): a 429's retry_after, Discord's X-RateLimit-Reset-After, a page of GitHub
 * comments searched for a marker, a Link header's next page, and a Discord body trimmed (whose
 * content must then be within Discord's bound).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reporters/reporters.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    long s = rep_retry_after_body(text);
    if (s < -1 || rep_retry_after_header_seconds(text) < -1)
        abort();
    int have = rep_comments_have(text, "<!-- bbmaster:outbox 1 2.000 -->");
    if (have < -1 || have > 1)
        abort();
    free(rep_link_next(text));
    char *body = rep_discord_body(text);
    json_t *v = json_loads(body, JSON_DECODE_ANY, NULL);
    json_t *c = json_object_get(v, "content");
    /* a body changed is one whose content was trimmed within Discord's bound */
    if (strcmp(body, text) != 0 &&
        (!json_is_string(c) ||
         rep_utf8_prefix(json_string_value(c), REP_DISCORD_CONTENT_MAX) != json_string_length(c)))
        abort();
    json_decref(v);
    free(body);
    free(text);
    return 0;
}
