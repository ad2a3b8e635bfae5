/*
 * What a builder's configuration says about it, kept in the database as
 * Buildbot's updateBuilderInfo keeps it: the description and its format, the
 * project (the projects row found or added by name, as find_project_id does)
 * and the tags (tags rows found or added by name; builders_tags links
 * replaced whole when they change).  Tag and project rows stay when no
 * builder uses them any more, as in Buildbot.
 *
 * A master with a thousand builders does this at every reconfig, so what the
 * rows hold is read once for all builders (four queries), only the builders
 * whose information changed are written, and their tag links are replaced in
 * batches (a statement is a round trip on PostgreSQL).
 */
#include "db/db.h"

#include <stdlib.h>
#include <string.h>

/* Names to ids (tags, projects), sorted by name for bsearch. */
struct name_id {
    char *name;
    long long id;
};

struct names {
    struct name_id *v;
    size_t n, cap;
};

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct name_id *)a)->name, ((const struct name_id *)b)->name);
}

static int names_load(struct db *db, const char *sql, struct names *t, char **cause)
{
    struct db_res *r = db_query(db, sql, NULL, 0, cause);
    if (r == NULL)
        return -1;
    t->v = xgrow(t->v, &t->cap, db_res_rows(r), sizeof *t->v);
    for (size_t i = 0; i < db_res_rows(r); i++)
        t->v[t->n++] = (struct name_id){xstrdup(db_res_text(r, i, 1)), db_res_int(r, i, 0)};
    db_res_free(r);
    qsort(t->v, t->n, sizeof *t->v, by_name);
    return 0;
}

static void names_free(struct names *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].name);
    free(t->v);
}

/* A table of named rows found or added by name: Buildbot's findTagId / find_project_id
   (a project's slug is its name until the project is configured). */
struct named {
    const char *load; /* id, name of every row */
    const char *add;  /* parameters: name, name_hash, name */
    size_t n_add;
};

static const struct named tags_table = {"SELECT id, name FROM tags",
                                        "INSERT INTO tags (name, name_hash) VALUES (?, ?)", 2};
static const struct named projects_table = {
    "SELECT id, name FROM projects",
    "INSERT INTO projects (name, name_hash, slug) VALUES (?, ?, ?)", 3};

/* The id of `name` in `t` (loaded from `table`), the row added if new. */
static long long name_id(struct db *db, struct names *t, const struct named *table,
                         const char *name, char **cause)
{
    struct name_id key = {(char *)name, 0};
    struct name_id *hit = bsearch(&key, t->v, t->n, sizeof *t->v, by_name);
    if (hit != NULL)
        return hit->id;
    char hash[41];
    db_hash(&name, 1, hash);
    struct db_param p[] = {DB_TEXT(name), DB_TEXT(hash), DB_TEXT(name)};
    long long id;
    if (db_insert(db, table->add, p, table->n_add, &id, cause) < 0)
        return -1;
    t->v = xgrow(t->v, &t->cap, t->n + 1, sizeof *t->v);
    t->v[t->n++] = (struct name_id){xstrdup(name), id};
    qsort(t->v, t->n, sizeof *t->v, by_name);
    return id;
}

/* The first row of `r` (ordered by its column 0) whose column 0 is `id`, or the number of
   rows when none is. */
static size_t first_row(const struct db_res *r, long long id)
{
    size_t lo = db_res_lower_bound(r, id);
    return lo < db_res_rows(r) && db_res_int(r, lo, 0) == id ? lo : db_res_rows(r);
}

/* What the rows hold now: builders (id, description, description_format, projectid) and
   their tag names in link order (builderid, name). */
struct current {
    struct db_res *builders, *tags;
    struct names tag_ids, project_ids;
};

static int current_load(struct db *db, struct current *c, char **cause)
{
    c->builders = db_query(db,
                           "SELECT id, description, description_format, projectid FROM builders "
                           "ORDER BY id",
                           NULL, 0, cause);
    if (c->builders == NULL)
        return -1;
    c->tags = db_query(db,
                       "SELECT bt.builderid, t.name FROM builders_tags bt JOIN tags t "
                       "ON t.id = bt.tagid ORDER BY bt.builderid, bt.id",
                       NULL, 0, cause);
    if (c->tags == NULL)
        return -1;
    if (names_load(db, tags_table.load, &c->tag_ids, cause) < 0 ||
        names_load(db, projects_table.load, &c->project_ids, cause) < 0)
        return -1;
    return 0;
}

static void current_free(struct current *c)
{
    db_res_free(c->builders);
    db_res_free(c->tags);
    names_free(&c->tag_ids);
    names_free(&c->project_ids);
}

