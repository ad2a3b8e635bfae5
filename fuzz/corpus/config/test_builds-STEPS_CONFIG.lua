local bbm = require "bbm"
return {
  protocols = { pb = { port = 1234 } },
  www = { port = 1234 },
  db_url = "sqlite:///state.sqlite",
  uploadRoots = { "/tmp/x" },
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "transfers", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "make files", command =
        "mkdir -p sub && head -c 20971520 /dev/urandom > big.bin && echo hi > sub/a.txt" },
      bbm.steps.file_upload{ workersrc = "big.bin", masterdest = "uploads/big.bin" },
      bbm.steps.directory_upload{ workersrc = "sub", masterdest = "/tmp/x/subdir",
        compress = "gz" },
      bbm.steps.file_download{ mastersrc = "uploads/big.bin", workerdest = "copy.bin" },
      bbm.steps.string_download{ s = bbm.interpolate("build %(prop:buildnumber)s\n"),
        workerdest = "str.txt", mode = 384 },
      bbm.steps.mkdir{ dir = "build/newdir" },
      bbm.steps.rmdir{ dir = "build/newdir" },
      bbm.steps.copy_directory{ src = "build/sub", dest = "build/sub2" },
      bbm.steps.file_exists{ file = "build/str.txt" },
      bbm.steps.shell{ name = "check", command =
        "cmp big.bin copy.bin && cat str.txt && stat -c %a str.txt && cat sub2/a.txt && test ! -e newdir" },
      bbm.steps.master_shell_command{ command = { "sh", "-c", "cat /tmp/x/subdir/a.txt; echo err >&2" } },
      bbm.steps.multiple_file_upload{ workersrcs = { "sub/*.txt", "su?" }, glob = true,
        masterdest = "uploads/multi" },
      bbm.steps.remove_worker_file_secret{ populated_secret_list = {
        { "build/str.txt", "s" }, { "build/copy.bin", "s" } } },
    } },
    bbm.builder{ name = "parent", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = { "true" } },
      bbm.steps.trigger{ schedulerNames = { "trig" }, waitForFinish = true,
        set_properties = { from_parent = bbm.interpolate("%(prop:buildnumber)s"),
          level = "from the step" },
        copy_properties = { "outcome" } },
      bbm.steps.trigger{ schedulerNames = { "trig" }, set_properties = { reason = "by hand" } },
    } },
    bbm.builder{ name = "child", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = { "echo", bbm.interpolate("%(prop:from_parent:-none)s") } },
    } },
    bbm.builder{ name = "escape", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = "echo x > f" },
      bbm.steps.file_upload{ workersrc = "f", masterdest = bbm.interpolate("%(prop:dest)s") },
    } },
    bbm.builder{ name = "outputs", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "50MB", command =
        "head -c 50000000 /dev/zero | tr '\\0' x | fold -w 100" },
      bbm.steps.shell{ name = "not utf-8", command = { "printf", "caf\\351 \\377\\n" } },
      bbm.steps.shell{ name = "silent", command = { "sleep", "30" }, timeout = 2 },
      bbm.steps.shell{ name = "decoded", alwaysRun = true, logfiles = { extra = "extra.log" },
        decodeRC = { [0] = 0, [3] = 1 },
        command = "echo one > extra.log; echo two >> extra.log; exit 3" },
      bbm.steps.master_shell_command{ name = "on master", command = "exit 3",
        alwaysRun = true, flunkOnFailure = false },
    } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force",
      builderNames = { "transfers", "escape", "outputs", "parent" },
      properties = { bbm.params.string{ name = "dest" }, bbm.params.string{ name = "outcome" } } },
    bbm.schedulers.triggerable{ name = "trig", builderNames = { "child" },
      properties = { level = "child" } },
  },
}
