"""One resolver per command action: names from the parser (dataset `demo`, alias `production`, version ids, a
source's name, a Together job id) looked up for the user, the permission the executing service will check
asked here first, and the /api call built exactly as the API takes it (apps/*/api.py). Reads only.

Each resolver is `(user, params, out: services.Result) -> None` and fills `out`; see apps.commands.services.
"""
from __future__ import annotations

import re
from urllib.parse import urlencode

from apps.commands.services import Result, closest, fmt, quoted, replace_word
from apps.core.exceptions import ApplicationError

_METHOD_NAMES = {"lora": "a LoRA adapter", "full": "all weights", "scratch": "a model from scratch",
                 "dpo": "a DPO adapter", "kto": "a KTO adapter"}


def _is_admin(user) -> bool:
    return bool(getattr(user, "is_authenticated", False) and getattr(user, "is_hub_admin", False))


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# -- datasets -----------------------------------------------------------------------------------------------
def _dataset_version(user, p: dict, out: Result, *, verb: str):
    """The dataset version a train or review command means, or None (with `out` saying why)."""
    from apps.datasets.models import Dataset, DatasetVersion

    ready = DatasetVersion.Status.READY
    if p.get("dataset_version_id"):
        v = DatasetVersion.objects.select_related("dataset").filter(pk=p["dataset_version_id"]).first()
        if v is None:
            out.need("dataset", f"Dataset version {p['dataset_version_id']} does not exist.")
        return v
    if p.get("dataset_generated"):
        from apps.sources.selectors import generation_list

        gen = generation_list(user=user).filter(status="succeeded", dataset_version__isnull=False) \
            .select_related("dataset_version__dataset").first()
        if gen is None:
            out.need("dataset", "You have no finished generation yet: generate training data first.")
            return None
        return gen.dataset_version
    name = p.get("dataset")
    if not name:
        out.need("dataset", f"Say which dataset to {verb}, e.g. “on demo”.")
        recent = Dataset.objects.filter(versions__status=ready).distinct().order_by("-created_at")
        out.suggest(*[f"{out.text} on {quoted(d.name)}" for d in recent[:3]])
        return None
    matches = list(Dataset.objects.filter(name__iexact=name).order_by("-created_at")[:50])
    if not matches:
        names = list(Dataset.objects.order_by("-created_at").values_list("name", flat=True)[:2000])
        near = closest(name, names)
        out.need("dataset", f"No dataset is named {name!r}." + (f" Did you mean {_join(near)}?" if near else ""))
        out.suggest(*[replace_word(out.text, name, n) for n in near])
        return None
    ds = next((d for d in matches if d.owner_id == getattr(user, "pk", None)), matches[0])
    if len(matches) > 1:
        out.notes.append(f"{len(matches)} datasets are named {name!r}: using #{ds.pk} "
                         f"({'yours' if ds.owner_id == user.pk else 'the newest'}).")
    if p.get("dataset_version"):
        v = ds.versions.filter(number=p["dataset_version"]).first()
        if v is None:
            out.need("dataset", f"{ds.name} has no version {p['dataset_version']}.")
        return v
    v = ds.versions.filter(status=ready).order_by("-number").first()
    if v is None:
        out.need("dataset", f"{ds.name} has no ready version yet.")
    return v


def _version_label(v) -> str:
    return f"{v.dataset.name} v{v.number}"


def _version_params(v, out: Result) -> None:
    out.params.update({"dataset": v.dataset.name, "dataset_version": v.number, "dataset_version_id": v.pk,
                       "examples": v.example_count})


# -- train --------------------------------------------------------------------------------------------------
def _hp_text(spec, value) -> str:
    if spec.name == "epochs":
        return f"{fmt(value)} epoch{'' if value == 1 else 's'}"
    if spec.name == "max_steps":
        return f"{fmt(value)} steps at most"
    label = re.sub(r"\s*\(.*?\)", "", spec.label)  # "Beta (DPO, KTO)" -> "Beta"
    first = label.split(" ", 1)[0]
    if first[1:].islower():  # "Learning rate" -> "learning rate"; "LoRA rank" stays
        label = label[:1].lower() + label[1:]
    return f"{label} {fmt(value)}"


