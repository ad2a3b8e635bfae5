/*
 * Unit tests for the memory of a configuration's Lua state (src/config/luapool.c): blocks
 * keep their bytes when they grow and shrink within a size class, across classes and
 * across the line between slab and malloc blocks, in the first slab and the huge ones after
 * it; freed blocks are handed out again; and a Lua state run on it, closed, and its pool
 * freed at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config/internal.h"

enum { N = 2000, ROUNDS = 20 };

struct block {
    unsigned char *p;
    size_t size;
    unsigned char fill;
};

static size_t some_size(unsigned *seed)
{
    unsigned r = (unsigned)rand_r(seed);
    return r % 4 == 0 ? 1 + r % 6000 : 1 + r % 300; /* mostly small, some past the slabs' */
}

static void check(const struct block *b)
{
    for (size_t k = 0; k < b->size; k++)
        assert_int_equal(b->p[k], b->fill);
}

static void test_blocks_keep_their_bytes(void **state)
{
    (void)state;
    struct cfg_pool *pool = cfg_pool_new();
    static struct block blocks[N];
    unsigned seed = 7;
    for (size_t i = 0; i < N; i++) {
        blocks[i].size = some_size(&seed);
        blocks[i].fill = (unsigned char)i;
        blocks[i].p = cfg_pool_realloc(pool, NULL, 0, blocks[i].size);
        assert_non_null(blocks[i].p);
        memset(blocks[i].p, blocks[i].fill, blocks[i].size);
    }
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < N; i++) {
            struct block *b = &blocks[i];
            check(b);
            size_t size = some_size(&seed);
            if (rand_r(&seed) % 5 == 0) { /* freed, and another block in its place */
                cfg_pool_realloc(pool, b->p, b->size, 0);
                b->p = cfg_pool_realloc(pool, NULL, 0, size);
                b->size = 0;
            } else {
                b->p = cfg_pool_realloc(pool, b->p, b->size, size);
            }
            assert_non_null(b->p);
            size_t kept = b->size < size ? b->size : size;
            for (size_t k = 0; k < kept; k++)
                assert_int_equal(b->p[k], b->fill);
            b->fill = (unsigned char)(b->fill + 1);
            b->size = size;
            memset(b->p, b->fill, size);
        }
    }
    for (size_t i = 0; i < N; i++) {
        check(&blocks[i]);
        cfg_pool_realloc(pool, blocks[i].p, blocks[i].size, 0);
    }
    cfg_pool_free(pool);
}

static void test_a_freed_block_is_handed_out_again(void **state)
{
    (void)state;
    struct cfg_pool *pool = cfg_pool_new();
    void *a = cfg_pool_realloc(pool, NULL, 0, 40);
    cfg_pool_realloc(pool, a, 40, 0);
    void *b = cfg_pool_realloc(pool, NULL, 0, 33); /* the same 48-byte class */
#if !defined(__SANITIZE_ADDRESS__)
    assert_ptr_equal(a, b);
#endif
    /* a resize within the class stays where it is */
    void *c = cfg_pool_realloc(pool, b, 33, 48);
#if !defined(__SANITIZE_ADDRESS__)
    assert_ptr_equal(b, c);
#endif
    cfg_pool_realloc(pool, c, 48, 0);
    /* and so in the coarser classes past 256 bytes */
    void *d = cfg_pool_realloc(pool, NULL, 0, 1000);
    cfg_pool_realloc(pool, d, 1000, 0);
    void *e = cfg_pool_realloc(pool, NULL, 0, 769); /* the same 1,024-byte class */
#if !defined(__SANITIZE_ADDRESS__)
    assert_ptr_equal(d, e);
#endif
    cfg_pool_realloc(pool, e, 769, 0);
    cfg_pool_free(pool);
}

static void test_a_configuration_runs_and_closes(void **state)
{
    (void)state;
    static const char source[] =
        "local bbm = require 'bbm'\n"
        "local builders, names = {}, {}\n"
        "for i = 1, 300 do\n"
        "  local name = 'b' .. i .. string.rep('x', i % 50)\n"
        "  names[#names + 1] = name\n"
        "  builders[#builders + 1] = bbm.builder{ name = name, workernames = { 'w' },\n"
        "    tags = { 't' .. i % 7 }, description = string.rep('d', i * 3),\n"
        "    factory = bbm.factory{ bbm.steps.shell{ command = { 'echo', name } } } }\n"
        "end\n"
        "return { workers = { bbm.worker('w', 'pw') }, builders = builders,\n"
        "  schedulers = { bbm.schedulers.force{ name = 'f', builderNames = names } } }\n";
    struct cfg *cfg = NULL;
    char *cause = NULL;
    assert_int_equal(cfg_load_text("master.lua", source, sizeof source - 1, NULL, &cfg, &cause), 0);
    assert_int_equal(cfg->n_builders, 300);
    assert_string_equal(cfg->builders[50].name, "b51x");
    assert_string_equal(cfg->builders[298].name,
                        "b299xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    assert_int_equal(strlen(cfg->builders[298].description), 897);
    cfg_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_keep_their_bytes),
        cmocka_unit_test(test_a_freed_block_is_handed_out_again),
        cmocka_unit_test(test_a_configuration_runs_and_closes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
