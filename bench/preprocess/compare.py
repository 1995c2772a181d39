"""compare.py - kiln's /predict preprocessing against torchvision's, on random
photo-like images of awkward sizes: the classic PIL pipeline (Resize(R) +
CenterCrop(C) + ToTensor + Normalize) and the float-tensor Resize(antialias=True).
Differences are printed in 8-bit pixel steps.  Run by check_vs_torchvision.sh."""
import subprocess
import sys

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image

driver, tmp = sys.argv[1], sys.argv[2]
mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
steps = np.array(std)[:, None, None] * 255  # normalised units -> pixel steps
rng = np.random.default_rng(0)
for w, h, r, c, fmt in [(333, 217, 256, 224, "png"), (640, 480, 256, 224, "png"), (1000, 750, 232, 224, "png"),
                        (97, 131, 256, 224, "png"), (300, 300, 256, 224, "png"), (64, 48, 32, 28, "png"),
                        (640, 480, 256, 224, "jpeg"), (501, 333, 256, 224, "jpeg")]:
    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
    arr = np.array(Image.fromarray(small).resize((w, h), Image.BICUBIC))
    arr = np.clip(arr.astype(int) + rng.integers(-20, 21, arr.shape), 0, 255).astype(np.uint8)
    path = "%s/in.%s" % (tmp, fmt)
    Image.fromarray(arr).save(path, quality=90) if fmt == "jpeg" else Image.fromarray(arr).save(path)
    subprocess.check_call([driver, path, tmp + "/out.bin", str(r), str(c)])
    ours = np.fromfile(tmp + "/out.bin", dtype=np.float32).reshape(3, c, c)
    pil_img = Image.open(path).convert("RGB")  # the same decoded pixels for torchvision
    pil = T.Compose([T.Resize(r), T.CenterCrop(c), T.ToTensor(), T.Normalize(mean, std)])(pil_img).numpy()
    t = torch.from_numpy(np.array(pil_img)).permute(2, 0, 1).float() / 255
    ten = F.normalize(F.center_crop(F.resize(t, r, antialias=True), c), mean, std).numpy()
    d_pil, d_ten = np.abs(ours - pil) * steps, np.abs(ours - ten) * steps
    print("%4dx%-4d %-4s resize %d crop %d: vs PIL pipeline max %.2f, %.3f%% of values differ;"
          " vs float tensor resize max %.2f, mean %.3f (pixel steps)"
          % (w, h, fmt, r, c, d_pil.max(), 100.0 * (d_pil > 0.01).mean(), d_ten.max(), d_ten.mean()))