def train(user, p: dict, out: Result) -> None:
    from apps.registry.models import BaseModel, ModelVersion
    from apps.training.hyperparameters import BY_NAME

    method, backend = p.get("method", "lora"), p.get("backend", "local")
    base = None
    if p.get("base_model"):
        name = p["base_model"]
        base = BaseModel.objects.filter(pk__iexact=name).first() or \
            BaseModel.objects.filter(name__iexact=name).first()
        if base is None and "/" in name:
            if "backend" in p and backend == "local":
                out.problem("base_model", f"{name} is not a base model on this hub (say “on together” to fine-tune "
                                          "it on Together.ai).")
            elif backend != "together":
                backend = "together"  # a hosted model id such as meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo
                out.notes.append(f"{name} is not a base model on this hub: the run fine-tunes it on Together.ai.")
        elif base is None:
            near = closest(name, list(BaseModel.objects.values_list("pk", flat=True)))
            out.problem("base_model", f"No base model {name!r} on this hub." +
                        (f" Did you mean {_join(near)}?" if near else ""))
            out.suggest(*[replace_word(out.text, name, n) for n in near])
    if backend == "together" and method == "kto":
        out.problem("backend", "KTO runs train locally.")
    v = _dataset_version(user, p, out, verb="train on")
    hp = {}
    for key, value in (p.get("hyperparameters") or {}).items():
        spec = BY_NAME.get(key)
        if spec is None or not spec.applies(method, backend):
            where = "Together.ai runs" if spec is not None and spec.backends == ("together",) else \
                f"{method} runs on the {backend} backend"
            out.notes.append(f"{key} {fmt(value)}: not used by {where}; left out.")
            continue
        hp[key] = value
    body: dict = {}
    if v is not None:
        body["dataset_version_id"] = v.pk
        _version_params(v, out)
    body["method"] = method
    out.params["method"] = method
    if backend != "local":
        body["backend"] = backend
    out.params["backend"] = backend
    if base is None and backend == "local" and method != "scratch" and not p.get("base_model") \
            and not p.get("parent_version_id"):  # the one the run would get, said out loud
        base = BaseModel.objects.filter(is_default=True).first()
        if base is None:
            choices = list(BaseModel.objects.order_by("pk").values_list("pk", flat=True)[:50])
            if len(choices) == 1:
                base = BaseModel.objects.get(pk=choices[0])
            else:
                out.need("base_model", "Say which base model, e.g. “with base model " + (choices or ["ID"])[0] + "”.")
                out.suggest(*[f"{out.text} with base model {c}" for c in choices[:3]])
    if base is not None or (p.get("base_model") and backend == "together"):
        body["base_model"] = base.pk if base is not None else p["base_model"]
        out.params["base_model"] = body["base_model"]
    if p.get("parent_version_id"):
        if not ModelVersion.objects.filter(pk=p["parent_version_id"]).exists():
            out.problem("parent_version_id", f"Model version {p['parent_version_id']} does not exist.")
        body["parent_version_id"] = out.params["parent_version_id"] = p["parent_version_id"]
    for key in ("name", "allow_truncation"):
        if p.get(key):
            body[key] = out.params[key] = p[key]
    if hp:
        body["hyperparameters"] = hp
        out.params.update(hp)
    values = [_hp_text(BY_NAME[k], val) for k, val in hp.items()]
    what = _METHOD_NAMES.get(method, method)
    start = f" from {out.params['base_model']}" if out.params.get("base_model") else ""
    on = f" on {_version_label(v)} ({v.example_count} examples)" if v is not None else ""
    remote = " on Together.ai" if backend == "together" else ""
    out.summary = (f"Train {what}{start}{on}{remote}" + (f" with {_join(values)}" if values else
                                                        " with the default hyperparameters")
                   + ("." if v is not None else "; the dataset is still missing."))
    query = {"method": method, **({"dataset_version": v.pk} if v is not None else {}),
             **({"base_model": body["base_model"]} if body.get("base_model") and backend == "local" else {}),
             **({"backend": backend} if backend != "local" else {}),
             **{k: fmt(val) for k, val in hp.items() if not isinstance(val, bool)}}
    out.form_url = "/runs/new/?" + urlencode(query)
    out.result_url = "/runs/{id}/"
    out.confirm = "Start the run"
    out.call("POST", "/api/runs", body)


