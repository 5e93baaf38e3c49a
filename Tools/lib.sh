# Shared by the Tools/ scripts: run from the repository root, install what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# OpenBLAS, LAPACKE and oneTBB from Debian (DESIGN §7). Installs only what pkg-config cannot find.
ensure_dependencies() {
    if pkg-config --exists openblas lapacke tbb 2>/dev/null; then return; fi
    say "installing libopenblas-dev liblapacke-dev libtbb-dev (apt)"
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq libopenblas-dev liblapacke-dev libtbb-dev pkg-config >/dev/null
    pkg-config --exists openblas lapacke tbb || { echo "could not install OpenBLAS/LAPACKE/TBB" >&2; exit 1; }
}

command -v swift >/dev/null || { echo "swift is not on PATH (Swift 6 toolchain needed)" >&2; exit 1; }
