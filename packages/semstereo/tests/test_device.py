"""Device-neutral code paths, checked on the CPU: every parity case again, with tensors created without an explicit
device placed on the meta device (semcommon.testing.strict_device_placement), so a tensor built on the default device
instead of its input's device fails here as it would on CUDA."""

import importlib.util
from pathlib import Path

import pytest

from semcommon.testing import case_params, run_case

_spec = importlib.util.spec_from_file_location("_semstereo_parity", Path(__file__).with_name("test_parity.py"))
_parity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_parity)


@pytest.mark.parametrize("impl", sorted(_parity.IMPL_RUNNERS))
@pytest.mark.parametrize("path", case_params("semstereo"))
def test_parity_case_is_device_neutral(path, impl) -> None:
    run_case(path, _parity.IMPL_RUNNERS[impl], strict_device=True)
