"""Parity-fixture machinery shared by every package's ``tests/test_parity.py``.

Fixtures are looked up in ``$SEMVISION_FIXTURES/<package>`` when that variable is set, else in
``<repository root>/.fixtures/<package>`` (what ``make fixtures FIXTURES_FROM=<dir|archive>`` fills), else in
``<repository root>/../shared/fixtures/<package>``. A case file ``<target>.case<N>.npz`` holds ``in.<name>``
inputs, ``out.<name>`` expected outputs and a ``meta`` JSON string; ``<target>.weights.npz`` holds the original
``state_dict`` with float tensors stored as float16 (loaded back as float32 here).

Missing fixtures skip the parity tests locally and fail them under ``CI=true``, unless ``SEMVISION_PARITY=skip``
says explicitly that this run does not check parity (the skip reason then says so).

Typical use in a test module::

    from semcommon.testing import Case, assert_close, case_params, run_case

    def run_gwc(case: Case) -> None:
        assert_close(gwc(case.tensor("ref"), ...), case.expected("volume"), name="volume")

    RUNNERS = {"gwc_volume_norm": run_gwc}

    @pytest.mark.parametrize("path", case_params("semstereo"))
    def test_case(path):
        run_case(path, RUNNERS)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

__all__ = [
    "Case",
    "MissingFixtures",
    "assert_close",
    "assert_close_outside",
    "assert_close_with_flips",
    "case_files",
    "case_params",
    "check_cli",
    "check_outputs",
    "compare_state_dict_shapes",
    "fixtures_dir",
    "load_case",
    "load_manifest",
    "load_weights",
    "manifest_params",
    "mask_footprint",
    "max_abs_error",
    "near_tie_threshold",
    "parity_device",
    "repo_root",
    "require_fixtures",
    "run_case",
    "strict_device_placement",
    "topk_near_ties",
]


def repo_root(start: Path | None = None) -> Path | None:
    """The semvision repository root: the first ancestor holding both ``shared/`` and ``packages/``.

    Searched from ``start`` (default: the working directory), then from this file's location.
    """
    candidates = [Path(start) if start is not None else Path.cwd(), Path(__file__).resolve()]
    for origin in candidates:
        for folder in [origin, *origin.parents]:
            if (folder / "shared").is_dir() and (folder / "packages").is_dir():
                return folder
    return None


def fixtures_dir(package: str) -> Path:
    """Where the fixtures of ``package`` are expected (the folder may not exist): the first existing of
    ``$SEMVISION_FIXTURES/<package>`` (when set, the only candidate), ``<root>/.fixtures/<package>``,
    ``<root>/../shared/fixtures/<package>``; the last candidate when none exists."""
    env = os.environ.get("SEMVISION_FIXTURES")
    if env:
        return Path(env) / package
    root = repo_root() or Path.cwd()
    candidates = [root / ".fixtures" / package, root.parent / "shared" / "fixtures" / package]
    return next((folder for folder in candidates if folder.is_dir()), candidates[-1])


def _parity_skipped_on_purpose() -> bool:
    return os.environ.get("SEMVISION_PARITY", "").lower() == "skip"


def _missing_reason(package: str) -> str:
    if _parity_skipped_on_purpose():
        return f"parity NOT checked for {package!r}: SEMVISION_PARITY=skip"
    return (
        f"parity fixtures for {package!r} not found at {fixtures_dir(package)} "
        "(get them with `make fixtures FIXTURES_FROM=<dir|archive>`, or set SEMVISION_FIXTURES)"
    )


def _fail_when_missing() -> bool:
    return os.environ.get("CI", "").lower() == "true" and not _parity_skipped_on_purpose()


def require_fixtures(package: str) -> Path:
    """The fixture folder of ``package``; skips the calling test if absent, fails instead under ``CI=true``."""
    import pytest

    folder = fixtures_dir(package)
    if not folder.is_dir() or _parity_skipped_on_purpose():
        if _fail_when_missing():
            pytest.fail(_missing_reason(package))
        pytest.skip(_missing_reason(package))
    return folder


def case_files(package: str, target: str | None = None) -> list[Path]:
    """Every ``<target>.case*.npz`` in the package's fixture folder, sorted; [] when the folder is absent."""
    folder = fixtures_dir(package)
    if not folder.is_dir():
        return []
    pattern = f"{target}.case*.npz" if target else "*.case*.npz"
    return sorted(folder.glob(pattern))


