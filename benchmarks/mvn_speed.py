"""Full-covariance Gaussian kernels: genmath.mvn against the solve form and PyTorch, side by side.

Run ``python -m benchmarks.mvn_speed`` (a few minutes on one CPU core; ``--quick`` for a
smoke run). On the inputs of the kernel benchmark's three full-covariance workloads
(``mvn_log_prob_shared``: one distribution, 4096 points; ``mvn_log_prob_batched``: 256
distributions x 16 points; ``mvn_kl``: 256 pairs; all D = 64, float32) it times, in one
process with interleaved repetitions (``benchmarks._src.timing``), ``forward`` and
``value_and_grad`` (with respect to the parameters) of:

* ``solve_form``: the hand-written textbook formulas of ``benchmarks/_src/formulas.py``,
  one LAPACK triangular solve (``jax.scipy.linalg.solve_triangular``), i.e. what genmath
  computed before the blocked solve;
* ``genmath``: ``genmath.mvn`` as it is now;
* ``blocked``: the solve form with every solve replaced by genmath's blocked solve
  (``genmath._src.triangular.solve_lower``), to show where it helps;
* ``inverse_matmul``: the solve form with each factor inverted once (the blocked solve
  against the identity) and applied as one matrix product;
* ``torch``: ``torch.distributions.MultivariateNormal``, eager, with
  ``torch.set_num_threads`` set to the cores this process may use.

Every forward result is checked against the float64 reference of the kernel benchmark.
Then an accuracy sweep: the relative error of ``mvn.log_prob`` and ``mvn.kl`` (and of the
solve form) against a 40-digit mpmath evaluation, for factors of condition number
:math:`\\kappa(L)` from 1e2 to 1e8 (covariances up to 1e16), in float32 and float64.
Results go to ``benchmarks/results/mvn-speed-<slug>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile

import jax
import jax.numpy as jnp
import mpmath
import numpy as np

from benchmarks._src import checks, device, formulas, runners, timing, workloads
from genmath import mvn
from genmath._src.triangular import solve_lower

RESULTS_DIR = pathlib.Path(__file__).parent / "results"
SCHEMA_VERSION = 1
DIM = 64
WORKLOADS = {
    # name: (inputs, batch, parameters, reference)
    "mvn_log_prob_shared": (workloads._mvn_shared_inputs, 4096, ("loc", "scale_tril")),
    "mvn_log_prob_batched": (workloads._mvn_batched_inputs, 256, ("loc", "scale_tril")),
    "mvn_kl": (workloads._mvn_kl_inputs, 256, ("loc_p", "scale_tril_p", "loc_q", "scale_tril_q")),
}
REFERENCES = {
    "mvn_log_prob_shared": workloads.ref_mvn_log_prob,
    "mvn_log_prob_batched": workloads.ref_mvn_log_prob,
    "mvn_kl": workloads.ref_mvn_kl,
}
CONDITION_NUMBERS = (1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8)


# -- the contenders ------------------------------------------------------------------------


def _inverse(tril):
    eye = jnp.broadcast_to(jnp.eye(tril.shape[-1], dtype=tril.dtype), tril.shape)
    return solve_lower(tril, eye)


def _log_prob_with(solve):
    """The solve form of ``formulas.mvn_log_prob`` with ``solve(L, columns)``."""

    def log_prob(x, loc, scale_tril):
        tril = jnp.tril(scale_tril)
        batch_ndim = tril.ndim - 2
        diff = x - loc
        sample_shape = diff.shape[: diff.ndim - 1 - batch_ndim]
        columns = jnp.moveaxis(diff.reshape((-1, *diff.shape[len(sample_shape) :])), 0, -1)
        z = solve(tril, columns)
        squared = jnp.moveaxis(jnp.sum(z * z, axis=-2), -1, 0).reshape(diff.shape[:-1])
        log_det = jnp.sum(jnp.log(jnp.abs(jnp.diagonal(tril, axis1=-2, axis2=-1))), axis=-1)
        return -0.5 * squared - log_det - DIM * formulas.HALF_LOG_TWO_PI

    return log_prob


def _kl_with(solve):
    def kl(loc_p, scale_tril_p, loc_q, scale_tril_q):
        tril_p, tril_q = jnp.tril(scale_tril_p), jnp.tril(scale_tril_q)
        m = solve(tril_q, tril_p)
        z = solve(tril_q, (loc_p - loc_q)[..., None])[..., 0]
        log_det = lambda t: jnp.sum(jnp.log(jnp.abs(jnp.diagonal(t, axis1=-2, axis2=-1))), -1)
        trace = jnp.sum(m * m, axis=(-2, -1))
        return 0.5 * (trace + jnp.sum(z * z, axis=-1) - DIM) + log_det(tril_q) - log_det(tril_p)

    return kl


def _inverse_solve(tril, rhs):
    return jnp.matmul(_inverse(tril), rhs)


def jax_contenders(name: str) -> dict:
    if name == "mvn_kl":
        return {
            "solve_form": formulas.mvn_kl,
            "genmath": mvn.kl,
            "blocked": _kl_with(solve_lower),
            "inverse_matmul": _kl_with(_inverse_solve),
        }
    return {
        "solve_form": formulas.mvn_log_prob,
        "genmath": lambda x, **kw: mvn.log_prob(x, **kw),
        "blocked": _log_prob_with(solve_lower),
        "inverse_matmul": _log_prob_with(_inverse_solve),
    }


def torch_contender(name: str):
    import torch.distributions as td

    def dist(loc, tril):
        return td.MultivariateNormal(loc, scale_tril=tril)

    if name == "mvn_kl":
        return lambda loc_p, scale_tril_p, loc_q, scale_tril_q: td.kl_divergence(
            dist(loc_p, scale_tril_p), dist(loc_q, scale_tril_q)
        )
    return lambda x, loc, scale_tril: dist(loc, scale_tril).log_prob(x)


# -- timing --------------------------------------------------------------------------------


def time_workload(name: str, reps: int, min_sample_s: float, with_torch: bool) -> list[dict]:
    make_inputs, batch, param_names = WORKLOADS[name]
    inputs = make_inputs(np.random.default_rng(0), batch, DIM)
    params = {k: v for k, v in inputs.items() if k in param_names}
    data = {k: v for k, v in inputs.items() if k not in param_names}
    # The reference sees the inputs the contenders see: rounded to float32 first.
    expected = REFERENCES[name](**{k: np.float64(np.float32(v)) for k, v in inputs.items()})
    params32 = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
    data32 = {k: jnp.asarray(v, jnp.float32) for k, v in data.items()}
    records = []
    for mode in runners.MODES:
        prepared = {
            key: runners.prepare_jax(fn, params32, data32, mode)
            for key, fn in jax_contenders(name).items()
        }
        if with_torch:
            prepared["torch"] = runners.prepare_torch(
                torch_contender(name),
                {k: np.array(v, np.float32) for k, v in params.items()},
                {k: np.array(v, np.float32) for k, v in data.items()},
                mode,
            )
        timed = [timing.Runner((key,), p.call) for key, p in prepared.items()]
        timing.run_interleaved(timed, reps, min_sample_s)
        for runner in timed:
            key = runner.key[0]
            summary = timing.summarise(runner)
            record = {
                "workload": name,
                "mode": mode,
                "contender": key,
                "batch": batch,
                "dim": DIM,
                "finite": prepared[key].finite,
                "median_s": summary.median_s,
                "cpu_median_s": summary.cpu_median_s,
                "p25_s": summary.p25_s,
                "p75_s": summary.p75_s,
                "samples": summary.samples,
            }
            output = prepared[key].output
            if output is not None:
                error = checks.max_relative_error(output, expected)
                record["max_rel_err"] = error
                record["correct"] = checks.is_correct(error, "float32")
            records.append(record)
            print(
                f"{name:22s} {mode:15s} {key:15s} {summary.median_s * 1e3:9.3f} ms "
                f"(cpu {summary.cpu_median_s * 1e3:8.3f} ms)",
                flush=True,
            )
    return records


def ratios(records: list[dict]) -> list[dict]:
    """Time of the solve form (and of torch) over genmath's, per workload and mode."""
    out = []
    by_key = {(r["workload"], r["mode"], r["contender"]): r for r in records}
    for (workload, mode, contender), record in by_key.items():
        if contender != "genmath":
            continue
        row = {"workload": workload, "mode": mode}
        for other in ("solve_form", "torch", "blocked", "inverse_matmul"):
            if (workload, mode, other) in by_key:
                theirs = by_key[(workload, mode, other)]
                row[f"{other}_over_genmath"] = theirs["median_s"] / record["median_s"]
                row[f"{other}_over_genmath_cpu"] = theirs["cpu_median_s"] / record["cpu_median_s"]
        out.append(row)
    return out


