#!/usr/bin/env bash
# scripts/package builds a .deb that says what it is, depends on what the
# binaries need, carries the tree and the maintainer scripts, and keeps the
# operator's config as a conffile.
# Usage: package_test.sh REPO BUILD_DIR
set -euo pipefail
repo=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

deb=$(AGENTVM_BUILD_DIR=$2 "$repo/scripts/package" --out "$out" | tail -1)
[[ -f $deb ]] || fail "no .deb: $deb"

info=$(dpkg-deb --info "$deb")
for field in 'Package: agentvm' "Architecture: $(dpkg --print-architecture)" 'Version: [0-9]' \
             'Depends: .*libc6' 'Depends: .*libnftnl' 'Depends: .*qemu-system-x86' 'Depends: .*qemu-utils' \
             'Recommends: .*mmdebstrap'; do
  grep -q "^ $field" <<<"$info" || fail "control lacks '$field':
$info"
done
for script in postinst prerm postrm conffiles; do
  grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines .* $script" <<<"$info" || fail "no $script"
done
[[ $(dpkg-deb --field "$deb" Package) == agentvm ]] || fail "dpkg-deb --field Package"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/agentvm/agentvmd.yaml ||
  fail "the config is not a conffile"

contents=$(dpkg-deb --contents "$deb")
for path in ./usr/bin/agentvmd ./usr/bin/agentvm ./usr/bin/agentvm-build-image ./usr/libexec/agentvm/agentvm-guest \
            ./usr/lib/systemd/system/agentvmd.service ./etc/agentvm/agentvmd.yaml ./usr/share/man/man1/agentvm.1; do
  grep -q " $path\( ->.*\)\?$" <<<"$contents" || fail "the package lacks $path"
done
# Files belong to root, whoever built the package.
if grep -v ' root/root ' <<<"$contents" | grep -q .; then fail "files not owned by root"; fi
echo "package ok: $deb"
