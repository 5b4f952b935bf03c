"""``tapegrad.optim.LBFGS``: limited-memory BFGS over all parameters as one flat vector, with an
optional strong-Wolfe line search; follows ``torch.optim.LBFGS`` (Nocedal and Wright's
algorithms 7.4 and 3.5-3.6, as minFunc arranges them) step for step, so that a model fitted
with it takes PyTorch's path."""

from __future__ import annotations

import numpy as np

from .._grad_mode import enable_grad
from .._record import _bump_version
from ..tensor import Tensor, _wrap
from .optimizer import Optimizer, _array, _check_nonnegative, _refuse_inside_a_recording


def _scalar(value, dtype) -> Tensor:
    """A number as the 0-d tensor of the flat vector's dtype PyTorch keeps (``ro``, ``H_diag``,
    ``al``)."""
    return _wrap(np.array(value, dtype))


def _cubic_minimum(x1, f1, g1, x2, f2, g2, bounds=None) -> float:
    """The minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1 and g2, clamped
    to ``bounds`` (default: the interval between x1 and x2); its middle when the cubic has no
    minimum."""
    low, high = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    square = d1 * d1 - g1 * g2
    if square < 0:
        return (low + high) / 2.0
    d2 = np.sqrt(square)
    if x1 <= x2:
        position = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        position = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(position, low), high)