def case_params(package: str, target: str | None = None) -> list[Any]:
    """``pytest.param`` entries, one per case file (id = file name), for ``@pytest.mark.parametrize``.

    When the fixture folder is absent it yields a single parameter whose test skips (fails under ``CI=true``),
    so a missing folder is never a silent pass.
    """
    import pytest

    files = [] if _parity_skipped_on_purpose() else case_files(package, target)
    if files:
        return [pytest.param(path, id=path.name) for path in files]
    if _parity_skipped_on_purpose() or not fixtures_dir(package).is_dir():
        return [_missing_param(package, "fixtures-missing")]
    return []


@dataclass(frozen=True)
class MissingFixtures:
    """Parameter standing for an absent fixture folder; loading it raises with the reason."""

    package: str

    def __str__(self) -> str:
        return _missing_reason(self.package)


def _missing_param(package: str, test_id: str) -> Any:
    """Skip outside CI; under ``CI=true`` the test runs and fails when it loads the missing file."""
    import pytest

    if _fail_when_missing():
        return pytest.param(MissingFixtures(package), id=test_id)
    return pytest.param(MissingFixtures(package), id=test_id, marks=pytest.mark.skip(reason=_missing_reason(package)))


def _check_present(path: Any) -> Path:
    if isinstance(path, MissingFixtures):
        raise FileNotFoundError(str(path))
    return Path(path)


class _ReadTracking(dict):
    """The expected outputs of a case, remembering which ones a runner read (so none goes unchecked)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> np.ndarray:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            self.read.add(key)
        return super().get(key, default)

    def values(self) -> Any:
        self.read.update(self)
        return super().values()

    def items(self) -> Any:
        self.read.update(self)
        return super().items()


@dataclass
class Case:
    """One fixture case: inputs, expected outputs and the meta dictionary."""

    path: Path
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=_ReadTracking)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """The target name: the file name before ``.case``."""
        return self.path.name.split(".case")[0]

    @property
    def weights_path(self) -> Path:
        """``<target>.weights.npz`` beside the case file (it may not exist)."""
        return self.path.with_name(f"{self.target}.weights.npz")

    def tensor(self, name: str) -> torch.Tensor:
        """Input ``name`` as a torch tensor on :func:`parity_device` (0-d inputs become 0-d tensors)."""
        return torch.from_numpy(np.array(self.inputs[name])).to(parity_device())

    def scalar(self, name: str) -> int | float | bool:
        """A 0-d input as a Python scalar."""
        return np.asarray(self.inputs[name]).item()

    def expected(self, name: str) -> np.ndarray:
        return self.outputs[name]


def load_case(path: str | Path | MissingFixtures) -> Case:
    """Read a ``*.case*.npz`` file into a :class:`Case` (``in.``/``out.`` prefixes stripped)."""
    path = _check_present(path)
    if not path.is_file():
        raise FileNotFoundError(f"fixture case file not found: {path}")
    case = Case(path=path)
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            if key.startswith("in."):
                case.inputs[key[3:]] = data[key]
            elif key.startswith("out."):
                case.outputs[key[4:]] = data[key]
            elif key == "meta":
                case.meta = json.loads(str(data[key]))
    return case


def check_cli(main: Callable[[list[str]], int], commands: Sequence[str], capsys: Any) -> None:
    """A package CLI: ``<command> --help`` exits 0 and names the command for each of ``commands``; an unknown
    sub-command exits non-zero. ``capsys`` is pytest's fixture."""
    import pytest

    for command in commands:
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0, f"{command} --help exited {exc.value.code}"
        assert command in capsys.readouterr().out, f"{command} --help does not name the command"
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code != 0, "an unknown sub-command exited 0"
    capsys.readouterr()


def run_case(
    path: str | Path | MissingFixtures,
    runners: Mapping[str, Callable[[Case], None]],
    seed: int = 0,
    strict_device: bool = False,
) -> None:
    """Load a case file and run the runner registered for its target, with torch seeded to ``seed``.

    With ``strict_device`` the runner runs under :func:`strict_device_placement` (inside every module forward for
    targets with weights, ``<target>.weights.npz`` or ``meta["weights"]``; the whole runner for weight-free targets),
    so code that creates tensors off its input's device fails on the CPU as it would on CUDA.

    A case whose target has no runner fails the test, naming the file and the known targets, so a new fixture
    target is never silently ignored; so does a case output the runner never read (every output a case holds is
    compared, whichever intermediates a case carries).
    """
    import pytest

    case = load_case(path)
    runner = runners.get(case.target)
    if runner is None:
        pytest.fail(f"no parity runner for fixture target {case.target!r} ({case.path.name}); known: {sorted(runners)}")
    torch.manual_seed(seed)
    _run(case, runner, strict_device)
    unread = sorted(set(case.outputs) - case.outputs.read) if isinstance(case.outputs, _ReadTracking) else []
    if unread:
        pytest.fail(f"{case.path.name}: the runner of {case.target!r} never compared the outputs {unread}")


