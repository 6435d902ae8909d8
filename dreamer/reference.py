"""Parameter counts of the published DreamerV3 agents, from their layer lists.

Each line below is one named module of the reference code (danijar/dreamerv3
at e3f0224, dreamerv3/rssm.py, dreamerv3/agent.py, embodied/jax/nets.py and
heads.py) with its kernel, bias and norm-scale sizes, so a run can print its
own count next to the reference's and a test can check that our networks are
the same shape. The slow critic is a frozen copy and is not counted.
"""

from __future__ import annotations



def _dense(fan_in: int, units: int, norm: bool = True) -> int:
    """Linear with bias, followed (or not) by an RMSNorm with a learned scale."""
    return fan_in * units + units + (units if norm else 0)


def _conv(channels_in: int, channels_out: int, kernel: int, norm: bool = True) -> int:
    return kernel * kernel * channels_in * channels_out + channels_out + (channels_out if norm else 0)


def _mlp(fan_in: int, units: int, layers: int) -> int:
    total = 0
    for _ in range(layers):
        total += _dense(fan_in, units)
        fan_in = units
    return total


def dreamerv3_2024_params(
    obs_shapes: dict[str, tuple[int, ...]],
    action_dim: int,
    *,
    deter: int,
    hidden: int,
    stoch: int,
    classes: int,
    cnn_depth: int,
    mlp_units: int,
    mlp_layers: int = 3,
    cnn_mults: tuple[int, ...] = (2, 3, 4, 4),
    cnn_kernel: int = 5,
    blocks: int = 8,
    bins: int = 255,
    **_: object,
) -> int:
    """Trainable parameters of the 2024 agent (world model, policy, value).

    ``obs_shapes``: (H, W, C) images and (D,) vectors; the other arguments are
    the size group's keys (``configs/model/12m.yaml`` etc.), so
    ``dreamerv3_2024_params(shapes, A, **cfg.model)`` works.
    """
    images = {k: s for k, s in obs_shapes.items() if len(s) == 3}
    vectors = {k: s for k, s in obs_shapes.items() if len(s) == 1}
    units, latent = mlp_units, stoch * classes
    depths = [cnn_depth * m for m in cnn_mults]
    feat = deter + latent
    total = 0
    # Encoder: 'mlp{i}' on the symlogged vectors, 'cnn{i}' conv + max-pool stages.
    embed = 0
    if vectors:
        total += _mlp(sum(s[0] for s in vectors.values()), units, mlp_layers)
        embed += units
    if images:
        height, width, _ = next(iter(images.values()))
        channels = sum(s[-1] for s in images.values())
        for depth in depths:
            total += _conv(channels, depth, cnn_kernel)
            channels = depth
        embed += channels * (height // 2 ** len(depths)) * (width // 2 ** len(depths))
    # RSSM: 'dynin0..2', 'dynhid0' (block), 'dyngru' (block), 'prior0..1', 'priorlogit', 'obs0', 'obslogit'.
    total += _dense(deter, hidden) + _dense(latent, hidden) + _dense(action_dim, hidden)
    block_in = deter // blocks + 3 * hidden
    total += blocks * block_in * (deter // blocks) + deter + deter
    total += blocks * (deter // blocks) * (3 * deter // blocks) + 3 * deter
    total += _dense(deter, hidden) + _dense(hidden, hidden) + _dense(hidden, latent, norm=False)
    total += _dense(deter + embed, hidden) + _dense(hidden, latent, norm=False)
    # Decoder: 'mlp' + 'vec' head; 'sp0' (block, from deter), 'sp1', 'sp2' (from stoch), 'spnorm', 'conv{i}', 'imgout'.
    if vectors:
        size = sum(s[0] for s in vectors.values())
        total += _mlp(feat, units, mlp_layers) + _dense(units, size, norm=False)
    if images:
        height, width, _ = next(iter(images.values()))
        cells = (height // 2 ** len(depths)) * (width // 2 ** len(depths)) * depths[-1]
        total += blocks * (deter // blocks) * (cells // blocks) + cells
        total += _dense(latent, 2 * units) + _dense(2 * units, cells, norm=False) + depths[-1]
        channels = depths[-1]
        for depth in reversed(depths[:-1]):
            total += _conv(channels, depth, cnn_kernel)
            channels = depth
        total += _conv(channels, sum(s[-1] for s in images.values()), cnn_kernel, norm=False)
    # Heads: 'rew' and 'con' (1 layer), 'pol' and 'val' (mlp_layers), each MLP + output.
    total += _mlp(feat, units, 1) + _dense(units, bins, norm=False)
    total += _mlp(feat, units, 1) + _dense(units, 1, norm=False)
    total += _mlp(feat, units, mlp_layers) + 2 * _dense(units, action_dim, norm=False)
    total += _mlp(feat, units, mlp_layers) + _dense(units, bins, norm=False)
    return total


def format_count(count: int) -> str:
    return f"{count / 1e6:.2f}M" if count >= 1e5 else f"{count / 1e3:.1f}k"
