/*
 * The memory of a configuration's Lua state: blocks of up to POOL_SMALL bytes
 * (nearly all of what Lua allocates: strings, tables, closures, the parts of
 * tables) come from slabs, one free list per size class (16-byte steps up to
 * 256 bytes, then half powers of two); larger blocks from malloc.  A block's
 * class follows from its size, which Lua gives back with every resize and
 * free, so a block needs no header.  When the state is closed its small blocks
 * are not freed one by one: the slabs go back to the system at once.
 *
 * Building cpython/'s configuration allocates and frees some 150,000 small
 * blocks; through malloc they were a fifth of the load's time, and freeing the
 * previous configuration's state at a reconfig more than 10 ms.  The first slab
 * is small (a small configuration's whole state); the others are 2 MiB, aligned
 * so that the kernel may back each with one huge page.  Every reconfig builds a
 * new state in fresh memory: in 4 KiB pages, cpython/'s took some 1,100 page
 * faults, a fifth of the reconfig on a virtual machine where a fault costs tens
 * of microseconds.  A state is only ever used by one thread at a time (the
 * engine's), so the pool has no lock.  Built with AddressSanitizer, every block
 * comes from malloc, so that it still sees each one.
 */
#include "config/internal.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

enum {
    POOL_GRAIN = 16,
    POOL_FINE = 256, /* classes POOL_GRAIN apart up to here */
    POOL_FINE_CLASSES = POOL_FINE / POOL_GRAIN,
    POOL_SMALL = 4096,
    POOL_CLASSES = POOL_FINE_CLASSES + 8, /* and above, the sizes of coarse[] */
    POOL_FIRST_SLAB = 256 << 10,
    POOL_HUGE = 2 << 20, /* a huge page, on x86-64 and most of what Linux runs on */
};

static const size_t coarse[POOL_CLASSES - POOL_FINE_CLASSES] = {384,  512,  768,  1024,
                                                                1536, 2048, 3072, POOL_SMALL};

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
    size_t size; /* with this header */
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
        if (s->size == POOL_HUGE)
            munmap(s, POOL_HUGE);
        else
            free(s);
    }
    free(p);
}

static size_t class_of(size_t size)
{
    if (size <= POOL_FINE)
        return (size + POOL_GRAIN - 1) / POOL_GRAIN - 1;
    size_t c = 0;
    while (coarse[c] < size)
        c++;
    return POOL_FINE_CLASSES + c;
}

static size_t class_size(size_t c)
{
    return c < POOL_FINE_CLASSES ? (c + 1) * POOL_GRAIN : coarse[c - POOL_FINE_CLASSES];
}

/* POOL_HUGE bytes at an address a multiple of POOL_HUGE, which the kernel is asked to back
   with a huge page; NULL if no such mapping can be made. */
static void *map_huge(void)
{
    unsigned char *m =
        mmap(NULL, 2 * POOL_HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    unsigned char *at =
        (unsigned char *)(((uintptr_t)m + POOL_HUGE - 1) & ~(uintptr_t)(POOL_HUGE - 1));
    if (at > m)
        munmap(m, (size_t)(at - m));
    munmap(at + POOL_HUGE, (size_t)(m + 2 * POOL_HUGE - (at + POOL_HUGE)));
#ifdef MADV_HUGEPAGE
    madvise(at, POOL_HUGE, MADV_HUGEPAGE); /* a hint: without it, the slab works as well */
#endif
    return at;
}

/* A new slab for `p`: the first small, the next ones huge pages where they can be had. */
static struct slab *new_slab(const struct cfg_pool *p)
{
    struct slab *s = p->slabs != NULL ? map_huge() : NULL;
    size_t size = s != NULL ? POOL_HUGE : POOL_FIRST_SLAB;
    if (s == NULL)
        s = xmalloc(size);
    s->size = size;
    return s;
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
    size_t size = class_size(c);
    if (p->left < size) { /* what is left of the slab (under POOL_SMALL) is not used */
        struct slab *s = new_slab(p);
        s->next = p->slabs;
        p->slabs = s;
        p->cur = s->mem;
        p->left = s->size - sizeof *s;
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
