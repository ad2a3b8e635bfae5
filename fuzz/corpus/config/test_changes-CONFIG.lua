local bbm = require "bbm"
-- CPython's rule: a change is important unless every file is documentation
local function important(change)
  for _, f in ipairs(change.files) do
    if not f:match("^Doc/") then return true end
  end
  return false
end
return {
  title = "changes",
  protocols = { pb = { port = 1234 } },
  www = { port = 1234, change_hook_dialects = { github = {
    secret = "/tmp/x", strict = true,
    github_property_whitelist = { "github.pusher.*" } } } },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass", { max_builds = 4 }) },
  builders = {
    bbm.builder{ name = "main-a", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = { "echo", bbm.interpolate("%(src::revision)s") } } } },
    bbm.builder{ name = "main-b", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = { "true" } } } },
    bbm.builder{ name = "feature", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ command = { "true" } } } },
  },
  schedulers = {
    bbm.schedulers.single_branch{ name = "main", builderNames = { "main-a", "main-b" },
      change_filter = bbm.change_filter{ branch = "main" }, treeStableTimer = /tmp/x,
      fileIsImportant = important, properties = { from_scheduler = "yes" } },
    bbm.schedulers.any_branch{ name = "features", builderNames = { "feature" },
      change_filter = bbm.change_filter{ branch_re = "feature/", branch_not_re = "feature/wip-",
        branch_not_eq = { "feature/old" }, project_not_re = "^private",
        repository_fn = function(r) return r:find("cpython", 1, true) ~= nil end,
        property_re = { event = "^push$" },
        property_not_eq = { ["github.pusher.name"] = "bot" } },
      priority = function(builderNames, changesByCodebase)
        return #builderNames * 10 + #changesByCodebase[""]
      end },
  },
}
