"""imatrix allocate: the solver is optimal (brute force), the recipe is llama-quantize's syntax, and on the real
Gemma 3 270M the predicted file size equals the bytes llama-quantize writes with the recipe."""

from __future__ import annotations

import itertools
import random

import pytest
from gguf import GGMLQuantizationType as T

from imatrix.importance import allocate as alloc


def _random_case(seed: int, n_tensors: int = 5, n_options: int = 3):
    rng = random.Random(seed)
    options, groups = {}, {}
    for index in range(n_tensors):
        name = f"blk.{index}.ffn_up.weight" if index % 2 else f"blk.{index}.attn_q.weight"
        sizes = sorted(rng.sample(range(1, 40), n_options))
        errors = sorted((rng.uniform(0, 10) for _ in range(n_options)), reverse=True)
        options[name] = [alloc.Option(T.Q8_0, 32 * s, e) for s, e in zip(sizes, errors)]
        groups[name] = alloc.LAYER.sub("", name)
    return options, groups


def _brute_force(options, budget, factors, groups):
    names = sorted(options)
    best = None
    for combo in itertools.product(*(range(len(options[n])) for n in names)):
        size = sum(alloc.padded(options[n][c].nbytes, 32) for n, c in zip(names, combo))
        if size > budget:
            continue
        cost = sum(factors.get(groups[n], 1.0) * options[n][c].error for n, c in zip(names, combo))
        if best is None or cost < best - 1e-12:
            best = cost
    return best


@pytest.mark.parametrize("seed", range(12))
def test_solver_is_optimal_against_brute_force(seed):
    options, groups = _random_case(seed)
    factors = {"attn_q.weight": 0.5 + seed % 3, "ffn_up.weight": 1.0}
    smallest = sum(min(o.nbytes for o in opts) for opts in options.values())
    largest = sum(max(o.nbytes for o in opts) for opts in options.values())
    budget = (smallest + largest) // 2
    choice, objective, method = alloc.solve(options, budget, factors, groups)
    assert method.startswith("exact")
    assert sum(alloc.padded(o.nbytes, 32) for o in choice.values()) <= budget
    assert objective == pytest.approx(_brute_force(options, budget, factors, groups))
    assert objective == pytest.approx(sum(factors[groups[n]] * o.error for n, o in choice.items()))


def test_solver_refuses_an_impossible_budget():
    options, groups = _random_case(0)
    smallest = sum(alloc.padded(min(o.nbytes for o in opts), 32) for opts in options.values())
    with pytest.raises(alloc.AllocateError, match="smallest types"):
        alloc.solve(options, smallest - 1, {}, groups)


def test_coarse_resolution_still_fits_the_budget():
    options, groups = _random_case(3, n_tensors=6)
    budget = sum(max(o.nbytes for o in opts) for opts in options.values()) - 64
    alloc.DP_STATES, saved = 7, alloc.DP_STATES  # force rounding up to a coarse unit
    try:
        choice, _, method = alloc.solve(options, budget, {}, groups)
    finally:
        alloc.DP_STATES = saved
    assert method.startswith("DP at")
    assert sum(alloc.padded(o.nbytes, 32) for o in choice.values()) <= budget


def test_recipe_lines_are_anchored_escaped_regexes():
    choice = {"blk.1.attn_q.weight": alloc.Option(T.IQ2_XS, 10, 0.0), "output.weight": alloc.Option(T.Q6_K, 1, 0.0)}
    assert alloc.recipe_lines(choice) == [r"^blk\.1\.attn_q\.weight$=iq2_xs", r"^output\.weight$=q6_k"]


def test_parse_size_and_types():
    assert alloc.parse_size("10.2GiB") == int(10.2 * 2**30)
    assert alloc.parse_size("800MB") == 800_000_000
    assert alloc.parse_size("1234") == 1234
    with pytest.raises(alloc.AllocateError):
        alloc.parse_size("ten gigs")
    assert alloc.as_types("iq2_xs, Q4_K,iq2_xs") == (T.IQ2_XS, T.Q4_K)
    with pytest.raises(alloc.AllocateError, match="unknown ggml tensor type"):
        alloc.as_types("Q9_9")


def test_parse_dry_run_lines():
    text = ("[   1/ 236] output_norm.weight                   - [   640,      1,      1,      1], type =    f32, "
            "size =    0.002 MiB\n[   2/ 236] token_embd.weight                    - [   640, 262144,      1,      "
            "1], type =   q8_0, size =   170.00 MiB ->   640.00 MiB (f32)\n")
    assert alloc.parse_dry_run(text) == {"output_norm.weight": ("f32", "f32"), "token_embd.weight": ("q8_0", "f32")}


def test_sampled_rows_and_error_energy():
    assert list(alloc.sampled_rows(5, 10)) == [0, 1, 2, 3, 4]
    rows = alloc.sampled_rows(1000, 7)
    assert rows[0] == 0 and rows[-1] == 999 and len(rows) == 7


@pytest.mark.slow
@pytest.mark.llamacpp
def test_real_model_recipe_size_is_byte_exact(tmp_path_factory):
    """On the real 270M with the session's imatrix: the recipe fits the target, llama-quantize accepts it, the
    file it writes has exactly the predicted size, and a second run writes the same recipe."""
    from imatrix.importance.recipe import AllocateJob, confirm_with_dry_run, run_allocate
    from imatrix.llamacpp import tools as llamacpp
    from tests.imatrix.llamacpp_artifacts import session_artifacts

    artifacts = session_artifacts(tmp_path_factory)
    imatrix = artifacts.ours_imatrix()
    folder = tmp_path_factory.mktemp("allocate")
    recipes = []
    for attempt in range(2):
        job = AllocateJob(artifacts.model, imatrix, folder / f"recipe{attempt}.txt", target_size=150 * 2**20,
                          types=("Q4_0", "Q5_0", "IQ4_NL", "Q8_0", "IQ2_XS"), max_rows=128, threads=2,
                          progress=False, log=lambda line: None)
        result = run_allocate(job)
        recipes.append(job.output.read_bytes())
    assert recipes[0] == recipes[1]
    assert result.predicted_file_bytes <= 150 * 2**20
    assert "agrees" in confirm_with_dry_run(result, job)
    out = folder / "allocated.gguf"
    llamacpp.quantize(artifacts.model, out, result.base_ftype, imatrix=imatrix, threads=2,
                      extra_args=["--tensor-type-file", str(job.output)])
    assert out.stat().st_size == result.predicted_file_bytes
    from imatrix.importance.gate import final_types_from_gguf

    finals = final_types_from_gguf(out)
    assert all(finals[name] == option.qtype for name, option in result.choice.items())
