"""Writes runtime/tests/fixtures/*.safetensors: a model's weights after three SGD steps in
PyTorch, from an init and batches that both sides compute from the same formulas, so that
`cargo test` checks hoyerc's training step against PyTorch without PyTorch installed.

Usage (once, with torch installed): python bench/pytorch_fixtures.py [CASE...]
The formulas (mirrored in runtime/tests/pytorch.rs):
  parameter t (in model order), element i:  bound * sin(1.7 * i + 0.3 * t + 0.1),
      bound = 1 / sqrt(fan_in) for weights (every axis but the first), 0.1 for 1-D tensors
  batch s (0, 1, 2), sample n, element i:   sin(0.37 * i + 1.3 * n + 0.7 * s)
  label of sample n in batch s:             (3 * n + s) % classes
Each step: loss = mean cross-entropy + strength * penalty, then SGD (lr 0.05, no momentum) or
Adam (lr 1e-3, PyTorch's defaults)."""
import json, math, os, struct, torch, torch.nn as nn, torch.nn.functional as F

torch.set_default_dtype(torch.float64)  # the reference in float64; hoyerc runs float32

class LeNet5(nn.Module):
    def __init__(s):
        super().__init__()
        s.conv1, s.conv2 = nn.Conv2d(1, 20, 5), nn.Conv2d(20, 50, 5)
        s.fc1, s.fc2 = nn.Linear(800, 500), nn.Linear(500, 10)
    def forward(s, x):
        x = F.max_pool2d(F.relu(s.conv1(x)), 2, 2); x = F.max_pool2d(F.relu(s.conv2(x)), 2, 2)
        return s.fc2(F.relu(s.fc1(torch.flatten(x, 1))))

class TinyConvNet(nn.Module):
    """Every other layer: padding, dilation, overlapping and padded pooling, GELU, tanh, a residual add,
    leaky ReLU, global average pooling, sigmoid (runtime/tests/pytorch.rs has the spec)."""
    def __init__(s):
        super().__init__()
        s.c1, s.c2, s.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=2, dilation=2), nn.Linear(8, 3)
    def forward(s, x):
        c1 = F.max_pool2d(F.gelu(s.c1(x)), 3, stride=2, padding=1)
        c2 = torch.tanh(s.c2(c1))
        r = F.leaky_relu(c1 + c2, 0.1)
        p = F.avg_pool2d(r, 2, stride=1, padding=1)
        g = torch.sigmoid(p.mean((2, 3)))
        return s.fc(g)

class TinyResNet(nn.Module):
    """A CIFAR ResNet in small: conv-BN-relu-conv-BN, a residual add, a stride-2 block with a
    1×1 conv-BN shortcut, a stride-2 block with an option-A shortcut, global average pooling."""
    def __init__(s):
        super().__init__()
        s.c0, s.n0 = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        s.c1, s.n1 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        s.c2, s.n2 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        s.c3, s.n3 = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8)
        s.c4, s.n4 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        s.sc, s.ns = nn.Conv2d(4, 8, 1, stride=2, bias=False), nn.BatchNorm2d(8)
        s.c5, s.n5 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16)
        s.c6, s.n6 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        s.fc = nn.Linear(16, 3)
    def forward(s, x):
        a = F.relu(s.n0(s.c0(x)))
        b = F.relu(a + s.n2(s.c2(F.relu(s.n1(s.c1(a))))))
        c = F.relu(s.ns(s.sc(b)) + s.n4(s.c4(F.relu(s.n3(s.c3(b))))))
        a_short = F.pad(c[:, :, ::2, ::2], (0, 0, 0, 0, 4, 4))
        d = F.relu(a_short + s.n6(s.c6(F.relu(s.n5(s.c5(c))))))
        return s.fc(d.mean((2, 3)))

class MlpLayerNorm(nn.Module):
    """Layer norm between two dense layers, with and without its bias."""
    def __init__(s):
        super().__init__()
        s.fc1, s.ln1 = nn.Linear(20, 16), nn.LayerNorm(16)
        s.fc2, s.ln2 = nn.Linear(16, 12), nn.LayerNorm(12, eps=1e-3, bias=False)
        s.fc3 = nn.Linear(12, 5)
    def forward(s, x):
        h = F.relu(s.ln1(s.fc1(x)))
        h = F.gelu(s.ln2(s.fc2(h)))
        return s.fc3(h)

class EmbeddingBag(nn.Module):
    """Token ids through an embedding and a layer norm, flattened into a dense layer."""
    def __init__(s):
        super().__init__()
        s.emb, s.ln = nn.Embedding(VOCAB, 8), nn.LayerNorm(8)
        s.fc = nn.Linear(6 * 8, 5)
    def forward(s, x):
        return s.fc(torch.flatten(s.ln(s.emb(x)), 1))

