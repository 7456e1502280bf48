"""Independent PyTorch reference of the BEiT encoder and heads, written from
the BEiT paper (arXiv 2106.08254) and its unilm/timm code; used to prove the C encoder.

What it is: one nn.Module (`BeitRef`) built from an HF-style config dict (config.json field names)
whose state_dict keys are exactly the HF transformers names (spec 10.1), for the three
architectures BeitModel, BeitForMaskedImageModeling and BeitForImageClassification. Plus the
pretraining/fine-tuning initialisations (spec 3), the unilm weight-decay grouping (spec 5.2), the
unilm cosine schedule (spec 6.1) and DropPath scale sampling. It is not HF or timm code (neither is
installed); where HF and unilm differ numerically only by rounding (q scaled by dh^-0.5 before
q.k vs scores divided by sqrt(dh)) it follows unilm.

Semantics that the C side must match (forward(pixel_values, bool_masked_pos, drop_scales)):
- patch conv, flattened row-major (token i = h*Ww + w), then hard mask-token replacement
  x_i <- x_i (1 - w_i) + m w_i BEFORE the cls concat and BEFORE absolute position embeddings;
- attention: q = (x Wq^T + bq) * dh^-0.5, k = x Wk^T (no key bias), v = x Wv^T + bv; logits +
  per-layer bias + shared bias; softmax over all T keys (cls included); no attention mask;
- relative position index with the cls entries row 0 = R-3, column 0 = R-2, [0,0] = R-1;
- pre-LN blocks, exact-erf GELU, LayerScale (lambda_1/2 absent when layer_scale_init_value <= 0);
- residual: out = x + drop_scales[l, k, b] * lambda_k * branch_k (k = 0 attention, 1 MLP);
  drop_scales None means every scale is 1 (eval); this is DropPath made deterministic;
- `beit.layernorm` (final LN) exists iff use_mean_pooling is false, as in HF BeitModel; the HF
  last_hidden_state ("hidden") is the encoder output after it;
- MIM head: top-level `layernorm` on all T tokens, drop cls, gather masked rows batch-major then
  row-major, `lm_head` on those rows only -> (M, vocab); loss = CE mean over the M rows;
- classification: mean over patch tokens (cls excluded) + beit.pooler.layernorm, or (cls pooling)
  token 0 of the beit.layernorm output -> classifier; loss = CE with label smoothing, BCE-with-
  logits mean for problem_type multi_label_classification, MSE for regression (num_labels 1).
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHITECTURES = ("BeitModel", "BeitForMaskedImageModeling", "BeitForImageClassification")

# HF BeitConfig defaults (configuration_beit.py), used for any field a config.json leaves out.
HF_DEFAULTS = {
    "model_type": "beit",
    "vocab_size": 8192,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "image_size": 224,
    "patch_size": 16,
    "num_channels": 3,
    "use_mask_token": False,
    "use_absolute_position_embeddings": False,
    "use_relative_position_bias": False,
    "use_shared_relative_position_bias": False,
    "layer_scale_init_value": 0.1,
    "drop_path_rate": 0.1,
    "use_mean_pooling": True,
}


def case_config(base, spec, label_prefix="LABEL_"):
    """A test case's config: base overlaid with spec, whose num_labels (when given) becomes
    id2label and label2id with the names label_prefix + index."""
    cfg = dict(base)
    spec = dict(spec)
    n = spec.pop("num_labels", None)
    cfg.update(spec)
    if n is not None:
        cfg["id2label"] = {str(i): f"{label_prefix}{i}" for i in range(n)}
        cfg["label2id"] = {f"{label_prefix}{i}": i for i in range(n)}
    return cfg


def resolve_config(config):
    """HF defaults overlaid with config; adds num_labels (from id2label) and architecture."""
    cfg = dict(HF_DEFAULTS)
    cfg.update(config)
    if "id2label" in cfg and cfg["id2label"]:
        cfg["num_labels"] = len(cfg["id2label"])
    cfg.setdefault("num_labels", 2)
    archs = cfg.get("architectures") or ["BeitModel"]
    if archs[0] not in ARCHITECTURES:
        raise ValueError(f"architecture {archs[0]} not one of {ARCHITECTURES}")
    cfg["architecture"] = archs[0]
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise ValueError("only hidden_act 'gelu' (exact erf) is supported")
    for key in ("image_size", "patch_size"):
        if isinstance(cfg[key], (list, tuple)):
            if cfg[key][0] != cfg[key][1]:
                raise ValueError(f"{key}: only square sizes are supported")
            cfg[key] = cfg[key][0]
    if cfg["image_size"] % cfg["patch_size"]:
        raise ValueError("image_size must be a multiple of patch_size")
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise ValueError("hidden_size must be a multiple of num_attention_heads")
    return cfg


def relative_position_index(wh, ww):
    """(T, T) int64 index into a (R, nH) table, T = wh*ww + 1, R = (2wh-1)(2ww-1) + 3 (spec 2)."""
    r = (2 * wh - 1) * (2 * ww - 1) + 3
    hs = torch.arange(wh).repeat_interleave(ww)  # patch p = h*ww + w
    ws = torch.arange(ww).repeat(wh)
    dh = hs[:, None] - hs[None, :] + wh - 1  # query minus key
    dw = ws[:, None] - ws[None, :] + ww - 1
    t = wh * ww + 1
    idx = torch.zeros(t, t, dtype=torch.int64)
    idx[1:, 1:] = dh * (2 * ww - 1) + dw
    idx[0, :] = r - 3  # cls as query
    idx[:, 0] = r - 2  # cls as key
    idx[0, 0] = r - 1
    return idx


class RelativePositionBias(nn.Module):
    """Holds `relative_position_bias_table` (R, nH); forward gives the (nH, T, T) bias."""

    def __init__(self, grid, num_heads, device=None, dtype=None):
        super().__init__()
        r = (2 * grid - 1) ** 2 + 3
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros(r, num_heads, device=device, dtype=dtype))
        idx = relative_position_index(grid, grid)
        if device is not None and torch.device(device).type != "meta":
            idx = idx.to(device)
        self.register_buffer("relative_position_index", idx, persistent=False)

    def forward(self):
        t = self.relative_position_index.shape[0]
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.reshape(t, t, -1).permute(2, 0, 1)


class _Namespace(nn.Module):
    """An empty module used only to reproduce HF's nesting of parameter names."""


