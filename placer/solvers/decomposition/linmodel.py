"""One description of a linear model with integer variables, translated by each exact
backend (CP-SAT, PuLP) into its own: variables with bounds, linear constraints, a linear
objective to maximise. Integer scaling for CP-SAT happens in one place: :func:`int_row`.

Imports nothing but the standard library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class LinModel:
    names: list[str] = field(default_factory=list)
    lb: list[float] = field(default_factory=list)
    ub: list[float] = field(default_factory=list)
    integer: list[bool] = field(default_factory=list)
    rows: list[tuple[dict[int, float], str, float, str]] = field(default_factory=list)
    obj: dict[int, float] = field(default_factory=dict)
    obj_const: float = 0.0

    def var(self, name: str, lb: float, ub: float, integer: bool = True) -> int:
        self.names.append(name)
        self.lb.append(lb)
        self.ub.append(ub)
        self.integer.append(integer)
        return len(self.names) - 1

    def add(self, coeffs: dict[int, float], sense: str, rhs: float, name: str = "") -> None:
        assert sense in ("<=", ">=", "==")
        coeffs = {k: v for k, v in coeffs.items() if v != 0}
        if coeffs:
            self.rows.append((coeffs, sense, rhs, name))

    def maximize(self, var: int, coef: float) -> None:
        self.obj[var] = self.obj.get(var, 0.0) + coef

    def value(self, x: list[float]) -> float:
        return self.obj_const + sum(c * x[i] for i, c in self.obj.items())

    @property
    def n_vars(self) -> int:
        return len(self.names)


def int_row(coeffs: dict[int, float], sense: str, rhs: float) -> tuple[dict[int, int], int]:
    """Integer coefficients for a row: exact when a power of ten makes them integral;
    otherwise rounded so that the row is relaxed (<=: coefficients down, rhs up), which
    keeps every bound proven on the scaled model valid for the original."""
    # a row integral at 10**k (within 1e-9) is within 1e-3 of integers at 10**6 (and the
    # product's own rounding, 1e-15 of it): a row farther than that at 10**6 is integral at
    # no power tried and goes straight to the rounding below (rows of real-valued
    # coefficients, half the coarse model's rows, tried all seven powers: a fifth of its
    # CP-SAT solve's own time on small models)
    def near(x: float) -> bool:
        x *= 10**6
        return abs(x - round(x)) < 1e-3 + 1e-15 * abs(x)

    maybe = near(rhs) and all(near(c) for c in coeffs.values())
    for k in range(0, 7 if maybe else 0):
        f = 10**k
        cs = {i: c * f for i, c in coeffs.items()}
        r = rhs * f
        if all(abs(v - round(v)) < 1e-9 for v in cs.values()) and abs(r - round(r)) < 1e-9:
            return {i: int(round(v)) for i, v in cs.items()}, int(round(r))
    f = 10**6
    if sense == "<=":
        return {i: math.floor(c * f) for i, c in coeffs.items()}, math.ceil(rhs * f)
    if sense == ">=":
        return {i: math.ceil(c * f) for i, c in coeffs.items()}, math.floor(rhs * f)
    raise ValueError("an equality row with non-decimal coefficients cannot be scaled exactly")
