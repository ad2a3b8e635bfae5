/*
 * Buildbot's BuildStatusGenerator and MessageFormatter decisions and texts,
 * free of I/O: the modes (a string with its shortcuts "all" and "warnings", or
 * a list), whether a finished build is reported given its results and its
 * previous build's (is_message_needed_by_results), the "status detected" and
 * summary texts, the result names, and Buildbot 4.3's default subject and
 * bodies written in bbmaster's template language (template.c).
 */
#include "reporters/reporters.h"

#include <stdio.h>
#include <ctype.h>
#include <string.h>

#include "util/util.h"

static const char *const mode_names[] = {"change",   "failing",   "passing",  "problem",
                                         "warnings", "exception", "cancelled"};

int rep_modes_parse(const char *const *names, size_t n, bool one_string, unsigned *modes,
                    char **cause)
{
    *modes = 0;
    if (one_string && n == 1 && strcmp(names[0], "all") == 0) {
        *modes = REP_MODE_FAILING | REP_MODE_PASSING | REP_MODE_WARNINGS | REP_MODE_EXCEPTION |
                 REP_MODE_CANCELLED;
        return 0;
    }
    if (one_string && n == 1 && strcmp(names[0], "warnings") == 0) {
        *modes = REP_MODE_FAILING | REP_MODE_WARNINGS;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        size_t m = 0;
        while (m < UTIL_NELEM(mode_names) && strcmp(mode_names[m], names[i]) != 0)
            m++;
        if (m == UTIL_NELEM(mode_names)) {
            *cause = strcmp(names[i], "all") == 0
                         ? xstrdup("mode 'all' is not valid in an iterator and must be passed "
                                   "in as a separate string")
                         : xasprintf("mode %s is not a valid mode", names[i]);
            return -1;
        }
        *modes |= 1u << m;
    }
    return 0;
}

bool rep_mode_wants(unsigned modes, int results, int prev)
{
    /* a previous build still running has results None, which differs from any */
    if ((modes & REP_MODE_CHANGE) && prev != REP_PREV_NONE && prev != results)
        return true;
    if ((modes & REP_MODE_FAILING) && results == REP_RES_FAILURE)
        return true;
    if ((modes & REP_MODE_PASSING) && results == REP_RES_SUCCESS)
        return true;
    if ((modes & REP_MODE_PROBLEM) && results == REP_RES_FAILURE && prev != REP_PREV_NONE &&
        prev != REP_RES_FAILURE)
        return true;
    if ((modes & REP_MODE_WARNINGS) && results == REP_RES_WARNINGS)
        return true;
    if ((modes & REP_MODE_EXCEPTION) && results == REP_RES_EXCEPTION)
        return true;
    return (modes & REP_MODE_CANCELLED) && results == REP_RES_CANCELLED;
}

bool rep_mode_needs_previous(unsigned modes)
{
    return (modes & (REP_MODE_CHANGE | REP_MODE_PROBLEM)) != 0;
}

const char *rep_result_name(int results)
{
    static const char *const names[] = {"success",   "warnings", "failure",  "skipped",
                                        "exception", "retry",    "cancelled"};
    return results >= 0 && results < (int)UTIL_NELEM(names) ? names[results] : "not finished";
}

char *rep_status_detected(unsigned modes, int results, int prev)
{
    bool change = (modes & REP_MODE_CHANGE) != 0;
    if (results == REP_RES_FAILURE)
        return xstrdup((change || (modes & REP_MODE_PROBLEM)) && prev >= 0 &&
                               prev != REP_RES_FAILURE
                           ? "new failure"
                           : "failed build");
    if (results == REP_RES_WARNINGS)
        return xstrdup("problem in the build");
    if (results == REP_RES_SUCCESS)
        return xstrdup(change && prev >= 0 && prev != results ? "restored build" : "passing build");
    if (results == REP_RES_EXCEPTION)
        return xstrdup("build exception");
    return xasprintf("%s build", rep_result_name(results));
}

char *rep_summary(int results, const char *state_string)
{
    const char *sep = state_string != NULL && state_string[0] != '\0' ? ": " : "";
    const char *st = sep[0] != '\0' ? state_string : "";
    if (results == REP_RES_SUCCESS)
        return xstrdup("Build succeeded!");
    if (results == REP_RES_WARNINGS)
        return xasprintf("Build Had Warnings%s%s", sep, st);
    if (results == REP_RES_CANCELLED)
        return xstrdup("Build was cancelled");
    return xasprintf("BUILD FAILED%s%s", sep, st);
}

/* Buildbot 4.3's default_subject_template; `subject_project` is the buildset's project (or
   "whole buildset") for a buildset and the builder's name for a build; `branch_or_revision`
   the branch property, else got_revision, else "(unknown revision)". */
