/* What `beit info` reports about a model config without running it (include/beit/model.h
 * beit_model_summarize): sizes, parameters per group, matmul FLOPs and the activation arena
 * planned for training and for inference in each precision. */
#include <string.h>

#include "encoder.h"

/* Parameters per group: embeddings, each block, relative position bias, heads. */
static void count_groups(const struct beit_model *m, struct beit_model_summary *s)
{
  for (size_t i = 0; i < m->table.count; i++) {
    const struct beit_tensor *t = &m->table.items[i];
    if (strstr(t->name, "relative_position_bias_table"))
      s->relative_position_bias += t->numel;
    else if (!strncmp(t->name, "beit.embeddings.", 16))
      s->embeddings += t->numel;
    else if (!strncmp(t->name, "beit.encoder.layer.", 19))
      s->blocks += t->numel;
    else
      s->heads += t->numel;
  }
}

/* The arena in fp32 and, with bf16, in bf16 (no float32 copies of product operands), for
 * training and for inference. Leaves the model planned for inference. */
static enum beit_status plan_memory(struct beit_model *m, int bf16, struct beit_model_summary *s,
                                    struct beit_error *err)
{
  enum beit_status st;
  for (int inference = 0; inference < 2; inference++) {
    if (inference && (st = beit_model_set_inference(m, err)))
      return st;
    for (int h = 0; h <= bf16; h++) {
      if ((st = beit_model_set_precision(m, h ? BEIT_PRECISION_BF16 : BEIT_PRECISION_FP32, err)))
        return st;
      s->arena_bytes[inference][h] = m->arena_floats * sizeof(float);
    }
  }
  return BEIT_STATUS_OK;
}

enum beit_status beit_model_summarize(const struct beit_config *cfg, size_t batch, int bf16,
                                      struct beit_model_summary *s, struct beit_error *err)
{
  struct beit_model *m = NULL;
  memset(s, 0, sizeof *s);
  enum beit_status st = beit_model_create(&m, cfg, batch, err);
  if (st)
    return st;
  s->gh = m->gh;
  s->gw = m->gw;
  s->layers = m->L;
  s->params = beit_model_num_params(m);
  count_groups(m, s);
  s->flops = beit_model_flops_per_image(m);
  st = plan_memory(m, bf16, s, err);
  beit_model_free(m);
  return st;
}
