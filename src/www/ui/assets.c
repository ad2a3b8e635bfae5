/*
 * The UI's static files, compiled into the binary (assets/embed.py writes
 * them as arrays at build time).  Each is served under a name that carries
 * a hash of its bytes ("/ui.3f2a9c1b.css"), so a browser may keep it for
 * good (Cache-Control: immutable) and a new binary's file is a new name.
 */
#include "www/ui/ui.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

extern const unsigned char ui_file_ui_css[], ui_file_ui_js[];
extern const size_t ui_file_ui_css_len, ui_file_ui_js_len;

static struct ui_asset assets[2];
static char names[2][32], paths[2][34];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static unsigned fnv1a(const unsigned char *p, size_t n)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void set(size_t i, const char *ext, const char *type, const unsigned char *data, size_t len)
{
    snprintf(names[i], sizeof names[i], "ui.%08x.%s", fnv1a(data, len), ext);
    snprintf(paths[i], sizeof paths[i], "/%s", names[i]);
    assets[i] = (struct ui_asset){names[i], type, data, len};
}

static void init(void)
{
    set(0, "css", "text/css; charset=utf-8", ui_file_ui_css, ui_file_ui_css_len);
    set(1, "js", "text/javascript; charset=utf-8", ui_file_ui_js, ui_file_ui_js_len);
}

const struct ui_asset *ui_asset(const char *name)
{
    pthread_once(&once, init);
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
        if (strcmp(name, assets[i].name) == 0)
            return &assets[i];
    return NULL;
}

const char *ui_css_path(void)
{
    pthread_once(&once, init);
    return paths[0];
}

const char *ui_js_path(void)
{
    pthread_once(&once, init);
    return paths[1];
}
