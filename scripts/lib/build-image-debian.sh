# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034  # shares variables with scripts/build-image
# The Debian userland of scripts/build-image (sourced by it when a recipe
# sets IMAGE_USERLAND=debian). The root filesystem is three layers, each
# cached under $work/debian/ by what it is made of, so a new agent binary
# rebuilds only the thin top one:
#
#   base   mmdebstrap from the Debian archive this host's apt uses, with the
#          host's own package lists (no apt-get update): DEBIAN_PACKAGES plus
#          --apt, the recipe's base/ hooks, npm itself from the npm registry.
#          Keyed by the exact .deb files apt resolves (name, version, SHA256).
#   npm    `npm install --global` of the --npm packages, run in a chroot of
#          base through an overlayfs whose upper directory is the layer.
#          Keyed by the base and the --npm list.
#   top    guest-images/common/rootfs, the recipe's rootfs/, the agent; made
#          for every build in the stage directory.
#
# build_rootfs (scripts/build-image) then makes the ext4 from their overlayfs
# union; no layer is ever copied. Every mount lives in a private mount
# namespace (unshare), so a killed build leaves none behind.
# See docs/guest-image.md, "The debian recipe".

# Bump to rebuild the cached layers when the code making them changes in a way
# their keys do not see.
readonly kDebianBaseRevision=1
readonly kDebianNpmRevision=1

debian_dir=$work/debian
npm_registry=${npm_config_registry:-https://registry.npmjs.org}
npm_registry=${npm_registry%/}

# --- inputs -----------------------------------------------------------------

debian_check_args() {
  local p
  for p in "${apt_packages[@]}"; do
    [[ $p =~ ^[a-z0-9][a-z0-9+.-]+$ ]] || die "--apt $p: not a Debian package name"
  done
  for p in "${npm_packages[@]}"; do
    [[ $p =~ ^[^-[:space:]][^[:space:]]*$ ]] || die "--npm '$p': not an npm package spec"
  done
  [[ -n $DEBIAN_SUITE ]] || die "recipe sets no DEBIAN_SUITE"
  [[ -z $DEBIAN_NPM_VERSION || $DEBIAN_NPM_INTEGRITY == sha512-* ]] ||
    die "recipe sets DEBIAN_NPM_VERSION without a sha512 DEBIAN_NPM_INTEGRITY"
  case "$DEBIAN_VARIANT" in
    minbase) debian_patterns=('?essential' '?priority(required)' apt) ;;
    apt) debian_patterns=('?essential' apt) ;;
    essential) debian_patterns=('?essential') ;;
    *) die "DEBIAN_VARIANT=$DEBIAN_VARIANT is not supported (minbase, apt, essential)" ;;
  esac
  # Sorted and unique: the order of the list must not change the image.
  # shellcheck disable=SC2153  # DEBIAN_PACKAGES is the recipe's
  mapfile -t debian_packages < <(printf '%s\n' "${DEBIAN_PACKAGES[@]}" "${apt_packages[@]}" | LC_ALL=C sort -u | sed '/^$/d')
}

