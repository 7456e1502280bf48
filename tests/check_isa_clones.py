#!/usr/bin/env python3
"""The portable build's instruction sets (core/isa.h), read from the disassembly of a binary.

1. Nothing outside a clone uses an instruction a baseline x86-64 CPU lacks: no AVX, AVX2, FMA,
   AVX-512 (VEX/EVEX mnemonics, ymm/zmm/mask registers), BMI, or SSE3..SSE4.2 instruction,
   except in a function that GCC cloned for x86-64-v3/v4 (name containing .arch_x86_64_v3 or
   .arch_x86_64_v4) or one of OWN_TARGET (its own target attribute behind a CPU check).
2. An x86-64-v3 clone uses no AVX-512 (zmm, mask registers, xmm16-31/ymm16-31).
3. The AVX-512 clone of every kernel in ZMM uses zmm registers, and its x86-64-v3 clone ymm: the
   loops vectorised at the clone's width (an OpenMP body is a child function, NAME._omp_fn.N,
   with clones of its own).
4. No clone calls a function of the binary that is not itself a clone (a helper left out of
   line runs baseline code): calls through the PLT (libraries, other kernels' resolvers) are fine.

Usage: check_isa_clones.py BINARY [--objdump PATH]; exit 1 on any miss (tests/checks.py).
"""
import argparse
import re
import subprocess
import sys

import checks

CLONE = re.compile(r"\.arch_x86_64_v[34]\b")
V4 = ".arch_x86_64_v4"
V3 = ".arch_x86_64_v3"

# Functions with their own target attribute, called only after a run-time CPU check.
OWN_TARGET = {"round_run_avx512"}  # core/conv.c: AVX512-BF16 conversion
# Out-of-line calls a clone makes on purpose (rule 4): scalar code of another module.
CALLS_OK = OWN_TARGET | {"beit_rng_seed", "beit_rng_u64"}  # the dVAE's Gumbel noise

# Kernels whose clones must run at the full vector width (their vector loops are the hot paths).
ZMM = [
    "beit_gelu_forward", "beit_gelu_forward_bf16", "beit_gelu_backward",
    "beit_softmax_forward", "beit_softmax_backward",
    "beit_layernorm_forward", "beit_layernorm_forward_bf16", "beit_layernorm_backward",
    "beit_layernorm_backward_bf16", "beit_residual_layernorm_forward", "beit_residual_forward_bf16",
    "beit_residual_forward", "beit_residual_backward", "column_pass", "beit_bias_forward",
    "softmax_rows_inplace", "softmax_block_backward", "softmax_heads", "softmax_heads_backward",
    "bias_grad", "beit_residual_branch_backward_bf16", "heads_copy",
    "beit_to_bf16", "beit_to_bf16_rows", "beit_from_bf16",
    "beit_grad_norm", "beit_cross_entropy_backward",
    "im2col_rows", "im2col_rows_bf16", "col2im_add", "bias_act", "move_act", "add_masked",
    "round_run_soft", "dbias_sum", "beit_relu_forward", "beit_relu_backward",
    "beit_upsample2_forward", "beit_upsample2_backward", "beit_maxpool2_forward",
    "beit_dvae_gumbel_softmax_forward", "beit_dvae_gumbel_softmax_backward",
    "beit_dvae_kl_uniform",
    "resample_vertical", "beit_data_jitter_apply_box", "beit_ra_affine",
]

