"""The supervised trainer's loss (workers/engine/sft/recipe.py `_trainer_class`): only positions with a target go
through the output layer, in recomputed pieces — and the loss and every gradient equal the stock Trainer's."""
import pytest
import torch

from workers.engine.sft import recipe as recipe_mod


def _batch(vocab: int, *, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (3, 24), generator=g)
    attn = torch.ones_like(ids)
    attn[2, 18:] = 0  # a padded row
    labels = ids.clone()
    labels[:, :10] = -100  # the prompt
    labels[attn == 0] = -100
    labels[1, 15:] = -100  # a row with fewer targets
    return {"input_ids": ids, "attention_mask": attn, "labels": labels}


def _trainer(cls, model, tmp_path):
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=3, report_to=[], use_cpu=True)
    return cls(model=model, args=args)


def _loss_and_grads(trainer, model, batch, n):
    model.zero_grad()
    loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=n)
    loss.backward()
    return loss.detach(), {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("chunk", [1024, 7])  # one piece, and many pieces (7 targets each)
def test_same_loss_and_gradients_as_the_stock_trainer(tiny_model_dir, tmp_path, monkeypatch, chunk):
    from transformers import AutoModelForCausalLM, Trainer

    monkeypatch.setattr(recipe_mod, "LOSS_CHUNK_TOKENS", chunk)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    batch = _batch(model.config.vocab_size)
    n = int(batch["labels"][:, 1:].ne(-100).sum())

    stock_loss, stock_grads = _loss_and_grads(_trainer(Trainer, model, tmp_path), model, batch, n)
    ours = _trainer(recipe_mod._trainer_class(), model, tmp_path / "b")
    loss, grads = _loss_and_grads(ours, model, batch, n)

    assert ours.targets_only is True  # the lean path was taken (it agreed on the first batch)
    assert torch.allclose(loss, stock_loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == stock_grads.keys()
    for name, g in grads.items():
        assert torch.allclose(g, stock_grads[name], rtol=1e-4, atol=1e-6), name
    # without num_items_in_batch: a mean over the batch's targets, as the stock loss
    model.zero_grad()
    mean_loss = ours.compute_loss(model, dict(batch))
    stock_mean = _trainer(Trainer, model, tmp_path / "c").compute_loss(model, dict(batch))
    assert torch.allclose(mean_loss, stock_mean, rtol=1e-5)


def test_a_model_whose_hidden_states_are_not_the_head_input_is_trained_the_stock_way(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, Trainer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    real_forward = model.forward

    def skewed(*args, **kwargs):  # an architecture whose last hidden state is not what the head reads
        out = real_forward(*args, **kwargs)
        if out.hidden_states is not None:
            out.hidden_states = (*out.hidden_states[:-1], out.hidden_states[-1] * 3.0)
        return out

    model.forward = skewed
    batch = _batch(model.config.vocab_size, seed=1)
    ours = _trainer(recipe_mod._trainer_class(), model, tmp_path)
    loss = ours.compute_loss(model, dict(batch))
    assert ours.targets_only is False
    stock = _trainer(Trainer, model, tmp_path / "b").compute_loss(model, dict(batch))
    assert torch.allclose(loss, stock)


@pytest.mark.parametrize("hp,expected", [({"checkpoint_layers": 0.5}, [0]), ({"checkpoint_layers": 1.0}, [0, 1]),
                                         ({"gradient_checkpointing": True}, [0, 1]), ({}, [])])
def test_a_share_of_the_layers_is_checkpointed_and_the_gradients_do_not_change(tiny_model_dir, hp, expected):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM
    from transformers.modeling_layers import GradientCheckpointingLayer

    from workers.engine.sft.models import apply_checkpointing, lora_config

    def grads(model):
        model.train()
        batch = _batch(model.config.vocab_size, seed=3)
        model.zero_grad()
        model(**batch).loss.backward()
        return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    lora = {"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0}
    torch.manual_seed(0)
    plain = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), lora_config(lora))
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), lora_config(lora))
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert len(layers) == 2  # the nano test model
    assert apply_checkpointing(model, hp) == len(expected)
    assert [i for i, m in enumerate(layers) if m.gradient_checkpointing] == expected
    want, got = grads(plain), grads(model)
    assert want.keys() == got.keys() and want
    for k in want:
        assert torch.allclose(want[k], got[k], rtol=1e-4, atol=1e-6), k
