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
 * whose information changed are written, in batches (an UPDATE from a list of
 * values), and their tag links are replaced in batches too (a statement is a
 * round trip on PostgreSQL).
 */
#include "db/internal.h"

#include <stdlib.h>
#include <string.h>

/* Tags and projects: Buildbot's findTagId / find_project_id (a project's slug is its name
   until the project is configured). */
static const struct db_named tags_table = {"SELECT id, name FROM tags",
                                           "INSERT INTO tags (name, name_hash) VALUES (?, ?)", 2};
static const struct db_named projects_table = {
    "SELECT id, name FROM projects",
    "INSERT INTO projects (name, name_hash, slug) VALUES (?, ?, ?)", 3};

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
    struct db_names tag_ids, project_ids;
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
    if (db_names_load(db, &tags_table, &c->tag_ids, cause) < 0 ||
        db_names_load(db, &projects_table, &c->project_ids, cause) < 0)
        return -1;
    return 0;
}

static void current_free(struct current *c)
{
    db_res_free(c->builders);
    db_res_free(c->tags);
    db_names_free(&c->tag_ids);
    db_names_free(&c->project_ids);
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

/* The builders whose tags change and their new links (one DELETE and one INSERT for
   DB_BATCH of them). */
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
        long long tagid = db_names_id(db, &c->tag_ids, &tags_table, b->tags[i], cause);
        if (tagid < 0)
            return -1;
        l->rows = xgrow(l->rows, &l->cap_rows, l->n_rows + 2, sizeof *l->rows);
        l->rows[l->n_rows++] = DB_INT(b->builderid);
        l->rows[l->n_rows++] = DB_INT(tagid);
    }
    return 0;
}

static int links_write(struct db *db, const struct links *l, char **cause)
{
    if (db_exec_batched(db, "DELETE FROM builders_tags WHERE builderid IN (", "?", ")", 1,
                        l->builders, l->n_builders, cause) < 0)
        return -1;
    return db_exec_batched(db, "INSERT INTO builders_tags (builderid, tagid) VALUES ", "(?, ?)", "",
                           2, l->rows, l->n_rows, cause);
}

static void links_free(struct links *l)
{
    free(l->builders);
    free(l->rows);
}

/* The builders whose rows say another description or project: (id, description, format,
   project) and (id, project), each written in batches of DB_BATCH rows. */
struct updates {
    struct db_param *words;
    size_t n_words, cap_words;
    struct db_param *projects;
    size_t n_projects, cap_projects;
};

static void push(struct db_param **v, size_t *n, size_t *cap, const struct db_param *p, size_t k)
{
    *v = xgrow(*v, cap, *n + k, sizeof **v);
    memcpy(*v + *n, p, k * sizeof *p);
    *n += k;
}

/* The description, its format and the project.  description_html is not rendered here: a
   new description gets NULL (Buildbot's value when there is no format), an unchanged one
   keeps what is stored. */
static int info_add(struct db *db, struct current *c, struct updates *u,
                    const struct db_builder_info *b, char **cause)
{
    size_t row = first_row(c->builders, b->builderid);
    if (row == db_res_rows(c->builders))
        return util_cause(cause, "builder %lld is not in the builders table", b->builderid);
    struct db_param project = DB_NULL;
    if (b->project != NULL) {
        project = DB_INT(db_names_id(db, &c->project_ids, &projects_table, b->project, cause));
        if (project.i < 0)
            return -1;
    }
    const struct db_res *r = c->builders;
    bool same_project = db_res_null(r, row, 3)
                            ? project.type == DB_P_NULL
                            : project.type == DB_P_INT && db_res_int(r, row, 3) == project.i;
    bool same_words = util_same_text(db_res_text(r, row, 1), b->description) &&
                      util_same_text(db_res_text(r, row, 2), b->description_format);
    struct db_param p[] = {DB_INT(b->builderid), DB_TEXT(b->description),
                           DB_TEXT(b->description_format), project};
    if (!same_words)
        push(&u->words, &u->n_words, &u->cap_words, p, 4);
    else if (!same_project)
        push(&u->projects, &u->n_projects, &u->cap_projects, (struct db_param[]){p[0], p[3]}, 2);
    return 0;
}

/* UPDATE ... FROM a list of VALUES, whose columns SQLite and PostgreSQL both name column1,
   column2...; the casts give PostgreSQL their types. */
static int updates_write(struct db *db, const struct updates *u, char **cause)
{
    if (db_exec_batched(db,
                        "UPDATE builders SET description = v.column2, description_format = "
                        "v.column3, description_html = NULL, projectid = v.column4 FROM (VALUES ",
                        "(CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT))",
                        ") AS v WHERE builders.id = v.column1", 4, u->words, u->n_words, cause) < 0)
        return -1;
    return db_exec_batched(db, "UPDATE builders SET projectid = v.column2 FROM (VALUES ",
                           "(CAST(? AS BIGINT), CAST(? AS BIGINT))",
                           ") AS v WHERE builders.id = v.column1", 2, u->projects, u->n_projects,
                           cause);
}

int db_builders_info_set(struct db *db, const struct db_builder_info *b, size_t n, char **cause)
{
    struct current c = {0};
    struct links l = {0};
    struct updates u = {0};
    int rc = -1;
    if (current_load(db, &c, cause) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (info_add(db, &c, &u, &b[i], cause) < 0)
            goto out;
        if (!tags_same(&c, &b[i]) && links_add(db, &c, &l, &b[i], cause) < 0)
            goto out;
    }
    rc = updates_write(db, &u, cause) < 0 ? -1 : links_write(db, &l, cause);
out:
    free(u.words);
    free(u.projects);
    links_free(&l);
    current_free(&c);
    return rc;
}