def _run(case: Case, runner: Callable[[Case], None], strict_device: bool) -> None:
    if strict_device:
        has_weights = case.weights_path.is_file() or "weights" in case.meta
        with strict_device_placement(whole_block=not has_weights):
            runner(case)
    else:
        runner(case)


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``*.weights.npz`` state dict: float16 tensors become float32, integer buffers keep their dtype."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fixture weights file not found: {path}")
    state: dict[str, torch.Tensor] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            array = data[key]
            if np.issubdtype(array.dtype, np.floating):
                array = array.astype(np.float32)
            state[key] = torch.from_numpy(np.array(array))
    return state


def load_manifest(path: str | Path | MissingFixtures) -> dict[str, Any]:
    """Read a ``manifest_*.json`` file (as given by :func:`manifest_params`)."""
    path = _check_present(path)
    if not path.is_file():
        raise FileNotFoundError(f"fixture manifest not found: {path}")
    return json.loads(path.read_text())


def manifest_params(package: str) -> list[Any]:
    """``pytest.param`` entries, one per ``manifest_*.json`` in the fixture folder (id = file name)."""
    import pytest

    folder = fixtures_dir(package)
    files = sorted(folder.glob("manifest_*.json")) if folder.is_dir() and not _parity_skipped_on_purpose() else []
    if files:
        return [pytest.param(path, id=path.name) for path in files]
    return [_missing_param(package, "manifests-missing")]


