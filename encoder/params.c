/* The encoder's parameter table (HF names, spec 10.1), weight-decay and layer-id tagging
 * (spec 5.1, 5.2), initialisation (spec 3), and model create/free. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder.h"
#include "kernels.h"
#include "rng.h"
#include "strbuf.h"

/* Add one tensor; tags no_decay (1-D, ".bias", cls token, position embeddings) and layer id. */
static long add(struct beit_model *m, int packed, int layer_id, const char *name, int ndim,
                size_t d0, size_t d1, size_t d2, size_t d3)
{
  size_t shape[4] = {d0, d1, d2, d3};
  long i = packed ? beit_tensor_table_add_packed(&m->table, name, ndim, shape)
                  : beit_tensor_table_add(&m->table, name, ndim, shape);
  if (i < 0)
    return -1;
  struct beit_tensor *t = &m->table.items[i];
  t->no_decay = ndim == 1 || beit_str_ends_with(name, ".bias") ||
                !strcmp(name, "beit.embeddings.cls_token") ||
                !strcmp(name, "beit.embeddings.position_embeddings");
  t->layer_id = layer_id;
  return i;
}

#define ADD1(id, lid, name, a) ((id) = add(m, 0, lid, name, 1, a, 0, 0, 0), (id) < 0)
#define ADD2(id, lid, name, a, b) ((id) = add(m, 0, lid, name, 2, a, b, 0, 0), (id) < 0)

/* The embeddings' tensors (and the shared relative position bias); -1 when out of memory. */
static int add_embeddings(struct beit_model *m)
{
  const struct beit_config *c = &m->cfg;
  struct beit_param_ids *ids = &m->ids;
  size_t D = m->D, top = m->L + 1;
  if ((ids->cls = add(m, 0, 0, "beit.embeddings.cls_token", 3, 1, 1, D, 0)) < 0)
    return -1;
  if (c->use_mask_token &&
      (ids->mask = add(m, 0, 0, "beit.embeddings.mask_token", 3, 1, 1, D, 0)) < 0)
    return -1;
  if (c->use_absolute_position_embeddings &&
      (ids->pos = add(m, 0, 0, "beit.embeddings.position_embeddings", 3, 1, m->T, D, 0)) < 0)
    return -1;
  if ((ids->patch_w = add(m, 0, 0, "beit.embeddings.patch_embeddings.projection.weight", 4, D,
                          m->C, m->P, m->P)) < 0 ||
      ADD1(ids->patch_b, 0, "beit.embeddings.patch_embeddings.projection.bias", D))
    return -1;
  if (c->use_shared_relative_position_bias &&
      ADD2(ids->shared_rel, (int)top,
           "beit.encoder.relative_position_bias.relative_position_bias_table", m->R, m->nH))
    return -1;
  return 0;
}

