/*
 * Unit tests for engine/paths.c: which master paths a transfer step may use (in a
 * scratch directory standing for the master's, with an uploadRoot beside it and a
 * symbolic link leading out), that a refused path makes no directory, and which of a
 * worker's glob answers are plain paths under the pattern's directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/internal.h"

struct scratch {
    char top[64], master[PATH_MAX], root[PATH_MAX], outside[PATH_MAX], old_cwd[PATH_MAX];
    char *roots[1];
    struct cfg cfg;
};

static int setup(void **state)
{
    struct scratch *s = xcalloc(1, sizeof *s);
    snprintf(s->top, sizeof s->top, "/tmp/bbm-paths-XXXXXX");
    assert_non_null(mkdtemp(s->top));
    snprintf(s->master, sizeof s->master, "%s/master", s->top);
    snprintf(s->root, sizeof s->root, "%s/root", s->top);
    snprintf(s->outside, sizeof s->outside, "%s/outside", s->top);
    assert_int_equal(mkdir(s->master, 0755), 0);
    assert_int_equal(mkdir(s->root, 0755), 0);
    assert_int_equal(mkdir(s->outside, 0755), 0);
    assert_non_null(getcwd(s->old_cwd, sizeof s->old_cwd));
    assert_int_equal(chdir(s->master), 0);
    assert_int_equal(symlink(s->outside, "out"), 0);
    assert_int_equal(symlink(s->root, "to-root"), 0);
    s->roots[0] = s->root;
    s->cfg.upload_roots = s->roots;
    s->cfg.n_upload_roots = 1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    struct scratch *s = *state;
    assert_int_equal(chdir(s->old_cwd), 0);
    char *cmd = xasprintf("rm -rf '%s'", s->top);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(s);
    return 0;
}

static void expect_path(struct scratch *s, const char *path, enum path_use use, const char *want)
{
    char *cause = NULL;
    char *got = path_confine(&s->cfg, path, use, &cause);
    if (want == NULL) {
        assert_null(got);
        assert_non_null(cause);
    } else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
    free(got);
    free(cause);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void test_writes(void **state)
{
    struct scratch *s = *state;
    char want[PATH_MAX * 2], path[PATH_MAX * 2];
    /* relative: normalised, its directories made */
    snprintf(want, sizeof want, "%s/up/deep/f", s->master);
    expect_path(s, "up/./deep//f", PATH_WRITE, want);
    assert_true(exists("up/deep"));
    /* an uploadRoot, directly or through a link inside the master's directory */
    snprintf(path, sizeof path, "%s/a/f", s->root);
    snprintf(want, sizeof want, "%s/a/f", s->root);
    expect_path(s, path, PATH_WRITE, want);
    snprintf(want, sizeof want, "%s/b/f", s->root);
    expect_path(s, "to-root/b/f", PATH_WRITE, want);
    /* refused, and nothing made */
    expect_path(s, "up/../../escape/f", PATH_WRITE, NULL);
    expect_path(s, "out/new/sub/f", PATH_WRITE, NULL);
    snprintf(path, sizeof path, "%s/new", s->outside);
    assert_false(exists(path));
    snprintf(path, sizeof path, "%s/new/f", s->outside);
    expect_path(s, path, PATH_WRITE, NULL);
    expect_path(s, "/etc/bbm-test-f", PATH_WRITE, NULL);
    expect_path(s, "", PATH_WRITE, NULL);
    expect_path(s, ".", PATH_WRITE, NULL);
    assert_false(exists("../escape"));
}

static void test_reads(void **state)
{
    struct scratch *s = *state;
    char want[PATH_MAX * 2], path[PATH_MAX * 2];
    FILE *f = fopen("here.txt", "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/secret", s->outside);
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(symlink(path, "leak"), 0);
    snprintf(want, sizeof want, "%s/here.txt", s->master);
    expect_path(s, "here.txt", PATH_READ, want);
    expect_path(s, "leak", PATH_READ, NULL); /* the file itself lies outside */
    /* not there: its name, for the open to fail as Buildbot's does */
    snprintf(want, sizeof want, "%s/missing/here.txt", s->master);
    expect_path(s, "missing/here.txt", PATH_READ, want);
    assert_false(exists("missing"));
    expect_path(s, "out/secret", PATH_READ, NULL);
    expect_path(s, "../outside/secret", PATH_READ, NULL);
}

static void test_glob_answers(void **state)
{
    (void)state;
    const char *dir = "/w/builder/build";
    assert_string_equal(path_globbed("/w/builder/build/a.txt", dir, false), "a.txt");
    assert_string_equal(path_globbed("/w/builder/build/sub/a.txt", dir, false), "sub/a.txt");
    assert_string_equal(path_globbed("rel/a.txt", dir, false), "rel/a.txt");
    assert_null(path_globbed("..", dir, false));
    assert_null(path_globbed("/etc/passwd", dir, false));
    assert_null(path_globbed("/w/builder/build/../x", dir, false));
    assert_null(path_globbed("/w/builder/buildx/a", dir, false));
    assert_null(path_globbed("/w/builder/build/", dir, false));
    assert_null(path_globbed("/w/builder/build/sub/.", dir, false));
    assert_null(path_globbed("", dir, false));
    /* Windows: either separator, drive letters absolute */
    const char *nt = "C:\\w\\builder\\build";
    assert_string_equal(path_globbed("C:\\w\\builder\\build/sub\\a.txt", nt, true), "sub\\a.txt");
    assert_string_equal(path_globbed("C:/w/builder/build\\a.txt", nt, true), "a.txt");
    assert_null(path_globbed("D:\\secret.txt", nt, true));
    assert_null(path_globbed("C:\\w\\builder\\build\\..\\x", nt, true));
    assert_null(path_globbed("sub\\..", nt, true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads, setup, teardown),
        cmocka_unit_test(test_glob_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
