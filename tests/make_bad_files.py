"""Write every kind of broken input file the failure inventory lists, into the current
directory (docs/failure-inventory.md names each file and the test that uses it).
Usage: make_bad_files.py GOOD_SHARD.h5 GOOD_WEIGHTS.h5"""
import os
import shutil
import sys

import h5py
import numpy as np

good_shard, good_weights = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(7)


def shard(path, images, labels, **attrs):
    with h5py.File(path, "w") as f:
        if images is not None:
            f.create_dataset(attrs.pop("images_name", "images"), data=images)
        if labels is not None:
            f.create_dataset(attrs.pop("labels_name", "labels"), data=labels)
        for k, v in attrs.items():
            f.attrs[k] = v


def imgs(n, c=1, h=28, w=28, dtype=np.uint8):
    return rng.integers(0, 255, size=(n, c, h, w)).astype(dtype)


def labs(n, dtype=np.uint8):
    return rng.integers(0, 10, size=(n,)).astype(dtype)


os.makedirs("h5", exist_ok=True)
open("h5/not_hdf5.h5", "w").write("images,labels\n1,2\n")
data = open(good_shard, "rb").read()
open("h5/truncated.h5", "wb").write(data[: len(data) // 2])
open("h5/empty_file.h5", "wb").close()
shard("h5/no_images.h5", None, labs(50))
shard("h5/no_labels.h5", imgs(50), None)
shard("h5/wrong_names.h5", imgs(50), labs(50), images_name="data", labels_name="targets")
shard("h5/images_float.h5", imgs(50, dtype=np.float32), labs(50))
shard("h5/labels_int64.h5", imgs(50), labs(50, np.int64))
shard("h5/images_rank2.h5", imgs(50).reshape(50, -1), labs(50))
shard("h5/images_rank5.h5", imgs(50).reshape(50, 1, 1, 28, 28), labs(50))
shard("h5/labels_rank2.h5", imgs(50), labs(50).reshape(50, 1))
shard("h5/length_mismatch.h5", imgs(50), labs(49))
shard("h5/empty_shard.h5", imgs(0), labs(0))
with h5py.File("h5/images_group.h5", "w") as f:
    f.create_group("images")
    f["labels"] = labs(50)
# a set of shards whose sample shapes disagree: 1x28x28 and 3x28x28
os.makedirs("mixed", exist_ok=True)
shard("mixed/a.h5", imgs(60), labs(60))
shard("mixed/b.h5", imgs(60, c=3), labs(60))
# shards whose attributes disagree with their position: both claim to be shard 0
os.makedirs("attrs", exist_ok=True)
for name in ("a", "b"):
    shard(f"attrs/{name}.h5", imgs(60), labs(60), shard_index=0, shard_count=2)


def flip_bit(path, dataset):
    """Flip one bit in the first chunk of a checksummed dataset, as a disk or a copy might."""
    with h5py.File(path, "r") as f:
        assert f[dataset].fletcher32, f"{path}:{dataset} carries no checksum"
        at = f[dataset].id.get_chunk_info(0).byte_offset + 5
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ 4]))


# copies of the good set (made by shard_write, so with checksums) whose second file has one
# bit flipped in the first chunk of /images or of /labels
def damaged_set(name, dataset):
    shutil.copytree(os.path.dirname(good_shard), name)
    flip_bit(os.path.join(name, sorted(os.listdir(name))[1]), dataset)


damaged_set("damaged_images", "images")
damaged_set("damaged_labels", "labels")
# a test file of another shape
shard("h5/test_3x28x28.h5", imgs(40, c=3), labs(40))
# labels against the model's classes (no num_classes attribute unless named): a test file
# with a label of 250, a 10-class training file with one stray label of 200, a test file
# declaring 12 classes
os.makedirs("labels", exist_ok=True)
every = np.arange(200) % 10  # every class has samples
stray = every.copy()
stray[57] = 200
test250 = labs(50)
test250[7] = 250
shard("labels/test_label250.h5", imgs(50), test250)
shard("labels/train_stray200.h5", imgs(200), stray.astype(np.uint8))
shard("labels/test_declares12.h5", imgs(50), labs(50), num_classes=12)
# an empty directory, and one with files but no .h5
os.makedirs("no_shards", exist_ok=True)
open("no_shards/readme.txt", "w").write("no shards here\n")

# weights files: not HDF5, truncated, a missing tensor, a wrong shape, integers
os.makedirs("w", exist_ok=True)
open("w/not_hdf5.h5", "w").write("not weights\n")
wdata = open(good_weights, "rb").read()
open("w/truncated.h5", "wb").write(wdata[: len(wdata) // 2])
shutil.copy(good_weights, "w/damaged.h5")
flip_bit("w/damaged.h5", "conv2.weight")
with h5py.File(good_weights, "r") as g:
    tensors = {k: g[k][()] for k in g}
for name, change in [("missing", "drop"), ("shape", "shape"), ("ints", "int")]:
    with h5py.File(f"w/{name}.h5", "w") as f:
        for k, v in tensors.items():
            if k == "fc2.bias" and change == "drop":
                continue
            if k == "fc2.bias" and change == "shape":
                v = np.zeros(11, np.float32)
            if k == "conv1.weight" and change == "int":
                v = v.astype(np.int32)
            f[k] = v
with h5py.File("w/nan.h5", "w") as f:
    for k, v in tensors.items():
        v = v.copy()
        if k == "fc1.weight":
            v[3, 5] = np.nan
        f[k] = v

# IDX pairs for dptrain-data convert: 3 images but 2 labels; labels of 2 dimensions
def idx(path, arr):
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape))
        f.write(arr.astype(np.uint8).tobytes())


os.makedirs("idx", exist_ok=True)
idx("idx/img3", imgs(3)[:, 0])
idx("idx/lab2", labs(2))
idx("idx/lab2d", labs(4).reshape(2, 2))