/* Block l's tensors; -1 when out of memory. */
static int add_layer(struct beit_model *m, size_t l)
{
  const struct beit_config *c = &m->cfg;
  struct beit_layer_ids *li = &m->ids.layer[l];
  size_t D = m->D, F = m->F;
  int lid = (int)l + 1;
  char name[BEIT_TENSOR_NAME_MAX];
#define LNAME(suffix) (snprintf(name, sizeof name, "beit.encoder.layer.%zu.%s", l, suffix), name)
  if (ADD1(li->ln1_w, lid, LNAME("layernorm_before.weight"), D) ||
      ADD1(li->ln1_b, lid, LNAME("layernorm_before.bias"), D))
    return -1;
  /* query, key, value weights packed back to back: the (3D, D) qkv matrix */
  if ((li->q_w = add(m, 1, lid, LNAME("attention.attention.query.weight"), 2, D, D, 0, 0)) < 0 ||
      (li->k_w = add(m, 1, lid, LNAME("attention.attention.key.weight"), 2, D, D, 0, 0)) < 0 ||
      ADD2(li->v_w, lid, LNAME("attention.attention.value.weight"), D, D) ||
      ADD1(li->q_b, lid, LNAME("attention.attention.query.bias"), D) ||
      ADD1(li->v_b, lid, LNAME("attention.attention.value.bias"), D))
    return -1;
  if (c->use_relative_position_bias &&
      ADD2(li->rel_table, lid,
           LNAME("attention.attention.relative_position_bias.relative_position_bias_table"),
           m->R, m->nH))
    return -1;
  if (ADD2(li->proj_w, lid, LNAME("attention.output.dense.weight"), D, D) ||
      ADD1(li->proj_b, lid, LNAME("attention.output.dense.bias"), D))
    return -1;
  if (c->layer_scale_init_value > 0 &&
      (ADD1(li->gamma1, lid, LNAME("lambda_1"), D) || ADD1(li->gamma2, lid, LNAME("lambda_2"), D)))
    return -1;
  if (ADD1(li->ln2_w, lid, LNAME("layernorm_after.weight"), D) ||
      ADD1(li->ln2_b, lid, LNAME("layernorm_after.bias"), D) ||
      ADD2(li->fc1_w, lid, LNAME("intermediate.dense.weight"), F, D) ||
      ADD1(li->fc1_b, lid, LNAME("intermediate.dense.bias"), F) ||
      ADD2(li->fc2_w, lid, LNAME("output.dense.weight"), D, F) ||
      ADD1(li->fc2_b, lid, LNAME("output.dense.bias"), D))
    return -1;
#undef LNAME
  return 0;
}

/* The final norm and the architecture's head; -1 when out of memory. */
static int add_heads(struct beit_model *m)
{
  const struct beit_config *c = &m->cfg;
  struct beit_param_ids *ids = &m->ids;
  size_t D = m->D;
  int top = (int)m->L + 1;
  if (!c->use_mean_pooling && (ADD1(ids->final_ln_w, top, "beit.layernorm.weight", D) ||
                               ADD1(ids->final_ln_b, top, "beit.layernorm.bias", D)))
    return -1;
  if (m->arch == BEIT_ARCH_MIM) {
    if (ADD1(ids->mim_ln_w, top, "layernorm.weight", D) ||
        ADD1(ids->mim_ln_b, top, "layernorm.bias", D) ||
        ADD2(ids->lm_w, top, "lm_head.weight", (size_t)c->vocab_size, D) ||
        ADD1(ids->lm_b, top, "lm_head.bias", (size_t)c->vocab_size))
      return -1;
    return 0;
  }
  if (c->use_mean_pooling && (ADD1(ids->pool_ln_w, top, "beit.pooler.layernorm.weight", D) ||
                              ADD1(ids->pool_ln_b, top, "beit.pooler.layernorm.bias", D)))
    return -1;
  if (m->arch == BEIT_ARCH_CLASSIFIER &&
      (ADD2(ids->head_w, top, "classifier.weight", (size_t)c->num_labels, D) ||
       ADD1(ids->head_b, top, "classifier.bias", (size_t)c->num_labels)))
    return -1;
  return 0;
}

enum beit_param_role beit_model_param_role(const struct beit_model *m, size_t i)
{
  const struct beit_param_ids *ids = &m->ids;
  long id = (long)i;
  if (id == ids->mask)
    return BEIT_ROLE_MASK_TOKEN;
  if (id == ids->pos)
    return BEIT_ROLE_POS_EMBED;
  if (id == ids->shared_rel)
    return BEIT_ROLE_SHARED_REL_TABLE;
  if (id == ids->final_ln_w || id == ids->final_ln_b)
    return BEIT_ROLE_FINAL_NORM;
  if (id == ids->head_w || id == ids->head_b)
    return BEIT_ROLE_CLASSIFIER;
  if (id == ids->pool_ln_w || id == ids->pool_ln_b || id == ids->mim_ln_w ||
      id == ids->mim_ln_b || id == ids->lm_w || id == ids->lm_b)
    return BEIT_ROLE_HEAD;
  for (size_t l = 0; l < m->L; l++)
    if (id == ids->layer[l].rel_table)
      return BEIT_ROLE_REL_TABLE;
  return BEIT_ROLE_BODY;
}