# -- generate -----------------------------------------------------------------------------------------------
def _source(user, p: dict, out: Result):
    from django.db.models import Q

    from apps.sources.selectors import source_list

    mine = source_list(user=user)
    if p.get("source_url"):
        url = p["source_url"]
        s = mine.filter(Q(location__iexact=url) | Q(repos__url__iexact=url)).distinct().first()
        if s is None:
            out.need("source", f"No source of yours clones {url}: register it on the Sources page first.")
            out.form_url = "/sources/new/?kind=url"
        return s
    name = p.get("source")
    if name:
        s = (mine.filter(name__iexact=name).first() or mine.filter(repos__name__iexact=name).distinct().first()
             or mine.filter(name__icontains=name).first())
        if s is None:
            names = list(mine.values_list("name", flat=True)[:500])
            near = closest(name, names)
            out.need("source", f"You have no source named {name!r}." +
                     (f" Did you mean {_join(near)}?" if near else " Register its repository on the Sources page."))
            out.suggest(*[replace_word(out.text, name, n) for n in near])
            out.form_url = "/sources/new/"
        return s
    sources = list(mine.order_by("-created_at")[:4])
    if len(sources) == 1:
        out.notes.append(f"Using your only source, {sources[0].name}.")
        return sources[0]
    if not sources:
        out.need("source", "You have no source yet: register a repository on the Sources page.")
        out.form_url = "/sources/new/"
    else:
        out.need("source", "Say which source to generate from, e.g. “from " + quoted(sources[0].name) + "”.")
        out.suggest(*[f"{out.text} from {quoted(s.name)}" for s in sources[:3]])
    return None


def _generate_query(options: dict) -> str:
    """The parsed options as the generate page's query string (its form's field names; only what was said)."""
    query: list[tuple[str, object]] = []
    for key in ("max_examples", "seed"):
        if key in options:
            query.append((key, options[key]))
    for key in ("include_tests", "include_config", "exclude_complex", "run_tests"):
        if key in options:
            query.append((key, "true" if options[key] else "false"))
    query += [("generators", g) for g in options.get("generators") or []]
    teacher = options.get("teacher") or {}
    if teacher.get("endpoint"):
        query += [("teacher", teacher["endpoint"]), ("teacher_model", teacher.get("model") or "")]
        if teacher.get("temperature") is not None:
            query.append(("temperature", fmt(teacher["temperature"])))
    return "?" + urlencode(query) if query else ""


def generate(user, p: dict, out: Result) -> None:
    from apps.sources.services.options import parse_options

    source = _source(user, p, out)
    options = {k: p[k] for k in ("max_examples", "include_tests", "include_config", "exclude_complex", "generators",
                                 "seed", "run_tests", "teacher") if k in p}
    try:
        parse_options({k: v for k, v in options.items() if k != "teacher"})
    except ApplicationError as exc:
        for e in exc.errors or [{"field": None, "message": exc.message}]:
            out.problem(e.get("field") or "options", e["message"])
    out.params.update(options)
    parts = [f"up to {fmt(options.get('max_examples', 1000))} scenarios"]
    if options.get("generators"):
        parts.append("from the " + _join(options["generators"]) + " generators")
    flags = [w for k, w in (("include_tests", "tests"), ("include_config", "config files")) if options.get(k)]
    if flags:
        parts.append("including " + _join(flags))
    if options.get("exclude_complex"):
        parts.append("simple and medium only")
    if source is not None:
        out.params["source"] = source.name
        out.params["source_id"] = source.pk
        out.form_url = f"/sources/{source.pk}/generate/" + _generate_query(options)
    if source is None:
        out.summary = f"Generate {', '.join(parts)}; the source is still missing."
    else:
        out.summary = f"Generate {', '.join(parts)}, from {source.name} into " + \
            (f"a new version of {source.dataset.name}." if source.dataset_id else "its dataset.")
    out.result_url = "/sources/generations/{id}/"
    out.confirm = "Start generating"
    out.call("POST", f"/api/sources/{source.pk if source else 0}/generations", options)


