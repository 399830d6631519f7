"""Run by tests/test_pretrain.py under ``torchrun --nproc_per_node 2``: one short data-parallel
pre-training on the synthetic upstream data; each rank saves its final weights to argv[1]."""

import os
import sys

import torch

torch.set_num_threads(1)

from nml.pretrain import PretrainConfig, pretrain  # noqa: E402

out_dir, checkpoint_dir = sys.argv[1], sys.argv[2]
cfg = PretrainConfig(backbone="resnet_micro", noise=0.2, epochs=1, warmup_epochs=0, batch_size=64,
                     train_fraction=0.1)
result = pretrain(cfg, checkpoint_dir=checkpoint_dir, device="cpu", progress=False)
rank = int(os.environ["RANK"])
torch.save({"state": result.backbone.state_dict(), "world_size": result.world_size,
            "accuracy": result.test_accuracy, "history": result.history},
           os.path.join(out_dir, f"rank{rank}.pt"))
