#!/usr/bin/env bash
# package.sh - the installable program (issue 29): the Debian package cpack builds from the build tree
# installs into a staging root and runs from there; `cmake --install` gives the same layout.
#
# usage: tests/package.sh BUILD_DIR [CPACK]
#
# 1. cpack -G DEB with BUILD_DIR/CPackConfig.cmake, into a temporary directory (never the build or
#    source tree). The package's settings are the build's; only the install step differs: cpack's
#    own runs the build tool's `preinstall` target first, which would rebuild the tree under the
#    tests running beside this one, so the wrapper config runs the build's install rules
#    (cmake_install.cmake) through CPACK_INSTALL_SCRIPTS instead: the same rules, no build.
# 2. Its control fields: Depends computed by dpkg-shlibdeps (not empty, libpcap in it).
# 3. dpkg -i into a staging root (--root=STAGE, its own empty database): --force-depends because
#    that database knows none of the libraries the package depends on (they are on this system,
#    where the binary finds them); --force-not-root so that it runs without root too;
#    --path-include='*' so that no path-exclude of the system's dpkg configuration (minimal images
#    drop /usr/share/doc and man) leaves files out; --log into the temporary directory (dpkg 1.21
#    writes /var/log/dpkg.log whatever --root says). The real system's database is not touched.
# 4. The files in place; STAGE/usr/bin/mxray --version; the installed demo capture's NDJSON equals
#    tests/golden/demo.pcapng.ndjson (as tests/oracle/golden.py runs it, with the summary's file
#    path the only difference allowed); the man page renders without warnings; the completion loads.
# 5. cmake --install BUILD_DIR --prefix TMP gives the same files (the binary unstripped).
#
# Exit status: 0 passed, 1 failed, 77 skipped (no cpack or dpkg-deb).
set -uo pipefail

build=${1:?usage: tests/package.sh BUILD_DIR [CPACK]}
cpack=${2:-cpack}
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)

for tool in "$cpack" dpkg-deb dpkg; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool not found (cpack comes with cmake, dpkg-deb and dpkg with dpkg); the package is not checked"
    exit 77
  fi
done
[ -f "$build/CPackConfig.cmake" ] || { echo "FAIL: $build/CPackConfig.cmake missing (CMakeLists.txt includes CPack)"; exit 1; }

start=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
passes=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
pass() { passes=$((passes + 1)); }
check() { # check WHAT COMMAND...: passes when the command does
  local what=$1
  shift
  if "$@"; then pass; else fail "$what"; fi
}

# 1. The package.
cat >"$tmp/config.cmake" <<EOF
include("$build/CPackConfig.cmake")
# The build's install rules, without cpack's preinstall build (see tests/package.sh).
set(CPACK_INSTALL_CMAKE_PROJECTS "")
set(CPACK_INSTALL_SCRIPTS "$build/cmake_install.cmake")
set(CPACK_INSTALL_PREFIX "\${CPACK_PACKAGING_INSTALL_PREFIX}")
if(CPACK_STRIP_FILES)
  set(CMAKE_INSTALL_DO_STRIP 1)
endif()
EOF
if ! (cd "$tmp" && "$cpack" -G DEB --config "$tmp/config.cmake" -B "$tmp/out") >"$tmp/cpack.log" 2>&1; then
  cat "$tmp/cpack.log"
  echo "FAIL: cpack -G DEB failed"
  exit 1
fi
debs=("$tmp"/out/mxray_*.deb)
if [ ${#debs[@]} -ne 1 ] || [ ! -f "${debs[0]}" ]; then
  ls -l "$tmp/out"
  echo "FAIL: cpack made no mxray_*.deb, or more than one"
  exit 1
fi
deb=${debs[0]}
echo "package: $(basename "$deb"), $(stat -c %s "$deb") bytes"
if grep -qi "warning" "$tmp/cpack.log"; then
  grep -i -A3 "warning" "$tmp/cpack.log"
  fail "cpack warned"
fi

# 2. Control fields.
field() { dpkg-deb -f "$deb" "$1"; }
depends=$(field Depends)
echo "Depends: $depends"
check "Package is $(field Package), not mxray" test "$(field Package)" = mxray
check "Section is $(field Section), not net" test "$(field Section)" = net
check "no Maintainer" test -n "$(field Maintainer)"
check "the Description has no extended lines" test "$(field Description | wc -l)" -ge 2
check "Depends is empty: dpkg-shlibdeps did not run (it comes with dpkg-dev)" test -n "$depends"
for lib in libpcap0.8 libjson-c5 libssl3 libmagic1 libzstd1 liblzma5 zlib1g libc6; do
  case ", $depends" in
  *", $lib "* | *", $lib,"* | *", $lib") pass ;;
  *) fail "Depends lacks $lib" ;;
  esac
