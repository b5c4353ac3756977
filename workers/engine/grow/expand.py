"""The function-preserving expansion of a Llama model's weights (Net2Net / bert2BERT width, LLaMA-Pro depth).
Knows nothing of Django.

Contract: `grow_model(model, plan)` returns a new LlamaForCausalLM (fp32) of the plan's target size that computes
the same logits as `model` up to float rounding (the source model is not changed); `break_symmetry(grown, plan,
noise=, seed=)` then adds symmetry-breaking noise that keeps the function too (below), in place.

Width (every axis: a new unit copies a source unit; `src` maps new index -> source index):
- hidden (h -> k·h): every hidden unit is copied k times and the residual stream is carried at 1/k scale: the
  weights that write into it (embedding columns, o_proj and down_proj rows) are copied and divided by k. The
  mean square over k·h units of the scaled copies is (1/k²) of the source's, so RMSNorm's epsilon becomes
  eps/k² and its output is the source's, copied (its weight is copied). The weights that read the normalised
  stream (q/k/v, gate/up and the LM head) take their source column divided by k: k equal inputs sum back to one.
  With tied embeddings the embedding is both writer and reader and the same 1/k serves both.
- intermediate (I -> I'): gate/up rows are copied (a copy computes the same activation) and down_proj's columns
  are split: divided by the number of copies of their unit.
- heads (H -> H', key/value heads KV -> KV'): new key/value head j copies source head j mod KV; new query head
  t of group j copies the source head (t mod G) of that source group (G: query heads per key/value head), so
  it attends exactly as its source; o_proj's columns are split by the number of copies of each source head.
- head size (d -> r·d): rotary pair i of a head of size d turns at frequency base^(-2i/d) = base^(-2(ri)/(rd)),
  the frequency of pair r·i of a head of size r·d. A grown head holds source pair i at pair r·i; its other pairs
  get key rows of zero (they add nothing to q·k) and query rows copied from the pair below (so they learn).
  The query is scaled by sqrt(r): attention divides by sqrt(r·d) instead of sqrt(d). Value dims are copied r
  times, their o_proj columns split by r.
Depth (L -> L'): a new layer is a copy of a source layer placed right after it, with o_proj and down_proj set
  to zero: both of its residual branches add nothing, so the stream passing through is unchanged (LLaMA Pro's
  block expansion). Stacking copies as they are would run every copied layer twice and change the function.
  The copies are spread evenly: each layer gets (L'-L) // L copies, the remainder after evenly spaced layers.
Symmetry: equal copies get equal gradients and would stay copies forever. `noise` (relative to each matrix's
  standard deviation) is added to the columns that read copied units only, as zero-sum noise across the copies
  of each source unit: the copies carry equal values, so the noise cancels exactly and the function is kept,
  while the copies now get different gradients (the tied embedding, a writer too, gets none).
"""
from __future__ import annotations

import math

from workers.engine.grow.plan import GrowPlan


def _tile(n_new: int, n_old: int):
    """new -> source index by tiling (i mod n_old) and how many copies each source index has."""
    import torch

    src = torch.arange(n_new) % n_old
    return src, torch.bincount(src, minlength=n_old)


def _head_dims(d: int, r: int):
    """Within one head of size r·d: the source dim of each new dim (rotary pairs at every r-th frequency) and
    whether the new dim holds that source dim itself (True) or a copy for a new frequency (False)."""
    import torch

    half, half2 = d // 2, r * d // 2
    idx = torch.arange(r * d)
    part, pos = idx // half2, idx % half2
    return part * half + pos // r, (pos % r) == 0


