#!/usr/bin/python3
"""make_test_models.py OUTDIR [NAME...] - small random-weight models of the kinds kiln must
load, exported with torch.onnx.export (PyTorch 1.13), with PyTorch reference data.

For every model NAME it writes OUTDIR/NAME.onnx, OUTDIR/NAME.in.<input>.npy and
OUTDIR/NAME.out.<output>.npy (one input size), and the same references for a second
batch / sequence size under OUTDIR/alt/ (NAME.onnx there is a symlink), so that
`build/test_golden OUTDIR` and `build/test_golden OUTDIR/alt` check both sizes.
Symbolic dims are named batch, seq, frames, height, width (see `kiln inspect`).

Models (all weights random, seeded):
  gpt2_tiny            GPT-2 decoder: token+position embeddings, causal mask (Trilu/Where),
                       GELU tanh, LayerNorm, tied LM head; dynamic batch and seq
  whisper_tiny_encoder Whisper encoder: 2x Conv1d+GELU on log-mel [batch,80,frames],
                       sinusoidal positions, pre-LN transformer blocks
  crnn_ocr             OCR recognizer: Conv/BatchNorm/ReLU/MaxPool stack, 2-layer
                       bidirectional LSTM, per-timestep Linear, LogSoftmax
  dbnet_det            OCR detector: MobileNetV3-like backbone (HardSwish, SE with
                       HardSigmoid), FPN with nearest and bilinear Resize, ConvTranspose,
                       Pad, AveragePool, Sigmoid
  vad_lstm             voice activity: torch.jit.script model whose export holds If nodes
                       (sample-rate branch, zero-state branch) and an LSTM with h/c in/out
  t5_encoder           T5-like encoder: relative position buckets (Range, Abs, Log, Where,
                       Min), CumSum position ids, Expand'ed padding mask, Einsum attention,
                       RMS norm, gated GELU FFN
  cnn_opset11          small CNN at opset 11: ReLU6 (Clip inputs), bilinear Resize with
                       align_corners, ReduceMean, Softmax
  cnn_opset9           small CNN at opset 9: Clip attributes, Pad attribute, Upsample,
                       BatchNorm, Flatten/Gemm, Softmax
  greedy_decoder       scripted autoregressive loop (Loop with a trip count input, GRU cell,
                       ArgMax, Gather, sequence ops to stack the steps)
  qdq_cnn              fake-quantised CNN at opset 13: QuantizeLinear/DequantizeLinear,
                       int8 per-tensor activations, per-channel weights
  nms_detector         one-image detector tail at opset 16: TopK, NonMaxSuppression,
                       Gather, RoiAlign (aligned), Softmax
  packed_rnn           pack_padded_sequence LSTM (sequence_lens input), bidirectional GRU
  image_to_image       reflection Pad, InstanceNorm, GroupNorm, dilated Conv, grouped
                       ConvTranspose with output_padding, DepthToSpace, bicubic Resize,
                       GridSample (opset 17)
  logmel_frontend      STFT with Hann window (exported through a custom symbolic: 1.13 has
                       none), power, mel MatMul, Log, clamps, Max (opset 17)
  gpt2_kv              GPT-2 with a KV cache: past key/value inputs (empty on the first
                       step), present outputs, offset positions, finfo.min masking
  resize_variants      F.interpolate with scales float cannot hold (1.7, 0.6, 2.5): nearest,
                       bilinear half_pixel / align_corners, bicubic, 1-D linear
  sweep_cnn            pooling (ceil_mode, dilation, Lp, 1-D/3-D, adaptive), ConvTranspose with
                       dilation/output_padding/groups, Conv3d, dilated depthwise Conv1d, PReLU
  sweep_elementwise    33 element-wise forms: Round, integer floor/trunc Div, Mod (fmod 0/1),
                       ELU/SELU/CELU/Softplus/Mish/HardTanh/LeakyReLU/GLU/GELU..., Not, Xor
  sweep_tensor         38 tensor forms: flip (negative-step Slice), roll, Trilu, CumSum, OneHot,
                       NonZero, ArgMax/Min, TopK/sort, norms, LayerNorm over 2 axes, GroupNorm,
                       InstanceNorm, LRN, ScatterElements add, GatherElements, Einsum, unfold
  sweep_sequence       multi-layer bidirectional GRU/LSTM/RNN (batch_first), MultiheadAttention,
                       TransformerEncoderLayer (norm_first, batch_first and not), EmbeddingBag
                       (a Loop), Embedding with padding_idx
  cnn_opset7           cnn_opset9's network exported at opset 7 (Upsample 'scales'
                       attribute, opset-7 Pad/Clip/Softmax forms), static shapes
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- GPT-2 ----------
class GPT2Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.fc_out = nn.Linear(4 * d, d)

    def forward(self, x, causal):
        b, t, d = x.shape
        q, k, v = self.attn(self.ln1(x)).split(d, dim=2)
        q = q.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        k = k.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        v = v.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        att = torch.where(causal, att, torch.tensor(-1e4))
        y = att.softmax(-1) @ v
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.fc_out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT2Tiny(nn.Module):
    def __init__(self, vocab=96, ctx=64, d=64, heads=4, layers=2):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList([GPT2Block(d, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied

    def forward(self, input_ids):
        t = input_ids.shape[1]
        pos = torch.arange(t, device=input_ids.device)
        x = self.wte(input_ids) + self.wpe(pos)[None]
        causal = torch.ones(t, t, dtype=torch.bool).tril()[None, None]
        for blk in self.blocks:
            x = blk(x, causal)
        return self.lm_head(self.ln_f(x))


def gpt2_tiny():
    g = torch.Generator().manual_seed(1)
    sizes = [(1, 16), (2, 37)]
    inputs = [dict(input_ids=torch.randint(0, 96, s, generator=g)) for s in sizes]
    return dict(model=GPT2Tiny(), inputs=inputs, outputs=["logits"],
                dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}})


# ---------------------------------------------------------------- Whisper --------
def sinusoids(length, channels, max_timescale=10000):
    inc = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2))
    t = torch.arange(length)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


class WhisperBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.attn_ln = nn.LayerNorm(d)
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d)
        self.out = nn.Linear(d, d)
        self.mlp_ln = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        b, t, d = x.shape
        h = self.attn_ln(x)
        hd = d // self.heads
        scale = hd ** -0.25
        q = self.q(h).view(b, t, self.heads, hd).permute(0, 2, 1, 3) * scale
        k = self.k(h).view(b, t, self.heads, hd).permute(0, 2, 3, 1) * scale
        v = self.v(h).view(b, t, self.heads, hd).permute(0, 2, 1, 3)
        w = (q @ k).float().softmax(dim=-1)
        x = x + self.out((w @ v).permute(0, 2, 1, 3).flatten(start_dim=2))
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoder(nn.Module):
    def __init__(self, mels=80, ctx=200, d=64, heads=4, layers=2):
        super().__init__()
        self.conv1 = nn.Conv1d(mels, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(ctx, d))
        self.blocks = nn.ModuleList([WhisperBlock(d, heads) for _ in range(layers)])
        self.ln_post = nn.LayerNorm(d)

    def forward(self, mel):
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).permute(0, 2, 1)
        x = x + self.positional_embedding[: x.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return self.ln_post(x)


def whisper_tiny_encoder():
    g = torch.Generator().manual_seed(2)
    inputs = [dict(mel=torch.randn(b, 80, f, generator=g)) for b, f in [(1, 100), (2, 64)]]
    return dict(model=WhisperEncoder(), inputs=inputs, outputs=["features"],
                dynamic_axes={"mel": {0: "batch", 2: "frames"}, "features": {0: "batch", 1: "time"}})


# ---------------------------------------------------------------- CRNN -----------
def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class CRNN(nn.Module):
    def __init__(self, classes=37, hidden=32):
        super().__init__()
        self.cnn = nn.Sequential(
            *conv_bn_relu(1, 16), nn.MaxPool2d(2, 2),                     # 16 x W/2
            *conv_bn_relu(16, 32), nn.MaxPool2d(2, 2),                    # 8 x W/4
            *conv_bn_relu(32, 48), nn.MaxPool2d((2, 1), (2, 1)),          # 4
            *conv_bn_relu(48, 64), nn.MaxPool2d((2, 1), (2, 1)),          # 2
            *conv_bn_relu(64, 64), nn.MaxPool2d((2, 1), (2, 1)))          # 1
        self.rnn = nn.LSTM(64, hidden, num_layers=2, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, image):
        f = self.cnn(image).squeeze(2).permute(2, 0, 1)  # [T, batch, C]
        y, _ = self.rnn(f)
        return F.log_softmax(self.fc(y), dim=2)


def crnn_ocr():
    g = torch.Generator().manual_seed(3)
    inputs = [dict(image=torch.randn(b, 1, 32, w, generator=g)) for b, w in [(1, 100), (3, 64)]]
    return dict(model=CRNN(), inputs=inputs, outputs=["log_probs"],
                dynamic_axes={"image": {0: "batch", 3: "width"}, "log_probs": {0: "steps", 1: "batch"}})


# ---------------------------------------------------------------- DBNet ----------
class SqueezeExcite(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // 4, 1)
        self.fc2 = nn.Conv2d(c // 4, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cexp, cout, stride, se):
        super().__init__()
        layers = [nn.Conv2d(cin, cexp, 1, bias=False), nn.BatchNorm2d(cexp), nn.Hardswish(),
                  nn.Conv2d(cexp, cexp, 3, stride, 1, groups=cexp, bias=False), nn.BatchNorm2d(cexp),
                  nn.Hardswish()]
        if se:
            layers.append(SqueezeExcite(cexp))
        layers += [nn.Conv2d(cexp, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class DBNet(nn.Module):
    def __init__(self, inner=32):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.s1 = InvertedResidual(16, 32, 16, 2, False)   # /4
        self.s2 = InvertedResidual(16, 48, 24, 2, True)    # /8
        self.s3 = InvertedResidual(24, 72, 40, 2, True)    # /16
        self.s4 = InvertedResidual(40, 96, 48, 2, True)    # /32
        self.lat = nn.ModuleList([nn.Conv2d(c, inner, 1) for c in (16, 24, 40, 48)])
        self.smooth = nn.ModuleList([nn.Conv2d(inner, inner // 4, 3, padding=1) for _ in range(4)])
        self.head = nn.Sequential(
            nn.Conv2d(inner, inner // 4, 3, padding=1, bias=False), nn.BatchNorm2d(inner // 4), nn.ReLU(),
            nn.ConvTranspose2d(inner // 4, inner // 4, 2, 2), nn.BatchNorm2d(inner // 4), nn.ReLU(),
            nn.ConvTranspose2d(inner // 4, 1, 2, 2))

    def forward(self, image):
        c1 = self.s1(self.stem(image))
        c2 = self.s2(c1)
        c3 = self.s3(c2)
        c4 = self.s4(c3)
        p4 = self.lat[3](c4)
        p3 = self.lat[2](c3) + F.interpolate(p4, scale_factor=2.0, mode="nearest")
        p2 = self.lat[1](c2) + F.interpolate(p3, scale_factor=2.0, mode="bilinear", align_corners=False)
        p1 = self.lat[0](c1) + F.interpolate(p2, scale_factor=2.0, mode="nearest")
        outs = [self.smooth[0](p1)]
        for i, p in ((1, p2), (2, p3), (3, p4)):
            outs.append(F.interpolate(self.smooth[i](p), size=p1.shape[2:], mode="bilinear", align_corners=False))
        fuse = torch.cat(outs, dim=1)
        # a padded 3x3 average pool (count_include_pad=False) smooths the fused map
        fuse = F.avg_pool2d(F.pad(fuse, (1, 1, 1, 1), mode="replicate"), 3, 1, count_include_pad=False)
        return torch.sigmoid(self.head(fuse))


def dbnet_det():
    g = torch.Generator().manual_seed(4)
    inputs = [dict(image=torch.randn(b, 3, h, w, generator=g)) for b, h, w in [(1, 64, 96), (2, 96, 64)]]
    return dict(model=DBNet(), inputs=inputs, outputs=["prob_map"],
                dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                              "prob_map": {0: "batch", 2: "height", 3: "width"}})


# ---------------------------------------------------------------- VAD ------------
class VAD(nn.Module):
    """Silero-like: chooses a front end by sample rate (If), restarts from a learned state
    when the given state is all zeros (If), then an LSTM with explicit h/c state."""

    def __init__(self, hidden=32):
        super().__init__()
        self.front16k = nn.Conv1d(1, 16, kernel_size=8, stride=4)
        self.front8k = nn.Conv1d(1, 16, kernel_size=4, stride=2)
        self.h0 = nn.Parameter(torch.randn(1, 1, hidden) * 0.5)
        self.c0 = nn.Parameter(torch.randn(1, 1, hidden) * 0.5)
        self.lstm = nn.LSTM(16, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, audio, sr, h, c):
        x = audio.unsqueeze(1)
        if bool(sr == 16000):
            f = torch.relu(self.front16k(x))
        else:
            f = torch.relu(self.front8k(x))
        if bool((h == 0).all()):
            h = self.h0.expand(1, audio.shape[0], self.h0.shape[2])
            c = self.c0.expand(1, audio.shape[0], self.c0.shape[2])
        y, (hn, cn) = self.lstm(f.permute(0, 2, 1), (h, c))
        prob = torch.sigmoid(self.head(y[:, -1]))
        return prob, hn, cn


def vad_lstm():
    g = torch.Generator().manual_seed(5)
    inputs = []
    for b, n, sr, zero in [(1, 512, 16000, False), (2, 256, 8000, True)]:
        h = torch.zeros(1, b, 32) if zero else torch.randn(1, b, 32, generator=g)
        inputs.append(dict(audio=torch.randn(b, n, generator=g), sr=torch.tensor(sr, dtype=torch.int64),
                           h=h, c=torch.zeros(1, b, 32) if zero else torch.randn(1, b, 32, generator=g)))
    return dict(model=torch.jit.script(VAD()), inputs=inputs, outputs=["prob", "hn", "cn"],
                dynamic_axes={"audio": {0: "batch", 1: "samples"}, "h": {1: "batch"}, "c": {1: "batch"},
                              "prob": {0: "batch"}, "hn": {1: "batch"}, "cn": {1: "batch"}})


# ---------------------------------------------------------------- T5 -------------
def relative_bucket(rel, num_buckets=16, max_distance=64):
    """T5's bidirectional relative position buckets."""
    num_buckets //= 2
    ret = (rel > 0).to(torch.long) * num_buckets
    n = torch.abs(rel)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    large = max_exact + (torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).to(torch.long)
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return ret + torch.where(is_small, n, large)


