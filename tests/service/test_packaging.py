"""What ``pip install callbridge`` puts into site-packages: one import namespace, nothing else."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_installs_one_top_level_package(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("callbridge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names if ".dist-info/" not in name}
    assert tops == {"callbridge"}, f"the wheel installs more than one top-level name: {tops}"
    # What the namespace must hold for `callbridge demo`, `bench` and the image to work.
    for module in (
        "callbridge/bridge/call.py",
        "callbridge/adapters/telcoflow/port.py",
        "callbridge/service/cli.py",
        "callbridge/emulators/assets/manifest.json",
        "callbridge/bench/run.py",
        "callbridge/examples/appointment_booking.py",
        "callbridge/py.typed",
    ):
        assert module in names, f"{module} is missing from the wheel"
    assert not any(name.startswith("callbridge/tests") for name in names)