/* Equal strings, or both NULL. */
static bool same_text(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

static bool tags_same(const struct current *c, const struct db_builder_info *b)
{
    size_t r = first_row(c->tags, b->builderid), n = 0;
    for (; r < db_res_rows(c->tags) && db_res_int(c->tags, r, 0) == b->builderid; r++, n++) {
        if (n >= b->n_tags || strcmp(db_res_text(c->tags, r, 1), b->tags[n]) != 0)
            return false;
    }
    return n == b->n_tags;
}

/* The builders whose tags change and their new links, written in batches of BATCH rows
   (one DELETE and one INSERT for each): on PostgreSQL every statement is a round trip. */
#define BATCH 500

struct links {
    struct db_param *builders; /* builderid */
    size_t n_builders, cap_builders;
    struct db_param *rows; /* builderid, tagid */
    size_t n_rows, cap_rows;
};

static int links_add(struct db *db, struct current *c, struct links *l,
                     const struct db_builder_info *b, char **cause)
{
    l->builders = xgrow(l->builders, &l->cap_builders, l->n_builders + 1, sizeof *l->builders);
    l->builders[l->n_builders++] = DB_INT(b->builderid);
    for (size_t i = 0; i < b->n_tags; i++) {
        long long tagid = name_id(db, &c->tag_ids, &tags_table, b->tags[i], cause);
        if (tagid < 0)
            return -1;
        l->rows = xgrow(l->rows, &l->cap_rows, l->n_rows + 2, sizeof *l->rows);
        l->rows[l->n_rows++] = DB_INT(b->builderid);
        l->rows[l->n_rows++] = DB_INT(tagid);
    }
    return 0;
}

/* Runs `head`, groups `group` (of `per` parameters each) joined by ", ", then `tail`, for the
   `n` parameters `p`, BATCH groups a statement. */
static int exec_batched(struct db *db, const char *head, const char *group, const char *tail,
                        size_t per, const struct db_param *p, size_t n, char **cause)
{
    for (size_t at = 0; at < n; at += BATCH * per) {
        size_t k = n - at < BATCH * per ? n - at : BATCH * per;
        struct buf sql = {0};
        buf_addstr(&sql, head);
        for (size_t i = 0; i < k / per; i++)
            buf_printf(&sql, "%s%s", i > 0 ? ", " : "", group);
        buf_addstr(&sql, tail);
        int rc = db_exec(db, sql.data, p + at, k, cause);
        buf_free(&sql);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int links_write(struct db *db, const struct links *l, char **cause)
{
    if (exec_batched(db, "DELETE FROM builders_tags WHERE builderid IN (", "?", ")", 1, l->builders,
                     l->n_builders, cause) < 0)
        return -1;
    return exec_batched(db, "INSERT INTO builders_tags (builderid, tagid) VALUES ", "(?, ?)", "", 2,
                        l->rows, l->n_rows, cause);
}

static void links_free(struct links *l)
{
    free(l->builders);
    free(l->rows);
}

/* The description, its format and the project.  description_html is not rendered here: a
   new description gets NULL (Buildbot's value when there is no format), an unchanged one
   keeps what is stored. */
static int write_info(struct db *db, struct current *c, const struct db_builder_info *b,
                      char **cause)
{
    size_t row = first_row(c->builders, b->builderid);
    if (row == db_res_rows(c->builders))
        return util_cause(cause, "builder %lld is not in the builders table", b->builderid);
    struct db_param project = DB_NULL;
    if (b->project != NULL) {
        project = DB_INT(name_id(db, &c->project_ids, &projects_table, b->project, cause));
        if (project.i < 0)
            return -1;
    }
    const struct db_res *r = c->builders;
    bool same_project = db_res_null(r, row, 3)
                            ? project.type == DB_P_NULL
                            : project.type == DB_P_INT && db_res_int(r, row, 3) == project.i;
    bool same_words = same_text(db_res_text(r, row, 1), b->description) &&
                      same_text(db_res_text(r, row, 2), b->description_format);
    struct db_param p[] = {DB_TEXT(b->description), DB_TEXT(b->description_format), project,
                           DB_INT(b->builderid)};
    if (!same_words)
        return db_exec(db,
                       "UPDATE builders SET description = ?, description_format = ?, "
                       "description_html = NULL, projectid = ? WHERE id = ?",
                       p, 4, cause);
    if (!same_project)
        return db_exec(db, "UPDATE builders SET projectid = ? WHERE id = ?", p + 2, 2, cause);
    return 0;
}

int db_builders_info_set(struct db *db, const struct db_builder_info *b, size_t n, char **cause)
{
    struct current c = {0};
    struct links l = {0};
    int rc = -1;
    if (current_load(db, &c, cause) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (write_info(db, &c, &b[i], cause) < 0)
            goto out;
        if (!tags_same(&c, &b[i]) && links_add(db, &c, &l, &b[i], cause) < 0)
            goto out;
    }
    rc = links_write(db, &l, cause);
out:
    links_free(&l);
    current_free(&c);
    return rc;
}
