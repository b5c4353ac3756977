"""run_create's estimate and too-long check use the token counts stored at import when they were made
with the run's tokenizer + chat template, and tokenize the dataset only otherwise."""
from __future__ import annotations

import pytest

from apps.core.exceptions import ValidationFailed
from apps.training import services
from apps.training.services import estimates

pytestmark = pytest.mark.django_db


def _store_counts(version, *, counted_with: str, tokenizer_dir) -> list[int]:
    """What the datasets import writes: per-example counts with the base model's counter, and its name."""
    from apps.datasets.models import Example
    from apps.datasets.validation.tokens import TokenCounter

    counter = TokenCounter(str(tokenizer_dir), name=counted_with)
    rows = list(version.examples.order_by("index"))
    counts = counter.count([{"messages": e.messages, "tools": e.tools} for e in rows])
    for e, (n, _) in zip(rows, counts):
        e.token_count = n
    Example.objects.bulk_update(rows, ["token_count"])
    version.stats = {**(version.stats or {}), "tokens": {"base_model": counter.name, "total": sum(n for n, _ in counts)}}
    version.save(update_fields=["stats"])
    return [n for (n, _), e in zip(counts, rows) if e.split == "train"]


def _no_tokenizing(monkeypatch):
    def boom(*a, **kw):
        raise AssertionError("the dataset was tokenized although its stored counts match")

    monkeypatch.setattr(estimates, "token_lengths", boom)
    monkeypatch.setattr(estimates, "version_examples", boom)
    import transformers

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", boom)


def test_matching_stored_counts_replace_tokenization(member, qa_version, tiny_base_model, tiny_model_dir,
                                                     monkeypatch):
    tokenized = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny",
                                    hyperparameters={"batch_size": 4}, dry_run=True)["estimate"]
    assert tokenized["token_counts"] == "tokenized"
    train_counts = _store_counts(qa_version, counted_with="tiny", tokenizer_dir=tiny_model_dir)
    _no_tokenizing(monkeypatch)
    stored = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny",
                                 hyperparameters={"batch_size": 4}, dry_run=True)["estimate"]
    assert stored["token_counts"] == "stored"
    assert stored["dataset_tokens"] == sum(train_counts) and stored["longest_example_tokens"] == max(train_counts)
    # the import's counter and the training tokenization agree on these chat examples
    for key in ("dataset_tokens", "steps", "longest_example_tokens", "examples_too_long", "tokens_processed"):
        assert stored[key] == tokenized[key], key
    assert stored["steps"] == 6  # 24 train examples / batch 4


def test_too_long_check_from_stored_counts(member, qa_version, tiny_base_model, tiny_model_dir, monkeypatch):
    train_counts = _store_counts(qa_version, counted_with="tiny", tokenizer_dir=tiny_model_dir)
    limit = max(train_counts) - 1
    assert limit >= 16  # run_create's minimum max_seq_len
    over = sum(1 for n in train_counts if n > limit)
    assert over
    _no_tokenizing(monkeypatch)
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny",
                            hyperparameters={"max_seq_len": limit})
    assert exc.value.errors[0]["field"] == "hyperparameters.max_seq_len"
    assert f"{over} example(s) are longer" in exc.value.message and f"longest {max(train_counts)}" in exc.value.message
    est = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny",
                              hyperparameters={"max_seq_len": limit}, allow_truncation=True,
                              dry_run=True)["estimate"]
    assert est["dataset_tokens"] == sum(min(n, limit) for n in train_counts)


@pytest.mark.parametrize("case", ["other_base_model", "missing_count"])
def test_counts_from_another_tokenizer_or_incomplete_are_not_trusted(case, member, qa_version, tiny_base_model,
                                                                     tiny_model_dir, monkeypatch):
    from apps.datasets.models import Example

    _store_counts(qa_version, counted_with="tiny" if case == "missing_count" else "smollm2-135m-instruct",
                  tokenizer_dir=tiny_model_dir)
    # wrong counts: if they were used, the estimate would say so
    Example.objects.filter(version=qa_version).update(token_count=100_000)
    if case == "missing_count":
        Example.objects.filter(version=qa_version, split="train", index=0).update(token_count=None)
    calls = []
    real = estimates.token_lengths
    monkeypatch.setattr(estimates, "token_lengths", lambda path, ex: calls.append(path) or real(path, ex))
    est = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny",
                              dry_run=True)["estimate"]
    assert calls == [tiny_base_model.path]
    assert est["token_counts"] == "tokenized" and est["examples_too_long"] == 0
    assert est["longest_example_tokens"] < 100


def test_scratch_runs_never_use_stored_counts(member, qa_version, tiny_base_model, tiny_model_dir, monkeypatch):
    _store_counts(qa_version, counted_with="tiny", tokenizer_dir=tiny_model_dir)
    est = services.run_create(user=member, dataset_version_id=qa_version.pk, method="scratch",
                              dry_run=True)["estimate"]
    assert est["token_counts"] == "approximate"
