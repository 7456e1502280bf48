include(${CMAKE_CURRENT_LIST_DIR}/script_test.cmake)
# beit pretrain end to end: exact resume after SIGKILL and SIGTERM, complete checkpoints.
beit_add_script_test(NAME test_pretrain_e2e LABELS e2e PROPERTIES TIMEOUT 900)
beit_add_test(NAME test_trainer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_trainer.c LABELS unit
              LIBS beit_mim)
if(BEIT_USE_MPI)
  find_package(MPI REQUIRED COMPONENTS C)
  beit_add_script_test(NAME test_mpi_pretrain MPI LABELS "mpi;e2e" PROPERTIES TIMEOUT 1200)
  # The same in bf16 (and 1 rank x 16 x 2 accumulation steps): loss curves within 1e-4 over 40
  # steps, final weights within 1e-3 in L2; exit 77 = skipped without bf16 matrix products.
  beit_add_script_test(NAME test_mpi_pretrain_bf16 MPI
                       LABELS "mpi;e2e" PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77)
endif()
# The precision policy of beit pretrain (--precision, recipe key `precision`): fp32 and bf16 runs
# of the small Fashion-MNIST model say and record what they computed in, bf16 resumes exactly,
# and under ONEDNN_MAX_CPU_ISA=AVX2 auto is fp32 and bf16 an error naming the ISA.
beit_add_script_test(NAME test_precision_e2e LABELS e2e PROPERTIES TIMEOUT 300)
# bf16 pretraining is deterministic (two runs: same losses, weights and AdamW state, bit for bit)
# and resumes bit for bit after SIGKILL; exit 77 = skipped without bf16 matrix products.
beit_add_script_test(NAME test_bf16_pretrain_e2e
                     LABELS e2e PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77)
# bf16 against fp32 over 300 steps of the small model on real Fashion-MNIST images (loss curves
# within 2%, masked-token accuracy within 0.5 points); exit 77 = skipped without bf16 products.
beit_add_script_test(NAME test_precision_parity
                     LABELS e2e PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77)
# The training commands' --out folder: a folder holding a run is refused without --resume or
# --overwrite (pretrain, finetune, tokenizer train), --resume continues, --overwrite moves the
# previous run into OUT/previous-<time>/ and starts at step 0.
beit_add_script_test(NAME test_out_dir_e2e LABELS e2e PROPERTIES TIMEOUT 300)
# Writes that fail mid-run (RLIMIT_FSIZE): a checkpoint that cannot be written, metrics.jsonl
# that cannot be appended to, for pretrain and finetune: exit 1 naming the file and the newest
# complete checkpoint, nothing half-written left or picked, --resume continues to the end.
beit_add_script_test(NAME test_fault_write_e2e LABELS e2e PROPERTIES TIMEOUT 300)
# Data that goes bad mid-run: records of a shard chunk whose bytes flipped are skipped, named
# and counted while training goes on; a shard deleted mid-run stops the run naming it (the
# checkpoint intact, --resume after restoring it); index.json disagreeing with the shards is
# refused at start naming the file.
beit_add_script_test(NAME test_fault_data_e2e LABELS e2e PROPERTIES TIMEOUT 300)
