import pytest
import torch

from gptcourse.data import CorpusUnavailableError, GPTDataset, create_dataloader, load_corpus, tiny_shakespeare, train_val_split


def test_offline_corpus_is_english_prose():
    text = load_corpus()
    assert len(text) > 100_000 and "statement" in text


def test_unknown_corpus():
    with pytest.raises(ValueError, match="python_docs"):
        load_corpus("wikipedia")


def test_windows_and_shifted_targets():
    ids = list(range(100))
    ds = GPTDataset(ids, max_length=8, stride=4)
    assert len(ds) == 23  # starts 0, 4, ..., 88 (start + 8 < 100)
    x, y = ds[3]
    assert x.tolist() == list(range(12, 20)) and y.tolist() == list(range(13, 21))


def test_dataset_rejects_bad_sizes():
    with pytest.raises(ValueError, match="too few"):
        GPTDataset(list(range(5)), max_length=8)
    with pytest.raises(ValueError, match="stride"):
        GPTDataset(list(range(50)), max_length=8, stride=0)


def test_dataloader_shapes_and_seeded_order():
    text = load_corpus()[:20_000]
    batches = [next(iter(create_dataloader(text, batch_size=3, max_length=16, stride=16, seed=7))) for _ in range(2)]
    x, y = batches[0]
    assert x.shape == y.shape == (3, 16) and x.dtype == torch.long
    torch.testing.assert_close(batches[0][0], batches[1][0])


def test_train_val_split():
    train, val = train_val_split("abcdefghij", 0.8)
    assert (train, val) == ("abcdefgh", "ij")
    with pytest.raises(ValueError):
        train_val_split("abc", 1.0)


def test_tiny_shakespeare_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path))

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr("urllib.request.urlopen", refuse)
    with pytest.raises(CorpusUnavailableError, match="python_docs"):
        tiny_shakespeare()


def test_tiny_shakespeare_rejects_a_corrupted_download(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path))

    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return b"not shakespeare"

    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: Response())
    with pytest.raises(CorpusUnavailableError, match="sha256"):
        tiny_shakespeare()
    assert not (tmp_path / "tiny_shakespeare.txt").exists()