class T5Block(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.heads = heads
        self.n1 = nn.Parameter(1 + 0.1 * torch.randn(d))
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.n2 = nn.Parameter(1 + 0.1 * torch.randn(d))
        self.wi0 = nn.Linear(d, ff, bias=False)
        self.wi1 = nn.Linear(d, ff, bias=False)
        self.wo = nn.Linear(ff, d, bias=False)

    @staticmethod
    def rms(x, w):
        return w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    def forward(self, x, bias):
        b, t, d = x.shape
        q, k, v = self.qkv(self.rms(x, self.n1)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) + bias
        y = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v).reshape(b, t, d)
        x = x + self.o(y)
        h = self.rms(x, self.n2)
        return x + self.wo(F.gelu(self.wi0(h), approximate="tanh") * self.wi1(h))


class T5Encoder(nn.Module):
    def __init__(self, vocab=64, d=64, heads=4, ff=128, layers=2, buckets=16):
        super().__init__()
        self.heads = heads
        self.embed = nn.Embedding(vocab, d)
        self.pos_embed = nn.Embedding(130, d)
        self.rel_bias = nn.Embedding(buckets, heads)
        self.blocks = nn.ModuleList([T5Block(d, heads, ff) for _ in range(layers)])
        self.final = nn.Parameter(torch.ones(d))

    def forward(self, input_ids, attention_mask):
        b, t = input_ids.shape
        keep = attention_mask > 0
        # RoBERTa-style position ids: running count of kept tokens (CumSum)
        pos = torch.cumsum(keep.to(torch.int64), dim=1) * keep.to(torch.int64)
        x = self.embed(input_ids) + self.pos_embed(pos)
        ctx = torch.arange(t)
        bucket = relative_bucket(ctx[None, :] - ctx[:, None])
        bias = self.rel_bias(bucket).permute(2, 0, 1)[None]             # [1, h, t, t]
        pad = keep[:, None, None, :].expand(b, self.heads, t, t)
        bias = torch.where(pad, bias, torch.full_like(bias, -1e4))
        for blk in self.blocks:
            x = blk(x, bias)
        return T5Block.rms(x, self.final)


