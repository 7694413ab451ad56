"""The training loop: schedule, weight-decay groups, evaluation, accumulation, precision, resume."""

import dataclasses
import math
import os
import re

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import gptcourse.train as train_module
from gptcourse import GPT, GPTConfig
from gptcourse.checkpoint import CHECKPOINT_FILE, load_checkpoint
from gptcourse.data import create_dataloader
from gptcourse.train import History, TrainConfig, evaluate, lr_at, param_groups, train

QUIET = dict(progress=False, log=False, sample_every=0)


@pytest.fixture
def tiny(tiny_config):
    """The shared tiny GPT's config, with dropout on: resuming must restore the random state too."""
    return dataclasses.replace(tiny_config, drop_rate=0.1)


def token_ids(n=3000, seed=0):
    """A learnable sequence: mostly i -> i+1 (mod 97), with some noise."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.cumsum(torch.ones(n, dtype=torch.long), 0) % 97
    noise = torch.rand(n, generator=g) < 0.1
    return torch.where(noise, torch.randint(0, 97, (n,), generator=g), ids)


def loaders(batch_size=4, shuffle=True):
    ids = token_ids()
    train_loader = create_dataloader(ids[:2500], batch_size=batch_size, max_length=16, stride=16, shuffle=shuffle)
    val_loader = create_dataloader(ids[2500:], batch_size=batch_size, max_length=16, stride=16, shuffle=False)
    return train_loader, val_loader


def test_schedule_warms_up_then_decays_to_min_lr():
    cfg = TrainConfig(max_steps=100, lr=1e-3, min_lr=1e-4, warmup_steps=10)
    lrs = [lr_at(s, cfg) for s in range(120)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)  # linear: 1/10 ... 10/10 of the peak
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10], strict=True))
    assert lrs[10] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))  # cosine: never rises again
    assert lrs[55] == pytest.approx((1e-3 + 1e-4) / 2)  # half-way through the decay: half-way between
    assert lrs[100] == pytest.approx(1e-4) and lrs[119] == pytest.approx(1e-4)
    assert lr_at(0, TrainConfig(max_steps=5, warmup_steps=0, lr=1.0, min_lr=0.0)) == pytest.approx(1.0)


def test_weight_decay_only_on_matrices_and_embeddings(tiny):
    model = GPT(tiny)
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert {"tok_emb.weight", "pos_emb.weight", "trf_blocks.0.att.W_query.weight", "trf_blocks.1.ff.layers.2.weight"} <= decayed
    assert not any(n.endswith(("bias", "scale", "shift")) for n in decayed)
    assert all(names[id(p)].endswith(("bias", "scale", "shift")) for p in no_decay["params"])
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    # The tied head is the embedding: every parameter appears exactly once.
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == model.num_parameters()


@pytest.mark.parametrize("field", ["lr", "min_lr", "weight_decay", "grad_clip"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=rf"TrainConfig.{field} must be a finite number, got {value}"):
        TrainConfig(**{field: value})


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="TrainConfig.max_steps must be a positive int, got 0"):
        TrainConfig(max_steps=0)
    with pytest.raises(TypeError, match=r"TrainConfig.eval_every must be a positive int, got 2.5 \(float\)"):
        TrainConfig(eval_every=2.5)
    with pytest.raises(ValueError, match="TrainConfig.warmup_steps must be <= max_steps=10, got 11"):
        TrainConfig(max_steps=10, warmup_steps=11)
    with pytest.raises(ValueError, match="TrainConfig.min_lr must be <= lr=0.001"):
        TrainConfig(lr=1e-3, min_lr=1e-2)
    with pytest.raises(ValueError, match="TrainConfig.lr must be > 0.0, got 0"):
        TrainConfig(lr=0)
    with pytest.raises(ValueError, match="TrainConfig.grad_clip must be > 0.0, got 0"):
        TrainConfig(grad_clip=0)
    with pytest.raises(TypeError, match="TrainConfig.weight_decay must be a number, got '0.1'"):
        TrainConfig(weight_decay="0.1")
    with pytest.raises(ValueError, match=r"TrainConfig.betas\[1\] must be in \[0, 1\), got 1.0"):
        TrainConfig(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Unknown TrainConfig.dtype torch.int64"):
        TrainConfig(dtype=torch.int64)


def test_bad_loaders_are_a_clear_error(tiny):
    model = GPT(tiny)
    empty = DataLoader(TensorDataset(torch.zeros(3, 16, dtype=torch.long), torch.zeros(3, 16, dtype=torch.long)), batch_size=4, drop_last=True)
    with pytest.raises(ValueError, match="train_loader yields no batches: its dataset has 3 windows and batch_size=4"):
        train(model, empty, config=TrainConfig(max_steps=1, **QUIET))
    with pytest.raises(ValueError, match="loader yields no batches"):
        evaluate(model, empty)
    train_loader, _ = loaders()
    with pytest.raises(ValueError, match="max_batches must be a positive int, got 0"):
        evaluate(model, train_loader, max_batches=0)
    with pytest.raises(ValueError, match="sample_every=0"):
        train(model, train_loader, config=TrainConfig(max_steps=1, progress=False, log=False))  # samples need GPT-2's vocabulary


def test_resume_without_a_checkpoint_is_an_error_not_a_fresh_start(tmp_path, tiny):
    model, (train_loader, _) = GPT(tiny), loaders()
    with pytest.raises(ValueError, match="resume=True needs TrainConfig.checkpoint_dir"):
        train(model, train_loader, config=TrainConfig(max_steps=1, **QUIET), resume=True)
    with pytest.raises(FileNotFoundError, match=rf"resume=True, but TrainConfig.checkpoint_dir='{tmp_path}' holds no checkpoint"):
        train(model, train_loader, config=TrainConfig(max_steps=1, checkpoint_dir=tmp_path, **QUIET), resume=True)
    assert os.listdir(tmp_path) == []


def test_an_unwritable_checkpoint_dir_fails_before_the_first_step(tmp_path, tiny, monkeypatch):
    (tmp_path / "notes.txt").write_text("a file where the directory should be")
    config = TrainConfig(max_steps=50, checkpoint_dir=tmp_path / "notes.txt" / "run", **QUIET)

    def no_work(*args):
        raise AssertionError("train computed a loss before checking that it can save its checkpoints")

    monkeypatch.setattr(train_module, "batch_loss", no_work)
    with pytest.raises(ValueError, match=r"TrainConfig.checkpoint_dir='.*notes.txt/run' is not a directory files can be written to"):
        train(GPT(tiny), loaders()[0], config=config)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only directories anyway")
def test_a_read_only_checkpoint_dir_fails_before_the_first_step(tmp_path, tiny, monkeypatch):
    monkeypatch.setattr(train_module, "batch_loss", lambda *a: pytest.fail("trained before checking checkpoint_dir"))
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="Permission denied"):
            train(GPT(tiny), loaders()[0], config=TrainConfig(max_steps=50, checkpoint_dir=tmp_path, **QUIET))
    finally:
        tmp_path.chmod(0o700)


def test_evaluate_restores_mode_and_data_order(tiny):
    model = GPT(tiny).train()
    train_loader, val_loader = loaders()
    state = train_loader.generator.get_state()
    loss = evaluate(model, train_loader, max_batches=3)
    assert model.training and torch.equal(train_loader.generator.get_state(), state)
    model.eval()
    with torch.no_grad():
        manual = [torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()).item() for x, y in list(val_loader)]
    assert evaluate(model, val_loader) == pytest.approx(sum(manual) / len(manual))
    assert loss == pytest.approx(math.log(97), abs=0.5)  # untrained: close to the uniform guess


def test_training_lowers_the_loss_and_fills_the_history(tiny):
    torch.manual_seed(0)
    model = GPT(tiny)
    train_loader, val_loader = loaders()
    cfg = TrainConfig(max_steps=40, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_every=15, eval_batches=4, **QUIET)
    history = train(model, train_loader, val_loader, cfg)
    assert history.step == [0, 15, 30, 40]
    assert history.tokens_seen == [0, 15 * 64, 30 * 64, 40 * 64]
    assert len(history.step_loss) == len(history.grad_norm) == 40
    assert history.val_loss[0] == pytest.approx(math.log(97), abs=0.2)  # random weights: the uniform guess
    assert history.val_loss[-1] < history.val_loss[0] - 1.0 and history.train_loss[-1] < history.train_loss[0] - 1.0
    assert history.lr == [lr_at(0, cfg), lr_at(14, cfg), lr_at(29, cfg), lr_at(39, cfg)]


def test_gradient_accumulation_equals_one_big_batch(tiny_config):
    cfg = tiny_config  # no dropout: the two runs must see the same network
    results = []
    for batch_size, accum in [(4, 1), (2, 2)]:
        torch.manual_seed(0)
        model = GPT(cfg)
        train_loader, _ = loaders(batch_size=batch_size, shuffle=False)
        train(model, train_loader, config=TrainConfig(max_steps=3, warmup_steps=0, grad_accum_steps=accum, eval_every=10, eval_batches=1, **QUIET))
        results.append(model.state_dict())
    for name in results[0]:
        torch.testing.assert_close(results[0][name], results[1][name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_paths_run(dtype, tiny):
    """bf16 autocast, and fp16 with a gradient scaler (what a T4 uses), exercised on the CPU."""
    torch.manual_seed(0)
    model = GPT(tiny)
    train_loader, val_loader = loaders()
    history = train(model, train_loader, val_loader, TrainConfig(max_steps=4, warmup_steps=1, eval_every=4, eval_batches=2, dtype=dtype, **QUIET))
    assert all(math.isfinite(x) for x in history.val_loss) and history.val_loss[-1] < history.val_loss[0]
    assert next(model.parameters()).dtype == torch.float32  # the master weights stay fp32


def test_samples_are_recorded():
    torch.manual_seed(0)
    model = GPT(GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1))
    ids = torch.randint(0, 50257, (400,))
    train_loader = create_dataloader(ids, batch_size=2, max_length=16, stride=16)
    cfg = TrainConfig(max_steps=2, warmup_steps=1, eval_every=1, eval_batches=1, sample_tokens=5, sample_prompt="Hello", progress=False, log=False)
    history = train(model, train_loader, config=cfg)
    assert [s for s, _ in history.samples] == [0, 1, 2]
    assert all(text.startswith("Hello") for _, text in history.samples)
    assert all(math.isnan(v) for v in history.val_loss)  # no validation loader


def test_resume_continues_exactly_where_the_checkpoint_stopped(tmp_path, monkeypatch, tiny):
    """Interrupted at step 5 after a checkpoint at step 4, then resumed: the same as one run."""
    cfg = TrainConfig(max_steps=8, lr=3e-3, warmup_steps=2, eval_every=3, eval_batches=2, checkpoint_every=4, **QUIET)

    def run(directory, die_at=None, seed=0, resume=False):
        torch.manual_seed(seed)
        model = GPT(tiny)  # dropout on: the random state must be restored too
        train_loader, val_loader = loaders(batch_size=4)  # shuffled: so must the data order
        config = dataclasses.replace(cfg, checkpoint_dir=directory)
        if die_at is not None:
            real_lr_at = train_module.lr_at

            def dying(step, c):
                if step == die_at:
                    raise KeyboardInterrupt
                return real_lr_at(step, c)

            monkeypatch.setattr(train_module, "lr_at", dying)
        try:
            return model, train(model, train_loader, val_loader, config, resume=resume)
        finally:
            monkeypatch.undo()

    reference, ref_history = run(tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", die_at=5)
    assert load_checkpoint(tmp_path / "resumed", GPT(tiny))["step"] == 4
    resumed, history = run(tmp_path / "resumed", seed=1, resume=True)  # other initial weights: all must come from the checkpoint
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], tensor, atol=0, rtol=0, msg=name)
    for key in ("step", "tokens_seen", "train_loss", "val_loss", "lr", "step_loss"):
        assert getattr(history, key) == getattr(ref_history, key), key


def test_a_run_saves_one_checkpoint_file_that_loads_without_code(tmp_path, tiny):
    torch.manual_seed(0)
    model = GPT(tiny)
    train_loader, _ = loaders()
    train(model, train_loader, config=TrainConfig(max_steps=2, warmup_steps=1, eval_every=2, eval_batches=1, checkpoint_dir=tmp_path, **QUIET))
    assert os.listdir(tmp_path) == [CHECKPOINT_FILE]
    checkpoint = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)  # no pickled code inside
    assert checkpoint["state"]["step"] == 2 and checkpoint["state"]["history"]["step"] == [0, 2]
    fresh = GPT(tiny)
    load_checkpoint(tmp_path, fresh)
    torch.testing.assert_close(fresh.tok_emb.weight, model.tok_emb.weight, rtol=0, atol=0)


def test_loss_and_schedule_figures():
    import matplotlib.pyplot as plt

    from gptcourse.plots import plot_losses, plot_lr_schedule

    h = History(step=[0, 2], tokens_seen=[0, 128], train_loss=[4.5, 3.0], val_loss=[4.6, 3.2], lr=[1e-3, 5e-4], tokens_per_second=[math.nan, 10.0], step_loss=[4.0, 3.5])
    fig = plot_losses(h, baseline=math.log(97))
    assert [line.get_label() for line in fig.axes[0].get_lines()][:3] == ["batch loss (each step)", "training loss", "validation loss"]
    cfg = TrainConfig(max_steps=20, warmup_steps=2)
    fig2 = plot_lr_schedule(range(20), [lr_at(s, cfg) for s in range(20)], cfg.warmup_steps)
    assert max(fig2.axes[0].get_lines()[0].get_ydata()) == pytest.approx(cfg.lr)
    plt.close("all")


def test_exercise_7_3_check_allows_rounding_and_catches_the_wrong_answers(tiny_config, exercise_check):
    """Exact up to float32 rounding, at any gradient scale; not halved, dropout on or
    the same tensors twice fail (the GPU's config has drop_rate=0.1)."""
    check = exercise_check("7.3")

    def gradients(config, divide=2):
        torch.manual_seed(0)
        net = GPT(config)
        x, y = torch.randint(0, 97, (8, 16)), torch.randint(0, 97, (8, 16))
        train_module.batch_loss(net, x, y).backward()
        full = [p.grad.clone() for p in net.parameters()]
        net.zero_grad()
        for half in (slice(0, 4), slice(4, 8)):
            (train_module.batch_loss(net, x[half], y[half]) / divide).backward()
        return net, full, [p.grad for p in net.parameters()]

    def run(model, full, accumulated):
        exec(check, {"torch": torch, "model": model, "full_grads": full, "accumulated_grads": accumulated})

    net, full, accumulated = gradients(tiny_config)
    run(net, full, accumulated)
    # Another device sums in another order: relative differences of float32's size pass,
    # and so do gradients 1000× larger (the old absolute 1e-6 failed a GPU's bigger model).
    g = torch.Generator().manual_seed(0)
    rounded = [a * (1 + 1e-6 * torch.randn(a.shape, generator=g)) for a in accumulated]
    run(net, full, rounded)
    run(net, [1000 * f for f in full], [1000 * r for r in rounded])
    with pytest.raises(AssertionError, match=re.escape("each half's loss / 2?")):
        run(*gradients(tiny_config, divide=1))
    with pytest.raises(AssertionError, match=re.escape("dropout off?")):
        run(*gradients(dataclasses.replace(tiny_config, drop_rate=0.1)))
    with pytest.raises(AssertionError, match="clone the full batch's gradients"):
        run(net, accumulated, accumulated)
    with pytest.raises(AssertionError, match="one gradient per parameter"):
        run(net, full[:-1], accumulated[:-1])
