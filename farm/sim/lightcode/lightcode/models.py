"""Stand-in models: the operator graphs of small transformers, parameterised by sequence length (synthetic)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Model:
    model: str
    stage: str
    hidden: int
    layers: int
    sequence_length: int

    def nodes(self, seq: int) -> list[tuple[str, float, bool]]:
        """(name, flops, is_matmul) per operator in execution order, for ``seq`` tokens."""
        return [(f"l{i}.{n}", f, mm) for i in range(self.layers) for n, f, mm in self.layer_ops(seq)]

    def layer_ops(self, seq: int) -> list[tuple[str, float, bool]]:
        """(name, flops, is_matmul) of one layer's operators for ``seq`` tokens."""
        h = self.hidden
        rows = seq if self.stage != "decoder" else 1
        ops = [
            ("qkv_proj", 6.0 * rows * h * h, True),
            ("qk", 2.0 * rows * seq * h, True),
            ("softmax", 5.0 * rows * seq, False),
            ("av", 2.0 * rows * seq * h, True),
            ("o_proj", 2.0 * rows * h * h, True),
            ("norm", 8.0 * rows * h, False),
            ("ffn_up", 8.0 * rows * h * h, True),
            ("gelu", 16.0 * rows * h, False),
            ("ffn_down", 8.0 * rows * h * h, True),
        ]
        return ops


gpt2_prefill = Model("gpt2", "prefill", 768, 12, 5)
gpt2_decoder = Model("gpt2", "decoder", 768, 12, 6)
llama_prefill = Model("Llama-2-7b-hf", "prefill", 4096, 32, 6)
llama_decoder = Model("Llama-2-7b-hf", "decoder", 4096, 32, 11)
