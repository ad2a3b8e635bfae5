/*
 * The memory of a configuration's Lua state: blocks of up to POOL_SMALL bytes
 * (nearly all of what Lua allocates: strings, tables, closures) come from
 * slabs of POOL_SLAB bytes, one free list per 16-byte size class; larger
 * blocks from malloc.  A block's class follows from its size, which Lua gives
 * back with every resize and free, so a block needs no header.  When the state
 * is closed its small blocks are not freed one by one: the slabs go at once,
 * and, being past the master's mmap threshold (128 KiB, master.c), back to the
 * system rather than to malloc's heap.
 *
 * Building cpython/'s configuration allocates and frees some 150,000 small
 * blocks; through malloc they were a fifth of the load's time, and freeing the
 * previous configuration's state at a reconfig more than 10 ms.  A state is
 * only ever used by one thread at a time (the engine's), so the pool has no lock.
 * Built with AddressSanitizer, every block comes from malloc, so that it still
 * sees each one.
 */
#include "config/internal.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

enum {
    POOL_GRAIN = 16,
    POOL_SMALL = 256,
    POOL_CLASSES = POOL_SMALL / POOL_GRAIN,
    POOL_SLAB = 128 << 10,
};

#if defined(__SANITIZE_ADDRESS__)
#define POOL_ON false
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_ON false
#endif
#endif
#ifndef POOL_ON
#define POOL_ON true
#endif

/* Whether a block of `size` bytes (at least 1) comes from the slabs. */
static bool pooled(size_t size)
{
    return POOL_ON && size <= POOL_SMALL;
}

struct slab {
    struct slab *next;
    alignas(POOL_GRAIN) unsigned char mem[];
};

struct cfg_pool {
    void *free[POOL_CLASSES]; /* each block's first bytes point to the next */
    unsigned char *cur;       /* the newest slab's part never handed out */
    size_t left;
    struct slab *slabs;
};

struct cfg_pool *cfg_pool_new(void)
{
    return xcalloc(1, sizeof(struct cfg_pool));
}

void cfg_pool_free(struct cfg_pool *p)
{
    if (p == NULL)
        return;
    while (p->slabs != NULL) {
        struct slab *s = p->slabs;
        p->slabs = s->next;
        free(s);
    }
    free(p);
}

static size_t class_of(size_t size)
{
    return (size + POOL_GRAIN - 1) / POOL_GRAIN - 1;
}

/* A block of class `c`; never NULL (a slab is allocated as the rest of the master's memory
   is, and Lua must not see a shrinking block fail). */
static void *take(struct cfg_pool *p, size_t c)
{
    void *b = p->free[c];
    if (b != NULL) {
        memcpy(&p->free[c], b, sizeof(void *));
        return b;
    }
    size_t size = (c + 1) * POOL_GRAIN;
    if (p->left < size) { /* what is left of the slab (under POOL_SMALL) is not used */
        struct slab *s = xmalloc(sizeof *s + POOL_SLAB);
        s->next = p->slabs;
        p->slabs = s;
        p->cur = s->mem;
        p->left = POOL_SLAB;
    }
    b = p->cur;
    p->cur += size;
    p->left -= size;
    return b;
}

static void give(struct cfg_pool *p, void *b, size_t c)
{
    memcpy(b, &p->free[c], sizeof(void *));
    p->free[c] = b;
}

/* Frees the block `ptr` of `size` bytes. */
static void drop(struct cfg_pool *p, void *ptr, size_t size)
{
    if (pooled(size))
        give(p, ptr, class_of(size));
    else
        free(ptr);
}

void *cfg_pool_realloc(struct cfg_pool *p, void *ptr, size_t osize, size_t nsize)
{
    if (ptr == NULL)
        osize = 0;
    if (nsize == 0) {
        if (ptr != NULL)
            drop(p, ptr, osize);
        return NULL;
    }
    bool small_old = ptr != NULL && pooled(osize), small_new = pooled(nsize);
    if (small_old && small_new && class_of(osize) == class_of(nsize))
        return ptr;
    if (ptr != NULL && !small_old && !small_new)
        return realloc(ptr, nsize);
    void *b = small_new ? take(p, class_of(nsize)) : malloc(nsize);
    if (b == NULL)
        return NULL; /* a large block grown: Lua reports it */
    if (ptr != NULL) {
        memcpy(b, ptr, osize < nsize ? osize : nsize);
        drop(p, ptr, osize);
    }
    return b;
}