def t5_encoder():
    g = torch.Generator().manual_seed(6)
    inputs = []
    for b, t in [(1, 12), (2, 33)]:
        mask = torch.ones(b, t, dtype=torch.int64)
        mask[-1, t - 3:] = 0
        inputs.append(dict(input_ids=torch.randint(0, 64, (b, t), generator=g), attention_mask=mask))
    return dict(model=T5Encoder(), inputs=inputs, outputs=["hidden"],
                dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                              "hidden": {0: "batch", 1: "seq"}})


# ---------------------------------------------------------------- old opsets -----
class SmallCNN11(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, 2, 1)
        self.c2 = nn.Conv2d(8, 8, 3, 1, 1, groups=2)
        self.c3 = nn.Conv2d(8, 4, 1)

    def forward(self, image):
        x = F.relu6(self.c1(image))
        x = F.interpolate(F.relu6(self.c2(x)), scale_factor=2.0, mode="bilinear", align_corners=True)
        seg = self.c3(x).softmax(dim=1)
        pooled = x.mean(dim=(2, 3))
        return seg, pooled.softmax(-1)


class SmallCNN9(nn.Module):
    def __init__(self, static_size=False):
        super().__init__()
        self.static_size = static_size  # opset 7/8 Upsample needs constant scales
        self.c1 = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, 2)
        self.fc = nn.Linear(8 * 3 * 3, 10)

    def forward(self, image):
        x = F.pad(F.relu6(self.bn(self.c1(image))), (1, 1, 1, 1))
        if self.static_size:
            x = F.interpolate(x, size=(32, 32), mode="nearest")
        else:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = F.max_pool2d(torch.clamp(self.c2(x), -1.0, 2.0), 2)
        x = F.avg_pool2d(x, 3, 2)                                          # 7x7 -> 3x3
        return F.softmax(self.fc(torch.flatten(x, 1)), dim=1)


