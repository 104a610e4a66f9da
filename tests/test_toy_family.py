"""A new model family is one class, one registry line and one TOML: a toy family defined here trains
with `ved train`'s loop, loads as a pipeline, draws, is scored, and takes its row in a study table,
with no edit to ved."""

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ved import config as configs
from ved import metrics, models, report, reproduce, vocab
from ved.models.base import Generator
from ved.models.caption_encoders import VOCAB_SIZE
from ved.pipeline import load, load_judge
from ved.rules import number, whole
from ved.train import train


class WordMeans(Generator):
    """Each word votes for pixel logits; a caption's image is the sum of its words' votes, blurred
    by noise: enough to learn `five` from images, nothing like a good model."""

    label = "word means (toy)"

    @dataclass
    class Config:
        smoothing: int = whole(1, 0, 3)  # not used: there to be checked
        init: float = number(0.0, -1.0, 1.0)

    def __init__(self, config=None):
        super().__init__()
        self.config = config or self.Config()
        self.votes = nn.EmbeddingBag(VOCAB_SIZE, 784, mode="sum", padding_idx=vocab.PAD)
        nn.init.constant_(self.votes.weight, self.config.init)

    def logits(self, tokens):
        return self.votes(tokens).view(-1, 1, 28, 28)

    def loss(self, batch):
        logits = batch.per_image(self.logits(batch.tokens))
        recon = F.binary_cross_entropy_with_logits(logits, batch.images, reduction="sum") / len(logits)
        return {"loss": recon, "recon": recon}

    setting_bounds = {"temperature": (0.0, 5.0)}

    @torch.no_grad()
    def generate(self, tokens, lengths, n, generator=None, *, temperature: float = 1.0):
        logits = self.logits(tokens)[:, None, 0].expand(-1, n, 28, 28)
        device = generator.device if generator is not None else "cpu"
        noise = torch.randn(logits.shape, generator=generator, device=device).to(logits.device)
        return torch.sigmoid(logits + temperature * noise)


TOML = """
[model]
kind = "toy"
init = 0.1

[data]
family = "label"
train_images = 2000

[train]
batch_size = 64
lr = 0.1
max_epochs = 3
eval_images = 200

[sample]
temperature = 0.1
"""


@pytest.fixture
def toy_family(monkeypatch):
    monkeypatch.setitem(models.GENERATORS, "toy", WordMeans)  # the registry line


def test_a_toy_model_family_trains_draws_is_scored_and_joins_the_study(toy_family, tmp_path, mnist_data):
    path = tmp_path / "toy-label.toml"
    path.write_text(TOML)
    config = configs.load(path)
    assert config["model"] == {"kind": "toy", "smoothing": 1, "init": 0.1}
    with pytest.raises(configs.ConfigError, match=r"\[model\] init = 2\.0; allowed: a number from -1 to 1"):
        configs.resolve({"model": {"kind": "toy", "init": 2.0}})
    with pytest.raises(configs.ConfigError, match=r"temperature = 9; allowed: a number from 0 to 5"):
        configs.resolve({"model": {"kind": "toy"}, "sample": {"temperature": 9}})

    run = tmp_path / "runs" / "toy-label"
    result = train(config, run, progress=False, log=lambda m: None)
    assert result["state"]["epoch"] == 3
    assert result["history"][-1]["valid_recon"] < result["history"][0]["valid_recon"]

    pipe = load(run)  # checked, built from its Config, test-drawn at load
    assert isinstance(pipe.model, WordMeans) and pipe.settings == {"temperature": 0.1}
    images = pipe(["five", "seven"], num_images_per_prompt=3, generator=0, output_type="mnist").images
    assert images.shape == (2, 3, 28, 28)

    judge = load_judge()
    scores = metrics.evaluate_model(
        pipe.model, pipe.config, judge, splits=["valid"], samples=200, progress=False, data=mnist_data
    )["results"]["label"]["valid"]
    assert scores["accuracy"] > 0.5  # mean images of each digit: the judge reads most of them

    study = reproduce.Study(tmp_path, quick=True, device="cpu", beyond=["toy-label"])
    study.comparison = {"toy-label": {"label": {"valid": scores}}}
    rows = reproduce.comparison_rows(study)
    assert rows["toy-label"][:3] == ("toy-label", "word means (toy)", {"temperature": 0.1})
    table = report.comparison_table({}, rows)
    assert f"| toy-label | valid | word means (toy) | {scores['accuracy']:.1%} |" in table
    assert "| word means (toy) | temperature 0.1 | `toy-label` |" in report.sampling_table(rows)
