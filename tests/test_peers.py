"""benchmarks/peers.py: the peers (Hugging Face's GPT-2, nanoGPT's model) built at our config (chapter 10)."""

from __future__ import annotations

import importlib.util
import os
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gptcourse import GPT, GPTConfig
from gptcourse.flops import count_flops, cpu_sdpa_flop_formulas
from gptcourse.train import cross_entropy_loss

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/ is a folder of scripts, not a package: its peers.py is loaded from its file.
_spec = importlib.util.spec_from_file_location("benchmark_peers", ROOT / "benchmarks" / "peers.py")
peers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peers)
hf_gpt2, load_nanogpt, nanogpt_gpt = peers.hf_gpt2, peers.load_nanogpt, peers.nanogpt_gpt
# A checkout of https://github.com/karpathy/nanoGPT, outside this repository (its code is never copied in).
NANOGPT = Path(os.environ.get("NANOGPT_PATH", ROOT.parent / "peers" / "nanoGPT"))
needs_nanogpt = pytest.mark.skipif(not (NANOGPT / "model.py").is_file(), reason=f"no nanoGPT checkout at {NANOGPT} (set NANOGPT_PATH)")

TINY = GPTConfig(vocab_size=101, context_length=16, emb_dim=32, n_heads=2, n_layers=2)

# A stand-in with nanoGPT's interface (not its code): the parts the adapter relies on, so that
# the adapter is tested without a checkout. forward(idx) gives the last position's logits only.
FAKE_NANOGPT = textwrap.dedent(
    """
    from dataclasses import dataclass
    import torch
    from torch import nn

    @dataclass
    class GPTConfig:
        block_size: int = 8
        vocab_size: int = 11
        n_layer: int = 1
        n_head: int = 1
        n_embd: int = 4
        dropout: float = 0.0
        bias: bool = True

    class MLP(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.c_fc, self.gelu, self.c_proj = nn.Linear(c.n_embd, 4 * c.n_embd), nn.GELU(), nn.Linear(4 * c.n_embd, c.n_embd)
        def forward(self, x):
            return self.c_proj(self.gelu(self.c_fc(x)))

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.mlp = MLP(c)
        def forward(self, x):
            return x + self.mlp(x)

    class GPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.config = config
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd),
            ))
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
            print("number of parameters: ...")
        def forward(self, idx, targets=None):
            x = self.transformer.wte(idx)
            for block in self.transformer.h:
                x = block(x)
            x = self.transformer.ln_f(x)
            if targets is not None:
                logits = self.lm_head(x)
                return logits, nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
            return self.lm_head(x[:, [-1], :]), None
    """
)


@pytest.fixture
def fake_nanogpt(tmp_path):
    (tmp_path / "model.py").write_text(FAKE_NANOGPT)
    return tmp_path


def flops_counted(model: nn.Module, idx: torch.Tensor) -> int:
    """Training FLOPs of one step, as FlopCounterMode counts them (CPU attention included)."""
    with FlopCounterMode(display=False, custom_mapping=cpu_sdpa_flop_formulas()) as counter:
        cross_entropy_loss(model(idx), idx).backward()
    return counter.get_total_flops()


# ---- Hugging Face


def test_hf_gpt2_is_our_model_in_their_code():
    peer = hf_gpt2(TINY)
    assert peer.model.config._attn_implementation == "sdpa"
    assert sum(p.numel() for p in peer.parameters()) == GPT(TINY).num_parameters()  # tied head, same shapes
    idx = torch.randint(0, 101, (3, 16))
    assert peer(idx).shape == (3, 16, 101)  # token ids in, logits out
    assert flops_counted(peer, idx) == count_flops(TINY, 3, 16).total  # one FLOP count divides both speeds


# ---- nanoGPT


def test_nanogpt_adapter_returns_every_position(fake_nanogpt, capsys):
    peer = nanogpt_gpt(GPTConfig(vocab_size=11, context_length=8, emb_dim=4, n_heads=1, n_layers=1), fake_nanogpt)
    assert capsys.readouterr().out == "", "its parameter-count print is silenced"
    idx = torch.randint(0, 11, (2, 8))
    logits = peer(idx)
    torch.testing.assert_close(logits, peer.model(idx, idx)[0], msg="the logits of every position, as with targets")
    assert peer.model.transformer.h[0].mlp.gelu.approximate == "tanh"
    assert nanogpt_gpt(TINY, fake_nanogpt / "model.py", gelu="exact").model.transformer.h[0].mlp.gelu.approximate == "none"


def test_nanogpt_path_and_gelu_errors_name_the_parameter(tmp_path):
    with pytest.raises(FileNotFoundError, match="nanogpt_path: there is no nanoGPT model.py at"):
        load_nanogpt(tmp_path / "missing")
    (tmp_path / "model.py").write_text("x = 1\n")
    with pytest.raises(ImportError, match="nanogpt_path: .* defines no GPT and GPTConfig"):
        load_nanogpt(tmp_path)
    with pytest.raises(ValueError, match="gelu 'erf'"):
        nanogpt_gpt(TINY, tmp_path, gelu="erf")


@needs_nanogpt
def test_real_nanogpt_at_our_config():
    torch.manual_seed(0)
    peer = nanogpt_gpt(TINY, NANOGPT)
    assert sum(p.numel() for p in peer.parameters()) == GPT(TINY).num_parameters()
    idx, targets = torch.randint(0, 101, (2, 16)), torch.randint(0, 101, (2, 16))
    logits = peer(idx)
    own_logits, own_loss = peer.model(idx, targets)
    torch.testing.assert_close(logits, own_logits)
    torch.testing.assert_close(cross_entropy_loss(logits, targets), own_loss)  # the same loss as nanoGPT's own
    assert flops_counted(peer, idx) == count_flops(TINY, 2, 16).total, "no second loss, no extra matmul"