def cnn_opset11():
    g = torch.Generator().manual_seed(7)
    inputs = [dict(image=torch.randn(b, 3, 32, 32, generator=g)) for b in (1, 3)]
    return dict(model=SmallCNN11(), inputs=inputs, outputs=["seg", "probs"], opset=11,
                dynamic_axes={"image": {0: "batch"}, "seg": {0: "batch"}, "probs": {0: "batch"}})


def cnn_opset9():
    g = torch.Generator().manual_seed(8)
    inputs = [dict(image=torch.randn(b, 3, 16, 16, generator=g)) for b in (1, 2)]
    return dict(model=SmallCNN9(), inputs=inputs, outputs=["probs"], opset=9,
                dynamic_axes={"image": {0: "batch"}, "probs": {0: "batch"}})


# ---------------------------------------------------------------- greedy decoder -
class GreedyDecoder(nn.Module):
    """Scripted autoregressive loop (ONNX Loop): GRU cell, ArgMax, Embedding, list of
    steps stacked at the end (sequence ops)."""

    def __init__(self, vocab=40, d=32):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.wx = nn.Linear(d, 3 * d)
        self.wh = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, vocab)

    def forward(self, context, steps):
        h = context
        tok = torch.zeros(context.shape[0], dtype=torch.long)
        logits = []
        for _ in range(int(steps)):
            xr, xz, xn = self.wx(self.embed(tok)).chunk(3, dim=1)    # GRU cell, spelled out
            hr, hz, hn = self.wh(h).chunk(3, dim=1)                  # (aten::gru_cell does
            r = torch.sigmoid(xr + hr)                               # not export scripted)
            z = torch.sigmoid(xz + hz)
            h = (1 - z) * torch.tanh(xn + r * hn) + z * h
            step = self.out(h)
            tok = step.argmax(dim=-1)
            logits.append(step.log_softmax(-1))
        return torch.stack(logits, dim=1), h


def greedy_decoder():
    g = torch.Generator().manual_seed(9)
    inputs = [dict(context=torch.randn(b, 32, generator=g), steps=torch.tensor(n)) for b, n in [(1, 5), (3, 9)]]
    return dict(model=torch.jit.script(GreedyDecoder()), inputs=inputs, outputs=["logits", "state"],
                dynamic_axes={"context": {0: "batch"}, "logits": {0: "batch", 1: "steps"}, "state": {0: "batch"}})


# ---------------------------------------------------------------- QDQ ------------
def fq(x, scale, zp=0):
    return torch.fake_quantize_per_tensor_affine(x, scale, zp, -128, 127)


