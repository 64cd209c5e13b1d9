#!/usr/bin/env python3
"""Load dptrain weights (.h5) into the PyTorch MNIST tutorial net and evaluate one image.

usage: python3 h5_to_torch_example.py weights.h5
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

    def forward(self, x):  # x: [N,1,28,28], pixel/255 (no mean/std normalisation)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)  # logits


net = Net()
with h5py.File(sys.argv[1], "r") as f:
    # a checkpoint also holds the group /dptrain: take the datasets at the root only
    net.load_state_dict({k: torch.from_numpy(f[k][()]) for k in f if isinstance(f[k], h5py.Dataset)})
net.eval()
with torch.no_grad():
    print(net(torch.zeros(1, 1, 28, 28)).softmax(1))
