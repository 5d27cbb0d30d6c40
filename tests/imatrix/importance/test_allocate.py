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
    from imatrix.importance.recipe import (
        AllocateJob,
        confirm_with_dry_run,
        run_allocate,
    )
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


def test_command_default_types_are_the_allocators():
    from imatrix.commands.allocate import DEFAULT_TYPES

    assert tuple(DEFAULT_TYPES.split(",")) == alloc.DEFAULT_TYPES


def test_llama_quantize_refusals_without_imatrix_are_not_candidates():
    from imatrix.files.imatrix_file import Imatrix
    from imatrix.importance.ggml_quant import GgmlQuantizer

    quantizer = GgmlQuantizer.load()
    empty = Imatrix(entries={}, datasets=[], chunk_count=0, chunk_size=0)
    types = (T.IQ1_M, T.IQ2_XXS, T.IQ2_S, T.IQ3_S, T.Q8_0)
    for name, allowed in (("blk.0.ffn_down.weight", [T.IQ3_S, T.Q8_0]),
                          ("token_embd.weight", [T.IQ1_M, T.IQ3_S, T.Q8_0])):
        tensor = alloc.Tensor(name, 512, 4, 1, T.F32)
        assert alloc.candidate_types(tensor, types, empty, quantizer) == allowed
    narrow = alloc.Tensor("blk.0.attn_q.weight", 640, 4, 1, T.F32)  # 640 = 2.5 × 256: only 32-wide types
    assert alloc.candidate_types(narrow, types + (T.Q4_0,), empty, quantizer) == [T.Q8_0, T.Q4_0]


def test_probe_choice_is_the_cheapest_option_at_or_above_the_target_bits():
    from imatrix.importance.recipe import probe_choice

    tensor = alloc.Tensor("blk.0.ffn_down.weight", 256, 8, 1, T.F32)  # 2048 weights
    options = [alloc.Option(T.IQ2_XXS, 528, 9.0), alloc.Option(T.IQ3_XXS, 784, 4.0),
               alloc.Option(T.Q4_K, 1152, 2.0), alloc.Option(T.Q8_0, 2176, 0.1)]
    assert probe_choice(tensor, options, 3.0).qtype == T.IQ3_XXS  # 3.06 bpw
    assert probe_choice(tensor, options, 2.0).qtype == T.IQ2_XXS
    assert probe_choice(tensor, options, 8.0).qtype == T.IQ2_XXS  # only the best is above: the cheapest


