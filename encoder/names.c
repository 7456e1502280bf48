/* HF <-> timm/unilm tensor names of BEiT checkpoints (transfer.h). */
#include <stdio.h>
#include <string.h>

#include "transfer.h"

/* ---- names --------------------------------------------------------------------------------- */

/* unilm suffix inside blocks.i. <-> HF suffix inside beit.encoder.layer.i. (spec 10.2) */
static const char *const block_map[][2] = {
    {"norm1.weight", "layernorm_before.weight"},
    {"norm1.bias", "layernorm_before.bias"},
    {"norm2.weight", "layernorm_after.weight"},
    {"norm2.bias", "layernorm_after.bias"},
    {"attn.q_bias", "attention.attention.query.bias"},
    {"attn.v_bias", "attention.attention.value.bias"},
    {"attn.relative_position_bias_table", BEIT_RPB_SUFFIX},
    {"attn.proj.weight", "attention.output.dense.weight"},
    {"attn.proj.bias", "attention.output.dense.bias"},
    {"mlp.fc1.weight", "intermediate.dense.weight"},
    {"mlp.fc1.bias", "intermediate.dense.bias"},
    {"mlp.fc2.weight", "output.dense.weight"},
    {"mlp.fc2.bias", "output.dense.bias"},
    {"gamma_1", "lambda_1"},
    {"gamma_2", "lambda_2"},
};
static const char *const top_map[][2] = {
    {"cls_token", "beit.embeddings.cls_token"},
    {"mask_token", "beit.embeddings.mask_token"},
    {"pos_embed", "beit.embeddings.position_embeddings"},
    {"patch_embed.proj.weight", "beit.embeddings.patch_embeddings.projection.weight"},
    {"patch_embed.proj.bias", "beit.embeddings.patch_embeddings.projection.bias"},
    {"rel_pos_bias.relative_position_bias_table", BEIT_SHARED_RPB},
    {"fc_norm.weight", "beit.pooler.layernorm.weight"},
    {"fc_norm.bias", "beit.pooler.layernorm.bias"},
    {"head.weight", "classifier.weight"},
    {"head.bias", "classifier.bias"},
    {"lm_head.weight", "lm_head.weight"},
    {"lm_head.bias", "lm_head.bias"},
};
#define NBLOCK (sizeof block_map / sizeof block_map[0])
#define NTOP (sizeof top_map / sizeof top_map[0])

void beit_hf_to_timm_name(const char *hf, char *out, size_t size)
{
  out[0] = '\0';
  for (size_t i = 0; i < NTOP; i++)
    if (!strcmp(hf, top_map[i][1])) {
      snprintf(out, size, "%s", top_map[i][0]);
      return;
    }
  if (!strcmp(hf, "layernorm.weight") || !strcmp(hf, "beit.layernorm.weight")) {
    snprintf(out, size, "norm.weight");
    return;
  }
  if (!strcmp(hf, "layernorm.bias") || !strcmp(hf, "beit.layernorm.bias")) {
    snprintf(out, size, "norm.bias");
    return;
  }
  long layer;
  int used = 0;
  if (sscanf(hf, BEIT_LAYER_PREFIX "%ld.%n", &layer, &used) == 1 && used > 0) {
    const char *rest = hf + used;
    if (!strcmp(rest, "attention.attention.query.weight")) {
      snprintf(out, size, "blocks.%ld.attn.qkv.weight", layer); /* q|k|v rows, packed */
      return;
    }
    for (size_t i = 0; i < NBLOCK; i++)
      if (!strcmp(rest, block_map[i][1])) {
        snprintf(out, size, "blocks.%ld.%s", layer, block_map[i][0]);
        return;
      }
  }
}

int beit_timm_to_hf_name(const char *timm, enum beit_arch arch, int mean_pooling, char *out,
                         size_t size)
{
  out[0] = '\0';
  for (size_t i = 0; i < NTOP; i++)
    if (!strcmp(timm, top_map[i][0])) {
      snprintf(out, size, "%s", top_map[i][1]);
      return 1;
    }
  if (!strcmp(timm, "norm.weight") || !strcmp(timm, "norm.bias")) {
    /* the final norm: MIM head's LayerNorm, or the cls-pooling final LayerNorm */
    const char *prefix = arch == BEIT_ARCH_MIM || mean_pooling ? "layernorm" : "beit.layernorm";
    snprintf(out, size, "%s.%s", prefix, strchr(timm, '.') + 1);
    return 1;
  }
  long layer;
  int used = 0;
  if (sscanf(timm, "blocks.%ld.%n", &layer, &used) == 1 && used > 0) {
    const char *rest = timm + used;
    for (size_t i = 0; i < NBLOCK; i++)
      if (!strcmp(rest, block_map[i][0])) {
        snprintf(out, size, BEIT_LAYER_PREFIX "%ld.%s", layer, block_map[i][1]);
        return 1;
      }
  }
  return 0;
}