# -- status and cancel --------------------------------------------------------------------------------------
def _run(user, p: dict, out: Result):
    from apps.training import selectors
    from apps.training.models import TrainingRun

    runs = selectors.run_list(user=user)
    if p.get("remote_job_id"):
        run = runs.filter(remote_job_id=p["remote_job_id"]).order_by("-created_at").first()
        if run is None:
            out.problem("run", f"No run has the remote job id {p['remote_job_id']}.")
            out.suggest("status of the latest run", "Check training status")
        return run
    if p.get("run_id"):
        run = runs.filter(pk=p["run_id"]).first()
        if run is None:
            out.problem("run", f"Run {p['run_id']} does not exist.")
            out.suggest("status of the latest run")
        return run
    if p.get("latest"):
        run = runs.filter(owner=user).order_by("-created_at").first() or runs.order_by("-created_at").first()
        if run is None:
            out.problem("run", "There are no runs yet.")
            out.suggest("train demo with lr 1e-5 and 3 epochs")
        return run
    if p.get("run_name"):
        run = runs.filter(name__iexact=p["run_name"]).order_by("-created_at").first()
        if run is None:
            names = [n for n in TrainingRun.objects.exclude(name="").values_list("name", flat=True)[:1000]]
            near = closest(p["run_name"], names)
            out.problem("run", f"No run is named {p['run_name']!r}."
                        + (f" Did you mean {_join(near)}?" if near else ""))
            out.suggest(*[replace_word(out.text, p["run_name"], n) for n in near], "status of the latest run")
        return run
    return None


def _run_sentence(run) -> str:
    label = f"Run {run.pk}" + (f" ({run.name})" if run.name else "")
    step = f"step {run.current_step} of {run.total_steps}" if run.total_steps else f"step {run.current_step}"
    loss = (run.summary or {}).get("loss")
    tail = f", loss {fmt(round(loss, 4))}" if isinstance(loss, (int, float)) else ""
    if run.status == "running":
        return f"{label} is running: {step}{tail}."
    if run.status == "failed":
        return f"{label} failed" + (f": {run.error.splitlines()[0][:200]}" if run.error else "") + "."
    return f"{label} is {run.status} ({step}{tail})."


def status(user, p: dict, out: Result) -> None:
    from apps.training import selectors

    out.confirm = "Show"
    if p.get("job_id"):
        from apps.core.jobs.selectors import job_get

        try:
            job = job_get(user=user, job_id=p["job_id"])
        except ApplicationError:
            out.problem("job", f"Job {p['job_id']} does not exist.")
        else:
            out.params.update({"job_id": job.pk, "kind": job.kind, "status": job.status, "phase": job.phase})
            out.summary = f"Job {job.pk} ({job.kind}) is {job.status}" + (f", {job.phase}" if job.phase else "") + "."
        out.form_url = "/jobs/"
        out.call("GET", f"/api/jobs/{p['job_id']}")
        return
    if p.get("generation_id"):
        from apps.sources.selectors import generation_get

        try:
            gen = generation_get(user=user, generation_id=p["generation_id"])
        except ApplicationError:
            out.problem("generation", f"Generation {p['generation_id']} does not exist.")
        else:
            out.params.update({"generation_id": gen.pk, "status": gen.status, "source": gen.source.name})
            out.summary = f"Generation {gen.pk} of {gen.source.name} is {gen.status}."
            out.form_url = f"/sources/generations/{gen.pk}/"
        out.call("GET", f"/api/generations/{p['generation_id']}")
        return
    run = _run(user, p, out)
    if run is not None:
        out.params.update({"run_id": run.pk, "name": run.name, "status": run.status, "current_step": run.current_step,
                           "total_steps": run.total_steps, "dataset": _version_label(run.dataset_version),
                           "method": run.method})
        out.summary = _run_sentence(run)
        out.form_url = f"/runs/{run.pk}/"
        out.call("GET", f"/api/runs/{run.pk}")
        return
    if out.problems:
        out.summary = out.problems[0]["message"]
        return
    active = list(selectors.run_list(user=user, status="queued,running").order_by("-created_at")[:100])
    running = sum(r.status == "running" for r in active)
    out.params.update({"running": running, "queued": len(active) - running})
    if active:
        first = _run_sentence(active[0])
        out.summary = f"{len(active)} run{'s' if len(active) != 1 else ''} active ({running} running, " \
                      f"{len(active) - running} queued). {first}"
    else:
        latest = selectors.run_list(user=user).order_by("-created_at").first()
        out.summary = "No run is queued or running." + (f" Latest: {_run_sentence(latest)}" if latest else "")
    out.form_url = "/runs/?status=active"
    out.call("GET", "/api/runs?status=queued,running")