class Attention(nn.Module):
    """hoyerc's `attention(x, heads = h, causal = ...)`: projections q, k, v, o as nn.Linear(d, d);
    each head attends with softmax(q·kᵀ/√(d/h)) (PyTorch's own scaled_dot_product_attention)."""
    def __init__(s, d, heads, causal, bias=True):
        super().__init__()
        s.q, s.k, s.v, s.o = (nn.Linear(d, d, bias=bias) for _ in range(4))
        s.heads, s.causal = heads, causal
    def forward(s, x):
        b, t, d = x.shape
        split = lambda y: y.view(b, t, s.heads, d // s.heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(split(s.q(x)), split(s.k(x)), split(s.v(x)), is_causal=s.causal)
        return s.o(y.transpose(1, 2).reshape(b, t, d))

class TinyTransformer(nn.Module):
    """One post-norm transformer block over token ids: causal attention with two heads, a
    residual add and layer norm, a GELU MLP per token, then the tokens flattened into a dense layer."""
    def __init__(s):
        super().__init__()
        s.emb, s.attn, s.h = nn.Embedding(VOCAB, 8), Attention(8, 2, True), nn.LayerNorm(8)
        s.up, s.down, s.n = nn.Linear(8, 16), nn.Linear(16, 8), nn.LayerNorm(8)
        s.fc = nn.Linear(TOKENS * 8, 5)
    def forward(s, x):
        e = s.emb(x)
        h = s.h(e + s.attn(e))
        n = s.n(h + s.down(F.gelu(s.up(h))))
        return s.fc(torch.flatten(n, 1))

class TinyViT(nn.Module):
    """A ViT in small: 2×2 patches by a strided conv as 4 tokens, a class token and a
    positional embedding (free parameters), one pre-norm encoder block, the class token read out."""
    def __init__(s):
        super().__init__()
        s.patches = nn.Conv2d(2, 8, 2, stride=2)
        s.cls, s.pos = nn.Parameter(torch.zeros(1, 8)), nn.Parameter(torch.zeros(5, 8))
        s.n1, s.attn, s.n2 = nn.LayerNorm(8), Attention(8, 2, False), nn.LayerNorm(8)
        s.up, s.down, s.n = nn.Linear(8, 16), nn.Linear(16, 8), nn.LayerNorm(8)
        s.head = nn.Linear(8, 5)
        s.first = ["patches.weight", "patches.bias"]  # before cls and pos, as in the spec
    def forward(s, x):
        p = s.patches(x).flatten(2).transpose(1, 2)
        h = torch.cat([s.cls.expand(x.shape[0], -1, -1), p], 1) + s.pos
        r = h + s.attn(s.n1(h))
        n = s.n(r + s.down(F.gelu(s.up(s.n2(r)))))
        return s.head(n[:, 0])

def hs(p): return torch.sum(torch.abs(p)) ** 2 / torch.sum(p ** 2)
def ghs(p, axis):  # group_hs(W, axis): one group per index of `axis` (filters, channels)
    other = [d for d in range(p.dim()) if d != axis]
    return torch.sum(torch.sqrt(torch.sum(p ** 2, other))) ** 2 / torch.sum(p ** 2)

# name: (model, sample shape, classes, optimizer, penalty strength, penalty)
CASES = {
    "lenet5_hs": (LeNet5, [1, 28, 28], 10, "sgd", 1e-4, lambda m: sum(hs(p) for p in m.parameters())),
    "lenet5_group_hs": (LeNet5, [1, 28, 28], 10, "sgd", 1e-3,
                        lambda m: sum(ghs(p, 0) + ghs(p, 1) for n, p in m.named_parameters() if n.endswith("weight"))),
    "lenet5_adam": (LeNet5, [1, 28, 28], 10, "adam", 0.0, lambda m: 0.0),
    "tiny_convnet": (TinyConvNet, [3, 9, 9], 3, "sgd", 1e-3, lambda m: sum(hs(p) for p in m.parameters())),
    "mlp_layernorm": (MlpLayerNorm, [20], 5, "sgd", 1e-3,
                      lambda m: sum(hs(p) for n, p in m.named_parameters() if n.endswith("weight"))),
    "embedding_bag": (EmbeddingBag, "tokens", 5, "sgd", 1e-3,
                      lambda m: sum(hs(p) for n, p in m.named_parameters() if n.endswith("weight"))),
    "tiny_transformer": (TinyTransformer, "tokens", 5, "adam", 1e-3,
                         lambda m: sum(hs(p) for n, p in m.named_parameters() if n.endswith("weight"))),
    "tiny_vit": (TinyViT, [2, 4, 4], 5, "adam", 1e-3,
                 lambda m: sum(hs(p) for n, p in m.named_parameters() if n.endswith("weight"))),
    "tiny_resnet": (TinyResNet, [3, 8, 8], 3, "sgd", 1e-3,
                    lambda m: sum(ghs(p, 0) + ghs(p, 1) for n, p in m.named_parameters() if n.startswith("c"))),
}
BATCH, STEPS, LR = 4, 3, 0.05
VOCAB, TOKENS = 20, 6  # "tokens": each sample is TOKENS ids below VOCAB

def init(m):
    # Normalization layers keep PyTorch's init (weight 1, bias 0): their parameters' names.
    norms = {f"{n}.{k}" for n, mod in m.named_modules() if isinstance(mod, (nn.BatchNorm2d, nn.LayerNorm))
             for k, _ in mod.named_parameters()}
    # Numbered in hoyerc's model order: PyTorch lists a module's own parameters (a ViT's class
    # token) before its submodules', whatever order they were made in; `first` puts them back.
    params = dict(m.named_parameters())
    first = getattr(m, "first", [])
    order = first + [n for n in params if n not in first]
    with torch.no_grad():
        for t, (name, p) in enumerate((n, params[n]) for n in order):
            if name in norms:
                continue
            fan_in = math.prod(p.shape[1:]) if p.dim() > 1 else 0
            bound = 1 / math.sqrt(fan_in) if fan_in else 0.1
            i = torch.arange(p.numel(), dtype=torch.float64)
            p.copy_((bound * torch.sin(1.7 * i + 0.3 * t + 0.1)).reshape(p.shape))

def batch(s, sample, classes):
    y = torch.tensor([(3 * k + s) % classes for k in range(BATCH)])
    if sample == "tokens":  # some ids read more than once within a batch
        x = torch.tensor([[(7 * i + 3 * k + 5 * s) % VOCAB for i in range(TOKENS)] for k in range(BATCH)])
        return x, y
    n = math.prod(sample)
    i = torch.arange(n, dtype=torch.float64)
    x = torch.stack([torch.sin(0.37 * i + 1.3 * k + 0.7 * s) for k in range(BATCH)]).reshape(BATCH, *sample)
    y = torch.tensor([(3 * k + s) % classes for k in range(BATCH)])
    return x, y

def save(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b); offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h); [f.write(b) for b in blobs]

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "runtime", "tests", "fixtures")
os.makedirs(out, exist_ok=True)
import sys
wanted = sys.argv[1:] or list(CASES)  # the cases named on the command line, or all
def train(Model, sample, classes, optimizer, strength, penalty):
    """Three steps from the init; the model, its optimizer, the losses and Adam's scalars."""
    m = Model(); init(m)
    opt = torch.optim.SGD(m.parameters(), lr=LR) if optimizer == "sgd" else torch.optim.Adam(m.parameters(), lr=1e-3)
    losses, step_sizes, inv_bc2_sqrts = [], [], []
    for s in range(STEPS):
        x, y = batch(s, sample, classes)
        x = x if x.dtype == torch.long else x.to(torch.get_default_dtype())
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y); losses.append(loss.item())
        (loss + strength * penalty(m)).backward()
        opt.step()
        if optimizer == "adam":
            # The bias corrections of this step, from the optimizer's own step count and
            # settings, with torch.optim.Adam's formulas (_single_tensor_adam): the weights
            # move by step_size · m / (sqrt(v) / sqrt(bc2) + eps).
            group = opt.param_groups[0]
            t = float(opt.state[next(iter(m.parameters()))]["step"])
            (b1, b2) = group["betas"]
            step_sizes.append(group["lr"] / (1 - b1 ** t))
            inv_bc2_sqrts.append(1 / (1 - b2 ** t) ** 0.5)
    return m, opt, losses, step_sizes, inv_bc2_sqrts