done
case "$depends" in *libndpi*) pass ;; *) fail "Depends lacks libndpi" ;; esac

# What the package holds: exactly what the install rules name (no test binary, no mx_microbench).
expected() { # the files under the prefix that the install rules name
  echo "./bin/mxray"
  echo "./share/man/man1/mxray.1"
  echo "./share/bash-completion/completions/mxray"
  echo "./share/doc/mxray/README.md"
  echo "./share/doc/mxray/examples/demo.pcapng"
  (cd "$src/docs" && find . -type f \( -name '*.md' -o -name '*.json' -o -name '*.conf' -o -name '*.png' \)) |
    sed 's|^\./|./share/doc/mxray/|'
}
expected | LC_ALL=C sort >"$tmp/expected"
dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -n 's|^\./usr/\(.*[^/]\)$|./\1|p' | LC_ALL=C sort >"$tmp/in-deb"
if ! cmp -s "$tmp/expected" "$tmp/in-deb"; then
  diff "$tmp/expected" "$tmp/in-deb" | sed 's/^/  /'
  fail "the package's files are not those the install rules name (< expected, > in the package)"
else
  pass
fi
if dpkg-deb --fsys-tarfile "$deb" | tar -tv | grep -v '^-rw-r--r-- root/root\|^drwxr-xr-x root/root\|^-rwxr-xr-x root/root [0-9 :-]*\./usr/bin/mxray$' >"$tmp/modes"; then
  sed 's/^/  /' "$tmp/modes"
  fail "files of the package with other owners or modes than root 0644/0755"
else
  pass
fi

# 3. Installed into a staging root, with its own empty dpkg database.
stage=$tmp/stage
mkdir -p "$stage/var/lib/dpkg/info" "$stage/var/lib/dpkg/updates" "$stage/var/lib/dpkg/triggers"
: >"$stage/var/lib/dpkg/status"
: >"$stage/var/lib/dpkg/available"
if ! dpkg --root="$stage" --log="$tmp/dpkg-history.log" --force-not-root --force-depends --path-include='*' \
  -i "$deb" >"$tmp/dpkg.log" 2>&1; then
  cat "$tmp/dpkg.log"
  echo "FAIL: dpkg -i into the staging root failed"
  exit 1
fi
check "dpkg does not list mxray as installed in the staging root" \
  test "$(dpkg-query --admindir="$stage/var/lib/dpkg" -W -f='${Status}' mxray 2>/dev/null)" = "install ok installed"

# 4. The files in place, and the program run from them.
layout() { # layout PREFIX WHERE: the installed files under PREFIX, and their bytes
  local p=$1 where=$2
  (cd "$p" && find . -type f | LC_ALL=C sort) >"$tmp/files"
  if cmp -s "$tmp/expected" "$tmp/files"; then pass; else
    diff "$tmp/expected" "$tmp/files" | sed 's/^/  /'
    fail "$where: the installed files are not those expected (< expected, > installed)"
  fi
  check "$where: bin/mxray is not executable" test -x "$p/bin/mxray"
  check "$where: the man page differs from docs/mxray.1" cmp -s "$p/share/man/man1/mxray.1" "$src/docs/mxray.1"
  check "$where: the completion differs from scripts/completion/mxray.bash" \
    cmp -s "$p/share/bash-completion/completions/mxray" "$src/scripts/completion/mxray.bash"
  check "$where: the demo capture differs from pcaps/demo.pcapng" \
    cmp -s "$p/share/doc/mxray/examples/demo.pcapng" "$src/pcaps/demo.pcapng"
  check "$where: docs/schema.json differs" cmp -s "$p/share/doc/mxray/schema.json" "$src/docs/schema.json"
  local v rc
  v=$("$p/bin/mxray" --version 2>&1)
  rc=$?
  check "$where: mxray --version exits $rc ($v)" test $rc -eq 0
  case "$v" in
  "mxray "[0-9]*) pass ;;
  *) fail "$where: mxray --version prints '$v'" ;;
  esac
}
layout "$stage/usr" "staging root"
echo "installed: $("$stage/usr/bin/mxray" --version | head -1)"