class QDQCNN(nn.Module):
    """Fake-quantised CNN: exports QuantizeLinear/DequantizeLinear pairs (int8 activations
    per tensor, int8 weights per output channel), as quantisation toolkits emit."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, 2, 1)
        self.c2 = nn.Conv2d(16, 32, 3, 2, 1)
        self.fc = nn.Linear(32, 10)

    @staticmethod
    def qw(w):
        scale = w.detach().abs().amax(dim=tuple(range(1, w.dim()))) / 127
        return torch.fake_quantize_per_channel_affine(w, scale, torch.zeros(w.shape[0], dtype=torch.int32),
                                                      0, -128, 127)

    def forward(self, image):
        x = fq(image, 0.03)
        x = fq(F.relu(F.conv2d(x, self.qw(self.c1.weight), self.c1.bias, 2, 1)), 0.02)
        x = fq(F.relu(F.conv2d(x, self.qw(self.c2.weight), self.c2.bias, 2, 1)), 0.02)
        x = fq(x.mean(dim=(2, 3)), 0.01)
        return F.linear(x, self.qw(self.fc.weight), self.fc.bias)


def qdq_cnn():
    g = torch.Generator().manual_seed(10)
    inputs = [dict(image=torch.randn(b, 3, 32, 32, generator=g)) for b in (1, 2)]
    return dict(model=QDQCNN(), inputs=inputs, outputs=["logits"], opset=13,
                dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})


# ---------------------------------------------------------------- NMS detector ---
class NMSDetector(nn.Module):
    """Single-image two-stage detector tail: anchor boxes + scores from a conv head, TopK,
    NonMaxSuppression (torchvision.ops.nms), Gather, RoiAlign and a box classifier."""

    def __init__(self, c=16, keep=20):
        super().__init__()
        self.keep = keep
        self.body = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), nn.ReLU(), nn.Conv2d(c, c, 3, 2, 1), nn.ReLU())
        self.obj = nn.Conv2d(c, 1, 1)
        self.reg = nn.Conv2d(c, 4, 1)
        self.cls = nn.Linear(c * 4 * 4, 5)

    def forward(self, image):
        f = self.body(image)                                          # [1, c, h, w], stride 4
        h, w = f.shape[2], f.shape[3]
        ys = torch.arange(h, dtype=torch.float32) * 4 + 2
        xs = torch.arange(w, dtype=torch.float32) * 4 + 2
        cy = ys[:, None].expand(h, w).reshape(-1)
        cx = xs[None, :].expand(h, w).reshape(-1)
        d = self.reg(f)[0].reshape(4, -1)
        size = 8 * torch.exp(d[2:].clamp(max=2.0))
        boxes = torch.stack([cx + 4 * d[0] - size[0], cy + 4 * d[1] - size[1],
                             cx + 4 * d[0] + size[0], cy + 4 * d[1] + size[1]], dim=1)
        scores = torch.sigmoid(self.obj(f)).reshape(-1)
        top, idx = scores.topk(min(self.keep * 4, scores.shape[0]))
        cand = boxes[idx]
        kept = torchvision.ops.nms(cand, top, 0.5)[: self.keep]
        final = cand[kept]
        rois = torch.cat([torch.zeros(final.shape[0], 1), final], dim=1)
        pooled = torchvision.ops.roi_align(f, rois, (4, 4), spatial_scale=0.25, sampling_ratio=2, aligned=True)
        return final, top[kept], self.cls(pooled.flatten(1)).softmax(-1)


def nms_detector():
    global torchvision
    import torchvision  # imported here, before tracing, and only for this model
    g = torch.Generator().manual_seed(11)
    inputs = [dict(image=torch.randn(1, 3, h, w, generator=g)) for h, w in [(64, 64), (48, 96)]]
    return dict(model=NMSDetector(), inputs=inputs, outputs=["boxes", "scores", "classes"], opset=16,
                dynamic_axes={"image": {2: "height", 3: "width"}, "boxes": {0: "n"}, "scores": {0: "n"},
                              "classes": {0: "n"}})


# ---------------------------------------------------------------- packed RNN -----
class PackedRNN(nn.Module):
    """Variable-length batch as ASR/OCR models feed it: pack_padded_sequence exports an
    LSTM with a sequence_lens input; then a bidirectional GRU (linear_before_reset=1)."""

    def __init__(self, f=12, hidden=16):
        super().__init__()
        self.lstm = nn.LSTM(f, hidden)
        self.gru = nn.GRU(hidden, hidden, bidirectional=True)

    def forward(self, feats, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(feats, lengths, enforce_sorted=False)
        state = feats.new_zeros(1, feats.shape[1], self.lstm.hidden_size)  # else batch is baked in
        y, (h, c) = self.lstm(packed, (state, state))
        y, _ = nn.utils.rnn.pad_packed_sequence(y, total_length=feats.shape[0])
        z, hg = self.gru(y)
        return z, h, c, hg


def packed_rnn():
    g = torch.Generator().manual_seed(12)
    inputs = [dict(feats=torch.randn(7, 3, 12, generator=g), lengths=torch.tensor([7, 3, 5])),
              dict(feats=torch.randn(9, 2, 12, generator=g), lengths=torch.tensor([4, 9]))]
    return dict(model=PackedRNN(), inputs=inputs, outputs=["z", "h", "c", "hg"],
                dynamic_axes={"feats": {0: "time", 1: "batch"}, "lengths": {0: "batch"},
                              "z": {0: "time", 1: "batch"}, "h": {1: "batch"}, "c": {1: "batch"},
                              "hg": {1: "batch"}})


# ---------------------------------------------------------------- image-to-image -
class ImageToImage(nn.Module):
    """Style-transfer / super-resolution ops: reflection Pad, InstanceNorm, GroupNorm,
    dilated Conv, grouped ConvTranspose with output_padding, PixelShuffle (DepthToSpace),
    bicubic Resize, GridSample."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 5)
        self.in1 = nn.InstanceNorm2d(16, affine=True)
        self.c2 = nn.Conv2d(16, 16, 3, padding=2, dilation=2)
        self.gn = nn.GroupNorm(4, 16)
        self.up = nn.ConvTranspose2d(16, 16, 3, stride=2, padding=1, output_padding=1, groups=4)
        self.c3 = nn.Conv2d(16, 12, 3, padding=1)
        self.theta = nn.Parameter(torch.tensor([[0.9, 0.1, 0.05], [-0.1, 0.95, 0.0]]))

    def forward(self, image):
        x = F.relu(self.in1(self.c1(F.pad(image, (2, 2, 2, 2), mode="reflect"))))
        x = F.silu(self.gn(self.c2(x)))
        x = F.pixel_shuffle(self.c3(F.relu(self.up(x))), 2)                 # 3 ch, 4x size
        x = x + F.interpolate(image, scale_factor=4.0, mode="bicubic", align_corners=False)
        h, w = x.shape[2], x.shape[3]         # affine_grid by hand (it does not export)
        xs = (torch.arange(w, dtype=torch.float32) * 2 + 1) / w - 1
        ys = (torch.arange(h, dtype=torch.float32) * 2 + 1) / h - 1
        base = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w)], dim=2)
        grid = (base.reshape(1, h * w, 3) @ self.theta.t()).reshape(1, h, w, 2).expand(x.shape[0], h, w, 2)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def image_to_image():
    g = torch.Generator().manual_seed(13)
    inputs = [dict(image=torch.randn(b, 3, h, w, generator=g)) for b, h, w in [(1, 16, 24), (2, 20, 12)]]
    return dict(model=ImageToImage(), inputs=inputs, outputs=["out"],
                dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                              "out": {0: "batch", 2: "height", 3: "width"}})


