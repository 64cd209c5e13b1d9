"""dptrain-data convert/inspect against IDX files written here and read back with h5py."""
import gzip
import hashlib
import os
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np

TOOL = sys.argv[1]
failures = 0


def check(cond, what):
    global failures
    if cond:
        print("  ok:", what)
    else:
        print("  FAILED:", what)
        failures += 1


def run(*args):
    p = subprocess.run([TOOL, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def write_idx(path, array, gz=False, cut=0, extra=b""):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    data = data[: len(data) - cut] + extra
    with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
        f.write(data)


def read_shards(paths):
    images, labels, attrs = [], [], []
    for p in paths:
        with h5py.File(p, "r") as f:
            images.append(f["images"][()])
            labels.append(f["labels"][()])
            attrs.append(dict(f.attrs))
            check(f["images"].dtype == np.uint8 and f["labels"].dtype == np.uint8, f"{p}: uint8 datasets")
    return np.concatenate(images), np.concatenate(labels), attrs


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


with tempfile.TemporaryDirectory() as tmp:
    rng = np.random.default_rng(7)
    n, h, w = 23, 4, 5
    images = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    labels = (np.arange(n) * 7 % 10).astype(np.uint8)
    labels[labels == 9] = 8  # make max label 8 in the data ...
    labels[3] = 9  # ... but one 9: num_classes must be 10
    img_path = os.path.join(tmp, "imgs-idx3-ubyte.gz")
    lab_path = os.path.join(tmp, "labs-idx1-ubyte")
    write_idx(img_path, images, gz=True)
    write_idx(lab_path, labels)

    print("convert --shards 3 (gzipped images, plain labels)")
    out = os.path.join(tmp, "out")
    rc, so, se = run("convert", "--images", img_path, "--labels", lab_path, "--out", out, "--shards", "3")
    check(rc == 0, f"rc 0 (stderr: {se.strip()})")
    names = sorted(os.listdir(out)) if os.path.isdir(out) else []
    check(names == [f"train-0000{k}-of-00003.h5" for k in range(3)], f"file names {names}")
    check(len(so.strip().splitlines()) == 3, "one line per file written")
    paths = [os.path.join(out, x) for x in names]
    if len(paths) == 3:
        got_i, got_l, attrs = read_shards(paths)
        check(got_i.shape == (n, 1, h, w), f"images shape {got_i.shape}")
        check(got_i.tobytes() == images.tobytes(), "concatenated images identical to the IDX data")
        check(np.array_equal(got_l, labels), "concatenated labels identical")
        with h5py.File(paths[0]) as f0, h5py.File(paths[2]) as f2:
            check((f0["images"].shape[0], f2["images"].shape[0]) == (8, 7), "shard sizes 8, 8, 7")
        check([int(a["first_index"]) for a in attrs] == [0, 8, 16], "first_index 0, 8, 16")
        check([int(a["shard_index"]) for a in attrs] == [0, 1, 2], "shard_index 0, 1, 2")
        check(all(int(a["shard_count"]) == 3 and int(a["total_samples"]) == n for a in attrs), "shard_count 3, total 23")
        check(all(int(a["num_classes"]) == 10 for a in attrs), "num_classes 10")
        a0 = attrs[0]
        check(a0["source_images_sha256"] == sha(img_path), "sha256 of the (gzipped) images file as given")
        check(a0["source_labels_sha256"] == sha(lab_path), "sha256 of the labels file")
        check(a0["source_images"] == os.path.basename(img_path), "source_images is the file name")
        with h5py.File(paths[1]) as f1:
            check(f1["images"].fletcher32 and f1["labels"].fletcher32,
                  "Fletcher-32 checksums on /images and /labels")

    print("inspect")
    rc, so, se = run("inspect", out)
    check(rc == 0 and "total: 23 samples in 3 file(s)" in so, "inspect totals")
    hist = " ".join(f"{v}:{int((labels == v).sum())}" for v in range(10))
    check(("labels: " + hist) in so, f"inspect histogram '{hist}'")
    check("first_index = 8" in so, "inspect prints attributes")
    check(so.count("checksums: Fletcher-32 on /images and /labels") == 3,
          "inspect names the checksums of each file")

    print("convert --classes 0-2,7 --limit 5 --shards 2 --name part")
    out2 = os.path.join(tmp, "filtered")
    rc, so, se = run("convert", "--images", img_path, "--labels", lab_path, "--out", out2,
                     "--shards", "2", "--classes", "0-2,7", "--limit", "5", "--name", "part")
    check(rc == 0, f"rc 0 (stderr: {se.strip()})")
    keep = np.isin(labels, [0, 1, 2, 7])
    want_i, want_l = images[keep][:5], labels[keep][:5]
    paths = [os.path.join(out2, f"part-0000{k}-of-00002.h5") for k in range(2)]
    if all(os.path.exists(p) for p in paths):
        got_i, got_l, attrs = read_shards(paths)
        check(got_i.tobytes() == want_i.tobytes() and np.array_equal(got_l, want_l), "filtered samples in order")
        check([int(a["first_index"]) for a in attrs] == [0, 3], "filtered first_index 0, 3")
        check(all(int(a["total_samples"]) == 5 and int(a["num_classes"]) == 10 for a in attrs),
              "filtered total 5, num_classes still 10")
    else:
        check(False, f"filtered shards exist: {os.listdir(out2) if os.path.isdir(out2) else None}")

    print("convert --shards 1 to one .h5 file, 4-dim images")
    img4 = rng.integers(0, 256, size=(6, 3, 2, 2), dtype=np.uint8)
    write_idx(os.path.join(tmp, "img4"), img4)
    write_idx(os.path.join(tmp, "lab4"), np.array([0, 1, 2, 0, 1, 2], dtype=np.uint8))
    single = os.path.join(tmp, "sub", "test.h5")
    rc, so, se = run("convert", "--images", os.path.join(tmp, "img4"), "--labels", os.path.join(tmp, "lab4"),
                     "--out", single, "--shards", "1")
    check(rc == 0 and os.path.isfile(single), f"single file written (stderr: {se.strip()})")
    if os.path.isfile(single):
        got_i, got_l, attrs = read_shards([single])
        check(got_i.shape == (6, 3, 2, 2) and got_i.tobytes() == img4.tobytes(), "C = 3 kept, bytes identical")
        check(int(attrs[0]["num_classes"]) == 3 and int(attrs[0]["shard_count"]) == 1, "attributes of a single file")
    check(not os.path.exists(single + ".tmp"), "no .tmp left behind")

    print("errors")
    bad = os.path.join(tmp, "truncated-idx3-ubyte")
    write_idx(bad, images, cut=10)
    rc, so, se = run("convert", "--images", bad, "--labels", lab_path, "--out", os.path.join(tmp, "x"))
    check(rc == 1 and bad in se and "truncated" in se, f"truncated IDX: rc {rc}, '{se.strip()}'")
    check(not os.path.exists(os.path.join(tmp, "x")), "nothing written for a bad input")
    bad2 = os.path.join(tmp, "trailing-idx3-ubyte")
    write_idx(bad2, images, extra=b"\0\0")
    rc, so, se = run("convert", "--images", bad2, "--labels", lab_path, "--out", os.path.join(tmp, "x"))
    check(rc == 1 and bad2 in se and "trailing" in se, f"trailing bytes: '{se.strip()}'")
    bad3 = os.path.join(tmp, "corrupt-idx1-ubyte")
    with open(bad3, "wb") as f:
        f.write(b"\x1f\x8b\x08garbage" * 3)
    rc, so, se = run("convert", "--images", img_path, "--labels", bad3, "--out", os.path.join(tmp, "x"))
    check(rc == 1 and bad3 in se, f"corrupt gzip labels: '{se.strip()}'")
    short_lab = os.path.join(tmp, "short-labels")
    write_idx(short_lab, labels[:20])
    rc, so, se = run("convert", "--images", img_path, "--labels", short_lab, "--out", os.path.join(tmp, "x"))
    check(rc == 1 and "23 images" in se and "20 labels" in se, f"count mismatch: '{se.strip()}'")
    rc, so, se = run("convert", "--images", img_path, "--labels", lab_path, "--out", out, "--shards", "2")
    check(rc == 1 and "-of-00003.h5, which is not one of the 2 shards" in se, f"stale shards refused: '{se.strip()}'")
    rc, so, se = run("convert", "--images", img_path, "--labels", lab_path, "--out", os.path.join(tmp, "y"), "--shards", "24")
    check(rc == 1 and "24 shards" in se, f"more shards than samples: '{se.strip()}'")
    rc, so, se = run("convert", "--images", img_path, "--labels", lab_path, "--out", os.path.join(tmp, "y"), "--classes", "5-3")
    check(rc == 2 and "--classes" in se, f"bad --classes: '{se.strip()}'")
    rc, so, se = run("convert", "--images", img_path, "--labels", lab_path, "--out", os.path.join(tmp, "y"), "--clases", "1")
    check(rc == 2 and "--clases" in se, f"unknown option named: '{se.strip()}'")
    rc, so, se = run("inspect", os.path.join(tmp, "nowhere"))
    check(rc == 1 and "nowhere" in se, f"inspect of a missing path: '{se.strip()}'")
    rc, so, se = run("--help")
    check(rc == 0 and "convert" in so and "inspect" in so and "--classes" in so, "--help documents the commands")
    rc, so, se = run("frobnicate")
    check(rc == 2 and "frobnicate" in se, "unknown command named")

print("test_data_tool:", "all checks passed" if failures == 0 else f"{failures} check(s) failed")
sys.exit(1 if failures else 0)