# Mnemonics a baseline (SSE2) x86-64 lacks that do not start with "v": BMI1/2, LZCNT, MOVBE,
# POPCNT, SSE3, SSSE3, SSE4.1/4.2. (tzcnt is left out: GCC's baseline ctz is rep bsf, which
# objdump prints as tzcnt and old CPUs run as bsf.)
NOT_BASELINE = set("""
andn bextr blsi blsmsk blsr bzhi mulx pdep pext rorx sarx shlx shrx lzcnt movbe popcnt
addsubps addsubpd haddps haddpd hsubps hsubpd lddqu movddup movshdup movsldup
pshufb palignr phaddw phaddd phaddsw phsubw phsubd phsubsw pmaddubsw pmulhrsw psignb psignw
psignd pabsb pabsw pabsd
pblendvb pblendw blendps blendpd blendvps blendvpd dpps dppd extractps insertps pextrb pextrd
pextrq pinsrb pinsrd pinsrq pmaxsb pmaxsd pmaxud pmaxuw pminsb pminsd pminud pminuw pmuldq
pmulld ptest roundps roundpd roundss roundsd packusdw pcmpeqq pcmpgtq mpsadbw phminposuw
movntdqa pmovsxbw pmovsxbd pmovsxbq pmovsxwd pmovsxwq pmovsxdq pmovzxbw pmovzxbd pmovzxbq
pmovzxwd pmovzxwq pmovzxdq crc32 pcmpestri pcmpestrm pcmpistri pcmpistrm
""".split())
AVX512_REG = re.compile(r"%(zmm\d+|k[0-7]\b|[xy]mm(1[6-9]|2\d|3[01])\b)")
YMM = re.compile(r"%ymm\d+")
FUNC = re.compile(r"^[0-9a-f]+ <(.+)>:$")
INSN = re.compile(r"^\s*[0-9a-f]+:\s+(\S+)\s*(.*)$")
CALL = re.compile(r"<([^>+]+)(\+0x[0-9a-f]+)?>")


def functions(binary, objdump):
    """{name: [(mnemonic, operands), ...]} from objdump -d."""
    text = subprocess.run([objdump, "-d", "--no-show-raw-insn", binary], check=True,
                          capture_output=True, text=True).stdout
    funcs, cur = {}, None
    for line in text.splitlines():
        m = FUNC.match(line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        m = INSN.match(line)
        if m and cur is not None:
            cur.append((m.group(1), m.group(2)))
    return funcs


def beyond_baseline(mnemonic, operands):
    base = mnemonic.split(".")[0]
    return (base.startswith("v") or base in NOT_BASELINE or "%ymm" in operands
            or AVX512_REG.search(operands) is not None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binary")
    ap.add_argument("--objdump", default="objdump")
    args = ap.parse_args()
    funcs = functions(args.binary, args.objdump)
    checks.check(len(funcs) > 100, f"{args.binary}: {len(funcs)} functions disassembled")
    clones = sorted(n for n in funcs if CLONE.search(n))
    checks.check(len(clones) > 0, f"{len(clones)} x86-64-v3/v4 clones")

    outside = {}
    for name, insns in funcs.items():
        if CLONE.search(name) or name in OWN_TARGET:
            continue
        bad = [f"{m} {o}".strip() for m, o in insns if beyond_baseline(m, o)]
        if bad:
            outside[name] = bad
    checks.check(not outside, "no instruction beyond baseline x86-64 outside the clones" +
                 "".join(f"\n     {n}: {len(b)}, e.g. {b[0]}" for n, b in sorted(outside.items())))

    v3_avx512 = sorted(n for n in clones if V3 in n
                       and any(AVX512_REG.search(o) for _, o in funcs[n]))
    checks.check(not v3_avx512, "the x86-64-v3 clones use no AVX-512 registers" +
                 "".join(f"\n     {n}" for n in v3_avx512))

    for kernel in ZMM:
        mine = [n for n in clones if n.split(".")[0] == kernel]
        z = [n for n in mine if V4 in n and any("%zmm" in o for _, o in funcs[n])]
        y = [n for n in mine if V3 in n and any(YMM.search(o) for _, o in funcs[n])]
        zc = sum(sum("%zmm" in o for _, o in funcs[n]) for n in z)
        checks.check(z and y, f"{kernel}: AVX-512 clone with zmm ({zc} instructions in "
                     f"{', '.join(z) or 'none'}), AVX2 clone with ymm ({len(y)} functions)")

    local = {n for n in funcs if "@plt" not in n}
    stray = {}
    for name in clones:
        for m, o in funcs[name]:
            if not m.startswith("call"):
                continue
            t = CALL.search(o)
            if t and "@plt" not in t.group(1) and t.group(1) in local \
                    and not CLONE.search(t.group(1)) and t.group(1) not in CALLS_OK \
                    and t.group(1) != name.split(".")[0]:
                stray.setdefault(name, set()).add(t.group(1))
    checks.check(not stray, "the clones call no baseline helper of the binary" +
                 "".join(f"\n     {n} -> {', '.join(sorted(t))}" for n, t in sorted(stray.items())))
    return checks.summary("check_isa_clones")


if __name__ == "__main__":
    sys.exit(main())