class BeitSelfAttention(nn.Module):
    def __init__(self, cfg, grid, per_layer_rpb, fk):
        super().__init__()
        d = cfg["hidden_size"]
        self.num_heads = cfg["num_attention_heads"]
        self.head_dim = d // self.num_heads
        self.query = nn.Linear(d, d, bias=True, **fk)
        self.key = nn.Linear(d, d, bias=False, **fk)  # key has no bias (spec 1.4)
        self.value = nn.Linear(d, d, bias=True, **fk)
        if per_layer_rpb:
            self.relative_position_bias = RelativePositionBias(grid, self.num_heads, **fk)
        else:
            self.relative_position_bias = None

    def forward(self, x, shared_bias):
        b, t, d = x.shape
        nh, dh = self.num_heads, self.head_dim

        def heads(y):
            return y.reshape(b, t, nh, dh).permute(0, 2, 1, 3)

        q = heads(self.query(x)) * (dh ** -0.5)  # unilm scales q, HF divides scores
        k = heads(self.key(x))
        v = heads(self.value(x))
        logits = q @ k.transpose(-1, -2)
        if self.relative_position_bias is not None:
            logits = logits + self.relative_position_bias().unsqueeze(0)
        if shared_bias is not None:
            logits = logits + shared_bias.unsqueeze(0)
        attn = logits.softmax(dim=-1)
        return (attn @ v).permute(0, 2, 1, 3).reshape(b, t, d)  # head-major concat


class BeitLayer(nn.Module):
    def __init__(self, cfg, grid, fk):
        super().__init__()
        d, inter, eps = cfg["hidden_size"], cfg["intermediate_size"], cfg["layer_norm_eps"]
        self.layernorm_before = nn.LayerNorm(d, eps=eps, **fk)
        self.attention = _Namespace()
        self.attention.attention = BeitSelfAttention(cfg, grid, cfg["use_relative_position_bias"], fk)
        self.attention.output = _Namespace()
        self.attention.output.dense = nn.Linear(d, d, **fk)
        self.layernorm_after = nn.LayerNorm(d, eps=eps, **fk)
        self.intermediate = _Namespace()
        self.intermediate.dense = nn.Linear(d, inter, **fk)
        self.output = _Namespace()
        self.output.dense = nn.Linear(inter, d, **fk)
        ls = cfg["layer_scale_init_value"]
        if ls is not None and ls > 0:
            self.lambda_1 = nn.Parameter(torch.full((d,), float(ls), **fk))
            self.lambda_2 = nn.Parameter(torch.full((d,), float(ls), **fk))
        else:
            self.lambda_1 = None
            self.lambda_2 = None

    def forward(self, x, shared_bias, scales=None):
        """scales: None or (2, B) per-sample branch multipliers (DropPath)."""
        a = self.attention.attention(self.layernorm_before(x), shared_bias)
        a = self.attention.output.dense(a)
        if self.lambda_1 is not None:
            a = self.lambda_1 * a
        if scales is not None:
            a = scales[0].reshape(-1, 1, 1) * a
        x = x + a
        m = self.intermediate.dense(self.layernorm_after(x))
        m = self.output.dense(F.gelu(m))  # exact erf GELU
        if self.lambda_2 is not None:
            m = self.lambda_2 * m
        if scales is not None:
            m = scales[1].reshape(-1, 1, 1) * m
        return x + m


