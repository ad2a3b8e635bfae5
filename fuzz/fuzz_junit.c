/*
 * libFuzzer target for the JUnit reader behind /release_status (www/ui/reljunit.c):
 * the input is a test-results XML file as a build uploads it, read through expat
 * as the model thread reads one.  Checks: the HTML stays within its bound and is
 * a C string of the length it claims.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "www/ui/release.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "rb");
    if (f == NULL)
        return 0;
    char *html = rel_junit_html_file(f);
    fclose(f);
    if (html == NULL || strlen(html) > 40 * 1024)
        abort();
    free(html);
    return 0;
}