@pytest.mark.slow
@pytest.mark.llamacpp
def test_group_factors_on_the_real_model(tmp_path_factory, tmp_path):
    """Two groups probed on a tiny text: each factor × error increase is the KLD increase over the all-Q8_0
    baseline, the ffn_down group at IQ2_XXS costs more KLD than attn_v at Q4_0, and a model quantized by
    llama-quantize's own --tensor-type (not our recipe) scores the same KLD as the probe logged."""
    import re

    from gguf import GGUFReader

    from imatrix.files.imatrix_file import read_imatrix
    from imatrix.importance.ggml_quant import GgmlQuantizer
    from imatrix.importance.recipe import AllocateJob, group_factors
    from imatrix.llamacpp import evaluate
    from imatrix.llamacpp import tools as llamacpp
    from tests.imatrix.llamacpp_artifacts import TEXT, session_artifacts

    artifacts = session_artifacts(tmp_path_factory)
    imatrix_path = artifacts.ours_imatrix()
    probe = tmp_path / "probe.txt"
    probe.write_text(TEXT.read_text()[:2500])  # ≈ 600 tokens: a few chunks of 64
    reader = GGUFReader(artifacts.model)
    tensors = alloc.read_tensors(reader)
    targets = [t for t in tensors.values() if t.group in ("attn_v.weight", "ffn_down.weight")]
    imatrix = read_imatrix(imatrix_path)
    options = alloc.measure_options(reader, targets, (T.IQ2_XXS, T.Q4_0, T.Q8_0), imatrix, imatrix,
                                    GgmlQuantizer.load(), max_rows=64, threads=2)
    lines = []
    job = AllocateJob(artifacts.model, imatrix_path, tmp_path / "unused.txt", probe=probe, ctx_size=64, threads=2,
                      log=lines.append, progress=False)
    groups = {t.name: t.group for t in targets}
    factors = group_factors(job, tensors, options, groups, bits=0.0)
    logged = {m.group(1): tuple(map(float, m.groups()[1:])) for m in re.finditer(
        r"probe: (\S+): mean KLD (\S+) ± (\S+) \(baseline (\S+)\), error increase ([^,\s]+)", "\n".join(lines))}
    assert set(factors) == set(logged) == {"attn_v.weight", "ffn_down.weight"}
    for group, (kld, se, baseline, increase) in logged.items():
        expected = sum(min(options[n], key=lambda o: o.nbytes).error - max(options[n], key=lambda o: o.nbytes).error
                       for n in options if groups[n] == group)  # bits=0: probed at the cheapest option
        assert increase == pytest.approx(expected, rel=1e-3)
        assert factors[group] > 0
        assert factors[group] * expected == pytest.approx(max(kld - baseline, se), rel=1e-2, abs=2e-5)
    assert logged["ffn_down.weight"][0] > logged["attn_v.weight"][0]
    theirs = tmp_path / "ffn_down_iq2_xxs.gguf"
    llamacpp.quantize(artifacts.model, theirs, "Q8_0", imatrix=imatrix_path, threads=2,
                      extra_args=["--tensor-type", "ffn_down=iq2_xxs"])
    report = evaluate.run_eval(artifacts.model, [theirs], probe, evaluate.EvalOptions(ctx_size=64, threads=2))
    assert report.rows[1].kld.mean_kld == pytest.approx(logged["ffn_down.weight"][0], abs=1e-5)


def test_factors_file_must_name_every_group(tmp_path):
    from imatrix.importance.recipe import load_factors

    path = tmp_path / "factors.json"
    path.write_text('{"attn_q.weight": 0.5, "ffn_up.weight": 2}')
    assert load_factors(path, {"attn_q.weight"}) == {"attn_q.weight": 0.5}
    with pytest.raises(alloc.AllocateError, match="no factor for the groups ffn_down.weight"):
        load_factors(path, {"attn_q.weight", "ffn_down.weight"})
    path.write_text("[1, 2]")
    with pytest.raises(alloc.AllocateError, match="JSON object"):
        load_factors(path, {"attn_q.weight"})


def test_errors_file_round_trips_and_refuses_other_inputs(tmp_path):
    from imatrix.importance.recipe import (
        AllocateJob,
        _inputs_key,
        _read_errors,
        _write_errors,
    )

    files = {}
    for name in ("model.gguf", "a.imatrix.gguf", "b.imatrix.gguf"):
        files[name] = tmp_path / name
        files[name].write_bytes(name.encode())
    job = AllocateJob(files["model.gguf"], files["a.imatrix.gguf"], tmp_path / "r.txt")
    key = _inputs_key(job, (T.Q4_0, T.Q8_0))
    options = {"blk.0.attn_q.weight": [alloc.Option(T.Q4_0, 144, 0.125), alloc.Option(T.Q8_0, 272, 1e-300)]}
    path = tmp_path / "errors.json"
    _write_errors(path, key, options)
    assert _read_errors(path, key) == options
    other = _inputs_key(AllocateJob(files["model.gguf"], files["b.imatrix.gguf"], tmp_path / "r.txt"),
                        (T.Q4_0, T.Q8_0))
    with pytest.raises(alloc.AllocateError, match="measured for other inputs"):
        _read_errors(path, other)
    subset = _inputs_key(job, (T.Q8_0,))
    assert _read_errors(path, subset) == {"blk.0.attn_q.weight": [options["blk.0.attn_q.weight"][1]]}
    with pytest.raises(alloc.AllocateError, match="measured for other inputs"):
        _read_errors(path, _inputs_key(job, (T.Q8_0, T.Q6_K)))
