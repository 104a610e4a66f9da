"""The caption encoders and the conditional VAE, on real MNIST and real captions."""
import pytest
import torch

from ved import captions, models, vocab
from ved.batches import CaptionedImages, CaptionPool
from ved.models import caption_encoders

ENCODERS = sorted(caption_encoders.ENCODERS)


@pytest.mark.parametrize("name", ENCODERS)
def test_caption_encoder_ignores_padding(name):
    """A caption's vector must not depend on how long the other captions of its batch are."""
    torch.manual_seed(0)
    encoder = caption_encoders.build(name, hidden=16, width=8).eval()
    short, lengths = vocab.encode(["three plus two"])
    batch, batch_lengths = vocab.encode(["three plus two", "one plus two plus one plus one minus three"])
    with torch.no_grad():
        alone, together = encoder(short, lengths), encoder(batch, batch_lengths)
    assert alone.shape == (1, encoder.out_dim)
    torch.testing.assert_close(alone[0], together[0], atol=1e-5, rtol=1e-5)


def test_word_sum_is_a_sum_over_words_in_context():
    """`a plus b plus c` is `a plus b` plus what `plus c` adds after `b`: the property behind
    length generalisation (see caption_encoders.py)."""
    torch.manual_seed(0)
    encoder = caption_encoders.build("word-sum", hidden=16, width=8).eval()
    with torch.no_grad():
        v = encoder(*vocab.encode(["three plus two plus four", "three plus two", "two plus four", "two"]))
    torch.testing.assert_close(v[0], v[1] + v[2] - v[3], atol=1e-5, rtol=1e-5)


def test_unknown_caption_encoder_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown caption_encoder 'lstm'; choose one of"):
        caption_encoders.build("lstm")


def _batch(mnist_data, size=64):
    images, labels = mnist_data.split("valid")
    data = CaptionedImages(images[:size], labels[:size], CaptionPool(captions.caption_pool("arithmetic", "train")))
    g = torch.Generator().manual_seed(0)
    return data.batch(torch.arange(size), data.pool.draw(data.labels, g))


@pytest.mark.parametrize("options", [{}, {"posterior_sees_caption": True, "decoder_sees_caption": True,
                                          "learned_prior_scale": True, "caption_encoder": "attention"}])
def test_cvae_learns_and_samples(mnist_data, options):
    torch.manual_seed(0)
    model = models.build({"family": "cvae", "channels": 8, "hidden": 64, "latent": 8, "kl_warmup_steps": 10,
                          **options})
    batch = _batch(mnist_data)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        losses = model.loss(batch)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        first = first or losses["recon"].item()
    assert losses["recon"].item() < 0.8 * first  # nats per image: it learns to draw ink
    assert model.steps.item() == 30  # the KL ramp is counted in the state dict, so a resume continues it
    assert "steps" in model.state_dict()
    model.eval()
    tokens, lengths = vocab.encode(["three plus two", "nine"])
    a = model.generate(tokens, lengths, 4, torch.Generator().manual_seed(1))
    b = model.generate(tokens, lengths, 4, torch.Generator().manual_seed(1))
    assert a.shape == (2, 4, 28, 28) and 0 <= a.min() and a.max() <= 1
    torch.testing.assert_close(a, b)
    assert not torch.equal(a[0, 0], a[0, 1])  # samples of one caption differ
    at_mean = model.generate(tokens, lengths, 2, torch.Generator().manual_seed(1), temperature=0.0)
    torch.testing.assert_close(at_mean[:, 0], at_mean[:, 1])


def test_paper_ved_takes_another_caption_encoder(mnist_data):
    model = models.build({"family": "paper_ved", "caption_encoder": "word-sum", "gru_hidden": 16})
    assert torch.isfinite(model.loss(_batch(mnist_data))["loss"])
    assert "encoder.word.weight" in model.state_dict()