enum beit_status beit_model_build_table(struct beit_model *m, struct beit_error *err)
{
  struct beit_param_ids *ids = &m->ids;
  memset(ids, -1, sizeof *ids);
  int bad = !(ids->layer = malloc(m->L * sizeof *ids->layer));
  if (!bad)
    memset(ids->layer, -1, m->L * sizeof *ids->layer);
  bad = bad || add_embeddings(m);
  for (size_t l = 0; !bad && l < m->L; l++)
    bad = add_layer(m, l);
  if (bad || add_heads(m))
    return beit_error_set(err, BEIT_STATUS_NOMEM, "parameter table: out of memory");
  return BEIT_STATUS_OK;
}

static void fill(float *p, size_t n, float value)
{
  for (size_t i = 0; i < n; i++)
    p[i] = value;
}

void beit_model_init_weights(struct beit_model *m, enum beit_init_scheme scheme, uint64_t seed)
{
  const struct beit_param_ids *ids = &m->ids;
  double std = m->cfg.initializer_range;
  /* pretraining truncates at +-1 sigma, fine-tuning at +-2 absolute (spec 3) */
  double lo = scheme == BEIT_INIT_PRETRAIN ? -std : -2.0, hi = -lo;
  memset(m->params, 0, m->table.total * sizeof(float));
  /* one stream per tensor: the tensors fill in parallel, in any order, to the same values */
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < m->table.count; i++) {
    const struct beit_tensor *t = &m->table.items[i];
    float *p = m->params + t->offset;
    struct beit_rng rng;
    beit_rng_seed(&rng, seed, 0x1417, i);
    if (strstr(t->name, "relative_position_bias_table"))
      continue; /* zeros */
    if (strstr(t->name, "layernorm") && beit_str_ends_with(t->name, ".weight"))
      fill(p, t->numel, 1.0f);
    else if ((long)i == ids->patch_w && scheme == BEIT_INIT_FINETUNE) {
      /* PyTorch's default Conv2d init (kaiming_uniform a=sqrt 5): U(+-1/sqrt(fan_in)) */
      double bound = 1.0 / sqrt((double)(m->C * m->P * m->P));
      for (size_t k = 0; k < t->numel; k++)
        p[k] = (float)((2.0 * beit_rng_uniform(&rng) - 1.0) * bound);
    } else if ((long)i == ids->patch_b && scheme == BEIT_INIT_FINETUNE) {
      double bound = 1.0 / sqrt((double)(m->C * m->P * m->P));
      for (size_t k = 0; k < t->numel; k++)
        p[k] = (float)((2.0 * beit_rng_uniform(&rng) - 1.0) * bound);
    } else if (t->ndim >= 2) /* Linear and conv weights, cls/mask tokens, position embedding */
      beit_rng_fill_trunc_normal(&rng, p, t->numel, std, lo, hi);
  }
  /* LayerScale's gammas start at init_values; fix_init_weight: block l (1-based) output
   * projections divided by sqrt(2 l) */
  for (size_t l = 0; l < m->L; l++) {
    const struct beit_layer_ids *li = &ids->layer[l];
    for (int k = 0; k < 2; k++) {
      long gamma = k ? li->gamma2 : li->gamma1;
      if (gamma >= 0)
        fill(m->params + m->table.items[gamma].offset, m->table.items[gamma].numel,
             (float)m->cfg.layer_scale_init_value);
    }
    float s = (float)(1.0 / sqrt(2.0 * (double)(l + 1)));
    const struct beit_tensor *proj = &m->table.items[li->proj_w];
    const struct beit_tensor *fc2 = &m->table.items[li->fc2_w];
    for (size_t k = 0; k < proj->numel; k++)
      m->params[proj->offset + k] *= s;
    for (size_t k = 0; k < fc2->numel; k++)
      m->params[fc2->offset + k] *= s;
  }
  if (scheme == BEIT_INIT_FINETUNE && ids->head_w >= 0) { /* head_init_scale 0.001 */
    const struct beit_tensor *w = &m->table.items[ids->head_w], *b = &m->table.items[ids->head_b];
    for (size_t k = 0; k < w->numel; k++)
      m->params[w->offset + k] *= 0.001f;
    for (size_t k = 0; k < b->numel; k++)
      m->params[b->offset + k] *= 0.001f;
  }
}