class BeitEmbeddings(nn.Module):
    def __init__(self, cfg, fk):
        super().__init__()
        d, p, c = cfg["hidden_size"], cfg["patch_size"], cfg["num_channels"]
        self.grid = cfg["image_size"] // p
        n = self.grid * self.grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d, **fk))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d, **fk)) if cfg["use_mask_token"] else None
        self.patch_embeddings = _Namespace()
        self.patch_embeddings.projection = nn.Conv2d(c, d, kernel_size=p, stride=p, **fk)
        if cfg["use_absolute_position_embeddings"]:
            self.position_embeddings = nn.Parameter(torch.zeros(1, n + 1, d, **fk))
        else:
            self.position_embeddings = None

    def forward(self, pixel_values, bool_masked_pos=None):
        x = self.patch_embeddings.projection(pixel_values)  # (B, D, Wh, Ww)
        x = x.flatten(2).transpose(1, 2)  # (B, N, D), token = h*Ww + w
        if bool_masked_pos is not None:
            if self.mask_token is None:
                raise ValueError("bool_masked_pos given but the model has no mask_token")
            w = bool_masked_pos.reshape(x.shape[0], -1, 1).to(x.dtype)
            x = x * (1 - w) + self.mask_token * w  # hard replacement, before cls and pos
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        if self.position_embeddings is not None:
            x = x + self.position_embeddings
        return x


class BeitBackbone(nn.Module):
    """HF `beit.*`: embeddings, encoder (with the optional shared RPB), final norm, pooler."""

    def __init__(self, cfg, add_pooling_layer, fk):
        super().__init__()
        d, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.embeddings = BeitEmbeddings(cfg, fk)
        grid = self.embeddings.grid
        self.encoder = _Namespace()
        if cfg["use_shared_relative_position_bias"]:
            self.encoder.relative_position_bias = RelativePositionBias(
                grid, cfg["num_attention_heads"], **fk)
        else:
            self.encoder.relative_position_bias = None
        self.encoder.layer = nn.ModuleList(
            [BeitLayer(cfg, grid, fk) for _ in range(cfg["num_hidden_layers"])])
        # HF: Identity when use_mean_pooling, else the final LayerNorm.
        self.layernorm = None if cfg["use_mean_pooling"] else nn.LayerNorm(d, eps=eps, **fk)
        self.pooler = None
        if add_pooling_layer:
            self.pooler = _Namespace()
            self.pooler.layernorm = nn.LayerNorm(d, eps=eps, **fk) if cfg["use_mean_pooling"] else None

    def forward(self, pixel_values, bool_masked_pos=None, drop_scales=None):
        x = self.embeddings(pixel_values, bool_masked_pos)
        rpb = self.encoder.relative_position_bias
        shared = rpb() if rpb is not None else None
        for i, layer in enumerate(self.encoder.layer):
            x = layer(x, shared, None if drop_scales is None else drop_scales[i])
        if self.layernorm is not None:
            x = self.layernorm(x)
        pooled = None
        if self.pooler is not None:
            if self.pooler.layernorm is not None:
                pooled = self.pooler.layernorm(x[:, 1:].mean(dim=1))
            else:
                pooled = x[:, 0]
        return x, pooled


