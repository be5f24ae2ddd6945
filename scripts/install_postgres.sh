#!/usr/bin/env bash
# The store tests start throwaway PostgreSQL servers of their own from the
# Debian server binaries. Installs them when missing (as root), without a
# cluster of the package's own (nothing listens on 5432 afterwards).
set -euo pipefail
if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL server binaries are missing: sudo apt-get install -y postgresql" >&2
    exit 1
fi
mkdir -p /etc/postgresql-common/createcluster.d
echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/stigmer.conf
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
