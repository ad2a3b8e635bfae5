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
