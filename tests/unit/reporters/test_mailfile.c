/*
 * Unit tests for a mail as the outbox keeps it (src/reporters/mailfile.c): a
 * file of REP_MAIL_DIR, named afresh each time, smaller than the message when
 * it is logs in base64, read back byte for byte; a name that is not one of
 * those refused (no path goes through a row); and every file that is not a
 * mail refused with a reason: missing, empty, not a zstd frame, a frame
 * without its size, one past REP_MAIL_MAX, a truncated or corrupt one, one
 * holding a NUL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "reporters/reporters.h"
#include "util/util.h"

/* What a mail with logs attached looks like: lines of base64 of test output. */
static char *mail_like(size_t lines)
{
    struct buf b;
    buf_init(&b, 0);
    buf_addstr(&b, "Subject: a\r\nFrom: b@c.d\r\n\r\n");
    unsigned seed = 1;
    for (size_t i = 0; i < lines; i++) {
        char line[96], enc[160];
        seed = seed * 1103515245u + 12345u;
        int n = snprintf(line, sizeof line, "[%3zu/480] test_mod%zu passed (%u.%u sec) -- %08x\n",
                         i % 480, i % 480, seed % 90, seed % 10, seed);
        util_base64(line, (size_t)n, enc);
        buf_addstr(&b, enc);
        buf_addstr(&b, "\r\n");
    }
    return buf_take(&b);
}

/* Each test runs in a directory of its own, with REP_MAIL_DIR in it. */
static int setup(void **state)
{
    char *dir = xstrdup("/tmp/bbm-mailfile-XXXXXX");
    if (mkdtemp(dir) == NULL || chdir(dir) != 0 || mkdir(REP_MAIL_DIR, 0700) != 0)
        return -1;
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    char *cmd = xasprintf("rm -rf '%s'", (char *)*state);
    int rc = chdir("/") == 0 && system(cmd) == 0 ? 0 : -1;
    free(cmd);
    free(*state);
    return rc;
}

static void put(const char *path, const void *data, size_t n)
{
    char *cause = NULL;
    if (util_write_file(path, data, n, 0600, &cause) != 0)
        fail_msg("%s", cause);
}

static void refused(const char *path, const char *why)
{
    char *cause = NULL;
    assert_null(rep_mail_read(path, &cause));
    assert_non_null(cause);
    if (strstr(cause, why) == NULL)
        fail_msg("'%s' has no '%s'", cause, why);
    free(cause);
}

static void test_round_trip(void **state)
{
    (void)state;
    char *m = mail_like(20000), name[REP_MAIL_NAME_MAX], other[REP_MAIL_NAME_MAX];
    char *cause = NULL;
    size_t bytes = 0, other_bytes = 0;
    assert_int_equal(rep_mail_save(m, name, &bytes, &cause), 0);
    assert_true(rep_mail_name_ok(name));
    assert_true(bytes * 2 < strlen(m));
    char *path = xasprintf(REP_MAIL_DIR "/%s", name);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, bytes);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *back = rep_mail_read(path, &cause);
    assert_null(cause);
    assert_string_equal(back, m);
    free(back);
    free(path);

    /* the same message again is another file; an empty one reads back empty */
    assert_int_equal(rep_mail_save(m, other, &other_bytes, &cause), 0);
    assert_string_not_equal(name, other);
    assert_int_equal(rep_mail_save("", name, &bytes, &cause), 0);
    path = xasprintf(REP_MAIL_DIR "/%s", name);
    back = rep_mail_read(path, &cause);
    assert_string_equal(back, "");
    free(back);
    free(path);
    free(m);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(rep_mail_name_ok("0123456789abcdef.mail.zst"));
    assert_false(rep_mail_name_ok("0123456789ABCDEF.mail.zst"));
    assert_false(rep_mail_name_ok("0123456789abcde.mail.zst"));
    assert_false(rep_mail_name_ok("0123456789abcdef0.mail.zst"));
    assert_false(rep_mail_name_ok("0123456789abcdef.mail.zst.tmp.12"));
    assert_false(rep_mail_name_ok("../../../etc/passwd"));
    assert_false(rep_mail_name_ok("0123456789abcdef/../../x.mail.zst"));
    assert_false(rep_mail_name_ok(""));
}

static void test_save_without_the_folder(void **state)
{
    (void)state;
    assert_int_equal(rmdir(REP_MAIL_DIR), 0);
    char name[REP_MAIL_NAME_MAX], *cause = NULL;
    size_t bytes;
    assert_int_equal(rep_mail_save("a", name, &bytes, &cause), -1);
    assert_non_null(strstr(cause, REP_MAIL_DIR "/"));
    free(cause);
}

static void test_refused(void **state)
{
    (void)state;
    refused("missing", "No such file");
    put("empty", "", 0);
    refused("empty", "not a zstd frame");
    put("text", "abc", 3);
    refused("text", "not a zstd frame");

    char *m = mail_like(100), name[REP_MAIL_NAME_MAX], *cause = NULL;
    size_t bytes;
    assert_int_equal(rep_mail_save(m, name, &bytes, &cause), 0);
    char *path = xasprintf(REP_MAIL_DIR "/%s", name),
         *z = util_read_file(path, 1 << 20, NULL, &cause);
    put("truncated", z, bytes / 2);
    refused("truncated", "corrupt");
    z[bytes / 2] ^= 0x55;
    put("corrupt", z, bytes);
    refused("corrupt", "corrupt");
    free(z);
    free(path);

    /* a frame without its size */
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    char frame[8192];
    size_t n = ZSTD_compress2(c, frame, sizeof frame, m, strlen(m));
    assert_false(ZSTD_isError(n));
    put("sizeless", frame, n);
    refused("sizeless", "with its size");

    /* one that says it is past REP_MAIL_MAX */
    size_t big = REP_MAIL_MAX + 1;
    char *a = xmalloc(big);
    memset(a, 'a', big);
    n = ZSTD_compress(frame, sizeof frame, a, big, 1);
    assert_false(ZSTD_isError(n));
    put("big", frame, n);
    refused("big", "more than");

    /* one that holds a NUL */
    a[0] = 'x';
    a[1] = '\0';
    n = ZSTD_compress(frame, sizeof frame, a, 3, 1);
    put("nul", frame, n);
    refused("nul", "corrupt");
    free(a);
    ZSTD_freeCCtx(c);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_without_the_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