const char rep_default_subject[] =
    "{% if result_name == \"failure\" %}\xe2\x98\xa0{% elif result_name == \"success\" "
    "%}\xe2\x98\xba{% else %}\xe2\x98\x9d{% endif %} Buildbot ({{ buildbot_title }}): "
    "{{ subject_project }} - {{ build.state_string }} ({{ branch_or_revision }})";

/* Buildbot 4.3's default_body_template_plain. */
const char rep_default_body_plain[] =
    "A {{ status_detected }} has been detected on builder {{ buildername }} while building {{ "
    "projects }}.\n"
    "\n"
    "Full details are available at:\n"
    "    {{ build_url }}\n"
    "\n"
    "Build state: {{ build.state_string }}\n"
    "Revision: {{ build.properties.got_revision or \"(unknown)\" }}\n"
    "Worker: {{ workername }}\n"
    "Build Reason: {{ build.properties.reason or \"(unknown)\" }}\n"
    "Blamelist: {{ blamelist }}\n"
    "\n"
    "Steps:\n"
    "{% if build.steps %}{% for step in build.steps %}\n"
    "- {{ step.number }}: {{ step.name }} ( {{ step.result_name }} )\n"
    "{% if step.logs %}    Logs:{% for log in step.logs %}\n"
    "        - {{ log.name }}: {{ log.url }}{% endfor %}\n"
    "{% endif %}{% endfor %}\n"
    "{% else %}\n"
    "- (no steps)\n"
    "{% endif %}\n";

/* Buildbot 4.3's default_body_template_html. */
const char rep_default_body_html[] =
    "<p>A {{ status_detected }} has been detected on builder\n"
    "<a href=\"{{ build_url }}\">{{ buildername }}</a>\n"
    "while building {{ projects }}.</p>\n"
    "<p>Information:</p>\n"
    "<ul>\n"
    "    <li>Build state: {{ build.state_string }}</li>\n"
    "    <li>Revision: {{ build.properties.got_revision or \"(unknown)\" }}</li>\n"
    "    <li>Worker: {{ workername }}</li>\n"
    "    <li>Build Reason: {{ build.properties.reason or \"(unknown)\" }}</li>\n"
    "    <li>Blamelist: {{ blamelist }}</li>\n"
    "</ul>\n"
    "<p>Steps:</p>\n"
    "<ul>\n"
    "{% if build.steps %}{% for step in build.steps %}\n"
    "    <li style=\"{{ step.results_style }}\">\n"
    "    {{ step.number }}: {{ step.name }} ( {{ step.result_name }} )\n"
    "    {% if step.logs %}({% for log in step.logs %}\n"
    "        <a href=\"{{ log.url }}\">&lt;{{ log.name }}&gt;</a>{% endfor %}\n"
    "    )\n"
    "    {% endif %}</li>\n"
    "{% endfor %}{% else %}\n"
    "    <li>No steps</li>\n"
    "{% endif %}\n"
    "</ul>\n";

/* Buildbot 4.3's default_missing_worker_subject_template and default_missing_template_plain
   and _html.  Buildbot's test is `'admin' in worker['workerinfo']`; bbmaster's language has no
   `in`, and a worker's stored info holds admin as None when the worker gave none, so the
   paragraph is there when the admin is known. */
const char rep_missing_subject[] = "Buildbot {{ buildbot_title }} worker {{ worker.name }} missing";

const char rep_missing_body_plain[] =
    "The Buildbot worker named {{worker.name}} went away.\n"
    "\n"
    "It last disconnected at {{worker.last_connection}}.\n"
    "\n"
    "{% if worker.workerinfo.admin %}\n"
    "The admin on record (as reported by WORKER:info/admin) was {{worker.workerinfo.admin}}.\n"
    "{% endif %}\n";

const char rep_missing_body_html[] =
    "<p>The Buildbot worker named {{worker.name}} went away.</p>\n"
    "<p>It last disconnected at {{worker.last_connection}}.</p>\n"
    "\n"
    "{% if worker.workerinfo.admin %}\n"
    "<p>The admin on record (as reported by WORKER:info/admin) was "
    "{{worker.workerinfo.admin}}.</p>\n"
    "{% endif %}\n";

const char *rep_results_style(int results)
{
    switch (results) {
    case REP_RES_EXCEPTION:
        return "color: #f0f; font-weight: bold;";
    case REP_RES_FAILURE:
        return "color: #f00; font-weight: bold;";
    case REP_RES_WARNINGS:
        return "color: #f80;";
    case REP_RES_SUCCESS:
        return "";
    default: /* RETRY, SKIPPED, CANCELLED */
        return "color: #4af;";
    }
}