def cancel(user, p: dict, out: Result) -> None:
    from apps.training.selectors import can_change

    run = _run(user, p, out)
    if run is None and not out.problems:
        out.need("run", "Say which run to cancel, e.g. “cancel run 12” or “cancel the latest run”.")
    out.confirm = "Cancel the run"
    if run is not None:
        out.params.update({"run_id": run.pk, "name": run.name, "status": run.status})
        out.form_url = f"/runs/{run.pk}/"
        out.result_url = "/runs/{id}/"
        if not run.is_active:
            out.problem("run", f"Run {run.pk} is {run.status}: there is nothing to cancel.")
        elif not can_change(user, run):
            out.deny("Only the run's owner or an admin can cancel it.")
        out.summary = f"Cancel run {run.pk}" + (f" ({run.name})" if run.name else "") + \
            f", now {run.status}; it stops after the current step and keeps a checkpoint."
        out.call("POST", f"/api/runs/{run.pk}/cancel")
    else:
        out.summary = out.problems[0]["message"]


# -- review -------------------------------------------------------------------------------------------------
def review(user, p: dict, out: Result) -> None:
    from apps.accounts.models import User
    from apps.review import permissions as perms

    v = _dataset_version(user, p, out, verb="review")
    assignees = p.get("assignees") or [user.username]
    known = {u.lower(): u for u in User.objects.filter(username__in=assignees).values_list("username", flat=True)}
    unknown = [a for a in assignees if a.lower() not in known]
    if unknown:
        out.problem("assignees", f"No user {_join(unknown)} on this hub.")
    assignees = [known.get(a.lower(), a) for a in assignees]
    overlap = p.get("overlap", 1)
    if overlap > len(assignees):
        out.problem("overlap", f"Overlap {overlap} needs at least {overlap} reviewers (there are {len(assignees)}).")
    body: dict = {"dataset_version_id": v.pk if v is not None else None,
                  "name": p.get("name") or (f"Review of {_version_label(v)}" if v is not None else "Review"),
                  "assignees": assignees, "overlap": overlap}
    if p.get("rating"):
        body["rating"] = True
    if p.get("labels"):
        body["labels"] = p["labels"]
    if v is not None:
        _version_params(v, out)
        out.form_url = f"/reviews/new/?dataset_version={v.pk}"
        if not perms.can_create_on(user, v.dataset):
            out.deny("Only admins, and members on their own datasets, can create review tasks.")
    else:
        out.form_url = "/reviews/new/"
    out.params.update({k: body[k] for k in ("name", "assignees", "overlap")})
    who = "you" if assignees == [user.username] else _join(assignees)
    on = f"{_version_label(v)} ({v.example_count} examples)" if v is not None else "a dataset you still have to name"
    out.summary = f"Start a review task “{body['name']}” of {on} for {who}" + \
        (f", each example seen by {overlap}" if overlap > 1 else "") + "."
    out.result_url = "/reviews/{id}/"
    out.confirm = "Create the review task"
    out.call("POST", "/api/reviews", body)


from apps.commands.deploys import configure, deploy, rollback  # the registry's and the proxy's (after _join)

RESOLVERS = {"train": train, "generate": generate, "status": status, "cancel": cancel, "review": review,
             "deploy": deploy, "rollback": rollback, "configure": configure}
