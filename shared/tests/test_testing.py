import json

import numpy as np
import pytest
import torch

from semcommon.testing import (
    MissingFixtures,
    assert_close,
    assert_close_outside,
    assert_close_with_flips,
    case_files,
    check_outputs,
    compare_state_dict_shapes,
    fixtures_dir,
    load_case,
    load_weights,
    mask_footprint,
    max_abs_error,
    near_tie_threshold,
    parity_device,
    run_case,
    strict_device_placement,
    topk_near_ties,
)


def test_fixture_folder_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMVISION_FIXTURES", str(tmp_path))
    pkg = tmp_path / "demo"
    pkg.mkdir()
    np.savez(pkg / "t.case1.npz", **{"in.x": np.ones(2), "out.y": np.zeros(2), "meta": json.dumps({"seed": 1})})
    np.savez(pkg / "t.weights.npz", w=np.ones(2, np.float16), n=np.array(3, np.int64))
    assert fixtures_dir("demo") == pkg
    [path] = case_files("demo")
    case = load_case(path)
    assert case.target == "t" and case.meta == {"seed": 1}
    assert set(case.inputs) == {"x"} and set(case.outputs) == {"y"}
    weights = load_weights(case.weights_path)
    assert weights["w"].dtype == torch.float32 and weights["n"].dtype == torch.int64


def test_run_case_dispatches_seeds_and_rejects_unknown_targets(tmp_path):
    path = tmp_path / "double.case1.npz"
    np.savez(path, **{"in.x": np.arange(3.0), "out.y": np.arange(3.0) * 2, "meta": "{}"})
    seen = []

    def run_double(case):
        seen.append(torch.rand(1).item())
        assert_close(case.tensor("x") * 2, case.expected("y"), name="y")

    run_case(path, {"double": run_double})
    run_case(path, {"double": run_double})
    assert len(seen) == 2 and seen[0] == seen[1]  # seeded before every runner
    with pytest.raises(pytest.fail.Exception, match="'double'.*known: \\['other'\\]"):
        run_case(path, {"other": run_double})


def test_missing_fixtures_raise_on_load():
    with pytest.raises(FileNotFoundError, match="not found"):
        load_case(MissingFixtures("nothing"))


def test_assert_close_rules():
    assert_close(np.array([100.0]), np.array([100.009]), rtol=1e-4)  # scale 100 -> tol 1e-2
    with pytest.raises(AssertionError, match="max abs error"):
        assert_close(np.array([0.5]), np.array([0.5002]), rtol=1e-4)
    with pytest.raises(AssertionError, match="integer"):
        assert_close(np.array([1, 2]), np.array([1, 3]))
    with pytest.raises(AssertionError, match="shape"):
        assert_close(np.zeros(2), np.zeros(3))
    assert_close(torch.tensor([np.inf, 1.0]), np.array([np.inf, 1.0]))


def test_compare_state_dict_shapes():
    state = {"a": torch.zeros(2), "b": torch.zeros(3, 1)}
    assert compare_state_dict_shapes({"a": [2], "b": [3, 1]}, state) == []
    problems = compare_state_dict_shapes({"b": [3, 1], "a": [2]}, state)
    assert problems and "order" in problems[0]
    problems = compare_state_dict_shapes({"a": [2], "c": [1], "b": [3, 2]}, state)
    assert "missing key c [1]" in problems and any("shape of b" in p for p in problems)


def test_topk_near_ties_and_footprint():
    values = np.zeros((1, 4, 2, 3))
    values[0, :, 0, 0] = [5.0, 3.0, 3.0 - 1e-7, 0.0]  # 2nd/3rd gap 1e-7: a near-tie for k=2
    values[0, :, 1, 2] = [5.0, 3.0, 1.0, 0.0]  # clear gap
    ties = topk_near_ties(values, k=2, axis=1, threshold=1e-6)
    assert ties.shape == (1, 2, 3) and ties[0, 0, 0] and not ties[0, 1, 2]
    assert not topk_near_ties(values, k=1, axis=1, threshold=1e-6)[0, 0, 0]
    with pytest.raises(ValueError, match="k=4"):
        topk_near_ties(values, k=4, axis=1, threshold=1e-6)
    single = np.zeros((5, 5), bool)
    single[2, 2] = True
    assert mask_footprint(single, dilate=1).sum() == 9
    assert mask_footprint(single, dilate=0, scale=4).shape == (20, 20)
    assert mask_footprint(single, dilate=1, scale=2).sum() == 36


