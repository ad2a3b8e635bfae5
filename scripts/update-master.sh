#!/bin/sh
# update-master BBMASTER DIR: buildbot.python.org's */15 cron job done the bbmaster way.
# DIR is a master directory inside a git checkout of the configuration.  On branch main
# only, pull; and only when that changed something, check the configuration and reconfig
# the running master.  Never a restart: running builds go on, and a configuration that
# fails the check is reported (exit status 1) while the master keeps the one it runs.
# Silent when there is nothing to do, as a cron job should be.
set -eu
bbmaster=$1
cd "$2"
branch=$(git rev-parse --abbrev-ref HEAD)
if [ "$branch" != main ]; then
    echo "update-master: $2 is on '$branch', not main: not pulling updates"
    exit 0
fi
old=$(git rev-parse HEAD)
git pull -q --ff-only
new=$(git rev-parse HEAD)
[ "$old" = "$new" ] && exit 0
echo "update-master: configuration $old -> $new"
if ! "$bbmaster" checkconfig . >/dev/null; then
    echo "update-master: the new configuration is refused; the master keeps running the old one" >&2
    exit 1
fi
exec "$bbmaster" reconfig .
