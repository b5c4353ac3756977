"""Test rows, built one way (factory_boy): users, API keys, datasets with versions and examples, base
models, training runs with their metric points and checkpoints, model versions, aliases, deployments.

Each factory makes a valid row with as little as possible said: `TrainingRunFactory()` brings its owner, a
ready dataset version and nothing else; say what a test is about (`status="succeeded"`, `backend=
"together"`) and leave the rest. Rows are written straight to the database (no services, no messages): use
a factory to set up state, and the services to exercise behaviour.

    version = DatasetVersionFactory(owner=member, examples=[qa_example(i) for i in range(24)],
                                    examples__validation=[qa_example(24)])
    key = ApiKeyFactory(user=member)  # key.plaintext is the Bearer token (made by api_key_create)
"""
from __future__ import annotations

import hashlib
import json

import factory
from factory.django import DjangoModelFactory


def qa_example(i: int) -> dict:
    """A short, valid chat example: `What is i plus i?` / `i plus i is 2i.`"""
    return {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                         {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]}


def content_hash(example: dict) -> str:
    return hashlib.sha256(repr(example).encode()).hexdigest()


class UserFactory(DjangoModelFactory):
    """A member with the password `pw-123456` (role="admin" for an admin), made by `create_user`."""

    class Meta:
        model = "accounts.User"

    username = factory.Sequence(lambda n: f"user{n}")
    password = "pw-123456"
    role = "member"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return cls._get_manager(model_class).create_user(*args, **kwargs)


class ApiKeyFactory(factory.Factory):
    """An API key made by the accounts service (only its digest is stored); returns the ApiKey row with
    `.plaintext` set to the full key."""

    class Meta:
        model = dict  # replaced by _create

    user = factory.SubFactory(UserFactory)
    name = "test"

    @classmethod
    def _create(cls, model_class, *, user, name):
        from apps.accounts.services import api_key_create

        created = api_key_create(user=user, name=name)
        created.api_key.plaintext = created.plaintext
        return created.api_key

    _build = _create


class DatasetFactory(DjangoModelFactory):
    class Meta:
        model = "datasets.Dataset"

    name = factory.Sequence(lambda n: f"dataset {n}")
    owner = factory.SubFactory(UserFactory)


class DatasetVersionFactory(DjangoModelFactory):
    """A ready version. `examples=[...]` (train) and `examples__validation=[...]` (dicts {messages, tools})
    become Example rows, numbered in that order; example_count follows them unless given."""

    class Meta:
        model = "datasets.DatasetVersion"
        skip_postgeneration_save = True

    class Params:
        owner = factory.SubFactory(UserFactory)

    dataset = factory.SubFactory(DatasetFactory, owner=factory.SelfAttribute("..owner"))
    number = factory.LazyAttribute(lambda o: o.dataset.versions.count() + 1)
    status = "ready"
    format = "chat-jsonl"
    validation = factory.LazyFunction(lambda: {"errors": [], "warnings": []})

    @factory.post_generation
    def examples(obj, create, extracted, validation=None, **kwargs):  # noqa: N805 - factory_boy's hook
        from apps.datasets.models import DatasetVersion, Example

        train, held_out = list(extracted or []), list(validation or [])
        if not create or not (train or held_out):
            return
        Example.objects.bulk_create([
            Example(version=obj, index=i, messages=ex["messages"], tools=ex.get("tools"),
                    split="validation" if i >= len(train) else "train", content_hash=content_hash(ex))
            for i, ex in enumerate(train + held_out)])
        if not obj.example_count:
            obj.example_count = len(train) + len(held_out)
            DatasetVersion.objects.filter(pk=obj.pk).update(example_count=obj.example_count)


class ExampleFactory(DjangoModelFactory):
    class Meta:
        model = "datasets.Example"

    version = factory.SubFactory(DatasetVersionFactory)
    index = factory.Sequence(lambda n: n)
    messages = factory.LazyAttribute(lambda o: qa_example(o.index)["messages"])
    split = "train"
    content_hash = factory.LazyAttribute(lambda o: hashlib.sha256(json.dumps(o.messages).encode()).hexdigest())


class BaseModelFactory(DjangoModelFactory):
    """A base model row whose folder need not exist (a remote model, or pages that only list it)."""

    class Meta:
        model = "registry.BaseModel"
        django_get_or_create = ("id",)

    id = factory.Sequence(lambda n: f"base-{n}")
    name = factory.LazyAttribute(lambda o: o.id)
    path = factory.LazyAttribute(lambda o: f"/nonexistent/{o.id}")


class TrainingRunFactory(DjangoModelFactory):
    """A queued local LoRA run of its owner on a ready dataset version (no job, no message sent)."""

    class Meta:
        model = "training.TrainingRun"

    owner = factory.SubFactory(UserFactory)
    dataset_version = factory.SubFactory(DatasetVersionFactory, owner=factory.SelfAttribute("..owner"))
    name = ""
    method = "lora"
    backend = "local"
    hyperparameters = factory.LazyFunction(dict)


class MetricPointFactory(DjangoModelFactory):
    class Meta:
        model = "training.MetricPoint"

    run = factory.SubFactory(TrainingRunFactory)
    step = factory.Sequence(lambda n: n + 1)
    kind = "train"
    values = factory.LazyFunction(lambda: {"loss": 1.0})


class CheckpointFactory(DjangoModelFactory):
    class Meta:
        model = "training.Checkpoint"

    run = factory.SubFactory(TrainingRunFactory)
    step = factory.Sequence(lambda n: n + 1)
    path = factory.LazyAttribute(lambda o: f"runs/run-{o.run.pk}/checkpoint-{o.step}")


class ModelVersionFactory(DjangoModelFactory):
    """A model version row (no weights copied: use registry.services.model_version_register for that)."""

    class Meta:
        model = "registry.ModelVersion"

    name = factory.Sequence(lambda n: f"model {n}")
    kind = "adapter"
    base_model = factory.SubFactory(BaseModelFactory)


class AliasFactory(DjangoModelFactory):
    class Meta:
        model = "registry.Alias"

    name = factory.Sequence(lambda n: f"alias-{n}")
    model_version = factory.SubFactory(ModelVersionFactory)


class DeploymentFactory(DjangoModelFactory):
    class Meta:
        model = "registry.Deployment"

    alias_name = factory.Sequence(lambda n: f"alias-{n}")
    model_version = factory.SubFactory(ModelVersionFactory)
