"""Debug mode: run a plan op by op, checking each op's output against the numpy reference of
that op (pyengine.runtime.reference) computed from the same inputs. The first op whose output
leaves the tolerance raises, naming the op; earlier ops are known good."""

from __future__ import annotations

import numpy as np

from pyengine.runtime import reference as ref

# Relative to the largest reference value of the op's output (plus a floor for all-zero ones).
RTOL, ATOL = 1e-4, 1e-6


class OpMismatch(AssertionError):
    pass


def _expected(step, plan, inputs: list[np.ndarray], reference_by_linear: dict):
    op, st, a = step.op, plan.state, step.op.attrs
    heads_view = lambda x, h: x.reshape(st.batch, st.seq, h, -1)  # noqa: E731
    kind = op.kind
    if kind == "embed":
        table = a["table"]
        if not isinstance(table, np.ndarray):  # a quantized table: its dequantized values
            table = reference_by_linear[id(table)][0]
        return ref.embedding(table, getattr(st, a.get("source", "ids")).reshape(-1))
    if kind == "linear":
        lin = a["linear"]
        weight, bias = reference_by_linear[id(lin)]
        x = inputs[0]
        rows = x.size // x.shape[-1]
        rounds_input = getattr(lin, "rounds_input", None)  # bf16 weights on the AMX path
        if rounds_input is not None and rounds_input(rows):
            x = ref.round_bf16(x)
        if getattr(lin, "format", None) is not None and lin.path(rows) == "dot":
            x = ref.quantize_activations(x)  # quantized weights: x as int8 per 32 values
        return ref.linear(x, weight, bias, inputs[1] if len(inputs) > 1 else None)
    if kind == "rms_norm":
        x = inputs[0]
        if a.get("heads"):  # one norm per head
            x = x.reshape(-1, a["weight"].shape[0])
        return ref.rms_norm(x, a["weight"], a["eps"]).reshape(inputs[0].shape)
    if kind == "layer_norm":
        return ref.layer_norm(inputs[0], a["weight"], a["bias"], a["eps"])
    if kind == "rope":
        x = heads_view(inputs[0], a["heads"])
        rows, cos, sin = a["table"].lookup(st)
        return ref.rope(x, rows, cos, sin, a["interleaved"]).reshape(inputs[0].shape)
    if kind == "kv_write":
        return None  # checked through the attention that reads the cache
    if kind == "attention":
        q = heads_view(inputs[0], a["heads"])
        layer = a["layer"]
        out = ref.attention(
            q,
            st.cache.k[layer],
            st.cache.v[layer],
            st.start_pos,
            st.key_begin,
            st.key_end,
            a["causal"],
            scale=a.get("scale"),
            window=a.get("window", 0),
            softcap=a.get("softcap", 0.0),
        )
        return out.reshape(inputs[0].shape)
    if kind == "swiglu":
        return ref.swiglu(inputs[0])
    if kind == "geglu":
        return ref.geglu(inputs[0])
    if kind == "scale":
        return ref.scale(inputs[0], a["scale"])
    if kind == "softcap":
        return ref.softcap(inputs[0], a["cap"])
    if kind == "gelu":
        return ref.gelu(inputs[0], a["approximate"])
    if kind == "add":
        return ref.add(inputs[0], inputs[1])
    if kind == "last_token":
        return inputs[0].reshape(st.batch, st.seq, -1)[:, -1, :]
    raise KeyError(f"no reference for op kind {kind!r}")


def run_checked(plan, reference_by_linear: dict) -> list[tuple[str, float]]:
    """Runs `plan`, checking every op; returns (op name, max relative error) per checked op."""
    report = []
    for step in plan.steps:
        inputs = [plan.buffers[n].copy() for n in step.op.inputs if n in plan.buffers]
        step.call()
        want = _expected(step, plan, inputs, reference_by_linear)
        if want is None:
            continue
        got = plan.buffers[step.op.output]
        scale = float(np.abs(want).max(initial=0.0))
        err = float(np.abs(got - want).max(initial=0.0))
        report.append((step.op.name, err / max(scale, ATOL)))
        if err > RTOL * scale + ATOL:
            raise OpMismatch(
                f"op {step.op.name} ({step.op.describe()}): max error {err:.3g} "
                f"vs reference scale {scale:.3g}"
            )
    return report
