/* What other libraries and apps may see of a struct beit_model (include/beit/model.h,
 * include/beit/encoder_train.h): sizes, what the last forward left, the buffers and hooks of
 * training, and models sharing one set of weights. The struct's layout stays in encoder.h. */
#include <stdlib.h>

#include "transfer.h"

void beit_model_dims(const struct beit_model *m, struct beit_model_dims *d)
{
  *d = (struct beit_model_dims){m->max_batch, m->C, m->P, m->gh, m->gw,
                                m->N,         m->T, m->D, m->L,  m->out_dim};
}

enum beit_arch beit_model_arch(const struct beit_model *m) { return m->arch; }
const float *beit_model_logits(const struct beit_model *m) { return m->a.logits; }
const float *beit_model_hidden(const struct beit_model *m) { return m->a.hidden; }

const float *beit_model_block_output(const struct beit_model *m, size_t k)
{
  return k <= m->L ? m->a.stream[k] : NULL;
}

void beit_model_set_head_all_tokens(struct beit_model *m, int on) { m->head_all_tokens = on; }

struct beit_tensor_table *beit_model_table(struct beit_model *m) { return &m->table; }
float *beit_model_params(struct beit_model *m) { return m->params; }
float *beit_model_grads(struct beit_model *m) { return m->grads; }
uint16_t *beit_model_params_h(struct beit_model *m) { return m->params_h; }

void beit_model_set_grads_ready(struct beit_model *m,
                                void (*fn)(void *ctx, size_t begin, size_t end), void *ctx)
{
  m->grads_ready = fn;
  m->grads_ready_ctx = ctx;
}

void beit_model_set_weights_rounded(struct beit_model *m, int rounded)
{
  m->weights_rounded = rounded;
}

void beit_model_scale_classifier(struct beit_model *m, float k)
{
  const long ids[2] = {m->ids.head_w, m->ids.head_b};
  for (int j = 0; j < 2; j++) {
    if (ids[j] < 0)
      continue;
    const struct beit_tensor *t = &m->table.items[ids[j]];
    for (size_t i = 0; i < t->numel; i++)
      m->params[t->offset + i] *= k;
  }
}

enum beit_status beit_model_create_sharing(struct beit_model **out,
                                           const struct beit_model *owner, size_t max_batch,
                                           struct beit_error *err)
{
  enum beit_status st = beit_model_create(out, &owner->cfg, max_batch, err);
  if (st)
    return st;
  struct beit_model *m = *out;
  free(m->params);
  m->params = owner->params;
  m->params_shared = 1;
  /* set_precision plans the bf16 activations and makes a rounded copy of its own, which is
   * dropped for the owner's: the same bits, one copy whatever the number of sharers */
  if ((st = beit_model_set_inference(m, err)) ||
      (st = beit_model_set_precision(m, owner->precision, err))) {
    free(m->params_h); /* its own copy, if set_precision made one */
    m->params_h = NULL;
    return st;
  }
  if (owner->params_h) {
    free(m->params_h);
    m->params_h = owner->params_h;
  }
  return BEIT_STATUS_OK;
}

const struct beit_config *beit_source_config(const struct beit_source *src) { return &src->cfg; }