# -- accuracy against condition number -----------------------------------------------------


def conditioned_factor(rng, dim: int, condition: float) -> np.ndarray:
    """The Cholesky factor of a covariance with a random eigenbasis and eigenvalues
    log-spaced from 1 to ``condition**-2``: :math:`\\kappa(L) = \\kappa(\\Sigma)^{1/2}`
    = ``condition``, the way an ill-conditioned covariance reaches genmath.mvn."""
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    eigenvalues = np.logspace(0.0, -2.0 * np.log10(condition), dim)
    return np.linalg.cholesky((basis * eigenvalues) @ basis.T)


def _mp_solve(tril, rhs):
    """Forward substitution in mpmath (``tril`` and ``rhs`` as mpmath matrices)."""
    n = tril.rows
    z = mpmath.matrix(n, rhs.cols)
    for k in range(rhs.cols):
        for i in range(n):
            s = rhs[i, k] - mpmath.fsum(tril[i, j] * z[j, k] for j in range(i))
            z[i, k] = s / tril[i, i]
    return z


def mp_log_prob(x, loc, tril) -> np.ndarray:
    dim = tril.shape[-1]
    t = mpmath.matrix(tril.tolist())
    z = _mp_solve(t, mpmath.matrix((x - loc).T.tolist()))
    log_det = mpmath.fsum(mpmath.log(abs(t[i, i])) for i in range(dim))
    const = dim * mpmath.log(2 * mpmath.pi) / 2
    return np.array(
        [
            float(-mpmath.fsum(z[i, k] ** 2 for i in range(dim)) / 2 - log_det - const)
            for k in range(z.cols)
        ]
    )


