/*
 * The type descriptions of the data API, as Buildbot 4.3 publishes them in
 * /api/v2/application.spec (taken from its answer): for each resource type,
 * its name and fields in Buildbot's order with their types.  Data, kept so
 * that the spec bbmaster builds from its own routes describes the same types.
 */
#include "www/api/api.h"

#include <string.h>

static const struct {
    const char *plural, *type, *spec;
} types[] = {
    {"_properties", "_property",
     "{\"fields\":[{\"name\":\"name\",\"type\":\"string\",\"type_spec\":{\"name\":\"s"
     "tring\"}},{\"name\":\"source\",\"type\":\"string\",\"type_spec\":{\"name\":\"s"
     "tring\"}},{\"name\":\"value\",\"type\":\"jsonobject\",\"type_spec\":{\"name\""
     ":\"jsonobject\"}}],\"type\":\"_property\"}"},
    {"branches", "branch",
     "{\"fields\":[{\"name\":\"branchid\",\"type\":\"integer\",\"type_spec\":{\"nam"
     "e\":\"integer\"}},{\"name\":\"codebaseid\",\"type\":\"integer\",\"type_spec\""
     ":{\"name\":\"integer\"}},{\"name\":\"name\",\"type\":\"string\",\"type_spec\":"
     "{\"name\":\"string\"}},{\"name\":\"commitid\",\"type\":\"integer\",\"type_spe"
     "c\":{\"name\":\"integer\"}},{\"name\":\"last_timestamp\",\"type\":\"integer\""
     ",\"type_spec\":{\"name\":\"integer\"}}],\"type\":\"branch\"}"},
    {"build_data", "build_data",
     "{\"fields\":[{\"name\":\"buildid\",\"type\":\"integer\",\"type_spec\":{\"name"
     "\":\"integer\"}},{\"name\":\"name\",\"type\":\"string\",\"type_spec\":{\"name\""
     ":\"string\"}},{\"name\":\"length\",\"type\":\"integer\",\"type_spec\":{\"name"
     "\":\"integer\"}},{\"name\":\"value\",\"type\":\"binary or None\",\"type_spec"
     "\":{\"can_be_null\":true,\"name\":\"binary\"}},{\"name\":\"source\",\"type\":"
     "\"string\",\"type_spec\":{\"name\":\"string\"}}],\"type\":\"build_data\"}"},
    {"builders", "builder",
     "{\"fields\":[{\"name\":\"builderid\",\"type\":\"integer\",\"type_spec\":{\"na"
     "me\":\"integer\"}},{\"name\":\"name\",\"type\":\"string\",\"type_spec\":{\"nam"
     "e\":\"string\"}},{\"name\":\"masterids\",\"type\":\"list\",\"type_spec\":{\"of"
     "\":{\"name\":\"integer\"},\"type\":\"list\"}},{\"name\":\"description\",\"type"
     "\":\"string or None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"strin"
     "g\"}},{\"name\":\"description_format\",\"type\":\"string or None\",\"type_"
     "spec\":{\"can_be_null\":true,\"name\":\"string\"}},{\"name\":\"description"
     "_html\",\"type\":\"string or None\",\"type_spec\":{\"can_be_null\":true,\""
     "name\":\"string\"}},{\"name\":\"projectid\",\"type\":\"integer or None\",\"t"
     "ype_spec\":{\"can_be_null\":true,\"name\":\"integer\"}},{\"name\":\"tags\","
     "\"type\":\"list\",\"type_spec\":{\"of\":{\"name\":\"string\"},\"type\":\"list\"}"
     "}],\"type\":\"builder\"}"},
    {"buildrequests", "buildrequest",
     "{\"fields\":[{\"name\":\"buildrequestid\",\"type\":\"integer\",\"type_spec\""
     ":{\"name\":\"integer\"}},{\"name\":\"buildsetid\",\"type\":\"integer\",\"type"
     "_spec\":{\"name\":\"integer\"}},{\"name\":\"builderid\",\"type\":\"integer\","
     "\"type_spec\":{\"name\":\"integer\"}},{\"name\":\"priority\",\"type\":\"integ"
     "er\",\"type_spec\":{\"name\":\"integer\"}},{\"name\":\"claimed\",\"type\":\"bo"
     "olean\",\"type_spec\":{\"name\":\"boolean\"}},{\"name\":\"claimed_at\",\"typ"
     "e\":\"datetime or None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"da"
     "tetime\"}},{\"name\":\"claimed_by_masterid\",\"type\":\"integer or None\""
     ",\"type_spec\":{\"can_be_null\":true,\"name\":\"integer\"}},{\"name\":\"com"
     "plete\",\"type\":\"boolean\",\"type_spec\":{\"name\":\"boolean\"}},{\"name\":"
     "\"results\",\"type\":\"integer or None\",\"type_spec\":{\"can_be_null\":tr"
     "ue,\"name\":\"integer\"}},{\"name\":\"submitted_at\",\"type\":\"datetime\",\""
     "type_spec\":{\"name\":\"datetime\"}},{\"name\":\"complete_at\",\"type\":\"da"
     "tetime or None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"datetime"
     "\"}},{\"name\":\"waited_for\",\"type\":\"boolean\",\"type_spec\":{\"name\":\"b"
     "oolean\"}},{\"name\":\"properties\",\"type\":\"sourcedproperties or None"
     "\",\"type_spec\":{\"can_be_null\":true,\"name\":\"sourcedproperties\"}}],"
     "\"type\":\"buildrequest\"}"},
    {"builds", "build",
     "{\"fields\":[{\"name\":\"buildid\",\"type\":\"integer\",\"type_spec\":{\"name"
     "\":\"integer\"}},{\"name\":\"number\",\"type\":\"integer\",\"type_spec\":{\"na"
     "me\":\"integer\"}},{\"name\":\"builderid\",\"type\":\"integer\",\"type_spec\""
     ":{\"name\":\"integer\"}},{\"name\":\"buildrequestid\",\"type\":\"integer\",\""
     "type_spec\":{\"name\":\"integer\"}},{\"name\":\"workerid\",\"type\":\"intege"
     "r\",\"type_spec\":{\"name\":\"integer\"}},{\"name\":\"masterid\",\"type\":\"in"
     "teger\",\"type_spec\":{\"name\":\"integer\"}},{\"name\":\"started_at\",\"typ"
     "e\":\"datetime\",\"type_spec\":{\"name\":\"datetime\"}},{\"name\":\"complete"
     "\",\"type\":\"boolean\",\"type_spec\":{\"name\":\"boolean\"}},{\"name\":\"comp"
     "lete_at\",\"type\":\"datetime or None\",\"type_spec\":{\"can_be_null\":tr"
     "ue,\"name\":\"datetime\"}},{\"name\":\"locks_duration_s\",\"type\":\"intege"
     "r\",\"type_spec\":{\"name\":\"integer\"}},{\"name\":\"results\",\"type\":\"int"
     "eger or None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"integer\"}}"
     ",{\"name\":\"state_string\",\"type\":\"string\",\"type_spec\":{\"name\":\"str"
     "ing\"}},{\"name\":\"properties\",\"type\":\"sourcedproperties or None\",\""
     "type_spec\":{\"can_be_null\":true,\"name\":\"sourcedproperties\"}}],\"ty"
     "pe\":\"build\"}"},
    {"buildsets", "buildset",
     "{\"fields\":[{\"name\":\"bsid\",\"type\":\"integer\",\"type_spec\":{\"name\":\""
     "integer\"}},{\"name\":\"external_idstring\",\"type\":\"string or None\",\""
     "type_spec\":{\"can_be_null\":true,\"name\":\"string\"}},{\"name\":\"reason"
     "\",\"type\":\"string\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\"rebuil"
     "t_buildid\",\"type\":\"integer or None\",\"type_spec\":{\"can_be_null\":t"
     "rue,\"name\":\"integer\"}},{\"name\":\"submitted_at\",\"type\":\"integer\",\""
     "type_spec\":{\"name\":\"integer\"}},{\"name\":\"complete\",\"type\":\"boolea"
     "n\",\"type_spec\":{\"name\":\"boolean\"}},{\"name\":\"complete_at\",\"type\":"
     "\"integer or None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"intege"
     "r\"}},{\"name\":\"results\",\"type\":\"integer or None\",\"type_spec\":{\"ca"
     "n_be_null\":true,\"name\":\"integer\"}},{\"name\":\"sourcestamps\",\"type\""
     ":\"list\",\"type_spec\":{\"of\":{\"fields\":[{\"name\":\"ssid\",\"type\":\"inte"
     "ger\",\"type_spec\":{\"name\":\"integer\"}},{\"name\":\"revision\",\"type\":\""
     "string or None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"string\"}"
     "},{\"name\":\"branch\",\"type\":\"string or None\",\"type_spec\":{\"can_be_"
     "null\":true,\"name\":\"string\"}},{\"name\":\"repository\",\"type\":\"string"
     "\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\"project\",\"type\":\"strin"
     "g\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\"codebase\",\"type\":\"str"
     "ing\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\"patch\",\"type\":\"patc"
     "h or None\",\"type_spec\":{\"can_be_null\":true,\"fields\":[{\"name\":\"pa"
     "tchid\",\"type\":\"integer\",\"type_spec\":{\"name\":\"integer\"}},{\"name\":"
     "\"body\",\"type\":\"binary\",\"type_spec\":{\"name\":\"binary\"}},{\"name\":\"l"
     "evel\",\"type\":\"integer\",\"type_spec\":{\"name\":\"integer\"}},{\"name\":\""
     "subdir\",\"type\":\"string\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\""
     "author\",\"type\":\"string\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\""
     "comment\",\"type\":\"string\",\"type_spec\":{\"name\":\"string\"}}],\"type\":"
     "\"patch\"}},{\"name\":\"created_at\",\"type\":\"datetime\",\"type_spec\":{\"n"
     "ame\":\"datetime\"}}],\"type\":\"sourcestamp\"},\"type\":\"list\"}},{\"name\""
     ":\"parent_buildid\",\"type\":\"integer or None\",\"type_spec\":{\"can_be_"
     "null\":true,\"name\":\"integer\"}},{\"name\":\"parent_relationship\",\"typ"
     "e\":\"string or None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"stri"
     "ng\"}}],\"type\":\"buildset\"}"},
    {"changes", "change",
     "{\"fields\":[{\"name\":\"changeid\",\"type\":\"integer\",\"type_spec\":{\"nam"
     "e\":\"integer\"}},{\"name\":\"parent_changeids\",\"type\":\"list\",\"type_sp"
     "ec\":{\"of\":{\"name\":\"integer\"},\"type\":\"list\"}},{\"name\":\"author\",\"t"
     "ype\":\"string\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\"committer\""
     ",\"type\":\"string\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\"files\","
     "\"type\":\"list\",\"type_spec\":{\"of\":{\"name\":\"string\"},\"type\":\"list\"}"
     "},{\"name\":\"comments\",\"type\":\"string\",\"type_spec\":{\"name\":\"string"
     "\"}},{\"name\":\"revision\",\"type\":\"string or None\",\"type_spec\":{\"can"
     "_be_null\":true,\"name\":\"string\"}},{\"name\":\"when_timestamp\",\"type\""
     ":\"integer\",\"type_spec\":{\"name\":\"integer\"}},{\"name\":\"branch\",\"typ"
     "e\":\"string or None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"stri"
     "ng\"}},{\"name\":\"category\",\"type\":\"string or None\",\"type_spec\":{\"c"
     "an_be_null\":true,\"name\":\"string\"}},{\"name\":\"revlink\",\"type\":\"str"
     "ing or None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"string\"}},{"
     "\"name\":\"properties\",\"type\":\"sourcedproperties\",\"type_spec\":{\"nam"
     "e\":\"sourcedproperties\"}},{\"name\":\"repository\",\"type\":\"string\",\"t"
     "ype_spec\":{\"name\":\"string\"}},{\"name\":\"project\",\"type\":\"string\",\""
     "type_spec\":{\"name\":\"string\"}},{\"name\":\"codebase\",\"type\":\"string\""
     ",\"type_spec\":{\"name\":\"string\"}},{\"name\":\"sourcestamp\",\"type\":\"so"
     "urcestamp\",\"type_spec\":{\"fields\":[{\"name\":\"ssid\",\"type\":\"integer"
     "\",\"type_spec\":{\"name\":\"integer\"}},{\"name\":\"revision\",\"type\":\"str"
     "ing or None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"string\"}},{"
     "\"name\":\"branch\",\"type\":\"string or None\",\"type_spec\":{\"can_be_nul"
     "l\":true,\"name\":\"string\"}},{\"name\":\"repository\",\"type\":\"string\",\""
     "type_spec\":{\"name\":\"string\"}},{\"name\":\"project\",\"type\":\"string\","
     "\"type_spec\":{\"name\":\"string\"}},{\"name\":\"codebase\",\"type\":\"string"
     "\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\"patch\",\"type\":\"patch o"
     "r None\",\"type_spec\":{\"can_be_null\":true,\"fields\":[{\"name\":\"patch"
     "id\",\"type\":\"integer\",\"type_spec\":{\"name\":\"integer\"}},{\"name\":\"bo"
     "dy\",\"type\":\"binary\",\"type_spec\":{\"name\":\"binary\"}},{\"name\":\"leve"
     "l\",\"type\":\"integer\",\"type_spec\":{\"name\":\"integer\"}},{\"name\":\"sub"
     "dir\",\"type\":\"string\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\"aut"
     "hor\",\"type\":\"string\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\"com"
     "ment\",\"type\":\"string\",\"type_spec\":{\"name\":\"string\"}}],\"type\":\"pa"
     "tch\"}},{\"name\":\"created_at\",\"type\":\"datetime\",\"type_spec\":{\"name"
     "\":\"datetime\"}}],\"type\":\"sourcestamp\"}}],\"type\":\"change\"}"},
    {"changesources", "changesource",
     "{\"fields\":[{\"name\":\"changesourceid\",\"type\":\"integer\",\"type_spec\""
     ":{\"name\":\"integer\"}},{\"name\":\"name\",\"type\":\"string\",\"type_spec\":"
     "{\"name\":\"string\"}},{\"name\":\"master\",\"type\":\"master or None\",\"typ"
     "e_spec\":{\"can_be_null\":true,\"fields\":[{\"name\":\"masterid\",\"type\":"
     "\"integer\",\"type_spec\":{\"name\":\"integer\"}},{\"name\":\"name\",\"type\":"
     "\"string\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\"active\",\"type\":"
     "\"boolean\",\"type_spec\":{\"name\":\"boolean\"}},{\"name\":\"last_active\","
     "\"type\":\"datetime\",\"type_spec\":{\"name\":\"datetime\"}}],\"type\":\"mast"
     "er\"}}],\"type\":\"changesource\"}"},
    {"codebases", "codebase",
     "{\"fields\":[{\"name\":\"codebaseid\",\"type\":\"integer\",\"type_spec\":{\"n"
     "ame\":\"integer\"}},{\"name\":\"projectid\",\"type\":\"integer\",\"type_spec"
     "\":{\"name\":\"integer\"}},{\"name\":\"name\",\"type\":\"identifier\",\"type_s"
     "pec\":{\"name\":\"identifier\"}},{\"name\":\"slug\",\"type\":\"identifier\",\""
     "type_spec\":{\"name\":\"identifier\"}}],\"type\":\"codebase\"}"},
    {"commit_graphs", "commit_graph",
     "{\"fields\":[{\"name\":\"common\",\"type\":\"integer\",\"type_spec\":{\"name\""
     ":\"integer\"}},{\"name\":\"to1\",\"type\":\"list\",\"type_spec\":{\"of\":{\"nam"
     "e\":\"integer\"},\"type\":\"list\"}},{\"name\":\"to2\",\"type\":\"list\",\"type_"
     "spec\":{\"of\":{\"name\":\"integer\"},\"type\":\"list\"}}],\"type\":\"commit_g"
     "raph\"}"},
    {"commits", "commit",
     "{\"fields\":[{\"name\":\"commitid\",\"type\":\"integer\",\"type_spec\":{\"nam"
     "e\":\"integer\"}},{\"name\":\"codebaseid\",\"type\":\"integer\",\"type_spec\""
     ":{\"name\":\"integer\"}},{\"name\":\"author\",\"type\":\"string\",\"type_spec"
     "\":{\"name\":\"string\"}},{\"name\":\"committer\",\"type\":\"string or None\""
     ",\"type_spec\":{\"can_be_null\":true,\"name\":\"string\"}},{\"name\":\"comm"
     "ents\",\"type\":\"string\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\"wh"
     "en_timestamp\",\"type\":\"integer\",\"type_spec\":{\"name\":\"integer\"}},{"
     "\"name\":\"revision\",\"type\":\"string\",\"type_spec\":{\"name\":\"string\"}}"
     ",{\"name\":\"parent_commitid\",\"type\":\"integer or None\",\"type_spec\":"
     "{\"can_be_null\":true,\"name\":\"integer\"}}],\"type\":\"commit\"}"},
    {"forceschedulers", "forcescheduler",
     "{\"fields\":[{\"name\":\"name\",\"type\":\"identifier\",\"type_spec\":{\"name"
     "\":\"identifier\"}},{\"name\":\"button_name\",\"type\":\"string\",\"type_spe"
     "c\":{\"name\":\"string\"}},{\"name\":\"label\",\"type\":\"string\",\"type_spec"
     "\":{\"name\":\"string\"}},{\"name\":\"builder_names\",\"type\":\"list\",\"type"
     "_spec\":{\"of\":{\"name\":\"identifier\"},\"type\":\"list\"}},{\"name\":\"enab"
     "led\",\"type\":\"boolean\",\"type_spec\":{\"name\":\"boolean\"}},{\"name\":\"a"
     "ll_fields\",\"type\":\"list\",\"type_spec\":{\"of\":{\"name\":\"jsonobject\"}"
     ",\"type\":\"list\"}}],\"type\":\"forcescheduler\"}"},
    {"logchunks", "logchunk",
     "{\"fields\":[{\"name\":\"logid\",\"type\":\"integer\",\"type_spec\":{\"name\":"
     "\"integer\"}},{\"name\":\"firstline\",\"type\":\"integer\",\"type_spec\":{\"n"
     "ame\":\"integer\"}},{\"name\":\"content\",\"type\":\"string\",\"type_spec\":{"
     "\"name\":\"string\"}}],\"type\":\"logchunk\"}"},
    {"logs", "log",
     "{\"fields\":[{\"name\":\"logid\",\"type\":\"integer\",\"type_spec\":{\"name\":"
     "\"integer\"}},{\"name\":\"name\",\"type\":\"string\",\"type_spec\":{\"name\":\""
     "string\"}},{\"name\":\"slug\",\"type\":\"identifier\",\"type_spec\":{\"name\""
     ":\"identifier\"}},{\"name\":\"stepid\",\"type\":\"integer\",\"type_spec\":{\""
     "name\":\"integer\"}},{\"name\":\"complete\",\"type\":\"boolean\",\"type_spec"
     "\":{\"name\":\"boolean\"}},{\"name\":\"num_lines\",\"type\":\"integer\",\"type"
     "_spec\":{\"name\":\"integer\"}},{\"name\":\"type\",\"type\":\"identifier\",\"t"
     "ype_spec\":{\"name\":\"identifier\"}}],\"type\":\"log\"}"},
    {"masters", "master",
     "{\"fields\":[{\"name\":\"masterid\",\"type\":\"integer\",\"type_spec\":{\"nam"
     "e\":\"integer\"}},{\"name\":\"name\",\"type\":\"string\",\"type_spec\":{\"name"
     "\":\"string\"}},{\"name\":\"active\",\"type\":\"boolean\",\"type_spec\":{\"nam"
     "e\":\"boolean\"}},{\"name\":\"last_active\",\"type\":\"datetime\",\"type_spe"
     "c\":{\"name\":\"datetime\"}}],\"type\":\"master\"}"},
    {"projects", "project",
     "{\"fields\":[{\"name\":\"projectid\",\"type\":\"integer\",\"type_spec\":{\"na"
     "me\":\"integer\"}},{\"name\":\"name\",\"type\":\"identifier\",\"type_spec\":{"
     "\"name\":\"identifier\"}},{\"name\":\"slug\",\"type\":\"identifier\",\"type_s"
     "pec\":{\"name\":\"identifier\"}},{\"name\":\"active\",\"type\":\"boolean or "
     "None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"boolean\"}},{\"name\""
     ":\"description\",\"type\":\"string or None\",\"type_spec\":{\"can_be_null"
     "\":true,\"name\":\"string\"}},{\"name\":\"description_format\",\"type\":\"st"
     "ring or None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"string\"}},"
     "{\"name\":\"description_html\",\"type\":\"string or None\",\"type_spec\":{"
     "\"can_be_null\":true,\"name\":\"string\"}}],\"type\":\"project\"}"},
    {"properties", "sourcedproperties", "{\"name\":\"sourcedproperties\"}"},
    {"rootlinks", "rootlink",
     "{\"fields\":[{\"name\":\"name\",\"type\":\"string\",\"type_spec\":{\"name\":\"s"
     "tring\"}}],\"type\":\"rootlink\"}"},
    {"schedulers", "scheduler",
     "{\"fields\":[{\"name\":\"schedulerid\",\"type\":\"integer\",\"type_spec\":{\""
     "name\":\"integer\"}},{\"name\":\"name\",\"type\":\"string\",\"type_spec\":{\"n"
     "ame\":\"string\"}},{\"name\":\"enabled\",\"type\":\"boolean\",\"type_spec\":{"
     "\"name\":\"boolean\"}},{\"name\":\"master\",\"type\":\"master or None\",\"typ"
     "e_spec\":{\"can_be_null\":true,\"fields\":[{\"name\":\"masterid\",\"type\":"
     "\"integer\",\"type_spec\":{\"name\":\"integer\"}},{\"name\":\"name\",\"type\":"
     "\"string\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\"active\",\"type\":"
     "\"boolean\",\"type_spec\":{\"name\":\"boolean\"}},{\"name\":\"last_active\","
     "\"type\":\"datetime\",\"type_spec\":{\"name\":\"datetime\"}}],\"type\":\"mast"
     "er\"}}],\"type\":\"scheduler\"}"},
    {"sourcestamps", "sourcestamp",
     "{\"fields\":[{\"name\":\"ssid\",\"type\":\"integer\",\"type_spec\":{\"name\":\""
     "integer\"}},{\"name\":\"revision\",\"type\":\"string or None\",\"type_spec"
     "\":{\"can_be_null\":true,\"name\":\"string\"}},{\"name\":\"branch\",\"type\":"
     "\"string or None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"string\""
     "}},{\"name\":\"repository\",\"type\":\"string\",\"type_spec\":{\"name\":\"str"
     "ing\"}},{\"name\":\"project\",\"type\":\"string\",\"type_spec\":{\"name\":\"st"
     "ring\"}},{\"name\":\"codebase\",\"type\":\"string\",\"type_spec\":{\"name\":\""
     "string\"}},{\"name\":\"patch\",\"type\":\"patch or None\",\"type_spec\":{\"c"
     "an_be_null\":true,\"fields\":[{\"name\":\"patchid\",\"type\":\"integer\",\"t"
     "ype_spec\":{\"name\":\"integer\"}},{\"name\":\"body\",\"type\":\"binary\",\"ty"
     "pe_spec\":{\"name\":\"binary\"}},{\"name\":\"level\",\"type\":\"integer\",\"ty"
     "pe_spec\":{\"name\":\"integer\"}},{\"name\":\"subdir\",\"type\":\"string\",\"t"
     "ype_spec\":{\"name\":\"string\"}},{\"name\":\"author\",\"type\":\"string\",\"t"
     "ype_spec\":{\"name\":\"string\"}},{\"name\":\"comment\",\"type\":\"string\",\""
     "type_spec\":{\"name\":\"string\"}}],\"type\":\"patch\"}},{\"name\":\"created"
     "_at\",\"type\":\"datetime\",\"type_spec\":{\"name\":\"datetime\"}}],\"type\":"
     "\"sourcestamp\"}"},
    {"specs", "spec",
     "{\"fields\":[{\"name\":\"path\",\"type\":\"string\",\"type_spec\":{\"name\":\"s"
     "tring\"}},{\"name\":\"type\",\"type\":\"string\",\"type_spec\":{\"name\":\"str"
     "ing\"}},{\"name\":\"plural\",\"type\":\"string\",\"type_spec\":{\"name\":\"str"
     "ing\"}},{\"name\":\"type_spec\",\"type\":\"jsonobject\",\"type_spec\":{\"nam"
     "e\":\"jsonobject\"}}],\"type\":\"spec\"}"},
    {"steps", "step",
     "{\"fields\":[{\"name\":\"stepid\",\"type\":\"integer\",\"type_spec\":{\"name\""
     ":\"integer\"}},{\"name\":\"number\",\"type\":\"integer\",\"type_spec\":{\"nam"
     "e\":\"integer\"}},{\"name\":\"name\",\"type\":\"identifier\",\"type_spec\":{\""
     "name\":\"identifier\"}},{\"name\":\"buildid\",\"type\":\"integer\",\"type_sp"
     "ec\":{\"name\":\"integer\"}},{\"name\":\"started_at\",\"type\":\"datetime or"
     " None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"datetime\"}},{\"nam"
     "e\":\"locks_acquired_at\",\"type\":\"datetime or None\",\"type_spec\":{\"c"
     "an_be_null\":true,\"name\":\"datetime\"}},{\"name\":\"complete\",\"type\":\""
     "boolean\",\"type_spec\":{\"name\":\"boolean\"}},{\"name\":\"complete_at\",\""
     "type\":\"datetime or None\",\"type_spec\":{\"can_be_null\":true,\"name\":"
     "\"datetime\"}},{\"name\":\"results\",\"type\":\"integer or None\",\"type_sp"
     "ec\":{\"can_be_null\":true,\"name\":\"integer\"}},{\"name\":\"state_string"
     "\",\"type\":\"string\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\"urls\","
     "\"type\":\"list\",\"type_spec\":{\"of\":{\"fields\":[{\"name\":\"name\",\"type\""
     ":\"string\",\"type_spec\":{\"name\":\"string\"}},{\"name\":\"url\",\"type\":\"s"
     "tring\",\"type_spec\":{\"name\":\"string\"}}],\"type\":\"Url\"},\"type\":\"lis"
     "t\"}},{\"name\":\"hidden\",\"type\":\"boolean\",\"type_spec\":{\"name\":\"bool"
     "ean\"}}],\"type\":\"step\"}"},
    {"test_result_sets", "test_result_set",
     "{\"fields\":[{\"name\":\"test_result_setid\",\"type\":\"integer\",\"type_sp"
     "ec\":{\"name\":\"integer\"}},{\"name\":\"builderid\",\"type\":\"integer\",\"ty"
     "pe_spec\":{\"name\":\"integer\"}},{\"name\":\"buildid\",\"type\":\"integer\","
     "\"type_spec\":{\"name\":\"integer\"}},{\"name\":\"stepid\",\"type\":\"integer"
     "\",\"type_spec\":{\"name\":\"integer\"}},{\"name\":\"description\",\"type\":\""
     "string or None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"string\"}"
     "},{\"name\":\"category\",\"type\":\"string\",\"type_spec\":{\"name\":\"string"
     "\"}},{\"name\":\"value_unit\",\"type\":\"string\",\"type_spec\":{\"name\":\"st"
     "ring\"}},{\"name\":\"tests_passed\",\"type\":\"integer or None\",\"type_sp"
     "ec\":{\"can_be_null\":true,\"name\":\"integer\"}},{\"name\":\"tests_failed"
     "\",\"type\":\"integer or None\",\"type_spec\":{\"can_be_null\":true,\"name"
     "\":\"integer\"}},{\"name\":\"complete\",\"type\":\"boolean\",\"type_spec\":{\""
     "name\":\"boolean\"}}],\"type\":\"test_result_set\"}"},
    {"test_results", "test_result",
     "{\"fields\":[{\"name\":\"test_resultid\",\"type\":\"integer\",\"type_spec\":"
     "{\"name\":\"integer\"}},{\"name\":\"builderid\",\"type\":\"integer\",\"type_s"
     "pec\":{\"name\":\"integer\"}},{\"name\":\"test_result_setid\",\"type\":\"int"
     "eger\",\"type_spec\":{\"name\":\"integer\"}},{\"name\":\"test_name\",\"type\""
     ":\"string or None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"string"
     "\"}},{\"name\":\"test_code_path\",\"type\":\"string or None\",\"type_spec\""
     ":{\"can_be_null\":true,\"name\":\"string\"}},{\"name\":\"line\",\"type\":\"in"
     "teger or None\",\"type_spec\":{\"can_be_null\":true,\"name\":\"integer\"}"
     "},{\"name\":\"duration_ns\",\"type\":\"integer or None\",\"type_spec\":{\"c"
     "an_be_null\":true,\"name\":\"integer\"}},{\"name\":\"value\",\"type\":\"stri"
     "ng\",\"type_spec\":{\"name\":\"string\"}}],\"type\":\"test_result\"}"},
    {"workers", "worker",
     "{\"fields\":[{\"name\":\"workerid\",\"type\":\"integer\",\"type_spec\":{\"nam"
     "e\":\"integer\"}},{\"name\":\"name\",\"type\":\"string\",\"type_spec\":{\"name"
     "\":\"string\"}},{\"name\":\"connected_to\",\"type\":\"list\",\"type_spec\":{\""
     "of\":{\"fields\":[{\"name\":\"masterid\",\"type\":\"integer\",\"type_spec\":{"
     "\"name\":\"integer\"}}],\"type\":\"master_id\"},\"type\":\"list\"}},{\"name\":"
     "\"configured_on\",\"type\":\"list\",\"type_spec\":{\"of\":{\"fields\":[{\"nam"
     "e\":\"masterid\",\"type\":\"integer\",\"type_spec\":{\"name\":\"integer\"}},{"
     "\"name\":\"builderid\",\"type\":\"integer\",\"type_spec\":{\"name\":\"integer"
     "\"}}],\"type\":\"master_builder\"},\"type\":\"list\"}},{\"name\":\"workerinf"
     "o\",\"type\":\"jsonobject\",\"type_spec\":{\"name\":\"jsonobject\"}},{\"name"
     "\":\"paused\",\"type\":\"boolean\",\"type_spec\":{\"name\":\"boolean\"}},{\"na"
     "me\":\"pause_reason\",\"type\":\"string or None\",\"type_spec\":{\"can_be_"
     "null\":true,\"name\":\"string\"}},{\"name\":\"graceful\",\"type\":\"boolean\""
     ",\"type_spec\":{\"name\":\"boolean\"}}],\"type\":\"worker\"}"},
};

const char *api_type_spec(const char *plural, const char **type)
{
    for (size_t i = 0; i < UTIL_NELEM(types); i++)
        if (strcmp(types[i].plural, plural) == 0) {
            *type = types[i].type;
            return types[i].spec;
        }
    return NULL;
}
