"""8-bit AdamW (Dettmers et al. 2022): moments stored block-wise quantized; see README.md."""

import torch

DEFAULTS = {"beta2": 0.999, "eps": 1e-8, "block_size": 2048, "min_8bit_numel": 4096}


def dynamic_map(signed):
    """The 256 sorted values of the 8-bit dynamic tree map (bitsandbytes' `create_dynamic_map`).

    Q = {0, 1} ∪ {±10^(i−6)·(0.1 + 0.9·(j + ½)/n_i) : i = 0..6, j = 0..n_i − 1}
    signed (Q±): n_i = 2^i, both signs;  unsigned (Q⁺): n_i = 2^(i+1), positive values only.
    Seven decades from 1e-7 to 1, each a linear grid, with more values in the larger decades.
    """
    values = [0.0, 1.0]
    for i in range(7):
        n = 2**i if signed else 2 ** (i + 1)
        for j in range(n):
            value = 10.0 ** (i - 6) * (0.1 + 0.9 * (j + 0.5) / n)
            values += [value, -value] if signed else [value]
    return torch.tensor(sorted(values), dtype=torch.float64)


def _blocks(flat, block_size):
    """A flat tensor as rows of `block_size`, the last row zero-padded."""
    return torch.nn.functional.pad(flat, (0, -flat.numel() % block_size)).view(-1, block_size)


def quantize(x, codebook, block_size):
    """Block-wise absmax quantization: x_i ≈ s[b]·Q[q_i].

    s[b] = max_{i∈b} |x_i|;  q_i = argmin_j |x_i / s[b] − Q_j| (nearest value; ties go down).
    Returns (q as uint8, one per element; s, one per block of `block_size` elements).
    """
    blocks = _blocks(x.flatten(), block_size)
    scale = blocks.abs().amax(dim=1)
    normalized = blocks / torch.where(scale > 0, scale, 1.0).unsqueeze(1)
    midpoints = (codebook[1:] + codebook[:-1]) / 2
    codes = torch.bucketize(normalized, midpoints).to(torch.uint8)
    return codes.flatten()[: x.numel()], scale


def dequantize(codes, scale, codebook, block_size, like):
    """x_i = s[b]·Q[q_i], shaped like `like`."""
    values = _blocks(codebook[codes.long()], block_size) * scale.unsqueeze(1)
    return values.flatten()[: like.numel()].view_as(like)


def adamw_update(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay):
    """One AdamW step on dequantized moments, in place (Loshchilov & Hutter 2019).

    Update rule (θ = param, g = grad, η = lr, λ = weight_decay, t = step, from 1; m and v arrive
    dequantized, m = s_m[b]·Q±[q_m], v = s_v[b]·Q⁺[q_v], and are requantized afterwards):
        θ ← θ − η·λ·θ
        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        θ ← θ − η·(m / (1 − β1^t)) / (√(v / (1 − β2^t)) + ε)
    Defaults: β1 = 0.9, β2 = 0.999, ε = 1e-8 (outside the square root, after bias correction).
    State: m as uint8 codes of the signed map Q±, v as uint8 codes of the unsigned map Q⁺, one
    absmax scale each per block of 2048 elements; tensors under 4096 elements keep fp32 m and v.
    Sources differ: bitsandbytes' blocks were 2048 in the paper and are 256 in later releases.
    """
    param.mul_(1 - lr * weight_decay)
    m.mul_(beta1).add_(grad, alpha=1 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (v / (1 - beta2**step)).sqrt_().add_(eps)
    param.addcdiv_(m, denom, value=-lr / (1 - beta1**step))


class AdamW8bit(torch.optim.Optimizer):
    """AdamW whose moments live as 8-bit codes between steps (small tensors stay fp32)."""

    def __init__(self, groups, lr, beta1, beta2, eps):
        super().__init__(groups, dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=0.0))
        self._codebooks = {}  # (signed, device, dtype) -> codebook; constants, not state

    def _codebook(self, signed, like):
        key = (signed, like.device, like.dtype)
        if key not in self._codebooks:
            self._codebooks[key] = dynamic_map(signed).to(like.device, like.dtype)
        return self._codebooks[key]

    def _init_state(self, param, state):
        dtype = torch.promote_types(param.dtype, torch.float32)
        state["step"] = 0
        if param.numel() < DEFAULTS["min_8bit_numel"]:
            state["m"] = torch.zeros_like(param, dtype=dtype)
            state["v"] = torch.zeros_like(param, dtype=dtype)
            return
        blocks = -(-param.numel() // DEFAULTS["block_size"])
        for name in ("m", "v"):
            state[f"{name}_codes"] = torch.zeros(
                param.numel(), dtype=torch.uint8, device=param.device
            )
            state[f"{name}_scale"] = torch.zeros(blocks, dtype=dtype, device=param.device)

    @torch.no_grad()
    def step(self, closure=None):
        block = DEFAULTS["block_size"]
        for group in self.param_groups:
            lr, beta1, beta2, eps = group["lr"], group["beta1"], group["beta2"], group["eps"]
            wd = group["weight_decay"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    self._init_state(param, state)
                state["step"] += 1
                is_quantized = "m_codes" in state
                if is_quantized:
                    scale = state["m_scale"]
                    signed, unsigned = self._codebook(True, scale), self._codebook(False, scale)
                    m = dequantize(state["m_codes"], scale, signed, block, param)
                    v = dequantize(state["v_codes"], state["v_scale"], unsigned, block, m)
                else:
                    m, v = state["m"], state["v"]
                grad = param.grad.to(m.dtype)
                adamw_update(param, grad, m, v, state["step"], lr, beta1, beta2, eps, wd)
                if is_quantized:
                    state["m_codes"], state["m_scale"] = quantize(m, signed, block)
                    state["v_codes"], state["v_scale"] = quantize(v, unsigned, block)


def optimizer(params, hp, info):
    return AdamW8bit(
        params.torch_groups(weight_decay=hp["weight_decay"]),
        lr=hp["lr"],
        beta1=hp["beta1"],
        beta2=DEFAULTS["beta2"],
        eps=DEFAULTS["eps"],
    )
