"""Meta-training: ANIL's outer loop and what makes it fast.

- `reference`: learn2learn's per-task MAML step on the head, as in the article (the yardstick).
- `batched`: every task head of a meta-batch adapted at once, same gradients; `fused` (C++, CPU) and
  `fused_gpu` (Triton) kernels for its trunk blocks; `statistics`: BatchNorm running statistics in closed form.
- `engines`: the two engines behind one interface; `distributed`: torchrun data parallelism.
- `training`: the meta-training run (validation, best-by-validation, resume); `feature_training` the same on
  a pretrained trunk's cached features; `pretraining`: the trunk as a plain classifier first; `trainrun`:
  what the runs share (progress, checkpoints of a run).

Nothing the app needs to adapt, classify, evaluate or export imports this package (a test checks it).
"""
