"""Learning-rate schedules of the SOD trainer beyond its per-epoch ones: ATAL's cyclic cosine (eq 8), whose
cycle ends are the snapshots of a trajectory ensemble."""

from __future__ import annotations

import math

from synthsod.errors import SynthsodError


def _check_schedule(total_iterations: int, cycles: int) -> int:
    """The cycle length ceil(T / L), after checking T and L."""
    if total_iterations < 1 or cycles < 1 or cycles > total_iterations:
        raise SynthsodError(
            f"a cyclic schedule needs 1 <= cycles <= total iterations, got {cycles} cycles "
            f"over {total_iterations} iterations"
        )
    return math.ceil(total_iterations / cycles)


def cyclic_cosine_lr(base_lr: float, iteration: int, total_iterations: int, cycles: int, min_lr: float = 0.0) -> float:
    """Eq 8 at the 0-based ``iteration``: each cycle of ceil(T / L) steps anneals from base_lr towards min_lr."""
    cycle = _check_schedule(total_iterations, cycles)
    if not 0 <= iteration < total_iterations:
        raise SynthsodError(f"iteration {iteration} is outside the schedule's 0..{total_iterations - 1}")
    phase = (iteration % cycle) / cycle
    return min_lr + (base_lr - min_lr) / 2 * (1 + math.cos(math.pi * phase))


def snapshot_steps(total_iterations: int, cycles: int) -> list[int]:
    """0-based iterations after which to save a snapshot: each cycle's last one, and the final iteration.

    That is ``cycles`` snapshots when cycles divides the iterations; otherwise ceil(T / L) lengthens the
    cycles and the last one ends early with the training, so there can be fewer.
    """
    cycle = _check_schedule(total_iterations, cycles)
    return [min(end, total_iterations) - 1 for end in range(cycle, total_iterations + cycle, cycle)]
