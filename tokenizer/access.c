/* What the training loop in mim/ sees of a struct beit_tokenizer (include/beit/tokenizer_train.h):
 * the parameter and gradient buffers, the planned batch, the decoder's presence and the last
 * training step's tokens. The struct's layout stays in dvae.h. */
#include "dvae.h"

struct beit_tensor_table *beit_tokenizer_table(struct beit_tokenizer *tok) { return &tok->table; }
float *beit_tokenizer_params(struct beit_tokenizer *tok) { return tok->params; }
float *beit_tokenizer_grads(struct beit_tokenizer *tok) { return tok->grads; }
size_t beit_tokenizer_max_batch(const struct beit_tokenizer *tok) { return tok->max_batch; }
int beit_tokenizer_has_decoder(const struct beit_tokenizer *tok) { return tok->dec.nblocks != 0; }

const int32_t *beit_tokenizer_step_tokens(const struct beit_tokenizer *tok)
{
  return tok->t.tokens;
}