/* ------------------------------------------------------------ mail */

/* Base64 in lines of 76 characters (Python's email), each ended by CRLF. */
static void base64_lines(struct buf *out, const char *s, size_t len)
{
    size_t i = 0;
    do {
        char line[77];
        size_t n = len - i < 57 ? len - i : 57;
        buf_add(out, line, util_base64(s + i, n, line));
        buf_addstr(out, "\r\n");
        i += n;
    } while (i < len);
}

/* Buildbot's VALID_EMAIL_ADDR over s[0..len): non-space characters, '@', then labels of
   letters, digits and '-' joined by single dots (at least two), maybe a final dot.  The '@'
   is the last one that leaves a valid domain (the regular expression backtracks so). */
static bool addr_valid(const char *s, size_t len)
{
    for (size_t at = len; at-- > 1;) {
        if (s[at] != '@')
            continue;
        size_t labels = 0, run = 0, i = at + 1, end = len;
        bool ok = true;
        if (end > i && s[end - 1] == '.')
            end--;
        for (; i <= end && ok; i++) {
            if (i == end || s[i] == '.') {
                ok = run > 0;
                labels++;
                run = 0;
            } else if (isalnum((unsigned char)s[i]) || s[i] == '-')
                run++;
            else
                ok = false;
        }
        if (!ok || labels < 2)
            continue;
        for (i = 0; i < at && !isspace((unsigned char)s[i]); i++)
            ;
        if (i == at)
            return true;
    }
    return false;
}

bool rep_mail_valid(const char *s)
{
    size_t len = strlen(s);
    if (addr_valid(s, len))
        return true;
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--; /* <addr>\s* */
    if (len == 0 || s[len - 1] != '>')
        return false;
    /* (.+\s+)?<ADDR>: any '<' at the start or after a name and white space */
    for (const char *lt = s + len - 1; lt-- > s;)
        if (*lt == '<' && addr_valid(lt + 1, (size_t)(s + len - 1 - (lt + 1))) &&
            (lt == s || (lt - s >= 2 && isspace((unsigned char)lt[-1]))))
            return true;
    return false;
}

static bool ascii_line(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80 || *s == '\r' || *s == '\n')
            return false;
    return true;
}

/* A header's text: as it is when ASCII, else RFC 2047 encoded words of base64 UTF-8, each
   of at most 45 bytes (60 characters encoded, under the 75 allowed), never splitting a
   character, on folded lines. */
static void header_text(struct buf *out, const char *s)
{
    if (ascii_line(s)) {
        buf_addstr(out, s);
        return;
    }
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        size_t n = len - i < 45 ? len - i : 45;
        while (n > 1 && i + n < len && ((unsigned char)s[i + n] & 0xC0) == 0x80)
            n--;
        struct buf b;
        buf_init(&b, 0);
        base64_lines(&b, s + i, n);
        b.len -= 2; /* the CRLF */
        b.data[b.len] = '\0';
        buf_printf(out, "%s=?utf-8?b?%s?=", i > 0 ? "\r\n " : "", b.data);
        buf_free(&b);
        i += n;
    }
}

char *rep_mail_address(const char *addr)
{
    const char *lt = strrchr(addr, '<'), *gt = lt != NULL ? strchr(lt, '>') : NULL;
    if (lt == NULL || gt == NULL)
        return xstrdup(addr);
    const char *e = lt;
    while (e > addr && e[-1] == ' ')
        e--;
    if (e == addr)
        return xasprintf("%.*s", (int)(gt - lt - 1), lt + 1);
    const char *name = addr;
    size_t nlen = (size_t)(e - addr);
    if (nlen >= 2 && name[0] == '"' && name[nlen - 1] == '"')
        name++, nlen -= 2;
    struct buf b;
    buf_init(&b, 0);
    char *n = xasprintf("%.*s", (int)nlen, name);
    buf_addc(&b, '"');
    header_text(&b, n);
    buf_printf(&b, "\" <%.*s>", (int)(gt - lt - 1), lt + 1);
    free(n);
    return buf_take(&b);
}

static void address_list(struct buf *out, const char *header, const char *const *list, size_t n)
{
    if (n == 0)
        return;
    buf_printf(out, "%s: ", header);
    for (size_t i = 0; i < n; i++) {
        char *a = rep_mail_address(list[i]);
        buf_printf(out, "%s%s", i > 0 ? ", " : "", a);
        free(a);
    }
    buf_addstr(out, "\r\n");
}