def test_assert_close_outside_is_bounded():
    expected = np.zeros((10, 10))
    actual = expected.copy()
    actual[0, 0] = 5.0
    mask = np.zeros((10, 10), bool)
    mask[0, 0] = True
    assert_close_outside(actual, expected, mask, atol=1e-3, max_fraction=0.2)
    with pytest.raises(AssertionError, match="outside the near-tie mask"):
        assert_close_outside(actual, expected, np.zeros_like(mask), atol=1e-3, max_fraction=0.2)
    with pytest.raises(AssertionError, match="covers 100.0%"):
        assert_close_outside(actual, expected, np.ones_like(mask), atol=1e-3, max_fraction=0.2)
    assert max_abs_error(actual, expected) == 5.0


def test_check_outputs_checks_what_the_case_holds(tmp_path):
    path = tmp_path / "t.case1.npz"
    np.savez(path, **{"in.x": np.ones(2), "out.y": np.ones(2), "out.debug": np.zeros(2), "meta": "{}"})
    case = load_case(path)
    check_outputs(case, {"y": torch.ones(2), "debug": torch.zeros(2), "extra": torch.ones(3)}, required=["y"])
    with pytest.raises(AssertionError, match="debug"):
        check_outputs(case, {"y": torch.ones(2), "debug": torch.ones(2)}, required=["y"])
    with pytest.raises(AssertionError, match="lacks the required outputs \\['z'\\]"):
        check_outputs(case, {"y": torch.ones(2), "debug": torch.zeros(2), "z": torch.ones(1)}, required=["y", "z"])
    with pytest.raises(AssertionError, match="not produced"):
        check_outputs(case, {"y": torch.ones(2)}, required=["y"])


def test_parity_device(monkeypatch):
    monkeypatch.delenv("SEMVISION_DEVICE", raising=False)
    assert parity_device() == torch.device("cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("SEMVISION_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            parity_device()


def test_strict_device_placement_catches_default_device_tensors():
    class OnDefault(torch.nn.Module):
        def forward(self, x):
            return x + torch.ones(3)

    class OnInput(torch.nn.Module):
        def forward(self, x):
            return x + torch.ones(3, device=x.device) + torch.as_tensor(x)

    x = torch.zeros(3)
    with strict_device_placement(whole_block=False):
        module = OnDefault()  # building modules stays allowed outside forward
        assert OnInput()(x).device == x.device
        with pytest.raises((RuntimeError, NotImplementedError)):
            module(x)
    with strict_device_placement(whole_block=True):
        assert (x + torch.ones(3, device="cpu")).device == x.device
        with pytest.raises((RuntimeError, NotImplementedError)):
            _ = x + torch.arange(3).to(x)
    assert (x + torch.ones(3)).device == x.device  # the rule ends with the block


def test_run_case_fails_on_an_output_the_runner_never_compared(tmp_path):
    path = tmp_path / "t.case1.npz"
    np.savez(path, **{"in.x": np.ones(2), "out.y": np.ones(2), "out.extra": np.zeros(2), "meta": "{}"})
    run_case(path, {"t": lambda case: check_outputs(case, {"y": case.tensor("x"), "extra": torch.zeros(2)})})
    with pytest.raises(pytest.fail.Exception, match="never compared the outputs \\['extra'\\]"):
        run_case(path, {"t": lambda case: assert_close(case.tensor("x"), case.expected("y"))})


def test_flip_combinations_accept_only_flip_combinations():
    changes = [[-0.25], [0.25], [0.25]]
    for offset in (0.0, -0.25, 0.25, 0.5):
        assert_close_with_flips(0.5, 0.5 + offset, 1e-9, changes, "delta1")
    for offset in (0.1, 0.75, -0.5):
        with pytest.raises(AssertionError, match="delta1"):
            assert_close_with_flips(0.5, 0.5 + offset, 1e-9, changes, "delta1")
    assert_close_with_flips(1.0, 1.0 + 1e-7, 1e-6, [], "plain")
    with pytest.raises(AssertionError, match="max abs error"):
        assert_close_with_flips(1.0, 1.1, 1e-6, [], "plain")
    many = [[2.0**i] for i in range(13)]  # 2**13 distinct sums > MAX_FLIP_COMBINATIONS: their range is used
    assert_close_with_flips(0.0, 13.5, 1e-9, many)
    with pytest.raises(AssertionError, match="outside the range"):
        assert_close_with_flips(0.0, -1.0, 1e-9, many)


def test_near_tie_threshold():
    assert near_tie_threshold(1e-5, np.array([0.5, 2.0])) == 2e-5
    assert near_tie_threshold(0.0, np.array([np.inf, -300.0])) == pytest.approx(3e-4)
    assert near_tie_threshold(0.0, np.array([])) == 1e-6
