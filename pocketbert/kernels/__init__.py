"""CPU kernel families: where an artifact's numbers come from.

An int8 artifact computes different numbers on different CPU kernels (ONNX Runtime's u8s8 kernel on x86 without
VNNI adds pairs of products in int16 and saturates; phones run aarch64 dot-product kernels). A parity verdict is
therefore a property of an artifact *and* a kernel family:

- ``host``: this machine's own runtime, natively;
- ``arm64``: the aarch64 builds of the same runtime versions under QEMU user-mode emulation with a phone's CPU
  model (Cortex-A76: NEON with the dot-product instructions);
- ``arm64-i8mm``: the same with QEMU's ``max`` CPU model and SVE off (NEON, dot product and the int8 matrix
  multiply instructions of newer phones);
- ``x86-avx2``: this host's x86_64 runtime under QEMU with an AMD EPYC Rome (Zen 2) CPU model: AVX2, no AVX-512,
  no VNNI, so any machine reproduces what an AVX2 CI runner computes.

:mod:`.families` names them and says what each needs, :mod:`.provision` sets up their environments (cached outside
the repository), :mod:`.remote` runs an artifact's runner inside one, and :mod:`.facts` says which ISA, CPU features
and runtime produced a result.
"""