class BeitRef(nn.Module):
    """BeitModel / BeitForMaskedImageModeling / BeitForImageClassification with HF names.

    forward(pixel_values (B,C,H,W), bool_masked_pos (B,N) bool or None, drop_scales (L,2,B) or
    None, labels or None) -> dict with "hidden" (B,T,D), "logits" ((M,V) MIM, (B,C) classifier,
    the pooled (B,D) for BeitModel), "pooled" (classifier/BeitModel) and "loss" when labels given.
    """

    def __init__(self, config, device=None, dtype=None):
        super().__init__()
        cfg = resolve_config(config)
        self.config = cfg
        self.arch = cfg["architecture"]
        fk = {"device": device, "dtype": dtype}
        d, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.beit = BeitBackbone(cfg, add_pooling_layer=self.arch != "BeitForMaskedImageModeling", fk=fk)
        if self.arch == "BeitForMaskedImageModeling":
            self.layernorm = nn.LayerNorm(d, eps=eps, **fk)
            self.lm_head = nn.Linear(d, cfg["vocab_size"], **fk)
        elif self.arch == "BeitForImageClassification":
            self.classifier = nn.Linear(d, cfg["num_labels"], **fk)

    def problem_type(self, labels):
        pt = self.config.get("problem_type")
        if pt:
            return pt
        if self.config["num_labels"] == 1:
            return "regression"
        if labels is not None and labels.dtype in (torch.int64, torch.int32):
            return "single_label_classification"
        return "multi_label_classification"

    def forward(self, pixel_values, bool_masked_pos=None, drop_scales=None, labels=None,
                label_smoothing=0.0):
        if bool_masked_pos is not None:
            bool_masked_pos = bool_masked_pos.bool()
        hidden, pooled = self.beit(pixel_values, bool_masked_pos, drop_scales)
        out = {"hidden": hidden}
        if self.arch == "BeitForMaskedImageModeling":
            if bool_masked_pos is None:
                raise ValueError("BeitForMaskedImageModeling needs bool_masked_pos")
            seq = self.layernorm(hidden)[:, 1:]  # final LN on all tokens, then drop cls
            rows = seq[bool_masked_pos]  # (M, D), batch-major then row-major
            logits = self.lm_head(rows)
            out["logits"] = logits
            if labels is not None:
                out["loss"] = F.cross_entropy(logits, labels.long())
        elif self.arch == "BeitForImageClassification":
            logits = self.classifier(pooled)
            out["pooled"] = pooled
            out["logits"] = logits
            if labels is not None:
                pt = self.problem_type(labels)
                if pt == "multi_label_classification":
                    out["loss"] = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
                elif pt == "regression":
                    out["loss"] = F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).reshape(-1))
                else:
                    out["loss"] = F.cross_entropy(logits, labels.long(),
                                                  label_smoothing=label_smoothing)
        else:
            out["pooled"] = pooled
            out["logits"] = pooled
        return out


# ------------------------------------------------------------------------------------------------
# Initialisation (spec 3). Not used by the golden fixtures (they use random weights of larger scale).

def _trunc_normal_(t, std, a, b):
    with torch.no_grad():
        return nn.init.trunc_normal_(t, mean=0.0, std=std, a=a, b=b)


def init_pretrain_(model, std=0.02):
    """unilm modeling_pretrain init: trunc-normal(std) cut at +-1 sigma for embeddings tokens, lm_head,
    every Linear and the patch conv; biases 0, LN 1/0, RPB 0, lambda = layer_scale_init_value;
    then attention.output.dense and output.dense weights of block l (1-based) divided by sqrt(2l)."""
    _init_common_(model, std, a=-std, b=std, conv=True)
    _fix_init_(model)


def init_finetune_(model, std=0.02, init_scale=0.001):
    """unilm modeling_finetune / timm init: trunc-normal(std, a=-2, b=2) for Linear, cls/pos/mask;
    LN 1/0; the patch conv keeps PyTorch's default; same sqrt(2l) rescale; classifier weight and
    bias then multiplied by init_scale."""
    _init_common_(model, std, a=-2.0, b=2.0, conv=False)
    _fix_init_(model)
    if hasattr(model, "classifier"):
        with torch.no_grad():
            model.classifier.weight.mul_(init_scale)
            model.classifier.bias.mul_(init_scale)


def _init_common_(model, std, a, b, conv):
    emb = model.beit.embeddings
    for p in (emb.cls_token, emb.mask_token, emb.position_embeddings):
        if p is not None:
            _trunc_normal_(p, std, a, b)
    ls = model.config["layer_scale_init_value"]
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, nn.Linear):
                _trunc_normal_(mod.weight, std, a, b)
                if mod.bias is not None:
                    mod.bias.zero_()
            elif isinstance(mod, nn.LayerNorm):
                mod.weight.fill_(1.0)
                mod.bias.zero_()
            elif isinstance(mod, nn.Conv2d) and conv:
                _trunc_normal_(mod.weight, std, a, b)
                mod.bias.zero_()
            elif isinstance(mod, RelativePositionBias):
                mod.relative_position_bias_table.zero_()
        for layer in model.beit.encoder.layer:
            if layer.lambda_1 is not None:
                layer.lambda_1.fill_(float(ls))
                layer.lambda_2.fill_(float(ls))