for name, (Model, sample, classes, optimizer, strength, penalty) in CASES.items():
    if name not in wanted:
        continue
    m, opt, losses, step_sizes, inv_bc2_sqrts = train(Model, sample, classes, optimizer, strength, penalty)
    tensors = dict(m.named_parameters())
    tensors.update(m.named_buffers())  # batch norm's running statistics
    tensors["loss"] = torch.tensor(losses)
    if optimizer == "adam":
        tensors["adam_step_size"] = torch.tensor(step_sizes)
        tensors["adam_inv_bias_correction2_sqrt"] = torch.tensor(inv_bc2_sqrts)
        for n, p in m.named_parameters():  # the moments after the last step
            tensors[n + ".exp_avg"] = opt.state[p]["exp_avg"]
            tensors[n + ".exp_avg_sq"] = opt.state[p]["exp_avg_sq"]
        # How far PyTorch's own float32 run lands from its float64 one, per parameter: where
        # a gradient is zero in exact arithmetic (attention's key bias: softmax cancels it),
        # Adam scales each run's rounding noise to whole steps, and float32 is that far off.
        torch.set_default_dtype(torch.float32)
        m32, opt32 = train(Model, sample, classes, optimizer, strength, penalty)[:2]
        torch.set_default_dtype(torch.float64)
        off = lambda a, b: (a.detach() - b.detach().double()).abs().max().reshape(1)
        for (n, p), p32 in zip(m.named_parameters(), m32.parameters()):
            tensors[n + ".float32_error"] = off(p, p32)
            for k in ["exp_avg", "exp_avg_sq"]:
                tensors[f"{n}.{k}.float32_error"] = off(opt.state[p][k], opt32.state[p32][k])
    m.eval()  # the forward pass as evaluation runs it
    tensors["eval_logits"] = m(batch(0, sample, classes)[0])
    save(os.path.join(out, f"{name}.safetensors"), tensors)
    print(name, "losses", losses)
