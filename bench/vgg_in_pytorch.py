#!/usr/bin/env python3
"""Loads a run of examples/vgg_fmnist_group_hs.hoyer (shrunk or not) into the equivalent
PyTorch module and evaluates it on Fashion-MNIST's test set, as hoyerc evaluated it.

    vgg_in_pytorch.py RUN_DIR DATA_DIR

The module's widths come from the run's report.json (the architecture the shrink left, e.g.
1-5-11-23-64-10); model.safetensors must load with strict=True (every name and shape as
PyTorch's). Prints one line: `pytorch test accuracy 0.9009 (9009/10000)`.
"""
import gzip
import json
import os
import sys

import numpy as np
import safetensors.torch
import torch
from torch import nn


class VGG(nn.Module):
    """The example's model: three 3×3 convs (no bias) with batch norm and relu, two pools."""

    def __init__(self, widths):
        super().__init__()
        _, c1, c2, c3, f1, out = widths
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(c3)
        self.fc1 = nn.Linear(c3 * 7 * 7, f1)
        self.fc2 = nn.Linear(f1, out)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        x = torch.relu(self.bn3(self.conv3(x)))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(folder, name):
    for candidate in (name, name + ".gz"):
        if os.path.exists(os.path.join(folder, candidate)):
            return os.path.join(folder, candidate)
    sys.exit(f"no {name} in {folder}")


def main():
    run, data = sys.argv[1], sys.argv[2]
    report = json.load(open(os.path.join(run, "report.json")))
    shrinks = report.get("shrink") or []
    arch = shrinks[-1]["architecture"] if shrinks else "1-8-16-32-64-10"
    model = VGG([int(w) for w in arch.split("-")])
    state = safetensors.torch.load_file(os.path.join(run, "model.safetensors"))
    model.load_state_dict(state, strict=True)
    model.eval()
    images = idx(find(data, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0
    labels = torch.from_numpy(idx(find(data, "t10k-labels-idx1-ubyte")).astype(np.int64))
    x = (torch.from_numpy(images).unsqueeze(1) - 0.2860) / 0.3530
    with torch.no_grad():
        predicted = torch.cat([model(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    correct = int((predicted == labels).sum())
    print(f"pytorch test accuracy {correct / len(labels):.4f} ({correct}/{len(labels)})")


if __name__ == "__main__":
    main()
