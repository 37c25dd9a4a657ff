#!/usr/bin/env bash
# `cmake --install --prefix /usr` into a DESTDIR: the tree an operator or
# the .deb gets, checked file by file, and the unit accepted by systemd.
# Usage: install_test.sh BUILD_DIR
set -euo pipefail
build=$1
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

DESTDIR=$dest cmake --install "$build" --prefix /usr --strip >/dev/null

for program in usr/bin/agentvmd usr/bin/agentvm usr/libexec/agentvm/agentvm-guest \
               usr/share/agentvm/scripts/build-image; do
  [[ -f $dest/$program && -x $dest/$program ]] || fail "$program is missing or not executable"
done
# The guest agent runs in any guest: static, no interpreter.
if readelf -l "$dest/usr/libexec/agentvm/agentvm-guest" | grep -q 'program interpreter'; then
  fail "agentvm-guest is dynamically linked"
fi
[[ $(readlink "$dest/usr/bin/agentvm-build-image") == ../share/agentvm/scripts/build-image ]] ||
  fail "agentvm-build-image does not link to the builder"
for file in usr/share/agentvm/guest-images/tiny/recipe.conf usr/share/agentvm/guest-images/debian/recipe.conf \
            usr/share/agentvm/scripts/lib/build-image-debian.sh etc/agentvm/agentvmd.yaml \
            usr/lib/systemd/system/agentvmd.service usr/share/man/man1/agentvm.1 \
            usr/share/man/man8/agentvmd.8 usr/share/doc/agentvm/README.md \
            usr/share/doc/agentvm/operations.md; do
  [[ -s $dest/$file ]] || fail "$file is missing or empty"
done
[[ ! -e $dest/usr/share/agentvm/guest-images/agent ]] || fail "the agent's sources were installed"

# The installed builder finds its recipes and the installed agent.
help=$("$dest/usr/bin/agentvm-build-image" --help)
[[ $help == *"$dest/usr/libexec/agentvm/agentvm-guest"* ]] || fail "the builder's default agent: $help"
unknown=$("$dest/usr/bin/agentvm-build-image" nosuch 2>&1 || true)
[[ $unknown == *"known: debian tiny"* ]] || fail "the installed builder does not see its recipes: $unknown"

# The unit starts the installed daemon with the installed config, and the
# default config changes nothing: agentvmd accepts it.
unit=$dest/usr/lib/systemd/system/agentvmd.service
grep -qx 'ExecStart=/usr/bin/agentvmd --config /etc/agentvm/agentvmd.yaml --keep-vms-on-exit' "$unit" ||
  fail "ExecStart: $(grep ExecStart "$unit")"
# systemd-analyze checks that ExecStart's binary exists: point it at ours.
mkdir "$dest/verify"
sed "s#/usr/bin/agentvmd#$dest/usr/bin/agentvmd#" "$unit" >"$dest/verify/agentvmd.service"
verify=$(systemd-analyze verify "$dest/verify/agentvmd.service" 2>&1) || fail "systemd-analyze: $verify"
[[ -z $verify ]] || fail "systemd-analyze: $verify"
"$dest/usr/bin/agentvmd" --config "$dest/etc/agentvm/agentvmd.yaml" --help >/dev/null ||
  fail "agentvmd refuses the default config"
# The installed agentvm's doctor runs the agentvmd beside it with the options
# given; an empty image dir is a failure that says how to build an image.
status=0
report=$("$dest/usr/bin/agentvm" doctor --image-dir "$dest/no-images" 2>&1) || status=$?
((status == 1)) || fail "agentvm doctor exited $status without images: $report"
grep -q "^FAIL  images .*$dest/no-images" <<<"$report" || fail "doctor's report: $report"
grep -q "fix: agentvm-build-image tiny --out $dest/no-images" <<<"$report" || fail "doctor's report: $report"
echo "install tree ok"
