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


def without_zeros(lm: LinModel) -> tuple[set[int], list | None]:
    """The variables of `lm` that are 0 in every feasible point, and its rows without them
    (``(coeffs, sense, rhs)``; None when a row left with no variable is violated).

    A variable is 0 when its bounds are [0, 0], or when it is in a row ``<= 0`` of positive
    coefficients (``>= 0`` of negative ones) over variables whose lower bound is 0: the
    options of other plans in the model held to first plans (plans.first_plan_rows), and in
    cascade an option's unit and value variables once its binary is 0.

    Why: plan options that cannot be chosen are fixed at 0, not removed (the model's
    indices stay those of every plan): the options that another plan dominates
    (plans.drop_dominated), and the other plans' options in the model held to first plans.
    CP-SAT's presolve removes them too, but only after Python has built them and presolve
    has gone through them: on multicampus-3x-s2 of bench.plans the model held to first plans
    took 0.44 s of CPU to build and solve, against 0.26 s for the first-plan solve's own
    model (the same optimum); without them, 0.17-0.24 s (at load 3-4)."""
    lb = lm.lb
    zero = {i for i, (lo, hi) in enumerate(zip(lb, lm.ub)) if lo == 0 and hi == 0}
    rows: list = [(coeffs, sense, rhs) for coeffs, sense, rhs, _ in lm.rows]
    # a fixpoint over a worklist: a row is looked at again only when one of its variables
    # became 0 since (every row at every round cost most of the held model's CP-SAT build
    # with plans: 2.3 ms against 0.3 ms without zeros on bench.plans' fragmented seed 2).
    # The zeros are the least fixpoint (a row's test only gets truer as its variables
    # fall), so the rows kept and their order are those of the rounds over all rows. The
    # rows to look at again are found by a set test per row left, not from an index of
    # every row's variables (building that index was half of this function's time)
    todo = range(len(rows))
    while todo:
        more: set[int] = set()
        for r in todo:
            row = rows[r]
            if row is None:
                continue
            coeffs, sense, rhs = row
            if not zero.isdisjoint(coeffs):
                coeffs = {i: c for i, c in coeffs.items() if i not in zero}
                rows[r] = row = (coeffs, sense, rhs)
            if not coeffs:
                if not {"<=": rhs >= 0, ">=": rhs <= 0, "==": rhs == 0}[sense]:
                    return zero, None
                rows[r] = None
                continue
            if rhs == 0 and sense != "==":
                # (every coefficient positive on a `<=` row, negative on a `>=` row)
                vals = coeffs.values()
                if (min(vals) > 0 if sense == "<=" else max(vals) < 0) and all(
                    lb[i] == 0 for i in coeffs
                ):
                    more.update(coeffs)
                    rows[r] = None
        new = more - zero
        zero |= new
        todo = [r for r, row in enumerate(rows) if row is not None and not new.isdisjoint(row[0])]
    return zero, [row for row in rows if row is not None]


def compact(lm: LinModel) -> tuple[LinModel, list[int]] | None:
    """`lm` without the variables that are 0 in every feasible point (:func:`without_zeros`),
    and the kept variables' indices in `lm`; None when a row is violated by them alone.
    Its LP relaxation has the same optimum and bounds `lm` alike (the variables dropped are
    0 in every feasible point of the relaxation too). Why: the LP of the coarse model held to
    first plans (SPEC v3) carries every other plan's options fixed at 0, 60% of its
    variables on bench.plans' fragmented seed 2."""
    zero, rows = without_zeros(lm)
    if rows is None:
        return None
    keep = [i for i in range(lm.n_vars) if i not in zero]
    new = {v: k for k, v in enumerate(keep)}
    out = LinModel(
        [lm.names[i] for i in keep],
        [lm.lb[i] for i in keep],
        [lm.ub[i] for i in keep],
        [lm.integer[i] for i in keep],
        [({new[v]: c for v, c in co.items()}, se, rhs, "") for co, se, rhs in rows],
        {new[v]: c for v, c in lm.obj.items() if v in new},
        lm.obj_const,
    )
    return out, keep
