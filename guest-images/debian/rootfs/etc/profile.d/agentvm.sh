# shellcheck shell=sh
# Login shells of the debian image get what PAM sessions (su, login) read
# from /etc/environment: LANG=C.UTF-8 (built into glibc, no locale-gen), and
# NODE_EXTRA_CA_CERTS so node trusts the system store, certificates added
# with update-ca-certificates included (node otherwise uses only its own
# built-in list; curl, git, python and pip use the system store already).
if [ -r /etc/environment ]; then
  set -a
  . /etc/environment
  set +a
fi
