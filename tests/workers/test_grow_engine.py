"""Growing a model (workers/engine/grow), on tiny Llama models built here: width only, depth only and both keep
the logits and the loss (and a naive random init of the same size does not), the symmetry noise keeps them too
and makes the copies train apart, and targets that cannot keep the function are refused with a clear message."""
from __future__ import annotations

import pytest

from workers.engine.grow import GrowError, break_symmetry, grow_model, grow_plan

TOL_LOGITS = 1e-4  # largest absolute logit difference accepted here (logits reach about ±10)
TOL_LOSS = 1e-5  # relative


@pytest.fixture(scope="module")
def trained():
    """A tiny GQA Llama (hidden 32, 2 layers, 4 heads over 2 key/value heads, tied embeddings), trained for a
    few steps on a repeating sequence so that its loss is far from a random model's; and a batch to compare on."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    pattern = torch.arange(24) * 7 % 61
    batch = torch.stack([torch.roll(pattern, s) for s in range(4)])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(15):
        model(input_ids=batch, labels=batch).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    with torch.no_grad():
        out = model(input_ids=batch, labels=batch)
    assert out.loss < 2.0  # trained: a random model sits near ln(61) = 4.1
    return model, batch, out


def _run(model, batch):
    import torch

    with torch.no_grad():
        return model(input_ids=batch, labels=batch)


def _assert_same(small_out, grown_out):
    diff = float((grown_out.logits - small_out.logits).abs().max())
    rel = abs(float(grown_out.loss) - float(small_out.loss)) / float(small_out.loss)
    assert diff < TOL_LOGITS and rel < TOL_LOSS, (diff, rel)


@pytest.mark.parametrize("target", [
    {"hidden_size": 64},  # k=2, heads kept: the head size doubles (rotary pairs interleaved)
    {"hidden_size": 96, "num_attention_heads": 12, "intermediate_size": 100},  # k=3, heads copied, uneven MLP
], ids=["width-head-size", "width-heads"])
def test_width_only_keeps_the_function(trained, target):
    model, batch, out = trained
    plan = grow_plan(model.config.to_dict(), target)
    grown = grow_model(model, plan)
    assert grown.config.num_hidden_layers == 2 and grown.config.hidden_size == target["hidden_size"]
    assert grown.config.rms_norm_eps == pytest.approx(model.config.rms_norm_eps / plan.k ** 2)
    _assert_same(out, _run(grown, batch))


def test_depth_only_keeps_the_function(trained):
    model, batch, out = trained
    grown = grow_model(model, grow_plan(model.config.to_dict(), {"num_hidden_layers": 5}))
    assert len(grown.model.layers) == 5
    # copies sit right after their source with zero output projections; sources keep theirs
    zero = [float(layer.self_attn.o_proj.weight.detach().abs().max()) == 0.0 for layer in grown.model.layers]
    assert zero == [False, True, False, True, True]
    grown_out = _run(grown, batch)
    assert (grown_out.logits == out.logits).all()  # a branch that adds exactly zero: bit for bit the same


def test_width_and_depth_with_noise_keep_the_function_and_a_random_init_does_not(trained):
    import torch
    from transformers import AutoModelForCausalLM

    model, batch, out = trained
    plan = grow_plan(model.config.to_dict(), {"hidden_size": 64, "num_hidden_layers": 4, "intermediate_size": 128,
                                              "num_attention_heads": 8, "num_key_value_heads": 4})
    grown = grow_model(model, plan)
    _assert_same(out, _run(grown, batch))
    before = grown.model.layers[0].self_attn.q_proj.weight.detach().clone()
    break_symmetry(grown, plan, noise=0.05, seed=1)
    assert float((grown.model.layers[0].self_attn.q_proj.weight.detach() - before).abs().max()) > 1e-4  # it did change
    _assert_same(out, _run(grown, batch))
    # negative control: the same target size, naively initialised
    torch.manual_seed(0)
    naive = AutoModelForCausalLM.from_config(grown.config).eval()
    naive_out = _run(naive, batch)
    assert float((naive_out.logits - out.logits).abs().max()) > 1.0
    assert abs(float(naive_out.loss) - float(out.loss)) / float(out.loss) > 0.5


def test_noise_makes_copies_train_apart(trained):
    """Equal copies get equal gradients and stay copies; with the zero-sum noise they move apart."""
    import torch

    model, batch, _ = trained
    plan = grow_plan(model.config.to_dict(), {"hidden_size": 64})
    gaps = {}
    for noise in (0.0, 0.05):
        grown = grow_model(model, plan)
        break_symmetry(grown, plan, noise=noise, seed=1)
        grown.train()
        opt = torch.optim.AdamW(grown.parameters(), lr=1e-2)
        for _ in range(2):
            grown(input_ids=batch, labels=batch).loss.backward()
            opt.step()
            opt.zero_grad()
        emb = grown.model.embed_tokens.weight.detach()
        gaps[noise] = float((emb[:, :32] - emb[:, 32:]).abs().max())  # hidden unit j and its copy j + 32
    assert gaps[0.0] == 0.0 and gaps[0.05] > 1e-3


@pytest.mark.parametrize("target,message", [
    ({"hidden_size": 16}, "smaller than the model (hidden 16 < 32"),
    ({"num_hidden_layers": 1}, "layers 1 < 2"),
    ({"hidden_size": 48}, "not a whole multiple of the model's 32"),
    ({"hidden_size": 64, "num_attention_heads": 6, "num_key_value_heads": 3, "head_dim": 12},
     "head size 12 (hidden_size / num_attention_heads) is not a whole multiple of the model's 8"),
    ({"num_attention_heads": 8, "num_key_value_heads": 8, "head_dim": 8}, "Fewer query heads per key/value head"),
    ({"hidden_size": 32}, "the model's own size"),
])
def test_targets_that_cannot_keep_the_function_are_refused(trained, target, message):
    model, _, _ = trained
    with pytest.raises(GrowError, match=None) as exc:
        grow_plan(model.config.to_dict(), target)
    assert message in str(exc.value)


def test_named_sizes_and_next():
    from workers.engine.tiny import NAMED_SIZES

    def cfg(size):
        return {"model_type": "llama", **NAMED_SIZES[size], "num_key_value_heads": NAMED_SIZES[size][
            "num_attention_heads"], "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}

    assert grow_plan(cfg("nano"), "next").size_name == "micro"
    plan = grow_plan(cfg("nano"), "micro")
    assert (plan.k, plan.r) == (2, 2)  # 4 heads of 16 -> 4 heads of 32
    assert grow_plan(cfg("small"), "next").size_name == "large"  # medium (768) is not a multiple of 512
    with pytest.raises(GrowError, match="not a whole multiple"):
        grow_plan(cfg("small"), "medium")
    with pytest.raises(GrowError, match="No named size"):
        grow_plan(cfg("medium"), "next")
    with pytest.raises(GrowError, match="Llama-architecture"):
        grow_plan({**cfg("nano"), "model_type": "gpt2"}, "micro")
