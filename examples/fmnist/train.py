#!/usr/bin/python3
"""Trains kiln's bundled example: a small Fashion-MNIST CNN classifier.

Uses Debian's python3-torch and the real Fashion-MNIST data from Debian's
dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).  Writes, next to this
script:
  fmnist_cnn.onnx            the model (input 'image' float32[batch,1,28,28],
                             output 'logits' float32[batch,10]), opset 17
  fmnist_cnn.accuracy.txt    test-set top-1 accuracy PyTorch measured
  fmnist_cnn.in.image.npy    the first 16 normalized test images
  fmnist_cnn.out.logits.npy  PyTorch's logits for them (reference for the golden test)

Run: /usr/bin/python3 examples/fmnist/train.py   (about 3-5 minutes on 2 cores)
"""
import gzip
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

DATA = '/usr/share/datasets/fashion-mnist'
HERE = os.path.dirname(os.path.abspath(__file__))
MEAN, STD = 0.2860, 0.3530   # Fashion-MNIST training-set pixel mean / std


def read_idx(path):
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    ndim = raw[3]
    shape = struct.unpack('>' + 'I' * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def split(name):
    images = read_idx(f'{DATA}/{name}-images-idx3-ubyte.gz').astype(np.float32) / 255.0
    labels = read_idx(f'{DATA}/{name}-labels-idx1-ubyte.gz').astype(np.int64)
    images = (images - MEAN) / STD
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels)


def block(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(*block(1, 16), nn.MaxPool2d(2),
                                  *block(16, 32), nn.MaxPool2d(2),
                                  *block(32, 32))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(),
                                  nn.Dropout(0.2), nn.Linear(128, 10))

    def forward(self, x):
        return self.head(self.body(x))


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        hits = sum((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
                   for i in range(0, len(x), 1000))
    return hits / len(x)


def train(epochs=4):
    torch.manual_seed(1234)
    torch.set_num_threads(os.cpu_count() or 1)
    xtr, ytr = split('train')
    model = SmallCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * ((len(xtr) + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 128):
            idx = order[i:i + 128]
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            sched.step()
        print(f'epoch {epoch + 1}/{epochs}: last batch loss {loss.item():.4f}', flush=True)
    return model


def main():
    model = train(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
    xte, yte = split('t10k')
    acc = accuracy(model, xte, yte)
    print(f'test accuracy (PyTorch): {acc:.4f}')
    model.eval()
    onnx_path = os.path.join(HERE, 'fmnist_cnn.onnx')
    torch.onnx.export(model, xte[:1], onnx_path, input_names=['image'], output_names=['logits'],
                      dynamic_axes={'image': {0: 'batch'}, 'logits': {0: 'batch'}},
                      opset_version=17, do_constant_folding=True)
    with open(os.path.join(HERE, 'fmnist_cnn.accuracy.txt'), 'w') as f:
        f.write(f'{acc * 100:.2f}\n')
    sample = xte[:16]
    with torch.no_grad():
        logits = model(sample)
    np.save(os.path.join(HERE, 'fmnist_cnn.in.image.npy'), sample.numpy())
    np.save(os.path.join(HERE, 'fmnist_cnn.out.logits.npy'), logits.numpy())
    print('wrote', onnx_path)


if __name__ == '__main__':
    main()