enum beit_status beit_model_create(struct beit_model **out, const struct beit_config *cfg,
                                   size_t max_batch, struct beit_error *err)
{
  *out = NULL;
  enum beit_status st = beit_config_validate(cfg, "config", err);
  if (st)
    return st;
  struct beit_model *m = calloc(1, sizeof *m);
  if (!m)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "model: out of memory");
  m->cfg = *cfg;
  m->cfg.labels = NULL;
  if ((st = beit_config_set_labels(&m->cfg, cfg->num_labels, (const char *const *)cfg->labels,
                                   err)))
    goto fail;
  m->max_batch = max_batch ? max_batch : 1;
  m->precision = BEIT_PRECISION_FP32;
  m->C = (size_t)cfg->num_channels;
  m->P = (size_t)cfg->patch_size;
  m->gh = m->gw = (size_t)(cfg->image_size / cfg->patch_size);
  m->N = m->gh * m->gw;
  m->T = m->N + 1;
  m->D = (size_t)cfg->hidden_size;
  m->F = (size_t)cfg->intermediate_size;
  m->nH = (size_t)cfg->num_attention_heads;
  m->L = (size_t)cfg->num_hidden_layers;
  m->R = (2 * m->gh - 1) * (2 * m->gw - 1) + 3;
  m->arch = beit_config_arch(cfg);
  m->multilabel = beit_config_is_multilabel(cfg);
  m->out_dim = m->arch == BEIT_ARCH_MIM ? (size_t)cfg->vocab_size
               : m->arch == BEIT_ARCH_CLASSIFIER ? (size_t)cfg->num_labels : m->D;
  beit_tensor_table_init(&m->table);
  if ((st = beit_model_build_table(m, err)))
    goto fail;
  m->params = beit_alloc_floats(m->table.total);
  m->grads = beit_alloc_floats(m->table.total);
  m->rel_index = malloc(m->T * m->T * sizeof *m->rel_index);
  if (!m->params || !m->grads || !m->rel_index) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "model: cannot allocate %zu parameters",
                        m->table.total);
    goto fail;
  }
  beit_relpos_index(m->rel_index, m->gh, m->gw);
  if ((st = beit_model_plan(m, err)))
    goto fail;
  *out = m;
  return BEIT_STATUS_OK;
fail:
  beit_model_free(m);
  return st;
}

void beit_model_free(struct beit_model *m)
{
  if (!m)
    return;
  beit_config_free(&m->cfg);
  beit_tensor_table_free(&m->table);
  free(m->ids.layer);
  if (!m->params_shared) { /* else another model's (beit_model_create_sharing) */
    free(m->params);
    free(m->params_h);
  }
  free(m->grads);
  free(m->rel_index);
  free(m->arena);
  free(m->a.stream);
  free(m->a.layer);
  free(m);
}

const struct beit_config *beit_model_config(const struct beit_model *m) { return &m->cfg; }

size_t beit_model_num_params(const struct beit_model *m)
{
  size_t n = 0;
  for (size_t i = 0; i < m->table.count; i++)
    n += m->table.items[i].numel;
  return n;
}

double beit_model_flops_per_image(const struct beit_model *m)
{
  double N = (double)m->N, T = (double)m->T, D = (double)m->D, F = (double)m->F;
  double f = 2.0 * N * D * (double)(m->C * m->P * m->P);
  f += (double)m->L * (2.0 * T * D * 3.0 * D + 4.0 * T * T * D + 2.0 * T * D * D + 4.0 * T * D * F);
  if (m->arch != BEIT_ARCH_MODEL)
    f += 2.0 * D * (double)m->out_dim * (m->arch == BEIT_ARCH_MIM ? N : 1.0);
  return f;
}
