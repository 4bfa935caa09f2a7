"""PyTorch's training throughput on examples/vit_mnist.hoyer's model, the anchor for hoyerc's:
the same ViT (7×7 patches by a strided conv, a class token and a positional embedding, 4
pre-norm blocks of 4 heads with scaled_dot_product_attention, MLP 128, the class token read
out), batch 128, AdamW (lr 1e-3, weight decay 0.05), cross-entropy, on random in-memory
images as `hoyerc bench` uses; optionally with Hoyer-Square on the block and head weights.

Usage: python bench/vit_anchor.py [--compile] [--hs] [--steps N] [--threads N]
Prints one line: `vit[-hs] eager|compile: N samples/s`."""
import argparse, time, torch, torch.nn as nn, torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--compile", action="store_true")
p.add_argument("--hs", action="store_true")
p.add_argument("--steps", type=int, default=100)
p.add_argument("--threads", type=int, default=0)
a = p.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)

class Attention(nn.Module):
    def __init__(s, d, heads):
        super().__init__()
        s.q, s.k, s.v, s.o = (nn.Linear(d, d) for _ in range(4))
        s.heads = heads
    def forward(s, x):
        b, t, d = x.shape
        split = lambda y: y.view(b, t, s.heads, d // s.heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(split(s.q(x)), split(s.k(x)), split(s.v(x)))
        return s.o(y.transpose(1, 2).reshape(b, t, d))

class Encoder(nn.Module):
    def __init__(s, d, heads, hidden):
        super().__init__()
        s.n1, s.attn, s.n2 = nn.LayerNorm(d), Attention(d, heads), nn.LayerNorm(d)
        s.up, s.down = nn.Linear(d, hidden), nn.Linear(hidden, d)
    def forward(s, x):
        h = x + s.attn(s.n1(x))
        return h + s.down(F.gelu(s.up(s.n2(h))))

class ViT(nn.Module):
    def __init__(s):
        super().__init__()
        s.patches = nn.Conv2d(1, 64, 7, stride=7)
        s.cls, s.pos = nn.Parameter(torch.zeros(1, 64)), nn.Parameter(0.02 * torch.randn(17, 64))
        s.blocks = nn.Sequential(*[Encoder(64, 4, 128) for _ in range(4)])
        s.n, s.head = nn.LayerNorm(64), nn.Linear(64, 10)
    def forward(s, x):
        p = s.patches(x).flatten(2).transpose(1, 2)
        h = torch.cat([s.cls.expand(x.shape[0], -1, -1), p], 1) + s.pos
        return s.head(s.n(s.blocks(h))[:, 0])

def hs(w):
    return w.abs().sum() ** 2 / (w * w).sum()

torch.manual_seed(0)
m = ViT()
opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.05)
penalized = [w for n, w in m.named_parameters() if n.endswith("weight") and w.dim() > 1]
x, y = torch.rand(128, 1, 28, 28), torch.randint(0, 10, (128,))

def step():
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(m(x), y)
    if a.hs:
        loss = loss + 1e-4 * sum(hs(w) for w in penalized)
    loss.backward()
    opt.step()

run = torch.compile(step) if a.compile else step
for _ in range(10):
    run()
t = time.perf_counter()
for _ in range(a.steps):
    run()
rate = 128 * a.steps / (time.perf_counter() - t)
print(f"vit{'-hs' if a.hs else ''} {'compile' if a.compile else 'eager'}: {rate:.0f} samples/s")