def mp_kl(loc_p, tril_p, loc_q, tril_q) -> float:
    dim = tril_p.shape[-1]
    tp, tq = mpmath.matrix(tril_p.tolist()), mpmath.matrix(tril_q.tolist())
    m = _mp_solve(tq, tp)
    z = _mp_solve(tq, mpmath.matrix((loc_p - loc_q)[:, None].tolist()))
    trace = mpmath.fsum(m[i, j] ** 2 for i in range(dim) for j in range(dim))
    mean = mpmath.fsum(z[i, 0] ** 2 for i in range(dim))
    log_det = mpmath.fsum(mpmath.log(abs(tq[i, i])) - mpmath.log(abs(tp[i, i])) for i in range(dim))
    return float((trace + mean - dim) / 2 + log_det)


def accuracy_sweep(dim: int, points: int, conditions=CONDITION_NUMBERS) -> list[dict]:
    """Relative error against 40-digit mpmath, per condition number and dtype.

    The distributions are random factors of the given condition; the points are drawn from
    the distribution itself (so the Mahalanobis term is of order D, as in use), and q in
    the KL is a second factor of the same condition (p's points differ from q's).
    """
    mpmath.mp.dps = 40
    rng = np.random.default_rng(1)
    rows = []
    for condition in conditions:
        tril = conditioned_factor(rng, dim, condition)
        tril_q = conditioned_factor(rng, dim, condition)
        loc, loc_q = rng.normal(size=dim), rng.normal(size=dim)
        # `points` (< dim) take LAPACK's solve in mvn.log_prob, 2 * dim take the inverse.
        x_all = loc + rng.normal(size=(2 * dim, dim)) @ tril.T
        for dtype in (np.float32, np.float64):
            # The inputs rounded to the dtype are what the reference must see too.
            xar, lr, tr = (np.asarray(np.asarray(a, dtype), np.float64) for a in (x_all, loc, tril))
            lqr, tqr = (np.asarray(np.asarray(a, dtype), np.float64) for a in (loc_q, tril_q))
            expected_all = mp_log_prob(xar, lr, tr)
            xr, expected_lp = xar[:points], expected_all[:points]
            many = [jnp.asarray(a, dtype) for a in (xar, lr, tr)]
            lp_many = np.asarray(
                jax.jit(lambda x, m, t: mvn.log_prob(x, loc=m, scale_tril=t))(*many)
            )
            lp_many_solve = np.asarray(jax.jit(formulas.mvn_log_prob)(*many))
            expected_kl = mp_kl(lr, tr, lqr, tqr)
            args = [jnp.asarray(a, dtype) for a in (xr, lr, tr, lqr, tqr)]
            lp = np.asarray(
                jax.jit(lambda x, m, t: mvn.log_prob(x, loc=m, scale_tril=t))(*args[:3])
            )
            lp_solve = np.asarray(jax.jit(formulas.mvn_log_prob)(*args[:3]))
            kl = float(
                jax.jit(
                    lambda a, b, c, d: mvn.kl(loc_p=a, scale_tril_p=b, loc_q=c, scale_tril_q=d)
                )(args[1], args[2], args[3], args[4])
            )
            kl_solve = float(jax.jit(formulas.mvn_kl)(args[1], args[2], args[3], args[4]))

            def rel(a, b):
                return float(np.max(np.abs(np.asarray(a, np.float64) - b) / np.abs(b)))

            row = {
                "condition_target": condition,
                "kappa_L": float(np.linalg.cond(tr)),
                "dtype": np.dtype(dtype).name,
                "dim": dim,
                "log_prob_rel_err": rel(lp, expected_lp),
                "log_prob_rel_err_solve_form": rel(lp_solve, expected_lp),
                "log_prob_many_points_rel_err": rel(lp_many, expected_all),
                "log_prob_many_points_rel_err_solve_form": rel(lp_many_solve, expected_all),
                "kl_rel_err": rel(kl, expected_kl),
                "kl_rel_err_solve_form": rel(kl_solve, expected_kl),
                "kl_value": expected_kl,
            }
            rows.append(row)
            print(
                f"kappa(L) {row['kappa_L']:8.1e} {row['dtype']:8s} log_prob "
                f"{row['log_prob_rel_err']:8.1e} (solve {row['log_prob_rel_err_solve_form']:8.1e}"
                f"; {2 * dim} points {row['log_prob_many_points_rel_err']:8.1e}, solve "
                f"{row['log_prob_many_points_rel_err_solve_form']:8.1e})"
                f"  kl {row['kl_rel_err']:8.1e} (solve {row['kl_rel_err_solve_form']:8.1e})",
                flush=True,
            )
    return rows


