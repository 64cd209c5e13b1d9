#!/usr/bin/env python3
"""Save the PyTorch MNIST tutorial net's state_dict as a dptrain weights .h5 file
(one float32 dataset per parameter, named by the state_dict key).

usage: python3 torch_to_h5_example.py out.h5
"""
import sys

import h5py
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):  # dptrain model "reference"
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(1600, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


net = Net()  # or: net.load_state_dict(torch.load("mnist_cnn.pt"))
with h5py.File(sys.argv[1], "w") as f:
    for k, v in net.state_dict().items():
        f.create_dataset(k, data=v.detach().cpu().numpy().astype("float32"),
                         fletcher32=True)  # checksums, as dptrain writes them
