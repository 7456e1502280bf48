#!/usr/bin/env bash
# Install every Debian package the project needs (Debian 12). Idempotent: when all packages are
# already installed it does nothing, so the README's commands can call it every time.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libopenblas-openmp-dev          # sgemm; the OpenMP build shares our thread pool
  libdnnl-dev                     # oneDNN: bf16 matrix products (AMX, AVX512-BF16)
  libopenmpi-dev openmpi-bin      # distributed data parallelism
  libhdf5-dev hdf5-tools          # dataset shards (h5ls for inspection)
  libcjson-dev                    # configs, safetensors headers, JSON requests
  libjpeg62-turbo-dev libpng-dev  # JPEG and PNG decoding (the decoders PIL uses)
  libstb-dev                      # other image formats for local files; PNG writing
  libmicrohttpd-dev libcurl4-openssl-dev libcairo2-dev  # serving, URL inputs, visualisation
  libgnutls28-dev openssl         # serve: HTTPS (GnuTLS checks --tls-cert/--tls-key); test certificates
  wrk clang                       # serve: load test/benchmark; libFuzzer run of the request parser
  dataset-fashion-mnist           # the embedded default dataset
  python3 python3-torch python3-numpy python3-h5py python3-pil  # references, converters only
  python3-torchvision zlib1g-dev   # data: PIL/torchvision reference transforms and benchmark; idx .gz
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${PACKAGES[@]}"