def _heads(plan: GrowPlan):
    """Source query head of each new query head and source key/value head of each new key/value head."""
    import torch

    s, t = plan.source, plan.target
    group, group2 = s["num_attention_heads"] // s["num_key_value_heads"], t["num_attention_heads"] // t[
        "num_key_value_heads"]
    kv_src = torch.arange(t["num_key_value_heads"]) % s["num_key_value_heads"]
    q = torch.arange(t["num_attention_heads"])
    q_src = kv_src[q // group2] * group + (q % group2) % group
    return q_src, kv_src


def _flat(head_src, dim_src, d: int):
    """Row (or column) indices of heads laid out head after head: new (head, dim) -> source index."""
    return (head_src[:, None] * d + dim_src[None, :]).reshape(-1)


class _Width:
    """The index maps and scales of one plan (built once, applied to every layer)."""

    def __init__(self, plan: GrowPlan):
        import torch

        s, t = plan.source, plan.target
        self.k = plan.k
        self.h_src, _ = _tile(t["hidden_size"], s["hidden_size"])
        self.i_src, i_count = _tile(t["intermediate_size"], s["intermediate_size"])
        self.i_div = i_count[self.i_src].to(torch.float64)
        d = s["head_dim"]
        dim_src, dim_kept = _head_dims(d, plan.r)
        q_src, kv_src = _heads(plan)
        q_count = torch.bincount(q_src, minlength=s["num_attention_heads"])
        self.q_rows = _flat(q_src, dim_src, d)
        self.kv_rows = _flat(kv_src, dim_src, d)
        self.k_keep = dim_kept.repeat(t["num_key_value_heads"]).to(torch.float64)
        self.q_scale = math.sqrt(plan.r)
        self.o_cols = self.q_rows
        self.o_div = (q_count[q_src][:, None] * plan.r).expand(-1, len(dim_src)).reshape(-1).to(torch.float64)

    def read(self, w):
        """Columns that read the normalised hidden stream: copied, divided by k."""
        return w[:, self.h_src] / self.k

    def write(self, w):
        """Rows that write into the hidden stream (carried at 1/k): copied, divided by k."""
        return w[self.h_src] / self.k


def _zero_sum_noise(w, src, scale: float, gen):
    """w + noise that sums to zero over the columns copied from one source column (w's columns are `src`)."""
    import torch

    if scale <= 0:
        return w
    noise = torch.randn(w.shape, generator=gen, dtype=w.dtype) * scale
    n_old = int(src.max()) + 1
    sums = torch.zeros((w.shape[0], n_old), dtype=w.dtype).index_add_(1, src, noise)
    counts = torch.bincount(src, minlength=n_old).to(w.dtype)
    return w + (noise - (sums / counts)[:, src])  # a unit without copies gets exactly 0


def _depth_layout(n_old: int, n_new: int) -> list[tuple[int, bool]]:
    """[(source layer, is_copy)] of the grown stack: copies right after their source, spread evenly."""
    extra = n_new - n_old
    per, rest = divmod(extra, n_old)
    counts = [per] * n_old
    for t in range(rest):
        counts[((t + 1) * n_old) // rest - 1] += 1
    layout = []
    for i in range(n_old):
        layout.append((i, False))
        layout += [(i, True)] * counts[i]
    return layout


def grown_config(config, plan: GrowPlan):
    """The target's config: the source's with the plan's dims (and RMSNorm's epsilon divided by k²)."""
    new = config.__class__.from_dict(config.to_dict())
    for key, value in plan.target.items():
        setattr(new, key, value)
    new.rms_norm_eps = config.rms_norm_eps / plan.k ** 2
    return new


def grow_state_dict(state: dict, plan: GrowPlan, *, tied: bool) -> dict:
    """The grown model's weights from the source's state dict (see the module's docstring): computed in float64
    one tensor at a time, kept in the source's dtype."""
    import torch

    wd = _Width(plan)
    dtype = state["model.embed_tokens.weight"].dtype

    def src(name):
        return state[name].detach().to("cpu", torch.float64)

    def keep(w):
        return w.to(dtype).contiguous()

    out: dict = {"model.embed_tokens.weight": keep(wd.write(src("model.embed_tokens.weight").T).T),  # a writer
                 "model.norm.weight": keep(src("model.norm.weight")[wd.h_src])}
    if not tied and "lm_head.weight" in state:
        out["lm_head.weight"] = keep(wd.read(src("lm_head.weight")))
    layers = {}
    for i in range(plan.source["num_hidden_layers"]):
        p = f"model.layers.{i}."
        q = wd.read(src(p + "self_attn.q_proj.weight"))[wd.q_rows] * wd.q_scale
        k = wd.read(src(p + "self_attn.k_proj.weight"))[wd.kv_rows] * wd.k_keep[:, None]
        v = wd.read(src(p + "self_attn.v_proj.weight"))[wd.kv_rows]
        o = wd.write(src(p + "self_attn.o_proj.weight"))[:, wd.o_cols] / wd.o_div
        gate = wd.read(src(p + "mlp.gate_proj.weight"))[wd.i_src]
        up = wd.read(src(p + "mlp.up_proj.weight"))[wd.i_src]
        down = wd.write(src(p + "mlp.down_proj.weight"))[:, wd.i_src] / wd.i_div
        layers[i] = {
            "self_attn.q_proj.weight": keep(q), "self_attn.k_proj.weight": keep(k),
            "self_attn.v_proj.weight": keep(v), "self_attn.o_proj.weight": keep(o),
            "mlp.gate_proj.weight": keep(gate), "mlp.up_proj.weight": keep(up),
            "mlp.down_proj.weight": keep(down),
            "input_layernorm.weight": keep(src(p + "input_layernorm.weight")[wd.h_src]),
            "post_attention_layernorm.weight": keep(src(p + "post_attention_layernorm.weight")[wd.h_src]),
        }
    for j, (i, is_copy) in enumerate(_depth_layout(plan.source["num_hidden_layers"],
                                                   plan.target["num_hidden_layers"])):
        for name, w in layers[i].items():
            if is_copy and name in ("self_attn.o_proj.weight", "mlp.down_proj.weight"):
                w = torch.zeros_like(w)
            out[f"model.layers.{j}.{name}"] = w.clone() if is_copy else w
    return out


def grow_model(model, plan: GrowPlan):
    """A new model of the plan's target size that computes what `model` computes (fp32, on the CPU)."""
    import torch
    from transformers import AutoModelForCausalLM

    config = grown_config(model.config, plan)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    state = grow_state_dict(model.state_dict(), plan, tied=tied)
    try:  # every weight is loaded below: skip the random initialisation (seconds on a large target)
        from transformers.initialization import no_init_weights
    except ImportError:  # pragma: no cover - another transformers version
        from contextlib import nullcontext as no_init_weights
    with no_init_weights():
        grown = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    if tied:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    missing, unexpected = grown.load_state_dict(state, strict=False)
    missing = [m for m in missing if not (tied and m == "lm_head.weight")]
    if missing or unexpected:  # pragma: no cover - a Llama variant with other weights
        from workers.engine.grow.plan import GrowError

        raise GrowError(f"The grown model's weights do not fit its architecture (missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]}).")
    if tied:
        grown.tie_weights()
    return grown.eval()


def break_symmetry(model, plan: GrowPlan, *, noise: float, seed: int = 0) -> None:
    """Add zero-sum noise across copies (see the module's docstring) to a grown model's weights, in place:
    the columns of every weight that reads copied units. Run after the grown model's function was checked."""
    import torch

    if noise <= 0:
        return
    gen = torch.Generator().manual_seed(seed)
    wd = _Width(plan)
    reads = {"self_attn.q_proj": wd.h_src, "self_attn.k_proj": wd.h_src, "self_attn.v_proj": wd.h_src,
             "mlp.gate_proj": wd.h_src, "mlp.up_proj": wd.h_src, "self_attn.o_proj": wd.o_cols,
             "mlp.down_proj": wd.i_src}
    targets = [(layer.get_submodule(name).weight, cols) for layer in model.model.layers for name, cols in
               reads.items()]
    if not getattr(model.config, "tie_word_embeddings", False):  # tied: the embedding is a writer too
        targets.append((model.lm_head.weight, wd.h_src))
    with torch.no_grad():
        for weight, cols in targets:
            w = weight.detach().to("cpu", torch.float32)
            weight.copy_(_zero_sum_noise(w, cols, noise * float(w.std()), gen).to(weight.dtype))