# A key for everything apt's answers depend on: the host's sources and the
# stat of its package lists. `apt-get update` changes it.
debian_apt_state_key() {
  {
    echo "$DEBIAN_SUITE $(dpkg --print-architecture)"
    stat -c '%n %s %Y' /etc/apt/sources.list /etc/apt/sources.list.d/* /etc/apt/preferences* \
      /var/lib/apt/lists/*_Packages* /var/lib/apt/lists/*Release* 2>/dev/null || true
  } | sha256sum | cut -d' ' -f1
}

# The host's Debian package lists for the suite, its -updates and -security,
# as sources.list lines for the image and the list files to copy into
# mmdebstrap's chroot (so it needs no `apt-get update` and resolves exactly
# what was resolved here). Cached by the apt state key: apt-get indextargets
# alone takes most of a second.
debian_find_sources() {
  local cache=$debian_dir/apt-resolved/sources.$debian_apt_key
  if [[ ! -f $cache ]]; then
    local arch site release component larch origin file base keyring seen=" " found=()
    arch=$(dpkg --print-architecture)
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [[ -f $keyring ]] || die "no $keyring (install debian-archive-keyring)"
    # shellcheck disable=SC2016  # apt's own $(FIELD) syntax below
    while IFS='|' read -r site release component larch origin file; do
      [[ $origin == Debian && $component == main && $larch == "$arch" && -f $file ]] || continue
      case "$release" in "$DEBIAN_SUITE" | "$DEBIAN_SUITE-updates" | "$DEBIAN_SUITE-security") ;; *) continue ;; esac
      [[ $seen != *" $release "* ]] || continue
      seen+="$release "
      base=${file%%_"$component"_binary-*}
      [[ -f ${base}_InRelease ]] || die "no ${base}_InRelease beside $file"
      found+=("source deb [arch=$arch signed-by=$keyring] $site $release $component"
        "list $file" "list ${base}_InRelease")
    done < <(apt-get indextargets --format '$(SITE)|$(RELEASE)|$(COMPONENT)|$(ARCHITECTURE)|$(ORIGIN)|$(FILENAME)' \
      'Created-By: Packages' 2>/dev/null)
    [[ $seen == *" $DEBIAN_SUITE "* ]] ||
      die "this host's apt has no package list of Debian $DEBIAN_SUITE main $arch; add it to the host's sources and run 'apt-get update'"
    mkdir -p "${cache%/*}"
    printf '%s\n' "${found[@]}" >"$cache.tmp.$$" && mv "$cache.tmp.$$" "$cache"
  fi
  mapfile -t debian_sources < <(sed -n 's/^source //p' "$cache")
  mapfile -t debian_list_files < <(sed -n 's/^list //p' "$cache")
}

# apt with the host's lists but nothing else of the host's package state: an
# empty dpkg status (so it resolves the whole tree), the image's sources, no
# preferences, no Recommends, and our own caches. The host's apt.conf.d
# (proxies) still applies; this file is read after it and wins.
debian_write_apt_conf() {
  local d=$debian_dir/apt arch
  arch=$(dpkg --print-architecture)
  mkdir -p "$d/state" "$d/empty" "$d/cache" "$d/none" "$debian_dir/debs/partial"
  : >"$d/state/status"
  printf '%s\n' "${debian_sources[@]}" >"$d/sources.list.tmp.$$" && mv "$d/sources.list.tmp.$$" "$d/sources.list"
  cat >"$d/apt.conf.tmp.$$" <<EOF
Dir::State "$d/state/";
Dir::State::status "$d/state/status";
Dir::State::Lists "/var/lib/apt/lists/";
Dir::Etc::SourceList "$d/sources.list";
Dir::Etc::SourceParts "$d/empty/";
Dir::Etc::Preferences "$d/empty/preferences";
Dir::Etc::PreferencesParts "$d/empty/";
Dir::Cache "$d/cache/";
Dir::Cache::Archives "$debian_dir/debs/";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
APT::Install-Recommends "false";
Acquire::ForceHash "SHA256";
Debug::NoLocking "true";
EOF
  # As root, apt drops to _apt for downloads, which cannot write here.
  ((EUID != 0)) || echo 'APT::Sandbox::User "root";' >>"$d/apt.conf.tmp.$$"
  mv "$d/apt.conf.tmp.$$" "$d/apt.conf"
  debian_apt_conf=$d/apt.conf
}

# Every .deb the image is made of, as apt resolves it from the host's lists:
# "'URI' FILE SIZE SHA256:HASH" lines, sorted. Cached by the apt state key and
# the package list, so the up-to-date check asks apt nothing.
debian_resolve() {
  local key cache
  key=$({
    echo "$debian_apt_key"
    printf '%s\n' "${debian_patterns[@]}" -- "${debian_packages[@]}"
  } | sha256sum | cut -d' ' -f1)
  cache=$debian_dir/apt-resolved/$key
  if [[ ! -s $cache ]]; then
    debian_write_apt_conf
    local out
    # An empty Archives dir: apt lists every package, not just the missing.
    out=$(APT_CONFIG=$debian_apt_conf apt-get install -qq --print-uris -o "Dir::Cache::Archives=$debian_dir/apt/none/" \
      "${debian_patterns[@]}" "${debian_packages[@]}" 2>&1) ||
      die "apt cannot resolve the package list (stale lists? run 'apt-get update'): $out"
    grep "^'" <<<"$out" | LC_ALL=C sort -k2 >"$cache.tmp.$$"
    [[ -s $cache.tmp.$$ ]] || die "apt resolved no packages: $out"
    mv "$cache.tmp.$$" "$cache"
  fi
  debian_resolution=$cache
}

debian_resolve_inputs() {
  debian_check_args
  mkdir -p "$debian_dir/apt-resolved" 2>/dev/null || die "cannot create $debian_dir"
  debian_apt_key=$(debian_apt_state_key)
  # One resolver at a time; apt's own caches here are not safe to share.
  exec 7>"$debian_dir/.resolve.lock"
  flock 7
  debian_find_sources
  debian_resolve
  exec 7>&-

  debian_base_key=$({
    echo "revision $kDebianBaseRevision"
    echo "suite $DEBIAN_SUITE variant $DEBIAN_VARIANT"
    echo "mmdebstrap $(pkg_version mmdebstrap)"
    echo "packages ${debian_packages[*]}"
    echo "user $IMAGE_DEFAULT_USER $IMAGE_DEFAULT_UID"
    echo "npm-tool $DEBIAN_NPM_VERSION $DEBIAN_NPM_INTEGRITY $npm_registry"
    echo "source-date-epoch $SOURCE_DATE_EPOCH"
    printf 'source %s\n' "${debian_sources[@]}"
    tree_manifest base "$recipe_dir/base"
    sed 's/^[^ ]* //' "$debian_resolution"
  } | sha256sum | cut -d' ' -f1)
  debian_npm_key=
  if ((${#npm_packages[@]})); then
    debian_npm_key=$({
      echo "revision $kDebianNpmRevision base $debian_base_key registry $npm_registry"
      printf 'npm %s\n' "${npm_packages[@]}"
    } | sha256sum | cut -d' ' -f1)
  fi
}

debian_inputs_manifest() {
  echo "debian-base $debian_base_key"
  echo "debian-npm ${npm_packages[*]}"
}

# --- base layer -------------------------------------------------------------

# Downloads the .debs the cache lacks, checked against apt's SHA256.
debian_download() {
  local total=0 missing=0 bytes=0 f size
  while read -r _ f size _; do
    total=$((total + 1))
    f=${f//:/%3a}
    [[ -f $debian_dir/debs/$f ]] && continue
    missing=$((missing + 1))
    bytes=$((bytes + size))
  done <"$debian_resolution"
  if ((missing == 0)); then
    say "all $total Debian packages cached"
    return
  fi
  say "downloading $missing of $total Debian packages ($((bytes / 1048576)) MiB) from $(grep -o '[a-z]*://[^ ]*' "$debian_dir/apt/sources.list" | sort -u | paste -sd' ')"
  debian_write_apt_conf
  local started=$SECONDS
  # apt prints a Get: line per package; show one in ten.
  APT_CONFIG=$debian_apt_conf apt-get install -q -d -y "${debian_patterns[@]}" "${debian_packages[@]}" 2>&1 |
    awk -v n="$name" -v m="$missing" '
      /^Get:/ { got++; if (got % 10 == 0 || got == m) { printf "%s:   %d of %d\n", n, got, m; fflush() } }
      /^(Fetched|E:|W:|Err)/ { printf "%s:   %s\n", n, $0; fflush() }' ||
    die "downloading Debian packages failed (network? stale lists: apt-get update)"
  say "downloaded in $((SECONDS - started))s"
}

debian_npm_tarball() { echo "$debian_dir/npm-dist/npm-$DEBIAN_NPM_VERSION.tgz"; }

npm_integrity() {
  python3 -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$1"
}

# npm itself, pinned by version and integrity in the recipe: Debian's npm
# package pulls in ~330 node-* packages (+170 MB, +27000 files, minutes of
# dpkg), the registry's npm bundles its dependencies in 10 MB.
debian_fetch_npm_tool() {
  [[ -n $DEBIAN_NPM_VERSION ]] || return 0
  local f
  f=$(debian_npm_tarball)
  [[ -f $f ]] && [[ $(npm_integrity "$f") == "$DEBIAN_NPM_INTEGRITY" ]] && return
  mkdir -p "${f%/*}"
  say "downloading npm $DEBIAN_NPM_VERSION from $npm_registry"
  curl -fsSL --retry 3 --connect-timeout 20 -o "$f.tmp.$$" "$npm_registry/npm/-/npm-$DEBIAN_NPM_VERSION.tgz" ||
    { rm -f "$f.tmp.$$"; die "cannot download npm $DEBIAN_NPM_VERSION from $npm_registry"; }
  [[ $(npm_integrity "$f.tmp.$$") == "$DEBIAN_NPM_INTEGRITY" ]] ||
    { rm -f "$f.tmp.$$"; die "npm-$DEBIAN_NPM_VERSION.tgz does not match DEBIAN_NPM_INTEGRITY"; }
  mv "$f.tmp.$$" "$f"
}

# What `npm install --global npm` would leave, without an npm to run it.
# Its built-in npmrc puts global packages under /usr/local (node lives in
# /usr, where npm would otherwise put them) and quiets the update notices.
debian_install_npm_tool() {
  local root=$1
  [[ -n $DEBIAN_NPM_VERSION ]] || return 0
  local dest=$root/usr/local/lib/node_modules/npm
  mkdir -p "$dest" "$root/usr/local/bin"
  (umask 022 && tar -xzf "$(debian_npm_tarball)" -C "$dest" --strip-components=1 --no-same-owner --no-same-permissions) ||
    die "cannot unpack npm $DEBIAN_NPM_VERSION"
  ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  printf '%s\n' prefix=/usr/local update-notifier=false fund=false >"$dest/npmrc"
  local v
  v=$(chroot "$root" /usr/local/bin/npm --version 2>&1) || die "npm does not run in the image: $v"
  [[ $v == "$DEBIAN_NPM_VERSION" ]] || die "npm in the image says version $v, want $DEBIAN_NPM_VERSION"
}

debian_base_layer() {
  local dir=$debian_dir/base-$debian_base_key
  debian_base=$dir/root
  if [[ -f $dir/.complete ]]; then
    say "Debian base layer cached (${debian_base_key:0:12}, $(wc -l <"$dir/packages") packages)"
    touch "$dir/.complete"
    return
  fi
  debian_download
  debian_fetch_npm_tool

  local tmp=$dir.tmp.$$ started=$SECONDS
  cleanup_paths+=("$tmp")
  rm -rf "$dir"
  mkdir -p "$tmp"
  say "installing $(wc -l <"$debian_resolution") Debian packages ($DEBIAN_SUITE, $DEBIAN_VARIANT) with mmdebstrap"
  local hook
  local args=(--variant="$DEBIAN_VARIANT" --mode=root --format=directory
    --include="$(IFS=,; echo "${debian_packages[*]}")"
    # The host's lists, so apt installs what debian_resolve resolved, and
    # the cached .debs, so nothing is downloaded again.
    --skip=update
    --setup-hook="mkdir -p \"\$1/var/lib/apt/lists\" \"\$1/var/cache/apt/archives\""
    --setup-hook="copy-in ${debian_list_files[*]} /var/lib/apt/lists/"
    --setup-hook="sync-in $debian_dir/debs /var/cache/apt/archives/")
  [[ ! -f $recipe_dir/base/dpkg.cfg ]] || args+=(--dpkgopt="$recipe_dir/base/dpkg.cfg")
  for hook in "$recipe_dir"/base/customize*; do
    [[ -x $hook ]] && args+=(--customize-hook="$hook")
  done
  # mmdebstrap's own lines ("I: installing remaining packages inside the
  # chroot...") are the progress; dpkg's are not shown. Its mounts (/proc,
  # /sys, device nodes in the chroot) live in a private mount namespace, so
  # a killed build cannot leave them behind for `rm -rf` to walk into.
  IMAGE_DEFAULT_USER=$IMAGE_DEFAULT_USER IMAGE_DEFAULT_UID=$IMAGE_DEFAULT_UID SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH \
    unshare --mount --propagation private -- \
    mmdebstrap "${args[@]}" "$DEBIAN_SUITE" "$tmp/root" "$debian_dir/apt/sources.list" 2>&1 |
    sed -u "s/^/$name:   /" || die "mmdebstrap failed"
  debian_install_npm_tool "$tmp/root"
  set_times "$tmp/root"
  dpkg-query --admindir="$tmp/root/var/lib/dpkg" -W -f '${Package}\t${Version}\n' | LC_ALL=C sort >"$tmp/packages"
  touch "$tmp/.complete"
  mv -T "$tmp" "$dir"
  say "Debian base layer built in $((SECONDS - started))s: $(du -sm "$debian_base" | cut -f1) MiB, $(wc -l <"$dir/packages") packages"
}

# --- npm layer --------------------------------------------------------------

# Inside a private mount namespace: base as the lower layer, the npm layer's
# upper directory catching every write, /proc, /dev and a throwaway /tmp.
# The build reaches the registry the way the host does: the host's resolver,
# its CA bundle (a TLS-inspecting egress proxy's CA, say) and proxy
# variables, none of which stays in the image. Arguments: base upper work
# merged registry host-ca-bundle packages...
# shellcheck disable=SC2016
readonly kNpmInstallScript='
base=$1 upper=$2 work=$3 m=$4 registry=$5 ca=$6
shift 6
mount -t overlay -o "lowerdir=$base,upperdir=$upper,workdir=$work" overlay "$m"
mount -t proc proc "$m/proc"
mount --rbind /dev "$m/dev"
mount -t tmpfs -o mode=1777 tmpfs "$m/tmp"
cp -L /etc/resolv.conf "$m/etc/resolv.conf"
extra_ca=
if [ -n "$ca" ]; then
  cp -L "$ca" "$m/tmp/host-ca.crt"
  extra_ca=/tmp/host-ca.crt
fi
set -- npm install --global --no-audit --no-fund --loglevel=warn "$@"
status=0
chroot "$m" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  npm_config_cache=/tmp/npm-cache npm_config_registry="$registry" npm_config_update_notifier=false \
  ${extra_ca:+"NODE_EXTRA_CA_CERTS=$extra_ca"} ${https_proxy:+"https_proxy=$https_proxy"} \
  ${http_proxy:+"http_proxy=$http_proxy"} ${no_proxy:+"no_proxy=$no_proxy"} "$@" || status=$?
if [ "$status" = 0 ]; then
  chroot "$m" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin npm ls --global --depth=0 --json \
    >"$work/../npm-ls.json" || status=$?
fi
rm -f "$m/etc/resolv.conf"
exit "$status"
'

debian_npm_layer() {
  debian_npm=
  [[ -n $debian_npm_key ]] || return 0
  local dir=$debian_dir/npm-$debian_npm_key
  debian_npm=$dir/upper
  # Unlike the base (exact .deb versions), the npm layer's key holds specs
  # such as "pkg" or "pkg@latest": --force asks the registry again.
  if ((!force)) && [[ -f $dir/.complete ]]; then
    say "npm layer cached (${npm_packages[*]})"
    touch "$dir/.complete"
    return
  fi
  [[ -n $DEBIAN_NPM_VERSION || -x $debian_base/usr/bin/npm ]] || die "--npm needs npm in the image"
  local tmp=$dir.tmp.$$ started=$SECONDS
  cleanup_paths+=("$tmp")
  rm -rf "$dir"
  mkdir -p "$tmp/upper" "$tmp/work" "$tmp/merged"
  say "installing npm packages from $npm_registry: ${npm_packages[*]}"
  local ca=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
  [[ -r $ca ]] || ca=
  unshare --mount --propagation private -- sh -ec "$kNpmInstallScript" sh \
    "$debian_base" "$tmp/upper" "$tmp/work" "$tmp/merged" "$npm_registry" "$ca" "${npm_packages[@]}" 2>&1 |
    sed -u "/^$/d; s/^/$name:   /" || die "npm install failed"
  rm -rf "$tmp/work" "$tmp/merged" "$tmp/upper/root/.npm"
  python3 -c 'import json, sys
deps = json.load(open(sys.argv[1])).get("dependencies", {})
for name in sorted(deps):
    print(name + "\t" + deps[name].get("version", "?"))' "$tmp/npm-ls.json" >"$tmp/packages" ||
    die "cannot read npm ls output"
  set_times "$tmp/upper"
  touch "$tmp/.complete"
  mv -T "$tmp" "$dir"
  say "npm layer built in $((SECONDS - started))s: $(du -sm "$debian_npm" | cut -f1) MiB ($(tr '\t' '@' <"$dir/packages" | paste -sd' '))"
}

# --- top layer and the whole --------------------------------------------------

debian_top_layer() {
  local top=$stage/top d lower
  mkdir -p "$top"
  chmod 755 "$top"
  copy_tree "$common_dir/rootfs" "$top"
  copy_tree "$recipe_dir/rootfs" "$top"
  # /bin, /sbin and /lib are symlinks into /usr on Debian: a directory of
  # that name in an upper layer would hide them.
  for d in bin sbin lib lib64; do
    [[ ! -e $top/$d ]] || die "$recipe_dir/rootfs has /$d, which hides Debian's /$d -> usr/$d; use /usr/$d"
  done
  mkdir -p "$top/usr/sbin"
  install_agent "$top"
  # busybox init is PID 1: the inittab, respawning, reaping orphans.
  ln -s ../bin/busybox "$top/usr/sbin/init"
  [[ ! -d $top/etc/sudoers.d ]] || chmod 0440 "$top"/etc/sudoers.d/*
  write_release_file "$top"
  # overlayfs shows a directory with the attributes of its topmost copy: give
  # ours those of the Debian tree below (e.g. /root is 0700 there).
  while IFS= read -r -d '' d; do
    for lower in ${debian_npm:+"$debian_npm"} "$debian_base"; do
      if [[ -d $lower/$d && ! -L $lower/$d ]]; then
        chmod --reference="$lower/$d" "$top/$d"
        chown --reference="$lower/$d" "$top/$d"
        break
      fi
    done
  done < <(cd "$top" && find . -type d -print0)
  set_times "$top"
}

build_debian_layers() {
  ((EUID == 0)) || die "the debian image is built as root (mmdebstrap --mode=root, chroot, overlayfs)"
  need_tools mmdebstrap unshare chroot curl python3
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || die "this kernel has no overlayfs"
  debian_write_apt_conf
  debian_base_layer
  debian_npm_layer
  debian_top_layer
  rootfs_layers=("$stage/top" ${debian_npm:+"$debian_npm"} "$debian_base")
}

# image.json lines: every Debian package (dpkg-query) and global npm package.
debian_image_json() {
  local n v first
  printf '\n  "debian_suite": %s,' "$(json_str "$DEBIAN_SUITE")"
  printf '\n  "packages": {'
  first=1
  while IFS=$'\t' read -r n v; do
    ((first)) || printf ','
    first=0
    printf '\n    %s: %s' "$(json_str "$n")" "$(json_str "$v")"
  done <"$debian_base/../packages"
  printf '\n  },\n  "npm_packages": {'
  first=1
  # npm ls of the npm layer lists npm too (perhaps a newer one: --npm npm@11).
  if [[ -n $debian_npm ]]; then
    while IFS=$'\t' read -r n v; do
      ((first)) || printf ','
      first=0
      printf '\n    %s: %s' "$(json_str "$n")" "$(json_str "$v")"
    done <"$debian_npm/../packages"
  elif [[ -n $DEBIAN_NPM_VERSION ]]; then
    printf '\n    "npm": %s' "$(json_str "$DEBIAN_NPM_VERSION")"
  fi
  printf '\n  },'
}

# Keeps the caches bounded: .debs of this build only, the two most recently
# used base layers, the four most recently used npm layers, apt answers of
# the last 30 days.
debian_prune_caches() {
  local keep f
  keep=$(awk '{ f = $2; gsub(":", "%3a", f); print f }' "$debian_resolution")
  for f in "$debian_dir"/debs/*.deb; do
    [[ -f $f ]] || continue
    grep -qxF "${f##*/}" <<<"$keep" || rm -f "$f"
  done
  debian_prune_layers base 2
  debian_prune_layers npm 4
  find "$debian_dir/apt-resolved" -type f -mtime +30 -delete 2>/dev/null || true
}

debian_prune_layers() {
  local kind=$1 n=$2 d
  # Newest first by the use mark; the names are ours (hex keys).
  # shellcheck disable=SC2012
  ls -1dt "$debian_dir/$kind"-*/.complete 2>/dev/null | tail -n +"$((n + 1))" |
    while IFS= read -r d; do rm -rf "${d%/.complete}"; done
}