def _strong_wolfe(evaluate, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """A step ``t`` along ``d`` meeting the strong Wolfe conditions (sufficient decrease ``c1``,
    curvature ``c2``): first a bracket, growing the step by cubic extrapolation, then zooming
    into it by cubic interpolation, at most ``max_ls`` evaluations. ``evaluate(t)`` is
    ``(loss, flat gradient)`` at x + t d. Returns ``(loss, gradient, t, evaluations)``."""
    d_norm = np.abs(d).max()
    f_new, g_new = evaluate(t)
    evaluations = 1
    gtd_new = float(g_new @ d)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    iteration = 0
    bracket = None
    while iteration < max_ls:
        if f_new > f + c1 * t * gtd or (iteration > 1 and f_new >= f_prev):
            bracket = [t_prev, t], [f_prev, f_new], [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, done = ([t], [f_new], [g_new], [gtd_new]), True
            break
        if gtd_new >= 0:
            bracket = [t_prev, t], [f_prev, f_new], [g_prev, g_new], [gtd_prev, gtd_new]
            break
        # Extrapolate: a cubic step between 1.01 t and 10 t.
        previous = t
        t = _cubic_minimum(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, (t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, g_prev, gtd_prev = previous, f_new, g_new, gtd_new
        f_new, g_new = evaluate(t)
        evaluations += 1
        gtd_new = float(g_new @ d)
        iteration += 1
    if iteration == max_ls:
        bracket = [0.0, t], [f, f_new], [g, g_new], [gtd, gtd_new]
    steps, values, gradients, slopes = bracket
    insufficient = False
    low, high = (0, 1) if values[0] <= values[-1] else (1, 0)
    while not done and iteration < max_ls:
        if abs(steps[1] - steps[0]) * d_norm < tolerance_change:
            break  # the bracket is too small to make progress
        t = _cubic_minimum(steps[0], values[0], slopes[0], steps[1], values[1], slopes[1])
        # Too close to an end of the bracket (twice, or outside it): a tenth of it inside.
        margin = 0.1 * (max(steps) - min(steps))
        if min(max(steps) - t, t - min(steps)) < margin:
            if insufficient or t >= max(steps) or t <= min(steps):
                t = max(steps) - margin if abs(t - max(steps)) < abs(t - min(steps)) else min(steps) + margin
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new = evaluate(t)
        evaluations += 1
        gtd_new = float(g_new @ d)
        iteration += 1
        if f_new > f + c1 * t * gtd or f_new >= values[low]:
            steps[high], values[high], gradients[high], slopes[high] = t, f_new, g_new, gtd_new
            low, high = (0, 1) if values[0] <= values[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (steps[high] - steps[low]) >= 0:  # the high end moves to the low one
                steps[high], values[high], gradients[high], slopes[high] = (
                    steps[low],
                    values[low],
                    gradients[low],
                    slopes[low],
                )
            steps[low], values[low], gradients[low], slopes[low] = t, f_new, g_new, gtd_new
    return values[low], gradients[low], steps[low], evaluations


class LBFGS(Optimizer):
    """L-BFGS; follows ``torch.optim.LBFGS``: ``step(closure)`` runs up to ``max_iter``
    iterations (``max_eval`` evaluations of ``closure``, which clears the gradients, computes
    the loss, calls ``backward()`` and returns the loss) and returns the first loss.

    ``line_search_fn`` is None (fixed steps of ``lr``) or ``"strong_wolfe"``. Every parameter
    is one part of a flat vector, so there is one group only. Raises ``ValueError`` for a
    negative ``lr`` or several groups, ``RuntimeError`` for another line search. The state
    (directions, steps, curvature history) is that of the first parameter, as PyTorch keeps it:
    ``d``, ``prev_flat_grad`` and the lists ``old_dirs`` and ``old_stps`` hold flat tensors,
    ``ro``, ``al`` and ``H_diag`` 0-d tensors, ``func_evals`` and ``n_iter`` ints.
    """

    def __init__(
        self,
        params,
        lr: float = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ):
        _check_nonnegative(lr=lr)
        defaults = dict(
            lr=lr, max_iter=max_iter, max_eval=max_iter * 5 // 4 if max_eval is None else max_eval,
            tolerance_grad=tolerance_grad, tolerance_change=tolerance_change, history_size=history_size,
            line_search_fn=line_search_fn,
        )  # fmt: skip
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    def _flat_grad(self) -> np.ndarray:
        dtype = np.result_type(*(p._data.dtype for p in self._params))
        return np.concatenate(
            [
                np.zeros(p._data.size, dtype) if p.grad is None else p.grad._data.reshape(-1).astype(dtype, copy=False)
                for p in self._params
            ]
        )

    def _add(self, t: float, d: np.ndarray) -> None:
        """Every parameter += t * its part of ``d`` (PyTorch's ``add_(part, alpha=t)``)."""
        offset = 0
        for parameter in self._params:
            value = parameter._data
            part = d[offset : offset + value.size].reshape(value.shape)
            value += (part * value.dtype.type(t)).astype(value.dtype, copy=False)
            _bump_version(parameter)
            offset += value.size

    def _evaluate(self, closure) -> float:
        with enable_grad():
            return float(closure())

    def step(self, closure):
        _refuse_inside_a_recording()
        group = self.param_groups[0]
        lr, max_iter, max_eval = float(group["lr"]), group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        history_size, line_search = group["history_size"], group["line_search_fn"]
        if line_search not in (None, "strong_wolfe"):
            raise RuntimeError("only 'strong_wolfe' is supported")
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        with enable_grad():
            first_loss = closure()
        loss = float(first_loss)
        evaluations = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        if np.abs(flat_grad).max(initial=0.0) <= tolerance_grad:
            return first_loss
        d, t = state.get("d"), state.get("t")
        d = None if d is None else _array(d)
        t = None if t is None else float(t)
        directions = [_array(value) for value in state.get("old_dirs", [])]  # y: gradient changes
        steps = [_array(value) for value in state.get("old_stps", [])]  # s: parameter changes
        ro = [float(value) for value in state.get("ro", [])]  # 1 / (y . s)
        h_diag = float(state.get("H_diag", 1.0))
        prev_flat_grad, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")
        prev_flat_grad = None if prev_flat_grad is None else _array(prev_flat_grad)
        iteration = 0
        while iteration < max_iter:
            iteration += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                directions, steps, ro, h_diag = [], [], [], 1.0
            else:
                y = flat_grad - prev_flat_grad
                s = d * d.dtype.type(t)
                ys = float(y @ s)
                if ys > 1e-10:  # a curvature pair only where the curvature condition holds
                    if len(directions) == history_size:
                        directions.pop(0)
                        steps.pop(0)
                        ro.pop(0)
                    directions.append(y)
                    steps.append(s)
                    ro.append(1.0 / ys)
                    h_diag = ys / float(y @ y)
                # The two-loop recursion: d = -H g, H the L-BFGS inverse Hessian.
                alphas = [0.0] * len(directions)
                q = -flat_grad
                for i in range(len(directions) - 1, -1, -1):
                    alphas[i] = float(steps[i] @ q) * ro[i]
                    q = q - directions[i] * q.dtype.type(alphas[i])
                # PyTorch keeps the alphas, history_size of them (None where unused).
                kept = state.setdefault("al", [None] * history_size)
                for i, alpha in enumerate(alphas):
                    kept[i] = _scalar(alpha, q.dtype)
                d = q * q.dtype.type(h_diag)
                for i in range(len(directions)):
                    beta = float(directions[i] @ d) * ro[i]
                    d = d + steps[i] * d.dtype.type(alphas[i] - beta)
            prev_flat_grad = flat_grad.copy()
            prev_loss = loss
            t = min(1.0, 1.0 / float(np.abs(flat_grad).sum())) * lr if state["n_iter"] == 1 else lr
            gtd = float(flat_grad @ d)
            if gtd > -tolerance_change:
                break  # not a descent direction, to the tolerance
            added = 0
            if line_search is not None:
                start = [p._data.copy() for p in self._params]

                def along(step, start=start, d=d):
                    """The loss and gradient at start + step d; the parameters put back."""
                    self._add(step, d)
                    value = self._evaluate(closure)
                    gradient = self._flat_grad()
                    for parameter, original in zip(self._params, start):
                        parameter._data[...] = original
                        _bump_version(parameter)
                    return value, gradient

                loss, flat_grad, t, added = _strong_wolfe(
                    along, t, d, loss, flat_grad, gtd, max_ls=max_eval - evaluations
                )
                self._add(t, d)
                optimal = np.abs(flat_grad).max(initial=0.0) <= tolerance_grad
            else:
                self._add(t, d)
                optimal = False
                if iteration != max_iter:  # the last step's loss is not evaluated (PyTorch's)
                    loss = self._evaluate(closure)
                    flat_grad = self._flat_grad()
                    optimal = np.abs(flat_grad).max(initial=0.0) <= tolerance_grad
                    added = 1
            evaluations += added
            state["func_evals"] += added
            if (
                iteration == max_iter
                or evaluations >= max_eval
                or optimal
                or np.abs(d * d.dtype.type(t)).max(initial=0.0) <= tolerance_change
                or abs(loss - prev_loss) < tolerance_change
            ):
                break
        if d is not None:  # (None only when no iteration ran: max_iter 0)
            dtype = d.dtype
            state.update(
                d=_wrap(d), t=t, old_dirs=[_wrap(y) for y in directions], old_stps=[_wrap(s) for s in steps],
                ro=[_scalar(value, dtype) for value in ro], H_diag=_scalar(h_diag, dtype) if directions else 1,
                prev_flat_grad=_wrap(prev_flat_grad), prev_loss=prev_loss,
            )  # fmt: skip
        return first_loss
