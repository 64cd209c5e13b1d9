# Data side: SHA-256, IDX parsing, HDF5 shards (write, list, share, load), the
# dptrain-data tool and the MNIST fetch script.
dp_add_unit_test(test_sha256 test_sha256.c)
dp_add_unit_test(test_idx test_idx.c)
dp_add_unit_test(test_data test_data.c)
dp_add_unit_test(test_plan test_plan.c)
dp_add_script_test(test_data_tool test_data_tool.sh)
dp_add_script_test(test_data_h5py test_data_h5py.sh)
dp_add_script_test(test_fetch_mnist test_fetch_mnist.sh)
# The HDF5 helper layer (h5util): quiet sections restored, typed attributes, 1-D datasets,
# files built in memory (h5mem).
dp_add_unit_test(test_h5util test_h5util.c)