# ---------------------------------------------------------------- log-mel --------
class LogMel(nn.Module):
    """Whisper-style audio front end in the graph: STFT (Hann window), power spectrum,
    mel filterbank MatMul, log10 with clamping and dynamic-range floor."""

    def __init__(self, n_fft=64, hop=16, mels=20):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft))
        self.register_buffer("fb", torch.rand(mels, n_fft // 2 + 1))

    def forward(self, audio):
        spec = torch.stft(audio, self.n_fft, self.hop, window=self.window, center=False, return_complex=False)
        power = spec.pow(2).sum(-1)                                      # [b, freq, frames]
        logmel = torch.clamp(self.fb @ power, min=1e-10).log10()
        logmel = torch.maximum(logmel, logmel.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (logmel + 4.0) / 4.0


def stft_symbolic(g, signal, n_fft, hop_length, win_length, window, normalized, onesided, return_complex):
    """aten::stft -> ONNX STFT (PyTorch 1.13 has no exporter for it): [b, n] signal,
    onesided, [b, frames, bins, 2] transposed to torch's [b, bins, frames, 2]."""
    from torch.onnx import symbolic_helper as sh
    n_fft = sh._get_const(n_fft, "i", "n_fft")
    hop = sh._get_const(hop_length, "i", "hop_length")
    sig = g.op("Unsqueeze", signal, g.op("Constant", value_t=torch.tensor([-1])))
    out = g.op("STFT", sig, g.op("Constant", value_t=torch.tensor(hop)), window,
               g.op("Constant", value_t=torch.tensor(n_fft)), onesided_i=1)
    return g.op("Transpose", out, perm_i=[0, 2, 1, 3])


def logmel_frontend():
    torch.onnx.register_custom_op_symbolic("aten::stft", stft_symbolic, 17)
    g = torch.Generator().manual_seed(14)
    inputs = [dict(audio=torch.randn(b, n, generator=g)) for b, n in [(1, 400), (2, 256)]]
    return dict(model=LogMel(), inputs=inputs, outputs=["logmel"],
                dynamic_axes={"audio": {0: "batch", 1: "samples"}, "logmel": {0: "batch", 2: "frames"}})


def cnn_opset7():
    """Upsample at opset 7 takes constant 'scales' (an attribute): no dynamic axes, so the
    second reference set is another image of the same size."""
    spec = cnn_opset9()
    g = torch.Generator().manual_seed(15)
    spec.update(model=SmallCNN9(static_size=True), opset=7, dynamic_axes={}, inputs=[dict(image=torch.randn(1, 3, 16, 16, generator=g)) for _ in (1, 2)])
    return spec


# ---------------------------------------------------------------- KV cache -------
class GPT2KVBlock(GPT2Block):
    def forward(self, x, allowed, past_k, past_v):
        b, t, d = x.shape
        q, k, v = self.attn(self.ln1(x)).split(d, dim=2)
        q = q.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        k = torch.cat([past_k, k.view(b, t, self.heads, d // self.heads).transpose(1, 2)], dim=2)
        v = torch.cat([past_v, v.view(b, t, self.heads, d // self.heads).transpose(1, 2)], dim=2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        att = att.masked_fill(~allowed, torch.finfo(torch.float32).min)
        y = att.softmax(-1) @ v
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.fc_out(F.gelu(self.fc(self.ln2(x)), approximate="tanh")), k, v


class GPT2KV(GPT2Tiny):
    """Decoder with a KV cache as LLM exports have it: past key/value inputs whose sequence
    axis may be 0 (the first step), present outputs, positions offset by the past length,
    causal mask from comparing Range outputs, finfo.min masking."""

    def __init__(self):
        super().__init__(layers=2)
        self.blocks = nn.ModuleList([GPT2KVBlock(64, 4) for _ in range(2)])

    def forward(self, input_ids, past_key_0, past_value_0, past_key_1, past_value_1):
        t = input_ids.shape[1]
        past = past_key_0.shape[2]
        pos = torch.arange(past, past + t)
        x = self.wte(input_ids) + self.wpe(pos)[None]
        allowed = (torch.arange(past + t)[None, :] <= pos[:, None])[None, None]
        presents = []
        for blk, pk, pv in zip(self.blocks, (past_key_0, past_key_1), (past_value_0, past_value_1)):
            x, k, v = blk(x, allowed, pk, pv)
            presents += [k, v]
        return (self.lm_head(self.ln_f(x)), *presents)


def gpt2_kv():
    g = torch.Generator().manual_seed(16)
    inputs = []
    for b, t, past in [(1, 6, 0), (2, 1, 7)]:
        d = dict(input_ids=torch.randint(0, 96, (b, t), generator=g))
        for name in ("past_key_0", "past_value_0", "past_key_1", "past_value_1"):
            d[name] = torch.randn(b, 4, past, 16, generator=g)
        inputs.append(d)
    past_axes = {0: "batch", 2: "past"}
    present_axes = {0: "batch", 2: "total"}
    axes = {"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}
    for i in (0, 1):
        axes.update({f"past_key_{i}": past_axes, f"past_value_{i}": past_axes,
                     f"present_key_{i}": present_axes, f"present_value_{i}": present_axes})
    return dict(model=GPT2KV(), inputs=inputs, dynamic_axes=axes,
                outputs=["logits", "present_key_0", "present_value_0", "present_key_1", "present_value_1"])


# ---------------------------------------------------------------- Resize variants
class ResizeVariants(nn.Module):
    """F.interpolate as segmentation / super-resolution code calls it, with scale factors
    float cannot hold (1.7, 0.6, 2.5) and odd sizes: nearest, bilinear (half_pixel and
    align_corners), bicubic, 1-D linear."""

    def forward(self, x):
        return (F.interpolate(x, scale_factor=1.7, mode="nearest"),
                F.interpolate(x, scale_factor=0.6, mode="bilinear", align_corners=False),
                F.interpolate(x, size=(7, 5), mode="bicubic", align_corners=True),
                F.interpolate(x, scale_factor=2.5, mode="bilinear", align_corners=True),
                F.interpolate(x, size=(9, 4), mode="nearest"),
                F.interpolate(x, scale_factor=0.5, mode="bicubic", align_corners=False),
                F.interpolate(x[:, :, 0], scale_factor=1.5, mode="linear", align_corners=False))


def resize_variants():
    g = torch.Generator().manual_seed(17)
    inputs = [dict(x=torch.randn(b, 3, 11, 13, generator=g)) for b in (1, 2)]
    names = ["nearest_1_7", "bilinear_0_6", "bicubic_ac_size", "bilinear_ac_2_5", "nearest_size",
             "bicubic_0_5", "linear_1d_1_5"]
    return dict(model=ResizeVariants(), inputs=inputs, outputs=names,
                dynamic_axes={"x": {0: "batch"}, **{n: {0: "batch"} for n in names}})


# ---------------------------------------------------------------- operator sweeps -
# Many exported operator forms side by side, one output each, on a fixed [2, 4, 8, 8]
# input (dynamic batch).  Left out because the PyTorch 1.13 exporter gets them wrong
# (ONNX Runtime and kiln agree with each other, not with PyTorch): circular-padding
# Conv, softplus with a small threshold, int64 floor division by '//'.
class SweepCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.t = nn.ConvTranspose2d(4, 6, 3, stride=3, padding=1, output_padding=2, groups=2, dilation=2)
        self.c3 = nn.Conv3d(1, 2, 3, padding=1, stride=(1, 2, 2))
        self.c1 = nn.Conv1d(4, 4, 5, padding=4, dilation=2, groups=4)
        self.t1 = nn.ConvTranspose1d(4, 2, 4, stride=2, padding=1)
        self.pr = nn.PReLU(4)

    def forward(self, x):
        return (F.max_pool2d(x, 3, 2, 1, ceil_mode=True), F.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
                F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
                F.max_pool2d(x, 2, 1, 0, dilation=2), F.adaptive_max_pool2d(x, 1), F.lp_pool2d(x, 2, 3, 2),
                F.max_pool1d(x[:, :, 0], 3, 2, ceil_mode=True), F.avg_pool3d(x[:, None], 2, 2),
                F.adaptive_avg_pool2d(x, (4, 2)), self.t(x), self.c3(x[:, :1, None].expand(-1, -1, 3, -1, -1)),
                self.c1(x[:, :, 0]), self.t1(x[:, :, 0]), self.pr(x),
                F.conv2d(x, torch.ones(4, 1, 2, 2), stride=3, groups=4))


class SweepElementwise(nn.Module):
    def forward(self, x):
        i = (x * 10).to(torch.int64)
        return (torch.round(x * 4), torch.div(i, 3, rounding_mode="floor"), torch.div(i, 3, rounding_mode="trunc"),
                torch.div(x, 0.3, rounding_mode="floor"), torch.remainder(i, 3), torch.fmod(i, 3),
                torch.remainder(x, 0.7), torch.fmod(x, 0.7), F.elu(x), F.selu(x), F.celu(x, 0.5),
                F.softplus(x, beta=2), F.softsign(x), F.mish(x), F.hardtanh(x, -0.5, 0.3), F.leaky_relu(x, 0.2),
                F.logsigmoid(x), F.glu(x, 1), F.relu6(x), torch.sign(x), x.pow(3), torch.clamp(x, min=x.mean()),
                F.silu(x), F.gelu(x), torch.erf(x), torch.atan(x), torch.tan(x), torch.reciprocal(x + 3),
                torch.rsqrt(x.abs() + 1), torch.bitwise_not(i > 2), torch.logical_xor(x > 0, x > 0.5),
                x.floor(), x.ceil())


class SweepTensor(nn.Module):
    def forward(self, x):
        i = (x * 10).to(torch.int64)
        return (torch.flip(x, [2, 3]), torch.roll(x, 2, 3), torch.tril(x, -1), torch.triu(x, 2),
                x.repeat_interleave(2, dim=1), torch.cumsum(x, 2), F.one_hot(i.abs().clamp(max=5), 6),
                torch.nonzero(x > 0.5), x.argmax(3, keepdim=True), x.argmin(2),
                torch.topk(x, 3, dim=3, largest=False)[0], torch.sort(x, 3, descending=True)[0], x.sort(3)[1],
                F.normalize(x, dim=1), torch.logsumexp(x, 2), x.var(3, unbiased=True), x.std(2),
                torch.cosine_similarity(x, x.flip(3), dim=1),
                F.layer_norm(x, (8, 8), torch.ones(8, 8) * 1.5, torch.zeros(8, 8) + 0.1), F.group_norm(x, 2),
                F.instance_norm(x), F.local_response_norm(x, 3),
                x.scatter_add(3, i.abs().clamp(max=7), x), x.gather(2, i.abs().clamp(max=7)),
                x.masked_fill(x > 0.3, -2.0), torch.where(x > 0, x, x * 0.1), torch.min(x, 3)[0],
                torch.amax(x, (1, 3)), x.prod(3), x.norm(p=1, dim=2), x.norm(dim=3),
                torch.linalg.vector_norm(x, ord=3, dim=1), F.pixel_unshuffle(x, 2), F.unfold(x, 2, stride=2),
                torch.einsum("bchw,bcwk->bhk", x, x.transpose(2, 3)),
                torch.baddbmm(x[0], x[0], x[0].transpose(1, 2), beta=0.5, alpha=2.0),
                torch.addmm(x[0, 0], x[0, 0], x[0, 0].t(), alpha=0.3, beta=1.5))


class SweepSequence(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(8, 12, num_layers=2, batch_first=True, bidirectional=True)
        self.rnn = nn.RNN(8, 6, nonlinearity="relu", num_layers=2)
        self.rnnt = nn.RNN(8, 6, bidirectional=True, batch_first=True)
        self.lstm = nn.LSTM(8, 10, batch_first=True, bidirectional=True, num_layers=2)
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True,
                                              activation="gelu")
        self.enc2 = nn.TransformerEncoderLayer(8, 4, 16, dropout=0.0)
        self.bag = nn.EmbeddingBag(20, 8, mode="mean")
        self.emb = nn.Embedding(20, 8, padding_idx=0)

    def forward(self, x, ids):
        a, ha = self.gru(x)
        b, hb = self.rnn(x.transpose(0, 1))
        c, hc = self.rnnt(x)
        d, (hd, cd) = self.lstm(x)
        e, w = self.mha(x, x, x)
        return (a, ha, b, hb, c, hc, d, hd, cd, e, w, self.enc(x), self.enc2(x.transpose(0, 1)), self.bag(ids),
                self.emb(ids))


def sweep(model, seed):
    g = torch.Generator().manual_seed(seed)
    inputs = [dict(x=torch.randn(b, 4, 8, 8, generator=g)) for b in (2, 3)]
    n = len(model(inputs[0]["x"]))
    return dict(model=model, inputs=inputs, outputs=[f"o{k}" for k in range(n)], dynamic_axes={"x": {0: "batch"}})


def sweep_cnn():
    return sweep(SweepCNN(), 18)


def sweep_elementwise():
    return sweep(SweepElementwise(), 19)


def sweep_tensor():
    return sweep(SweepTensor(), 20)


def sweep_sequence():
    g = torch.Generator().manual_seed(21)
    inputs = [dict(x=torch.randn(b, t, 8, generator=g), ids=torch.randint(0, 20, (b, 5), generator=g))
              for b, t in ((3, 7), (2, 4))]
    return dict(model=SweepSequence(), inputs=inputs, outputs=[f"o{k}" for k in range(15)],
                dynamic_axes={"x": {0: "batch", 1: "time"}, "ids": {0: "batch"}})


MODELS = dict(gpt2_tiny=gpt2_tiny, whisper_tiny_encoder=whisper_tiny_encoder, crnn_ocr=crnn_ocr,
              dbnet_det=dbnet_det, vad_lstm=vad_lstm, t5_encoder=t5_encoder,
              cnn_opset11=cnn_opset11, cnn_opset9=cnn_opset9, greedy_decoder=greedy_decoder,
              qdq_cnn=qdq_cnn, nms_detector=nms_detector, packed_rnn=packed_rnn,
              image_to_image=image_to_image, logmel_frontend=logmel_frontend, cnn_opset7=cnn_opset7,
              gpt2_kv=gpt2_kv, resize_variants=resize_variants, sweep_cnn=sweep_cnn,
              sweep_elementwise=sweep_elementwise, sweep_tensor=sweep_tensor, sweep_sequence=sweep_sequence)


def randomize_batchnorm(model, seed):
    """Give BatchNorm layers non-trivial running statistics (eval mode uses them)."""
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.copy_(0.1 * torch.randn(mod.num_features, generator=g))
            mod.running_var.copy_(0.5 + torch.rand(mod.num_features, generator=g))
            mod.weight.data.copy_(1 + 0.1 * torch.randn(mod.num_features, generator=g))
            mod.bias.data.copy_(0.1 * torch.randn(mod.num_features, generator=g))


def save_refs(base, inputs, outputs, names):
    for k, v in inputs.items():
        np.save(f"{base}.in.{k}.npy", v.numpy())
    if not isinstance(outputs, (tuple, list)):
        outputs = (outputs,)
    for k, v in zip(names, outputs):
        np.save(f"{base}.out.{k}.npy", np.ascontiguousarray(v.detach().numpy()))


def build(name, outdir):
    torch.manual_seed(100 + sorted(MODELS).index(name))
    spec = MODELS[name]()
    model = spec["model"].eval()
    with torch.no_grad():
        if not isinstance(model, torch.jit.ScriptModule):
            randomize_batchnorm(model, 9)
        first = spec["inputs"][0]
        path = os.path.join(outdir, name + ".onnx")
        with torch.enable_grad():  # without grad, MultiheadAttention takes a fast path that does not export
            torch.onnx.export(model, tuple(first.values()), path, input_names=list(first),
                              output_names=spec["outputs"], dynamic_axes=spec["dynamic_axes"],
                              opset_version=spec.get("opset", 17), do_constant_folding=True)
        alt = os.path.join(outdir, "alt")
        os.makedirs(alt, exist_ok=True)
        link = os.path.join(alt, name + ".onnx")
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.join("..", name + ".onnx"), link)
        for d, inputs in zip((outdir, alt), spec["inputs"]):
            save_refs(os.path.join(d, name), inputs, model(*inputs.values()), spec["outputs"])
    print(f"{name}: {os.path.getsize(path)} bytes")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    for name in sys.argv[2:] or MODELS:
        if name not in MODELS:
            sys.exit(f"unknown model {name}; known: {', '.join(MODELS)}")
        build(name, outdir)


if __name__ == "__main__":
    main()