/* Content-Disposition's file name: quoted ASCII, or RFC 2231's percent-encoded UTF-8. */
static void file_name(struct buf *out, const char *name)
{
    bool plain = true;
    for (const char *c = name; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f || *c == '"' || *c == '\\')
            plain = false;
    if (plain) {
        buf_printf(out, "filename=\"%s\"", name);
        return;
    }
    buf_addstr(out, "filename*=utf-8''");
    for (const unsigned char *c = (const unsigned char *)name; *c != '\0'; c++)
        if (isalnum(*c) || strchr("!#$&+-.^_`|~", *c) != NULL)
            buf_addc(out, (char)*c);
        else
            buf_printf(out, "%%%02X", *c);
}

/* The length of base64_lines' output for `len` bytes. */
static size_t base64_lines_len(size_t len)
{
    return (len + 56) / 57 * 78;
}

/* About the size of the mail (its headers and parts' headers, a few KiB, are guessed), so
   that its buffer is made once: a mail is megabytes of attached logs. */
static size_t mail_size(const struct rep_mail_parts *p, size_t body)
{
    size_t n = 4096 + base64_lines_len(body);
    for (size_t i = 0; i < p->n_att; i++)
        n += 512 + strlen(p->att[i].name) * 3 + base64_lines_len(p->att[i].len);
    return n < REP_MAIL_MAX ? n : REP_MAIL_MAX;
}

/* MIMEMultipart's parts: the text, then each log as a base64 text/plain attachment. */
static void parts(struct buf *m, const struct rep_mail_parts *p, const char *body)
{
    const char *part = "Content-Type: text/%s; charset=\"utf-8\"\r\nMIME-Version: 1.0\r\n"
                       "Content-Transfer-Encoding: base64\r\n";
    buf_printf(m, "--%s\r\n", REP_MAIL_BOUNDARY);
    buf_printf(m, part, p->html ? "html" : "plain");
    buf_addstr(m, "\r\n");
    base64_lines(m, body, strlen(body));
    for (size_t i = 0; i < p->n_att; i++) {
        buf_printf(m, "--%s\r\n", REP_MAIL_BOUNDARY);
        buf_printf(m, part, "plain");
        buf_addstr(m, "Content-Disposition: attachment; ");
        file_name(m, p->att[i].name);
        buf_addstr(m, "\r\n\r\n");
        base64_lines(m, p->att[i].data, p->att[i].len);
    }
    buf_printf(m, "--%s--\r\n", REP_MAIL_BOUNDARY);
}

char *rep_mail_compose(const struct rep_mail_parts *p, char **cause)
{
    if (!ascii_line(p->from) || strchr(p->subject, '\n') != NULL) {
        *cause = xstrdup(strchr(p->subject, '\n') != NULL ? "Subject cannot contain newlines"
                                                          : "the From address is not ASCII");
        return NULL;
    }
    struct buf m;
    buf_init(&m, 0);
    if (p->n_att > 0)
        buf_printf(&m,
                   "Content-Type: multipart/mixed; boundary=\"%s\"\r\nMIME-Version: 1.0\r\n"
                   "Date: %s\r\nSubject: ",
                   REP_MAIL_BOUNDARY, p->date);
    else
        buf_printf(&m,
                   "MIME-Version: 1.0\r\nContent-Type: text/%s; charset=\"utf-8\"\r\n"
                   "Content-Transfer-Encoding: base64\r\nDate: %s\r\nSubject: ",
                   p->html ? "html" : "plain", p->date);
    header_text(&m, p->subject);
    buf_printf(&m, "\r\nFrom: %s\r\n", p->from);
    for (size_t i = 0; i < p->n_extra; i++) { /* "Name: value", the value maybe RFC 2047 */
        const char *sep = strstr(p->extra[i], ": ");
        size_t nlen = sep != NULL ? (size_t)(sep - p->extra[i]) + 2 : strlen(p->extra[i]);
        buf_add(&m, p->extra[i], nlen);
        header_text(&m, p->extra[i] + nlen);
        buf_addstr(&m, "\r\n");
    }
    address_list(&m, "To", p->to, p->n_to);
    address_list(&m, "CC", p->cc, p->n_cc);
    buf_printf(&m, "Message-ID: %s\r\n\r\n", p->message_id);
    /* Buildbot's sendMessage: the body ends with a blank line */
    size_t len = strlen(p->body);
    char *body = len >= 2 && strcmp(p->body + len - 2, "\n\n") == 0 ? xstrdup(p->body)
                                                                    : xasprintf("%s\n\n", p->body);
    buf_reserve(&m, mail_size(p, strlen(body)));
    if (p->n_att > 0)
        parts(&m, p, body);
    else
        base64_lines(&m, body, strlen(body));
    free(body);
    if (m.len > REP_MAIL_MAX) {
        *cause = xasprintf("the mail is %zu bytes, more than %d", m.len, REP_MAIL_MAX);
        buf_free(&m);
        return NULL;
    }
    return buf_take(&m);
}
