#!/usr/bin/env bash
# Fetch Apache Kafka's broker jars from Maven Central (through Maven, with deploy/local/pom.xml)
# into $CRM_HOME/kafka/<version>/libs, where crm_devstack starts the broker from.
#
# Idempotent and fast when already done: a marker file records the version and the pom's
# checksum; nothing is fetched again unless either changes (or CRM_KAFKA_FETCH_FORCE=1).
#
# Env:
#   CRM_HOME               default <repo>/.crm
#   CRM_KAFKA_VERSION      default 3.9.2 (4.x works too: it switches the logging binding)
#   CRM_KAFKA_FETCH_FORCE  1 = fetch again even if the marker says it is done
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
CRM_HOME="${CRM_HOME:-$repo/.crm}"
version="${CRM_KAFKA_VERSION:-3.9.2}"
dest="$CRM_HOME/kafka/$version"
marker="$dest/.fetched"
stamp="$version $(sha256sum "$here/pom.xml" | cut -d' ' -f1)"

if [[ "${CRM_KAFKA_FETCH_FORCE:-0}" != 1 && -f "$marker" && "$(cat "$marker")" == "$stamp" ]]; then
    exit 0
fi

command -v mvn >/dev/null || { echo "fetch-kafka: Maven (mvn) is needed: apt-get install maven" >&2; exit 1; }
command -v java >/dev/null || { echo "fetch-kafka: Java 17+ is needed: apt-get install openjdk-17-jre-headless" >&2; exit 1; }

case "$version" in
    3.*) profile=reload4j ;;
    *) profile=log4j2 ;;
esac

echo "fetch-kafka: Apache Kafka $version jars -> $dest/libs"
mkdir -p "$dest"
tmp="$(mktemp -d "$dest/libs.tmp.XXXXXX")"
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
# (Debian's Maven 3.8 prints bare colour resets even with -B -q: strip them.)
mvn -q -B -f "$here/pom.xml" -P "$profile" -Dkafka.version="$version" \
    dependency:copy-dependencies -DoutputDirectory="$tmp" 2>&1 | sed 's/\x1b\[0m//g'
rm -rf "$dest/libs"
mv "$tmp" "$dest/libs"
trap - EXIT
echo "$stamp" >"$marker"
echo "fetch-kafka: $(find "$dest/libs" -name '*.jar' | wc -l) jars in $dest/libs"