def _fix_init_(model):
    with torch.no_grad():
        for i, layer in enumerate(model.beit.encoder.layer):
            layer.attention.output.dense.weight.div_(math.sqrt(2.0 * (i + 1)))
            layer.output.dense.weight.div_(math.sqrt(2.0 * (i + 1)))


# ------------------------------------------------------------------------------------------------
# Optimisation helpers (spec 5.2, 6.1) and DropPath scales (spec 1.3).

NO_DECAY_NAMES = ("beit.embeddings.cls_token", "beit.embeddings.position_embeddings")


def random_weights(model, rng, classifier_scale=0.2):
    """Test weights, name -> float32 numpy array, at scales where every path matters (relative
    position tables, LayerScale, biases, LayerNorm gains, tokens and positions away from their
    init); rng is a numpy Generator. A larger classifier_scale spreads the probabilities."""
    out = {}
    for name, p in model.state_dict().items():
        z = rng.standard_normal(tuple(p.shape))
        if name.endswith("relative_position_bias_table"):
            v = 0.5 * z
        elif ".lambda_" in name:
            v = 0.5 + 0.2 * z
        elif name.endswith(".bias"):
            v = 0.1 * z
        elif "layernorm" in name and name.endswith(".weight"):
            v = 1.0 + 0.2 * z
        elif name.endswith(("cls_token", "mask_token", "position_embeddings")):
            v = 0.5 * z
        elif name.startswith("classifier"):
            v = classifier_scale * z
        else:
            v = 0.2 * z
        out[name] = v.astype(np.float32)
    return out


def is_no_decay(name, param):
    """unilm optim_factory: no decay iff 1-D, or a '.bias', or in no_weight_decay {cls, pos_embed}.
    mask_token (1,1,D) and relative_position_bias tables ARE decayed."""
    return param.ndim == 1 or name.endswith(".bias") or name in NO_DECAY_NAMES


def param_groups(model, weight_decay):
    """Two AdamW groups [decay, no-decay]; each also carries the parameter 'names'."""
    decay, no_decay, decay_names, no_decay_names = [], [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if is_no_decay(name, p):
            no_decay.append(p)
            no_decay_names.append(name)
        else:
            decay.append(p)
            decay_names.append(name)
    return [{"params": decay, "weight_decay": weight_decay, "names": decay_names},
            {"params": no_decay, "weight_decay": 0.0, "names": no_decay_names}]


def cosine_schedule(base, final, total_iters, warmup_iters=0, start_warmup_value=0.0):
    """unilm utils.cosine_scheduler per iteration: linspace(start, base, warmup_iters) (both ends
    inclusive), then final + 0.5 (base - final)(1 + cos(pi i / M)), i = 0..M-1, M = total - warmup."""
    warm = [start_warmup_value + (base - start_warmup_value) * i / (warmup_iters - 1)
            for i in range(warmup_iters)] if warmup_iters > 1 else [base] * warmup_iters
    # numpy.linspace(a, b, 1) gives [a]; keep that corner identical.
    if warmup_iters == 1:
        warm = [start_warmup_value]
    m = total_iters - warmup_iters
    rest = [final + 0.5 * (base - final) * (1 + math.cos(math.pi * i / m)) for i in range(m)]
    return warm + rest


def drop_path_rates(drop_path_rate, num_layers):
    """linspace(0, rate, L) inclusive: block 0 gets 0, the last block the full rate."""
    if num_layers == 1:
        return [0.0]
    return [drop_path_rate * i / (num_layers - 1) for i in range(num_layers)]


def sample_drop_scales(drop_path_rate, num_layers, batch, generator=None, dtype=torch.float32):
    """(L, 2, B) DropPath multipliers floor(keep + U[0,1)) / keep per sample and branch."""
    out = torch.ones(num_layers, 2, batch, dtype=dtype)
    for i, p in enumerate(drop_path_rates(drop_path_rate, num_layers)):
        if p > 0:
            keep = 1.0 - p
            u = torch.rand(2, batch, generator=generator, dtype=dtype)
            out[i] = torch.floor(keep + u) / keep
    return out