def compare_state_dict_shapes(
    expected: dict[str, list[int]] | list[tuple[str, list[int]]],
    state_dict: dict[str, torch.Tensor],
    check_order: bool = True,
) -> list[str]:
    """Differences between expected ``key -> shape`` and a state dict, as readable lines ([] when equal).

    ``expected`` may be a dict or a list of ``(key, shape)`` pairs; with ``check_order`` the key order must match too.
    """
    items = list(expected.items()) if isinstance(expected, dict) else [(k, list(s)) for k, s in expected]
    want = {k: list(s) for k, s in items}
    have = {k: list(v.shape) for k, v in state_dict.items()}
    problems = [f"missing key {k} {s}" for k, s in want.items() if k not in have]
    problems += [f"unexpected key {k} {s}" for k, s in have.items() if k not in want]
    problems += [f"shape of {k}: expected {want[k]}, got {have[k]}" for k in want if k in have and want[k] != have[k]]
    if check_order and not problems and [k for k, _ in items] != list(have):
        first = next(i for i, (a, b) in enumerate(zip([k for k, _ in items], have, strict=False)) if a != b)
        problems.append(
            f"key order differs first at position {first}: expected {items[first][0]}, got {list(have)[first]}"
        )
    return problems


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def assert_close(
    actual: Any,
    expected: Any,
    *,
    rtol: float = 1e-4,
    atol: float | None = None,
    name: str = "output",
) -> None:
    """Fixture comparison.

    Float outputs: ``max|actual - expected| <= atol`` when ``atol`` is given, else
    ``<= rtol * max(1, max|expected|)`` (the fixtures' "relative to the output scale" rule).
    Integer and boolean outputs must match exactly. Shapes must match exactly.
    """
    a, e = _to_numpy(actual), _to_numpy(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{name}: shape {a.shape} != expected {e.shape}")
    if e.dtype.kind in "biu":
        mismatched = int(np.count_nonzero(a.astype(e.dtype) != e))
        if mismatched:
            raise AssertionError(f"{name}: {mismatched} of {e.size} integer entries differ")
        return
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    if not np.array_equal(np.isnan(a64), np.isnan(e64)):
        raise AssertionError(f"{name}: NaN positions differ")
    finite = ~np.isnan(e64)
    if not np.array_equal(np.isinf(a64), np.isinf(e64)) or not np.array_equal(a64[np.isinf(e64)], e64[np.isinf(e64)]):
        raise AssertionError(f"{name}: infinite entries differ")
    finite &= ~np.isinf(e64)
    err = float(np.max(np.abs(a64[finite] - e64[finite]))) if finite.any() else 0.0
    scale = float(np.max(np.abs(e64[finite]))) if finite.any() else 0.0
    tol = atol if atol is not None else rtol * max(1.0, scale)
    if not err <= tol:
        raise AssertionError(f"{name}: max abs error {err:.3g} > tolerance {tol:.3g} (max|expected| {scale:.3g})")


def max_abs_error(actual: Any, expected: Any) -> float:
    """``max |actual - expected|`` over the finite expected entries (0.0 when there are none)."""
    a, e = _to_numpy(actual).astype(np.float64), _to_numpy(expected).astype(np.float64)
    if a.shape != e.shape:
        raise AssertionError(f"shape {a.shape} != expected {e.shape}")
    finite = np.isfinite(e)
    return float(np.max(np.abs(a[finite] - e[finite]))) if finite.any() else 0.0


def topk_near_ties(values: Any, k: int, axis: int, threshold: float) -> np.ndarray:
    """Positions where the ``k``-th and ``(k+1)``-th largest entries along ``axis`` differ by less than ``threshold``.

    These are the positions where a top-``k`` selection may legitimately flip between two backends whose values
    differ by about ``threshold``; the result has the shape of ``values`` without ``axis``.
    """
    v = _to_numpy(values).astype(np.float64)
    if not 0 < k < v.shape[axis]:
        raise ValueError(f"k={k} must lie in [1, {v.shape[axis] - 1}] for {v.shape[axis]} values along axis {axis}")
    ordered = -np.sort(-v, axis=axis)
    kth = np.take(ordered, k - 1, axis=axis)
    next_ = np.take(ordered, k, axis=axis)
    return (kth - next_) < threshold


NEAR_TIE_FLOOR = 1e-6
MAX_FLIP_COMBINATIONS = 4096


def near_tie_threshold(error: float, values: Any, floor: float = NEAR_TIE_FLOOR) -> float:
    """Decision margins below this are near-ties: ``2 × error`` (the measured max abs error of the values driving a
    choice), at least ``floor × max(1, max|values|)`` over the finite values."""
    v = np.abs(_to_numpy(values).astype(np.float64))
    finite = v[np.isfinite(v)]
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    return max(2.0 * error, floor * scale)


def assert_close_with_flips(
    actual: float, expected: float, atol: float, changes: Sequence[Sequence[float]], name: str = "output"
) -> None:
    """A scalar that sums over near-tie decisions: ``expected`` within ``atol`` of ``actual`` plus the changes of
    some combination of flips (``changes[i]`` lists what each other outcome of decision ``i`` adds). Beyond
    ``MAX_FLIP_COMBINATIONS`` combinations the range of their sums is used. Without near-ties this is the plain
    ``|actual - expected| <= atol`` check."""
    offset = float(expected) - float(actual)
    sums = np.zeros(1)
    for options in changes:
        sums = np.unique((sums[:, None] + np.array([0.0, *options])[None]).ravel())
        if sums.size > MAX_FLIP_COMBINATIONS:
            low = sum(min(0.0, *options) for options in changes)
            high = sum(max(0.0, *options) for options in changes)
            if not low - atol <= offset <= high + atol:
                raise AssertionError(f"{name}: {actual} vs {expected} outside the range of the near-tie flips")
            return
    gap = float(np.min(np.abs(offset - sums)))
    if not gap <= atol:
        detail = f" (nearest of {sums.size} near-tie flip combinations: {gap:.3g})" if changes else ""
        raise AssertionError(f"{name}: max abs error {abs(offset):.3g} > tolerance {atol:.3g}{detail}")


def mask_footprint(mask: np.ndarray, dilate: int = 1, scale: int = 1) -> np.ndarray:
    """Dilate a boolean mask by ``dilate`` pixels (a (2d+1)×(2d+1) square over the last two axes), then repeat every
    pixel ``scale`` times along both (its footprint at ``scale``× the resolution)."""
    out = np.asarray(mask, dtype=bool)
    if dilate > 0:
        h, w = out.shape[-2:]
        padded = np.pad(out, [(0, 0)] * (out.ndim - 2) + [(dilate, dilate), (dilate, dilate)])
        grown = np.zeros_like(out)
        for dy in range(2 * dilate + 1):
            for dx in range(2 * dilate + 1):
                grown |= padded[..., dy : dy + h, dx : dx + w]
        out = grown
    if scale > 1:
        out = out.repeat(scale, axis=-2).repeat(scale, axis=-1)
    return out


def assert_close_outside(
    actual: Any, expected: Any, mask: np.ndarray, *, atol: float, max_fraction: float, name: str = "output"
) -> None:
    """Every entry outside ``mask`` within ``atol``; the mask may cover at most ``max_fraction`` of the entries, so a
    check that masks near-ties can never become vacuous."""
    a, e = _to_numpy(actual).astype(np.float64), _to_numpy(expected).astype(np.float64)
    if a.shape != e.shape:
        raise AssertionError(f"{name}: shape {a.shape} != expected {e.shape}")
    mask = np.broadcast_to(np.asarray(mask, dtype=bool), e.shape)
    fraction = float(mask.mean())
    if fraction > max_fraction:
        raise AssertionError(f"{name}: near-tie mask covers {fraction:.1%} of the entries > {max_fraction:.0%}")
    keep = ~mask
    err = float(np.max(np.abs(a[keep] - e[keep]))) if keep.any() else 0.0
    if not err <= atol:
        raise AssertionError(f"{name}: max abs error {err:.3g} outside the near-tie mask > tolerance {atol:.3g}")


def check_outputs(
    case: Case,
    actual: Mapping[str, Any],
    *,
    required: Sequence[str] | None = None,
    tolerances: Mapping[str, Mapping[str, float]] | None = None,
    default: Mapping[str, float] | None = None,
    skip: Sequence[str] = (),
) -> None:
    """Compare every output the case holds with ``actual`` (extra produced outputs are ignored).

    ``required`` names the outputs every case of the target must carry (default: all of ``actual``); a case output
    the code does not produce fails. ``tolerances[name]`` (else ``default``, else ``rtol=1e-4``) are the keyword
    arguments of :func:`assert_close`; names in ``skip`` are checked by the caller.
    """
    required = list(actual) if required is None else list(required)
    missing = [name for name in required if name not in case.outputs]
    assert not missing, f"{case.path.name}: case lacks the required outputs {missing}"
    unproduced = sorted(set(case.outputs) - set(actual) - set(skip))
    assert not unproduced, f"{case.path.name}: outputs {unproduced} in the case are not produced"
    tolerances = tolerances or {}
    for name, expected in case.outputs.items():
        if name in skip:
            continue
        options = tolerances.get(name, default if default is not None else {"rtol": 1e-4})
        assert_close(actual[name], expected, name=name, **options)


def parity_device() -> torch.device:
    """The device parity tests run on: ``$SEMVISION_DEVICE`` (``cpu`` by default, e.g. ``cuda``, ``cuda:1``).

    On CUDA, TF32 is switched off so float32 matmuls and convolutions stay float32. A requested device that is
    not available fails instead of silently falling back to the CPU.
    """
    name = os.environ.get("SEMVISION_DEVICE", "cpu") or "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"SEMVISION_DEVICE={name} but CUDA is not available")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return device


class _MetaByDefault(TorchFunctionMode):
    """Tensor factories called without ``device=`` create meta tensors (``as_tensor`` of a tensor keeps its device)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        keeps_device = func in (torch.as_tensor, torch.asarray) and args and isinstance(args[0], torch.Tensor)
        if func in _device_constructors() and kwargs.get("device") is None and not keeps_device:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


@contextmanager
def strict_device_placement(whole_block: bool = True) -> Iterator[None]:
    """Make tensors created without an explicit device land on the ``meta`` device.

    Code that builds its tensors on its input's device (``device=x.device``, ``*_like``, ``x.new_*``) is unaffected;
    code that relies on the default device (``torch.zeros(n)``, ``torch.tensor([...])``, ``torch.arange(n).to(x)``)
    then mixes meta and CPU tensors and fails here on the CPU where it would mix host and GPU tensors (or copy
    between them) on CUDA. Host-side tensors on purpose say so with ``device="cpu"``.

    With ``whole_block`` the rule holds for the whole block (functions: losses, metrics, geometry); without it,
    only inside every ``nn.Module`` forward call, so modules can still be built and loaded inside the block.
    """
    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    stack: list[_MetaByDefault] = []

    def enter(_module: torch.nn.Module, _inputs: Any) -> None:
        mode = _MetaByDefault()
        mode.__enter__()
        stack.append(mode)

    def leave(_module: torch.nn.Module, _inputs: Any, _output: Any) -> None:
        stack.pop().__exit__(None, None, None)

    handles = [register_module_forward_pre_hook(enter), register_module_forward_hook(leave, always_call=True)]
    try:
        if whole_block:
            with _MetaByDefault():
                yield
        else:
            yield
    finally:
        for handle in handles:
            handle.remove()
        while stack:
            stack.pop().__exit__(None, None, None)