# -- main ----------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.mvn_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="few repetitions, small sweep")
    parser.add_argument("--reps", type=int, default=None, help="interleaved repetitions")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument(
        "--out", default=None, help="results file (default under results/; --quick: a temp dir)"
    )
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    reps = args.reps or (3 if args.quick else 21)
    with_torch = not args.no_torch
    cores = device.cpu_cores()
    if with_torch:
        import torch

        torch.set_num_threads(cores)
    info = device.describe()
    records = []
    for name in args.workloads.split(","):
        records += time_workload(name, reps, 0.002 if args.quick else 0.05, with_torch)
    # float64 for the sweep's float64 half, after every timing (float32 inputs) is done.
    jax.config.update("jax_enable_x64", True)
    conditions = (1e2, 1e6) if args.quick else CONDITION_NUMBERS
    sweep = accuracy_sweep(8 if args.quick else 32, 4, conditions)
    result = {
        "suite": "mvn_speed",
        "schema": SCHEMA_VERSION,
        **info,
        "quick": args.quick,
        "reps": reps,
        "torch_threads": cores if with_torch else None,
        "load_average": os.getloadavg(),
        "records": records,
        "ratios": ratios(records),
        "accuracy": sweep,
    }
    # A smoke run never replaces the committed results: it goes to a temporary folder.
    results = pathlib.Path(tempfile.mkdtemp(prefix="genmath-bench-")) if args.quick else RESULTS_DIR
    out = pathlib.Path(args.out) if args.out else results / f"mvn-speed-{info['slug']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for row in result["ratios"]:
        print(
            f"{row['workload']:22s} {row['mode']:15s} solve_form/genmath "
            f"{row['solve_form_over_genmath']:.2f} (cpu {row['solve_form_over_genmath_cpu']:.2f})"
            + (
                f"  torch/genmath {row['torch_over_genmath']:.2f} "
                f"(cpu {row['torch_over_genmath_cpu']:.2f})"
                if "torch_over_genmath" in row
                else ""
            )
        )
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