# The demo capture from the installed files, as tests/oracle/golden.py reads pcaps/demo.pcapng
# (--tls-ca none: no output depends on this machine's trust store). The golden names the file
# pcaps/demo.pcapng in its summary; here it is the installed path, and that is all that may differ.
demo=$stage/usr/share/doc/mxray/examples/demo.pcapng
"$stage/usr/bin/mxray" -q --tls-ca none --json - "$demo" >"$tmp/demo.ndjson"
rc=$?
check "mxray --json - on the installed demo capture exits $rc" test $rc -eq 0
sed "s|\"path\":\"$demo\"|\"path\":\"pcaps/demo.pcapng\"|" "$tmp/demo.ndjson" >"$tmp/demo.norm.ndjson"
if cmp -s "$src/tests/golden/demo.pcapng.ndjson" "$tmp/demo.norm.ndjson"; then pass; else
  diff "$src/tests/golden/demo.pcapng.ndjson" "$tmp/demo.norm.ndjson" | head -20 | cut -c1-300
  fail "the installed demo capture's NDJSON differs from tests/golden/demo.pcapng.ndjson"
  # Whose fault: the installation's, or a golden that the build's own mxray disagrees with too.
  if (cd "$src" && "$build/mxray" -q --tls-ca none --json - pcaps/demo.pcapng) 2>/dev/null |
    cmp -s - "$src/tests/golden/demo.pcapng.ndjson"; then
    echo "  (the build tree's mxray gives the golden: the installed program differs from it)"
  else
    echo "  (the build tree's mxray differs from the golden too: see tests/oracle/golden.py)"
  fi
fi

# The man page renders without a warning.
man1=$stage/usr/share/man/man1/mxray.1
if command -v groff >/dev/null 2>&1; then
  warn=$(groff -man -Tutf8 -ww -z "$man1" 2>&1)
  check "groff warns on the installed man page: $warn" test -z "$warn"
  if command -v man >/dev/null 2>&1; then
    warn=$(MANWIDTH=80 man --warnings -l "$man1" 2>&1 >/dev/null)
    check "man --warnings warns on the installed man page: $warn" test -z "$warn"
  fi
  check "the installed man page renders no EXIT STATUS" sh -c "groff -man -Tutf8 -P-cbou '$man1' 2>/dev/null | grep -q '^EXIT STATUS'"
else
  fail "groff not found (scripts/setup.sh installs groff-base): the man page cannot be checked"
fi

# The installed completion loads and registers itself.
check "the installed completion does not register _mxray for mxray" \
  bash --norc --noprofile -c ". '$stage/usr/share/bash-completion/completions/mxray' && complete -p mxray | grep -q _mxray"

# 5. cmake --install into a prefix: the same files.
cmake=$(dirname "$(command -v "$cpack")")/cmake
[ -x "$cmake" ] || cmake=cmake
if "$cmake" --install "$build" --prefix "$tmp/inst" >"$tmp/install.log" 2>&1; then
  pass
  layout "$tmp/inst" "cmake --install"
  for f in $(cd "$tmp/inst" && find . -type f ! -path ./bin/mxray); do
    cmp -s "$tmp/inst/$f" "$stage/usr/$f" || fail "$f differs between cmake --install and the package"
  done
else
  cat "$tmp/install.log"
  fail "cmake --install $build --prefix TMP failed"
fi

echo "package: $passes passed, $fails failed ($(($(date +%s) - start)) s)"
[ $fails -eq 0 ]
