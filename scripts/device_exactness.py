"""Exactness on another device: HybridKV at full budget against DynamicCache, for every tiny family.

The test suite runs on CPU; this checks the same invariant where tensors live on a GPU (pinned host
tier, device-side chunk slots):

    python scripts/device_exactness.py --device cuda
"""

from __future__ import annotations

import argparse

import torch
from transformers import DynamicCache

from hybridkv.methods import HybridKV
from hybridkv.models import FAMILIES, tiny_random_model
from hybridkv.models.testing import synthetic_image


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    args = p.parse_args()
    worst = 0.0
    for family in FAMILIES:
        loaded = tiny_random_model(family)
        loaded.model.to(args.device)
        images = [synthetic_image(448, 448, seed=1)] if loaded.adapter.is_multimodal else None
        inputs = loaded.build_inputs("Describe what you see, in detail.", images)
        kw = dict(max_new_tokens=8, min_new_tokens=8, do_sample=False, output_logits=True, return_dict_in_generate=True)
        with torch.inference_mode():
            ref = loaded.model.generate(**inputs, past_key_values=DynamicCache(), **kw)
        for head_types in ("static", "dynamic", "online"):
            for budget in (1.0, 0.1):
                method = HybridKV(budget=budget, head_types=head_types, chunk_size=8)
                with method(loaded.model), torch.inference_mode():
                    cache = method.make_cache(loaded.model, inputs)
                    out = loaded.model.generate(**inputs, past_key_values=cache, **kw)
                if budget == 1.0:
                    same = torch.equal(out.sequences, ref.sequences)
                    diff = max((a - b).abs().max().item() for a, b in zip(out.logits, ref.logits, strict=True))
                    worst = max(worst, diff)
                    status = "ok" if same and diff < 1e-5 else "MISMATCH"
                    print(f"{family:16s} {head_types:8s} full budget: equal={same} max|dlogit|={diff:.2e} {status}")
                else:
                    s = cache.stats()
                    print(f"{family:16s} {head_types:8s} budget 0.1: hot/full={s.hot_ratio:.3f} hit={s.hit_rate:.2f}")
    print(f"worst logit difference at full budget: {worst:.2e}")


if __name__ == "__main__":
    main()
